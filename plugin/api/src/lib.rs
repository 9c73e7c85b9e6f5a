//! `vk-api`: the product's HTTP face over vk-core, written once for every shell that serves
//! it. VK's callback route and the operator API of SPEC §4 are routed here, callers are
//! authenticated here (the admin token and the employee directory of
//! [`vk_core::directory`]), bodies and queries are parsed here and every answer is rendered
//! here ([`json`]). The shells only move bytes: `vk-plugin` exports [`handle`] as the WIT
//! `api` interface (which `vk-host serve` mounts), and `vk-spin` calls it from its
//! `wasi:http` handler. So both answer every request alike, and no rule of the domain lives
//! here either: each route is one call of [`Core`].

mod auth;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod json;
mod lists;
mod web;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vk_core::directory::{Subject, digest};
use vk_core::intake::CallbackReply;
use vk_core::lead::NewItem;
use vk_core::settings::SettingsUpdate;
use vk_core::{CALLBACK_PATH, Core, EmployeeId, Error, MAX_BODY, ids};

/// A request as a shell received it; the body is whole (a shell stops reading at
/// [`MAX_BODY`] and answers [`Response::too_large`]).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The headers as received (names in any case).
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The first header named `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What the shell was configured with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config<'a> {
    /// The token that authorizes admin calls (`None`, or blank: no admin calls at all;
    /// surrounding whitespace, such as the newline a secrets file ends with, is not part of
    /// it).
    pub admin_token: Option<&'a str>,
    /// Where people and VK reach the product, e.g. `https://crm.example.com` (`None`: the
    /// request's `host`).
    pub public_url: Option<&'a str>,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers besides the content type.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: vec![
                ("cache-control", "no-store".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    fn text(text: String) -> Response {
        Response {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: text.into_bytes(),
        }
    }

    /// The same answer with one more header.
    fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// A refusal in the API's one shape, `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &vk_core::error_body(code, message))
    }

    /// The answer to a body over [`MAX_BODY`] bytes, on every route.
    pub fn too_large() -> Response {
        Response::error(
            413,
            "body-too-large",
            &format!("the body is larger than {MAX_BODY} bytes"),
        )
    }

    /// The answer to a body the shell could not read.
    pub fn unreadable() -> Response {
        Response::error(400, "malformed-body", "the body cannot be read")
    }

    /// A refusal of the domain, with the status of its kind.
    pub fn from_error(error: &Error) -> Response {
        Response::error(error.kind().http_status(), error.code(), &error.to_string())
    }

    /// The answer to a path [`serves`] does not take.
    pub fn no_route() -> Response {
        no_route().into_response()
    }
}

/// Whether a path can name a route at all: VK's callback route, one under `/api/`, or a
/// page of the workspace. A shell may answer [`Response::no_route`] to anything else without
/// running the component.
pub fn serves(path: &str) -> bool {
    path == CALLBACK_PATH || path.starts_with("/api/") || web::serves(path)
}

/// Why a request was refused: by a rule of the domain, or by the HTTP layer itself.
enum Refusal {
    Domain(Error),
    Http {
        status: u16,
        code: &'static str,
        message: String,
    },
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        Refusal::Domain(error)
    }
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::Http {
            status,
            code,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        match self {
            Refusal::Domain(error) => Response::from_error(&error),
            Refusal::Http {
                status,
                code,
                message,
            } => Response::error(status, code, &message),
        }
    }
}

type Answer = Result<Response, Refusal>;

/// Serves one request with the shell's `config`. `HEAD` is answered as `GET` (the shell's
/// server drops the body).
pub fn handle(core: &Core<'_>, config: &Config<'_>, request: &Request<'_>) -> Response {
    if request.body.len() > MAX_BODY {
        return Response::too_large();
    }
    #[cfg(feature = "fault-injection")]
    faults::inject(request.body);
    let head_as_get;
    let request = if request.method == "HEAD" {
        head_as_get = Request {
            method: "GET",
            ..*request
        };
        &head_as_get
    } else {
        request
    };
    let call = Call {
        core,
        admin_token: config.admin_token.map(str::trim).filter(|t| !t.is_empty()),
        public_url: config.public_url,
        request,
    };
    call.route().unwrap_or_else(Refusal::into_response)
}

