//! `GET|POST /v2/clusters/{clusterId}/backups/policy`: automatic backups of a cluster.
//! Enabling a policy takes the first automatic backup at once; the scheduler
//! (`src/automatic.rs`) takes the rest in their windows.

use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::clusters::visible_cluster;
use super::{ok, ApiJson, ApiPath, ApiResult, AppState, Auth};
use crate::domain::access::Privilege;
use crate::domain::backups::{validate_copies, CopyRequest};
use crate::domain::schedule::{validate_retention_days, Frequency, Window};
use crate::error::Error;
use crate::store::{CrossRegionCopy, Plan, Policy};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(describe_policy, set_policy))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPolicy {
    enabled: bool,
    /// Days of the week, `"1,2,3,4,5,6,7"` (1 = Monday). Required when enabling.
    frequency: Option<String>,
    /// UTC window `"HH:mm-HH:mm"`. Required when enabling.
    start_time: Option<String>,
    /// 1–30. Required when enabling.
    retention_days: Option<i64>,
    /// Regions each automatic backup is copied to, with their own retention.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    cross_region_copies: Vec<CrossRegionCopy>,
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
    #[schema(value_type = Vec<Object>)]
    cross_region_copies: Vec<CrossRegionCopy>,
}

fn view(cluster_id: String, policy: Option<Policy>) -> PolicyView {
    match policy {
        Some(p) => PolicyView {
            cluster_id,
            status: if p.enabled { "ENABLED" } else { "DISABLED" },
            frequency: Some(p.frequency),
            start_time: Some(p.window),
            retention_days: Some(p.retention_days),
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
    visible_cluster(&state, &principal, &cluster_id, Privilege::BackupRead).await?;
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
    let cluster = visible_cluster(&state, &principal, &cluster_id, Privilege::BackupPolicy).await?;
    if cluster.plan != Plan::Dedicated {
        return Err(Error::Unprocessable(format!(
            "cluster {cluster_id} is {}: automatic backups exist only for Dedicated clusters",
            cluster.plan.as_str()
        )));
    }
    let previous = state.store.get_policy(&cluster_id).await?;
    let required =
        |field: &str| Error::invalid(format!("{field} is required when enabled is true"));
    // Disabling may omit the schedule: the previous one is kept for the next enable.
    let frequency = match (&body.frequency, &previous) {
        (Some(f), _) => Frequency::parse(f).map_err(Error::invalid)?.as_text(),
        (None, Some(p)) if !body.enabled => p.frequency.clone(),
        (None, _) if body.enabled => return Err(required("frequency")),
        (None, _) => "1,2,3,4,5,6,7".to_owned(),
    };
    let window = match (&body.start_time, &previous) {
        (Some(w), _) => Window::parse(w).map_err(Error::invalid)?.as_text(),
        (None, Some(p)) if !body.enabled => p.window.clone(),
        (None, _) if body.enabled => return Err(required("startTime")),
        (None, _) => "00:00-23:59".to_owned(),
    };
    let retention_days = match (body.retention_days, &previous) {
        (Some(d), _) => {
            validate_retention_days(d).map_err(Error::invalid)?;
            d
        }
        (None, Some(p)) if !body.enabled => p.retention_days,
        (None, _) if body.enabled => return Err(required("retentionDays")),
        (None, _) => 7,
    };
    let copies: Vec<CopyRequest> = body
        .cross_region_copies
        .iter()
        .map(|c| CopyRequest {
            region_id: c.region_id.clone(),
            retention_days: Some(c.retention_days),
        })
        .collect();
    validate_copies(&copies, &cluster.region_id, &state.regions.ids()).map_err(Error::invalid)?;
    let now = Utc::now();
    let newly_enabled = body.enabled && !previous.as_ref().is_some_and(|p| p.enabled);
    let policy = Policy {
        cluster_id: cluster_id.clone(),
        project_id: cluster.project_id.clone(),
        enabled: body.enabled,
        frequency,
        window,
        retention_days,
        cross_region_copies: body.cross_region_copies,
        enabled_at: if newly_enabled {
            Some(now)
        } else {
            previous.as_ref().and_then(|p| p.enabled_at)
        },
        updated_at: now,
    };
    state.store.put_policy(&policy).await?;
    if newly_enabled {
        let key = format!("auto:{cluster_id}:enabled:{}", now.timestamp_millis());
        state
            .scheduler
            .start_auto_backup(&policy, &key, now)
            .await?;
    }
    tracing::info!(cluster_id = %cluster_id, enabled = policy.enabled, "backup policy set");
    Ok(ok(view(cluster_id, Some(policy))))
}
