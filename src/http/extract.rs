//! Extractors that turn axum's rejections into our envelope: 90400 naming the field for bad
//! JSON, query strings and paths; 90413 for an oversized body; and `Auth`, which authenticates
//! the bearer key and applies the per-key, per-route rate limit.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(
                rejection,
                state.config.server.body_limit_bytes,
            )),
        }
    }
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
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(Error::invalid(format!("invalid path: {}", e.body_text())))
            }
            Err(other) => Err(Error::internal(other.body_text())),
        }
    }
}

/// The authenticated caller. Extracting it authenticates the bearer key and takes one token
/// from the key's bucket for this route.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(Error::Unauthenticated)?;
        let principal = Principal::authenticate(&state.store, secret).await?;
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
    pub page_size: Option<u32>,
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
        if current_page == 0 {
            return Err(Error::invalid("currentPage starts at 1"));
        }
        Ok(crate::store::Page {
            current_page,
            page_size,
        })
    }
}
