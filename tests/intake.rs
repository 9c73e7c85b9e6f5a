//! VK callback intake end to end: the real host, the real component, a VK stand-in.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn confirmation_answers_the_string_and_records_the_community(shell: Shell) {
    let world = World::on(shell, 1);
    let (code, settings) = world.host.call("GET", "/api/settings", Some(ADMIN), None);
    assert_eq!(code, 200);
    assert_eq!(settings["group_id"], GROUP);
    // Read-only afterwards: another community's confirmation is refused.
    let mut foreign = confirmation();
    foreign["group_id"] = json!(GROUP + 1);
    assert_eq!(world.host.callback(&foreign).0, 403);
    // An explicit reset lets a new community confirm.
    let (code, settings) = world
        .host
        .call("DELETE", "/api/settings/group-id", Some(ADMIN), None);
    assert_eq!((code, settings["group_id"].clone()), (200, Value::Null));
    assert_eq!(
        world.host.callback(&foreign),
        (200, CONFIRMATION.to_owned())
    );
}

fn a_new_person_becomes_a_lead_with_a_dialog_and_the_message(shell: Shell) {
    let world = World::on(shell, 1);
    let (code, body) = world.host.callback(&message_new(
        "e-1",
        512_340_987,
        1042,
        "Сколько стоит доставка?",
    ));
    assert_eq!((code, body.as_str()), (200, "ok"));
    let dialog = world.dialog_of(512_340_987);
    assert_eq!(
        (dialog["status"].as_str(), dialog["responsible"].clone()),
        (Some("open"), Value::Null)
    );
    let (code, lead) = world.host.call(
        "GET",
        &format!("/api/leads/{}", dialog["lead_id"].as_str().unwrap()),
        world.token(0),
        None,
    );
    assert_eq!(code, 200, "{lead}");
    assert_eq!(lead["title"], "Bakery: Ivan512340987 Petrov");
    assert_eq!(
        (lead["first_name"].as_str(), lead["last_name"].as_str()),
        (Some("Ivan512340987"), Some("Petrov"))
    );
    assert_eq!(
        (lead["source"].as_str(), lead["status"].as_str()),
        (Some("Bakery"), Some("new"))
    );
    assert_eq!(lead["communication"]["dialog_id"], dialog["id"]);
    let messages = world.messages(0, dialog["id"].as_str().unwrap());
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (
            messages[0]["direction"].as_str(),
            messages[0]["text"].as_str()
        ),
        (Some("in"), Some("Сколько стоит доставка?"))
    );
    let lookups = world.vk.calls("users.get");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0]["user_ids"], "512340987");
    assert_eq!(lookups[0]["access_token"], ACCESS_TOKEN);
}

fn the_old_message_new_shape_is_read_too(shell: Shell) {
    let world = World::on(shell, 1);
    let old = json!({"type": "message_new", "group_id": GROUP, "event_id": "old-1", "secret": SECRET,
        "object": {"id": 7, "date": 1_500_000_000, "peer_id": 42, "from_id": 42, "text": "old client",
                   "attachments": [{"type": "doc", "doc": {"title": "price.pdf", "url": "https://vk.com/doc1_2"}}]}});
    assert_eq!(world.host.callback(&old), (200, "ok".to_owned()));
    let dialog = world.dialog_of(42);
    let messages = world.messages(0, dialog["id"].as_str().unwrap());
    assert_eq!(messages[0]["text"], "old client");
    assert_eq!(
        messages[0]["attachments"],
        json!([{"type": "doc", "url": "https://vk.com/doc1_2", "title": "price.pdf"}])
    );
}

fn a_wrong_secret_or_a_foreign_community_is_refused_and_stores_nothing(shell: Shell) {
    let world = World::on(shell, 1);
    // A person already known (a refused event must not reach their dialog) and a new one
    // (it must not open a dialog or ask VK for a name).
    assert_eq!(
        world.host.callback(&message_new("e-0", 7, 1, "hi")),
        (200, "ok".to_owned())
    );
    let before = world.snapshot();
    let lookups = world.vk.calls("users.get").len();
    for person in [7, 8] {
        let mut wrong_secret = message_new(&format!("e-1-{person}"), person, 2, "hi");
        wrong_secret["secret"] = json!("guess");
        let mut no_secret = message_new(&format!("e-2-{person}"), person, 3, "hi");
        no_secret.as_object_mut().unwrap().remove("secret");
        let mut foreign = message_new(&format!("e-3-{person}"), person, 4, "hi");
        foreign["group_id"] = json!(GROUP + 1);
        for (event, code) in [
            (wrong_secret, "wrong-secret"),
            (no_secret, "wrong-secret"),
            (foreign, "foreign-group"),
        ] {
            let (status, body) = world.host.callback(&event);
            let error: Value = serde_json::from_str(&body).expect("a JSON error");
            assert_eq!(
                (status, error["error"]["code"].as_str()),
                (403, Some(code)),
                "{body}"
            );
        }
    }
    assert_eq!(world.snapshot(), before);
    assert_eq!(
        world.vk.calls("users.get").len(),
        lookups,
        "nothing refused reaches VK"
    );
}

