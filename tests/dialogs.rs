//! Open lines end to end (§2–§8): claim, reply to VK, invite, delegate, leave, history,
//! finish, spam and restore; every refusal over HTTP; tracked delivery to VK.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const PERSON: i64 = 512_340_987;

/// `world` (with three listed operators) after one new dialog; returns the dialog id.
fn with_dialog(world: World) -> (World, String) {
    assert_eq!(
        world
            .host
            .callback(&message_new("first", PERSON, 1, "Здравствуйте!")),
        (200, "ok".to_owned())
    );
    let id = world.dialog_of(PERSON)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    (world, id)
}

fn post(world: &World, who: usize, path: &str, body: Option<Value>) -> (u16, Value) {
    world.host.call("POST", path, world.token(who), body)
}

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("an id").to_owned())
        .collect()
}

fn an_operator_team_works_a_dialog_from_claim_to_restore(shell: Shell) {
    let (world, id) = with_dialog(World::on(shell, 3));
    let [a, b, c] = [0, 1, 2].map(|n| world.staff[n].id.clone());
    let d = |command: &str| format!("/api/dialogs/{id}/{command}");

    // The dialog waits in everyone's queue; A claims it.
    assert_eq!(world.dialogs(1, "open").len(), 1);
    let (code, dialog) = post(&world, 0, &d("claim"), None);
    assert_eq!(code, 200, "{dialog}");
    assert_eq!(
        (dialog["responsible"].as_str(), ids(&dialog["participants"])),
        (Some(a.as_str()), vec![a.clone()])
    );
    assert!(
        world.dialogs(1, "open").is_empty(),
        "claimed dialogs leave the queue"
    );

    // A answers: the text reaches VK once, to the right peer, with a random_id.
    let (code, message) = post(
        &world,
        0,
        &d("messages"),
        Some(json!({"text": "Доставка — 350 ₽"})),
    );
    assert_eq!(code, 201, "{message}");
    assert_eq!(
        (message["direction"].as_str(), message["delivery"].as_str()),
        (Some("out"), Some("sent"))
    );
    assert_eq!(message["author"].as_str(), Some(a.as_str()));
    assert_eq!(
        world.vk.delivered(),
        vec![(PERSON, "Доставка — 350 ₽".to_owned())]
    );
    let send = &world.vk.calls("messages.send")[0];
    assert_eq!(send["peer_id"], PERSON.to_string());
    assert!(send["random_id"].parse::<i32>().expect("an int32") > 0);
    assert_eq!(send["access_token"], ACCESS_TOKEN);

    // A invites B; B answers and leaves.
    let (code, dialog) = post(&world, 0, &d("invite"), Some(json!({"employees": [b]})));
    assert_eq!(
        (code, ids(&dialog["participants"])),
        (200, vec![a.clone(), b.clone()])
    );
    assert_eq!(
        post(&world, 1, &d("messages"), Some(json!({"text": "Я помогу"}))).0,
        201
    );
    let (code, dialog) = post(&world, 1, &d("leave"), None);
    assert_eq!((code, ids(&dialog["participants"])), (200, vec![a.clone()]));

    // A delegates to C and stays a participant until leaving.
    let (code, dialog) = post(&world, 0, &d("delegate"), Some(json!({"to": c})));
    assert_eq!(
        (code, dialog["responsible"].as_str()),
        (200, Some(c.as_str()))
    );
    assert_eq!(ids(&dialog["participants"]), vec![c.clone(), a.clone()]);
    assert_eq!(post(&world, 0, &d("leave"), None).0, 200);

    // C finishes; B restores it and it goes back to C.
    let (code, dialog) = post(&world, 2, &d("finish"), None);
    assert_eq!((code, dialog["status"].as_str()), (200, Some("finished")));
    assert_eq!(world.dialogs(1, "finished").len(), 1);
    let (code, dialog) = post(&world, 1, &d("restore"), None);
    assert_eq!(
        (
            code,
            dialog["status"].as_str(),
            dialog["responsible"].as_str()
        ),
        (200, Some("open"), Some(c.as_str()))
    );

    // C closes it as spam; it shows in the spam filter and restores to C again.
    assert_eq!(post(&world, 2, &d("spam"), None).1["status"], "spam");
    assert_eq!(world.dialogs(0, "spam").len(), 1);
    assert!(world.dialogs(2, "open").is_empty());
    assert_eq!(
        post(&world, 0, &d("restore"), None).1["responsible"].as_str(),
        Some(c.as_str())
    );

    // The history has every step, in order, with its actor; and every operator.
    let (code, history) = world.host.call("GET", &d("history"), world.token(1), None);
    assert_eq!(code, 200, "{history}");
    let steps: Vec<(String, Option<String>)> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("a kind").to_owned(),
                e["actor"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let expected = [
        ("message-in", None),
        ("claimed", Some(&a)),
        ("message-out", Some(&a)),
        ("invited", Some(&a)),
        ("message-out", Some(&b)),
        ("left", Some(&b)),
        ("delegated", Some(&a)),
        ("left", Some(&a)),
        ("finished", Some(&c)),
        ("restored", Some(&b)),
        ("closed-as-spam", Some(&c)),
        ("restored", Some(&a)),
    ]
    .map(|(kind, actor)| (kind.to_owned(), actor.cloned()));
    assert_eq!(steps, expected);
    assert_eq!(ids(&history["operators"]), vec![a, b, c]);
    assert_eq!(world.vk.delivered().len(), 2);
}

fn every_rule_refuses_over_http_and_changes_nothing(shell: Shell) {
    let (world, id) = with_dialog(World::on(shell, 3));
    let d = |command: &str| format!("/api/dialogs/{id}/{command}");
    let (_, outsider) = world.host.call(
        "POST",
        "/api/employees",
        Some(ADMIN),
        Some(json!({"name": "Not listed"})),
    );
    let outsider = outsider["token"].as_str().expect("a token").to_owned();

    let before = world.snapshot();
    let refusals: Vec<(u16, Value)> = vec![
        world.host.call("GET", "/api/dialogs", None, None),
        world.host.call("GET", "/api/dialogs", Some("forged"), None),
        world
            .host
            .call("GET", "/api/dialogs", Some(&outsider), None),
        world.host.call("POST", &d("claim"), Some(&outsider), None),
        post(&world, 1, &d("messages"), Some(json!({"text": "not mine"}))),
        post(&world, 1, &d("finish"), None),
        post(&world, 0, &d("restore"), None),
        post(
            &world,
            0,
            "/api/dialogs/00000000-0000-0000-0000-000000000000/claim",
            None,
        ),
        post(&world, 0, "/api/dialogs/not-an-id/claim", None),
    ];
    let expected = [
        (401, "unauthorized"),
        (401, "unauthorized"),
        (403, "employee-not-listed"),
        (403, "employee-not-listed"),
        (403, "not-a-participant"),
        (403, "not-responsible"),
        (409, "dialog-not-closed"),
        (404, "dialog-not-found"),
        (404, "dialog-not-found"),
    ];
    for ((status, body), (want, code)) in refusals.iter().zip(expected) {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (want, Some(code)),
            "{body}"
        );
    }
    assert_eq!(world.snapshot(), before);

    assert_eq!(post(&world, 0, &d("claim"), None).0, 200);
    let claimed = world.snapshot();
    let (status, body) = post(&world, 1, &d("claim"), None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already-claimed"))
    );
    let (status, body) = post(
        &world,
        1,
        &d("invite"),
        Some(json!({"employees": [world.staff[2].id]})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not-responsible"))
    );
    let (status, _) = post(&world, 0, &d("invite"), Some(json!({"people": []})));
    assert_eq!(status, 400);
    let (status, _) = world.host.request(
        "POST",
        &d("messages"),
        world.token(0),
        Some(b"{oops".to_vec()),
    );
    assert_eq!(status, 400);
    let (status, body) = post(
        &world,
        0,
        &d("messages"),
        Some(json!({"text": "я".repeat(9001)})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid-field"))
    );
    let (status, body) = post(
        &world,
        0,
        &d("delegate"),
        Some(json!({"to": "00000000-0000-0000-0000-000000000001"})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("employee-not-listed"))
    );

    assert_eq!(world.snapshot(), claimed);
    assert!(
        world.vk.calls("messages.send").is_empty(),
        "no refused message reached VK"
    );
}

#[test]
fn a_send_that_times_out_is_delivered_exactly_once_by_the_outbox() {
    let (world, id) = with_dialog(World::with_flags(
        3,
        &["--http-timeout-ms", "400", "--flush-interval-ms", "300"],
    ));
    post(&world, 0, &format!("/api/dialogs/{id}/claim"), None);
    world
        .vk
        .fail_next("messages.send", Failure::Late(Duration::from_millis(1500)));
    let (code, message) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "Once only"})),
    );
    assert_eq!(
        (code, message["delivery"].as_str()),
        (201, Some("pending")),
        "{message}"
    );
    for _ in 0..5 {
        world.flush();
    }
    assert!(
        world.flush_until_sent(&id),
        "the outbox delivered it: {:?}",
        world.messages(0, &id)
    );
    for _ in 0..5 {
        world.flush();
    }
    assert_eq!(world.vk.delivered(), vec![(PERSON, "Once only".to_owned())]);
    let attempts = world.vk.calls("messages.send");
    assert!(attempts.len() >= 2, "it was retried");
    assert!(
        attempts
            .iter()
            .all(|a| a["random_id"] == attempts[0]["random_id"]),
        "every retry reuses the random_id"
    );
}

