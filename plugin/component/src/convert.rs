//! vk-core's answers as WIT values. One `IntoWit` impl per domain type, so `run` converts
//! whatever a command returns.

use vk_core::conversion::{Counterparty, Order};
use vk_core::delivery::FlushReport;
use vk_core::dialog::{
    Attachment, Delivery, Dialog, DialogStatus, Direction, EventKind, HistoryEvent, Message, Page,
};
use vk_core::intake::CallbackReply;
use vk_core::lead::{Communication, Item, Lead, LeadStatus, format_money};
use vk_core::settings::SettingsView;
use vk_core::{CounterpartyId, EmployeeId, Error, ErrorKind, OrderId, timestamp};

use crate::wit::exports::mybusiness::vk::{dialogs, leads, outbox, settings, webhook};
use crate::wit::mybusiness::vk::types;

/// A domain value's WIT form.
pub trait IntoWit {
    type Wit;
    fn into_wit(self) -> Self::Wit;
}

impl IntoWit for Error {
    type Wit = types::Error;
    fn into_wit(self) -> types::Error {
        let kind = match self.kind() {
            ErrorKind::BadInput => types::ErrorKind::BadInput,
            ErrorKind::Forbidden => types::ErrorKind::Forbidden,
            ErrorKind::NotFound => types::ErrorKind::NotFound,
            ErrorKind::Conflict => types::ErrorKind::Conflict,
            ErrorKind::Unavailable => types::ErrorKind::Unavailable,
        };
        types::Error {
            kind,
            code: self.code().to_owned(),
            message: self.to_string(),
        }
    }
}

impl IntoWit for CallbackReply {
    type Wit = webhook::CallbackReply;
    fn into_wit(self) -> webhook::CallbackReply {
        match self {
            CallbackReply::Confirmation(text) => webhook::CallbackReply::Confirmation(text),
            CallbackReply::Ok => webhook::CallbackReply::Ok,
        }
    }
}

impl IntoWit for SettingsView {
    type Wit = settings::SettingsView;
    fn into_wit(self) -> settings::SettingsView {
        settings::SettingsView {
            access_token: self.access_token,
            secret: self.secret,
            confirmation: self.confirmation,
            group_name: self.group_name,
            api_version: self.api_version,
            employees: ids(&self.employees),
            group_id: self.group_id,
        }
    }
}

fn ids(employees: &[EmployeeId]) -> Vec<String> {
    employees.iter().map(EmployeeId::to_string).collect()
}

fn status(status: DialogStatus) -> types::DialogStatus {
    match status {
        DialogStatus::Open => types::DialogStatus::Open,
        DialogStatus::Spam => types::DialogStatus::Spam,
        DialogStatus::Finished => types::DialogStatus::Finished,
    }
}

impl IntoWit for Dialog {
    type Wit = dialogs::Dialog;
    fn into_wit(self) -> dialogs::Dialog {
        dialogs::Dialog {
            id: self.id.to_string(),
            status: status(self.status),
            responsible: self.responsible.map(|e| e.to_string()),
            participants: ids(&self.participants),
            lead_id: self.lead_id.to_string(),
            peer_id: self.peer_id,
            name: self.name,
            started_at: timestamp(self.started_at),
            messages_allowed: self.messages_allowed,
        }
    }
}

impl IntoWit for Message {
    type Wit = dialogs::Message;
    fn into_wit(self) -> dialogs::Message {
        dialogs::Message {
            id: self.id.to_string(),
            direction: match self.direction {
                Direction::Incoming => dialogs::Direction::Incoming,
                Direction::Outgoing => dialogs::Direction::Outgoing,
            },
            text: self.text,
            author: self.author.map(|e| e.to_string()),
            sent_at: timestamp(self.sent_at),
            delivery: self.delivery.map(|d| match d {
                Delivery::Pending => dialogs::Delivery::Pending,
                Delivery::Sent => dialogs::Delivery::Sent,
                Delivery::Failed => dialogs::Delivery::Failed,
            }),
            error: self.error.map(|e| dialogs::SendError {
                code: e.code,
                message: e.message,
            }),
            attachments: self
                .attachments
                .into_iter()
                .map(IntoWit::into_wit)
                .collect(),
            edited_at: self.edited_at.map(timestamp),
            previous_texts: self.previous_texts,
        }
    }
}

impl IntoWit for Attachment {
    type Wit = dialogs::Attachment;
    fn into_wit(self) -> dialogs::Attachment {
        dialogs::Attachment {
            kind: self.kind,
            url: self.url,
            title: self.title,
        }
    }
}

impl IntoWit for Page<Dialog> {
    type Wit = dialogs::DialogPage;
    fn into_wit(self) -> dialogs::DialogPage {
        dialogs::DialogPage {
            dialogs: self.items.into_iter().map(IntoWit::into_wit).collect(),
            next: self.next,
        }
    }
}

