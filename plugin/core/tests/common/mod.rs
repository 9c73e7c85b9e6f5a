//! The test bench of vk-core: the in-memory store, a fake VK API, a manual clock, and
//! builders for the callbacks VK sends (shapes from VK_FACTS §8).
//!
//! Every integration test file pulls this in with `mod common;` and uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use vk_core::Core;
use vk_core::dialog::{Dialog, DialogStatus, HistoryEvent, Message};
use vk_core::ids::{DialogId, EmployeeId};
use vk_core::intake::CallbackReply;
use vk_core::lead::Lead;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Clock, Entry, Http, HttpError, HttpRequest, HttpResponse, Store};
use vk_core::settings::SettingsUpdate;

/// The made-up community of VK_FACTS §8.
pub const GROUP_ID: i64 = 218_765_432;
pub const SECRET: &str = "Qm9v-crm-7f3a91c2e4";
pub const CONFIRMATION: &str = "5e1d9c0b";
/// Long enough to be masked as `vk1.a.****Ab3x`.
pub const TOKEN: &str = "vk1.a.Zx9-longcommunitytokenvalue-Ab3x";
pub const GROUP_NAME: &str = "Tea House";
/// The person of VK_FACTS §8.
pub const PERSON: i64 = 512_340_987;
pub const PERSON_FIRST: &str = "Anna";
pub const PERSON_LAST: &str = "Smirnova";

const API: &str = "https://api.vk.com/method/";

// ----------------------------------------------------------------------------------------
// Clock

/// A clock that moves only when a test moves it.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new() -> Self {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 10, 0, 0)
            .single()
            .expect("a valid start time");
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += by;
    }

    /// One second later: consecutive steps get distinct, ordered times.
    pub fn tick(&self) {
        self.advance(Duration::seconds(1));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }
}

// ----------------------------------------------------------------------------------------
// Fake VK API

/// How the fake VK answers a call it was told to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `{"error":{"error_code":N,"error_msg":"..."}}` with HTTP 200, as VK does.
    Vk(i32),
    /// An HTTP status other than 200.
    Status(u16),
    /// No answer in time; nothing happened at VK.
    Timeout,
    /// VK did the work (a message is delivered) but the answer never arrived.
    TimeoutAfterDelivery,
}

/// One request that reached the fake VK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub params: BTreeMap<String, String>,
    pub timeout_ms: u32,
}

impl Call {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }
}

/// A message VK actually delivered to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub peer_id: i64,
    pub random_id: i32,
    pub text: String,
    pub vk_id: i64,
}

#[derive(Default)]
struct VkState {
    calls: Vec<Call>,
    failures: VecDeque<(Option<String>, Failure)>,
    people: HashMap<i64, (String, String)>,
    delivered: Vec<Delivered>,
    /// (peer_id, random_id) → the message id VK gave the first time.
    by_random_id: HashMap<(i64, i32), i64>,
    next_message_id: i64,
}

/// VK's API as the plugin sees it: form-encoded POSTs to `https://api.vk.com/method/<name>`.
#[derive(Default)]
pub struct FakeVk {
    state: Mutex<VkState>,
}

impl FakeVk {
    pub fn new() -> Self {
        let vk = FakeVk::default();
        vk.lock().next_message_id = 1000;
        vk
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VkState> {
        self.state.lock().expect("fake VK lock")
    }

    /// Registers a VK user so `users.get` knows their name.
    pub fn person(&self, id: i64, first: &str, last: &str) {
        self.lock()
            .people
            .insert(id, (first.to_owned(), last.to_owned()));
    }

    /// The next call of `method` fails this way.
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.fail_times(method, failure, 1);
    }

