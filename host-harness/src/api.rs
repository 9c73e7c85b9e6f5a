//! The HTTP face of the host: every request is handed whole to the plugin's `api` export,
//! which routes it, authenticates the caller, runs the command and renders the answer (see
//! `vk-api`). The host only moves bytes: it caps the body, picks an instance, passes the
//! admin token it was given, logs one line, and turns a guest fault into a `500` for that
//! request alone.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::database::Durability;
use crate::plugin::bindings::VkPlugin;
use crate::plugin::bindings::exports::mybusiness::vk::{api, outbox};
use crate::plugin::bindings::mybusiness::vk::types;
use crate::plugin::{Fault, Plugin, State as PluginState};
use crate::server::{Peer, read_request};

/// The callback route, as the admin enters it in VK.
pub use vk_core::CALLBACK_PATH;
/// The largest request body any route accepts.
pub use vk_core::MAX_BODY;

/// What every request shares.
#[derive(Clone)]
pub struct App {
    pub plugin: Arc<Plugin>,
    pub admin_token: Option<Arc<str>>,
    /// Where people and VK reach the product (`--public-url`).
    pub public_url: Option<Arc<str>>,
    /// Instances for the operator API and the outbox.
    pub slots: Arc<Semaphore>,
    /// Instances kept for VK's callbacks, so slow operator calls (a send waiting for VK)
    /// never make VK wait for its `ok`. Both together are the pool's size.
    pub intake_slots: Arc<Semaphore>,
    /// Requests go to the same crates linked into this host instead of the component
    /// (`serve --native`): a reference for measurements, without the guest's isolation.
    pub native: bool,
    /// The durable store's progress (`serve --db` on a file): no answer leaves before the
    /// commits it could rest on are durable.
    pub durability: Option<Arc<Durability>>,
    /// Calls run on the async executor's threads, not handed to a blocking thread and back:
    /// for a store whose calls never block (in memory, the database file, whose commits the
    /// flusher makes durable while the answer waits on the executor). What does block
    /// inside a call, a request to VK, leaves the executor itself ([`crate::http`]).
    pub on_executor: bool,
}

/// Why a call did not reach an answer of the guest (the plugin, or the Spin component
/// under `serve-spin`): the one place these refusals are worded.
#[derive(Debug)]
pub enum CallError {
    /// The guest trapped or ran out of time.
    Fault(Fault),
    /// The host is shutting down.
    ShuttingDown,
}

impl CallError {
    pub(crate) fn into_response(self) -> vk_api::Response {
        match self {
            CallError::Fault(fault) => {
                vk_api::Response::error(500, fault.report(), "the component failed on this request")
            }
            CallError::ShuttingDown => {
                vk_api::Response::error(503, "shutting-down", "the host is shutting down")
            }
        }
    }
}

/// The whole router: every path goes to the plugin.
pub fn router(app: App) -> Router {
    guarded(Router::new().fallback(move |request: Request| {
        let app = app.clone();
        async move { app.respond(request).await }
    }))
}

/// `router` with what every server of this host adds: the log line, and the slowing down
/// of repeated wrong tokens.
pub(crate) fn guarded(router: Router) -> Router {
    router
        .layer(middleware::from_fn_with_state(
            Arc::new(Throttle::default()),
            slow_down_guessing,
        ))
        .layer(middleware::from_fn(log))
}

/// Wrong tokens, sessions or sign-in codes from one address: the first [`FREE_FAILURES`] in
/// a [`FAILURE_WINDOW`] are answered at once; after that the address gets its `401`s one
/// per [`FAILURE_PACE`], however many it sends in parallel, until the window ends. Right
/// tokens are never slowed.
#[derive(Default)]
pub(crate) struct Throttle {
    failures: std::sync::Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    since: Instant,
    count: u32,
    next_answer: Instant,
}

const FREE_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FAILURE_PACE: Duration = Duration::from_millis(250);
/// Addresses remembered at once; beyond this, those whose window ended are forgotten first.
const TRACKED_ADDRESSES: usize = 10_000;

