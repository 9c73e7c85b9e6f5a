//! The end-to-end harness: a local stand-in for VK's API, and the real `vk-host` binary
//! started on loopback, serving the real plugin component (`serve`) or the real Spin
//! component (`serve-spin` with `spin.toml`), driven over real HTTP.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};

/// The route VK posts its callbacks to.
pub const CALLBACK_PATH: &str = "/settings/integrations/vk-group/call-back";

/// The community every test connects.
pub const GROUP: i64 = 218_765_432;
pub const SECRET: &str = "Qm9v-crm-7f3a91c2e4-Zx81kP0q-t7Lw3Ndf";
pub const CONFIRMATION: &str = "5e1d9c0b";
pub const ACCESS_TOKEN: &str = "vk1.a.SECRET-ACCESS-KEY-0123456789abcdefAb3x";
pub const ADMIN: &str = "admin-token-for-tests";

/// The API version VK's docs and schema name (VK_FACTS §3.1), which the plugin sends unless
/// the settings say otherwise.
pub const API_VERSION: &str = "5.199";

/// What the stand-in does on the next call of a method instead of answering normally.
#[derive(Debug, Clone)]
pub enum Failure {
    /// VK's error object with this code.
    Vk(i64, &'static str),
    /// An HTTP error status.
    Status(u16),
    /// Does the work (delivers a message), then answers this late.
    Late(Duration),
    /// Does not do the work (the request is lost before VK acts on it) and answers this late
    /// with HTTP 504.
    Lost(Duration),
}

/// A seeded storm of failures. What VK does to a call is drawn from the seed, the method, the
/// call's parameters (all but `random_id`, which the plugin draws anew every run, and the
/// access key) and how many times the same call came before. So the same seed and the same
/// calls meet the same storm whatever order threads make them in.
#[derive(Debug, Clone)]
pub struct Storm {
    pub seed: u64,
    /// The methods the transient trouble hits.
    pub methods: Vec<&'static str>,
    /// Each kind of trouble: its name, how many calls in 1000 meet it, and what VK does.
    /// A call that draws none is answered normally.
    pub kinds: Vec<(&'static str, u32, Failure)>,
    /// People whose `messages.send` VK refuses for good: (peer_id, VK's code, its text).
    /// [`VkStandIn::recover`] does not end these.
    pub refusing: Vec<(i64, i64, &'static str)>,
}

/// One call VK got: the method, the form's parameters and the headers (names in lower case).
#[derive(Debug, Clone)]
struct Call {
    method: String,
    params: HashMap<String, String>,
    headers: HashMap<String, String>,
}

/// A VK error object's code and text.
type VkError = (i64, String);

struct Recorded {
    calls: Vec<Call>,
    failures: HashMap<String, VecDeque<Failure>>,
    /// (peer, random_id) → VK message id: VK keeps one message per nonzero random_id in a
    /// dialog.
    sent: HashMap<(i64, i32), i64>,
    delivered: Vec<(i64, String)>,
    next_id: i64,
    /// The `v` every call must carry.
    version: String,
    /// Calls VK would refuse or the test does not expect; a stand-in dropped with any fails
    /// its test.
    violations: Vec<String>,
    storm: Option<Storm>,
    /// The storm's transient trouble is over (permanent refusals go on).
    recovered: bool,
    /// How many times each call, by its storm key, came.
    seen: HashMap<u64, u32>,
    /// How many calls met each kind of trouble.
    dealt: BTreeMap<String, u32>,
}

/// A local stand-in for `https://api.vk.com`, answering as VK does and recording every call.
///
/// Like VK it reads a POST's parameters from its form body only
/// (`application/x-www-form-urlencoded`), checks `v` (error 8), then `access_token` (error 5),
/// then each method's required parameters (error 100), in the words VK answers with. Every
/// such refusal, and every call whose `v` is not the expected version ([`API_VERSION`] unless
/// [`VkStandIn::expect_version`] says otherwise), is a violation: dropping the stand-in with
/// violations fails the test.
pub struct VkStandIn {
    pub base: String,
    state: Arc<Mutex<Recorded>>,
    _runtime: tokio::runtime::Runtime,
}

impl VkStandIn {
    pub fn start() -> VkStandIn {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the stand-in");
        let state = Arc::new(Mutex::new(Recorded {
            calls: Vec::new(),
            failures: HashMap::new(),
            sent: HashMap::new(),
            delivered: Vec::new(),
            next_id: 1000,
            version: API_VERSION.to_owned(),
            violations: Vec::new(),
            storm: None,
            recovered: false,
            seen: HashMap::new(),
            dealt: BTreeMap::new(),
        }));
        let app = axum::Router::new()
            .route("/method/{name}", post(method))
            .with_state(state.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port for the stand-in");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        runtime.spawn(async move { axum::serve(listener, app).await.ok() });
        VkStandIn {
            base,
            state,
            _runtime: runtime,
        }
    }

    /// Makes the next call of `method` fail (queued: several calls fail in order).
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.lock()
            .failures
            .entry(method.to_owned())
            .or_default()
            .push_back(failure);
    }

    /// Lets `storm` rage from now on (queued [`VkStandIn::fail_next`] failures come first).
    pub fn storm(&self, storm: Storm) {
        let mut s = self.lock();
        s.storm = Some(storm);
        s.recovered = false;
    }

    /// Ends the storm's transient trouble; its permanent refusals go on.
    pub fn recover(&self) {
        self.lock().recovered = true;
    }

    /// How many calls met each kind of the storm's trouble so far.
    pub fn dealt(&self) -> BTreeMap<String, u32> {
        self.lock().dealt.clone()
    }

    /// From now on, every call must carry `v=<version>`.
    pub fn expect_version(&self, version: &str) {
        self.lock().version = version.to_owned();
    }

    /// The parameters of every call of `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<HashMap<String, String>> {
        self.recorded(method, |call| call.params.clone())
    }

    /// The headers of every call of `method`, in order (names in lower case).
    pub fn headers(&self, method: &str) -> Vec<HashMap<String, String>> {
        self.recorded(method, |call| call.headers.clone())
    }

    /// The messages VK delivered to people: (peer_id, text), once per nonzero random_id.
    pub fn delivered(&self) -> Vec<(i64, String)> {
        self.lock().delivered.clone()
    }

    /// The violations so far, which are then forgotten (for a test that makes them on purpose).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }

    fn recorded<T>(&self, method: &str, part: impl Fn(&Call) -> T) -> Vec<T> {
        self.lock()
            .calls
            .iter()
            .filter(|call| call.method == method)
            .map(part)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().expect("stand-in state")
    }
}

impl Drop for VkStandIn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let violations = self.take_violations();
        assert!(
            violations.is_empty(),
            "VK would not take these calls, or the test expected others:\n{}",
            violations.join("\n")
        );
    }
}

