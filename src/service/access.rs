//! Which cluster, backup or job a key may act on. A resource of a project the key has no role in
//! is reported missing (404), never as existing but forbidden (`Principal::authorize`).

use crate::auth::Principal;
use crate::domain::access::Privilege;
use crate::domain::backups::BackupStatus;
use crate::error::Error;
use crate::store::{Backup, Cluster, Job};

use super::Services;

impl Services {
    /// A registered cluster the key may take `privilege` on.
    pub async fn visible_cluster(
        &self,
        principal: &Principal,
        cluster_id: &str,
        privilege: Privilege,
    ) -> Result<Cluster, Error> {
        let cluster = self
            .store
            .get_cluster(cluster_id)
            .await?
            .ok_or_else(|| Error::not_found("cluster", cluster_id))?;
        principal.authorize(&cluster.project_id, privilege, "cluster", cluster_id)?;
        Ok(cluster)
    }

    /// A backup of `cluster_id` the key may take `privilege` on. The cluster itself may be
    /// gone: manual backups outlive it, and stay addressed by its id.
    pub async fn visible_backup(
        &self,
        principal: &Principal,
        cluster_id: &str,
        backup_id: &str,
        privilege: Privilege,
    ) -> Result<Backup, Error> {
        let backup = self
            .store
            .get_backup(backup_id)
            .await?
            .filter(|b| b.cluster_id == cluster_id && b.status != BackupStatus::Deleted)
            .ok_or_else(|| Error::not_found("backup", backup_id))?;
        principal.authorize(&backup.project_id, privilege, "backup", backup_id)?;
        Ok(backup)
    }

    /// A job the key may take `privilege` on.
    pub async fn visible_job(
        &self,
        principal: &Principal,
        job_id: &str,
        privilege: Privilege,
    ) -> Result<Job, Error> {
        let job = self
            .store
            .get_job(job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", job_id))?;
        principal.authorize(&job.project_id, privilege, "job", job_id)?;
        Ok(job)
    }
}
