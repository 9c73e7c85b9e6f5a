//! vk-core's ports over the WIT imports.

use vk_core::ports::{
    Change, Entry, Http, HttpError, HttpRequest, HttpResponse, Store, StoreError, Write,
};

use crate::wit::mybusiness::vk::{http, storage};

/// The host's database.
pub struct HostStore;

/// The host's outbound HTTP.
pub struct HostHttp;

fn store_error(error: storage::StorageError) -> StoreError {
    match error {
        storage::StorageError::Conflict => StoreError::Conflict,
        storage::StorageError::Unavailable(why) => StoreError::Unavailable(why),
    }
}

fn entry(e: storage::Entry) -> Entry {
    Entry {
        key: e.key,
        value: e.value,
        version: e.version,
    }
}

impl Store for HostStore {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        storage::get(key)
            .map(|found| found.map(entry))
            .map_err(store_error)
    }

    fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        storage::scan(prefix, after, limit)
            .map(|entries| entries.into_iter().map(entry).collect())
            .map_err(store_error)
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let writes: Vec<storage::Write> = writes
            .into_iter()
            .map(|w| storage::Write {
                key: w.key,
                change: match w.change {
                    Change::Put(value) => storage::Change::Put(value),
                    Change::Delete => storage::Change::Delete,
                    Change::Check => storage::Change::Check,
                },
                expect: w.expect,
            })
            .collect();
        storage::commit(&writes).map_err(store_error)
    }
}

impl Http for HostHttp {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = http::Request {
            method: if request.post {
                http::Method::Post
            } else {
                http::Method::Get
            },
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        match http::send(&request) {
            Ok(response) => Ok(HttpResponse {
                status: response.status,
                body: response.body,
            }),
            Err(http::HttpError::Denied(origin)) => Err(HttpError::Denied(origin)),
            Err(http::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(http::HttpError::Transport(why)) => Err(HttpError::Transport(why)),
            Err(http::HttpError::TooLarge) => Err(HttpError::TooLarge),
        }
    }
}
