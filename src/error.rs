//! The one error type of the service: every failure a request can meet maps to one HTTP status,
//! one API code from `design/api.md`, and a message a user can act on. 5xx bodies are generic;
//! their detail goes to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed JSON, unknown field, or a value out of range. The message names the field.
    #[error("{0}")]
    InvalidInput(String),
    #[error("missing or unknown API key: send `Authorization: Bearer <API key>`")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    #[error("request body is larger than the limit of {limit} bytes; send a smaller body")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unprocessable(String),
    #[error(
        "rate limit exceeded for this API key on this route; retry after {retry_after_secs} s"
    )]
    RateLimited { retry_after_secs: u64 },
    /// A cluster (Milvus) or object storage did not answer. The message says which, never how
    /// it is reached with which credentials.
    #[error("{0}")]
    Upstream(String),
    /// The service itself cannot serve yet (readiness).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow_like::BoxError),
}

/// A tiny boxed error so `Internal` can carry any source without pulling in `anyhow`.
pub mod anyhow_like {
    pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
}

impl Error {
    pub fn internal(err: impl Into<anyhow_like::BoxError>) -> Self {
        Error::Internal(err.into())
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Error::NotFound(format!(
            "{what} '{id}' does not exist or is not visible to this API key"
        ))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The API code of `design/api.md`: 90000 + the HTTP status.
    pub fn code(&self) -> u32 {
        90_000 + u32::from(self.status().as_u16())
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::internal(err)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Error::Internal(source) = &self {
            tracing::error!(error = %source, detail = ?source, "internal error");
        } else if status.is_server_error() {
            tracing::warn!(error = %self, "upstream error");
        }
        let body = json!({ "code": self.code(), "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if let Error::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_http_status() {
        assert_eq!(Error::invalid("x").code(), 90400);
        assert_eq!(Error::Unauthenticated.code(), 90401);
        assert_eq!(Error::not_found("cluster", "c").code(), 90404);
        assert_eq!(Error::PayloadTooLarge { limit: 1 }.code(), 90413);
        assert_eq!(
            Error::RateLimited {
                retry_after_secs: 1
            }
            .code(),
            90429
        );
        assert_eq!(Error::Upstream("m".into()).code(), 90502);
        assert_eq!(Error::internal("boom").code(), 90500);
    }

    #[test]
    fn internal_errors_do_not_leak_their_source() {
        let err = Error::internal("password=hunter2");
        assert_eq!(err.to_string(), "internal error");
    }
}
