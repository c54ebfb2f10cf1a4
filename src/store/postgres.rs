//! Postgres specifics: connection options and migrations.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use chrono::{DateTime, Utc};

use super::jobs::{JobRow, JOB_COLUMNS};
use super::StoreResult;

pub(super) async fn connect(url: &str, max_connections: u32) -> StoreResult<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await?)
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    sqlx::migrate!("./migrations/postgres").run(pool).await?;
    Ok(())
}

/// `FOR UPDATE SKIP LOCKED` in a materialized CTE (without the fence the planner may update
/// more rows than the limit), then one UPDATE that leases the rows and counts the attempt.
/// A job whose lease expired is taken like a pending one; a CANCELING one stays CANCELING so
/// its handler cleans up.
pub(super) async fn claim_jobs(
    pool: &PgPool,
    owner: &str,
    limit: i64,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Vec<JobRow>> {
    let sql = format!(
        "WITH next AS MATERIALIZED ( \
            SELECT id FROM jobs \
            WHERE (status = 'PENDING' AND run_after <= $1) \
               OR (status IN ('IN_PROGRESS', 'CANCELING') AND lease_expires_at < $1) \
            ORDER BY run_after, created_at, id \
            LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE jobs SET status = CASE WHEN jobs.status = 'CANCELING' THEN 'CANCELING' ELSE 'IN_PROGRESS' END, \
            attempts = jobs.attempts + 1, lease_owner = $3, lease_expires_at = $4, \
            started_at = COALESCE(jobs.started_at, $1), updated_at = $1 \
         FROM next WHERE jobs.id = next.id \
         RETURNING {}",
        JOB_COLUMNS
            .split(", ")
            .map(|c| format!("jobs.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(sqlx::query_as(&sql)
        .bind(now)
        .bind(limit)
        .bind(owner)
        .bind(lease_until)
        .fetch_all(pool)
        .await?)
}
