//! Storage: the embedded database (redb) and the in-memory store behind vk-core's `Store`
//! trait, and the `storage` WIT import over it.
//!
//! The plugin sees its own key space: every key it uses is stored under `plugin/`, so the
//! database can hold other records of the host beside it.

use std::path::Path;
use std::sync::{Arc, mpsc};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use vk_core::ports::{Change, Entry, Store, StoreError, Write};

use crate::plugin::State;
use crate::plugin::bindings::mybusiness::vk::storage as wit;

/// A store shared by every call.
pub type SharedStore = Arc<dyn Store + Send + Sync>;

/// key → (version, value).
const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
/// "clock" → the last version handed out.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The most commits one write transaction (and its one fsync) carries.
const MAX_BATCH: usize = 256;

/// One caller's commit, waiting for the writer, and where its answer goes.
struct Job {
    writes: Vec<Write>,
    reply: mpsc::SyncSender<Result<(), StoreError>>,
}

/// The embedded database file: ACID, readers never blocked, and one writer thread that
/// commits together whatever commits arrived together (group commit): one write transaction
/// and one fsync per batch, while each commit keeps its own all-or-nothing and its own
/// conflicts, and every caller is answered only once its batch is durable.
pub struct DbStore {
    db: Arc<Database>,
    /// Where callers queue their commits; `None` only while dropping.
    queue: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// Creates `path` (and its folder, if missing) readable and writable by the owner only, or
/// takes such rights away from others on an existing file: the database holds the community's
/// access key and secret. Says so when it had to tighten an existing file.
pub fn private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        eprintln!(
            "vk-host: {} was readable by others; it is now readable by its owner only",
            path.display()
        );
    }
    Ok(())
}

impl DbStore {
    /// Opens (or creates) the database file, readable by its owner only.
    pub fn open(path: &Path) -> anyhow::Result<DbStore> {
        private_file(path)?;
        let db = Database::create(path)
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(ENTRIES)?;
        tx.open_table(META)?;
        tx.commit()?;
        let db = Arc::new(db);
        let (queue, jobs) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("vk-host-db-writer".into())
            .spawn({
                let db = db.clone();
                move || write_batches(&db, &jobs)
            })?;
        Ok(DbStore {
            db,
            queue: Some(queue),
            writer: Some(writer),
        })
    }
}

impl Drop for DbStore {
    /// Lets the writer finish what is queued and waits for it, so the file is closed (and
    /// may be opened again) once the store is gone.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            writer.join().ok();
        }
    }
}

/// The writer thread: takes every commit queued (at most [`MAX_BATCH`]), writes them in one
/// transaction, answers each, and starts again; ends when the store is dropped.
fn write_batches(db: &Database, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let writes: Vec<&[Write]> = batch.iter().map(|job| job.writes.as_slice()).collect();
        let answers = match commit_batch(db, &writes) {
            Ok(answers) => answers,
            // Nothing of the batch was written: every caller hears why.
            Err(error) => vec![Err(error); batch.len()],
        };
        for (job, answer) in batch.into_iter().zip(answers) {
            // A caller that went away needs no answer.
            job.reply.send(answer).ok();
        }
    }
}

