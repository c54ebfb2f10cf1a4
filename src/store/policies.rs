//! Automatic backup policies.

use chrono::{DateTime, Utc};

use super::{from_json, Store, StoreError, StoreResult};
use crate::domain::backups::BackupStatus;
use crate::domain::schedule::{Frequency, RetentionDays, Window};

/// A region each automatic backup is copied to, with the copy's own retention.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossRegionCopy {
    pub region_id: String,
    #[schema(value_type = i64, minimum = 1, maximum = 30)]
    pub retention_days: RetentionDays,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub cluster_id: String,
    pub project_id: String,
    pub enabled: bool,
    pub frequency: Frequency,
    pub window: Window,
    pub retention_days: RetentionDays,
    pub cross_region_copies: Vec<CrossRegionCopy>,
    pub enabled_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    cluster_id: String,
    project_id: String,
    enabled: bool,
    frequency: String,
    window_text: String,
    retention_days: i64,
    cross_region_copies: String,
    enabled_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "cluster_id, project_id, enabled, frequency, window_text, CAST(retention_days AS BIGINT) AS retention_days, cross_region_copies, enabled_at, updated_at";

impl TryFrom<PolicyRow> for Policy {
    type Error = StoreError;
    fn try_from(r: PolicyRow) -> StoreResult<Policy> {
        let corrupt =
            |column: &str, e: String| StoreError::Corrupt(format!("backup_policies.{column}: {e}"));
        Ok(Policy {
            frequency: Frequency::parse(&r.frequency).map_err(|e| corrupt("frequency", e))?,
            window: Window::parse(&r.window_text).map_err(|e| corrupt("window_text", e))?,
            retention_days: RetentionDays::try_from(r.retention_days)
                .map_err(|e| corrupt("retention_days", e))?,
            cross_region_copies: from_json(
                "backup_policies.cross_region_copies",
                &r.cross_region_copies,
            )?,
            cluster_id: r.cluster_id,
            project_id: r.project_id,
            enabled: r.enabled,
            enabled_at: r.enabled_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// Writes the cluster's policy, replacing any earlier one.
    pub async fn put_policy(&self, policy: &Policy) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO backup_policies (cluster_id, project_id, enabled, frequency, window_text, retention_days, \
                           cross_region_copies, enabled_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                           ON CONFLICT (cluster_id) DO UPDATE SET enabled = excluded.enabled, frequency = excluded.frequency, \
                           window_text = excluded.window_text, retention_days = excluded.retention_days, \
                           cross_region_copies = excluded.cross_region_copies, enabled_at = excluded.enabled_at, \
                           updated_at = excluded.updated_at";
        let copies = serde_json::to_string(&policy.cross_region_copies).expect("copies serialize");
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&policy.cluster_id)
            .bind(&policy.project_id)
            .bind(policy.enabled)
            .bind(policy.frequency.as_text())
            .bind(policy.window.as_text())
            .bind(policy.retention_days.days() as i32)
            .bind(&copies)
            .bind(policy.enabled_at)
            .bind(policy.updated_at)
            .execute(p)
            .await?
            .rows_affected());
        Ok(())
    }

    pub async fn get_policy(&self, cluster_id: &str) -> StoreResult<Option<Policy>> {
        let sql = format!("SELECT {COLUMNS} FROM backup_policies WHERE cluster_id = $1");
        let row: Option<PolicyRow> = on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(cluster_id).fetch_optional(p).await?);
        row.map(Policy::try_from).transpose()
    }

    pub async fn enabled_policies(&self) -> StoreResult<Vec<Policy>> {
        let sql =
            format!("SELECT {COLUMNS} FROM backup_policies WHERE enabled ORDER BY cluster_id");
        let rows: Vec<PolicyRow> =
            on_pool!(&self.pool, p => sqlx::query_as(&sql).fetch_all(p).await?);
        rows.into_iter().map(Policy::try_from).collect()
    }

    /// Automatic backups due for deletion: expired, or of a cluster that no longer exists.
    pub async fn expired_auto_backups(&self, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
        const SQL: &str = "SELECT id FROM backups WHERE creation_method = 'AUTO' \
                           AND status IN ('AVAILABLE', 'FAILED', 'CANCELED') \
                           AND (expire_at <= $1 OR cluster_id NOT IN (SELECT id FROM clusters)) ORDER BY id";
        Ok(on_pool!(&self.pool, p => sqlx::query_scalar(SQL).bind(now).fetch_all(p).await?))
    }

    /// The automatic backups of a cluster, any visible status: (id, status, job id).
    pub async fn auto_backups_of_cluster(
        &self,
        cluster_id: &str,
    ) -> StoreResult<Vec<(String, BackupStatus, Option<String>)>> {
        const SQL: &str = "SELECT id, status, job_id FROM backups WHERE cluster_id = $1 AND creation_method = 'AUTO' \
                           AND status <> 'DELETED' ORDER BY id";
        let rows: Vec<(String, String, Option<String>)> =
            on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(cluster_id).fetch_all(p).await?);
        rows.into_iter()
            .map(|(id, status, job)| Ok((id, status.parse().map_err(StoreError::Corrupt)?, job)))
            .collect()
    }

    /// Every backup (deleted ones too) of the visible projects that existed in [from, to).
    pub async fn backups_for_usage(
        &self,
        project_id: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<super::Backup>> {
        let sql = format!(
            "SELECT {} FROM backups WHERE ($1 IS NULL OR project_id = $1) AND created_at < $3 \
             AND (deleted_at IS NULL OR deleted_at > $2) AND size > 0 ORDER BY created_at, id",
            super::backups::BACKUP_COLUMNS
        );
        super::backups::fetch_backups(self, &sql, project_id, from, to).await
    }
}
