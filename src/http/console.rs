//! The web console: a static single-page app (plain HTML, CSS and ES modules, no build step)
//! embedded in the binary at compile time and served under `/console/`. It calls only the
//! public `/v2` API, with the API key the user pastes; the server gives it nothing else.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::error::Error;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("clusters.js", JS),
    asset!("backups.js", JS),
    asset!("restore.js", JS),
    asset!("policy.js", JS),
    asset!("jobs.js", JS),
    asset!("usage.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// One ETag per asset, in `ASSETS` order: the CRC32C of the embedded body, computed once.
/// Files are revalidated on every load (`no-cache`) so an upgrade shows at once; an
/// unchanged file costs a 304.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{:08x}\"", crc32c::crc32c(a.body.as_bytes())))
        .collect()
});

/// Everything the page loads comes from this origin; no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(|e| e.into_response())
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers).unwrap_or_else(|e| e.into_response())
}

fn serve(name: &str, request: &HeaderMap) -> Result<Response, Error> {
    let index = ASSETS.iter().position(|a| a.name == name).ok_or_else(|| {
        Error::NotFound(format!(
            "the console has no file '{name}'; open /console/ for the console"
        ))
    })?;
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.as_str()));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, etag);
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_pages_import_is_served() {
        // A module imported by another but missing from ASSETS would fail only in a browser.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines() {
                let Some(rest) = line.split(" from './").nth(1) else {
                    continue;
                };
                let imported = rest.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|a| a.name == imported),
                    "{} imports ./{imported}, which ASSETS does not serve",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn index_loads_only_served_files() {
        let index = ASSETS.iter().find(|a| a.name == "index.html").unwrap();
        for attr in ["src=\"", "href=\""] {
            for rest in index.body.split(attr).skip(1) {
                let target = rest.split('"').next().unwrap_or_default();
                if target.starts_with('#') {
                    continue;
                }
                let name = target.trim_start_matches("/console/");
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "index.html loads {target}, which ASSETS does not serve"
                );
            }
        }
    }
}