/// Writes the commits in order in one write transaction and one durable commit: each commit
/// whose expectations hold (against the transaction's state, which includes the writes of
/// the commits before it) is applied whole; any other gets `Conflict` and writes nothing.
/// Returns each commit's answer, or the error that left the whole batch unwritten.
fn commit_batch(
    db: &Database,
    commits: &[&[Write]],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let tx = db.begin_write().map_err(unavailable)?;
    let mut answers = Vec::with_capacity(commits.len());
    {
        let mut table = tx.open_table(ENTRIES).map_err(unavailable)?;
        let mut meta = tx.open_table(META).map_err(unavailable)?;
        let mut clock = meta
            .get("clock")
            .map_err(unavailable)?
            .map_or(0, |v| v.value());
        for writes in commits {
            let mut holds = true;
            for write in writes.iter() {
                if let Some(expected) = write.expect {
                    let current = table
                        .get(write.key.as_str())
                        .map_err(unavailable)?
                        .map_or(0, |row| row.value().0);
                    if current != expected {
                        holds = false;
                        break;
                    }
                }
            }
            if !holds {
                answers.push(Err(StoreError::Conflict));
                continue;
            }
            for write in writes.iter() {
                match &write.change {
                    Change::Put(value) => {
                        clock += 1;
                        table
                            .insert(write.key.as_str(), (clock, value.as_slice()))
                            .map_err(unavailable)?;
                    }
                    Change::Delete => {
                        table.remove(write.key.as_str()).map_err(unavailable)?;
                    }
                    Change::Check => {}
                }
            }
            answers.push(Ok(()));
        }
        meta.insert("clock", clock).map_err(unavailable)?;
    }
    // Durable (fsync) before anyone is answered: redb's default durability.
    tx.commit().map_err(unavailable)?;
    Ok(answers)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Store for DbStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        let table = tx.open_table(ENTRIES).map_err(unavailable)?;
        let found = table.get(key).map_err(unavailable)?;
        Ok(found.map(|row| {
            let (version, value) = row.value();
            Entry {
                key: key.to_owned(),
                value: value.to_vec(),
                version,
            }
        }))
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        let table = tx.open_table(ENTRIES).map_err(unavailable)?;
        let start = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let mut entries = Vec::new();
        for row in table.range(start..).map_err(unavailable)? {
            let (key, value) = row.map_err(unavailable)?;
            let key = key.value();
            if Some(key) == after {
                continue;
            }
            if !key.starts_with(prefix) || entries.len() >= limit as usize {
                break;
            }
            let (version, value) = value.value();
            entries.push(Entry {
                key: key.to_owned(),
                value: value.to_vec(),
                version,
            });
        }
        Ok(entries)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| unavailable("the store is closing"))?;
        queue
            .send(Job { writes, reply })
            .map_err(|_| unavailable("the database writer has stopped"))?;
        answer
            .recv()
            .map_err(|_| unavailable("the database writer has stopped"))?
    }
}

/// Where the host kept its own employee directory up to WIT 0.1.0.
const OLD_EMPLOYEES: &str = "host/employee/";
const OLD_TOKENS: &str = "host/token/";

/// Moves the employee directory the host kept itself (up to WIT 0.1.0) into the plugin's,
/// where the `api` export looks for it, so every employee and token keeps working; returns
/// how many employees moved. Nothing to move: nothing is written.
pub fn adopt_host_directory(store: &SharedStore) -> anyhow::Result<usize> {
    let plugin = Namespace::plugin(store.clone());
    let core = vk_core::Core::new(
        &plugin,
        &vk_core::ports::Offline,
        &vk_core::ports::SystemClock,
    );
    let mut moved = 0;
    for prefix in [OLD_EMPLOYEES, OLD_TOKENS] {
        loop {
            let page = store.scan(prefix, None, 500).map_err(failed)?;
            if page.is_empty() {
                break;
            }
            if prefix == OLD_EMPLOYEES {
                for entry in &page {
                    core.adopt_employee(&entry.value)
                        .map_err(|e| anyhow::anyhow!("moving an employee: {e}"))?;
                }
                moved += page.len();
            }
            let deletes = page
                .into_iter()
                .map(|entry| Write {
                    key: entry.key,
                    change: Change::Delete,
                    expect: Some(entry.version),
                })
                .collect();
            store.commit(deletes).map_err(failed)?;
        }
    }
    Ok(moved)
}

fn failed(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::Conflict => {
            anyhow::anyhow!("the directory changed while it was moved; start again")
        }
        StoreError::Unavailable(why) => anyhow::anyhow!("the database failed: {why}"),
    }
}

/// One part of a store's key space, seen as a whole store.
pub struct Namespace {
    inner: SharedStore,
    prefix: &'static str,
}

