//! `vk-host`: serves the VK community plugin (see `vk-host --help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::Semaphore;
use vk_host::api::{self, App};
use vk_host::database::DbStore;
use vk_host::http::Outbound;
use vk_host::pg::PgStore;
use vk_host::plugin::{Limits, Plugin};
use vk_host::server::{self, Bounds};
use vk_host::spin::{self, Database, SpinApp, SpinOptions};
use vk_host::storage::{self, SharedStore};

/// The plugin as the build leaves it (`make plugin`).
const DEFAULT_PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/wasm32-wasip2/release/vk_plugin.wasm"
);

/// The reference host of the VK community plugin for the CRM.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the plugin and serve VK's callbacks and the operator API over HTTP.
    Serve(Serve),
    /// Measure the plugin component against vk-core natively (see docs/benchmarks.md).
    Bench(Bench),
    /// Run a Spin application's HTTP components (spin.toml) without the Spin CLI.
    ServeSpin(ServeSpin),
    /// Load `serve` (durable, `--memory`, native reference) and `serve-spin` over HTTP with
    /// `message_new` callbacks (see docs/benchmarks.md).
    Load(Load),
}

#[derive(Args)]
struct Load {
    /// The plugin component (.wasm).
    #[arg(long, default_value = DEFAULT_PLUGIN)]
    plugin: PathBuf,
    /// Where compiled plugin code is cached.
    #[arg(long, default_value = ".vk-host-cache")]
    cache_dir: PathBuf,
    /// The offered rate of the open-loop phase, callbacks per second.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// How long each phase (open loop, saturation) lasts, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections of the saturation phase (closed loop).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Known people the callbacks come from (each writes once before the timing starts).
    #[arg(long, default_value_t = 1_000)]
    people: usize,
    /// The Spin app measured as a third column (`serve-spin` on a SQLite file).
    #[arg(long, default_value = "spin.toml")]
    spin_manifest: PathBuf,
    /// Measure `serve` only (durable, `--memory` and native), not the Spin app.
    #[arg(long)]
    no_spin: bool,
    /// Also measure `serve --db postgres://…` with one host and with two, each on a fresh
    /// database created on this PostgreSQL server (postgres://user@host:port/dbname; the
    /// user needs CREATEDB) and dropped afterwards.
    #[arg(long)]
    postgres: Option<String>,
}

#[derive(Args)]
struct ServeSpin {
    /// The Spin application's manifest; component sources are relative to its folder.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The `default` SQLite database file [default: .spin/sqlite_db.db beside the manifest,
    /// the file `spin up` uses].
    #[arg(long)]
    sqlite: Option<PathBuf>,
    /// Keep the database in memory instead (lost on exit).
    #[arg(long, conflicts_with = "sqlite")]
    memory: bool,
    /// Where VK's API is reached instead of https://api.vk.com (e.g. a local stand-in).
    #[arg(long)]
    vk_api_base: Option<String>,
    /// An application variable, NAME=VALUE (repeatable). SPIN_VARIABLE_<NAME> in the
    /// environment works too, and keeps secrets out of the process list.
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = spin_variable)]
    variables: Vec<(String, String)>,
    /// Where compiled components are cached.
    #[arg(long, default_value = ".vk-host-cache")]
    cache_dir: PathBuf,
    /// The longest one request may run, in milliseconds (waiting for VK included).
    #[arg(long, default_value_t = 30_000)]
    call_timeout_ms: u64,
    /// The most client connections open at once (kept below the file descriptor limit).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// How long a client connection may go without a request in progress, and how long a
    /// request's body may take to arrive, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
}

#[derive(Args)]
struct Bench {
    /// The plugin component (.wasm).
    #[arg(long, default_value = DEFAULT_PLUGIN)]
    plugin: PathBuf,
    /// The Spin manifest whose component is measured too.
    #[arg(long, default_value = "spin.toml")]
    spin_manifest: PathBuf,
    /// Where compiled plugin code is cached.
    #[arg(long, default_value = ".vk-host-cache")]
    cache_dir: PathBuf,
    /// How many `message_new` callbacks each path handles.
    #[arg(long, default_value_t = 5_000)]
    callbacks: usize,
    /// How many dialogs are stored when lists are measured.
    #[arg(long, default_value_t = 50_000)]
    dialogs: usize,
    /// How many list and read calls are measured.
    #[arg(long, default_value_t = 1_000)]
    reads: usize,
}

