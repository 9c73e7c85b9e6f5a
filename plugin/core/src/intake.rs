//! VK callback intake (§1): confirmation, the secret and community checks, at-most-once
//! processing per event, and what each event type does to dialogs, leads and messages.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::Core;
use crate::dialog::{
    Activity, Dialog, DialogStatus, Direction, EventKind, HistoryEvent, Message, record,
};
use crate::error::Error;
use crate::ids::{DialogId, LeadId, MessageId};
use crate::keys;
use crate::lead::Lead;
use crate::settings::Settings;
use crate::stored_time::Stored;
use crate::tx::{ReadOnce, Tx, backfill, count, read, scan, transact};
use crate::vk::{Api, Envelope, VkMessage};

/// How long a name lookup may hold up VK's answer; VK re-sends events answered slowly.
const NAME_LOOKUP_TIMEOUT_MS: u32 = 1500;
/// How many earlier versions of an edited message are kept (the latest ones).
const MAX_PREVIOUS_TEXTS: usize = 10;
/// How many pending names one flush asks VK for (one `users.get` call).
const NAMES_PER_FLUSH: u32 = 100;

/// What to answer VK with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackReply {
    /// The confirmation string, for `type=confirmation`.
    Confirmation(String),
    /// `ok`: stored, a repeat, or an event type the integration does not use.
    Ok,
}

/// The channel to VK as the settings page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelState {
    /// VK's `confirmation` recorded the community.
    pub confirmed: bool,
    /// When the last event other than `confirmation` was processed (repeats and event types
    /// the integration ignores are not counted).
    pub last_event_at: Option<DateTime<Utc>>,
    /// Messages in the outbox.
    pub messages_waiting: u32,
}

/// `message_allow` / `message_deny`.
#[derive(Deserialize)]
struct UserEvent {
    user_id: i64,
}

/// How long a processed event is remembered. VK redelivers an unanswered event within
/// hours (a `Retry-After` must be under 3 hours), so a week leaves a wide margin.
pub const EVENT_RETENTION_DAYS: i64 = 7;
/// Events forgotten per page, and pages per call, so one call stays short.
const PRUNE_PAGE: u32 = 200;
const PRUNE_PAGES: usize = 10;

