//! Outgoing `wasi:http` requests of a Spin component: allowed only to the origins of its
//! `allowed_outbound_hosts` (as Spin checks them: before anything is sent, refused with
//! `HTTP-request-denied`), with VK's origin routed to `--vk-api-base` exactly as the plugin's
//! requests are ([`crate::http::reroute`]), and the whole exchange bounded by what the call's
//! deadline leaves, less a margin to record the outcome (wasmtime's default is 600 s per
//! phase).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::http::{origin, reroute};

/// What a component's outgoing requests may do.
pub(super) struct Policy {
    /// `scheme://host[:port]` origins.
    pub(super) allowed: Vec<String>,
    /// Where VK's API is reached instead of `https://api.vk.com`.
    pub(super) vk_base: Option<String>,
    /// What is kept of a call's time after its last request to VK (see
    /// [`crate::plugin::Limits::outbound_margin`]).
    pub(super) margin: Duration,
}

impl Policy {
    /// Checks the request's origin and sends it where it must go.
    fn route(&self, request: &mut http::Request<WasiBody>) -> Result<(), Error> {
        let url = request.uri().to_string();
        let allowed = origin(&url).is_some_and(|o| self.allowed.contains(&o));
        if !allowed {
            return Err(Error::HttpRequestDenied);
        }
        let uri: http::Uri = reroute(url, self.vk_base.as_deref())
            .parse()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        if let Some(authority) = uri.authority() {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            request.headers_mut().insert(http::header::HOST, host);
        }
        *request.uri_mut() = uri;
        Ok(())
    }

    /// The guest's time limits, none longer than `left`.
    fn bound(asked: Option<RequestOptions>, left: Duration) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let cap = |phase: Option<Duration>| Some(phase.map_or(left, |p| p.min(left)));
        RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        }
    }
}

/// The hooks of one instance, whose call ends at `.1`.
pub(super) struct Hooks(pub(super) Arc<Policy>, pub(super) Instant);

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                )>,
            > + Send,
    > {
        let routed = self.0.route(&mut request);
        let left = self
            .1
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.0.margin);
        let options = Policy::bound(options, left);
        Box::new(async move {
            routed?;
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) = tokio::time::timeout(left, sent)
                .await
                .map_err(|_| Error::ConnectionReadTimeout)??;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
