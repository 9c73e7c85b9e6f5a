//! Signing in to the workspace (issue 10), end to end on both shells: the admin with the
//! admin token, employees with a one-time link the admin issues, sessions in a cookie that
//! scripts cannot read and that never authorizes a cross-site write, «Выйти», a re-issued
//! link ending old sessions, a removed employee losing everything at once; names for
//! everyone; the workspace's files with their security headers.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

on_both_shells!(
    the_admin_signs_in_with_the_admin_token_and_out_again,
    an_employee_signs_in_once_with_a_link_the_admin_issues,
    a_cookie_never_authorizes_a_cross_site_write,
    an_employee_removed_mid_session_loses_everything_at_once,
    employees_see_each_others_names,
    the_admin_reads_every_dialog_and_document_but_acts_in_none,
    a_polling_tab_gets_304_until_something_changes,
    the_workspace_is_served_with_its_security_headers,
);

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }
}

/// A browser on the workspace's own pages: it keeps the session cookie and says, as browsers
/// do, that its requests come from the same site.
struct Browser<'h> {
    host: &'h Host,
    cookie: Option<String>,
    agent: ureq::Agent,
}

impl<'h> Browser<'h> {
    fn new(host: &'h Host) -> Browser<'h> {
        Browser {
            host,
            cookie: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.host.base));
        // A header given empty is left out (a browser without fetch metadata).
        let mut same_site = true;
        for (name, value) in extra {
            same_site &= !name.eq_ignore_ascii_case("sec-fetch-site");
            if !value.is_empty() {
                request = request.header(*name, *value);
            }
        }
        if same_site {
            request = request.header("sec-fetch-site", "same-origin");
        }
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("vk_session={cookie}"));
        }
        let outcome = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(body.to_string().into_bytes())
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        };
        let mut response = outcome.expect("the host answers");
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (_, set) in headers.iter().filter(|(n, _)| n == "set-cookie") {
            let value = set.split(';').next().unwrap_or("");
            if let Some(token) = value.strip_prefix("vk_session=") {
                self.cookie = Some(token.to_owned()).filter(|t| !t.is_empty());
            }
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        for (name, value) in &headers {
            assert_no_secret(name, value);
        }
        assert_no_secret(&format!("the answer to {method} {path}"), &body);
        Answer {
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None, &[])
    }

    fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body), &[])
    }

    /// Signs in with `body` (`admin_token` or `code`).
    fn sign_in(&mut self, body: Value) -> Answer {
        self.post("/api/sessions", body)
    }
}

/// A person's first message; the id of their new dialog.
fn first_dialog(world: &World) -> String {
    assert_eq!(
        world
            .host
            .callback(&message_new("first", 512_340_987, 1, "Здравствуйте!")),
        (200, "ok".to_owned())
    );
    world.dialog_of(512_340_987)["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// A browser of employee `n`, signed in with a link the admin issued.
fn signed_in(world: &World, n: usize) -> Browser<'_> {
    let mut browser = Browser::new(&world.host);
    let answer = browser.sign_in(json!({"code": sign_in_code(world, n)}));
    assert_eq!(answer.status, 201, "{}", answer.body);
    browser
}

/// The code of a sign-in link the admin issues for employee `n`.
fn sign_in_code(world: &World, n: usize) -> String {
    support::sign_in_code(&world.host, &world.staff[n].id)
}

fn the_admin_signs_in_with_the_admin_token_and_out_again(shell: Shell) {
    let world = World::on(shell, 1);
    let mut browser = Browser::new(&world.host);
    assert_eq!(browser.get("/api/me").status, 401, "not signed in yet");
    let wrong = browser.sign_in(json!({"admin_token": "not-the-admin-token"}));
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, Some("unauthorized".into()))
    );
    assert_eq!(browser.cookie, None);

    let signed_in = browser.sign_in(json!({"admin_token": ADMIN}));
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    assert_eq!(signed_in.json()["me"]["role"], "admin");
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    assert!(
        !cookie.contains(ADMIN),
        "the admin token is not the session"
    );
    let session = browser.cookie.clone().expect("the session");

    assert_eq!(browser.get("/api/me").json()["role"], "admin");
    let settings = browser.get("/api/settings");
    assert_eq!(settings.status, 200, "{}", settings.body);

    let out = browser.send("DELETE", "/api/sessions/current", None, &[]);
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    browser.cookie = Some(session);
    let after = browser.get("/api/me");
    assert_eq!(
        (after.status, after.code()),
        (401, Some("session-ended".into()))
    );
}

