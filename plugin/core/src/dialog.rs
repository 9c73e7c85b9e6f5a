//! Open lines ("Открытые линии", §2–§8): dialogs, their messages and history, and the
//! operators' commands with the rules of who may do what.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::error::Error;
use crate::ids::{DialogId, EmployeeId, LeadId, MessageId};
use crate::keys;
use crate::settings::Settings;
use crate::tx::{Tx, decode, read, scan, scan_entries, transact};

/// The state of a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DialogStatus {
    Open,
    Spam,
    Finished,
}

/// A dialog with one VK user. Sessions come and go (finish, new message, restore); the
/// dialog, its id and its lead stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialog {
    pub id: DialogId,
    pub peer_id: i64,
    pub lead_id: LeadId,
    /// The person's name.
    pub name: String,
    pub status: DialogStatus,
    pub responsible: Option<EmployeeId>,
    /// Everyone working on it now, the responsible employee first.
    pub participants: Vec<EmployeeId>,
    /// Who restore returns the dialog to.
    pub last_responsible: Option<EmployeeId>,
    /// Everyone who has ever worked on it, in order of arrival.
    pub operators: Vec<EmployeeId>,
    pub started_at: DateTime<Utc>,
    /// False after the person denied messages from the community (`message_deny`).
    #[serde(default = "allowed")]
    pub messages_allowed: bool,
}

fn allowed() -> bool {
    true
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// Where an outgoing message is on its way to VK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    Pending,
    Sent,
    Failed,
}

/// VK's refusal, kept on the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendError {
    pub code: i32,
    pub message: String,
}

/// A photo, document, sticker… of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: String,
    pub url: Option<String>,
    pub title: Option<String>,
}

/// A message of a dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub dialog_id: DialogId,
    pub direction: Direction,
    pub text: String,
    /// The employee who wrote it in the CRM.
    pub author: Option<EmployeeId>,
    pub sent_at: DateTime<Utc>,
    pub delivery: Option<Delivery>,
    pub error: Option<SendError>,
    pub attachments: Vec<Attachment>,
    pub edited_at: Option<DateTime<Utc>>,
    pub previous_texts: Vec<String>,
    /// VK's id once VK has it.
    pub vk_id: Option<i64>,
    /// The `random_id` it was sent with (CRM messages only).
    pub random_id: Option<i32>,
}

/// What happened in a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    MessageIn,
    MessageOut,
    Claimed,
    Invited,
    Left,
    Delegated,
    ClosedAsSpam,
    Finished,
    Restored,
    Reopened,
}

/// One entry of a dialog's history ("Просмотр истории диалога").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub actor: Option<EmployeeId>,
    pub subject: Option<EmployeeId>,
    pub message_id: Option<MessageId>,
}

impl HistoryEvent {
    pub(crate) fn new(at: DateTime<Utc>, kind: EventKind, actor: Option<EmployeeId>) -> Self {
        HistoryEvent {
            at,
            kind,
            actor,
            subject: None,
            message_id: None,
        }
    }

    fn about(mut self, subject: EmployeeId) -> Self {
        self.subject = Some(subject);
        self
    }
}

/// A page of a list and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The largest page any list returns.
pub const MAX_PAGE: u32 = 200;
/// The most stored bytes a page of messages or history carries (at least one record): a
/// page must fit in a guest's memory however long the texts on it.
pub const PAGE_BYTES: usize = 1 << 20;
/// Records read per scan while a page is filled.
const PAGE_SCAN: usize = 20;

