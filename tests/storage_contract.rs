//! The storage contract, checked the same way against every store.
//!
//! vk-core's `Store` (`plugin/core/src/ports.rs`) is implemented four times: `MemoryStore`,
//! the host's database file (`DbStore`: journal + redb), PostgreSQL (`PgStore`, on a
//! throwaway server of the test's own) and the Spin component's SQLite store
//! (`vk_core::sql::SqliteStore`, the code vk-spin runs, here over the host's side of Spin
//! SQLite: its connection pool and write gate, as `serve-spin` opens them). Each test runs
//! the same properties on one of them, from seeded random operations over a small key space:
//!
//! - one thread against a model: every get and scan (prefix, after, limit, byte order)
//!   answers as the model says, a commit conflicts exactly when one of its expectations is
//!   wrong and then changes nothing, and every version a key is given is higher than any it
//!   had before, deletes included;
//! - no lost update: threads incrementing counters read-modify-write, retrying on conflict,
//!   end at exactly the number of increments;
//! - no write skew: threads switching slots off while another slot stays on, each commit
//!   checking the slots it did not write, always leave exactly one on;
//! - interleavings: threads mixing gets, scans and commits (puts, deletes, checks, stale
//!   expectations) never see a version of a key with two values, a value no commit
//!   succeeded in writing, or a key's version go back, even across a delete;
//! - the stores that persist keep everything, version clock included, when reopened.
//!
//! Each run takes a fresh seed, printed when a test fails; `STORAGE_CONTRACT_SEED=<seed>`
//! replays it (the one-thread part exactly, the threads' own choices but not their timing).

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::thread;

use support::Postgres;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Change, Entry, Store, StoreError, Write};
use vk_core::sql::{Sql, SqlValue, SqliteStore};
use vk_host::database::DbStore;
use vk_host::pg::PgStore;
use vk_host::spin::Database;
use vk_host::spin::sqlite::{Connection, Databases, Value};

#[test]
fn the_memory_store_keeps_the_contract() {
    let seed = seed();
    let _replay = Replay(seed);
    check_contract(&MemoryStore::new(), seed);
}

#[test]
fn the_database_file_keeps_the_contract_and_everything_when_reopened() {
    let seed = seed();
    let _replay = Replay(seed);
    let dir = TempDir::new("db");
    let path = dir.0.join("vk.db");
    check_with_reopening(
        || DbStore::open(&path).expect("the database file opens"),
        seed,
    );
}

#[test]
fn postgres_keeps_the_contract_and_everything_when_reopened() {
    let seed = seed();
    let _replay = Replay(seed);
    let postgres = Postgres::start();
    let url = postgres.url();
    let stamps = vk_core::STAMPS.map(vk_host::storage::plugin_key).to_vec();
    check_with_reopening(
        || PgStore::open(&url, 8, stamps.clone()).expect("PostgreSQL opens"),
        seed,
    );
}

#[test]
fn spin_sqlite_keeps_the_contract_and_everything_when_reopened() {
    let seed = seed();
    let _replay = Replay(seed);
    let dir = TempDir::new("spin");
    let database = Database::File(dir.0.join("sqlite_db.db"));
    check_with_reopening(
        || {
            SpinSqlite(Arc::new(
                Databases::open(&database, 64 << 20).expect("SQLite opens"),
            ))
        },
        seed,
    );
}

// ---------------------------------------------------------------------------------------
// The stores under test.

/// A store as the threads of a property reach it: each thread takes its own handle.
trait Subject: Sync {
    fn handle(&self) -> Box<dyn Store + '_>;
}

/// The native stores: one store shared by every thread.
impl<S: Store + Sync> Subject for S {
    fn handle(&self) -> Box<dyn Store + '_> {
        Box::new(Shared(self))
    }
}

struct Shared<'a, S>(&'a S);

impl<S: Store> Store for Shared<'_, S> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.0.get(key)
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        self.0.scan(prefix, after, limit)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.0.commit(writes)
    }
}

/// The Spin component's store: each thread is an instance with a connection of its own,
/// opening the store as a request of vk-spin does.
struct SpinSqlite(Arc<Databases>);