impl Core<'_> {
    /// Handles one callback body; returns after the event's effects are stored. Each key
    /// it reads is read from storage once until its commit ([`ReadOnce`]).
    pub fn handle_callback(&self, body: &[u8]) -> Result<CallbackReply, Error> {
        let once = ReadOnce::new(self.store);
        Core {
            store: &once,
            ..*self
        }
        .callback(body)
    }

    fn callback(&self, body: &[u8]) -> Result<CallbackReply, Error> {
        let envelope = Envelope::parse(body)?;
        if envelope.group_id <= 0 {
            return Err(Error::MalformedBody(
                "`group_id` must be a positive community id".into(),
            ));
        }
        if envelope.kind == "confirmation" {
            return self.confirm(&envelope);
        }
        // Who sent it is checked before its object is even parsed.
        let settings = self.current_settings()?;
        check_origin(&settings, &envelope)?;
        let object = envelope.object()?;
        let dedup = dedup_key(&envelope, &object)?;
        if let Some(key) = &dedup
            && read::<Value>(self.store, &keys::event(key))?.is_some()
        {
            return Ok(CallbackReply::Ok);
        }
        let dedup = dedup.as_deref();
        match envelope.kind.as_str() {
            "message_new" => self.message_new(&settings, VkMessage::of_message_new(object)?, dedup),
            "message_reply" => self.message_reply(VkMessage::from_value(object)?, dedup),
            "message_edit" => self.message_edit(VkMessage::from_value(object)?, dedup),
            "message_allow" | "message_deny" => {
                let user: UserEvent = serde_json::from_value(object)
                    .map_err(|e| Error::MalformedBody(format!("object: {e}")))?;
                let allowed = envelope.kind == "message_allow";
                self.once(dedup, |tx| {
                    let Some(id) = tx.get::<DialogId>(&keys::peer(user.user_id))? else {
                        return Ok(());
                    };
                    let before = Dialog::load(tx, id)?;
                    let mut dialog = before.clone();
                    dialog.messages_allowed = allowed;
                    dialog.save(tx, Some(&before));
                    Ok(())
                })
            }
            _ => Ok(()),
        }?;
        Ok(CallbackReply::Ok)
    }

    /// `confirmation`: answers the configured string and records the community id. Once a
    /// secret is configured, only a confirmation carrying it is answered (VK sends it then),
    /// so nobody else can record a community id or learn the string.
    fn confirm(&self, envelope: &Envelope<'_>) -> Result<CallbackReply, Error> {
        transact(self.store, |tx| {
            let settings = self.settings_in(tx)?;
            check_secret(&settings, envelope)?;
            match settings.group_id {
                Some(group) if group != envelope.group_id => return Err(Error::ForeignGroup),
                Some(_) => {}
                None => {
                    let mut stored = Settings::stored(tx)?;
                    stored.group_id = Some(envelope.group_id);
                    tx.put(keys::SETTINGS, &stored);
                }
            }
            settings
                .confirmation
                .clone()
                .map(CallbackReply::Confirmation)
                .ok_or(Error::ConfirmationNotSet)
        })
    }

    /// Runs `effects` and marks the event processed in the same commit, so a repeat (also
    /// one racing this call) changes nothing. An event without a key is idempotent.
    /// Records when VK's last event was processed (the channel state), unconditionally:
    /// no transaction reads that key, so events never conflict on it.
    fn once(
        &self,
        dedup: Option<&str>,
        effects: impl Fn(&mut Tx<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        transact(self.store, |tx| {
            if let Some(dedup) = dedup {
                let key = keys::event(dedup);
                if tx.get::<Value>(&key)?.is_some() {
                    return Ok(());
                }
                tx.put(key, &crate::timestamp(now));
                tx.put(keys::event_by_time(now, dedup), &dedup);
            }
            tx.put(keys::LAST_EVENT, &Stored(now));
            effects(tx)
        })
    }

    /// The channel's state for the settings page: whether VK confirmed the address, when
    /// its last event was processed, and how many messages wait for VK (at most
    /// [`crate::COUNT_CAP`]).
    pub fn channel_state(&self) -> Result<ChannelState, Error> {
        Ok(ChannelState {
            confirmed: self.current_settings()?.group_id.is_some(),
            last_event_at: read(self.store, keys::LAST_EVENT)?,
            messages_waiting: count(self.store, keys::OUTBOX, crate::COUNT_CAP)?,
        })
    }

    /// Forgets events processed more than [`EVENT_RETENTION_DAYS`] ago, oldest first, at most
    /// [`PRUNE_PAGES`] pages per call; returns how many. A forgotten event is no longer
    /// recognized as a repeat, which VK's redelivery (hours at most) never needs after that.
    pub fn forget_old_events(&self) -> Result<u32, Error> {
        self.list_unlisted_events()?;
        let horizon = keys::event_by_time(
            self.clock.now() - chrono::Duration::days(EVENT_RETENTION_DAYS),
            "",
        );
        let mut forgotten = 0;
        for _ in 0..PRUNE_PAGES {
            let old: Vec<(String, String)> =
                scan::<String>(self.store, keys::EVENTS_BY_TIME, None, PRUNE_PAGE)?
                    .into_iter()
                    .take_while(|(key, _)| *key < horizon)
                    .collect();
            if old.is_empty() {
                break;
            }
            // Each entry is read first: a prune running beside this one makes the commit
            // conflict and re-decide, and only what is still there is forgotten and counted.
            forgotten += transact(self.store, |tx| {
                let mut deleted = 0;
                for (key, dedup) in &old {
                    if tx.get::<String>(key)?.is_none() {
                        continue;
                    }
                    tx.delete(key.clone());
                    let event = keys::event(dedup);
                    if tx.get::<String>(&event)?.is_some() {
                        tx.delete(event);
                        deleted += 1;
                    }
                }
                Ok(deleted)
            })?;
        }
        Ok(forgotten)
    }

    /// Lists events recorded before the time list existed, a page per call, so they are
    /// forgotten too. Their record holds the time they were processed.
    fn list_unlisted_events(&self) -> Result<(), Error> {
        backfill(
            self.store,
            keys::EVENTS_LISTED_UP_TO,
            keys::EVENTS,
            |tx, key, at: &String| {
                let at = DateTime::parse_from_rfc3339(at)
                    .map_err(|e| Error::Storage(format!("an event's time is unreadable: {e}")))?;
                let dedup = &key[keys::EVENTS.len()..];
                tx.put_missing(keys::event_by_time(at.to_utc(), dedup), &dedup.to_owned())
            },
        )
    }

    /// `message_new`: a new person gets a lead and a dialog; a finished dialog opens a new
    /// session; the message is stored in any case (also in a dialog closed as spam).
    fn message_new(
        &self,
        settings: &Settings,
        message: VkMessage,
        dedup: Option<&str>,
    ) -> Result<(), Error> {
        if !message.is_private() || message.from_id != message.peer_id {
            return Ok(());
        }
        let peer = message.peer_id;
        // VK is asked for the name outside the transaction (a retry must not ask again), and
        // only for a person not seen before.
        let known = read::<DialogId>(self.store, &keys::peer(peer))?.is_some();
        let name = if known {
            None
        } else {
            self.lookup_name(settings, peer)
        };
        let now = self.clock.now();
        // The settings are read inside only where they decide something (who a reopened
        // dialog goes to, the new lead's community name), so that a message to an open
        // dialog, the usual case, does not decode them a second time.
        self.once(dedup, |tx| {
            let (before, mut dialog) = match tx.get::<DialogId>(&keys::peer(peer))? {
                Some(id) => {
                    let before = Dialog::load(tx, id)?;
                    let mut dialog = before.clone();
                    if dialog.status == DialogStatus::Finished {
                        let settings = self.settings_in(tx)?;
                        let mut event = HistoryEvent::new(now, EventKind::Reopened, None);
                        event.subject = dialog.reopen(&settings);
                        record(tx, id, &event);
                    }
                    (Some(before), dialog)
                }
                None => {
                    let dialog_id = DialogId::new();
                    let lead = Lead::create(
                        LeadId::new(),
                        dialog_id,
                        peer,
                        &self.settings_in(tx)?.group_name,
                        name.clone(),
                        now,
                    );
                    let dialog = Dialog {
                        id: dialog_id,
                        peer_id: peer,
                        lead_id: lead.id,
                        name: lead.person_name(),
                        status: DialogStatus::Open,
                        responsible: None,
                        participants: Vec::new(),
                        last_responsible: None,
                        operators: Vec::new(),
                        started_at: now,
                        messages_allowed: true,
                        activity: Activity::default(),
                    };
                    lead.save(tx);
                    tx.put(keys::peer(peer), &dialog_id);
                    (None, dialog)
                }
            };
            let incoming = received(dialog.id, Direction::Incoming, &message, now);
            append(tx, &mut dialog, &incoming, now);
            dialog.save(tx, before.as_ref());
            Ok(())
        })
    }

    /// `message_reply`: the community's own message. The echo of a message the CRM sent
    /// confirms its delivery; anything else (an admin typing in VK) is stored as outgoing.
    fn message_reply(&self, message: VkMessage, dedup: Option<&str>) -> Result<(), Error> {
        if !message.is_private() {
            return Ok(());
        }
        let now = self.clock.now();
        let peer = message.peer_id;
        self.once(dedup, |tx| {
            if let Some(key) = find_ours(tx, &message)? {
                let mut ours: Message = tx.get(&key)?.ok_or(Error::DialogNotFound)?;
                crate::delivery::mark_sent(tx, &key, &mut ours, peer, message.id);
                return Ok(());
            }
            let Some(id) = tx.get::<DialogId>(&keys::peer(peer))? else {
                return Ok(());
            };
            let before = Dialog::load(tx, id)?;
            let mut dialog = before.clone();
            append(
                tx,
                &mut dialog,
                &received(id, Direction::Outgoing, &message, now),
                now,
            );
            dialog.save(tx, Some(&before));
            Ok(())
        })
    }

    /// `message_edit`: new text, previous versions kept.
    fn message_edit(&self, message: VkMessage, dedup: Option<&str>) -> Result<(), Error> {
        let now = self.clock.now();
        self.once(dedup, |tx| {
            let Some(key) = tx.get::<String>(&keys::vk_message(message.peer_id, message.id))?
            else {
                return Ok(());
            };
            let Some(mut stored) = tx.get::<Message>(&key)? else {
                return Ok(());
            };
            if stored.text != message.text {
                let old = std::mem::replace(&mut stored.text, message.text.clone());
                stored.previous_texts.push(old);
                let excess = stored
                    .previous_texts
                    .len()
                    .saturating_sub(MAX_PREVIOUS_TEXTS);
                stored.previous_texts.drain(..excess);
            }
            stored.attachments = message.attachments();
            stored.edited_at = Some(message.update_time.and_then(vk_time).unwrap_or(now));
            let before = Dialog::load(tx, stored.dialog_id)?;
            let mut dialog = before.clone();
            dialog.note_edit(&stored);
            if dialog != before {
                dialog.save(tx, Some(&before));
            }
            tx.put(key, &stored);
            Ok(())
        })
    }

    /// `users.get` for a new person, bounded tightly; `None` when VK cannot tell us now.
    fn lookup_name(&self, settings: &Settings, user: i64) -> Option<(String, String)> {
        let token = settings.access_token.as_deref()?;
        let api = Api {
            http: self.http,
            token,
            version: &settings.api_version,
        };
        let names = api.user_names(&[user], NAME_LOOKUP_TIMEOUT_MS).ok()?;
        names
            .into_iter()
            .find(|(id, _, _)| *id == user)
            .map(|(_, first, last)| (first, last))
    }

    /// Takes the lease on asking VK for names ([`keys::NAMES_LEASE`]) unless a flush
    /// elsewhere (another host sharing the store) holds it; returns when it runs out, if taken.
    fn lease_names(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let now = self.clock.now();
        let until =
            now + chrono::Duration::milliseconds(i64::from(crate::delivery::SEND_TIMEOUT_MS) * 2);
        transact(self.store, |tx| {
            let held: Option<DateTime<Utc>> = tx.get(keys::NAMES_LEASE)?;
            if held.is_some_and(|held| held > now) {
                return Ok(None);
            }
            tx.put(keys::NAMES_LEASE, &Stored(until));
            Ok(Some(until))
        })
    }

    /// Gives back the lease taken with [`Core::lease_names`], unless it ran out and another
    /// flush holds it now.
    fn release_names(&self, lease: DateTime<Utc>) -> Result<(), Error> {
        transact(self.store, |tx| {
            if tx.get::<DateTime<Utc>>(keys::NAMES_LEASE)? == Some(lease) {
                tx.delete(keys::NAMES_LEASE);
            }
            Ok(())
        })
    }

    /// Fills in the names VK could not give at intake. Returns how many it filled. Part of
    /// every `flush`; a shell without an outbox timer (Spin) runs it after answering VK.
    ///
    /// One flush at a time asks VK, on whichever host: it holds the lease meanwhile. The
    /// lease outlives one `users.get` call, and each lead's outcome is a transaction of its
    /// own, so a flush that dies half-way only delays the names until the lease runs out.
    pub fn fill_pending_names(&self) -> Result<u32, Error> {
        // Without a key VK cannot be asked: nothing to look at.
        let settings = self.current_settings()?;
        let Some(token) = settings.access_token.as_deref() else {
            return Ok(0);
        };
        if count(self.store, keys::NAMES_PENDING, 1)? == 0 {
            return Ok(0);
        }
        let Some(lease) = self.lease_names()? else {
            return Ok(0);
        };
        // Listed under the lease: what a flush before this one filled is not asked again.
        let filled = scan::<LeadId>(self.store, keys::NAMES_PENDING, None, NAMES_PER_FLUSH)
            .and_then(|pending| self.fill_names(pending, token, &settings.api_version));
        self.release_names(lease)?;
        filled
    }

    /// Asks VK for the names of the `pending` leads' people and stores them.
    fn fill_names(
        &self,
        pending: Vec<(String, LeadId)>,
        token: &str,
        api_version: &str,
    ) -> Result<u32, Error> {
        let mut leads = Vec::new();
        for (_, id) in pending {
            if let Some(lead) = read::<Lead>(self.store, &keys::lead(id))? {
                leads.push(lead);
            }
        }
        let peers: Vec<i64> = leads.iter().map(|l| l.peer_id).collect();
        let api = Api {
            http: self.http,
            token,
            version: api_version,
        };
        let Ok(names) = api.user_names(&peers, crate::delivery::SEND_TIMEOUT_MS) else {
            return Ok(0);
        };
        let mut filled = 0;
        for lead in &leads {
            // A user VK does not return (deleted, banned) keeps the fallback name for good,
            // so that it does not hold the others up on every flush.
            let name = names.iter().find(|(user, _, _)| *user == lead.peer_id);
            transact(self.store, |tx| {
                let mut lead: Lead = tx.get(&keys::lead(lead.id))?.ok_or(Error::LeadNotFound)?;
                let Some((_, first, last)) = name else {
                    lead.name_pending = false;
                    lead.save(tx);
                    return Ok(());
                };
                lead.name(first, last);
                let before = Dialog::load(tx, lead.dialog_id)?;
                let mut dialog = before.clone();
                dialog.name = lead.person_name();
                dialog.save(tx, Some(&before));
                lead.save(tx);
                Ok(())
            })?;
            filled += u32::from(name.is_some());
        }
        Ok(filled)
    }
}

