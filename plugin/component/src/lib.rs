//! `vk-plugin`: the wasm component. It implements vk-core's ports over the WIT imports
//! (`storage`, `http`) and the WIT exports over vk-core. Only translation lives here: every
//! rule is in vk-core. The generated bindings stay private to this crate.

mod convert;
mod ports;

use vk_core::dialog::DialogStatus;
use vk_core::lead::NewItem;
use vk_core::ports::SystemClock;
use vk_core::{Core, Error, ids};

use convert::IntoWit;

mod wit {
    wit_bindgen::generate!({ path: "../../wit", world: "vk-plugin" });
}

use wit::exports::mybusiness::vk::{api, dialogs, leads, outbox, settings, webhook};
use wit::mybusiness::vk::types;

/// The exported component.
struct Plugin;

wit::export!(Plugin with_types_in wit);

/// vk-core bound to this component's imports.
fn core() -> Core<'static> {
    Core::new(&ports::HostStore, &ports::HostHttp, &SystemClock)
}

/// Runs `call` against vk-core bound to this component's imports, and converts its answer.
fn run<T: IntoWit>(
    call: impl FnOnce(&Core<'_>) -> Result<T, Error>,
) -> Result<T::Wit, types::Error> {
    call(&core())
        .map(IntoWit::into_wit)
        .map_err(IntoWit::into_wit)
}

/// The settings' employee list as the host gives it.
fn listed(employees: Vec<String>) -> Result<Vec<vk_core::EmployeeId>, Error> {
    employees
        .iter()
        .map(|e| {
            ids::parse(e, || {
                Error::invalid(
                    "employees",
                    format!("contains {e:?}, which is not an employee id"),
                )
            })
        })
        .collect()
}

impl webhook::Guest for Plugin {
    fn handle(body: Vec<u8>) -> Result<webhook::CallbackReply, types::Error> {
        #[cfg(feature = "fault-injection")]
        vk_api::faults::inject(&body);
        run(|core| core.handle_callback(&body))
    }
}

impl settings::Guest for Plugin {
    fn get() -> Result<settings::SettingsView, types::Error> {
        run(|core| core.settings())
    }

    fn put(update: settings::SettingsUpdate) -> Result<settings::SettingsView, types::Error> {
        run(|core| {
            let employees = update.employees.map(listed).transpose()?;
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
        run(|core| core.dialogs(ids::employee(&actor_id)?, status, after.as_deref(), limit))
    }

    fn get(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.dialog(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn messages(
        actor_id: String,
        id: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<dialogs::MessagePage, types::Error> {
        run(|core| {
            core.messages(
                ids::employee(&actor_id)?,
                ids::dialog(&id)?,
                after.as_deref(),
                limit,
            )
        })
    }

    fn claim(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.claim(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn send(actor_id: String, id: String, text: String) -> Result<dialogs::Message, types::Error> {
        run(|core| core.send(ids::employee(&actor_id)?, ids::dialog(&id)?, &text))
    }

    fn invite(
        actor_id: String,
        id: String,
        employees: Vec<String>,
    ) -> Result<dialogs::Dialog, types::Error> {
        run(|core| {
            let invited = employees
                .iter()
                .map(|e| ids::employee(e))
                .collect::<Result<Vec<_>, _>>()?;
            core.invite(ids::employee(&actor_id)?, ids::dialog(&id)?, &invited)
        })
    }

    fn leave(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.leave(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn delegate(actor_id: String, id: String, to: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| {
            core.delegate(
                ids::employee(&actor_id)?,
                ids::dialog(&id)?,
                ids::employee(&to)?,
            )
        })
    }

    fn close_as_spam(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.close_as_spam(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn finish(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.finish(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn restore(actor_id: String, id: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.restore(ids::employee(&actor_id)?, ids::dialog(&id)?))
    }

    fn history(
        actor_id: String,
        id: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<dialogs::DialogHistory, types::Error> {
        run(|core| {
            core.history(
                ids::employee(&actor_id)?,
                ids::dialog(&id)?,
                after.as_deref(),
                limit,
            )
        })
    }
}

impl leads::Guest for Plugin {
    fn get(actor_id: String, id: String) -> Result<leads::Lead, types::Error> {
        run(|core| core.lead(ids::employee(&actor_id)?, ids::lead(&id)?))
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
            core.add_item(ids::employee(&actor_id)?, ids::lead(&lead)?, item)
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
                ids::employee(&actor_id)?,
                ids::lead(&lead)?,
                ids::item(&item)?,
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
                ids::employee(&actor_id)?,
                ids::lead(&lead)?,
                ids::item(&item)?,
            )
        })
    }

    fn convert(actor_id: String, lead: String) -> Result<leads::Conversion, types::Error> {
        run(|core| core.convert(ids::employee(&actor_id)?, ids::lead(&lead)?))
    }

    fn restore_dialog(actor_id: String, lead: String) -> Result<dialogs::Dialog, types::Error> {
        run(|core| core.restore_from_lead(ids::employee(&actor_id)?, ids::lead(&lead)?))
    }

    fn read_counterparty(
        actor_id: String,
        id_text: String,
    ) -> Result<leads::Counterparty, types::Error> {
        run(|core| core.counterparty(ids::employee(&actor_id)?, ids::counterparty(&id_text)?))
    }

    fn read_order(actor_id: String, id_text: String) -> Result<leads::Order, types::Error> {
        run(|core| core.order(ids::employee(&actor_id)?, ids::order(&id_text)?))
    }
}

impl api::Guest for Plugin {
    fn handle(request: api::Request, config: api::HostConfig) -> api::Response {
        let response = vk_api::handle(
            &core(),
            &vk_api::Config {
                admin_token: config.admin_token.as_deref(),
                public_url: config.public_url.as_deref(),
            },
            &vk_api::Request {
                method: &request.method,
                path: &request.path,
                query: request.query.as_deref(),
                headers: &request.headers,
                body: &request.body,
            },
        );
        let mut headers = vec![("content-type".to_owned(), response.content_type.to_owned())];
        headers.extend(
            response
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        api::Response {
            status: response.status,
            headers,
            body: response.body,
        }
    }
}

impl outbox::Guest for Plugin {
    fn flush() -> Result<outbox::FlushReport, types::Error> {
        run(|core| core.flush())
    }
}
