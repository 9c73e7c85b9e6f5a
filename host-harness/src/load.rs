//! `vk-host load`: the host over real HTTP, as VK drives it, one store after the other.
//!
//! For each store it starts `vk-host serve` (this same program) as a child process: first
//! with the durable store (`--db` on a fresh file in a temporary folder), then with
//! `--memory`, then with `--memory --native` (the same crates linked into the host, no
//! component: the reference), then (unless `--no-spin`) `vk-host serve-spin` on a fresh
//! SQLite file, whose
//! access key, secret and confirmation string are Spin variables. Each child gets a VK
//! stand-in of its own, served by this process on loopback (`users.get` answers names,
//! `messages.send` an id), and an admin token. The community is connected through the API
//! (`PUT /api/settings`, then VK's `confirmation` callback), then
//! `--people` people write once each (untimed), so every measured callback comes from a
//! known person. Then `message_new` callbacks, each with a unique event id, are driven:
//!
//! - **open loop**: at a fixed offered rate for `--seconds`. Callback `i` is due at
//!   `start + i / rate`, whatever happened to earlier ones; `OPEN_CONNECTIONS` keep-alive
//!   connections take the due callbacks in order, and latency is measured from the time a
//!   callback was due, so a host that falls behind shows it as queueing;
//! - **saturation**: `--connections` keep-alive connections, each sending its next callback
//!   when the previous one is answered (closed loop), for `--seconds`.
//!
//! Every answer must be `200` with the body `ok`; the others are counted and reported, and
//! make the command fail after the report. The host's peak RSS is its `VmHWM`
//! (`/proc/<pid>/status`) after both phases; the CPU the host and this process spent in each
//! phase comes from their `/proc/<pid>/stat`.
//!
//! The client is a small HTTP/1.1 client over tokio's TCP (`Content-Length` framing, which
//! is what `serve` answers with), so the load generator costs little next to the host.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::api::CALLBACK_PATH;
use crate::bench::{GROUP, percentile};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub plugin: PathBuf,
    /// The Spin app measured as a third column (`serve-spin` on a SQLite file), if any.
    pub spin_manifest: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// The offered rate of the open-loop phase, callbacks per second.
    pub rate: f64,
    /// How long each phase lasts.
    pub seconds: f64,
    /// Connections of the saturation phase.
    pub connections: usize,
    /// Known people the callbacks come from.
    pub people: usize,
    /// A PostgreSQL server (`postgres://user@host:port/dbname`) to measure `serve --db
    /// postgres://…` on, with one host and with two sharing it, if any.
    pub postgres: Option<String>,
}

const SECRET: &str = "load-secret-7f3a91c2e4-Zx81kP0q";
const CONFIRMATION: &str = "5e1d9c0b";
const ACCESS_TOKEN: &str = "vk1.a.LOAD-ACCESS-KEY-0123456789abcdefAb3x";
const ADMIN: &str = "load-admin-token-4f9c2a71d0e8b365";

/// Connections of the open-loop phase: callbacks due while all of them wait for answers
/// start late, and that lateness is part of their latency.
const OPEN_CONNECTIONS: usize = 64;

/// How long a child may take to start listening (compiling the plugin included).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// How many distinct wrong answers are kept to show.
const ERRORS_SHOWN: usize = 5;

#[derive(Debug, Clone, Copy)]
enum Store {
    Durable,
    Memory,
    /// `serve --memory --native`: vk-api and vk-core linked into the host, no component.
    Native,
    /// `serve-spin` with its SQLite file.
    Spin,
    /// `serve --db postgres://…`, this many hosts on one fresh database.
    Postgres(usize),
}

impl Store {
    fn label(self) -> &'static str {
        match self {
            Store::Durable => "durable (`--db`)",
            Store::Memory => "`--memory`",
            Store::Native => "native core (`--memory --native`)",
            Store::Spin => "Spin app (`serve-spin`, SQLite file)",
            Store::Postgres(1) => "PostgreSQL, 1 host",
            Store::Postgres(_) => "PostgreSQL, 2 hosts",
        }
    }
}

