//! `vk-spin`: VK's callbacks served by a Spin HTTP component, for deployments that scale out
//! on Spin / SpinKube.
//!
//! Like `vk-plugin`, it holds no rule: the route is mapped onto [`Core::handle_callback`],
//! and vk-core's ports are implemented over what Spin gives a component:
//! - [`store::SqliteStore`]: `Store` over Spin SQLite (the `default` database), because its
//!   transactions give the atomic multi-key commit with version checks that vk-core's
//!   optimistic concurrency needs; Spin's key-value store has no compare-and-swap.
//! - [`outbound::Outbound`]: `Http` over `wasi:http/outgoing-handler`, limited by the
//!   manifest's `allowed_outbound_hosts`.
//! - [`platform_settings`]: the access key, the secret and the rest from Spin variables, so
//!   secrets live in the platform's secret store and are never written to the database.
//!
//! The component answers exactly like the reference host's callback route: `200` with the
//! confirmation string or `ok` as plain text; a refusal as `{"error": {"code", "message"}}`
//! with the status of its kind; `413` for a body over 1 MiB.

mod outbound;
mod store;
mod wasi_io;

use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use spin_sdk::http_component;
use vk_core::intake::CallbackReply;
use vk_core::ports::{StoreError, SystemClock};
use vk_core::settings::SettingsUpdate;
use vk_core::{CALLBACK_PATH, Core, Error, MAX_BODY};

/// What the component answers.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(text: String) -> Answer {
        Answer {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: text.into_bytes(),
        }
    }

    /// A refusal in the API's one error shape.
    fn error(status: u16, code: &str, message: &str) -> Answer {
        let body = vk_core::error_body(code, message);
        Answer {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }
}

/// Spin's entry point. Everything below blocks on WASI calls instead of using the SDK's
/// executor: the component does one thing at a time, and vk-core's ports are synchronous.
#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let answer = answer(request);
    let headers = Fields::from_list(&[(
        "content-type".to_owned(),
        answer.content_type.as_bytes().to_vec(),
    )])
    .expect("content-type is an allowed header");
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
    if answer.status == 200 {
        after_answer();
    }
}

/// Work that must not hold VK's `ok` up, done once the answer is out: names VK could not
/// give at intake. (The plugin's host does this from its outbox timer; a Spin app has none.)
fn after_answer() {
    let Ok(store) = store::SqliteStore::open_default() else {
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

/// Routes the request: the callback route takes `POST` only, and nothing else is served.
fn answer(request: IncomingRequest) -> Answer {
    let target = request.path_with_query().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    if path != CALLBACK_PATH {
        return Answer::error(404, "no-such-route", "no such route");
    }
    if request.method() != Method::Post {
        return Answer::error(
            405,
            "method-not-allowed",
            "the callback route takes POST only",
        );
    }
    let body = match request.consume() {
        Ok(body) => body,
        Err(()) => return Answer::error(400, "malformed-body", "the body cannot be read"),
    };
    let read = body
        .stream()
        .map_err(|()| wasi_io::ReadError::Failed("the body cannot be read".to_owned()))
        .and_then(|stream| {
            let read = wasi_io::read_to_end(&stream, MAX_BODY);
            drop(stream);
            read
        });
    drop(body);
    match read {
        Ok(bytes) => callback(&bytes),
        Err(wasi_io::ReadError::TooLarge) => Answer::error(
            413,
            "body-too-large",
            &format!("the body is larger than {MAX_BODY} bytes"),
        ),
        Err(wasi_io::ReadError::Failed(why)) => Answer::error(400, "malformed-body", &why),
    }
}

/// Hands the body to vk-core bound to Spin's ports and maps its answer.
fn callback(body: &[u8]) -> Answer {
    let store = match store::SqliteStore::open_default() {
        Ok(store) => store,
        Err(StoreError::Unavailable(why)) => return refusal(&Error::Storage(why)),
        Err(StoreError::Conflict) => return refusal(&Error::Contention),
    };
    let fixed = match platform_settings() {
        Ok(fixed) => fixed,
        Err(name) => {
            // A secret that cannot be read must not silently turn its check off.
            return Answer::error(
                503,
                "settings-unavailable",
                &format!("the Spin variable `{name}` cannot be read"),
            );
        }
    };
    let core = Core::new(&store, &outbound::Outbound, &SystemClock).with_platform_settings(&fixed);
    match core.handle_callback(body) {
        Ok(CallbackReply::Confirmation(text)) => Answer::text(text),
        Ok(CallbackReply::Ok) => Answer::text("ok".to_owned()),
        Err(error) => refusal(&error),
    }
}

/// The one mapping of a domain refusal to HTTP, as the reference host maps it.
fn refusal(error: &Error) -> Answer {
    Answer::error(error.kind().http_status(), error.code(), &error.to_string())
}

/// The settings Spin fixes, from the component's variables. An undefined or empty variable
/// leaves the field to the stored settings (or the integration's default); a variable the
/// platform fails to read is an error, named by the variable (never by its value).
fn platform_settings() -> Result<SettingsUpdate, &'static str> {
    let variable = |name: &'static str| match spin_sdk::variables::get(name) {
        Ok(value) => Ok(Some(value).filter(|value| !value.is_empty())),
        Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
        Err(_) => Err(name),
    };
    Ok(SettingsUpdate {
        access_token: variable("access_token")?,
        secret: variable("secret")?,
        confirmation: variable("confirmation")?,
        group_name: variable("group_name")?,
        api_version: variable("api_version")?,
        employees: None,
    })
}
