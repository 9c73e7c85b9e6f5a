//! Storage: the plugin's key space over a store (the embedded database of [`crate::database`],
//! PostgreSQL ([`crate::pg`]) or vk-core's in-memory store). The `storage` import over it is
//! in [`crate::imports`].
//!
//! The plugin sees its own key space: every key it uses is stored under `plugin/`, so the
//! database can hold other records of the host beside it.

use std::path::Path;
use std::sync::Arc;

use vk_core::ports::{Change, Entry, Store, StoreError, Write};

/// Where the plugin's keys are stored.
const PLUGIN: &str = "plugin/";

/// `key` of the plugin as the store under its [`Namespace`] holds it.
pub fn plugin_key(key: &str) -> String {
    format!("{PLUGIN}{key}")
}

/// The 64-bit FNV-1a hash of `bytes`: the journal's checksums and PostgreSQL's key locks.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_on(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a of `bytes` going on from `hash`, the hash of what came before them.
pub(crate) fn fnv1a_on(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A store shared by every call.
pub type SharedStore = Arc<dyn Store + Send + Sync>;

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
            prefix: PLUGIN,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A put of `value` at `key`, expecting `expect`.
    pub(crate) fn put(key: &str, value: &[u8], expect: Option<u64>) -> Write {
        Write {
            key: key.into(),
            change: Change::Put(value.to_vec()),
            expect,
        }
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
