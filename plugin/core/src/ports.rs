//! The ports: the only ways the domain touches the world. Each shell (the wasm component,
//! the Spin component, the native host) implements them; tests implement them in memory.

use chrono::{DateTime, Utc};

/// A stored key with its value and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// Changes on every write of the key; never 0.
    pub version: u64,
}

/// What a write does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Vec<u8>),
    Delete,
    /// Only checks `expect`: lets a commit rest on a key it read but does not change.
    Check,
}

/// One write of an atomic commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub change: Change,
    /// `None`: unconditional; `Some(0)`: the key must be absent; `Some(v)`: must be at `v`.
    pub expect: Option<u64>,
}

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An expectation of the commit did not hold; nothing was written.
    Conflict,
    /// The database failed.
    Unavailable(String),
}

/// Versioned key/value storage with an all-or-nothing multi-key commit.
pub trait Store {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError>;
    /// Keys starting with `prefix`, in byte order, strictly after `after`, at most `limit`.
    fn scan(&self, prefix: &str, after: Option<&str>, limit: u32)
    -> Result<Vec<Entry>, StoreError>;
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// An outbound HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub post: bool,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

/// A response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why no response came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    Denied(String),
    Timeout,
    Transport(String),
    TooLarge,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(origin) => write!(f, "the host does not allow requests to {origin}"),
            HttpError::Timeout => f.write_str("VK did not answer in time"),
            HttpError::Transport(why) => write!(f, "could not reach VK: {why}"),
            HttpError::TooLarge => f.write_str("VK's answer was too large"),
        }
    }
}

/// One outbound HTTP exchange.
pub trait Http {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}

/// The time; core never reads the system clock itself.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, for shells that have nothing better.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// No outbound HTTP at all: for work that never talks to VK (benchmarks, upgrades, tests).
/// Anything that tries is denied.
pub struct Offline;

impl Http for Offline {
    fn send(&self, _: HttpRequest) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Denied("nowhere (offline)".into()))
    }
}
