//! The embedded database: a redb file with a journal in front of it.
//!
//! A commit is decided by its caller at once, one at a time under one lock: its expected
//! versions are checked against the state every earlier commit left (all or nothing, its
//! own conflicts), and its writes become visible to readers and pending for the journal.
//! The flusher thread takes whatever is pending, the commits decided while it wrote the last
//! record, and appends it to the journal as one record made durable with `O_DSYNC` (group
//! commit). A commit is not durable when `commit` returns: nothing may leave the host before
//! what it rests on is, so the host's answers and outbound requests wait for
//! [`Durability`] to reach what was decided before them (and a journal that cannot be
//! written refuses every commit from then on). Records hold whole commits and are replayed
//! in order, so a crash keeps a prefix of the decided commits, and every one anybody was
//! answered for. The journal is an append-only file: a record costs one sequential write and
//! one sync, however scattered its keys are in the database file. A journal whose commits
//! are all in the file is kept as the spare and becomes the next journal: its records are
//! overwritten in place, so a sync writes the data alone and not also the file's grown size
//! (an append's sync also writes the inode); what is left of its old
//! records is never replayed, since a record's checksum covers the journal's generation.
//!
//! Readers see the journal's commits not yet in the file through an in-memory overlay. When
//! the overlay holds [`CHECKPOINT_ENTRIES`] keys (or nothing was committed for
//! [`CHECKPOINT_IDLE`]), a checkpointer thread moves it into the redb file, in write
//! transactions of [`CHECKPOINT_CHUNK`] keys, while the flusher goes on in a new journal
//! (made ready beforehand); once the last transaction is durable, the older journals are
//! deleted. Many commits' writes to the same pages (the newest end of an index, the change
//! stamp) then cost one page write instead of one per record.
//!
//! On opening, the journals left by a stop or a crash are replayed into the file, oldest
//! first, up to the first record that is incomplete or fails its checksum (a write the crash
//! cut off, which nobody was answered for). Replaying sets each key to the state the record
//! gives it, so a journal replayed twice (a crash right after a checkpoint) changes nothing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use vk_core::ports::{Change, Entry, Store, StoreError, Write};

use crate::storage::{fnv1a, fnv1a_on, private_file};

/// key → (version, value).
const ENTRIES: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("entries");
/// "clock" → the last version handed out (as of the last checkpoint).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// What a journal begins with (journals of earlier versions had no such mark, and their
/// checksums did not cover the generation).
const JOURNAL_MARK: &[u8; 8] = b"vkjrnl02";

/// Keys in the overlay at which they are moved into the database file.
const CHECKPOINT_ENTRIES: usize = 65_536;
/// Keys a checkpoint writes in one transaction: each one's sync is short, so the journal's
/// writes do not queue behind one long sync of them all.
const CHECKPOINT_CHUNK: usize = 4_096;
/// How long the flusher waits for commits before it moves the overlay into the file anyway.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(500);

/// A key as the journal left it: its version and value, `None` once deleted.
type Slot = (u64, Option<Vec<u8>>);
type Layer = BTreeMap<String, Slot>;

/// Commits decided and not yet in the database file (in the journal, or on their way
/// there), and the file as of the last checkpoint that ended: together, the current state.
struct Overlay {
    /// Written since the running (or last) checkpoint began.
    active: Layer,
    /// Being moved into the file; emptied by the flusher once the checkpoint is durable.
    frozen: Arc<Layer>,
    /// The file with every key that is in neither layer, replaced when `frozen` is emptied.
    /// Shared by every read: beginning a read transaction waits for a checkpoint's commit
    /// to end, which no read or commit should.
    file: Arc<redb::ReadTransaction>,
    /// How many times `frozen` was emptied (and `file` replaced).
    emptied: u64,
}

impl Overlay {
    fn get(&self, key: &str) -> Option<&Slot> {
        self.active.get(key).or_else(|| self.frozen.get(key))
    }
}

/// What the committers, the flusher, the checkpointer and the readers share. Locks are
/// taken in this order: `decider`, then `overlay`.
struct Shared {
    db: Database,
    overlay: RwLock<Overlay>,
    /// The database file; its journals are named after it.
    path: PathBuf,
    decider: Mutex<Decider>,
    /// Wakes the flusher when something is pending.
    wake: Condvar,
    durability: Arc<Durability>,
}

impl Shared {
    fn decider(&self) -> MutexGuard<'_, Decider> {
        self.decider.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn overlay(&self) -> RwLockReadGuard<'_, Overlay> {
        self.overlay.read().unwrap_or_else(|e| e.into_inner())
    }

    fn overlay_mut(&self) -> std::sync::RwLockWriteGuard<'_, Overlay> {
        self.overlay.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The embedded database file and its journal: ACID, readers never blocked by commits.
/// A commit is decided at once (all or nothing, against the state all earlier commits left)
/// and made durable by the flusher together with the others decided meanwhile: what answers
/// callers waits for that with [`DbStore::durability`].
pub struct DbStore {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl DbStore {
    /// Opens (or creates) the database file, readable by its owner only, and replays the
    /// journals a previous run left.
    pub fn open(path: &Path) -> anyhow::Result<DbStore> {
        let flusher = Flusher::open(path)?;
        let shared = flusher.shared.clone();
        let flusher = std::thread::Builder::new()
            .name("vk-host-db-flusher".into())
            .spawn(move || flusher.run())?;
        Ok(DbStore {
            shared,
            flusher: Some(flusher),
        })
    }