fn an_employee_signs_in_once_with_a_link_the_admin_issues(shell: Shell) {
    let world = World::on(shell, 1);
    let code = sign_in_code(&world, 0);
    let mut browser = Browser::new(&world.host);
    let page = browser.get("/sign-in");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );

    let signed_in = browser.sign_in(json!({"code": code}));
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    assert_eq!(
        signed_in.json()["me"],
        json!({"role": "employee", "id": world.staff[0].id, "name": "Operator 0"})
    );
    let lines = browser.get("/api/dialogs?status=open");
    assert_eq!(lines.status, 200, "{}", lines.body);

    // The link is spent.
    let mut other = Browser::new(&world.host);
    let again = other.sign_in(json!({"code": code}));
    assert_eq!(
        (again.status, again.code()),
        (401, Some("sign-in-link-spent".into()))
    );
    assert_eq!(other.cookie, None);

    // A new link ends the sessions of the old one, and works itself.
    let fresh = sign_in_code(&world, 0);
    let ended = browser.get("/api/dialogs?status=open");
    assert_eq!(
        (ended.status, ended.code()),
        (401, Some("session-ended".into()))
    );
    assert_eq!(other.sign_in(json!({"code": fresh})).status, 201);
    assert_eq!(other.get("/api/me").json()["name"], "Operator 0");
}

fn a_cookie_never_authorizes_a_cross_site_write(shell: Shell) {
    let world = World::on(shell, 1);
    let dialog = first_dialog(&world);
    let mut browser = signed_in(&world, 0);
    let before = world.snapshot();
    let claim = format!("/api/dialogs/{dialog}/claim");
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        let refused = browser.send("POST", &claim, None, &headers);
        assert_eq!(
            (refused.status, refused.code()),
            (403, Some("cross-site".into())),
            "{headers:?}"
        );
    }
    // A browser without fetch metadata: its Origin tells.
    let origin_only = [("sec-fetch-site", ""), ("origin", "https://evil.example")];
    assert_eq!(browser.send("POST", &claim, None, &origin_only).status, 403);
    assert_eq!(world.snapshot(), before, "nothing was claimed");
    // The same click from the workspace itself goes through.
    assert_eq!(browser.send("POST", &claim, None, &[]).status, 200);
}

fn an_employee_removed_mid_session_loses_everything_at_once(shell: Shell) {
    let world = World::on(shell, 2);
    let dialog = first_dialog(&world);
    let mut browser = signed_in(&world, 0);
    assert_eq!(
        browser
            .send("POST", &format!("/api/dialogs/{dialog}/claim"), None, &[])
            .status,
        200
    );
    let id = world.staff[0].id.clone();
    let (code, body) =
        world
            .host
            .call("DELETE", &format!("/api/employees/{id}"), Some(ADMIN), None);
    assert_eq!(code, 200, "{body}");

    let ended = browser.get("/api/dialogs?status=open");
    assert_eq!(
        (ended.status, ended.code()),
        (401, Some("session-ended".into()))
    );
    let (code, _) = world.host.call("GET", "/api/dialogs", world.token(0), None);
    assert_eq!(code, 401, "the bearer token is gone too");
    let (_, settings) = world.host.call("GET", "/api/settings", Some(ADMIN), None);
    assert_eq!(settings["employees"], json!([world.staff[1].id]));
    let (_, employees) = world.host.call("GET", "/api/employees", Some(ADMIN), None);
    assert!(
        !employees.to_string().contains(&id),
        "not listed any more: {employees}"
    );
    // Their dialog went back to the queue.
    let (_, seen) = world.host.call(
        "GET",
        &format!("/api/dialogs/{dialog}"),
        world.token(1),
        None,
    );
    assert_eq!(seen["responsible"], Value::Null, "{seen}");
    let (code, again) =
        world
            .host
            .call("DELETE", &format!("/api/employees/{id}"), Some(ADMIN), None);
    assert_eq!(
        (code, again["error"]["code"].as_str()),
        (404, Some("employee-not-found"))
    );
}