    /// The next `times` calls of `method` fail this way.
    pub fn fail_times(&self, method: &str, failure: Failure, times: usize) {
        let mut state = self.lock();
        for _ in 0..times {
            state
                .failures
                .push_back((Some(method.to_owned()), failure.clone()));
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    pub fn delivered(&self) -> Vec<Delivered> {
        self.lock().delivered.clone()
    }

    fn answer(state: &mut VkState, call: &Call) -> Value {
        match call.method.as_str() {
            "users.get" => {
                let users: Vec<Value> = call
                    .param("user_ids")
                    .split(',')
                    .filter_map(|id| id.parse::<i64>().ok())
                    .filter_map(|id| {
                        state.people.get(&id).map(|(first, last)| {
                            json!({"id": id, "first_name": first, "last_name": last,
                                   "can_access_closed": true, "is_closed": false})
                        })
                    })
                    .collect();
                json!({ "response": users })
            }
            "messages.send" => {
                let peer_id: i64 = call.param("peer_id").parse().unwrap_or(0);
                let random_id: i32 = call.param("random_id").parse().unwrap_or(0);
                if peer_id == 0 || call.param("message").is_empty() {
                    return vk_error(
                        100,
                        "One of the parameters specified was missing or invalid",
                    );
                }
                if random_id != 0
                    && let Some(first) = state.by_random_id.get(&(peer_id, random_id))
                {
                    return json!({ "response": first });
                }
                state.next_message_id += 1;
                let vk_id = state.next_message_id;
                if random_id != 0 {
                    state.by_random_id.insert((peer_id, random_id), vk_id);
                }
                state.delivered.push(Delivered {
                    peer_id,
                    random_id,
                    text: call.param("message").to_owned(),
                    vk_id,
                });
                json!({ "response": vk_id })
            }
            _ => vk_error(3, "Unknown method passed"),
        }
    }
}

fn vk_error(code: i32, message: &str) -> Value {
    json!({"error": {"error_code": code, "error_msg": message,
                     "request_params": [{"key": "oauth", "value": "1"}]}})
}

fn vk_error_text(code: i32) -> &'static str {
    match code {
        5 => "User authorization failed: invalid access_token (4).",
        6 => "Too many requests per second",
        7 => "Permission to perform this action is denied",
        9 => "Flood control",
        10 => "Internal server error",
        15 => "Access denied",
        113 => "Invalid user id",
        901 => "Can't send messages for users without permission",
        902 => "Can't send messages to this user due to their privacy settings",
        914 => "Message is too long",
        _ => "Unknown error occurred",
    }
}

impl Http for FakeVk {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        assert!(request.post, "VK calls must be POSTs: {}", request.url);
        let method = request
            .url
            .strip_prefix(API)
            .unwrap_or_else(|| panic!("not a VK API address: {}", request.url))
            .to_owned();
        let form = request.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("content-type")
                && value.starts_with("application/x-www-form-urlencoded")
        });
        assert!(form, "VK takes form bodies only: {:?}", request.headers);
        let body = std::str::from_utf8(&request.body).expect("a form body is text");
        let call = Call {
            method: method.clone(),
            params: parse_form(body),
            timeout_ms: request.timeout_ms,
        };
        let mut state = self.lock();
        state.calls.push(call.clone());
        let failure = state
            .failures
            .iter()
            .position(|(m, _)| m.as_deref().is_none_or(|m| m == method))
            .and_then(|at| state.failures.remove(at))
            .map(|(_, failure)| failure);
        let answer = match &failure {
            None => FakeVk::answer(&mut state, &call),
            Some(Failure::Vk(code)) => vk_error(*code, vk_error_text(*code)),
            Some(Failure::Status(status)) => {
                return Ok(HttpResponse {
                    status: *status,
                    body: b"<html>Internal Server Error</html>".to_vec(),
                });
            }
            Some(Failure::Timeout) => return Err(HttpError::Timeout),
            Some(Failure::TimeoutAfterDelivery) => {
                FakeVk::answer(&mut state, &call);
                return Err(HttpError::Timeout);
            }
        };
        Ok(HttpResponse {
            status: 200,
            body: serde_json::to_vec(&answer).expect("JSON serializes"),
        })
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

// ----------------------------------------------------------------------------------------
// Callbacks

static EVENT_IDS: AtomicU64 = AtomicU64::new(1);

/// A fresh 40-hex event id, as VK sends.
pub fn fresh_event_id() -> String {
    let n = EVENT_IDS.fetch_add(1, Ordering::Relaxed);
    format!("{n:040x}")
}

/// A callback VK would POST.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub group_id: i64,
    pub event_id: Option<String>,
    pub secret: Option<String>,
    pub object: Value,
}

/// A private message from `peer` (VK_FACTS §8.2), VK id `vk_id`.
pub fn message_object(peer: i64, vk_id: i64, text: &str) -> Value {
    json!({
        "date": 1_767_261_600 + vk_id,
        "from_id": peer,
        "id": vk_id,
        "version": 10_003_451,
        "out": 0,
        "important": false,
        "is_hidden": false,
        "attachments": [],
        "conversation_message_id": vk_id,
        "fwd_messages": [],
        "peer_id": peer,
        "random_id": 0,
        "text": text,
    })
}

impl Event {
    fn new(kind: &str, object: Value) -> Event {
        Event {
            kind: kind.to_owned(),
            group_id: GROUP_ID,
            event_id: Some(fresh_event_id()),
            secret: Some(SECRET.to_owned()),
            object,
        }
    }