impl Dialog {
    /// The index keys that list this dialog, derived from its state alone, so keeping the
    /// indexes right is a set difference on every save.
    fn index_keys(&self) -> BTreeSet<String> {
        let suffix = keys::newest_first(self.started_at, self.id);
        let mut index = BTreeSet::new();
        match self.status {
            DialogStatus::Open => {
                if self.responsible.is_none() {
                    index.insert(format!("{}{suffix}", keys::QUEUE));
                }
                for employee in &self.participants {
                    index.insert(format!("{}{suffix}", keys::working(*employee)));
                }
            }
            DialogStatus::Spam => {
                index.insert(format!("{}{suffix}", keys::SPAM));
            }
            DialogStatus::Finished => {
                index.insert(format!("{}{suffix}", keys::FINISHED));
            }
        }
        index
    }

    /// Stores the dialog and moves it between the lists its change of state affects.
    pub(crate) fn save(&self, tx: &mut Tx<'_>, before: Option<&Dialog>) {
        let old = before.map(Dialog::index_keys).unwrap_or_default();
        let new = self.index_keys();
        for gone in old.difference(&new) {
            tx.delete(gone.clone());
        }
        for added in new.difference(&old) {
            tx.put(added.clone(), &self.id);
        }
        tx.put(keys::dialog(self.id), self);
    }

    pub(crate) fn load(tx: &mut Tx<'_>, id: DialogId) -> Result<Dialog, Error> {
        tx.get(&keys::dialog(id))?.ok_or(Error::DialogNotFound)
    }

    fn require_open(&self) -> Result<(), Error> {
        if self.status == DialogStatus::Open {
            Ok(())
        } else {
            Err(Error::DialogNotOpen)
        }
    }

    fn require_responsible(&self, actor: EmployeeId) -> Result<(), Error> {
        self.require_open()?;
        if self.responsible == Some(actor) {
            Ok(())
        } else {
            Err(Error::NotResponsible)
        }
    }

    pub(crate) fn require_participant(&self, actor: EmployeeId) -> Result<(), Error> {
        self.require_open()?;
        if self.participants.contains(&actor) {
            Ok(())
        } else {
            Err(Error::NotAParticipant)
        }
    }

    fn join(&mut self, employee: EmployeeId) {
        if !self.participants.contains(&employee) {
            self.participants.push(employee);
        }
        if !self.operators.contains(&employee) {
            self.operators.push(employee);
        }
    }

    fn make_responsible(&mut self, employee: EmployeeId) {
        self.responsible = Some(employee);
        self.last_responsible = Some(employee);
        self.participants.retain(|p| *p != employee);
        self.participants.insert(0, employee);
        self.join(employee);
    }

    /// Closing ends the session: nobody works on a closed dialog.
    fn close(&mut self, status: DialogStatus) {
        self.status = status;
        self.responsible = None;
        self.participants.clear();
    }

    /// Opens a new session: back to the last responsible employee if still listed, else to
    /// the queue. Returns who got it.
    pub(crate) fn reopen(&mut self, settings: &Settings) -> Option<EmployeeId> {
        self.status = DialogStatus::Open;
        self.responsible = None;
        self.participants.clear();
        let back_to = self.last_responsible.filter(|e| settings.is_listed(*e));
        if let Some(employee) = back_to {
            self.make_responsible(employee);
        }
        back_to
    }
}

/// An employee taken off the open lines leaves every open dialog they work on; those they
/// were responsible for go back to the queue, where any listed employee can claim them.
pub(crate) fn release(
    store: &dyn crate::ports::Store,
    tx: &mut Tx<'_>,
    employee: EmployeeId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let prefix = keys::working(employee);
    let mut after: Option<String> = None;
    loop {
        let page = scan::<DialogId>(store, &prefix, after.as_deref(), MAX_PAGE)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (_, id) in page {
            let before = Dialog::load(tx, id)?;
            let mut dialog = before.clone();
            dialog.participants.retain(|p| *p != employee);
            if dialog.responsible == Some(employee) {
                dialog.responsible = None;
            }
            record(
                tx,
                id,
                &HistoryEvent::new(now, EventKind::Left, Some(employee)),
            );
            dialog.save(tx, Some(&before));
        }
    }
}

