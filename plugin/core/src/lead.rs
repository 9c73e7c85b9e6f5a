//! Leads ("Лид", §1): created from a new dialog, they collect goods until conversion.
//! Money is exact: amounts are integer kopecks (hundredths), quantities thousandths.

use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::dialog::{Dialog, DialogStatus, MAX_PAGE, Page};
use crate::directory::Subject;
use crate::error::Error;
use crate::ids::{CounterpartyId, DialogId, EmployeeId, ItemId, LeadId, OrderId};
use crate::keys;
use crate::ports::Store;
use crate::tx::{Tx, backfill, read, scan, transact};

/// The currency of goods that name none.
pub const DEFAULT_CURRENCY: &str = "RUB";
const QUANTITY_DIGITS: u32 = 3;
const PRICE_DIGITS: u32 = 2;
/// The largest total of a lead, in kopecks (10^15 of the currency): beyond any real order and
/// far below `i64::MAX`, so no total of items or of a lead can overflow.
const MAX_TOTAL: i128 = 100_000_000_000_000_000;

/// The state of a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeadStatus {
    New,
    Converted,
}

/// A line of goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    pub name: String,
    pub sku: Option<String>,
    /// Thousandths.
    pub quantity: i64,
    /// Kopecks (hundredths of the currency).
    pub price: i64,
    pub currency: String,
}

impl Item {
    /// quantity × price in kopecks, rounded half away from zero.
    pub fn total(&self) -> i64 {
        i64::try_from(self.wide_total()).expect("a lead's total is bounded at input")
    }

    fn wide_total(&self) -> i128 {
        let exact = i128::from(self.quantity) * i128::from(self.price);
        let scale = 10_i128.pow(QUANTITY_DIGITS);
        (exact + scale / 2) / scale
    }

    pub fn quantity_text(&self) -> String {
        let text = format_fixed(self.quantity, QUANTITY_DIGITS);
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Goods as an operator enters them; amounts are decimal texts.
#[derive(Debug, Clone, Default)]
pub struct NewItem {
    pub name: String,
    pub sku: Option<String>,
    pub quantity: String,
    pub price: String,
    pub currency: Option<String>,
}

/// A lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    pub title: String,
    pub first_name: String,
    pub last_name: String,
    pub source: String,
    pub status: LeadStatus,
    pub items: Vec<Item>,
    pub counterparty_id: Option<CounterpartyId>,
    pub order_id: Option<OrderId>,
    pub dialog_id: DialogId,
    pub peer_id: i64,
    /// VK has not told us the name yet; the outbox asks again.
    pub name_pending: bool,
    #[serde(with = "crate::stored_time")]
    pub created_at: DateTime<Utc>,
}

impl Lead {
    /// A lead for a new dialog; without a name (VK did not answer) it carries a fallback and
    /// waits for the name.
    pub(crate) fn create(
        id: LeadId,
        dialog_id: DialogId,
        peer_id: i64,
        source: &str,
        name: Option<(String, String)>,
        now: DateTime<Utc>,
    ) -> Lead {
        let mut lead = Lead {
            id,
            title: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            source: source.to_owned(),
            status: LeadStatus::New,
            items: Vec::new(),
            counterparty_id: None,
            order_id: None,
            dialog_id,
            peer_id,
            name_pending: name.is_none(),
            created_at: now,
        };
        match name {
            Some((first, last)) => lead.name(&first, &last),
            None => lead.title = format!("{}: {}", lead.source, lead.person_name()),
        }
        lead
    }

    /// Sets the person's name and the title made of it.
    pub(crate) fn name(&mut self, first: &str, last: &str) {
        first.clone_into(&mut self.first_name);
        last.clone_into(&mut self.last_name);
        self.name_pending = false;
        self.title = format!("{}: {}", self.source, self.person_name());
    }

    /// "First Last", or `VK user <id>` while the name is unknown.
    pub fn person_name(&self) -> String {
        let full = format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_owned();
        if full.is_empty() {
            format!("VK user {}", self.peer_id)
        } else {
            full
        }
    }

    /// The currency of the goods (all share one).
    pub fn currency(&self) -> &str {
        self.items
            .first()
            .map_or(DEFAULT_CURRENCY, |i| i.currency.as_str())
    }

    pub fn total(&self) -> i64 {
        self.items.iter().map(Item::total).sum()
    }

