//! The PostgreSQL store: several hosts on one database (`serve --db postgres://…`).
//!
//! Every key is a row of `vk_entries (key bytea primary key, version bigint, value bytea)`;
//! versions come from the sequence `vk_versions`, so no two commits ever get the same one
//! (a sequence never hands a number out twice, even to a transaction that rolls back). Keys
//! are bytes so that they sort bytewise whatever the database's collation, as the plugin's
//! index keys need. Both are created on first start.
//!
//! A commit is one transaction (`READ COMMITTED`) that first takes a transaction-scoped
//! advisory lock on every key it names, in one order shared by every host (exclusive for a
//! key it writes or deletes, shared for a key it only checks), so two commits on a common
//! key run one after the other and never deadlock, while commits on different keys (other
//! dialogs) run side by side. Under the locks it reads the versions its expectations name
//! and gives up with `Conflict` if one differs; otherwise it writes its puts (one statement)
//! and deletes (one statement) and commits. The plugin's stamps (`vk_core::keys::STAMPS`,
//! written by every commit without being read) are written right after the commit, outside
//! the locks: in it they would make every commit wait for the one before.
//!
//! Reads run outside transactions and see committed state only. Anything that fails (the
//! database down, a connection lost) is `Unavailable`, which callers see as `503`; a broken
//! connection is dropped, and the next call connects again. Group commit is PostgreSQL's
//! own: concurrent commits share WAL flushes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};
use vk_core::ports::{Change, Entry, Store, StoreError, Write};

/// How long a call waits for a free connection of the pool, and for a new one to connect.
const WAIT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS vk_entries (
        key BYTEA PRIMARY KEY,
        version BIGINT NOT NULL,
        value BYTEA NOT NULL
    );
    CREATE SEQUENCE IF NOT EXISTS vk_versions;
";

/// A connection with its prepared statements.
struct Connection {
    client: Client,
    get: Statement,
    scan: Statement,
    versions: Statement,
    lock: Statement,
    put: Statement,
    delete: Statement,
}

impl Connection {
    fn open(config: &postgres::Config) -> Result<Connection, postgres::Error> {
        let mut client = config.connect(NoTls)?;
        let get = client.prepare("SELECT version, value FROM vk_entries WHERE key = $1")?;
        let scan = client.prepare(
            "SELECT key, version, value FROM vk_entries \
             WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) AND ($3::bytea IS NULL OR key > $3) \
             ORDER BY key LIMIT $4",
        )?;
        let versions =
            client.prepare("SELECT key, version FROM vk_entries WHERE key = ANY($1::bytea[])")?;
        // The subquery fixes the order the locks are taken in.
        let lock = client.prepare(
            "SELECT count(CASE WHEN exclusive THEN pg_advisory_xact_lock(id) \
                               ELSE pg_advisory_xact_lock_shared(id) END) \
             FROM (SELECT id, exclusive FROM UNNEST($1::bigint[], $2::bool[]) AS t (id, exclusive) \
                   ORDER BY id) AS ordered",
        )?;
        let put = client.prepare(
            "INSERT INTO vk_entries (key, version, value) \
             SELECT k, nextval('vk_versions'), v FROM UNNEST($1::bytea[], $2::bytea[]) AS t (k, v) \
             ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value",
        )?;
        let delete = client.prepare("DELETE FROM vk_entries WHERE key = ANY($1::bytea[])")?;
        Ok(Connection {
            client,
            get,
            scan,
            versions,
            lock,
            put,
            delete,
        })
    }
}

/// The pool: idle connections and how many are open.
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// A PostgreSQL database shared by any number of hosts.
pub struct PgStore {
    config: postgres::Config,
    /// The keys written after the commit they come with (see the module's text).
    stamps: Vec<String>,
    pool: Mutex<Pool>,
    freed: Condvar,
    size: usize,
}

