//! Loading and calling the plugin component.
//!
//! The component is compiled once and cached on disk (keyed by its bytes and the engine's
//! compatibility hash), imports are resolved once (`InstancePre`), and instances come from a
//! pooling allocator; calls run in parallel, each on an instance no other call is using.
//! An instance serves up to [`Limits::calls_per_instance`] calls one after the other and is
//! then dropped; one whose call trapped or timed out, or whose memory grew past
//! [`RECYCLE_ABOVE`], is dropped at once (see `docs/architecture.md`, "Instances", for the
//! isolation this trades). Each call has a deadline (epoch interruption) and a memory cap; a
//! trap or a timeout fails that call only.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::http::Outbound;
use crate::imports::{Imports, ImportsView};
use crate::storage::{Namespace, SharedStore};

/// The host side of the WIT world.
pub mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "vk-plugin" });
}

use bindings::{VkPlugin, VkPluginPre};

/// Memory of a finished instance reset in place rather than given back to the kernel.
const KEEP_RESIDENT: usize = 2 << 20;
/// Decommits of finished instances' memory gathered into one batch.
const DECOMMIT_BATCH: usize = 16;

/// An instance whose linear memory grew past this is not given another call: a fresh one
/// starts near 1 MiB, and one large answer should not keep its heap for good.
const RECYCLE_ABOVE: usize = 8 << 20;

/// Set (to anything) in the environment, the engine writes a perf map of the compiled guest
/// code, so that `perf report` names the component's functions.
const PERF_MAP: &str = "VK_HOST_PERF_MAP";

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What a call may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall time of one call, host calls included.
    pub deadline: Duration,
    /// Linear memory of one instance.
    pub memory_bytes: usize,
    /// Instances alive at once (the pool's size).
    pub instances: u32,
    /// Of those, how many may be waiting for VK after giving up their lane (see [`Lane`]).
    pub waiting_on_vk: u32,
    /// How many calls one instance serves before it is dropped; 1: a fresh instance for
    /// every call.
    pub calls_per_instance: u32,
}

impl Limits {
    /// The per-instance caps a `Store` enforces.
    pub(crate) fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .instances(16)
            .trap_on_grow_failure(true)
            .build()
    }

    /// Instances that run calls; the rest are for calls waiting on VK.
    pub fn running(&self) -> u32 {
        self.instances - self.waiting_on_vk
    }

    /// What is left of a call's time when its last outbound request must give up, so that
    /// the call can still record the outcome and answer before its deadline.
    pub(crate) fn outbound_margin(&self) -> Duration {
        (self.deadline / 5).min(Duration::from_secs(2))
    }

    /// The deadline in epoch ticks, for `Store::set_epoch_deadline`.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let ticks = (self.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            instances: 128,
            waiting_on_vk: 64,
            calls_per_instance: 1000,
        }
    }
}

/// The per-call state the imports use.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Metered,
    imports: Imports,
}

impl ImportsView for State {
    fn imports(&mut self) -> &mut Imports {
        &mut self.imports
    }
}

/// A store's caps, noting how far its linear memory has grown.
struct Metered {
    caps: StoreLimits,
    memory: usize,
}

impl ResourceLimiter for Metered {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.caps.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory = self.memory.max(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.caps.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.caps.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.caps.instances()
    }

    fn tables(&self) -> usize {
        self.caps.tables()
    }

    fn memories(&self) -> usize {
        self.caps.memories()
    }
}

/// Where a call stands in the host's admission of calls, and how long it may still run.
///
/// A call starts with a permit of its lane (VK's callbacks, or the operator API and the
/// outbox timer). When it first waits for VK, it trades that permit for one of the calls
/// waiting on VK, if one is free: a slow VK then holds instances set apart for waiting, not
/// the lane, and other employees' requests keep running.
pub struct Lane {
    permit: Option<OwnedSemaphorePermit>,
    waiting: Arc<Semaphore>,
    traded: bool,
    /// When the call is stopped.
    ends_at: Instant,
    margin: Duration,
}

