//! The plugin's imports on the host side, in one place another embedder can reuse: the
//! `storage` import over any vk-core [`Store`] and the `http` import over any vk-core
//! [`Http`], each call's waits for VK cut to its deadline ([`Lane`]).
//!
//! An embedder keeps an [`Imports`] in its store's data, gives access to it through
//! [`ImportsView`], and adds both imports (and the `types` interface) to its linker with
//! [`add_to_linker`], beside WASI p2, the way `wasmtime-wasi-http` adds its own.

use std::sync::Arc;

use vk_core::ports::{Change, Entry, Http, HttpError, HttpRequest, Store, StoreError, Write};
use wasmtime::component::{HasData, Linker};

use crate::plugin::Lane;
use crate::plugin::bindings::mybusiness::vk::{http, storage, types};

/// What the imports work with during one call.
pub struct Imports {
    /// The plugin's key space.
    pub store: Arc<dyn Store + Send + Sync>,
    /// Outbound HTTP (an allow-listed client: [`crate::http::Outbound`]).
    pub http: Arc<dyn Http + Send + Sync>,
    /// The call's admission and deadline.
    pub(crate) lane: Lane,
}

/// Access to the [`Imports`] in a store's data.
pub trait ImportsView: Send {
    fn imports(&mut self) -> &mut Imports;
}

/// The `HasData` of the imports: their host side is `&mut Imports`.
struct HasImports;

impl HasData for HasImports {
    type Data<'a> = &'a mut Imports;
}

/// Adds the plugin's `storage`, `http` and `types` imports to `linker`.
pub fn add_to_linker<T: ImportsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    storage::add_to_linker::<T, HasImports>(linker, T::imports)?;
    http::add_to_linker::<T, HasImports>(linker, T::imports)?;
    types::add_to_linker::<T, HasImports>(linker, T::imports)?;
    Ok(())
}

/// The `types` interface has no functions; the linker still asks for its host side.
impl types::Host for Imports {}

/// The most one scan may return, whatever the guest asks for.
const MAX_SCAN: u32 = 1000;

fn to_wit(error: StoreError) -> storage::StorageError {
    match error {
        StoreError::Conflict => storage::StorageError::Conflict,
        StoreError::Unavailable(why) => storage::StorageError::Unavailable(why),
    }
}

fn entry_to_wit(e: Entry) -> storage::Entry {
    storage::Entry {
        key: e.key,
        value: e.value,
        version: e.version,
    }
}

impl storage::Host for Imports {
    fn get(&mut self, key: String) -> Result<Option<storage::Entry>, storage::StorageError> {
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
    ) -> Result<Vec<storage::Entry>, storage::StorageError> {
        self.store
            .scan(&prefix, after.as_deref(), limit.min(MAX_SCAN))
            .map(|entries| entries.into_iter().map(entry_to_wit).collect())
            .map_err(to_wit)
    }

    fn commit(&mut self, writes: Vec<storage::Write>) -> Result<(), storage::StorageError> {
        let writes = writes
            .into_iter()
            .map(|w| Write {
                key: w.key,
                change: match w.change {
                    storage::Change::Put(value) => Change::Put(value),
                    storage::Change::Delete => Change::Delete,
                    storage::Change::Check => Change::Check,
                },
                expect: w.expect,
            })
            .collect();
        self.store.commit(writes).map_err(to_wit)
    }
}

impl http::Host for Imports {
    /// The wait for VK never outlasts the call: it is cut to what the call's deadline leaves,
    /// so the guest hears `timeout` and records the message as still pending instead of being
    /// stopped half-way.
    fn send(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        let Some(left) = self.lane.before_outbound() else {
            return Err(http::HttpError::Timeout);
        };
        let left_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
        let request = HttpRequest {
            post: matches!(request.method, http::Method::Post),
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms.min(left_ms),
        };
        match self.http.send(request) {
            Ok(response) => Ok(http::Response {
                status: response.status,
                body: response.body,
            }),
            Err(HttpError::Denied(origin)) => Err(http::HttpError::Denied(origin)),
            Err(HttpError::Timeout) => Err(http::HttpError::Timeout),
            Err(HttpError::Transport(why)) => Err(http::HttpError::Transport(why)),
            Err(HttpError::TooLarge) => Err(http::HttpError::TooLarge),
        }
    }
}
