//! Settings of the integration ("Как настроить интеграцию с VK сообществом", §10).
//!
//! The access key and the secret are write-only: nothing here returns them, only a mask.

use serde::{Deserialize, Serialize};

use crate::Core;
use crate::error::Error;
use crate::ids::EmployeeId;
use crate::keys;
use crate::tx::{Tx, read, transact};

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "5.199";
/// The lead source used until the admin names the community.
pub const DEFAULT_GROUP_NAME: &str = "VK";

/// The stored settings. Not `Debug`: it holds secrets, and a debug print is how secrets leak
/// into logs.
#[derive(Clone, Serialize, Deserialize)]
pub struct Settings {
    pub(crate) access_token: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) confirmation: Option<String>,
    pub(crate) group_name: String,
    pub(crate) api_version: String,
    pub(crate) employees: Vec<EmployeeId>,
    pub(crate) group_id: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            access_token: None,
            secret: None,
            confirmation: None,
            group_name: DEFAULT_GROUP_NAME.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            employees: Vec::new(),
            group_id: None,
        }
    }
}

impl Settings {
    /// Refuses an employee who may not work in the open lines.
    pub(crate) fn require_listed(&self, employee: EmployeeId) -> Result<(), Error> {
        if self.is_listed(employee) {
            Ok(())
        } else {
            Err(Error::EmployeeNotListed(employee.to_string()))
        }
    }

    pub(crate) fn is_listed(&self, employee: EmployeeId) -> bool {
        self.employees.contains(&employee)
    }

    /// The settings as stored, without what the platform fixes.
    pub(crate) fn stored(tx: &mut Tx<'_>) -> Result<Settings, Error> {
        Ok(tx.get(keys::SETTINGS)?.unwrap_or_default())
    }

    fn overlay(mut self, fixed: Option<&SettingsUpdate>) -> Settings {
        if let Some(fixed) = fixed {
            self.apply(&Change {
                access_token: fixed.access_token.clone().map(Some),
                secret: fixed.secret.clone().map(Some),
                confirmation: fixed.confirmation.clone().map(Some),
                group_name: fixed.group_name.clone(),
                api_version: fixed.api_version.clone(),
                employees: fixed.employees.clone(),
            });
        }
        self
    }

    fn apply(&mut self, change: &Change) {
        if let Some(value) = &change.access_token {
            self.access_token.clone_from(value);
        }
        if let Some(value) = &change.secret {
            self.secret.clone_from(value);
        }
        if let Some(value) = &change.confirmation {
            self.confirmation.clone_from(value);
        }
        if let Some(value) = &change.group_name {
            self.group_name.clone_from(value);
        }
        if let Some(value) = &change.api_version {
            self.api_version.clone_from(value);
        }
        if let Some(value) = &change.employees {
            self.employees.clone_from(value);
        }
    }

    fn view(&self) -> SettingsView {
        SettingsView {
            access_token: self.access_token.as_deref().map(mask),
            secret: self.secret.as_ref().map(|_| SECRET_MASK.to_owned()),
            confirmation: self.confirmation.clone(),
            group_name: self.group_name.clone(),
            api_version: self.api_version.clone(),
            employees: self.employees.clone(),
            group_id: self.group_id,
            fixed_by_platform: Vec::new(),
        }
    }
}

/// Settings as every read path shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsView {
    /// Masked.
    pub access_token: Option<String>,
    /// Masked.
    pub secret: Option<String>,
    pub confirmation: Option<String>,
    pub group_name: String,
    pub api_version: String,
    pub employees: Vec<EmployeeId>,
    pub group_id: Option<i64>,
    /// The fields the platform fixes (e.g. Spin variables): read-only here.
    pub fixed_by_platform: Vec<&'static str>,
}

/// A validated change: `None` keeps a field, `Some(None)` clears an optional one.
struct Change {
    access_token: Option<Option<String>>,
    secret: Option<Option<String>>,
    confirmation: Option<Option<String>>,
    group_name: Option<String>,
    api_version: Option<String>,
    employees: Option<Vec<EmployeeId>>,
}

/// A change of settings; `None` keeps a field. An empty access key, secret or confirmation
/// string removes it.
#[derive(Default, Clone)]
pub struct SettingsUpdate {
    pub access_token: Option<String>,
    pub secret: Option<String>,
    pub confirmation: Option<String>,
    pub group_name: Option<String>,
    pub api_version: Option<String>,
    pub employees: Option<Vec<EmployeeId>>,
}

impl SettingsUpdate {
    /// Which fields this update sets, by name.
    fn fields(&self) -> [(&'static str, bool); 6] {
        [
            ("access_token", self.access_token.is_some()),
            ("secret", self.secret.is_some()),
            ("confirmation", self.confirmation.is_some()),
            ("group_name", self.group_name.is_some()),
            ("api_version", self.api_version.is_some()),
            ("employees", self.employees.is_some()),
        ]
    }
}

impl Core<'_> {
    /// The settings in force, inside a transaction.
    pub(crate) fn settings_in(&self, tx: &mut Tx<'_>) -> Result<Settings, Error> {
        Ok(Settings::stored(tx)?.overlay(self.platform))
    }

