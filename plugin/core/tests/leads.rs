//! Leads, conversion and the communication block (SPEC §2 "Leads, conversion,
//! communication").

mod common;

use common::*;
use vk_core::Error;
use vk_core::dialog::{Dialog, DialogStatus};
use vk_core::ids::{EmployeeId, ItemId, LeadId};
use vk_core::lead::{Communication, LeadStatus, NewItem, format_money};

fn item(name: &str, quantity: &str, price: &str) -> NewItem {
    NewItem {
        name: name.to_owned(),
        sku: None,
        quantity: quantity.to_owned(),
        price: price.to_owned(),
        currency: None,
    }
}

/// A connected bench with the person's dialog and lead, and a listed operator.
fn with_lead() -> (Bench, EmployeeId, Dialog, LeadId) {
    let bench = Bench::connected();
    let operator = bench.hire();
    let dialog = bench.person_writes(PERSON, 1042, "I'd like some tea");
    bench.clock.tick();
    let lead = dialog.lead_id;
    (bench, operator, dialog, lead)
}

fn assert_points_at(communication: &Communication, dialog: &Dialog) {
    assert_eq!(communication.dialog_id, dialog.id);
    assert_eq!(communication.started_at, dialog.started_at);
    assert_eq!(communication.name, "Anna Smirnova");
    assert_eq!(communication.link, format!("/api/dialogs/{}", dialog.id));
}

// ---- items -------------------------------------------------------------------------------

#[test]
fn items_are_added_and_the_total_is_exact() {
    let (bench, operator, _, lead) = with_lead();

    bench
        .core()
        .add_item(
            operator,
            lead,
            NewItem {
                sku: Some("TEA-001".into()),
                ..item("Пуэр", "11", "150.00")
            },
        )
        .expect("add");
    let (lead, _) = bench
        .core()
        .add_item(operator, lead, item("Чайник", "1", "200"))
        .expect("add");

    assert_eq!(lead.items.len(), 2);
    assert_eq!(lead.items[0].name, "Пуэр");
    assert_eq!(lead.items[0].sku.as_deref(), Some("TEA-001"));
    assert_eq!(lead.items[0].quantity_text(), "11");
    assert_eq!(lead.items[0].currency, "RUB");
    assert_eq!(lead.items[1].sku, None);
    assert_eq!(format_money(lead.total()), "1850.00");
    assert_eq!(lead.currency(), "RUB");
    // Stored, not just returned.
    let (read, _) = bench.core().lead(operator, lead.id).expect("read");
    assert_eq!(read, lead);
}

#[test]
fn fractional_quantities_and_prices_total_exactly() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Улун, кг", "0.25", "3999.99"))
        .expect("add");
    let (lead, _) = bench
        .core()
        .add_item(operator, lead, item("Пакет", "3", "0.10"))
        .expect("add");
    // 0.25 × 3999.99 = 999.9975 → 1000.00; 3 × 0.10 = 0.30.
    assert_eq!(format_money(lead.total()), "1000.30");
}

