//! VK chaos: operators send 1,000 messages through the real `vk-host serve` (the real plugin,
//! the durable default store) while VK's stand-in deals out a seeded storm of timeouts,
//! 5xx answers, VK errors 6, 9 and 10 and slow answers, and refuses a few people for good.
//! People keep writing all the while, and the outbox is flushed during the storm. After VK
//! recovers, the outbox is flushed until nothing waits; then every message is where it must
//! be: sent once, or failed with VK's reason, and every incoming message stored once.
//!
//! The seed is fixed (`SEED`); `VK_CHAOS_SEED=<n>` replays another storm. The run prints the
//! seed and what the storm dealt.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const SEED: u64 = 13;
/// Operators sending, each from a thread of its own, to the dialogs it claimed.
const OPERATORS: usize = 4;
const DIALOGS_PER_OPERATOR: usize = 4;
const MESSAGES: usize = 1_000;
/// The first person of the claimed dialogs, and of the people who first write during the
/// storm.
const FIRST_PERSON: i64 = 810_001;
const FIRST_NEWCOMER: i64 = 930_001;
/// Every how many incoming messages one comes from a newcomer (VK is asked for the name).
const NEWCOMER_EVERY: usize = 8;
/// Every how many incoming messages VK delivers one twice (as its retry).
const REDELIVER_EVERY: usize = 5;
/// The plugin's outbound time limit in this run (`--http-timeout-ms`): a timeout answers
/// after it, slowness before it.
const HTTP_TIMEOUT_MS: u64 = 400;
/// How long the outbox may take to settle everything after VK recovers. The backoff of a
/// message that failed n times is 2^(n-1) s, so this is a generous bound, not a target.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// (person index, VK's code, VK's text, what the message's error must say): these people's
/// `messages.send` VK refuses for good.
const REFUSING: [(usize, i64, &str, &str); 3] = [
    (
        3,
        901,
        "Can't send messages for users without permission",
        "not allowed messages",
    ),
    (
        6,
        902,
        "Can't send messages to this user due to their privacy settings",
        "privacy settings",
    ),
    (
        13,
        7,
        "Permission to perform this action is denied",
        "lacks the right",
    ),
];

/// The storm: per mille of calls of `messages.send` and `users.get` for each kind.
fn storm(seed: u64) -> Storm {
    let timeout = Duration::from_millis(HTTP_TIMEOUT_MS * 5 / 2);
    Storm {
        seed,
        methods: vec!["messages.send", "users.get"],
        kinds: vec![
            ("timeout, delivered", 30, Failure::Late(timeout)),
            ("timeout, not delivered", 30, Failure::Lost(timeout)),
            ("HTTP 500", 20, Failure::Status(500)),
            ("HTTP 502", 20, Failure::Status(502)),
            ("HTTP 503", 20, Failure::Status(503)),
            (
                "VK error 6",
                40,
                Failure::Vk(6, "Too many requests per second"),
            ),
            ("VK error 9", 30, Failure::Vk(9, "Flood control")),
            ("VK error 10", 30, Failure::Vk(10, "Internal server error")),
            (
                "slow, in time",
                80,
                Failure::Late(Duration::from_millis(HTTP_TIMEOUT_MS / 3)),
            ),
        ],
        refusing: REFUSING
            .iter()
            .map(|&(person, code, text, _)| (person_id(person), code, text))
            .collect(),
    }
}

fn person_id(n: usize) -> i64 {
    FIRST_PERSON + n as i64
}

/// The error a refusing person's messages must end with: VK's code and what it means.
fn refusal(peer: i64) -> Option<(i64, &'static str)> {
    REFUSING
        .iter()
        .find(|(person, ..)| person_id(*person) == peer)
        .map(|&(_, code, _, reason)| (code, reason))
}

/// What the storm and the settling did, for the report.
#[derive(Default)]
struct Tally {
    /// The delivery state `POST …/messages` answered with.
    answered: BTreeMap<String, usize>,
    flushes: usize,
    flushed: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add_flush(&mut self, report: &Value) {
        self.flushes += 1;
        for field in ["sent", "failed", "pending", "names_filled"] {
            *self.flushed.entry(field).or_default() += report[field].as_u64().unwrap_or(0);
        }
    }
}