#[derive(Args)]
struct Serve {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The embedded database file, or a PostgreSQL URL (postgres://user@host:port/dbname)
    /// that several hosts share; a URL with a password is best given in the environment.
    #[arg(
        long,
        default_value = "./vk-crm.db",
        env = "VK_HOST_DB",
        hide_env_values = true
    )]
    db: PathBuf,
    /// The most connections to PostgreSQL this host keeps open (with a postgres:// --db).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    db_connections: u32,
    /// Keep everything in memory instead (lost on exit).
    #[arg(long, conflicts_with = "db")]
    memory: bool,
    /// The token that authorizes admin calls (settings, employees): at least 16 characters,
    /// not an example from the docs, unless `--local-trial`.
    #[arg(long, env = "VK_HOST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A trial on this machine: any admin token is accepted, and only a loopback address may
    /// be listened on.
    #[arg(long)]
    local_trial: bool,
    /// The address people and VK reach the product at, e.g. https://crm.example.com (behind
    /// a proxy): the callback address and sign-in links the workspace shows start with it
    /// [default: the address a request came to].
    #[arg(long)]
    public_url: Option<String>,
    /// The most client connections open at once (kept below the file descriptor limit).
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// How long a client connection may go without a request in progress, and how long a
    /// request's body may take to arrive, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
    /// Where VK's API is reached instead of https://api.vk.com (e.g. a local stand-in).
    #[arg(long)]
    vk_api_base: Option<String>,
    /// The plugin component (.wasm).
    #[arg(long, default_value = DEFAULT_PLUGIN)]
    plugin: PathBuf,
    /// Where compiled plugin code is cached.
    #[arg(long, default_value = ".vk-host-cache")]
    cache_dir: PathBuf,
    /// The longest one plugin call may run, in milliseconds (waiting for VK included).
    #[arg(long, default_value_t = 30_000)]
    call_timeout_ms: u64,
    /// The longest one request to VK may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    http_timeout_ms: u64,
    /// The memory one plugin instance may use, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// How many calls one plugin instance serves, one after the other, before a fresh one
    /// replaces it (1: a fresh instance for every call). One that failed is replaced at once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    calls_per_instance: u32,
    /// How often waiting messages are retried, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    flush_interval_ms: u64,
    /// Serve requests with the plugin's crates linked into the host instead of the component:
    /// a reference for `vk-host load`, without the guest's isolation (no deadline, memory cap
    /// or fault containment). Not for production.
    #[arg(long)]
    native: bool,
}

/// Responses from VK larger than this are refused.
const MAX_VK_RESPONSE: u64 = 4 << 20;

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Bench(args) => vk_host::bench::run(&vk_host::bench::Options {
            plugin: args.plugin,
            spin_manifest: args.spin_manifest,
            cache_dir: args.cache_dir,
            callbacks: args.callbacks,
            dialogs: args.dialogs,
            reads: args.reads,
        }),
        Command::ServeSpin(args) => serve_spin(args),
        Command::Load(args) => vk_host::load::run(&vk_host::load::Options {
            plugin: args.plugin,
            spin_manifest: (!args.no_spin).then_some(args.spin_manifest),
            cache_dir: args.cache_dir,
            rate: args.rate,
            seconds: args.seconds,
            connections: args.connections,
            people: args.people,
            postgres: args.postgres,
        }),
    };
    if let Err(error) = outcome {
        eprintln!("vk-host: {error:#}");
        std::process::exit(1);
    }
}

