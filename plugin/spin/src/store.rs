//! vk-core's `Store` over Spin SQLite: vk-core's SQL store ([`vk_core::sql`]) on this
//! instance's own connection to the `default` database. The layout, the commit and the
//! version clock are all there; this file only carries statements and values across.

use spin_sdk::sqlite3::{Connection, Error as SqlError, Value};
use vk_core::ports::StoreError;
use vk_core::sql::{Sql, SqlValue, SqliteStore};

/// Opens the `default` database (the manifest must list it in `sqlite_databases`).
pub fn open_default() -> Result<SqliteStore<SpinSql>, StoreError> {
    let db = Connection::open_default().map_err(|error| StoreError::Unavailable(why(error)))?;
    SqliteStore::open(SpinSql(db))
}

/// One Spin SQLite connection.
pub struct SpinSql(Connection);

impl Sql for SpinSql {
    fn execute(
        &self,
        statement: &str,
        parameters: Vec<SqlValue>,
    ) -> Result<Vec<Vec<SqlValue>>, String> {
        let parameters: Vec<Value> = parameters
            .into_iter()
            .map(|value| match value {
                SqlValue::Integer(i) => Value::Integer(i),
                SqlValue::Real(r) => Value::Real(r),
                SqlValue::Text(t) => Value::Text(t),
                SqlValue::Blob(b) => Value::Blob(b),
                SqlValue::Null => Value::Null,
            })
            .collect();
        let found = self.0.execute(statement, &parameters).map_err(why)?;
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

fn why(error: SqlError) -> String {
    match error {
        SqlError::NoSuchDatabase => {
            "no `default` SQLite database is configured for this component".to_owned()
        }
        SqlError::AccessDenied => {
            "the component may not use the `default` SQLite database (sqlite_databases)".to_owned()
        }
        SqlError::InvalidConnection => "the SQLite connection is not valid".to_owned(),
        SqlError::DatabaseFull => "the SQLite database is full".to_owned(),
        SqlError::Io(why) => why,
    }
}
