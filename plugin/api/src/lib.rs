//! `vk-api`: the product's HTTP face over vk-core, written once for every shell that serves
//! it. VK's callback route and the operator API of SPEC §4 are routed here, callers are
//! authenticated here (the admin token and the employee directory of
//! [`vk_core::directory`]), bodies and queries are parsed here and every answer is rendered
//! here ([`json`]). The shells only move bytes: `vk-plugin` exports [`handle`] as the WIT
//! `api` interface (which `vk-host serve` mounts), and `vk-spin` calls it from its
//! `wasi:http` handler. So both answer every request alike, and no rule of the domain lives
//! here either: each route is one call of [`Core`].

#[cfg(feature = "fault-injection")]
pub mod faults;
mod json;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use vk_core::dialog::DialogStatus;
use vk_core::directory::digest;
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
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    fn text(text: String) -> Response {
        Response {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: text.into_bytes(),
        }
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

/// Whether a path can name a route at all: VK's callback route or one under `/api/`. A
/// shell may answer [`Response::no_route`] to anything else without running the component.
pub fn serves(path: &str) -> bool {
    path == CALLBACK_PATH || path.starts_with("/api/")
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

/// Serves one request. `admin_token` is the token that authorizes admin calls, as the shell
/// was configured (`None`, or blank: no admin calls at all; surrounding whitespace, such as
/// the newline a secrets file ends with, is not part of it). `HEAD` is answered as `GET`
/// (the shell's server drops the body).
pub fn handle(core: &Core<'_>, admin_token: Option<&str>, request: &Request<'_>) -> Response {
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
        admin_token: admin_token.map(str::trim).filter(|t| !t.is_empty()),
        request,
    };
    call.route().unwrap_or_else(Refusal::into_response)
}

/// One request bound to the domain.
struct Call<'c, 'a> {
    core: &'c Core<'a>,
    admin_token: Option<&'c str>,
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
            return Err(no_route());
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(no_route());
        }
        match (segments.as_slice(), method) {
            (["employees"], "POST") => self.create_employee(),
            (["employees"], "GET") => self.list_employees(),
            (["settings"], "GET") => self.get_settings(),
            (["settings"], "PUT") => self.put_settings(),
            (["settings", "group-id"], "DELETE") => self.reset_group_id(),
            (["outbox", "flush"], "POST") => self.flush(),
            (["dialogs"], "GET") => self.list_dialogs(),
            (["dialogs", id], "GET") => self.get_dialog(id),
            (["dialogs", id, "messages"], "GET") => self.list_messages(id),
            (["dialogs", id, "messages"], "POST") => self.send_message(id),
            (["dialogs", id, "history"], "GET") => self.history(id),
            (["dialogs", id, command], "POST") if COMMANDS.contains(command) => {
                self.dialog_command(id, command)
            }
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
            (
                ["employees" | "settings" | "dialogs"]
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

    /// The bearer token of the request (the scheme's name in any case, RFC 7235).
    fn bearer(&self) -> Result<&str, Refusal> {
        self.request
            .authorization
            .map(str::trim)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(unauthorized)
    }

    /// Whether `token` is the admin token, compared by digest so that the time taken says
    /// nothing about how much of it matched.
    fn is_admin(&self, token: &str) -> bool {
        self.admin_token
            .is_some_and(|admin| digest(admin) == digest(token))
    }

    /// The employee calling.
    fn employee(&self) -> Result<EmployeeId, Refusal> {
        let token = self.bearer()?;
        if self.is_admin(token) {
            return Err(Refusal::new(
                403,
                "not-an-employee",
                "this needs an employee's token, not the admin token",
            ));
        }
        self.core.authenticate(token)?.ok_or_else(unauthorized)
    }

    fn admin(&self) -> Result<(), Refusal> {
        let token = self.bearer()?;
        if self.is_admin(token) {
            return Ok(());
        }
        match self.core.authenticate(token)? {
            Some(_) => Err(Refusal::new(
                403,
                "admin-only",
                "only the admin may do this",
            )),
            None => Err(unauthorized()),
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

    fn create_employee(&self) -> Answer {
        self.admin()?;
        let new: NewEmployee = self.body()?;
        let (employee, token) = self.core.create_employee(&new.name)?;
        let mut body = json::employee(&employee);
        body["token"] = json!(token);
        Ok(Response::json(201, &body))
    }

    fn list_employees(&self) -> Answer {
        self.admin()?;
        let all: Vec<Value> = self.core.employees()?.iter().map(json::employee).collect();
        Ok(Response::json(200, &json!({"employees": all})))
    }

    fn get_settings(&self) -> Answer {
        self.admin()?;
        Ok(Response::json(200, &json::settings(&self.core.settings()?)))
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
        Ok(Response::json(200, &json::settings(&view)))
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
        Ok(Response::json(
            200,
            &json::settings(&self.core.reset_group_id()?),
        ))
    }

    fn flush(&self) -> Answer {
        self.admin()?;
        Ok(Response::json(
            200,
            &json::flush_report(&self.core.flush()?),
        ))
    }

    fn list_dialogs(&self) -> Answer {
        let actor = self.employee()?;
        let status = match self.query("status").as_deref().unwrap_or("open") {
            "open" => DialogStatus::Open,
            "spam" => DialogStatus::Spam,
            "finished" => DialogStatus::Finished,
            other => {
                return Err(Refusal::new(
                    400,
                    "invalid-query",
                    format!("`status` must be open, spam or finished, not {other:?}"),
                ));
            }
        };
        let (after, limit) = self.page()?;
        let page = self.core.dialogs(actor, status, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::dialogs(&page)))
    }

    fn get_dialog(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let dialog = self.core.dialog(actor, ids::dialog(id)?)?;
        Ok(Response::json(200, &json::dialog(&dialog)))
    }

    fn list_messages(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (after, limit) = self.page()?;
        let page = self
            .core
            .messages(actor, ids::dialog(id)?, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::messages(&page)))
    }

    fn send_message(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let new: NewMessage = self.body()?;
        let message = self.core.send(actor, ids::dialog(id)?, &new.text)?;
        Ok(Response::json(201, &json::message(&message)))
    }

    fn history(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (after, limit) = self.page()?;
        let (page, operators) =
            self.core
                .history(actor, ids::dialog(id)?, after.as_deref(), limit)?;
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
        Ok(Response::json(200, &json::dialog(&dialog)))
    }

    fn get_lead(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (lead, communication) = self.core.lead(actor, ids::lead(id)?)?;
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
        Ok(Response::json(200, &json::dialog(&dialog)))
    }

    fn get_counterparty(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (counterparty, communication) =
            self.core.counterparty(actor, ids::counterparty(id)?)?;
        Ok(Response::json(
            200,
            &json::counterparty(&counterparty, &communication),
        ))
    }

    fn get_order(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (order, communication) = self.core.order(actor, ids::order(id)?)?;
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