    /// `confirmation` as VK sends it once a secret is configured (§8.1).
    pub fn confirmation() -> Event {
        Event {
            event_id: None,
            ..Event::new("confirmation", Value::Null)
        }
    }

    /// `message_new`, API ≥ 5.103: `{"message": {...}, "client_info": {...}}`.
    pub fn message_new(peer: i64, vk_id: i64, text: &str) -> Event {
        Event::new(
            "message_new",
            json!({
                "message": message_object(peer, vk_id, text),
                "client_info": {
                    "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"],
                    "keyboard": true, "inline_keyboard": true, "carousel": true, "lang_id": 0
                }
            }),
        )
    }

    /// `message_new`, API < 5.103: the object is the message itself.
    pub fn message_new_old_shape(peer: i64, vk_id: i64, text: &str) -> Event {
        Event::new("message_new", message_object(peer, vk_id, text))
    }

    /// `message_reply`: the community's own message (§8.4), the message itself as object.
    pub fn message_reply(peer: i64, vk_id: i64, random_id: i32, text: &str) -> Event {
        let mut object = message_object(peer, vk_id, text);
        object["from_id"] = json!(-GROUP_ID);
        object["out"] = json!(1);
        object["random_id"] = json!(random_id);
        Event::new("message_reply", object)
    }

    /// The echo VK sends of a message the plugin sent.
    pub fn echo(of: &Delivered) -> Event {
        Event::message_reply(of.peer_id, of.vk_id, of.random_id, &of.text)
    }

    /// A reply an admin typed in VK itself: no `random_id`, with `admin_author_id`.
    pub fn admin_reply(peer: i64, vk_id: i64, text: &str, admin: i64) -> Event {
        let mut event = Event::message_reply(peer, vk_id, 0, text);
        event.object["admin_author_id"] = json!(admin);
        event
    }

    /// `message_edit` of message `vk_id` (§8.5).
    pub fn message_edit(peer: i64, vk_id: i64, text: &str, update_time: i64) -> Event {
        let mut object = message_object(peer, vk_id, text);
        object["update_time"] = json!(update_time);
        Event::new("message_edit", object)
    }

    pub fn message_allow(user: i64) -> Event {
        Event::new(
            "message_allow",
            json!({"user_id": user, "key": "promo_jan"}),
        )
    }

    pub fn message_deny(user: i64) -> Event {
        Event::new("message_deny", json!({"user_id": user}))
    }

    pub fn with_event_id(mut self, id: &str) -> Event {
        self.event_id = Some(id.to_owned());
        self
    }

    pub fn without_event_id(mut self) -> Event {
        self.event_id = None;
        self
    }

    pub fn with_secret(mut self, secret: Option<&str>) -> Event {
        self.secret = secret.map(str::to_owned);
        self
    }

    pub fn for_group(mut self, group_id: i64) -> Event {
        self.group_id = group_id;
        self
    }

    /// Sets the message's attachments (in either `message_new` shape).
    pub fn with_attachments(mut self, attachments: Value) -> Event {
        match self.object.get_mut("message") {
            Some(message) => message["attachments"] = attachments,
            None => self.object["attachments"] = attachments,
        }
        self
    }

    pub fn body(&self) -> Vec<u8> {
        let mut envelope = json!({
            "type": self.kind,
            "group_id": self.group_id,
            "v": "5.199",
        });
        if !self.object.is_null() {
            envelope["object"] = self.object.clone();
        }
        if let Some(id) = &self.event_id {
            envelope["event_id"] = json!(id);
        }
        if let Some(secret) = &self.secret {
            envelope["secret"] = json!(secret);
        }
        serde_json::to_vec(&envelope).expect("JSON serializes")
    }
}

// ----------------------------------------------------------------------------------------
// The bench

/// A store, a fake VK and a clock; `core()` binds the domain to them.
pub struct Bench {
    pub store: MemoryStore,
    pub vk: FakeVk,
    pub clock: ManualClock,
}

impl Bench {
    /// Nothing configured.
    pub fn empty() -> Bench {
        Bench {
            store: MemoryStore::new(),
            vk: FakeVk::new(),
            clock: ManualClock::new(),
        }
    }