/// The outcome of one phase.
#[derive(Default)]
struct Phase {
    /// Latency of every answered request, sorted.
    samples: Vec<Duration>,
    /// Requests not answered `200 ok` (transport failures included).
    errors: usize,
    /// A few of the wrong answers, for the report.
    examples: Vec<String>,
    /// From the first request's due time to the last answer.
    elapsed: Duration,
    /// CPU time (user and system) the host and this process spent during the phase, in
    /// seconds (NaN where `/proc` cannot tell).
    host_cpu: f64,
    load_cpu: f64,
}

impl Phase {
    /// Runs a phase and notes the CPU time the hosts (processes `pids`) and this process
    /// spent.
    async fn timed(pids: &[u32], phase: impl Future<Output = Phase>) -> Phase {
        let hosts = || -> f64 {
            pids.iter()
                .map(|pid| cpu_seconds(&format!("/proc/{pid}/stat")))
                .sum()
        };
        let (host_before, load_before) = (hosts(), cpu_seconds("/proc/self/stat"));
        let mut phase = phase.await;
        phase.host_cpu = hosts() - host_before;
        phase.load_cpu = cpu_seconds("/proc/self/stat") - load_before;
        phase
    }

    /// Cores kept busy on average during the phase.
    fn cores(&self, cpu: f64) -> f64 {
        cpu / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(parts: Vec<Worker>, started: Instant) -> Phase {
        let mut phase = Phase::default();
        let mut last = started;
        for part in parts {
            phase.samples.extend(part.samples);
            phase.errors += part.errors;
            for example in part.examples {
                keep_example(&mut phase.examples, example);
            }
            last = last.max(part.last);
        }
        phase.samples.sort();
        phase.elapsed = last.saturating_duration_since(started);
        phase
    }

    /// Answered requests per second, `200 ok` or not.
    fn per_second(&self) -> f64 {
        let answered = self.samples.len() as f64;
        answered / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        percentile(&self.samples, p).as_secs_f64() * 1e3
    }
}

/// One connection's share of a phase.
struct Worker {
    samples: Vec<Duration>,
    errors: usize,
    examples: Vec<String>,
    last: Instant,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            samples: Vec::new(),
            errors: 0,
            examples: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Records an answer (or a failure to get one) to a request due at `due`.
    fn record(&mut self, due: Instant, outcome: anyhow::Result<(u16, Vec<u8>)>) {
        let now = Instant::now();
        self.last = now;
        let wrong = match outcome {
            Ok((200, body)) if body == b"ok" => {
                self.samples.push(now - due);
                return;
            }
            Ok((status, body)) => {
                self.samples.push(now - due);
                let text = String::from_utf8_lossy(&body);
                format!("{status} {}", text.chars().take(120).collect::<String>())
            }
            Err(error) => format!("no answer: {error:#}"),
        };
        self.errors += 1;
        keep_example(&mut self.examples, wrong);
    }
}

/// Keeps a wrong answer to show, unless `ERRORS_SHOWN` are kept already or it is one of them.
fn keep_example(examples: &mut Vec<String>, example: String) {
    if examples.len() < ERRORS_SHOWN && !examples.contains(&example) {
        examples.push(example);
    }
}

/// Both phases and the peak memory of one store's host.
struct Outcome {
    store: Store,
    open: Phase,
    saturation: Phase,
    peak_rss_kib: Option<u64>,
    /// What the host asked the VK stand-in.
    vk_calls: Arc<VkCalls>,
}

impl Outcome {
    /// The names of the phases, in the order they ran.
    const PHASES: [&str; 2] = ["open loop", "saturation"];

