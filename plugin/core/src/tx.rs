//! Optimistic transactions over the `Store` port: read with versions, decide, commit with the
//! versions read as expectations, and on a conflict run the whole decision again.
//!
//! A commit that writes anything an operator sees also writes a fresh [`keys::CHANGES`]
//! stamp, unconditionally: no transaction reads it, so it never makes commits conflict.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::{Serialize, de::DeserializeOwned};

use crate::error::Error;
use crate::keys;
use crate::ports::{Change, Entry, Store, StoreError, Write};

/// How often a decision is re-run after a conflict before giving up with `Contention`.
/// Generous: twenty simultaneous first messages of one person all touch the same keys.
const MAX_ATTEMPTS: usize = 200;

/// A set of reads and buffered writes.
pub(crate) struct Tx<'a> {
    store: &'a dyn Store,
    /// Version seen for every key read (0: absent).
    read: BTreeMap<String, u64>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
}

impl<'a> Tx<'a> {
    fn new(store: &'a dyn Store) -> Self {
        Tx {
            store,
            read: BTreeMap::new(),
            writes: BTreeMap::new(),
        }
    }

    /// Reads and decodes a record, remembering its version.
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error> {
        if let Some(pending) = self.writes.get(key) {
            return pending.as_deref().map(decode).transpose();
        }
        let entry = self.store.get(key).map_err(storage)?;
        self.read
            .insert(key.to_owned(), entry.as_ref().map_or(0, |e| e.version));
        entry.map(|e| decode(&e.value)).transpose()
    }

    pub fn put<T: Serialize>(&mut self, key: impl Into<String>, value: &T) {
        let bytes = serde_json::to_vec(value).expect("domain records always serialize");
        self.writes.insert(key.into(), Some(bytes));
    }

    pub fn delete(&mut self, key: impl Into<String>) {
        self.writes.insert(key.into(), None);
    }

    /// Writes `value` unless the key holds it already, so that listing what is listed
    /// already writes nothing.
    pub fn put_missing<T>(&mut self, key: String, value: &T) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + PartialEq,
    {
        if self.get::<T>(&key)?.as_ref() != Some(value) {
            self.put(key, value);
        }
        Ok(())
    }

    /// Commits; every key read must still be at the version read, written or not, so a
    /// decision never rests on a stale read.
    fn commit(self) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let seen = self.writes.keys().any(|key| !keys::is_bookkeeping(key));
        let checks: Vec<Write> = self
            .read
            .iter()
            .filter(|(key, _)| !self.writes.contains_key(*key))
            .map(|(key, version)| Write {
                key: key.clone(),
                change: Change::Check,
                expect: Some(*version),
            })
            .collect();
        let mut writes: Vec<Write> = self
            .writes
            .into_iter()
            .map(|(key, value)| Write {
                expect: self.read.get(&key).copied(),
                change: value.map_or(Change::Delete, Change::Put),
                key,
            })
            .collect();
        writes.extend(checks);
        if seen {
            let stamp = uuid::Uuid::new_v4().simple().to_string();
            writes.push(Write {
                key: keys::CHANGES.to_owned(),
                change: Change::Put(serde_json::to_vec(&stamp).expect("a string serializes")),
                expect: None,
            });
        }
        self.store.commit(writes)
    }
}

/// Runs `decide` in a transaction until its commit goes through.
pub(crate) fn transact<T>(
    store: &dyn Store,
    mut decide: impl FnMut(&mut Tx<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    for _ in 0..MAX_ATTEMPTS {
        let mut tx = Tx::new(store);
        let outcome = decide(&mut tx)?;
        match tx.commit() {
            Ok(()) => return Ok(outcome),
            Err(StoreError::Conflict) => continue,
            Err(StoreError::Unavailable(why)) => return Err(Error::Storage(why)),
        }
    }
    Err(Error::Contention)
}

/// Reads one record outside a transaction.
pub(crate) fn read<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>, Error> {
    store
        .get(key)
        .map_err(storage)?
        .map(|e: Entry| decode(&e.value))
        .transpose()
}

/// Lists records under a prefix, keyed by their full key.
pub(crate) fn scan<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, T)>, Error> {
    scan_entries(store, prefix, after, limit)?
        .into_iter()
        .map(|e| Ok((e.key, decode(&e.value)?)))
        .collect()
}

