//! Nothing lost for speed: the durable store answers `ok` only once a callback's commit is on
//! disk, even when commits of many callbacks share one write (group commit). The host is
//! killed with SIGKILL in the middle of a load, restarted on the same file, and VK redelivers
//! everything.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Threads posting callbacks at once, each its own share of the events.
const THREADS: usize = 4;
const PER_THREAD: usize = 150;
/// People writing (several events of each person arrive at once).
const PEOPLE: usize = 8;

/// One `message_new` of the load: its event id, its body, and its text (unique).
struct Event {
    body: Value,
    text: String,
}

fn events() -> Vec<Vec<Event>> {
    (0..THREADS)
        .map(|t| {
            (0..PER_THREAD)
                .map(|i| {
                    let n = t * PER_THREAD + i;
                    let user = 700_001 + (n % PEOPLE) as i64;
                    let text = format!("durable {t}-{i}");
                    Event {
                        body: message_new(&format!("durable-{t}-{i}"), user, n as i64 + 1, &text),
                        text,
                    }
                })
                .collect()
        })
        .collect()
}

/// How often each text of the load is stored, over every dialog an employee sees.
fn stored_texts(world: &World) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for status in ["open", "spam", "finished"] {
        for dialog in world.dialogs(0, status) {
            let id = dialog["id"].as_str().expect("a dialog id");
            for message in world.messages(0, id) {
                if let Some(text) = message["text"].as_str() {
                    *counts.entry(text.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn a_host_killed_mid_load_keeps_every_acknowledged_callback_exactly_once() {
    let dir = std::env::temp_dir().join(format!("vk-e2e-durability-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let db = dir.join("crm.db");
    let db = db.to_str().expect("a UTF-8 path");
    let vk = VkStandIn::start();

    // The settings and the employee are in the file before the load.
    let mut host = Host::serve(&vk, &["--db", db]);
    let staff = connect(&host, Shell::Plugin, 1);

    let load = Arc::new(events());
    let answered = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::<(usize, usize)>::new()));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (load, answered, acknowledged) =
                (load.clone(), answered.clone(), acknowledged.clone());
            let base = host.base.clone();
            std::thread::spawn(move || {
                let agent = agent();
                for (i, event) in load[t].iter().enumerate() {
                    match post_callback(&agent, &base, &event.body) {
                        Some((200, answer)) if answer == "ok" => {
                            acknowledged.lock().expect("acknowledged").push((t, i));
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Some((status, answer)) => {
                            panic!("callback {t}-{i} answered {status} {answer:?}")
                        }
                        // Killed: what was not acknowledged, VK delivers again later.
                        None => return,
                    }
                }
            })
        })
        .collect();

    // SIGKILL (`Child::kill` on Unix) once a third of the load is acknowledged, while the
    // rest is in flight.
    let total = THREADS * PER_THREAD;
    while answered.load(Ordering::SeqCst) < total / 3 && !senders.iter().all(|s| s.is_finished()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    host.kill();
    for sender in senders {
        sender.join().expect("a sender");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("acknowledged"));
    assert!(!acknowledged.is_empty(), "some callbacks were acknowledged");
    eprintln!(
        "{} of {total} callbacks acknowledged before the kill",
        acknowledged.len()
    );
    drop(host);

    // Restarted on the same file: every acknowledged callback is there, once, before any
    // redelivery.
    let host = Host::serve(&vk, &["--db", db]);
    let world = World { vk, host, staff };
    let stored = stored_texts(&world);
    for &(t, i) in &acknowledged {
        let text = &load[t][i].text;
        assert_eq!(
            stored.get(text),
            Some(&1),
            "{text:?} was acknowledged before the kill"
        );
    }
    for (text, count) in &stored {
        assert_eq!(*count, 1, "{text:?} is stored {count} times");
    }

    // VK redelivers everything (it cannot know what was stored): every event is then stored
    // exactly once.
    for (retry, event) in load.iter().flatten().enumerate() {
        assert_eq!(
            world
                .host
                .callback_redelivered(&event.body, 1 + (retry % 3) as u32),
            (200, "ok".to_owned()),
            "redelivering {:?}",
            event.text
        );
    }
    let stored = stored_texts(&world);
    for event in load.iter().flatten() {
        assert_eq!(stored.get(&event.text), Some(&1), "{:?}", event.text);
    }
    assert_eq!(stored.len(), total, "nothing else is stored: {stored:?}");
    for person in 0..PEOPLE {
        world.dialog_of(700_001 + person as i64);
    }
    drop(world);
    std::fs::remove_dir_all(dir).ok();
}
