//! Backups: creating one (the task rules), deleting it, verifying it, and the copy jobs that
//! follow it into other regions. The HTTP layer and the scheduler both start backups here, so
//! a manual and an automatic backup meet the same rules and the same messages.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::Services;
use crate::domain::backups::{
    dedupe, validate_copies, validate_selection, BackupStatus, BackupType, CopyRequest,
    CreationMethod, DbCollections, BACKUP_JOB, COPY_BACKUP_JOB, DELETE_BACKUP_JOB,
    VERIFY_BACKUP_JOB,
};
use crate::domain::clusters::DedicatedOnly;
use crate::domain::names;
use crate::error::Error;
use crate::store::{Backup, Cluster, CreateBackupError, NewBackup, NewJob, Policy};

/// `POST /v2/clusters/{clusterId}/backups/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBackup {
    pub backup_type: BackupType,
    /// For COLLECTION backups: the collections, per database (`dbName` defaults to `default`).
    #[serde(default)]
    pub db_collections: Vec<DbCollections>,
    /// Default: `<clusterName>_backup<N>`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub backup_name: Option<String>,
    /// Other regions to copy the backup to once it is AVAILABLE (kept until deleted).
    #[serde(default)]
    pub cross_region_copies: Vec<CopyRequest>,
}

/// A backup recorded with the job that makes it.
#[derive(Debug)]
pub struct Started {
    pub backup: Backup,
    pub job_id: String,
}

impl CreateBackup {
    /// The request's shape, before anything is asked of Milvus.
    fn validate(&self) -> Result<(), Error> {
        if let Some(name) = &self.backup_name {
            names::validate_resource_name("backupName", name).map_err(Error::invalid)?;
        }
        match self.backup_type {
            BackupType::Cluster if !self.db_collections.is_empty() => Err(Error::invalid(
                "dbCollections is only for backupType COLLECTION; a CLUSTER backup takes every \
                 database and collection (drop dbCollections, or use backupType COLLECTION)",
            )),
            BackupType::Cluster => Ok(()),
            BackupType::Collection => {
                validate_selection(&self.db_collections).map_err(Error::invalid)
            }
        }
    }
}

impl Services {
    /// Starts a manual backup of `cluster`: checks the request, that every database and
    /// collection it names exists now (a typo is refused here, not discovered by the job),
    /// and the task rules, then records the backup and its job in one transaction.
    pub async fn create_manual_backup(
        &self,
        cluster: &Cluster,
        body: CreateBackup,
    ) -> Result<Started, Error> {
        body.validate()?;
        DedicatedOnly::Backups
            .check(cluster.plan, "cluster", &cluster.id)
            .map_err(Error::Unprocessable)?;
        validate_copies(
            &body.cross_region_copies,
            &cluster.region_id,
            &self.regions.ids(),
        )
        .map_err(Error::invalid)?;
        if body
            .cross_region_copies
            .iter()
            .any(|c| c.retention_days.is_some())
        {
            return Err(Error::invalid(
                "crossRegionCopies[].retentionDays is for automatic backups (the policy); copies \
                 of a manual backup are kept until it is deleted",
            ));
        }
        if body.backup_type == BackupType::Collection {
            self.check_selection_exists(cluster, &body.db_collections)
                .await?;
        }
        let new_backup = NewBackup {
            project_id: cluster.project_id.clone(),
            cluster_id: cluster.id.clone(),
            cluster_name: cluster.name.clone(),
            region_id: cluster.region_id.clone(),
            name: body.backup_name,
            backup_type: body.backup_type,
            creation_method: CreationMethod::Manual,
            selection: body.db_collections,
            expire_at: None,
            copy_regions: body.cross_region_copies,
        };
        let started = self
            .record_backup(&new_backup, None, Utc::now())
            .await
            .map_err(|e| task_rule_refusal(&cluster.id, e))?;
        tracing::info!(backup_id = %started.backup.id, job_id = %started.job_id, cluster_id = %cluster.id, "backup requested");
        Ok(started)
    }

