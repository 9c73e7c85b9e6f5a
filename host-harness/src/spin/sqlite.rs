//! `spin:sqlite/sqlite@3.0.0` over rusqlite. The `default` database is a file (`--sqlite`,
//! in WAL mode so readers never wait for a writer) or an in-memory database shared by every
//! instance of the process (`--memory`).
//!
//! Every `open` gets a connection of its own, as Spin's hosts give one: a transaction an
//! instance begins spans its following statements, and no other instance's statement lands
//! in it. Connections are pooled: one goes back to the pool when the guest drops it or its
//! instance ends, rolled back first if it was left inside a transaction (a trap or timeout
//! in the middle of a commit). Writers of this process queue for one [`WriteGate`] for up to
//! [`BUSY_TIMEOUT`], and on SQLite's lock only against other processes; that wait blocks the
//! request's own thread only (see `SpinApp::respond`).
//!
//! [`Databases`] and [`Connection`] are public so that native code reaches the database
//! exactly as a guest does: `tests/storage_contract.rs` runs the Spin component's store
//! (`vk_core::sql`) over them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::Resource;

use super::State;
use super::bindings::spin::sqlite::sqlite as wit;
pub use super::bindings::spin::sqlite::sqlite::{Error, QueryResult, RowResult, Value};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections one instance may hold at once.
const MAX_OPEN_PER_INSTANCE: usize = 8;
/// The only database this host provides, as under `spin up` without a runtime config.
const DEFAULT: &str = "default";

/// Where the `default` database lives.
#[derive(Debug, Clone)]
pub enum Database {
    File(PathBuf),
    /// Lost when the process ends.
    Memory,
}

/// Lets one connection of this process at a time be inside a transaction begun with
/// `BEGIN`. Writers wait here and the next one is woken the moment the last one ends, instead
/// of waiting on SQLite's lock, whose busy handler sleeps longer and longer (up to 100 ms at a
/// time): under load that made the Spin app's p99 hundreds of milliseconds at saturation.
#[derive(Default)]
struct WriteGate {
    taken: Mutex<bool>,
    freed: Condvar,
}

impl WriteGate {
    /// Takes the gate, waiting up to `limit`; false if it stayed taken that long.
    fn enter(&self, limit: Duration) -> bool {
        let taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut taken, _) = self
            .freed
            .wait_timeout_while(taken, limit, |taken| *taken)
            .unwrap_or_else(PoisonError::into_inner);
        if *taken {
            return false;
        }
        *taken = true;
        true
    }

    fn leave(&self) {
        *self.taken.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.freed.notify_one();
    }
}

/// The `default` database and its idle connections, shared by every instance (and by the
/// native callers of [`Connection::open`]).
pub struct Databases {
    /// A path, or the URI of a named in-memory database.
    location: String,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Keeps an in-memory database alive while no instance holds a connection.
    _keeper: Option<Mutex<rusqlite::Connection>>,
    /// The largest query result handed to a guest (it could not hold more anyway).
    max_result_bytes: usize,
    gate: WriteGate,
}

impl Databases {
    /// Opens the database as `serve-spin` does; results over `max_result_bytes` are refused.
    pub fn open(database: &Database, max_result_bytes: usize) -> anyhow::Result<Databases> {
        static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);
        let location = match database {
            Database::File(path) => {
                crate::storage::private_file(path)?;
                path.to_str()
                    .with_context(|| format!("{} is not a UTF-8 path", path.display()))?
                    .to_owned()
            }
            // `memdb` with a name starting with `/` is one database for every connection of
            // the process, with the same locking as a file.
            Database::Memory => format!(
                "file:/vk-host-spin-{}-{}?vfs=memdb",
                std::process::id(),
                MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let databases = Databases {
            location,
            idle: Mutex::new(Vec::new()),
            _keeper: None,
            max_result_bytes,
            gate: WriteGate::default(),
        };
        let first = databases
            .connect()
            .with_context(|| format!("cannot open the SQLite database {}", databases.location))?;
        Ok(match database {
            Database::File(_) => {
                first
                    .pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                    .context("cannot switch the SQLite database to WAL mode")?;
                databases.give_back(first);
                databases
            }
            Database::Memory => Databases {
                _keeper: Some(Mutex::new(first)),
                ..databases
            },
        })
    }

    fn connect(&self) -> rusqlite::Result<rusqlite::Connection> {
        let connection = rusqlite::Connection::open(&self.location)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        Ok(connection)
    }

    fn take(&self) -> rusqlite::Result<rusqlite::Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.map_or_else(|| self.connect(), Ok)
    }