impl Recorded {
    /// What the storm does to this call, if anything, counted by its kind.
    fn storm_failure(&mut self, method: &str, params: &HashMap<String, String>) -> Option<Failure> {
        let storm = self.storm.as_ref()?;
        if self.recovered || !storm.methods.contains(&method) {
            return None;
        }
        let mut names: Vec<&String> = params
            .keys()
            .filter(|name| !matches!(name.as_str(), "random_id" | "access_token"))
            .collect();
        names.sort();
        let key = names
            .into_iter()
            .fold(absorb(mix(storm.seed), method.as_bytes()), |key, name| {
                absorb(absorb(key, name.as_bytes()), params[name].as_bytes())
            });
        let seen = self.seen.entry(key).or_default();
        let roll = mix(key ^ u64::from(*seen)) % 1000;
        *seen += 1;
        let mut below = 0;
        let (kind, _, failure) = storm.kinds.iter().find(|(_, rate, _)| {
            below += u64::from(*rate);
            roll < below
        })?;
        *self.dealt.entry((*kind).to_owned()).or_default() += 1;
        Some(failure.clone())
    }

    /// VK's refusal of a `messages.send` whose person the storm has refused for good, if
    /// it is one (counted).
    fn refusal(&mut self, method: &str, params: &HashMap<String, String>) -> Option<VkError> {
        let storm = self.storm.as_ref()?;
        let peer = present(params, "peer_id").and_then(|peer| peer.parse::<i64>().ok());
        let &(_, code, text) = storm
            .refusing
            .iter()
            .find(|(refused, _, _)| method == "messages.send" && peer == Some(*refused))?;
        *self
            .dealt
            .entry(format!("VK error {code}, for good"))
            .or_default() += 1;
        Some((code, text.to_owned()))
    }

