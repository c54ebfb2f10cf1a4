//! The scheduler: starts automatic backups in their window, reports missed slots, and deletes
//! what retention expired. Safe with any number of replicas ticking at once: each automatic
//! backup's job carries a dedupe key (`dedupe::auto_slot`), so a slot yields one backup
//! whoever ticks first, and no replica is a leader that can die.
//!
//! Retention is decided here once: automatic backups (and their cross-region copies) expire
//! `retentionDays` after creation and are deleted by the service; manual ones are never
//! touched. Deleting a cluster retires its automatic backups (`Services::delete_cluster`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::backups::dedupe;
use crate::domain::schedule::{last_closed_slot, open_slot};
use crate::error::Error;
use crate::service::Services;

/// What one tick did (tests read it; the service logs it).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    /// Backups started: (clusterId, backupId).
    pub started: Vec<(String, String)>,
    /// Slots whose window closed without a backup: (clusterId, slot date).
    pub missed: Vec<(String, chrono::NaiveDate)>,
    /// Automatic backups whose deletion started.
    pub expired: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Scheduler {
    services: Services,
    /// Missed slots already reported by this process (each is reported once).
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Scheduler {
    pub fn new(services: Services) -> Scheduler {
        Scheduler {
            services,
            reported: Arc::default(),
        }
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Ticks every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        tracing::info!(every_secs = every.as_secs(), "backup scheduler started");
        loop {
            match self.tick(Utc::now()).await {
                Ok(report) if report != TickReport::default() => {
                    tracing::info!(
                        started = report.started.len(),
                        missed = report.missed.len(),
                        expired = report.expired.len(),
                        "scheduler tick"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed; retrying at the next"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One pass at `now` (the clock is the caller's, so tests drive time).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, Error> {
        let services = &self.services;
        let store = &services.store;
        let mut report = TickReport::default();
        for policy in store.enabled_policies().await? {
            let (days, window) = (&policy.frequency, &policy.window);
            if let Some(slot) = open_slot(now, days, window) {
                let key = dedupe::auto_slot(&policy.cluster_id, slot);
                if let Some(backup) = services.start_auto_backup(&policy, &key, now).await? {
                    report.started.push((policy.cluster_id.clone(), backup.id));
                }
            }
            if let Some((slot, closed)) = last_closed_slot(now, days, window) {
                let key = dedupe::auto_slot(&policy.cluster_id, slot);
                let enabled_before = policy.enabled_at.is_some_and(|at| at < closed);
                if enabled_before && !store.job_with_dedupe_key_exists(&key).await? {
                    if self
                        .reported
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key)
                    {
                        tracing::warn!(cluster_id = %policy.cluster_id, %slot, "automatic backup slot missed: the service was not running in its window");
                    }
                    report.missed.push((policy.cluster_id.clone(), slot));
                }
            }
        }
        for backup_id in store.expired_auto_backups(now).await? {
            let Some(backup) = store.get_backup(&backup_id).await? else {
                continue;
            };
            match services.delete_backup(&backup, now).await {
                Ok(_) => report.expired.push(backup_id),
                // Being deleted already (another replica got there first).
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for (backup_id, region_id) in store.expired_copies(now).await? {
            if services.delete_copy(&backup_id, &region_id, now).await? {
                report.expired.push(format!("{backup_id}@{region_id}"));
            }
        }
        Ok(report)
    }
}