fn an_event_sent_five_times_is_stored_once(shell: Shell) {
    let world = World::on(shell, 1);
    let event = message_new("same-event", 99, 5, "once");
    for _ in 0..5 {
        assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
    }
    let dialog = world.dialog_of(99);
    assert_eq!(world.messages(0, dialog["id"].as_str().unwrap()).len(), 1);
}

fn a_redelivery_with_x_retry_counter_is_acknowledged_and_changes_nothing(shell: Shell) {
    let world = World::on(shell, 1);
    let event = message_new("retried", 99, 5, "once");
    assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
    let before = world.snapshot();
    let lookups = world.vk.calls("users.get").len();
    // VK redelivers an event it thinks was lost, numbering the retries.
    for retry in [1, 2] {
        assert_eq!(
            world.host.callback_redelivered(&event, retry),
            (200, "ok".to_owned())
        );
    }
    assert_eq!(world.snapshot(), before);
    assert_eq!(world.vk.calls("users.get").len(), lookups);
    // A redelivery whose first delivery never arrived is an event like any other: skipping
    // events that carry the header would lose it.
    assert_eq!(
        world
            .host
            .callback_redelivered(&message_new("first-seen-as-retry", 99, 6, "twice?"), 1),
        (200, "ok".to_owned())
    );
    let dialog = world.dialog_of(99);
    let texts: Vec<Value> = world
        .messages(0, dialog["id"].as_str().unwrap())
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("once"), json!("twice?")]);
}

fn twenty_parallel_first_messages_give_one_lead_one_dialog_twenty_messages(shell: Shell) {
    let world = World::on(shell, 1);
    std::thread::scope(|scope| {
        for n in 0..20 {
            let host = &world.host;
            scope.spawn(move || {
                let (code, body) = host.callback(&message_new(
                    &format!("burst-{n}"),
                    777,
                    100 + n,
                    &format!("message {n}"),
                ));
                assert_eq!((code, body.as_str()), (200, "ok"));
            });
        }
    });
    let dialog = world.dialog_of(777);
    let messages = world.messages(0, dialog["id"].as_str().unwrap());
    assert_eq!(messages.len(), 20);
    let mut texts: Vec<String> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 20);
    let (code, lead) = world.host.call(
        "GET",
        &format!("/api/leads/{}", dialog["lead_id"].as_str().unwrap()),
        world.token(0),
        None,
    );
    assert_eq!(
        (code, lead["communication"]["dialog_id"].clone()),
        (200, dialog["id"].clone())
    );
}