    /// VK's answer to a call no failure was queued for.
    fn answer(&mut self, method: &str, params: &HashMap<String, String>) -> Result<Value, VkError> {
        let Some(version) = present(params, "v") else {
            return Err((8, "Invalid request: v is required".into()));
        };
        if version != self.version {
            self.violations.push(format!(
                "{method}: v={version}, the test expects v={}",
                self.version
            ));
        }
        match present(params, "access_token") {
            None => {
                return Err((
                    5,
                    "User authorization failed: no access_token passed.".into(),
                ));
            }
            Some(token) if token != ACCESS_TOKEN => {
                return Err((
                    5,
                    "User authorization failed: invalid access_token (4).".into(),
                ));
            }
            Some(_) => {}
        }
        match method {
            "users.get" => {
                let ids =
                    present(params, "user_ids").ok_or_else(|| invalid("user_ids is undefined"))?;
                let users: Vec<Value> = ids
                    .split(',')
                    .filter_map(|id| id.parse::<i64>().ok())
                    .map(|id| json!({"id": id, "first_name": format!("Ivan{id}"), "last_name": "Petrov", "can_access_closed": true, "is_closed": false}))
                    .collect();
                Ok(json!({"response": users}))
            }
            "messages.send" => {
                let peer: i64 = present(params, "peer_id")
                    .or_else(|| present(params, "user_id"))
                    .ok_or_else(|| invalid("you should specify peer_id, user_id, domain, chat_id or user_ids param"))?
                    .parse()
                    .map_err(|_| invalid("peer_id not integer"))?;
                let random: i32 = present(params, "random_id")
                    .ok_or_else(|| invalid("random_id is a required parameter"))?
                    .parse()
                    .map_err(|_| invalid("random_id not integer"))?;
                let text = present(params, "message");
                if text.is_none() && present(params, "attachment").is_none() {
                    return Err(invalid("message is empty or invalid"));
                }
                // 0 asks for no uniqueness check: every such send is a new message.
                if let Some(id) = self.sent.get(&(peer, random)) {
                    return Ok(json!({"response": id}));
                }
                self.next_id += 1;
                if random != 0 {
                    self.sent.insert((peer, random), self.next_id);
                }
                self.delivered
                    .push((peer, text.unwrap_or_default().to_owned()));
                Ok(json!({"response": self.next_id}))
            }
            _ => Err((3, "Unknown method passed".into())),
        }
    }
}

/// A parameter given with a value.
fn present<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// SplitMix64's finaliser: every bit of `x` moves every bit of the result.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `key` with `bytes` (and their length, so that parts never run together) mixed in.
fn absorb(key: u64, bytes: &[u8]) -> u64 {
    bytes
        .chunks(8)
        .fold(mix(key ^ bytes.len() as u64), |key, chunk| {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            mix(key ^ u64::from_le_bytes(word))
        })
}

/// VK's error 100 with its detail.
fn invalid(detail: &str) -> VkError {
    (
        100,
        format!("One of the parameters specified was missing or invalid: {detail}"),
    )
}

/// VK's error object, echoing the request's parameters (never the access key) as VK does.
fn vk_error(method: &str, params: &HashMap<String, String>, (code, text): &VkError) -> Value {
    let mut echoed: Vec<Value> = vec![
        json!({"key": "method", "value": method}),
        json!({"key": "oauth", "value": "1"}),
    ];
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "access_token").collect();
    names.sort();
    echoed.extend(
        names
            .into_iter()
            .map(|name| json!({"key": name, "value": params[name]})),
    );
    json!({"error": {"error_code": code, "error_msg": text, "request_params": echoed}})
}