    /// Where the commits stand on their way to the disk.
    pub fn durability(&self) -> Arc<Durability> {
        self.shared.durability.clone()
    }
}

impl Drop for DbStore {
    /// Lets the flusher write what is pending and move the overlay into the file, and waits
    /// for it, so the file is closed (and may be opened again) once the store is gone.
    fn drop(&mut self) {
        self.shared.decider().closing = true;
        self.shared.wake.notify_one();
        if let Some(flusher) = self.flusher.take() {
            flusher.join().ok();
        }
    }
}

/// The journal being appended to.
struct Journal {
    file: std::fs::File,
    generation: u64,
    /// Where its next record goes.
    end: u64,
}

/// Journal `generation` of the database at `db`.
fn journal_path(db: &Path, generation: u64) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".journal-{generation:020}"));
    PathBuf::from(name)
}

/// The spare journal of the database at `db`: a journal whose commits are all in the file,
/// kept to become the next one.
fn spare_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".journal-spare");
    PathBuf::from(name)
}

/// The folder the database at `db` is in.
fn folder(db: &Path) -> &Path {
    db.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The journals of the database at `db`, oldest first.
fn journals(db: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let dir = folder(db);
    let stem = format!(
        "{}.journal-",
        db.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(generation) = name.strip_prefix(&stem).and_then(|g| g.parse().ok()) {
            found.push((generation, journal_path(db, generation)));
        }
    }
    found.sort();
    Ok(found)
}

impl Journal {
    /// Starts journal `generation` in the spare journal, or in a new file if there is no
    /// spare, durably: its name is synced into the folder, so a crash cannot lose the file
    /// with the commits written to it.
    fn create(db: &Path, generation: u64) -> anyhow::Result<Journal> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = journal_path(db, generation);
        if std::fs::rename(spare_path(db), &path).is_err() {
            private_file(&path)?;
            let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.write_all(JOURNAL_MARK)?;
            file.sync_data()?;
        }
        // Each write is durable when it returns (`O_DSYNC`): on this machine that costs a
        // third less CPU than a write followed by `fdatasync`.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(&path)?;
        std::fs::File::open(folder(db))?.sync_all()?;
        Ok(Journal {
            file,
            generation,
            end: JOURNAL_MARK.len() as u64,
        })
    }

    /// Writes one record after the last and makes it durable. On a failure the next record
    /// goes in its place: a record that is not whole, or that is left of a journal's earlier
    /// life, ends the replay.
    fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        self.file.write_all_at(record, self.end)?;
        self.end += record.len() as u64;
        Ok(())
    }
}

/// A record's checksum: of its body, and of the generation of the journal it belongs to
/// (`None` in journals of earlier versions).
fn checksum(generation: Option<u64>, body: &[u8]) -> u64 {
    match generation {
        Some(generation) => fnv1a_on(fnv1a(&generation.to_le_bytes()), body),
        None => fnv1a(body),
    }
}

/// A record of journal `generation`: length (u32), checksum (u64, see [`checksum`]), then
/// each key's new state: tag (1 put, 0 delete), version (u64), key length (u32) and key, and
/// for a put the value's length (u32) and value. Integers are little-endian.
fn encode(layer: &Layer, generation: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, (version, value)) in layer {
        body.push(u8::from(value.is_some()));
        body.extend_from_slice(&version.to_le_bytes());
        body.extend_from_slice(&len32(key.len()).to_le_bytes());
        body.extend_from_slice(key.as_bytes());
        if let Some(value) = value {
            body.extend_from_slice(&len32(value.len()).to_le_bytes());
            body.extend_from_slice(value);
        }
    }
    let mut record = Vec::with_capacity(body.len() + 12);
    record.extend_from_slice(&len32(body.len()).to_le_bytes());
    record.extend_from_slice(&checksum(Some(generation), &body).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

/// A length as the journal stores it (keys and values are far below 4 GiB: the host caps
/// a request at 1 MiB).
fn len32(n: usize) -> u32 {
    u32::try_from(n).expect("a journal entry is below 4 GiB")
}

/// Takes `n` bytes from the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = bytes.split_at_checked(n)?;
    *bytes = rest;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<usize> {
    let raw = take(bytes, 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

fn take_u64(bytes: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?))
}

/// The whole records of journal `generation`, in order, up to the first one that is
/// incomplete, damaged, or of an earlier life of the file.
fn decode(journal: &[u8], generation: u64) -> Vec<Layer> {
    let (mut journal, generation) = match journal.strip_prefix(JOURNAL_MARK) {
        Some(records) => (records, Some(generation)),
        None => (journal, None),
    };
    let mut records = Vec::new();
    while let Some(record) = decode_record(&mut journal, generation) {
        records.push(record);
    }
    records
}

fn decode_record(journal: &mut &[u8], generation: Option<u64>) -> Option<Layer> {
    let length = take_u32(journal)?;
    let sum = take_u64(journal)?;
    let mut body = take(journal, length)?;
    if checksum(generation, body) != sum {
        return None;
    }
    let mut layer = Layer::new();
    while !body.is_empty() {
        let tag = take(&mut body, 1)?[0];
        let version = take_u64(&mut body)?;
        let key_length = take_u32(&mut body)?;
        let key = String::from_utf8(take(&mut body, key_length)?.to_vec()).ok()?;
        let value = match tag {
            1 => {
                let value_length = take_u32(&mut body)?;
                Some(take(&mut body, value_length)?.to_vec())
            }
            0 => None,
            _ => return None,
        };
        layer.insert(key, (version, value));
    }
    Some(layer)
}

/// Replays `journals` (oldest first) into the file in one durable transaction; returns how
/// many keys they set.
fn replay(db: &Database, journals: &[(u64, PathBuf)]) -> anyhow::Result<usize> {
    let mut state = Layer::new();
    for (generation, path) in journals {
        for record in decode(&std::fs::read(path)?, *generation) {
            state.extend(record);
        }
    }
    if !state.is_empty() {
        apply(db, &state)?;
    }
    Ok(state.len())
}

/// Writes `layer`'s entries into the file in one durable transaction, moving the clock past
/// their versions.
fn apply<'a>(
    db: &Database,
    layer: impl IntoIterator<Item = (&'a String, &'a Slot)>,
) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut table = tx.open_table(ENTRIES)?;
        let mut meta = tx.open_table(META)?;
        let mut clock = meta.get("clock")?.map_or(0, |v| v.value());
        for (key, (version, value)) in layer {
            match value {
                Some(value) => {
                    table.insert(key.as_str(), (*version, value.as_slice()))?;
                    clock = clock.max(*version);
                }
                None => {
                    table.remove(key.as_str())?;
                    clock = clock.max(*version);
                }
            }
        }
        meta.insert("clock", clock)?;
    }
    tx.commit()?;
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Commits are decided by their callers, one at a time, and made durable by the flusher.
struct Decider {
    /// The last version handed out.
    clock: u64,
    /// What the commits decided since the last journal write set, to go into the next one:
    /// the last of those [`Durability::mark`] counts.
    pending: Layer,
    /// The store is being dropped: the flusher writes what is pending and ends.
    closing: bool,
}