impl Namespace {
    /// The plugin's key space.
    pub fn plugin(inner: SharedStore) -> Namespace {
        Namespace {
            inner,
            prefix: "plugin/",
        }
    }

    fn outer(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn inner_entry(&self, mut entry: Entry) -> Entry {
        entry.key.drain(..self.prefix.len());
        entry
    }
}

impl Store for Namespace {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .inner
            .get(&self.outer(key))?
            .map(|e| self.inner_entry(e)))
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let after = after.map(|a| self.outer(a));
        let entries = self
            .inner
            .scan(&self.outer(prefix), after.as_deref(), limit)?;
        Ok(entries.into_iter().map(|e| self.inner_entry(e)).collect())
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let writes = writes
            .into_iter()
            .map(|w| Write {
                key: self.outer(&w.key),
                ..w
            })
            .collect();
        self.inner.commit(writes)
    }
}

/// The most one scan may return, whatever the guest asks for.
const MAX_SCAN: u32 = 1000;

fn to_wit(error: StoreError) -> wit::StorageError {
    match error {
        StoreError::Conflict => wit::StorageError::Conflict,
        StoreError::Unavailable(why) => wit::StorageError::Unavailable(why),
    }
}

fn entry_to_wit(e: Entry) -> wit::Entry {
    wit::Entry {
        key: e.key,
        value: e.value,
        version: e.version,
    }
}

impl wit::Host for State {
    fn get(&mut self, key: String) -> Result<Option<wit::Entry>, wit::StorageError> {
        self.store
            .get(&key)
            .map(|e| e.map(entry_to_wit))
            .map_err(to_wit)
    }

    fn scan(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<wit::Entry>, wit::StorageError> {
        self.store
            .scan(&prefix, after.as_deref(), limit.min(MAX_SCAN))
            .map(|entries| entries.into_iter().map(entry_to_wit).collect())
            .map_err(to_wit)
    }

    fn commit(&mut self, writes: Vec<wit::Write>) -> Result<(), wit::StorageError> {
        let writes = writes
            .into_iter()
            .map(|w| Write {
                key: w.key,
                change: match w.change {
                    wit::Change::Put(value) => Change::Put(value),
                    wit::Change::Delete => Change::Delete,
                    wit::Change::Check => Change::Check,
                },
                expect: w.expect,
            })
            .collect();
        self.store.commit(writes).map_err(to_wit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8], expect: Option<u64>) -> Write {
        Write {
            key: key.into(),
            change: Change::Put(value.to_vec()),
            expect,
        }
    }

    #[test]
    fn the_database_commits_all_or_nothing_and_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("vk-host-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("test.db");
        {
            let db = DbStore::open(&path).expect("opens");
            db.commit(vec![put("a/1", b"x", Some(0)), put("a/2", b"y", None)])
                .expect("commits");
            let version = db.get("a/1").expect("reads").expect("present").version;
            let stale = db.commit(vec![
                put("a/1", b"z", Some(version + 7)),
                put("a/3", b"w", None),
            ]);
            assert_eq!(stale, Err(StoreError::Conflict));
            assert_eq!(
                db.get("a/3").expect("reads"),
                None,
                "a failed commit writes nothing"
            );
        }
        let db = DbStore::open(&path).expect("reopens");
        let keys: Vec<String> = db
            .scan("a/", None, 10)
            .expect("scans")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["a/1", "a/2"]);
        let after: Vec<String> = db
            .scan("a/", Some("a/1"), 10)
            .expect("scans")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(after, ["a/2"]);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A fresh database file in its own temporary folder (removed by the caller).
    fn temp_db() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vk-host-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("test.db");
        (dir, path)
    }