async fn method(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let form = content_type.split(';').next().is_some_and(|mime| {
        mime.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    // VK reads a POST's parameters from its form: a body of another type says nothing.
    let params = if form {
        form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    } else {
        HashMap::new()
    };
    let (failure, answer) = {
        let mut s = state.lock().expect("stand-in state");
        s.calls.push(Call {
            method: name.clone(),
            params: params.clone(),
            headers,
        });
        if !form {
            s.violations
                .push(format!("{name}: content type {content_type:?}, not a form"));
        }
        let failure = s
            .failures
            .get_mut(&name)
            .and_then(VecDeque::pop_front)
            .or_else(|| s.storm_failure(&name, &params));
        let answer = match &failure {
            Some(Failure::Vk(code, text)) => vk_error(&name, &params, &(*code, (*text).to_owned())),
            Some(Failure::Status(_) | Failure::Lost(_)) => json!({}),
            Some(Failure::Late(_)) | None => match s.refusal(&name, &params) {
                Some(refusal) => vk_error(&name, &params, &refusal),
                None => match s.answer(&name, &params) {
                    Ok(answer) => answer,
                    Err(error) => {
                        s.violations
                            .push(format!("{name}: VK error {} {:?}", error.0, error.1));
                        vk_error(&name, &params, &error)
                    }
                },
            },
        };
        (failure, answer)
    };
    match failure {
        Some(Failure::Status(code)) => (
            axum::http::StatusCode::from_u16(code).expect("a status"),
            "upstream trouble",
        )
            .into_response(),
        Some(Failure::Late(delay)) => {
            tokio::time::sleep(delay).await;
            axum::Json(answer).into_response()
        }
        Some(Failure::Lost(delay)) => {
            tokio::time::sleep(delay).await;
            (axum::http::StatusCode::GATEWAY_TIMEOUT, "gateway timeout").into_response()
        }
        _ => axum::Json(answer).into_response(),
    }
}

/// The plugin the build leaves (`make plugin`), and its fault-injecting twin (`make faulty-plugin`).
pub fn plugin_path() -> String {
    format!(
        "{}/../target/wasm32-wasip2/release/vk_plugin.wasm",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn faulty_plugin_path() -> String {
    format!(
        "{}/target/faulty/wasm32-wasip2/release/vk_plugin.wasm",
        root()
    )
}

/// The fault-injecting twin of the Spin component (`make faulty-plugin`).
pub fn faulty_spin_path() -> String {
    format!(
        "{}/target/faulty/wasm32-wasip2/release/vk_spin.wasm",
        root()
    )
}

/// Which component serves a story: both answer every request through the same `vk-api`, so
/// the stories that do not depend on the host's own flags run on both ([`on_both_shells`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// `vk-host serve` with `vk_plugin.wasm` and its redb-or-memory store.
    Plugin,
    /// `vk-host serve-spin` with `spin.toml`, `vk_spin.wasm` and SQLite in memory; the
    /// access key, secret, confirmation and admin token are Spin variables.
    Spin,
}

/// Declares one `#[test]` per story and shell: `plugin::<story>` and `spin::<story>`. Each
/// story is a function taking the [`Shell`].
#[macro_export]
macro_rules! on_both_shells {
    ($($story:ident),* $(,)?) => {
        mod plugin {
            $(#[test]
            fn $story() {
                super::$story(super::support::Shell::Plugin)
            })*
        }
        mod spin {
            $(#[test]
            fn $story() {
                super::$story(super::support::Shell::Spin)
            })*
        }
    };
}

/// The repository's root.
pub fn root() -> String {
    format!("{}/..", env!("CARGO_MANIFEST_DIR"))
}

/// Where the tests' hosts cache compiled components.
pub fn cache_dir() -> String {
    format!("{}/target/vk-host-cache", root())
}

/// The values a Spin deployment sets as variables (`SPIN_VARIABLE_*`, a secrets provider).
pub fn spin_variables() -> Vec<(&'static str, &'static str)> {
    vec![
        ("access_token", ACCESS_TOKEN),
        ("secret", SECRET),
        ("confirmation", CONFIRMATION),
        ("group_name", "Bakery"),
        ("admin_token", ADMIN),
    ]
}

/// A running `vk-host`, killed when dropped.
pub struct Host {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

impl Host {
    /// Starts `vk-host <args> --listen 127.0.0.1:0` and waits until it listens.
    pub fn start(args: &[String]) -> Host {
        Host::start_under(&[], args)
    }

    /// Like [`Host::start`], run by a `wrapper` command that ends by executing its arguments
    /// (`prlimit … --`, for example).
    pub fn start_under(wrapper: &[&str], args: &[String]) -> Host {
        let binary = env!("CARGO_BIN_EXE_vk-host");
        let (program, before) = match wrapper.split_first() {
            Some((program, rest)) => (*program, [rest, &[binary]].concat()),
            None => (binary, Vec::new()),
        };
        let mut child = Command::new(program)
            .args(before)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vk-host starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // `… listening on http://<address>`, maybe followed by more words.
                let address = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next());
                if let Some(address) = address {
                    tx.send(address.to_owned()).ok();
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "vk-host did not start; its log:\n{}",
                    logs.lock().expect("logs").join("\n")
                )
            });
        Host {
            child,
            base,
            logs,
            agent: agent(),
        }
    }

    /// `serve` in memory with the real plugin, VK routed to the stand-in, plus `extra` flags.
    pub fn serve(vk: &VkStandIn, extra: &[&str]) -> Host {
        let mut args: Vec<String> = ["serve", "--admin-token", ADMIN, "--vk-api-base", &vk.base]
            .map(String::from)
            .to_vec();
        if !extra.contains(&"--db") {
            args.push("--memory".into());
        }
        if !extra.contains(&"--plugin") {
            args.extend(["--plugin".into(), plugin_path()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(["--cache-dir".into(), cache_dir()]);
        Host::start(&args)
    }

    /// `serve-spin` with the real `spin.toml` (unless `extra` names a `--manifest`), VK
    /// routed to the stand-in, plus `extra` flags (`--memory` unless a `--sqlite` file is
    /// given).
    pub fn serve_spin(vk: &VkStandIn, extra: &[&str]) -> Host {
        let mut args: Vec<String> = vec![
            "serve-spin".into(),
            "--vk-api-base".into(),
            vk.base.clone(),
            "--cache-dir".into(),
            cache_dir(),
        ];
        if !extra.contains(&"--manifest") {
            args.extend(["--manifest".into(), format!("{}/spin.toml", root())]);
        }
        if !extra.contains(&"--sqlite") {
            args.push("--memory".into());
        }
        for (name, value) in spin_variables() {
            args.extend(["--variable".into(), format!("{name}={value}")]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        Host::start(&args)
    }

    /// Sends a request; returns the status and the body as text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        self.request_with_headers(method, path, token, body, &[])
    }

    /// Sends a request with extra headers; returns the status and the body as text.
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let outcome = match body {
            Some(body) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(body)
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        };
        let mut response = outcome.expect("vk-host answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        for (name, value) in response.headers() {
            assert_no_secret(name.as_str(), value.to_str().unwrap_or(""));
        }
        assert_no_secret(&format!("the answer to {method} {path}"), &text);
        (status, text)
    }

    /// Sends JSON (or nothing); returns the status and the JSON answer.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, text) = self.request(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Posts a VK callback; returns the status and the plain-text answer.
    pub fn callback(&self, event: &Value) -> (u16, String) {
        self.request(
            "POST",
            CALLBACK_PATH,
            None,
            Some(event.to_string().into_bytes()),
        )
    }

    /// Posts a VK callback as VK's `retry`-th redelivery (with `X-Retry-Counter`).
    pub fn callback_redelivered(&self, event: &Value, retry: u32) -> (u16, String) {
        self.request_with_headers(
            "POST",
            CALLBACK_PATH,
            None,
            Some(event.to_string().into_bytes()),
            &[("x-retry-counter", &retry.to_string())],
        )
    }

    /// Everything the host has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Host {
    /// Stops the host; then its whole log must be free of the community's secrets (a test
    /// that failed already is not failed twice).
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            assert_no_secret("the host's log", &self.logs());
        }
    }
}

/// The secrets every test connects the community with: no answer, log line or error of the
/// product may ever hold them.
pub const SECRETS: [&str; 2] = [SECRET, ACCESS_TOKEN];

/// Fails the test when `text` (an answer or a log) holds one of the [`SECRETS`].
pub fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} holds a secret: {text}");
    }
}

