//! The one error type of the domain: each variant names the rule that refused.

use std::fmt;

/// The class of a refusal, which each boundary maps once (to a WIT `error-kind`, to an HTTP
/// status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadInput,
    Forbidden,
    NotFound,
    Conflict,
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status of a refusal of this kind, the one mapping every HTTP shell uses.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::BadInput => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
        }
    }
}

/// A refusal. Whatever returns it has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The body is not JSON of the expected shape.
    MalformedBody(String),
    /// A field has a value the rules do not accept.
    InvalidField {
        field: &'static str,
        reason: String,
    },
    /// A callback's `secret` differs from the configured one.
    WrongSecret,
    /// A callback came for another community than the confirmed one.
    ForeignGroup,
    /// A callback other than `confirmation` arrived before any community was confirmed.
    GroupNotConfirmed,
    /// VK asks for confirmation but no confirmation string is configured.
    ConfirmationNotSet,
    /// The acting (or named) employee is not listed in the settings.
    EmployeeNotListed(String),
    /// Only the responsible employee may do this.
    NotResponsible,
    /// Only the dialog's participants may do this.
    NotAParticipant,
    /// The dialog already has a responsible employee.
    AlreadyClaimed,
    /// The command needs an open dialog.
    DialogNotOpen,
    /// Restore needs a dialog closed as spam or finished.
    DialogNotClosed,
    /// The person denied messages from the community.
    MessagesDenied,
    /// The delegate is already responsible.
    AlreadyResponsible,
    DialogNotFound,
    EmployeeNotFound,
    LeadNotFound,
    ItemNotFound,
    CounterpartyNotFound,
    OrderNotFound,
    /// A converted lead's goods are fixed.
    LeadConverted,
    /// The lead was converted before.
    AlreadyConverted {
        counterparty_id: String,
        order_id: String,
    },
    /// A lead without goods cannot become an order.
    NoItems,
    /// All goods of a lead share one currency.
    CurrencyMismatch {
        lead: String,
        item: String,
    },
    /// The platform fixes this setting (e.g. a Spin variable); it cannot be changed here.
    FixedByPlatform(&'static str),
    /// Storage failed.
    Storage(String),
    /// Too many concurrent writers; trying again will work.
    Contention,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        use Error::*;
        match self {
            MalformedBody(_) | InvalidField { .. } => ErrorKind::BadInput,
            WrongSecret | ForeignGroup | GroupNotConfirmed | EmployeeNotListed(_)
            | NotResponsible | NotAParticipant => ErrorKind::Forbidden,
            DialogNotFound | EmployeeNotFound | LeadNotFound | ItemNotFound
            | CounterpartyNotFound | OrderNotFound => ErrorKind::NotFound,
            ConfirmationNotSet
            | AlreadyClaimed
            | DialogNotOpen
            | DialogNotClosed
            | MessagesDenied
            | AlreadyResponsible
            | LeadConverted
            | AlreadyConverted { .. }
            | NoItems
            | CurrencyMismatch { .. }
            | FixedByPlatform(_) => ErrorKind::Conflict,
            Storage(_) | Contention => ErrorKind::Unavailable,
        }
    }

    /// The rule's name, kebab-case, stable: clients switch on it.
    pub fn code(&self) -> &'static str {
        use Error::*;
        match self {
            MalformedBody(_) => "malformed-body",
            InvalidField { .. } => "invalid-field",
            WrongSecret => "wrong-secret",
            ForeignGroup => "foreign-group",
            GroupNotConfirmed => "group-not-confirmed",
            ConfirmationNotSet => "confirmation-not-set",
            EmployeeNotListed(_) => "employee-not-listed",
            NotResponsible => "not-responsible",
            NotAParticipant => "not-a-participant",
            AlreadyClaimed => "already-claimed",
            DialogNotOpen => "dialog-not-open",
            DialogNotClosed => "dialog-not-closed",
            MessagesDenied => "messages-denied",
            AlreadyResponsible => "already-responsible",
            DialogNotFound => "dialog-not-found",
            EmployeeNotFound => "employee-not-found",
            LeadNotFound => "lead-not-found",
            ItemNotFound => "item-not-found",
            CounterpartyNotFound => "counterparty-not-found",
            OrderNotFound => "order-not-found",
            LeadConverted => "lead-converted",
            AlreadyConverted { .. } => "already-converted",
            NoItems => "no-items",
            CurrencyMismatch { .. } => "currency-mismatch",
            FixedByPlatform(_) => "fixed-by-platform",
            Storage(_) => "storage-unavailable",
            Contention => "busy",
        }
    }

    /// A field the rules do not accept.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            MalformedBody(why) => write!(f, "the body is not valid: {why}"),
            InvalidField { field, reason } => write!(f, "`{field}` {reason}"),
            WrongSecret => {
                f.write_str("the callback's secret does not match the configured secret key")
            }
            ForeignGroup => {
                f.write_str("the callback is for another community than the connected one")
            }
            GroupNotConfirmed => {
                f.write_str("no community is connected yet: VK must send `confirmation` first")
            }
            ConfirmationNotSet => {
                f.write_str("the confirmation string is not configured in the settings")
            }
            EmployeeNotListed(id) => {
                write!(f, "employee {id} is not listed in the integration settings")
            }
            NotResponsible => f.write_str("only the responsible employee may do this"),
            NotAParticipant => f.write_str("only the dialog's participants may do this"),
            AlreadyClaimed => f.write_str("the dialog already has a responsible employee"),
            DialogNotOpen => f.write_str("the dialog is not open"),
            DialogNotClosed => f.write_str("the dialog is neither closed as spam nor finished"),
            MessagesDenied => f.write_str("the person has denied messages from the community"),
            AlreadyResponsible => {
                f.write_str("that employee is already responsible for the dialog")
            }
            DialogNotFound => f.write_str("no such dialog"),
            EmployeeNotFound => f.write_str("no such employee"),
            LeadNotFound => f.write_str("no such lead"),
            ItemNotFound => f.write_str("no such item in this lead"),
            CounterpartyNotFound => f.write_str("no such counterparty"),
            OrderNotFound => f.write_str("no such order"),
            LeadConverted => f.write_str("the lead is converted; its goods can no longer change"),
            AlreadyConverted {
                counterparty_id,
                order_id,
            } => write!(
                f,
                "the lead was already converted into counterparty {counterparty_id} and order {order_id}"
            ),
            NoItems => f.write_str("the lead has no goods; add items before converting"),
            CurrencyMismatch { lead, item } => {
                write!(
                    f,
                    "the lead's goods are in {lead}; an item in {item} cannot join them"
                )
            }
            FixedByPlatform(field) => write!(
                f,
                "`{field}` is set by the platform (e.g. a Spin variable); change it there"
            ),
            Storage(why) => write!(f, "storage failed: {why}"),
            Contention => f.write_str("too many simultaneous changes; try again"),
        }
    }
}

impl std::error::Error for Error {}