/// Where the commits stand on their way to the disk. A commit is visible to readers as soon
/// as it is decided, and durable once the flusher has written it to the journal: nothing may
/// leave the host (an answer, an outbound request) before everything it could rest on is
/// durable, which is what [`Durability::mark`] and the waits are for.
pub struct Durability {
    /// Commits that wrote something, decided; counted under the decider's lock.
    decided: AtomicU64,
    progress: Mutex<Progress>,
    /// Blocking waiters.
    changed: Condvar,
    /// Waiting tasks.
    reached: tokio::sync::Notify,
}

struct Progress {
    /// Commits written to the journal.
    durable: u64,
    /// Why the journal could not be written: nothing is written after that, and every commit
    /// is refused.
    failed: Option<String>,
}

impl Durability {
    fn new() -> Durability {
        Durability {
            decided: AtomicU64::new(0),
            progress: Mutex::new(Progress {
                durable: 0,
                failed: None,
            }),
            changed: Condvar::new(),
            reached: tokio::sync::Notify::new(),
        }
    }

    /// Covers every commit decided until now, and so everything a reader has seen.
    pub fn mark(&self) -> u64 {
        self.decided.load(Ordering::Acquire)
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the journal could not be written, if it could not.
    fn failed(&self) -> Option<String> {
        self.progress().failed.clone()
    }

    /// Whether the commits up to `mark` are durable, or why they never will be; `None` while
    /// they are on their way.
    fn settled(progress: &Progress, mark: u64) -> Option<Result<(), String>> {
        if progress.durable >= mark {
            Some(Ok(()))
        } else {
            progress.failed.clone().map(Err)
        }
    }

    /// Waits, blocking the thread, until the commits up to `mark` are durable.
    pub fn wait(&self, mark: u64) -> Result<(), String> {
        let mut progress = self.progress();
        loop {
            if let Some(settled) = Self::settled(&progress, mark) {
                return settled;
            }
            progress = self
                .changed
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until the commits up to `mark` are durable.
    pub async fn reached(&self, mark: u64) -> Result<(), String> {
        loop {
            let reached = self.reached.notified();
            tokio::pin!(reached);
            reached.as_mut().enable();
            if let Some(settled) = Self::settled(&self.progress(), mark) {
                return settled;
            }
            reached.await;
        }
    }

    /// Notes how far the journal goes, or why it could not be written.
    fn settle(&self, durable: Result<u64, String>) {
        {
            let mut progress = self.progress();
            match durable {
                Ok(durable) => progress.durable = durable,
                Err(why) => progress.failed = Some(why),
            }
        }
        self.changed.notify_all();
        self.reached.notify_waiters();
    }
}

/// The flusher thread's state: it writes what the commits decided to the journal, as one
/// record per write (group commit), and moves the overlay into the file now and then.
struct Flusher {
    shared: Arc<Shared>,
    journal: Journal,
    /// The checkpoint in progress, if any; it answers whether the file took the keys.
    checkpoint: Option<JoinHandle<Checkpointed>>,
    /// The journal to go on in at the next checkpoint, made ready beforehand: making one
    /// ready syncs the folder, which the flusher must not wait for.
    next: Option<Journal>,
}

impl Flusher {
    /// Opens the database file (creating it readable by its owner only), replays the
    /// journals a previous run left, and starts a new journal.
    fn open(path: &Path) -> anyhow::Result<Flusher> {
        private_file(path)?;
        let db = Database::create(path)
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))?;
        let tx = db.begin_write()?;
        tx.open_table(ENTRIES)?;
        tx.open_table(META)?;
        tx.commit()?;
        let journals = journals(path)?;
        let replayed = replay(&db, &journals)?;
        if replayed > 0 {
            eprintln!("vk-host: {replayed} keys of the journal moved into the database file");
        }
        for (_, journal) in &journals {
            std::fs::remove_file(journal)?;
        }
        // Generations start again after the last journal: a spare of an earlier run could
        // hold records of the generation it would become.
        match std::fs::remove_file(spare_path(path)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error)?,
            _ => {}
        }
        let next = journals.last().map_or(0, |(generation, _)| generation + 1);
        let clock = {
            let tx = db.begin_read()?;
            let meta = tx.open_table(META)?;
            meta.get("clock")?.map_or(0, |v| v.value())
        };
        let file = Arc::new(db.begin_read()?);
        Ok(Flusher {
            shared: Arc::new(Shared {
                db,
                overlay: RwLock::new(Overlay {
                    active: Layer::new(),
                    frozen: Arc::default(),
                    file,
                    emptied: 0,
                }),
                path: path.to_owned(),
                decider: Mutex::new(Decider {
                    clock,
                    pending: Layer::new(),
                    closing: false,
                }),
                wake: Condvar::new(),
                durability: Arc::new(Durability::new()),
            }),
            journal: Journal::create(path, next)?,
            next: Some(Journal::create(path, next + 1)?),
            checkpoint: None,
        })
    }

