//! Exact money: the parsing of prices and quantities of goods (`vk_core::lead`), and the
//! totals of a lead built from them. An input is text, up to sixteen lines.
//!
//! Each line, as a price and as a quantity: an accepted amount is not negative (a quantity
//! not zero), its rendering (`format_money`, `Item::quantity_text`) is the decimal the line
//! wrote (leading and trailing zeros aside) and reads back to the same value. Then the lines
//! go into the seeded lead in pairs (quantity, price) with `add_item`, and each line sets the
//! seeded item's quantity with `set_quantity`, next to a model of the lead (each line's total
//! rounded half up, in 128 bits): a command is refused exactly when an amount is unreadable
//! or the lead's total would pass 10^15 of the currency, else the lead's total is the
//! model's. So no total that overflows is ever accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vk_core::Error;
use vk_core::directory::Subject;
use vk_core::ids::ItemId;
use vk_core::lead::{
    Communication, Item, Lead, NewItem, format_money, parse_price, parse_quantity,
};
use vk_fuzz::{Bench, employee};

const MAX_LINES: usize = 16;
/// The largest total of a lead, in kopecks (10^15 of the currency).
const MAX_TOTAL: i128 = 100_000_000_000_000_000;

/// The decimal `text` writes, with `digits` fraction digits and no leading zeros.
fn canonical(text: &str, digits: usize) -> String {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    format!("{whole}.{fraction:0<digits$}")
}

fn check_price(text: &str) {
    match parse_price(text) {
        Ok(kopecks) => {
            assert!(kopecks >= 0, "{text:?} is a negative price");
            let shown = format_money(kopecks);
            assert_eq!(
                shown,
                canonical(text, 2),
                "{text:?} is shown as another price"
            );
            assert_eq!(
                parse_price(&shown),
                Ok(kopecks),
                "{shown:?} reads back differently"
            );
        }
        Err(error) => assert_eq!(error.code(), "invalid-field"),
    }
}

fn check_quantity(text: &str) {
    match parse_quantity(text) {
        Ok(quantity) => {
            assert!(quantity > 0, "{text:?} is accepted as quantity {quantity}");
            let item = Item {
                id: ItemId::new(),
                name: "x".to_owned(),
                sku: None,
                quantity,
                price: 0,
                currency: "RUB".to_owned(),
            };
            let shown = item.quantity_text();
            let written = canonical(text, 3);
            let written = written.trim_end_matches('0').trim_end_matches('.');
            assert_eq!(shown, written, "{text:?} is shown as another quantity");
            assert_eq!(
                parse_quantity(&shown),
                Ok(quantity),
                "{shown:?} reads back differently"
            );
        }
        Err(error) => assert_eq!(error.code(), "invalid-field"),
    }
}

/// The lead as the model has it: each line's quantity and price.
struct Model {
    lines: Vec<(i64, i64)>,
}

impl Model {
    fn total(&self) -> i128 {
        self.lines
            .iter()
            .map(|(quantity, price)| (i128::from(*quantity) * i128::from(*price) + 500) / 1000)
            .sum()
    }

    /// Applies `change` if the total stays within the bound; whether it did.
    fn try_change(&mut self, change: impl FnOnce(&mut Vec<(i64, i64)>)) -> bool {
        let before = self.lines.clone();
        change(&mut self.lines);
        let fits = self.total() <= MAX_TOTAL;
        if !fits {
            self.lines = before;
        }
        fits
    }

    /// What a command answered, against what the model decided.
    fn check(&self, answer: Result<(Lead, Communication), Error>, accepted: bool, what: &str) {
        match answer {
            Ok((lead, _)) => {
                assert!(accepted, "{what} was accepted");
                assert_eq!(
                    i128::from(lead.total()),
                    self.total(),
                    "{what}: wrong total"
                );
                let lines: Vec<(i64, i64)> = lead
                    .items
                    .iter()
                    .map(|item| (item.quantity, item.price))
                    .collect();
                assert_eq!(lines, self.lines, "{what}: wrong goods");
            }
            Err(error) => {
                assert!(!accepted, "{what} was refused: {error:?}");
                assert_eq!(error.code(), "invalid-field");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').take(MAX_LINES).collect();
    for line in &lines {
        check_price(line);
        check_quantity(line);
    }
    let (bench, seeded) = Bench::with_dialog();
    let core = bench.core();
    let (lead, _) = core
        .lead(Subject::Admin, seeded.lead)
        .expect("the seeded lead");
    let mut model = Model {
        lines: lead
            .items
            .iter()
            .map(|item| (item.quantity, item.price))
            .collect(),
    };
    for pair in lines.chunks(2) {
        let (quantity, price) = (pair[0], pair.get(1).unwrap_or(&pair[0]));
        let goods = NewItem {
            name: "Пуэр".to_owned(),
            sku: None,
            quantity: quantity.to_string(),
            price: price.to_string(),
            currency: None,
        };
        let answer = core.add_item(employee(), seeded.lead, goods);
        let accepted = match (parse_quantity(quantity), parse_price(price)) {
            (Ok(quantity), Ok(price)) => model.try_change(|lines| lines.push((quantity, price))),
            _ => false,
        };
        model.check(answer, accepted, "add_item");
    }
    for line in &lines {
        let answer = core.set_quantity(employee(), seeded.lead, seeded.item, line);
        let accepted = match parse_quantity(line) {
            Ok(quantity) => model.try_change(|lines| lines[0].0 = quantity),
            Err(_) => false,
        };
        model.check(answer, accepted, "set_quantity");
    }
});
