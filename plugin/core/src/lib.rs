//! `vk-core`: the whole domain of the VK community integration, in plain Rust.
//!
//! It owns every rule of the product (callback intake, settings, open lines, delivery to VK,
//! leads and conversion) and talks to the world only through the ports of [`ports`]:
//! versioned storage, one HTTP exchange, a clock. The shells (the WIT component, the Spin
//! component, the native host) implement the ports and translate their own types; they
//! contain no rule.
//!
//! Concurrency: every command is an optimistic transaction ([`tx`]): it reads with versions,
//! decides, and commits all its writes at once on the condition that nothing it read has
//! changed, re-deciding on a conflict. Any number of calls may run at once on one store.

pub mod conversion;
pub mod delivery;
pub mod dialog;
pub mod directory;
pub mod error;
pub mod ids;
pub mod intake;
mod keys;
pub use keys::STAMPS;
pub mod lead;
pub mod memory;
pub mod ports;
pub mod settings;
pub mod sql;
mod stored_time;
mod tx;
pub mod vk;

pub use error::{Error, ErrorKind};
pub use ids::{CounterpartyId, DialogId, EmployeeId, ItemId, LeadId, MessageId, OrderId};

use chrono::{DateTime, SecondsFormat, Utc};
use ports::{Clock, Http, Store};

/// The callback route, as the admin enters it in VK's community settings (SPEC §2).
pub const CALLBACK_PATH: &str = "/settings/integrations/vk-group/call-back";
/// The largest request body any HTTP shell accepts (SPEC §2: a larger one is `413`).
pub const MAX_BODY: usize = 1 << 20;
/// The most any count counts (a bounded scan): more reads as this many.
pub const COUNT_CAP: u32 = 1000;

/// The domain bound to its ports for one call.
#[derive(Clone, Copy)]
pub struct Core<'a> {
    store: &'a dyn Store,
    http: &'a dyn Http,
    clock: &'a dyn Clock,
    platform: Option<&'a settings::SettingsUpdate>,
}

impl<'a> Core<'a> {
    pub fn new(store: &'a dyn Store, http: &'a dyn Http, clock: &'a dyn Clock) -> Self {
        Core {
            store,
            http,
            clock,
            platform: None,
        }
    }

    /// Settings the platform fixes (e.g. Spin variables holding the access key and the
    /// secret): they win over stored ones on every read and are never written to storage.
    pub fn with_platform_settings(mut self, fixed: &'a settings::SettingsUpdate) -> Self {
        self.platform = Some(fixed);
        self
    }

    /// An opaque text that changes whenever anything an operator sees changes (dialogs,
    /// messages, delivery states, leads, documents, settings): the workspace reads it to
    /// know when to read again. One read.
    pub fn change_stamp(&self) -> Result<String, Error> {
        Ok(tx::read(self.store, keys::CHANGES)?.unwrap_or_else(|| "0".to_owned()))
    }

    /// Lists records stored before their list existed (open dialogs, leads, counterparties,
    /// orders), a page of each kind per call; part of every flush.
    pub(crate) fn list_unlisted(&self) -> Result<(), Error> {
        dialog::list_unlisted(self.store)?;
        lead::list_unlisted(self.store)?;
        conversion::list_unlisted(self.store)
    }
}

/// The body of every refusal over HTTP (SPEC §3): `{"error": {"code", "message"}}`.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

/// The one text form of a time on every boundary: RFC 3339 to the second, UTC, `Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    stored_time::to_the_second(at).unwrap_or_else(|| at.to_rfc3339_opts(SecondsFormat::Secs, true))
}