    /// Phase `index` of `PHASES`.
    fn phase(&self, index: usize) -> &Phase {
        [&self.open, &self.saturation][index]
    }
}

/// The VK stand-in's state: the next message id, and the calls it got.
#[derive(Default)]
struct VkCalls {
    next_id: AtomicI64,
    users_get: AtomicU64,
    messages_send: AtomicU64,
    other: AtomicU64,
}

/// Runs both stores and prints the report; fails if any answer was not `200 ok`.
pub fn run(options: &Options) -> anyhow::Result<()> {
    ensure!(
        options.rate > 0.0 && options.seconds > 0.0,
        "--rate and --seconds must be positive"
    );
    ensure!(
        options.connections > 0 && options.people > 0,
        "--connections and --people must be at least 1"
    );
    let exe = std::env::current_exe().context("cannot find this program to start the host")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let folder = std::env::temp_dir().join(format!("vk-host-load-{}", std::process::id()));
    let mut outcomes = Vec::new();
    let mut stores = vec![Store::Durable, Store::Memory, Store::Native];
    if options.spin_manifest.is_some() {
        stores.push(Store::Spin);
    }
    if options.postgres.is_some() {
        stores.extend([Store::Postgres(1), Store::Postgres(2)]);
    }
    for store in stores {
        eprintln!("vk-host load: {} ...", store.label());
        let vk_calls = Arc::new(VkCalls::default());
        let (vk_base, stand_in) = runtime.block_on(stand_in(vk_calls.clone()))?;
        let database = match (store, &options.postgres) {
            (Store::Postgres(_), Some(server)) => Some(Database::create(server)?),
            _ => None,
        };
        let hosts: anyhow::Result<Vec<Host>> = (0..store.hosts())
            .map(|_| Host::start(&exe, options, store, &vk_base, &folder, database.as_ref()))
            .collect();
        let outcome = hosts.and_then(|hosts| {
            let addresses: Vec<SocketAddr> = hosts.iter().map(|h| h.address).collect();
            let pids: Vec<u32> = hosts.iter().map(|h| h.child.id()).collect();
            let (open, saturation) = runtime.block_on(drive(&addresses, &pids, options, store))?;
            Ok(Outcome {
                store,
                open,
                saturation,
                peak_rss_kib: hosts.iter().map(Host::peak_rss_kib).sum(),
                vk_calls,
            })
        });
        stand_in.abort();
        std::fs::remove_dir_all(&folder).ok();
        if let Some(database) = database {
            database.drop_it()?;
        }
        outcomes.push(outcome?);
    }
    print_report(options, &outcomes);
    let errors: usize = outcomes
        .iter()
        .map(|o| o.open.errors + o.saturation.errors)
        .sum();
    ensure!(errors == 0, "{errors} callbacks were not answered `200 ok`");
    Ok(())
}

/// Connects the community, creates the people, then runs the open-loop and the saturation
/// phase against the hosts at `addresses` (processes `pids`), their connections spread over
/// them in turn.
async fn drive(
    addresses: &[SocketAddr],
    pids: &[u32],
    options: &Options,
    store: Store,
) -> anyhow::Result<(Phase, Phase)> {
    let addresses: Arc<[SocketAddr]> = addresses.into();
    let mut admin = Client::new(addresses[0]);
    // On Spin the access key, secret and confirmation string are variables already.
    if !matches!(store, Store::Spin) {
        let settings = json!({
            "access_token": ACCESS_TOKEN, "secret": SECRET, "confirmation": CONFIRMATION,
            "group_name": "Load",
        })
        .to_string();
        let (status, body) = admin
            .send("PUT", "/api/settings", Some(ADMIN), settings.as_bytes())
            .await?;
        ensure!(
            status == 200,
            "PUT /api/settings: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let confirm = json!({"type": "confirmation", "group_id": GROUP, "secret": SECRET}).to_string();
    let (status, body) = admin
        .send("POST", CALLBACK_PATH, None, confirm.as_bytes())
        .await?;
    ensure!(
        status == 200 && body == CONFIRMATION.as_bytes(),
        "confirmation: {status} {}",
        String::from_utf8_lossy(&body)
    );
    drop(admin);

    let callbacks = Arc::new(Callbacks {
        sent: AtomicU64::new(0),
        people: options.people as u64,
    });
    // Every person's first message: a lead and a dialog each, untimed.
    let created = fixed_count(
        addresses.clone(),
        options.connections,
        options.people,
        callbacks.clone(),
    )
    .await;
    ensure!(
        created.errors == 0,
        "creating {} people: {} wrong answers, e.g. {:?}",
        options.people,
        created.errors,
        created.examples
    );
    let open = Phase::timed(
        pids,
        open_loop(addresses.clone(), options, callbacks.clone()),
    )
    .await;
    let saturation = Phase::timed(pids, closed_loop(addresses, options, callbacks)).await;
    Ok((open, saturation))
}

/// The `message_new` callbacks of one host, numbered in the order they are sent.
struct Callbacks {
    sent: AtomicU64,
    /// Callback `n` comes from person `n % people + 1`.
    people: u64,
}

impl Callbacks {
    /// The body of the next callback.
    fn next(&self) -> Vec<u8> {
        message_new(self.sent.fetch_add(1, Ordering::Relaxed), self.people)
    }
}

/// The body of `message_new` number `n`, from person `n % people + 1`.
fn message_new(n: u64, people: u64) -> Vec<u8> {
    let user = n % people + 1;
    let id = n + 1;
    format!(
        concat!(
            r#"{{"group_id":{group},"type":"message_new","event_id":"load-{n}","v":"5.199","secret":"{secret}","#,
            r#""object":{{"message":{{"date":1767261600,"from_id":{user},"id":{id},"out":0,"peer_id":{user},"#,
            r#""text":"Здравствуйте! Сколько стоит доставка в Казань?","attachments":[],"conversation_message_id":{id},"random_id":0}},"#,
            r#""client_info":{{"button_actions":["text"],"keyboard":true,"inline_keyboard":true,"carousel":false,"lang_id":0}}}}}}"#
        ),
        group = GROUP,
        secret = SECRET,
        n = n,
        user = user,
        id = id,
    )
    .into_bytes()
}

/// Sends `count` callbacks over `connections` connections, each as soon as one is free
/// (on fresh `callbacks`, person `i` writes callback `i`).
async fn fixed_count(
    addresses: Arc<[SocketAddr]>,
    connections: usize,
    count: usize,
    callbacks: Arc<Callbacks>,
) -> Phase {
    let started = Instant::now();
    let schedule = move |i: usize| (i < count).then(Instant::now);
    send_on(
        addresses,
        connections.min(count),
        callbacks,
        started,
        schedule,
    )
    .await
}

/// The open-loop phase: callback `i` is due at `start + i / rate`.
async fn open_loop(
    addresses: Arc<[SocketAddr]>,
    options: &Options,
    callbacks: Arc<Callbacks>,
) -> Phase {
    let total = (options.rate * options.seconds).round() as usize;
    let rate = options.rate;
    let started = Instant::now() + Duration::from_millis(20);
    let schedule =
        move |i: usize| (i < total).then(|| started + Duration::from_secs_f64(i as f64 / rate));
    send_on(addresses, OPEN_CONNECTIONS, callbacks, started, schedule).await
}

/// The saturation phase: `--connections` connections, each sending its next callback when
/// the previous one is answered, until `--seconds` pass.
async fn closed_loop(
    addresses: Arc<[SocketAddr]>,
    options: &Options,
    callbacks: Arc<Callbacks>,
) -> Phase {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.seconds);
    let schedule = move |_: usize| {
        let now = Instant::now();
        (now < deadline).then_some(now)
    };
    send_on(addresses, options.connections, callbacks, started, schedule).await
}

/// Sends callbacks over `connections` connections (connection `c` to host `c` modulo their
/// number): each connection claims the next number `i` and sends its callback when
/// `schedule(i)` says it is due (latency counts from then), until `schedule` says there is
/// none.
async fn send_on(
    addresses: Arc<[SocketAddr]>,
    connections: usize,
    callbacks: Arc<Callbacks>,
    started: Instant,
    schedule: impl Fn(usize) -> Option<Instant> + Clone + Send + 'static,
) -> Phase {
    let claimed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (claimed, callbacks, schedule) =
                (claimed.clone(), callbacks.clone(), schedule.clone());
            let address = addresses[c % addresses.len()];
            tokio::spawn(async move {
                let mut client = Client::new(address);
                let mut worker = Worker::new();
                while let Some(due) = schedule(claimed.fetch_add(1, Ordering::Relaxed)) {
                    tokio::time::sleep_until(due).await;
                    let body = callbacks.next();
                    let outcome = client.send("POST", CALLBACK_PATH, None, &body).await;
                    worker.record(due, outcome);
                }
                worker
            })
        })
        .collect();
    Phase::merge(join(tasks).await, started)
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Worker>>) -> Vec<Worker> {
    let mut workers = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                let mut worker = Worker::new();
                worker.errors = 1;
                worker.examples.push(format!("a load task failed: {error}"));
                workers.push(worker);
            }
        }
    }
    workers
}

