//! The HTTP face of the host: VK's callback route and the operator API (SPEC §4).
//!
//! Each handler authenticates the caller, hands the call to the plugin on a blocking thread
//! (one fresh instance per call, at most as many at once as the pool holds), and maps the
//! answer to JSON. Every refusal is `{"error": {"code", "message"}}`.

mod json;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::employees::Employees;
use crate::plugin::bindings::VkPlugin;
use crate::plugin::bindings::exports::mybusiness::vk::{leads, outbox, settings, webhook};
use crate::plugin::bindings::mybusiness::vk::types;
use crate::plugin::{Fault, Plugin, State as PluginState};
use vk_core::ErrorKind;

/// The callback route, as the admin enters it in VK.
pub use vk_core::CALLBACK_PATH;
/// The largest request body any route accepts.
pub use vk_core::MAX_BODY;

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub plugin: Arc<Plugin>,
    pub employees: Arc<Employees>,
    pub admin_token: Option<Arc<str>>,
    /// Instances for the operator API and the outbox.
    pub slots: Arc<Semaphore>,
    /// Instances kept for VK's callbacks, so slow operator calls (a send waiting for VK)
    /// never make VK wait for its `ok`. Both together are the pool's size.
    pub intake_slots: Arc<Semaphore>,
}

/// A refusal, as the API answers it.
#[derive(Debug)]
pub enum ApiError {
    Plugin(types::Error),
    Fault(Fault),
    Host(StatusCode, &'static str, String),
}

impl ApiError {
    fn host(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Host(status, code, message.into())
    }

    fn bad_input(message: impl Into<String>) -> ApiError {
        ApiError::host(StatusCode::BAD_REQUEST, "malformed-body", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Plugin(error) => {
                let kind = match error.kind {
                    types::ErrorKind::BadInput => ErrorKind::BadInput,
                    types::ErrorKind::Forbidden => ErrorKind::Forbidden,
                    types::ErrorKind::NotFound => ErrorKind::NotFound,
                    types::ErrorKind::Conflict => ErrorKind::Conflict,
                    types::ErrorKind::Unavailable => ErrorKind::Unavailable,
                };
                let status = StatusCode::from_u16(kind.http_status())
                    .expect("vk-core maps kinds to valid statuses");
                (status, error.code, error.message)
            }
            ApiError::Fault(fault) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                fault.report().to_owned(),
                "the plugin failed on this request".to_owned(),
            ),
            ApiError::Host(status, code, message) => (status, code.to_owned(), message),
        };
        (status, axum::Json(vk_core::error_body(&code, &message))).into_response()
    }
}

type Reply = Result<Response, ApiError>;