#[test]
fn bad_quantities_and_prices_are_refused_storing_nothing() {
    let (bench, operator, _, lead) = with_lead();
    let before = bench.snapshot();
    let refused = [
        ("quantity", item("Tea", "0", "1")),
        ("quantity", item("Tea", "-1", "1")),
        ("quantity", item("Tea", "abc", "1")),
        ("quantity", item("Tea", "", "1")),
        ("quantity", item("Tea", "1.2345", "1")),
        ("quantity", item("Tea", "1e3", "1")),
        ("price", item("Tea", "1", "-5")),
        ("price", item("Tea", "1", "1.234")),
        ("price", item("Tea", "1", "free")),
        ("price", item("Tea", "1", "")),
        ("name", item("   ", "1", "1")),
        ("name", item(&"x".repeat(201), "1", "1")),
        (
            "currency",
            NewItem {
                currency: Some("rubles".into()),
                ..item("Tea", "1", "1")
            },
        ),
    ];

    for (field, bad) in refused {
        let error = bench
            .core()
            .add_item(operator, lead, bad.clone())
            .expect_err("refused");
        assert!(
            matches!(&error, Error::InvalidField { field: f, .. } if *f == field),
            "{bad:?} → {error}"
        );
        assert_eq!(error.kind(), vk_core::ErrorKind::BadInput);
    }
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn free_goods_are_accepted() {
    let (bench, operator, _, lead) = with_lead();
    let (lead, _) = bench
        .core()
        .add_item(operator, lead, item("Sample", "1", "0"))
        .expect("a price of 0 is allowed");
    assert_eq!(format_money(lead.total()), "0.00");
}

#[test]
fn goods_in_another_currency_are_refused() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    let before = bench.snapshot();

    let refused = bench.core().add_item(
        operator,
        lead,
        NewItem {
            currency: Some("usd".into()),
            ..item("Teapot", "1", "20")
        },
    );

    assert_eq!(
        refused.map(|(l, _)| l.id),
        Err(Error::CurrencyMismatch {
            lead: "RUB".into(),
            item: "USD".into()
        })
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn a_lead_may_be_in_another_currency_from_its_first_item() {
    let (bench, operator, _, lead) = with_lead();
    let eur = |name: &str| NewItem {
        currency: Some("EUR".into()),
        ..item(name, "2", "5.50")
    };
    bench
        .core()
        .add_item(operator, lead, eur("Tea"))
        .expect("add");
    let (lead, _) = bench
        .core()
        .add_item(operator, lead, eur("Cup"))
        .expect("add");
    assert_eq!(lead.currency(), "EUR");
    assert_eq!(format_money(lead.total()), "22.00");
}

#[test]
fn quantity_is_changed_and_the_total_follows() {
    let (bench, operator, _, lead) = with_lead();
    let (added, _) = bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "150.00"))
        .expect("add");
    let item_id = added.items[0].id;

    let (lead, _) = bench
        .core()
        .set_quantity(operator, lead, item_id, "11")
        .expect("set quantity");

    assert_eq!(lead.items[0].quantity_text(), "11");
    assert_eq!(format_money(lead.total()), "1650.00");

    let before = bench.snapshot();
    assert!(matches!(
        bench.core().set_quantity(operator, lead.id, item_id, "0"),
        Err(Error::InvalidField {
            field: "quantity",
            ..
        })
    ));
    assert_eq!(
        bench
            .core()
            .set_quantity(operator, lead.id, ItemId::new(), "2")
            .map(|(l, _)| l.id),
        Err(Error::ItemNotFound)
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn item_is_removed() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "11", "150"))
        .expect("add");
    let (added, _) = bench
        .core()
        .add_item(operator, lead, item("Teapot", "1", "200"))
        .expect("add");

    let (lead, _) = bench
        .core()
        .remove_item(operator, lead, added.items[0].id)
        .expect("remove");

    assert_eq!(lead.items.len(), 1);
    assert_eq!(lead.items[0].name, "Teapot");
    assert_eq!(format_money(lead.total()), "200.00");
    assert_eq!(
        bench
            .core()
            .remove_item(operator, lead.id, added.items[0].id)
            .map(|(l, _)| l.id),
        Err(Error::ItemNotFound)
    );
}

#[test]
fn lead_commands_need_a_listed_employee_and_an_existing_lead() {
    let (bench, operator, _, lead) = with_lead();
    let stranger = EmployeeId::new();
    let before = bench.snapshot();

    assert_eq!(
        bench
            .core()
            .add_item(stranger, lead, item("Tea", "1", "1"))
            .map(|(l, _)| l.id),
        Err(Error::EmployeeNotListed(stranger.to_string()))
    );
    assert_eq!(
        bench.core().lead(stranger, lead).map(|(l, _)| l.id),
        Err(Error::EmployeeNotListed(stranger.to_string()))
    );
    assert_eq!(
        bench
            .core()
            .add_item(operator, LeadId::new(), item("Tea", "1", "1"))
            .map(|(l, _)| l.id),
        Err(Error::LeadNotFound)
    );
    assert_eq!(
        bench
            .core()
            .lead(operator, LeadId::new())
            .map(|(l, _)| l.id),
        Err(Error::LeadNotFound)
    );
    assert_eq!(bench.snapshot(), before);
}

// ---- conversion --------------------------------------------------------------------------

