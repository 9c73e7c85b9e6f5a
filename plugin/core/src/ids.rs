//! Typed ids: a dialog id cannot be passed where a lead id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    )*};
}

id_type!(
    /// An employee, as the host knows them.
    EmployeeId,
    /// A dialog with one VK user.
    DialogId,
    /// A message of a dialog.
    MessageId,
    /// A lead.
    LeadId,
    /// A line of goods of a lead.
    ItemId,
    /// A counterparty.
    CounterpartyId,
    /// An order.
    OrderId,
);

/// Parses an id given from outside (a path, a body). A malformed id names nothing, so it is
/// refused as `missing` says: the same refusal as a well-formed id that is unknown.
pub fn parse<T: FromStr>(text: &str, missing: impl FnOnce() -> Error) -> Result<T, Error> {
    text.parse().map_err(|_| missing())
}

/// An employee named by a caller (the actor, an invitee, a delegate).
pub fn employee(text: &str) -> Result<EmployeeId, Error> {
    parse(text, || {
        Error::EmployeeNotListed(text.chars().take(64).collect())
    })
}

pub fn dialog(text: &str) -> Result<DialogId, Error> {
    parse(text, || Error::DialogNotFound)
}

pub fn lead(text: &str) -> Result<LeadId, Error> {
    parse(text, || Error::LeadNotFound)
}

pub fn item(text: &str) -> Result<ItemId, Error> {
    parse(text, || Error::ItemNotFound)
}

pub fn counterparty(text: &str) -> Result<CounterpartyId, Error> {
    parse(text, || Error::CounterpartyNotFound)
}

pub fn order(text: &str) -> Result<OrderId, Error> {
    parse(text, || Error::OrderNotFound)
}