impl Subject for SpinSqlite {
    fn handle(&self) -> Box<dyn Store + '_> {
        let connection = Connection::open(&self.0).expect("a connection from the pool");
        Box::new(SqliteStore::open(HostSql(RefCell::new(connection))).expect("the tables"))
    }
}

/// vk-core's `Sql` over the host's Spin SQLite connection.
struct HostSql(RefCell<Connection>);

impl Sql for HostSql {
    fn execute(
        &self,
        statement: &str,
        parameters: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, String> {
        let parameters = parameters
            .into_iter()
            .map(|value| match value {
                SqlValue::Integer(i) => Value::Integer(i),
                SqlValue::Real(r) => Value::Real(r),
                SqlValue::Text(t) => Value::Text(t),
                SqlValue::Blob(b) => Value::Blob(b),
                SqlValue::Null => Value::Null,
            })
            .collect();
        let found = self
            .0
            .borrow_mut()
            .execute(statement, parameters)
            .map_err(|error| format!("{error:?}"))?;
        Ok(found
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|value| match value {
                        Value::Integer(i) => SqlValue::Integer(i),
                        Value::Real(r) => SqlValue::Real(r),
                        Value::Text(t) => SqlValue::Text(t),
                        Value::Blob(b) => SqlValue::Blob(b),
                        Value::Null => SqlValue::Null,
                    })
                    .collect()
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// The properties.

/// The highest version seen of each key, deleted ones included.
type Highest = HashMap<String, u64>;

/// Every property, on a store that is empty at first; returns the versions seen.
fn check_contract(subject: &dyn Subject, seed: u64) -> Highest {
    let highest = against_the_model(subject, seed);
    counters_lose_no_update(subject, seed);
    no_write_skew(subject, seed);
    interleavings(subject, seed);
    highest
}

/// Every property, then the store closed and opened again: it holds exactly what it held,
/// and every key written again gets a version above any it had, even a key deleted just
/// before closing, whose last version only the store's version clock remembers.
fn check_with_reopening<S: Subject>(open: impl Fn() -> S, seed: u64) {
    const GONE: &str = "gone";
    let subject = open();
    let mut highest = check_contract(&subject, seed);
    let store = subject.handle();
    commit(&*store, vec![put(GONE, b"soon deleted", Some(0))]).expect("the put commits");
    let gone = store.get(GONE).expect("reads").expect("just written");
    commit(&*store, vec![delete(GONE, Some(gone.version))]).expect("the delete commits");
    let before = everything(&*store);
    drop(store);
    drop(subject);

    let subject = open();
    let store = subject.handle();
    assert_eq!(
        everything(&*store),
        before,
        "the reopened store holds what it held"
    );
    for entry in before.iter().chain([&gone]) {
        let known = highest.entry(entry.key.clone()).or_default();
        *known = (*known).max(entry.version);
    }
    // The deleted key first: in one commit with others it might come after versions the
    // clock hands out again.
    commit(&*store, vec![put(GONE, b"again", Some(0))]).expect("the put commits");
    let rewritten: Vec<Write> = highest
        .keys()
        .filter(|key| *key != GONE)
        .map(|key| put(key, b"again", None))
        .collect();
    commit(&*store, rewritten).expect("the puts commit");
    for (key, old) in &highest {
        let now = store.get(key).expect("reads").expect("just written");
        assert!(
            now.version > *old,
            "{key:?} got version {} after reopening, not above its earlier {old}",
            now.version
        );
    }
}

/// Keys whose order and prefixes are easy to get wrong: `/` < `0`, `%` and `_` (patterns
/// of `LIKE`), multi-byte characters and the last code point.
const KEYS: [&str; 15] = [
    "a",
    "a/",
    "a/1",
    "a/1/x",
    "a/2",
    "a0",
    "a%",
    "a_",
    "ab",
    "b",
    "é",
    "é/1",
    "\u{FFFF}",
    "\u{10FFFF}",
    "\u{10FFFF}\u{10FFFF}",
];
const PREFIXES: [&str; 11] = [
    "",
    "a",
    "a/",
    "a/1",
    "a/1/",
    "a%",
    "a_",
    "é",
    "\u{10FFFF}",
    "a/3",
    "c",
];
/// `after` bounds besides the keys themselves.
const BOUNDS: [&str; 5] = ["", "a/0", "a/1/", "zz", "\u{10FFFF}\u{10FFFF}\u{10FFFF}"];

/// What one thread's store must hold.
#[derive(Default)]
struct Model {
    entries: BTreeMap<String, (u64, Vec<u8>)>,
    highest: Highest,
}

impl Model {
    fn version(&self, key: &str) -> u64 {
        self.entries.get(key).map_or(0, |(version, _)| *version)
    }

    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|(key, _)| key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a))
            .take(limit as usize)
            .map(|(key, (version, value))| Entry {
                key: key.clone(),
                value: value.clone(),
                version: *version,
            })
            .collect()
    }
}

