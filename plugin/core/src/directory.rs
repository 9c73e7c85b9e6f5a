//! The employee directory of the operator HTTP API: who is calling. A host CRM that drives
//! the typed interfaces brings its own users; the HTTP API (served by the plugin's `api`
//! export and by the Spin component) keeps them here, next to the domain's records.
//!
//! A bearer token is shown once, when the employee is created; only its SHA-256 is stored.
//!
//! People in a browser sign in instead: the admin with the admin token, an employee with a
//! one-time sign-in link the admin issues. Either starts a session, whose token lives in a
//! cookie; of sessions and links too only the SHA-256 is stored. Issuing a new link ends the
//! employee's sessions and spends the old link; removing the employee ends everything.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::tx::{read, scan, transact};
use crate::{Core, EmployeeId, Error, keys};

/// An employee as the directory keeps them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Employee {
    pub id: EmployeeId,
    pub name: String,
    token_sha256: String,
    /// The SHA-256 of the sign-in link not used yet, if one was issued.
    #[serde(default)]
    sign_in_sha256: Option<String>,
}

/// How long a sign-in link can be used.
pub const SIGN_IN_LINK_HOURS: i64 = 72;
/// How long a session lasts from sign-in.
pub const SESSION_DAYS: i64 = 7;

/// Who is calling: the admin (who reads everything and acts on settings and employees) or
/// an employee (who works in the open lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Admin,
    Employee(EmployeeId),
}

impl Subject {
    /// The employee, when it is one.
    pub fn employee(self) -> Option<EmployeeId> {
        match self {
            Subject::Employee(employee) => Some(employee),
            Subject::Admin => None,
        }
    }
}

impl From<EmployeeId> for Subject {
    fn from(employee: EmployeeId) -> Subject {
        Subject::Employee(employee)
    }
}

/// A session as stored (under the SHA-256 of its token).
#[derive(Serialize, Deserialize)]
struct Session {
    employee: Option<EmployeeId>,
    /// For an admin session: the SHA-256 of the admin token it was started with, so that a
    /// new admin token ends the old sessions.
    admin_sha256: Option<String>,
    #[serde(with = "crate::stored_time")]
    expires_at: DateTime<Utc>,
}

/// A sign-in link not used yet.
#[derive(Serialize, Deserialize)]
struct SignIn {
    employee: EmployeeId,
    #[serde(with = "crate::stored_time")]
    expires_at: DateTime<Utc>,
}

