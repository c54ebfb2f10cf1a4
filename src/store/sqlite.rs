//! SQLite specifics: WAL, a busy timeout, foreign keys on, and migrations. SQLite has one
//! writer at a time; the busy timeout makes concurrent writers wait instead of failing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use chrono::{DateTime, Utc};

use super::jobs::{JobRow, JOB_COLUMNS};
use super::StoreResult;

pub(super) async fn connect(url: &str, max_connections: u32) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if let Some(path) = options.get_filename().parent() {
        if !path.as_os_str().is_empty() {
            std::fs::create_dir_all(path).map_err(sqlx::Error::Io)?;
        }
    }
    Ok(SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await?)
}

pub(super) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::migrate!("./migrations/sqlite").run(pool).await?;
    Ok(())
}

/// SQLite reports `UNIQUE constraint failed: clusters.project_id, clusters.name` and no
/// constraint name; map it to the name the Postgres schema gives the same constraint.
pub(super) fn unique_constraint_name(message: &str) -> String {
    let columns = message
        .split_once("constraint failed: ")
        .map(|(_, cols)| cols.trim())
        .unwrap_or(message);
    match columns {
        "projects.name" => "projects_name_key",
        "api_keys.key_hash" => "api_keys_key_hash_key",
        "clusters.project_id, clusters.name" => "clusters_project_name_key",
        "roles.name" => "roles_pkey",
        "jobs.dedupe_key" => "jobs_dedupe_key_key",
        "jobs.id" => "jobs_pkey",
        "projects.id" => "projects_pkey",
        "clusters.id" => "clusters_pkey",
        "api_keys.id" => "api_keys_pkey",
        "backups.id" => "backups_pkey",
        "backups.cluster_id" => "backups_one_manual_creating",
        "backups.cluster_id, backups.seq" => "backups_cluster_seq_key",
        "backups.cluster_id, backups.name" => "backups_cluster_name_key",
        "backup_copies.backup_id, backup_copies.region_id" => "backup_copies_pkey",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// SQLite has one writer at a time, so a single UPDATE over a LIMITed sub-select is already
/// exclusive: no two connections can take the same row.
pub(super) async fn claim_jobs(
    pool: &SqlitePool,
    owner: &str,
    limit: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Vec<JobRow>> {
    let sql = format!(
        "UPDATE jobs SET status = CASE WHEN status = 'CANCELING' THEN 'CANCELING' ELSE 'IN_PROGRESS' END, \
            attempts = attempts + 1, lease_owner = $3, lease_expires_at = $4, \
            started_at = COALESCE(started_at, $1), updated_at = $1 \
         WHERE id IN (SELECT id FROM jobs \
            WHERE (status = 'PENDING' AND run_after <= $1) \
               OR (status IN ('IN_PROGRESS', 'CANCELING') AND lease_expires_at < $1) \
            ORDER BY run_after, created_at, id LIMIT $2) \
         RETURNING {JOB_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(now)
        .bind(limit)
        .bind(owner)
        .bind(lease_until)
        .fetch_all(pool)
        .await?)
}
