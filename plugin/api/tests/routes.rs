//! vk-api natively, over vk-core's memory store: the route table, authentication, and the
//! refusals of the HTTP layer itself. (The stories behind each route run end to end, on both
//! components, in the repository's `tests/`.)

use serde_json::{Value, json};
use vk_api::routes::{Access, ROUTES};
use vk_api::{Config, Request, Response, handle};
use vk_core::Core;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Offline, Store, SystemClock};

const ADMIN: &str = "the-admin-token";
const CALLBACK_PATH: &str = "/settings/integrations/vk-group/call-back";
const SOME_ID: &str = "0b8f7a52-3f5e-4c55-9a43-6f1de2d0b001";

struct Api {
    store: MemoryStore,
    admin: Option<&'static str>,
}

impl Api {
    fn new() -> Api {
        Api {
            store: MemoryStore::new(),
            admin: Some(ADMIN),
        }
    }

    fn send(&self, method: &str, target: &str, token: Option<&str>, body: &[u8]) -> Response {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let headers: Vec<(String, String)> = token
            .map(|t| ("authorization".to_owned(), format!("Bearer {t}")))
            .into_iter()
            .collect();
        let core = Core::new(&self.store, &Offline, &SystemClock);
        handle(
            &core,
            &Config {
                admin_token: self.admin,
                public_url: None,
            },
            &Request {
                method,
                path,
                query,
                headers: &headers,
                body,
            },
        )
    }

    /// The status and the JSON body.
    fn call(&self, method: &str, target: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let answer = self.send(method, target, token, &body);
        assert_eq!(answer.content_type, "application/json");
        let json = serde_json::from_slice(&answer.body).expect("a JSON body");
        (answer.status, json)
    }