fn a_permanent_vk_error_fails_the_message_at_once_and_is_not_retried(shell: Shell) {
    let (world, id) = with_dialog(World::on(shell, 3));
    post(&world, 0, &format!("/api/dialogs/{id}/claim"), None);
    world.vk.fail_next(
        "messages.send",
        Failure::Vk(
            902,
            "Can't send messages to this user due to their privacy settings",
        ),
    );
    let (code, message) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "hi"})),
    );
    assert_eq!((code, message["delivery"].as_str()), (201, Some("failed")));
    assert_eq!(message["error"]["code"], 902);
    assert!(
        message["error"]["message"]
            .as_str()
            .expect("a text")
            .contains("privacy")
    );
    world.flush();
    assert_eq!(world.vk.calls("messages.send").len(), 1);
}

#[test]
fn the_echo_of_a_sent_message_is_never_stored_twice() {
    let (world, id) = with_dialog(World::with_flags(
        3,
        &["--http-timeout-ms", "400", "--flush-interval-ms", "600000"],
    ));
    post(&world, 0, &format!("/api/dialogs/{id}/claim"), None);
    post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "first"})),
    );
    let call = world.vk.calls("messages.send")[0].clone();
    let random: i64 = call["random_id"].parse().expect("a number");
    // The echo of a delivered message (VK sends it as message_reply with our random_id).
    assert_eq!(
        world
            .host
            .callback(&message_reply("echo-1", PERSON, 1001, random, "first"))
            .0,
        200
    );
    // The echo of a message whose send is still waiting for VK's answer confirms it.
    world
        .vk
        .fail_next("messages.send", Failure::Late(Duration::from_millis(1500)));
    let (_, pending) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "second"})),
    );
    assert_eq!(pending["delivery"], "pending");
    let random: i64 = world.vk.calls("messages.send")[1]["random_id"]
        .parse()
        .expect("a number");
    assert_eq!(
        world
            .host
            .callback(&message_reply("echo-2", PERSON, 1002, random, "second"))
            .0,
        200
    );
    // A reply an admin typed inside VK is stored as outgoing with no author.
    assert_eq!(
        world
            .host
            .callback(&message_reply("typed", PERSON, 1003, 0, "typed in VK"))
            .0,
        200
    );
    let messages = world.messages(0, &id);
    let outgoing: Vec<(&str, &str, Value)> = messages
        .iter()
        .filter(|m| m["direction"] == "out")
        .map(|m| {
            (
                m["text"].as_str().unwrap(),
                m["delivery"].as_str().unwrap(),
                m["author"].clone(),
            )
        })
        .collect();
    let a = json!(world.staff[0].id);
    assert_eq!(
        outgoing,
        vec![
            ("first", "sent", a.clone()),
            ("second", "sent", a),
            ("typed in VK", "sent", Value::Null)
        ]
    );
    world.flush();
    assert_eq!(world.vk.delivered().len(), 2);
}

