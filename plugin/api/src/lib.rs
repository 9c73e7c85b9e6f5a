//! `vk-api`: the product's HTTP face over vk-core, written once for every shell that serves
//! it. VK's callback route and the operator API of SPEC §4 are routed here, callers are
//! authenticated here (the admin token and the employee directory of
//! [`vk_core::directory`]), bodies and queries are parsed here and every answer is rendered
//! here ([`json`]). The shells only move bytes: `vk-plugin` exports [`handle`] as the WIT
//! `api` interface (which `vk-host serve` mounts), and `vk-spin` calls it from its
//! `wasi:http` handler. So both answer every request alike, and no rule of the domain lives
//! here either: each route is one call of [`Core`].

mod auth;
mod dialogs;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod json;
mod leads;
mod lists;
mod people;
pub mod routes;
mod settings;
mod web;

use routes::{Found, Op};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use vk_core::directory::{Subject, digest};
use vk_core::intake::CallbackReply;
use vk_core::{CALLBACK_PATH, Core, EmployeeId, Error, MAX_BODY};

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
    fn json(status: u16, body: &impl Serialize) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: vec![
                ("cache-control", "no-store".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body: serde_json::to_vec(body).expect("the API's bodies have string keys only"),
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

    /// The answer with its `ETag`; an empty `304` instead when the request's
    /// `If-None-Match` names that tag (the client's copy is current).
    fn tagged(mut self, request: &Request<'_>, etag: String) -> Response {
        let current = request
            .header("if-none-match")
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
        if current {
            self.status = 304;
            self.body.clear();
        }
        self.with_header("etag", etag)
    }

    /// A refusal in the API's one shape, `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &vk_core::error_body(code, message))
    }

    /// The OpenAPI 3.1 document of this API (`docs/openapi.json`, compiled in).
    fn openapi() -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            headers: vec![("x-content-type-options", "nosniff".to_owned())],
            body: include_bytes!("../../../docs/openapi.json").to_vec(),
        }
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

impl Call<'_, '_> {
    fn route(&self) -> Answer {
        let path = self.request.path;
        let (route, values) = match routes::find(self.request.method, path) {
            Found::Route(route, values) => (route, values),
            Found::OtherMethod(methods) => return Ok(not_allowed_here(&methods)),
            Found::NoRoute if path.starts_with("/api/") => {
                return Err(no_route());
            }
            Found::NoRoute => {
                return match self.request.method {
                    "GET" => web::page(self.request),
                    _ if web::serves(path) => Ok(not_allowed_here(&["GET"])),
                    _ => Err(no_route()),
                };
            }
        };
        let id = || values[0];
        match route.op {
            Op::Callback => self.callback(),
            Op::OpenApi => Ok(Response::openapi()),
            Op::SignIn => self.sign_in(),
            Op::SignOut => self.sign_out(),
            Op::Me => self.me(),
            Op::CreateEmployee => self.create_employee(),
            Op::ListEmployees => self.list_employees(),
            Op::RemoveEmployee => self.remove_employee(id()),
            Op::SignInLink => self.sign_in_link(id()),
            Op::GetSettings => self.get_settings(),
            Op::PutSettings => self.put_settings(),
            Op::ResetGroupId => self.reset_group_id(),
            Op::Flush => self.flush(),
            Op::ListDialogs => self.list_dialogs(),
            Op::DialogCounts => self.dialog_counts(),
            Op::GetDialog => self.get_dialog(id()),
            Op::ListMessages => self.list_messages(id()),
            Op::SendMessage => self.send_message(id()),
            Op::History => self.history(id()),
            Op::Command(command) => self.dialog_command(id(), command),
            Op::MarkRead => self.mark_read(id()),
            Op::GetLead => self.get_lead(id()),
            Op::AddItem => self.add_item(id()),
            Op::SetQuantity => self.set_quantity(id(), values[1]),
            Op::RemoveItem => self.remove_item(id(), values[1]),
            Op::Convert => self.convert(id()),
            Op::RestoreFromLead => self.restore_from_lead(id()),
            Op::GetCounterparty => self.get_counterparty(id()),
            Op::GetOrder => self.get_order(id()),
            Op::ListLeads => self.list_leads(),
            Op::ListCounterparties => self.list_counterparties(),
            Op::ListOrders => self.list_orders(),
            Op::ChannelState => self.channel_state(),
            Op::Changes => self.changes(),
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

    /// The JSON body, parsed (its nesting bounded before anything is built). Every body of
    /// the API is an object: an array is not read as the fields in order.
    fn body<T: DeserializeOwned>(&self) -> Result<T, Refusal> {
        let first = self.request.body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(malformed("it must be a JSON object".to_owned()));
        }
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
}

/// The default page size of every list.
const PAGE: u32 = 50;

fn no_route() -> Refusal {
    Refusal::new(404, "no-such-route", "no such route")
}

/// `405`, with the `Allow` header naming the methods the path takes (`HEAD` wherever `GET`
/// is).
fn not_allowed_here(methods: &[&str]) -> Response {
    let mut allowed = methods.to_vec();
    if methods.contains(&"GET") {
        allowed.push("HEAD");
    }
    Response::error(
        405,
        "method-not-allowed",
        "this route does not take that method",
    )
    .with_header("allow", allowed.join(", "))
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