impl Throttle {
    /// Counts a wrong token from `address`; how long its answer must wait.
    fn failed(&self, address: IpAddr) -> Duration {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= TRACKED_ADDRESSES && !failures.contains_key(&address) {
            failures.retain(|_, f| now.duration_since(f.since) < FAILURE_WINDOW);
            if failures.len() >= TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let fresh = Failures {
            since: now,
            count: 0,
            next_answer: now,
        };
        let seen = failures.entry(address).or_insert(fresh);
        if now.duration_since(seen.since) >= FAILURE_WINDOW {
            *seen = Failures {
                since: now,
                count: 0,
                next_answer: now,
            };
        }
        seen.count += 1;
        if seen.count <= FREE_FAILURES {
            return Duration::ZERO;
        }
        let slot = seen.next_answer.max(now);
        seen.next_answer = slot + FAILURE_PACE;
        slot - now
    }
}

/// Holds back the `401` answers to an address that keeps sending wrong tokens.
async fn slow_down_guessing(
    State(throttle): State<Arc<Throttle>>,
    request: Request,
    next: Next,
) -> Response {
    let address = request.extensions().get::<Peer>().map(|peer| peer.0.ip());
    // A token, a session cookie, or a sign-in: a `401` to anything else (a page asking
    // whether it is signed in) is no guess.
    let guess = request.headers().contains_key(header::AUTHORIZATION)
        || request.headers().contains_key(header::COOKIE)
        || request.uri().path() == "/api/sessions";
    let response = next.run(request).await;
    if let Some(address) = address
        && guess
        && response.status() == StatusCode::UNAUTHORIZED
    {
        tokio::time::sleep(throttle.failed(address)).await;
    }
    response
}

/// Request log lines not yet written to stderr.
static REQUEST_LOG: Mutex<String> = Mutex::new(String::new());
/// How long a line may wait before it is written: lines go out together, so a busy host
/// does not pay a write to stderr for every request.
const LOG_FLUSH: Duration = Duration::from_millis(100);
/// Past this much waiting text, the request that adds a line writes it all out at once.
const LOG_BUFFER: usize = 64 << 10;

/// One line per request: method, path, status, time. Never a header or a body.
pub(crate) async fn log(request: Request, next: Next) -> Response {
    static FLUSHER: Once = Once::new();
    FLUSHER.call_once(|| {
        std::thread::Builder::new()
            .name("request-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(LOG_FLUSH);
                    flush_request_log();
                }
            })
            .ok();
    });
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let full = {
        let mut lines = REQUEST_LOG.lock().unwrap_or_else(PoisonError::into_inner);
        writeln!(
            lines,
            "vk-host: {method} {path} -> {} in {:.1} ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3
        )
        .ok();
        lines.len() > LOG_BUFFER
    };
    if full {
        flush_request_log();
    }
    response
}

/// Writes the request log's waiting lines to stderr.
pub fn flush_request_log() {
    let lines = std::mem::take(&mut *REQUEST_LOG.lock().unwrap_or_else(PoisonError::into_inner));
    if !lines.is_empty() {
        std::io::stderr().write_all(lines.as_bytes()).ok();
    }
}

/// What a panic said, for the log.
fn panicked(payload: &(dyn std::any::Any + Send)) -> String {
    let said = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    format!("the host panicked during the call: {said}")
}

/// An answer as an HTTP response. The plugin is a guest: a status or a header it should
/// never give still makes a valid response (an invalid header is left out).
pub(crate) fn into_http<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Vec<u8>,
) -> Response {
    let mut response = body.into_response();
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            if name == header::CONTENT_TYPE {
                map.insert(name, value);
            } else {
                map.append(name, value);
            }
        }
    }
    response
}

/// A request of the `api` export as vk-api takes it natively.
pub(crate) fn native(request: &api::Request) -> vk_api::Request<'_> {
    vk_api::Request {
        method: &request.method,
        path: &request.path,
        query: request.query.as_deref(),
        headers: &request.headers,
        body: &request.body,
    }
}

/// An answer of `vk-api` (a refusal of the host's own) as an HTTP response.
pub(crate) fn from_api(answer: vk_api::Response) -> Response {
    let vk_api::Response {
        status,
        content_type,
        headers,
        body,
    } = answer;
    let headers = std::iter::once(("content-type", content_type))
        .chain(headers.iter().map(|(n, v)| (*n, v.as_str())));
    into_http(status, headers, body)
}

