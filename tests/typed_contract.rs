//! The typed contract (`wit/*.wit`, world `vk-plugin`): every function of every interface
//! the plugin exports, called on the real component (`vk_plugin.wasm`) in the real host
//! code (`vk_host::plugin::Plugin`, a memory store, outbound HTTP to the VK stand-in).
//!
//! Each story runs step by step on two fresh worlds: one driven through the typed exports
//! (`webhook`, `settings`, `dialogs`, `leads`, `outbox`), as a CRM host calls them with its
//! own employees' ids, and one through `api.handle`, as an operator's requests (method,
//! path, JSON body, the employee's bearer token). Every step must come out the same in
//! both: the same dialog, message, page, lead, document or report, or the same refusal
//! (its code, its message, and its kind as the HTTP status the API answers with). So a CRM
//! calling `dialogs.claim` gets what an operator clicking «Закрепить за мной» gets.
//!
//! Ids and page cursors are made in each world, so each world names them in the order they
//! first appear (`E0`…, `stranger`, `#1`…, `page1`…) and the stories use those names; times
//! are compared as well-formed only. A refused step is also proven to have changed nothing:
//! everything either world shows (settings, every list of every listed employee, each
//! dialog with its messages, history, lead and documents, what VK delivered) is read before
//! and after it.
//!
//! The list of exported functions is read from the WIT files, and the wrappers that call
//! the component note every function they call: a function without a story fails
//! `every_exported_function_is_called_by_a_story`.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use support::{
    ACCESS_TOKEN, ADMIN, CALLBACK_PATH, CONFIRMATION, Failure, GROUP, SECRET, VkStandIn, cache_dir,
    confirmation, eventually, message_new, plugin_path, root, user_event,
};
use vk_host::plugin::bindings::VkPlugin;
use vk_host::plugin::bindings::exports::mybusiness::vk::{
    api, dialogs, leads, outbox, settings, webhook,
};
use vk_host::plugin::bindings::mybusiness::vk::types;
use vk_host::plugin::{Limits, Plugin, State};

/// The employees of the CRM listed in the open lines, as the stories name them.
const STAFF: [&str; 3] = ["E0", "E1", "E2"];
/// An employee of the CRM who is not listed in the open lines.
const STRANGER: &str = "stranger";
/// The people who write to the community.
const PERSON: i64 = 1001;
const OTHER: i64 = 2002;
/// An id that names nothing, and a text that is no id at all.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";
const NOT_AN_ID: &str = "not-an-id";

/// One step of a story: a call of the contract, with the labels outcomes show for ids.
#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    /// VK posts this callback body.
    Callback(&'a str),
    GetSettings,
    PutSettings(&'a Update<'a>),
    ResetGroupId,
    Flush,
    /// (actor, status, after, limit)
    OpenLines(&'a str, &'a str, Option<&'a str>, u32),
    /// (actor, dialog)
    Dialog(&'a str, &'a str),
    /// (actor, dialog, after, limit)
    Messages(&'a str, &'a str, Option<&'a str>, u32),
    /// (actor, dialog, after, limit)
    History(&'a str, &'a str, Option<&'a str>, u32),
    Claim(&'a str, &'a str),
    /// (actor, dialog, text)
    Send(&'a str, &'a str, &'a str),
    /// (actor, dialog, invitees)
    Invite(&'a str, &'a str, &'a [&'a str]),
    Leave(&'a str, &'a str),
    /// (actor, dialog, to)
    Delegate(&'a str, &'a str, &'a str),
    Spam(&'a str, &'a str),
    Finish(&'a str, &'a str),
    Restore(&'a str, &'a str),
    /// (actor, lead)
    Lead(&'a str, &'a str),
    /// (actor, lead, goods)
    AddItem(&'a str, &'a str, &'a Goods<'a>),
    /// (actor, lead, item, quantity)
    SetQuantity(&'a str, &'a str, &'a str, &'a str),
    /// (actor, lead, item)
    RemoveItem(&'a str, &'a str, &'a str),
    Convert(&'a str, &'a str),
    RestoreDialog(&'a str, &'a str),
    /// (actor, counterparty)
    Counterparty(&'a str, &'a str),
    /// (actor, order)
    Order(&'a str, &'a str),
}

use Op::*;

impl<'a> Op<'a> {
    /// The page of the same list after `cursor`.
    fn after<'b>(self, cursor: &'b str) -> Op<'b>
    where
        'a: 'b,
    {
        match self {
            OpenLines(actor, status, _, limit) => OpenLines(actor, status, Some(cursor), limit),
            Messages(actor, d, _, limit) => Messages(actor, d, Some(cursor), limit),
            History(actor, d, _, limit) => History(actor, d, Some(cursor), limit),
            other => panic!("{other:?} reads no list"),
        }
    }
}

/// A change of settings; `employees` are labels.
#[derive(Debug, Default)]
struct Update<'a> {
    access_token: Option<&'a str>,
    secret: Option<&'a str>,
    confirmation: Option<&'a str>,
    group_name: Option<&'a str>,
    api_version: Option<&'a str>,
    employees: Option<&'a [&'a str]>,
}

/// A new line of goods.
#[derive(Debug, Clone, Copy)]
struct Goods<'a> {
    name: &'a str,
    sku: Option<&'a str>,
    quantity: &'a str,
    price: &'a str,
    currency: Option<&'a str>,
}

const CAKE: Goods<'static> = Goods {
    name: "Торт «Наполеон»",
    sku: Some("NAP-1"),
    quantity: "2",
    price: "1850.00",
    currency: None,
};

const CANDLES: Goods<'static> = Goods {
    name: "Свечи",
    sku: None,
    quantity: "1.5",
    price: "99.99",
    currency: Some("RUB"),
};

/// The functions a world called, as `interface.function`.
type Called = BTreeSet<&'static str>;

/// How one world's ids and cursors are named in outcomes.
#[derive(Default)]
struct Names {
    label: HashMap<String, String>,
    real: HashMap<String, String>,
    ids: usize,
    pages: usize,
}

impl Names {
    fn give(&mut self, real: &str, label: &str) {
        self.label.insert(real.to_owned(), label.to_owned());
        self.real.insert(label.to_owned(), real.to_owned());
    }

    /// The label of `real`, a new one (`#n`, or `page<n>` for a cursor) if it has none.
    fn of(&mut self, real: &str, cursor: bool) -> String {
        if let Some(label) = self.label.get(real) {
            return label.clone();
        }
        let label = if cursor {
            self.pages += 1;
            format!("page{}", self.pages)
        } else {
            self.ids += 1;
            format!("#{}", self.ids)
        };
        self.give(real, &label);
        label
    }

    /// What `label` stands for in this world (text that is no label stands for itself).
    fn real(&self, label: &str) -> String {
        self.real
            .get(label)
            .map_or_else(|| label.to_owned(), String::clone)
    }

    /// `value` with every id and cursor replaced by its label and every time by `<time>`.
    fn normalize(&mut self, value: Value) -> Value {
        match value {
            Value::String(text) => Value::String(self.text(&text)),
            Value::Array(items) => items.into_iter().map(|v| self.normalize(v)).collect(),
            Value::Object(fields) => fields
                .into_iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("next", Value::String(cursor)) => Value::String(self.of(&cursor, true)),
                        (_, value) => self.normalize(value),
                    };
                    (key, value)
                })
                .collect(),
            other => other,
        }
    }

    /// A text with its ids named. A time in the contract's one form (RFC 3339, UTC, whole
    /// seconds, `Z`) becomes `<time>`: the worlds' clocks differ. A time in any other form
    /// stays, so it differs between the worlds.
    fn text(&mut self, text: &str) -> String {
        let is_time = text.len() == "2026-01-01T10:00:00Z".len()
            && text.ends_with('Z')
            && chrono::DateTime::parse_from_rfc3339(text).is_ok();
        if is_time {
            return "<time>".to_owned();
        }
        let mut named = String::new();
        let mut rest = text;
        while let Some(at) = find_uuid(rest) {
            named.push_str(&rest[..at]);
            named.push_str(&self.of(&rest[at..at + 36], false));
            rest = &rest[at + 36..];
        }
        named.push_str(rest);
        named
    }
}