/// One request bound to the domain.
struct Call<'c, 'a> {
    core: &'c Core<'a>,
    admin_token: Option<&'c str>,
    public_url: Option<&'c str>,
    request: &'c Request<'c>,
}

/// The commands of `POST /api/dialogs/{id}/{command}`.
const COMMANDS: [&str; 7] = [
    "claim", "invite", "leave", "delegate", "spam", "finish", "restore",
];

impl Call<'_, '_> {
    fn route(&self) -> Answer {
        let method = self.request.method;
        if self.request.path == CALLBACK_PATH {
            return match method {
                "POST" => self.callback(),
                _ => Err(not_allowed()),
            };
        }
        let Some(rest) = self.request.path.strip_prefix("/api/") else {
            return match method {
                "GET" => web::page(self.request),
                _ if web::serves(self.request.path) => Err(not_allowed()),
                _ => Err(no_route()),
            };
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(no_route());
        }
        match (segments.as_slice(), method) {
            (["sessions"], "POST") => self.sign_in(),
            (["sessions", "current"], "DELETE") => self.sign_out(),
            (["me"], "GET") => self.me(),
            (["employees"], "POST") => self.create_employee(),
            (["employees"], "GET") => self.list_employees(),
            (["employees", id], "DELETE") => self.remove_employee(id),
            (["employees", id, "sign-in-link"], "POST") => self.sign_in_link(id),
            (["settings"], "GET") => self.get_settings(),
            (["settings"], "PUT") => self.put_settings(),
            (["settings", "group-id"], "DELETE") => self.reset_group_id(),
            (["outbox", "flush"], "POST") => self.flush(),
            (["dialogs"], "GET") => self.list_dialogs(),
            (["dialogs", "counts"], "GET") => self.dialog_counts(),
            (["dialogs", id], "GET") => self.get_dialog(id),
            (["dialogs", id, "messages"], "GET") => self.list_messages(id),
            (["dialogs", id, "messages"], "POST") => self.send_message(id),
            (["dialogs", id, "history"], "GET") => self.history(id),
            (["dialogs", id, command], "POST") if COMMANDS.contains(command) => {
                self.dialog_command(id, command)
            }
            (["dialogs", id, "read"], "POST") => self.mark_read(id),
            (["dialogs", _, "read"], _) => Err(not_allowed()),
            (["dialogs", _, "messages" | "history"], _) => Err(not_allowed()),
            (["dialogs", _, command], _) if COMMANDS.contains(command) => Err(not_allowed()),
            (["leads", id], "GET") => self.get_lead(id),
            (["leads", id, "items"], "POST") => self.add_item(id),
            (["leads", id, "items", item], "PATCH") => self.set_quantity(id, item),
            (["leads", id, "items", item], "DELETE") => self.remove_item(id, item),
            (["leads", id, "convert"], "POST") => self.convert(id),
            (["leads", id, "restore-dialog"], "POST") => self.restore_from_lead(id),
            (["counterparties", id], "GET") => self.get_counterparty(id),
            (["orders", id], "GET") => self.get_order(id),
            (["leads"], "GET") => self.list_leads(),
            (["counterparties"], "GET") => self.list_counterparties(),
            (["orders"], "GET") => self.list_orders(),
            (["channel"], "GET") => self.channel_state(),
            (["changes"], "GET") => self.changes(),
            (["leads" | "counterparties" | "orders" | "channel" | "changes"], _) => {
                Err(not_allowed())
            }
            (
                ["employees" | "settings" | "dialogs" | "sessions" | "me"]
                | ["sessions", "current"]
                | ["employees", _]
                | ["employees", _, "sign-in-link"]
                | ["settings", "group-id"]
                | ["outbox", "flush"]
                | ["dialogs" | "leads" | "counterparties" | "orders", _]
                | ["leads", _, "items" | "convert" | "restore-dialog"]
                | ["leads", _, "items", _],
                _,
            ) => Err(not_allowed()),
            _ => Err(no_route()),
        }
    }

