//! The backup job handlers: `BACKUP` copies a cluster's binlogs into its region's storage and
//! writes meta and manifest; `DELETE_BACKUP` removes a backup's objects (or one copy's) and
//! then its row; `VERIFY_BACKUP` re-reads every object; `COPY_BACKUP` copies a finished backup
//! into another region.

pub mod checked;
mod copy;
mod create;
mod delete;
mod live_rows;
pub mod manifest;
mod replicate;
mod verify;

use crate::domain::backups::{BACKUP_JOB, COPY_BACKUP_JOB, DELETE_BACKUP_JOB, VERIFY_BACKUP_JOB};
use crate::jobs::{JobError, Registry};
use crate::objects::{self, ObjectError};
use crate::service::Services;

pub use create::BackupHandler;
pub use delete::DeleteBackupHandler;

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
