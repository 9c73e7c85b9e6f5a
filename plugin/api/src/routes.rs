//! The route table: every route of the HTTP API, who may call it, and the handler it runs.
//!
//! The router ([`find`]) reads nothing but this table, so the table is the API: the OpenAPI
//! document (`docs/openapi.json`) and the authorization matrix of the end-to-end tests are
//! checked against it. A path that matches a route's pattern under another method is `405`;
//! a path no pattern matches is `404`.

use vk_core::CALLBACK_PATH;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication: VK's callback (checked by the community's secret instead), the
    /// sign-in (checked by the token it is given) and the API's own description, which holds
    /// no data.
    Public,
    /// Any authenticated caller: the admin or an employee.
    Anyone,
    /// An employee (the admin token is refused with `403 not-an-employee`).
    Employee,
    /// The admin only (an employee is refused with `403 admin-only`).
    Admin,
}

/// What a route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Callback,
    OpenApi,
    SignIn,
    SignOut,
    Me,
    CreateEmployee,
    ListEmployees,
    RemoveEmployee,
    SignInLink,
    GetSettings,
    PutSettings,
    ResetGroupId,
    Flush,
    ListDialogs,
    DialogCounts,
    GetDialog,
    ListMessages,
    SendMessage,
    History,
    Command(&'static str),
    MarkRead,
    GetLead,
    AddItem,
    SetQuantity,
    RemoveItem,
    Convert,
    RestoreFromLead,
    GetCounterparty,
    GetOrder,
    ListLeads,
    ListCounterparties,
    ListOrders,
    ChannelState,
    Changes,
}

/// One route: a method, a path pattern (`{name}` stands for one non-empty segment), who may
/// call it, and what it runs.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub(crate) op: Op,
}

const fn route(method: &'static str, path: &'static str, access: Access, op: Op) -> Route {
    Route {
        method,
        path,
        access,
        op,
    }
}

use Access::{Admin, Anyone, Employee, Public};

