//! The Spin path: VK's callbacks through the real `vk_spin.wasm` (`make spin-plugin`), run by
//! `vk-host serve-spin` from the real `spin.toml`, with its SQLite database, its variables
//! and its outbound HTTP routed to the VK stand-in.
//!
//! The Spin app serves VK's callback route and nothing else, by design (it has no operator
//! API and no authentication), so these tests read what it stored straight from its SQLite
//! file: `kv(key, version, value)` with vk-core's keys (`lead/…`, `dialog/…`, `message/…`).
//! That is also the database a CRM host sharing the app's storage would read.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ACCESS_TOKEN, CONFIRMATION, Failure, GROUP, Host, SECRET, VkStandIn};
use support::{confirmation, message_new};
use vk_host::api::CALLBACK_PATH;
use vk_host::plugin::Limits;
use vk_host::spin::manifest::Manifest;
use vk_host::spin::{Database, SpinApp, SpinOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cache_dir() -> PathBuf {
    root().join("target/vk-host-cache")
}

/// The variables a deployment sets (on Spin: `SPIN_VARIABLE_*` or a secrets provider).
fn variables() -> Vec<(&'static str, &'static str)> {
    vec![
        ("access_token", ACCESS_TOKEN),
        ("secret", SECRET),
        ("confirmation", CONFIRMATION),
        ("group_name", "Bakery"),
    ]
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
        let mut args: Vec<String> = vec![
            "serve-spin".into(),
            "--manifest".into(),
            root().join("spin.toml").display().to_string(),
            "--sqlite".into(),
            dir.join("spin.db").display().to_string(),
            "--vk-api-base".into(),
            vk.base.clone(),
            "--cache-dir".into(),
            cache_dir().display().to_string(),
        ];
        for (name, value) in variables() {
            args.extend(["--variable".into(), format!("{name}={value}")]);
        }
        let host = Host::start(&args);
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
    let (code, _) = world.host.request("POST", "/api/settings", None, None);
    assert_eq!(code, 404, "spin.toml routes nothing else");
    assert!(world.records("message/").is_empty());
}

#[test]
fn the_component_itself_refuses_bodies_over_a_mebibyte_in_process() {
    let variables = variables()
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let app = SpinApp::load(&SpinOptions {
        manifest: root().join("spin.toml"),
        database: Database::Memory,
        vk_api_base: None,
        variables,
        cache_dir: cache_dir(),
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
fn spin_toml_names_the_built_component_its_route_and_vk() {
    let manifest = Manifest::read(&root().join("spin.toml")).expect("a valid spin.toml");
    assert_eq!(manifest.routes.len(), 1);
    assert_eq!(manifest.routes[0].path, CALLBACK_PATH);
    let component = &manifest.components[&manifest.routes[0].component];
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
        assert!(variable.secret && variable.default.is_none(), "{secret}");
        assert_eq!(component.variables[secret], format!("{{{{ {secret} }}}}"));
    }
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
    for (name, _) in variables() {
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
