//! The data the operator workspace reads (issue 10), end to end on both shells: each
//! dialog's last message, waiting time and unread count; the lists by last activity and the
//! tabs' counts; the read marker; the searchable lists of leads, counterparties and orders;
//! the channel's state; the change stamp.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn get(world: &World, who: usize, path: &str) -> Value {
    let (code, body) = world.host.call("GET", path, world.token(who), None);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

fn post(world: &World, who: usize, path: &str, body: Option<Value>) -> (u16, Value) {
    world.host.call("POST", path, world.token(who), body)
}

/// VK's ids of the people's messages.
static VK_IDS: AtomicI64 = AtomicI64::new(1);

/// A person writes; the callback must be taken.
fn writes(world: &World, event_id: &str, user: i64, text: &str) {
    let vk_id = VK_IDS.fetch_add(1, Ordering::Relaxed);
    assert_eq!(
        world
            .host
            .callback(&message_new(event_id, user, vk_id, text)),
        (200, "ok".to_owned())
    );
}

/// The VK users of the dialogs of a list, in its order.
fn peers(world: &World, who: usize, status: &str) -> Vec<i64> {
    world
        .dialogs(who, status)
        .iter()
        .map(|d| d["peer_id"].as_i64().expect("a peer"))
        .collect()
}

fn id_of(world: &World, user: i64) -> String {
    world.dialog_of(user)["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn a_person_writing_again_moves_their_dialog_to_the_top(shell: Shell) {
    let world = World::on(shell, 1);
    for user in 1..=3 {
        writes(&world, &format!("first-{user}"), user, "Здравствуйте!");
    }
    assert_eq!(peers(&world, 0, "queue"), [3, 2, 1]);

    writes(&world, "again-1", 1, "Есть торт «Наполеон»?\nИ свечи");
    for status in ["queue", "all", "open"] {
        assert_eq!(peers(&world, 0, status), [1, 3, 2], "{status}");
    }
    let dialog = &world.dialogs(0, "queue")[0];
    assert_eq!(dialog["name"], "Ivan1 Petrov");
    assert_eq!(
        dialog["last_message"]["text"], "Есть торт «Наполеон»?",
        "the first line"
    );
    assert_eq!(dialog["last_message"]["direction"], "in");
    assert_eq!(dialog["last_message"]["at"], dialog["last_activity_at"]);
    assert_eq!(dialog["waiting_since"], dialog["started_at"]);
    assert!(dialog["last_activity_at"].as_str() >= dialog["started_at"].as_str());
    assert_eq!(dialog["unread"], 2);

    // The paging cursor stays an opaque string.
    let (code, page) = world.host.call(
        "GET",
        "/api/dialogs?status=queue&limit=2",
        world.token(0),
        None,
    );
    assert_eq!(code, 200);
    let next = page["next"].as_str().expect("a next page");
    let after: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    let rest = get(
        &world,
        0,
        &format!("/api/dialogs?status=queue&limit=2&after={after}"),
    );
    assert_eq!(rest["dialogs"][0]["peer_id"], 2);
    assert_eq!(rest["next"], Value::Null);
}

fn unread_counts_follow_each_employees_read_marker(shell: Shell) {
    let world = World::on(shell, 2);
    writes(&world, "u-1", 7, "one");
    writes(&world, "u-2", 7, "two");
    let id = id_of(&world, 7);
    let dialog = |who: usize| get(&world, who, &format!("/api/dialogs/{id}"));
    assert_eq!(
        (dialog(0)["unread"].clone(), dialog(1)["unread"].clone()),
        (json!(2), json!(2))
    );

    let (code, read) = post(&world, 0, &format!("/api/dialogs/{id}/read"), None);
    assert_eq!(code, 200, "{read}");
    assert_eq!(
        (read["id"].as_str(), read["unread"].clone()),
        (Some(id.as_str()), json!(0))
    );
    assert_eq!(dialog(0)["unread"], 0);
    assert_eq!(dialog(1)["unread"], 2, "markers are each employee's own");
    assert_eq!(
        world.dialogs(0, "queue")[0]["unread"],
        0,
        "lists say the same"
    );

    writes(&world, "u-3", 7, "three");
    assert_eq!(
        (dialog(0)["unread"].clone(), dialog(1)["unread"].clone()),
        (json!(1), json!(3))
    );

    // Answering ends the wait, and whoever answers has read what they answer.
    assert_eq!(
        post(&world, 1, &format!("/api/dialogs/{id}/claim"), None).0,
        200
    );
    let (code, _) = post(
        &world,
        1,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "Добрый день!"})),
    );
    assert_eq!(code, 201);
    let answered = dialog(0);
    assert_eq!(
        (answered["unread"].clone(), dialog(1)["unread"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(answered["waiting_since"], Value::Null);
    assert_eq!(answered["last_message"]["direction"], "out");
    assert_eq!(answered["last_message"]["text"], "Добрый день!");

    // Refusals.
    let unknown = "/api/dialogs/00000000-0000-4000-8000-000000000000/read";
    assert_eq!(post(&world, 0, unknown, None).0, 404);
    let (code, body) = world.host.call(
        "GET",
        &format!("/api/dialogs/{id}/read"),
        world.token(0),
        None,
    );
    assert_eq!(
        (code, &body["error"]["code"]),
        (405, &json!("method-not-allowed"))
    );
    assert_eq!(
        world
            .host
            .call("POST", &format!("/api/dialogs/{id}/read"), None, None)
            .0,
        401
    );
}

fn queue_mine_and_all_list_their_dialogs_and_are_counted(shell: Shell) {
    let world = World::on(shell, 2);
    for user in 1..=3 {
        writes(&world, &format!("q-{user}"), user, "hi");
    }
    let (one, two) = (id_of(&world, 1), id_of(&world, 2));
    assert_eq!(
        post(&world, 0, &format!("/api/dialogs/{one}/claim"), None).0,
        200
    );
    assert_eq!(
        post(&world, 1, &format!("/api/dialogs/{two}/claim"), None).0,
        200
    );
    let invite = json!({"employees": [world.staff[0].id]});
    assert_eq!(
        post(
            &world,
            1,
            &format!("/api/dialogs/{two}/invite"),
            Some(invite)
        )
        .0,
        200
    );

    assert_eq!(peers(&world, 0, "queue"), [3]);
    assert_eq!(peers(&world, 0, "mine"), [2, 1]);
    assert_eq!(peers(&world, 1, "mine"), [2]);
    assert_eq!(peers(&world, 1, "all"), [3, 2, 1]);
    assert_eq!(peers(&world, 1, "open"), [3, 2]);
    assert_eq!(
        get(&world, 0, "/api/dialogs/counts"),
        json!({"queue": 1, "mine": 2, "all": 3})
    );
    assert_eq!(
        get(&world, 1, "/api/dialogs/counts"),
        json!({"queue": 1, "mine": 1, "all": 3})
    );

    let (code, body) = world
        .host
        .call("GET", "/api/dialogs?status=closed", world.token(0), None);
    assert_eq!(
        (code, &body["error"]["code"]),
        (400, &json!("invalid-query"))
    );
    let (code, _) = world
        .host
        .call("POST", "/api/dialogs/counts", world.token(0), None);
    assert_eq!(code, 405);
}

fn leads_counterparties_and_orders_are_listed_and_searched(shell: Shell) {
    let world = World::on(shell, 1);
    for user in [11, 12, 13] {
        writes(&world, &format!("d-{user}"), user, "hi");
    }
    let leads = |query: &str| -> Vec<Value> {
        let page = get(&world, 0, &format!("/api/leads?{query}"));
        assert_eq!(page["next"], Value::Null, "{query}");
        page["leads"].as_array().expect("a list").clone()
    };
    let names = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|l| l["first_name"].as_str().expect("a name").to_owned())
            .collect()
    };
    assert_eq!(names(&leads("")), ["Ivan13", "Ivan12", "Ivan11"]);
    assert_eq!(names(&leads("q=IVAN12")), ["Ivan12"]);
    assert_eq!(
        names(&leads("q=bakery")).len(),
        3,
        "the title holds the community"
    );
    assert!(leads("q=nobody").is_empty());
    // Each item is what the lead's own route gives.
    let lead = &leads("q=ivan11")[0];
    let own = get(
        &world,
        0,
        &format!("/api/leads/{}", lead["id"].as_str().expect("an id")),
    );
    assert_eq!(*lead, own);

    // Paging: one at a time, newest first, each once.
    let mut seen = Vec::new();
    let mut path = "/api/leads?q=petrov&limit=1".to_owned();
    loop {
        let page = get(&world, 0, &path);
        seen.extend(names(page["leads"].as_array().expect("a list")));
        match page["next"].as_str() {
            Some(next) => {
                let after: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                path = format!("/api/leads?q=petrov&limit=1&after={after}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["Ivan13", "Ivan12", "Ivan11"]);

    for user in [11, 13] {
        let lead = world.dialog_of(user)["lead_id"]
            .as_str()
            .expect("a lead")
            .to_owned();
        let item = json!({"name": "Торт", "quantity": 1, "price": 1500});
        assert_eq!(
            post(&world, 0, &format!("/api/leads/{lead}/items"), Some(item)).0,
            201
        );
        assert_eq!(
            post(&world, 0, &format!("/api/leads/{lead}/convert"), None).0,
            200
        );
    }
    let counterparties = get(&world, 0, "/api/counterparties?q=ivan1");
    let listed: Vec<&Value> = counterparties["counterparties"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(listed, [&json!("Ivan13 Petrov"), &json!("Ivan11 Petrov")]);
    let first = &counterparties["counterparties"][1];
    let own = get(
        &world,
        0,
        &format!(
            "/api/counterparties/{}",
            first["id"].as_str().expect("an id")
        ),
    );
    assert_eq!(*first, own);

    let orders = |q: &str| -> Vec<Value> {
        get(&world, 0, &format!("/api/orders?q={q}"))["orders"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|o| o["number"].clone())
            .collect()
    };
    assert_eq!(orders(""), [json!("VK-00002"), json!("VK-00001")]);
    assert_eq!(orders("vk-00001"), [json!("VK-00001")]);
    assert_eq!(
        orders("IVAN13"),
        [json!("VK-00002")],
        "by the counterparty's name"
    );

    let (code, body) = world
        .host
        .call("GET", "/api/leads?limit=x", world.token(0), None);
    assert_eq!(
        (code, &body["error"]["code"]),
        (400, &json!("invalid-query"))
    );
    assert_eq!(world.host.call("GET", "/api/orders", None, None).0, 401);
    assert_eq!(
        world
            .host
            .call("POST", "/api/leads", world.token(0), None)
            .0,
        405
    );
}

fn the_channel_state_shows_confirmation_last_event_and_waiting_messages(shell: Shell) {
    let world = World::on(shell, 1);
    let channel = || {
        let (code, body) = world.host.call("GET", "/api/channel", Some(ADMIN), None);
        assert_eq!(code, 200, "{body}");
        body
    };
    assert_eq!(
        channel(),
        json!({"confirmed": true, "last_event_at": null, "messages_waiting": 0})
    );

    writes(&world, "c-1", 5, "hello");
    let last = channel()["last_event_at"].clone();
    assert!(last.as_str().expect("a time").ends_with('Z'));

    // A message VK could not take yet waits in the outbox.
    let id = id_of(&world, 5);
    assert_eq!(
        post(&world, 0, &format!("/api/dialogs/{id}/claim"), None).0,
        200
    );
    world.vk.fail_next("messages.send", Failure::Status(500));
    let (code, message) = post(
        &world,
        0,
        &format!("/api/dialogs/{id}/messages"),
        Some(json!({"text": "hi"})),
    );
    assert_eq!((code, &message["delivery"]), (201, &json!("pending")));
    assert_eq!(channel()["messages_waiting"], 1);
    assert!(world.flush_until_sent(&id));
    assert_eq!(channel()["messages_waiting"], 0);

    let (code, body) = world.host.call("GET", "/api/channel", world.token(0), None);
    assert_eq!((code, &body["error"]["code"]), (403, &json!("admin-only")));
}

fn the_change_stamp_changes_with_a_new_message_and_stays_otherwise(shell: Shell) {
    let world = World::on(shell, 1);
    writes(&world, "s-1", 9, "hello");
    let stamp = |token: &str| {
        let (code, body) = world.host.call("GET", "/api/changes", Some(token), None);
        assert_eq!(code, 200, "{body}");
        body["stamp"].as_str().expect("a stamp").to_owned()
    };
    let before = stamp(world.token(0).expect("a token"));
    assert_eq!(stamp(ADMIN), before, "one stamp for everyone");

    // Reading, a refusal and time (the outbox timer's flushes) change nothing.
    let snapshot = world.snapshot();
    get(&world, 0, "/api/dialogs/counts");
    let id = id_of(&world, 9);
    assert_eq!(
        post(&world, 0, &format!("/api/dialogs/{id}/finish"), None).0,
        403
    );
    std::thread::sleep(Duration::from_millis(2500));
    world.flush();
    assert_eq!(world.snapshot(), snapshot);
    assert_eq!(stamp(world.token(0).expect("a token")), before);

    writes(&world, "s-2", 9, "anyone?");
    let after = stamp(world.token(0).expect("a token"));
    assert_ne!(after, before);
    assert_eq!(stamp(world.token(0).expect("a token")), after);
    assert_eq!(world.host.call("GET", "/api/changes", None, None).0, 401);
    assert_eq!(
        world.host.call("POST", "/api/changes", Some(ADMIN), None).0,
        405
    );
}

on_both_shells!(
    a_person_writing_again_moves_their_dialog_to_the_top,
    unread_counts_follow_each_employees_read_marker,
    queue_mine_and_all_list_their_dialogs_and_are_counted,
    leads_counterparties_and_orders_are_listed_and_searched,
    the_channel_state_shows_confirmation_last_event_and_waiting_messages,
    the_change_stamp_changes_with_a_new_message_and_stays_otherwise,
);