    fn callback(&self) -> Answer {
        Ok(match self.core.handle_callback(self.request.body)? {
            CallbackReply::Confirmation(text) => Response::text(text),
            CallbackReply::Ok => Response::text("ok".to_owned()),
        })
    }

    /// Who is calling: a bearer token (scripts), or a session cookie (the workspace in a
    /// browser), which never authorizes a cross-site write.
    fn caller(&self) -> Result<Subject, Refusal> {
        if let Some(token) = auth::bearer(self.request) {
            if self.is_admin(token) {
                return Ok(Subject::Admin);
            }
            let employee = self.core.authenticate(token)?.ok_or_else(unauthorized)?;
            return Ok(Subject::Employee(employee));
        }
        let token = auth::session_cookie(self.request).ok_or_else(unauthorized)?;
        let admin = self.admin_token.map(digest);
        let subject = self.core.session(token, admin.as_deref())?.ok_or_else(|| {
            Refusal::new(401, "session-ended", "the session has ended: sign in again")
        })?;
        if !matches!(self.request.method, "GET" | "HEAD") && auth::is_cross_site(self.request) {
            return Err(Refusal::new(
                403,
                "cross-site",
                "a request from another site cannot act with this session",
            ));
        }
        Ok(subject)
    }

    /// Whether `token` is the admin token, compared by digest so that the time taken says
    /// nothing about how much of it matched.
    fn is_admin(&self, token: &str) -> bool {
        self.admin_token
            .is_some_and(|admin| digest(admin) == digest(token))
    }

    /// The employee calling.
    fn employee(&self) -> Result<EmployeeId, Refusal> {
        match self.caller()? {
            Subject::Employee(employee) => Ok(employee),
            Subject::Admin => Err(Refusal::new(
                403,
                "not-an-employee",
                "this needs an employee's token, not the admin token",
            )),
        }
    }

    fn admin(&self) -> Result<(), Refusal> {
        match self.caller()? {
            Subject::Admin => Ok(()),
            Subject::Employee(_) => Err(Refusal::new(
                403,
                "admin-only",
                "only the admin may do this",
            )),
        }
    }