impl App {
    /// Serves one request through the plugin's `api` export. VK's callbacks run on their own
    /// instances.
    async fn respond(&self, request: Request) -> Response {
        let (parts, body, _in_progress) = match read_request(request).await {
            Ok(read) => read,
            Err(refusal) => return from_api(refusal),
        };
        let path = parts.uri.path().to_owned();
        // A path no route can have costs no instance.
        if !vk_api::serves(&path) {
            return from_api(vk_api::Response::no_route());
        }
        let slots = if path == CALLBACK_PATH {
            &self.intake_slots
        } else {
            &self.slots
        };
        let request = api::Request {
            method: parts.method.as_str().to_owned(),
            path,
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            body: body.to_vec(),
        };
        let answer = if self.native {
            self.natively(slots, request).await
        } else {
            self.through_component(slots, request).await
        };
        self.once_durable(answer).await
    }

    /// `answer` once every commit decided before it is durable (whatever it says may rest on
    /// them, as may what the caller does next), or a refusal if they never will be.
    async fn once_durable(&self, answer: Response) -> Response {
        let Some(durability) = &self.durability else {
            return answer;
        };
        match durability.reached(durability.mark()).await {
            Ok(()) => answer,
            Err(why) => from_api(vk_api::Response::from_error(&vk_core::Error::Storage(why))),
        }
    }

    /// Serves a request through the plugin's `api` export.
    async fn through_component(&self, slots: &Arc<Semaphore>, request: api::Request) -> Response {
        let config = api::HostConfig {
            admin_token: self.admin_token.as_deref().map(str::to_owned),
            public_url: self.public_url.as_deref().map(str::to_owned),
        };
        let answer = self
            .call_on(slots, move |p, s| {
                p.mybusiness_vk_api().call_handle(s, &request, &config)
            })
            .await;
        match answer {
            Ok(answer) => {
                let headers = answer.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                into_http(answer.status, headers, answer.body)
            }
            Err(error) => from_api(error.into_response()),
        }
    }

    /// Serves a request with vk-api and vk-core linked into this host, on the plugin's
    /// store and outbound HTTP, with a permit from `slots`.
    async fn natively(&self, slots: &Arc<Semaphore>, request: api::Request) -> Response {
        let app = self.clone();
        let answer = self
            .blocking(slots, move |_permit| {
                let (store, http) = (app.plugin.storage(), app.plugin.outbound());
                let core =
                    vk_core::Core::new(store.as_ref(), http.as_ref(), &vk_core::ports::SystemClock);
                let config = vk_api::Config {
                    admin_token: app.admin_token.as_deref(),
                    public_url: app.public_url.as_deref(),
                };
                Ok(vk_api::handle(&core, &config, &native(&request)))
            })
            .await;
        from_api(answer.unwrap_or_else(CallError::into_response))
    }

    /// Runs a plugin export on an instance with a permit from `slots`.
    async fn call_on<R: Send + 'static>(
        &self,
        slots: &Arc<Semaphore>,
        call: impl FnOnce(&VkPlugin, &mut wasmtime::Store<PluginState>) -> wasmtime::Result<R>
        + Send
        + 'static,
    ) -> Result<R, CallError> {
        let plugin = self.plugin.clone();
        self.blocking(slots, move |permit| plugin.call_in_lane(Some(permit), call))
            .await
    }

    /// Runs `work` once `slots` gives it a permit, which it holds until it ends (or passes
    /// on): on this thread of the executor when calls run there ([`App::on_executor`]),
    /// otherwise on a blocking thread.
    async fn blocking<R: Send + 'static>(
        &self,
        slots: &Arc<Semaphore>,
        work: impl FnOnce(OwnedSemaphorePermit) -> Result<R, Fault> + Send + 'static,
    ) -> Result<R, CallError> {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CallError::ShuttingDown)?;
        if self.on_executor {
            // A host function that panics fails this call alone, as on a blocking thread.
            // One does when a dying guest writes its last words to stderr: WASI's blocking
            // stream calls start a runtime, which a thread of the executor may not.
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(permit)))
                .unwrap_or_else(|panic| Err(Fault::Trap(panicked(panic.as_ref()))))
                .map_err(CallError::Fault);
        }
        tokio::task::spawn_blocking(move || work(permit))
            .await
            .map_err(|e| CallError::Fault(Fault::Trap(e.to_string())))?
            .map_err(CallError::Fault)
    }

    /// Retries waiting messages and fills in missing names (the outbox timer).
    pub async fn flush_outbox(
        &self,
    ) -> Result<Result<outbox::FlushReport, types::Error>, CallError> {
        self.call_on(&self.slots, |p, s| p.mybusiness_vk_outbox().call_flush(s))
            .await
    }
}
