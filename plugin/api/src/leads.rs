//! Leads, their goods and conversion, counterparties and orders.

use serde::Deserialize;
use serde_json::value::RawValue;
use vk_core::ids;
use vk_core::lead::NewItem;

use crate::{Answer, Call, Refusal, Response, json, malformed};

impl Call<'_, '_> {
    pub(crate) fn get_lead(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (lead, communication) = self.core.lead(reader, ids::lead(id)?)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    pub(crate) fn add_item(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let item: ItemBody = self.body()?;
        let new = NewItem {
            name: item.name,
            sku: item.sku,
            quantity: decimal(&item.quantity, "quantity")?,
            price: decimal(&item.price, "price")?,
            currency: item.currency,
        };
        let (lead, communication) = self.core.add_item(actor, ids::lead(id)?, new)?;
        Ok(Response::json(
            201,
            &json::lead_with_new_item(&lead, &communication),
        ))
    }

    pub(crate) fn set_quantity(&self, id: &str, item: &str) -> Answer {
        let actor = self.employee()?;
        let change: QuantityBody = self.body()?;
        let quantity = decimal(&change.quantity, "quantity")?;
        let (lead, communication) =
            self.core
                .set_quantity(actor, ids::lead(id)?, ids::item(item)?, &quantity)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    pub(crate) fn remove_item(&self, id: &str, item: &str) -> Answer {
        let actor = self.employee()?;
        let (lead, communication) =
            self.core
                .remove_item(actor, ids::lead(id)?, ids::item(item)?)?;
        Ok(Response::json(200, &json::lead(&lead, &communication)))
    }

    pub(crate) fn convert(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let (counterparty_id, order_id) = self.core.convert(actor, ids::lead(id)?)?;
        Ok(Response::json(
            200,
            &json!({"counterparty_id": counterparty_id.to_string(), "order_id": order_id.to_string()}),
        ))
    }

    pub(crate) fn restore_from_lead(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let dialog = self.core.restore_from_lead(actor, ids::lead(id)?)?;
        Ok(Response::json(200, &json::dialog(&dialog, Some(actor))))
    }

    pub(crate) fn get_counterparty(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (counterparty, communication) =
            self.core.counterparty(reader, ids::counterparty(id)?)?;
        Ok(Response::json(
            200,
            &json::counterparty(&counterparty, &communication),
        ))
    }

    pub(crate) fn get_order(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (order, communication) = self.core.order(reader, ids::order(id)?)?;
        Ok(Response::json(200, &json::order(&order, &communication)))
    }
}

/// A decimal as JSON gives it: a number (`150`, `1.5`) or a string (`"150.00"`), taken as the
/// exact text sent (a number never passes through a float), for vk-core to check.
fn decimal(value: &RawValue, field: &str) -> Result<String, Refusal> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_err(|e| malformed(e.to_string())),
        Some(b'-' | b'0'..=b'9') => Ok(text.to_owned()),
        _ => Err(Refusal::new(
            400,
            "invalid-field",
            format!("`{field}` must be a number or a decimal string"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    name: String,
    sku: Option<String>,
    quantity: Box<RawValue>,
    price: Box<RawValue>,
    currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityBody {
    quantity: Box<RawValue>,
}
