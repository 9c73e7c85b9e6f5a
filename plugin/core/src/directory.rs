//! The employee directory of the operator HTTP API: who is calling. A host CRM that drives
//! the typed interfaces brings its own users; the HTTP API (served by the plugin's `api`
//! export and by the Spin component) keeps them here, next to the domain's records.
//!
//! A bearer token is shown once, when the employee is created; only its SHA-256 is stored.

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
}

/// SHA-256 of a secret, as lowercase hex: what is stored of a token, and how the admin
/// token is compared (equal digests take equal time whatever prefix matched).
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
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
            let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
            let employee = Employee {
                id: EmployeeId::new(),
                name: name.to_owned(),
                token_sha256: digest(&token),
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
}
