//! What the fuzz targets share: vk-core on its in-memory store, connected to a community as
//! an admin sets it up (settings, VK's confirmation, two listed employees), a VK that answers
//! without any network, a fixed clock, a snapshot of the whole store, and the consistency
//! check run after every input.
//!
//! The community is the made-up one of VK_FACTS §8 with a secret of its own (VK_FACTS' is
//! public: the OpenAPI document shows it in an example), so VK's example events, the seeds of
//! the `callback` target written with this secret, are accepted and go deep.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use vk_core::Core;
use vk_core::dialog::{DialogList, DialogStatus, Direction, MAX_PAGE};
use vk_core::directory::{Subject, digest};
use vk_core::ids::{DialogId, EmployeeId, ItemId, LeadId};
use vk_core::intake::CallbackReply;
use vk_core::lead::NewItem;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Clock, Entry, Http, HttpError, HttpRequest, HttpResponse, Store};
use vk_core::settings::SettingsUpdate;

pub const GROUP_ID: i64 = 218_765_432;
pub const SECRET: &str = "Tz8-fuzz-secret-b7e41c0d";
pub const CONFIRMATION: &str = "5e1d9c0b";
pub const GROUP_NAME: &str = "Tea House";
/// The person who writes first (VK_FACTS §8).
pub const PERSON: i64 = 512_340_987;
/// Long enough to be shown masked (`vk1.a.****Ab3x`).
pub const ACCESS_TOKEN: &str = "vk1.a.Fz7-fuzzcommunityaccesskey-Ab3x";
pub const ADMIN_TOKEN: &str = "adm-4c1f9e07b2d85a63e1";
/// The employees, with fixed ids and tokens so that seeds can name them. The first is
/// responsible for the seeded dialog.
pub const EMPLOYEE: &str = "0193a7c4-5e1d-4b7a-9c2f-3d8e6f1a2b4c";
pub const EMPLOYEE_TOKEN: &str = "emp-7d2a91c3e5f04b6812";
pub const COLLEAGUE: &str = "0193a7c4-9b3e-4f21-8d6a-c5e4b3a29180";
pub const COLLEAGUE_TOKEN: &str = "emp-2b8e4f6a1c9d07e355";
/// What callbacks are built with: the host a request names.
pub const HOST: &str = "crm.example";

/// The secrets the seeded store holds; no answer may show one that no request carried.
pub const SECRETS: [&str; 5] = [
    ACCESS_TOKEN,
    SECRET,
    ADMIN_TOKEN,
    EMPLOYEE_TOKEN,
    COLLEAGUE_TOKEN,
];

/// 2026-01-01T10:00:00Z, always: nothing expires during a run and inputs replay alike.
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0)
            .single()
            .expect("a valid time")
    }
}

/// VK's API as the product calls it (form-encoded POSTs to `api.vk.com/method/<name>`),
/// answered here. Which way a call goes depends on its peer, so inputs reach VK's failures
/// too: a user id ending in 4 is unknown to `users.get` (deleted), one ending in 6 times
/// out; `messages.send` to a peer ending in 5 is refused for good (901), in 6 answers 502.
pub struct Vk;

impl Http for Vk {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let Some(method) = request.url.strip_prefix("https://api.vk.com/method/") else {
            return Err(HttpError::Denied(request.url));
        };
        let params: HashMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let param = |name: &str| params.get(name).map_or("", String::as_str);
        let peer = param("peer_id").parse::<i64>().unwrap_or(0);
        let answer = match method {
            _ if param("access_token") != ACCESS_TOKEN => vk_error(5, "User authorization failed"),
            "users.get" => {
                let ids: Vec<i64> = param("user_ids")
                    .split(',')
                    .filter_map(|id| id.parse().ok())
                    .collect();
                if ids.iter().any(|id| id % 10 == 6) {
                    return Err(HttpError::Timeout);
                }
                let users: Vec<Value> = ids
                    .iter()
                    .filter(|id| *id % 10 != 4)
                    .map(|id| json!({"id": id, "first_name": "Anna", "last_name": "Smirnova"}))
                    .collect();
                json!({ "response": users })
            }
            "messages.send" if peer % 10 == 5 => vk_error(901, "Can't send messages"),
            "messages.send" if peer % 10 == 6 => {
                return Ok(HttpResponse {
                    status: 502,
                    body: Vec::new(),
                });
            }
            "messages.send" => {
                let random_id = param("random_id").parse::<i64>().unwrap_or(0);
                json!({ "response": 1000 + random_id.rem_euclid(1_000_000) })
            }
            _ => vk_error(3, "Unknown method passed"),
        };
        Ok(HttpResponse {
            status: 200,
            body: answer.to_string().into_bytes(),
        })
    }
}

