//! The storage layout: every key the domain writes is spelled here and nowhere else.
//!
//! Lists never scan the whole store: each list has its own index prefix whose keys sort in
//! the order the list is read, so a page is one bounded `scan`.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};

use crate::ids::{CounterpartyId, DialogId, EmployeeId, LeadId, OrderId};

pub const SETTINGS: &str = "settings";
pub const ORDER_COUNTER: &str = "counter/order";

pub const EMPLOYEES: &str = "directory/employee/";

/// An employee of the operator API's directory.
pub fn employee(id: EmployeeId) -> String {
    format!("{EMPLOYEES}{id}")
}

/// The employee a token belongs to, found by the token's SHA-256.
pub fn token(sha256: &str) -> String {
    format!("directory/token/{sha256}")
}

pub const EVENTS: &str = "event/";

pub fn event(dedup_key: &str) -> String {
    format!("{EVENTS}{dedup_key}")
}

/// How far events recorded before [`EVENTS_BY_TIME`] existed have been listed there: the
/// last `event/` key done, or [`ALL_EVENTS_LISTED`].
pub const EVENTS_LISTED_UP_TO: &str = "migration/events-listed-up-to";
pub const ALL_EVENTS_LISTED: &str = "all";

pub const EVENTS_BY_TIME: &str = "index/event-time/";

/// A processed event, listed by when it was processed (oldest first), so old ones are
/// forgotten with bounded scans.
pub fn event_by_time(at: DateTime<Utc>, dedup_key: &str) -> String {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    format!("{EVENTS_BY_TIME}{micros:020}/{dedup_key}")
}

/// The dialog of a VK peer.
pub fn peer(peer_id: i64) -> String {
    format!("peer/{peer_id}")
}

pub fn dialog(id: DialogId) -> String {
    format!("dialog/{id}")
}

pub fn messages(dialog: DialogId) -> String {
    format!("message/{dialog}/")
}

/// A message of a dialog, ordered by `seq`.
pub fn message(dialog: DialogId, seq: &str) -> String {
    format!("message/{dialog}/{seq}")
}

/// A stored message found by VK's message id.
pub fn vk_message(peer_id: i64, vk_id: i64) -> String {
    format!("vk-message/{peer_id}/{vk_id}")
}

/// A message the CRM sent, found by the `random_id` it was sent with.
pub fn random_id(peer_id: i64, random_id: i32) -> String {
    format!("random-id/{peer_id}/{random_id}")
}

pub const OUTBOX: &str = "outbox/";

/// A message waiting for VK; the suffix is the message's key.
pub fn outbox(message_key: &str) -> String {
    format!("{OUTBOX}{message_key}")
}

pub fn history(dialog: DialogId) -> String {
    format!("history/{dialog}/")
}

pub fn history_event(dialog: DialogId, seq: &str) -> String {
    format!("history/{dialog}/{seq}")
}

pub fn lead(id: LeadId) -> String {
    format!("lead/{id}")
}

pub const NAMES_PENDING: &str = "index/name-pending/";

/// A lead whose person's name VK has not told us yet.
pub fn name_pending(lead: LeadId) -> String {
    format!("{NAMES_PENDING}{lead}")
}

pub fn counterparty(id: CounterpartyId) -> String {
    format!("counterparty/{id}")
}

pub fn order(id: OrderId) -> String {
    format!("order/{id}")
}

/// Open dialogs nobody is responsible for.
pub const QUEUE: &str = "index/queue/";
pub const SPAM: &str = "index/spam/";
pub const FINISHED: &str = "index/finished/";

/// Open dialogs an employee takes part in.
pub fn working(employee: EmployeeId) -> String {
    format!("index/working/{employee}/")
}

/// The part of an index key after its prefix: newest dialog first, then by id.
pub fn newest_first(started_at: DateTime<Utc>, id: DialogId) -> String {
    let micros = u64::try_from(started_at.timestamp_micros()).unwrap_or(0);
    format!("{:020}.{id}", u64::MAX - micros)
}

/// Counts appends, so that things appended at the same time (a reopen and the message that
/// caused it, the invites of one command: one transaction, one `now`) keep their order.
static APPENDS: AtomicU32 = AtomicU32::new(0);

/// An ordering suffix for things appended over time (messages, history): the time, then the
/// order of appending, then randomness so that two appends in the same microsecond never
/// collide (also across processes).
pub fn seq(at: DateTime<Utc>) -> String {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    let order = APPENDS.fetch_add(1, Ordering::Relaxed);
    let tail = uuid::Uuid::new_v4().simple().to_string();
    format!("{micros:020}-{order:08x}{}", &tail[..8])
}
