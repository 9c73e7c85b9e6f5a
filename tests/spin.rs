//! The Spin path's own concerns: the real `vk_spin.wasm` (`make spin-plugin`), run by
//! `vk-host serve-spin` from the real `spin.toml`, with its SQLite database, its variables
//! and its outbound HTTP routed to the VK stand-in. (The intake, open-lines and lead stories
//! run on this path too: see `on_both_shells!` in `intake.rs`, `dialogs.rs`, `leads.rs`.)
//!
//! These tests read what the component stored straight from its SQLite file:
//! `kv(key, version, value)` with vk-core's keys (`lead/…`, `dialog/…`, `message/…`), the
//! database a CRM host sharing the app's storage would read, and check that the secrets
//! given as variables are never in it.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ACCESS_TOKEN, ADMIN, CONFIRMATION, Failure, GROUP, Host, SECRET, VkStandIn};
use support::{cache_dir, confirmation, message_new, spin_variables};
use vk_host::api::CALLBACK_PATH;
use vk_host::plugin::Limits;
use vk_host::spin::manifest::Manifest;
use vk_host::spin::{Database, SpinApp, SpinOptions};

fn root() -> PathBuf {
    PathBuf::from(support::root())
}

/// `serve-spin` on a fresh SQLite file, VK routed to a stand-in; everything removed on drop.
struct SpinWorld {
    vk: VkStandIn,
    host: Host,
    dir: PathBuf,
}

impl SpinWorld {
    fn start() -> SpinWorld {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vk-spin-test-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let vk = VkStandIn::start();
        let db = dir.join("spin.db").display().to_string();
        let host = Host::serve_spin(&vk, &["--sqlite", &db]);
        SpinWorld { vk, host, dir }
    }

    /// Starts and lets VK confirm the server.
    fn connected() -> SpinWorld {
        let world = SpinWorld::start();
        assert_eq!(
            world.host.callback(&confirmation()),
            (200, CONFIRMATION.to_owned())
        );
        world
    }

    /// Every stored key and value, in key order.
    fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        let db = rusqlite::Connection::open(self.dir.join("spin.db")).expect("the app's database");
        let mut rows = db
            .prepare("SELECT key, value FROM kv ORDER BY key")
            .expect("the kv table");
        rows.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("readable rows")
            .collect::<Result<_, _>>()
            .expect("readable rows")
    }

    /// The stored records whose keys start with `prefix`.
    fn records(&self, prefix: &str) -> Vec<Value> {
        self.stored()
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(_, value)| serde_json::from_slice(&value).expect("a JSON record"))
            .collect()
    }
}

impl Drop for SpinWorld {
    fn drop(&mut self) {
        self.host.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[test]
fn confirmation_answers_the_configured_string_and_records_the_community() {
    let world = SpinWorld::start();
    let (code, text) = world.host.callback(&confirmation());
    assert_eq!((code, text.as_str()), (200, CONFIRMATION));
    let settings = &world.records("settings")[0];
    assert_eq!(settings["group_id"], GROUP);
    // The variables are read on every call and never written down.
    assert_eq!(settings["access_token"], Value::Null);
    assert_eq!(settings["secret"], Value::Null);
    let everything: Vec<u8> = world.stored().into_values().flatten().collect();
    let text = String::from_utf8_lossy(&everything);
    assert!(!text.contains(SECRET) && !text.contains(ACCESS_TOKEN));
    assert!(!world.host.logs().contains(SECRET) && !world.host.logs().contains(ACCESS_TOKEN));
}

#[test]
fn the_admin_token_is_a_variable_and_tokens_are_never_stored() {
    let world = SpinWorld::connected();
    let (code, body) = world.host.call(
        "POST",
        "/api/employees",
        Some(ADMIN),
        Some(json!({"name": "Olga"})),
    );
    assert_eq!(code, 201, "{body}");
    let token = body["token"].as_str().expect("a token");
    // The employee is known (not listed in the settings yet, so the rules refuse, not auth).
    let (code, body) = world.host.call("GET", "/api/dialogs", Some(token), None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("employee-not-listed"))
    );
    let (code, _) = world.host.call(
        "POST",
        "/api/employees",
        Some("not-the-admin"),
        Some(json!({"name": "Eve"})),
    );
    assert_eq!(code, 401);
    // What a variable sets is refused over the API; what it leaves open can be changed.
    let (code, body) = world.host.call(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"secret": "another-secret", "api_version": "5.131"})),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("fixed-by-platform")),
        "{body}"
    );
    let (code, body) = world.host.call(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"api_version": "5.131"})),
    );
    assert_eq!((code, body["api_version"].as_str()), (200, Some("5.131")));
    assert_eq!(body["secret"], "****");
    let everything: Vec<u8> = world.stored().into_values().flatten().collect();
    let text = String::from_utf8_lossy(&everything);
    assert!(!text.contains(token) && !text.contains(ADMIN), "{text}");
    assert!(!text.contains("another-secret"), "{text}");
    assert!(!world.host.logs().contains(token) && !world.host.logs().contains(ADMIN));
}

