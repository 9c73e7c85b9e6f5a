//! `serve-spin`: a Spin application's HTTP components run without the Spin CLI, so the Spin
//! path of the product is tested (and benchmarked) here, on the same engine as the plugin.
//!
//! The app is read from its `spin.toml` ([`manifest`]); each routed component is compiled
//! once through the plugin's artifact cache and pre-instantiated as a `wasi:http` proxy;
//! every request gets a fresh `Store` and instance, with the plugin's epoch deadline and
//! memory cap ([`crate::plugin::Limits`]). Besides WASI and `wasi:http`, the host provides
//! the two Spin interfaces `vk-spin` imports (WIT in `host-harness/wit-spin/`):
//! `spin:sqlite` over rusqlite ([`Database`]) and `fermyon:spin/variables` from the
//! manifest, `--variable` and `SPIN_VARIABLE_*`. Outgoing HTTP follows the manifest's
//! `allowed_outbound_hosts`.

pub mod manifest;
mod outbound;
pub mod sqlite;
mod variables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use tokio::sync::Semaphore;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Store, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::api::{CallError, MAX_BODY};
use crate::plugin::{Fault, Limits, LoadReport, cached_component, engine, tick_epochs};
use manifest::Manifest;
pub use sqlite::Database;

/// The host side of the Spin interfaces the component imports.
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit-spin",
        world: "vk:spin-host/imports",
        with: { "spin:sqlite/sqlite.connection": super::sqlite::Connection },
    });
}

/// How [`SpinApp::load`] runs an application.
#[derive(Debug, Clone)]
pub struct SpinOptions {
    /// The `spin.toml`; component sources are relative to its folder.
    pub manifest: PathBuf,
    /// The `default` SQLite database.
    pub database: Database,
    /// Where VK's API is reached instead of `https://api.vk.com` (a local stand-in).
    pub vk_api_base: Option<String>,
    /// Values of application variables (`--variable NAME=VALUE`); `SPIN_VARIABLE_<NAME>` and
    /// the manifest's defaults fill in the others.
    pub variables: BTreeMap<String, String>,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    pub limits: Limits,
}

/// One component, ready to instantiate.
struct Loaded {
    pre: ProxyPre<State>,
    variables: Arc<BTreeMap<String, String>>,
    databases: Arc<[String]>,
    outbound: Arc<outbound::Policy>,
}

/// A loaded Spin application.
pub struct SpinApp {
    manifest: Manifest,
    components: BTreeMap<String, Loaded>,
    sqlite: Arc<sqlite::Databases>,
    limits: Limits,
    /// One permit per instance the pool can hold, for every caller (socket or in-process).
    slots: Arc<Semaphore>,
    /// How long loading took, and whether every component came from the cache.
    pub load_report: LoadReport,
}

/// The per-request state the imports use.
pub(crate) struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    hooks: outbound::Hooks,
    variables: Arc<BTreeMap<String, String>>,
    sqlite: sqlite::Access,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl SpinApp {
    /// Reads the manifest, resolves the variables (a missing required one is an error, as
    /// under `spin up`), opens the database and prepares every routed component, compiling
    /// it only when the cache has no artifact for it.
    pub fn load(options: &SpinOptions) -> anyhow::Result<SpinApp> {
        let started = Instant::now();
        let manifest = Manifest::read(&options.manifest)?;
        let values = manifest.resolve_variables(&options.variables)?;
        let vk_base = options
            .vk_api_base
            .as_deref()
            .map(crate::http::vk_api_base)
            .transpose()?;
        let engine = engine(options.limits)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::Imports::add_to_linker::<State, HasSelf<State>>(&mut linker, |state| state)?;
        let mut components = BTreeMap::new();
        let mut all_cached = true;
        for route in &manifest.routes {
            if components.contains_key(&route.component) {
                continue;
            }
            let component = &manifest.components[&route.component];
            let bytes = std::fs::read(&component.source).with_context(|| {
                format!(
                    "cannot read component `{}` from {} (build it with `make spin-plugin`)",
                    route.component,
                    component.source.display()
                )
            })?;
            let (compiled, from_cache) = cached_component(&engine, &bytes, &options.cache_dir)?;
            all_cached &= from_cache;
            let pre = ProxyPre::new(linker.instantiate_pre(&compiled)?)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component `{}` is not a wasi:http handler", route.component)
                })?;
            let variables = component
                .variables
                .iter()
                .filter_map(|(name, template)| {
                    manifest::render(template, &values).map(|value| (name.clone(), value))
                })
                .collect();
            let outbound = outbound::Policy {
                allowed: component.allowed_outbound_hosts.clone(),
                vk_base: vk_base.clone(),
                margin: options.limits.outbound_margin(),
            };
            components.insert(
                route.component.clone(),
                Loaded {
                    pre,
                    variables: Arc::new(variables),
                    databases: component.sqlite_databases.clone().into(),
                    outbound: Arc::new(outbound),
                },
            );
        }
        let sqlite = sqlite::Databases::open(&options.database, options.limits.memory_bytes)?;
        tick_epochs(&engine)?;
        Ok(SpinApp {
            manifest,
            components,
            sqlite: Arc::new(sqlite),
            limits: options.limits,
            slots: Arc::new(Semaphore::new(options.limits.instances as usize)),
            load_report: LoadReport {
                from_cache: all_cached,
                load_time: started.elapsed(),
            },
        })
    }

    /// The application's manifest, as read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Handles one request in-process, without a socket (the benchmark's entry point):
    /// `path` may carry a query. Returns the status and the body. Must be awaited inside a
    /// multi-threaded tokio runtime: outgoing HTTP runs on it.
    pub async fn handle(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .body(Bytes::from(body));
        let response = match request {
            Ok(request) => self.respond(request).await,
            Err(error) => response(vk_api::Response::error(
                400,
                "malformed-request",
                &error.to_string(),
            )),
        };
        (response.status().as_u16(), response.into_body().to_vec())
    }

    /// Runs the component routed for `request` on a fresh instance. The instance runs on a
    /// blocking thread of its own: SQLite calls block (a writer waits for the lock), and
    /// must not stall the runtime's workers, which carry every other request.
    async fn respond(&self, request: http::Request<Bytes>) -> http::Response<Bytes> {
        let Some(loaded) = self
            .manifest
            .route(request.uri().path())
            .and_then(|id| self.components.get(id))
        else {
            return response(vk_api::Response::no_route());
        };
        let Ok(permit) = self.slots.clone().acquire_owned().await else {
            return response(CallError::ShuttingDown.into_response());
        };
        let state = State {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: self.limits.store_limits(),
            hooks: outbound::Hooks(
                loaded.outbound.clone(),
                Instant::now() + self.limits.deadline,
            ),
            variables: loaded.variables.clone(),
            sqlite: sqlite::Access::new(self.sqlite.clone(), loaded.databases.clone()),
        };
        let pre = loaded.pre.clone();
        let limits = self.limits;
        let runtime = tokio::runtime::Handle::current();
        let (reply, answer) = tokio::sync::oneshot::channel();
        // The instance may keep working after its answer (work that must not hold VK's `ok`
        // up); it keeps its permit, and its deadline, until it returns.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            runtime.block_on(run(pre, state, request, limits, reply))
        });
        answer
            .await
            .unwrap_or_else(|_| Err(Fault::Trap("the component's thread ended".to_owned())))
            .unwrap_or_else(|fault| response(CallError::Fault(fault).into_response()))
    }
}