/// An HTTP/1.1 client of one keep-alive connection, opened on first use and again after
/// the server closes it.
struct Client {
    address: SocketAddr,
    connection: Option<Connection>,
}

impl Client {
    fn new(address: SocketAddr) -> Client {
        Client {
            address,
            connection: None,
        }
    }

    /// Sends one request and reads its answer: (status, body). A request on a reused
    /// connection that the server closed before answering is sent once more on a new one.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.address,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        loop {
            let reused = self.connection.is_some();
            let connection = match &mut self.connection {
                Some(connection) => connection,
                None => self
                    .connection
                    .insert(Connection::open(self.address).await?),
            };
            match connection.exchange(&request).await {
                Ok(answer) => {
                    if answer.close {
                        self.connection = None;
                    }
                    return Ok((answer.status, answer.body));
                }
                Err(Exchange::ClosedEarly) if reused => self.connection = None,
                Err(Exchange::ClosedEarly) => {
                    self.connection = None;
                    bail!("the connection closed before an answer")
                }
                Err(Exchange::Failed(error)) => {
                    self.connection = None;
                    return Err(error);
                }
            }
        }
    }
}

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    /// The server said `connection: close`.
    close: bool,
}

enum Exchange {
    /// Nothing of an answer came before the connection closed.
    ClosedEarly,
    Failed(anyhow::Error),
}

