//! The integration's settings («Интеграция с VK сообществом») and the outbox flush: admin
//! routes.

use serde::Deserialize;
use vk_core::settings::SettingsUpdate;
use vk_core::{CALLBACK_PATH, EmployeeId};

use crate::{Answer, Call, Refusal, Response, auth, json};

impl Call<'_, '_> {
    pub(crate) fn get_settings(&self) -> Answer {
        self.admin()?;
        self.settings_answer(&self.core.settings()?)
    }

    /// `PUT /api/settings`: fields left out keep their value; `group_id` is read-only. A key
    /// given twice is refused, as in every body.
    pub(crate) fn put_settings(&self) -> Answer {
        self.admin()?;
        let body: SettingsBody = self.body()?;
        if body.group_id {
            return Err(Refusal::new(
                400,
                "read-only-field",
                "`group_id` is recorded from VK's confirmation; reset it with DELETE /api/settings/group-id",
            ));
        }
        let employees = body
            .employees
            .map(|list| {
                list.iter()
                    .map(|text| self.known_employee(text))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let view = self.core.put_settings(SettingsUpdate {
            access_token: body.access_token,
            secret: body.secret,
            confirmation: body.confirmation,
            group_name: body.group_name,
            api_version: body.api_version,
            employees,
        })?;
        self.settings_answer(&view)
    }

    /// The settings as every settings route answers them, with the full callback address to
    /// paste into VK.
    pub(crate) fn settings_answer(&self, view: &vk_core::settings::SettingsView) -> Answer {
        let mut body = json::settings(view);
        body["callback_url"] = json!(format!(
            "{}{CALLBACK_PATH}",
            auth::base_url(self.request, self.public_url)
        ));
        Ok(Response::json(200, &body))
    }

    /// An employee id the directory knows.
    pub(crate) fn known_employee(&self, text: &str) -> Result<EmployeeId, Refusal> {
        let unknown = || {
            Refusal::new(
                400,
                "unknown-employee",
                format!("no employee has the id {text:?}"),
            )
        };
        let id: EmployeeId = text.parse().map_err(|_| unknown())?;
        if self.core.employee_exists(id)? {
            Ok(id)
        } else {
            Err(unknown())
        }
    }

    pub(crate) fn reset_group_id(&self) -> Answer {
        self.admin()?;
        self.settings_answer(&self.core.reset_group_id()?)
    }

    pub(crate) fn flush(&self) -> Answer {
        self.admin()?;
        Ok(Response::json(
            200,
            &json::flush_report(&self.core.flush()?),
        ))
    }
}

/// Whether a field is in the body at all (also as `null`).
fn present<'de, D: serde::Deserializer<'de>>(field: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(field).map(|_| true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    access_token: Option<String>,
    secret: Option<String>,
    confirmation: Option<String>,
    group_name: Option<String>,
    api_version: Option<String>,
    employees: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    group_id: bool,
}
