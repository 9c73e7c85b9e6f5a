//! vk-core's values as the JSON of SPEC §4: the one rendering, whichever component serves it.

use serde::Serialize;
use serde_json::{Value, json};
use vk_core::conversion::{Counterparty, Order};
use vk_core::delivery::FlushReport;
use vk_core::dialog::{
    Delivery, Dialog, DialogCounts, DialogStatus, Direction, EventKind, HistoryEvent, Message, Page,
};
use vk_core::directory::Employee;
use vk_core::intake::ChannelState;
use vk_core::lead::{Communication, Item, Lead, LeadStatus, format_money};
use vk_core::settings::SettingsView;
use vk_core::{EmployeeId, timestamp};

pub fn settings(view: &SettingsView) -> Value {
    json!({
        "access_token": view.access_token,
        "secret": view.secret,
        "confirmation": view.confirmation,
        "group_name": view.group_name,
        "api_version": view.api_version,
        "employees": ids(&view.employees),
        "group_id": view.group_id,
        "fixed_by_platform": view.fixed_by_platform,
    })
}

pub fn employee(employee: &Employee) -> Value {
    json!({"id": employee.id.to_string(), "name": employee.name})
}

fn ids(employees: &[EmployeeId]) -> Vec<String> {
    employees.iter().map(EmployeeId::to_string).collect()
}

fn status(status: DialogStatus) -> &'static str {
    match status {
        DialogStatus::Open => "open",
        DialogStatus::Spam => "spam",
        DialogStatus::Finished => "finished",
    }
}

fn direction(direction: Direction) -> &'static str {
    match direction {
        Direction::Incoming => "in",
        Direction::Outgoing => "out",
    }
}

/// A dialog as `reader` sees it: `unread` counts for an employee (0 for the admin). Typed,
/// not a `Value` tree: the open lines render 50 of these per page. Fields in the order a
/// `Value` object writes them (by name), so either rendering gives the same bytes.
#[derive(Serialize)]
pub struct DialogJson<'a> {
    id: String,
    last_activity_at: String,
    last_message: Option<LastMessageJson<'a>>,
    lead_id: String,
    lead_link: String,
    messages_allowed: bool,
    name: &'a str,
    participants: Vec<String>,
    peer_id: i64,
    responsible: Option<String>,
    started_at: String,
    status: &'static str,
    unread: u64,
    waiting_since: Option<String>,
}

#[derive(Serialize)]
struct LastMessageJson<'a> {
    at: String,
    direction: &'static str,
    text: &'a str,
}

pub fn dialog(d: &Dialog, reader: Option<EmployeeId>) -> DialogJson<'_> {
    let activity = &d.activity;
    DialogJson {
        id: d.id.to_string(),
        last_activity_at: timestamp(d.last_activity_at()),
        last_message: activity.last_message.as_ref().map(|last| LastMessageJson {
            at: timestamp(last.at),
            direction: direction(last.direction),
            text: &last.text,
        }),
        lead_id: d.lead_id.to_string(),
        lead_link: format!("/api/leads/{}", d.lead_id),
        messages_allowed: d.messages_allowed,
        name: &d.name,
        participants: ids(&d.participants),
        peer_id: d.peer_id,
        responsible: d.responsible.map(|e| e.to_string()),
        started_at: timestamp(d.started_at),
        status: status(d.status),
        unread: reader.map_or(0, |employee| d.unread(employee)),
        waiting_since: activity.waiting_since.map(timestamp),
    }
}

#[derive(Serialize)]
pub struct DialogsJson<'a> {
    dialogs: Vec<DialogJson<'a>>,
    next: &'a Option<String>,
}

pub fn dialogs(page: &Page<Dialog>, reader: Option<EmployeeId>) -> DialogsJson<'_> {
    DialogsJson {
        dialogs: page.items.iter().map(|d| dialog(d, reader)).collect(),
        next: &page.next,
    }
}

pub fn dialog_counts(counts: &DialogCounts) -> Value {
    json!({"queue": counts.queue, "mine": counts.mine, "all": counts.all})
}

pub fn channel_state(state: &ChannelState) -> Value {
    json!({
        "confirmed": state.confirmed,
        "last_event_at": state.last_event_at.map(timestamp),
        "messages_waiting": state.messages_waiting,
    })
}

/// A message of a dialog, typed like [`DialogJson`] (a dialog's page renders 50 of them).
/// `delivery` and `error` only for the CRM's messages, `edited_at` and `previous_texts` only
/// once edited.
#[derive(Serialize)]
pub struct MessageJson<'a> {
    attachments: Vec<AttachmentJson<'a>>,
    author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<&'static str>,
    direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Option<SendErrorJson<'a>>>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_texts: Option<&'a [String]>,
    sent_at: String,
    text: &'a str,
}

#[derive(Serialize)]
struct AttachmentJson<'a> {
    title: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a str,
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct SendErrorJson<'a> {
    code: i32,
    message: &'a str,
}

