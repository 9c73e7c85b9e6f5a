//! The HTTP face: structured requests → `vk_api::handle`, on a store connected to the
//! community with two employees and a dialog (its lead holds one line of goods).
//!
//! An input is up to four steps. Each starts from one of the realistic requests of
//! [`TEMPLATES`] and applies arbitrary changes: a route of vk-api's table, the method (a
//! common one or any text), the path (segments of the table's paths, the seeded ids, or any
//! text), the query, the `authorization`, `cookie` and `origin` headers, any other header,
//! the body. Texts may name the seeded ids and tokens by placeholder (`{dialog}`, `{lead}`,
//! `{item}`, `{employee}`, `{colleague}`, `{admin}`, `{token}`), and what an earlier step
//! got: the session, the sign-in code, the counterparty and order of a conversion
//! (`{session}`, `{code}`, `{counterparty}`, `{order}`). A seed is `[1, n]` per step (`1`:
//! one more step; `n`: the template), steps after the first preceded by `0` (no changes).
//!
//! After each step: the status is one the API uses and never a 5xx (the store is healthy);
//! a refusal has the shape `{"error": {"code", "message"}}` and changed nothing; a `GET`
//! changed nothing; no answer shows a seeded secret, session or sign-in code that no request
//! of the input carried; and the store is consistent.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vk_api::routes::ROUTES;
use vk_core::CALLBACK_PATH;
use vk_fuzz::{
    ADMIN_TOKEN, Bench, COLLEAGUE, Call, EMPLOYEE, EMPLOYEE_TOKEN, HOST, SECRETS, Seeded, contains,
};

const MAX_STEPS: usize = 4;

/// Every status the API answers with; `503` (storage trouble) is not expected here.
const STATUSES: [u16; 10] = [200, 201, 304, 400, 401, 403, 404, 405, 409, 413];

/// Who a template request is from.
#[derive(Clone, Copy)]
enum Who {
    Nobody,
    Admin,
    Employee,
    /// The session cookie an earlier step got, from the same site.
    Session,
}

/// A realistic request: method, path, query, caller, body.
type Template = (&'static str, &'static str, &'static str, Who, &'static str);

const TEMPLATES: [Template; 34] = [
    ("GET", "/api/me", "", Who::Admin, ""),
    ("GET", "/api/dialogs", "status=all&limit=20", Who::Admin, ""),
    ("GET", "/api/dialogs", "status=mine", Who::Employee, ""),
    ("GET", "/api/dialogs/counts", "", Who::Employee, ""),
    ("GET", "/api/dialogs/{dialog}", "", Who::Employee, ""),
    (
        "GET",
        "/api/dialogs/{dialog}/messages",
        "limit=10",
        Who::Employee,
        "",
    ),
    ("GET", "/api/dialogs/{dialog}/history", "", Who::Admin, ""),
    (
        "POST",
        "/api/dialogs/{dialog}/messages",
        "",
        Who::Employee,
        r#"{"text":"Добрый день! Доставка в Казань — 350 ₽."}"#,
    ),
    (
        "POST",
        "/api/dialogs/{dialog}/invite",
        "",
        Who::Employee,
        r#"{"employees":["{colleague}"]}"#,
    ),
    (
        "POST",
        "/api/dialogs/{dialog}/delegate",
        "",
        Who::Employee,
        r#"{"to":"{colleague}"}"#,
    ),
    (
        "POST",
        "/api/dialogs/{dialog}/finish",
        "",
        Who::Employee,
        "",
    ),
    ("POST", "/api/dialogs/{dialog}/spam", "", Who::Employee, ""),
    (
        "POST",
        "/api/dialogs/{dialog}/restore",
        "",
        Who::Employee,
        "",
    ),
    ("POST", "/api/dialogs/{dialog}/read", "", Who::Employee, ""),
    ("GET", "/api/leads/{lead}", "", Who::Employee, ""),
    (
        "POST",
        "/api/leads/{lead}/items",
        "",
        Who::Employee,
        r#"{"name":"Чай улун","sku":"TEA-7","quantity":2,"price":"150.00","currency":"RUB"}"#,
    ),
    (
        "PATCH",
        "/api/leads/{lead}/items/{item}",
        "",
        Who::Employee,
        r#"{"quantity":"1.5"}"#,
    ),
    (
        "DELETE",
        "/api/leads/{lead}/items/{item}",
        "",
        Who::Employee,
        "",
    ),
    ("POST", "/api/leads/{lead}/convert", "", Who::Employee, ""),
    ("GET", "/api/leads", "q=anna&limit=5", Who::Admin, ""),
    ("GET", "/api/settings", "", Who::Admin, ""),
    (
        "PUT",
        "/api/settings",
        "",
        Who::Admin,
        r#"{"group_name":"Tea House","employees":["{employee}"]}"#,
    ),
    (
        "POST",
        "/api/employees",
        "",
        Who::Admin,
        r#"{"name":"Olga Petrova"}"#,
    ),
    (
        "POST",
        "/api/employees/{colleague}/sign-in-link",
        "",
        Who::Admin,
        "",
    ),
    (
        "POST",
        "/api/sessions",
        "",
        Who::Nobody,
        r#"{"admin_token":"{admin}"}"#,
    ),
    (
        "POST",
        "/api/sessions",
        "",
        Who::Nobody,
        r#"{"code":"{code}"}"#,
    ),
    ("GET", "/api/changes", "", Who::Session, ""),
    ("DELETE", "/api/sessions/current", "", Who::Session, ""),
    ("POST", "/api/outbox/flush", "", Who::Admin, ""),
    ("GET", "/api/channel", "", Who::Admin, ""),
    (
        "POST",
        CALLBACK_PATH,
        "",
        Who::Nobody,
        r#"{"type":"message_new","group_id":218765432,"event_id":"e-2","v":"5.199","secret":"Tz8-fuzz-secret-b7e41c0d","object":{"message":{"id":77,"date":1767261900,"peer_id":700100205,"from_id":700100205,"text":"Есть пуэр?"}}}"#,
    ),
    ("GET", "/", "", Who::Nobody, ""),
    (
        "GET",
        "/api/counterparties/{counterparty}",
        "",
        Who::Employee,
        "",
    ),
    ("GET", "/api/orders/{order}", "", Who::Admin, ""),
];

