//! Conversion of a lead into a counterparty and an order (§9), both linking back to the
//! chat through their communication block.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::error::Error;
use crate::ids::{CounterpartyId, DialogId, EmployeeId, LeadId, OrderId};
use crate::keys;
use crate::lead::{Communication, Item, Lead, LeadStatus, currency_of, total_of};
use crate::tx::{read, transact};

/// A counterparty ("Контрагент") made from a VK user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    pub id: CounterpartyId,
    pub name: String,
    pub vk_user_id: i64,
    pub lead_id: LeadId,
    pub dialog_id: DialogId,
    pub created_at: DateTime<Utc>,
}

impl Counterparty {
    /// The person's VK page.
    pub fn vk_profile(&self) -> String {
        format!("https://vk.com/id{}", self.vk_user_id)
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
    pub created_at: DateTime<Utc>,
}

impl Order {
    pub fn total(&self) -> i64 {
        total_of(&self.items)
    }

    pub fn currency(&self) -> &str {
        currency_of(&self.items)
    }
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
            lead.save(tx);
            Ok((counterparty.id, order.id))
        })
    }

    /// Reads a counterparty with its communication block.
    pub fn counterparty(
        &self,
        actor: EmployeeId,
        id: CounterpartyId,
    ) -> Result<(Counterparty, Communication), Error> {
        self.require_reader(actor)?;
        let counterparty: Counterparty =
            read(self.store, &keys::counterparty(id))?.ok_or(Error::CounterpartyNotFound)?;
        let communication = self.communication(counterparty.dialog_id)?;
        Ok((counterparty, communication))
    }

    /// Reads an order with its communication block.
    pub fn order(&self, actor: EmployeeId, id: OrderId) -> Result<(Order, Communication), Error> {
        self.require_reader(actor)?;
        let order: Order = read(self.store, &keys::order(id))?.ok_or(Error::OrderNotFound)?;
        let communication = self.communication(order.dialog_id)?;
        Ok((order, communication))
    }
}
