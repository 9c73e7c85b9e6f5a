//! Outbound HTTP for the plugin: a real client, an allow-list of origins, a time limit and a
//! response size cap. Request bodies (they carry the community's access key) are never
//! logged, and errors name the origin, never the body.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use vk_core::ports::{Http, HttpError, HttpRequest, HttpResponse};

use crate::database::Durability;

/// VK's API origin, as the plugin calls it.
pub const VK_ORIGIN: &str = "https://api.vk.com";

/// The client every call shares.
pub struct Outbound {
    agent: ureq::Agent,
    /// VK's API is reached here instead of `https://api.vk.com` (a stand-in, a proxy).
    vk_base: Option<String>,
    allowed: Vec<String>,
    max_timeout: Duration,
    max_response: u64,
    /// When set, a request waits until every commit decided before it is durable: what is
    /// sent may rest on them (a message sent because its ledger entry was written).
    durability: Option<Arc<Durability>>,
}

impl Outbound {
    /// `vk_base`, when given, replaces VK's origin and is allowed too.
    pub fn new(
        vk_base: Option<&str>,
        max_timeout: Duration,
        max_response: u64,
    ) -> anyhow::Result<Outbound> {
        let vk_base = vk_base.map(vk_api_base).transpose()?;
        let mut allowed = vec![VK_ORIGIN.to_owned()];
        if let Some(base) = &vk_base {
            allowed.extend(origin(base));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(max_timeout))
            .build()
            .into();
        Ok(Outbound {
            agent,
            vk_base,
            allowed,
            max_timeout,
            max_response,
            durability: None,
        })
    }

    /// Sends nothing before the commits it could rest on are durable.
    pub fn after_durable(self, durability: Option<Arc<Durability>>) -> Outbound {
        Outbound { durability, ..self }
    }

    fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = reroute(request.url, self.vk_base.as_deref());
        let origin = origin(&url)
            .ok_or_else(|| HttpError::Denied("a URL that is not http(s)".to_owned()))?;
        if !self.allowed.contains(&origin) {
            return Err(HttpError::Denied(origin));
        }
        if let Some(durability) = &self.durability {
            durability
                .wait(durability.mark())
                .map_err(|why| HttpError::Transport(format!("not sent: {why}")))?;
        }
        let timeout = Duration::from_millis(u64::from(request.timeout_ms)).min(self.max_timeout);
        // One builder for both methods (a GET simply sends its empty body).
        let builder = if request.post {
            self.agent.post(&url)
        } else {
            self.agent.get(&url).force_send_body()
        };
        let mut builder = builder.config().timeout_global(Some(timeout)).build();
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let outcome = builder.send(&request.body[..]);
        let mut response = outcome.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(self.max_response + 1)
            .read_to_end(&mut body)
            .map_err(|e| classify(ureq::Error::Io(e)))?;
        if body.len() as u64 > self.max_response {
            return Err(HttpError::TooLarge);
        }
        Ok(HttpResponse { status, body })
    }
}

fn classify(error: ureq::Error) -> HttpError {
    match error {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => HttpError::Timeout,
        other => HttpError::Transport(other.to_string()),
    }
}

/// `--vk-api-base` checked and without a trailing `/`, ready for [`reroute`].
pub(crate) fn vk_api_base(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    if origin(base).is_none() {
        anyhow::bail!("--vk-api-base must be an http(s) URL, got {base}");
    }
    Ok(base.to_owned())
}

/// `--public-url` checked and without a trailing `/`: an http(s) origin, optionally with a
/// path prefix.
pub fn public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/');
    if origin(url).is_none() || url.contains(['?', '#']) {
        anyhow::bail!(
            "--public-url must be an http(s) address such as https://crm.example.com, got {url}"
        );
    }
    Ok(url.to_owned())
}

/// Where a request for `url` goes: VK's origin is replaced by `vk_base` when one is set.
pub(crate) fn reroute(url: String, vk_base: Option<&str>) -> String {
    match (vk_base, url.strip_prefix(VK_ORIGIN)) {
        (Some(base), Some(rest)) => format!("{base}{rest}"),
        _ => url,
    }
}

/// `scheme://host[:port]` of an http(s) URL.
pub(crate) fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

impl Http for Outbound {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        off_the_executor(|| self.exchange(request))
    }
}

/// Runs `work`, which blocks its thread (waiting for the disk, then for VK), so that the
/// async executor's other tasks go on meanwhile when this thread is one of its workers (a
/// call running on the executor, see `App::on_executor`): the worker's queue is handed to
/// another thread for that long. Anywhere else it simply runs.
fn off_the_executor<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_origins_are_reached() {
        let out = Outbound::new(Some("http://127.0.0.1:9"), Duration::from_millis(200), 1024)
            .expect("valid");
        let request = |url: &str| HttpRequest {
            post: false,
            url: url.into(),
            headers: vec![],
            body: vec![],
            timeout_ms: 100,
        };
        assert_eq!(
            out.send(request("https://evil.example/method/x")),
            Err(HttpError::Denied("https://evil.example".into()))
        );
        assert_eq!(
            out.send(request("https://user@api.vk.com.evil/x")),
            Err(HttpError::Denied("a URL that is not http(s)".into()))
        );
        // VK's origin is routed to the stand-in address, which is allowed (and closed here).
        assert!(matches!(
            out.send(request("https://api.vk.com/method/users.get")),
            Err(HttpError::Transport(_))
        ));
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin("https://API.vk.com/method/x?y"),
            Some("https://api.vk.com".into())
        );
        assert_eq!(
            origin("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".into())
        );
        assert_eq!(origin("ftp://x"), None);
    }
}
