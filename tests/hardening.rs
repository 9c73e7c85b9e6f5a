//! The holes an attack from outside found (issue 9), each closed and proven here through the
//! real host and component over HTTP: who may confirm a community, connections that hold
//! sockets, a slow VK, work done before authentication, exact money, duplicate keys, the
//! admin token, the database file's rights, huge pages, and the smaller ones.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use vk_host::api::CALLBACK_PATH;

const PERSON: i64 = 512_340_987;

on_both_shells!(
    a_confirmation_without_the_secret_records_nothing_and_reveals_nothing,
    a_forged_callback_is_refused_before_its_object_is_read,
    money_sent_as_a_number_is_taken_exactly_or_refused,
    a_page_of_huge_messages_still_answers,
    a_message_queued_before_the_persons_deny_is_not_sent,
    a_waiting_message_goes_out_when_the_outbox_is_flushed,
);

/// A connected host on `shell` whose outbox runs only when a test flushes it.
fn world(shell: Shell, employees: usize) -> World {
    match shell {
        Shell::Plugin => World::with_flags(employees, &["--flush-interval-ms", "600000"]),
        Shell::Spin => World::on_spin_with(employees, &[]),
    }
}

/// `world` after PERSON's first message; returns the dialog.
fn with_dialog(world: &World) -> Value {
    assert_eq!(
        world
            .host
            .callback(&message_new("first", PERSON, 1, "Здравствуйте!")),
        (200, "ok".to_owned())
    );
    world.dialog_of(PERSON)
}

/// `with_dialog`, claimed by employee 0; returns the dialog id.
fn claimed(world: &World) -> String {
    let id = with_dialog(world)["id"].as_str().expect("an id").to_owned();
    let (code, body) = world.host.call(
        "POST",
        &format!("/api/dialogs/{id}/claim"),
        world.token(0),
        None,
    );
    assert_eq!(code, 200, "{body}");
    id
}

fn settings(host: &Host) -> Value {
    let (code, body) = host.call("GET", "/api/settings", Some(ADMIN), None);
    assert_eq!(code, 200, "{body}");
    body
}

fn a_confirmation_without_the_secret_records_nothing_and_reveals_nothing(shell: Shell) {
    let world = World::on(shell, 1);
    let (code, body) = world
        .host
        .call("DELETE", "/api/settings/group-id", Some(ADMIN), None);
    assert_eq!(
        (code, body["group_id"].clone()),
        (200, Value::Null),
        "{body}"
    );
    // An attacker polls the callback route while the id is unset: without the secret, and
    // with a wrong one.
    for forged in [
        json!({"type": "confirmation", "group_id": 999}),
        json!({"type": "confirmation", "group_id": 999, "secret": "guess"}),
        json!({"type": "confirmation", "group_id": GROUP}),
    ] {
        let (code, answer) = world.host.callback(&forged);
        assert_eq!(code, 403, "{forged} → {answer}");
        assert!(answer.contains("wrong-secret"), "{answer}");
        assert!(
            !answer.contains(CONFIRMATION),
            "the string leaked: {answer}"
        );
        assert_eq!(settings(&world.host)["group_id"], Value::Null, "{forged}");
    }
    // VK's own confirmation, carrying the secret, still connects the community.
    assert_eq!(
        world.host.callback(&confirmation()),
        (200, CONFIRMATION.to_owned())
    );
    assert_eq!(settings(&world.host)["group_id"], json!(GROUP));
}

/// Reads from `stream` until the server closes it; what it sent, or `None` if it was still
/// open after `limit`.
fn until_closed(mut stream: TcpStream, limit: Duration) -> Option<String> {
    stream
        .set_read_timeout(Some(limit))
        .expect("a read timeout");
    let mut got = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return None,
        }
    }
}

fn connect_to(host: &Host) -> TcpStream {
    TcpStream::connect(host.base.trim_start_matches("http://")).expect("the host accepts")
}

