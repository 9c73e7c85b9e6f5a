//! A `Store` over an SQLite connection, through the least a shell must give: one statement
//! with its parameters in, its rows out ([`Sql`]). The Spin component runs it over Spin
//! SQLite; the host's storage contract tests run the same code over the host's side of Spin
//! SQLite, so what they check is what the component runs.
//!
//! Layout: `kv(key, version, value)`, and `kv_clock`, one row holding the last version
//! handed out, so a version is never reused, not even after a delete (vk-core relies on it).
//! A commit is one write transaction on this store's own connection: `BEGIN IMMEDIATE`
//! takes the database's write lock before the expectations are checked, so nothing can
//! change them before `COMMIT`. Concurrent commits queue on that lock (the host's busy
//! timeout), and a failed expectation rolls back and reports `Conflict`, on which vk-core
//! decides again. Every write of one commit gets the same new version.

use std::collections::HashMap;

use crate::ports::{Change, Entry, Store, StoreError, Write};

/// One SQLite value, as a statement's parameter or in a row of its result.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// One connection to an SQLite database. A transaction begun on it spans its following
/// statements, and no other connection's statement lands in it.
pub trait Sql {
    /// Runs `statement` with its `?` parameters; the rows it returns (none for most writes).
    /// An error is said in words that name no value.
    fn execute(
        &self,
        statement: &str,
        parameters: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, String>;
}

/// Created on first use; `IF NOT EXISTS` on an existing table only reads the schema.
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS kv_clock (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
];

/// vk-core's `Store` over one connection.
pub struct SqliteStore<C> {
    db: C,
}

impl<C: Sql> SqliteStore<C> {
    /// Creates the tables if they are missing.
    pub fn open(db: C) -> Result<SqliteStore<C>, StoreError> {
        let store = SqliteStore { db };
        for statement in SCHEMA {
            store.query(statement, Vec::new())?;
        }
        Ok(store)
    }

    fn query(
        &self,
        statement: &str,
        parameters: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.db
            .execute(statement, parameters)
            .map_err(StoreError::Unavailable)
    }

    /// Checks every expectation, then writes; runs inside the commit's transaction.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let expected: Vec<&Write> = writes.iter().filter(|w| w.expect.is_some()).collect();
        if !expected.is_empty() {
            let keys: Vec<SqlValue> = expected.iter().map(|w| text(&w.key)).collect();
            let found = self.query(
                &format!(
                    "SELECT key, version FROM kv WHERE key IN ({})",
                    marks(keys.len())
                ),
                keys,
            )?;
            let mut current: HashMap<String, u64> = HashMap::new();
            for row in found {
                match <[SqlValue; 2]>::try_from(row) {
                    Ok([SqlValue::Text(key), SqlValue::Integer(version)]) => {
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
                Vec::new(),
            )?;
            let version = match clock.first().map(Vec::as_slice) {
                Some([SqlValue::Integer(version)]) => *version,
                _ => return Err(malformed()),
            };
            let rows = vec!["(?, ?, ?)"; puts.len()].join(", ");
            let mut parameters = Vec::with_capacity(puts.len() * 3);
            for (key, value) in puts {
                parameters.extend([
                    SqlValue::Text(key),
                    SqlValue::Integer(version),
                    SqlValue::Blob(value),
                ]);
            }
            self.query(
                &format!(
                    "INSERT INTO kv (key, version, value) VALUES {rows} \
                     ON CONFLICT (key) DO UPDATE SET version = excluded.version, value = excluded.value"
                ),
                parameters,
            )?;
        }
        if !deletes.is_empty() {
            self.query(
                &format!("DELETE FROM kv WHERE key IN ({})", marks(deletes.len())),
                deletes,
            )?;
        }
        Ok(())
    }
}

impl<C: Sql> Store for SqliteStore<C> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        let found = self.query(
            "SELECT key, version, value FROM kv WHERE key = ?",
            vec![text(key)],
        )?;
        found.into_iter().next().map(entry).transpose()
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
            parameters.push(SqlValue::Text(end));
        }
        if let Some(after) = after {
            statement.push_str(" AND key > ?");
            parameters.push(text(after));
        }
        statement.push_str(" ORDER BY key LIMIT ?");
        parameters.push(SqlValue::Integer(i64::from(limit)));
        let found = self.query(&statement, parameters)?;
        found.into_iter().map(entry).collect()
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.query("BEGIN IMMEDIATE", Vec::new())?;
        let applied = self
            .apply(writes)
            .and_then(|()| self.query("COMMIT", Vec::new()));
        if applied.is_err() {
            // Also after a failed COMMIT (a busy database leaves the transaction open):
            // the lock must not outlive this call.
            let _ = self.query("ROLLBACK", Vec::new());
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

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

/// A `(key, version, value)` row.
fn entry(row: Vec<SqlValue>) -> Result<Entry, StoreError> {
    match <[SqlValue; 3]>::try_from(row) {
        Ok(
            [
                SqlValue::Text(key),
                SqlValue::Integer(version),
                SqlValue::Blob(value),
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
