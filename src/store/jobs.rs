//! Job rows: enqueue, claim, lease, progress, outcome, cancel. Every write to a running job is fenced by
//! `(id, lease_owner, attempts)`: a process whose lease was taken over updates zero rows and
//! learns it must stop, so a job's effects are never written by two processes.

use chrono::{DateTime, Utc};

use super::{Page, Pool, Store, StoreError, StoreResult, Visible};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Pending,
    InProgress,
    Successful,
    Failed,
    Canceling,
    Canceled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Successful => "SUCCESSFUL",
            JobStatus::Failed => "FAILED",
            JobStatus::Canceling => "CANCELING",
            JobStatus::Canceled => "CANCELED",
        }
    }

    /// No further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Successful | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<JobStatus, String> {
        Ok(match s {
            "PENDING" => JobStatus::Pending,
            "IN_PROGRESS" => JobStatus::InProgress,
            "SUCCESSFUL" => JobStatus::Successful,
            "FAILED" => JobStatus::Failed,
            "CANCELING" => JobStatus::Canceling,
            "CANCELED" => JobStatus::Canceled,
            other => return Err(format!("unknown job status '{other}'")),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub project_id: String,
    pub job_type: String,
    pub status: JobStatus,
    pub cluster_id: Option<String>,
    pub backup_id: Option<String>,
    pub payload: serde_json::Value,
    pub state: Option<serde_json::Value>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub progress: i32,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub current_step: Option<String>,
    pub reason: Option<String>,
    pub dedupe_key: Option<String>,
    /// What the job tells its caller when done, sealed with the service's key (a restore's
    /// new passwords); opened by the service, never by the store.
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: String,
    project_id: String,
    job_type: String,
    status: String,
    cluster_id: Option<String>,
    backup_id: Option<String>,
    payload: String,
    state: Option<String>,
    attempts: i32,
    max_attempts: i32,
    run_after: DateTime<Utc>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    progress: i32,
    bytes_done: i64,
    bytes_total: i64,
    current_step: Option<String>,
    reason: Option<String>,
    dedupe_key: Option<String>,
    result: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

pub(super) const JOB_COLUMNS: &str = "id, project_id, job_type, status, cluster_id, backup_id, payload, state, attempts, max_attempts, \
    run_after, lease_owner, lease_expires_at, progress, bytes_done, bytes_total, current_step, reason, dedupe_key, \
    result, created_at, updated_at, started_at, finished_at";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<Job> {
        let json = |col: &str, text: &str| {
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("jobs.{col}: {e}")))
        };
        Ok(Job {
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            payload: json("payload", &r.payload)?,
            state: r.state.as_deref().map(|s| json("state", s)).transpose()?,
            id: r.id,
            project_id: r.project_id,
            job_type: r.job_type,
            cluster_id: r.cluster_id,
            backup_id: r.backup_id,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_after: r.run_after,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            progress: r.progress,
            bytes_done: r.bytes_done,
            bytes_total: r.bytes_total,
            current_step: r.current_step,
            reason: r.reason,
            dedupe_key: r.dedupe_key,
            result: r.result,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

/// Who holds a running job: every write of a running job names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub owner: String,
    pub attempt: i32,
}

impl Job {
    pub fn lease(&self) -> Option<Lease> {
        Some(Lease {
            job_id: self.id.clone(),
            owner: self.lease_owner.clone()?,
            attempt: self.attempts,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub project_id: String,
    pub job_type: String,
    pub cluster_id: Option<String>,
    pub backup_id: Option<String>,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub dedupe_key: Option<String>,
}

impl NewJob {
    /// A job due now, with nothing else set.
    pub fn due_now(
        project_id: &str,
        job_type: &str,
        payload: serde_json::Value,
        max_attempts: i32,
    ) -> NewJob {
        NewJob {
            id: crate::domain::ids::new_job_id(),
            project_id: project_id.to_owned(),
            job_type: job_type.to_owned(),
            cluster_id: None,
            backup_id: None,
            payload,
            max_attempts,
            run_after: Utc::now(),
            dedupe_key: None,
        }
    }

    /// The job works on this cluster (shown and filtered by it in the job center).
    pub fn for_cluster(mut self, cluster_id: &str) -> NewJob {
        self.cluster_id = Some(cluster_id.to_owned());
        self
    }

    /// The job works on this backup (and so on its cluster).
    pub fn for_backup(mut self, backup: &super::Backup) -> NewJob {
        self.cluster_id = Some(backup.cluster_id.clone());
        self.backup_id = Some(backup.id.clone());
        self
    }
}

/// Progress a handler reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub percent: i32,
    pub bytes_done: i64,
    pub bytes_total: i64,
    pub step: Option<String>,
}

/// How a running job ends (or goes back to the queue).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed {
        reason: String,
    },
    Canceled {
        reason: String,
    },
    /// Back to PENDING at `run_after` after a failed attempt.
    Retry {
        reason: String,
        run_after: DateTime<Utc>,
    },
    /// Back to PENDING at once, the attempt not counted (graceful shutdown).
    Released,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub project_id: Option<String>,
    pub cluster_id: Option<String>,
    pub job_type: Option<String>,
    pub status: Option<JobStatus>,
}

pub(super) const INSERT_JOB: &str = "INSERT INTO jobs (id, project_id, job_type, status, cluster_id, backup_id, payload, attempts, max_attempts, \
    run_after, progress, bytes_done, bytes_total, dedupe_key, created_at, updated_at) \
    VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, 0, $7, $8, 0, 0, 0, $9, $10, $10)";

/// Inserts `$job` within the transaction `$tx` (of either driver, so a backup row and its job
/// commit together). On Postgres it also queues a NOTIFY, delivered at commit, that wakes the
/// workers of every process; the method that commits calls `job_ready` for this one.
macro_rules! insert_job_in {
    ($tx:expr, $job:expr, $now:expr, $postgres:expr) => {{
        let job: &$crate::store::NewJob = $job;
        sqlx::query($crate::store::jobs::INSERT_JOB)
            .bind(&job.id)
            .bind(&job.project_id)
            .bind(&job.job_type)
            .bind(&job.cluster_id)
            .bind(&job.backup_id)
            .bind(job.payload.to_string())
            .bind(job.max_attempts)
            .bind(job.run_after)
            .bind(&job.dedupe_key)
            .bind($now)
            .execute(&mut *$tx)
            .await
            .map_err($crate::store::conflict_or)?;
        if $postgres {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind($crate::store::events::JOBS_CHANNEL)
                .execute(&mut *$tx)
                .await
                .map_err($crate::store::StoreError::from)?;
        }
    }};
}
pub(super) use insert_job_in;

impl Store {
    pub async fn insert_job(&self, job: &NewJob, now: DateTime<Utc>) -> StoreResult<()> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            insert_job_in!(&mut *tx, job, now, postgres);
            tx.commit().await?;
        });
        self.job_ready();
        Ok(())
    }

    /// Was a job with this dedupe key ever enqueued?
    pub async fn job_with_dedupe_key_exists(&self, key: &str) -> StoreResult<bool> {
        const SQL: &str = "SELECT COUNT(*) FROM jobs WHERE dedupe_key = $1";
        let n: i64 =
            on_pool!(&self.pool, p => sqlx::query_scalar(SQL).bind(key).fetch_one(p).await?);
        Ok(n > 0)
    }

    pub async fn get_job(&self, id: &str) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> =
            on_pool!(&self.pool, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        row.map(Job::try_from).transpose()
    }

    /// Jobs newest first.
    pub async fn list_jobs(
        &self,
        visible: &Visible,
        filter: &JobFilter,
        page: Page,
    ) -> StoreResult<(Vec<Job>, u64)> {
        const FILTER: &str = "($1 IS NULL OR project_id IN (SELECT value FROM json_array_elements_text(CAST($1 AS json)))) \
             AND ($2 IS NULL OR project_id = $2) AND ($3 IS NULL OR cluster_id = $3) \
             AND ($4 IS NULL OR job_type = $4) AND ($5 IS NULL OR status = $5)";
        let filter_sql = self.adapt_json_filter(FILTER);
        // The page and the count are two queries: a count over the window of a sorted page
        // (`COUNT(*) OVER ()`) reads and sorts every matching row with all its columns on
        // every call; apart, the page walks `jobs_created_idx` and the count reads no payload.
        let list = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {filter_sql} \
             ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
        );
        let count = format!("SELECT COUNT(*) FROM jobs WHERE {filter_sql}");
        let ids = visible.as_json();
        let status = filter.status.map(JobStatus::as_str);
        let rows = on_pool!(&self.pool, p => sqlx::query_as::<_, JobRow>(&list)
            .bind(&ids)
            .bind(&filter.project_id)
            .bind(&filter.cluster_id)
            .bind(&filter.job_type)
            .bind(status)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(p)
            .await?);
        let total: i64 = on_pool!(&self.pool, p => sqlx::query_scalar(&count)
            .bind(&ids)
            .bind(&filter.project_id)
            .bind(&filter.cluster_id)
            .bind(&filter.job_type)
            .bind(status)
            .fetch_one(p)
            .await?);
        let total = total as u64;
        let jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((jobs, total))
    }

    /// Takes up to `limit` jobs that are due, or whose lease expired (their process died),
    /// and leases them to `owner` until `lease_until`.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        limit: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<Job>> {
        let rows: Vec<JobRow> = match &self.pool {
            Pool::Postgres(p) => {
                super::postgres::claim_jobs(p, owner, limit, now, lease_until).await?
            }
            Pool::Sqlite(p) => super::sqlite::claim_jobs(p, owner, limit, now, lease_until).await?,
        };
        if !rows.is_empty() {
            self.job_changed();
        }
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Extends a lease. `None`: the lease is no longer ours (stop without writing);
    /// otherwise the job's status, which says whether a cancel was asked for.
    pub async fn heartbeat(
        &self,
        lease: &Lease,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<JobStatus>> {
        const SQL: &str = "UPDATE jobs SET lease_expires_at = $4, updated_at = $5 \
                           WHERE id = $1 AND lease_owner = $2 AND attempts = $3 \
                           AND status IN ('IN_PROGRESS', 'CANCELING') RETURNING status";
        let status: Option<String> = on_pool!(&self.pool, p => sqlx::query_scalar(SQL)
            .bind(&lease.job_id)
            .bind(&lease.owner)
            .bind(lease.attempt)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(p)
            .await?);
        status
            .map(|s| s.parse().map_err(StoreError::Corrupt))
            .transpose()
    }

    /// Records progress; false when the lease is no longer ours.
    pub async fn update_progress(
        &self,
        lease: &Lease,
        progress: &Progress,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE jobs SET progress = $4, bytes_done = $5, bytes_total = $6, current_step = $7, updated_at = $8 \
                           WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status IN ('IN_PROGRESS', 'CANCELING')";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&lease.job_id)
            .bind(&lease.owner)
            .bind(lease.attempt)
            .bind(progress.percent.clamp(0, 100))
            .bind(progress.bytes_done)
            .bind(progress.bytes_total)
            .bind(&progress.step)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        if done == 1 {
            self.job_changed();
        }
        Ok(done == 1)
    }

    /// Saves the handler's resumable state; false when the lease is no longer ours.
    pub async fn save_job_state(
        &self,
        lease: &Lease,
        state: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE jobs SET state = $4, updated_at = $5 \
                           WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status IN ('IN_PROGRESS', 'CANCELING')";
        let text = state.to_string();
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&lease.job_id)
            .bind(&lease.owner)
            .bind(lease.attempt)
            .bind(&text)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Saves the job's result (sealed by the caller); false when the lease is no longer ours.
    pub async fn save_job_result(
        &self,
        lease: &Lease,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE jobs SET result = $4, updated_at = $5 \
                           WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status IN ('IN_PROGRESS', 'CANCELING')";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&lease.job_id)
            .bind(&lease.owner)
            .bind(lease.attempt)
            .bind(sealed)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Replaces a job's result `old` with `new` (a result read once loses its secrets); false
    /// when another reader replaced it first.
    pub async fn replace_job_result(&self, id: &str, old: &str, new: &str) -> StoreResult<bool> {
        const SQL: &str = "UPDATE jobs SET result = $3 WHERE id = $1 AND result = $2";
        let done = on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(p)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Ends (or requeues) a running job; false when the lease is no longer ours.
    pub async fn finish_job(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        const FINAL: &str = "UPDATE jobs SET status = $4, reason = $5, finished_at = $6, updated_at = $6, \
                             lease_owner = NULL, lease_expires_at = NULL, progress = CASE WHEN $4 = 'SUCCESSFUL' THEN 100 ELSE progress END \
                             WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status IN ('IN_PROGRESS', 'CANCELING')";
        const REQUEUE: &str = "UPDATE jobs SET status = 'PENDING', reason = $4, run_after = $5, updated_at = $6, \
                               lease_owner = NULL, lease_expires_at = NULL, attempts = attempts - $7 \
                               WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND status = 'IN_PROGRESS'";
        let done = match outcome {
            Outcome::Succeeded | Outcome::Failed { .. } | Outcome::Canceled { .. } => {
                let (status, reason) = match outcome {
                    Outcome::Succeeded => (JobStatus::Successful, None),
                    Outcome::Failed { reason } => (JobStatus::Failed, Some(reason.as_str())),
                    Outcome::Canceled { reason } => (JobStatus::Canceled, Some(reason.as_str())),
                    _ => unreachable!("matched above"),
                };
                on_pool!(&self.pool, p => sqlx::query(FINAL)
                    .bind(&lease.job_id)
                    .bind(&lease.owner)
                    .bind(lease.attempt)
                    .bind(status.as_str())
                    .bind(reason)
                    .bind(now)
                    .execute(p)
                    .await?
                    .rows_affected())
            }
            Outcome::Retry { reason, run_after } => on_pool!(&self.pool, p => sqlx::query(REQUEUE)
                .bind(&lease.job_id)
                .bind(&lease.owner)
                .bind(lease.attempt)
                .bind(reason)
                .bind(run_after)
                .bind(now)
                .bind(0i32)
                .execute(p)
                .await?
                .rows_affected()),
            Outcome::Released => on_pool!(&self.pool, p => sqlx::query(REQUEUE)
                .bind(&lease.job_id)
                .bind(&lease.owner)
                .bind(lease.attempt)
                .bind(Option::<String>::None)
                .bind(now)
                .bind(now)
                .bind(1i32)
                .execute(p)
                .await?
                .rows_affected()),
        };
        if done == 1 && matches!(outcome, Outcome::Retry { .. } | Outcome::Released) {
            self.notify_jobs().await?;
            self.job_ready();
        } else if done == 1 {
            self.job_changed();
        }
        Ok(done == 1)
    }

    /// Asks a job to stop: a PENDING job is CANCELED at once, a running one becomes CANCELING
    /// (its handler stops at the next step boundary). Returns the new status, or `None` when
    /// the job is not pending or running.
    pub async fn request_cancel(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<JobStatus>> {
        const SQL: &str = "UPDATE jobs SET \
                           status = CASE WHEN status = 'PENDING' THEN 'CANCELED' ELSE 'CANCELING' END, \
                           reason = CASE WHEN status = 'PENDING' THEN 'canceled before it started' ELSE reason END, \
                           finished_at = CASE WHEN status = 'PENDING' THEN $2 ELSE finished_at END, \
                           updated_at = $2 \
                           WHERE id = $1 AND status IN ('PENDING', 'IN_PROGRESS') RETURNING status";
        let status: Option<String> = on_pool!(&self.pool, p => sqlx::query_scalar(SQL).bind(id).bind(now).fetch_optional(p).await?);
        let status = status
            .map(|s| s.parse().map_err(StoreError::Corrupt))
            .transpose()?;
        if status.is_some() {
            if let Err(e) = self.notify_cancel(id).await {
                tracing::debug!(error = %e, "cancel NOTIFY failed; the heartbeat will notice");
            }
            self.job_changed();
        }
        Ok(status)
    }

    /// Tells every other process that `job_id` was asked to stop (Postgres only; their
    /// heartbeat would notice within a third of the lease anyway).
    async fn notify_cancel(&self, job_id: &str) -> StoreResult<()> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(super::events::CANCEL_CHANNEL)
                .bind(job_id)
                .execute(p)
                .await?;
        }
        Ok(())
    }

    /// Wakes idle workers of every other process (Postgres NOTIFY; SQLite has one process).
    async fn notify_jobs(&self) -> StoreResult<()> {
        if let Pool::Postgres(p) = &self.pool {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(super::events::JOBS_CHANNEL)
                .execute(p)
                .await?;
        }
        Ok(())
    }
}