fn the_admin_reads_every_dialog_and_document_but_acts_in_none(shell: Shell) {
    let world = World::on(shell, 1);
    assert_eq!(
        world
            .host
            .callback(&message_new("first", 512_340_987, 1, "Здравствуйте!")),
        (200, "ok".to_owned())
    );
    let dialog = world.dialog_of(512_340_987);
    let id = dialog["id"].as_str().expect("an id");
    let mut admin = Browser::new(&world.host);
    assert_eq!(admin.sign_in(json!({"admin_token": ADMIN})).status, 201);
    let all = admin.get("/api/dialogs?status=all");
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.json()["dialogs"][0]["id"], id);
    assert_eq!(all.json()["dialogs"][0]["unread"], 0);
    assert_eq!(
        admin.get("/api/dialogs?status=mine").json()["dialogs"],
        json!([])
    );
    assert_eq!(
        admin.get(&format!("/api/dialogs/{id}/messages")).status,
        200
    );
    assert_eq!(admin.get(&format!("/api/dialogs/{id}/history")).status, 200);
    let lead = admin.get(&format!(
        "/api/leads/{}",
        dialog["lead_id"].as_str().expect("a lead")
    ));
    assert_eq!(lead.status, 200, "{}", lead.body);
    assert_eq!(
        admin.get("/api/leads").json()["leads"][0]["id"],
        dialog["lead_id"]
    );
    let claim = admin.post(&format!("/api/dialogs/{id}/claim"), json!({}));
    assert_eq!(
        (claim.status, claim.code()),
        (403, Some("not-an-employee".into()))
    );
}

fn a_polling_tab_gets_304_until_something_changes(shell: Shell) {
    let world = World::on(shell, 1);
    let mut tab = signed_in(&world, 0);
    let first = tab.get("/api/changes");
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = first.header("etag").expect("an ETag").to_owned();
    for _ in 0..3 {
        let idle = tab.send("GET", "/api/changes", None, &[("if-none-match", &etag)]);
        assert_eq!((idle.status, idle.body.as_str()), (304, ""));
    }
    assert_eq!(
        world
            .host
            .callback(&message_new("first", 512_340_987, 1, "Есть торты?")),
        (200, "ok".to_owned())
    );
    let changed = tab.send("GET", "/api/changes", None, &[("if-none-match", &etag)]);
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

fn employees_see_each_others_names(shell: Shell) {
    let world = World::on(shell, 2);
    let (code, body) = world
        .host
        .call("GET", "/api/employees", world.token(1), None);
    assert_eq!(code, 200, "{body}");
    let mut names: Vec<(String, String)> = body["employees"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            assert_eq!(
                e.as_object().map(|o| o.len()),
                Some(2),
                "id and name only: {e}"
            );
            (
                e["id"].as_str().expect("an id").to_owned(),
                e["name"].as_str().expect("a name").to_owned(),
            )
        })
        .collect();
    names.sort();
    let mut expected: Vec<(String, String)> = world
        .staff
        .iter()
        .enumerate()
        .map(|(n, e)| (e.id.clone(), format!("Operator {n}")))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(world.host.call("GET", "/api/employees", None, None).0, 401);
}

fn the_workspace_is_served_with_its_security_headers(shell: Shell) {
    let world = World::on(shell, 0);
    let mut browser = Browser::new(&world.host);
    for (path, kind) in [
        ("/", "text/html"),
        ("/sign-in", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/icon.svg", "image/svg+xml"),
        ("/manifest.webmanifest", "application/manifest+json"),
    ] {
        let page = browser.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.header("content-type")
                .is_some_and(|t| t.starts_with(kind)),
            "{path}: {:?}",
            page.header("content-type")
        );
        let policy = page.header("content-security-policy").expect("a CSP");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        let etag = page.header("etag").expect("an ETag").to_owned();
        let again = browser.send("GET", path, None, &[("if-none-match", &etag)]);
        assert_eq!((again.status, again.body.as_str()), (304, ""), "{path}");
    }
    assert_eq!(browser.get("/elsewhere").status, 404);
}

#[test]
fn links_and_cookies_follow_the_public_url() {
    let world = World::with_flags(1, &["--public-url", "https://crm.example.com/"]);
    let (code, body) = world.host.call(
        "POST",
        &format!("/api/employees/{}/sign-in-link", world.staff[0].id),
        Some(ADMIN),
        None,
    );
    assert_eq!(code, 201, "{body}");
    let link = body["link"].as_str().expect("a link");
    assert!(
        link.starts_with("https://crm.example.com/sign-in#"),
        "{link}"
    );
    let mut browser = Browser::new(&world.host);
    let code = link.split_once('#').expect("a code").1;
    let signed_in = browser.sign_in(json!({"code": code}));
    assert!(
        signed_in
            .header("set-cookie")
            .is_some_and(|c| c.contains("; Secure")),
        "{:?}",
        signed_in.header("set-cookie")
    );
    assert!(
        world
            .host
            .logs()
            .contains("https://crm.example.com/settings/integrations/vk-group/call-back")
    );
}