    /// Writes what is pending whenever there is some, and starts again; ends when the store
    /// is dropped, after writing the last of it and moving the overlay into the file.
    fn run(mut self) {
        loop {
            let (pending, decided, closing) = {
                let mut decider = self.shared.decider();
                if decider.pending.is_empty() && !decider.closing {
                    let (woken, waited) = self
                        .shared
                        .wake
                        .wait_timeout(decider, CHECKPOINT_IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    decider = woken;
                    if waited.timed_out() && decider.pending.is_empty() {
                        drop(decider);
                        self.checkpoint_when(|overlay| !overlay.active.is_empty());
                        continue;
                    }
                }
                let pending = std::mem::take(&mut decider.pending);
                (pending, self.shared.durability.mark(), decider.closing)
            };
            self.flush(&pending, decided);
            if closing && pending.is_empty() {
                break;
            }
            self.checkpoint_when(|overlay| overlay.active.len() >= CHECKPOINT_ENTRIES);
        }
        if let Some(running) = self.checkpoint.take() {
            self.ended(running);
        }
        self.checkpoint_when(|overlay| !overlay.active.is_empty());
        if let Some(last) = self.checkpoint.take() {
            self.ended(last);
        }
    }

    /// Writes `pending` (the commits up to `decided`) to the journal as one record, and
    /// tells the waiters; returns whether the journal holds everything decided. A journal
    /// that cannot be written fails the store: its readers may have seen those commits, so
    /// nothing is written after them (a later record replayed without them would keep what
    /// rests on them) and every later commit is refused.
    fn flush(&mut self, pending: &Layer, decided: u64) -> bool {
        if self.shared.durability.failed().is_some() {
            return false;
        }
        if pending.is_empty() {
            return true;
        }
        let written = self
            .journal
            .append(&encode(pending, self.journal.generation));
        let settled = written.map(|()| decided).map_err(|error| {
            let why = format!("cannot write the journal: {error}");
            eprintln!("vk-host: {why}; no commit is taken until a restart");
            why
        });
        let flushed = settled.is_ok();
        self.shared.durability.settle(settled);
        flushed
    }

    /// Takes note of a checkpoint that ended: if the file took its keys, readers find them
    /// there from now on, and commits read the file as it is now.
    fn ended(&mut self, checkpoint: JoinHandle<Checkpointed>) {
        let Ok(Checkpointed { took: true, next }) = checkpoint.join() else {
            return;
        };
        self.next = next;
        match self.shared.db.begin_read() {
            Ok(file) => {
                let moved = {
                    let mut overlay = self.shared.overlay_mut();
                    overlay.emptied += 1;
                    let file = std::mem::replace(&mut overlay.file, Arc::new(file));
                    (std::mem::take(&mut overlay.frozen), file)
                };
                // Freed after readers may go on: that is one allocation per key.
                drop(moved);
            }
            Err(error) => eprintln!("vk-host: cannot read the database file: {error}"),
        }
    }

    /// Starts moving the overlay into the file if `due` says so and no checkpoint is
    /// running: the flusher goes on in a new journal, and the older journals are deleted
    /// once the file has everything they hold. A checkpoint that failed leaves its keys in
    /// the overlay and its journals in place; the next one takes them along.
    fn checkpoint_when(&mut self, due: impl Fn(&Overlay) -> bool) {
        if self.checkpoint.as_ref().is_some_and(|c| !c.is_finished()) {
            return;
        }
        if let Some(finished) = self.checkpoint.take() {
            self.ended(finished);
        }
        // After a failed journal write the overlay holds commits the journal does not.
        if self.shared.durability.failed().is_some() || !due(&self.shared.overlay()) {
            return;
        }
        let generation = self.journal.generation + 1;
        let ready = self
            .next
            .take()
            .filter(|next| next.generation == generation);
        let next = match ready.map_or_else(|| Journal::create(&self.shared.path, generation), Ok) {
            Ok(next) => next,
            Err(error) => {
                eprintln!("vk-host: cannot start a new journal: {error:#}");
                return;
            }
        };
        // Everything in the overlay goes to the file; what of it is not in the journal yet
        // goes to the journal being closed, and commits decided from now on to the next.
        let (frozen, pending, decided) = {
            let mut decider = self.shared.decider();
            let pending = std::mem::take(&mut decider.pending);
            let mut overlay = self.shared.overlay_mut();
            let active = std::mem::take(&mut overlay.active);
            // After a checkpoint that failed, the next takes its keys along (rare: the
            // merge holds readers back).
            let frozen = if overlay.frozen.is_empty() {
                active
            } else {
                let mut frozen = Layer::clone(&overlay.frozen);
                frozen.extend(active);
                frozen
            };
            overlay.frozen = Arc::new(frozen);
            (
                overlay.frozen.clone(),
                pending,
                self.shared.durability.mark(),
            )
        };
        if !self.flush(&pending, decided) {
            return;
        }
        let closed = std::mem::replace(&mut self.journal, next).generation;
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("vk-host-db-checkpoint".into())
            .spawn(move || checkpoint(&shared, &frozen, closed));
        match started {
            Ok(running) => self.checkpoint = Some(running),
            Err(error) => eprintln!("vk-host: cannot start a checkpoint: {error}"),
        }
    }
}

/// How a checkpoint ended.
struct Checkpointed {
    /// The file took the keys.
    took: bool,
    /// The journal after the one the flusher went on in, made ready.
    next: Option<Journal>,
}

/// Moves `frozen` into the file, then keeps the last of the journals up to `closed` as the
/// spare (if there is none), deletes the others, and makes the spare ready as the journal
/// after the next.
fn checkpoint(shared: &Shared, frozen: &Layer, closed: u64) -> Checkpointed {
    let entries: Vec<(&String, &Slot)> = frozen.iter().collect();
    for chunk in entries.chunks(CHECKPOINT_CHUNK) {
        if let Err(error) = apply(&shared.db, chunk.iter().copied()) {
            eprintln!("vk-host: the journal stays until the database file takes it: {error}");
            return Checkpointed {
                took: false,
                next: None,
            };
        }
    }
    let spare = spare_path(&shared.path);
    for (generation, path) in journals(&shared.path).unwrap_or_default().iter().rev() {
        if *generation <= closed && (spare.exists() || std::fs::rename(path, &spare).is_err()) {
            std::fs::remove_file(path).ok();
        }
    }
    Checkpointed {
        took: true,
        next: Journal::create(&shared.path, closed + 2).ok(),
    }
}

/// The entries of `layer` from `start` on under `prefix` (not `after` itself), up to and
/// including the `limit`-th that is not a deletion: nothing past it can be among the first
/// `limit` entries of a scan.
fn layer_range<'a>(
    layer: &'a Layer,
    prefix: &str,
    start: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<(&'a str, &'a Slot)> {
    let mut found = Vec::new();
    let mut live = 0;
    for (key, slot) in
        layer.range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
    {
        if !key.starts_with(prefix) || live >= limit {
            break;
        }
        if Some(key.as_str()) == after {
            continue;
        }
        live += usize::from(slot.1.is_some());
        found.push((key.as_str(), slot));
    }
    found
}

/// The file's versions of a commit's keys, read before it is decided.
struct FileVersions {
    /// `Overlay::emptied` when they were read: they hold while it stays the same.
    emptied: u64,
    versions: BTreeMap<String, u64>,
}

impl FileVersions {
    /// `key`'s version now (0 if absent or deleted): the overlay's, else the one read from
    /// the file, else (a checkpoint ended since, rare) the file's read again.
    fn current(&self, overlay: &Overlay, key: &str) -> Result<u64, StoreError> {
        if let Some((version, value)) = overlay.get(key) {
            return Ok(value.as_ref().map_or(0, |_| *version));
        }
        match self.versions.get(key) {
            Some(version) if overlay.emptied == self.emptied => Ok(*version),
            _ => version_in(&overlay.file.open_table(ENTRIES).map_err(unavailable)?, key),
        }
    }
}

impl DbStore {
    /// The file's versions of the keys the commit expects something of and the overlay does
    /// not hold, read before the decider's lock is taken: reading the file may wait for the
    /// disk, which must not hold up the commits behind this one. They hold while no
    /// checkpoint ends, since a key leaves the overlay only then.
    fn read_file_versions(&self, writes: &[Write]) -> Result<FileVersions, StoreError> {
        let (file, emptied, unseen) = {
            let overlay = self.shared.overlay();
            let unseen: Vec<&str> = writes
                .iter()
                .filter(|write| write.expect.is_some() && overlay.get(&write.key).is_none())
                .map(|write| write.key.as_str())
                .collect();
            (overlay.file.clone(), overlay.emptied, unseen)
        };
        let table = file.open_table(ENTRIES).map_err(unavailable)?;
        let versions = unseen
            .into_iter()
            .map(|key| Ok((key.to_owned(), version_in(&table, key)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(FileVersions { emptied, versions })
    }

    /// Decides the commit under the decider's lock, with the file's versions `read` before.
    fn decide(&self, writes: Vec<Write>, read: FileVersions) -> Result<(), StoreError> {
        let mut decider = self.shared.decider();
        if let Some(why) = self.shared.durability.failed() {
            return Err(unavailable(why));
        }
        if decider.closing {
            return Err(unavailable("the store is closing"));
        }
        {
            let overlay = self.shared.overlay();
            for write in &writes {
                let Some(expected) = write.expect else {
                    continue;
                };
                if read.current(&overlay, &write.key)? != expected {
                    return Err(StoreError::Conflict);
                }
            }
        }
        let decider = &mut *decider;
        let mut overlay = self.shared.overlay_mut();
        let mut wrote = false;
        for write in writes {
            let slot = match write.change {
                Change::Put(value) => {
                    decider.clock += 1;
                    (decider.clock, Some(value))
                }
                // A deletion carries the clock, so that a checkpoint or a replay moves the
                // file's clock past the deleted key's versions too: a key created again
                // after a restart never gets a version it had.
                Change::Delete => (decider.clock, None),
                Change::Check => continue,
            };
            overlay.active.insert(write.key.clone(), slot.clone());
            decider.pending.insert(write.key, slot);
            wrote = true;
        }
        if wrote {
            // Counted before readers can see the writes: a mark taken after seeing them
            // covers them.
            self.shared
                .durability
                .decided
                .fetch_add(1, Ordering::Release);
            drop(overlay);
            self.shared.wake.notify_one();
        }
        Ok(())
    }
}

/// A key's version in the file (0 if absent).
fn version_in(
    table: &redb::ReadOnlyTable<&str, (u64, &[u8])>,
    key: &str,
) -> Result<u64, StoreError> {
    Ok(table
        .get(key)
        .map_err(unavailable)?
        .map_or(0, |row| row.value().0))
}

impl Store for DbStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let file = {
            let overlay = self.shared.overlay();
            if let Some((version, value)) = overlay.get(key) {
                return Ok(value.as_ref().map(|value| Entry {
                    key: key.to_owned(),
                    value: value.clone(),
                    version: *version,
                }));
            }
            overlay.file.clone()
        };
        // Not in the overlay: the file as of the last checkpoint holds the key's last state,
        // unless a commit puts it in the overlay from now on, which this read then comes
        // before.
        let table = file.open_table(ENTRIES).map_err(unavailable)?;
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
        let limit = limit as usize;
        let start = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        // The overlay's keys and the file they are newer than, taken together.
        let (pending, file) = {
            let overlay = self.shared.overlay();
            let mut pending: BTreeMap<String, Slot> = BTreeMap::new();
            for layer in [&*overlay.frozen, &overlay.active] {
                for (key, slot) in layer_range(layer, prefix, start, after, limit) {
                    pending.insert(key.to_owned(), slot.clone());
                }
            }
            (pending, overlay.file.clone())
        };
        let table = file.open_table(ENTRIES).map_err(unavailable)?;
        let mut pending = pending.into_iter().peekable();
        let mut stored = table.range(start..).map_err(unavailable)?.peekable();
        let mut entries = Vec::new();
        while entries.len() < limit {
            let next_stored = match stored.peek() {
                Some(Ok((key, _))) => Some(key.value().to_owned()),
                Some(Err(_)) => {
                    return Err(unavailable(
                        stored
                            .next()
                            .and_then(Result::err)
                            .expect("an error was seen"),
                    ));
                }
                None => None,
            }
            .filter(|key| key.starts_with(prefix));
            let take_pending = match (pending.peek(), &next_stored) {
                (Some((key, _)), Some(stored_key)) => key <= stored_key,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_pending {
                let (key, (version, value)) = pending.next().expect("peeked");
                if next_stored.as_ref() == Some(&key) {
                    stored.next();
                }
                if let Some(value) = value {
                    entries.push(Entry {
                        key,
                        value,
                        version,
                    });
                }
                continue;
            }
            let (key, value) = stored.next().expect("peeked").map_err(unavailable)?;
            let key = key.value();
            if Some(key) == after {
                continue;
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

    /// Decides the commit against the current state: each expected version must hold
    /// (a deleted key's is 0); then its writes are visible, with new versions, and pending
    /// for the journal.
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let read = self.read_file_versions(&writes)?;
        self.decide(writes, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::put;

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
    fn conflicting_commits_fail_alone_write_nothing_and_later_ones_rest_on_earlier_ones() {
        let (dir, path) = temp_db();
        let store = DbStore::open(&path).expect("opens");
        let durability = store.durability();
        store
            .commit(vec![put("seen", b"0", None)])
            .expect("commits");
        let seen = store.get("seen").expect("reads").expect("present").version;
        let check = |expect| Write {
            key: "seen".into(),
            change: Change::Check,
            expect: Some(expect),
        };
        let answers = [
            vec![put("k", b"first", Some(0)), put("first/side", b"1", None)],
            vec![put("k", b"second", Some(0)), put("second/side", b"2", None)],
            vec![put("apart", b"3", Some(0))],
            // Rests on a key the first commit does not touch, at the version read.
            vec![check(seen), put("checked/side", b"4", None)],
            vec![check(seen + 100), put("stale/side", b"5", None)],
        ]
        .map(|writes| store.commit(writes));
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
        let value = |key: &str| value_of(&store, key);
        assert_eq!(value("k").as_deref(), Some(&b"first"[..]));
        assert!(value("first/side").is_some());
        assert_eq!(value("second/side"), None, "the loser wrote nothing");
        assert_eq!(value("stale/side"), None, "the stale check wrote nothing");
        assert!(value("apart").is_some() && value("checked/side").is_some());

        // A commit decided and not yet durable is seen by the next: it may rest on its
        // version at once.
        let version = store.get("k").expect("reads").expect("present").version;
        let update = store.commit(vec![put("k", b"updated", Some(version))]);
        let again = store.commit(vec![put("k", b"again", Some(version))]);
        assert_eq!((update, again), (Ok(()), Err(StoreError::Conflict)));
        assert_eq!(value("k").as_deref(), Some(&b"updated"[..]));
        assert_eq!(durability.mark(), 5, "every commit that wrote is counted");
        durability
            .wait(durability.mark())
            .expect("the flusher makes them durable");
        drop(store);
        let store = DbStore::open(&path).expect("reopens");
        assert_eq!(value_of(&store, "k").as_deref(), Some(&b"updated"[..]));
        assert_eq!(value_of(&store, "second/side"), None);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn waiters_are_let_go_once_their_mark_is_durable_and_refused_if_it_never_will_be() {
        let durability = Arc::new(Durability::new());
        durability.decided.store(2, Ordering::Release);
        let mark = durability.mark();
        let waiter = {
            let durability = durability.clone();
            std::thread::spawn(move || durability.wait(mark))
        };
        let task = {
            let durability = durability.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime")
                    .block_on(durability.reached(mark))
            })
        };
        durability.settle(Ok(1));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished() && !task.is_finished(),
            "a commit of theirs is not durable yet"
        );
        durability.settle(Ok(2));
        assert_eq!(waiter.join().expect("waits"), Ok(()));
        assert_eq!(task.join().expect("waits"), Ok(()));

        durability.decided.store(3, Ordering::Release);
        durability.settle(Err("cannot write the journal: disk full".into()));
        assert_eq!(durability.wait(2), Ok(()), "what was durable stays so");
        assert_eq!(
            durability.wait(durability.mark()),
            Err("cannot write the journal: disk full".into())
        );
    }

    #[test]
    fn after_a_journal_write_fails_nothing_is_written_and_every_later_commit_is_refused() {
        let (dir, path) = temp_db();
        let mut flusher = Flusher::open(&path).expect("opens");
        let durability = flusher.shared.durability.clone();
        let journal = journal_path(&path, flusher.journal.generation);
        let layer = |key: &str| Layer::from([(key.to_owned(), (1, Some(b"v".to_vec())))]);
        // A descriptor open for reading only: the write fails.
        flusher.journal.file = std::fs::File::open(&journal).expect("opens the journal");
        assert!(!flusher.flush(&layer("lost"), 1));
        // Writable again, but the record after the failed one would be replayed without it.
        flusher.journal.file = std::fs::OpenOptions::new()
            .write(true)
            .open(&journal)
            .expect("opens the journal");
        assert!(!flusher.flush(&layer("after"), 2));
        assert!(durability.wait(1).is_err() && durability.wait(2).is_err());
        let store = DbStore {
            shared: flusher.shared.clone(),
            flusher: None,
        };
        assert_eq!(
            store.commit(vec![put("refused", b"v", None)]),
            Err(StoreError::Unavailable(
                durability.failed().expect("the journal failed")
            ))
        );
        drop((store, flusher));
        let store = DbStore::open(&path).expect("reopens");
        assert_eq!(value_of(&store, "lost"), None);
        assert_eq!(
            value_of(&store, "after"),
            None,
            "nothing after the failed record"
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    /// Waits until the overlay has been emptied `times` times (idle checkpoints).
    fn checkpointed(store: &DbStore, times: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while store.shared.overlay().emptied < times {
            assert!(std::time::Instant::now() < deadline, "the checkpoint ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_version_read_from_the_file_before_a_checkpoint_ended_is_read_again() {
        let (dir, path) = temp_db();
        let store = DbStore::open(&path).expect("opens");
        store
            .commit(vec![put("k", b"1", Some(0))])
            .expect("commits");
        checkpointed(&store, 1);
        let first = store.get("k").expect("reads").expect("present").version;
        // Read from the file while "k" is only there, then decided after another commit
        // moved "k" on and a checkpoint put that in the file too.
        let stale = vec![put("k", b"lost update", Some(first))];
        let read = store.read_file_versions(&stale).expect("reads the file");
        assert_eq!(read.versions.get("k"), Some(&first));
        store
            .commit(vec![put("k", b"2", Some(first))])
            .expect("commits");
        checkpointed(&store, 2);
        assert!(
            store.shared.overlay().get("k").is_none(),
            "only in the file"
        );
        assert_eq!(store.decide(stale, read), Err(StoreError::Conflict));
        assert_eq!(value_of(&store, "k").as_deref(), Some(&b"2"[..]));
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    fn value_of(store: &DbStore, key: &str) -> Option<Vec<u8>> {
        store.get(key).expect("reads").map(|e| e.value)
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

    /// Every key under `prefix`, a page of `page` at a time.
    fn all(store: &DbStore, prefix: &str, page: u32) -> Vec<(String, Vec<u8>)> {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let after = entries.last().map(|e| e.key.clone());
            let next = store.scan(prefix, after.as_deref(), page).expect("scans");
            if next.is_empty() {
                return entries.into_iter().map(|e| (e.key, e.value)).collect();
            }
            entries.extend(next);
        }
    }

    #[test]
    fn reads_merge_the_journal_with_the_file_and_deletions_hide_stored_keys() {
        let (dir, path) = temp_db();
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        // A small deterministic generator: the same run every time.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..6 {
            // Each round reopens the store: what the last one committed is then in the file
            // (moved at the close), and this round's commits are in the journal's overlay.
            let store = DbStore::open(&path).expect("opens");
            assert_eq!(
                all(&store, "", 7),
                model.clone().into_iter().collect::<Vec<_>>()
            );
            for step in 0..300 {
                let key = format!("{}/{:03}", ["a", "ab", "b"][next(3) as usize], next(60));
                if next(3) == 0 {
                    store
                        .commit(vec![Write {
                            key: key.clone(),
                            change: Change::Delete,
                            expect: None,
                        }])
                        .expect("commits");
                    model.remove(&key);
                } else {
                    let value = format!("{round}-{step}").into_bytes();
                    store
                        .commit(vec![put(&key, &value, None)])
                        .expect("commits");
                    model.insert(key, value);
                }
                if step % 50 == 0 {
                    for prefix in ["", "a", "a/", "ab/", "b/", "c/"] {
                        let expected: Vec<(String, Vec<u8>)> = model
                            .iter()
                            .filter(|(k, _)| k.starts_with(prefix))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        assert_eq!(
                            all(&store, prefix, 1 + next(9) as u32),
                            expected,
                            "{prefix}"
                        );
                    }
                    let probe = format!("a/{:03}", next(60));
                    assert_eq!(
                        store.get(&probe).expect("reads").map(|e| e.value),
                        model.get(&probe).cloned()
                    );
                }
            }
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_crash_leaves_the_journal_which_is_replayed_up_to_its_last_whole_record() {
        let (dir, path) = temp_db();
        drop(DbStore::open(&path).expect("creates"));
        let mut first = JOURNAL_MARK.to_vec();
        first.extend(record(3, "k", 7, Some(b"one")));
        first.extend(record(3, "gone", 8, Some(b"x")));
        first.extend(record(3, "gone", 0, None));
        std::fs::write(journal_path(&path, 3), &first).expect("writes");
        // The next journal ends with a record a crash cut off halfway.
        let mut second = JOURNAL_MARK.to_vec();
        second.extend(record(4, "k", 9, Some(b"two")));
        let torn = record(4, "torn", 10, Some(b"never answered"));
        second.extend(&torn[..torn.len() / 2]);
        std::fs::write(journal_path(&path, 4), &second).expect("writes");

        let store = DbStore::open(&path).expect("replays");
        let k = store.get("k").expect("reads").expect("replayed");
        assert_eq!((k.value.as_slice(), k.version), (&b"two"[..], 9));
        assert_eq!(store.get("gone").expect("reads"), None);
        assert_eq!(store.get("torn").expect("reads"), None);
        assert!(journals(&path).expect("lists").iter().all(|(g, _)| *g > 4));
        store.commit(vec![put("new", b"n", None)]).expect("commits");
        let newest = store.get("new").expect("reads").expect("present").version;
        assert!(newest > 9, "versions continue past the replayed ones");
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    /// A journal record of `generation` setting `key`.
    fn record(generation: u64, key: &str, version: u64, value: Option<&[u8]>) -> Vec<u8> {
        let layer = Layer::from([(key.to_owned(), (version, value.map(<[u8]>::to_vec)))]);
        encode(&layer, generation)
    }

    #[test]
    fn a_recycled_journal_replays_its_new_records_only_and_old_journals_still_replay() {
        let (dir, path) = temp_db();
        drop(DbStore::open(&path).expect("creates"));
        // Journal 5 was journal 2 before: two new records over three old ones.
        let mut recycled = JOURNAL_MARK.to_vec();
        recycled.extend(record(5, "new", 20, Some(b"a")));
        recycled.extend(record(5, "new", 21, Some(b"b")));
        let mut old = JOURNAL_MARK.to_vec();
        for n in 0..3 {
            old.extend(record(2, &format!("old/{n}"), 10 + n, Some(b"stale")));
        }
        let mut file = recycled.clone();
        file.extend(&old[recycled.len()..]);
        assert!(old.len() > recycled.len());
        std::fs::write(journal_path(&path, 5), &file).expect("writes");
        // A journal as an earlier version wrote it: no mark, checksums of the body alone.
        let layer = Layer::from([("legacy".to_owned(), (3, Some(b"kept".to_vec())))]);
        let mut legacy = encode(&layer, 0);
        let sum = fnv1a(&legacy[12..]).to_le_bytes();
        legacy[4..12].copy_from_slice(&sum);
        std::fs::write(journal_path(&path, 4), &legacy).expect("writes");
        std::fs::write(spare_path(&path), &old).expect("writes");

        let store = DbStore::open(&path).expect("replays");
        let new = store.get("new").expect("reads").expect("replayed");
        assert_eq!((new.value.as_slice(), new.version), (&b"b"[..], 21));
        let legacy = store.get("legacy").expect("reads").expect("replayed");
        assert_eq!(legacy.value, b"kept");
        assert_eq!(
            all(&store, "old/", 10),
            Vec::new(),
            "nothing of its old life"
        );
        assert!(
            !spare_path(&path).exists(),
            "a spare of an earlier run is gone"
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_full_overlay_moves_into_the_file_while_commits_go_on() {
        let (dir, path) = temp_db();
        let store = DbStore::open(&path).expect("opens");
        let keys = CHECKPOINT_ENTRIES + 100;
        // Every key once, 100 to a commit.
        let write_all = |value: &[u8], expect: Option<u64>| {
            for first in (0..keys).step_by(100) {
                let writes = (first..keys.min(first + 100))
                    .map(|n| put(&format!("k/{n:06}"), value, expect))
                    .collect();
                store.commit(writes).expect("commits");
            }
        };
        write_all(b"v", Some(0));
        // The checkpoint runs beside the flusher; wait for it to finish.
        let started = std::time::Instant::now();
        while journals(&path).expect("lists")[0].0 == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a checkpoint ends"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(store.shared.overlay().active.len() < keys);
        assert_eq!(all(&store, "k/", 1000).len(), keys);
        let generations: Vec<u64> = journals(&path)
            .expect("lists")
            .iter()
            .map(|j| j.0)
            .collect();
        assert_eq!(
            generations,
            [1, 2],
            "the moved journal is made ready as the next"
        );
        // It becomes the next journal; what is committed in it survives reopening.
        for round in 0..2 {
            write_all(&[round], None);
        }
        drop(store);
        let store = DbStore::open(&path).expect("reopens");
        let values = all(&store, "k/", 1000);
        assert_eq!(values.len(), keys);
        assert!(values.iter().all(|(_, value)| value == &[1]));
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
