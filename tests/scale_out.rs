//! Several hosts on one PostgreSQL (`serve --db postgres://…`): the tests start a throwaway
//! PostgreSQL of their own (Debian's `postgresql` package: `initdb` into a temporary folder,
//! `pg_ctl` on a free loopback port, stopped at the end) and run the stories on two hosts
//! sharing it, requests alternating between them.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Two hosts on one database: `world.host` is the first, `other` the second; both reach the
/// same VK stand-in. The community and `employees` employees are connected through the first.
struct Pair {
    world: World,
    other: Host,
    // Dropped last: the hosts stop before their database does.
    postgres: Postgres,
}

impl Pair {
    fn new(employees: usize) -> Pair {
        Pair::with_flags(employees, &[])
    }

    /// Both hosts with `extra` flags.
    fn with_flags(employees: usize, extra: &[&str]) -> Pair {
        let postgres = Postgres::start();
        let url = postgres.url();
        let vk = VkStandIn::start();
        let flags = [&["--db", url.as_str()][..], extra].concat();
        let first = Host::serve(&vk, &flags);
        let staff = connect(&first, Shell::Plugin, employees);
        let other = Host::serve(&vk, &flags);
        Pair {
            world: World {
                vk,
                host: first,
                staff,
            },
            other,
            postgres,
        }
    }

    /// The host a request number `n` goes to: they alternate.
    fn host(&self, n: usize) -> &Host {
        if n.is_multiple_of(2) {
            &self.world.host
        } else {
            &self.other
        }
    }
}

/// A person's first message through the first host; the id of the dialog it opened.
fn dialog_with(pair: &Pair, user: i64, text: &str) -> String {
    let event = message_new(&format!("first-of-{user}"), user, 1, text);
    assert_eq!(pair.world.host.callback(&event), (200, "ok".to_owned()));
    let dialog = pair.world.dialog_of(user);
    dialog["id"].as_str().expect("an id").to_owned()
}