/// An employee of the CRM.
#[derive(Debug, Clone)]
pub struct Employee {
    pub id: String,
    pub token: String,
}

/// A host connected to the community: settings written, VK's confirmation done, and
/// `employees` employees listed in the open lines.
pub struct World {
    pub vk: VkStandIn,
    pub host: Host,
    pub staff: Vec<Employee>,
}

impl World {
    /// The plugin served by `vk-host serve`.
    pub fn new(employees: usize) -> World {
        World::with_flags(employees, &[])
    }

    /// The plugin served by `vk-host serve`, with `extra` flags.
    pub fn with_flags(employees: usize, extra: &[&str]) -> World {
        let vk = VkStandIn::start();
        let host = Host::serve(&vk, extra);
        let staff = connect(&host, Shell::Plugin, employees);
        World { vk, host, staff }
    }

    /// The plugin or the Spin component, with default flags.
    pub fn on(shell: Shell, employees: usize) -> World {
        match shell {
            Shell::Plugin => World::with_flags(employees, &[]),
            Shell::Spin => World::on_spin_with(employees, &[]),
        }
    }

    /// The Spin component served by `vk-host serve-spin`, with `extra` flags.
    pub fn on_spin_with(employees: usize, extra: &[&str]) -> World {
        let vk = VkStandIn::start();
        let host = Host::serve_spin(&vk, extra);
        let staff = connect(&host, Shell::Spin, employees);
        World { vk, host, staff }
    }