impl Lane {
    /// How long the next outbound request may wait, so that the call still ends in time
    /// (`None`: no time is left for one); frees the call's lane for others.
    pub(crate) fn before_outbound(&mut self) -> Option<Duration> {
        if !self.traded
            && self.permit.is_some()
            && let Ok(waiting) = self.waiting.clone().try_acquire_owned()
        {
            self.permit = Some(waiting);
            self.traded = true;
        }
        let left = self
            .ends_at
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.margin);
        (!left.is_zero()).then_some(left)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why a call produced no answer of the plugin's.
#[derive(Debug)]
pub enum Fault {
    /// The call ran past its deadline and was stopped.
    Timeout,
    /// The guest trapped (a panic, out of memory, …) or could not be instantiated.
    Trap(String),
}

impl Fault {
    /// Classifies why a call into the guest failed: a deadline interrupt or anything else.
    pub(crate) fn of(error: &wasmtime::Error) -> Fault {
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Fault::Timeout,
            _ => Fault::Trap(format!("{error:#}")),
        }
    }

    /// The error code a caller sees. The detail (a trap's backtrace) is logged here, once,
    /// and never sent to the caller.
    pub(crate) fn report(&self) -> &'static str {
        eprintln!("vk-host: plugin fault: {self}");
        match self {
            Fault::Timeout => "plugin-timeout",
            Fault::Trap(_) => "plugin-fault",
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = if self.from_cache {
            "compiled code from the cache"
        } else {
            "compiled now"
        };
        write!(
            f,
            "loaded in {:.1} ms ({source})",
            self.load_time.as_secs_f64() * 1e3
        )
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Timeout => f.write_str("the plugin did not finish in time"),
            Fault::Trap(why) => write!(f, "the plugin failed: {why}"),
        }
    }
}

/// The loaded plugin, shared by every request.
pub struct Plugin {
    engine: Engine,
    pre: VkPluginPre<State>,
    store: Arc<Namespace>,
    http: Arc<Outbound>,
    limits: Limits,
    /// Permits for calls waiting on VK (see [`Lane`]).
    waiting: Arc<Semaphore>,
    /// Instances between calls, the last one used on top.
    idle: Mutex<Vec<Warm>>,
    /// How long loading took, and whether the compiled code came from the cache.
    pub load_report: LoadReport,
}

/// An instance with its store, kept for further calls.
struct Warm {
    store: Store<State>,
    plugin: VkPlugin,
    calls: u32,
}

/// How the plugin was loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub from_cache: bool,
    pub load_time: Duration,
}

