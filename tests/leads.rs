//! Leads end to end (§1, §9): goods, conversion into a counterparty and an order, the
//! communication blocks, and a returning person.

mod support;

use serde_json::{Value, json};
use support::*;

const PERSON: i64 = 600_100;

fn with_lead(shell: Shell) -> (World, String, String) {
    let world = World::on(shell, 2);
    assert_eq!(
        world
            .host
            .callback(&message_new("hello", PERSON, 1, "Хочу торт")),
        (200, "ok".to_owned())
    );
    let dialog = world.dialog_of(PERSON);
    let lead = dialog["lead_id"].as_str().expect("a lead").to_owned();
    (
        world,
        lead,
        dialog["id"].as_str().expect("a dialog").to_owned(),
    )
}

fn add(world: &World, lead: &str, item: Value) -> (u16, Value) {
    world.host.call(
        "POST",
        &format!("/api/leads/{lead}/items"),
        world.token(0),
        Some(item),
    )
}

fn convert(world: &World, lead: &str) -> (u16, Value) {
    world.host.call(
        "POST",
        &format!("/api/leads/{lead}/convert"),
        world.token(0),
        None,
    )
}

fn goods_are_added_and_the_lead_converts_into_a_counterparty_and_an_order(shell: Shell) {
    let (world, lead, dialog) = with_lead(shell);
    let (code, body) = add(
        &world,
        &lead,
        json!({"name": "Торт", "sku": "CAKE-1", "quantity": 11, "price": 150}),
    );
    assert_eq!(
        (
            code,
            body["item"]["name"].as_str(),
            body["item"]["total"].as_str()
        ),
        (201, Some("Торт"), Some("1650.00")),
        "{body}"
    );
    let (_, body) = add(
        &world,
        &lead,
        json!({"name": "Свечи", "quantity": "1", "price": "200.00", "currency": "RUB"}),
    );
    assert_eq!(
        (body["total"].as_str(), body["items"][0]["total"].as_str()),
        (Some("1850.00"), Some("1650.00"))
    );
    assert_eq!(body["items"][0]["price"], "150.00");

    let (code, conversion) = convert(&world, &lead);
    assert_eq!(code, 200, "{conversion}");
    let counterparty_id = conversion["counterparty_id"].as_str().expect("an id");
    let order_id = conversion["order_id"].as_str().expect("an id");

    let (code, counterparty) = world.host.call(
        "GET",
        &format!("/api/counterparties/{counterparty_id}"),
        world.token(1),
        None,
    );
    assert_eq!(code, 200, "{counterparty}");
    assert_eq!(counterparty["name"], format!("Ivan{PERSON} Petrov"));
    assert_eq!(counterparty["vk_user_id"], PERSON);
    assert_eq!(
        counterparty["vk_profile"],
        format!("https://vk.com/id{PERSON}")
    );
    let (code, order) = world.host.call(
        "GET",
        &format!("/api/orders/{order_id}"),
        world.token(1),
        None,
    );
    assert_eq!(code, 200, "{order}");
    assert_eq!(
        (order["status"].as_str(), order["total"].as_str()),
        (Some("new"), Some("1850.00"))
    );
    assert_eq!(order["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(order["counterparty_id"], counterparty_id);
    for document in [&counterparty, &order] {
        let block = &document["communication"];
        assert_eq!(block["dialog_id"], dialog.as_str());
        assert_eq!(block["link"], format!("/api/dialogs/{dialog}"));
        assert_eq!(
            (block["name"].as_str(), block["status"].as_str()),
            (Some(format!("Ivan{PERSON} Petrov").as_str()), Some("open"))
        );
        assert!(block["started_at"].as_str().expect("a time").ends_with('Z'));
    }
    let (_, converted) =
        world
            .host
            .call("GET", &format!("/api/leads/{lead}"), world.token(0), None);
    assert_eq!(
        (converted["status"].as_str(), converted["order_id"].as_str()),
        (Some("converted"), Some(order_id))
    );

    let (code, again) = convert(&world, &lead);
    assert_eq!(
        (code, again["error"]["code"].as_str()),
        (409, Some("already-converted"))
    );
    let message = again["error"]["message"].as_str().expect("a text");
    assert!(
        message.contains(counterparty_id) && message.contains(order_id),
        "{message}"
    );
    let (code, _) = add(
        &world,
        &lead,
        json!({"name": "Ещё", "quantity": 1, "price": 1}),
    );
    assert_eq!(code, 409, "a converted lead's goods are fixed");
}

fn items_change_and_bad_items_are_refused(shell: Shell) {
    let (world, lead, _) = with_lead(shell);
    let (_, body) = add(
        &world,
        &lead,
        json!({"name": "Торт", "quantity": 2, "price": "10.50"}),
    );
    let item = body["items"][0]["id"].as_str().expect("an id").to_owned();
    let path = format!("/api/leads/{lead}/items/{item}");
    let (code, body) = world.host.call(
        "PATCH",
        &path,
        world.token(0),
        Some(json!({"quantity": "1.5"})),
    );
    assert_eq!(
        (
            code,
            body["total"].as_str(),
            body["items"][0]["quantity"].as_str()
        ),
        (200, Some("15.75"), Some("1.5"))
    );
    let before = world.snapshot();
    for bad in [
        json!({"name": "", "quantity": 1, "price": 1}),
        json!({"name": "x", "quantity": 0, "price": 1}),
        json!({"name": "x", "quantity": 1, "price": -1}),
        json!({"name": "x", "quantity": 1, "price": "1.234"}),
        json!({"name": "x", "quantity": 1, "price": true}),
        json!({"name": "x", "quantity": 1}),
    ] {
        let (code, body) = add(&world, &lead, bad.clone());
        assert_eq!(code, 400, "{bad} → {body}");
    }
    let (code, body) = add(
        &world,
        &lead,
        json!({"name": "x", "quantity": 1, "price": 1, "currency": "USD"}),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("currency-mismatch"))
    );
    let (code, body) = world.host.call(
        "PATCH",
        &path,
        world.token(0),
        Some(json!({"quantity": "0"})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(world.snapshot(), before, "no refused item changed anything");
    let (code, body) = world.host.call("DELETE", &path, world.token(0), None);
    assert_eq!(
        (
            code,
            body["items"].as_array().map(Vec::len),
            body["total"].as_str()
        ),
        (200, Some(0), Some("0.00"))
    );
    let (code, body) = convert(&world, &lead);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("no-items"))
    );
    let (code, _) = world.host.call(
        "GET",
        "/api/leads/00000000-0000-0000-0000-000000000000",
        world.token(0),
        None,
    );
    assert_eq!(code, 404);
}

fn a_returning_person_reopens_the_same_dialog_and_never_gets_a_second_lead(shell: Shell) {
    let (world, lead, dialog) = with_lead(shell);
    let d = |command: &str| format!("/api/dialogs/{dialog}/{command}");
    assert_eq!(
        world.host.call("POST", &d("claim"), world.token(0), None).0,
        200
    );
    add(
        &world,
        &lead,
        json!({"name": "Торт", "quantity": 1, "price": 100}),
    );
    let (code, conversion) = convert(&world, &lead);
    assert_eq!(code, 200, "{conversion}");
    let counterparty = conversion["counterparty_id"].as_str().expect("an id");
    let order = conversion["order_id"].as_str().expect("an id");
    assert_eq!(
        world
            .host
            .call("POST", &d("finish"), world.token(0), None)
            .1["status"],
        "finished"
    );

    assert_eq!(
        world
            .host
            .callback(&message_new("again", PERSON, 2, "И ещё один")),
        (200, "ok".to_owned())
    );
    let reopened = world.dialog_of(PERSON);
    assert_eq!(
        (reopened["id"].as_str(), reopened["lead_id"].as_str()),
        (Some(dialog.as_str()), Some(lead.as_str()))
    );
    assert_eq!(
        (
            reopened["status"].as_str(),
            reopened["responsible"].as_str()
        ),
        (Some("open"), Some(world.staff[0].id.as_str()))
    );
    assert_eq!(world.messages(0, &dialog).len(), 2);
    // Everything the API shows of this person: one dialog, its one lead, still linked to
    // the same counterparty and order, which show the reopened dialog.
    let everything = world.snapshot();
    let dialogs = everything["dialogs"].as_object().expect("the dialogs");
    assert_eq!(dialogs.keys().collect::<Vec<_>>(), [&dialog]);
    let seen = &dialogs[&dialog];
    assert_eq!(
        (
            seen["lead"]["id"].as_str(),
            seen["lead"]["status"].as_str(),
            seen["lead"]["counterparty_id"].as_str(),
            seen["lead"]["order_id"].as_str(),
        ),
        (
            Some(lead.as_str()),
            Some("converted"),
            Some(counterparty),
            Some(order)
        )
    );
    assert_eq!(
        (
            seen["counterparty"]["lead_id"].as_str(),
            seen["counterparty"]["vk_user_id"].as_i64(),
            seen["order"]["counterparty_id"].as_str(),
        ),
        (Some(lead.as_str()), Some(PERSON), Some(counterparty))
    );
    for block in [
        &seen["counterparty"]["communication"],
        &seen["order"]["communication"],
    ] {
        assert_eq!(
            (block["dialog_id"].as_str(), block["status"].as_str()),
            (Some(dialog.as_str()), Some("open"))
        );
    }
    let (code, again) = convert(&world, &lead);
    assert_eq!(
        (code, again["error"]["code"].as_str()),
        (409, Some("already-converted")),
        "no second counterparty: {again}"
    );

    // Spam stays spam: the message is kept, nothing reopens.
    world.host.call("POST", &d("spam"), world.token(0), None);
    assert_eq!(
        world
            .host
            .callback(&message_new("spam-more", PERSON, 3, "BUY NOW")),
        (200, "ok".to_owned())
    );
    assert_eq!(world.dialog_of(PERSON)["status"], "spam");
    assert_eq!(world.messages(0, &dialog).len(), 3);
}

fn a_finished_dialog_is_restored_from_its_lead(shell: Shell) {
    let (world, lead, dialog) = with_lead(shell);
    world.host.call(
        "POST",
        &format!("/api/dialogs/{dialog}/claim"),
        world.token(1),
        None,
    );
    world.host.call(
        "POST",
        &format!("/api/dialogs/{dialog}/finish"),
        world.token(1),
        None,
    );
    let (_, body) = world
        .host
        .call("GET", &format!("/api/leads/{lead}"), world.token(0), None);
    assert_eq!(body["communication"]["status"], "finished");
    let (code, restored) = world.host.call(
        "POST",
        &format!("/api/leads/{lead}/restore-dialog"),
        world.token(0),
        None,
    );
    assert_eq!((code, restored["status"].as_str()), (200, Some("open")));
    assert_eq!(
        restored["responsible"].as_str(),
        Some(world.staff[1].id.as_str())
    );
}

fn a_conversion_racing_new_messages_and_new_goods_loses_nothing(shell: Shell) {
    let (world, lead, dialog) = with_lead(shell);
    add(
        &world,
        &lead,
        json!({"name": "Торт", "quantity": 1, "price": 100}),
    );
    let (conversion, adds) = std::thread::scope(|scope| {
        for n in 0..10 {
            let host = &world.host;
            scope.spawn(move || {
                let answer =
                    host.callback(&message_new(&format!("race-{n}"), PERSON, 10 + n, "ещё"));
                assert_eq!(answer, (200, "ok".to_owned()));
            });
        }
        let adds: Vec<_> = (0..5)
            .map(|n| {
                let (world, lead) = (&world, &lead);
                scope.spawn(move || {
                    add(
                        world,
                        lead,
                        json!({"name": format!("Свеча {n}"), "quantity": 1, "price": 10}),
                    )
                    .0
                })
            })
            .collect();
        let conversion = convert(&world, &lead);
        (
            conversion,
            adds.into_iter()
                .map(|h| h.join().expect("an add"))
                .collect::<Vec<u16>>(),
        )
    });
    assert_eq!(conversion.0, 200, "{}", conversion.1);
    assert!(
        adds.iter().all(|code| *code == 201 || *code == 409),
        "{adds:?}"
    );
    assert_eq!(
        world.messages(0, &dialog).len(),
        11,
        "every message is kept"
    );
    // Goods added before the conversion are in the order; after it, they were refused.
    let accepted = adds.iter().filter(|code| **code == 201).count();
    let (_, converted) =
        world
            .host
            .call("GET", &format!("/api/leads/{lead}"), world.token(0), None);
    let order_id = conversion.1["order_id"].as_str().expect("an order");
    let (_, order) = world.host.call(
        "GET",
        &format!("/api/orders/{order_id}"),
        world.token(0),
        None,
    );
    assert_eq!(order["items"].as_array().map(Vec::len), Some(1 + accepted));
    assert_eq!(order["items"], converted["items"]);
    assert_eq!(order["total"], converted["total"]);
}

on_both_shells!(
    goods_are_added_and_the_lead_converts_into_a_counterparty_and_an_order,
    items_change_and_bad_items_are_refused,
    a_returning_person_reopens_the_same_dialog_and_never_gets_a_second_lead,
    a_finished_dialog_is_restored_from_its_lead,
    a_conversion_racing_new_messages_and_new_goods_loses_nothing,
);
