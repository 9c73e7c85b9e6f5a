//! The authorization matrix: every route of vk-api's route table × every kind of caller × the
//! state of the dialog where it matters, against the real plugin in the real host over HTTP.
//!
//! The expected status of each cell is written once, in [`EXPECTED`], a table that reads like
//! the spec; the test checks that the table covers exactly the routes of `vk_api::routes`
//! (a new route without its row fails), runs every cell on its own dialog, and prints every
//! cell that differs as a row of the same table.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::*;
use vk_api::routes::{Access, ROUTES};

/// The callers, in the order of [`EXPECTED`]'s columns.
const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::Forged,
    Caller::EndedSession,
    Caller::Admin,
    Caller::Unlisted,
    Caller::Listed,
    Caller::Participant,
    Caller::Responsible,
    Caller::RemovedMidSession,
];

/// The states of a dialog (and of its lead) a row may name; `-`: no dialog is involved.
const STATES: [&str; 4] = ["queue", "claimed", "spam", "finished"];

/// Expected statuses. Columns: anonymous, a forged token, a session that was signed out, the
/// admin, an employee not listed in the settings, a listed employee with no part in the
/// dialog, a participant, the responsible employee, an employee removed while signed in.
/// A dialog `queue`d has nobody in it yet (the participant and the responsible employee of the
/// other states are plain listed employees there); `claimed` has its responsible employee and
/// a participant invited; `spam` and `finished` were closed so by the responsible employee.
const EXPECTED: &str = "
# route                                     state     anon forg ended admin unlst listd prtcp resp  remvd
POST   /settings/integrations/vk-group/call-back -     200  200  200   200   200   200   200   200   200
GET    /api/openapi.json                    -         200  200  200   200   200   200   200   200   200
POST   /api/sessions                        -         201  201  201   201   201   201   201   201   201
DELETE /api/sessions/current                -         401  401  401   200   200   200   200   200   401
GET    /api/me                              -         401  401  401   200   200   200   200   200   401
POST   /api/employees                       -         401  401  401   201   403   403   403   403   401
GET    /api/employees                       -         401  401  401   200   200   200   200   200   401
DELETE /api/employees/{id}                  -         401  401  401   200   403   403   403   403   401
POST   /api/employees/{id}/sign-in-link     -         401  401  401   201   403   403   403   403   401
GET    /api/settings                        -         401  401  401   200   403   403   403   403   401
PUT    /api/settings                        -         401  401  401   200   403   403   403   403   401
DELETE /api/settings/group-id               -         401  401  401   200   403   403   403   403   401
POST   /api/outbox/flush                    -         401  401  401   200   403   403   403   403   401
GET    /api/dialogs                         -         401  401  401   200   403   200   200   200   401
GET    /api/dialogs/counts                  -         401  401  401   200   403   200   200   200   401
GET    /api/dialogs/{id}                    queue     401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}                    claimed   401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}                    spam      401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}                    finished  401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/messages           queue     401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/messages           claimed   401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/messages           spam      401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/messages           finished  401   401   401   200   403   200   200   200   401
POST   /api/dialogs/{id}/messages           queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/messages           claimed   401   401   401   403   403   403   201   201   401
POST   /api/dialogs/{id}/messages           spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/messages           finished  401   401   401   403   403   409   409   409   401
GET    /api/dialogs/{id}/history            queue     401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/history            claimed   401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/history            spam      401   401   401   200   403   200   200   200   401
GET    /api/dialogs/{id}/history            finished  401   401   401   200   403   200   200   200   401
POST   /api/dialogs/{id}/claim              queue     401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/claim              claimed   401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/claim              spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/claim              finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/invite             queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/invite             claimed   401   401   401   403   403   403   403   200   401
POST   /api/dialogs/{id}/invite             spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/invite             finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/leave              queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/leave              claimed   401   401   401   403   403   403   200   200   401
POST   /api/dialogs/{id}/leave              spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/leave              finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/delegate           queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/delegate           claimed   401   401   401   403   403   403   403   200   401
POST   /api/dialogs/{id}/delegate           spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/delegate           finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/spam               queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/spam               claimed   401   401   401   403   403   403   403   200   401
POST   /api/dialogs/{id}/spam               spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/spam               finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/finish             queue     401   401   401   403   403   403   403   403   401
POST   /api/dialogs/{id}/finish             claimed   401   401   401   403   403   403   403   200   401
POST   /api/dialogs/{id}/finish             spam      401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/finish             finished  401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/restore            queue     401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/restore            claimed   401   401   401   403   403   409   409   409   401
POST   /api/dialogs/{id}/restore            spam      401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/restore            finished  401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/read               queue     401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/read               claimed   401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/read               spam      401   401   401   403   403   200   200   200   401
POST   /api/dialogs/{id}/read               finished  401   401   401   403   403   200   200   200   401
GET    /api/leads/{id}                      queue     401   401   401   200   403   200   200   200   401
GET    /api/leads/{id}                      claimed   401   401   401   200   403   200   200   200   401
GET    /api/leads/{id}                      spam      401   401   401   200   403   200   200   200   401
GET    /api/leads/{id}                      finished  401   401   401   200   403   200   200   200   401
POST   /api/leads/{id}/items                queue     401   401   401   403   403   201   201   201   401
POST   /api/leads/{id}/items                claimed   401   401   401   403   403   201   201   201   401
POST   /api/leads/{id}/items                spam      401   401   401   403   403   201   201   201   401
POST   /api/leads/{id}/items                finished  401   401   401   403   403   201   201   201   401
PATCH  /api/leads/{id}/items/{item}         queue     401   401   401   403   403   200   200   200   401
PATCH  /api/leads/{id}/items/{item}         claimed   401   401   401   403   403   200   200   200   401
PATCH  /api/leads/{id}/items/{item}         spam      401   401   401   403   403   200   200   200   401
PATCH  /api/leads/{id}/items/{item}         finished  401   401   401   403   403   200   200   200   401
DELETE /api/leads/{id}/items/{item}         queue     401   401   401   403   403   200   200   200   401
DELETE /api/leads/{id}/items/{item}         claimed   401   401   401   403   403   200   200   200   401
DELETE /api/leads/{id}/items/{item}         spam      401   401   401   403   403   200   200   200   401
DELETE /api/leads/{id}/items/{item}         finished  401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/convert              queue     401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/convert              claimed   401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/convert              spam      401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/convert              finished  401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/restore-dialog       queue     401   401   401   403   403   409   409   409   401
POST   /api/leads/{id}/restore-dialog       claimed   401   401   401   403   403   409   409   409   401
POST   /api/leads/{id}/restore-dialog       spam      401   401   401   403   403   200   200   200   401
POST   /api/leads/{id}/restore-dialog       finished  401   401   401   403   403   200   200   200   401
GET    /api/leads                           -         401  401  401   200   403   200   200   200   401
GET    /api/counterparties                  -         401  401  401   200   403   200   200   200   401
GET    /api/counterparties/{id}             -         401  401  401   200   403   200   200   200   401
GET    /api/orders                          -         401  401  401   200   403   200   200   200   401
GET    /api/orders/{id}                     -         401  401  401   200   403   200   200   200   401
GET    /api/channel                         -         401  401  401   200   403   403   403   403   401
GET    /api/changes                         -         401  401  401   200   200   200   200   200   401
";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Forged,
    EndedSession,
    Admin,
    Unlisted,
    Listed,
    Participant,
    Responsible,
    RemovedMidSession,
}