    fn code(&self, method: &str, target: &str, token: Option<&str>) -> (u16, String) {
        let (status, body) = self.call(method, target, token, Value::Null);
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// A new employee's token.
    fn employee(&self) -> (String, String) {
        let (status, body) = self.call(
            "POST",
            "/api/employees",
            Some(ADMIN),
            json!({"name": "Anna"}),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().expect("an id").to_owned(),
            body["token"].as_str().expect("a token").to_owned(),
        )
    }
}

#[test]
fn unknown_paths_are_404_and_known_paths_with_another_method_are_405() {
    let api = Api::new();
    let (_, token) = api.employee();
    let token = Some(token.as_str());
    for path in [
        "/index.html",
        "/api",
        "/api/",
        "/api/dialogs/",
        "/api/unknown",
        &format!("/api/dialogs/{SOME_ID}/unknown"),
        &format!("/api/leads/{SOME_ID}/items/{SOME_ID}/more"),
        "/settings/integrations/vk-group/call-back/",
    ] {
        assert_eq!(
            api.code("POST", path, token),
            (404, "no-such-route".into()),
            "{path}"
        );
    }
    for (method, path) in [
        (
            "GET",
            "/settings/integrations/vk-group/call-back".to_owned(),
        ),
        ("DELETE", "/api/employees".to_owned()),
        ("POST", "/".to_owned()),
        ("PUT", "/assets/app.js".to_owned()),
        ("POST", "/api/settings".to_owned()),
        ("GET", "/api/settings/group-id".to_owned()),
        ("GET", "/api/outbox/flush".to_owned()),
        ("POST", "/api/dialogs".to_owned()),
        ("DELETE", format!("/api/dialogs/{SOME_ID}")),
        ("PUT", format!("/api/dialogs/{SOME_ID}/messages")),
        ("POST", format!("/api/dialogs/{SOME_ID}/history")),
        ("GET", format!("/api/dialogs/{SOME_ID}/claim")),
        ("PUT", format!("/api/leads/{SOME_ID}")),
        ("GET", format!("/api/leads/{SOME_ID}/convert")),
        ("POST", format!("/api/leads/{SOME_ID}/items/{SOME_ID}")),
        ("POST", format!("/api/orders/{SOME_ID}")),
    ] {
        assert_eq!(
            api.code(method, &path, token),
            (405, "method-not-allowed".into()),
            "{method} {path}"
        );
    }
    for method in ["DELETE", "POST"] {
        let path = match method {
            "DELETE" => "/api/employees/not-an-id",
            _ => "/api/employees/not-an-id/sign-in-link",
        };
        assert_eq!(
            api.code(method, path, Some(ADMIN)),
            (404, "employee-not-found".into()),
            "{method} {path}"
        );
    }
    // A 405 names the methods the path takes.
    for (method, path, allowed) in [
        ("GET", CALLBACK_PATH.to_owned(), "POST"),
        ("POST", "/api/settings".to_owned(), "GET, PUT, HEAD"),
        (
            "GET",
            format!("/api/leads/{SOME_ID}/items/{SOME_ID}"),
            "PATCH, DELETE",
        ),
        ("PUT", "/assets/app.js".to_owned(), "GET, HEAD"),
    ] {
        let answer = api.send(method, &path, token, b"");
        let allow = answer.headers.iter().find(|(name, _)| *name == "allow");
        assert_eq!(
            allow.map(|(_, v)| v.as_str()),
            Some(allowed),
            "{method} {path}"
        );
    }
}

#[test]
fn callers_are_told_apart_by_their_token() {
    let api = Api::new();
    let (_, token) = api.employee();
    assert_eq!(
        api.code("GET", "/api/dialogs", None),
        (401, "unauthorized".into())
    );
    assert_eq!(
        api.code("GET", "/api/dialogs", Some("made-up")),
        (401, "unauthorized".into())
    );
    // The admin reads everything, but works in no dialog.
    assert_eq!(api.code("GET", "/api/dialogs", Some(ADMIN)).0, 200);
    assert_eq!(
        api.code(
            "POST",
            "/api/dialogs/00000000-0000-0000-0000-000000000000/claim",
            Some(ADMIN)
        ),
        (403, "not-an-employee".into())
    );
    assert_eq!(
        api.code("GET", "/api/settings", Some(&token)),
        (403, "admin-only".into())
    );
    // Known, but not listed in the settings: the domain's rule refuses, not authentication.
    assert_eq!(
        api.code("GET", "/api/dialogs", Some(&token)),
        (403, "employee-not-listed".into())
    );
    for blank in [None, Some(""), Some(" \n")] {
        let closed = Api {
            admin: blank,
            ..Api::new()
        };
        for token in [ADMIN, "", " "] {
            assert_eq!(
                closed.code("GET", "/api/settings", Some(token)),
                (401, "unauthorized".into()),
                "admin {blank:?}, token {token:?}"
            );
        }
    }
    // A token from a secrets file keeps its newline; the scheme's name is case-blind.
    let from_file = Api {
        admin: Some("the-admin-token\n"),
        ..Api::new()
    };
    assert_eq!(
        from_file
            .call("GET", "/api/settings", Some(ADMIN), Value::Null)
            .0,
        200
    );
    let core = Core::new(&api.store, &Offline, &SystemClock);
    for (header, status) in [
        (format!("bearer {ADMIN}"), 200),
        (format!("BEARER  {ADMIN} "), 200),
        (format!("Basic {ADMIN}"), 401),
        (ADMIN.to_owned(), 401),
    ] {
        let headers = [("Authorization".to_owned(), header.clone())];
        let answer = handle(
            &core,
            &Config {
                admin_token: api.admin,
                public_url: None,
            },
            &Request {
                method: "GET",
                path: "/api/settings",
                query: None,
                headers: &headers,
                body: b"",
            },
        );
        assert_eq!(answer.status, status, "{header:?}");
    }
}

/// The route table's `access` is what each route enforces: no token is `401` on every route
/// but the public ones, the admin token is refused by the employees' routes, an employee's
/// token by the admin's, and nothing else refuses either of them for who they are.
#[test]
fn every_route_of_the_table_enforces_its_access() {
    let api = Api::new();
    let (_, token) = api.employee();
    let callers_refusal = |status: u16, code: &str| {
        status == 401 || ["not-an-employee", "admin-only"].contains(&code)
    };
    for route in ROUTES {
        let path = route
            .path
            .replace("{id}", SOME_ID)
            .replace("{item}", SOME_ID);
        let name = format!("{} {}", route.method, route.path);
        if route.access == Access::Public {
            continue;
        }
        let (status, code) = api.code(route.method, &path, None);
        assert_eq!((status, code.as_str()), (401, "unauthorized"), "{name}");
        let (status, code) = api.code(route.method, &path, Some(ADMIN));
        match route.access {
            Access::Employee => assert_eq!(code, "not-an-employee", "{name}"),
            _ => assert!(!callers_refusal(status, &code), "{name}: {code}"),
        }
        let (status, code) = api.code(route.method, &path, Some(&token));
        match route.access {
            Access::Admin => assert_eq!(code, "admin-only", "{name}"),
            _ => assert!(!callers_refusal(status, &code), "{name}: {code}"),
        }
    }
    let public: Vec<&str> = ROUTES
        .iter()
        .filter(|route| route.access == Access::Public)
        .map(|route| route.path)
        .collect();
    assert_eq!(
        public,
        [
            "/settings/integrations/vk-group/call-back",
            "/api/openapi.json",
            "/api/sessions"
        ]
    );
}

#[test]
fn head_is_answered_as_get_and_a_missing_field_before_an_unknown_dialog() {
    let api = Api::new();
    let (id, token) = api.employee();
    let (status, _) = api.call(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        json!({"employees": [id]}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.send("HEAD", "/api/dialogs", Some(&token), b"").status,
        200
    );
    for (command, field) in [("invite", "employees"), ("delegate", "to")] {
        let (status, body) = api.call(
            "POST",
            &format!("/api/dialogs/not-a-dialog/{command}"),
            Some(&token),
            json!({}),
        );
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid-field")),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field)
        );
    }
}

#[test]
fn refusals_of_the_http_layer_store_nothing() {
    let api = Api::new();
    let (id, token) = api.employee();
    let before = api.store.scan("", None, u32::MAX).expect("a snapshot");
    let cases = [
        (
            json!({"employees": ["0b8f7a52-0000-4000-8000-000000000000"]}),
            "unknown-employee",
        ),
        (json!({"employees": ["not-an-id"]}), "unknown-employee"),
        (json!({"employees": [id], "group_id": 5}), "read-only-field"),
        (
            json!({"employees": [id], "colour": "red"}),
            "malformed-body",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = api.call("PUT", "/api/settings", Some(ADMIN), body);
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code))
        );
    }
    let (status, answer) = api.call("POST", "/api/employees", Some(ADMIN), json!({"name": ""}));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid-field"))
    );
    let answer = api.send("POST", "/api/employees", Some(ADMIN), b"{not json");
    assert_eq!(answer.status, 400);
    // An array is not an object whose fields come in order.
    for body in [&b"[\"Anna\"]"[..], b" [null, null]", b"null", b"\"Anna\""] {
        let answer = api.send("POST", "/api/employees", Some(ADMIN), body);
        assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(body));
        let answer = api.send(
            "POST",
            &format!("/api/dialogs/{SOME_ID}/claim"),
            Some(&token),
            body,
        );
        assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(body));
    }
    let answer = api.send(
        "POST",
        "/settings/integrations/vk-group/call-back",
        None,
        &vec![b' '; vk_core::MAX_BODY + 1],
    );
    assert_eq!(answer, Response::too_large());
    assert_eq!(
        api.code("GET", "/api/dialogs?limit=many", Some(&token)),
        (400, "invalid-query".into())
    );
    assert_eq!(
        api.code("GET", "/api/dialogs?status=closed", Some(&token)),
        (400, "invalid-query".into())
    );
    assert_eq!(
        api.store.scan("", None, u32::MAX).expect("a snapshot"),
        before
    );
}

#[test]
fn the_callback_route_answers_plain_text() {
    let api = Api::new();
    let (status, _) = api.call(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        json!({"confirmation": "5e1d9c0b"}),
    );
    assert_eq!(status, 200);
    let answer = api.send(
        "POST",
        "/settings/integrations/vk-group/call-back",
        None,
        br#"{"type": "confirmation", "group_id": 218765432}"#,
    );
    assert_eq!(
        (answer.status, answer.content_type, answer.body.as_slice()),
        (200, "text/plain; charset=utf-8", &b"5e1d9c0b"[..])
    );
}