    fn give_back(&self, connection: rusqlite::Connection) {
        if !connection.is_autocommit() && connection.execute_batch("ROLLBACK").is_err() {
            return; // Dropped: a connection whose transaction cannot end must not be reused.
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(connection);
    }
}

/// What one instance may open, and what it holds.
pub(super) struct Access {
    databases: Arc<Databases>,
    /// The component's `sqlite_databases`.
    allowed: Arc<[String]>,
    open: usize,
}

impl Access {
    pub(super) fn new(databases: Arc<Databases>, allowed: Arc<[String]>) -> Access {
        Access {
            databases,
            allowed,
            open: 0,
        }
    }
}

/// A connection the guest opened; it returns to the pool when dropped.
pub struct Connection {
    db: Option<rusqlite::Connection>,
    databases: Arc<Databases>,
    /// Inside a transaction it began, holding the [`WriteGate`].
    in_transaction: bool,
}

impl Connection {
    /// A connection from the pool, as a guest's `open` gets one; also for native callers
    /// (the storage contract tests run the Spin component's store logic over it).
    pub fn open(databases: &Arc<Databases>) -> Result<Connection, Error> {
        Ok(Connection {
            db: Some(databases.take().map_err(failure)?),
            databases: databases.clone(),
            in_transaction: false,
        })
    }

    fn db(&self) -> &rusqlite::Connection {
        self.db.as_ref().expect("present until dropped")
    }

    /// Runs one statement; one that begins a transaction first waits for the write gate,
    /// which is given back when the connection is out of its transaction again.
    pub fn execute(
        &mut self,
        statement: &str,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let begins = statement
            .trim_start()
            .get(..5)
            .is_some_and(|word| word.eq_ignore_ascii_case("begin"));
        if begins && !self.in_transaction {
            if !self.databases.gate.enter(BUSY_TIMEOUT) {
                return Err(Error::Io(format!(
                    "database is locked: another transaction held it for {} s",
                    BUSY_TIMEOUT.as_secs()
                )));
            }
            self.in_transaction = true;
        }
        let result = self.run(statement, parameters);
        if self.in_transaction && self.db().is_autocommit() {
            self.in_transaction = false;
            self.databases.gate.leave();
        }
        result
    }

    fn run(&self, statement: &str, parameters: Vec<Value>) -> Result<QueryResult, Error> {
        let mut prepared = self.db().prepare_cached(statement).map_err(failure)?;
        let columns: Vec<String> = prepared.column_names().map(str::to_owned).collect();
        let parameters = parameters.into_iter().map(|value| match value {
            Value::Integer(i) => SqlValue::Integer(i),
            Value::Real(r) => SqlValue::Real(r),
            Value::Text(t) => SqlValue::Text(t),
            Value::Blob(b) => SqlValue::Blob(b),
            Value::Null => SqlValue::Null,
        });
        let mut rows = prepared
            .query(rusqlite::params_from_iter(parameters))
            .map_err(failure)?;
        let mut result = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next().map_err(failure)? {
            let mut values = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                let value = match row.get_ref(index).map_err(failure)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(r) => Value::Real(r),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                };
                bytes += match &value {
                    Value::Text(t) => t.len(),
                    Value::Blob(b) => b.len(),
                    _ => 8,
                };
                values.push(value);
            }
            if bytes > self.databases.max_result_bytes {
                return Err(Error::Io(format!(
                    "the query result is larger than {} bytes",
                    self.databases.max_result_bytes
                )));
            }
            result.push(RowResult { values });
        }
        Ok(QueryResult {
            columns,
            rows: result,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            self.databases.give_back(db);
        }
        if self.in_transaction {
            self.databases.gate.leave();
        }
    }
}

fn failure(error: rusqlite::Error) -> Error {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Error::DatabaseFull,
        _ => Error::Io(error.to_string()),
    }
}

impl wit::Host for State {}

impl wit::HostConnection for State {
    fn open(&mut self, database: String) -> Result<Resource<Connection>, Error> {
        let access = &mut self.sqlite;
        if !access.allowed.contains(&database) {
            return Err(Error::AccessDenied);
        }
        if database != DEFAULT {
            return Err(Error::NoSuchDatabase);
        }
        if access.open >= MAX_OPEN_PER_INSTANCE {
            return Err(Error::Io(format!(
                "an instance may hold at most {MAX_OPEN_PER_INSTANCE} connections"
            )));
        }
        let connection = Connection::open(&access.databases)?;
        let handle = self
            .table
            .push(connection)
            .map_err(|e| Error::Io(e.to_string()))?;
        self.sqlite.open += 1;
        Ok(handle)
    }

    fn execute(
        &mut self,
        connection: Resource<Connection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        self.table
            .get_mut(&connection)
            .map_err(|_| Error::InvalidConnection)?
            .execute(&statement, parameters)
    }

    fn last_insert_rowid(&mut self, connection: Resource<Connection>) -> i64 {
        self.table
            .get(&connection)
            .map_or(0, |c| c.db().last_insert_rowid())
    }

    fn changes(&mut self, connection: Resource<Connection>) -> u64 {
        self.table.get(&connection).map_or(0, |c| c.db().changes())
    }

    fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.sqlite.open -= 1;
        Ok(())
    }
}
