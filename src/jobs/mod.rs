//! The durable job queue. Every long operation (backup, restore, delete, verify, copy) is a
//! row in `jobs`, claimed by a worker pool in any number of processes sharing the database.
//! A job accepted is never lost (it is committed before the API answers), never run by two
//! workers at once (leases, fenced writes), and survives the crash of its process (an expired
//! lease makes it claimable again; handlers resume idempotently).

mod backoff;
mod handler;
mod outcome;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

pub use backoff::retry_delay;
pub use handler::{Abandoned, JobContext, JobError, JobHandler, Registry, Stop};

use crate::config::JobsConfig;
use crate::store::{NewJob, Store, StoreResult};

impl JobsConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// A job due now with the configured attempt limit: the one way a job is made, whether
    /// `Jobs::enqueue` commits it alone or the store commits it beside the row it works on.
    pub fn new_job(&self, project_id: &str, job_type: &str, payload: serde_json::Value) -> NewJob {
        NewJob::due_now(project_id, job_type, payload, self.max_attempts)
    }
}

/// The queue as the rest of the service sees it: enqueue, cancel, watch, run workers.
#[derive(Clone, Debug)]
pub struct Jobs {
    store: Store,
    registry: Registry,
    config: JobsConfig,
    /// Cancel tokens of the jobs running in this process, so a cancel takes effect at once
    /// here (and, through NOTIFY, in other processes) rather than at the next heartbeat.
    running: Arc<std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Jobs {
    pub fn new(store: Store, registry: Registry, config: JobsConfig) -> Jobs {
        Jobs {
            store,
            registry,
            config,
            running: Arc::default(),
            metrics: None,
        }
    }

    /// Counts finished attempts in `metrics` (exposed at `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Jobs {
        self.metrics = Some(metrics);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A job due now with the configured attempt limit (`JobsConfig::new_job`).
    pub fn new_job(&self, project_id: &str, job_type: &str, payload: serde_json::Value) -> NewJob {
        self.config.new_job(project_id, job_type, payload)
    }

    /// Commits the job; the store wakes the workers of every process.
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<()> {
        self.store.insert_job(job, Utc::now()).await
    }

    /// Resolves at the next job change made by this process.
    pub async fn changed(&self) {
        self.store.jobs_changed().await
    }

    /// Asks a job to stop (see `Store::request_cancel`). A job canceled before it ran is ended
    /// here, its handler undoing what creating it set up; a running one is signalled at once
    /// in this process, and through the store's NOTIFY in the others. `None` when the job is
    /// not pending or running.
    pub async fn cancel(
        &self,
        job: &crate::store::Job,
    ) -> StoreResult<Option<crate::store::JobStatus>> {
        let status = self.store.request_cancel(&job.id, Utc::now()).await?;
        if status == Some(crate::store::JobStatus::Canceled) {
            if let Some(handler) = self.registry.get(&job.job_type) {
                handler.abandoned(job, &Abandoned::Canceled).await;
            }
        }
        if status.is_some() {
            self.cancel_local(&job.id);
        }
        Ok(status)
    }

    fn cancel_local(&self, job_id: &str) {
        if let Some(token) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
        {
            token.cancel();
        }
    }

    /// Starts this process's worker pool; it runs until `shutdown` and then stops gracefully.
    pub fn start_workers(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(worker::run_pool(self.clone(), worker_id(), shutdown))
    }
}

/// Names this process in `lease_owner`: host, pid and a random suffix (a restarted process
/// with the same pid is still a different owner).
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
