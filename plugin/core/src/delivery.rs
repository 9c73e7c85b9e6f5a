//! Delivery of operators' messages to VK (`messages.send`), and the outbox that retries.
//!
//! A message is stored `pending` with its outbox entry before VK is called, so nothing is
//! lost if the call dies half-way. Each attempt first leases the entry (one attempt at a
//! time, whoever runs it), then records `sent`, `failed`, or a later retry. Every attempt of
//! a message carries the same `random_id`, derived from the message id, and VK drops a
//! repeated `random_id` in a dialog: a retry can never deliver twice.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::dialog::{
    Delivery, Dialog, Direction, EventKind, HistoryEvent, Message, SendError, record,
};
use crate::error::Error;
use crate::ids::{DialogId, EmployeeId, MessageId};
use crate::keys;
use crate::tx::{Tx, read, scan, transact};
use crate::vk::{Api, ApiError, MAX_TEXT_CHARS};

/// How long one call to VK may take.
pub const SEND_TIMEOUT_MS: u32 = 10_000;
/// Attempts before a message that keeps failing transiently is given up as failed.
pub const MAX_ATTEMPTS: u32 = 10;
/// How many outbox entries one scan reads.
const FLUSH_PAGE: u32 = 100;
/// How many messages one flush hands to VK; the rest wait for the next flush.
const FLUSH_ATTEMPTS: u32 = 100;
/// No new attempt starts after a flush has run this long, so that one flush stays well
/// inside a host's per-call deadline even when VK is slow.
const FLUSH_BUDGET_MS: i64 = 10_000;

/// A message waiting for VK.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    peer_id: i64,
    attempts: u32,
    #[serde(with = "crate::stored_time")]
    next_at: DateTime<Utc>,
    /// Until when an attempt in progress holds the entry.
    #[serde(default, with = "crate::stored_time::option")]
    lease_until: Option<DateTime<Utc>>,
}

impl Pending {
    /// Its next attempt is due and no attempt in progress holds it.
    fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.next_at <= now && self.lease_until.is_none_or(|until| until <= now)
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: u32,
    pub failed: u32,
    pub pending: u32,
    pub names_filled: u32,
    pub events_forgotten: u32,
}

/// The `random_id` of a message: a nonzero int32 fixed by the message id.
pub fn random_id(message: MessageId) -> i32 {
    let bytes = message.0.as_bytes();
    let value = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & i32::MAX;
    if value == 0 { 1 } else { value }
}

/// Seconds to wait after the n-th failed attempt: 1, 2, 4, … up to five minutes.
fn backoff(attempts: u32) -> Duration {
    Duration::seconds(1_i64 << attempts.saturating_sub(1).min(9)).min(Duration::minutes(5))
}

/// Records VK's acceptance of a CRM message (from `messages.send` or from its echo) and
/// takes it out of the outbox.
pub(crate) fn mark_sent(
    tx: &mut Tx<'_>,
    key: &str,
    message: &mut Message,
    peer_id: i64,
    vk_id: i64,
) {
    message.delivery = Some(Delivery::Sent);
    message.error = None;
    if vk_id != 0 {
        message.vk_id = Some(vk_id);
        tx.put(keys::vk_message(peer_id, vk_id), &key.to_owned());
    }
    tx.put(key.to_owned(), message);
    tx.delete(keys::outbox(key));
}

/// Gives a message up as failed, with why, and takes it out of the outbox.
fn fail(tx: &mut Tx<'_>, key: &str, message: &mut Message, error: SendError) {
    message.delivery = Some(Delivery::Failed);
    message.error = Some(error);
    tx.put(key.to_owned(), message);
    tx.delete(keys::outbox(key));
}