impl From<std::io::Error> for Exchange {
    fn from(error: std::io::Error) -> Exchange {
        Exchange::Failed(error.into())
    }
}

impl Connection {
    async fn open(address: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Answer, Exchange> {
        if let Err(error) = self.stream.write_all(request).await {
            return Err(match error.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    Exchange::ClosedEarly
                }
                _ => error.into(),
            });
        }
        self.buffer.clear();
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            let read = match self.stream.read_buf(&mut self.buffer).await {
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(error) => return Err(error.into()),
            };
            if read == 0 {
                return Err(if self.buffer.is_empty() {
                    Exchange::ClosedEarly
                } else {
                    Exchange::Failed(anyhow::anyhow!("the connection closed mid-answer"))
                });
            }
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])
            .map_err(|_| Exchange::Failed(anyhow::anyhow!("an answer head not in UTF-8")))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| Exchange::Failed(anyhow::anyhow!("no status in {head:?}")))?;
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Exchange::Failed(anyhow::anyhow!(
                    "transfer-encoding {value} is not supported by the load client"
                )));
            }
        }
        let length = length.unwrap_or(0);
        while self.buffer.len() < head_end + length {
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(Exchange::Failed(anyhow::anyhow!(
                    "the connection closed mid-body"
                )));
            }
        }
        Ok(Answer {
            status,
            body: self.buffer[head_end..head_end + length].to_vec(),
            close,
        })
    }
}

/// The user and system CPU time of a process (its `/proc/<pid>/stat`), in seconds; NaN if
/// unreadable.
fn cpu_seconds(stat: &str) -> f64 {
    let Ok(text) = std::fs::read_to_string(stat) else {
        return f64::NAN;
    };
    // The fields after the command name (which may hold spaces) start with the state, the
    // third field; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) if per_second > 0.0 => (user + system) / per_second,
        _ => f64::NAN,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A VK stand-in on loopback: `users.get` answers a name per id, `messages.send` a new
/// message id, anything else VK's "Unknown method passed". Returns its base URL and task.
async fn stand_in(calls: Arc<VkCalls>) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    calls.next_id.store(1000, Ordering::Relaxed);
    let app = axum::Router::new()
        .route("/method/{name}", axum::routing::post(vk_method))
        .with_state(calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Ok((base, task))
}

async fn vk_method(
    axum::extract::State(calls): axum::extract::State<Arc<VkCalls>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: String,
) -> axum::Json<Value> {
    axum::Json(match name.as_str() {
        "users.get" => {
            calls.users_get.fetch_add(1, Ordering::Relaxed);
            let ids = form_value(&body, "user_ids").unwrap_or_default();
            let users: Vec<Value> = ids
                .split(',')
                .filter_map(|id| id.trim().parse::<i64>().ok())
                .map(|id| json!({"id": id, "first_name": format!("Ivan{id}"), "last_name": "Petrov", "can_access_closed": true, "is_closed": false}))
                .collect();
            json!({"response": users})
        }
        "messages.send" => {
            calls.messages_send.fetch_add(1, Ordering::Relaxed);
            json!({"response": calls.next_id.fetch_add(1, Ordering::Relaxed) + 1})
        }
        _ => {
            calls.other.fetch_add(1, Ordering::Relaxed);
            json!({"error": {"error_code": 3, "error_msg": "Unknown method passed", "request_params": []}})
        }
    })
}

/// A form field's value, with the one escape `users.get`'s ids carry (`,` as `%2C`).
fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let value = pair.strip_prefix(name)?.strip_prefix('=')?;
        Some(value.replace("%2C", ",").replace("%2c", ","))
    })
}

