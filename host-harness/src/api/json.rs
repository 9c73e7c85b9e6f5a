//! The plugin's WIT values as the JSON of SPEC §4.

use serde_json::{Value, json};

use crate::plugin::bindings::exports::mybusiness::vk::{dialogs, leads, outbox, settings};
use crate::plugin::bindings::mybusiness::vk::types;

pub fn settings(view: &settings::SettingsView) -> Value {
    json!({
        "access_token": view.access_token,
        "secret": view.secret,
        "confirmation": view.confirmation,
        "group_name": view.group_name,
        "api_version": view.api_version,
        "employees": view.employees,
        "group_id": view.group_id,
    })
}

fn status(status: types::DialogStatus) -> &'static str {
    match status {
        types::DialogStatus::Open => "open",
        types::DialogStatus::Spam => "spam",
        types::DialogStatus::Finished => "finished",
    }
}

pub fn dialog(d: &dialogs::Dialog) -> Value {
    json!({
        "id": d.id,
        "status": status(d.status),
        "responsible": d.responsible,
        "participants": d.participants,
        "lead_id": d.lead_id,
        "lead_link": format!("/api/leads/{}", d.lead_id),
        "peer_id": d.peer_id,
        "name": d.name,
        "started_at": d.started_at,
        "messages_allowed": d.messages_allowed,
    })
}

pub fn message(m: &dialogs::Message) -> Value {
    let mut body = json!({
        "id": m.id,
        "direction": match m.direction {
            dialogs::Direction::Incoming => "in",
            dialogs::Direction::Outgoing => "out",
        },
        "text": m.text,
        "author": m.author,
        "sent_at": m.sent_at,
        "attachments": m.attachments.iter().map(|a| json!({"type": a.kind, "url": a.url, "title": a.title})).collect::<Vec<_>>(),
    });
    if let Some(delivery) = m.delivery {
        body["delivery"] = json!(match delivery {
            dialogs::Delivery::Pending => "pending",
            dialogs::Delivery::Sent => "sent",
            dialogs::Delivery::Failed => "failed",
        });
        body["error"] = json!(
            m.error
                .as_ref()
                .map(|e| json!({"code": e.code, "message": e.message}))
        );
    }
    if let Some(edited_at) = &m.edited_at {
        body["edited_at"] = json!(edited_at);
        body["previous_texts"] = json!(m.previous_texts);
    }
    body
}

pub fn history(h: &dialogs::DialogHistory) -> Value {
    let events: Vec<Value> = h
        .events
        .iter()
        .map(|e| {
            use dialogs::EventKind as K;
            let kind = match e.kind {
                K::MessageIn => "message-in",
                K::MessageOut => "message-out",
                K::Claimed => "claimed",
                K::Invited => "invited",
                K::Left => "left",
                K::Delegated => "delegated",
                K::ClosedAsSpam => "closed-as-spam",
                K::Finished => "finished",
                K::Restored => "restored",
                K::Reopened => "reopened",
            };
            json!({"at": e.at, "kind": kind, "actor": e.actor, "subject": e.subject, "message_id": e.message_id})
        })
        .collect();
    json!({"events": events, "operators": h.operators, "next": h.next})
}

fn communication(c: &types::Communication) -> Value {
    json!({
        "dialog_id": c.dialog_id,
        "started_at": c.started_at,
        "name": c.name,
        "link": c.link,
        "status": status(c.status),
    })
}

fn items(items: &[leads::Item]) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "name": i.name, "sku": i.sku, "quantity": i.quantity,
                "price": i.price, "currency": i.currency, "total": i.total,
            })
        })
        .collect()
}

pub fn lead(l: &leads::Lead) -> Value {
    json!({
        "id": l.id,
        "title": l.title,
        "first_name": l.first_name,
        "last_name": l.last_name,
        "source": l.source,
        "status": match l.status {
            leads::LeadStatus::New => "new",
            leads::LeadStatus::Converted => "converted",
        },
        "items": items(&l.items),
        "total": l.total,
        "currency": l.currency,
        "counterparty_id": l.counterparty_id,
        "order_id": l.order_id,
        "communication": communication(&l.communication),
    })
}

/// A lead after goods were added: the lead, with the new item (goods are appended) as `item`.
pub fn lead_with_new_item(l: &leads::Lead) -> Value {
    let mut body = lead(l);
    body["item"] = items(&l.items).pop().unwrap_or(Value::Null);
    body
}

pub fn counterparty(c: &leads::Counterparty) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "vk_user_id": c.vk_user_id,
        "vk_profile": c.vk_profile,
        "lead_id": c.lead_id,
        "communication": communication(&c.communication),
    })
}

pub fn order(o: &leads::Order) -> Value {
    json!({
        "id": o.id,
        "number": o.number,
        "status": o.status,
        "items": items(&o.items),
        "total": o.total,
        "currency": o.currency,
        "counterparty_id": o.counterparty_id,
        "lead_id": o.lead_id,
        "communication": communication(&o.communication),
    })
}

pub fn flush_report(r: &outbox::FlushReport) -> Value {
    json!({"sent": r.sent, "failed": r.failed, "pending": r.pending, "names_filled": r.names_filled})
}