/// How many keys there are under a prefix, counting at most `cap` of them.
pub(crate) fn count(store: &dyn Store, prefix: &str, cap: u32) -> Result<u32, Error> {
    let found = scan_entries(store, prefix, None, cap)?.len();
    Ok(u32::try_from(found).unwrap_or(cap))
}

/// Records listed per call of [`backfill`].
const BACKFILL_PAGE: u32 = 200;

/// Lists records stored before their list existed: hands the next page of records under
/// `prefix` to `list` in one transaction, and remembers under `marker` how far it got, until
/// every record was seen. `list` should write with [`Tx::put_missing`], so that a store
/// whose records were listed from the start sees nothing written but the marker.
pub(crate) fn backfill<T: DeserializeOwned>(
    store: &dyn Store,
    marker: &str,
    prefix: &str,
    list: impl Fn(&mut Tx<'_>, &str, &T) -> Result<(), Error>,
) -> Result<(), Error> {
    let cursor: Option<String> = read(store, marker)?;
    if cursor.as_deref() == Some(keys::ALL_LISTED) {
        return Ok(());
    }
    let page = scan::<T>(store, prefix, cursor.as_deref(), BACKFILL_PAGE)?;
    transact(store, |tx| {
        for (key, record) in &page {
            list(tx, key, record)?;
        }
        let next = match page.last() {
            Some((last, _)) if page.len() == BACKFILL_PAGE as usize => last.as_str(),
            _ => keys::ALL_LISTED,
        };
        tx.put(marker, &next);
        Ok(())
    })
}

/// Lists stored entries under a prefix, undecoded (their size is known before they are).
pub(crate) fn scan_entries(
    store: &dyn Store,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Entry>, Error> {
    store.scan(prefix, after, limit).map_err(storage)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Storage(format!("a stored record is unreadable: {e}")))
}

fn storage(e: StoreError) -> Error {
    match e {
        StoreError::Conflict => Error::Contention,
        StoreError::Unavailable(why) => Error::Storage(why),
    }
}

/// A store that reads each key once until the next commit: a later read of the same key
/// gets the first one's entry. A callback reads its settings, its event and its person
/// before deciding, and again inside its transaction; each now crosses to storage once.
/// A copy that went stale in between makes the commit conflict (its version is the one
/// read), and every commit attempt forgets the copies, so the decision runs again on fresh
/// reads. Scans are not remembered.
pub(crate) struct ReadOnce<'a> {
    inner: &'a dyn Store,
    seen: RefCell<HashMap<String, Option<Entry>>>,
}

impl<'a> ReadOnce<'a> {
    pub fn new(inner: &'a dyn Store) -> Self {
        ReadOnce {
            inner,
            seen: RefCell::new(HashMap::new()),
        }
    }
}

impl Store for ReadOnce<'_> {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        if let Some(entry) = self.seen.borrow().get(key) {
            return Ok(entry.clone());
        }
        let entry = self.inner.get(key)?;
        self.seen.borrow_mut().insert(key.to_owned(), entry.clone());
        Ok(entry)
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(prefix, after, limit)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.seen.borrow_mut().clear();
        self.inner.commit(writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[test]
    fn a_key_is_read_once_until_a_commit_and_a_stale_copy_makes_the_commit_conflict() {
        let store = MemoryStore::new();
        let put = |value: &str, expect: Option<u64>| Write {
            key: "k".into(),
            change: Change::Put(value.into()),
            expect,
        };
        store.commit(vec![put("1", None)]).expect("commits");
        let once = ReadOnce::new(&store);
        let first = once.get("k").expect("reads").expect("present");

        // Changed behind its back: a second read still gets the first one's copy, and a
        // commit resting on it conflicts.
        store.commit(vec![put("2", None)]).expect("commits");
        assert_eq!(once.get("k").expect("reads"), Some(first.clone()));
        assert_eq!(
            once.commit(vec![put("3", Some(first.version))]),
            Err(StoreError::Conflict)
        );
        // The attempt forgot the copies: the next read is fresh, and a decision on it lands.
        let fresh = once.get("k").expect("reads").expect("present");
        assert_eq!(fresh.value, b"2");
        once.commit(vec![put("3", Some(fresh.version))])
            .expect("commits");
    }
}
