//! The `VERIFY_BACKUP` job: re-reads every object of an AVAILABLE backup (in its own region)
//! and checks it against the manifest. A damaged or missing object fails the job with a reason
//! naming it; the backup itself is left as it is (a restore would refuse it the same way).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use super::manifest::Manifest;
use super::{storage_error, Services};
use crate::domain::backups::{BackupLayout, BackupStatus};
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::objects::{self, ObjectError};
use crate::store::Progress;

pub struct VerifyBackupHandler {
    pub(super) services: Services,
}

#[async_trait]
impl JobHandler for VerifyBackupHandler {
    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let backup_id = ctx.job().backup_id.clone().unwrap_or_default();
        let backup = self
            .services
            .store
            .get_backup(&backup_id)
            .await
            .map_err(|e| JobError::Retryable(format!("metadata database: {e}")))?
            .filter(|b| b.status == BackupStatus::Available)
            .ok_or_else(|| JobError::Permanent(format!("backup {backup_id} is not AVAILABLE")))?;
        let storage = self.services.region_storage(&backup)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let manifest = Manifest::from_json(
            &objects::get_bytes(storage.as_ref(), &layout.manifest())
                .await
                .map_err(|e| match e {
                    ObjectError::NotFound(_) => JobError::Permanent(format!(
                        "the manifest of backup {backup_id} is missing"
                    )),
                    e => storage_error("reading the manifest", e),
                })?,
        )
        .map_err(|e| JobError::Permanent(format!("the manifest is unreadable: {e}")))?;
        let total = manifest.size as i64;
        let done = AtomicU64::new(0);
        let parallelism = self.services.config.backup.copy_parallelism;
        futures::stream::iter(manifest.objects.iter().cloned())
            .map(|object| {
                let (storage, ctx, done) = (storage.clone(), &ctx, &done);
                async move {
                    ctx.checkpoint()?;
                    match objects::verify(storage.as_ref(), &object.key, object.checksum).await {
                        Ok(written) if written.size == object.size => {}
                        Ok(written) => {
                            return Err(JobError::Permanent(format!(
                                "backup object {} has {} bytes, the manifest says {}",
                                object.key, written.size, object.size
                            )))
                        }
                        Err(
                            e @ (ObjectError::ChecksumMismatch { .. } | ObjectError::NotFound(_)),
                        ) => {
                            return Err(JobError::Permanent(format!(
                                "backup object {} is damaged: {e}",
                                object.key
                            )))
                        }
                        Err(e) => return Err(storage_error("reading backup objects", e)),
                    }
                    let bytes = done.fetch_add(object.size, Ordering::Relaxed) + object.size;
                    let _ = ctx
                        .progress(Progress {
                            percent: ((bytes as f64 / total.max(1) as f64) * 99.0) as i32,
                            bytes_done: bytes as i64,
                            bytes_total: total,
                            step: Some("verifying objects".to_owned()),
                        })
                        .await;
                    Ok(())
                }
            })
            .buffer_unordered(parallelism)
            .try_collect::<Vec<()>>()
            .await?;
        tracing::info!(objects = manifest.objects.len(), "backup verified");
        Ok(())
    }
}
