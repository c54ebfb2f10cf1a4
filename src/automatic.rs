//! Automatic backups: the scheduler that starts them in their window, and the retention rules
//! that delete them. Safe with any number of replicas ticking at once: each automatic backup's
//! job carries a dedupe key (`auto:<clusterId>:<slot date>`), so a slot yields one backup
//! whoever ticks first, and no replica is a leader that can die.
//!
//! The rules live here once: automatic backups expire `retentionDays` after creation and are
//! deleted by the service; manual ones are never touched; deleting a cluster deletes its
//! automatic backups.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::backups::{
    BackupStatus, BackupType, CreationMethod, BACKUP_JOB, DELETE_BACKUP_JOB,
};
use crate::domain::schedule::{last_closed_slot, open_slot, Frequency, Window};
use crate::jobs::Jobs;
use crate::store::{Backup, CreateBackupError, NewBackup, Plan, Policy, Store, StoreResult};

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
    store: Store,
    jobs: Jobs,
    /// Missed slots already reported by this process (each is reported once).
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Scheduler {
    pub fn new(store: Store, jobs: Jobs) -> Scheduler {
        Scheduler {
            store,
            jobs,
            reported: Arc::default(),
        }
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
    pub async fn tick(&self, now: DateTime<Utc>) -> StoreResult<TickReport> {
        let mut report = TickReport::default();
        for policy in self.store.enabled_policies().await? {
            let (Ok(days), Ok(window)) = (
                Frequency::parse(&policy.frequency),
                Window::parse(&policy.window),
            ) else {
                tracing::warn!(cluster_id = %policy.cluster_id, "stored policy does not parse; skipped");
                continue;
            };
            if let Some(slot) = open_slot(now, &days, &window) {
                let key = format!("auto:{}:{slot}", policy.cluster_id);
                if let Some(backup) = self.start_auto_backup(&policy, &key, now).await? {
                    report.started.push((policy.cluster_id.clone(), backup.id));
                }
            }
            if let Some((slot, closed)) = last_closed_slot(now, &days, &window) {
                let key = format!("auto:{}:{slot}", policy.cluster_id);
                let enabled_before = policy.enabled_at.is_some_and(|at| at < closed);
                if enabled_before && !self.store.job_with_dedupe_key_exists(&key).await? {
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
        for backup_id in self.store.expired_auto_backups(now).await? {
            if self.delete_backup(&backup_id, now).await? {
                report.expired.push(backup_id);
            }
        }
        for (backup_id, region_id) in self.store.expired_copies(now).await? {
            if self.delete_copy(&backup_id, &region_id, now).await? {
                report.expired.push(format!("{backup_id}@{region_id}"));
            }
        }
        Ok(report)
    }

    /// Starts the automatic backup keyed `key` unless it exists; `None` when it did.
    pub async fn start_auto_backup(
        &self,
        policy: &Policy,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Backup>> {
        let Some(cluster) = self.store.get_cluster(&policy.cluster_id).await? else {
            return Ok(None);
        };
        if cluster.plan != Plan::Dedicated {
            return Ok(None);
        }
        let new_backup = NewBackup {
            project_id: cluster.project_id.clone(),
            cluster_id: cluster.id.clone(),
            cluster_name: cluster.name.clone(),
            region_id: cluster.region_id.clone(),
            name: None,
            backup_type: BackupType::Cluster,
            creation_method: CreationMethod::Auto,
            selection: Vec::new(),
            expire_at: Some(now + chrono::Duration::days(policy.retention_days)),
            copy_regions: policy
                .cross_region_copies
                .iter()
                .map(|c| crate::domain::backups::CopyRequest {
                    region_id: c.region_id.clone(),
                    retention_days: Some(c.retention_days),
                })
                .collect(),
        };
        let mut job = self
            .jobs
            .new_job(&cluster.project_id, BACKUP_JOB, serde_json::json!({}));
        job.cluster_id = Some(cluster.id.clone());
        job.dedupe_key = Some(key.to_owned());
        match self.store.create_backup(&new_backup, &mut job, now).await {
            Ok(backup) => {
                self.jobs.enqueued();
                tracing::info!(cluster_id = %cluster.id, backup_id = %backup.id, %key, "automatic backup started");
                Ok(Some(backup))
            }
            Err(CreateBackupError::Duplicate) => Ok(None),
            Err(CreateBackupError::Store(e)) => Err(e),
            Err(other) => {
                tracing::warn!(cluster_id = %cluster.id, error = %other, "automatic backup not started");
                Ok(None)
            }
        }
    }

    /// Marks a finished backup DELETING and enqueues its delete job; false when it is not
    /// finished (or another replica got there first).
    pub async fn delete_backup(&self, backup_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let Some(backup) = self.store.get_backup(backup_id).await? else {
            return Ok(false);
        };
        let mut job =
            self.jobs
                .new_job(&backup.project_id, DELETE_BACKUP_JOB, serde_json::json!({}));
        job.cluster_id = Some(backup.cluster_id.clone());
        job.backup_id = Some(backup.id.clone());
        let started = self
            .store
            .start_backup_deletion(&backup.id, &job, now)
            .await?;
        if started {
            self.jobs.enqueued();
        }
        Ok(started)
    }

    /// Marks one finished cross-region copy DELETING and enqueues the delete job that removes
    /// only that copy; false when it is not finished (or another replica got there first).
    pub async fn delete_copy(
        &self,
        backup_id: &str,
        region_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let Some(backup) = self.store.get_backup(backup_id).await? else {
            return Ok(false);
        };
        let mut job = self.jobs.new_job(
            &backup.project_id,
            DELETE_BACKUP_JOB,
            serde_json::json!({ "regionId": region_id }),
        );
        job.cluster_id = Some(backup.cluster_id.clone());
        job.backup_id = Some(backup.id.clone());
        let started = self
            .store
            .start_copy_deletion(backup_id, region_id, &job, now)
            .await?;
        if started {
            self.jobs.enqueued();
        }
        Ok(started)
    }

    /// A cluster is being deleted: its automatic backups go (finished ones now, running ones
    /// are canceled and swept once they end); manual backups stay.
    pub async fn retire_cluster(&self, cluster_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        for (id, status, job_id) in self.store.backups_of_cluster(cluster_id, "AUTO").await? {
            match status.parse::<BackupStatus>() {
                Ok(BackupStatus::Creating) => {
                    if let Some(job) = match job_id {
                        Some(job_id) => self.store.get_job(&job_id).await?,
                        None => None,
                    } {
                        self.jobs.cancel(&job).await?;
                    }
                }
                Ok(BackupStatus::Available | BackupStatus::Failed | BackupStatus::Canceled) => {
                    self.delete_backup(&id, now).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
