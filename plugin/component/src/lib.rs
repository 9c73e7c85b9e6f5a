//! `vk-plugin`: the wasm component. It implements vk-core's ports over the WIT imports
//! (`storage`, `http`) and the WIT exports over vk-core. Only translation lives here: every
//! rule is in vk-core. The generated bindings stay private to this crate.

mod convert;
mod ports;

use std::str::FromStr;

use vk_core::dialog::DialogStatus;
use vk_core::lead::NewItem;
use vk_core::ports::SystemClock;
use vk_core::{Core, Error};

use convert::IntoWit;

mod wit {
    wit_bindgen::generate!({ path: "../../wit", world: "vk-plugin" });
}

use wit::exports::mybusiness::vk::{dialogs, leads, outbox, settings, webhook};
use wit::mybusiness::vk::types;

/// The exported component.
struct Plugin;

wit::export!(Plugin with_types_in wit);

/// Runs `call` against vk-core bound to this component's imports, and converts its answer.
fn run<T: IntoWit>(
    call: impl FnOnce(&Core<'_>) -> Result<T, Error>,
) -> Result<T::Wit, types::Error> {
    let core = Core::new(&ports::HostStore, &ports::HostHttp, &SystemClock);
    call(&core)
        .map(IntoWit::into_wit)
        .map_err(IntoWit::into_wit)
}

/// Parses an id given by the host; a malformed one names nothing.
fn id<T: FromStr>(text: &str, missing: Error) -> Result<T, Error> {
    text.parse().map_err(|_| missing)
}

/// An employee: the actor, or the target of a command (invitee, delegate). A malformed id
/// names nobody listed.
fn actor(text: &str) -> Result<vk_core::EmployeeId, Error> {
    id(
        text,
        Error::EmployeeNotListed(text.chars().take(64).collect()),
    )
}

fn dialog_id(text: &str) -> Result<vk_core::DialogId, Error> {
    id(text, Error::DialogNotFound)
}

fn lead_id(text: &str) -> Result<vk_core::LeadId, Error> {
    id(text, Error::LeadNotFound)
}

impl webhook::Guest for Plugin {
    fn handle(body: Vec<u8>) -> Result<webhook::CallbackReply, types::Error> {
        #[cfg(feature = "fault-injection")]
        faults::inject(&body);
        run(|core| core.handle_callback(&body))
    }
}

impl settings::Guest for Plugin {
    fn get() -> Result<settings::SettingsView, types::Error> {
        run(|core| core.settings())
    }

    fn put(update: settings::SettingsUpdate) -> Result<settings::SettingsView, types::Error> {
        run(|core| {
            let employees = update
                .employees
                .map(|list| {
                    list.iter()
                        .map(|e| {
                            id(
                                e,
                                Error::invalid(
                                    "employees",
                                    format!("contains {e:?}, which is not an employee id"),
                                ),
                            )
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            core.put_settings(vk_core::settings::SettingsUpdate {
                access_token: update.access_token,
                secret: update.secret,
                confirmation: update.confirmation,
                group_name: update.group_name,
                api_version: update.api_version,
                employees,
            })
        })
    }

    fn reset_group_id() -> Result<settings::SettingsView, types::Error> {
        run(|core| core.reset_group_id())
    }
}

impl dialogs::Guest for Plugin {
    fn open_lines(
        actor_id: String,
        status: types::DialogStatus,
        after: Option<String>,
        limit: u32,
    ) -> Result<dialogs::DialogPage, types::Error> {
        let status = match status {
            types::DialogStatus::Open => DialogStatus::Open,
            types::DialogStatus::Spam => DialogStatus::Spam,
            types::DialogStatus::Finished => DialogStatus::Finished,
        };
        run(|core| core.dialogs(actor(&actor_id)?, status, after.as_deref(), limit))
    }

    fn get(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.dialog(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn messages(
        actor_id: String,
        id: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<dialogs::MessagePage, types::Error> {
        run(|core| core.messages(actor(&actor_id)?, dialog_id(&id)?, after.as_deref(), limit))
    }

    fn claim(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.claim(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn send(actor_id: String, id: String, text: String) -> Result<dialogs::Message, types::Error> {
        run(|core| core.send(actor(&actor_id)?, dialog_id(&id)?, &text))
    }

    fn invite(
        actor_id: String,
        id: String,
        employees: Vec<String>,
    ) -> Result<dialogs::Dialog, types::Error> {
        run(|core| {
            let invited = employees
                .iter()
                .map(|e| actor(e))
                .collect::<Result<Vec<_>, _>>()?;
            core.invite(actor(&actor_id)?, dialog_id(&id)?, &invited)
        })
    }

    fn leave(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.leave(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn delegate(actor_id: String, id: String, to: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.delegate(actor(&actor_id)?, dialog_id(&id)?, actor(&to)?))
    }

    fn close_as_spam(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.close_as_spam(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn finish(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.finish(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn restore(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.restore(actor(&actor_id)?, dialog_id(&id)?))
    }

    fn history(
        actor_id: String,
        id: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<dialogs::DialogHistory, types::Error> {
        run(|core| core.history(actor(&actor_id)?, dialog_id(&id)?, after.as_deref(), limit))
    }
}

impl leads::Guest for Plugin {
    fn get(actor_id: String, id: String) -> Result<leads::Lead, types::Error> {
        run(|core| core.lead(actor(&actor_id)?, lead_id(&id)?))
    }

    fn add_item(
        actor_id: String,
        lead: String,
        item: leads::NewItem,
    ) -> Result<leads::Lead, types::Error> {
        run(|core| {
            let item = NewItem {
                name: item.name,
                sku: item.sku,
                quantity: item.quantity,
                price: item.price,
                currency: item.currency,
            };
            core.add_item(actor(&actor_id)?, lead_id(&lead)?, item)
        })
    }

    fn set_quantity(
        actor_id: String,
        lead: String,
        item: String,
        quantity: String,
    ) -> Result<leads::Lead, types::Error> {
        run(|core| {
            core.set_quantity(
                actor(&actor_id)?,
                lead_id(&lead)?,
                id(&item, Error::ItemNotFound)?,
                &quantity,
            )
        })
    }

    fn remove_item(
        actor_id: String,
        lead: String,
        item: String,
    ) -> Result<leads::Lead, types::Error> {
        run(|core| {
            core.remove_item(
                actor(&actor_id)?,
                lead_id(&lead)?,
                id(&item, Error::ItemNotFound)?,
            )
        })
    }

    fn convert(actor_id: String, lead: String) -> Result<leads::Conversion, types::Error> {
        run(|core| core.convert(actor(&actor_id)?, lead_id(&lead)?))
    }

    fn restore_dialog(actor_id: String, lead: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.restore_from_lead(actor(&actor_id)?, lead_id(&lead)?))
    }

    fn read_counterparty(
        actor_id: String,
        id_text: String,
    ) -> Result<leads::Counterparty, types::Error> {
        run(|core| {
            core.counterparty(
                actor(&actor_id)?,
                id(&id_text, Error::CounterpartyNotFound)?,
            )
        })
    }

    fn read_order(actor_id: String, id_text: String) -> Result<leads::Order, types::Error> {
        run(|core| core.order(actor(&actor_id)?, id(&id_text, Error::OrderNotFound)?))
    }
}

impl outbox::Guest for Plugin {
    fn flush() -> Result<outbox::FlushReport, types::Error> {
        run(|core| core.flush())
    }
}

/// Test-only misbehaviour, so the host's isolation of a bad guest can be proven end to end.
#[cfg(feature = "fault-injection")]
mod faults {
    /// `fault:trap` panics (a trap), `fault:loop` never returns, `fault:memory` allocates
    /// without end.
    pub fn inject(body: &[u8]) {
        match body {
            b"fault:trap" => panic!("fault injected: trap"),
            b"fault:loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"fault:memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => {}
        }
    }
}