/// The whole router.
pub fn router(app: App) -> Router {
    Router::new()
        .route(CALLBACK_PATH, post(callback))
        .route("/api/employees", post(create_employee).get(list_employees))
        .route("/api/settings", get(get_settings).put(put_settings))
        .route("/api/settings/group-id", delete(reset_group_id))
        .route("/api/outbox/flush", post(flush))
        .route("/api/dialogs", get(list_dialogs))
        .route("/api/dialogs/{id}", get(get_dialog))
        .route(
            "/api/dialogs/{id}/messages",
            get(list_messages).post(send_message),
        )
        .route("/api/dialogs/{id}/history", get(history))
        .route("/api/dialogs/{id}/{command}", post(dialog_command))
        .route("/api/leads/{id}", get(get_lead))
        .route("/api/leads/{id}/items", post(add_item))
        .route(
            "/api/leads/{id}/items/{item}",
            patch(set_quantity).delete(remove_item),
        )
        .route("/api/leads/{id}/convert", post(convert))
        .route("/api/leads/{id}/restore-dialog", post(restore_from_lead))
        .route("/api/counterparties/{id}", get(get_counterparty))
        .route("/api/orders/{id}", get(get_order))
        .fallback(|| async {
            ApiError::host(StatusCode::NOT_FOUND, "no-such-route", "no such route")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::host(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(log))
        .with_state(app)
}

/// One line per request: method, path, status, time. Never a header or a body.
pub(crate) async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let line = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    eprintln!(
        "vk-host: {line} -> {} in {:.1} ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    response
}

/// One call of a plugin export on an instance, as the handlers write it (`|p, s| ...`).
trait Export<R>:
    FnOnce(
        &VkPlugin,
        &mut wasmtime::Store<PluginState>,
    ) -> wasmtime::Result<Result<R, types::Error>>
    + Send
    + 'static
{
}

impl<R, F> Export<R> for F where
    F: FnOnce(
            &VkPlugin,
            &mut wasmtime::Store<PluginState>,
        ) -> wasmtime::Result<Result<R, types::Error>>
        + Send
        + 'static
{
}

impl App {
    /// Runs a plugin export on a fresh instance, off the async executor.
    async fn call<R: Send + 'static>(&self, call: impl Export<R>) -> Result<R, ApiError> {
        self.call_on(&self.slots, call).await
    }

    /// Runs a plugin export on a fresh instance with a permit from `slots`.
    async fn call_on<R: Send + 'static>(
        &self,
        slots: &Arc<Semaphore>,
        call: impl Export<R>,
    ) -> Result<R, ApiError> {
        let permit = slots.clone().acquire_owned().await.map_err(|_| {
            ApiError::host(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "the host is shutting down",
            )
        })?;
        let plugin = self.plugin.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            plugin.call(call)
        })
        .await
        .map_err(|e| ApiError::Fault(Fault::Trap(e.to_string())))?;
        joined.map_err(ApiError::Fault)?.map_err(ApiError::Plugin)
    }

    /// Retries waiting messages (the timer and `POST /api/outbox/flush`).
    pub async fn flush_outbox(&self) -> Result<outbox::FlushReport, ApiError> {
        self.call(|p, s| p.mybusiness_vk_outbox().call_flush(s))
            .await
    }

    /// Whether `token` is the admin token, compared by digest so that the time taken says
    /// nothing about how much of it matched.
    fn is_admin(&self, token: &str) -> bool {
        use sha2::{Digest, Sha256};
        self.admin_token.as_deref().is_some_and(|admin| {
            Sha256::digest(admin.as_bytes()) == Sha256::digest(token.as_bytes())
        })
    }

    /// The employee a request's bearer token belongs to.
    fn employee(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token = bearer(headers)?;
        if self.is_admin(token) {
            return Err(ApiError::host(
                StatusCode::FORBIDDEN,
                "not-an-employee",
                "this needs an employee's token, not the admin token",
            ));
        }
        self.employees
            .authenticate(token)
            .map_err(storage_failed)?
            .ok_or_else(unauthorized)
    }

    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = bearer(headers)?;
        if self.is_admin(token) {
            return Ok(());
        }
        match self.employees.authenticate(token).map_err(storage_failed)? {
            Some(_) => Err(ApiError::host(
                StatusCode::FORBIDDEN,
                "admin-only",
                "only the admin may do this",
            )),
            None => Err(unauthorized()),
        }
    }
}

/// The host's own storage failed (the plugin reports its own failures itself).
fn storage_failed(error: vk_core::ports::StoreError) -> ApiError {
    let why = match error {
        vk_core::ports::StoreError::Conflict => "a concurrent change; try again".to_owned(),
        vk_core::ports::StoreError::Unavailable(why) => why,
    };
    ApiError::host(StatusCode::SERVICE_UNAVAILABLE, "storage-unavailable", why)
}

fn unauthorized() -> ApiError {
    ApiError::host(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid `Authorization: Bearer <token>` header is required",
    )
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)
}

/// An oversized body is still read (and dropped) up to this size before the `413` goes
/// out: closing a connection with unread data resets it, and the client would see the
/// reset instead of the answer.
const DRAIN_LIMIT: usize = 16 << 20;

/// Why a request body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRefusal {
    TooLarge,
    Unreadable,
}