#[test]
fn a_vk_storm_loses_nothing_and_sends_nothing_twice() {
    let seed = std::env::var("VK_CHAOS_SEED")
        .map(|seed| seed.parse().expect("VK_CHAOS_SEED is a number"))
        .unwrap_or(SEED);
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("vk-e2e-chaos-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let db = dir.join("crm.db");
    let timeout = HTTP_TIMEOUT_MS.to_string();
    let world = World::with_flags(
        OPERATORS,
        &[
            "--db",
            db.to_str().expect("a UTF-8 path"),
            "--http-timeout-ms",
            &timeout,
        ],
    );

    // Each person writes first; each operator claims its share of the dialogs.
    let people: Vec<i64> = (0..OPERATORS * DIALOGS_PER_OPERATOR)
        .map(person_id)
        .collect();
    for &person in &people {
        let hello = message_new(&format!("hello-{person}"), person, 1, "Hello");
        assert_eq!(world.host.callback(&hello), (200, "ok".to_owned()));
    }
    let dialog_of: HashMap<i64, String> = open_dialogs(&world)
        .iter()
        .map(|(peer, dialog)| (*peer, id_of(dialog)))
        .collect();
    let claimed: Vec<Vec<(i64, String)>> = (0..OPERATORS)
        .map(|op| {
            people
                .iter()
                .skip(op)
                .step_by(OPERATORS)
                .map(|&person| {
                    let dialog = dialog_of[&person].clone();
                    let path = format!("/api/dialogs/{dialog}/claim");
                    let (code, body) = world.host.call("POST", &path, world.token(op), None);
                    assert_eq!(code, 200, "{body}");
                    (person, dialog)
                })
                .collect()
        })
        .collect();

    world.vk.storm(storm(seed));
    let tally = Mutex::new(Tally::default());
    let sending = AtomicBool::new(true);
    let incoming = std::thread::scope(|scope| {
        let writers = scope.spawn(|| people_write(&world, &people, &sending));
        scope.spawn(|| {
            while sending.load(Ordering::Relaxed) {
                let report = world.flush();
                tally.lock().expect("tally").add_flush(&report);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let senders: Vec<_> = claimed
            .iter()
            .enumerate()
            .map(|(op, dialogs)| {
                let (world, tally) = (&world, &tally);
                scope.spawn(move || {
                    for i in 0..MESSAGES / OPERATORS {
                        let (_, dialog) = &dialogs[i % dialogs.len()];
                        let path = format!("/api/dialogs/{dialog}/messages");
                        let text = json!({"text": format!("chaos {op}-{i}")});
                        let (code, message) =
                            world.host.call("POST", &path, world.token(op), Some(text));
                        assert_eq!(code, 201, "{message}");
                        let state = message["delivery"].as_str().expect("a delivery state");
                        *tally
                            .lock()
                            .expect("tally")
                            .answered
                            .entry(state.to_owned())
                            .or_default() += 1;
                    }
                })
            })
            .collect();
        let sent: Vec<_> = senders.into_iter().map(|sender| sender.join()).collect();
        // The people and the flushes stop even when a sender failed.
        sending.store(false, Ordering::Relaxed);
        sent.into_iter().for_each(|sent| sent.expect("a sender"));
        writers.join().expect("the people")
    });
    let storm_took = started.elapsed();

    // VK recovers; the outbox settles everything (and fills the names it could not get).
    world.vk.recover();
    let mut tally = tally.into_inner().expect("tally");
    let newcomers: Vec<i64> = incoming
        .iter()
        .map(|(peer, _)| *peer)
        .filter(|peer| !people.contains(peer))
        .collect();
    let settled = eventually(SETTLE_LIMIT, || {
        tally.add_flush(&world.flush());
        let (code, channel) = world.host.call("GET", "/api/channel", Some(ADMIN), None);
        assert_eq!(code, 200, "{channel}");
        let names = open_dialogs(&world);
        channel["messages_waiting"] == 0
            && newcomers
                .iter()
                .all(|peer| names[peer]["name"] == format!("Ivan{peer} Petrov"))
    });
    let dealt = world.vk.dealt();
    let send_calls = world.vk.calls("messages.send");
    println!(
        "VK chaos: seed {seed} (VK_CHAOS_SEED={seed} replays it); dealt {dealt:?}; \
         messages.send calls {}, users.get calls {}; POST answered {:?}; \
         {} flushes reporting {:?}; {} incoming callbacks ({} newcomers); \
         storm {:.1} s, settled after {:.1} s",
        send_calls.len(),
        world.vk.calls("users.get").len(),
        tally.answered,
        tally.flushes,
        tally.flushed,
        incoming.len(),
        newcomers.len(),
        storm_took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        settled,
        "the outbox still holds messages, or names are missing, {SETTLE_LIMIT:?} after VK recovered"
    );
    for (kind, _, _) in storm(seed).kinds {
        assert!(dealt.contains_key(kind), "the storm never dealt {kind}");
    }
    assert!(
        tally.answered.get("pending").is_some_and(|&n| n > 0),
        "some sends waited for the outbox"
    );

    // Every message the operators sent: sent once, or refused for good with VK's reason.
    let delivered = world.vk.delivered();
    let mut outgoing = 0;
    let mut failed = 0;
    for &person in &people {
        let messages = world.messages(0, &dialog_of[&person]);
        for message in messages.iter().filter(|m| m["direction"] == "out") {
            outgoing += 1;
            let text = message["text"].as_str().expect("a text");
            let copies = delivered
                .iter()
                .filter(|(peer, sent)| *peer == person && sent == text)
                .count();
            match refusal(person) {
                Some((code, reason)) => {
                    failed += 1;
                    assert_eq!(message["delivery"], "failed", "{message}");
                    assert_eq!(message["error"]["code"], code, "{message}");
                    let why = message["error"]["message"].as_str().expect("a reason");
                    assert!(why.contains(reason), "{message}");
                    assert_eq!(copies, 0, "a refused message reached {person}: {text}");
                }
                None => {
                    assert_eq!(message["delivery"], "sent", "{message}");
                    assert_eq!(message["error"], Value::Null, "{message}");
                    assert_eq!(copies, 1, "{text} reached {person} {copies} times");
                }
            }
            let randoms: Vec<&String> = send_calls
                .iter()
                .filter(|call| call["message"] == text)
                .map(|call| &call["random_id"])
                .collect();
            assert!(
                randoms.iter().all(|random| *random == randoms[0]),
                "every attempt of {text} carries one random_id: {randoms:?}"
            );
        }
    }
    assert_eq!(outgoing, MESSAGES, "every message sent is stored once");
    assert_eq!(
        delivered.len(),
        MESSAGES - failed,
        "VK got every message that was not refused, once"
    );

    // Every incoming message: answered `ok` (checked as it was posted) and stored once.
    let mut stored: HashMap<(i64, String), usize> = HashMap::new();
    let open = open_dialogs(&world);
    assert_eq!(
        open.len(),
        people.len() + newcomers.len(),
        "one dialog a person"
    );
    for (peer, dialog) in &open {
        for message in world.messages(0, &id_of(dialog)) {
            if message["direction"] == "in" && message["text"] != "Hello" {
                let text = message["text"].as_str().expect("a text").to_owned();
                *stored.entry((*peer, text)).or_default() += 1;
            }
        }
    }
    let expected: HashMap<(i64, String), usize> =
        incoming.into_iter().map(|sent| (sent, 1)).collect();
    assert_eq!(stored, expected, "every incoming message is stored once");
    let logs = world.host.logs();
    assert!(
        !logs.contains(ACCESS_TOKEN) && !logs.contains(SECRET),
        "the storm put a secret in the log"
    );
    println!(
        "VK chaos: {outgoing} messages, {} sent, {failed} failed for good; took {:.1} s",
        outgoing - failed,
        started.elapsed().as_secs_f64()
    );
    drop(world);
    std::fs::remove_dir_all(&dir).ok();
}

/// Every open dialog (each person's one), by its person: the queue and the operators' own.
fn open_dialogs(world: &World) -> HashMap<i64, Value> {
    (0..OPERATORS)
        .flat_map(|op| world.dialogs(op, "open"))
        .map(|dialog| (dialog["peer_id"].as_i64().expect("a peer"), dialog))
        .collect()
}

fn id_of(dialog: &Value) -> String {
    dialog["id"].as_str().expect("a dialog id").to_owned()
}

/// People write while the operators send: the claimed dialogs' people and, every
/// [`NEWCOMER_EVERY`]th message, someone new. Some events VK delivers twice. Every answer
/// must be `ok`. Returns each message's (peer, text).
fn people_write(world: &World, people: &[i64], sending: &AtomicBool) -> Vec<(i64, String)> {
    let mut written = Vec::new();
    let mut newcomer = FIRST_NEWCOMER;
    while sending.load(Ordering::Relaxed) {
        let n = written.len();
        let peer = if n % NEWCOMER_EVERY == NEWCOMER_EVERY - 1 {
            newcomer += 1;
            newcomer
        } else {
            people[n % people.len()]
        };
        let text = format!("incoming {n}");
        let event = message_new(&format!("chaos-in-{n}"), peer, n as i64 + 100, &text);
        assert_eq!(world.host.callback(&event), (200, "ok".to_owned()));
        if n % REDELIVER_EVERY == 0 {
            assert_eq!(
                world.host.callback_redelivered(&event, 1),
                (200, "ok".to_owned())
            );
        }
        written.push((peer, text));
        std::thread::sleep(Duration::from_millis(20));
    }
    written
}