/// Where the first UUID in `text` starts.
fn find_uuid(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let last = bytes.len().checked_sub(36)?;
    (0..=last).find(|&at| {
        bytes[at..at + 36].iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
    })
}

/// The real component in the real host code, on a fresh memory store, VK at the stand-in.
fn load(vk: &VkStandIn) -> Plugin {
    let http = vk_host::http::Outbound::new(Some(&vk.base), Duration::from_secs(10), 1 << 20)
        .expect("a client");
    let limits = Limits {
        instances: 4,
        waiting_on_vk: 2,
        ..Limits::default()
    };
    Plugin::load(
        Path::new(&plugin_path()),
        Path::new(&cache_dir()),
        Arc::new(vk_core::memory::MemoryStore::new()),
        Arc::new(http),
        limits,
    )
    .expect("the plugin loads (make plugin)")
}

/// A world driven through the typed exports, as a CRM host with its own employees.
struct Typed {
    plugin: Plugin,
    vk: VkStandIn,
    names: Names,
}

impl Typed {
    fn new() -> Typed {
        let vk = VkStandIn::start();
        let plugin = load(&vk);
        let mut names = Names::default();
        // The CRM's employee ids: the plugin only needs them listed, not known.
        for label in STAFF.into_iter().chain([STRANGER]) {
            names.give(&uuid::Uuid::new_v4().to_string(), label);
        }
        Typed { plugin, vk, names }
    }

    /// Calls one exported function, noting it as called.
    fn call<R>(
        &self,
        called: &mut Called,
        function: &'static str,
        call: impl FnOnce(&VkPlugin, &mut wasmtime::Store<State>) -> wasmtime::Result<R>,
    ) -> R {
        called.insert(function);
        self.plugin
            .call(call)
            .unwrap_or_else(|fault| panic!("{function}: {fault}"))
    }