impl BodyRefusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            BodyRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefusal::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn code(self) -> &'static str {
        match self {
            BodyRefusal::TooLarge => "body-too-large",
            BodyRefusal::Unreadable => "malformed-body",
        }
    }

    pub(crate) fn message(self) -> String {
        match self {
            BodyRefusal::TooLarge => format!("the body is larger than {MAX_BODY} bytes"),
            BodyRefusal::Unreadable => "the body cannot be read".to_owned(),
        }
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes (every route of both servers).
pub(crate) async fn read_capped(mut body: Body) -> Result<Bytes, BodyRefusal> {
    use http_body_util::BodyExt as _;
    let mut kept = Vec::new();
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyRefusal::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(BodyRefusal::TooLarge);
    }
    Ok(Bytes::from(kept))
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    read_capped(body)
        .await
        .map_err(|refusal| ApiError::Host(refusal.status(), refusal.code(), refusal.message()))
}

/// Reads and parses a JSON body.
async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_input(format!("the body is not valid: {e}")))
}

fn ok(status: StatusCode, body: Value) -> Reply {
    Ok((status, axum::Json(body)).into_response())
}

async fn callback(AxumState(app): AxumState<App>, body: Body) -> Reply {
    let body = read_body(body).await?;
    let reply = app
        .call_on(&app.intake_slots, move |p, s| {
            p.mybusiness_vk_webhook().call_handle(s, &body)
        })
        .await?;
    let text = match reply {
        webhook::CallbackReply::Confirmation(text) => text,
        webhook::CallbackReply::Ok => "ok".to_owned(),
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEmployee {
    name: String,
}

async fn create_employee(AxumState(app): AxumState<App>, headers: HeaderMap, body: Body) -> Reply {
    app.admin(&headers)?;
    let new: NewEmployee = json_body(body).await?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::host(
            StatusCode::BAD_REQUEST,
            "invalid-field",
            "`name` must be 1 to 200 characters",
        ));
    }
    let (employee, token) = app.employees.create(name).map_err(storage_failed)?;
    ok(
        StatusCode::CREATED,
        json!({"id": employee.id, "name": employee.name, "token": token}),
    )
}

async fn list_employees(AxumState(app): AxumState<App>, headers: HeaderMap) -> Reply {
    app.admin(&headers)?;
    let all = app.employees.list().map_err(storage_failed)?;
    let list: Vec<Value> = all
        .iter()
        .map(|e| json!({"id": e.id, "name": e.name}))
        .collect();
    ok(StatusCode::OK, json!({"employees": list}))
}

async fn get_settings(AxumState(app): AxumState<App>, headers: HeaderMap) -> Reply {
    app.admin(&headers)?;
    let view = app
        .call(|p, s| p.mybusiness_vk_settings().call_get(s))
        .await?;
    ok(StatusCode::OK, json::settings(&view))
}

/// `PUT /api/settings`: fields left out keep their value; `group_id` is read-only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    access_token: Option<String>,
    secret: Option<String>,
    confirmation: Option<String>,
    group_name: Option<String>,
    api_version: Option<String>,
    employees: Option<Vec<String>>,
}

async fn put_settings(AxumState(app): AxumState<App>, headers: HeaderMap, body: Body) -> Reply {
    app.admin(&headers)?;
    let raw: Value = json_body(body).await?;
    if raw.get("group_id").is_some() {
        return Err(ApiError::host(
            StatusCode::BAD_REQUEST,
            "read-only-field",
            "`group_id` is recorded from VK's confirmation; reset it with DELETE /api/settings/group-id",
        ));
    }
    let body: SettingsBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_input(format!("the body is not valid: {e}")))?;
    for id in body.employees.iter().flatten() {
        if !app.employees.exists(id).map_err(storage_failed)? {
            return Err(ApiError::host(
                StatusCode::BAD_REQUEST,
                "unknown-employee",
                format!("no employee has the id {id:?}"),
            ));
        }
    }
    let update = settings::SettingsUpdate {
        access_token: body.access_token,
        secret: body.secret,
        confirmation: body.confirmation,
        group_name: body.group_name,
        api_version: body.api_version,
        employees: body.employees,
    };
    let view = app
        .call(move |p, s| p.mybusiness_vk_settings().call_put(s, &update))
        .await?;
    ok(StatusCode::OK, json::settings(&view))
}