/// Appends an event to a dialog's history.
pub(crate) fn record(tx: &mut Tx<'_>, dialog: DialogId, event: &HistoryEvent) {
    tx.put(keys::history_event(dialog, &keys::seq(event.at)), event);
}

impl Core<'_> {
    /// Runs one operator command: the actor must be listed; `apply` changes the dialog or
    /// refuses, and returns the history events the change made.
    fn command(
        &self,
        actor: EmployeeId,
        id: DialogId,
        apply: impl Fn(&mut Dialog, &Settings, DateTime<Utc>) -> Result<Vec<HistoryEvent>, Error>,
    ) -> Result<Dialog, Error> {
        let now = self.clock.now();
        transact(self.store, |tx| {
            let settings = self.settings_in(tx)?;
            settings.require_listed(actor)?;
            let before = Dialog::load(tx, id)?;
            let mut dialog = before.clone();
            for event in apply(&mut dialog, &settings, now)? {
                record(tx, id, &event);
            }
            dialog.save(tx, Some(&before));
            Ok(dialog)
        })
    }

    /// Claim ("Закрепить за мной"): a listed employee takes an unassigned open dialog.
    pub fn claim(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, _, now| {
            dialog.require_open()?;
            if dialog.responsible.is_some() {
                return Err(Error::AlreadyClaimed);
            }
            dialog.make_responsible(actor);
            Ok(vec![HistoryEvent::new(
                now,
                EventKind::Claimed,
                Some(actor),
            )])
        })
    }

    /// Invite ("Управление"): the responsible employee adds listed colleagues.
    pub fn invite(
        &self,
        actor: EmployeeId,
        id: DialogId,
        employees: &[EmployeeId],
    ) -> Result<Dialog, Error> {
        if employees.is_empty() {
            return Err(Error::invalid(
                "employees",
                "must name at least one employee",
            ));
        }
        self.command(actor, id, |dialog, settings, now| {
            dialog.require_responsible(actor)?;
            let mut events = Vec::new();
            for employee in employees {
                settings.require_listed(*employee)?;
                if !dialog.participants.contains(employee) {
                    dialog.join(*employee);
                    events.push(
                        HistoryEvent::new(now, EventKind::Invited, Some(actor)).about(*employee),
                    );
                }
            }
            Ok(events)
        })
    }

    /// Leave: a participant leaves; the responsible employee leaving returns the dialog to
    /// the queue.
    pub fn leave(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, _, now| {
            dialog.require_participant(actor)?;
            dialog.participants.retain(|p| *p != actor);
            if dialog.responsible == Some(actor) {
                dialog.responsible = None;
            }
            Ok(vec![HistoryEvent::new(now, EventKind::Left, Some(actor))])
        })
    }

    /// Delegate: the responsible employee hands the dialog to another listed employee and
    /// stays a participant until leaving.
    pub fn delegate(
        &self,
        actor: EmployeeId,
        id: DialogId,
        to: EmployeeId,
    ) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, settings, now| {
            dialog.require_responsible(actor)?;
            settings.require_listed(to)?;
            if to == actor {
                return Err(Error::AlreadyResponsible);
            }
            dialog.make_responsible(to);
            dialog.join(actor);
            Ok(vec![
                HistoryEvent::new(now, EventKind::Delegated, Some(actor)).about(to),
            ])
        })
    }

    /// Close as spam: by the responsible employee; restorable from the spam filter.
    pub fn close_as_spam(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, _, now| {
            dialog.require_responsible(actor)?;
            dialog.close(DialogStatus::Spam);
            Ok(vec![HistoryEvent::new(
                now,
                EventKind::ClosedAsSpam,
                Some(actor),
            )])
        })
    }

    /// Finish ("Завершение диалога"): by the responsible employee.
    pub fn finish(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, _, now| {
            dialog.require_responsible(actor)?;
            dialog.close(DialogStatus::Finished);
            Ok(vec![HistoryEvent::new(
                now,
                EventKind::Finished,
                Some(actor),
            )])
        })
    }

    /// Restore: any listed employee; back to the last responsible employee if still listed.
    pub fn restore(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, settings, now| {
            if dialog.status == DialogStatus::Open {
                return Err(Error::DialogNotClosed);
            }
            let mut event = HistoryEvent::new(now, EventKind::Restored, Some(actor));
            event.subject = dialog.reopen(settings);
            Ok(vec![event])
        })
    }

    /// Reads a dialog (any listed employee).
    pub fn dialog(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.require_reader(actor)?;
        read(self.store, &keys::dialog(id))?.ok_or(Error::DialogNotFound)
    }

    /// The open lines of `actor`: for `Open`, the queue and the dialogs the actor works on;
    /// for `Spam` and `Finished`, all of them. Newest first; each page is a bounded scan of
    /// the indexes, never of the whole store.
    pub fn dialogs(
        &self,
        actor: EmployeeId,
        status: DialogStatus,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Dialog>, Error> {
        self.require_reader(actor)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let prefixes = match status {
            DialogStatus::Open => vec![keys::QUEUE.to_owned(), keys::working(actor)],
            DialogStatus::Spam => vec![keys::SPAM.to_owned()],
            DialogStatus::Finished => vec![keys::FINISHED.to_owned()],
        };
        let mut found = BTreeSet::new();
        for prefix in &prefixes {
            let start = after.map(|cursor| format!("{prefix}{cursor}"));
            for (key, id) in scan::<DialogId>(self.store, prefix, start.as_deref(), limit + 1)? {
                found.insert((key[prefix.len()..].to_owned(), id));
            }
        }
        let more = found.len() > limit as usize;
        let page: Vec<(String, DialogId)> = found.into_iter().take(limit as usize).collect();
        let next = if more {
            page.last().map(|(cursor, _)| cursor.clone())
        } else {
            None
        };
        let mut items = Vec::with_capacity(page.len());
        for (_, id) in page {
            if let Some(dialog) = read(self.store, &keys::dialog(id))? {
                items.push(dialog);
            }
        }
        Ok(Page { items, next })
    }

    /// A dialog's messages, oldest first.
    pub fn messages(
        &self,
        actor: EmployeeId,
        id: DialogId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Message>, Error> {
        self.dialog(actor, id)?;
        self.page(&keys::messages(id), after, limit)
    }

    /// A dialog's history and every operator who worked on it.
    pub fn history(
        &self,
        actor: EmployeeId,
        id: DialogId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Page<HistoryEvent>, Vec<EmployeeId>), Error> {
        let dialog = self.dialog(actor, id)?;
        Ok((
            self.page(&keys::history(id), after, limit)?,
            dialog.operators,
        ))
    }

    /// A page of a list read oldest first: at most `limit` items, and no more than
    /// [`PAGE_BYTES`] of stored records (but always one), read in small scans so that a few
    /// huge records never have to be held at once.
    fn page<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<T>, Error> {
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut cursor = after.map(|cursor| format!("{prefix}{cursor}"));
        loop {
            let wanted = (limit + 1 - items.len()).min(PAGE_SCAN);
            let rows = scan_entries(self.store, prefix, cursor.as_deref(), wanted as u32)?;
            let last_scan = rows.len() < wanted;
            for row in rows {
                let full = items.len() == limit || bytes + row.value.len() > PAGE_BYTES;
                if full && !items.is_empty() {
                    let next = cursor.map(|key| key[prefix.len()..].to_owned());
                    return Ok(Page { items, next });
                }
                bytes += row.value.len();
                items.push(decode(&row.value)?);
                cursor = Some(row.key);
            }
            if last_scan {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// Reading is open to every listed employee (by the settings in force, platform-fixed
    /// ones included, as for commands).
    pub(crate) fn require_reader(&self, actor: EmployeeId) -> Result<(), Error> {
        self.current_settings()?.require_listed(actor)
    }
}