#[test]
fn silent_half_sent_and_idle_connections_are_closed_after_the_client_timeout() {
    let world = World::with_flags(0, &["--client-timeout-ms", "1000"]);
    let silent = connect_to(&world.host);
    let mut half_head = connect_to(&world.host);
    half_head
        .write_all(format!("POST {CALLBACK_PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .expect("sent");
    let mut half_body = connect_to(&world.host);
    half_body
        .write_all(
            format!(
                "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"type\""
            )
            .as_bytes(),
        )
        .expect("sent");
    let mut idle = connect_to(&world.host);
    idle.write_all(b"GET /api/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("sent");

    let limit = Duration::from_secs(6);
    assert!(
        until_closed(silent, limit).is_some(),
        "a silent socket is closed"
    );
    assert!(
        until_closed(half_head, limit).is_some(),
        "a half-sent head is not waited for"
    );
    let answer = until_closed(half_body, limit).expect("a partial body is not waited for");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    let answer = until_closed(idle, limit).expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// Posts `body` to the callback route on a connection of its own; the status and answer, or
/// `None` if none came within `limit`.
fn callback_within(host: &Host, body: &Value, limit: Duration) -> Option<(u16, String)> {
    let mut stream = connect_to(host);
    let body = body.to_string();
    let request = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let answer = until_closed(stream, limit)?;
    let status = answer.get(9..12)?.parse().ok()?;
    let text = answer.split("\r\n\r\n").nth(1)?.to_owned();
    Some((status, text))
}

#[test]
fn vk_is_answered_while_hundreds_of_sockets_are_held_under_a_low_fd_limit() {
    let vk = VkStandIn::start();
    let mut args: Vec<String> = ["serve", "--memory", "--admin-token", ADMIN, "--vk-api-base"]
        .map(String::from)
        .to_vec();
    args.extend([vk.base.clone(), "--plugin".into(), plugin_path()]);
    args.extend(["--cache-dir".into(), cache_dir()]);
    let host = Host::start_under(&["prlimit", "--nofile=256:256", "--"], &args);
    connect(&host, Shell::Plugin, 1);
    let held: Vec<TcpStream> = (0..300)
        .filter_map(|n| {
            let mut stream = TcpStream::connect(host.base.trim_start_matches("http://")).ok()?;
            if n % 2 == 0 {
                stream.write_all(b"POST /api/dialogs HTTP/1.1\r\n").ok()?;
            }
            Some(stream)
        })
        .collect();
    assert!(held.len() >= 250, "the abuser holds {} sockets", held.len());
    for n in 0..5 {
        let event = message_new(&format!("held-{n}"), PERSON + n, n + 1, "Есть торты?");
        assert_eq!(
            callback_within(&host, &event, Duration::from_secs(5)),
            Some((200, "ok".to_owned())),
            "callback {n} while {} sockets are held",
            held.len()
        );
    }
    drop(held);
}

#[test]
fn a_slow_vk_never_turns_a_stored_message_into_an_error() {
    let world = World::with_flags(
        1,
        &["--call-timeout-ms", "2000", "--flush-interval-ms", "600000"],
    );
    let id = claimed(&world);
    // VK takes the message but answers after the call's whole deadline.
    world
        .vk
        .fail_next("messages.send", Failure::Late(Duration::from_secs(4)));
    let (code, message) = world.host.call(
        "POST",
        &format!("/api/dialogs/{id}/messages"),
        world.token(0),
        Some(json!({"text": "Торт будет готов к пятнице"})),
    );
    assert_eq!(
        (code, message["delivery"].as_str()),
        (201, Some("pending")),
        "a stored message is never reported as a failure: {message}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(world.flush_until_sent(&id), "{:?}", world.messages(0, &id));
    assert_eq!(
        world.vk.delivered(),
        vec![(PERSON, "Торт будет готов к пятнице".to_owned())],
        "the retry did not deliver it twice"
    );
}

#[test]
fn slow_sends_leave_the_operator_api_to_others() {
    let world = World::with_flags(2, &["--flush-interval-ms", "600000"]);
    let id = claimed(&world);
    const SENDS: usize = 60;
    for _ in 0..SENDS {
        world
            .vk
            .fail_next("messages.send", Failure::Late(Duration::from_secs(5)));
    }
    let answers = std::thread::scope(|scope| {
        let sends: Vec<_> = (0..SENDS)
            .map(|n| {
                let (world, id) = (&world, &id);
                scope.spawn(move || {
                    world.host.call(
                        "POST",
                        &format!("/api/dialogs/{id}/messages"),
                        world.token(0),
                        Some(json!({"text": format!("Ответ {n}")})),
                    )
                })
            })
            .collect();
        // As many sends as the operator API has instances are waiting for VK now; a
        // colleague's list is not held up by them.
        assert!(
            eventually(Duration::from_secs(4), || world
                .vk
                .calls("messages.send")
                .len()
                >= 48),
            "the sends reached VK"
        );
        let started = Instant::now();
        let (code, body) = world
            .host
            .call("GET", "/api/dialogs?status=open", world.token(1), None);
        let waited = started.elapsed();
        assert_eq!(code, 200, "{body}");
        assert!(
            waited < Duration::from_secs(2),
            "the list waited {waited:?} behind {SENDS} sends to a slow VK"
        );
        sends
            .into_iter()
            .map(|send| send.join().expect("a send"))
            .collect::<Vec<_>>()
    });
    for (code, message) in answers {
        assert_eq!((code, message["delivery"].as_str()), (201, Some("sent")));
    }
}

/// A callback body whose object nests `depth` arrays deep.
fn deep_callback(secret: &str, depth: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"message_new","group_id":{GROUP},"event_id":"deep","secret":"{secret}","object":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

fn a_forged_callback_is_refused_before_its_object_is_read(shell: Shell) {
    let world = World::on(shell, 1);
    let post = |body: Vec<u8>| world.host.request("POST", CALLBACK_PATH, None, Some(body));
    // Far deeper than any parser would build: refused for its secret, not for its object.
    let (code, answer) = post(deep_callback("forged", 100_000));
    assert_eq!(code, 403, "{answer}");
    assert!(answer.contains("wrong-secret"), "{answer}");
    // With the right secret, nesting past the bound is bad input.
    let (code, answer) = post(deep_callback(SECRET, 40));
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("deeper than 32"), "{answer}");
    assert!(world.dialogs(0, "open").is_empty(), "nothing was stored");
}

fn money_sent_as_a_number_is_taken_exactly_or_refused(shell: Shell) {
    let world = World::on(shell, 1);
    let lead = with_dialog(&world)["lead_id"]
        .as_str()
        .expect("a lead")
        .to_owned();
    let add = |raw: &str| {
        world.host.request(
            "POST",
            &format!("/api/leads/{lead}/items"),
            world.token(0),
            Some(raw.as_bytes().to_vec()),
        )
    };
    // JSON numbers with more digits than money has: a float would round them to 1.00 and 1.
    for raw in [
        r#"{"name": "Торт", "quantity": 1, "price": 1.00000000000000001}"#,
        r#"{"name": "Торт", "quantity": 1.0000000000000001, "price": 1}"#,
    ] {
        let (code, answer) = add(raw);
        assert_eq!(code, 400, "{raw} → {answer}");
        assert!(answer.contains("invalid-field"), "{answer}");
    }
    let (code, answer) = add(r#"{"name": "Торт", "quantity": 2.5, "price": 1850.5}"#);
    assert_eq!(code, 201, "{answer}");
    let lead: Value = serde_json::from_str(&answer).expect("JSON");
    let items = lead["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "only the exact item was stored: {lead}");
    assert_eq!(
        (items[0]["price"].as_str(), items[0]["quantity"].as_str()),
        (Some("1850.50"), Some("2.5"))
    );
}

#[test]
fn settings_with_a_key_given_twice_are_refused_and_nothing_changes() {
    let world = World::new(1);
    let before = settings(&world.host);
    let (code, answer) = world.host.request(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(
            r#"{"group_name": "Пекарня", "group_name": "Другая"}"#
                .as_bytes()
                .to_vec(),
        ),
    );
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("malformed-body"), "{answer}");
    assert!(answer.contains("duplicate"), "{answer}");
    assert_eq!(settings(&world.host), before);
}

/// Starts `vk-host serve` with `args` and waits for it to exit by itself; its exit status
/// and log, or `None` if it was still serving after 30 s.
fn exits_at_start(args: &[&str]) -> Option<(bool, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vk-host"))
        .args(["serve", "--memory", "--plugin", &plugin_path()])
        .args(["--cache-dir", &cache_dir()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vk-host starts");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait().expect("a status") {
            let mut log = String::new();
            child
                .stderr
                .take()
                .expect("piped")
                .read_to_string(&mut log)
                .expect("the log");
            assert_no_secret("the log of a host that stopped", &log);
            return Some((status.success(), log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    child.wait().ok();
    None
}

#[test]
fn a_short_or_example_admin_token_stops_the_host_unless_it_is_a_local_trial() {
    for token in ["change-me", "CHANGEME", "short-token"] {
        let (succeeded, log) = exits_at_start(&["--admin-token", token, "--listen", "127.0.0.1:0"])
            .unwrap_or_else(|| panic!("the host served with the admin token {token:?}"));
        assert!(!succeeded, "{log}");
        assert!(log.contains("at least 16 characters"), "{log}");
        assert!(!log.contains(token), "the token is not echoed: {log}");
    }
    let (succeeded, log) = exits_at_start(&[
        "--admin-token",
        "change-me",
        "--local-trial",
        "--listen",
        "0.0.0.0:0",
    ])
    .expect("a trial on every interface is refused");
    assert!(!succeeded && log.contains("loopback"), "{log}");

    let vk = VkStandIn::start();
    let trial = Host::start(
        &[
            "serve",
            "--memory",
            "--local-trial",
            "--admin-token",
            "change-me",
            "--vk-api-base",
            &vk.base,
            "--plugin",
            &plugin_path(),
            "--cache-dir",
            &cache_dir(),
        ]
        .map(String::from),
    );
    let (code, body) = trial.call("GET", "/api/settings", Some("change-me"), None);
    assert_eq!(code, 200, "{body}");
}

#[test]
fn repeated_wrong_tokens_from_one_address_are_slowed_down() {
    let world = World::new(1);
    let wrong = |n: usize| {
        world
            .host
            .call("GET", "/api/settings", Some(&format!("guess-{n}")), None)
            .0
    };
    for n in 0..20 {
        assert_eq!(wrong(n), 401);
    }
    let started = Instant::now();
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (20..28).map(|n| scope.spawn(move || wrong(n))).collect();
        guesses
            .into_iter()
            .map(|g| g.join().expect("a guess"))
            .collect()
    });
    let took = started.elapsed();
    assert_eq!(codes, vec![401; 8]);
    assert!(
        took >= Duration::from_millis(1500),
        "8 parallel guesses after 20 wrong ones were answered in {took:?}"
    );
    // The right token from the same address is not refused.
    assert_eq!(
        world.host.call("GET", "/api/settings", Some(ADMIN), None).0,
        200
    );
}

#[test]
fn the_database_file_and_its_folder_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("vk-hardening-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    // A new file in a new folder.
    let new = dir.join("data").join("vk-crm.db");
    let new_text = new.to_str().expect("UTF-8").to_owned();
    let world = World::with_flags(1, &["--db", &new_text]);
    assert_eq!(
        (mode(&new), mode(new.parent().expect("a folder"))),
        (0o600, 0o700)
    );
    drop(world);
    // An existing file others could read is tightened at start.
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let world = World::with_flags(0, &["--db", &new_text]);
    assert_eq!(mode(&new), 0o600);
    assert!(world.host.logs().contains("readable by its owner only"));
    drop(world);
    std::fs::remove_dir_all(&dir).ok();
}

fn a_page_of_huge_messages_still_answers(shell: Shell) {
    let world = world(shell, 1);
    let id = with_dialog(&world)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let huge = "я".repeat(300_000);
    for n in 0..40 {
        let event = message_new(&format!("huge-{n}"), PERSON, n + 2, &huge);
        assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
    }
    let mut texts = Vec::new();
    let mut after = String::new();
    loop {
        let (code, page) = world.host.call(
            "GET",
            &format!("/api/dialogs/{id}/messages?limit=200{after}"),
            world.token(0),
            None,
        );
        assert_eq!(code, 200, "{page}");
        let messages = page["messages"].as_array().expect("messages");
        assert!(!messages.is_empty());
        texts.extend(
            messages
                .iter()
                .map(|m| m["text"].as_str().expect("a text").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(texts.len(), 41, "every message is listed, page by page");
    for text in &texts[1..] {
        assert_eq!(
            text.chars().count(),
            9000,
            "a stored text is cut at VK's limit"
        );
    }
}

#[test]
fn a_date_far_in_the_future_is_not_rendered_outside_rfc3339() {
    let world = World::new(1);
    let mut event = message_new("future", PERSON, 1, "Из будущего");
    event["object"]["message"]["date"] = json!(300_000_000_000_i64);
    assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
    let id = world.dialog_of(PERSON)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    for message in world.messages(0, &id) {
        let at = message["sent_at"].as_str().expect("a time");
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|t| t.timestamp() < 253_402_300_800),
            "{at} is not RFC 3339"
        );
    }
}

#[test]
fn a_crafted_event_id_cannot_suppress_a_later_event_without_one() {
    let world = World::new(1);
    // The key a later `message_new` without an event_id would get: type, peer, id,
    // conversation message id, update time.
    let crafted = format!("message_new:{PERSON}:2:2:0");
    assert_eq!(
        world
            .host
            .callback(&message_new(&crafted, PERSON, 1, "Первое")),
        (200, "ok".to_owned())
    );
    let mut later = message_new("unused", PERSON, 2, "Второе");
    later.as_object_mut().expect("an object").remove("event_id");
    assert_eq!(world.host.callback(&later), (200, "ok".to_owned()));
    let id = world.dialog_of(PERSON)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let texts: Vec<Value> = world
        .messages(0, &id)
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, vec![json!("Первое"), json!("Второе")]);
}

/// Employee 0 claims PERSON's dialog and writes `text` while VK fails for a moment: the
/// message waits in the outbox. Returns the dialog id.
fn pending_send(world: &World, text: &str) -> String {
    let id = claimed(world);
    world.vk.fail_next("messages.send", Failure::Status(503));
    let (code, message) = world.host.call(
        "POST",
        &format!("/api/dialogs/{id}/messages"),
        world.token(0),
        Some(json!({"text": text})),
    );
    assert_eq!((code, message["delivery"].as_str()), (201, Some("pending")));
    id
}

fn a_message_queued_before_the_persons_deny_is_not_sent(shell: Shell) {
    let world = world(shell, 1);
    let id = pending_send(&world, "Ваш заказ готов");
    assert_eq!(
        world
            .host
            .callback(&user_event("message_deny", "deny-1", PERSON)),
        (200, "ok".to_owned())
    );
    std::thread::sleep(Duration::from_millis(1200));
    world.flush();
    let messages = world.messages(0, &id);
    let ours = messages.last().expect("the message");
    assert_eq!(ours["delivery"], "failed", "{ours}");
    assert!(
        ours["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("denied")),
        "{ours}"
    );
    assert_eq!(
        world.vk.calls("messages.send").len(),
        1,
        "VK was not asked again"
    );
    assert!(world.vk.delivered().is_empty());
}

fn a_waiting_message_goes_out_when_the_outbox_is_flushed(shell: Shell) {
    let world = world(shell, 1);
    let id = pending_send(&world, "Доставка завтра");
    // Nothing retries it by itself here (Spin has no timer; the host's is off): the flush
    // a cron job or an admin calls does.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(world.vk.calls("messages.send").len(), 1);
    let report = world.flush();
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(
        world.vk.delivered(),
        vec![(PERSON, "Доставка завтра".to_owned())]
    );
    let messages = world.messages(0, &id);
    assert_eq!(messages.last().expect("the message")["delivery"], "sent");
}

#[test]
fn the_typed_settings_export_never_returns_the_secrets() {
    use std::sync::Arc;
    use vk_host::plugin::bindings::exports::mybusiness::vk::settings::SettingsUpdate;
    use vk_host::plugin::{Limits, Plugin};

    let http = Arc::new(
        vk_host::http::Outbound::new(None, Duration::from_secs(1), 1 << 20).expect("a client"),
    );
    let store = Arc::new(vk_core::memory::MemoryStore::new());
    let plugin = Plugin::load(
        std::path::Path::new(&plugin_path()),
        std::path::Path::new(&cache_dir()),
        store,
        http,
        Limits::default(),
    )
    .expect("the plugin loads");
    let update = SettingsUpdate {
        access_token: Some(ACCESS_TOKEN.into()),
        secret: Some(SECRET.into()),
        confirmation: Some(CONFIRMATION.into()),
        group_name: Some("Bakery".into()),
        api_version: None,
        employees: None,
    };
    let views = plugin
        .call(|p, s| {
            let settings = p.mybusiness_vk_settings();
            Ok([
                settings.call_put(&mut *s, &update)?,
                settings.call_get(&mut *s)?,
                settings.call_reset_group_id(&mut *s)?,
            ])
        })
        .expect("the calls run");
    for view in views {
        let view = view.unwrap_or_else(|e| panic!("refused: {}", e.message));
        let shown = format!("{:?} {:?}", view.access_token, view.secret);
        assert_eq!(
            (view.access_token.as_deref(), view.secret.as_deref()),
            (Some("vk1.a.****Ab3x"), Some("****")),
            "{shown}"
        );
    }
}

/// A client that trickles its head or its body a few bytes at a time, never finishing, is cut
/// off like a silent one: the bounds count from the request's start, not from its last byte.
#[test]
fn trickling_clients_are_cut_off_after_a_bounded_time() {
    let world = World::with_flags(0, &["--client-timeout-ms", "1000"]);
    let head = format!("POST {CALLBACK_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let body = format!(
        "POST {CALLBACK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{\"type\":"
    );
    for (what, start) in [("head", head), ("body", body)] {
        let mut stream = connect_to(&world.host);
        stream.write_all(start.as_bytes()).expect("sent");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        // Up to 30 s of trickling (a byte every 200 ms); the host must close long before.
        let closed = (0..150).any(|_| {
            let mut buffer = [0; 512];
            match stream.read(&mut buffer) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stream.write_all(b"a").is_err()
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    stream.write_all(b"a").is_err()
                }
                Err(_) => true,
            }
        });
        assert!(closed, "a trickling {what} is cut off");
    }
    assert_eq!(
        world.host.callback(&confirmation()),
        (200, CONFIRMATION.into()),
        "the host still answers"
    );
}

/// The routes whose body is read (the others take none and leave it unread).
const TAKES_A_BODY: [(&str, &str); 8] = [
    ("POST", "/api/sessions"),
    ("POST", "/api/employees"),
    ("PUT", "/api/settings"),
    ("POST", "/api/dialogs/{id}/messages"),
    ("POST", "/api/dialogs/{id}/invite"),
    ("POST", "/api/dialogs/{id}/delegate"),
    ("POST", "/api/leads/{id}/items"),
    ("PATCH", "/api/leads/{id}/items/{item}"),
];

/// Every route refuses a deeply nested body and an oversized one without falling over: `400`
/// or `413` where the body is read (or a refusal of the caller first), never a `5xx`.
#[test]
fn nested_and_huge_bodies_are_refused_on_every_route_that_takes_one() {
    let world = World::new(1);
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes();
    let nested_object = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000)).into_bytes();
    let huge = format!("[{}1]", "1,".repeat(600_000)).into_bytes();
    let some_id = "0b8f7a52-3f5e-4c55-9a43-6f1de2d0b001";
    for route in vk_api::routes::ROUTES
        .iter()
        .filter(|r| matches!(r.method, "POST" | "PUT" | "PATCH"))
    {
        let path = route
            .path
            .replace("{id}", some_id)
            .replace("{item}", some_id);
        let token = match route.access {
            vk_api::routes::Access::Admin => Some(ADMIN),
            _ => world.token(0),
        };
        for body in [&deep, &nested_object, &huge] {
            let (status, answer) =
                world
                    .host
                    .request(route.method, &path, token, Some(body.clone()));
            let read = TAKES_A_BODY.contains(&(route.method, route.path));
            assert!(
                matches!(status, 400 | 403 | 404 | 413) || (!read && status < 500),
                "{} {}: {status} {}",
                route.method,
                route.path,
                answer.chars().take(200).collect::<String>()
            );
        }
    }
    assert_eq!(world.dialogs(0, "open").len(), 0, "nothing was stored");
    assert_eq!(
        world.host.callback(&confirmation()),
        (200, CONFIRMATION.into())
    );
}