/// A message as VK reports it: the person's (incoming), or the community's written inside
/// VK (outgoing, already delivered, no employee author).
fn received(
    dialog: DialogId,
    direction: Direction,
    message: &VkMessage,
    now: DateTime<Utc>,
) -> Message {
    Message {
        id: MessageId::new(),
        dialog_id: dialog,
        direction,
        text: message.text.clone(),
        author: None,
        sent_at: vk_time(message.date).unwrap_or(now),
        delivery: (direction == Direction::Outgoing).then_some(crate::dialog::Delivery::Sent),
        error: None,
        attachments: message.attachments(),
        edited_at: None,
        previous_texts: Vec::new(),
        vk_id: (message.id != 0).then_some(message.id),
        random_id: None,
    }
}

/// Stores a message in its dialog, with its history entry and its VK id index, and takes it
/// into the dialog's activity (the caller saves the dialog).
fn append(tx: &mut Tx<'_>, dialog: &mut Dialog, message: &Message, now: DateTime<Utc>) {
    dialog.note_message(message, now);
    let key = keys::message(dialog.id, &keys::seq(now));
    if let Some(vk_id) = message.vk_id {
        tx.put(keys::vk_message(dialog.peer_id, vk_id), &key);
    }
    tx.put(key, message);
    let kind = match message.direction {
        Direction::Incoming => EventKind::MessageIn,
        Direction::Outgoing => EventKind::MessageOut,
    };
    let mut event = HistoryEvent::new(now, kind, message.author);
    event.message_id = Some(message.id);
    record(tx, dialog.id, &event);
}