impl Core<'_> {
    /// Send: the responsible employee or a participant writes to the person.
    pub fn send(&self, actor: EmployeeId, id: DialogId, text: &str) -> Result<Message, Error> {
        if text.trim().is_empty() {
            return Err(Error::invalid("text", "must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(Error::invalid(
                "text",
                format!("is longer than VK's limit of {MAX_TEXT_CHARS} characters"),
            ));
        }
        let now = self.clock.now();
        let key = transact(self.store, |tx| {
            self.settings_in(tx)?.require_listed(actor)?;
            let before = Dialog::load(tx, id)?;
            let mut dialog = before.clone();
            dialog.require_participant(actor)?;
            if !dialog.messages_allowed {
                return Err(Error::MessagesDenied);
            }
            let message_id = MessageId::new();
            let random = random_id(message_id);
            let key = keys::message(id, &keys::seq(now));
            let message = Message {
                id: message_id,
                dialog_id: id,
                direction: Direction::Outgoing,
                text: text.to_owned(),
                author: Some(actor),
                sent_at: now,
                delivery: Some(Delivery::Pending),
                error: None,
                attachments: Vec::new(),
                edited_at: None,
                previous_texts: Vec::new(),
                vk_id: None,
                random_id: Some(random),
            };
            tx.put(key.clone(), &message);
            tx.put(keys::random_id(dialog.peer_id, random), &key);
            let pending = Pending {
                peer_id: dialog.peer_id,
                attempts: 0,
                next_at: now,
                lease_until: None,
            };
            tx.put(keys::outbox(&key), &pending);
            let mut event = HistoryEvent::new(now, EventKind::MessageOut, Some(actor));
            event.message_id = Some(message_id);
            record(tx, id, &event);
            // Whoever answers has read what they answer.
            dialog.note_message(&message, now);
            dialog.mark_read(actor);
            dialog.save(tx, Some(&before));
            Ok(key)
        })?;
        // The message is stored and in the outbox: if this first attempt fails on our side,
        // the outbox retries it, and reporting an error here would only invite the operator
        // to send it again.
        self.attempt(&key).ok();
        read(self.store, &key)?.ok_or(Error::DialogNotFound)
    }

    /// Retries every due message, fills in names VK could not give before, and forgets
    /// events processed long ago.
    /// The whole outbox is looked at (page by page), so messages waiting on a long backoff
    /// never hide due ones behind them.
    pub fn flush(&self) -> Result<FlushReport, Error> {
        let now = self.clock.now();
        let mut report = FlushReport {
            names_filled: self.fill_pending_names()?,
            ..FlushReport::default()
        };
        let mut attempts = 0;
        let mut after: Option<String> = None;
        loop {
            let page = scan::<Pending>(self.store, keys::OUTBOX, after.as_deref(), FLUSH_PAGE)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (outbox_key, pending) in page {
                let over_budget = (self.clock.now() - now).num_milliseconds() > FLUSH_BUDGET_MS;
                if !pending.is_due(now) || attempts >= FLUSH_ATTEMPTS || over_budget {
                    report.pending += 1;
                    continue;
                }
                attempts += 1;
                // One entry failing on our side (storage, contention) leaves it for the next
                // flush and does not hold up the others.
                match self.attempt(&outbox_key[keys::OUTBOX.len()..]) {
                    Ok(Some(Delivery::Sent)) => report.sent += 1,
                    Ok(Some(Delivery::Failed)) => report.failed += 1,
                    _ => report.pending += 1,
                }
            }
        }
        // Last: housekeeping never holds up a delivery.
        self.list_unlisted()?;
        report.events_forgotten = self.forget_old_events()?;
        Ok(report)
    }

    /// One attempt to deliver a waiting message, if it is due and nobody else is at it.
    /// Returns the message's delivery state afterwards, `None` if nothing was attempted.
    fn attempt(&self, key: &str) -> Result<Option<Delivery>, Error> {
        let now = self.clock.now();
        let lease = Duration::milliseconds(i64::from(SEND_TIMEOUT_MS)) + Duration::seconds(5);
        let leased = transact(self.store, |tx| {
            let Some(mut pending) = tx.get::<Pending>(&keys::outbox(key))? else {
                return Ok(None);
            };
            if !pending.is_due(now) {
                return Ok(None);
            }
            let mut message: Message = tx.get(key)?.ok_or(Error::DialogNotFound)?;
            // A person who denied messages since this one was queued is not written to.
            if !Dialog::load(tx, message.dialog_id)?.messages_allowed {
                let denied = SendError {
                    code: 0,
                    message: Error::MessagesDenied.to_string(),
                };
                fail(tx, key, &mut message, denied);
                return Ok(Some(Err(Delivery::Failed)));
            }
            pending.attempts += 1;
            pending.lease_until = Some(now + lease);
            tx.put(keys::outbox(key), &pending);
            let settings = self.settings_in(tx)?;
            Ok(Some(Ok((pending, message, settings))))
        })?;
        let (pending, message, settings) = match leased {
            None => return Ok(None),
            Some(Err(settled)) => return Ok(Some(settled)),
            Some(Ok(lease)) => lease,
        };
        let outcome = match settings.access_token.as_deref() {
            Some(token) => {
                let api = Api {
                    http: self.http,
                    token,
                    version: &settings.api_version,
                };
                let random = message
                    .random_id
                    .expect("every CRM message has a random_id");
                api.send_message(pending.peer_id, random, &message.text, SEND_TIMEOUT_MS)
            }
            None => Err(ApiError::NoAccessKey),
        };
        let finished_at = self.clock.now();
        transact(self.store, |tx| {
            let mut message: Message = tx.get(key)?.ok_or(Error::DialogNotFound)?;
            let Some(mut pending) = tx.get::<Pending>(&keys::outbox(key))? else {
                // The echo arrived first and settled it.
                return Ok(message.delivery);
            };
            match &outcome {
                Ok(vk_id) => mark_sent(tx, key, &mut message, pending.peer_id, *vk_id),
                Err(error) if error.is_transient() && pending.attempts < MAX_ATTEMPTS => {
                    // Still pending, with VK's last answer kept for the operator to see.
                    message.error = Some(SendError {
                        code: error.code(),
                        message: error.explain(),
                    });
                    tx.put(key.to_owned(), &message);
                    pending.next_at = finished_at + backoff(pending.attempts);
                    pending.lease_until = None;
                    tx.put(keys::outbox(key), &pending);
                }
                Err(error) => {
                    let error = SendError {
                        code: error.code(),
                        message: error.explain(),
                    };
                    fail(tx, key, &mut message, error);
                }
            }
            Ok(message.delivery)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_positive_int32_and_stable() {
        for _ in 0..1000 {
            let id = MessageId::new();
            let random = random_id(id);
            assert!(random > 0);
            assert_eq!(random, random_id(id));
        }
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::seconds(1));
        assert_eq!(backoff(3), Duration::seconds(4));
        assert_eq!(backoff(30), Duration::minutes(5));
    }
}
