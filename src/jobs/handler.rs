//! What a job type implements, and the context it runs with. Handlers never touch the jobs
//! table: they report progress, save resumable state and check for cancel through `JobContext`,
//! whose every write is fenced by the lease.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::{Job, Lease, Progress, Store};

/// Why a handler must stop at its next step boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    #[error("the job was canceled")]
    Canceled,
    #[error("the process is shutting down")]
    Interrupted,
    #[error("the job's lease was taken over by another process")]
    LeaseLost,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (network, a busy cluster). The message is shown to users.
    #[error("{0}")]
    Retryable(String),
    /// Will fail again however often it runs (bad input, missing resource).
    #[error("{0}")]
    Permanent(String),
    /// Stopped at a step boundary; for `Canceled` the handler has cleaned up.
    #[error(transparent)]
    Stopped(#[from] Stop),
}

/// Why a job ended without its handler finishing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abandoned {
    /// Canceled while PENDING.
    Canceled,
    /// Attempts exhausted by crashes; the reason the job ends with.
    GaveUp(String),
}

/// The metadata database failing mid-job is worth another attempt.
impl From<crate::store::StoreError> for JobError {
    fn from(err: crate::store::StoreError) -> Self {
        JobError::Retryable(format!("metadata database: {err}"))
    }
}

/// A use case's refusal (invalid, missing, conflicting) is final for a job; a dependency that
/// did not answer, or an internal failure, is worth another attempt.
impl From<crate::error::Error> for JobError {
    fn from(err: crate::error::Error) -> Self {
        use crate::error::Error;
        match err {
            Error::Upstream(message) | Error::Unavailable(message) => JobError::Retryable(message),
            Error::Internal(source) => JobError::Retryable(source.to_string()),
            other => JobError::Permanent(other.to_string()),
        }
    }
}

/// A job type's code. Steps must be idempotent: after a crash the job runs again from its
/// saved state and must not duplicate what an earlier attempt did.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError>;

    /// May users cancel this job type? Off unless a handler says so: a handler that allows
    /// it must, when canceled, undo what it wrote (the API and the console read this, so
    /// it is the one source of the rule).
    fn cancellable(&self) -> bool {
        false
    }

    /// The job ends without `run` being called again: its processes kept dying (attempts
    /// exhausted) or it was canceled before it started. The handler undoes what earlier
    /// attempts left behind. Errors are the handler's to log.
    async fn abandoned(&self, _job: &Job, _why: &Abandoned) {}
}

/// Job types and their handlers.
#[derive(Default, Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn register(mut self, job_type: &str, handler: impl JobHandler) -> Registry {
        self.handlers.insert(job_type.to_owned(), Arc::new(handler));
        self
    }

    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(job_type).cloned()
    }

    pub fn is_cancellable(&self, job_type: &str) -> bool {
        self.handlers.get(job_type).is_some_and(|h| h.cancellable())
    }

    /// Every registered job type, in name order.
    pub fn types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }

    /// The job types users may cancel, in name order.
    pub fn cancellable_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self
            .handlers
            .iter()
            .filter(|(_, h)| h.cancellable())
            .map(|(t, _)| t.as_str())
            .collect();
        types.sort_unstable();
        types
    }
}

/// Signals a running job receives.
#[derive(Debug, Clone, Default)]
pub(super) struct Signals {
    pub canceled: CancellationToken,
    pub interrupted: CancellationToken,
    pub lease_lost: CancellationToken,
}

impl Signals {
    pub fn stop(&self) -> Option<Stop> {
        if self.lease_lost.is_cancelled() {
            Some(Stop::LeaseLost)
        } else if self.canceled.is_cancelled() {
            Some(Stop::Canceled)
        } else if self.interrupted.is_cancelled() {
            Some(Stop::Interrupted)
        } else {
            None
        }
    }
}

/// Handed to a handler for one attempt of one job.
#[derive(Clone)]
pub struct JobContext {
    job: Arc<Job>,
    lease: Lease,
    store: Store,
    signals: Signals,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job.id)
            .field("attempt", &self.lease.attempt)
            .finish()
    }
}

