//! Restores: `restoreCollection` and `restoreCluster` check everything they can before
//! answering (`crate::service::restores`), then run as a job (`crate::restore`).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiResult, AppState, Auth};
use crate::service::restores::{RestoreCluster, RestoreCollections};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(restore_collection))
        .routes(routes!(restore_cluster))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStarted {
    pub(super) job_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRestoreStarted {
    pub(super) cluster_id: String,
    pub(super) job_id: String,
}

/// Restore chosen collections (or all) of a backup into a registered cluster, optionally
/// renamed and loaded. Answers at once; the restore runs as a job.
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/{backupId}/restoreCollection",
    tag = "backups", params(("clusterId" = String, Path), ("backupId" = String, Path)),
    request_body = RestoreCollections, responses((status = 200, body = RestoreStarted)))]
async fn restore_collection(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RestoreCollections>,
) -> ApiResult<RestoreStarted> {
    let started = state
        .services
        .restore_collections(&principal, &cluster_id, &backup_id, body)
        .await?;
    Ok(ok(RestoreStarted {
        job_id: started.job_id,
    }))
}

/// Restore every database and collection of a backup into a registered cluster, loading what
/// was loaded (`KEEP`, the default) or nothing (`RELEASE`).
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/{backupId}/restoreCluster",
    tag = "backups", params(("clusterId" = String, Path), ("backupId" = String, Path)),
    request_body = RestoreCluster, responses((status = 200, body = ClusterRestoreStarted)))]
async fn restore_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RestoreCluster>,
) -> ApiResult<ClusterRestoreStarted> {
    let started = state
        .services
        .restore_cluster(&principal, &cluster_id, &backup_id, body)
        .await?;
    Ok(ok(ClusterRestoreStarted {
        cluster_id: started.dest.id,
        job_id: started.job_id,
    }))
}
