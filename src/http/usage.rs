//! `GET /v2/usage/backups`: storage used by backups per region and per backup, in GB-days and
//! cost. Billed per day, any started day counting, at least one day, at the region's
//! `price_per_gb_month / 30` per GB-day (`src/domain/schedule.rs` holds the rule).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiQuery, ApiResult, AppState, Auth};
use crate::domain::access::Privilege;
use crate::domain::schedule::{billed_days, cost, BYTES_PER_GB};
use crate::error::Error;
use crate::store::Visible;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(backup_usage))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    project_id: Option<String>,
    /// RFC 3339; default 30 days before `endTime`.
    start_time: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    end_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupUsage {
    backup_id: String,
    backup_name: String,
    project_id: String,
    cluster_id: String,
    size: i64,
    /// Days billed in the period (started days, at least one).
    days: i64,
    gb_days: f64,
    cost: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionUsage {
    region_id: String,
    price_per_gb_month: f64,
    gb_days: f64,
    cost: f64,
    backups: Vec<BackupUsage>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    total_cost: f64,
    regions: Vec<RegionUsage>,
}

/// Backup storage per region and per backup (deleted backups included for the days they
/// were kept).
#[utoipa::path(get, path = "/v2/usage/backups", tag = "usage", params(UsageQuery),
    responses((status = 200, body = Usage)))]
async fn backup_usage(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Usage> {
    let end = query.end_time.unwrap_or_else(Utc::now);
    let start = query.start_time.unwrap_or(end - Duration::days(30));
    if start >= end {
        return Err(Error::invalid("startTime must be before endTime"));
    }
    let visible = principal.projects_with(Privilege::BackupRead);
    let backups = state
        .store
        .backups_for_usage(query.project_id.as_deref(), start, end)
        .await?;
    let now = Utc::now();
    let mut regions: BTreeMap<String, RegionUsage> = BTreeMap::new();
    for b in backups {
        if let Visible::Only(ids) = &visible {
            if !ids.contains(&b.project_id) {
                continue;
            }
        }
        let from = b.created_at.max(start);
        let to = b.deleted_at.unwrap_or(now).min(end);
        let days = billed_days(from, to);
        let gb_days = b.size as f64 / BYTES_PER_GB * days as f64;
        let price = state
            .regions
            .get(&b.region_id)
            .map(|r| r.info.price_per_gb_month)
            .unwrap_or(0.0);
        let region = regions
            .entry(b.region_id.clone())
            .or_insert_with(|| RegionUsage {
                region_id: b.region_id.clone(),
                price_per_gb_month: price,
                gb_days: 0.0,
                cost: 0.0,
                backups: Vec::new(),
            });
        let backup_cost = cost(gb_days, price);
        region.gb_days += gb_days;
        region.cost += backup_cost;
        region.backups.push(BackupUsage {
            backup_id: b.id,
            backup_name: b.name,
            project_id: b.project_id,
            cluster_id: b.cluster_id,
            size: b.size,
            days,
            gb_days,
            cost: backup_cost,
        });
    }
    let regions: Vec<RegionUsage> = regions.into_values().collect();
    Ok(ok(Usage {
        start_time: start,
        end_time: end,
        // An empty float sum is -0.0; adding 0.0 makes it the 0.0 a reader expects.
        total_cost: regions.iter().map(|r| r.cost).sum::<f64>() + 0.0,
        regions,
    }))
}
