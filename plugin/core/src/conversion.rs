//! Conversion of a lead into a counterparty and an order (§9), both linking back to the
//! chat through their communication block.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::dialog::Page;
use crate::directory::Subject;
use crate::error::Error;
use crate::ids::{CounterpartyId, DialogId, EmployeeId, LeadId, OrderId};
use crate::keys;
use crate::lead::{Communication, Item, Lead, LeadStatus, Listed, currency_of, search, total_of};
use crate::ports::Store;
use crate::tx::{backfill, read, transact};

/// A counterparty ("Контрагент") made from a VK user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    pub id: CounterpartyId,
    pub name: String,
    pub vk_user_id: i64,
    pub lead_id: LeadId,
    pub dialog_id: DialogId,
    #[serde(with = "crate::stored_time")]
    pub created_at: DateTime<Utc>,
}

impl Counterparty {
    /// The person's VK page.
    pub fn vk_profile(&self) -> String {
        format!("https://vk.com/id{}", self.vk_user_id)
    }

    /// Its entry in the list of counterparties.
    fn listing(&self) -> (String, Listed<CounterpartyId>) {
        (
            keys::counterparty_listed(self.created_at, self.id),
            Listed::new(self.id, &[&self.name]),
        )
    }
}

/// An order ("Заказ") with the lead's goods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    /// `VK-00001`, counting up.
    pub number: String,
    pub status: String,
    pub items: Vec<Item>,
    pub counterparty_id: CounterpartyId,
    pub lead_id: LeadId,
    pub dialog_id: DialogId,
    #[serde(with = "crate::stored_time")]
    pub created_at: DateTime<Utc>,
}

impl Order {
    pub fn total(&self) -> i64 {
        total_of(&self.items)
    }

    pub fn currency(&self) -> &str {
        currency_of(&self.items)
    }

    /// Its entry in the list of orders: found by its number or its counterparty's name.
    fn listing(&self, counterparty: &str) -> (String, Listed<OrderId>) {
        (
            keys::order_listed(self.created_at, self.id),
            Listed::new(self.id, &[&self.number, counterparty]),
        )
    }
}

/// Lists counterparties and orders stored before their lists existed, a page of each per
/// call.
pub(crate) fn list_unlisted(store: &dyn Store) -> Result<(), Error> {
    backfill(
        store,
        &keys::listed_up_to(keys::COUNTERPARTIES),
        keys::COUNTERPARTIES,
        |tx, _, counterparty: &Counterparty| {
            let (key, entry) = counterparty.listing();
            tx.put_missing(key, &entry)
        },
    )?;
    backfill(
        store,
        &keys::listed_up_to(keys::ORDERS),
        keys::ORDERS,
        |tx, _, order: &Order| {
            let counterparty = tx
                .get::<Counterparty>(&keys::counterparty(order.counterparty_id))?
                .map(|c| c.name)
                .unwrap_or_default();
            let (key, entry) = order.listing(&counterparty);
            tx.put_missing(key, &entry)
        },
    )
}

impl Core<'_> {
    /// Converts a lead into a counterparty and an order, all in one commit.
    pub fn convert(
        &self,
        actor: EmployeeId,
        id: LeadId,
    ) -> Result<(CounterpartyId, OrderId), Error> {
        let now = self.clock.now();
        transact(self.store, |tx| {
            self.settings_in(tx)?.require_listed(actor)?;
            let mut lead = Lead::load(tx, id)?;
            if let (Some(counterparty), Some(order)) = (lead.counterparty_id, lead.order_id) {
                return Err(Error::AlreadyConverted {
                    counterparty_id: counterparty.to_string(),
                    order_id: order.to_string(),
                });
            }
            if lead.items.is_empty() {
                return Err(Error::NoItems);
            }
            let number = tx.get::<u64>(keys::ORDER_COUNTER)?.unwrap_or(0) + 1;
            let counterparty = Counterparty {
                id: CounterpartyId::new(),
                name: lead.person_name(),
                vk_user_id: lead.peer_id,
                lead_id: lead.id,
                dialog_id: lead.dialog_id,
                created_at: now,
            };
            let order = Order {
                id: OrderId::new(),
                number: format!("VK-{number:05}"),
                status: "new".to_owned(),
                items: lead.items.clone(),
                counterparty_id: counterparty.id,
                lead_id: lead.id,
                dialog_id: lead.dialog_id,
                created_at: now,
            };
            lead.status = LeadStatus::Converted;
            lead.counterparty_id = Some(counterparty.id);
            lead.order_id = Some(order.id);
            tx.put(keys::ORDER_COUNTER, &number);
            tx.put(keys::counterparty(counterparty.id), &counterparty);
            tx.put(keys::order(order.id), &order);
            let (key, entry) = counterparty.listing();
            tx.put(key, &entry);
            let (key, entry) = order.listing(&counterparty.name);
            tx.put(key, &entry);
            lead.save(tx);
            Ok((counterparty.id, order.id))
        })
    }

    /// Reads a counterparty with its communication block.
    pub fn counterparty(
        &self,
        reader: impl Into<Subject>,
        id: CounterpartyId,
    ) -> Result<(Counterparty, Communication), Error> {
        self.require_reader(reader.into())?;
        let counterparty: Counterparty =
            read(self.store, &keys::counterparty(id))?.ok_or(Error::CounterpartyNotFound)?;
        let communication = self.communication(counterparty.dialog_id)?;
        Ok((counterparty, communication))
    }

    /// The counterparties whose name holds `q` (any listed employee, and the admin), newest first, each
    /// with its communication block.
    pub fn counterparties(
        &self,
        reader: impl Into<Subject>,
        q: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<(Counterparty, Communication)>, Error> {
        self.require_reader(reader.into())?;
        let page = search(self.store, keys::COUNTERPARTIES_LISTED, q, after, limit)?;
        self.documents(page, keys::counterparty, |c: &Counterparty| c.dialog_id)
    }

    /// The orders whose number or counterparty's name holds `q` (any listed employee, and the admin),
    /// newest first, each with its communication block.
    pub fn orders(
        &self,
        reader: impl Into<Subject>,
        q: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<(Order, Communication)>, Error> {
        self.require_reader(reader.into())?;
        let page = search(self.store, keys::ORDERS_LISTED, q, after, limit)?;
        self.documents(page, keys::order, |o: &Order| o.dialog_id)
    }

    /// Reads an order with its communication block.
    pub fn order(
        &self,
        reader: impl Into<Subject>,
        id: OrderId,
    ) -> Result<(Order, Communication), Error> {
        self.require_reader(reader.into())?;
        let order: Order = read(self.store, &keys::order(id))?.ok_or(Error::OrderNotFound)?;
        let communication = self.communication(order.dialog_id)?;
        Ok((order, communication))
    }
}