/// One thread, random gets, scans and commits, each answer compared with the model.
fn against_the_model(subject: &dyn Subject, seed: u64) -> Highest {
    let mut rng = Rng::new(seed, 0);
    let store = subject.handle();
    let mut model = Model::default();
    for step in 0..500 {
        match rng.below(100) {
            0..30 => {
                let key = *rng.pick(&KEYS);
                let expected = model.entries.get(key).map(|(version, value)| Entry {
                    key: key.to_owned(),
                    value: value.clone(),
                    version: *version,
                });
                assert_eq!(
                    store.get(key).expect("reads"),
                    expected,
                    "step {step}: get {key:?}"
                );
            }
            30..55 => {
                let prefix = *rng.pick(&PREFIXES);
                let after = match rng.below(3) {
                    0 => None,
                    1 => Some(*rng.pick(&KEYS)),
                    _ => Some(*rng.pick(&BOUNDS)),
                };
                let limit = if rng.below(10) == 0 {
                    u32::MAX
                } else {
                    rng.below(6) as u32
                };
                assert_eq!(
                    store.scan(prefix, after, limit).expect("scans"),
                    model.scan(prefix, after, limit),
                    "step {step}: scan {prefix:?} after {after:?} limit {limit}"
                );
            }
            _ => commit_against_the_model(&*store, &mut model, &mut rng, step),
        }
    }
    model.highest
}

/// A random commit of one to four keys; some expectations are wrong on purpose.
fn commit_against_the_model(store: &dyn Store, model: &mut Model, rng: &mut Rng, step: usize) {
    let mut keys: Vec<&str> = KEYS.to_vec();
    rng.shuffle(&mut keys);
    keys.truncate(1 + rng.below(4));
    let writes: Vec<Write> = keys
        .iter()
        .map(|key| {
            let current = model.version(key);
            let expect = match rng.below(10) {
                0..3 => None,
                3..8 => Some(current),
                // Wrong: a version the key is not at.
                _ => Some(match (current, model.highest.get(*key)) {
                    (0, Some(old)) => *old,
                    (0, None) => 1,
                    (_, _) if rng.below(2) == 0 => 0,
                    (current, _) => current + 1,
                }),
            };
            let change = match rng.below(4) {
                0 | 1 => Change::Put(rng.bytes()),
                2 => Change::Delete,
                _ => Change::Check,
            };
            Write {
                key: (*key).to_owned(),
                change,
                expect,
            }
        })
        .collect();
    let holds = writes
        .iter()
        .all(|w| w.expect.is_none_or(|v| v == model.version(&w.key)));
    let described = format!("step {step}: commit {writes:?}");
    let outcome = store.commit(writes.clone());
    if !holds {
        assert_eq!(outcome, Err(StoreError::Conflict), "{described}");
        assert_eq!(
            everything(store),
            model.scan("", None, u32::MAX),
            "{described}: a conflicting commit changed nothing"
        );
        return;
    }
    assert_eq!(outcome, Ok(()), "{described}");
    let mut written = HashSet::new();
    for write in writes {
        match write.change {
            Change::Put(value) => {
                written.insert(write.key.clone());
                model.entries.insert(write.key, (0, value));
            }
            Change::Delete => {
                model.entries.remove(&write.key);
            }
            Change::Check => {}
        }
    }
    let stored = everything(store);
    let keys =
        |entries: &[Entry]| -> Vec<String> { entries.iter().map(|e| e.key.clone()).collect() };
    let expected = model.scan("", None, u32::MAX);
    assert_eq!(keys(&stored), keys(&expected), "{described}: the keys");
    for (found, wanted) in stored.iter().zip(&expected) {
        assert_eq!(found.value, wanted.value, "{described}: {:?}", found.key);
        if written.contains(&found.key) {
            let highest = model.highest.entry(found.key.clone()).or_default();
            assert!(
                found.version > *highest,
                "{described}: {:?} was given version {}, not above {highest} it had before",
                found.key,
                found.version
            );
            *highest = found.version;
            model.entries.get_mut(&found.key).expect("modelled").0 = found.version;
        } else {
            assert_eq!(
                found.version, wanted.version,
                "{described}: {:?}",
                found.key
            );
        }
    }
}