    /// Starts the automatic backup of `policy`'s cluster keyed `key` (one per slot, whoever
    /// asks first); `None` when it exists already, or when a task rule or the plan refuses it
    /// (logged: the scheduler tries again at its next slot).
    pub async fn start_auto_backup(
        &self,
        policy: &Policy,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Backup>, Error> {
        let Some(cluster) = self.store.get_cluster(&policy.cluster_id).await? else {
            return Ok(None);
        };
        if let Err(reason) =
            DedicatedOnly::AutomaticBackups.check(cluster.plan, "cluster", &cluster.id)
        {
            tracing::warn!(cluster_id = %cluster.id, %reason, "automatic backup not started");
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
            expire_at: Some(policy.retention_days.expiry(now)),
            copy_regions: policy
                .cross_region_copies
                .iter()
                .map(|c| CopyRequest {
                    region_id: c.region_id.clone(),
                    retention_days: Some(c.retention_days.days()),
                })
                .collect(),
        };
        match self.record_backup(&new_backup, Some(key), now).await {
            Ok(started) => {
                tracing::info!(cluster_id = %cluster.id, backup_id = %started.backup.id, %key, "automatic backup started");
                Ok(Some(started.backup))
            }
            Err(CreateBackupError::Duplicate) => Ok(None),
            Err(CreateBackupError::Store(e)) => Err(e.into()),
            Err(other) => {
                tracing::warn!(cluster_id = %cluster.id, error = %other, "automatic backup not started");
                Ok(None)
            }
        }
    }

    /// The backup row and its job, in one transaction (the store enforces the task rules).
    async fn record_backup(
        &self,
        new_backup: &NewBackup,
        dedupe_key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Started, CreateBackupError> {
        let mut job = self
            .new_job(&new_backup.project_id, BACKUP_JOB, serde_json::json!({}))
            .for_cluster(&new_backup.cluster_id);
        job.dedupe_key = dedupe_key.map(str::to_owned);
        let backup = self.store.create_backup(new_backup, &mut job, now).await?;
        Ok(Started {
            backup,
            job_id: job.id,
        })
    }

    /// Every database and collection named must exist in the cluster now.
    async fn check_selection_exists(
        &self,
        cluster: &Cluster,
        selection: &[DbCollections],
    ) -> Result<(), Error> {
        let named: Vec<&str> = selection.iter().map(|db| db.db_name.as_str()).collect();
        let existing = self.collections(cluster, Some(&named)).await?;
        for (i, db) in selection.iter().enumerate() {
            let Some(collections) = existing.get(&db.db_name) else {
                return Err(Error::NotFound(format!(
                    "dbCollections[{i}].dbName: database '{}' does not exist in cluster {}; \
                     GET /v2/clusters/{}/collections lists what exists",
                    db.db_name, cluster.id, cluster.id
                )));
            };
            let missing: Vec<&str> = db
                .collection_names
                .iter()
                .filter(|n| !collections.iter().any(|c| &c.name == *n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Error::NotFound(format!(
                    "dbCollections[{i}].collectionNames: {} not in database '{}' of cluster {}: {}; \
                     GET /v2/clusters/{}/collections lists what exists",
                    if missing.len() == 1 {
                        "collection is"
                    } else {
                        "collections are"
                    },
                    db.db_name,
                    cluster.id,
                    missing.join(", "),
                    cluster.id
                )));
            }
        }
        Ok(())
    }

    /// The jobs that copy an AVAILABLE backup into the regions it asked for, to be committed
    /// with the backup's completion.
    pub fn copy_jobs(&self, backup: &Backup) -> Vec<(CopyRequest, NewJob)> {
        backup
            .copy_regions
            .iter()
            .map(|copy| {
                let mut job = self
                    .new_job(
                        &backup.project_id,
                        COPY_BACKUP_JOB,
                        serde_json::json!({ "regionId": copy.region_id }),
                    )
                    .for_backup(backup);
                job.dedupe_key = Some(dedupe::copy(&backup.id, &copy.region_id));
                (copy.clone(), job)
            })
            .collect()
    }

    /// Marks a finished backup DELETING and enqueues the job that removes its objects (and
    /// those of its copies); returns the job's id. A backup being created or deleted is a
    /// conflict.
    pub async fn delete_backup(
        &self,
        backup: &Backup,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let backup_id = &backup.id;
        match backup.status {
            BackupStatus::Creating => {
                return Err(Error::Conflict(format!(
                    "backup {backup_id} is still being created; cancel its job ({}) first",
                    backup.job_id.as_deref().unwrap_or("unknown")
                )))
            }
            BackupStatus::Deleting => {
                return Err(Error::Conflict(format!(
                    "backup {backup_id} is already being deleted (job {})",
                    backup.job_id.as_deref().unwrap_or("unknown")
                )))
            }
            _ => {}
        }
        let job = self
            .new_job(&backup.project_id, DELETE_BACKUP_JOB, serde_json::json!({}))
            .for_backup(backup);
        if !self
            .store
            .start_backup_deletion(backup_id, &job, now)
            .await?
        {
            return Err(Error::Conflict(format!(
                "backup {backup_id} changed state meanwhile; read it again and retry"
            )));
        }
        tracing::info!(%backup_id, job_id = %job.id, "backup deletion started");
        Ok(job.id)
    }

    /// Marks one finished cross-region copy DELETING and enqueues the job that removes only
    /// that copy; false when it is not finished (or another replica got there first).
    pub async fn delete_copy(
        &self,
        backup_id: &str,
        region_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let Some(backup) = self.store.get_backup(backup_id).await? else {
            return Ok(false);
        };
        let job = self
            .new_job(
                &backup.project_id,
                DELETE_BACKUP_JOB,
                serde_json::json!({ "regionId": region_id }),
            )
            .for_backup(&backup);
        Ok(self
            .store
            .start_copy_deletion(backup_id, region_id, &job, now)
            .await?)
    }

    /// Starts a job that re-reads every object of an AVAILABLE backup; returns its id.
    pub async fn verify_backup(&self, backup: &Backup) -> Result<String, Error> {
        if backup.status != BackupStatus::Available {
            return Err(Error::Conflict(format!(
                "backup {} is {}; only AVAILABLE backups can be verified",
                backup.id,
                backup.status.as_str()
            )));
        }
        let job = self
            .new_job(&backup.project_id, VERIFY_BACKUP_JOB, serde_json::json!({}))
            .for_backup(backup);
        self.store.insert_job(&job, Utc::now()).await?;
        Ok(job.id)
    }
}

/// A task rule's refusal in the API's words.
fn task_rule_refusal(cluster_id: &str, err: CreateBackupError) -> Error {
    match err {
        CreateBackupError::ManualRunning => Error::Conflict(format!(
            "a manual backup of cluster {cluster_id} is already pending or running; wait for it \
             to finish (GET /v2/jobs?clusterId={cluster_id}) or cancel its job"
        )),
        CreateBackupError::AutoRunning => Error::Conflict(format!(
            "an automatic backup of cluster {cluster_id} is pending or running; a manual backup \
             can start when it ends"
        )),
        CreateBackupError::NameTaken(name) => Error::Conflict(format!(
            "backupName '{name}' is already used in cluster {cluster_id}; choose another name"
        )),
        CreateBackupError::Duplicate => {
            Error::Conflict("this backup was already started".to_owned())
        }
        CreateBackupError::Store(e) => e.into(),
    }
}