impl IntoWit for Page<Message> {
    type Wit = dialogs::MessagePage;
    fn into_wit(self) -> dialogs::MessagePage {
        dialogs::MessagePage {
            messages: self.items.into_iter().map(IntoWit::into_wit).collect(),
            next: self.next,
        }
    }
}

impl IntoWit for (Page<HistoryEvent>, Vec<EmployeeId>) {
    type Wit = dialogs::DialogHistory;
    fn into_wit(self) -> dialogs::DialogHistory {
        let (page, operators) = self;
        dialogs::DialogHistory {
            events: page.items.into_iter().map(IntoWit::into_wit).collect(),
            operators: ids(&operators),
            next: page.next,
        }
    }
}

impl IntoWit for HistoryEvent {
    type Wit = dialogs::HistoryEvent;
    fn into_wit(self) -> dialogs::HistoryEvent {
        use dialogs::EventKind as Wit;
        let kind = match self.kind {
            EventKind::MessageIn => Wit::MessageIn,
            EventKind::MessageOut => Wit::MessageOut,
            EventKind::Claimed => Wit::Claimed,
            EventKind::Invited => Wit::Invited,
            EventKind::Left => Wit::Left,
            EventKind::Delegated => Wit::Delegated,
            EventKind::ClosedAsSpam => Wit::ClosedAsSpam,
            EventKind::Finished => Wit::Finished,
            EventKind::Restored => Wit::Restored,
            EventKind::Reopened => Wit::Reopened,
        };
        dialogs::HistoryEvent {
            at: timestamp(self.at),
            kind,
            actor: self.actor.map(|e| e.to_string()),
            subject: self.subject.map(|e| e.to_string()),
            message_id: self.message_id.map(|m| m.to_string()),
        }
    }
}

impl IntoWit for Communication {
    type Wit = types::Communication;
    fn into_wit(self) -> types::Communication {
        types::Communication {
            dialog_id: self.dialog_id.to_string(),
            started_at: timestamp(self.started_at),
            name: self.name,
            link: self.link,
            status: status(self.status),
        }
    }
}

fn items(items: &[Item]) -> Vec<leads::Item> {
    items
        .iter()
        .map(|item| leads::Item {
            id: item.id.to_string(),
            name: item.name.clone(),
            sku: item.sku.clone(),
            quantity: item.quantity_text(),
            price: format_money(item.price),
            currency: item.currency.clone(),
            total: format_money(item.total()),
        })
        .collect()
}

impl IntoWit for (Lead, Communication) {
    type Wit = leads::Lead;
    fn into_wit(self) -> leads::Lead {
        let (lead, communication) = self;
        leads::Lead {
            id: lead.id.to_string(),
            title: lead.title.clone(),
            first_name: lead.first_name.clone(),
            last_name: lead.last_name.clone(),
            source: lead.source.clone(),
            status: match lead.status {
                LeadStatus::New => leads::LeadStatus::New,
                LeadStatus::Converted => leads::LeadStatus::Converted,
            },
            items: items(&lead.items),
            total: format_money(lead.total()),
            currency: lead.currency().to_owned(),
            counterparty_id: lead.counterparty_id.map(|c| c.to_string()),
            order_id: lead.order_id.map(|o| o.to_string()),
            communication: communication.into_wit(),
        }
    }
}

impl IntoWit for (CounterpartyId, OrderId) {
    type Wit = leads::Conversion;
    fn into_wit(self) -> leads::Conversion {
        leads::Conversion {
            counterparty_id: self.0.to_string(),
            order_id: self.1.to_string(),
        }
    }
}

impl IntoWit for (Counterparty, Communication) {
    type Wit = leads::Counterparty;
    fn into_wit(self) -> leads::Counterparty {
        let (counterparty, communication) = self;
        leads::Counterparty {
            id: counterparty.id.to_string(),
            vk_profile: counterparty.vk_profile(),
            name: counterparty.name,
            vk_user_id: counterparty.vk_user_id,
            lead_id: counterparty.lead_id.to_string(),
            communication: communication.into_wit(),
        }
    }
}

impl IntoWit for (Order, Communication) {
    type Wit = leads::Order;
    fn into_wit(self) -> leads::Order {
        let (order, communication) = self;
        leads::Order {
            id: order.id.to_string(),
            number: order.number.clone(),
            status: order.status.clone(),
            items: items(&order.items),
            total: format_money(order.total()),
            currency: order.currency().to_owned(),
            counterparty_id: order.counterparty_id.to_string(),
            lead_id: order.lead_id.to_string(),
            communication: communication.into_wit(),
        }
    }
}

impl IntoWit for FlushReport {
    type Wit = outbox::FlushReport;
    fn into_wit(self) -> outbox::FlushReport {
        outbox::FlushReport {
            sent: self.sent,
            failed: self.failed,
            pending: self.pending,
            names_filled: self.names_filled,
            events_forgotten: self.events_forgotten,
        }
    }
}