impl JobContext {
    pub(super) fn new(job: Job, lease: Lease, store: Store, signals: Signals) -> JobContext {
        JobContext {
            job: Arc::new(job),
            lease,
            store,
            signals,
        }
    }

    /// The job as claimed (payload, resource ids, attempt, saved state).
    pub fn job(&self) -> &Job {
        &self.job
    }

    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("job payload is invalid: {e}")))
    }

    /// State saved by an earlier attempt, if any.
    pub fn saved_state<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        self.job
            .state
            .clone()
            .and_then(|s| serde_json::from_value(s).ok())
    }

    /// `Err` when the handler must stop now: canceled, shutting down, or lease lost.
    pub fn checkpoint(&self) -> Result<(), Stop> {
        match self.signals.stop() {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// Will the job end with `err`, so the handler must undo what it wrote now? True when it
    /// was canceled, or `err` will not be retried (permanent, or the last attempt). False for
    /// shutdowns and lost leases: another attempt resumes the work.
    pub fn ends_with(&self, err: &JobError) -> bool {
        self.is_canceled(err)
            || match err {
                JobError::Permanent(_) => true,
                JobError::Retryable(_) => self.job.attempts >= self.job.max_attempts,
                JobError::Stopped(_) => false,
            }
    }

    /// Canceled by a user (as opposed to failed)?
    pub fn is_canceled(&self, err: &JobError) -> bool {
        matches!(err, JobError::Stopped(Stop::Canceled))
            || matches!(self.checkpoint(), Err(Stop::Canceled))
    }

    /// Resolves when the job must stop; for `select!` around long waits.
    pub async fn stopped(&self) -> Stop {
        tokio::select! {
            _ = self.signals.lease_lost.cancelled() => Stop::LeaseLost,
            _ = self.signals.canceled.cancelled() => Stop::Canceled,
            _ = self.signals.interrupted.cancelled() => Stop::Interrupted,
        }
    }

    /// Records progress (fenced). A database hiccup is logged and skipped: progress is advisory.
    pub async fn progress(&self, progress: Progress) -> Result<(), Stop> {
        match self
            .store
            .update_progress(&self.lease, &progress, Utc::now())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.signals.lease_lost.cancel();
                Err(Stop::LeaseLost)
            }
            Err(e) => {
                tracing::warn!(job_id = %self.job.id, error = %e, "progress not recorded");
                Ok(())
            }
        }
    }

    /// The last progress of a job that did its work: 100 %, `bytes` of `bytes`, and a step
    /// that says what it did ("backup available: …"), which the job center shows once the job
    /// is SUCCESSFUL instead of the last step it was on. Called once the work is committed,
    /// so it cannot fail the job: a lease lost here only means another process will find the
    /// work done.
    pub async fn finished(&self, summary: String, bytes: i64) {
        let done = Progress {
            percent: 100,
            bytes_done: bytes,
            bytes_total: bytes,
            step: Some(summary),
        };
        if self.progress(done).await.is_err() {
            tracing::info!("lease lost after the job's work was committed");
        }
    }

    /// Saves the job's result, sealed by the handler (fenced); a failure is an error.
    pub async fn save_result(&self, sealed: &str) -> Result<(), JobError> {
        let written = self
            .store
            .save_job_result(&self.lease, sealed, Utc::now())
            .await;
        self.fenced(written, "the job's result")
    }

    /// Saves resumable state (fenced); unlike progress, a failure to save is an error.
    pub async fn save_state<T: serde::Serialize>(&self, state: &T) -> Result<(), JobError> {
        let value = serde_json::to_value(state)
            .map_err(|e| JobError::Permanent(format!("job state does not serialize: {e}")))?;
        let written = self
            .store
            .save_job_state(&self.lease, &value, Utc::now())
            .await;
        self.fenced(written, "job state")
    }

    /// What a fenced write of `what` means for the handler: zero rows written is a lost
    /// lease (stop now); a database failure is worth another attempt.
    fn fenced(&self, written: crate::store::StoreResult<bool>, what: &str) -> Result<(), JobError> {
        match written {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.signals.lease_lost.cancel();
                Err(Stop::LeaseLost.into())
            }
            Err(e) => Err(JobError::Retryable(format!("could not save {what}: {e}"))),
        }
    }
}
