//! The OpenAPI document (`docs/openapi.json`, served at `GET /api/openapi.json`) against the
//! route table it describes: the same routes, the same access, nothing more, nothing less.

use std::collections::BTreeSet;

use serde_json::Value;
use vk_api::routes::{Access, OPENAPI_PATH, ROUTES};
use vk_api::{Config, Request, handle};
use vk_core::Core;
use vk_core::memory::MemoryStore;
use vk_core::ports::{Offline, SystemClock};

/// The document as the API serves it.
fn served() -> Value {
    let store = MemoryStore::new();
    let core = Core::new(&store, &Offline, &SystemClock);
    let answer = handle(
        &core,
        &Config::default(),
        &Request {
            method: "GET",
            path: OPENAPI_PATH,
            query: None,
            headers: &[],
            body: b"",
        },
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    serde_json::from_slice(&answer.body).expect("the document is JSON")
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[test]
fn the_document_describes_exactly_the_routes_of_the_table() {
    let document = served();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item");
            item.keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|route| route.path != OPENAPI_PATH)
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect();
    let missing: Vec<_> = routed.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not described: {missing:?}; described but not routed: {extra:?}"
    );
}

#[test]
fn the_document_says_who_may_call_each_route() {
    let document = served();
    for route in ROUTES.iter().filter(|route| route.path != OPENAPI_PATH) {
        let operation = &document["paths"][route.path][route.method.to_lowercase()];
        let name = format!("{} {}", route.method, route.path);
        let security = operation
            .get("security")
            .or_else(|| document.get("security"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name}: no security"));
        let responses = operation["responses"].as_object().expect("responses");
        if route.access == Access::Public {
            assert!(security.is_empty(), "{name} needs no authentication");
        } else {
            assert!(!security.is_empty(), "{name} needs authentication");
            assert!(responses.contains_key("401"), "{name}: no 401");
        }
        if matches!(route.access, Access::Admin | Access::Employee) {
            assert!(responses.contains_key("403"), "{name}: no 403");
        }
        for (status, _) in responses {
            assert!(
                status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                "{name}: response {status}"
            );
        }
    }
}