    pub(crate) fn save(&self, tx: &mut Tx<'_>) {
        if self.name_pending {
            tx.put(keys::name_pending(self.id), &self.id);
        } else {
            tx.delete(keys::name_pending(self.id));
        }
        let (key, entry) = self.listing();
        tx.put(key, &entry);
        tx.put(keys::lead(self.id), self);
    }

    /// Its entry in the list of leads, derived from its state (the name changes once VK
    /// gives it).
    fn listing(&self) -> (String, Listed<LeadId>) {
        (
            keys::lead_listed(self.created_at, self.id),
            Listed::new(self.id, &[&self.title, &self.first_name, &self.last_name]),
        )
    }

    pub(crate) fn load(tx: &mut Tx<'_>, id: LeadId) -> Result<Lead, Error> {
        tx.get(&keys::lead(id))?.ok_or(Error::LeadNotFound)
    }

    fn require_editable(&self) -> Result<(), Error> {
        if self.status == LeadStatus::Converted {
            Err(Error::LeadConverted)
        } else {
            Ok(())
        }
    }
}

/// Lists leads stored before their list existed, a page per call.
pub(crate) fn list_unlisted(store: &dyn Store) -> Result<(), Error> {
    backfill(
        store,
        &keys::listed_up_to(keys::LEADS),
        keys::LEADS,
        |tx, key, _: &IgnoredAny| {
            // Read again in the transaction: the commit rests on the name listed.
            if let Some(lead) = tx.get::<Lead>(key)? {
                let (key, entry) = lead.listing();
                tx.put_missing(key, &entry)?;
            }
            Ok(())
        },
    )
}

/// An entry of a list of documents (leads, counterparties, orders): the document's id and
/// the names a search looks in, in lower case.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Listed<I> {
    id: I,
    search: String,
}

impl<I> Listed<I> {
    pub(crate) fn new(id: I, names: &[&str]) -> Listed<I> {
        Listed {
            id,
            search: names.join("\n").to_lowercase(),
        }
    }
}

/// The most list entries a search looks at for one page; a page that ends there has a
/// `next` to search on from, however few items it found.
pub const SEARCH_SCAN: usize = 2000;
/// Entries read per scan while a search fills a page.
const SEARCH_BATCH: usize = 200;

/// A page of a list of documents, newest first: the ids of the entries whose names hold
/// `q` (any case; blank: every entry). At most `limit` ids, and at most [`SEARCH_SCAN`]
/// entries looked at.
pub(crate) fn search<I: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
    q: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<I>, Error> {
    let limit = limit.clamp(1, MAX_PAGE) as usize;
    let needle = q.trim().to_lowercase();
    let suffix = |key: String| key[prefix.len()..].to_owned();
    let mut items = Vec::new();
    let mut last_item: Option<String> = None;
    let mut cursor = after.map(|cursor| format!("{prefix}{cursor}"));
    let mut scanned = 0;
    loop {
        let rows = scan::<Listed<I>>(store, prefix, cursor.as_deref(), SEARCH_BATCH as u32)?;
        let exhausted = rows.len() < SEARCH_BATCH;
        scanned += rows.len();
        for (key, entry) in rows {
            if entry.search.contains(&needle) {
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next: last_item.map(suffix),
                    });
                }
                items.push(entry.id);
                last_item = Some(key.clone());
            }
            cursor = Some(key);
        }
        if exhausted {
            return Ok(Page { items, next: None });
        }
        if scanned >= SEARCH_SCAN {
            return Ok(Page {
                items,
                next: cursor.map(suffix),
            });
        }
    }
}

/// The currency of a list of goods (all share one), `RUB` for none.
pub fn currency_of(items: &[Item]) -> &str {
    items
        .first()
        .map_or(DEFAULT_CURRENCY, |i| i.currency.as_str())
}

/// The sum of a list of goods, in kopecks.
pub fn total_of(items: &[Item]) -> i64 {
    items.iter().map(Item::total).sum()
}

/// The "Communication" block ("Коммуникация"): the way from a document back to its chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Communication {
    pub dialog_id: DialogId,
    pub started_at: DateTime<Utc>,
    pub name: String,
    /// The operator API address of the dialog.
    pub link: String,
    pub status: DialogStatus,
}

impl Communication {
    pub fn of(dialog: &Dialog) -> Communication {
        Communication {
            dialog_id: dialog.id,
            started_at: dialog.started_at,
            name: dialog.name.clone(),
            link: format!("/api/dialogs/{}", dialog.id),
            status: dialog.status,
        }
    }
}