/// `--db` as a PostgreSQL URL, if it is one.
fn postgres_url(db: &std::path::Path) -> Option<&str> {
    db.to_str()
        .filter(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"))
}

fn serve(args: Serve) -> anyhow::Result<()> {
    check_admin_token(args.admin_token.as_deref(), args.local_trial, args.listen)?;
    let public_url = args
        .public_url
        .as_deref()
        .map(vk_host::http::public_url)
        .transpose()?;
    // Calls run on the executor unless every storage call waits for the network
    // (PostgreSQL).
    let (store, durability, on_executor): (SharedStore, _, _) = if args.memory {
        (Arc::new(vk_core::memory::MemoryStore::new()), None, true)
    } else if let Some(url) = postgres_url(&args.db) {
        let stamps = vk_core::STAMPS.map(storage::plugin_key);
        let store = PgStore::open(url, args.db_connections as usize, stamps.to_vec())?;
        (Arc::new(store), None, false)
    } else {
        let store = DbStore::open(&args.db)?;
        let durability = store.durability();
        (Arc::new(store), Some(durability), true)
    };
    let moved = vk_host::storage::adopt_host_directory(&store)?;
    if moved > 0 {
        eprintln!("vk-host: moved {moved} employees into the plugin's directory");
    }
    let http = Arc::new(
        Outbound::new(
            args.vk_api_base.as_deref(),
            Duration::from_millis(args.http_timeout_ms),
            MAX_VK_RESPONSE,
        )?
        .after_durable(durability.clone()),
    );
    let limits = Limits {
        deadline: Duration::from_millis(args.call_timeout_ms),
        memory_bytes: args.memory_mib << 20,
        calls_per_instance: args.calls_per_instance,
        ..Limits::default()
    };
    let plugin = Arc::new(Plugin::load(
        &args.plugin,
        &args.cache_dir,
        store,
        http,
        limits,
    )?);
    eprintln!(
        "vk-host: plugin {} {}",
        args.plugin.display(),
        plugin.load_report
    );
    if args.admin_token.is_none() {
        eprintln!(
            "vk-host: no admin token: the admin API is closed (set --admin-token or VK_HOST_ADMIN_TOKEN)"
        );
    }
    let intake = limits.running() / 4;
    let app = App {
        plugin,
        admin_token: args.admin_token.map(Arc::from),
        public_url: public_url.clone().map(Arc::from),
        slots: Arc::new(Semaphore::new((limits.running() - intake) as usize)),
        intake_slots: Arc::new(Semaphore::new(intake as usize)),
        native: args.native,
        durability,
        on_executor,
    };
    let every = Duration::from_millis(args.flush_interval_ms);
    let bounds = Bounds::new(args.max_connections, args.client_timeout_ms);
    serve_until_ctrl_c(
        args.listen,
        api::router(app.clone()),
        bounds,
        move |address| {
            let base = public_url.unwrap_or_else(|| format!("http://{address}"));
            eprintln!("vk-host: the workspace: {base}/");
            eprintln!("vk-host: VK callback address: {base}{}", api::CALLBACK_PATH);
            tokio::spawn(flush_forever(app, every));
        },
    )
}

/// Binds `listen`, says where, runs `started` (more log lines, background tasks) and serves
/// `router` within `bounds` until Ctrl-C.
fn serve_until_ctrl_c(
    listen: SocketAddr,
    router: axum::Router,
    bounds: Bounds,
    started: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let bounds = Bounds {
        max_connections: server::connection_cap(bounds.max_connections),
        ..bounds
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        eprintln!(
            "vk-host: listening on http://{address} (at most {} connections)",
            bounds.max_connections
        );
        started(address);
        let served = server::serve(listener, router, bounds, async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await;
        api::flush_request_log();
        Ok(served?)
    })
}

/// Admin tokens the docs show as examples; a server started with one is open to anyone who
/// read them.
const EXAMPLE_TOKENS: [&str; 8] = [
    "change-me",
    "changeme",
    "admin",
    "password",
    "secret",
    "token",
    "admin-token",
    "test",
];
/// The shortest admin token a server accepts outside a local trial.
const MIN_ADMIN_TOKEN: usize = 16;

/// Refuses a short or example admin token unless this is a local trial, and a local trial
/// anywhere but on a loopback address.
fn check_admin_token(
    token: Option<&str>,
    local_trial: bool,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    if local_trial {
        anyhow::ensure!(
            listen.ip().is_loopback(),
            "--local-trial listens on this machine only (a loopback address such as 127.0.0.1), not {listen}"
        );
        return Ok(());
    }
    let Some(token) = token.map(str::trim) else {
        return Ok(());
    };
    let example = EXAMPLE_TOKENS
        .iter()
        .any(|example| token.eq_ignore_ascii_case(example));
    anyhow::ensure!(
        !example && token.chars().count() >= MIN_ADMIN_TOKEN,
        "the admin token must be at least {MIN_ADMIN_TOKEN} characters and not an example from the docs \
         (generate one, e.g. `openssl rand -hex 24`), or add --local-trial for a trial on this machine"
    );
    Ok(())
}

/// The outbox timer: retries waiting messages and fills in missing names.
async fn flush_forever(app: App, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        match app.flush_outbox().await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => eprintln!("vk-host: outbox flush refused: {}", error.code),
            Err(error) => eprintln!("vk-host: outbox flush failed: {error:?}"),
        }
    }
}

/// `--variable NAME=VALUE`.
fn spin_variable(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| "expected NAME=VALUE".to_owned())
}

fn serve_spin(args: ServeSpin) -> anyhow::Result<()> {
    let database = if args.memory {
        Database::Memory
    } else {
        Database::File(args.sqlite.unwrap_or_else(|| {
            let dir = args.manifest.parent().unwrap_or(std::path::Path::new(""));
            dir.join(".spin").join("sqlite_db.db")
        }))
    };
    let options = SpinOptions {
        manifest: args.manifest,
        database,
        vk_api_base: args.vk_api_base,
        variables: args.variables.into_iter().collect(),
        cache_dir: args.cache_dir,
        limits: Limits {
            deadline: Duration::from_millis(args.call_timeout_ms),
            ..Limits::default()
        },
    };
    let app = Arc::new(SpinApp::load(&options)?);
    eprintln!(
        "vk-host: Spin app {} {}",
        options.manifest.display(),
        app.load_report
    );
    let routes: Vec<String> = app
        .manifest()
        .routes
        .iter()
        .map(|route| format!("vk-host: route {} -> {}", route.path, route.component))
        .collect();
    let bounds = Bounds::new(args.max_connections, args.client_timeout_ms);
    serve_until_ctrl_c(args.listen, spin::router(app), bounds, move |_| {
        for route in routes {
            eprintln!("{route}");
        }
    })
}
