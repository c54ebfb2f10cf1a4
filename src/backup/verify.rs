//! The `VERIFY_BACKUP` job: re-reads every object of an AVAILABLE backup (in its own region)
//! and checks it against the manifest. A damaged or missing object fails the job with a reason
//! naming it; the backup itself is left as it is (a restore would refuse it the same way).

use async_trait::async_trait;

use super::checked::{available_backup, read_manifest, verify_objects};
use crate::domain::backups::BackupLayout;
use crate::jobs::{JobContext, JobError, JobHandler};
use crate::service::Services;

pub struct VerifyBackupHandler {
    pub(super) services: Services,
}

#[async_trait]
impl JobHandler for VerifyBackupHandler {
    /// Verify only reads.
    fn cancellable(&self) -> bool {
        true
    }

    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let backup = available_backup(&self.services, &ctx).await?;
        let storage = self.services.storage_in(&backup.region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let (manifest, _) = read_manifest(storage.as_ref(), &layout).await?;
        let count = manifest.objects.len();
        let parallelism = self.services.config.backup.copy_parallelism;
        verify_objects(&ctx, &storage, manifest.objects, parallelism, true).await?;
        tracing::info!(objects = count, "backup verified");
        let summary = format!("verified: {count} object(s) match the manifest");
        ctx.finished(summary, manifest.size as i64).await;
        Ok(())
    }
}
