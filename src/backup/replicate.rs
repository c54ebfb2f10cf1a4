//! The `COPY_BACKUP` job: copies an AVAILABLE backup into another region's storage under the
//! same keys (`crossRegionCopies`). Every object is checked against the manifest's checksum as
//! it lands; the manifest is copied last, so the copy, like the backup, is complete exactly
//! when its manifest exists. Idempotent: a retry copies everything again over the same keys.

use async_trait::async_trait;
use chrono::Utc;

use super::checked::{available_backup, copy_objects, read_manifest, CopyProgress};
use super::{delete_prefix, storage_error};
use crate::domain::backups::{BackupLayout, BackupStatus};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::objects::{self, DynObjectStore};
use crate::service::Services;
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
    async fn copy(
        &self,
        ctx: &JobContext,
        target: &DynObjectStore,
        region_id: &str,
    ) -> Result<i64, JobError> {
        let backup = available_backup(&self.services, ctx).await?;
        let source = self.services.storage_in(&backup.region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let (manifest, manifest_bytes) = read_manifest(source.as_ref(), &layout).await?;
        let total = manifest.size as i64;
        ctx.progress(Progress {
            percent: 1,
            bytes_total: total,
            step: Some(format!("copying to region {region_id}")),
            ..Progress::default()
        })
        .await?;
        let same_keys = manifest
            .objects
            .into_iter()
            .map(|object| {
                let key = object.key.clone();
                (object, key)
            })
            .collect();
        let parallelism = self.services.config.backup.copy_parallelism;
        let step = format!("copying to region {region_id}");
        let progress = CopyProgress {
            step: &step,
            from: 1,
            to: 99,
        };
        copy_objects(ctx, &source, target, same_keys, parallelism, progress, None).await?;
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
    /// A canceled copy removes what it wrote; the copy is recorded FAILED with the reason.
    fn cancellable(&self) -> bool {
        true
    }

    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let payload: CopyPayload = ctx.payload()?;
        let region_id = payload.region_id;
        let backup_id = ctx.job().backup_id.clone().unwrap_or_default();
        let target = self.services.storage_in(&region_id)?;
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
                    .await?;
                tracing::info!(%region_id, size, "backup copied");
                ctx.finished(format!("copy available in region {region_id}"), size)
                    .await;
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