/// Instantiates the component, hands it the request and sends its response to `reply` as
/// soon as the response is complete; then lets the guest finish (all within the deadline).
/// A fault before the response is the reply; a fault after it is only logged.
async fn run(
    pre: ProxyPre<State>,
    state: State,
    request: http::Request<Bytes>,
    limits: Limits,
    reply: tokio::sync::oneshot::Sender<Result<http::Response<Bytes>, Fault>>,
) {
    let reply = std::cell::RefCell::new(Some(reply));
    let deliver = |result: Result<http::Response<Bytes>, Fault>| match reply.borrow_mut().take() {
        Some(sender) => {
            sender.send(result).ok();
        }
        None => {
            if let Err(fault) = result {
                eprintln!("vk-host: component fault after its answer: {fault}");
            }
        }
    };
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(limits.deadline_ticks());
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let prepared = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request.map(Full::new))
        .and_then(|request| {
            Ok((
                request,
                store.data_mut().http().new_response_outparam(sender)?,
            ))
        });
    let (request, out) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return deliver(Err(Fault::of(&error))),
    };
    let guest = async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, out)
            .await
        // The store ends here, and with it the response sender if the guest never used it.
    };
    let answer = async {
        let response = receiver.await.ok()?.ok()?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY).collect().await.ok()?;
        deliver(Ok(http::Response::from_parts(parts, body.to_bytes())));
        Some(())
    };
    let outcome =
        tokio::time::timeout(limits.deadline, async { tokio::join!(guest, answer) }).await;
    match outcome {
        Err(_) => deliver(Err(Fault::Timeout)),
        Ok((Err(error), _)) => deliver(Err(Fault::of(&error))),
        Ok((Ok(()), answered)) => {
            if answered.is_none() {
                deliver(Err(Fault::Trap(
                    "the component gave no complete response".to_owned(),
                )));
            }
        }
    }
}

/// An answer of the host's own as a response.
fn response(answer: vk_api::Response) -> http::Response<Bytes> {
    http::Response::builder()
        .status(answer.status)
        .header(http::header::CONTENT_TYPE, answer.content_type)
        .body(Bytes::from(answer.body))
        .expect("a valid status and header")
}

/// The HTTP server of `serve-spin`: every request goes to [`SpinApp::respond`] after its
/// body is read (at most [`MAX_BODY`] bytes; more is `413` before any component runs).
pub fn router(app: Arc<SpinApp>) -> axum::Router {
    crate::api::guarded(
        axum::Router::new().fallback(move |request: axum::extract::Request| {
            let app = app.clone();
            async move {
                let response = match crate::server::read_request(request).await {
                    Ok((parts, body, _in_progress)) => {
                        app.respond(http::Request::from_parts(parts, body)).await
                    }
                    Err(refusal) => response(refusal),
                };
                response.map(axum::body::Body::from)
            }
        }),
    )
}
