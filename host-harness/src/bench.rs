//! `vk-host bench`: the same workload through vk-core natively and through the plugin
//! component in this host, on the same kind of storage, in one run, reported side by side.
//!
//! It measures (1) `message_new` callbacks — the webhook's hot path — per second and per
//! callback (p50/p99), on an instance serving many calls as in `serve` (and on a fresh one per
//! call for comparison), both through
//! the typed `webhook` export and through the `api` export that `serve` mounts (routing and
//! JSON included); (2) the cost of instantiation alone; (3) listing open lines and reading a
//! dialog's messages with tens of thousands of dialogs stored, which must not scan the
//! whole store (the native page is measured with a 25th of the dialogs stored too).
//!
//! Every series is preceded by `WARM_UP` untimed calls of its own step on its own state, so
//! caches, allocators and the instance pool are warm when the timing starts. The series of
//! one table run in turns of `TURN` calls each, so that the machine's changes of speed fall
//! on all of them alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vk_core::Core;
use vk_core::dialog::DialogStatus;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Offline, Store, SystemClock};
use vk_core::settings::SettingsUpdate;

use crate::http::Outbound;
use crate::plugin::bindings::exports::mybusiness::vk::api;
use crate::plugin::bindings::mybusiness::vk::types::DialogStatus as WitStatus;
use crate::plugin::{Limits, Plugin};
use crate::spin::{Database, SpinApp, SpinOptions};
use crate::storage::{Namespace, SharedStore};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub plugin: std::path::PathBuf,
    /// The Spin manifest whose component is measured as the third path.
    pub spin_manifest: std::path::PathBuf,
    pub cache_dir: std::path::PathBuf,
    pub callbacks: usize,
    pub dialogs: usize,
    pub reads: usize,
}

/// The community of the callbacks (`vk-host load` uses it too).
pub(crate) const GROUP: i64 = 218_765_432;
const SECRET: &str = "bench-secret";

/// Untimed calls of a series' step before its measured ones.
const WARM_UP: usize = 200;

/// Calls of one step in a row when several are measured in turns ([`Series::together`]).
const TURN: usize = 100;

/// The width of a table's first column.
const LABEL: usize = 52;

/// One call of a measured series, given its index.
type Step<'a> = Box<dyn FnMut(usize) + 'a>;

/// Latencies of one measured series.
struct Series {
    label: String,
    samples: Vec<Duration>,
    total: Duration,
}

