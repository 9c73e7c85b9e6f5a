//! Open lines ("Открытые линии", §2–§8): dialogs, their messages and history, and the
//! operators' commands with the rules of who may do what.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::directory::Subject;
use crate::error::Error;
use crate::ids::{DialogId, EmployeeId, LeadId, MessageId};
use crate::keys;
use crate::settings::Settings;
use crate::tx::{Tx, backfill, count, decode, read, scan, scan_entries, transact};

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
    #[serde(with = "crate::stored_time")]
    pub started_at: DateTime<Utc>,
    /// False after the person denied messages from the community (`message_deny`).
    #[serde(default = "allowed")]
    pub messages_allowed: bool,
    /// The conversation at a glance, for the lists.
    #[serde(default)]
    pub activity: Activity,
}

fn allowed() -> bool {
    true
}

/// What the lists show of a dialog's conversation, kept on the dialog by every message so
/// that a list never reads messages. A dialog stored before it was kept has none of it: its
/// last activity is its start, and it counts only messages since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// When the last message came in or went out.
    #[serde(default, with = "crate::stored_time::option")]
    pub last_at: Option<DateTime<Utc>>,
    pub last_message: Option<LastMessage>,
    /// When the earliest incoming message that no outgoing one followed came.
    #[serde(default, with = "crate::stored_time::option")]
    pub waiting_since: Option<DateTime<Utc>>,
    /// Incoming messages so far.
    pub incoming: u64,
    /// Each employee's read marker: how many incoming messages there were when they last
    /// read the dialog.
    pub read: BTreeMap<EmployeeId, u64>,
}

/// The last message of a dialog, as a list row shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastMessage {
    pub message_id: MessageId,
    pub direction: Direction,
    /// The first line of its text, at most [`PREVIEW_CHARS`] characters.
    pub text: String,
    /// When the CRM stored it.
    #[serde(with = "crate::stored_time")]
    pub at: DateTime<Utc>,
}

/// The longest preview of a last message.
pub const PREVIEW_CHARS: usize = 200;