#[test]
fn without_an_admin_token_the_admin_api_is_closed() {
    let vk = VkStandIn::start();
    let host = Host::serve_spin(&vk, &["--variable", "admin_token="]);
    for (method, path) in [("GET", "/api/settings"), ("POST", "/api/employees")] {
        let (code, body) = host.call(method, path, Some(ADMIN), Some(json!({"name": "Eve"})));
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
    }
}

#[test]
fn a_wrong_secret_or_a_foreign_community_is_refused_and_changes_nothing() {
    let world = SpinWorld::connected();
    let before = world.stored();
    let mut wrong_secret = message_new("e-1", 501, 1, "hello");
    wrong_secret["secret"] = json!("not-the-secret");
    let mut foreign = message_new("e-2", 501, 2, "hello");
    foreign["group_id"] = json!(GROUP + 1);
    for (event, code) in [(wrong_secret, "wrong-secret"), (foreign, "foreign-group")] {
        let (status, body) = world.host.callback(&event);
        assert_eq!(status, 403, "{body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["error"]["code"], code);
    }
    assert_eq!(world.stored(), before);
    assert!(world.vk.calls("users.get").is_empty());
}

#[test]
fn an_event_sent_five_times_is_stored_once_and_its_sender_named_by_vk() {
    let world = SpinWorld::connected();
    let event = message_new("e-repeat", 502, 10, "one cake please");
    for _ in 0..5 {
        assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
    }
    let messages = world.records("message/");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["text"], "one cake please");
    // The name came from VK through the component's outbound HTTP, rerouted to the stand-in.
    let calls = world.vk.calls("users.get");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["access_token"], ACCESS_TOKEN);
    let leads = world.records("lead/");
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["title"], "Bakery: Ivan502 Petrov");
}

#[test]
fn a_name_vk_could_not_give_is_filled_in_after_the_answer() {
    let world = SpinWorld::connected();
    world
        .vk
        .fail_next("users.get", Failure::Vk(10, "Internal server error"));
    let answer = world
        .host
        .callback(&message_new("e-name", 505, 21, "hello"));
    assert_eq!(answer, (200, "ok".to_owned()));
    // The component asks VK again once its answer is out; the lead gets the real name.
    let named = support::eventually(Duration::from_secs(10), || {
        world.records("lead/")[0]["title"] == "Bakery: Ivan505 Petrov"
    });
    assert!(named, "{:?}", world.records("lead/"));
    assert_eq!(world.vk.calls("users.get").len(), 2);
}

#[test]
fn a_slow_vk_does_not_hold_the_answer_up() {
    let world = SpinWorld::connected();
    world
        .vk
        .fail_next("users.get", Failure::Late(Duration::from_secs(6)));
    // The second lookup, made after the answer, fails too: the fallback name stays.
    world
        .vk
        .fail_next("users.get", Failure::Vk(10, "Internal server error"));
    let started = Instant::now();
    let answer = world
        .host
        .callback(&message_new("e-slow", 504, 20, "are you open?"));
    // vk-core bounds the name lookup (1.5 s); the component passes the bound to the host as
    // request options, which the host enforces.
    assert_eq!(answer, (200, "ok".to_owned()));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(world.records("lead/")[0]["title"], "Bakery: VK user 504");
    assert_eq!(world.records("message/").len(), 1);
}

#[test]
fn twenty_parallel_first_messages_of_one_person_make_one_lead_and_one_dialog() {
    let world = SpinWorld::connected();
    std::thread::scope(|threads| {
        for n in 0..20 {
            let world = &world;
            threads.spawn(move || {
                let event = message_new(&format!("e-par-{n}"), 503, 100 + n, &format!("m{n}"));
                assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
            });
        }
    });
    assert_eq!(world.records("lead/").len(), 1);
    assert_eq!(world.records("dialog/").len(), 1);
    assert_eq!(world.records("message/").len(), 20);
}