    /// The employee's token (for `call`).
    pub fn token(&self, n: usize) -> Option<&str> {
        Some(self.staff[n].token.as_str())
    }

    /// The dialogs an employee sees with `status` (every page).
    pub fn dialogs(&self, n: usize, status: &str) -> Vec<Value> {
        self.every_page(
            &self.staff[n].token,
            &format!("/api/dialogs?status={status}"),
            "dialogs",
        )
    }

    /// The messages of a dialog, as an employee reads them (every page).
    pub fn messages(&self, n: usize, dialog: &str) -> Vec<Value> {
        self.every_page(
            &self.staff[n].token,
            &format!("/api/dialogs/{dialog}/messages"),
            "messages",
        )
    }

    /// A `GET` that must succeed; returns its JSON.
    fn read(&self, token: &str, path: &str) -> Value {
        let (code, body) = self.host.call("GET", path, Some(token), None);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// The `field` list of every page of `path`, following the `next` cursor.
    fn every_page(&self, token: &str, path: &str, field: &str) -> Vec<Value> {
        let join = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = self.read(token, &format!("{path}{join}limit=200"));
        loop {
            items.extend(page[field].as_array().expect("a list").iter().cloned());
            let Some(next) = page["next"].as_str() else {
                return items;
            };
            let after: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            page = self.read(token, &format!("{path}{join}limit=200&after={after}"));
        }
    }

    /// Everything the API shows, read as the admin and the listed employees: the settings,
    /// the employees, each employee's lists of every status, and for each dialog in any of
    /// them the dialog, its messages, its history, its lead and the lead's counterparty and
    /// order. Two equal snapshots mean nothing a caller can see has changed.
    pub fn snapshot(&self) -> Value {
        let mut lists = serde_json::Map::new();
        let mut dialog_ids = std::collections::BTreeSet::new();
        for (n, employee) in self.staff.iter().enumerate() {
            let mut mine = serde_json::Map::new();
            for status in ["open", "spam", "finished"] {
                let dialogs = self.dialogs(n, status);
                dialog_ids.extend(
                    dialogs
                        .iter()
                        .map(|d| d["id"].as_str().expect("an id").to_owned()),
                );
                mine.insert(status.to_owned(), Value::Array(dialogs));
            }
            lists.insert(employee.id.clone(), Value::Object(mine));
        }
        // Any listed employee reads every dialog (there is one when any list has a dialog).
        let reader = || self.staff[0].token.as_str();
        let dialogs: serde_json::Map<String, Value> = dialog_ids
            .into_iter()
            .map(|id| {
                let path = format!("/api/dialogs/{id}");
                let dialog = self.read(reader(), &path);
                let lead = self.read(reader(), dialog["lead_link"].as_str().expect("a lead link"));
                let linked = |field: &str, route: &str| match lead[field].as_str() {
                    Some(linked) => self.read(reader(), &format!("/api/{route}/{linked}")),
                    None => Value::Null,
                };
                let everything = json!({
                    "dialog": dialog,
                    "messages": self.every_page(reader(), &format!("{path}/messages"), "messages"),
                    "history": self.every_page(reader(), &format!("{path}/history"), "events"),
                    "counterparty": linked("counterparty_id", "counterparties"),
                    "order": linked("order_id", "orders"),
                    "lead": lead,
                });
                (id, everything)
            })
            .collect();
        json!({
            "settings": self.read(ADMIN, "/api/settings"),
            "employees": self.read(ADMIN, "/api/employees"),
            "lists": lists,
            "dialogs": dialogs,
        })
    }

    /// The one dialog of a VK user (fails if there is not exactly one).
    pub fn dialog_of(&self, user: i64) -> Value {
        let mut all = self.dialogs(0, "open");
        all.extend(self.dialogs(0, "spam"));
        all.extend(self.dialogs(0, "finished"));
        let mine: Vec<Value> = all.into_iter().filter(|d| d["peer_id"] == user).collect();
        assert_eq!(mine.len(), 1, "expected one dialog of {user}: {mine:?}");
        mine[0].clone()
    }

    /// Runs the outbox now (as its timer would).
    pub fn flush(&self) -> Value {
        let (code, body) = self
            .host
            .call("POST", "/api/outbox/flush", Some(ADMIN), None);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Flushes the outbox until a message of `dialog` is `sent` (at most 15 s); whether one
    /// was.
    pub fn flush_until_sent(&self, dialog: &str) -> bool {
        eventually(Duration::from_secs(15), || {
            self.flush();
            self.messages(0, dialog)
                .iter()
                .any(|m| m["delivery"] == "sent")
        })
    }
}

/// Writes the settings, creates employees and lists them, and lets VK confirm the server. On
/// Spin the access key, secret, confirmation string and name are variables already (and
/// refused as `fixed-by-platform` here), so only the employees are written.
pub fn connect(host: &Host, shell: Shell, employees: usize) -> Vec<Employee> {
    let staff: Vec<Employee> = (0..employees)
        .map(|n| {
            let (code, body) = host.call(
                "POST",
                "/api/employees",
                Some(ADMIN),
                Some(json!({"name": format!("Operator {n}")})),
            );
            assert_eq!(code, 201, "{body}");
            Employee {
                id: body["id"].as_str().expect("an id").into(),
                token: body["token"].as_str().expect("a token").into(),
            }
        })
        .collect();
    let ids: Vec<&str> = staff.iter().map(|e| e.id.as_str()).collect();
    let settings = match shell {
        Shell::Plugin => json!({
            "access_token": ACCESS_TOKEN, "secret": SECRET, "confirmation": CONFIRMATION,
            "group_name": "Bakery", "employees": ids,
        }),
        Shell::Spin => json!({"employees": ids}),
    };
    let (code, body) = host.call("PUT", "/api/settings", Some(ADMIN), Some(settings));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        host.callback(&confirmation()),
        (200, CONFIRMATION.to_owned())
    );
    staff
}

/// The code of a sign-in link the admin issues for `employee` (the part after `#`).
pub fn sign_in_code(host: &Host, employee: &str) -> String {
    let (code, body) = host.call(
        "POST",
        &format!("/api/employees/{employee}/sign-in-link"),
        Some(ADMIN),
        None,
    );
    assert_eq!(code, 201, "{body}");
    let link = body["link"].as_str().expect("a link");
    assert!(link.contains("/sign-in#"), "{link}");
    link.split_once('#').expect("a code").1.to_owned()
}

/// The session token (the `vk_session` cookie's value) `employee` gets by signing in with a
/// link the admin issues.
pub fn session(host: &Host, employee: &str) -> String {
    let body = json!({"code": sign_in_code(host, employee)}).to_string();
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{}/api/sessions", host.base))
        .header("content-type", "application/json")
        .body(body.into_bytes())
        .expect("a request");
    let response = agent().run(request).expect("vk-host answers");
    assert_eq!(response.status().as_u16(), 201, "signing in");
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.split(';').next()?.strip_prefix("vk_session="))
        .expect("a session cookie")
        .to_owned()
}

