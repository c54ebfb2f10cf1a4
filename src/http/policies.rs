//! `GET|POST /v2/clusters/{clusterId}/backups/policy`: automatic backups of a cluster.
//! The rules are in `crate::service::policies`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiResult, AppState, Auth};
use crate::domain::access::Privilege;
use crate::service::policies::SetPolicy;
use crate::store::{CrossRegionCopy, Policy};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(describe_policy, set_policy))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    cluster_id: String,
    /// `ENABLED` or `DISABLED`.
    status: &'static str,
    frequency: Option<String>,
    start_time: Option<String>,
    retention_days: Option<i64>,
    cross_region_copies: Vec<CrossRegionCopy>,
}

fn view(cluster_id: String, policy: Option<Policy>) -> PolicyView {
    match policy {
        Some(p) => PolicyView {
            cluster_id,
            status: if p.enabled { "ENABLED" } else { "DISABLED" },
            frequency: Some(p.frequency.as_text()),
            start_time: Some(p.window.as_text()),
            retention_days: Some(p.retention_days.days()),
            cross_region_copies: p.cross_region_copies,
        },
        None => PolicyView {
            cluster_id,
            status: "DISABLED",
            frequency: None,
            start_time: None,
            retention_days: None,
            cross_region_copies: Vec::new(),
        },
    }
}

/// The cluster's automatic backup policy (`DISABLED` when none was set).
#[utoipa::path(get, path = "/v2/clusters/{clusterId}/backups/policy", tag = "backups",
    params(("clusterId" = String, Path)), responses((status = 200, body = PolicyView)))]
async fn describe_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
) -> ApiResult<PolicyView> {
    state
        .services
        .visible_cluster(&principal, &cluster_id, Privilege::BackupRead)
        .await?;
    let policy = state.store.get_policy(&cluster_id).await?;
    Ok(ok(view(cluster_id, policy)))
}

/// Set the cluster's automatic backup policy. Enabling it starts the first automatic backup
/// at once.
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/policy", tag = "backups",
    params(("clusterId" = String, Path)), request_body = SetPolicy,
    responses((status = 200, body = PolicyView)))]
async fn set_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
    ApiJson(body): ApiJson<SetPolicy>,
) -> ApiResult<PolicyView> {
    let services = &state.services;
    let cluster = services
        .visible_cluster(&principal, &cluster_id, Privilege::BackupPolicy)
        .await?;
    let policy = services.set_policy(&cluster, body).await?;
    Ok(ok(view(cluster_id, Some(policy))))
}