    /// The JSON body, parsed (its nesting bounded before anything is built).
    fn body<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        vk_core::vk::parse_bounded(self.request.body).map_err(malformed)
    }

    /// A query parameter (the last one given wins).
    fn query(&self, name: &str) -> Option<String> {
        let query = self.request.query?;
        form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .last()
    }

    /// `after` and `limit` of a list.
    fn page(&self) -> Result<(Option<String>, u32), Refusal> {
        let limit = match self.query("limit") {
            None => PAGE,
            Some(text) => text.parse().map_err(|_| {
                Refusal::new(
                    400,
                    "invalid-query",
                    format!("`limit` must be a whole number, not {text:?}"),
                )
            })?,
        };
        Ok((self.query("after"), limit))
    }

    /// `POST /api/sessions`: signs a person in to the workspace with the admin token or an
    /// employee's one-time sign-in code; the session goes in a cookie scripts cannot read.
    fn sign_in(&self) -> Answer {
        let body: SignInBody = self.body()?;
        if auth::is_cross_site(self.request) {
            return Err(Refusal::new(
                403,
                "cross-site",
                "signing in from another site is not allowed",
            ));
        }
        let (subject, token) = match (body.admin_token, body.code) {
            (Some(token), None) => {
                if !self.is_admin(token.trim()) {
                    return Err(unauthorized());
                }
                let admin = digest(token.trim());
                (Subject::Admin, self.core.start_admin_session(&admin)?)
            }
            (None, Some(code)) => {
                let (employee, token) = self.core.redeem_sign_in(code.trim())?.ok_or_else(|| {
                    Refusal::new(
                        401,
                        "sign-in-link-spent",
                        "this sign-in link was used already, replaced or has expired: ask the admin for a new one",
                    )
                })?;
                (Subject::Employee(employee), token)
            }
            _ => {
                return Err(Refusal::new(
                    400,
                    "invalid-field",
                    "give either `admin_token` or `code`",
                ));
            }
        };
        let cookie = auth::start_cookie(
            &token,
            vk_core::directory::SESSION_DAYS * 24 * 3600,
            self.secure(),
        );
        Ok(Response::json(201, &json!({"me": self.me_of(subject)?}))
            .with_header("set-cookie", cookie))
    }

    /// `DELETE /api/sessions/current` («Выйти»).
    fn sign_out(&self) -> Answer {
        self.caller()?;
        if let Some(token) = auth::session_cookie(self.request) {
            self.core.end_session(token)?;
        }
        Ok(Response::json(200, &json!({}))
            .with_header("set-cookie", auth::end_cookie(self.secure())))
    }

    /// Whether people reach the product over https (the session cookie is `Secure` then).
    fn secure(&self) -> bool {
        auth::base_url(self.request, self.public_url).starts_with("https://")
    }

    /// `GET /api/me`.
    fn me(&self) -> Answer {
        let subject = self.caller()?;
        Ok(Response::json(200, &self.me_of(subject)?))
    }

    fn me_of(&self, subject: Subject) -> Result<Value, Refusal> {
        Ok(match subject {
            Subject::Admin => json!({"role": "admin", "id": null, "name": "Администратор"}),
            Subject::Employee(id) => {
                let employee = self.core.employee(id)?;
                json!({"role": "employee", "id": id.to_string(), "name": employee.name})
            }
        })
    }

    /// `POST /api/employees/{id}/sign-in-link`: a one-time link for the employee to sign in;
    /// their sessions end and an earlier link is spent.
    fn sign_in_link(&self, id: &str) -> Answer {
        self.admin()?;
        let (code, expires_at) = self.core.issue_sign_in(ids::employee(id)?)?;
        let link = format!(
            "{}/sign-in#{code}",
            auth::base_url(self.request, self.public_url)
        );
        Ok(Response::json(
            201,
            &json!({"link": link, "expires_at": vk_core::timestamp(expires_at)}),
        ))
    }

    /// `DELETE /api/employees/{id}`.
    fn remove_employee(&self, id: &str) -> Answer {
        self.admin()?;
        let id = ids::employee(id)?;
        self.core.remove_employee(id)?;
        Ok(Response::json(
            200,
            &json!({"id": id.to_string(), "removed": true}),
        ))
    }

    fn create_employee(&self) -> Answer {
        self.admin()?;
        let new: NewEmployee = self.body()?;
        let (employee, token) = self.core.create_employee(&new.name)?;
        let mut body = json::employee(&employee);
        body["token"] = json!(token);
        Ok(Response::json(201, &body))
    }

    /// Every employee's id and name: the admin's list, and the names employees see in
    /// «Управление» and in a dialog's history.
    fn list_employees(&self) -> Answer {
        self.caller()?;
        let all: Vec<Value> = self.core.employees()?.iter().map(json::employee).collect();
        Ok(Response::json(200, &json!({"employees": all})))
    }

    fn get_settings(&self) -> Answer {
        self.admin()?;
        self.settings_answer(&self.core.settings()?)
    }

    /// `PUT /api/settings`: fields left out keep their value; `group_id` is read-only. A key
    /// given twice is refused, as in every body.
    fn put_settings(&self) -> Answer {
        self.admin()?;
        let body: SettingsBody = self.body()?;
        if body.group_id {
            return Err(Refusal::new(
                400,
                "read-only-field",
                "`group_id` is recorded from VK's confirmation; reset it with DELETE /api/settings/group-id",
            ));
        }
        let employees = body
            .employees
            .map(|list| {
                list.iter()
                    .map(|text| self.known_employee(text))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let view = self.core.put_settings(SettingsUpdate {
            access_token: body.access_token,
            secret: body.secret,
            confirmation: body.confirmation,
            group_name: body.group_name,
            api_version: body.api_version,
            employees,
        })?;
        self.settings_answer(&view)
    }

    /// The settings as every settings route answers them, with the full callback address to
    /// paste into VK.
    fn settings_answer(&self, view: &vk_core::settings::SettingsView) -> Answer {
        let mut body = json::settings(view);
        body["callback_url"] = json!(format!(
            "{}{CALLBACK_PATH}",
            auth::base_url(self.request, self.public_url)
        ));
        Ok(Response::json(200, &body))
    }

    /// An employee id the directory knows.
    fn known_employee(&self, text: &str) -> Result<EmployeeId, Refusal> {
        let unknown = || {
            Refusal::new(
                400,
                "unknown-employee",
                format!("no employee has the id {text:?}"),
            )
        };
        let id: EmployeeId = text.parse().map_err(|_| unknown())?;
        if self.core.employee_exists(id)? {
            Ok(id)
        } else {
            Err(unknown())
        }
    }

    fn reset_group_id(&self) -> Answer {
        self.admin()?;
        self.settings_answer(&self.core.reset_group_id()?)
    }

    fn flush(&self) -> Answer {
        self.admin()?;
        Ok(Response::json(
            200,
            &json::flush_report(&self.core.flush()?),
        ))
    }

    fn get_dialog(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let dialog = self.core.dialog(reader, ids::dialog(id)?)?;
        Ok(Response::json(
            200,
            &json::dialog(&dialog, reader.employee()),
        ))
    }

    fn list_messages(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (after, limit) = self.page()?;
        let page = self
            .core
            .messages(reader, ids::dialog(id)?, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::messages(&page)))
    }

    fn send_message(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let new: NewMessage = self.body()?;
        let message = self.core.send(actor, ids::dialog(id)?, &new.text)?;
        Ok(Response::json(201, &json::message(&message)))
    }

    fn history(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (after, limit) = self.page()?;
        let (page, operators) =
            self.core
                .history(reader, ids::dialog(id)?, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::history(&page, &operators)))
    }

    /// `claim`, `invite`, `leave`, `delegate`, `spam`, `finish`, `restore`; the body is
    /// optional except for `invite` and `delegate`.
    fn dialog_command(&self, id: &str, command: &str) -> Answer {
        let actor = self.employee()?;
        let body: CommandBody = if self.request.body.iter().all(u8::is_ascii_whitespace) {
            CommandBody::default()
        } else {
            self.body()?
        };
        // The dialog id is parsed after a command's own fields: a missing field is `400`
        // whatever the id.
        let dialog = || ids::dialog(id);
        let core = self.core;
        let dialog = match command {
            "claim" => core.claim(actor, dialog()?)?,
            "invite" => {
                let invited = body
                    .employees
                    .ok_or_else(|| required("employees"))?
                    .iter()
                    .map(|e| ids::employee(e))
                    .collect::<Result<Vec<_>, _>>()?;
                core.invite(actor, dialog()?, &invited)?
            }
            "leave" => core.leave(actor, dialog()?)?,
            "delegate" => {
                let to = body.to.ok_or_else(|| required("to"))?;
                core.delegate(actor, dialog()?, ids::employee(&to)?)?
            }
            "spam" => core.close_as_spam(actor, dialog()?)?,
            "finish" => core.finish(actor, dialog()?)?,
            _ => core.restore(actor, dialog()?)?,
        };
        Ok(Response::json(200, &json::dialog(&dialog, Some(actor))))
    }

    fn get_lead(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (lead, communication) = self.core.lead(reader, ids::lead(id)?)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    fn add_item(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let item: ItemBody = self.body()?;
        let new = NewItem {
            name: item.name,
            sku: item.sku,
            quantity: decimal(&item.quantity, "quantity")?,
            price: decimal(&item.price, "price")?,
            currency: item.currency,
        };
        let (lead, communication) = self.core.add_item(actor, ids::lead(id)?, new)?;
        Ok(Response::json(
            201,
            &json::lead_with_new_item(&lead, &communication),
        ))
    }

    fn set_quantity(&self, id: &str, item: &str) -> Answer {
        let actor = self.employee()?;
        let change: QuantityBody = self.body()?;
        let quantity = decimal(&change.quantity, "quantity")?;
        let (lead, communication) =
            self.core
                .set_quantity(actor, ids::lead(id)?, ids::item(item)?, &quantity)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    fn remove_item(&self, id: &str, item: &str) -> Answer {
        let actor = self.employee()?;
        let (lead, communication) =
            self.core
                .remove_item(actor, ids::lead(id)?, ids::item(item)?)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    fn convert(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (counterparty_id, order_id) = self.core.convert(actor, ids::lead(id)?)?;
        Ok(Response::json(
            200,
            &json!({"counterparty_id": counterparty_id.to_string(), "order_id": order_id.to_string()}),
        ))
    }

    fn restore_from_lead(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let dialog = self.core.restore_from_lead(actor, ids::lead(id)?)?;
        Ok(Response::json(200, &json::dialog(&dialog, Some(actor))))
    }

    fn get_counterparty(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (counterparty, communication) =
            self.core.counterparty(reader, ids::counterparty(id)?)?;
        Ok(Response::json(
            200,
            &json::counterparty(&counterparty, &communication),
        ))
    }

    fn get_order(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (order, communication) = self.core.order(reader, ids::order(id)?)?;
        Ok(Response::json(200, &json::order(&order, &communication)))
    }
}

/// The default page size of every list.
const PAGE: u32 = 50;

fn no_route() -> Refusal {
    Refusal::new(404, "no-such-route", "no such route")
}

fn not_allowed() -> Refusal {
    Refusal::new(
        405,
        "method-not-allowed",
        "this route does not take that method",
    )
}

fn unauthorized() -> Refusal {
    Refusal::new(
        401,
        "unauthorized",
        "a valid `Authorization: Bearer <token>` header is required",
    )
}

fn malformed(why: String) -> Refusal {
    Refusal::new(
        400,
        "malformed-body",
        format!("the body is not valid: {why}"),
    )
}

fn required(field: &str) -> Refusal {
    Refusal::new(400, "invalid-field", format!("`{field}` is required"))
}

/// A decimal as JSON gives it: a number (`150`, `1.5`) or a string (`"150.00"`), taken as the
/// exact text sent (a number never passes through a float), for vk-core to check.
fn decimal(value: &RawValue, field: &str) -> Result<String, Refusal> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_err(|e| malformed(e.to_string())),
        Some(b'-' | b'0'..=b'9') => Ok(text.to_owned()),
        _ => Err(Refusal::new(
            400,
            "invalid-field",
            format!("`{field}` must be a number or a decimal string"),
        )),
    }
}

/// Whether a field is in the body at all (also as `null`).
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(field).map(|_| true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    admin_token: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEmployee {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    access_token: Option<String>,
    secret: Option<String>,
    confirmation: Option<String>,
    group_name: Option<String>,
    api_version: Option<String>,
    employees: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    group_id: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    employees: Option<Vec<String>>,
    to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    name: String,
    sku: Option<String>,
    quantity: Box<RawValue>,
    price: Box<RawValue>,
    currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityBody {
    quantity: Box<RawValue>,
}