impl Series {
    /// Calls `step(0..WARM_UP)` untimed, then `step(WARM_UP..WARM_UP + count)` timed: a step
    /// is given its call's index, and inputs indexed by it must cover both runs.
    fn measure(label: impl Into<String>, count: usize, step: impl FnMut(usize)) -> Series {
        let [series] = Series::together(count, [(label.into(), Box::new(step) as Step<'_>)]);
        series
    }

    /// Measures several steps in turns of [`TURN`] calls: calls `0..TURN` of every step, then
    /// the next `TURN` of every step, and so on (the untimed [`WARM_UP`] calls first, the
    /// same way). A machine that speeds up or slows down during the run then does so for all
    /// of them alike, so their ratios hold on a noisy machine, while each turn is long enough
    /// for the caches to hold that step's code and data, as they do for a run of one step.
    fn together<const N: usize>(count: usize, steps: [(String, Step<'_>); N]) -> [Series; N] {
        let (labels, mut steps): (Vec<String>, Vec<Step<'_>>) = steps.into_iter().unzip();
        let mut samples = vec![Vec::with_capacity(count); N];
        let mut first = 0;
        while first < WARM_UP + count {
            let turn = first..(first + TURN).min(WARM_UP + count);
            for (step, samples) in steps.iter_mut().zip(&mut samples) {
                for n in turn.clone() {
                    let t = Instant::now();
                    step(n);
                    if n >= WARM_UP {
                        samples.push(t.elapsed());
                    }
                }
            }
            first = turn.end;
        }
        let mut labels = labels.into_iter();
        let mut samples = samples.into_iter();
        std::array::from_fn(|_| {
            let mut samples = samples.next().expect("one per step");
            samples.sort();
            Series {
                label: labels.next().expect("one per step"),
                total: samples.iter().sum(),
                samples,
            }
        })
    }

    fn mean(&self) -> Duration {
        self.total / self.samples.len() as u32
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.samples, p)
    }

    fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.total.as_secs_f64()
    }

    fn row(&self) -> String {
        format!(
            "| {:<LABEL$} | {:>10.0} | {:>9.1} | {:>9.1} |",
            self.label,
            self.per_second(),
            micros(self.percentile(0.5)),
            micros(self.percentile(0.99))
        )
    }
}

/// The sample at fraction `p` (0 to 1) of sorted, non-empty `samples` (nearest rank).
pub(crate) fn percentile(samples: &[Duration], p: f64) -> Duration {
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn micros(time: Duration) -> f64 {
    time.as_secs_f64() * 1e6
}

/// A Markdown table of series, one row each.
fn print_table(what: &str, rows: &[&Series]) {
    println!(
        "| {what:<LABEL$} | {:>10} | {:>9} | {:>9} |",
        "per second", "p50 µs", "p99 µs"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(LABEL + 2),
        "-".repeat(12),
        "-".repeat(11),
        "-".repeat(11)
    );
    for series in rows {
        println!("{}", series.row());
    }
}

/// How many times `slow` takes the time of `fast` per call: on average and at the median.
fn print_ratio(what: &str, slow: &Series, fast: &Series) {
    println!(
        "{what}: {:.2}× (p50 {:.2}×)\n",
        slow.mean().as_secs_f64() / fast.mean().as_secs_f64(),
        slow.percentile(0.5).as_secs_f64() / fast.percentile(0.5).as_secs_f64()
    );
}

/// The `n`-th callback of a series. 100 people: the first message of each creates a lead and
/// a dialog, the rest append. The `WARM_UP` untimed ones come from 100 other people, so the
/// measured ones still begin with the first message of each of theirs.
fn callback(n: usize) -> Vec<u8> {
    let people = if n < WARM_UP { 101 } else { 1 };
    let user = (n % 100) as i64 + people;
    json!({
        "type": "message_new", "group_id": GROUP, "event_id": format!("bench-{n}"), "v": "5.199", "secret": SECRET,
        "object": {"message": {"id": n + 1, "date": 1_767_261_600, "peer_id": user, "from_id": user,
                               "text": "Здравствуйте! Сколько стоит доставка в Казань?", "attachments": []},
                   "client_info": {"button_actions": ["text"], "keyboard": true}}
    })
    .to_string()
    .into_bytes()
}

/// A store with the community connected and one listed employee; returns the employee and
/// their bearer token.
fn connected(store: &dyn Store) -> (vk_core::EmployeeId, String) {
    let core = Core::new(store, &Offline, &SystemClock);
    let (employee, token) = core.create_employee("Bench").expect("an employee");
    core.put_settings(SettingsUpdate {
        secret: Some(SECRET.into()),
        confirmation: Some("ok-confirm".into()),
        employees: Some(vec![employee.id]),
        ..SettingsUpdate::default()
    })
    .expect("settings");
    let confirm = json!({"type": "confirmation", "group_id": GROUP, "secret": SECRET}).to_string();
    core.handle_callback(confirm.as_bytes())
        .expect("confirmation");
    (employee.id, token)
}

/// A request as `serve` hands it to the `api` export.
fn api_request(method: &str, path: &str, token: Option<&str>, body: &[u8]) -> api::Request {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (path, None),
    };
    api::Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers: token
            .map(|t| ("authorization".to_owned(), format!("Bearer {t}")))
            .into_iter()
            .collect(),
        body: body.to_vec(),
    }
}

/// Runs one request through the plugin's `api` export; panics unless it answers `status`.
fn through_api(plugin: &Plugin, request: &api::Request, status: u16) {
    let answer = plugin
        .call(|p, s| {
            let config = api::HostConfig {
                admin_token: None,
                public_url: None,
            };
            p.mybusiness_vk_api().call_handle(s, request, &config)
        })
        .expect("no fault");
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// Runs one request through vk-api natively; panics unless it answers `status`.
fn through_native_api(core: &Core<'_>, request: &api::Request, status: u16) {
    let answer = vk_api::handle(
        core,
        &vk_api::Config::default(),
        &crate::api::native(request),
    );
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

/// The plugin as `serve` loads it: each instance serves many calls.
fn load(options: &Options, store: SharedStore) -> anyhow::Result<Plugin> {
    load_with(options, store, Limits::default())
}

/// The plugin with a fresh instance for every call (`--calls-per-instance 1`).
fn load_fresh(options: &Options, store: SharedStore) -> anyhow::Result<Plugin> {
    let limits = Limits {
        calls_per_instance: 1,
        ..Limits::default()
    };
    load_with(options, store, limits)
}

fn load_with(options: &Options, store: SharedStore, limits: Limits) -> anyhow::Result<Plugin> {
    let http = Arc::new(Outbound::new(None, Duration::from_secs(1), 1 << 20)?);
    Plugin::load(&options.plugin, &options.cache_dir, store, http, limits)
}

/// Runs everything and prints a report in Markdown.
pub fn run(options: &Options) -> anyhow::Result<()> {
    let wasm_size = std::fs::metadata(&options.plugin)?.len();
    println!("# vk-host bench\n");
    println!(
        "machine: {} {}, {} CPUs; every series after {WARM_UP} untimed calls of its own step, the series of a table in turns",
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(1, |cpus| cpus.get())
    );
    println!("plugin: {} ({} bytes)", options.plugin.display(), wasm_size);
    let cold_cache = std::env::temp_dir().join(format!("vk-bench-cache-{}", std::process::id()));
    // The same load twice into a new cache: the first compiles, the second finds the artifact.
    let [cold, warm] = [(), ()].map(|()| {
        let cache = Options {
            cache_dir: cold_cache.clone(),
            ..options.clone()
        };
        load(&cache, Arc::new(MemoryStore::new()))
    });
    let (cold, warm) = (cold?, warm?);
    std::fs::remove_dir_all(&cold_cache).ok();
    println!(
        "load: compile + cache {:.1} ms, from the cached artifact {:.2} ms\n",
        cold.load_report.load_time.as_secs_f64() * 1e3,
        warm.load_report.load_time.as_secs_f64() * 1e3
    );

    let n = options.callbacks;
    let bodies: Vec<Vec<u8>> = (0..WARM_UP + n).map(callback).collect();

    let native_store: SharedStore = Arc::new(MemoryStore::new());
    let native_view = Namespace::plugin(native_store);
    connected(&native_view);
    let native_core = Core::new(&native_view, &Offline, &SystemClock);
    let requests: Vec<api::Request> = bodies
        .iter()
        .map(|body| api_request("POST", crate::api::CALLBACK_PATH, None, body))
        .collect();
    let api_store = Namespace::plugin(Arc::new(MemoryStore::new()));
    connected(&api_store);
    let api_core = Core::new(&api_store, &Offline, &SystemClock);
    let plugin = load(options, Arc::new(MemoryStore::new()))?;
    connected(plugin.storage().as_ref());
    let api_plugin = load(options, Arc::new(MemoryStore::new()))?;
    connected(api_plugin.storage().as_ref());
    let fresh_plugin = load_fresh(options, Arc::new(MemoryStore::new()))?;
    connected(fresh_plugin.storage().as_ref());
    let spin = spin_step(options, &bodies)?;
    let webhook = |plugin: &Plugin, i: usize| {
        plugin
            .call(|p, s| p.mybusiness_vk_webhook().call_handle(s, &bodies[i]))
            .expect("no fault")
            .expect("accepted");
    };
    let [
        native,
        native_api,
        component,
        component_api,
        fresh,
        spin,
        instantiate,
    ] = Series::together(
        n,
        [
            (
                "message_new, vk-core native".into(),
                Box::new(|i| {
                    native_core
                        .handle_callback(&bodies[i])
                        .expect("native callback");
                }),
            ),
            (
                "message_new, vk-api native".into(),
                Box::new(|i| through_native_api(&api_core, &requests[i], 200)),
            ),
            (
                "message_new, component webhook export".into(),
                Box::new(|i| webhook(&plugin, i)),
            ),
            (
                "message_new, component api export (serve)".into(),
                Box::new(|i| through_api(&api_plugin, &requests[i], 200)),
            ),
            (
                "message_new, webhook export, fresh instance".into(),
                Box::new(|i| webhook(&fresh_plugin, i)),
            ),
            (
                "message_new, Spin component (wasi:http, SQLite)".into(),
                spin,
            ),
            (
                "instantiate + drop only".into(),
                Box::new(|_| {
                    fresh_plugin.call(|_, _| Ok(())).expect("instantiates");
                }),
            ),
        ],
    );

    println!("## Callbacks ({n} message_new, 100 people, in-memory store, one thread)\n");
    print_table(
        "path",
        &[
            &native,
            &native_api,
            &component,
            &component_api,
            &fresh,
            &spin,
            &instantiate,
        ],
    );
    println!();
    print_ratio("component / native time per callback", &component, &native);
    print_ratio(
        "component api export / vk-api native time per callback",
        &component_api,
        &native_api,
    );
    print_ratio(
        "fresh instance per call / instance serving many calls",
        &fresh,
        &component,
    );
    print_ratio("Spin component / native time per callback", &spin, &native);
    print_ratio(
        "Spin component / component webhook export time per callback",
        &spin,
        &component,
    );
    println!(
        "component - native per callback: {:.1} µs (mean), {:.1} µs (p50); \
         a fresh instance's instantiate + drop alone: {:.1} µs (mean), {:.1} µs (p50)\n",
        micros(component.mean()) - micros(native.mean()),
        micros(component.percentile(0.5)) - micros(native.percentile(0.5)),
        micros(instantiate.mean()),
        micros(instantiate.percentile(0.5))
    );

    lists(options)?;
    Ok(())
}

/// The same callbacks through the Spin component (`wasi:http` request in, SQLite in memory
/// behind the Spin interface), handled in-process: no socket, like the other two paths.
/// Call `i` is `bodies[i]`.
fn spin_step<'a>(options: &Options, bodies: &'a [Vec<u8>]) -> anyhow::Result<Step<'a>> {
    let variables = [
        ("access_token", ""),
        ("secret", SECRET),
        ("confirmation", "ok-confirm"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .into();
    let app = SpinApp::load(&SpinOptions {
        manifest: options.spin_manifest.clone(),
        database: Database::Memory,
        vk_api_base: None,
        variables,
        cache_dir: options.cache_dir.clone(),
        limits: Limits::default(),
    })?;
    for component in app.manifest().components.values() {
        let size = std::fs::metadata(&component.source)?.len();
        println!(
            "Spin component: {} ({size} bytes)\n",
            component.source.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let post =
        move |body: Vec<u8>| runtime.block_on(app.handle("POST", crate::api::CALLBACK_PATH, body));
    let confirm = json!({"type": "confirmation", "group_id": GROUP, "secret": SECRET}).to_string();
    let (status, _) = post(confirm.into_bytes());
    anyhow::ensure!(
        status == 200,
        "the Spin component refused the confirmation ({status})"
    );
    Ok(Box::new(move |i| {
        let (status, answer) = post(bodies[i].clone());
        assert_eq!(
            (status, answer.as_slice()),
            (200, &b"ok"[..]),
            "the Spin component accepted it"
        );
    }))
}

/// Open lines and a dialog's messages with `options.dialogs` dialogs stored.
fn lists(options: &Options) -> anyhow::Result<()> {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let plugin = load(options, store)?;
    let view = plugin.storage();
    let (employee, token) = connected(view.as_ref());
    let core = Core::new(view.as_ref(), &Offline, &SystemClock);
    // Stores the dialogs with these numbers; returns how long that took.
    let fill = |dialogs: std::ops::Range<usize>| {
        let started = Instant::now();
        for d in dialogs {
            let user = d as i64 + 1_000_000;
            let body = json!({"type": "message_new", "group_id": GROUP, "event_id": format!("fill-{d}"), "secret": SECRET,
                "object": {"message": {"id": 1, "peer_id": user, "from_id": user, "text": "hi"}}});
            core.handle_callback(body.to_string().as_bytes())
                .expect("fill");
        }
        started.elapsed()
    };
    let open_page = || {
        core.dialogs(employee, DialogStatus::Open, None, 50)
            .expect("list")
    };
    let reads = options.reads;
    // The first page with a 25th of the dialogs stored too: a page costs the same with more.
    let few = options.dialogs / 25;
    let mut filled = fill(0..few);
    let few_page = Series::measure(
        format!("open lines, first page of 50, native, {few} dialogs"),
        reads,
        |_| {
            open_page();
        },
    );
    filled += fill(few..options.dialogs);
    let ids: Vec<_> = open_page().items.iter().map(|d| d.id).collect();
    let keys = view.scan("", None, u32::MAX).map(|e| e.len()).unwrap_or(0);
    println!(
        "## Lists with {} dialogs ({keys} keys; filled in {:.1} s)\n",
        options.dialogs,
        filled.as_secs_f64()
    );
    let actor = employee.to_string();
    let open_lines = api_request("GET", "/api/dialogs?limit=50", Some(&token), b"");
    let pages = Series::together(
        reads,
        [
            (
                "open lines, first page of 50, native".into(),
                Box::new(|_| {
                    open_page();
                }),
            ),
            (
                "open lines, first page of 50, component".into(),
                Box::new(|_| {
                    plugin
                        .call(|p, s| {
                            p.mybusiness_vk_dialogs().call_open_lines(
                                s,
                                &actor,
                                WitStatus::Open,
                                None,
                                50,
                            )
                        })
                        .expect("no fault")
                        .expect("listed");
                }),
            ),
            (
                "open lines, page of 50 as JSON, vk-api native".into(),
                Box::new(|_| through_native_api(&core, &open_lines, 200)),
            ),
            (
                "open lines, page of 50 as JSON, component api".into(),
                Box::new(|_| through_api(&plugin, &open_lines, 200)),
            ),
            (
                "a dialog's messages, native".into(),
                Box::new(|i| {
                    core.messages(employee, ids[i % ids.len()], None, 50)
                        .expect("read");
                }),
            ),
            (
                "a dialog's messages, component".into(),
                Box::new(|i| {
                    let id = ids[i % ids.len()].to_string();
                    plugin
                        .call(|p, s| {
                            p.mybusiness_vk_dialogs()
                                .call_messages(s, &actor, &id, None, 50)
                        })
                        .expect("no fault")
                        .expect("read");
                }),
            ),
        ],
    );
    let series: Vec<&Series> = std::iter::once(&few_page).chain(&pages).collect();
    print_table("read", &series);
    idle_tab(&plugin, &core, &token, reads);
    Ok(())
}

/// What an open workspace tab costs the server while nothing changes: it polls
/// `GET /api/changes` once a second with the `ETag` it has, and gets an empty `304`.
fn idle_tab(plugin: &Plugin, core: &Core<'_>, token: &str, reads: usize) {
    let stamp = core.change_stamp().expect("a stamp");
    let mut poll = api_request("GET", "/api/changes", Some(token), b"");
    poll.headers
        .push(("if-none-match".to_owned(), format!("\"{stamp}\"")));
    let series = Series::measure("idle tab poll (304), component api", reads, |_| {
        through_api(plugin, &poll, 304);
    });
    println!();
    print_table("poll", &[&series]);
    let per_minute = series.mean() * 60;
    println!(
        "an idle open tab: 60 polls a minute cost {:.2} ms of one core a minute ({:.4} % of it)\n",
        per_minute.as_secs_f64() * 1e3,
        per_minute.as_secs_f64() / 60.0 * 100.0
    );
}