    fn run(&self, op: Op<'_>, called: &mut Called) -> Value {
        let id = |label: &str| self.names.real(label);
        let after = |cursor: Option<&str>| cursor.map(id);
        match op {
            Callback(body) => outcome(
                self.call(called, "webhook.handle", |p, s| {
                    p.mybusiness_vk_webhook().call_handle(s, body.as_bytes())
                }),
                |reply| match reply {
                    webhook::CallbackReply::Confirmation(text) => json!(text),
                    webhook::CallbackReply::Ok => json!("ok"),
                },
            ),
            GetSettings => outcome(
                self.call(called, "settings.get", |p, s| {
                    p.mybusiness_vk_settings().call_get(s)
                }),
                settings_view,
            ),
            PutSettings(update) => {
                let update = settings::SettingsUpdate {
                    access_token: update.access_token.map(String::from),
                    secret: update.secret.map(String::from),
                    confirmation: update.confirmation.map(String::from),
                    group_name: update.group_name.map(String::from),
                    api_version: update.api_version.map(String::from),
                    employees: update
                        .employees
                        .map(|list| list.iter().map(|e| id(e)).collect()),
                };
                outcome(
                    self.call(called, "settings.put", |p, s| {
                        p.mybusiness_vk_settings().call_put(s, &update)
                    }),
                    settings_view,
                )
            }
            ResetGroupId => outcome(
                self.call(called, "settings.reset-group-id", |p, s| {
                    p.mybusiness_vk_settings().call_reset_group_id(s)
                }),
                settings_view,
            ),
            Flush => outcome(
                self.call(called, "outbox.flush", |p, s| {
                    p.mybusiness_vk_outbox().call_flush(s)
                }),
                flush_report,
            ),
            OpenLines(actor, status, cursor, limit) => {
                let status = match status {
                    "open" => types::DialogStatus::Open,
                    "spam" => types::DialogStatus::Spam,
                    "finished" => types::DialogStatus::Finished,
                    other => panic!("the typed export has no list {other:?}"),
                };
                outcome(
                    self.call(called, "dialogs.open-lines", |p, s| {
                        p.mybusiness_vk_dialogs().call_open_lines(
                            s,
                            &id(actor),
                            status,
                            after(cursor).as_deref(),
                            limit,
                        )
                    }),
                    |page| json!({"dialogs": page.dialogs.into_iter().map(dialog).collect::<Vec<_>>(), "next": page.next}),
                )
            }
            Dialog(actor, d) => outcome(
                self.call(called, "dialogs.get", |p, s| {
                    p.mybusiness_vk_dialogs().call_get(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Messages(actor, d, cursor, limit) => outcome(
                self.call(called, "dialogs.messages", |p, s| {
                    p.mybusiness_vk_dialogs().call_messages(
                        s,
                        &id(actor),
                        &id(d),
                        after(cursor).as_deref(),
                        limit,
                    )
                }),
                |page| json!({"messages": page.messages.into_iter().map(message).collect::<Vec<_>>(), "next": page.next}),
            ),
            History(actor, d, cursor, limit) => outcome(
                self.call(called, "dialogs.history", |p, s| {
                    p.mybusiness_vk_dialogs().call_history(
                        s,
                        &id(actor),
                        &id(d),
                        after(cursor).as_deref(),
                        limit,
                    )
                }),
                history,
            ),
            Claim(actor, d) => outcome(
                self.call(called, "dialogs.claim", |p, s| {
                    p.mybusiness_vk_dialogs().call_claim(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Send(actor, d, text) => outcome(
                self.call(called, "dialogs.send", |p, s| {
                    p.mybusiness_vk_dialogs()
                        .call_send(s, &id(actor), &id(d), text)
                }),
                message,
            ),
            Invite(actor, d, invitees) => {
                let invitees: Vec<String> = invitees.iter().map(|e| id(e)).collect();
                outcome(
                    self.call(called, "dialogs.invite", |p, s| {
                        p.mybusiness_vk_dialogs()
                            .call_invite(s, &id(actor), &id(d), &invitees)
                    }),
                    dialog,
                )
            }
            Leave(actor, d) => outcome(
                self.call(called, "dialogs.leave", |p, s| {
                    p.mybusiness_vk_dialogs().call_leave(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Delegate(actor, d, to) => outcome(
                self.call(called, "dialogs.delegate", |p, s| {
                    p.mybusiness_vk_dialogs()
                        .call_delegate(s, &id(actor), &id(d), &id(to))
                }),
                dialog,
            ),
            Spam(actor, d) => outcome(
                self.call(called, "dialogs.close-as-spam", |p, s| {
                    p.mybusiness_vk_dialogs()
                        .call_close_as_spam(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Finish(actor, d) => outcome(
                self.call(called, "dialogs.finish", |p, s| {
                    p.mybusiness_vk_dialogs().call_finish(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Restore(actor, d) => outcome(
                self.call(called, "dialogs.restore", |p, s| {
                    p.mybusiness_vk_dialogs()
                        .call_restore(s, &id(actor), &id(d))
                }),
                dialog,
            ),
            Lead(actor, l) => outcome(
                self.call(called, "leads.get", |p, s| {
                    p.mybusiness_vk_leads().call_get(s, &id(actor), &id(l))
                }),
                lead,
            ),
            AddItem(actor, l, goods) => {
                let item = leads::NewItem {
                    name: goods.name.to_owned(),
                    sku: goods.sku.map(String::from),
                    quantity: goods.quantity.to_owned(),
                    price: goods.price.to_owned(),
                    currency: goods.currency.map(String::from),
                };
                outcome(
                    self.call(called, "leads.add-item", |p, s| {
                        p.mybusiness_vk_leads()
                            .call_add_item(s, &id(actor), &id(l), &item)
                    }),
                    lead,
                )
            }
            SetQuantity(actor, l, item, quantity) => outcome(
                self.call(called, "leads.set-quantity", |p, s| {
                    p.mybusiness_vk_leads().call_set_quantity(
                        s,
                        &id(actor),
                        &id(l),
                        &id(item),
                        quantity,
                    )
                }),
                lead,
            ),
            RemoveItem(actor, l, item) => outcome(
                self.call(called, "leads.remove-item", |p, s| {
                    p.mybusiness_vk_leads()
                        .call_remove_item(s, &id(actor), &id(l), &id(item))
                }),
                lead,
            ),
            Convert(actor, l) => outcome(
                self.call(called, "leads.convert", |p, s| {
                    p.mybusiness_vk_leads().call_convert(s, &id(actor), &id(l))
                }),
                |c| json!({"counterparty_id": c.counterparty_id, "order_id": c.order_id}),
            ),
            RestoreDialog(actor, l) => outcome(
                self.call(called, "leads.restore-dialog", |p, s| {
                    p.mybusiness_vk_leads()
                        .call_restore_dialog(s, &id(actor), &id(l))
                }),
                dialog,
            ),
            Counterparty(actor, c) => outcome(
                self.call(called, "leads.read-counterparty", |p, s| {
                    p.mybusiness_vk_leads()
                        .call_read_counterparty(s, &id(actor), &id(c))
                }),
                counterparty,
            ),
            Order(actor, o) => outcome(
                self.call(called, "leads.read-order", |p, s| {
                    p.mybusiness_vk_leads()
                        .call_read_order(s, &id(actor), &id(o))
                }),
                order,
            ),
        }
    }
}

/// A world driven through `api.handle`, as operators' requests with their bearer tokens.
struct Http {
    plugin: Plugin,
    vk: VkStandIn,
    names: Names,
    /// Each employee's bearer token, by label.
    tokens: HashMap<&'static str, String>,
}

/// Who sends a request to the API.
#[derive(Clone, Copy)]
enum Caller<'a> {
    Vk,
    Admin,
    Employee(&'a str),
}

impl Http {
    fn new(called: &mut Called) -> Http {
        let vk = VkStandIn::start();
        let mut world = Http {
            plugin: load(&vk),
            vk,
            names: Names::default(),
            tokens: HashMap::new(),
        };
        // The employee directory is the plugin's own here: each employee is created with a
        // token of their own, the stranger too (known, but not listed in the open lines).
        for label in STAFF.into_iter().chain([STRANGER]) {
            let created = world.request(
                called,
                Caller::Admin,
                "POST",
                "/api/employees",
                &[],
                Some(json!({"name": label})),
            );
            let created = &created["ok"];
            let id = created["id"].as_str().expect("an employee id");
            world.names.give(id, label);
            let token = created["token"].as_str().expect("a token").to_owned();
            world.tokens.insert(label, token);
        }
        world
    }

    /// Sends one request through `api.handle`; returns its outcome.
    fn request(
        &self,
        called: &mut Called,
        caller: Caller<'_>,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Value {
        self.send(
            called,
            caller,
            method,
            path,
            query,
            body.map(|b| b.to_string()),
        )
    }

    fn send(
        &self,
        called: &mut Called,
        caller: Caller<'_>,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<String>,
    ) -> Value {
        called.insert("api.handle");
        let mut headers = Vec::new();
        let token = match caller {
            Caller::Vk => None,
            Caller::Admin => Some(ADMIN),
            Caller::Employee(label) => Some(self.tokens[label].as_str()),
        };
        if let Some(token) = token {
            headers.push(("authorization".to_owned(), format!("Bearer {token}")));
        }
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let request = api::Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: (!query.is_empty()).then(|| {
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish()
            }),
            headers,
            body: body.map(String::into_bytes).unwrap_or_default(),
        };
        let config = api::HostConfig {
            admin_token: Some(ADMIN.to_owned()),
            public_url: None,
        };
        let response = self
            .plugin
            .call(|p, s| p.mybusiness_vk_api().call_handle(s, &request, &config))
            .unwrap_or_else(|fault| panic!("api.handle {method} {path}: {fault}"));
        answer(response)
    }

    fn run(&self, op: Op<'_>, called: &mut Called) -> Value {
        let id = |label: &str| self.names.real(label);
        let page = |cursor: Option<&str>, limit: u32| {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(cursor.map(|c| ("after", id(c))));
            query
        };
        let dialog = |d: &str, rest: &str| format!("/api/dialogs/{}{rest}", id(d));
        let lead = |l: &str, rest: &str| format!("/api/leads/{}{rest}", id(l));
        let mut request = |caller, method, path: String, query: &[(&str, String)], body| {
            self.request(called, caller, method, &path, query, body)
        };
        let employee = Caller::Employee;
        match op {
            Callback(body) => self.send(
                called,
                Caller::Vk,
                "POST",
                CALLBACK_PATH,
                &[],
                Some(body.to_owned()),
            ),
            GetSettings => request(Caller::Admin, "GET", "/api/settings".into(), &[], None),
            PutSettings(update) => {
                let mut body = Map::new();
                let fields = [
                    ("access_token", update.access_token),
                    ("secret", update.secret),
                    ("confirmation", update.confirmation),
                    ("group_name", update.group_name),
                    ("api_version", update.api_version),
                ];
                for (field, value) in fields {
                    if let Some(value) = value {
                        body.insert(field.to_owned(), json!(value));
                    }
                }
                if let Some(list) = update.employees {
                    let ids: Vec<String> = list.iter().map(|e| id(e)).collect();
                    body.insert("employees".to_owned(), json!(ids));
                }
                request(
                    Caller::Admin,
                    "PUT",
                    "/api/settings".into(),
                    &[],
                    Some(Value::Object(body)),
                )
            }
            ResetGroupId => request(
                Caller::Admin,
                "DELETE",
                "/api/settings/group-id".into(),
                &[],
                None,
            ),
            Flush => request(Caller::Admin, "POST", "/api/outbox/flush".into(), &[], None),
            OpenLines(actor, status, cursor, limit) => {
                let mut query = page(cursor, limit);
                query.push(("status", status.to_owned()));
                request(employee(actor), "GET", "/api/dialogs".into(), &query, None)
            }
            Dialog(actor, d) => request(employee(actor), "GET", dialog(d, ""), &[], None),
            Messages(actor, d, cursor, limit) => request(
                employee(actor),
                "GET",
                dialog(d, "/messages"),
                &page(cursor, limit),
                None,
            ),
            History(actor, d, cursor, limit) => request(
                employee(actor),
                "GET",
                dialog(d, "/history"),
                &page(cursor, limit),
                None,
            ),
            Claim(actor, d) => request(employee(actor), "POST", dialog(d, "/claim"), &[], None),
            Send(actor, d, text) => request(
                employee(actor),
                "POST",
                dialog(d, "/messages"),
                &[],
                Some(json!({"text": text})),
            ),
            Invite(actor, d, invitees) => {
                let ids: Vec<String> = invitees.iter().map(|e| id(e)).collect();
                request(
                    employee(actor),
                    "POST",
                    dialog(d, "/invite"),
                    &[],
                    Some(json!({"employees": ids})),
                )
            }
            Leave(actor, d) => request(employee(actor), "POST", dialog(d, "/leave"), &[], None),
            Delegate(actor, d, to) => request(
                employee(actor),
                "POST",
                dialog(d, "/delegate"),
                &[],
                Some(json!({"to": id(to)})),
            ),
            Spam(actor, d) => request(employee(actor), "POST", dialog(d, "/spam"), &[], None),
            Finish(actor, d) => request(employee(actor), "POST", dialog(d, "/finish"), &[], None),
            Restore(actor, d) => request(employee(actor), "POST", dialog(d, "/restore"), &[], None),
            Lead(actor, l) => request(employee(actor), "GET", lead(l, ""), &[], None),
            AddItem(actor, l, goods) => {
                let mut body =
                    json!({"name": goods.name, "quantity": goods.quantity, "price": goods.price});
                if let Some(sku) = goods.sku {
                    body["sku"] = json!(sku);
                }
                if let Some(currency) = goods.currency {
                    body["currency"] = json!(currency);
                }
                request(employee(actor), "POST", lead(l, "/items"), &[], Some(body))
            }
            SetQuantity(actor, l, item, quantity) => request(
                employee(actor),
                "PATCH",
                lead(l, &format!("/items/{}", id(item))),
                &[],
                Some(json!({"quantity": quantity})),
            ),
            RemoveItem(actor, l, item) => request(
                employee(actor),
                "DELETE",
                lead(l, &format!("/items/{}", id(item))),
                &[],
                None,
            ),
            Convert(actor, l) => request(employee(actor), "POST", lead(l, "/convert"), &[], None),
            RestoreDialog(actor, l) => request(
                employee(actor),
                "POST",
                lead(l, "/restore-dialog"),
                &[],
                None,
            ),
            Counterparty(actor, c) => request(
                employee(actor),
                "GET",
                format!("/api/counterparties/{}", id(c)),
                &[],
                None,
            ),
            Order(actor, o) => request(
                employee(actor),
                "GET",
                format!("/api/orders/{}", id(o)),
                &[],
                None,
            ),
        }
    }
}

/// An API response as an outcome: `{"ok": body}`, or `{"error": {status, code, message}}`.
fn answer(response: api::Response) -> Value {
    let text = String::from_utf8(response.body).expect("a UTF-8 body");
    let is_json = response
        .headers
        .iter()
        .any(|(name, value)| name == "content-type" && value.starts_with("application/json"));
    let body = if is_json {
        serde_json::from_str(&text).expect("the JSON the content type says")
    } else {
        Value::String(text)
    };
    if response.status < 400 {
        json!({"ok": body})
    } else {
        json!({"error": {
            "status": response.status,
            "code": body["error"]["code"],
            "message": body["error"]["message"],
        }})
    }
}

/// A typed result as an outcome: its value rendered in the API's spelling, or its error
/// with the HTTP status its kind stands for (wit/types.wit).
fn outcome<T>(result: Result<T, types::Error>, render: impl FnOnce(T) -> Value) -> Value {
    match result {
        Ok(value) => json!({"ok": render(value)}),
        Err(error) => {
            let status = match error.kind {
                types::ErrorKind::BadInput => 400,
                types::ErrorKind::Forbidden => 403,
                types::ErrorKind::NotFound => 404,
                types::ErrorKind::Conflict => 409,
                types::ErrorKind::Unavailable => 503,
            };
            json!({"error": {"status": status, "code": error.code, "message": error.message}})
        }
    }
}

fn settings_view(v: settings::SettingsView) -> Value {
    json!({
        "access_token": v.access_token,
        "secret": v.secret,
        "confirmation": v.confirmation,
        "group_name": v.group_name,
        "api_version": v.api_version,
        "employees": v.employees,
        "group_id": v.group_id,
    })
}

fn flush_report(r: outbox::FlushReport) -> Value {
    json!({
        "sent": r.sent,
        "failed": r.failed,
        "pending": r.pending,
        "names_filled": r.names_filled,
        "events_forgotten": r.events_forgotten,
    })
}

fn status(status: types::DialogStatus) -> &'static str {
    match status {
        types::DialogStatus::Open => "open",
        types::DialogStatus::Spam => "spam",
        types::DialogStatus::Finished => "finished",
    }
}

fn dialog(d: dialogs::Dialog) -> Value {
    json!({
        "id": d.id,
        "status": status(d.status),
        "responsible": d.responsible,
        "participants": d.participants,
        "lead_id": d.lead_id,
        "peer_id": d.peer_id,
        "name": d.name,
        "started_at": d.started_at,
        "messages_allowed": d.messages_allowed,
    })
}

/// A message. The API leaves out what has no value (the delivery of a message not written
/// in the CRM, the edit of one never edited), and [`project`] reads that as `null`; the
/// previous texts are shown with an edit.
fn message(m: dialogs::Message) -> Value {
    let mut body = json!({
        "id": m.id,
        "direction": match m.direction {
            dialogs::Direction::Incoming => "in",
            dialogs::Direction::Outgoing => "out",
        },
        "text": m.text,
        "author": m.author,
        "sent_at": m.sent_at,
        "attachments": m.attachments.into_iter()
            .map(|a| json!({"type": a.kind, "url": a.url, "title": a.title}))
            .collect::<Vec<_>>(),
        "delivery": m.delivery.map(|delivery| match delivery {
            dialogs::Delivery::Pending => "pending",
            dialogs::Delivery::Sent => "sent",
            dialogs::Delivery::Failed => "failed",
        }),
        "error": m.error.map(|e| json!({"code": e.code, "message": e.message})),
        "edited_at": m.edited_at,
    });
    if body["edited_at"].is_string() {
        body["previous_texts"] = json!(m.previous_texts);
    }
    body
}

fn history(h: dialogs::DialogHistory) -> Value {
    use dialogs::EventKind as K;
    let events: Vec<Value> = h
        .events
        .into_iter()
        .map(|e| {
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

fn communication(c: types::Communication) -> Value {
    json!({
        "dialog_id": c.dialog_id,
        "started_at": c.started_at,
        "name": c.name,
        "link": c.link,
        "status": status(c.status),
    })
}

fn items(items: Vec<leads::Item>) -> Value {
    items
        .into_iter()
        .map(|i| {
            json!({
                "id": i.id, "name": i.name, "sku": i.sku, "quantity": i.quantity,
                "price": i.price, "currency": i.currency, "total": i.total,
            })
        })
        .collect()
}

fn lead(l: leads::Lead) -> Value {
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
        "items": items(l.items),
        "total": l.total,
        "currency": l.currency,
        "counterparty_id": l.counterparty_id,
        "order_id": l.order_id,
        "communication": communication(l.communication),
    })
}

fn counterparty(c: leads::Counterparty) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "vk_user_id": c.vk_user_id,
        "vk_profile": c.vk_profile,
        "lead_id": c.lead_id,
        "communication": communication(c.communication),
    })
}

fn order(o: leads::Order) -> Value {
    json!({
        "id": o.id,
        "number": o.number,
        "status": o.status,
        "items": items(o.items),
        "total": o.total,
        "currency": o.currency,
        "counterparty_id": o.counterparty_id,
        "lead_id": o.lead_id,
        "communication": communication(o.communication),
    })
}

/// `value` cut to the shape of `template`: the fields the typed value has, in its order
/// (the API shows more, e.g. a dialog's activity), a field it leaves out as `null`.
fn project(template: &Value, value: Value) -> Value {
    match (template, value) {
        (Value::Object(shape), Value::Object(mut fields)) => shape
            .iter()
            .map(|(key, inner)| {
                let field = fields.remove(key).unwrap_or(Value::Null);
                (key.clone(), project(inner, field))
            })
            .collect(),
        (Value::Array(shape), Value::Array(items)) => {
            let mut projected: Vec<Value> = Vec::with_capacity(items.len());
            for (n, item) in items.into_iter().enumerate() {
                projected.push(match shape.get(n) {
                    Some(inner) => project(inner, item),
                    None => item,
                });
            }
            Value::Array(projected)
        }
        (_, value) => value,
    }
}

/// The two worlds a story runs on, step by step.
struct Pair {
    typed: Typed,
    http: Http,
    called: Called,
}

impl Pair {
    /// Two fresh worlds, nothing configured, each with the employees `E0`, `E1`, `E2` and
    /// `stranger` of its own.
    fn new() -> Pair {
        let mut called = Called::new();
        let http = Http::new(&mut called);
        Pair {
            typed: Typed::new(),
            http,
            called,
        }
    }

    /// Runs `op` in both worlds; the outcomes must be the same. Returns the outcome.
    fn step(&mut self, op: Op<'_>) -> Value {
        let typed = self.typed.run(op, &mut self.called);
        let http = self.http.run(op, &mut self.called);
        self.same(op, typed, http)
    }

    /// Runs `op` in each world until `done` holds for its outcome (at most 15 s, as the
    /// outbox's backoff needs); the outcomes that made it hold must be the same.
    fn step_until(&mut self, op: Op<'_>, done: impl Fn(&Value) -> bool) -> Value {
        let Pair {
            typed,
            http,
            called,
        } = self;
        let mut last = (Value::Null, Value::Null);
        let held = eventually(Duration::from_secs(15), || {
            last.0 = typed.run(op, called);
            done(&last.0)
        }) && eventually(Duration::from_secs(15), || {
            last.1 = http.run(op, called);
            done(&last.1)
        });
        assert!(
            held,
            "{} never came out as expected: {last:?}",
            describe(op)
        );
        self.same(op, last.0, last.1)
    }

    fn same(&mut self, op: Op<'_>, typed: Value, http: Value) -> Value {
        let http = project(&typed, http);
        let typed = self.typed.names.normalize(typed);
        let http = self.http.names.normalize(http);
        assert!(
            typed == http,
            "{}: the typed export and the HTTP API differ\ntyped: {}\nhttp:  {}",
            describe(op),
            pretty(&typed),
            pretty(&http)
        );
        typed
    }

    /// A step that must succeed; returns its value.
    fn ok(&mut self, op: Op<'_>) -> Value {
        let outcome = self.step(op);
        match outcome.get("ok") {
            Some(value) => value.clone(),
            None => panic!("{} was refused: {}", describe(op), pretty(&outcome)),
        }
    }

    /// A step that must be refused with `code` and change nothing; returns the error.
    fn refused(&mut self, op: Op<'_>, code: &str) -> Value {
        let before = self.state();
        let outcome = self.step(op);
        assert_eq!(
            outcome["error"]["code"],
            code,
            "{}: {}",
            describe(op),
            pretty(&outcome)
        );
        assert!(
            self.state() == before,
            "{} was refused but changed what the worlds show",
            describe(op)
        );
        outcome["error"].clone()
    }

    /// VK posts `event`; returns the answer.
    fn callback(&mut self, event: &Value) -> Value {
        self.ok(Callback(&event.to_string()))
    }

    /// Settings written (the access key, the secret, the confirmation string, the name, the
    /// employees `E0`–`E2` listed) and VK's confirmation answered; returns the settings.
    fn connect(&mut self) -> Value {
        self.ok(PutSettings(&Update {
            access_token: Some(ACCESS_TOKEN),
            secret: Some(SECRET),
            confirmation: Some(CONFIRMATION),
            group_name: Some("Bakery"),
            employees: Some(&STAFF),
            ..Update::default()
        }));
        assert_eq!(self.callback(&confirmation()), CONFIRMATION);
        self.ok(GetSettings)
    }

    /// A connected pair after `person`'s first message; returns the dialog's label.
    fn with_dialog(&mut self, person: i64) -> String {
        self.connect();
        let event = message_new(&format!("first-{person}"), person, 1, "Здравствуйте!");
        assert_eq!(self.callback(&event), "ok");
        self.dialog_of(person)
    }

    /// The label of `person`'s dialog, as `E0` finds it in any list.
    fn dialog_of(&mut self, person: i64) -> String {
        let mut found: Vec<Value> = Vec::new();
        for status in ["open", "spam", "finished"] {
            for page in self.every_page(OpenLines("E0", status, None, 50)) {
                found.extend(page["dialogs"].as_array().expect("dialogs").clone());
            }
        }
        let mine: Vec<&Value> = found.iter().filter(|d| d["peer_id"] == person).collect();
        assert_eq!(mine.len(), 1, "one dialog of {person}: {found:?}");
        label(&mine[0]["id"])
    }

    /// Every page of the list `first` reads, following `next`.
    fn every_page(&mut self, first: Op<'_>) -> Vec<Value> {
        let mut pages = vec![self.ok(first)];
        while let Some(next) = pages.last().and_then(|p| p["next"].as_str()) {
            let next = next.to_owned();
            pages.push(self.ok(first.after(&next)));
        }
        pages
    }

    /// What VK delivered to people, the same in both worlds.
    fn delivered(&self) -> Vec<(i64, String)> {
        let delivered = self.typed.vk.delivered();
        assert_eq!(
            delivered,
            self.http.vk.delivered(),
            "VK got different messages"
        );
        delivered
    }

    /// VK fails its next call of `method` in both worlds.
    fn vk_fails_next(&self, method: &str, failure: Failure) {
        self.typed.vk.fail_next(method, failure.clone());
        self.http.vk.fail_next(method, failure);
    }

    /// Everything the worlds show, read through the contract (the same in both): the
    /// settings, each listed employee's lists, each dialog with its messages, history, lead
    /// and documents, and what VK delivered.
    fn state(&mut self) -> Value {
        let settings = self.ok(GetSettings);
        let listed: Vec<String> = settings["employees"]
            .as_array()
            .expect("employees")
            .iter()
            .map(label)
            .collect();
        let mut lists = Map::new();
        let mut dialogs = BTreeSet::new();
        for actor in &listed {
            for status in ["open", "spam", "finished"] {
                let pages = self.every_page(OpenLines(actor, status, None, 50));
                for page in &pages {
                    dialogs.extend(
                        page["dialogs"]
                            .as_array()
                            .expect("dialogs")
                            .iter()
                            .map(|d| label(&d["id"])),
                    );
                }
                lists.insert(format!("{actor} {status}"), json!(pages));
            }
        }
        let mut shown = Map::new();
        if let Some(reader) = listed.first() {
            for d in dialogs {
                let dialog = self.ok(Dialog(reader, &d));
                let lead = self.ok(Lead(reader, &label(&dialog["lead_id"])));
                let counterparty = match lead["counterparty_id"].as_str() {
                    Some(c) => self.ok(Counterparty(reader, c)),
                    None => Value::Null,
                };
                let order = match lead["order_id"].as_str() {
                    Some(o) => self.ok(Order(reader, o)),
                    None => Value::Null,
                };
                let everything = json!({
                    "dialog": dialog,
                    "messages": self.every_page(Messages(reader, &d, None, 50)),
                    "history": self.every_page(History(reader, &d, None, 50)),
                    "lead": lead,
                    "counterparty": counterparty,
                    "order": order,
                });
                shown.insert(d, everything);
            }
        }
        json!({
            "settings": settings,
            "lists": lists,
            "dialogs": shown,
            "delivered": self.delivered(),
        })
    }
}

/// A step as a failure message shows it: the secrets callbacks and settings carry masked.
fn describe(op: Op<'_>) -> String {
    format!("{op:?}")
        .replace(SECRET, "****")
        .replace(ACCESS_TOKEN, "****")
}

fn label(value: &Value) -> String {
    value.as_str().expect("a label").to_owned()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The labels of a list of ids.
fn labels(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(label)
        .collect()
}

/// Every function of every interface the world `vk-plugin` exports, as
/// `interface.function`, read from the WIT files.
fn exported_functions() -> BTreeSet<String> {
    let files: Vec<String> = std::fs::read_dir(format!("{}/wit", root()))
        .expect("the wit folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "wit"))
        .map(|path| std::fs::read_to_string(path).expect("a WIT file"))
        .collect();
    let world = files
        .iter()
        .find(|text| text.contains("world vk-plugin {"))
        .expect("the world");
    let exports = world
        .lines()
        .filter_map(|line| line.trim().strip_prefix("export ")?.strip_suffix(';'));
    let mut functions = BTreeSet::new();
    for interface in exports {
        let opening = format!("interface {interface} {{");
        let body = files
            .iter()
            .find_map(|text| text.split_once(&opening))
            .map(|(_, rest)| rest.split("\n}").next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("no WIT file defines {interface}"));
        for line in body.lines() {
            if let Some((name, rest)) = line.trim().split_once(':')
                && rest.trim_start().starts_with("func(")
            {
                functions.insert(format!("{interface}.{name}"));
            }
        }
    }
    functions
}

// ---- The stories ----

/// Settings and VK's callbacks: what a CRM does to connect a community, every refusal of
/// the webhook, and the first message creating a dialog and a lead.
fn connecting_a_community(pair: &mut Pair) {
    // Nothing is configured yet: the defaults, and no confirmation string to answer VK.
    let fresh = pair.ok(GetSettings);
    assert_eq!(
        (
            &fresh["access_token"],
            &fresh["employees"],
            &fresh["group_id"],
            &fresh["api_version"]
        ),
        (&Value::Null, &json!([]), &Value::Null, &json!("5.199"))
    );
    pair.refused(
        Callback(&confirmation().to_string()),
        "confirmation-not-set",
    );

    // Settings the rules do not accept are refused whole.
    let long_secret = "x".repeat(51);
    pair.refused(
        PutSettings(&Update {
            secret: Some(&long_secret),
            group_name: Some("Bakery"),
            ..Update::default()
        }),
        "invalid-field",
    );
    pair.refused(
        PutSettings(&Update {
            api_version: Some("latest"),
            ..Update::default()
        }),
        "invalid-field",
    );

    // Connected: the access key and the secret are masked, never returned.
    let view = pair.connect();
    assert_eq!(view["access_token"], "vk1.a.****Ab3x");
    assert_eq!(view["secret"], "****");
    assert_eq!(view["confirmation"], CONFIRMATION);
    assert_eq!(view["group_name"], "Bakery");
    assert_eq!(labels(&view["employees"]), STAFF);
    assert_eq!(view["group_id"], GROUP);
    let shown = view.to_string();
    assert!(
        !shown.contains(SECRET) && !shown.contains(ACCESS_TOKEN),
        "{shown}"
    );

    // Forgetting the community: its events are refused until VK confirms again.
    let first = message_new("first", PERSON, 1, "Здравствуйте! Есть торт к субботе?");
    let reset = pair.ok(ResetGroupId);
    assert_eq!(reset["group_id"], Value::Null);
    pair.refused(Callback(&first.to_string()), "group-not-confirmed");
    assert_eq!(pair.callback(&confirmation()), CONFIRMATION);
    assert_eq!(pair.ok(GetSettings)["group_id"], GROUP);

    // Another community, a wrong secret, a body that is no callback: refused.
    let mut foreign = first.clone();
    foreign["group_id"] = json!(GROUP + 1);
    pair.refused(Callback(&foreign.to_string()), "foreign-group");
    let mut forged = first.clone();
    forged["secret"] = json!("not-the-secret");
    pair.refused(Callback(&forged.to_string()), "wrong-secret");
    pair.refused(Callback("{\"type\": "), "malformed-body");

    // The first message: a dialog in everyone's queue and a lead named after the person.
    assert_eq!(pair.callback(&first), "ok");
    let queue = pair.ok(OpenLines("E1", "open", None, 50));
    let dialogs = queue["dialogs"].as_array().expect("dialogs");
    assert_eq!(dialogs.len(), 1, "{queue}");
    let dialog = &dialogs[0];
    assert_eq!(
        (
            &dialog["status"],
            &dialog["responsible"],
            &dialog["peer_id"],
            &dialog["name"]
        ),
        (
            &json!("open"),
            &Value::Null,
            &json!(PERSON),
            &json!("Ivan1001 Petrov")
        )
    );
    let d = label(&dialog["id"]);
    let messages = pair.ok(Messages("E1", &d, None, 50));
    assert_eq!(messages["messages"][0]["direction"], "in");
    assert_eq!(
        messages["messages"][0]["text"],
        "Здравствуйте! Есть торт к субботе?"
    );
    let lead = pair.ok(Lead("E2", &label(&dialog["lead_id"])));
    assert_eq!(lead["title"], "Bakery: Ivan1001 Petrov");
    assert_eq!(lead["source"], "Bakery");
    assert_eq!(
        (&lead["status"], &lead["total"]),
        (&json!("new"), &json!("0.00"))
    );
    assert_eq!(lead["communication"]["dialog_id"], d);
    assert_eq!(lead["communication"]["link"], format!("/api/dialogs/{d}"));

    // The person sends a file and edits the first message: the old text is kept.
    let mut with_file = message_new("file", PERSON, 2, "Прайс во вложении");
    with_file["object"]["message"]["attachments"] =
        json!([{"type": "doc", "doc": {"title": "price.pdf", "url": "https://vk.com/doc1_2"}}]);
    assert_eq!(pair.callback(&with_file), "ok");
    let edit = json!({
        "group_id": GROUP, "type": "message_edit", "event_id": "edit", "v": "5.199", "secret": SECRET,
        "object": {"date": 1_767_261_600, "update_time": 1_767_261_900, "from_id": PERSON, "id": 1,
                   "out": 0, "peer_id": PERSON, "text": "Здравствуйте! Есть торт к воскресенью?",
                   "attachments": []}
    });
    assert_eq!(pair.callback(&edit), "ok");
    let messages = pair.ok(Messages("E0", &d, None, 50))["messages"].clone();
    assert_eq!(
        (&messages[0]["text"], &messages[0]["previous_texts"]),
        (
            &json!("Здравствуйте! Есть торт к воскресенью?"),
            &json!(["Здравствуйте! Есть торт к субботе?"])
        )
    );
    assert_eq!(
        messages[1]["attachments"],
        json!([{"type": "doc", "url": "https://vk.com/doc1_2", "title": "price.pdf"}])
    );

    // VK delivers the same event again: answered `ok`, stored once.
    let before = pair.state();
    assert_eq!(pair.callback(&first), "ok");
    assert!(
        pair.state() == before,
        "a redelivered event was stored again"
    );
}

/// The open lines from claim to restore, through `dialogs` and `leads.restore-dialog`,
/// with each rule's refusal.
fn a_dialog_from_claim_to_restore(pair: &mut Pair) {
    let d = pair.with_dialog(PERSON);
    let lead = label(&pair.ok(Dialog("E0", &d))["lead_id"]);

    // Who may not: an employee not listed; anyone before the dialog is theirs.
    pair.refused(Dialog(STRANGER, &d), "employee-not-listed");
    pair.refused(OpenLines(STRANGER, "open", None, 50), "employee-not-listed");
    pair.refused(Claim(STRANGER, &d), "employee-not-listed");
    pair.refused(Messages(STRANGER, &d, None, 50), "employee-not-listed");
    pair.refused(History(STRANGER, &d, None, 50), "employee-not-listed");
    pair.refused(Send("E1", &d, "Добрый день"), "not-a-participant");
    pair.refused(Leave("E0", &d), "not-a-participant");
    pair.refused(Spam("E0", &d), "not-responsible");

    // E0 claims it; nobody else can.
    let claimed = pair.ok(Claim("E0", &d));
    assert_eq!(
        (&claimed["responsible"], labels(&claimed["participants"])),
        (&json!("E0"), vec!["E0".to_owned()])
    );
    pair.refused(Claim("E1", &d), "already-claimed");
    assert!(
        pair.ok(OpenLines("E1", "open", None, 50))["dialogs"]
            .as_array()
            .expect("dialogs")
            .is_empty()
    );

    // Only the responsible employee invites, and only listed colleagues.
    pair.refused(Invite("E1", &d, &["E2"]), "not-responsible");
    pair.refused(Invite("E0", &d, &[STRANGER]), "employee-not-listed");
    pair.refused(Invite("E0", &d, &[]), "invalid-field");
    pair.refused(Invite("E0", &d, &[NOT_AN_ID]), "employee-not-listed");
    let invited = pair.ok(Invite("E0", &d, &["E1"]));
    assert_eq!(labels(&invited["participants"]), ["E0", "E1"]);

    // Delegating: to another listed employee, by the responsible one, who stays.
    pair.refused(Delegate("E1", &d, "E2"), "not-responsible");
    pair.refused(Delegate("E0", &d, "E0"), "already-responsible");
    pair.refused(Delegate("E0", &d, STRANGER), "employee-not-listed");
    pair.refused(Delegate("E0", &d, UNKNOWN), "employee-not-listed");
    let delegated = pair.ok(Delegate("E0", &d, "E2"));
    assert_eq!(
        (
            &delegated["responsible"],
            labels(&delegated["participants"])
        ),
        (
            &json!("E2"),
            vec!["E2".to_owned(), "E0".to_owned(), "E1".to_owned()]
        )
    );
    let left = pair.ok(Leave("E1", &d));
    assert_eq!(labels(&left["participants"]), ["E2", "E0"]);

    // Spam: by the responsible employee; the dialog leaves the open lines for the spam list.
    pair.refused(Finish("E0", &d), "not-responsible");
    let spam = pair.ok(Spam("E2", &d));
    assert_eq!(
        (&spam["status"], &spam["responsible"], &spam["participants"]),
        (&json!("spam"), &Value::Null, &json!([]))
    );
    assert_eq!(
        pair.ok(OpenLines("E1", "spam", None, 50))["dialogs"][0]["id"],
        d
    );
    pair.refused(Send("E2", &d, "Добрый день"), "dialog-not-open");
    pair.refused(Claim("E1", &d), "dialog-not-open");

    // Restored by anyone listed: back to its last responsible employee.
    let restored = pair.ok(Restore("E1", &d));
    assert_eq!(
        (&restored["status"], &restored["responsible"]),
        (&json!("open"), &json!("E2"))
    );
    pair.refused(Restore("E1", &d), "dialog-not-closed");
    pair.refused(RestoreDialog("E1", &lead), "dialog-not-closed");

    // Finished, then restored from the lead's communication block.
    let finished = pair.ok(Finish("E2", &d));
    assert_eq!(finished["status"], "finished");
    assert_eq!(
        pair.ok(OpenLines("E0", "finished", None, 50))["dialogs"][0]["id"],
        d
    );
    assert_eq!(
        pair.ok(Lead("E0", &lead))["communication"]["status"],
        "finished"
    );
    pair.refused(RestoreDialog(STRANGER, &lead), "employee-not-listed");
    pair.refused(RestoreDialog("E0", UNKNOWN), "lead-not-found");
    let back = pair.ok(RestoreDialog("E0", &lead));
    assert_eq!(
        (&back["status"], &back["responsible"]),
        (&json!("open"), &json!("E2"))
    );

    // The responsible employee leaving returns it to the queue; E1 takes and finishes it,
    // and the person writing again reopens it for E1.
    let queued = pair.ok(Leave("E2", &d));
    assert_eq!(
        (&queued["responsible"], &queued["participants"]),
        (&Value::Null, &json!([]))
    );
    pair.ok(Claim("E1", &d));
    pair.ok(Finish("E1", &d));
    assert_eq!(
        pair.callback(&message_new("again", PERSON, 2, "Ещё вопрос")),
        "ok"
    );
    let reopened = pair.ok(Dialog("E0", &d));
    assert_eq!(
        (&reopened["status"], &reopened["responsible"]),
        (&json!("open"), &json!("E1"))
    );

    // The history, whole and page by page.
    let whole = pair.ok(History("E0", &d, None, 50));
    let kinds: Vec<&str> = whole["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "message-in",
            "claimed",
            "invited",
            "delegated",
            "left",
            "closed-as-spam",
            "restored",
            "finished",
            "restored",
            "left",
            "claimed",
            "finished",
            "reopened",
            "message-in",
        ]
    );
    let delegated = &whole["events"][3];
    assert_eq!(
        (&delegated["actor"], &delegated["subject"]),
        (&json!("E0"), &json!("E2"))
    );
    assert_eq!(whole["events"][12]["subject"], "E1");
    assert_eq!(labels(&whole["operators"]), ["E0", "E1", "E2"]);
    let pages = pair.every_page(History("E1", &d, None, 4));
    assert_eq!(pages.len(), 4);
    let paged: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["events"].as_array().expect("events").clone())
        .collect();
    assert_eq!(json!(paged), whole["events"]);

    // Ids that name nothing.
    pair.refused(Dialog("E0", UNKNOWN), "dialog-not-found");
    pair.refused(Claim("E0", NOT_AN_ID), "dialog-not-found");
    pair.refused(Messages("E0", UNKNOWN, None, 50), "dialog-not-found");
    pair.refused(History("E0", NOT_AN_ID, None, 50), "dialog-not-found");
    pair.refused(Restore("E0", UNKNOWN), "dialog-not-found");
}

/// Sending: delivered to VK at once; a message VK could not take waits in the outbox and
/// `outbox.flush` delivers it; VK's refusal for good; a person who denies messages.
fn sending_and_the_outbox(pair: &mut Pair) {
    let d = pair.with_dialog(PERSON);
    pair.ok(Claim("E0", &d));

    // Sent at once: VK has it before any flush.
    let sent = pair.ok(Send("E0", &d, "Добрый день! Торт будет к субботе."));
    assert_eq!(
        (
            &sent["direction"],
            &sent["author"],
            &sent["delivery"],
            &sent["error"]
        ),
        (&json!("out"), &json!("E0"), &json!("sent"), &Value::Null)
    );
    assert_eq!(
        pair.delivered(),
        [(PERSON, "Добрый день! Торт будет к субботе.".to_owned())]
    );
    pair.refused(Send("E0", &d, "   "), "invalid-field");
    pair.refused(Send("E0", &d, &"я".repeat(9001)), "invalid-field");

    // VK cannot be reached: the message waits, and a flush delivers it once its retry is
    // due.
    pair.vk_fails_next("messages.send", Failure::Status(503));
    let waiting = pair.ok(Send("E0", &d, "Заказ собран"));
    assert_eq!(waiting["delivery"], "pending");
    assert_eq!(
        waiting["error"],
        json!({"code": 0, "message": "VK answered with HTTP status 503"})
    );
    assert_eq!(pair.delivered().len(), 1);
    let report = pair.step_until(Flush, |outcome| outcome["ok"]["sent"] == 1);
    assert_eq!(
        report["ok"],
        json!({"sent": 1, "failed": 0, "pending": 0, "names_filled": 0, "events_forgotten": 0})
    );
    assert_eq!(
        pair.delivered().last(),
        Some(&(PERSON, "Заказ собран".to_owned()))
    );

    // VK refuses for good: failed, with why.
    pair.vk_fails_next(
        "messages.send",
        Failure::Vk(901, "Can't send messages for users without permission"),
    );
    let failed = pair.ok(Send("E0", &d, "Вы здесь?"));
    assert_eq!(failed["delivery"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": 901, "message": "the person has not allowed messages from the community"})
    );
    assert_eq!(
        pair.ok(Flush),
        json!({"sent": 0, "failed": 0, "pending": 0, "names_filled": 0, "events_forgotten": 0})
    );

    // The person denies messages: nobody may write until they allow them again.
    assert_eq!(
        pair.callback(&user_event("message_deny", "deny", PERSON)),
        "ok"
    );
    assert_eq!(pair.ok(Dialog("E1", &d))["messages_allowed"], false);
    pair.refused(Send("E0", &d, "Напоминаем о заказе"), "messages-denied");
    assert_eq!(
        pair.callback(&user_event("message_allow", "allow", PERSON)),
        "ok"
    );
    assert_eq!(
        pair.ok(Send("E0", &d, "Напоминаем о заказе"))["delivery"],
        "sent"
    );

    // The messages, whole and two by two.
    let whole = pair.ok(Messages("E1", &d, None, 50));
    let texts: Vec<&str> = whole["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("a text"))
        .collect();
    assert_eq!(
        texts,
        [
            "Здравствуйте!",
            "Добрый день! Торт будет к субботе.",
            "Заказ собран",
            "Вы здесь?",
            "Напоминаем о заказе"
        ]
    );
    let pages = pair.every_page(Messages("E2", &d, None, 2));
    assert_eq!(pages.len(), 3);
    let paged: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().expect("messages").clone())
        .collect();
    assert_eq!(json!(paged), whole["messages"]);

    // A person VK could not name at first is named by the next flush.
    pair.vk_fails_next("users.get", Failure::Status(503));
    assert_eq!(
        pair.callback(&message_new("other", OTHER, 1, "Добрый вечер")),
        "ok"
    );
    let other = pair.dialog_of(OTHER);
    let lead = label(&pair.ok(Dialog("E0", &other))["lead_id"]);
    assert_ne!(pair.ok(Lead("E0", &lead))["first_name"], "Ivan2002");
    let report = pair.ok(Flush);
    assert_eq!(report["names_filled"], 1, "{report}");
    assert_eq!(
        pair.ok(Lead("E0", &lead))["title"],
        "Bakery: Ivan2002 Petrov"
    );
    assert_eq!(pair.ok(Dialog("E0", &other))["name"], "Ivan2002 Petrov");
}

/// A lead's goods, conversion into a counterparty and an order, and reading them.
fn goods_and_conversion(pair: &mut Pair) {
    let d = pair.with_dialog(PERSON);
    let lead = label(&pair.ok(Dialog("E0", &d))["lead_id"]);

    // An empty lead is not converted; goods the rules do not accept are refused.
    pair.refused(Convert("E0", &lead), "no-items");
    pair.refused(AddItem(STRANGER, &lead, &CAKE), "employee-not-listed");
    pair.refused(Lead(STRANGER, &lead), "employee-not-listed");
    pair.refused(
        AddItem(
            "E0",
            &lead,
            &Goods {
                quantity: "0",
                ..CAKE
            },
        ),
        "invalid-field",
    );
    pair.refused(
        AddItem(
            "E0",
            &lead,
            &Goods {
                price: "1.234",
                ..CAKE
            },
        ),
        "invalid-field",
    );
    pair.refused(
        AddItem("E0", &lead, &Goods { name: "", ..CAKE }),
        "invalid-field",
    );
    pair.refused(AddItem("E0", UNKNOWN, &CAKE), "lead-not-found");

    // Goods in exact money: 2 × 1850.00 and 1.5 × 99.99 = 149.985 → 149.99.
    let with_cake = pair.ok(AddItem("E0", &lead, &CAKE));
    let cake = &with_cake["items"][0];
    assert_eq!(
        (
            &cake["quantity"],
            &cake["price"],
            &cake["currency"],
            &cake["total"],
            &cake["sku"]
        ),
        (
            &json!("2"),
            &json!("1850.00"),
            &json!("RUB"),
            &json!("3700.00"),
            &json!("NAP-1")
        )
    );
    let cake = label(&cake["id"]);
    let with_candles = pair.ok(AddItem("E1", &lead, &CANDLES));
    assert_eq!(
        (&with_candles["items"][1]["total"], &with_candles["total"]),
        (&json!("149.99"), &json!("3849.99"))
    );
    let candles = label(&with_candles["items"][1]["id"]);
    pair.refused(
        AddItem(
            "E0",
            &lead,
            &Goods {
                currency: Some("USD"),
                ..CANDLES
            },
        ),
        "currency-mismatch",
    );

    // Quantities change, items go.
    let three = pair.ok(SetQuantity("E1", &lead, &cake, "3"));
    assert_eq!(
        (&three["items"][0]["total"], &three["total"]),
        (&json!("5550.00"), &json!("5699.99"))
    );
    pair.refused(SetQuantity("E1", &lead, &cake, "-1"), "invalid-field");
    pair.refused(SetQuantity("E1", &lead, &cake, "много"), "invalid-field");
    pair.refused(SetQuantity("E1", &lead, UNKNOWN, "1"), "item-not-found");
    let removed = pair.ok(RemoveItem("E2", &lead, &candles));
    assert_eq!(
        (removed["items"].as_array().map(Vec::len), &removed["total"]),
        (Some(1), &json!("5550.00"))
    );
    pair.refused(RemoveItem("E2", &lead, &candles), "item-not-found");
    pair.refused(RemoveItem("E2", &lead, NOT_AN_ID), "item-not-found");

    // Converted once: a counterparty and an order; then the goods are fixed.
    pair.refused(Convert(STRANGER, &lead), "employee-not-listed");
    pair.refused(Convert("E0", NOT_AN_ID), "lead-not-found");
    let conversion = pair.ok(Convert("E0", &lead));
    let (counterparty, order) = (
        label(&conversion["counterparty_id"]),
        label(&conversion["order_id"]),
    );
    let twice = pair.refused(Convert("E1", &lead), "already-converted");
    let why = label(&twice["message"]);
    assert!(why.contains(&counterparty) && why.contains(&order), "{why}");
    pair.refused(AddItem("E0", &lead, &CANDLES), "lead-converted");
    pair.refused(SetQuantity("E0", &lead, &cake, "1"), "lead-converted");
    pair.refused(RemoveItem("E0", &lead, &cake), "lead-converted");
    let converted = pair.ok(Lead("E2", &lead));
    assert_eq!(
        (
            &converted["status"],
            &converted["counterparty_id"],
            &converted["order_id"]
        ),
        (&json!("converted"), &json!(counterparty), &json!(order))
    );

    // The documents, with the way back to the chat.
    let buyer = pair.ok(Counterparty("E1", &counterparty));
    assert_eq!(
        (
            &buyer["name"],
            &buyer["vk_user_id"],
            &buyer["vk_profile"],
            &buyer["lead_id"]
        ),
        (
            &json!("Ivan1001 Petrov"),
            &json!(PERSON),
            &json!("https://vk.com/id1001"),
            &json!(lead)
        )
    );
    assert_eq!(buyer["communication"]["dialog_id"], d);
    let sold = pair.ok(Order("E2", &order));
    assert_eq!(
        (
            &sold["number"],
            &sold["status"],
            &sold["total"],
            &sold["counterparty_id"],
            &sold["lead_id"]
        ),
        (
            &json!("VK-00001"),
            &json!("new"),
            &json!("5550.00"),
            &json!(counterparty),
            &json!(lead)
        )
    );
    assert_eq!(sold["items"], converted["items"]);
    pair.refused(Counterparty(STRANGER, &counterparty), "employee-not-listed");
    pair.refused(Counterparty("E0", UNKNOWN), "counterparty-not-found");
    pair.refused(Order("E0", NOT_AN_ID), "order-not-found");
    pair.refused(Order("E0", &counterparty), "order-not-found");
}

/// Lists of the open lines page by page, as each employee sees them, and what unlisting
/// an employee does to them.
fn paging_the_open_lines(pair: &mut Pair) {
    pair.connect();
    let people: Vec<i64> = (1..=5).map(|n| PERSON + n).collect();
    for person in &people {
        let event = message_new(&format!("hello-{person}"), *person, 1, "Здравствуйте!");
        assert_eq!(pair.callback(&event), "ok");
    }
    let peers = |pages: &[Value]| -> Vec<Vec<i64>> {
        pages
            .iter()
            .map(|page| page["dialogs"].as_array().expect("dialogs").iter())
            .map(|dialogs| {
                dialogs
                    .map(|d| d["peer_id"].as_i64().expect("a peer"))
                    .collect()
            })
            .collect()
    };
    let [p1, p2, p3, p4, p5] = [0, 1, 2, 3, 4].map(|n| people[n]);

    // The newest first, two by two.
    let pages = pair.every_page(OpenLines("E0", "open", None, 2));
    assert_eq!(peers(&pages), [vec![p5, p4], vec![p3, p2], vec![p1]]);

    // E0 closes the two newest as spam: the spam list has them, one by one.
    for person in [p5, p4] {
        let d = pair.dialog_of(person);
        pair.ok(Claim("E0", &d));
        pair.ok(Spam("E0", &d));
    }
    let spam = pair.every_page(OpenLines("E1", "spam", None, 1));
    assert_eq!(peers(&spam), [vec![p5], vec![p4]]);

    // E2 claims one: it stays in E2's open lines and leaves the others' queue.
    let d = pair.dialog_of(p2);
    pair.ok(Claim("E2", &d));
    let theirs = pair.every_page(OpenLines("E1", "open", None, 50));
    assert_eq!(peers(&theirs), [vec![p3, p1]]);
    let mine = pair.every_page(OpenLines("E2", "open", None, 1));
    assert_eq!(peers(&mine), [vec![p3], vec![p2], vec![p1]]);

    // Unlisting E2 sends E2's dialog back to the queue, and E2 reads nothing any more.
    let view = pair.ok(PutSettings(&Update {
        employees: Some(&["E0", "E1"]),
        ..Update::default()
    }));
    assert_eq!(labels(&view["employees"]), ["E0", "E1"]);
    let queue = pair.every_page(OpenLines("E1", "open", None, 50));
    assert_eq!(peers(&queue), [vec![p3, p2, p1]]);
    assert_eq!(pair.ok(Dialog("E1", &d))["responsible"], Value::Null);
    let last = pair.ok(History("E1", &d, None, 50))["events"]
        .as_array()
        .and_then(|events| events.last().cloned())
        .expect("events");
    assert_eq!(
        (&last["kind"], &last["actor"]),
        (&json!("left"), &json!("E2"))
    );
    pair.refused(OpenLines("E2", "open", None, 50), "employee-not-listed");
}

/// Declares the stories: one test each, and the table the coverage test runs.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        const STORIES: &[(&str, fn(&mut Pair))] = &[$((stringify!($story), $story)),*];
        mod story {
            $(#[test]
            fn $story() {
                super::$story(&mut super::Pair::new())
            })*
        }
    };
}

stories!(
    connecting_a_community,
    a_dialog_from_claim_to_restore,
    sending_and_the_outbox,
    goods_and_conversion,
    paging_the_open_lines,
);

#[test]
fn every_exported_function_is_called_by_a_story() {
    let exported = exported_functions();
    let mut called = BTreeSet::new();
    for (name, story) in STORIES {
        let mut pair = Pair::new();
        story(&mut pair);
        assert!(!pair.called.is_empty(), "{name} called nothing");
        called.extend(pair.called.iter().map(|f| f.to_string()));
    }
    let missing: Vec<&String> = exported.difference(&called).collect();
    assert!(
        missing.is_empty(),
        "exported, but no story calls them: {missing:?}"
    );
    assert_eq!(
        called, exported,
        "the stories call functions the WIT files do not export"
    );
}
