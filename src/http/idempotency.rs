//! `Idempotency-Key` on write requests: the same key and body from the same API key within
//! 24 hours get the first answer back and start nothing new; the same key with another body
//! is refused (90409). Only successful answers are kept, so a failed request may be retried.
//! `POST /v2/apiKeys` is left out: its answer holds a secret, which is never stored.
//!
//! A request holds its key under a lease it renews while it runs. If the process dies (or the
//! client hangs up) mid-request, the lease lapses and the next request with that key takes it
//! over. The ids a keyed request creates derive from the key's seed (`domain::ids`), so the
//! takeover first looks for what the first run committed under those ids and answers from it
//! (`committed_answer`); only when nothing was committed does it run the work, once.

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::domain::ids::{self, IdKind};
use crate::error::Error;
use crate::store::{IdempotencyClaim, IdempotencyRequest, Store};

pub const HEADER: &str = "idempotency-key";
const WINDOW_HOURS: i64 = 24;
const MAX_KEY_LEN: usize = 255;
/// How long a running request holds its key without renewing; it renews every third of it.
const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

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
    let fresh_seed = ids::new_seed();
    let claim = state
        .store
        .claim_idempotency(
            &IdempotencyRequest {
                scope: &scope,
                route: &route,
                key: &key,
                request_hash: &request_hash,
                seed: &fresh_seed,
            },
            now,
            now - chrono::Duration::hours(WINDOW_HOURS),
            lease_end(now),
        )
        .await;
    let (seed, taken_over) = match claim {
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
            return replayed(
                StatusCode::from_u16(status_code).unwrap_or(StatusCode::OK),
                Body::from(response),
            )
        }
        Ok(IdempotencyClaim::Fresh { seed, taken_over }) => (seed, taken_over),
    };
    let _lease = LeaseRenewal::start(&state.store, &scope, &route, &key);
    let committed = if taken_over {
        match committed_answer(&state.store, &route, &seed).await {
            Ok(found) => found,
            Err(e) => return Error::from(e).into_response(),
        }
    } else {
        None
    };
    if let Some(answer) = committed {
        tracing::info!(route = %route, "an idempotent request that died mid-way had committed; answering from what it made");
        let text = serde_json::to_string(&answer).expect("JSON serializes");
        if let Err(e) = state
            .store
            .complete_idempotency(&scope, &route, &key, StatusCode::OK.as_u16(), &text)
            .await
        {
            tracing::warn!(error = %e, "could not record an idempotent answer");
        }
        return replayed(StatusCode::OK, Body::from(text));
    }
    let response = ids::with_seed(
        seed,
        next.run(Request::from_parts(parts, Body::from(bytes))),
    )
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

fn to_value<T: serde::Serialize>(answer: super::Envelope<T>) -> Value {
    serde_json::to_value(answer).expect("JSON serializes")
}

fn lease_end(now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now + chrono::Duration::from_std(LEASE).expect("lease fits")
}

fn replayed(status: StatusCode, body: Body) -> Response {
    let mut replay = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    replay
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    replay
}

/// Keeps a claimed key's lease alive while its request runs; stops when dropped, so a request
/// that ends in any way (answered, failed, dropped by a client hanging up) stops renewing.
struct LeaseRenewal(tokio::task::JoinHandle<()>);

impl LeaseRenewal {
    fn start(store: &Store, scope: &str, route: &str, key: &str) -> LeaseRenewal {
        let (store, scope, route, key) = (
            store.clone(),
            scope.to_owned(),
            route.to_owned(),
            key.to_owned(),
        );
        LeaseRenewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let until = lease_end(Utc::now());
                if let Err(e) = store.renew_idempotency(&scope, &route, &key, until).await {
                    tracing::warn!(error = %e, "could not renew an idempotency lease");
                }
            }
        }))
    }
}

impl Drop for LeaseRenewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer a request on `route` seeded with `seed` gave, rebuilt from what it committed
/// before its process died; `None` when it committed nothing (it is then run again). Routes
/// not listed create nothing under a derived id and are safe to run again as they are: a
/// policy update sets the same values, a cancel cancels once, a role is created by name.
async fn committed_answer(
    store: &Store,
    route: &str,
    seed: &str,
) -> crate::store::StoreResult<Option<Value>> {
    use super::{backups, clusters, ok, projects, restores};
    let job_id = ids::seeded_id(seed, IdKind::Job);
    let job = || store.get_job(&job_id);
    Ok(match route {
        "/v2/clusters/{clusterId}/backups/create" => match job().await? {
            Some(job) => match job.backup_id {
                Some(backup_id) => store.get_backup(&backup_id).await?.map(|backup| {
                    to_value(ok(backups::BackupCreated {
                        backup_id: backup.id,
                        backup_name: backup.name,
                        job_id: job.id,
                    }))
                }),
                None => None,
            },
            None => None,
        },
        "/v2/clusters/{clusterId}/backups/{backupId}/verify" => job()
            .await?
            .map(|job| to_value(ok(backups::VerifyStarted { job_id: job.id }))),
        "/v2/clusters/{clusterId}/backups/{backupId}/restoreCollection" => job()
            .await?
            .map(|job| to_value(ok(restores::RestoreStarted { job_id: job.id }))),
        "/v2/clusters/{clusterId}/backups/{backupId}/restoreCluster" => job().await?.map(|job| {
            to_value(ok(restores::ClusterRestoreStarted {
                cluster_id: job.cluster_id.unwrap_or_default(),
                job_id: job.id,
            }))
        }),
        "/v2/clusters" => store
            .get_cluster(&ids::seeded_id(seed, IdKind::Cluster))
            .await?
            .map(|cluster| {
                to_value(ok(clusters::ClusterCreated {
                    cluster_id: cluster.id,
                }))
            }),
        "/v2/projects" => store
            .get_project(&ids::seeded_id(seed, IdKind::Project))
            .await?
            .map(|project| {
                to_value(ok(projects::ProjectCreated {
                    project_id: project.id,
                }))
            }),
        _ => None,
    })
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
