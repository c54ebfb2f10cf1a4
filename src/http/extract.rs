//! Extractors that turn axum's rejections into our envelope: 90400 naming the field for bad
//! JSON, query strings and paths; 90413 for an oversized body; and `Auth`, which authenticates
//! the bearer key and applies the per-key, per-route rate limit.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::Principal;
use crate::error::Error;

/// `Json<T>` with our rejections.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let limit = state.config.server.body_limit_bytes;
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::invalid(
                "request body must be JSON: send the header Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| Error::PayloadTooLarge { limit })?;
        // NUL is valid JSON (\u0000) but no name or value of the API holds one, and Postgres
        // refuses it in text: named here, never a database error later.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(at) = nul_in(&value, String::new()) {
                return Err(Error::invalid(format!(
                    "{at} contains a NUL character (\\u0000); remove it"
                )));
            }
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection, limit)),
        }
    }
}

/// The JSON path of the first string (or key) holding a NUL, if any.
fn nul_in(value: &serde_json::Value, at: String) -> Option<String> {
    let here = || {
        if at.is_empty() {
            "request body".to_owned()
        } else {
            at.clone()
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(here()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, format!("{}[{i}]", here()))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            if name.contains('\0') {
                return Some(here());
            }
            nul_in(field, path)
        }),
        _ => None,
    }
}

/// Path and query text may not carry a NUL (`%00`) either.
fn refuse_nul_in_uri(parts: &Parts, what: &str) -> Result<(), Error> {
    let text = match what {
        "path" => parts.uri.path(),
        _ => parts.uri.query().unwrap_or(""),
    };
    if text.to_ascii_lowercase().contains("%00") {
        return Err(Error::invalid(format!(
            "the {what} contains a NUL character (%00); remove it"
        )));
    }
    Ok(())
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::PayloadTooLarge { limit };
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::invalid(
            "request body must be JSON: send the header Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(e) => Error::invalid(format!(
            "invalid request body: {}",
            strip_axum_prefix(&e.body_text())
        )),
        JsonRejection::JsonSyntaxError(e) => Error::invalid(format!(
            "request body is not valid JSON: {}",
            strip_axum_prefix(&e.body_text())
        )),
        other => Error::invalid(format!("cannot read request body: {}", other.body_text())),
    }
}

/// axum's messages start with a generic sentence; keep the part that names the field.
fn strip_axum_prefix(text: &str) -> String {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .or_else(|| text.strip_prefix("Failed to deserialize query string: "))
        .unwrap_or(text);
    text.to_owned()
}

/// `Query<T>` with our rejections.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        refuse_nul_in_uri(parts, "query string")?;
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Error::invalid(format!(
                "invalid query string: {}",
                strip_axum_prefix(&e.body_text())
            ))),
            Err(other) => Err(Error::invalid(other.body_text())),
        }
    }
}

/// `Path<T>` with our rejections.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        refuse_nul_in_uri(parts, "path")?;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(Error::invalid(format!("invalid path: {}", e.body_text())))
            }
            Err(other) => Err(Error::internal(other.body_text())),
        }
    }
}

/// The API key a request carries: `Authorization: Bearer <key>` (the scheme in any case,
/// as RFC 9110 has it). The one parser of the credential, for authentication and the
/// idempotency scope alike.
pub fn bearer_secret(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// The authenticated caller. Extracting it authenticates the bearer key and takes one token
/// from the key's bucket for this route.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let secret = bearer_secret(&parts.headers).ok_or(Error::Unauthenticated)?;
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        let limited = |retry_after_secs| Error::RateLimited { retry_after_secs };
        if let Some(client) = &client {
            state
                .auth_failures
                .peek(client, "authentication")
                .map_err(limited)?;
        }
        let principal = match Principal::authenticate(&state.store, secret).await {
            Ok(principal) => principal,
            Err(Error::Unauthenticated) => {
                if let Some(client) = &client {
                    let _ = state.auth_failures.check(client, "authentication");
                }
                return Err(Error::Unauthenticated);
            }
            Err(e) => return Err(e),
        };
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let route = format!("{} {route}", parts.method);
        state
            .rate_limiter
            .check(&principal.key_id, &route)
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        tracing::Span::current().record("key_id", principal.key_id.as_str());
        Ok(Auth(principal))
    }
}

/// Page parameters shared by every list endpoint: `pageSize` 1–100 (default 10),
/// `currentPage` from 1.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    #[param(minimum = 1, maximum = 100, default = 10)]
    pub page_size: Option<u32>,
    #[param(minimum = 1, maximum = 2147483647, default = 1)]
    pub current_page: Option<u32>,
}

impl PageParams {
    pub fn page(self) -> Result<crate::store::Page, Error> {
        let page_size = self.page_size.unwrap_or(10);
        if !(1..=100).contains(&page_size) {
            return Err(Error::invalid(format!(
                "pageSize is {page_size}; use a value from 1 to 100"
            )));
        }
        let current_page = self.current_page.unwrap_or(1);
        if current_page == 0 || current_page > i32::MAX as u32 {
            return Err(Error::invalid(format!(
                "currentPage is {current_page}; pages are numbered from 1 to {}",
                i32::MAX
            )));
        }
        Ok(crate::store::Page {
            current_page,
            page_size,
        })
    }
}