/// The people of the world and their credentials.
struct Cast {
    responsible: Employee,
    participant: Employee,
    listed: Employee,
    unlisted: Employee,
    /// The session cookie of a listed employee who signed out.
    ended_session: String,
    /// The session cookie of an employee the admin removed afterwards.
    removed_session: String,
    /// The counterparty and the order of a lead converted for their routes.
    counterparty: String,
    order: String,
}

/// What a cell's request names: the dialog and lead of its own person, and an item of it.
#[derive(Debug, Clone, Default)]
struct Subject {
    dialog: String,
    lead: String,
    item: String,
}

/// One cell of the matrix.
struct Cell {
    method: &'static str,
    path: &'static str,
    state: &'static str,
    caller: Caller,
    expected: u16,
}

/// The rows of [`EXPECTED`]: (method, path, state) → the statuses of the callers.
fn expected_rows() -> BTreeMap<(String, String, String), Vec<u16>> {
    let mut rows = BTreeMap::new();
    for line in EXPECTED.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words.len(), 3 + CALLERS.len(), "a row of EXPECTED: {line}");
        let statuses = words[3..]
            .iter()
            .map(|s| s.parse().expect("a status"))
            .collect();
        let key = (words[0].into(), words[1].into(), words[2].into());
        assert!(rows.insert(key, statuses).is_none(), "a row twice: {line}");
    }
    rows
}

