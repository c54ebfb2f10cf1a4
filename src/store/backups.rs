//! Backup rows. A backup and the job that makes it are written in one transaction, so a
//! backup never exists without its job nor a job without its backup.

use chrono::{DateTime, Utc};

use super::jobs::{insert_job_in, NewJob};
use super::{conflict_or, from_json, Page, Pool, Store, StoreError, StoreResult, Visible};
use crate::domain::backups::{
    BackupStatus, BackupType, CopyRequest, CreationMethod, DbCollections,
};
use crate::milvus::Rbac;

/// Per collection, what an AVAILABLE backup holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackedUpCollection {
    pub db_name: String,
    pub collection_name: String,
    pub description: String,
    pub row_count: i64,
    pub size: i64,
    /// Loaded when the backup was taken (what `restoreCluster` with KEEP restores).
    #[serde(default)]
    pub loaded: bool,
    /// Whether Milvus can load it once restored: every vector field has an index. `None` for
    /// backups recorded before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadable: Option<bool>,
    /// Its aliases when the backup was taken (restored with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backup {
    pub id: String,
    pub project_id: String,
    pub cluster_id: String,
    pub cluster_name: String,
    pub region_id: String,
    pub name: String,
    pub seq: i64,
    pub backup_type: BackupType,
    pub creation_method: CreationMethod,
    pub status: BackupStatus,
    pub selection: Vec<DbCollections>,
    pub collections: Vec<BackedUpCollection>,
    pub size: i64,
    pub job_id: Option<String>,
    pub reason: Option<String>,
    pub expire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Regions to copy to once AVAILABLE.
    pub copy_regions: Vec<CopyRequest>,
    /// Users, roles and grants the backup holds (CLUSTER backups of a Milvus that has them).
    pub rbac: Option<Rbac>,
}

#[derive(sqlx::FromRow)]
struct BackupRow {
    id: String,
    project_id: String,
    cluster_id: String,
    cluster_name: String,
    region_id: String,
    name: String,
    seq: i64,
    backup_type: String,
    creation_method: String,
    status: String,
    selection: String,
    collections: Option<String>,
    size: i64,
    job_id: Option<String>,
    reason: Option<String>,
    expire_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    copy_regions: String,
    rbac: Option<String>,
}

pub(super) const BACKUP_COLUMNS: &str = "id, project_id, cluster_id, cluster_name, region_id, name, seq, backup_type, \
    creation_method, status, selection, collections, size, job_id, reason, expire_at, created_at, updated_at, finished_at, deleted_at, copy_regions, rbac";

impl TryFrom<BackupRow> for Backup {
    type Error = StoreError;
    fn try_from(r: BackupRow) -> StoreResult<Backup> {
        Ok(Backup {
            backup_type: r.backup_type.parse().map_err(StoreError::Corrupt)?,
            creation_method: r.creation_method.parse().map_err(StoreError::Corrupt)?,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            selection: from_json("backups.selection", &r.selection)?,
            collections: r
                .collections
                .as_deref()
                .map(|text| from_json("backups.collections", text))
                .transpose()?
                .unwrap_or_default(),
            id: r.id,
            project_id: r.project_id,
            cluster_id: r.cluster_id,
            cluster_name: r.cluster_name,
            region_id: r.region_id,
            name: r.name,
            seq: r.seq,
            size: r.size,
            job_id: r.job_id,
            reason: r.reason,
            expire_at: r.expire_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            deleted_at: r.deleted_at,
            copy_regions: from_json("backups.copy_regions", &r.copy_regions)?,
            rbac: r
                .rbac
                .as_deref()
                .map(|text| from_json("backups.rbac", text))
                .transpose()?,
        })
    }
}

/// A copy of a backup in another region.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupCopy {
    pub backup_id: String,
    pub region_id: String,
    pub status: BackupStatus,
    pub size: i64,
    pub job_id: Option<String>,
    pub reason: Option<String>,
    pub expire_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct CopyRow {
    backup_id: String,
    region_id: String,
    status: String,
    size: i64,
    job_id: Option<String>,
    reason: Option<String>,
    expire_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

const COPY_COLUMNS: &str =
    "backup_id, region_id, status, size, job_id, reason, expire_at, created_at";

impl TryFrom<CopyRow> for BackupCopy {
    type Error = StoreError;
    fn try_from(r: CopyRow) -> StoreResult<BackupCopy> {
        Ok(BackupCopy {
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            backup_id: r.backup_id,
            region_id: r.region_id,
            size: r.size,
            job_id: r.job_id,
            reason: r.reason,
            expire_at: r.expire_at,
            created_at: r.created_at,
        })
    }
}

/// What an AVAILABLE backup holds, recorded when it completes.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub size: i64,
    pub collections: &'a [BackedUpCollection],
    pub rbac: Option<&'a Rbac>,
}