/// An HTTP client that reports every status as an answer and waits up to a minute.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Posts a callback; `None` when the host did not answer (it was killed).
pub fn post_callback(agent: &ureq::Agent, base: &str, event: &Value) -> Option<(u16, String)> {
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!("{base}{CALLBACK_PATH}"))
        .header("content-type", "application/json")
        .body(event.to_string().into_bytes())
        .expect("a request");
    let mut response = agent.run(request).ok()?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().ok()?;
    assert_no_secret("the answer to a callback", &text);
    Some((status, text))
}

pub fn confirmation() -> Value {
    json!({"type": "confirmation", "group_id": GROUP, "secret": SECRET})
}

/// `message_new` in the current shape (`{message, client_info}`, API ≥ 5.103).
pub fn message_new(event_id: &str, user: i64, vk_id: i64, text: &str) -> Value {
    json!({
        "group_id": GROUP, "type": "message_new", "event_id": event_id, "v": "5.199", "secret": SECRET,
        "object": {
            "message": {"date": 1_767_261_600, "from_id": user, "id": vk_id, "out": 0, "peer_id": user,
                        "text": text, "attachments": [], "conversation_message_id": vk_id, "random_id": 0},
            "client_info": {"button_actions": ["text"], "keyboard": true, "inline_keyboard": true, "carousel": false, "lang_id": 0}
        }
    })
}