/// Whether a route acts on one dialog (or on its lead), so its answer depends on the
/// dialog's state.
fn about_a_dialog(path: &str) -> bool {
    path.starts_with("/api/dialogs/{id}") || path.starts_with("/api/leads/{id}")
}

#[test]
fn every_route_answers_every_caller_as_the_table_says() {
    let rows = expected_rows();
    let mut cells = Vec::new();
    for route in ROUTES {
        let states: &[&str] = if about_a_dialog(route.path) {
            &STATES
        } else {
            &["-"]
        };
        for state in states {
            let key = (route.method.into(), route.path.into(), (*state).into());
            let statuses = rows
                .get(&key)
                .unwrap_or_else(|| panic!("EXPECTED has no row for {key:?}"));
            for (caller, expected) in CALLERS.iter().zip(statuses) {
                cells.push(Cell {
                    method: route.method,
                    path: route.path,
                    state,
                    caller: *caller,
                    expected: *expected,
                });
            }
        }
    }
    assert_eq!(
        cells.len(),
        rows.len() * CALLERS.len(),
        "EXPECTED has rows for routes or states the route table does not have"
    );
    // No route but VK's callback, the sign-in and the API's description (which holds no
    // data) answers without authentication, and the table of routes says the same.
    for cell in cells.iter().filter(|c| c.caller == Caller::Anonymous) {
        let public = ROUTES
            .iter()
            .any(|r| r.path == cell.path && r.method == cell.method && r.access == Access::Public);
        assert_eq!(
            cell.expected == 401,
            !public,
            "{} {}",
            cell.method,
            cell.path
        );
    }

    let world = World::new(5);
    let cast = cast(&world);
    let subjects = subjects(&world, &cast, &cells);
    let mut wrong = BTreeMap::new();
    for (cell, subject) in cells.iter().zip(&subjects) {
        let (status, body) = run(&world.host, &cast, cell, subject);
        if status != cell.expected {
            let statuses = wrong
                .entry((cell.method, cell.path, cell.state))
                .or_insert_with(|| vec![String::new(); CALLERS.len()]);
            let column = CALLERS
                .iter()
                .position(|c| *c == cell.caller)
                .expect("a caller");
            statuses[column] = format!("{status} (not {}): {body}", cell.expected);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows differ from EXPECTED:\n{}",
        wrong.len(),
        wrong
            .iter()
            .map(|((method, path, state), statuses)| format!(
                "{method} {path} {state}:\n{}",
                CALLERS
                    .iter()
                    .zip(statuses)
                    .filter(|(_, s)| !s.is_empty())
                    .map(|(caller, s)| format!("    {caller:?}: {s}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The world's people: staff 0–2 are the responsible employee, the participant and a listed
/// bystander; staff 3 signs in and out; staff 4 signs in and is removed; one more employee is
/// never listed.
fn cast(world: &World) -> Cast {
    let host = &world.host;
    let (status, unlisted) = host.call(
        "POST",
        "/api/employees",
        Some(ADMIN),
        Some(json!({"name": "Not listed"})),
    );
    assert_eq!(status, 201, "{unlisted}");
    let ended_session = session(host, &world.staff[3].id);
    let (status, body) = host.request_with_headers(
        "DELETE",
        "/api/sessions/current",
        None,
        None,
        &[("cookie", &format!("vk_session={ended_session}"))],
    );
    assert_eq!(status, 200, "{body}");
    let removed_session = session(host, &world.staff[4].id);
    let (status, body) = host.call(
        "DELETE",
        &format!("/api/employees/{}", world.staff[4].id),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let user = 650_000_000;
    let event = message_new("matrix-converted", user, 1, "Куплю торт");
    assert_eq!(host.callback(&event), (200, "ok".into()));
    let lead = world.dialog_of(user)["lead_id"]
        .as_str()
        .expect("a lead")
        .to_owned();
    let token = Some(world.staff[0].token.as_str());
    let (status, answer) = host.call(
        "POST",
        &format!("/api/leads/{lead}/items"),
        token,
        Some(json!({"name": "Торт", "quantity": 1, "price": "1850"})),
    );
    assert_eq!(status, 201, "{answer}");
    let (status, conversion) =
        host.call("POST", &format!("/api/leads/{lead}/convert"), token, None);
    assert_eq!(status, 200, "{conversion}");
    let id = |field: &str| conversion[field].as_str().expect("an id").to_owned();
    Cast {
        counterparty: id("counterparty_id"),
        order: id("order_id"),
        responsible: world.staff[0].clone(),
        participant: world.staff[1].clone(),
        listed: world.staff[2].clone(),
        unlisted: Employee {
            id: unlisted["id"].as_str().expect("an id").into(),
            token: unlisted["token"].as_str().expect("a token").into(),
        },
        ended_session,
        removed_session,
    }
}

/// The VK user whose dialog a cell acts on: a person of its own when the cell is expected to
/// change something, else one person per state shared by every such cell (a refusal or a
/// read changes nothing; were one wrongly accepted, its own cell fails). `None`: no dialog.
fn person(n: usize, cell: &Cell) -> Option<(i64, &'static str)> {
    let shared = STATES.iter().position(|s| *s == cell.state)?;
    let changes = cell.method != "GET" && cell.expected < 300;
    Some(match changes {
        true => (700_000_000 + n as i64, cell.state),
        false => (699_000_000 + shared as i64, cell.state),
    })
}

/// Each cell's subject: the dialog of its [`person`], brought to the cell's state (claimed by
/// the responsible employee, who invited the participant, then closed as the state says),
/// with one item on its lead.
fn subjects(world: &World, cast: &Cast, cells: &[Cell]) -> Vec<Subject> {
    let host = &world.host;
    let people: BTreeMap<i64, &str> = cells
        .iter()
        .enumerate()
        .filter_map(|(n, cell)| person(n, cell))
        .collect();
    for user in people.keys() {
        let event = message_new(&format!("matrix-{user}"), *user, 1, "Здравствуйте!");
        assert_eq!(host.callback(&event), (200, "ok".into()));
    }
    let mut by_peer = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (status, page) = host.call(
            "GET",
            &format!("/api/dialogs?status=all&limit=200{cursor}"),
            Some(ADMIN),
            None,
        );
        assert_eq!(status, 200, "{page}");
        for dialog in page["dialogs"].as_array().expect("dialogs") {
            let peer = dialog["peer_id"].as_i64().expect("a peer");
            by_peer.insert(peer, dialog.clone());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let act = |method: &str, path: String, body: Option<Value>, want: u16| {
        let token = Some(cast.responsible.token.as_str());
        let (status, answer) = host.call(method, &path, token, body);
        assert_eq!(status, want, "{method} {path}: {answer}");
        answer
    };
    let mut prepared = BTreeMap::new();
    for (user, state) in people {
        let dialog = &by_peer[&user];
        let id = dialog["id"].as_str().expect("an id").to_owned();
        let lead = dialog["lead_id"].as_str().expect("a lead").to_owned();
        let with_item = act(
            "POST",
            format!("/api/leads/{lead}/items"),
            Some(json!({"name": "Торт", "quantity": 1, "price": "1850"})),
            201,
        );
        let item = with_item["items"][0]["id"]
            .as_str()
            .expect("an item")
            .to_owned();
        if state != "queue" {
            act("POST", format!("/api/dialogs/{id}/claim"), None, 200);
            let invited = json!({"employees": [cast.participant.id]});
            act(
                "POST",
                format!("/api/dialogs/{id}/invite"),
                Some(invited),
                200,
            );
        }
        if state == "spam" || state == "finished" {
            let command = if state == "spam" { "spam" } else { "finish" };
            act("POST", format!("/api/dialogs/{id}/{command}"), None, 200);
        }
        prepared.insert(
            user,
            Subject {
                dialog: id,
                lead,
                item,
            },
        );
    }
    cells
        .iter()
        .enumerate()
        .map(|(n, cell)| match person(n, cell) {
            Some((user, _)) => prepared[&user].clone(),
            None => Subject::default(),
        })
        .collect()
}

/// Runs one cell; the status and the body.
fn run(host: &Host, cast: &Cast, cell: &Cell, subject: &Subject) -> (u16, String) {
    let id = match cell.path {
        p if p.starts_with("/api/leads/{id}") => subject.lead.clone(),
        p if p.starts_with("/api/dialogs/{id}") => subject.dialog.clone(),
        p if p.starts_with("/api/employees/{id}") => throwaway_employee(host),
        "/api/counterparties/{id}" => cast.counterparty.clone(),
        "/api/orders/{id}" => cast.order.clone(),
        _ => String::new(),
    };
    let path = cell
        .path
        .replace("{id}", &id)
        .replace("{item}", &subject.item);
    let body = match (cell.method, cell.path) {
        ("POST", "/settings/integrations/vk-group/call-back") => Some(message_new(
            &format!("matrix-callback-{:?}", cell.caller),
            600_000_000 + cell.caller as i64,
            1,
            "Ещё один",
        )),
        ("POST", "/api/sessions") => {
            Some(json!({"code": sign_in_code(host, &throwaway_employee(host))}))
        }
        ("POST", "/api/employees") => Some(json!({"name": "Новый оператор"})),
        ("PUT", "/api/settings") => Some(json!({"group_name": "Bakery"})),
        ("POST", "/api/dialogs/{id}/messages") => Some(json!({"text": "Добрый день!"})),
        ("POST", "/api/dialogs/{id}/invite") => Some(json!({"employees": [cast.listed.id]})),
        ("POST", "/api/dialogs/{id}/delegate") => Some(json!({"to": cast.listed.id})),
        ("POST", "/api/leads/{id}/items") => {
            Some(json!({"name": "Пирожное", "quantity": "2", "price": 120}))
        }
        ("PATCH", "/api/leads/{id}/items/{item}") => Some(json!({"quantity": 3})),
        _ => None,
    };
    let body = body.map(|b| b.to_string().into_bytes());
    let cookie = |session: &str| format!("vk_session={session}");
    let answer = match cell.caller {
        Caller::Anonymous => host.request(cell.method, &path, None, body),
        Caller::Forged => host.request(cell.method, &path, Some("forged-0f3c9e1d7b2a"), body),
        Caller::EndedSession => host.request_with_headers(
            cell.method,
            &path,
            None,
            body,
            &[("cookie", &cookie(&cast.ended_session))],
        ),
        Caller::RemovedMidSession => host.request_with_headers(
            cell.method,
            &path,
            None,
            body,
            &[("cookie", &cookie(&cast.removed_session))],
        ),
        Caller::Admin => host.request(cell.method, &path, Some(ADMIN), body),
        Caller::Unlisted => host.request(cell.method, &path, Some(&cast.unlisted.token), body),
        Caller::Listed => host.request(cell.method, &path, Some(&cast.listed.token), body),
        Caller::Participant => {
            host.request(cell.method, &path, Some(&cast.participant.token), body)
        }
        Caller::Responsible => {
            host.request(cell.method, &path, Some(&cast.responsible.token), body)
        }
    };
    if cell.path == "/api/settings/group-id" && answer.0 == 200 {
        assert_eq!(host.callback(&confirmation()), (200, CONFIRMATION.into()));
    }
    answer
}

/// A new employee nobody else uses (a removal or a sign-in link acts on it).
fn throwaway_employee(host: &Host) -> String {
    let (status, body) = host.call(
        "POST",
        "/api/employees",
        Some(ADMIN),
        Some(json!({"name": "Временный"})),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("an id").into()
}