fn malformed_bodies_are_refused_and_store_nothing(shell: Shell) {
    let world = World::on(shell, 1);
    let before = world.snapshot();
    for (body, what) in [
        (&b"{not json"[..], "not JSON"),
        (br#"{"group_id": 1}"#, "no type"),
        (br#"{"type": "message_new"}"#, "no group_id"),
    ] {
        let (code, answer) = world
            .host
            .request("POST", CALLBACK_PATH, None, Some(body.to_vec()));
        assert_eq!(code, 400, "{what}: {answer}");
        assert!(answer.contains("malformed-body"), "{what}: {answer}");
    }
    let (code, body) = world.host.request("GET", CALLBACK_PATH, None, None);
    assert_eq!(code, 405);
    assert!(body.contains("method-not-allowed"), "{body}");
    assert_eq!(world.snapshot(), before);
}

/// The largest body a request may have: 1 MiB, spelled here as the contract says.
const BODY_LIMIT: usize = 1 << 20;

/// `json` padded with trailing spaces to exactly `size` bytes: still the same JSON.
fn padded(json: &Value, size: usize) -> Vec<u8> {
    let mut body = json.to_string().into_bytes();
    assert!(body.len() <= size, "{} bytes before padding", body.len());
    body.resize(size, b' ');
    body
}

fn a_body_of_exactly_one_mebibyte_is_served_and_one_byte_more_is_413(shell: Shell) {
    let world = World::on(shell, 1);
    let event = message_new("big", 5, 1, "just at the limit");
    let (code, body) = world.host.request(
        "POST",
        CALLBACK_PATH,
        None,
        Some(padded(&event, BODY_LIMIT)),
    );
    assert_eq!((code, body.as_str()), (200, "ok"), "1 MiB is allowed");
    let before = world.snapshot();
    let over = message_new("bigger", 5, 2, "one byte over");
    let (code, body) = world.host.request(
        "POST",
        CALLBACK_PATH,
        None,
        Some(padded(&over, BODY_LIMIT + 1)),
    );
    assert_eq!(code, 413, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(error["error"]["code"], "body-too-large");
    // The API's routes have the same limit.
    let rename = json!({"api_version": "5.131"});
    let (code, body) = world.host.request(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(padded(&rename, BODY_LIMIT + 1)),
    );
    assert_eq!(code, 413, "{body}");
    assert_eq!(world.snapshot(), before, "nothing over the limit is stored");
    let (code, body) = world.host.request(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(padded(&rename, BODY_LIMIT)),
    );
    assert_eq!(code, 200, "{body}");
    let settings: Value = serde_json::from_str(&body).expect("the settings");
    assert_eq!(settings["api_version"], "5.131");
    let dialog = world.dialog_of(5);
    let texts: Vec<Value> = world
        .messages(0, dialog["id"].as_str().unwrap())
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("just at the limit")]);
}

#[test]
fn a_failing_name_lookup_keeps_the_message_and_the_name_is_filled_in_later() {
    // No timer flush in between: the name is filled in by the flush this test runs.
    let world = World::with_flags(1, &["--flush-interval-ms", "600000"]);
    world
        .vk
        .fail_next("users.get", Failure::Vk(10, "Internal server error"));
    assert_eq!(
        world.host.callback(&message_new("e-1", 31337, 1, "hello")),
        (200, "ok".to_owned())
    );
    let dialog = world.dialog_of(31337);
    assert_eq!(dialog["name"], "VK user 31337");
    let lead_path = format!("/api/leads/{}", dialog["lead_id"].as_str().unwrap());
    assert_eq!(
        world.host.call("GET", &lead_path, world.token(0), None).1["title"],
        "Bakery: VK user 31337"
    );
    assert_eq!(world.messages(0, dialog["id"].as_str().unwrap()).len(), 1);
    assert_eq!(world.flush()["names_filled"], 1);
    let (_, lead) = world.host.call("GET", &lead_path, world.token(0), None);
    assert_eq!(
        (lead["title"].as_str(), lead["first_name"].as_str()),
        (Some("Bakery: Ivan31337 Petrov"), Some("Ivan31337"))
    );
    assert_eq!(world.dialog_of(31337)["name"], "Ivan31337 Petrov");
}

fn unknown_event_types_are_acknowledged_and_ignored(shell: Shell) {
    let world = World::on(shell, 1);
    let typing = json!({"type": "message_typing_state", "group_id": GROUP, "event_id": "t-1", "secret": SECRET,
        "object": {"state": "typing", "from_id": 5, "to_id": -GROUP}});
    assert_eq!(world.host.callback(&typing), (200, "ok".to_owned()));
    assert!(world.dialogs(0, "open").is_empty());
}

fn settings_reads_and_logs_never_contain_the_access_key_or_the_secret(shell: Shell) {
    let world = World::on(shell, 1);
    world.host.callback(&message_new("e-1", 5, 1, "hi"));
    let (code, read) = world
        .host
        .request("GET", "/api/settings", Some(ADMIN), None);
    assert_eq!(code, 200);
    let settings: Value = serde_json::from_str(&read).expect("JSON");
    assert_eq!(settings["access_token"], "vk1.a.****Ab3x");
    assert_eq!(settings["secret"], "****");
    // The answer to a write shows the mask too, even when it writes the access key and the
    // secret themselves (on Spin they are variables, which the API may not write).
    let update = match shell {
        Shell::Plugin => {
            json!({"access_token": ACCESS_TOKEN, "secret": SECRET, "api_version": API_VERSION})
        }
        Shell::Spin => json!({"api_version": API_VERSION}),
    };
    let (code, written) = world.host.request(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(update.to_string().into_bytes()),
    );
    assert_eq!(code, 200, "{written}");
    let mut wrong = message_new("e-2", 5, 2, "hi");
    wrong["secret"] = json!("nope");
    let (_, refusal) = world.host.callback(&wrong);
    let (code, reset) = world
        .host
        .request("DELETE", "/api/settings/group-id", Some(ADMIN), None);
    assert_eq!(code, 200, "{reset}");
    for answer in [&written, &reset] {
        let masked: Value = serde_json::from_str(answer).expect("JSON");
        assert_eq!(
            (&masked["access_token"], &masked["secret"]),
            (&settings["access_token"], &settings["secret"]),
            "{answer}"
        );
    }
    // The request log is written out every 100 ms: the greps below read it with the line of
    // the last request in it (`serve-spin` logs no request lines).
    if shell == Shell::Plugin {
        assert!(
            eventually(Duration::from_secs(5), || world
                .host
                .logs()
                .contains("DELETE /api/settings/group-id -> 200")),
            "{}",
            world.host.logs()
        );
    }
    // Not even a piece: any 8 characters in a row of a secret or a token would be a leak.
    let pieces: Vec<&str> = [ACCESS_TOKEN, SECRET, ADMIN, world.staff[0].token.as_str()]
        .iter()
        .flat_map(|secret| (0..=secret.len() - 8).map(move |i| &secret[i..i + 8]))
        .collect();
    for text in [read, written, refusal, reset, world.host.logs()] {
        for piece in &pieces {
            assert!(
                !text.contains(piece),
                "a piece of a secret leaked ({piece}): {text}"
            );
        }
    }
}

fn bad_settings_are_refused_with_a_clear_error_and_store_nothing(shell: Shell) {
    let world = World::on(shell, 1);
    let before = world.snapshot();
    for (body, code) in [
        (json!({"group_id": 5}), "read-only-field"),
        (json!({"secret": "x".repeat(51)}), "invalid-field"),
        (json!({"api_version": "latest"}), "invalid-field"),
        (
            json!({"employees": ["not-a-known-employee"]}),
            "unknown-employee",
        ),
        (json!({"group_name": 5}), "malformed-body"),
        (json!({"colour": "red"}), "malformed-body"),
    ] {
        let (status, answer) = world
            .host
            .call("PUT", "/api/settings", Some(ADMIN), Some(body));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(world.snapshot(), before);
    let (status, _) = world
        .host
        .call("GET", "/api/settings", world.token(0), None);
    assert_eq!(status, 403, "an operator is not the admin");
    let (status, _) = world
        .host
        .call("GET", "/api/settings", Some("made-up"), None);
    assert_eq!(status, 401);
}

fn with_a_database_file_a_restarted_host_still_has_everything(shell: Shell) {
    let dir = std::env::temp_dir().join(format!("vk-e2e-{}-{shell:?}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let db = dir.join("crm.db");
    let db = db.to_str().expect("a UTF-8 path");
    let vk = VkStandIn::start();
    let start = || match shell {
        Shell::Plugin => Host::serve(&vk, &["--db", db]),
        Shell::Spin => Host::serve_spin(&vk, &["--sqlite", db]),
    };
    let (staff, dialog_id) = {
        let host = start();
        let staff = connect(&host, shell, 1);
        assert_eq!(
            host.callback(&message_new("e-1", 555, 1, "before restart")),
            (200, "ok".to_owned())
        );
        let (_, list) = host.call("GET", "/api/dialogs", Some(&staff[0].token), None);
        (
            staff,
            list["dialogs"][0]["id"]
                .as_str()
                .expect("a dialog")
                .to_owned(),
        )
    };
    let host = start();
    let (code, messages) = host.call(
        "GET",
        &format!("/api/dialogs/{dialog_id}/messages"),
        Some(&staff[0].token),
        None,
    );
    assert_eq!(code, 200, "the employee's token survived: {messages}");
    assert_eq!(messages["messages"][0]["text"], "before restart");
    // The event log survived too: VK's redelivery after the restart changes nothing.
    assert_eq!(
        host.callback(&message_new("e-1", 555, 1, "before restart")),
        (200, "ok".to_owned())
    );
    let (_, messages) = host.call(
        "GET",
        &format!("/api/dialogs/{dialog_id}/messages"),
        Some(&staff[0].token),
        None,
    );
    assert_eq!(messages["messages"].as_array().map(Vec::len), Some(1));
    assert!(host.logs().contains("compiled code from the cache"));
    drop(host);
    std::fs::remove_dir_all(dir).ok();
}

on_both_shells!(
    confirmation_answers_the_string_and_records_the_community,
    a_new_person_becomes_a_lead_with_a_dialog_and_the_message,
    the_old_message_new_shape_is_read_too,
    a_wrong_secret_or_a_foreign_community_is_refused_and_stores_nothing,
    an_event_sent_five_times_is_stored_once,
    twenty_parallel_first_messages_give_one_lead_one_dialog_twenty_messages,
    a_redelivery_with_x_retry_counter_is_acknowledged_and_changes_nothing,
    malformed_bodies_are_refused_and_store_nothing,
    a_body_of_exactly_one_mebibyte_is_served_and_one_byte_more_is_413,
    unknown_event_types_are_acknowledged_and_ignored,
    settings_reads_and_logs_never_contain_the_access_key_or_the_secret,
    bad_settings_are_refused_with_a_clear_error_and_store_nothing,
    with_a_database_file_a_restarted_host_still_has_everything,
);