#[test]
fn convert_creates_a_counterparty_and_an_order_and_links_the_lead_to_both() {
    let (bench, operator, dialog, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Пуэр", "11", "150.00"))
        .expect("add");
    let (lead, _) = bench
        .core()
        .add_item(operator, lead, item("Чайник", "1", "200.00"))
        .expect("add");

    let (counterparty_id, order_id) = bench.core().convert(operator, lead.id).expect("convert");

    let (counterparty, _) = bench
        .core()
        .counterparty(operator, counterparty_id)
        .expect("counterparty");
    assert_eq!(counterparty.id, counterparty_id);
    assert_eq!(counterparty.name, "Anna Smirnova");
    assert_eq!(counterparty.vk_user_id, PERSON);
    assert_eq!(counterparty.vk_profile(), "https://vk.com/id512340987");
    assert_eq!(counterparty.lead_id, lead.id);
    assert_eq!(counterparty.dialog_id, dialog.id);

    let (order, _) = bench.core().order(operator, order_id).expect("order");
    assert_eq!(order.id, order_id);
    assert_eq!(order.number, "VK-00001");
    assert_eq!(order.status, "new");
    assert_eq!(order.items, lead.items);
    assert_eq!(format_money(order.total()), "1850.00");
    assert_eq!(order.currency(), "RUB");
    assert_eq!(order.counterparty_id, counterparty_id);
    assert_eq!(order.lead_id, lead.id);
    assert_eq!(order.dialog_id, dialog.id);

    let (converted, _) = bench.core().lead(operator, lead.id).expect("lead");
    assert_eq!(converted.status, LeadStatus::Converted);
    assert_eq!(converted.counterparty_id, Some(counterparty_id));
    assert_eq!(converted.order_id, Some(order_id));
}

#[test]
fn orders_are_numbered_in_sequence() {
    let bench = Bench::connected();
    let operator = bench.hire();
    let mut numbers = Vec::new();
    for peer in 1..=3 {
        bench.vk.person(peer, "Person", &peer.to_string());
        let lead = bench.person_writes(peer, peer, "hi").lead_id;
        bench
            .core()
            .add_item(operator, lead, item("Tea", "1", "1"))
            .expect("add");
        let (_, order) = bench.core().convert(operator, lead).expect("convert");
        numbers.push(bench.core().order(operator, order).expect("order").0.number);
    }
    assert_eq!(numbers, ["VK-00001", "VK-00002", "VK-00003"]);
}

#[test]
fn second_convert_is_refused_naming_the_existing_counterparty_and_order() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    let (counterparty, order) = bench.core().convert(operator, lead).expect("convert");
    let before = bench.snapshot();

    let refused = bench.core().convert(operator, lead);

    let error = refused.expect_err("converted twice");
    assert_eq!(
        error,
        Error::AlreadyConverted {
            counterparty_id: counterparty.to_string(),
            order_id: order.to_string(),
        }
    );
    assert_eq!(error.kind(), vk_core::ErrorKind::Conflict);
    let text = error.to_string();
    assert!(text.contains(&counterparty.to_string()), "{text}");
    assert!(text.contains(&order.to_string()), "{text}");
    assert_eq!(bench.snapshot(), before);
    assert_eq!(bench.count("counterparty/"), 1);
    assert_eq!(bench.count("order/"), 1);
}

