//! How a caller proves who they are over HTTP: a bearer token (scripts, a mobile client), or
//! the session cookie of a person signed in to the workspace. A cookie is sent by the
//! browser on its own, so it never authorizes a write another site asks for.

use crate::Request;

/// The session cookie's name.
const COOKIE: &str = "vk_session";

/// The bearer token of the request (the scheme's name in any case, RFC 7235).
pub fn bearer<'a>(request: &Request<'a>) -> Option<&'a str> {
    request
        .header("authorization")
        .map(str::trim)
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// The session token of the request's cookie.
pub fn session_cookie<'a>(request: &Request<'a>) -> Option<&'a str> {
    request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site` other than
/// `same-origin` (or `none`, typed by the person), or an `Origin` whose host is not the one
/// the request was sent to. A request without either is not a browser's cross-site one
/// (browsers send `Origin` with every write).
pub fn is_cross_site(request: &Request<'_>) -> bool {
    if let Some(site) = request.header("sec-fetch-site") {
        return !matches!(site.trim(), "same-origin" | "none");
    }
    match (request.header("origin"), request.header("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .split_once("://")
                .map_or(origin, |(_, rest)| rest)
                .trim_end_matches('/');
            !origin_host.eq_ignore_ascii_case(host.trim())
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The address people reach the product at: the configured public URL, or the scheme and
/// host the request came with.
pub fn base_url(request: &Request<'_>, public_url: Option<&str>) -> String {
    if let Some(url) = public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = match request.header("x-forwarded-proto").map(str::trim) {
        Some("https") => "https",
        _ => "http",
    };
    let host = request.header("host").unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `Set-Cookie` that starts a session (`Secure` when the product is reached over https).
pub fn start_cookie(token: &str, max_age_seconds: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn end_cookie(secure: bool) -> String {
    start_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn with<'a>(headers: &'a [(String, String)]) -> Request<'a> {
        Request {
            method: "POST",
            path: "/api/x",
            query: None,
            headers,
            body: b"",
        }
    }

    #[test]
    fn cross_site_is_told_by_fetch_metadata_or_origin() {
        let same = request(&[("Sec-Fetch-Site", "same-origin"), ("Origin", "http://evil")]);
        assert!(!is_cross_site(&with(&same)));
        let other = request(&[("sec-fetch-site", "cross-site")]);
        assert!(is_cross_site(&with(&other)));
        let origin = request(&[
            ("Origin", "http://127.0.0.1:8080"),
            ("Host", "127.0.0.1:8080"),
        ]);
        assert!(!is_cross_site(&with(&origin)));
        let foreign = request(&[("Origin", "https://evil.example"), ("Host", "crm.example")]);
        assert!(is_cross_site(&with(&foreign)));
        assert!(!is_cross_site(&with(&request(&[]))));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let headers = request(&[("Cookie", "theme=dark; vk_session=abc123; x=y")]);
        assert_eq!(session_cookie(&with(&headers)), Some("abc123"));
        let none = request(&[("Cookie", "vk_session=")]);
        assert_eq!(session_cookie(&with(&none)), None);
    }
}
