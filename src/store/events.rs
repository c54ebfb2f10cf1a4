//! Wake-ups about the jobs table, kept by the store because the store is what writes it: every
//! method that commits a claimable job wakes this process's idle workers after the commit, and
//! on Postgres the same transaction sends `NOTIFY backstop_jobs` to every other process
//! (received by `Store::listen`). No caller has to remember a second call after an enqueue.

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Pool, Store};

/// In-process signals, shared by every clone of one `Store`.
#[derive(Debug, Default)]
pub(super) struct JobEvents {
    /// A job became claimable: wakes one idle worker pool (a permit waits if none is idle).
    ready: Notify,
    /// Some job changed (enqueued, claimed, progress, outcome, cancel): wakes event streams.
    changed: Notify,
}

impl Store {
    /// Called after a commit that made a job claimable.
    pub(super) fn job_ready(&self) {
        self.events.ready.notify_one();
        self.events.changed.notify_waiters();
    }

    /// Called after a commit that changed a job's status or progress.
    pub(super) fn job_changed(&self) {
        self.events.changed.notify_waiters();
    }

    /// Resolves when a job may have become claimable (here or, through LISTEN, elsewhere).
    pub async fn jobs_ready(&self) {
        self.events.ready.notified().await
    }

    /// Resolves at the next job change made by this process.
    pub async fn jobs_changed(&self) {
        self.events.changed.notified().await
    }

    /// Postgres: LISTENs until `shutdown` for jobs made claimable by any process (waking this
    /// process's workers) and for cancel requests (`on_cancel(job_id)`). Reconnects after a
    /// lost connection; workers poll meanwhile. SQLite has one process: returns at once.
    pub async fn listen(&self, shutdown: CancellationToken, on_cancel: impl Fn(&str)) {
        let Pool::Postgres(pool) = &self.pool else {
            return;
        };
        while !shutdown.is_cancelled() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::debug!(error = %e, "LISTEN connection failed; polling meanwhile");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = shutdown.cancelled() => return,
                    }
                }
            };
            if listener
                .listen_all([JOBS_CHANNEL, CANCEL_CHANNEL])
                .await
                .is_err()
            {
                continue;
            }
            loop {
                tokio::select! {
                    received = listener.recv() => match received {
                        Ok(n) if n.channel() == CANCEL_CHANNEL => on_cancel(n.payload()),
                        Ok(_) => self.events.ready.notify_one(),
                        Err(e) => {
                            tracing::debug!(error = %e, "LISTEN connection lost; reconnecting");
                            break;
                        }
                    },
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

pub(super) const JOBS_CHANNEL: &str = "backstop_jobs";
pub(super) const CANCEL_CHANNEL: &str = "backstop_cancel";