async fn reset_group_id(AxumState(app): AxumState<App>, headers: HeaderMap) -> Reply {
    app.admin(&headers)?;
    let view = app
        .call(|p, s| p.mybusiness_vk_settings().call_reset_group_id(s))
        .await?;
    ok(StatusCode::OK, json::settings(&view))
}

async fn flush(AxumState(app): AxumState<App>, headers: HeaderMap) -> Reply {
    app.admin(&headers)?;
    let report = app.flush_outbox().await?;
    ok(StatusCode::OK, json::flush_report(&report))
}

#[derive(Deserialize)]
struct PageQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// The default page size of every list.
const PAGE: u32 = 50;

fn page_query(query: Result<Query<PageQuery>, QueryRejection>) -> Result<PageQuery, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::host(StatusCode::BAD_REQUEST, "invalid-query", e.body_text()))
}

async fn list_dialogs(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let query = page_query(query)?;
    let status = match query.status.as_deref().unwrap_or("open") {
        "open" => types::DialogStatus::Open,
        "spam" => types::DialogStatus::Spam,
        "finished" => types::DialogStatus::Finished,
        other => {
            return Err(ApiError::host(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("`status` must be open, spam or finished, not {other:?}"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(PAGE);
    let page = app
        .call(move |p, s| {
            p.mybusiness_vk_dialogs().call_open_lines(
                s,
                &actor,
                status,
                query.after.as_deref(),
                limit,
            )
        })
        .await?;
    let dialogs: Vec<Value> = page.dialogs.iter().map(json::dialog).collect();
    ok(
        StatusCode::OK,
        json!({"dialogs": dialogs, "next": page.next}),
    )
}

async fn get_dialog(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let dialog = app
        .call(move |p, s| p.mybusiness_vk_dialogs().call_get(s, &actor, &id))
        .await?;
    ok(StatusCode::OK, json::dialog(&dialog))
}

async fn list_messages(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let query = page_query(query)?;
    let limit = query.limit.unwrap_or(PAGE);
    let page = app
        .call(move |p, s| {
            p.mybusiness_vk_dialogs()
                .call_messages(s, &actor, &id, query.after.as_deref(), limit)
        })
        .await?;
    let messages: Vec<Value> = page.messages.iter().map(json::message).collect();
    ok(
        StatusCode::OK,
        json!({"messages": messages, "next": page.next}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
}

async fn send_message(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Reply {
    let actor = app.employee(&headers)?;
    let new: NewMessage = json_body(body).await?;
    let message = app
        .call(move |p, s| {
            p.mybusiness_vk_dialogs()
                .call_send(s, &actor, &id, &new.text)
        })
        .await?;
    ok(StatusCode::CREATED, json::message(&message))
}

async fn history(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let query = page_query(query)?;
    let limit = query.limit.unwrap_or(PAGE);
    let history = app
        .call(move |p, s| {
            p.mybusiness_vk_dialogs()
                .call_history(s, &actor, &id, query.after.as_deref(), limit)
        })
        .await?;
    ok(StatusCode::OK, json::history(&history))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    employees: Option<Vec<String>>,
    to: Option<String>,
}

/// `claim`, `invite`, `leave`, `delegate`, `spam`, `finish`, `restore`.
async fn dialog_command(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path((id, command)): Path<(String, String)>,
    body: Body,
) -> Reply {
    let actor = app.employee(&headers)?;
    let bytes = read_body(body).await?;
    let body: CommandBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CommandBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_input(format!("the body is not valid: {e}")))?
    };
    let missing = |field: &str| {
        ApiError::host(
            StatusCode::BAD_REQUEST,
            "invalid-field",
            format!("`{field}` is required"),
        )
    };
    let dialog = match command.as_str() {
        "claim" => {
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_claim(s, &actor, &id))
                .await?
        }
        "invite" => {
            let employees = body.employees.ok_or_else(|| missing("employees"))?;
            app.call(move |p, s| {
                p.mybusiness_vk_dialogs()
                    .call_invite(s, &actor, &id, &employees)
            })
            .await?
        }
        "leave" => {
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_leave(s, &actor, &id))
                .await?
        }
        "delegate" => {
            let to = body.to.ok_or_else(|| missing("to"))?;
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_delegate(s, &actor, &id, &to))
                .await?
        }
        "spam" => {
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_close_as_spam(s, &actor, &id))
                .await?
        }
        "finish" => {
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_finish(s, &actor, &id))
                .await?
        }
        "restore" => {
            app.call(move |p, s| p.mybusiness_vk_dialogs().call_restore(s, &actor, &id))
                .await?
        }
        _ => {
            return Err(ApiError::host(
                StatusCode::NOT_FOUND,
                "no-such-route",
                "no such route",
            ));
        }
    };
    ok(StatusCode::OK, json::dialog(&dialog))
}

async fn get_lead(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let lead = app
        .call(move |p, s| p.mybusiness_vk_leads().call_get(s, &actor, &id))
        .await?;
    ok(StatusCode::OK, json::lead(&lead))
}

/// A decimal as JSON gives it: a number (`150`, `1.5`) or a string (`"150.00"`).
fn decimal(value: &Value, field: &str) -> Result<String, ApiError> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ApiError::host(
            StatusCode::BAD_REQUEST,
            "invalid-field",
            format!("`{field}` must be a number or a decimal string"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    name: String,
    sku: Option<String>,
    quantity: Value,
    price: Value,
    currency: Option<String>,
}

async fn add_item(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Reply {
    let actor = app.employee(&headers)?;
    let item: ItemBody = json_body(body).await?;
    let new = leads::NewItem {
        name: item.name,
        sku: item.sku,
        quantity: decimal(&item.quantity, "quantity")?,
        price: decimal(&item.price, "price")?,
        currency: item.currency,
    };
    let lead = app
        .call(move |p, s| p.mybusiness_vk_leads().call_add_item(s, &actor, &id, &new))
        .await?;
    ok(StatusCode::CREATED, json::lead_with_new_item(&lead))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityBody {
    quantity: Value,
}

async fn set_quantity(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path((id, item)): Path<(String, String)>,
    body: Body,
) -> Reply {
    let actor = app.employee(&headers)?;
    let change: QuantityBody = json_body(body).await?;
    let quantity = decimal(&change.quantity, "quantity")?;
    let lead = app
        .call(move |p, s| {
            p.mybusiness_vk_leads()
                .call_set_quantity(s, &actor, &id, &item, &quantity)
        })
        .await?;
    ok(StatusCode::OK, json::lead(&lead))
}

async fn remove_item(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path((id, item)): Path<(String, String)>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let lead = app
        .call(move |p, s| {
            p.mybusiness_vk_leads()
                .call_remove_item(s, &actor, &id, &item)
        })
        .await?;
    ok(StatusCode::OK, json::lead(&lead))
}

async fn convert(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let done = app
        .call(move |p, s| p.mybusiness_vk_leads().call_convert(s, &actor, &id))
        .await?;
    ok(
        StatusCode::OK,
        json!({"counterparty_id": done.counterparty_id, "order_id": done.order_id}),
    )
}

async fn restore_from_lead(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let dialog = app
        .call(move |p, s| p.mybusiness_vk_leads().call_restore_dialog(s, &actor, &id))
        .await?;
    ok(StatusCode::OK, json::dialog(&dialog))
}

async fn get_counterparty(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let found = app
        .call(move |p, s| {
            p.mybusiness_vk_leads()
                .call_read_counterparty(s, &actor, &id)
        })
        .await?;
    ok(StatusCode::OK, json::counterparty(&found))
}

async fn get_order(
    AxumState(app): AxumState<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let actor = app.employee(&headers)?;
    let found = app
        .call(move |p, s| p.mybusiness_vk_leads().call_read_order(s, &actor, &id))
        .await?;
    ok(StatusCode::OK, json::order(&found))
}
