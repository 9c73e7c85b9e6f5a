//! A dialog's routes: reading it, its messages and history, sending, and the commands of the
//! open lines (claim, invite, leave, delegate, spam, finish, restore).

use serde::Deserialize;
use vk_core::ids;

use crate::{Answer, Call, Response, json, required};

impl Call<'_, '_> {
    pub(crate) fn get_dialog(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let dialog = self.core.dialog(reader, ids::dialog(id)?)?;
        Ok(Response::json(
            200,
            &json::dialog(&dialog, reader.employee()),
        ))
    }

    pub(crate) fn list_messages(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (after, limit) = self.page()?;
        let page = self
            .core
            .messages(reader, ids::dialog(id)?, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::messages(&page)))
    }

    pub(crate) fn send_message(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let new: NewMessage = self.body()?;
        let message = self.core.send(actor, ids::dialog(id)?, &new.text)?;
        Ok(Response::json(201, &json::message(&message)))
    }

    pub(crate) fn history(&self, id: &str) -> Answer {
        let reader = self.caller()?;
        let (after, limit) = self.page()?;
        let (page, operators) =
            self.core
                .history(reader, ids::dialog(id)?, after.as_deref(), limit)?;
        Ok(Response::json(200, &json::history(&page, &operators)))
    }

    /// `claim`, `invite`, `leave`, `delegate`, `spam`, `finish`, `restore`; the body is
    /// optional except for `invite` and `delegate`.
    pub(crate) fn dialog_command(&self, id: &str, command: &str) -> Answer {
        let actor = self.employee()?;
        let body: CommandBody = if self.request.body.iter().all(u8::is_ascii_whitespace) {
            CommandBody::default()
        } else {
            self.body()?
        };
        // The dialog id is parsed after a command's own fields: a missing field is `400`
        // whatever the id.
        let dialog = || ids::dialog(id);
        let core = self.core;
        let dialog = match command {
            "claim" => core.claim(actor, dialog()?)?,
            "invite" => {
                let invited = body
                    .employees
                    .ok_or_else(|| required("employees"))?
                    .iter()
                    .map(|e| ids::employee(e))
                    .collect::<Result<Vec<_>, _>>()?;
                core.invite(actor, dialog()?, &invited)?
            }
            "leave" => core.leave(actor, dialog()?)?,
            "delegate" => {
                let to = body.to.ok_or_else(|| required("to"))?;
                core.delegate(actor, dialog()?, ids::employee(&to)?)?
            }
            "spam" => core.close_as_spam(actor, dialog()?)?,
            "finish" => core.finish(actor, dialog()?)?,
            _ => core.restore(actor, dialog()?)?,
        };
        Ok(Response::json(200, &json::dialog(&dialog, Some(actor))))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    employees: Option<Vec<String>>,
    to: Option<String>,
}
