//! An in-memory `Store`: the host's `--memory` backend and the store of native tests.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use crate::ports::{Change, Entry, Store, StoreError, Write};

/// Keys in a sorted map behind one lock; a commit checks and applies under the lock.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, (u64, Vec<u8>)>,
    /// The last version handed out; versions are never reused, even after a delete.
    clock: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the map half-written: commits check before writing.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().entries.get(key).map(|(version, value)| Entry {
            key: key.to_owned(),
            value: value.clone(),
            version: *version,
        }))
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let state = self.lock();
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        Ok(state
            .entries
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit as usize)
            .map(|(key, (version, value))| Entry {
                key: key.clone(),
                value: value.clone(),
                version: *version,
            })
            .collect())
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut state = self.lock();
        for write in &writes {
            if let Some(expected) = write.expect {
                let current = state
                    .entries
                    .get(&write.key)
                    .map_or(0, |(version, _)| *version);
                if current != expected {
                    return Err(StoreError::Conflict);
                }
            }
        }
        for write in writes {
            match write.change {
                Change::Put(value) => {
                    state.clock += 1;
                    let version = state.clock;
                    state.entries.insert(write.key, (version, value));
                }
                Change::Delete => {
                    state.entries.remove(&write.key);
                }
                Change::Check => {}
            }
        }
        Ok(())
    }
}
