//! `vk-spin`: the product served by a Spin HTTP component, for deployments that scale out
//! on Spin / SpinKube: VK's callbacks and the operator API, exactly as the plugin serves
//! them, because both hand every request to the same `vk-api`.
//!
//! Like `vk-plugin`, it holds no rule. It implements vk-core's ports over what Spin gives a
//! component:
//! - [`store`]: `Store` over Spin SQLite (the `default` database) with vk-core's
//!   `sql::SqliteStore`, because its transactions give the atomic multi-key commit with
//!   version checks that vk-core's optimistic concurrency needs; Spin's key-value store has
//!   no compare-and-swap.
//! - [`outbound::Outbound`]: `Http` over `wasi:http/outgoing-handler`, limited by the
//!   manifest's `allowed_outbound_hosts`.
//! - [`platform_settings`]: the access key, the secret and the rest from Spin variables, so
//!   secrets live in the platform's secret store and are never written to the database.
//!   The admin token of the operator API is the `admin_token` variable.

mod outbound;
mod store;
mod wasi_io;

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use vk_api::Response;
use vk_core::ports::{StoreError, SystemClock};
use vk_core::settings::SettingsUpdate;
use vk_core::{CALLBACK_PATH, Core, Error, MAX_BODY};

/// Spin's entry point. Everything below blocks on WASI calls instead of using the SDK's
/// executor: the component does one thing at a time, and vk-core's ports are synchronous.
#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let (answer, path) = answer(request);
    let mut list = vec![(
        "content-type".to_owned(),
        answer.content_type.as_bytes().to_vec(),
    )];
    list.extend(
        answer
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec())),
    );
    let headers = Fields::from_list(&list).expect("the component sends only allowed headers");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(answer.status)
        .expect("the component answers valid status codes");
    let body = response.body().expect("a new response's body is free");
    response_out.set(response);
    let written = body
        .write()
        .map_err(|()| "the response body cannot be written".to_owned())
        .and_then(|stream| {
            let written = wasi_io::write_all(&stream, &answer.body);
            drop(stream);
            written
        });
    match written {
        Ok(()) => {
            if let Err(error) = OutgoingBody::finish(body, None) {
                eprintln!("vk-spin: the response could not be finished: {error}");
            }
        }
        Err(why) => eprintln!("vk-spin: the response could not be sent: {why}"),
    }
    if path == CALLBACK_PATH && answer.status == 200 {
        after_answer();
    }
}

/// Work that must not hold VK's `ok` up, done once the answer is out: names VK could not
/// give at intake. (The plugin's host does this from its outbox timer; a Spin app has none.)
fn after_answer() {
    let Ok(store) = store::open_default() else {
        return;
    };
    let Ok(fixed) = platform_settings() else {
        return;
    };
    let core = Core::new(&store, &outbound::Outbound, &SystemClock).with_platform_settings(&fixed);
    if let Err(error) = core.fill_pending_names() {
        eprintln!("vk-spin: names could not be filled in: {}", error.code());
    }
}

/// Reads the request and hands it to `vk-api`; returns the answer and the request's path.
fn answer(request: IncomingRequest) -> (Response, String) {
    let target = request.path_with_query().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target, None),
    };
    let method = request.method().to_string();
    let mut headers: Vec<(String, String)> = request
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(name, value)| Some((name, String::from_utf8(value).ok()?)))
        .collect();
    // wasi:http carries the request's host as its authority, not as a `host` header.
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        && let Some(authority) = request.authority()
    {
        headers.push(("host".to_owned(), authority));
    }
    let body = match read_body(request) {
        Ok(body) => body,
        Err(refusal) => return (refusal, path),
    };
    let answer = serve(&vk_api::Request {
        method: &method,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        body: &body,
    });
    (answer, path)
}

/// The whole body, or the refusal to answer (more than [`MAX_BODY`] bytes is `413`).
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, Response> {
    let body = request.consume().map_err(|()| Response::unreadable())?;
    let read = body
        .stream()
        .map_err(|()| wasi_io::ReadError::Failed("no body stream".to_owned()))
        .and_then(|stream| {
            let read = wasi_io::read_to_end(&stream, MAX_BODY);
            drop(stream);
            read
        });
    drop(body);
    read.map_err(|error| match error {
        wasi_io::ReadError::TooLarge => Response::too_large(),
        wasi_io::ReadError::Failed(_) => Response::unreadable(),
    })
}

/// Serves the request with vk-core bound to Spin's ports.
fn serve(request: &vk_api::Request<'_>) -> Response {
    let store = match store::open_default() {
        Ok(store) => store,
        Err(StoreError::Unavailable(why)) => return Response::from_error(&Error::Storage(why)),
        Err(StoreError::Conflict) => return Response::from_error(&Error::Contention),
    };
    // The admin token and the public address are read for the operator API only: a secrets
    // provider failing on them must not refuse VK's callbacks.
    let variables = platform_settings().and_then(|fixed| {
        let (admin_token, public_url) = if request.path.starts_with("/api/") {
            (variable("admin_token")?, variable("public_url")?)
        } else {
            (None, None)
        };
        Ok((fixed, admin_token, public_url))
    });
    let (fixed, admin_token, public_url) = match variables {
        Ok(read) => read,
        Err(name) => {
            // A secret that cannot be read must not silently turn its check off.
            return Response::error(
                503,
                "settings-unavailable",
                &format!("the Spin variable `{name}` cannot be read"),
            );
        }
    };
    let core = Core::new(&store, &outbound::Outbound, &SystemClock).with_platform_settings(&fixed);
    let config = vk_api::Config {
        admin_token: admin_token.as_deref(),
        public_url: public_url.as_deref(),
    };
    vk_api::handle(&core, &config, request)
}

/// A Spin variable: `None` when undefined or empty; an error (named by the variable, never
/// by its value) when the platform fails to read it.
fn variable(name: &'static str) -> Result<Option<String>, &'static str> {
    match spin_sdk::variables::get(name) {
        Ok(value) => Ok(Some(value).filter(|value| !value.is_empty())),
        Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
        Err(_) => Err(name),
    }
}

/// The settings Spin fixes, from the component's variables. An undefined or empty variable
/// leaves the field to the stored settings (or the integration's default).
fn platform_settings() -> Result<SettingsUpdate, &'static str> {
    Ok(SettingsUpdate {
        access_token: variable("access_token")?,
        secret: variable("secret")?,
        confirmation: variable("confirmation")?,
        group_name: variable("group_name")?,
        api_version: variable("api_version")?,
        employees: None,
    })
}