pub fn message(m: &Message) -> MessageJson<'_> {
    MessageJson {
        attachments: m
            .attachments
            .iter()
            .map(|a| AttachmentJson {
                title: a.title.as_deref(),
                kind: &a.kind,
                url: a.url.as_deref(),
            })
            .collect(),
        author: m.author.map(|e| e.to_string()),
        delivery: m.delivery.map(|delivery| match delivery {
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Failed => "failed",
        }),
        direction: direction(m.direction),
        edited_at: m.edited_at.map(timestamp),
        error: m.delivery.map(|_| {
            m.error.as_ref().map(|e| SendErrorJson {
                code: e.code,
                message: &e.message,
            })
        }),
        id: m.id.to_string(),
        previous_texts: m.edited_at.map(|_| m.previous_texts.as_slice()),
        sent_at: timestamp(m.sent_at),
        text: &m.text,
    }
}

#[derive(Serialize)]
pub struct MessagesJson<'a> {
    messages: Vec<MessageJson<'a>>,
    next: &'a Option<String>,
}

pub fn messages(page: &Page<Message>) -> MessagesJson<'_> {
    MessagesJson {
        messages: page.items.iter().map(message).collect(),
        next: &page.next,
    }
}

pub fn history(page: &Page<HistoryEvent>, operators: &[EmployeeId]) -> Value {
    let events: Vec<Value> = page
        .items
        .iter()
        .map(|e| {
            let kind = match e.kind {
                EventKind::MessageIn => "message-in",
                EventKind::MessageOut => "message-out",
                EventKind::Claimed => "claimed",
                EventKind::Invited => "invited",
                EventKind::Left => "left",
                EventKind::Delegated => "delegated",
                EventKind::ClosedAsSpam => "closed-as-spam",
                EventKind::Finished => "finished",
                EventKind::Restored => "restored",
                EventKind::Reopened => "reopened",
            };
            json!({
                "at": timestamp(e.at),
                "kind": kind,
                "actor": e.actor.map(|a| a.to_string()),
                "subject": e.subject.map(|s| s.to_string()),
                "message_id": e.message_id.map(|m| m.to_string()),
            })
        })
        .collect();
    json!({"events": events, "operators": ids(operators), "next": page.next})
}

fn communication(c: &Communication) -> Value {
    json!({
        "dialog_id": c.dialog_id.to_string(),
        "started_at": timestamp(c.started_at),
        "name": c.name,
        "link": c.link,
        "status": status(c.status),
    })
}

fn item(i: &Item) -> Value {
    json!({
        "id": i.id.to_string(),
        "name": i.name,
        "sku": i.sku,
        "quantity": i.quantity_text(),
        "price": format_money(i.price),
        "currency": i.currency,
        "total": format_money(i.total()),
    })
}

pub fn lead(l: &Lead, c: &Communication) -> Value {
    json!({
        "id": l.id.to_string(),
        "title": l.title,
        "first_name": l.first_name,
        "last_name": l.last_name,
        "source": l.source,
        "status": match l.status {
            LeadStatus::New => "new",
            LeadStatus::Converted => "converted",
        },
        "items": l.items.iter().map(item).collect::<Vec<_>>(),
        "total": format_money(l.total()),
        "currency": l.currency(),
        "counterparty_id": l.counterparty_id.map(|id| id.to_string()),
        "order_id": l.order_id.map(|id| id.to_string()),
        "communication": communication(c),
    })
}

/// A lead after goods were added: the lead, with the new item (goods are appended) as `item`.
pub fn lead_with_new_item(l: &Lead, c: &Communication) -> Value {
    let mut body = lead(l, c);
    body["item"] = l.items.last().map_or(Value::Null, item);
    body
}

pub fn counterparty(cp: &Counterparty, c: &Communication) -> Value {
    json!({
        "id": cp.id.to_string(),
        "name": cp.name,
        "vk_user_id": cp.vk_user_id,
        "vk_profile": cp.vk_profile(),
        "lead_id": cp.lead_id.to_string(),
        "communication": communication(c),
    })
}

pub fn order(o: &Order, c: &Communication) -> Value {
    json!({
        "id": o.id.to_string(),
        "number": o.number,
        "status": o.status,
        "items": o.items.iter().map(item).collect::<Vec<_>>(),
        "total": format_money(o.total()),
        "currency": o.currency(),
        "counterparty_id": o.counterparty_id.to_string(),
        "lead_id": o.lead_id.to_string(),
        "communication": communication(c),
    })
}

pub fn change_stamp(stamp: &str) -> Value {
    json!({"stamp": stamp})
}

/// A page of documents, each rendered as its own route renders it, under `field`.
pub fn documents<T>(
    field: &str,
    page: &Page<(T, Communication)>,
    render: impl Fn(&T, &Communication) -> Value,
) -> Value {
    let items: Vec<Value> = page.items.iter().map(|(d, c)| render(d, c)).collect();
    json!({field: items, "next": page.next})
}

pub fn flush_report(r: &FlushReport) -> Value {
    json!({
        "sent": r.sent,
        "failed": r.failed,
        "pending": r.pending,
        "names_filled": r.names_filled,
        "events_forgotten": r.events_forgotten,
    })
}