/// A backup to record; `id` and `name` are made from the sequence number the store picks.
#[derive(Debug, Clone)]
pub struct NewBackup {
    pub project_id: String,
    pub cluster_id: String,
    pub cluster_name: String,
    pub region_id: String,
    /// `None`: the default `<clusterName>_backup<N>`.
    pub name: Option<String>,
    pub backup_type: BackupType,
    pub creation_method: CreationMethod,
    pub selection: Vec<DbCollections>,
    pub expire_at: Option<DateTime<Utc>>,
    pub copy_regions: Vec<CopyRequest>,
}

/// Why a backup could not be recorded, in terms of the task rules.
#[derive(Debug, thiserror::Error)]
pub enum CreateBackupError {
    #[error("a manual backup of this cluster is already pending or running")]
    ManualRunning,
    #[error("an automatic backup of this cluster is pending or running")]
    AutoRunning,
    #[error("backup name '{0}' is already used in this cluster")]
    NameTaken(String),
    /// The job's dedupe key exists: this automatic backup was already started.
    #[error("this backup was already started")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Default)]
pub struct BackupFilter {
    pub project_id: Option<String>,
    pub cluster_id: Option<String>,
    pub creation_method: Option<CreationMethod>,
    pub backup_type: Option<BackupType>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a backup in CREATING and the job that makes it, in one transaction. `job` gets
    /// the backup's id. Enforces the task rules: one manual backup at a time per cluster (by
    /// a unique index, safe across replicas), and none, manual or automatic, while an
    /// automatic one is pending or running.
    pub async fn create_backup(
        &self,
        backup: &NewBackup,
        job: &mut NewJob,
        now: DateTime<Utc>,
    ) -> Result<Backup, CreateBackupError> {
        // Two creators may pick the same sequence number; the loser tries the next one.
        for _ in 0..5 {
            match self.try_create_backup(backup, job, now).await {
                Err(CreateBackupError::Store(StoreError::Conflict(name)))
                    if name == "backups_cluster_seq_key" =>
                {
                    continue
                }
                Err(CreateBackupError::Store(StoreError::Conflict(name))) => {
                    return Err(match name.as_str() {
                        "backups_one_manual_creating" => CreateBackupError::ManualRunning,
                        "backups_cluster_name_key" => {
                            CreateBackupError::NameTaken(backup.name.clone().unwrap_or_default())
                        }
                        "jobs_dedupe_key_key" => CreateBackupError::Duplicate,
                        _ => StoreError::Conflict(name).into(),
                    })
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict("backups_cluster_seq_key".to_owned()).into())
    }

    async fn try_create_backup(
        &self,
        backup: &NewBackup,
        job: &mut NewJob,
        now: DateTime<Utc>,
    ) -> Result<Backup, CreateBackupError> {
        const NEXT_SEQ: &str =
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM backups WHERE cluster_id = $1";
        const AUTO_RUNNING: &str = "SELECT COUNT(*) FROM backups WHERE cluster_id = $1 \
                                    AND creation_method = 'AUTO' AND status = 'CREATING'";
        let insert = format!(
            "INSERT INTO backups ({BACKUP_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'CREATING', $10, NULL, 0, $11, NULL, $12, $13, $13, NULL, NULL, $14, NULL) \
             RETURNING {BACKUP_COLUMNS}"
        );
        let selection = serde_json::to_string(&backup.selection).expect("selection serializes");
        let copies = serde_json::to_string(&backup.copy_regions).expect("copies serialize");
        let postgres = matches!(self.pool, Pool::Postgres(_));
        // The task rules are a read, then a write: two creators of one cluster must not both
        // read before either writes. SQLite takes its single write lock up front (which also
        // avoids two readers deadlocking on the upgrade); Postgres takes a lock on the cluster
        // for the transaction. The one-manual-at-a-time index holds across replicas anyway;
        // the lock is what keeps "no manual while an automatic one is pending" true.
        let begin = if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
        let row: BackupRow = on_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await.map_err(StoreError::from)?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("backups:{}", backup.cluster_id))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            }
            let seq: i64 = sqlx::query_scalar(NEXT_SEQ)
                .bind(&backup.cluster_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            // No manual backup while an automatic one is pending or running, and at most one
            // automatic backup at a time per cluster.
            let auto: i64 = sqlx::query_scalar(AUTO_RUNNING)
                .bind(&backup.cluster_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            if auto > 0 {
                return Err(CreateBackupError::AutoRunning);
            }
            #[cfg(feature = "test-hooks")]
            self.hooks.in_task_rule_window(backup.creation_method).await;
            let id = crate::domain::ids::new_backup_id(seq as u64);
            let name = backup.name.clone().unwrap_or_else(|| {
                crate::domain::backups::default_backup_name(&backup.cluster_name, seq)
            });
            job.backup_id = Some(id.clone());
            let row = sqlx::query_as(&insert)
                .bind(&id)
                .bind(&backup.project_id)
                .bind(&backup.cluster_id)
                .bind(&backup.cluster_name)
                .bind(&backup.region_id)
                .bind(&name)
                .bind(seq)
                .bind(backup.backup_type.as_str())
                .bind(backup.creation_method.as_str())
                .bind(&selection)
                .bind(&job.id)
                .bind(backup.expire_at)
                .bind(now)
                .bind(&copies)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_or)?;
            insert_job_in!(&mut *tx, &*job, now, postgres);
            tx.commit().await.map_err(StoreError::from)?;
            row
        });
        self.job_ready();
        Ok(Backup::try_from(row)?)
    }