    /// Configured (token, secret, confirmation string, community name) but not confirmed.
    pub fn configured() -> Bench {
        let bench = Bench::empty();
        bench.change_settings(SettingsUpdate {
            access_token: Some(TOKEN.to_owned()),
            secret: Some(SECRET.to_owned()),
            confirmation: Some(CONFIRMATION.to_owned()),
            group_name: Some(GROUP_NAME.to_owned()),
            ..SettingsUpdate::default()
        });
        bench.vk.person(PERSON, PERSON_FIRST, PERSON_LAST);
        bench
    }

    /// Configured and confirmed by VK: ready for events.
    pub fn connected() -> Bench {
        let bench = Bench::configured();
        let reply = bench
            .deliver(&Event::confirmation())
            .expect("confirmation is answered");
        assert_eq!(reply, CallbackReply::Confirmation(CONFIRMATION.to_owned()));
        bench
    }

    pub fn core(&self) -> Core<'_> {
        Core::new(&self.store, &self.vk, &self.clock)
    }

    /// Hands an event to the plugin as VK would.
    pub fn deliver(&self, event: &Event) -> Result<CallbackReply, vk_core::Error> {
        self.core().handle_callback(&event.body())
    }

    /// Delivers an event that must be accepted.
    pub fn accept(&self, event: &Event) {
        let reply = self.deliver(event).expect("the event is accepted");
        assert_eq!(reply, CallbackReply::Ok);
    }

    /// A new employee, added to the settings' list.
    pub fn hire(&self) -> EmployeeId {
        let employee = EmployeeId::new();
        let mut employees = self.core().settings().expect("settings read").employees;
        employees.push(employee);
        self.set_employees(employees);
        employee
    }

    pub fn set_employees(&self, employees: Vec<EmployeeId>) {
        self.change_settings(SettingsUpdate {
            employees: Some(employees),
            ..SettingsUpdate::default()
        });
    }

    /// Stores a valid change of settings.
    pub fn change_settings(&self, update: SettingsUpdate) {
        self.core()
            .put_settings(update)
            .expect("a valid change of settings is stored");
    }

    /// Takes `employee` off the list.
    pub fn dismiss(&self, employee: EmployeeId) {
        let mut employees = self.core().settings().expect("settings read").employees;
        employees.retain(|e| *e != employee);
        self.set_employees(employees);
    }

    /// The person writes their first (or next) message; returns their dialog.
    pub fn person_writes(&self, peer: i64, vk_id: i64, text: &str) -> Dialog {
        self.accept(&Event::message_new(peer, vk_id, text));
        self.dialog_of(peer).expect("the person has a dialog")
    }

    /// The dialog of a VK user, by the peer index intake keeps (`peer/<id>`).
    pub fn dialog_of(&self, peer: i64) -> Option<Dialog> {
        let id: DialogId = self.record(&format!("peer/{peer}"))?;
        self.record(&format!("dialog/{id}"))
    }

    /// A stored record, decoded.
    pub fn record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let entry = self.store.get(key).expect("the memory store answers")?;
        Some(serde_json::from_slice(&entry.value).expect("a stored record decodes"))
    }

    /// Every stored key with its version and value: equal snapshots mean nothing changed.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.store
            .scan("", None, u32::MAX)
            .expect("the memory store answers")
    }

    /// How many records are stored under a prefix (`lead/`, `dialog/`, …).
    pub fn count(&self, prefix: &str) -> usize {
        self.store
            .scan(prefix, None, u32::MAX)
            .expect("the memory store answers")
            .len()
    }

    /// A dialog's messages, oldest first, read by `reader`.
    pub fn messages(&self, reader: EmployeeId, dialog: DialogId) -> Vec<Message> {
        self.core()
            .messages(reader, dialog, None, vk_core::dialog::MAX_PAGE)
            .expect("messages are readable")
            .items
    }

    /// A dialog's history, read by `reader`.
    pub fn history(&self, reader: EmployeeId, dialog: DialogId) -> Vec<HistoryEvent> {
        self.core()
            .history(reader, dialog, None, vk_core::dialog::MAX_PAGE)
            .expect("history is readable")
            .0
            .items
    }

    /// A dialog's lead.
    pub fn lead_of(&self, reader: EmployeeId, dialog: &Dialog) -> Lead {
        self.core()
            .lead(reader, dialog.lead_id)
            .expect("the lead is readable")
            .0
    }

    /// The ids of the dialogs `actor` sees in a list, first page of up to 200.
    pub fn listed(&self, actor: EmployeeId, status: DialogStatus) -> Vec<DialogId> {
        self.core()
            .dialogs(actor, status, None, vk_core::dialog::MAX_PAGE)
            .expect("the list is readable")
            .items
            .into_iter()
            .map(|d| d.id)
            .collect()
    }
}