#[test]
fn converted_leads_goods_are_fixed() {
    let (bench, operator, _, lead) = with_lead();
    let (added, _) = bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    bench.core().convert(operator, lead).expect("convert");
    let before = bench.snapshot();
    let item_id = added.items[0].id;

    assert_eq!(
        bench
            .core()
            .add_item(operator, lead, item("More", "1", "1"))
            .map(|(l, _)| l.id),
        Err(Error::LeadConverted)
    );
    assert_eq!(
        bench
            .core()
            .set_quantity(operator, lead, item_id, "5")
            .map(|(l, _)| l.id),
        Err(Error::LeadConverted)
    );
    assert_eq!(
        bench
            .core()
            .remove_item(operator, lead, item_id)
            .map(|(l, _)| l.id),
        Err(Error::LeadConverted)
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn convert_without_items_is_refused_with_a_clear_error() {
    let (bench, operator, _, lead) = with_lead();
    let before = bench.snapshot();

    let error = bench.core().convert(operator, lead).expect_err("no goods");

    assert_eq!(error, Error::NoItems);
    assert!(error.to_string().contains("add items"), "{error}");
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn converting_a_missing_lead_is_refused_as_not_found() {
    let (bench, operator, _, _) = with_lead();
    let before = bench.snapshot();
    assert_eq!(
        bench.core().convert(operator, LeadId::new()),
        Err(Error::LeadNotFound)
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn convert_by_an_unlisted_employee_is_refused() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    let stranger = EmployeeId::new();
    let before = bench.snapshot();
    assert_eq!(
        bench.core().convert(stranger, lead),
        Err(Error::EmployeeNotListed(stranger.to_string()))
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn simultaneous_conversions_of_one_lead_make_one_counterparty_and_one_order() {
    let (bench, operator, _, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");

    let outcomes: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let bench = &bench;
                scope.spawn(move || {
                    vk_core::Core::new(&bench.store, &bench.vk, &bench.clock)
                        .convert(operator, lead)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no thread panics"))
            .collect()
    });

    let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    assert_eq!(won.len(), 1);
    let (counterparty, order) = *won[0];
    for outcome in &outcomes {
        if let Err(error) = outcome {
            assert_eq!(
                *error,
                Error::AlreadyConverted {
                    counterparty_id: counterparty.to_string(),
                    order_id: order.to_string()
                }
            );
        }
    }
    assert_eq!(bench.count("counterparty/"), 1);
    assert_eq!(bench.count("order/"), 1);
}

#[test]
fn unknown_counterparty_and_order_are_not_found() {
    let (bench, operator, _, _) = with_lead();
    assert_eq!(
        bench
            .core()
            .counterparty(operator, vk_core::CounterpartyId::new())
            .map(|(c, _)| c.id),
        Err(Error::CounterpartyNotFound)
    );
    assert_eq!(
        bench
            .core()
            .order(operator, vk_core::OrderId::new())
            .map(|(o, _)| o.id),
        Err(Error::OrderNotFound)
    );
}

// ---- communication -----------------------------------------------------------------------

#[test]
fn communication_block_of_lead_counterparty_and_order_points_at_the_dialog() {
    let (bench, operator, dialog, lead) = with_lead();
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    let (counterparty, order) = bench.core().convert(operator, lead).expect("convert");

    let (_, of_lead) = bench.core().lead(operator, lead).expect("lead");
    let (_, of_counterparty) = bench
        .core()
        .counterparty(operator, counterparty)
        .expect("counterparty");
    let (_, of_order) = bench.core().order(operator, order).expect("order");

    for communication in [&of_lead, &of_counterparty, &of_order] {
        assert_points_at(communication, &dialog);
        assert_eq!(communication.status, DialogStatus::Open);
    }
    // The link leads to the full history.
    let id = communication_dialog(&of_order);
    assert!(!bench.history(operator, id).is_empty());
}

fn communication_dialog(communication: &Communication) -> vk_core::DialogId {
    communication
        .link
        .strip_prefix("/api/dialogs/")
        .and_then(|id| id.parse().ok())
        .expect("the link names a dialog")
}

#[test]
fn communication_block_follows_the_dialogs_status() {
    let (bench, operator, dialog, lead) = with_lead();
    bench.core().claim(operator, dialog.id).expect("claim");
    bench.core().finish(operator, dialog.id).expect("finish");

    let (_, communication) = bench.core().lead(operator, lead).expect("lead");

    assert_eq!(communication.status, DialogStatus::Finished);
    assert_points_at(&communication, &dialog);
}

#[test]
fn returning_person_after_conversion_keeps_the_same_lead_and_counterparty() {
    let (bench, operator, dialog, lead) = with_lead();
    bench.core().claim(operator, dialog.id).expect("claim");
    bench
        .core()
        .add_item(operator, lead, item("Tea", "1", "100"))
        .expect("add");
    let (counterparty, order) = bench.core().convert(operator, lead).expect("convert");
    bench.core().finish(operator, dialog.id).expect("finish");
    bench.clock.tick();

    let back = bench.person_writes(PERSON, 2000, "I want to order again");

    assert_eq!(back.id, dialog.id);
    assert_eq!(back.lead_id, lead);
    assert_eq!(back.status, DialogStatus::Open);
    assert_eq!(bench.count("lead/"), 1);
    assert_eq!(bench.count("counterparty/"), 1);
    let (same, communication) = bench.core().lead(operator, lead).expect("lead");
    assert_eq!(same.status, LeadStatus::Converted);
    assert_eq!(same.counterparty_id, Some(counterparty));
    assert_eq!(same.order_id, Some(order));
    assert_eq!(communication.status, DialogStatus::Open);
    let (_, of_counterparty) = bench
        .core()
        .counterparty(operator, counterparty)
        .expect("counterparty");
    assert_eq!(of_counterparty.dialog_id, dialog.id);
}

#[test]
fn lead_title_uses_the_community_name_at_the_time_of_the_first_message() {
    let bench = Bench::connected();
    let operator = bench.hire();
    bench.change_settings(vk_core::settings::SettingsUpdate {
        group_name: Some("  Чайная лавка  ".into()),
        ..Default::default()
    });
    let dialog = bench.person_writes(PERSON, 1, "hi");
    let lead = bench.lead_of(operator, &dialog);
    assert_eq!(lead.title, "Чайная лавка: Anna Smirnova");
    assert_eq!(lead.source, "Чайная лавка");
}

#[test]
fn huge_amounts_are_refused_instead_of_overflowing_the_total() {
    let (bench, operator, _, lead) = with_lead();
    let before = bench.snapshot();

    let refused = bench.core().add_item(
        operator,
        lead,
        item("Everything", "999999999", "999999999999.99"),
    );

    assert!(
        matches!(refused, Err(Error::InvalidField { .. })),
        "{refused:?}"
    );
    assert_eq!(bench.snapshot(), before);
}

#[test]
fn quantity_change_that_would_overflow_the_total_is_refused() {
    let (bench, operator, _, lead) = with_lead();
    let (added, _) = bench
        .core()
        .add_item(operator, lead, item("Gold", "1", "999999999999.99"))
        .expect("one expensive item is fine");
    let before = bench.snapshot();

    let refused = bench
        .core()
        .set_quantity(operator, lead, added.items[0].id, "999999999");

    assert!(
        matches!(
            refused,
            Err(Error::InvalidField {
                field: "quantity",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(bench.snapshot(), before);
    let (lead, _) = bench.core().lead(operator, lead).expect("lead");
    assert_eq!(format_money(lead.total()), "999999999999.99");
}