/// Runs the outbox on both hosts at the same moment, as their timers may.
fn flush_both(pair: &Pair) {
    let flushes: Vec<_> = [pair.world.host.base.clone(), pair.other.base.clone()]
        .into_iter()
        .map(|base| {
            std::thread::spawn(move || {
                ureq::post(format!("{base}/api/outbox/flush"))
                    .header("authorization", format!("Bearer {ADMIN}"))
                    .send_empty()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    for flush in flushes {
        assert_eq!(flush.join().expect("a flush"), 200);
    }
}

#[test]
fn parallel_first_messages_of_one_person_through_two_hosts_make_one_lead_and_one_dialog() {
    let pair = Pair::new(1);
    let pair = Arc::new(pair);
    let senders: Vec<_> = (0..24)
        .map(|n| {
            let pair = pair.clone();
            std::thread::spawn(move || {
                let event = message_new(
                    &format!("first-{n}"),
                    555_001,
                    n as i64 + 1,
                    &format!("hello {n}"),
                );
                pair.host(n).callback(&event)
            })
        })
        .collect();
    for sender in senders {
        assert_eq!(sender.join().expect("a sender"), (200, "ok".to_owned()));
    }
    let dialog = pair.world.dialog_of(555_001);
    let id = dialog["id"].as_str().expect("an id");
    let mut texts: Vec<String> = pair
        .world
        .messages(0, id)
        .iter()
        .map(|m| m["text"].as_str().expect("a text").to_owned())
        .collect();
    texts.sort();
    let mut expected: Vec<String> = (0..24).map(|n| format!("hello {n}")).collect();
    expected.sort();
    assert_eq!(texts, expected, "every message once, in the one dialog");
    let (code, leads) = pair
        .other
        .call("GET", "/api/leads?limit=100", pair.world.token(0), None);
    assert_eq!(code, 200, "{leads}");
    assert_eq!(leads["leads"].as_array().map(Vec::len), Some(1), "{leads}");
}

#[test]
fn two_employees_claiming_one_dialog_through_two_hosts_get_one_winner() {
    let pair = Pair::new(2);
    let id = dialog_with(&pair, 555_002, "Есть торт?");
    let pair = Arc::new(pair);
    let claims: Vec<_> = (0..2)
        .map(|n| {
            let (pair, id) = (pair.clone(), id.clone());
            std::thread::spawn(move || {
                let token = pair.world.staff[n].token.clone();
                pair.host(n).call(
                    "POST",
                    &format!("/api/dialogs/{id}/claim"),
                    Some(&token),
                    None,
                )
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = claims
        .into_iter()
        .map(|c| c.join().expect("a claim"))
        .collect();
    let winners: Vec<usize> = (0..2).filter(|n| answers[*n].0 == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let loser = &answers[1 - winners[0]];
    assert_eq!(loser.0, 409, "{loser:?}");
    assert_eq!(loser.1["error"]["code"], "already-claimed", "{loser:?}");
    // Read by the loser, through the other host: the winner is responsible.
    let loser_token = pair.world.staff[1 - winners[0]].token.clone();
    let (code, dialog) = pair.host(winners[0]).call(
        "GET",
        &format!("/api/dialogs/{id}"),
        Some(&loser_token),
        None,
    );
    assert_eq!(code, 200, "{dialog}");
    assert_eq!(
        dialog["responsible"],
        pair.world.staff[winners[0]].id.as_str()
    );
}

#[test]
fn messages_sent_while_vk_fails_are_delivered_once_with_both_hosts_flushing() {
    const MESSAGES: usize = 200;
    let pair = Pair::new(1);
    let id = dialog_with(&pair, 555_003, "Привет");
    let token = pair.world.staff[0].token.clone();
    let (code, body) = pair.other.call(
        "POST",
        &format!("/api/dialogs/{id}/claim"),
        Some(&token),
        None,
    );
    assert_eq!(code, 200, "{body}");
    // VK fails every other send (server error 10, then 503), some more than once.
    for n in 0..MESSAGES {
        let failure = if n % 2 == 0 {
            Failure::Vk(10, "Internal server error")
        } else {
            Failure::Status(503)
        };
        pair.world.vk.fail_next("messages.send", failure);
    }
    for n in 0..MESSAGES {
        let (code, body) = pair.host(n).call(
            "POST",
            &format!("/api/dialogs/{id}/messages"),
            Some(&token),
            Some(json!({"text": format!("ответ {n}")})),
        );
        assert_eq!(code, 201, "{body}");
    }
    // Both hosts flush at once until everything is sent.
    let delivered = eventually(Duration::from_secs(60), || {
        flush_both(&pair);
        pair.world
            .messages(0, &id)
            .iter()
            .filter(|m| m["delivery"] == "sent")
            .count()
            == MESSAGES
    });
    assert!(delivered, "every message was sent in the end");
    let mut texts: Vec<String> = pair
        .world
        .vk
        .delivered()
        .into_iter()
        .map(|(peer, text)| {
            assert_eq!(peer, 555_003);
            text
        })
        .collect();
    texts.sort();
    let mut expected: Vec<String> = (0..MESSAGES).map(|n| format!("ответ {n}")).collect();
    expected.sort();
    assert_eq!(
        texts, expected,
        "each message reached the person exactly once"
    );
}

#[test]
fn while_the_database_is_down_callers_get_503_and_redelivery_afterwards_loses_nothing() {
    let pair = Pair::new(1);
    assert_eq!(
        pair.world
            .host
            .callback(&message_new("down-1", 555_004, 1, "до")),
        (200, "ok".to_owned())
    );
    pair.postgres.halt();
    let during = message_new("down-2", 555_004, 2, "во время");
    for host in [&pair.world.host, &pair.other] {
        let (code, body) = host.callback(&during);
        assert_eq!(code, 503, "{body}");
        let (code, body) = host.call("GET", "/api/dialogs", pair.world.token(0), None);
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["error"]["code"], "storage-unavailable", "{body}");
    }
    pair.postgres.resume();
    // VK redelivers what was not answered `ok`, to either host.
    assert!(eventually(Duration::from_secs(20), || {
        pair.other.callback_redelivered(&during, 1) == (200, "ok".to_owned())
    }));
    assert_eq!(
        pair.world.host.callback_redelivered(&during, 2),
        (200, "ok".to_owned()),
        "a repeat changes nothing"
    );
    let id = pair.world.dialog_of(555_004)["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let texts: Vec<Value> = pair
        .world
        .messages(0, &id)
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("до"), json!("во время")]);
}

#[test]
fn a_host_killed_mid_load_leaves_the_other_serving_and_nothing_acknowledged_lost_or_doubled() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 100;
    let pair = Pair::new(1);
    let bases = [pair.world.host.base.clone(), pair.other.base.clone()];
    let answered = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (bases, answered, acknowledged) =
                (bases.clone(), answered.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut alive = [true, true];
                for i in 0..PER_THREAD {
                    let n = t * PER_THREAD + i;
                    let text = format!("scale {t}-{i}");
                    let event = message_new(
                        &format!("scale-{t}-{i}"),
                        556_000 + (n % 8) as i64,
                        n as i64 + 1,
                        &text,
                    );
                    // Alternating; a host that stopped answering gets nothing more, and what
                    // it left unanswered VK delivers again, to the other one.
                    let mut target = n % 2;
                    loop {
                        if !alive[target] {
                            target = 1 - target;
                        }
                        match post_callback(&agent, &bases[target], &event) {
                            Some((200, answer)) if answer == "ok" => break,
                            Some((status, answer)) => panic!("{text}: {status} {answer:?}"),
                            None => alive[target] = false,
                        }
                    }
                    acknowledged.lock().expect("acknowledged").push(text);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let total = THREADS * PER_THREAD;
    let mut pair = pair;
    while answered.load(Ordering::SeqCst) < total / 3 {
        std::thread::sleep(Duration::from_millis(1));
    }
    pair.world.host.kill();
    for sender in senders {
        sender.join().expect("a sender");
    }
    assert_eq!(acknowledged.lock().expect("acknowledged").len(), total);
    // Read through the host that kept serving.
    std::mem::swap(&mut pair.world.host, &mut pair.other);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for dialog in pair.world.dialogs(0, "open") {
        let id = dialog["id"].as_str().expect("an id");
        for message in pair.world.messages(0, id) {
            *counts
                .entry(message["text"].as_str().expect("a text").to_owned())
                .or_default() += 1;
        }
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    let acknowledged = acknowledged.lock().expect("acknowledged");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|text| !counts.contains_key(*text))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(counts.len(), total);
}

#[test]
fn a_name_vk_could_not_give_is_asked_for_once_with_both_hosts_flushing() {
    // No timer flush in between: the two flushes of this test are the only ones.
    let pair = Pair::with_flags(1, &["--flush-interval-ms", "600000"]);
    pair.world
        .vk
        .fail_next("users.get", Failure::Vk(10, "Internal server error"));
    assert_eq!(
        pair.world
            .host
            .callback(&message_new("name-1", 555_005, 1, "hi")),
        (200, "ok".to_owned())
    );
    assert_eq!(pair.world.dialog_of(555_005)["name"], "VK user 555005");
    // VK answers slowly now, so that both hosts' flushes are under way at once.
    pair.world
        .vk
        .fail_next("users.get", Failure::Late(Duration::from_millis(500)));
    flush_both(&pair);
    assert_eq!(pair.world.dialog_of(555_005)["name"], "Ivan555005 Petrov");
    assert_eq!(
        pair.world.vk.calls("users.get").len(),
        2,
        "once at intake, once by one of the flushes"
    );
}