#[test]
fn malformed_json_is_400_and_a_body_over_a_mebibyte_is_413() {
    let world = SpinWorld::connected();
    let (code, body) = world
        .host
        .request("POST", CALLBACK_PATH, None, Some(b"{not json".to_vec()));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("malformed-body"), "{body}");
    let (code, body) = world
        .host
        .request("POST", CALLBACK_PATH, None, Some(vec![b' '; 2 << 20]));
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("body-too-large"), "{body}");
    let (code, body) = world.host.request("GET", CALLBACK_PATH, None, None);
    assert_eq!(code, 405, "{body}");
    let (code, _) = world.host.request("GET", "/elsewhere", None, None);
    assert_eq!(code, 404, "spin.toml routes nothing else");
    assert!(world.records("message/").is_empty());
}

#[test]
fn the_component_itself_refuses_bodies_over_a_mebibyte_in_process() {
    let variables = spin_variables()
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let app = SpinApp::load(&SpinOptions {
        manifest: root().join("spin.toml"),
        database: Database::Memory,
        vk_api_base: None,
        variables,
        cache_dir: PathBuf::from(cache_dir()),
        limits: Limits::default(),
    })
    .expect("the Spin app loads (make spin-plugin)");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let confirm = confirmation().to_string().into_bytes();
        let (code, body) = app.handle("POST", CALLBACK_PATH, confirm).await;
        assert_eq!((code, body), (200, CONFIRMATION.as_bytes().to_vec()));
        // Without the socket's cap in front, the body reaches the component, which refuses it.
        let (code, body) = app.handle("POST", CALLBACK_PATH, vec![b' '; 2 << 20]).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 413, "{body}");
        assert!(body.contains("body-too-large"), "{body}");
    });
}

#[test]
fn spin_toml_names_the_built_component_its_routes_and_vk() {
    let manifest = Manifest::read(&root().join("spin.toml")).expect("a valid spin.toml");
    let routes: Vec<(&str, &str)> = manifest
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.component.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            (CALLBACK_PATH, "vk-spin"),
            ("/api/...", "vk-spin"),
            ("/", "vk-spin"),
            ("/sign-in", "vk-spin"),
            ("/assets/...", "vk-spin"),
            ("/manifest.webmanifest", "vk-spin"),
        ]
    );
    for path in [
        CALLBACK_PATH,
        "/api/dialogs",
        "/api/leads/x/convert",
        "/",
        "/assets/app.js",
    ] {
        assert_eq!(manifest.route(path), Some("vk-spin"), "{path}");
    }
    assert_eq!(manifest.route("/elsewhere"), None);
    let component = &manifest.components["vk-spin"];
    assert!(
        component.source.is_file(),
        "{} is missing: run `make spin-plugin`",
        component.source.display()
    );
    assert_eq!(
        component.source.canonicalize().expect("a source"),
        root()
            .join("target/wasm32-wasip2/release/vk_spin.wasm")
            .canonicalize()
            .expect("the build's output")
    );
    assert_eq!(component.allowed_outbound_hosts, ["https://api.vk.com"]);
    assert_eq!(component.sqlite_databases, ["default"]);
    for secret in ["access_token", "secret", "confirmation"] {
        let variable = &manifest.variables[secret];
        assert!(variable.secret && variable.required, "{secret}");
        assert_eq!(component.variables[secret], format!("{{{{ {secret} }}}}"));
    }
    // Without an admin token the admin API is closed, not open.
    let admin = &manifest.variables["admin_token"];
    assert!(admin.secret && admin.default.as_deref() == Some(""));
    assert_eq!(component.variables["admin_token"], "{{ admin_token }}");
}

#[test]
fn a_missing_required_variable_stops_the_app_from_starting() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vk-host"));
    command
        .args(["serve-spin", "--memory", "--listen", "127.0.0.1:0"])
        .arg("--manifest")
        .arg(root().join("spin.toml"))
        .arg("--cache-dir")
        .arg(cache_dir());
    for (name, _) in spin_variables() {
        command.env_remove(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()));
    }
    let output = command.output().expect("vk-host runs");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("variable `access_token` is required"),
        "{error}"
    );
}
