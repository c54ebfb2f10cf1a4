//! The `COPY_BACKUP` job: copies an AVAILABLE backup into another region's storage under the
//! same keys (`crossRegionCopies`). Every object is checked against the manifest's checksum as
//! it lands; the manifest is copied last, so the copy, like the backup, is complete exactly
//! when its manifest exists. Idempotent: a retry copies everything again over the same keys.

use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use super::manifest::Manifest;
use super::{delete_prefix, storage_error, Services};
use crate::domain::backups::{BackupLayout, BackupStatus};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::objects::{self, DynObjectStore};
use crate::store::Progress;

pub struct CopyBackupHandler {
    pub(super) services: Services,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CopyPayload {
    region_id: String,
}

impl CopyBackupHandler {
    fn storage(&self, region_id: &str) -> Result<DynObjectStore, JobError> {
        self.services
            .regions
            .get(region_id)
            .map(|r| r.storage.clone())
            .ok_or_else(|| JobError::Permanent(format!("region {region_id} is not configured")))
    }

    async fn copy(
        &self,
        ctx: &JobContext,
        target: &DynObjectStore,
        region_id: &str,
    ) -> Result<i64, JobError> {
        let store = &self.services.store;
        let backup_id = ctx.job().backup_id.clone().unwrap_or_default();
        let backup = store
            .get_backup(&backup_id)
            .await
            .map_err(|e| JobError::Retryable(format!("metadata database: {e}")))?
            .filter(|b| b.status == BackupStatus::Available)
            .ok_or_else(|| {
                JobError::Permanent(format!("backup {backup_id} is no longer AVAILABLE"))
            })?;
        let source = self.storage(&backup.region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let manifest_bytes = objects::get_bytes(source.as_ref(), &layout.manifest())
            .await
            .map_err(|e| storage_error("reading the manifest", e))?;
        let manifest = Manifest::from_json(&manifest_bytes)
            .map_err(|e| JobError::Permanent(format!("the manifest is unreadable: {e}")))?;
        let total = manifest.size as i64;
        ctx.progress(Progress {
            percent: 1,
            bytes_total: total,
            step: Some(format!("copying to region {region_id}")),
            ..Progress::default()
        })
        .await?;
        let parallelism = self.services.config.backup.copy_parallelism;
        futures::stream::iter(manifest.objects.iter().cloned())
            .map(|object| {
                let (source, target) = (source.clone(), target.clone());
                async move {
                    ctx.checkpoint()?;
                    let written =
                        objects::copy(source.as_ref(), &object.key, target.as_ref(), &object.key)
                            .await
                            .map_err(|e| storage_error(&format!("copying {}", object.key), e))?;
                    if written.checksum != object.checksum || written.size != object.size {
                        return Err(JobError::Permanent(format!(
                            "backup object {} does not match its manifest (checksum {} ≠ {}); \
                             verify the backup",
                            object.key, written.checksum, object.checksum
                        )));
                    }
                    Ok(written.size)
                }
            })
            .buffer_unordered(parallelism)
            .try_collect::<Vec<u64>>()
            .await?;
        target
            .sync()
            .await
            .map_err(|e| storage_error("making the copy durable", e))?;
        objects::put_bytes(target.as_ref(), &layout.manifest(), manifest_bytes.into())
            .await
            .map_err(|e| storage_error("writing the copy's manifest", e))?;
        Ok(total)
    }
}

#[async_trait]
impl JobHandler for CopyBackupHandler {
    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let payload: CopyPayload = ctx.payload()?;
        let region_id = payload.region_id;
        let backup_id = ctx.job().backup_id.clone().unwrap_or_default();
        let target = self.storage(&region_id)?;
        let result = self.copy(&ctx, &target, &region_id).await;
        let store = &self.services.store;
        match result {
            Ok(size) => {
                store
                    .finish_copy(
                        &backup_id,
                        &region_id,
                        BackupStatus::Available,
                        size,
                        None,
                        Utc::now(),
                    )
                    .await
                    .map_err(|e| JobError::Retryable(format!("metadata database: {e}")))?;
                tracing::info!(%region_id, size, "backup copied");
                Ok(())
            }
            Err(err) if ctx.ends_with(&err) => {
                // Nothing half-copied stays behind as if it were a copy.
                if let Some(backup) = store.get_backup(&backup_id).await.ok().flatten() {
                    let layout =
                        BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
                    if let Err(e) = delete_prefix(target.as_ref(), layout.prefix()).await {
                        tracing::warn!(error = %e, "objects of a failed copy not removed");
                    }
                }
                let reason = err.to_string();
                if let Err(e) = store
                    .finish_copy(
                        &backup_id,
                        &region_id,
                        BackupStatus::Failed,
                        0,
                        Some(&reason),
                        Utc::now(),
                    )
                    .await
                {
                    tracing::warn!(error = %e, "failed copy not recorded");
                }
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}
