//! The host's employee directory: who is calling the operator API. Tokens are stored only
//! as SHA-256 hashes; the token itself is shown once, when the employee is created.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vk_core::ports::{Change, Store, StoreError, Write};

use crate::storage::Namespace;

/// An employee as the directory keeps them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Employee {
    pub id: String,
    pub name: String,
    token_sha256: String,
}

/// The directory, in the host's own key space.
pub struct Employees {
    store: Namespace,
}

fn employee_key(id: &str) -> String {
    format!("employee/{id}")
}

fn token_key(hash: &str) -> String {
    format!("token/{hash}")
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Employees {
    pub fn new(store: Namespace) -> Employees {
        Employees { store }
    }

    /// Creates an employee; returns them with their bearer token.
    pub fn create(&self, name: &str) -> Result<(Employee, String), StoreError> {
        let token = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let employee = Employee {
            id: Uuid::new_v4().to_string(),
            name: name.to_owned(),
            token_sha256: hash(&token),
        };
        let record = serde_json::to_vec(&employee).expect("an employee always serializes");
        let id = serde_json::to_vec(&employee.id).expect("a string always serializes");
        self.store.commit(vec![
            Write {
                key: employee_key(&employee.id),
                change: Change::Put(record),
                expect: Some(0),
            },
            Write {
                key: token_key(&employee.token_sha256),
                change: Change::Put(id),
                expect: Some(0),
            },
        ])?;
        Ok((employee, token))
    }

    /// The employee a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Result<Option<String>, StoreError> {
        let Some(entry) = self.store.get(&token_key(&hash(token)))? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&entry.value).ok())
    }

    pub fn exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(&employee_key(id))?.is_some())
    }

    /// Every employee, by id.
    pub fn list(&self) -> Result<Vec<Employee>, StoreError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.scan("employee/", after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            all.extend(
                page.iter()
                    .filter_map(|e| serde_json::from_slice::<Employee>(&e.value).ok()),
            );
        }
        Ok(all)
    }
}