impl Core<'_> {
    /// Reads a lead with its communication block.
    pub fn lead(
        &self,
        reader: impl Into<Subject>,
        id: LeadId,
    ) -> Result<(Lead, Communication), Error> {
        self.require_reader(reader.into())?;
        let lead: Lead = read(self.store, &keys::lead(id))?.ok_or(Error::LeadNotFound)?;
        let communication = self.communication(lead.dialog_id)?;
        Ok((lead, communication))
    }

    pub(crate) fn communication(&self, dialog: DialogId) -> Result<Communication, Error> {
        let dialog: Dialog =
            read(self.store, &keys::dialog(dialog))?.ok_or(Error::DialogNotFound)?;
        Ok(Communication::of(&dialog))
    }

    /// The leads whose title or name holds `q` (any listed employee, and the admin), newest first, each
    /// with its communication block.
    pub fn leads(
        &self,
        reader: impl Into<Subject>,
        q: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<(Lead, Communication)>, Error> {
        self.require_reader(reader.into())?;
        let page = search(self.store, keys::LEADS_LISTED, q, after, limit)?;
        self.documents(page, keys::lead, |lead: &Lead| lead.dialog_id)
    }

    /// The documents of a page of ids, each with its communication block.
    pub(crate) fn documents<I: Copy, T: DeserializeOwned>(
        &self,
        page: Page<I>,
        key: impl Fn(I) -> String,
        dialog: impl Fn(&T) -> DialogId,
    ) -> Result<Page<(T, Communication)>, Error> {
        let mut items = Vec::with_capacity(page.items.len());
        for id in page.items {
            if let Some(document) = read::<T>(self.store, &key(id))? {
                let communication = self.communication(dialog(&document))?;
                items.push((document, communication));
            }
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Adds goods to a lead that is not converted.
    pub fn add_item(
        &self,
        actor: EmployeeId,
        id: LeadId,
        item: NewItem,
    ) -> Result<(Lead, Communication), Error> {
        let name = item.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        let sku = item
            .sku
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if sku.as_ref().is_some_and(|s| s.chars().count() > 64) {
            return Err(Error::invalid("sku", "must be at most 64 characters"));
        }
        let quantity = parse_quantity(&item.quantity)?;
        let price = parse_price(&item.price)?;
        let currency = item
            .currency
            .as_deref()
            .unwrap_or(DEFAULT_CURRENCY)
            .trim()
            .to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::invalid(
                "currency",
                "must be a three-letter code such as RUB",
            ));
        }
        let new = Item {
            id: ItemId::new(),
            name,
            sku,
            quantity,
            price,
            currency,
        };
        self.edit_lead(actor, id, |lead| {
            if !lead.items.is_empty() && lead.currency() != new.currency {
                return Err(Error::CurrencyMismatch {
                    lead: lead.currency().to_owned(),
                    item: new.currency.clone(),
                });
            }
            lead.items.push(new.clone());
            require_bounded_total(lead, "price")
        })
    }

    /// Changes an item's quantity.
    pub fn set_quantity(
        &self,
        actor: EmployeeId,
        id: LeadId,
        item: ItemId,
        quantity: &str,
    ) -> Result<(Lead, Communication), Error> {
        let quantity = parse_quantity(quantity)?;
        self.edit_lead(actor, id, |lead| {
            let line = lead
                .items
                .iter_mut()
                .find(|i| i.id == item)
                .ok_or(Error::ItemNotFound)?;
            line.quantity = quantity;
            require_bounded_total(lead, "quantity")
        })
    }

    /// Removes an item.
    pub fn remove_item(
        &self,
        actor: EmployeeId,
        id: LeadId,
        item: ItemId,
    ) -> Result<(Lead, Communication), Error> {
        self.edit_lead(actor, id, |lead| {
            let before = lead.items.len();
            lead.items.retain(|i| i.id != item);
            if lead.items.len() == before {
                Err(Error::ItemNotFound)
            } else {
                Ok(())
            }
        })
    }

    /// Restore from the lead ("Восстановить диалог"): restores the lead's dialog.
    pub fn restore_from_lead(&self, actor: EmployeeId, id: LeadId) -> Result<Dialog, Error> {
        self.require_reader(actor.into())?;
        let lead: Lead = read(self.store, &keys::lead(id))?.ok_or(Error::LeadNotFound)?;
        self.restore(actor, lead.dialog_id)
    }

    fn edit_lead(
        &self,
        actor: EmployeeId,
        id: LeadId,
        change: impl Fn(&mut Lead) -> Result<(), Error>,
    ) -> Result<(Lead, Communication), Error> {
        let lead = transact(self.store, |tx| {
            self.settings_in(tx)?.require_listed(actor)?;
            let mut lead = Lead::load(tx, id)?;
            lead.require_editable()?;
            change(&mut lead)?;
            lead.save(tx);
            Ok(lead)
        })?;
        let communication = self.communication(lead.dialog_id)?;
        Ok((lead, communication))
    }
}

