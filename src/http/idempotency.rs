//! `Idempotency-Key` on write requests: the same key and body from the same API key within
//! 24 hours get the first answer back and start nothing new; the same key with another body
//! is refused (90409). Only successful answers are kept, so a failed request may be retried.
//! `POST /v2/apiKeys` is left out: its answer holds a secret, which is never stored.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::Error;
use crate::store::IdempotencyClaim;

pub const HEADER: &str = "idempotency-key";
const WINDOW_HOURS: i64 = 24;
const MAX_KEY_LEN: usize = 255;

/// A request body as the same-request check compares it: parsed JSON, written back with
/// object keys sorted, so spacing and key order do not make two equal requests differ;
/// a body that is not JSON as sent.
fn canonical_body(bytes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => serde_json::to_vec(&sorted(value)).expect("JSON serializes"),
        Err(_) => bytes.to_vec(),
    }
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if req.method() != Method::POST || route == "/v2/apiKeys" {
        return next.run(req).await;
    }
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_owned(),
        _ => {
            return Error::invalid(format!(
                "header Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response()
        }
    };
    // Scope by the caller's key, as its hash (the same digest the keys table holds). A request
    // without a valid key is passed on and refused by the handler as usual.
    let Some(scope) = super::extract::bearer_secret(req.headers()).map(crate::crypto::hash_api_key)
    else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, state.config.server.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Error::PayloadTooLarge {
                limit: state.config.server.body_limit_bytes,
            }
            .into_response()
        }
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(parts.uri.path());
    hasher.update(canonical_body(&bytes));
    let request_hash = hex::encode(hasher.finalize());
    let now = Utc::now();
    let claim = state
        .store
        .claim_idempotency(
            &scope,
            &route,
            &key,
            &request_hash,
            now,
            now - chrono::Duration::hours(WINDOW_HOURS),
        )
        .await;
    match claim {
        Err(e) => return Error::from(e).into_response(),
        Ok(IdempotencyClaim::Mismatch) => {
            return Error::Conflict(format!(
                "Idempotency-Key '{key}' was already used with a different request; use a new key for a new request"
            ))
            .into_response()
        }
        Ok(IdempotencyClaim::InProgress) => {
            return Error::Conflict(format!(
                "a request with Idempotency-Key '{key}' is still running; retry when it has answered"
            ))
            .into_response()
        }
        Ok(IdempotencyClaim::Replay {
            status_code,
            response,
        }) => {
            let mut replay = (
                StatusCode::from_u16(status_code).unwrap_or(StatusCode::OK),
                [(header::CONTENT_TYPE, "application/json")],
                response,
            )
                .into_response();
            replay
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return replay;
        }
        Ok(IdempotencyClaim::Fresh) => {}
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if !status.is_success() {
        if let Err(e) = state.store.abandon_idempotency(&scope, &route, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => return Error::internal(e).into_response(),
    };
    let text = String::from_utf8_lossy(&bytes);
    if let Err(e) = state
        .store
        .complete_idempotency(&scope, &route, &key, status.as_u16(), &text)
        .await
    {
        tracing::warn!(error = %e, "could not record an idempotent answer");
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::canonical_body;

    #[test]
    fn equal_json_bodies_compare_equal_whatever_their_spacing_and_key_order() {
        let a = canonical_body(br#"{"backupType":"COLLECTION","dbCollections":[{"dbName":"d","collectionNames":["c"]}]}"#);
        let b = canonical_body(
            br#" { "dbCollections" : [ { "collectionNames": ["c"], "dbName": "d" } ],
                   "backupType": "COLLECTION" } "#,
        );
        assert_eq!(a, b);
        assert_ne!(a, canonical_body(br#"{"backupType":"CLUSTER"}"#));
        assert_ne!(
            canonical_body(br#"{"a":[1,2]}"#),
            canonical_body(br#"{"a":[2,1]}"#),
            "array order is meaning"
        );
        assert_eq!(canonical_body(b"not json"), b"not json".to_vec());
    }
}
