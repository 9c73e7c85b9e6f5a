//! The operator workspace's files: the page, its one script and style sheet, the icon and
//! the web app manifest, built into the component (nothing comes from elsewhere) and served
//! at `/`. The page is a client of the JSON API like any script; it holds no rule.
//!
//! Every page answer carries a Content-Security-Policy that allows scripts and styles from
//! this origin only (no inline script, so text from VK can never run), images from this
//! origin or https, and no framing; `nosniff`; no referrer (a sign-in link's code never
//! leaves in one). Files are revalidated by their ETag.

use vk_core::directory::digest;

use crate::{Answer, Request, Response, no_route};

/// A file of the workspace: where it is served, its type, its bytes.
struct File {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../web/index.html");

const FILES: [File; 6] = [
    File {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: INDEX,
    },
    File {
        path: "/sign-in",
        content_type: "text/html; charset=utf-8",
        bytes: INDEX,
    },
    File {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../web/app.js"),
    },
    File {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../web/app.css"),
    },
    File {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../web/icon.svg"),
    },
    File {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("../web/manifest.webmanifest"),
    },
];

/// What a page may load and do.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' https: data:; connect-src 'self'; manifest-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Whether `path` is a file of the workspace.
pub fn serves(path: &str) -> bool {
    FILES.iter().any(|file| file.path == path)
}

/// `GET` of a workspace file; `304` when the browser's copy is current.
pub fn page(request: &Request<'_>) -> Answer {
    let file = FILES
        .iter()
        .find(|file| file.path == request.path)
        .ok_or_else(no_route)?;
    let etag = format!("\"{}\"", &digest(file.bytes)[..16]);
    let headers = vec![
        (
            "content-security-policy",
            CONTENT_SECURITY_POLICY.to_owned(),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        ("cache-control", "no-cache".to_owned()),
    ];
    let answer = Response {
        status: 200,
        content_type: file.content_type,
        headers,
        body: file.bytes.to_vec(),
    };
    Ok(answer.tagged(request, etag))
}