    pub async fn get_backup(&self, id: &str) -> StoreResult<Option<Backup>> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = $1");
        let row: Option<BackupRow> =
            on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        row.map(Backup::try_from).transpose()
    }

    /// Backups newest first.
    pub async fn list_backups(
        &self,
        visible: &Visible,
        filter: &BackupFilter,
        page: Page,
    ) -> StoreResult<(Vec<Backup>, u64)> {
        const FILTER: &str = "status <> 'DELETED' AND ($1 IS NULL OR project_id IN (SELECT value FROM json_array_elements_text(CAST($1 AS json)))) \
             AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR cluster_id = $3) \
             AND ($4 IS NULL OR creation_method = $4) AND ($5 IS NULL OR backup_type = $5) \
             AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at <= $7)";
        let filter_sql = self.adapt_json_filter(FILTER);
        // Page and count apart, as for jobs (`Store::list_jobs`).
        let list = format!(
            "SELECT {BACKUP_COLUMNS} FROM backups WHERE {filter_sql} \
             ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
        );
        let count = format!("SELECT COUNT(*) FROM backups WHERE {filter_sql}");
        let ids = visible.as_json();
        let method = filter.creation_method.map(CreationMethod::as_str);
        let kind = filter.backup_type.map(BackupType::as_str);
        let rows = on_pool!(&self.pool, p => sqlx::query_as::<_, BackupRow>(&list)
            .bind(&ids)
            .bind(&filter.project_id)
            .bind(&filter.cluster_id)
            .bind(method)
            .bind(kind)
            .bind(filter.created_from)
            .bind(filter.created_to)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?);
        let total: i64 = on_pool!(&self.pool, p => sqlx::query_scalar(&count)
            .bind(&ids)
            .bind(&filter.project_id)
            .bind(&filter.cluster_id)
            .bind(method)
            .bind(kind)
            .bind(filter.created_from)
            .bind(filter.created_to)
            .fetch_one(p)
            .await?);
        let total = total as u64;
        let backups = rows
            .into_iter()
            .map(Backup::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((backups, total))
    }

    /// Marks a CREATING backup AVAILABLE with what it holds and, in the same transaction,
    /// records its cross-region copies and enqueues their jobs (so a crash cannot lose them).
    /// False when it is no longer CREATING (e.g. deleted meanwhile).
    pub async fn complete_backup(
        &self,
        id: &str,
        held: &Held<'_>,
        copies: &[(CopyRequest, NewJob)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE backups SET status = 'AVAILABLE', size = $2, collections = $3, \
                           rbac = $5, reason = NULL, finished_at = $4, updated_at = $4 \
                           WHERE id = $1 AND status = 'CREATING'";
        let (size, collections) = (held.size, held.collections);
        let rbac = held
            .rbac
            .map(|r| serde_json::to_string(r).expect("rbac serializes"));
        const COPY: &str = "INSERT INTO backup_copies (backup_id, region_id, status, size, job_id, reason, expire_at, created_at, updated_at) \
                            VALUES ($1, $2, 'CREATING', 0, $3, NULL, $4, $5, $5)";
        let text = serde_json::to_string(collections).expect("collections serialize");
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(SQL)
                .bind(id)
                .bind(size)
                .bind(&text)
                .bind(now)
                .bind(&rbac)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            for (copy, job) in copies {
                let expire_at = copy.retention_days.map(|d| now + chrono::Duration::days(d));
                sqlx::query(COPY)
                    .bind(id)
                    .bind(&copy.region_id)
                    .bind(&job.id)
                    .bind(expire_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict_or)?;
                insert_job_in!(&mut *tx, job, now, postgres);
            }
            tx.commit().await?;
        });
        if !copies.is_empty() {
            self.job_ready();
        }
        Ok(true)
    }

    pub async fn list_copies(&self, backup_id: &str) -> StoreResult<Vec<BackupCopy>> {
        let sql = format!(
            "SELECT {COPY_COLUMNS} FROM backup_copies WHERE backup_id = $1 ORDER BY region_id"
        );
        let rows: Vec<CopyRow> =
            on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(backup_id).fetch_all(p).await?);
        rows.into_iter().map(BackupCopy::try_from).collect()
    }

    pub async fn get_copy(
        &self,
        backup_id: &str,
        region_id: &str,
    ) -> StoreResult<Option<BackupCopy>> {
        let sql = format!(
            "SELECT {COPY_COLUMNS} FROM backup_copies WHERE backup_id = $1 AND region_id = $2"
        );
        let row: Option<CopyRow> = on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(backup_id).bind(region_id).fetch_optional(p).await?);
        row.map(BackupCopy::try_from).transpose()
    }

    /// Ends a CREATING copy as AVAILABLE (with its size) or FAILED (with a reason).
    pub async fn finish_copy(
        &self,
        backup_id: &str,
        region_id: &str,
        status: BackupStatus,
        size: i64,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str =
            "UPDATE backup_copies SET status = $3, size = $4, reason = $5, updated_at = $6 \
                           WHERE backup_id = $1 AND region_id = $2 AND status = 'CREATING'";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(backup_id).bind(region_id).bind(status.as_str()).bind(size).bind(reason).bind(now)
            .execute(p).await?.rows_affected());
        Ok(done == 1)
    }

    /// Marks one finished copy DELETING and enqueues its delete job, in one transaction.
    pub async fn start_copy_deletion(
        &self,
        backup_id: &str,
        region_id: &str,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE backup_copies SET status = 'DELETING', job_id = $3, updated_at = $4 \
                           WHERE backup_id = $1 AND region_id = $2 AND status IN ('AVAILABLE', 'FAILED')";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(SQL).bind(backup_id).bind(region_id).bind(&job.id).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if done == 0 {
                return Ok(false);
            }
            insert_job_in!(&mut *tx, job, now, postgres);
            tx.commit().await?;
        });
        self.job_ready();
        Ok(true)
    }

    pub async fn delete_copy_row(&self, backup_id: &str, region_id: &str) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM backup_copies WHERE backup_id = $1 AND region_id = $2";
        on_pool!(&self.pool, p => sqlx::query(SQL).bind(backup_id).bind(region_id).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Copies of automatic backups past their region's retention.
    pub async fn expired_copies(&self, now: DateTime<Utc>) -> StoreResult<Vec<(String, String)>> {
        const SQL: &str = "SELECT backup_id, region_id FROM backup_copies WHERE expire_at <= $1 \
                           AND status IN ('AVAILABLE', 'FAILED') ORDER BY backup_id, region_id";
        Ok(on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(now).fetch_all(p).await?))
    }

    /// Ends a CREATING backup as FAILED or CANCELED (its objects already removed).
    pub async fn end_backup(
        &self,
        id: &str,
        status: BackupStatus,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE backups SET status = $2, reason = $3, size = 0, finished_at = $4, updated_at = $4 \
                           WHERE id = $1 AND status = 'CREATING'";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(id)
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Marks a finished backup DELETING and enqueues its delete job, in one transaction.
    /// False when the backup is CREATING or already DELETING.
    pub async fn start_backup_deletion(
        &self,
        id: &str,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE backups SET status = 'DELETING', job_id = $2, updated_at = $3 \
                           WHERE id = $1 AND status IN ('AVAILABLE', 'FAILED', 'CANCELED')";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(SQL)
                .bind(id)
                .bind(&job.id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done == 0 {
                return Ok(false);
            }
            sqlx::query("UPDATE backup_copies SET status = 'DELETING', updated_at = $2 WHERE backup_id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            insert_job_in!(&mut *tx, job, now, postgres);
            tx.commit().await?;
        });
        self.job_ready();
        Ok(true)
    }

    /// Marks a DELETING backup DELETED once its objects are gone. The row stays, hidden, so
    /// the usage report can bill the days it was stored.
    pub async fn mark_backup_deleted(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        const SQL: &str =
            "UPDATE backups SET status = 'DELETED', deleted_at = $2, updated_at = $2 \
                           WHERE id = $1 AND status = 'DELETING'";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL).bind(id).bind(now).execute(p).await?.rows_affected());
        Ok(done == 1)
    }
}

/// Runs a backups query bound as ($1 project, $2 from, $3 to).
pub(super) async fn fetch_backups(
    store: &Store,
    sql: &str,
    project_id: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<Backup>> {
    let rows: Vec<BackupRow> = on_pool!(&store.pool, p => sqlx::query_as(sql)
        .bind(project_id)
        .bind(from)
        .bind(to)
        .fetch_all(p)
        .await?);
    rows.into_iter().map(Backup::try_from).collect()
}
