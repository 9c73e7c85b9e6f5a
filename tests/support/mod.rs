//! The end-to-end harness: a local stand-in for VK's API, and the real `vk-host` binary
//! started on loopback, serving the real plugin component (`serve`) or the real Spin
//! component (`serve-spin` with `spin.toml`), driven over real HTTP.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};

/// The community every test connects.
pub const GROUP: i64 = 218_765_432;
pub const SECRET: &str = "Qm9v-crm-7f3a91c2e4-Zx81kP0q-t7Lw3Ndf";
pub const CONFIRMATION: &str = "5e1d9c0b";
pub const ACCESS_TOKEN: &str = "vk1.a.SECRET-ACCESS-KEY-0123456789abcdefAb3x";
pub const ADMIN: &str = "admin-token-for-tests";

/// What the stand-in does on the next call of a method instead of answering normally.
#[derive(Debug, Clone)]
pub enum Failure {
    /// VK's error object with this code.
    Vk(i64, &'static str),
    /// An HTTP error status.
    Status(u16),
    /// Does the work (delivers a message), then answers this late.
    Late(Duration),
}

#[derive(Default)]
struct Recorded {
    calls: Vec<(String, HashMap<String, String>)>,
    failures: HashMap<String, VecDeque<Failure>>,
    /// (peer_id, random_id) → VK message id: VK keeps one message per random_id in a dialog.
    sent: HashMap<(String, String), i64>,
    delivered: Vec<(i64, String)>,
    next_id: i64,
}

/// A local stand-in for `https://api.vk.com`, answering as VK does and recording every call.
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
            next_id: 1000,
            ..Recorded::default()
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

    /// The parameters of every call of `method`, in order.
    pub fn calls(&self, method: &str) -> Vec<HashMap<String, String>> {
        self.lock()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The messages VK delivered to people: (peer_id, text), once per random_id.
    pub fn delivered(&self) -> Vec<(i64, String)> {
        self.lock().delivered.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().expect("stand-in state")
    }
}

async fn method(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path(name): Path<String>,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let params = parse_form(&body);
    let (failure, answer) = {
        let mut s = state.lock().expect("stand-in state");
        s.calls.push((name.clone(), params.clone()));
        let failure = s.failures.get_mut(&name).and_then(VecDeque::pop_front);
        let answer = match (&failure, name.as_str()) {
            (Some(Failure::Vk(code, text)), _) => {
                json!({"error": {"error_code": code, "error_msg": text, "request_params": [{"key": "method", "value": name}]}})
            }
            (Some(Failure::Status(_)), _) => json!({}),
            (_, "users.get") => {
                let users: Vec<Value> = params
                    .get("user_ids")
                    .map(String::as_str)
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|id| id.parse::<i64>().ok())
                    .map(|id| json!({"id": id, "first_name": format!("Ivan{id}"), "last_name": "Petrov", "can_access_closed": true, "is_closed": false}))
                    .collect();
                json!({"response": users})
            }
            (_, "messages.send") => {
                let peer = params.get("peer_id").cloned().unwrap_or_default();
                let random = params.get("random_id").cloned().unwrap_or_default();
                let known = s.sent.get(&(peer.clone(), random.clone())).copied();
                let id = match known {
                    Some(id) => id,
                    None => {
                        s.next_id += 1;
                        let id = s.next_id;
                        s.sent.insert((peer.clone(), random), id);
                        let text = params.get("message").cloned().unwrap_or_default();
                        s.delivered.push((peer.parse().unwrap_or(0), text));
                        id
                    }
                };
                json!({"response": id})
            }
            _ => json!({"error": {"error_code": 3, "error_msg": "Unknown method passed"}}),
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
        _ => axum::Json(answer).into_response(),
    }
}

fn parse_form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_vk-host"))
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
                if let Some(address) = line.split("listening on ").nth(1) {
                    tx.send(address.trim().to_owned()).ok();
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
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Host {
            child,
            base,
            logs,
            agent,
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
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
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
            "/settings/integrations/vk-group/call-back",
            None,
            Some(event.to_string().into_bytes()),
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
    fn drop(&mut self) {
        self.kill();
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

    /// The dialogs an employee sees with `status`.
    pub fn dialogs(&self, n: usize, status: &str) -> Vec<Value> {
        let (code, body) = self.host.call(
            "GET",
            &format!("/api/dialogs?status={status}&limit=200"),
            self.token(n),
            None,
        );
        assert_eq!(code, 200, "{body}");
        body["dialogs"].as_array().expect("a list").clone()
    }

    pub fn messages(&self, n: usize, dialog: &str) -> Vec<Value> {
        let (code, body) = self.host.call(
            "GET",
            &format!("/api/dialogs/{dialog}/messages?limit=200"),
            self.token(n),
            None,
        );
        assert_eq!(code, 200, "{body}");
        body["messages"].as_array().expect("a list").clone()
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