/// Where the API's OpenAPI document is served (it does not list itself).
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// Every route. Where two patterns match one path, the first wins (`/api/dialogs/counts`
/// before `/api/dialogs/{id}`).
pub const ROUTES: &[Route] = &[
    route("POST", CALLBACK_PATH, Public, Op::Callback),
    route("GET", OPENAPI_PATH, Public, Op::OpenApi),
    route("POST", "/api/sessions", Public, Op::SignIn),
    route("DELETE", "/api/sessions/current", Anyone, Op::SignOut),
    route("GET", "/api/me", Anyone, Op::Me),
    route("POST", "/api/employees", Admin, Op::CreateEmployee),
    route("GET", "/api/employees", Anyone, Op::ListEmployees),
    route("DELETE", "/api/employees/{id}", Admin, Op::RemoveEmployee),
    route(
        "POST",
        "/api/employees/{id}/sign-in-link",
        Admin,
        Op::SignInLink,
    ),
    route("GET", "/api/settings", Admin, Op::GetSettings),
    route("PUT", "/api/settings", Admin, Op::PutSettings),
    route("DELETE", "/api/settings/group-id", Admin, Op::ResetGroupId),
    route("POST", "/api/outbox/flush", Admin, Op::Flush),
    route("GET", "/api/dialogs", Anyone, Op::ListDialogs),
    route("GET", "/api/dialogs/counts", Anyone, Op::DialogCounts),
    route("GET", "/api/dialogs/{id}", Anyone, Op::GetDialog),
    route(
        "GET",
        "/api/dialogs/{id}/messages",
        Anyone,
        Op::ListMessages,
    ),
    route(
        "POST",
        "/api/dialogs/{id}/messages",
        Employee,
        Op::SendMessage,
    ),
    route("GET", "/api/dialogs/{id}/history", Anyone, Op::History),
    route(
        "POST",
        "/api/dialogs/{id}/claim",
        Employee,
        Op::Command("claim"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/invite",
        Employee,
        Op::Command("invite"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/leave",
        Employee,
        Op::Command("leave"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/delegate",
        Employee,
        Op::Command("delegate"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/spam",
        Employee,
        Op::Command("spam"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/finish",
        Employee,
        Op::Command("finish"),
    ),
    route(
        "POST",
        "/api/dialogs/{id}/restore",
        Employee,
        Op::Command("restore"),
    ),
    route("POST", "/api/dialogs/{id}/read", Employee, Op::MarkRead),
    route("GET", "/api/leads", Anyone, Op::ListLeads),
    route("GET", "/api/leads/{id}", Anyone, Op::GetLead),
    route("POST", "/api/leads/{id}/items", Employee, Op::AddItem),
    route(
        "PATCH",
        "/api/leads/{id}/items/{item}",
        Employee,
        Op::SetQuantity,
    ),
    route(
        "DELETE",
        "/api/leads/{id}/items/{item}",
        Employee,
        Op::RemoveItem,
    ),
    route("POST", "/api/leads/{id}/convert", Employee, Op::Convert),
    route(
        "POST",
        "/api/leads/{id}/restore-dialog",
        Employee,
        Op::RestoreFromLead,
    ),
    route("GET", "/api/counterparties", Anyone, Op::ListCounterparties),
    route(
        "GET",
        "/api/counterparties/{id}",
        Anyone,
        Op::GetCounterparty,
    ),
    route("GET", "/api/orders", Anyone, Op::ListOrders),
    route("GET", "/api/orders/{id}", Anyone, Op::GetOrder),
    route("GET", "/api/channel", Admin, Op::ChannelState),
    route("GET", "/api/changes", Anyone, Op::Changes),
];

/// What the table says of a request.
pub(crate) enum Found<'p> {
    /// The route, and the path's values of its `{…}` segments in order.
    Route(&'static Route, Vec<&'p str>),
    /// The path is a route's, but not with this method: the methods it takes.
    OtherMethod(Vec<&'static str>),
    NoRoute,
}

/// The route of `method` and `path` (`HEAD` is looked up as `GET` by the caller).
pub(crate) fn find<'p>(method: &str, path: &'p str) -> Found<'p> {
    let mut methods = Vec::new();
    for route in ROUTES {
        if let Some(values) = matches(route.path, path) {
            if route.method == method {
                return Found::Route(route, values);
            }
            if !methods.contains(&route.method) {
                methods.push(route.method);
            }
        }
    }
    if methods.is_empty() {
        Found::NoRoute
    } else {
        Found::OtherMethod(methods)
    }
}

/// The values of the pattern's `{…}` segments when `path` matches `pattern`.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut values = Vec::new();
    let mut given = path.split('/');
    for wanted in pattern.split('/') {
        let segment = given.next()?;
        if wanted.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            values.push(segment);
        } else if wanted != segment {
            return None;
        }
    }
    given.next().is_none().then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_placeholders_and_empty_segments_match_nothing() {
        assert!(matches!(
            find("GET", "/api/dialogs/counts"),
            Found::Route(route, values) if route.op == Op::DialogCounts && values.is_empty()
        ));
        assert!(matches!(
            find("PATCH", "/api/leads/a/items/b"),
            Found::Route(route, values) if route.op == Op::SetQuantity && values == ["a", "b"]
        ));
        assert!(matches!(
            find("POST", "/api/dialogs/counts"),
            Found::OtherMethod(methods) if methods == ["GET"]
        ));
        assert!(matches!(
            find("GET", "/api/leads/a/items/b"),
            Found::OtherMethod(methods) if methods == ["PATCH", "DELETE"]
        ));
        for path in [
            "/api/dialogs/",
            "/api/dialogs//messages",
            "/api/me/",
            "/api",
        ] {
            assert!(matches!(find("GET", path), Found::NoRoute), "{path}");
        }
    }

    #[test]
    fn no_two_routes_share_a_method_and_a_pattern() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    a.method != b.method || a.path != b.path,
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}
