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

const SESSIONS: &str = "directory/session/";
const EMPLOYEE_SESSIONS: &str = "directory/employee-session/";
const SIGN_INS: &str = "directory/sign-in/";

/// A session of a signed-in person, by the SHA-256 of its token.
pub fn session(sha256: &str) -> String {
    format!("{SESSIONS}{sha256}")
}

/// The sessions of an employee (suffix: the session's SHA-256), so they can all be ended.
pub fn employee_sessions(employee: EmployeeId) -> String {
    format!("{EMPLOYEE_SESSIONS}{employee}/")
}

pub fn employee_session(employee: EmployeeId, session_sha256: &str) -> String {
    format!("{}{session_sha256}", employee_sessions(employee))
}

/// A sign-in link not used yet, by the SHA-256 of its code.
pub fn sign_in(sha256: &str) -> String {
    format!("{SIGN_INS}{sha256}")
}

pub const EVENTS: &str = "event/";

pub fn event(dedup_key: &str) -> String {
    format!("{EVENTS}{dedup_key}")
}

/// How far events recorded before [`EVENTS_BY_TIME`] existed have been listed there: the
/// last `event/` key done, or [`ALL_LISTED`].
pub const EVENTS_LISTED_UP_TO: &str = "migration/events-listed-up-to";

/// The progress of upgrades of stored data (also [`EVENTS_LISTED_UP_TO`]).
const MIGRATIONS: &str = "migration/";

/// How far records under `prefix` stored before their list existed have been listed: the
/// last key done, or [`ALL_LISTED`].
pub fn listed_up_to(prefix: &str) -> String {
    format!("{MIGRATIONS}listed-up-to/{prefix}")
}

pub const ALL_LISTED: &str = "all";

/// A fresh unique value on every commit that changes something an operator sees: the
/// workspace polls it to know when to read again. Written, never read, by transactions.
pub const CHANGES: &str = "changes";

/// When the last VK event was processed. Written, never read, by transactions.
pub const LAST_EVENT: &str = "channel/last-event";

/// Keys that many commits write without reading them (no expectation), whose last value is
/// all that matters. A store may write them just after the rest of a commit instead of in
/// it: a database that locks what a transaction writes would otherwise make every commit
/// wait for the one before (the PostgreSQL store does so).
pub const STAMPS: [&str; 2] = [CHANGES, LAST_EVENT];

/// Keys that change nothing an operator sees: writing only these leaves [`CHANGES`] alone.
pub fn is_bookkeeping(key: &str) -> bool {
    [
        EVENTS,
        EVENTS_BY_TIME,
        MIGRATIONS,
        OUTBOX,
        SESSIONS,
        EMPLOYEE_SESSIONS,
        SIGN_INS,
        NAMES_LEASE,
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}

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

pub const DIALOGS: &str = "dialog/";

pub fn dialog(id: DialogId) -> String {
    format!("{DIALOGS}{id}")
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

pub const LEADS: &str = "lead/";

pub fn lead(id: LeadId) -> String {
    format!("{LEADS}{id}")
}

pub const NAMES_PENDING: &str = "index/name-pending/";

/// Until when one caller of the outbox flush (on any host) is asking VK for the pending
/// names; others leave them to it meanwhile.
pub const NAMES_LEASE: &str = "lease/names";

/// A lead whose person's name VK has not told us yet.
pub fn name_pending(lead: LeadId) -> String {
    format!("{NAMES_PENDING}{lead}")
}

pub const COUNTERPARTIES: &str = "counterparty/";

pub fn counterparty(id: CounterpartyId) -> String {
    format!("{COUNTERPARTIES}{id}")
}

pub const ORDERS: &str = "order/";

pub fn order(id: OrderId) -> String {
    format!("{ORDERS}{id}")
}

/// Open dialogs nobody is responsible for.
pub const QUEUE: &str = "index/queue/";
/// Every open dialog.
pub const OPEN: &str = "index/open/";
pub const SPAM: &str = "index/spam/";
pub const FINISHED: &str = "index/finished/";

/// Open dialogs an employee takes part in.
pub fn working(employee: EmployeeId) -> String {
    format!("index/working/{employee}/")
}

/// Leads, counterparties and orders, newest first; the value holds the text a search looks in.
pub const LEADS_LISTED: &str = "index/leads/";
pub const COUNTERPARTIES_LISTED: &str = "index/counterparties/";
pub const ORDERS_LISTED: &str = "index/orders/";

pub fn lead_listed(created_at: DateTime<Utc>, id: LeadId) -> String {
    format!("{LEADS_LISTED}{}", newest_first(created_at, id))
}

pub fn counterparty_listed(created_at: DateTime<Utc>, id: CounterpartyId) -> String {
    format!("{COUNTERPARTIES_LISTED}{}", newest_first(created_at, id))
}

pub fn order_listed(created_at: DateTime<Utc>, id: OrderId) -> String {
    format!("{ORDERS_LISTED}{}", newest_first(created_at, id))
}

/// The part of an index key after its prefix: the latest time first, then by id.
pub fn newest_first(at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
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
    let tail = uuid::Uuid::new_v4().as_u128() >> 96;
    format!("{micros:020}-{order:08x}{tail:08x}")
}
