//! The settings update: bytes → the body of `PUT /api/settings` (vk-api parses it, vk-core
//! validates and stores it) on a store connected to the community, whose first employee is
//! responsible for a dialog.
//!
//! A refusal stores nothing. An accepted update answers what `GET /api/settings` then reads,
//! and that is exactly the update applied to the seeded settings: fields left out or `null`
//! keep their value, an empty access key, secret or confirmation string removes it, the
//! community name is trimmed, employees are listed once each, and the access key and the
//! secret are shown masked only (`****`; a key of 32 characters or more as its first six and
//! last four around it). The store stays consistent (an employee taken off the list leaves
//! their dialog to the queue).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use vk_core::EmployeeId;
use vk_core::settings::DEFAULT_API_VERSION;
use vk_fuzz::{
    ACCESS_TOKEN, Bench, COLLEAGUE, CONFIRMATION, Call, EMPLOYEE, GROUP_ID, GROUP_NAME, HOST,
};

const MASK: &str = "****";

fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 32 {
        return MASK.to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{MASK}{tail}")
}

/// The settings page after `update` was accepted.
fn expected(update: &Value) -> Value {
    let given = |name: &str| {
        update
            .get(name)
            .filter(|value| !value.is_null())
            .map(|value| value.as_str().expect("an accepted field is a text"))
    };
    let removable = |name: &str, kept: Value, shown: &dyn Fn(&str) -> Value| match given(name) {
        None => kept,
        Some("") => Value::Null,
        Some(text) => shown(text),
    };
    let employees = match update.get("employees").filter(|value| !value.is_null()) {
        None => vec![EMPLOYEE.to_owned(), COLLEAGUE.to_owned()],
        Some(list) => {
            let mut listed: Vec<String> = Vec::new();
            for text in list.as_array().expect("an accepted list") {
                let id: EmployeeId = text
                    .as_str()
                    .and_then(|text| text.parse().ok())
                    .expect("an accepted employee id");
                if !listed.contains(&id.to_string()) {
                    listed.push(id.to_string());
                }
            }
            listed
        }
    };
    json!({
        "access_token": removable("access_token", json!(masked(ACCESS_TOKEN)), &|key| json!(masked(key))),
        "secret": removable("secret", json!(MASK), &|_| json!(MASK)),
        "confirmation": removable("confirmation", json!(CONFIRMATION), &|text| json!(text)),
        "group_name": given("group_name").map_or(GROUP_NAME, str::trim),
        "api_version": given("api_version").unwrap_or(DEFAULT_API_VERSION),
        "employees": employees,
        "group_id": GROUP_ID,
        "fixed_by_platform": [],
        "callback_url": format!("http://{HOST}{}", vk_core::CALLBACK_PATH),
    })
}

fuzz_target!(|data: &[u8]| {
    let (bench, _) = Bench::with_dialog();
    let before = bench.snapshot();
    let answer = Call::admin("PUT", "/api/settings", data).send(&bench);
    if answer.status != 200 {
        assert!(answer.status >= 400, "status {}", answer.status);
        assert!(bench.snapshot() == before, "a refused update was stored");
        return;
    }
    let update: Value = serde_json::from_slice(data).expect("an accepted update is JSON");
    let answered: Value = serde_json::from_slice(&answer.body).expect("the answer is JSON");
    let read = Call::admin("GET", "/api/settings", b"").send(&bench);
    let shown: Value = serde_json::from_slice(&read.body).expect("the settings are JSON");
    assert_eq!(
        answered, shown,
        "the update answered other settings than it stored"
    );
    assert_eq!(shown, expected(&update), "for the update {update}");
    bench.check_consistent();
});