fn vk_error(code: i32, message: &str) -> Value {
    json!({"error": {"error_code": code, "error_msg": message}})
}

pub fn employee() -> EmployeeId {
    EMPLOYEE.parse().expect("a valid id")
}

pub fn colleague() -> EmployeeId {
    COLLEAGUE.parse().expect("a valid id")
}

/// What [`Bench::with_dialog`] created.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    pub dialog: DialogId,
    pub lead: LeadId,
    pub item: ItemId,
}

/// A store connected to the community.
pub struct Bench {
    pub store: MemoryStore,
}

impl Bench {
    /// The employees are in the directory and listed, the settings hold the access key, the
    /// secret and the confirmation string, and VK's confirmation recorded the community.
    pub fn connected() -> Bench {
        let bench = Bench {
            store: MemoryStore::new(),
        };
        let core = bench.core();
        for (id, name, token) in [
            (EMPLOYEE, "Olga", EMPLOYEE_TOKEN),
            (COLLEAGUE, "Ivan", COLLEAGUE_TOKEN),
        ] {
            let record = json!({"id": id, "name": name, "token_sha256": digest(token)});
            core.adopt_employee(record.to_string().as_bytes())
                .expect("the employee is stored");
        }
        core.put_settings(SettingsUpdate {
            access_token: Some(ACCESS_TOKEN.to_owned()),
            secret: Some(SECRET.to_owned()),
            confirmation: Some(CONFIRMATION.to_owned()),
            group_name: Some(GROUP_NAME.to_owned()),
            api_version: None,
            employees: Some(vec![employee(), colleague()]),
        })
        .expect("the settings are stored");
        let confirmation =
            json!({"type": "confirmation", "group_id": GROUP_ID, "secret": SECRET}).to_string();
        assert_eq!(
            core.handle_callback(confirmation.as_bytes()),
            Ok(CallbackReply::Confirmation(CONFIRMATION.to_owned()))
        );
        bench
    }

    /// Connected, and [`PERSON`] wrote: a dialog the first employee claimed, and its lead
    /// with one line of goods.
    pub fn with_dialog() -> (Bench, Seeded) {
        let bench = Bench::connected();
        let core = bench.core();
        let message_new = json!({
            "type": "message_new", "group_id": GROUP_ID, "event_id": "seed-1", "v": "5.199",
            "secret": SECRET,
            "object": {"message": {"id": 1042, "date": 1_767_261_600, "peer_id": PERSON,
                                   "from_id": PERSON, "text": "Здравствуйте!"}}
        });
        core.handle_callback(message_new.to_string().as_bytes())
            .expect("the message is stored");
        let dialog = core
            .dialogs(Subject::Admin, DialogList::All, None, 1)
            .expect("the list reads")
            .items
            .pop()
            .expect("the person's dialog");
        core.claim(employee(), dialog.id)
            .expect("the employee claims it");
        let tea = NewItem {
            name: "Чай улун".to_owned(),
            sku: Some("TEA-7".to_owned()),
            quantity: "2".to_owned(),
            price: "150.00".to_owned(),
            currency: None,
        };
        let (lead, _) = core
            .add_item(employee(), dialog.lead_id, tea)
            .expect("the goods are added");
        let seeded = Seeded {
            dialog: dialog.id,
            lead: lead.id,
            item: lead.items[0].id,
        };
        (bench, seeded)
    }

