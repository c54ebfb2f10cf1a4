//! The `DELETE_BACKUP` job: removes every object of a DELETING backup (its cross-region copies
//! too), then marks it DELETED. With `{"regionId"}` in its payload it removes one expired copy
//! only; with `{"purge": true}`, the objects a FAILED or CANCELED backup left behind when its
//! storage did not answer as it ended (its record already says it holds nothing; this makes
//! that true, retrying with backoff until the storage is back). Safe to run again after a
//! crash: deleting what is already gone is not an error.

use async_trait::async_trait;

use super::{delete_prefix, storage_error};
use crate::domain::backups::{BackupLayout, BackupStatus};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::service::Services;
use crate::store::Progress;

pub struct DeleteBackupHandler {
    pub(super) services: Services,
}

impl DeleteBackupHandler {
    /// Removes a backup's objects from one region: the manifest first, so whatever a crash
    /// leaves behind is no backup, only garbage.
    async fn delete_objects(
        &self,
        region_id: &str,
        layout: &BackupLayout,
    ) -> Result<u64, JobError> {
        let storage = self.services.storage_in(region_id)?;
        storage
            .delete_many(&[layout.manifest()])
            .await
            .map_err(|e| storage_error("deleting the backup's manifest", e))?;
        delete_prefix(storage.as_ref(), layout.prefix())
            .await
            .map_err(|e| storage_error("deleting the backup's objects", e))
    }
}

#[async_trait]
impl JobHandler for DeleteBackupHandler {
    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let store = &self.services.store;
        let Some(backup_id) = ctx.job().backup_id.clone() else {
            return Err(JobError::Permanent(
                "delete job without a backupId".to_owned(),
            ));
        };
        let backup = store.get_backup(&backup_id).await?;
        if let Some(region_id) = ctx.job().payload.get("regionId").and_then(|r| r.as_str()) {
            // One copy only.
            if let Some(backup) = &backup {
                let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
                self.delete_objects(region_id, &layout).await?;
            }
            store.delete_copy_row(&backup_id, region_id).await?;
            return Ok(());
        }
        if ctx.job().payload.get("purge") == Some(&serde_json::Value::Bool(true)) {
            if let Some(backup) = &backup {
                let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
                let removed = self.delete_objects(&backup.region_id, &layout).await?;
                tracing::info!(
                    objects = removed,
                    "leftovers of an unfinished backup removed"
                );
            }
            return Ok(());
        }
        let Some(backup) = backup.filter(|b| b.status != BackupStatus::Deleted) else {
            return Ok(()); // an earlier attempt finished
        };
        if backup.status != BackupStatus::Deleting {
            return Err(JobError::Permanent(format!(
                "backup {backup_id} is {}, not DELETING",
                backup.status.as_str()
            )));
        }
        ctx.progress(Progress {
            percent: 10,
            step: Some("deleting objects".to_owned()),
            ..Progress::default()
        })
        .await?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let copies = store.list_copies(&backup.id).await?;
        for copy in copies {
            self.delete_objects(&copy.region_id, &layout).await?;
            store.delete_copy_row(&backup.id, &copy.region_id).await?;
        }
        let deleted = self.delete_objects(&backup.region_id, &layout).await?;
        store
            .mark_backup_deleted(&backup.id, chrono::Utc::now())
            .await?;
        tracing::info!(objects = deleted, "backup deleted");
        ctx.finished(format!("backup deleted: {deleted} object(s) removed"), 0)
            .await;
        Ok(())
    }

    /// Half-deleted backups cannot be restored; a delete runs to its end.
    fn cancellable(&self) -> bool {
        false
    }
}