/// A `vk-host serve` child process; killed when dropped.
struct Host {
    child: Child,
    address: SocketAddr,
}

impl Host {
    fn start(
        exe: &Path,
        options: &Options,
        store: Store,
        vk_base: &str,
        folder: &Path,
        database: Option<&Database>,
    ) -> anyhow::Result<Host> {
        let mut command = Command::new(exe);
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        match (store, &options.spin_manifest) {
            (Store::Spin, Some(manifest)) => {
                command
                    .args(["serve-spin", "--manifest"])
                    .arg(manifest)
                    .arg("--sqlite")
                    .arg(folder.join("spin.db"));
                // Variables from the environment stay out of the process list.
                for (name, value) in [
                    ("ACCESS_TOKEN", ACCESS_TOKEN),
                    ("SECRET", SECRET),
                    ("CONFIRMATION", CONFIRMATION),
                    ("GROUP_NAME", "Load"),
                    ("ADMIN_TOKEN", ADMIN),
                ] {
                    command.env(format!("SPIN_VARIABLE_{name}"), value);
                }
            }
            (Store::Spin, None) => bail!("no Spin manifest to measure"),
            (Store::Durable | Store::Memory | Store::Native | Store::Postgres(_), _) => {
                command
                    .args(["serve", "--admin-token", ADMIN, "--plugin"])
                    .arg(&options.plugin);
                match (store, database) {
                    (Store::Durable, _) => command.arg("--db").arg(folder.join("load.db")),
                    (Store::Native, _) => command.args(["--memory", "--native"]),
                    (Store::Postgres(_), Some(database)) => command.args(["--db", &database.url]),
                    (Store::Postgres(_), None) => bail!("no PostgreSQL database to measure"),
                    _ => command.arg("--memory"),
                };
            }
        }
        command
            .args(["--listen", "127.0.0.1:0", "--vk-api-base", vk_base])
            .arg("--cache-dir")
            .arg(&options.cache_dir);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, seen) = std::sync::mpsc::channel();
        // Passes the log on until the host listens, then drains it (one line per request).
        std::thread::spawn(move || {
            let mut lines = Some(lines);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(sender) = &lines {
                    let listening = line.contains("listening on ");
                    sender.send(line).ok();
                    if listening {
                        lines = None;
                    }
                }
            }
        });
        let mut log = Vec::new();
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        let address = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = seen.recv_timeout(left) else {
                child.kill().ok();
                child.wait().ok();
                bail!("the host did not start; its log:\n{}", log.join("\n"));
            };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                break address
                    .parse()
                    .with_context(|| format!("the host's address in {line:?}"))?;
            }
            eprintln!("vk-host load:   {line}");
            log.push(line);
        };
        Ok(Host { child, address })
    }

    /// `VmHWM` of the child: its peak resident memory, in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Store {
    /// How many hosts serve the store at once.
    fn hosts(self) -> usize {
        match self {
            Store::Postgres(hosts) => hosts,
            _ => 1,
        }
    }
}

/// A database of its own on the PostgreSQL server of `--postgres`, dropped after the run.
struct Database {
    /// The server's URL as given.
    server: String,
    name: String,
    /// The URL of this database.
    url: String,
}

impl Database {
    fn create(server: &str) -> anyhow::Result<Database> {
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "vk_load_{}_{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(server, &name)?;
        let mut client = postgres::Client::connect(server, postgres::NoTls)
            .context("cannot connect to the --postgres server")?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .context("cannot create a database for the run (it needs CREATEDB)")?;
        Ok(Database {
            server: server.to_owned(),
            name,
            url,
        })
    }