/// The literal segments of the route table's paths (`/api/dialogs/{id}/claim`: `api`,
/// `dialogs`, `claim`), each once.
static ROUTE_WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut words: Vec<&str> = ROUTES
        .iter()
        .flat_map(|route| route.path.split('/'))
        .filter(|word| !word.is_empty() && !word.starts_with('{'))
        .collect();
    words.sort_unstable();
    words.dedup();
    words
});

/// A route of the table as a request: its method, and its path with the placeholder of its
/// kind of record for `{id}`.
fn route(n: u8) -> (String, String) {
    let route = &ROUTES[usize::from(n) % ROUTES.len()];
    let id = match route.path.split('/').nth(2) {
        Some("dialogs") => "{dialog}",
        Some("leads") => "{lead}",
        Some("employees") => "{employee}",
        Some("counterparties") => "{counterparty}",
        _ => "{order}",
    };
    (route.method.to_owned(), route.path.replace("{id}", id))
}

#[derive(Arbitrary, Debug)]
struct Input {
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    template: u8,
    changes: Vec<Change>,
}

#[derive(Arbitrary, Debug)]
enum Change {
    /// The method and path of a route of the table.
    Route(u8),
    Method(Method),
    /// A path under `/api/`.
    Path(Vec<Segment>),
    /// The segment at this position replaced (past the end: appended).
    Segment(u8, Segment),
    /// Any path at all.
    RawPath(String),
    Query(Option<String>),
    Authorization(Auth),
    Cookie(Option<String>),
    Origin(Origin),
    Header(Header, String),
    Body(String),
    BodyBytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Segment {
    Word(u8),
    Dialog,
    Lead,
    Item,
    Employee,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Admin,
    Employee,
    /// `Bearer <text>`.
    Bearer(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Origin {
    None,
    SameSite,
    OtherSite,
    FetchSite(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    Host,
    IfNoneMatch,
    SecFetchSite,
    ForwardedProto,
    ContentType,
    Other(String),
}

/// What the steps of one input share: the seeded ids, and what earlier answers handed out.
struct Context {
    seeded: Seeded,
    session: Option<String>,
    code: Option<String>,
    /// What converting the lead made.
    counterparty: Option<String>,
    order: Option<String>,
}

impl Context {
    fn resolve(&self, text: &str) -> String {
        text.replace("{dialog}", &self.seeded.dialog.to_string())
            .replace("{lead}", &self.seeded.lead.to_string())
            .replace("{item}", &self.seeded.item.to_string())
            .replace("{employee}", EMPLOYEE)
            .replace("{colleague}", COLLEAGUE)
            .replace("{admin}", ADMIN_TOKEN)
            .replace("{token}", EMPLOYEE_TOKEN)
            .replace("{session}", self.session.as_deref().unwrap_or(""))
            .replace("{code}", self.code.as_deref().unwrap_or(""))
            .replace("{counterparty}", self.counterparty.as_deref().unwrap_or(""))
            .replace("{order}", self.order.as_deref().unwrap_or(""))
    }

    /// Secrets no answer may show unless its request carried them.
    fn secrets(&self) -> Vec<&str> {
        let mut all = SECRETS.to_vec();
        all.extend(self.session.as_deref());
        all.extend(self.code.as_deref());
        all
    }

    /// Keeps the session cookie, the sign-in code and the documents an answer hands out.
    fn take_from(&mut self, response: &vk_api::Response) {
        for (name, value) in &response.headers {
            if *name == "set-cookie"
                && let Some(token) = value
                    .strip_prefix("vk_session=")
                    .and_then(|rest| rest.split(';').next())
                    .filter(|token| !token.is_empty())
            {
                self.session = Some(token.to_owned());
            }
        }
        let body: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        if let Some((_, code)) = body["link"]
            .as_str()
            .and_then(|link| link.split_once('#'))
            .filter(|(_, code)| !code.is_empty())
        {
            self.code = Some(code.to_owned());
        }
        if let (Some(counterparty), Some(order)) =
            (body["counterparty_id"].as_str(), body["order_id"].as_str())
        {
            self.counterparty = Some(counterparty.to_owned());
            self.order = Some(order.to_owned());
        }
    }
}

fn set_header(call: &mut Call, name: &str, value: Option<String>) {
    call.headers.retain(|(key, _)| key != name);
    call.headers
        .extend(value.map(|value| (name.to_owned(), value)));
}

fn segment(segment: &Segment) -> String {
    match segment {
        Segment::Word(n) => ROUTE_WORDS[usize::from(*n) % ROUTE_WORDS.len()].to_owned(),
        Segment::Dialog => "{dialog}".to_owned(),
        Segment::Lead => "{lead}".to_owned(),
        Segment::Item => "{item}".to_owned(),
        Segment::Employee => "{employee}".to_owned(),
        Segment::Other(text) => text.clone(),
    }
}

fn build(step: &Step) -> Call {
    let (method, path, query, who, body) = TEMPLATES[usize::from(step.template) % TEMPLATES.len()];
    let mut call = Call {
        method: method.to_owned(),
        path: path.to_owned(),
        query: (!query.is_empty()).then(|| query.to_owned()),
        headers: vec![("host".to_owned(), HOST.to_owned())],
        body: body.as_bytes().to_vec(),
    };
    match who {
        Who::Nobody => {}
        Who::Admin => set_header(&mut call, "authorization", Some("Bearer {admin}".into())),
        Who::Employee => set_header(&mut call, "authorization", Some("Bearer {token}".into())),
        Who::Session => {
            set_header(&mut call, "cookie", Some("vk_session={session}".into()));
            set_header(&mut call, "origin", Some(format!("http://{HOST}")));
        }
    }
    for change in &step.changes {
        apply(&mut call, change);
    }
    call
}

fn apply(call: &mut Call, change: &Change) {
    match change {
        Change::Route(n) => (call.method, call.path) = route(*n),
        Change::Method(method) => {
            call.method = match method {
                Method::Get => "GET".to_owned(),
                Method::Post => "POST".to_owned(),
                Method::Put => "PUT".to_owned(),
                Method::Patch => "PATCH".to_owned(),
                Method::Delete => "DELETE".to_owned(),
                Method::Head => "HEAD".to_owned(),
                Method::Options => "OPTIONS".to_owned(),
                Method::Other(text) => text.clone(),
            }
        }
        Change::Path(segments) => {
            let segments: Vec<String> = segments.iter().map(segment).collect();
            call.path = format!("/api/{}", segments.join("/"));
        }
        Change::Segment(at, new) => {
            let mut parts: Vec<String> = call.path.split('/').map(str::to_owned).collect();
            let at = 1 + usize::from(*at) % parts.len();
            if at < parts.len() {
                parts[at] = segment(new);
            } else {
                parts.push(segment(new));
            }
            call.path = parts.join("/");
        }
        Change::RawPath(path) => call.path.clone_from(path),
        Change::Query(query) => call.query.clone_from(query),
        Change::Authorization(auth) => {
            let value = match auth {
                Auth::None => None,
                Auth::Admin => Some("Bearer {admin}".to_owned()),
                Auth::Employee => Some("Bearer {token}".to_owned()),
                Auth::Bearer(token) => Some(format!("Bearer {token}")),
                Auth::Raw(text) => Some(text.clone()),
            };
            set_header(call, "authorization", value);
        }
        Change::Cookie(cookie) => set_header(call, "cookie", cookie.clone()),
        Change::Origin(origin) => {
            set_header(call, "sec-fetch-site", None);
            match origin {
                Origin::None => set_header(call, "origin", None),
                Origin::SameSite => set_header(call, "origin", Some(format!("http://{HOST}"))),
                Origin::OtherSite => {
                    set_header(call, "origin", Some("https://evil.example".to_owned()))
                }
                Origin::FetchSite(site) => set_header(call, "sec-fetch-site", Some(site.clone())),
                Origin::Raw(text) => set_header(call, "origin", Some(text.clone())),
            }
        }
        Change::Header(name, value) => {
            let name = match name {
                Header::Host => "host",
                Header::IfNoneMatch => "if-none-match",
                Header::SecFetchSite => "sec-fetch-site",
                Header::ForwardedProto => "x-forwarded-proto",
                Header::ContentType => "content-type",
                Header::Other(name) => name,
            };
            call.headers.push((name.to_owned(), value.clone()));
        }
        Change::Body(text) => call.body = text.as_bytes().to_vec(),
        Change::BodyBytes(bytes) => call.body.clone_from(bytes),
    }
}

/// The placeholders of a request's texts resolved (a body that is not UTF-8 is kept as is).
fn resolve(context: &Context, call: Call) -> Call {
    Call {
        path: context.resolve(&call.path),
        query: call.query.map(|query| context.resolve(&query)),
        headers: call
            .headers
            .into_iter()
            .map(|(name, value)| (name, context.resolve(&value)))
            .collect(),
        body: match String::from_utf8(call.body) {
            Ok(text) => context.resolve(&text).into_bytes(),
            Err(bytes) => bytes.into_bytes(),
        },
        method: call.method,
    }
}

/// Everything of a request a secret could travel in.
fn carries(call: &Call, secret: &str) -> bool {
    call.path.contains(secret)
        || call.query.as_deref().is_some_and(|q| q.contains(secret))
        || call.headers.iter().any(|(_, value)| value.contains(secret))
        || contains(&call.body, secret)
}

fuzz_target!(|input: Input| {
    let (bench, seeded) = Bench::with_dialog();
    let mut context = Context {
        seeded,
        session: None,
        code: None,
        counterparty: None,
        order: None,
    };
    // Every request so far: what one stored (a name, a message) a later answer may show.
    let mut sent: Vec<Call> = Vec::new();
    for step in input.steps.iter().take(MAX_STEPS) {
        let call = resolve(&context, build(step));
        let before = bench.snapshot();
        let response = call.send(&bench);
        sent.push(call.clone());
        let changed = bench.snapshot() != before;
        let status = response.status;
        assert!(STATUSES.contains(&status), "status {status} for {call:?}");
        if status >= 400 {
            let body: Value = serde_json::from_slice(&response.body).expect("a refusal is JSON");
            let error = &body["error"];
            assert!(
                body.as_object().is_some_and(|o| o.len() == 1)
                    && error.as_object().is_some_and(|o| o.len() == 2)
                    && error["code"].is_string()
                    && error["message"].is_string(),
                "refusal {body} for {call:?}"
            );
            assert!(!changed, "refused with {body} but stored: {call:?}");
        }
        if matches!(call.method.as_str(), "GET" | "HEAD") {
            assert!(!changed, "a read changed the store: {call:?}");
        }
        for secret in context.secrets() {
            let shown = contains(&response.body, secret)
                || response.headers.iter().any(|(_, v)| v.contains(secret));
            assert!(
                !shown || sent.iter().any(|earlier| carries(earlier, secret)),
                "an answer shows a secret: {call:?}"
            );
        }
        context.take_from(&response);
        bench.check_consistent();
    }
});