/// The first line of a text that has any, cut at [`PREVIEW_CHARS`] characters.
fn preview(text: &str) -> String {
    let line = text.trim_start().lines().next().unwrap_or_default();
    line.trim_end().chars().take(PREVIEW_CHARS).collect()
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
    #[serde(with = "crate::stored_time")]
    pub sent_at: DateTime<Utc>,
    pub delivery: Option<Delivery>,
    pub error: Option<SendError>,
    pub attachments: Vec<Attachment>,
    #[serde(default, with = "crate::stored_time::option")]
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
    #[serde(with = "crate::stored_time")]
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

/// The lists of the open lines ("Открытые линии"), each sorted by last activity, newest
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogList {
    /// The queue and the caller's own: what SPEC's "list open lines" shows.
    Open,
    /// «Очередь»: open dialogs nobody is responsible for.
    Queue,
    /// «Мои»: open dialogs the caller is responsible for or takes part in.
    Mine,
    /// «Все»: every open dialog, whoever is responsible.
    All,
    /// «Спам»: every dialog closed as spam.
    Spam,
    /// «Завершённые»: every finished dialog.
    Finished,
}

impl From<DialogStatus> for DialogList {
    fn from(status: DialogStatus) -> DialogList {
        match status {
            DialogStatus::Open => DialogList::Open,
            DialogStatus::Spam => DialogList::Spam,
            DialogStatus::Finished => DialogList::Finished,
        }
    }
}

impl DialogList {
    /// The index prefixes the list of `reader` is merged from (the admin works on no
    /// dialog: their «Мои» is empty).
    fn prefixes(self, reader: Subject) -> Vec<String> {
        let mine = match reader {
            Subject::Employee(employee) => vec![keys::working(employee)],
            Subject::Admin => Vec::new(),
        };
        match self {
            DialogList::Open => [vec![keys::QUEUE.to_owned()], mine].concat(),
            DialogList::Queue => vec![keys::QUEUE.to_owned()],
            DialogList::Mine => mine,
            DialogList::All => vec![keys::OPEN.to_owned()],
            DialogList::Spam => vec![keys::SPAM.to_owned()],
            DialogList::Finished => vec![keys::FINISHED.to_owned()],
        }
    }
}

/// How many dialogs the tabs of the open lines hold, each counted up to
/// [`crate::COUNT_CAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogCounts {
    pub queue: u32,
    pub mine: u32,
    pub all: u32,
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
    /// When the last message came in or went out, or the dialog started.
    pub fn last_activity_at(&self) -> DateTime<Utc> {
        self.activity.last_at.unwrap_or(self.started_at)
    }

    /// How many incoming messages `employee` has not read.
    pub fn unread(&self, employee: EmployeeId) -> u64 {
        let read = self.activity.read.get(&employee).copied().unwrap_or(0);
        self.activity.incoming.saturating_sub(read)
    }

    /// Moves `employee`'s read marker to now: every message so far is read.
    pub(crate) fn mark_read(&mut self, employee: EmployeeId) {
        self.activity.read.insert(employee, self.activity.incoming);
    }

    /// Takes a new message, stored `at`, into the dialog's activity. An outgoing message
    /// answers whatever the person was waiting for.
    pub(crate) fn note_message(&mut self, message: &Message, at: DateTime<Utc>) {
        let activity = &mut self.activity;
        activity.last_at = Some(at);
        activity.last_message = Some(LastMessage {
            message_id: message.id,
            direction: message.direction,
            text: preview(&message.text),
            at,
        });
        match message.direction {
            Direction::Incoming => {
                activity.incoming += 1;
                activity.waiting_since.get_or_insert(at);
            }
            Direction::Outgoing => activity.waiting_since = None,
        }
    }

    /// Takes a message's new text, if it is the last message.
    pub(crate) fn note_edit(&mut self, message: &Message) {
        if let Some(last) = &mut self.activity.last_message
            && last.message_id == message.id
        {
            last.text = preview(&message.text);
        }
    }

    /// The index keys that list this dialog, derived from its state alone, so keeping the
    /// indexes right is a set difference on every save. Lists are sorted by last activity.
    fn index_keys(&self) -> BTreeSet<String> {
        let suffix = keys::newest_first(self.last_activity_at(), self.id);
        let mut index = BTreeSet::new();
        match self.status {
            DialogStatus::Open => {
                index.insert(format!("{}{suffix}", keys::OPEN));
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

/// Lists dialogs stored before a list of their state existed (`index/open/`), a page per
/// call.
pub(crate) fn list_unlisted(store: &dyn crate::ports::Store) -> Result<(), Error> {
    backfill(
        store,
        &keys::listed_up_to(keys::DIALOGS),
        keys::DIALOGS,
        |tx, key, _: &serde::de::IgnoredAny| {
            // Read again in the transaction: the commit rests on the state listed.
            if let Some(dialog) = tx.get::<Dialog>(key)? {
                for index in dialog.index_keys() {
                    tx.put_missing(index, &dialog.id)?;
                }
            }
            Ok(())
        },
    )
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

    /// Read ("прочитано"): moves the actor's read marker to now (any listed employee, any
    /// status). Sending a message does the same for its author.
    pub fn mark_read(&self, actor: EmployeeId, id: DialogId) -> Result<Dialog, Error> {
        self.command(actor, id, |dialog, _, _| {
            dialog.mark_read(actor);
            Ok(Vec::new())
        })
    }

    /// Reads a dialog (any listed employee, and the admin).
    pub fn dialog(&self, reader: impl Into<Subject>, id: DialogId) -> Result<Dialog, Error> {
        self.require_reader(reader.into())?;
        read(self.store, &keys::dialog(id))?.ok_or(Error::DialogNotFound)
    }

    /// A list of the open lines as `actor` sees it (a [`DialogList`], or a status: `Open`
    /// is the queue and the actor's own). Newest activity first; each page is a bounded scan
    /// of the indexes, never of the whole store.
    pub fn dialogs(
        &self,
        reader: impl Into<Subject>,
        list: impl Into<DialogList>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Dialog>, Error> {
        let reader = reader.into();
        self.require_reader(reader)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut found = BTreeSet::new();
        for prefix in &list.into().prefixes(reader) {
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

    /// The counts of the tabs «Очередь», «Мои» and «Все» for `actor`: bounded scans of
    /// the indexes, each stopping at [`crate::COUNT_CAP`].
    pub fn dialog_counts(&self, reader: impl Into<Subject>) -> Result<DialogCounts, Error> {
        let reader = reader.into();
        self.require_reader(reader)?;
        let count = |prefix: &str| count(self.store, prefix, crate::COUNT_CAP);
        let mine = match reader {
            Subject::Employee(employee) => count(&keys::working(employee))?,
            Subject::Admin => 0,
        };
        Ok(DialogCounts {
            queue: count(keys::QUEUE)?,
            mine,
            all: count(keys::OPEN)?,
        })
    }

    /// A dialog's messages, oldest first.
    pub fn messages(
        &self,
        reader: impl Into<Subject>,
        id: DialogId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Message>, Error> {
        self.dialog(reader, id)?;
        self.page(&keys::messages(id), after, limit)
    }

    /// A dialog's history and every operator who worked on it.
    pub fn history(
        &self,
        reader: impl Into<Subject>,
        id: DialogId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Page<HistoryEvent>, Vec<EmployeeId>), Error> {
        let dialog = self.dialog(reader, id)?;
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

    /// Reading is open to the admin and to every listed employee (by the settings in
    /// force, platform-fixed ones included, as for commands).
    pub(crate) fn require_reader(&self, reader: Subject) -> Result<(), Error> {
        match reader {
            Subject::Admin => Ok(()),
            Subject::Employee(employee) => self.current_settings()?.require_listed(employee),
        }
    }
}
