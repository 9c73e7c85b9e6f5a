//! vk-core's `Store` over Spin SQLite.
//!
//! Layout: `kv(key, version, value)`, and `kv_clock`, one row holding the last version
//! handed out, so a version is never reused, not even after a delete (vk-core relies on it).
//! A commit is one write transaction on this instance's own connection: `BEGIN IMMEDIATE`
//! takes the database's write lock before the expectations are checked, so nothing can
//! change them before `COMMIT`. Concurrent commits queue on that lock (the host's busy
//! timeout), and a failed expectation rolls back and reports `Conflict`, on which vk-core
//! decides again. Every write of one commit gets the same new version.

use std::collections::HashMap;

use spin_sdk::sqlite3::{Connection, Error as SqlError, QueryResult, RowResult, Value};
use vk_core::ports::{Change, Entry, Store, StoreError, Write};

/// Created on first use; `IF NOT EXISTS` on an existing table only reads the schema.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS kv_clock (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
];

/// The `default` database, through this instance's connection.
pub struct SqliteStore {
    db: Connection,
}

impl SqliteStore {
    /// Opens the `default` database (the manifest must list it in `sqlite_databases`).
    pub fn open_default() -> Result<SqliteStore, StoreError> {
        let db = Connection::open_default().map_err(unavailable)?;
        let store = SqliteStore { db };
        for statement in SCHEMA {
            store.query(statement, &[])?;
        }
        Ok(store)
    }

    fn query(&self, statement: &str, parameters: &[Value]) -> Result<QueryResult, StoreError> {
        self.db.execute(statement, parameters).map_err(unavailable)
    }

    /// Checks every expectation, then writes; runs inside the commit's transaction.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let expected: Vec<&Write> = writes.iter().filter(|w| w.expect.is_some()).collect();
        if !expected.is_empty() {
            let keys: Vec<Value> = expected.iter().map(|w| text(&w.key)).collect();
            let found = self.query(
                &format!(
                    "SELECT key, version FROM kv WHERE key IN ({})",
                    marks(keys.len())
                ),
                &keys,
            )?;
            let mut current: HashMap<String, u64> = HashMap::new();
            for row in found.rows {
                match <[Value; 2]>::try_from(row.values) {
                    Ok([Value::Text(key), Value::Integer(version)]) => {
                        current.insert(key, version_of(version)?);
                    }
                    _ => return Err(malformed()),
                }
            }
            if expected
                .iter()
                .any(|w| w.expect != Some(current.get(&w.key).copied().unwrap_or(0)))
            {
                return Err(StoreError::Conflict);
            }
        }
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for write in writes {
            match write.change {
                Change::Put(value) => puts.push((write.key, value)),
                Change::Delete => deletes.push(text(&write.key)),
                Change::Check => {}
            }
        }
        if !puts.is_empty() {
            let clock = self.query(
                "INSERT INTO kv_clock (id, version) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET version = version + 1 RETURNING version",
                &[],
            )?;
            let version = match clock.rows.first().map(|row| row.values.as_slice()) {
                Some([Value::Integer(version)]) => *version,
                _ => return Err(malformed()),
            };
            let rows = vec!["(?, ?, ?)"; puts.len()].join(", ");
            let mut parameters = Vec::with_capacity(puts.len() * 3);
            for (key, value) in puts {
                parameters.extend([
                    Value::Text(key),
                    Value::Integer(version),
                    Value::Blob(value),
                ]);
            }
            self.query(
                &format!(
                    "INSERT INTO kv (key, version, value) VALUES {rows} \
                     ON CONFLICT (key) DO UPDATE SET version = excluded.version, value = excluded.value"
                ),
                &parameters,
            )?;
        }
        if !deletes.is_empty() {
            self.query(
                &format!("DELETE FROM kv WHERE key IN ({})", marks(deletes.len())),
                &deletes,
            )?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let found = self.query(
            "SELECT key, version, value FROM kv WHERE key = ?",
            &[text(key)],
        )?;
        found.rows.into_iter().next().map(entry).transpose()
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        // A key range rather than `LIKE`/`GLOB`, so the primary key's index serves it and no
        // character of the prefix is a pattern.
        let mut statement = "SELECT key, version, value FROM kv WHERE key >= ?".to_owned();
        let mut parameters = vec![text(prefix)];
        if let Some(end) = successor(prefix) {
            statement.push_str(" AND key < ?");
            parameters.push(Value::Text(end));
        }
        if let Some(after) = after {
            statement.push_str(" AND key > ?");
            parameters.push(text(after));
        }
        statement.push_str(" ORDER BY key LIMIT ?");
        parameters.push(Value::Integer(i64::from(limit)));
        let found = self.query(&statement, &parameters)?;
        found.rows.into_iter().map(entry).collect()
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.query("BEGIN IMMEDIATE", &[])?;
        let applied = self.apply(writes).and_then(|()| self.query("COMMIT", &[]));
        if applied.is_err() {
            // Also after a failed COMMIT (a busy database leaves the transaction open):
            // the lock must not outlive this call.
            let _ = self.query("ROLLBACK", &[]);
        }
        applied.map(drop)
    }
}

/// The smallest string greater than every string that starts with `prefix`, if any: the
/// prefix with its last incrementable character incremented and the rest cut off. UTF-8
/// keeps code-point order, so this is also the bound in SQLite's byte order.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// A `(key, version, value)` row.
fn entry(row: RowResult) -> Result<Entry, StoreError> {
    match <[Value; 3]>::try_from(row.values) {
        Ok(
            [
                Value::Text(key),
                Value::Integer(version),
                Value::Blob(value),
            ],
        ) => Ok(Entry {
            key,
            version: version_of(version)?,
            value,
        }),
        _ => Err(malformed()),
    }
}

fn version_of(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| malformed())
}

fn malformed() -> StoreError {
    StoreError::Unavailable("the database holds a row of an unexpected shape".to_owned())
}

fn unavailable(error: SqlError) -> StoreError {
    StoreError::Unavailable(match error {
        SqlError::NoSuchDatabase => {
            "no `default` SQLite database is configured for this component".to_owned()
        }
        SqlError::AccessDenied => {
            "the component may not use the `default` SQLite database (sqlite_databases)".to_owned()
        }
        SqlError::InvalidConnection => "the SQLite connection is not valid".to_owned(),
        SqlError::DatabaseFull => "the SQLite database is full".to_owned(),
        SqlError::Io(why) => why,
    })
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn a_prefix_range_ends_right_after_the_prefix() {
        assert_eq!(successor("message/abc/").as_deref(), Some("message/abc0"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor(""), None);
    }
}
