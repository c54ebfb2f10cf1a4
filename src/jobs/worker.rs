//! The worker pool: claims due jobs (woken by NOTIFY or an in-process signal, with a slow
//! poll as fallback), runs each under a lease renewed by a heartbeat, and records how it ended.
//! On shutdown it stops claiming, lets running jobs reach a step boundary within the grace
//! period, and releases their leases so another process takes them at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::retry_delay;
use super::handler::{JobContext, JobError, Signals};
use super::outcome::{outcome, Attempted};
use super::Jobs;
use crate::store::{Job, JobStatus, Lease, Outcome};

type Active = Arc<Mutex<HashMap<String, Lease>>>;

/// Runs until `shutdown` is cancelled and every running job has stopped or been released.
pub(super) async fn run_pool(jobs: Jobs, owner: String, shutdown: CancellationToken) {
    let config = jobs.config.clone();
    let mut running: JoinSet<()> = JoinSet::new();
    let interrupt = CancellationToken::new();
    let active: Active = Arc::new(Mutex::new(HashMap::new()));
    let listener = {
        let (jobs, shutdown) = (jobs.clone(), shutdown.clone());
        tokio::spawn(async move {
            jobs.store
                .listen(shutdown, |job_id| jobs.cancel_local(job_id))
                .await
        })
    };
    let mut failures = 0u32;
    tracing::info!(owner = %owner, workers = config.workers, "job workers started");
    while !shutdown.is_cancelled() {
        while running.try_join_next().is_some() {}
        let free = config.workers.saturating_sub(running.len());
        if free == 0 {
            tokio::select! {
                _ = running.join_next() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let now = Utc::now();
        let claimed = jobs
            .store
            .claim_jobs(
                &owner,
                free as i64,
                now,
                now + chrono_duration(config.lease()),
            )
            .await;
        match claimed {
            Ok(claimed) if !claimed.is_empty() => {
                failures = 0;
                for job in claimed {
                    let run = run_job(jobs.clone(), job, interrupt.clone(), active.clone());
                    running.spawn(run);
                }
            }
            Ok(_) => {
                failures = 0;
                tokio::select! {
                    _ = jobs.store.jobs_ready() => {}
                    _ = tokio::time::sleep(config.poll_interval()) => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            Err(e) => {
                // The database is away (restart, failover): keep running jobs, retry later.
                failures += 1;
                let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "claiming jobs failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }

    // Graceful stop: running jobs stop at their next step boundary and release their lease.
    interrupt.cancel();
    let grace = tokio::time::sleep(config.shutdown_grace());
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = running.join_next() => if next.is_none() { break },
            _ = &mut grace => {
                tracing::warn!(still_running = running.len(), "jobs did not stop within the grace period; releasing their leases");
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
        }
    }
    let leftover: Vec<Lease> = active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, l)| l)
        .collect();
    for lease in leftover {
        if let Err(e) = jobs
            .store
            .finish_job(&lease, &Outcome::Released, Utc::now())
            .await
        {
            tracing::warn!(job_id = %lease.job_id, error = %e, "could not release lease; it expires on its own");
        }
    }
    listener.abort();
    tracing::info!(owner = %owner, "job workers stopped");
}

pub(super) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// One attempt of one job, from claim to its recorded outcome.
async fn run_job(jobs: Jobs, job: Job, interrupt: CancellationToken, active: Active) {
    let Some(lease) = job.lease() else { return };
    let span = tracing::info_span!("job", job_id = %job.id, job_type = %job.job_type, attempt = job.attempts);
    async move {
        active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id.clone(), lease.clone());
        let job_type = job.job_type.clone();
        let outcome = attempt(&jobs, job, &lease, interrupt).await;
        if let Some(outcome) = outcome {
            record(&jobs, &lease, &outcome).await;
            if let Some(metrics) = &jobs.metrics {
                let label = match outcome {
                    Outcome::Succeeded => "SUCCESSFUL",
                    Outcome::Failed { .. } => "FAILED",
                    Outcome::Canceled { .. } => "CANCELED",
                    Outcome::Retry { .. } => "RETRY",
                    Outcome::Released => "RELEASED",
                };
                metrics
                    .job_attempts
                    .get_or_create(&crate::metrics::JobLabels {
                        job_type,
                        outcome: label.to_owned(),
                    })
                    .inc();
            }
        }
        active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lease.job_id);
    }
    .instrument(span)
    .await
}

/// Runs the handler under a heartbeat; `None` when the lease was lost (write nothing).
async fn attempt(
    jobs: &Jobs,
    job: Job,
    lease: &Lease,
    interrupt: CancellationToken,
) -> Option<Outcome> {
    let config = &jobs.config;
    let Some(handler) = jobs.registry.get(&job.job_type) else {
        return Some(Outcome::Failed {
            reason: format!(
                "this version of Backstop cannot run jobs of type {}",
                job.job_type
            ),
        });
    };
    if job.attempts > job.max_attempts {
        let reason = format!(
            "gave up after {} attempts: the process running this job stopped each time",
            job.max_attempts
        );
        handler
            .abandoned(&job, &super::Abandoned::GaveUp(reason.clone()))
            .await;
        return Some(Outcome::Failed { reason });
    }
    let signals = Signals {
        interrupted: interrupt,
        ..Signals::default()
    };
    if job.status == JobStatus::Canceling {
        signals.canceled.cancel();
    }
    jobs.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id.clone(), signals.canceled.clone());
    let job_id = job.id.clone();
    tracing::info!("job started");
    let (attempts, max_attempts) = (job.attempts, job.max_attempts);
    let ctx = JobContext::new(job, lease.clone(), jobs.store.clone(), signals.clone());
    let heartbeat_done = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        jobs.clone(),
        lease.clone(),
        signals.clone(),
        heartbeat_done.clone(),
    ));
    let result = tokio::spawn(async move { handler.run(ctx).await }).await;
    heartbeat_done.cancel();
    let _ = heartbeat.await;
    jobs.running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job_id);

    if signals.lease_lost.is_cancelled() {
        tracing::warn!("lease lost: another process owns this job now; nothing recorded");
        return None;
    }
    let result = result.unwrap_or_else(|e| {
        Err(JobError::Retryable(if e.is_panic() {
            "the job's handler panicked (a bug); see the service log".to_owned()
        } else {
            "the job's task was aborted".to_owned()
        }))
    });
    let delay = retry_delay(
        attempts,
        config.backoff_base(),
        config.backoff_max(),
        rand::random(),
    );
    let ended = Attempted {
        result,
        canceled: signals.canceled.is_cancelled(),
        attempt: attempts,
        max_attempts,
    };
    let outcome = outcome(ended, Utc::now(), delay)?;
    match &outcome {
        Outcome::Succeeded => tracing::info!("job succeeded"),
        Outcome::Retry { reason, run_after } => {
            tracing::warn!(%reason, %run_after, "job attempt failed; will retry")
        }
        Outcome::Failed { reason } => tracing::warn!(%reason, "job failed"),
        Outcome::Canceled { .. } => tracing::info!("job canceled"),
        Outcome::Released => tracing::info!("job released for another process"),
    }
    Some(outcome)
}

/// Renews the lease every `lease / 3`; says when the lease is lost or a cancel was asked for.
async fn heartbeat(jobs: Jobs, lease: Lease, signals: Signals, done: CancellationToken) {
    let every = jobs.config.lease() / 3;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = Utc::now();
        match jobs
            .store
            .heartbeat(&lease, now, now + chrono_duration(jobs.config.lease()))
            .await
        {
            Ok(None) => {
                signals.lease_lost.cancel();
                return;
            }
            Ok(Some(JobStatus::Canceling)) => signals.canceled.cancel(),
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
        }
    }
}

/// Writes the outcome, retrying through a database outage for up to one lease length (after
/// that the lease has expired and another process will run the job again).
async fn record(jobs: &Jobs, lease: &Lease, outcome: &Outcome) {
    let deadline = tokio::time::Instant::now() + jobs.config.lease();
    let mut wait = Duration::from_millis(100);
    loop {
        match jobs.store.finish_job(lease, outcome, Utc::now()).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!("outcome not recorded: the lease was taken over");
                return;
            }
            Err(e) if tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, "recording the job outcome failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record the job outcome; the job will run again after its lease expires");
                return;
            }
        }
    }
}
