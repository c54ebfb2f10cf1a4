//! The backup job handlers: `BACKUP` copies a cluster's binlogs into its region's storage and
//! writes meta and manifest; `DELETE_BACKUP` removes a backup's objects and then its row.

pub mod checked;
mod copy;
mod create;
mod delete;
pub mod manifest;
mod replicate;
mod verify;

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::domain::backups::{BACKUP_JOB, COPY_BACKUP_JOB, DELETE_BACKUP_JOB, VERIFY_BACKUP_JOB};
use crate::jobs::{JobError, Registry};
use crate::objects::{self, DynObjectStore, ObjectError};
use crate::regions::Regions;
use crate::store::{Backup, NewJob, Store};

pub use create::{BackupHandler, CollectionMeta};
pub use delete::DeleteBackupHandler;

/// What the backup handlers reach: the store, the regions' storage, the key that opens
/// cluster credentials, and the configuration.
#[derive(Clone, Debug)]
pub struct Services {
    pub store: Store,
    pub regions: Arc<Regions>,
    pub secrets: SecretBox,
    pub config: Arc<Config>,
}

/// Adds the backup job types to `registry`.
pub fn register(registry: Registry, services: &Services) -> Registry {
    registry
        .register(
            BACKUP_JOB,
            BackupHandler {
                services: services.clone(),
            },
        )
        .register(
            DELETE_BACKUP_JOB,
            DeleteBackupHandler {
                services: services.clone(),
            },
        )
        .register(
            VERIFY_BACKUP_JOB,
            verify::VerifyBackupHandler {
                services: services.clone(),
            },
        )
        .register(
            COPY_BACKUP_JOB,
            replicate::CopyBackupHandler {
                services: services.clone(),
            },
        )
}

impl Services {
    /// A job due now with the configured attempt limit (as `Jobs::new_job`, for handlers that
    /// enqueue follow-up work inside their own transaction).
    pub fn new_job(&self, project_id: &str, job_type: &str, payload: serde_json::Value) -> NewJob {
        NewJob::due_now(project_id, job_type, payload, self.config.jobs.max_attempts)
    }

    /// A client for `cluster`'s Milvus with the configured request deadline. An unusable
    /// cluster record (credentials that do not open) will not get better by retrying.
    pub fn milvus_for(
        &self,
        cluster: &crate::store::Cluster,
    ) -> Result<crate::milvus::MilvusClient, JobError> {
        let timeout = std::time::Duration::from_secs(self.config.milvus.request_timeout_secs);
        crate::clusters::milvus_client(cluster, &self.secrets, timeout)
            .map_err(|e| JobError::Permanent(e.to_string()))
    }

    /// The storage of the backup's own region.
    fn region_storage(&self, backup: &Backup) -> Result<DynObjectStore, JobError> {
        self.storage_in(&backup.region_id)
    }

    /// A region's storage. A region removed from the configuration while backups still live
    /// there is an operator's error: the job says so and does not retry.
    pub fn storage_in(&self, region_id: &str) -> Result<DynObjectStore, JobError> {
        self.regions
            .get(region_id)
            .map(|region| region.storage.clone())
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "region '{region_id}' is not configured any more; add it back to the \
                     configuration to reach the backups stored there"
                ))
            })
    }
}

/// Deletes every object whose key starts with `prefix`, a thousand per request.
pub async fn delete_prefix(
    storage: &dyn objects::ObjectStore,
    prefix: &str,
) -> Result<u64, ObjectError> {
    let mut deleted = 0;
    loop {
        let page = storage.list(prefix, None, 1000).await?;
        if page.objects.is_empty() {
            return Ok(deleted);
        }
        let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
        deleted += keys.len() as u64;
        storage.delete_many(&keys).await?;
    }
}

/// Object storage failures are worth another attempt; the message names the operation.
fn storage_error(context: &str, err: ObjectError) -> JobError {
    JobError::Retryable(format!("{context}: {err}"))
}