    /// The settings in force, read once.
    pub(crate) fn current_settings(&self) -> Result<Settings, Error> {
        let stored: Settings = read(self.store, keys::SETTINGS)?.unwrap_or_default();
        Ok(stored.overlay(self.platform))
    }

    /// Reads the settings, secrets masked.
    pub fn settings(&self) -> Result<SettingsView, Error> {
        let stored: Settings = read(self.store, keys::SETTINGS)?.unwrap_or_default();
        Ok(self.shown(stored))
    }

    /// Stored settings as every read path shows them: what the platform fixes wins and is
    /// named, the secrets are masked.
    fn shown(&self, stored: Settings) -> SettingsView {
        let mut view = stored.overlay(self.platform).view();
        if let Some(fixed) = self.platform {
            view.fixed_by_platform = fixed
                .fields()
                .into_iter()
                .filter(|(_, set)| *set)
                .map(|(name, _)| name)
                .collect();
        }
        view
    }

    /// Validates the whole update first, then applies it; an invalid field, or one the
    /// platform fixes, stores nothing.
    /// An employee taken off the list leaves their open dialogs (see `dialog::release`).
    pub fn put_settings(&self, update: SettingsUpdate) -> Result<SettingsView, Error> {
        let given = update.fields();
        let access_token = optional_text(update.access_token, "access_token", 512)?;
        let secret = optional_text(update.secret, "secret", 50)?;
        let confirmation = optional_text(update.confirmation, "confirmation", 100)?;
        let group_name = match update.group_name {
            Some(name) => Some(required_text(name, "group_name", 200)?),
            None => None,
        };
        if let Some(version) = &update.api_version {
            let valid = version
                .split_once('.')
                .is_some_and(|(major, minor)| is_number(major) && is_number(minor));
            if !valid {
                return Err(Error::invalid("api_version", "must look like 5.199"));
            }
        }
        self.refuse_fixed(given)?;
        let change = Change {
            access_token,
            secret,
            confirmation,
            group_name,
            api_version: update.api_version,
            employees: update.employees.map(|mut list| {
                let mut seen = std::collections::HashSet::new();
                list.retain(|e| seen.insert(*e));
                list
            }),
        };
        let now = self.clock.now();
        transact(self.store, |tx| {
            let mut settings = Settings::stored(tx)?;
            let listed = settings.employees.clone();
            settings.apply(&change);
            for removed in listed.iter().filter(|e| !settings.employees.contains(e)) {
                crate::dialog::release(self.store, tx, *removed, now)?;
            }
            tx.put(keys::SETTINGS, &settings);
            Ok(self.shown(settings))
        })
    }

    /// A field the platform fixes is refused, not silently outvoted on every read.
    fn refuse_fixed(&self, given: [(&'static str, bool); 6]) -> Result<(), Error> {
        let Some(fixed) = self.platform else {
            return Ok(());
        };
        match given
            .into_iter()
            .zip(fixed.fields())
            .find(|((_, changed), (_, fixed))| *changed && *fixed)
        {
            Some(((field, _), _)) => Err(Error::FixedByPlatform(field)),
            None => Ok(()),
        }
    }

    /// Forgets the community id; the next `confirmation` callback records a new one.
    pub fn reset_group_id(&self) -> Result<SettingsView, Error> {
        transact(self.store, |tx| {
            let mut settings = Settings::stored(tx)?;
            settings.group_id = None;
            tx.put(keys::SETTINGS, &settings);
            Ok(self.shown(settings))
        })
    }
}

/// What every read shows for the secret key: nothing of it. VK secret keys are short (at
/// most 50 characters), so even a few characters would give away too much.
const SECRET_MASK: &str = "****";

/// Shows the shape of the access key without revealing it: a long key keeps its first six
/// and last four characters (`vk1.a.****Ab3x`), a shorter one shows nothing.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 32 {
        return SECRET_MASK.to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `Some("")` clears (→ `Some(None)`); anything else is checked.
fn optional_text(
    value: Option<String>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<Option<String>>, Error> {
    match value {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(Some(None)),
        Some(text) => {
            if text.chars().count() > max_chars {
                return Err(Error::invalid(
                    field,
                    format!("is longer than {max_chars} characters"),
                ));
            }
            if text.chars().any(char::is_whitespace) {
                return Err(Error::invalid(field, "must not contain spaces"));
            }
            Ok(Some(Some(text)))
        }
    }
}

fn required_text(text: String, field: &'static str, max_chars: usize) -> Result<String, Error> {
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    Ok(text)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_show_only_their_ends_and_short_ones_nothing() {
        assert_eq!(
            mask("vk1.a.abcdefghijklmnopqrstuvwxyzAb3x"),
            "vk1.a.****Ab3x"
        );
        assert_eq!(mask("Qm9v-crm-7f3a91c2e4"), "****");
    }
}
