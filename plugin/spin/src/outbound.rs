//! vk-core's `Http` port over `wasi:http/outgoing-handler`, which Spin limits to the
//! manifest's `allowed_outbound_hosts`.
//!
//! It talks to the interface through the `wasi` crate (whose streams and pollables spin-sdk
//! itself uses) rather than through `spin_sdk::http::send`: `send` passes no request
//! options, so it cannot bound a call's time, and vk-core bounds a name lookup tightly so
//! that VK's callback is answered fast.

use vk_core::ports::{Http, HttpError, HttpRequest, HttpResponse};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest};
use wasi::http::types::{RequestOptions, Scheme};

use crate::wasi_io::{self, ReadError};

/// VK's answers are small; a larger one is refused rather than buffered.
const MAX_RESPONSE: usize = 4 << 20;

/// Outbound HTTP through the platform.
pub struct Outbound;

impl Http for Outbound {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let target = Target::parse(&request.url)
            .ok_or_else(|| HttpError::Denied("a URL that is not http(s)".to_owned()))?;
        let headers: Vec<(String, Vec<u8>)> = request
            .headers
            .into_iter()
            .map(|(name, value)| (name, value.into_bytes()))
            .collect();
        let headers = Fields::from_list(&headers)
            .map_err(|error| HttpError::Transport(format!("a header is refused: {error:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let method = if request.post {
            Method::Post
        } else {
            Method::Get
        };
        let valid = outgoing.set_method(&method).is_ok()
            && outgoing.set_scheme(Some(&target.scheme)).is_ok()
            && outgoing.set_authority(Some(&target.authority)).is_ok()
            && outgoing.set_path_with_query(Some(&target.path)).is_ok();
        if !valid {
            return Err(HttpError::Transport(format!(
                "{} is not a valid request target",
                target.origin()
            )));
        }
        let body = outgoing
            .body()
            .expect("a new request's body is free to take");
        let pending = outgoing_handler::handle(outgoing, Some(time_limits(request.timeout_ms)))
            .map_err(|code| classify(code, &target))?;
        // The body is written after the request is handed over: the host sends it as it is
        // written, so a body larger than the host's buffer cannot stall.
        let stream = body
            .write()
            .map_err(|()| HttpError::Transport("the request body cannot be written".to_owned()))?;
        let written = wasi_io::write_all(&stream, &request.body);
        drop(stream);
        written.map_err(HttpError::Transport)?;
        OutgoingBody::finish(body, None).map_err(|code| classify(code, &target))?;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(classify(code, &target)),
            Some(Err(())) | None => {
                return Err(HttpError::Transport("the response was lost".to_owned()));
            }
        };
        let status = response.status();
        let body = response
            .consume()
            .map_err(|()| HttpError::Transport("the response body cannot be read".to_owned()))?;
        let read = body
            .stream()
            .map_err(|()| ReadError::Failed("the response body cannot be read".to_owned()))
            .and_then(|stream| {
                let read = wasi_io::read_to_end(&stream, MAX_RESPONSE);
                drop(stream);
                read
            });
        drop(body);
        match read {
            Ok(body) => Ok(HttpResponse { status, body }),
            Err(ReadError::TooLarge) => Err(HttpError::TooLarge),
            Err(ReadError::Failed(why)) => Err(HttpError::Transport(why)),
        }
    }
}

/// The call's time limit, applied to each phase the interface can bound (connecting, the
/// first byte, each pause between bytes); a host that cannot honour one keeps its own.
fn time_limits(timeout_ms: u32) -> RequestOptions {
    let options = RequestOptions::new();
    let limit = Some(u64::from(timeout_ms) * 1_000_000);
    let _ = options.set_connect_timeout(limit);
    let _ = options.set_first_byte_timeout(limit);
    let _ = options.set_between_bytes_timeout(limit);
    options
}

fn classify(code: ErrorCode, target: &Target) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(target.origin()),
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout,
        ErrorCode::HttpResponseBodySize(_) => HttpError::TooLarge,
        other => HttpError::Transport(format!("{other:?}")),
    }
}

/// An http(s) URL split the way `wasi:http` takes it.
struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Option<Target> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return None,
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Some(Target {
            scheme,
            authority: authority.to_owned(),
            path,
        })
    }

    /// `scheme://authority`, as the allow-list names it.
    fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            _ => "http",
        };
        format!("{scheme}://{}", self.authority)
    }
}