fn a_person_who_denied_messages_is_not_written_to(shell: Shell) {
    let (world, id) = with_dialog(World::on(shell, 3));
    post(&world, 0, &format!("/api/dialogs/{id}/claim"), None);
    assert_eq!(
        world
            .host
            .callback(&user_event("message_deny", "deny-1", PERSON))
            .0,
        200
    );
    assert_eq!(world.dialog_of(PERSON)["messages_allowed"], false);
    let (code, body) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "hello?"})),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("messages-denied"))
    );
    assert!(world.vk.calls("messages.send").is_empty());
    assert_eq!(
        world.messages(0, &id).len(),
        1,
        "the refused message was not stored"
    );
    assert_eq!(
        world
            .host
            .callback(&user_event("message_allow", "allow-1", PERSON))
            .0,
        200
    );
    assert_eq!(
        post(
            &world,
            0,
            &format!("/api/dialogs/{id}/messages"),
            Some(json!({"text": "hello!"}))
        )
        .0,
        201
    );
}

fn an_edited_message_keeps_its_previous_text(shell: Shell) {
    let (world, id) = with_dialog(World::on(shell, 3));
    let mut edit = message_reply("edit-1", PERSON, 1, 0, "Здравствуйте! Уточню вопрос");
    edit["type"] = json!("message_edit");
    edit["object"]["from_id"] = json!(PERSON);
    edit["object"]["update_time"] = json!(1_767_261_900);
    assert_eq!(world.host.callback(&edit).0, 200);
    let message = &world.messages(0, &id)[0];
    assert_eq!(message["text"], "Здравствуйте! Уточню вопрос");
    assert_eq!(message["previous_texts"], json!(["Здравствуйте!"]));
    assert_eq!(message["edited_at"], "2026-01-01T10:05:00Z");
}