/// `message_reply`: the community's own message (the object is the message itself).
pub fn message_reply(event_id: &str, user: i64, vk_id: i64, random_id: i64, text: &str) -> Value {
    json!({
        "group_id": GROUP, "type": "message_reply", "event_id": event_id, "v": "5.199", "secret": SECRET,
        "object": {"date": 1_767_261_800, "from_id": -GROUP, "id": vk_id, "out": 1, "peer_id": user,
                   "text": text, "attachments": [], "random_id": random_id}
    })
}

pub fn user_event(kind: &str, event_id: &str, user: i64) -> Value {
    json!({"group_id": GROUP, "type": kind, "event_id": event_id, "v": "5.199", "secret": SECRET, "object": {"user_id": user}})
}

/// Polls `check` until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

// A throwaway PostgreSQL (`scale_out.rs`, `storage_contract.rs`).

/// A PostgreSQL server of Debian's `postgresql` package: `initdb` into a temporary folder,
/// `pg_ctl` on a free loopback port; stopped and removed when dropped.
pub struct Postgres {
    dir: std::path::PathBuf,
    port: u16,
}

/// Where Debian keeps PostgreSQL's server programs.
fn postgres_program(name: &str) -> String {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|version| version.path().join("bin").join(name))
        .find(|path| path.exists());
    found.map_or_else(|| name.to_owned(), |path| path.display().to_string())
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL program, run as the `postgres` user when this is root (`initdb` refuses
/// root), else as this user.
fn postgres_command(name: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &postgres_program(name)]);
        command
    } else {
        Command::new(postgres_program(name))
    }
}

/// Runs a PostgreSQL program, which must succeed.
fn as_postgres(name: &str, args: &[&str]) {
    let output = postgres_command(name)
        .args(args)
        .output()
        .expect("a PostgreSQL program runs");
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = std::env::temp_dir().join(format!("vk-e2e-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        if is_root() {
            let owner = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .expect("id runs");
            let uid: u32 = String::from_utf8_lossy(&owner.stdout)
                .trim()
                .parse()
                .expect("the postgres user exists (Debian's postgresql package)");
            std::os::unix::fs::chown(&dir, Some(uid), None).expect("chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = dir.join("data");
        let data = data.to_str().expect("a UTF-8 path");
        as_postgres(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ],
        );
        let postgres = Postgres { dir, port };
        postgres.resume();
        postgres
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once, as a crash or an outage would.
    pub fn halt(&self) {
        as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        postgres_command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output()
            .ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