/// The key of the CRM message a `message_reply` echoes, by VK id or by `random_id`.
fn find_ours(tx: &mut Tx<'_>, echo: &VkMessage) -> Result<Option<String>, Error> {
    if echo.id != 0
        && let Some(key) = tx.get::<String>(&keys::vk_message(echo.peer_id, echo.id))?
    {
        return Ok(Some(key));
    }
    match i32::try_from(echo.random_id) {
        Ok(random_id) if random_id != 0 => tx.get(&keys::random_id(echo.peer_id, random_id)),
        _ => Ok(None),
    }
}

/// Every event but `confirmation` must come from the connected community with its secret.
fn check_origin(settings: &Settings, envelope: &Envelope<'_>) -> Result<(), Error> {
    let Some(group) = settings.group_id else {
        return Err(Error::GroupNotConfirmed);
    };
    if envelope.group_id != group {
        return Err(Error::ForeignGroup);
    }
    check_secret(settings, envelope)
}

/// Once a secret is configured, every callback must carry it.
fn check_secret(settings: &Settings, envelope: &Envelope<'_>) -> Result<(), Error> {
    match (&settings.secret, &envelope.secret) {
        (None, _) => Ok(()),
        (Some(expected), Some(given)) if same_secret(expected, given) => Ok(()),
        _ => Err(Error::WrongSecret),
    }
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix.
fn same_secret(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// What makes an event "the same event" for at-most-once processing: VK's `event_id`, or
/// for an event without one, its type and the ids in its object. `None`: an event type the
/// integration ignores.
///
/// The two kinds of key never meet: a derived key always holds a `:`, and an `event_id`
/// that holds one is set apart by an `id:` prefix, which no derived key starts with. So a
/// crafted `event_id` cannot suppress a later event that has none.
fn dedup_key(envelope: &Envelope<'_>, object: &Value) -> Result<Option<String>, Error> {
    if let Some(id) = &envelope.event_id {
        if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
            return Err(Error::MalformedBody(
                "`event_id` must be 1 to 128 printable characters".into(),
            ));
        }
        return Ok(Some(if id.contains(':') {
            format!("id:{id}")
        } else {
            id.clone()
        }));
    }
    let message = object.get("message").unwrap_or(object);
    let field = |name: &str| message.get(name).and_then(Value::as_i64).unwrap_or(0);
    Ok(match envelope.kind.as_str() {
        "message_new" | "message_reply" | "message_edit" => Some(format!(
            "{}:{}:{}:{}:{}",
            envelope.kind,
            field("peer_id"),
            field("id"),
            field("conversation_message_id"),
            field("update_time")
        )),
        "message_allow" | "message_deny" => Some(format!(
            "{}:{}:{}",
            envelope.kind,
            object.get("user_id").and_then(Value::as_i64).unwrap_or(0),
            object.get("key").and_then(Value::as_str).unwrap_or("")
        )),
        _ => None,
    })
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const LAST_RFC3339_SECOND: i64 = 253_402_300_799;

/// A VK Unix time, if it is one RFC 3339 can render; anything else is not a real time.
fn vk_time(unix: i64) -> Option<DateTime<Utc>> {
    (1..=LAST_RFC3339_SECOND)
        .contains(&unix)
        .then(|| DateTime::from_timestamp(unix, 0))
        .flatten()
}