    fn drop_it(self) -> anyhow::Result<()> {
        let mut client = postgres::Client::connect(&self.server, postgres::NoTls)?;
        client.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))?;
        Ok(())
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let authority = url
        .find("://")
        .map(|at| at + 3)
        .context("--postgres is not a URL (postgres://user@host:port/dbname)")?;
    let path = url[authority..].find('/').map(|at| authority + at);
    let query = url[authority..].find('?').map(|at| authority + at);
    let head = &url[..path.or(query).unwrap_or(url.len())];
    let tail = query.map_or("", |at| &url[at..]);
    Ok(format!("{head}/{name}{tail}"))
}

impl Drop for Host {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn print_report(options: &Options, outcomes: &[Outcome]) {
    println!(
        "`message_new` callbacks over HTTP from {} known people, unique event ids.\n\
         open loop: offered {}/s for {} s over {OPEN_CONNECTIONS} connections, latency from each \
         callback's due time; saturation: {} connections, closed loop, for {} s.\n",
        options.people, options.rate, options.seconds, options.connections, options.seconds
    );
    let mut header = String::from("| ");
    let mut rule = String::from("|---");
    for outcome in outcomes {
        header.push_str(&format!(" | {}", outcome.store.label()));
        rule.push_str("|---:");
    }
    header.push_str(" | durable / memory | component / native (both `--memory`)");
    rule.push_str("|---:|---:");
    println!("{header} |\n{rule}|");
    let row = |label: &str, value: &dyn Fn(&Outcome) -> f64, digits: usize| {
        let mut line = format!("| {label}");
        for outcome in outcomes {
            line.push_str(&format!(" | {:.digits$}", value(outcome)));
        }
        if let [durable, memory, native, ..] = outcomes {
            for ratio in [
                value(durable) / value(memory),
                value(memory) / value(native),
            ] {
                if ratio.is_finite() {
                    line.push_str(&format!(" | {ratio:.2}×"));
                } else {
                    line.push_str(" | –");
                }
            }
        }
        println!("{line} |");
    };
    for (index, label) in Outcome::PHASES.into_iter().enumerate() {
        row(
            &format!("{label}: callbacks/s"),
            &|o| o.phase(index).per_second(),
            0,
        );
        for (name, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            row(
                &format!("{label}: {name} ms"),
                &|o| o.phase(index).percentile_ms(p),
                2,
            );
        }
        row(
            &format!("{label}: not `200 ok`"),
            &|o| o.phase(index).errors as f64,
            0,
        );
        row(
            &format!("{label}: host CPU, cores busy"),
            &|o| {
                let phase = o.phase(index);
                phase.cores(phase.host_cpu)
            },
            2,
        );
        row(
            &format!("{label}: load generator CPU, cores busy"),
            &|o| {
                let phase = o.phase(index);
                phase.cores(phase.load_cpu)
            },
            2,
        );
    }
    row(
        "host peak RSS (VmHWM), MiB",
        &|o| o.peak_rss_kib.map_or(f64::NAN, |kib| kib as f64 / 1024.0),
        1,
    );
    println!();
    for outcome in outcomes {
        let calls = &outcome.vk_calls;
        println!(
            "{}: the VK stand-in got {} users.get, {} messages.send, {} other calls",
            outcome.store.label(),
            calls.users_get.load(Ordering::Relaxed),
            calls.messages_send.load(Ordering::Relaxed),
            calls.other.load(Ordering::Relaxed)
        );
    }
    for outcome in outcomes {
        for (index, name) in Outcome::PHASES.into_iter().enumerate() {
            for example in &outcome.phase(index).examples {
                println!("{} {name}: {example}", outcome.store.label());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_database_replaces_only_the_database_name_of_the_url() {
        let cases = [
            ("postgres://u@h:5432/app", "postgres://u@h:5432/vk_load_1"),
            ("postgres://u@h:5432", "postgres://u@h:5432/vk_load_1"),
            (
                "postgresql://u:p@h/app?sslmode=disable",
                "postgresql://u:p@h/vk_load_1?sslmode=disable",
            ),
        ];
        for (server, run) in cases {
            assert_eq!(with_database(server, "vk_load_1").expect("a URL"), run);
        }
        assert!(with_database("not a url", "x").is_err());
    }
}