impl Plugin {
    /// Loads `wasm`, compiling it only when the cache in `cache_dir` has no artifact for it.
    pub fn load(
        wasm: &Path,
        cache_dir: &Path,
        store: SharedStore,
        http: Arc<Outbound>,
        limits: Limits,
    ) -> anyhow::Result<Plugin> {
        let started = std::time::Instant::now();
        let engine = engine(limits)?;
        let bytes = std::fs::read(wasm).with_context(|| {
            format!(
                "cannot read the plugin {} (build it with `make plugin`)",
                wasm.display()
            )
        })?;
        let (component, from_cache) = cached_component(&engine, &bytes, cache_dir)?;
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        crate::imports::add_to_linker(&mut linker)?;
        let pre = VkPluginPre::new(linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .context("the component does not export the vk-plugin world")?;
        tick_epochs(&engine)?;
        Ok(Plugin {
            engine,
            pre,
            store: Arc::new(Namespace::plugin(store)),
            http,
            limits,
            waiting: Arc::new(Semaphore::new(limits.waiting_on_vk as usize)),
            idle: Mutex::new(Vec::new()),
            load_report: LoadReport {
                from_cache,
                load_time: started.elapsed(),
            },
        })
    }

    /// Runs `call` on an instance no other call is using, on this thread: a thread of the
    /// async executor only where nothing in the call blocks it for long (`App::on_executor`).
    pub fn call<R>(
        &self,
        call: impl FnOnce(&VkPlugin, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        self.call_in_lane(None, call)
    }

    /// [`Plugin::call`] for a call admitted with `permit`, which it holds until it ends or
    /// trades for a wait on VK (see [`Lane`]).
    pub fn call_in_lane<R>(
        &self,
        permit: Option<OwnedSemaphorePermit>,
        call: impl FnOnce(&VkPlugin, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let lane = Lane {
            permit,
            waiting: self.waiting.clone(),
            traded: false,
            ends_at: Instant::now() + self.limits.deadline,
            margin: self.limits.outbound_margin(),
        };
        let reused = self
            .idle
            .lock()
            .expect("the idle list is never poisoned")
            .pop();
        let mut warm = match reused {
            Some(warm) => warm,
            None => self.instantiate().map_err(|error| Fault::of(&error))?,
        };
        warm.store.data_mut().imports.lane = lane;
        warm.store.set_epoch_deadline(self.limits.deadline_ticks());
        // A call that failed leaves its instance behind: a trap may have left it anywhere.
        let answer = call(&warm.plugin, &mut warm.store).map_err(|error| Fault::of(&error))?;
        self.keep(warm);
        Ok(answer)
    }

    /// A new instance in a store of its own.
    fn instantiate(&self) -> wasmtime::Result<Warm> {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: Metered {
                caps: self.limits.store_limits(),
                memory: 0,
            },
            imports: Imports {
                store: self.store.clone(),
                http: self.http.clone(),
                lane: Lane {
                    permit: None,
                    waiting: self.waiting.clone(),
                    traded: false,
                    ends_at: Instant::now(),
                    margin: Duration::ZERO,
                },
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(self.limits.deadline_ticks());
        let plugin = self.pre.instantiate(&mut store)?;
        Ok(Warm {
            store,
            plugin,
            calls: 0,
        })
    }

    /// Ends a call that returned: its lane is given back, and its instance is kept for the
    /// next call unless it served its share, grew large, or enough are kept already.
    fn keep(&self, mut warm: Warm) {
        warm.calls += 1;
        let state = warm.store.data_mut();
        state.imports.lane.permit = None;
        if warm.calls >= self.limits.calls_per_instance || state.limits.memory > RECYCLE_ABOVE {
            return;
        }
        let mut idle = self.idle.lock().expect("the idle list is never poisoned");
        if idle.len() < self.limits.running() as usize {
            idle.push(warm);
        }
    }

    /// The plugin's key space, for the native side of the benchmark.
    pub fn storage(&self) -> Arc<Namespace> {
        self.store.clone()
    }

    /// The plugin's outbound HTTP, for the native reference of `serve --native`.
    pub fn outbound(&self) -> Arc<Outbound> {
        self.http.clone()
    }
}

/// The engine every component of this host runs on: pooled instances sized by `limits`,
/// epoch interruption for deadlines.
pub(crate) fn engine(limits: Limits) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.instances)
        .total_core_instances(limits.instances * 4)
        .total_memories(limits.instances * 2)
        .total_tables(limits.instances * 4)
        .max_memory_size(limits.memory_bytes)
        // A finished instance's memory is reset with memset up to these sizes instead of
        // being returned to the kernel (madvise), and the rest is returned in batches: every
        // madvise flushes the TLB of every core (IPIs), which a profile of `vk-host load`
        // showed as the largest kernel cost per call. Contents are reset either way.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .decommit_batch_size(DECOMMIT_BATCH);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        // A synchronous plugin needs none of the component-model-async machinery, which
        // triples the cost of a call.
        .concurrency_support(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `perf` names the guest's functions from /tmp/perf-<pid>.map (docs/benchmarks.md).
    if std::env::var_os(PERF_MAP).is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Ok(Engine::new(&config)?)
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] on a thread that ends with the engine.
pub(crate) fn tick_epochs(engine: &Engine) -> std::io::Result<()> {
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}

/// Loads the compiled artifact of `bytes` from the cache, compiling and storing it first if
/// it is not there.
pub(crate) fn cached_component(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: &Path,
) -> anyhow::Result<(Component, bool)> {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut key = Sha256::new();
    key.update(bytes);
    key.update(engine_hash.finish().to_le_bytes());
    let name: String = key.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path: PathBuf = cache_dir.join(format!("{name}.cwasm"));
    let from_cache = path.exists();
    if !from_cache {
        std::fs::create_dir_all(cache_dir).with_context(|| {
            format!("cannot create the cache directory {}", cache_dir.display())
        })?;
        let artifact = engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("the plugin is not a valid component")?;
        let partial = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&partial, artifact)?;
        std::fs::rename(&partial, &path)?;
    }
    // SAFETY: the artifact was written by this host from the plugin's bytes (its name is the
    // hash of those bytes and of this engine's configuration), never taken from elsewhere.
    let component = unsafe { Component::deserialize_file(engine, &path) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load the compiled plugin {}", path.display()))?;
    Ok((component, from_cache))
}