impl PgStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/dbname`), creates the table
    /// and the sequence if missing, and keeps at most `size` connections open. `stamps` are
    /// keys (as this store sees them) that commits write blindly and only the last value of
    /// counts: they are written just after the commit that carries them.
    pub fn open(url: &str, size: usize, stamps: Vec<String>) -> anyhow::Result<PgStore> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("--db is not a PostgreSQL URL: {e}"))?;
        config.connect_timeout(WAIT).application_name("vk-host");
        let mut first = config
            .connect(NoTls)
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        first
            .batch_execute(SCHEMA)
            .map_err(|e| anyhow::anyhow!("cannot create the table in PostgreSQL: {e}"))?;
        drop(first);
        Ok(PgStore {
            config,
            stamps,
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            size: size.max(1),
        })
    }

    /// Runs `work` on a pooled connection. A connection whose work failed other than by a
    /// refusal of the database (the connection is lost) is closed rather than given back.
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self.take()?;
        let outcome = work(&mut connection);
        let healthy = match &outcome {
            Ok(_) => true,
            Err(error) => error.code().is_some() && !connection.client.is_closed(),
        };
        self.give_back(healthy.then_some(connection));
        outcome.map_err(refusal)
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut pool, _) = self
            .freed
            .wait_timeout_while(pool, WAIT, |pool| {
                pool.idle.is_empty() && pool.open >= self.size
            })
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(connection) = pool.idle.pop() {
            return Ok(connection);
        }
        if pool.open >= self.size {
            return Err(StoreError::Unavailable(format!(
                "all {} database connections stayed busy for {} s",
                self.size,
                WAIT.as_secs()
            )));
        }
        pool.open += 1;
        drop(pool);
        Connection::open(&self.config).map_err(|error| {
            self.give_back(None);
            unreachable_database(&error)
        })
    }

    /// Returns a connection to the pool, or (`None`) frees its place.
    fn give_back(&self, connection: Option<Connection>) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        match connection {
            Some(connection) => pool.idle.push(connection),
            None => pool.open -= 1,
        }
        drop(pool);
        self.freed.notify_one();
    }
}

/// Why the database refused or failed: a deadlock or serialization failure (which the
/// ordered locks should never let happen) is `Conflict`, everything else `Unavailable`.
fn refusal(error: postgres::Error) -> StoreError {
    match error.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::UNIQUE_VIOLATION =>
        {
            StoreError::Conflict
        }
        Some(_) => StoreError::Unavailable(format!("PostgreSQL refused: {error}")),
        None => unreachable_database(&error),
    }
}

fn unreachable_database(error: &postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL is unreachable: {error}"))
}

/// The least key above every key that starts with `prefix` (`None`: there is none).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A stored version (the sequence starts at 1 and only grows).
fn version(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or_default()
}

impl Store for PgStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.with(|c| {
            let row = c.client.query_opt(&c.get, &[&key.as_bytes()])?;
            Ok(row.map(|row| Entry {
                key: key.to_owned(),
                version: version(row.get(0)),
                value: row.get(1),
            }))
        })
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let end = successor(prefix.as_bytes());
        let after = after.map(str::as_bytes);
        let limit = i64::from(limit);
        let rows = self.with(|c| {
            c.client
                .query(&c.scan, &[&prefix.as_bytes(), &end, &after, &limit])
        })?;
        rows.into_iter()
            .map(|row| {
                let key: Vec<u8> = row.get(0);
                Ok(Entry {
                    key: String::from_utf8(key).map_err(|_| {
                        StoreError::Unavailable("a stored key is not UTF-8".to_owned())
                    })?,
                    version: version(row.get(1)),
                    value: row.get(2),
                })
            })
            .collect()
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (stamps, writes): (Vec<Write>, Vec<Write>) = writes.into_iter().partition(|w| {
            w.expect.is_none() && matches!(w.change, Change::Put(_)) && self.stamps.contains(&w.key)
        });
        let mut locks: BTreeMap<i64, bool> = BTreeMap::new();
        let mut expected: Vec<(&[u8], u64)> = Vec::new();
        let mut puts: (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
        let mut deletes: Vec<&[u8]> = Vec::new();
        for write in &writes {
            let key = write.key.as_bytes();
            let exclusive = !matches!(write.change, Change::Check);
            *locks.entry(lock_id(key)).or_default() |= exclusive;
            if let Some(version) = write.expect {
                expected.push((key, version));
            }
            match &write.change {
                Change::Put(value) => {
                    puts.0.push(key);
                    puts.1.push(value);
                }
                Change::Delete => deletes.push(key),
                Change::Check => {}
            }
        }
        let (ids, modes): (Vec<i64>, Vec<bool>) = locks.into_iter().unzip();
        let mut stale = false;
        if !writes.is_empty() {
            self.with(|c| {
                let mut tx = c.client.transaction()?;
                tx.query_one(&c.lock, &[&ids, &modes])?;
                if !expected.is_empty() {
                    let keys: Vec<&[u8]> = expected.iter().map(|(key, _)| *key).collect();
                    let rows = tx.query(&c.versions, &[&keys])?;
                    let current = |key: &[u8]| {
                        rows.iter()
                            .find(|row| row.get::<_, &[u8]>(0) == key)
                            .map_or(0, |row| version(row.get(1)))
                    };
                    if expected
                        .iter()
                        .any(|(key, version)| current(key) != *version)
                    {
                        stale = true;
                        return tx.rollback();
                    }
                }
                if !puts.0.is_empty() {
                    tx.execute(&c.put, &[&puts.0, &puts.1])?;
                }
                if !deletes.is_empty() {
                    tx.execute(&c.delete, &[&deletes])?;
                }
                tx.commit()
            })?;
        }
        if stale {
            return Err(StoreError::Conflict);
        }
        if !stamps.is_empty() {
            let keys: Vec<&[u8]> = stamps.iter().map(|w| w.key.as_bytes()).collect();
            let values: Vec<&[u8]> = stamps
                .iter()
                .filter_map(|w| match &w.change {
                    Change::Put(value) => Some(value.as_slice()),
                    _ => None,
                })
                .collect();
            // The commit stands whatever happens here: a stamp that could not be written is
            // written by the next commit, and the caller must not hear of a failure and
            // repeat what is done.
            if let Err(error) = self.with(|c| c.client.execute(&c.put, &[&keys, &values])) {
                eprintln!("vk-host: a stamp was not written after a commit: {error:?}");
            }
        }
        Ok(())
    }
}

/// The advisory lock of a key: a 64-bit FNV-1a hash of it (two keys sharing one only wait
/// for each other).
fn lock_id(key: &[u8]) -> i64 {
    i64::from_ne_bytes(crate::storage::fnv1a(key).to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_before_its_successor() {
        assert_eq!(successor(b"index/open/"), Some(b"index/open0".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }
}