/// Refuses goods that would make the lead's total too large to compute.
fn require_bounded_total(lead: &Lead, field: &'static str) -> Result<(), Error> {
    let total: i128 = lead.items.iter().map(Item::wide_total).sum();
    if total > MAX_TOTAL {
        Err(Error::invalid(
            field,
            "makes the lead's total larger than 10^15",
        ))
    } else {
        Ok(())
    }
}

/// A quantity of goods as entered (`"2"`, `"1.5"`) → thousandths; more than zero.
pub fn parse_quantity(text: &str) -> Result<i64, Error> {
    match parse_fixed(text, QUANTITY_DIGITS, 1_000_000_000) {
        Ok(0) => Err(Error::invalid("quantity", "must be greater than zero")),
        Ok(quantity) => Ok(quantity),
        Err(reason) => Err(Error::invalid("quantity", reason)),
    }
}

/// A price as entered (`"150"`, `"150.00"`) → kopecks; [`format_money`] writes it back.
pub fn parse_price(text: &str) -> Result<i64, Error> {
    parse_fixed(text, PRICE_DIGITS, 1_000_000_000_000)
        .map_err(|reason| Error::invalid("price", reason))
}

/// Parses a non-negative decimal text into an integer of `digits` fraction digits, refusing
/// more precision than that (never rounding silently) and values of `max` or more units.
fn parse_fixed(text: &str, digits: u32, max: i64) -> Result<i64, String> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !is_digits(whole)
        || !is_digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(format!(
            "must be a decimal number of at least 0, such as 150.00 (got {text:?})"
        ));
    }
    if fraction.len() > digits as usize {
        return Err(format!("allows at most {digits} digits after the point"));
    }
    let whole: i64 = whole
        .parse()
        .ok()
        .filter(|w| *w < max)
        .ok_or_else(|| format!("must be less than {max}"))?;
    let scale = 10_i64.pow(digits);
    let fraction: i64 = format!("{fraction:0<width$}", width = digits as usize)
        .parse()
        .unwrap_or(0);
    Ok(whole * scale + fraction)
}

/// Formats an integer of `digits` fraction digits as a decimal text.
fn format_fixed(value: i64, digits: u32) -> String {
    let scale = 10_i64.pow(digits);
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        value / scale,
        value % scale,
        width = digits as usize
    )
}

/// Kopecks as `"1850.00"`.
pub fn format_money(kopecks: i64) -> String {
    format_fixed(kopecks, PRICE_DIGITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(quantity: &str, price: &str) -> Item {
        Item {
            id: ItemId::new(),
            name: "x".into(),
            sku: None,
            quantity: parse_quantity(quantity).expect("valid quantity"),
            price: parse_fixed(price, PRICE_DIGITS, i64::MAX).expect("valid price"),
            currency: "RUB".into(),
        }
    }

    #[test]
    fn totals_are_exact() {
        let total: i64 = [item("11", "150.00"), item("1", "200.00")]
            .iter()
            .map(Item::total)
            .sum();
        assert_eq!(format_money(total), "1850.00");
        assert_eq!(format_money(item("0.1", "0.10").total() * 3), "0.03");
        assert_eq!(format_money(item("1.5", "0.03").total()), "0.05");
    }

    #[test]
    fn decimals_are_parsed_strictly() {
        assert_eq!(parse_fixed("150", 2, 1000), Ok(15000));
        assert_eq!(parse_fixed("1.5", 2, 1000), Ok(150));
        assert!(parse_fixed("1.234", 2, 1000).is_err());
        assert!(parse_fixed("-1", 2, 1000).is_err());
        assert!(parse_fixed("1e3", 2, 1000).is_err());
        assert!(parse_fixed("1.", 2, 1000).is_err());
        assert!(parse_fixed("1000", 2, 1000).is_err());
        assert!(parse_quantity("0").is_err());
        assert_eq!(item("2.500", "1").quantity_text(), "2.5");
    }
}