    pub fn core(&self) -> Core<'_> {
        Core::new(&self.store, &Vk, &FixedClock)
    }

    /// Every key with its value and version.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.store
            .scan("", None, u32::MAX)
            .expect("the memory store scans")
    }

    /// What holds of any store, whatever happened to it, read through the domain's own
    /// reads: each dialog is listed under its status exactly once and has its lead (which
    /// points back to it), one dialog per person, the queue holds only dialogs nobody is
    /// responsible for, an employee's own list only dialogs they work on, the responsible
    /// employee comes first among the participants, and each dialog's activity agrees with
    /// its stored messages.
    pub fn check_consistent(&self) {
        let core = self.core();
        let list = |reader: Subject, list: DialogList| {
            let page = core
                .dialogs(reader, list, None, MAX_PAGE)
                .expect("a list reads");
            assert!(page.next.is_none(), "more dialogs than one input makes");
            page.items
        };
        let mut dialogs = Vec::new();
        for (name, status) in [
            (DialogList::All, DialogStatus::Open),
            (DialogList::Spam, DialogStatus::Spam),
            (DialogList::Finished, DialogStatus::Finished),
        ] {
            for dialog in list(Subject::Admin, name) {
                assert_eq!(dialog.status, status, "{dialog:?} is in the list {name:?}");
                dialogs.push(dialog);
            }
        }
        let ids: HashSet<DialogId> = dialogs.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), dialogs.len(), "a dialog is listed twice");
        let peers: HashSet<i64> = dialogs.iter().map(|d| d.peer_id).collect();
        assert_eq!(peers.len(), dialogs.len(), "a person has two dialogs");
        for dialog in list(Subject::Admin, DialogList::Queue) {
            assert!(
                dialog.status == DialogStatus::Open && dialog.responsible.is_none(),
                "{dialog:?} is in the queue"
            );
        }
        for id in [employee(), colleague()] {
            // An employee taken off the settings' list reads nothing.
            if core.dialogs(id, DialogList::Mine, None, 1).is_ok() {
                for dialog in list(Subject::Employee(id), DialogList::Mine) {
                    assert!(
                        dialog.status == DialogStatus::Open && dialog.participants.contains(&id),
                        "{dialog:?} is in the own list of {id}"
                    );
                }
            }
        }
        let leads = core
            .leads(Subject::Admin, "", None, MAX_PAGE)
            .expect("every listed lead's dialog exists");
        assert_eq!(leads.items.len(), dialogs.len(), "leads and dialogs differ");
        for dialog in &dialogs {
            let (lead, communication) = core
                .lead(Subject::Admin, dialog.lead_id)
                .expect("every dialog's lead exists");
            assert_eq!(
                (lead.dialog_id, lead.peer_id, communication.dialog_id),
                (dialog.id, dialog.peer_id, dialog.id),
                "the lead of {dialog:?} points elsewhere"
            );
            if let Some(responsible) = dialog.responsible {
                assert_eq!(
                    dialog.participants.first(),
                    Some(&responsible),
                    "{dialog:?}"
                );
            }
            assert!(
                dialog
                    .participants
                    .iter()
                    .all(|p| dialog.operators.contains(p)),
                "{dialog:?}: a participant is not among the operators"
            );
            let messages = core
                .messages(Subject::Admin, dialog.id, None, MAX_PAGE)
                .expect("the messages read");
            assert!(
                messages.next.is_none(),
                "more messages than one input makes"
            );
            assert!(messages.items.iter().all(|m| m.dialog_id == dialog.id));
            let incoming = messages
                .items
                .iter()
                .filter(|m| m.direction == Direction::Incoming)
                .count();
            assert_eq!(
                dialog.activity.incoming, incoming as u64,
                "{dialog:?} counts its incoming messages wrong"
            );
            if let Some(last) = &dialog.activity.last_message {
                assert!(
                    messages.items.iter().any(|m| m.id == last.message_id),
                    "the last message of {dialog:?} is not stored"
                );
            }
        }
    }
}

/// The fields of a callback that say who sent it.
#[derive(Deserialize)]
struct Sender {
    group_id: i64,
    secret: Option<String>,
}

/// Whether a callback body carries the community's id and secret: the only callbacks the
/// product may act on. Only these two fields are read: JSON's grammar allows numbers that no
/// `f64` holds (`8e654`), which a whole `serde_json::Value` refuses.
pub fn from_community(body: &[u8]) -> bool {
    serde_json::from_slice::<Sender>(body)
        .is_ok_and(|sender| sender.group_id == GROUP_ID && sender.secret.as_deref() == Some(SECRET))
}

/// Whether `haystack` holds `needle` as bytes.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
}

/// A request to `vk_api::handle`, owned.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Call {
    /// An admin request as a script sends it.
    pub fn admin(method: &str, path: &str, body: &[u8]) -> Call {
        Call {
            method: method.to_owned(),
            path: path.to_owned(),
            query: None,
            headers: vec![
                ("host".to_owned(), HOST.to_owned()),
                ("authorization".to_owned(), format!("Bearer {ADMIN_TOKEN}")),
            ],
            body: body.to_vec(),
        }
    }

    /// Served by vk-api with the admin token configured.
    pub fn send(&self, bench: &Bench) -> vk_api::Response {
        let config = vk_api::Config {
            admin_token: Some(ADMIN_TOKEN),
            public_url: None,
        };
        let request = vk_api::Request {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        };
        vk_api::handle(&bench.core(), &config, &request)
    }
}