fn lists_page_with_a_cursor(shell: Shell) {
    let world = World::on(shell, 1);
    for user in 1..=5 {
        world
            .host
            .callback(&message_new(&format!("p-{user}"), user, 1, "hi"));
    }
    let mut seen = Vec::new();
    let mut path = "/api/dialogs?limit=2".to_owned();
    loop {
        let (code, page) = world.host.call("GET", &path, world.token(0), None);
        assert_eq!(code, 200);
        seen.extend(
            page["dialogs"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|d| d["peer_id"].as_i64().expect("a peer")),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/dialogs?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1], "newest first, each once");
}

fn the_configured_api_version_reaches_vk_on_every_call(shell: Shell) {
    let world = World::on(shell, 1);
    let (code, settings) = world.host.call(
        "PUT",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"api_version": "5.131"})),
    );
    assert_eq!(
        (code, settings["api_version"].as_str()),
        (200, Some("5.131"))
    );
    world.vk.expect_version("5.131");
    // The first lookup fails: the name is asked for again later (after the answer on Spin,
    // by the flush on either).
    world
        .vk
        .fail_next("users.get", Failure::Vk(10, "Internal server error"));
    let (world, id) = with_dialog(world);
    let lead = format!(
        "/api/leads/{}",
        world.dialog_of(PERSON)["lead_id"].as_str().unwrap()
    );
    let named = eventually(Duration::from_secs(10), || {
        world.flush();
        world.host.call("GET", &lead, world.token(0), None).1["first_name"]
            == format!("Ivan{PERSON}")
    });
    assert!(named, "the name was filled in later");
    post(&world, 0, &format!("/api/dialogs/{id}/claim"), None);
    let (code, message) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "hello"})),
    );
    assert_eq!(
        (code, message["delivery"].as_str()),
        (201, Some("sent")),
        "{message}"
    );
    for method in ["users.get", "messages.send"] {
        let versions: Vec<String> = world
            .vk
            .calls(method)
            .iter()
            .map(|call| call["v"].clone())
            .collect();
        let expected = if method == "users.get" { 2.. } else { 1.. };
        assert!(expected.contains(&versions.len()), "{method}: {versions:?}");
        assert!(
            versions.iter().all(|v| v == "5.131"),
            "{method}: {versions:?}"
        );
        for headers in world.vk.headers(method) {
            assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        }
    }
}

/// Posts to the stand-in directly; returns VK's answer.
fn ask_vk(vk: &VkStandIn, method: &str, content_type: &str, form: &[(&str, &str)]) -> Value {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut answer = ureq::post(format!("{}/method/{method}", vk.base))
        .header("content-type", content_type)
        .send(body)
        .expect("the stand-in answers");
    serde_json::from_str(&answer.body_mut().read_to_string().expect("a body")).expect("JSON")
}