/// Threads increment counters by read-modify-write, retrying on conflict.
fn counters_lose_no_update(subject: &dyn Subject, seed: u64) {
    const COUNTERS: [&str; 2] = ["counter/0", "counter/1"];
    const THREADS: u64 = 4;
    const EACH: usize = 25;
    /// `(counter, value read, its version)` and `(counter, value written)`.
    type Done = (Vec<(usize, u64, u64)>, Vec<(usize, u64)>);
    let done: Vec<Done> = on_threads(THREADS, |thread| {
        let mut rng = Rng::new(seed, thread + 1);
        let store = subject.handle();
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for _ in 0..EACH {
            let counter = rng.below(COUNTERS.len());
            let key = COUNTERS[counter];
            loop {
                let (value, version) = match store.get(key).expect("reads") {
                    Some(entry) => (number(&entry.value), entry.version),
                    None => (0, 0),
                };
                reads.push((counter, value, version));
                let next = value + 1;
                match commit(
                    &*store,
                    vec![put(key, next.to_string().as_bytes(), Some(version))],
                ) {
                    Ok(()) => {
                        writes.push((counter, next));
                        break;
                    }
                    Err(()) => continue,
                }
            }
        }
        (reads, writes)
    });
    let store = subject.handle();
    for (counter, key) in COUNTERS.iter().enumerate() {
        let mut written: Vec<u64> = done
            .iter()
            .flat_map(|(_, writes)| writes.iter().filter(|(c, _)| *c == counter))
            .map(|(_, value)| *value)
            .collect();
        written.sort_unstable();
        let total = written.len() as u64;
        assert_eq!(
            written,
            (1..=total).collect::<Vec<_>>(),
            "{key}: each value written once, none lost"
        );
        let stored = store
            .get(key)
            .expect("reads")
            .map_or(0, |e| number(&e.value));
        assert_eq!(stored, total, "{key} ends at the number of increments");
        let mut version_of: BTreeMap<u64, u64> = BTreeMap::new();
        for &(_, value, version) in done
            .iter()
            .flat_map(|(reads, _)| reads.iter().filter(|(c, ..)| *c == counter))
        {
            let known = *version_of.entry(value).or_insert(version);
            assert_eq!(known, version, "{key}: value {value} read at two versions");
        }
        let versions: Vec<u64> = version_of.values().copied().collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{key}: versions grow with every increment: {version_of:?}"
        );
    }
}

/// Slots are switched off while another one stays on, each commit writing one slot and
/// checking the others. At every step several threads decide on the same reads at once:
/// exactly one of their commits must succeed, and one slot stays on at the end. Without the
/// checks, two threads switching off different slots would both succeed (write skew).
fn no_write_skew(subject: &dyn Subject, seed: u64) {
    const SLOTS: [&str; 5] = ["duty/0", "duty/1", "duty/2", "duty/3", "duty/4"];
    const ROUNDS: u64 = 5;
    const THREADS: u64 = 4;
    let store = subject.handle();
    for round in 0..ROUNDS {
        let all_on = SLOTS.iter().map(|slot| put(slot, b"on", None)).collect();
        commit(&*store, all_on).expect("the slots are set");
        for step in 0.. {
            let read: Vec<Entry> = SLOTS
                .iter()
                .map(|slot| store.get(slot).expect("reads").expect("a slot"))
                .collect();
            let on: Vec<&Entry> = read.iter().filter(|e| e.value == b"on").collect();
            if on.len() <= 1 {
                assert_eq!(on.len(), 1, "round {round}: slots still on");
                break;
            }
            let succeeded = on_threads(THREADS, |thread| {
                let mut rng = Rng::new(seed, (round << 32) | (step << 16) | thread);
                let off = &on[rng.below(on.len())].key;
                let writes = read
                    .iter()
                    .map(|e| Write {
                        key: e.key.clone(),
                        change: if e.key == *off {
                            Change::Put(b"off".to_vec())
                        } else {
                            Change::Check
                        },
                        expect: Some(e.version),
                    })
                    .collect();
                commit(&*subject.handle(), writes).is_ok()
            });
            let succeeded = succeeded.into_iter().filter(|ok| *ok).count();
            assert_eq!(
                succeeded, 1,
                "round {round}, step {step}: commits on the same reads that succeeded"
            );
        }
    }
}

