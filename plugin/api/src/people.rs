//! Who uses the product: signing in to the workspace (sessions), `/api/me`, and the
//! employees the admin creates, issues sign-in links to and removes.

use serde::Deserialize;
use serde_json::Value;
use vk_core::directory::{Subject, digest};
use vk_core::ids;

use crate::{Answer, Call, Refusal, Response, auth, json, unauthorized};

impl Call<'_, '_> {
    /// `POST /api/sessions`: signs a person in to the workspace with the admin token or an
    /// employee's one-time sign-in code; the session goes in a cookie scripts cannot read.
    pub(crate) fn sign_in(&self) -> Answer {
        let body: SignInBody = self.body()?;
        if auth::is_cross_site(self.request) {
            return Err(Refusal::new(
                403,
                "cross-site",
                "signing in from another site is not allowed",
            ));
        }
        let (subject, token) = match (body.admin_token, body.code) {
            (Some(token), None) => {
                if !self.is_admin(token.trim()) {
                    return Err(unauthorized());
                }
                let admin = digest(token.trim());
                (Subject::Admin, self.core.start_admin_session(&admin)?)
            }
            (None, Some(code)) => {
                let (employee, token) = self.core.redeem_sign_in(code.trim())?.ok_or_else(|| {
                    Refusal::new(
                        401,
                        "sign-in-link-spent",
                        "this sign-in link was used already, replaced or has expired: ask the admin for a new one",
                    )
                })?;
                (Subject::Employee(employee), token)
            }
            _ => {
                return Err(Refusal::new(
                    400,
                    "invalid-field",
                    "give either `admin_token` or `code`",
                ));
            }
        };
        let cookie = auth::start_cookie(
            &token,
            vk_core::directory::SESSION_DAYS * 24 * 3600,
            self.secure(),
        );
        Ok(Response::json(201, &json!({"me": self.me_of(subject)?}))
            .with_header("set-cookie", cookie))
    }

    /// `DELETE /api/sessions/current` («Выйти»).
    pub(crate) fn sign_out(&self) -> Answer {
        self.caller()?;
        if let Some(token) = auth::session_cookie(self.request) {
            self.core.end_session(token)?;
        }
        Ok(Response::json(200, &json!({}))
            .with_header("set-cookie", auth::end_cookie(self.secure())))
    }

    /// Whether people reach the product over https (the session cookie is `Secure` then).
    pub(crate) fn secure(&self) -> bool {
        auth::base_url(self.request, self.public_url).starts_with("https://")
    }

    /// `GET /api/me`.
    pub(crate) fn me(&self) -> Answer {
        let subject = self.caller()?;
        Ok(Response::json(200, &self.me_of(subject)?))
    }

    pub(crate) fn me_of(&self, subject: Subject) -> Result<Value, Refusal> {
        Ok(match subject {
            Subject::Admin => json!({"role": "admin", "id": null, "name": "Администратор"}),
            Subject::Employee(id) => {
                let employee = self.core.employee(id)?;
                json!({"role": "employee", "id": id.to_string(), "name": employee.name})
            }
        })
    }

    /// `POST /api/employees/{id}/sign-in-link`: a one-time link for the employee to sign in;
    /// their sessions end and an earlier link is spent.
    pub(crate) fn sign_in_link(&self, id: &str) -> Answer {
        self.admin()?;
        let (code, expires_at) = self.core.issue_sign_in(known(id)?)?;
        let link = format!(
            "{}/sign-in#{code}",
            auth::base_url(self.request, self.public_url)
        );
        Ok(Response::json(
            201,
            &json!({"link": link, "expires_at": vk_core::timestamp(expires_at)}),
        ))
    }

    /// `DELETE /api/employees/{id}`.
    pub(crate) fn remove_employee(&self, id: &str) -> Answer {
        self.admin()?;
        let id = known(id)?;
        self.core.remove_employee(id)?;
        Ok(Response::json(
            200,
            &json!({"id": id.to_string(), "removed": true}),
        ))
    }

    pub(crate) fn create_employee(&self) -> Answer {
        self.admin()?;
        let new: NewEmployee = self.body()?;
        let (employee, token) = self.core.create_employee(&new.name)?;
        let mut body = json::employee(&employee);
        body["token"] = json!(token);
        Ok(Response::json(201, &body))
    }

    /// Every employee's id and name: the admin's list, and the names employees see in
    /// «Управление» and in a dialog's history.
    pub(crate) fn list_employees(&self) -> Answer {
        self.caller()?;
        let all: Vec<Value> = self.core.employees()?.iter().map(json::employee).collect();
        Ok(Response::json(200, &json!({"employees": all})))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    admin_token: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEmployee {
    name: String,
}

/// The employee an admin route's path names: an id that cannot be one is no such employee.
fn known(id: &str) -> Result<vk_core::EmployeeId, vk_core::Error> {
    ids::employee(id).map_err(|_| vk_core::Error::EmployeeNotFound)
}
