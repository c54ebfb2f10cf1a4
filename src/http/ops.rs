//! Operations endpoints, without auth: liveness, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use serde_json::json;

use super::AppState;
use crate::error::Error;

pub fn router(openapi: Arc<serde_json::Value>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/v2/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"code": 0, "data": {"status": "ok"}}))
}

/// Ready when the database and every region's storage answer.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, Error> {
    let mut problems = Vec::new();
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness: database not reachable");
        problems.push("database".to_owned());
    }
    let checks = join_all(
        state
            .regions
            .iter()
            .map(|region| async move { (region.info.id.clone(), region.storage.ping().await) }),
    )
    .await;
    for (region, result) in checks {
        if let Err(e) = result {
            tracing::warn!(region = %region, error = %e, "readiness: region storage not reachable");
            problems.push(format!("region {region} storage"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Unavailable(format!(
            "not ready: {} not reachable",
            problems.join(", ")
        )));
    }
    Ok(Json(json!({"code": 0, "data": {"status": "ready"}})))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