#[test]
fn the_vk_stand_in_refuses_what_vk_refuses() {
    let vk = VkStandIn::start();
    let form = "application/x-www-form-urlencoded";
    let auth = [("access_token", ACCESS_TOKEN), ("v", API_VERSION)];
    let with = |extra: &[(&'static str, &'static str)]| [&auth[..], extra].concat();
    let send = [("peer_id", "5"), ("random_id", "7"), ("message", "hi")];
    let refusals: Vec<(Value, i64, &str)> = vec![
        (
            ask_vk(
                &vk,
                "users.get",
                form,
                &[("access_token", ACCESS_TOKEN), ("user_ids", "5")],
            ),
            8,
            "Invalid request: v is required",
        ),
        (
            ask_vk(
                &vk,
                "users.get",
                form,
                &[("v", API_VERSION), ("user_ids", "5")],
            ),
            5,
            "User authorization failed: no access_token passed.",
        ),
        (
            ask_vk(
                &vk,
                "users.get",
                form,
                &[
                    ("access_token", "forged"),
                    ("v", API_VERSION),
                    ("user_ids", "5"),
                ],
            ),
            5,
            "User authorization failed: invalid access_token (4).",
        ),
        (
            // VK reads a POST's parameters from its form only.
            ask_vk(
                &vk,
                "users.get",
                "application/json",
                &with(&[("user_ids", "5")]),
            ),
            8,
            "Invalid request: v is required",
        ),
        (
            ask_vk(&vk, "users.get", form, &auth),
            100,
            "One of the parameters specified was missing or invalid: user_ids is undefined",
        ),
        (
            ask_vk(&vk, "messages.send", form, &with(&send[1..])),
            100,
            "One of the parameters specified was missing or invalid: you should specify peer_id, user_id, domain, chat_id or user_ids param",
        ),
        (
            ask_vk(&vk, "messages.send", form, &with(&[send[0], send[2]])),
            100,
            "One of the parameters specified was missing or invalid: random_id is a required parameter",
        ),
        (
            ask_vk(
                &vk,
                "messages.send",
                form,
                &with(&[send[0], ("random_id", "2147483648"), send[2]]),
            ),
            100,
            "One of the parameters specified was missing or invalid: random_id not integer",
        ),
        (
            ask_vk(&vk, "messages.send", form, &with(&send[..2])),
            100,
            "One of the parameters specified was missing or invalid: message is empty or invalid",
        ),
    ];
    for (answer, code, text) in &refusals {
        assert_eq!(
            (
                answer["error"]["error_code"].as_i64(),
                answer["error"]["error_msg"].as_str()
            ),
            (Some(*code), Some(*text)),
            "{answer}"
        );
        assert!(!answer.to_string().contains(ACCESS_TOKEN), "{answer}");
    }
    assert_eq!(
        vk.take_violations().len(),
        refusals.len() + 1,
        "and a JSON body"
    );
    assert!(vk.delivered().is_empty());

    // A nonzero random_id is delivered once per dialog; 0 asks for no check.
    let sent = |peer: &'static str, random: &'static str| {
        ask_vk(
            &vk,
            "messages.send",
            form,
            &with(&[("peer_id", peer), ("random_id", random), ("message", "hi")]),
        )["response"]
            .clone()
    };
    let first = sent("5", "7");
    assert_eq!(sent("5", "7"), first, "the repeat is the same message");
    assert_ne!(sent("6", "7"), first, "another dialog");
    assert_ne!(sent("5", "0"), sent("5", "0"), "no check with 0");
    assert_eq!(vk.delivered().len(), 4);
    // A version other than the expected one is a violation, though VK would answer.
    vk.expect_version("5.131");
    assert!(sent("5", "8").is_i64());
    assert_eq!(vk.take_violations().len(), 1);
}

on_both_shells!(
    the_configured_api_version_reaches_vk_on_every_call,
    an_operator_team_works_a_dialog_from_claim_to_restore,
    every_rule_refuses_over_http_and_changes_nothing,
    a_permanent_vk_error_fails_the_message_at_once_and_is_not_retried,
    a_person_who_denied_messages_is_not_written_to,
    an_edited_message_keeps_its_previous_text,
    lists_page_with_a_cursor,
);