/// Threads mix gets, scans and commits on a few keys; what every thread saw is checked
/// against what was written.
fn interleavings(subject: &dyn Subject, seed: u64) {
    const MIX: [&str; 5] = ["mix/a", "mix/a/1", "mix/b", "mix/c", "mix/d"];
    const SCANNED: [&str; 3] = ["mix/", "mix/a", "mix/b"];
    const THREADS: u64 = 4;
    /// A key and a value put to it.
    type Put = (String, Vec<u8>);
    /// A thread's account: each key it saw, in order (`None`: absent), and what its commits
    /// put when they succeeded and when they conflicted.
    #[derive(Default)]
    struct Account {
        saw: Vec<(String, Option<Entry>)>,
        written: Vec<Put>,
        refused: Vec<Put>,
    }
    let accounts: Vec<Account> = on_threads(THREADS, |thread| {
        let mut rng = Rng::new(seed, 1000 + thread);
        let store = subject.handle();
        let mut account = Account::default();
        let mut known: HashMap<&str, u64> = HashMap::new();
        for step in 0..100 {
            match rng.below(10) {
                0..3 => {
                    let key = *rng.pick(&MIX);
                    let found = store.get(key).expect("reads");
                    known.insert(key, found.as_ref().map_or(0, |e| e.version));
                    account.saw.push((key.to_owned(), found));
                }
                3..5 => {
                    let prefix = *rng.pick(&SCANNED);
                    let after = (rng.below(2) == 0).then(|| *rng.pick(&MIX));
                    let limit = 1 + rng.below(5) as u32;
                    let found = store.scan(prefix, after, limit).expect("scans");
                    assert!(found.len() <= limit as usize, "scan over its limit");
                    assert!(
                        found.windows(2).all(|pair| pair[0].key < pair[1].key),
                        "scan out of order: {found:?}"
                    );
                    for entry in found {
                        if let Some(key) = MIX.iter().find(|key| **key == entry.key) {
                            known.insert(key, entry.version);
                        }
                        assert!(
                            entry.key.starts_with(prefix)
                                && after.is_none_or(|a| entry.key.as_str() > a),
                            "scan {prefix:?} after {after:?} gave {:?}",
                            entry.key
                        );
                        account.saw.push((entry.key.clone(), Some(entry)));
                    }
                }
                _ => {
                    let mut keys = MIX.to_vec();
                    rng.shuffle(&mut keys);
                    keys.truncate(1 + rng.below(3));
                    let writes: Vec<Write> = keys
                        .iter()
                        .map(|key| Write {
                            key: (*key).to_owned(),
                            change: match rng.below(5) {
                                0..3 => Change::Put(format!("{thread}.{step}.{key}").into_bytes()),
                                3 => Change::Delete,
                                _ => Change::Check,
                            },
                            expect: match rng.below(4) {
                                0 => None,
                                _ => Some(known.get(key).copied().unwrap_or(0)),
                            },
                        })
                        .collect();
                    let puts = writes.iter().filter_map(|w| match &w.change {
                        Change::Put(value) => Some((w.key.clone(), value.clone())),
                        _ => None,
                    });
                    match commit(&*store, writes.clone()) {
                        Ok(()) => account.written.extend(puts),
                        Err(()) => account.refused.extend(puts),
                    }
                }
            }
        }
        account
    });

    let written: HashSet<&Put> = accounts.iter().flat_map(|a| &a.written).collect();
    let refused: HashSet<&Put> = accounts.iter().flat_map(|a| &a.refused).collect();
    let mut value_at: HashMap<(&str, u64), &[u8]> = HashMap::new();
    let mut highest: HashMap<&str, u64> = HashMap::new();
    for (thread, account) in accounts.iter().enumerate() {
        // Per key: the highest version this thread saw, and whether it saw the key gone since.
        let mut last: HashMap<&str, (u64, bool)> = HashMap::new();
        for (key, found) in &account.saw {
            let Some(Entry { version, value, .. }) = found else {
                if let Some((_, gone)) = last.get_mut(key.as_str()) {
                    *gone = true;
                }
                continue;
            };
            let pair = (key.clone(), value.clone());
            assert!(
                !refused.contains(&pair),
                "thread {thread} saw {key:?} = {:?}, written by a commit that conflicted",
                String::from_utf8_lossy(value)
            );
            assert!(
                written.contains(&pair),
                "thread {thread} saw {key:?} = {:?}, which no commit wrote",
                String::from_utf8_lossy(value)
            );
            let first = *value_at.entry((key, *version)).or_insert(value);
            assert_eq!(first, value, "{key:?} had two values at version {version}");
            if let Some((before, gone)) = last.get(key.as_str()) {
                assert!(
                    if *gone {
                        version > before
                    } else {
                        version >= before
                    },
                    "thread {thread} saw {key:?} at version {version} after {before}{}",
                    if *gone { " and its delete" } else { "" }
                );
            }
            last.insert(key, (*version, false));
            let top = highest.entry(key).or_default();
            *top = (*top).max(*version);
        }
    }
    let store = subject.handle();
    for entry in store.scan("mix/", None, u32::MAX).expect("scans") {
        assert!(
            written.contains(&(entry.key.clone(), entry.value.clone())),
            "{:?} ends holding a value no commit wrote",
            entry.key
        );
        assert!(
            entry.version >= highest.get(entry.key.as_str()).copied().unwrap_or(0),
            "{:?} ends below a version seen of it",
            entry.key
        );
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Runs `work` on `count` threads at once; their results in order. A thread's panic fails
/// the test with its own message.
fn on_threads<T: Send>(count: u64, work: impl Fn(u64) -> T + Sync) -> Vec<T> {
    thread::scope(|scope| {
        let work = &work;
        let threads: Vec<_> = (0..count).map(|n| scope.spawn(move || work(n))).collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A commit that succeeded, or conflicted (`Err(())`); the store failing fails the test.
fn commit(store: &dyn Store, writes: Vec<Write>) -> Result<(), ()> {
    match store.commit(writes) {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(()),
        Err(StoreError::Unavailable(why)) => panic!("the store failed: {why}"),
    }
}

fn put(key: &str, value: &[u8], expect: Option<u64>) -> Write {
    Write {
        key: key.to_owned(),
        change: Change::Put(value.to_vec()),
        expect,
    }
}

fn delete(key: &str, expect: Option<u64>) -> Write {
    Write {
        key: key.to_owned(),
        change: Change::Delete,
        expect,
    }
}

/// Every key of the store.
fn everything(store: &dyn Store) -> Vec<Entry> {
    store.scan("", None, u32::MAX).expect("scans")
}

fn number(value: &[u8]) -> u64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .expect("a counter holds a number")
}

/// The run's seed: `STORAGE_CONTRACT_SEED`, else a fresh one.
fn seed() -> u64 {
    match std::env::var("STORAGE_CONTRACT_SEED") {
        Ok(seed) => seed.parse().expect("STORAGE_CONTRACT_SEED is a number"),
        Err(_) => uuid::Uuid::new_v4().as_u64_pair().0,
    }
}

/// Says how to replay a run that fails.
struct Replay(u64);

impl Drop for Replay {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("replay this run with STORAGE_CONTRACT_SEED={}", self.0);
        }
    }
}

/// SplitMix64: small, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    /// The generator of one stream (a thread, a round) of a run.
    fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Below `n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// A value of 0 to 5 bytes of any kind (empty, NUL, 0xFF).
    fn bytes(&mut self) -> Vec<u8> {
        (0..self.below(6)).map(|_| self.next() as u8).collect()
    }
}

/// A temporary folder, removed with everything in it when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "vk-storage-contract-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}