    #[test]
    fn conflicting_commits_in_one_batch_fail_alone_and_write_nothing() {
        let (dir, path) = temp_db();
        let store = DbStore::open(&path).expect("opens");
        store
            .commit(vec![put("seen", b"0", None)])
            .expect("commits");
        let seen = store.get("seen").expect("reads").expect("present").version;
        let first = [put("k", b"first", Some(0)), put("first/side", b"1", None)];
        let second = [put("k", b"second", Some(0)), put("second/side", b"2", None)];
        let apart = [put("apart", b"3", Some(0))];
        // Rests on a key the batch's first commit does not touch, at the version read.
        let checked = [
            Write {
                key: "seen".into(),
                change: Change::Check,
                expect: Some(seen),
            },
            put("checked/side", b"4", None),
        ];
        let stale = [
            Write {
                key: "seen".into(),
                change: Change::Check,
                expect: Some(seen + 100),
            },
            put("stale/side", b"5", None),
        ];
        let answers = commit_batch(&store.db, &[&first, &second, &apart, &checked, &stale])
            .expect("the batch commits");
        assert_eq!(
            answers,
            [
                Ok(()),
                Err(StoreError::Conflict),
                Ok(()),
                Ok(()),
                Err(StoreError::Conflict)
            ]
        );
        let value = |key: &str| store.get(key).expect("reads").map(|e| e.value);
        assert_eq!(value("k").as_deref(), Some(&b"first"[..]));
        assert!(value("first/side").is_some());
        assert_eq!(value("second/side"), None, "the loser wrote nothing");
        assert_eq!(value("stale/side"), None, "the stale check wrote nothing");
        assert!(value("apart").is_some() && value("checked/side").is_some());

        // A later commit of a batch sees the earlier ones: it may rest on their versions.
        let version = store.get("k").expect("reads").expect("present").version;
        let update = [put("k", b"updated", Some(version))];
        let again = [put("k", b"again", Some(version))];
        let answers = commit_batch(&store.db, &[&update, &again]).expect("commits");
        assert_eq!(answers, [Ok(()), Err(StoreError::Conflict)]);
        assert_eq!(value("k").as_deref(), Some(&b"updated"[..]));
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn many_threads_committing_at_once_lose_nothing_reuse_no_version_and_survive_reopening() {
        const THREADS: usize = 8;
        const COMMITS: usize = 40;
        let (dir, path) = temp_db();
        let store = Arc::new(DbStore::open(&path).expect("opens"));
        let barrier = Arc::new(std::sync::Barrier::new(THREADS));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut increments = 0;
                    let mut first_wins = 0;
                    for c in 0..COMMITS {
                        // Three keys of its own, all or nothing.
                        let own = (0..3)
                            .map(|k| put(&format!("own/{t}/{c}/{k}"), b"v", Some(0)))
                            .collect();
                        store.commit(own).expect("a commit of fresh keys lands");
                        // Everyone races to create the same key, each with a side key.
                        let race = store.commit(vec![
                            put(&format!("race/{c}"), format!("{t}").as_bytes(), Some(0)),
                            put(&format!("side/{c}/{t}"), b"w", None),
                        ]);
                        match race {
                            Ok(()) => first_wins += 1,
                            Err(StoreError::Conflict) => {}
                            Err(other) => panic!("the database failed: {other:?}"),
                        }
                        // A shared counter, read-modify-write with retries.
                        loop {
                            let current = store.get("counter").expect("reads");
                            let (n, version) = current.map_or((0, 0), |e| {
                                let n: u64 = String::from_utf8(e.value)
                                    .expect("text")
                                    .parse()
                                    .expect("a number");
                                (n, e.version)
                            });
                            let next = format!("{}", n + 1);
                            match store.commit(vec![put("counter", next.as_bytes(), Some(version))])
                            {
                                Ok(()) => break,
                                Err(StoreError::Conflict) => continue,
                                Err(other) => panic!("the database failed: {other:?}"),
                            }
                        }
                        increments += 1;
                    }
                    (increments, first_wins)
                })
            })
            .collect();
        let outcomes: Vec<(usize, usize)> = workers
            .into_iter()
            .map(|w| w.join().expect("a worker"))
            .collect();
        let increments: usize = outcomes.iter().map(|o| o.0).sum();
        let wins: usize = outcomes.iter().map(|o| o.1).sum();
        assert_eq!(increments, THREADS * COMMITS);
        assert_eq!(wins, COMMITS, "each race has exactly one winner");
        drop(store);

        // Everything acknowledged is in the file once it is opened again.
        let store = DbStore::open(&path).expect("reopens");
        let all = |prefix: &str| {
            let mut entries = Vec::new();
            loop {
                let after = entries.last().map(|e: &Entry| e.key.clone());
                let page = store.scan(prefix, after.as_deref(), 500).expect("scans");
                if page.is_empty() {
                    return entries;
                }
                entries.extend(page);
            }
        };
        let own = all("own/");
        assert_eq!(own.len(), THREADS * COMMITS * 3);
        let counter = store.get("counter").expect("reads").expect("present");
        assert_eq!(counter.value, (THREADS * COMMITS).to_string().into_bytes());
        for c in 0..COMMITS {
            let winner = store
                .get(&format!("race/{c}"))
                .expect("reads")
                .expect("one commit created it");
            let winner = String::from_utf8(winner.value).expect("text");
            let sides: Vec<String> = all(&format!("side/{c}/"))
                .into_iter()
                .map(|e| e.key)
                .collect();
            assert_eq!(
                sides,
                [format!("side/{c}/{winner}")],
                "only the winner's side key"
            );
        }
        // Every stored version is distinct, and the clock is past them all.
        let mut versions: Vec<u64> = all("").into_iter().map(|e| e.version).collect();
        let stored = versions.len();
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), stored, "a version was handed out twice");
        store
            .commit(vec![put("after-reopen", b"x", None)])
            .expect("commits");
        let newest = store.get("after-reopen").expect("reads").expect("present");
        assert!(newest.version > *versions.last().expect("some versions"));
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_plugin_namespace_keeps_its_keys_apart() {
        let shared: SharedStore = Arc::new(vk_core::memory::MemoryStore::new());
        shared
            .commit(vec![put("k", b"outside", None)])
            .expect("commits");
        let plugin = Namespace::plugin(shared.clone());
        plugin.commit(vec![put("k", b"p", None)]).expect("commits");
        assert_eq!(
            plugin.get("k").expect("reads").expect("present").value,
            b"p"
        );
        let keys: Vec<String> = plugin
            .scan("", None, 10)
            .expect("scans")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["k"]);
        assert!(shared.get("plugin/k").expect("reads").is_some());
    }

    #[test]
    fn the_old_host_directory_moves_into_the_plugin_and_its_tokens_keep_working() {
        let shared: SharedStore = Arc::new(vk_core::memory::MemoryStore::new());
        // As the host of WIT 0.1.0 wrote them.
        let id = "0b8f7a52-3f5e-4c55-9a43-6f1de2d0b001";
        let token = "an-old-token-of-anna";
        let hash = vk_core::directory::digest(token);
        let record = format!(r#"{{"id":"{id}","name":"Anna","token_sha256":"{hash}"}}"#);
        shared
            .commit(vec![
                put(&format!("host/employee/{id}"), record.as_bytes(), None),
                put(
                    &format!("host/token/{hash}"),
                    format!("\"{id}\"").as_bytes(),
                    None,
                ),
            ])
            .expect("commits");

        assert_eq!(adopt_host_directory(&shared).expect("moves"), 1);

        let plugin = Namespace::plugin(shared.clone());
        let core = vk_core::Core::new(
            &plugin,
            &vk_core::ports::Offline,
            &vk_core::ports::SystemClock,
        );
        let found = core
            .authenticate(token)
            .expect("reads")
            .expect("the token still works");
        assert_eq!(found.to_string(), id);
        assert_eq!(core.employees().expect("lists")[0].name, "Anna");
        assert!(shared.scan("host/", None, 10).expect("scans").is_empty());
        assert_eq!(adopt_host_directory(&shared).expect("runs"), 0, "only once");
    }
}