/// A fresh secret for a token, a session or a link: 256 random bits as hex.
fn fresh_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// SHA-256 of a secret, as lowercase hex: what is stored of a token, and how the admin
/// token is compared (equal digests take equal time whatever prefix matched).
pub fn digest(secret: impl AsRef<[u8]>) -> String {
    Sha256::digest(secret.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Core<'_> {
    /// Creates an employee; returns them with their bearer token (never stored).
    pub fn create_employee(&self, name: &str) -> Result<(Employee, String), Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name", "must be 1 to 200 characters"));
        }
        transact(self.store, |tx| {
            // Fresh on every attempt, and written only where nothing is: create, never replace.
            let token = fresh_secret();
            let employee = Employee {
                id: EmployeeId::new(),
                name: name.to_owned(),
                token_sha256: digest(&token),
                sign_in_sha256: None,
            };
            let id_key = keys::employee(employee.id);
            let token_key = keys::token(&employee.token_sha256);
            if tx.get::<Employee>(&id_key)?.is_some() || tx.get::<EmployeeId>(&token_key)?.is_some()
            {
                return Err(Error::Contention);
            }
            tx.put(id_key, &employee);
            tx.put(token_key, &employee.id);
            Ok((employee, token))
        })
    }

    /// Takes in an employee record kept elsewhere before, token hash and all, so the
    /// employee's token keeps working: the reference host kept its own directory up to
    /// WIT 0.1.0, in this record's format. Returns the employee's id.
    pub fn adopt_employee(&self, record: &[u8]) -> Result<EmployeeId, Error> {
        let employee: Employee = serde_json::from_slice(record)
            .map_err(|e| Error::Storage(format!("an employee record is unreadable: {e}")))?;
        transact(self.store, |tx| {
            tx.put(keys::employee(employee.id), &employee);
            tx.put(keys::token(&employee.token_sha256), &employee.id);
            Ok(employee.id)
        })
    }

    /// The employee a bearer token belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Result<Option<EmployeeId>, Error> {
        read(self.store, &keys::token(&digest(token)))
    }

    /// Whether the directory knows this id.
    pub fn employee_exists(&self, id: EmployeeId) -> Result<bool, Error> {
        Ok(read::<Employee>(self.store, &keys::employee(id))?.is_some())
    }

    /// Every employee, by id.
    pub fn employees(&self) -> Result<Vec<Employee>, Error> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = scan::<Employee>(self.store, keys::EMPLOYEES, after.as_deref(), 500)?;
            let Some((last, _)) = page.last() else {
                return Ok(all);
            };
            after = Some(last.clone());
            all.extend(page.into_iter().map(|(_, employee)| employee));
        }
    }

    /// An employee of the directory.
    pub fn employee(&self, id: EmployeeId) -> Result<Employee, Error> {
        read(self.store, &keys::employee(id))?.ok_or(Error::EmployeeNotFound)
    }

    /// Starts a session of the admin, who signed in with the admin token whose SHA-256 is
    /// `admin_sha256`; returns the session's token.
    pub fn start_admin_session(&self, admin_sha256: &str) -> Result<String, Error> {
        let session = Session {
            employee: None,
            admin_sha256: Some(admin_sha256.to_owned()),
            expires_at: self.clock.now() + Duration::days(SESSION_DAYS),
        };
        self.start_session(&session)
    }

    fn start_session(&self, session: &Session) -> Result<String, Error> {
        transact(self.store, |tx| {
            let token = fresh_secret();
            let key = keys::session(&digest(&token));
            if tx.get::<serde_json::Value>(&key)?.is_some() {
                return Err(Error::Contention);
            }
            tx.put(key, session);
            if let Some(employee) = session.employee {
                tx.put(keys::employee_session(employee, &digest(&token)), &true);
            }
            Ok(token)
        })
    }

    /// Issues a one-time sign-in link's code for an employee. The employee's sessions end and
    /// a link issued before is spent.
    pub fn issue_sign_in(&self, id: EmployeeId) -> Result<(String, DateTime<Utc>), Error> {
        let expires_at = self.clock.now() + Duration::hours(SIGN_IN_LINK_HOURS);
        let sessions = self.sessions_of(id)?;
        transact(self.store, |tx| {
            let mut employee: Employee = tx
                .get(&keys::employee(id))?
                .ok_or(Error::EmployeeNotFound)?;
            if let Some(old) = employee.sign_in_sha256.take() {
                tx.delete(keys::sign_in(&old));
            }
            for key in &sessions {
                end_session_in(tx, key, id);
            }
            let code = fresh_secret();
            let key = keys::sign_in(&digest(&code));
            if tx.get::<serde_json::Value>(&key)?.is_some() {
                return Err(Error::Contention);
            }
            tx.put(
                key,
                &SignIn {
                    employee: id,
                    expires_at,
                },
            );
            employee.sign_in_sha256 = Some(digest(&code));
            tx.put(keys::employee(id), &employee);
            Ok((code, expires_at))
        })
    }

    /// Spends a sign-in link's code and starts the employee's session: their id and the
    /// session's token. `None`: no such link, or it was used or has expired.
    pub fn redeem_sign_in(&self, code: &str) -> Result<Option<(EmployeeId, String)>, Error> {
        let now = self.clock.now();
        let code_sha256 = digest(code);
        let token = fresh_secret();
        transact(self.store, |tx| {
            let key = keys::sign_in(&code_sha256);
            let Some(link) = tx.get::<SignIn>(&key)? else {
                return Ok(None);
            };
            tx.delete(key);
            let Some(mut employee) = tx.get::<Employee>(&keys::employee(link.employee))? else {
                return Ok(None);
            };
            employee.sign_in_sha256 = None;
            tx.put(keys::employee(employee.id), &employee);
            if link.expires_at <= now {
                return Ok(None);
            }
            let session = Session {
                employee: Some(employee.id),
                admin_sha256: None,
                expires_at: now + Duration::days(SESSION_DAYS),
            };
            tx.put(keys::session(&digest(&token)), &session);
            tx.put(keys::employee_session(employee.id, &digest(&token)), &true);
            Ok(Some((employee.id, token.clone())))
        })
    }

    /// Who a session token belongs to, if the session is still on. `admin_sha256` is the
    /// SHA-256 of the admin token in force (none: admin sessions are off).
    pub fn session(
        &self,
        token: &str,
        admin_sha256: Option<&str>,
    ) -> Result<Option<Subject>, Error> {
        let Some(session) = read::<Session>(self.store, &keys::session(&digest(token)))? else {
            return Ok(None);
        };
        if session.expires_at <= self.clock.now() {
            return Ok(None);
        }
        Ok(match (session.employee, session.admin_sha256) {
            (Some(employee), _) => Some(Subject::Employee(employee)),
            (None, Some(admin)) if admin_sha256 == Some(admin.as_str()) => Some(Subject::Admin),
            _ => None,
        })
    }

    /// Ends the session of `token` («Выйти»).
    pub fn end_session(&self, token: &str) -> Result<(), Error> {
        let key = keys::session(&digest(token));
        transact(self.store, |tx| {
            if let Some(session) = tx.get::<Session>(&key)? {
                tx.delete(key.clone());
                if let Some(employee) = session.employee {
                    tx.delete(keys::employee_session(employee, &digest(token)));
                }
            }
            Ok(())
        })
    }

    /// Removes an employee: their tokens, link and sessions stop working, and they leave the
    /// open lines (their open dialogs, as when they are taken off the settings' list).
    pub fn remove_employee(&self, id: EmployeeId) -> Result<(), Error> {
        let now = self.clock.now();
        let sessions = self.sessions_of(id)?;
        transact(self.store, |tx| {
            let employee: Employee = tx
                .get(&keys::employee(id))?
                .ok_or(Error::EmployeeNotFound)?;
            for key in &sessions {
                end_session_in(tx, key, id);
            }
            if let Some(link) = &employee.sign_in_sha256 {
                tx.delete(keys::sign_in(link));
            }
            tx.delete(keys::token(&employee.token_sha256));
            tx.delete(keys::employee(id));
            let mut settings = crate::settings::Settings::stored(tx)?;
            if settings.is_listed(id) {
                settings.employees.retain(|e| *e != id);
                crate::dialog::release(self.store, tx, id, now)?;
                tx.put(keys::SETTINGS, &settings);
            }
            Ok(())
        })
    }

    /// The keys of an employee's session index.
    fn sessions_of(&self, id: EmployeeId) -> Result<Vec<String>, Error> {
        let prefix = keys::employee_sessions(id);
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = scan::<bool>(self.store, &prefix, after.as_deref(), 500)?;
            let Some((last, _)) = page.last() else {
                return Ok(all);
            };
            after = Some(last.clone());
            all.extend(page.into_iter().map(|(key, _)| key));
        }
    }
}

/// Ends the session whose index entry is `index_key` (under the employee's prefix).
fn end_session_in(tx: &mut crate::tx::Tx<'_>, index_key: &str, employee: EmployeeId) {
    let session_sha256 = &index_key[keys::employee_sessions(employee).len()..];
    tx.delete(keys::session(session_sha256));
    tx.delete(index_key.to_owned());
}
