//! Restores: what a `restoreCollection` or `restoreCluster` request becomes. Everything that
//! can be checked before the job runs is checked here (the backup is AVAILABLE and readable in
//! the destination's region, the destination is Dedicated and has none of the collections to
//! create, the names are valid), so that a refusal is an answer, not a failed job.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::Services;
use crate::auth::Principal;
use crate::domain::access::Privilege;
use crate::domain::backups::BackupStatus;
use crate::domain::clusters::DedicatedOnly;
use crate::domain::names;
use crate::domain::restore::{
    renames, tested_destination, OnExisting, RestorePlan, RestoreResult, RestoreTarget,
    RESTORE_CLUSTER_JOB, RESTORE_COLLECTION_JOB, TESTED_DESTINATIONS,
};
use crate::error::Error;
use crate::service::clusters::upstream;
use crate::store::{BackedUpCollection, Backup, Cluster};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollectionStatus {
    Loaded,
    NotLoaded,
    /// Zilliz's documents use this too; the same as `NOT_LOADED`.
    Unloaded,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionToRestore {
    pub collection_name: String,
    /// Also accepted as `targetCollectionName` (an older form of Zilliz's documents).
    #[serde(alias = "targetCollectionName")]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub dest_collection_name: Option<String>,
    /// Also accepted as `targetCollectionStatus`.
    #[serde(alias = "targetCollectionStatus")]
    pub dest_collection_status: Option<CollectionStatus>,
    /// What to do when the destination collection exists (default: the body's `onExisting`).
    pub on_existing: Option<OnExisting>,
    /// Schema, partitions, indexes and aliases only (default: the body's `metaOnly`).
    pub meta_only: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DbToRestore {
    /// The database in the backup; `default` when left out.
    #[serde(default = "crate::domain::backups::default_db")]
    #[schema(default = "default")]
    pub db_name: String,
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub dest_db_name: Option<String>,
    pub collections: Vec<CollectionToRestore>,
}

/// `POST .../backups/{backupId}/restoreCollection`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreCollections {
    pub dest_cluster_id: String,
    /// Omitted or empty: every collection of the backup, under its own name, NOT_LOADED.
    #[serde(default)]
    pub db_collections: Vec<DbToRestore>,
    /// Grant the backup's roles their privileges on the restored collections, under the
    /// names they take (default false). Missing roles are created; no users are.
    pub restore_rbac: Option<bool>,
    /// What to do when a destination collection exists: `FAIL` (default), `DROP` (replace it
    /// once the backup's objects verified) or `SKIP` (leave it, restore the others).
    pub on_existing: Option<OnExisting>,
    /// Restore schema, partitions, indexes and aliases only, no rows (default false).
    pub meta_only: Option<bool>,
    /// Restore into a Milvus version outside the tested range anyway (default false).
    pub allow_untested_version: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterCollectionStatus {
    /// Load what was loaded when the backup was taken.
    Keep,
    /// Load nothing.
    Release,
}

/// `POST .../backups/{backupId}/restoreCluster`. The destination is a registered cluster:
/// `destClusterId`, or Zilliz's form `projectId` + `clusterName` (+ `cuSize`) naming one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreCluster {
    pub dest_cluster_id: Option<String>,
    /// With `clusterName`: the project of the registered destination cluster.
    pub project_id: Option<String>,
    /// With `projectId`: the name the destination cluster is registered under.
    #[schema(min_length = 1, max_length = 64)]
    pub cluster_name: Option<String>,
    /// Zilliz sizes the new cluster with it; Backstop provisions nothing, so when given it
    /// must be the registered destination's `cuSize`.
    #[schema(minimum = 1, maximum = 256)]
    pub cu_size: Option<i64>,
    pub collection_status: Option<ClusterCollectionStatus>,
    /// Recreate the backup's users, roles and grants (default true). Missing users get a new
    /// password each, shown once in the job's `result`; existing users keep theirs.
    pub restore_rbac: Option<bool>,
    /// What to do when a destination collection exists: `FAIL` (default), `DROP` or `SKIP`.
    pub on_existing: Option<OnExisting>,
    /// Restore schema, partitions, indexes and aliases only, no rows (default false).
    pub meta_only: Option<bool>,
    /// Restore into a Milvus version outside the tested range anyway (default false).
    pub allow_untested_version: Option<bool>,
}

impl Services {
    /// A job's result as its caller may see it. `first_read` (describing the job) shows a
    /// restore's new passwords once, to whoever reads the ended job first, and removes them
    /// from the store; every other view (lists, event streams, reads while it runs) shows
    /// the user names only.
    pub async fn job_result(
        &self,
        job: &crate::store::Job,
        first_read: bool,
    ) -> Result<Option<RestoreResult>, Error> {
        let Some(sealed) = &job.result else {
            return Ok(None);
        };
        let result: RestoreResult =
            serde_json::from_slice(&self.secrets.open(sealed).map_err(Error::internal)?)
                .map_err(Error::internal)?;
        if !result.has_passwords() {
            return Ok(Some(result));
        }
        let read = result.without_passwords();
        // Shown to the first read once the job has ended: a poll of a running job (whose
        // users may still be being made) does not use them up.
        if !first_read || !job.status.is_final() {
            return Ok(Some(read));
        }
        let resealed = self
            .secrets
            .seal(&serde_json::to_vec(&read).expect("result serializes"));
        // Only the reader that removed them sees the passwords.
        if self
            .store
            .replace_job_result(&job.id, sealed, &resealed)
            .await?
        {
            Ok(Some(result))
        } else {
            Ok(Some(read))
        }
    }
}

/// A restore job started into `dest`.
#[derive(Debug)]
pub struct RestoreStarted {
    pub dest: Cluster,
    pub job_id: String,
}

impl Services {
    /// Restores chosen collections (or all) of the backup, renamed and loaded as asked.
    pub async fn restore_collections(
        &self,
        principal: &Principal,
        cluster_id: &str,
        backup_id: &str,
        body: RestoreCollections,
    ) -> Result<RestoreStarted, Error> {
        let (backup, dest) = self
            .source_and_destination(principal, cluster_id, backup_id, &body.dest_cluster_id)
            .await?;
        let defaults = Defaults {
            on_existing: body.on_existing.unwrap_or_default(),
            meta_only: body.meta_only.unwrap_or(false),
        };
        self.check_destination_version(&dest, body.allow_untested_version)
            .await?;
        let targets = if body.db_collections.is_empty() {
            backup
                .collections
                .iter()
                .map(|c| target(c, &c.db_name, &c.collection_name, false, defaults))
                .collect()
        } else {
            chosen_targets(&backup, &body.db_collections, defaults)?
        };
        let rbac = body.restore_rbac.unwrap_or(false);
        let has_grants = backup
            .rbac
            .as_ref()
            .is_some_and(|r| !r.collection_grants(&renames(&targets)).is_empty());
        if rbac && !has_grants {
            return Err(Error::Unprocessable(format!(
                "restoreRbac: backup {backup_id} holds no grants on the collections chosen \
                 (its Milvus had no role granted on them, or authorization off); leave \
                 restoreRbac out"
            )));
        }
        self.start_restore(&backup, dest, RESTORE_COLLECTION_JOB, targets, rbac)
            .await
    }

    /// Restores every collection of the backup under its own name, loading what was loaded
    /// (`KEEP`, the default) or nothing (`RELEASE`).
    pub async fn restore_cluster(
        &self,
        principal: &Principal,
        cluster_id: &str,
        backup_id: &str,
        body: RestoreCluster,
    ) -> Result<RestoreStarted, Error> {
        let dest_cluster_id = self.cluster_restore_destination(principal, &body).await?;
        let (backup, dest) = self
            .source_and_destination(principal, cluster_id, backup_id, &dest_cluster_id)
            .await?;
        if let Some(cu_size) = body.cu_size.filter(|&cu| cu != dest.cu_size) {
            return Err(Error::Unprocessable(format!(
                "cuSize: Backstop restores into registered clusters and provisions none;                  cluster {} has cuSize {}, not {cu_size}: leave cuSize out or give {}",
                dest.id, dest.cu_size, dest.cu_size
            )));
        }
        let defaults = Defaults {
            on_existing: body.on_existing.unwrap_or_default(),
            meta_only: body.meta_only.unwrap_or(false),
        };
        self.check_destination_version(&dest, body.allow_untested_version)
            .await?;
        let keep = body.collection_status != Some(ClusterCollectionStatus::Release);
        let targets = backup
            .collections
            .iter()
            .map(|c| {
                let load = keep && c.loaded && !defaults.meta_only;
                target(c, &c.db_name, &c.collection_name, load, defaults)
            })
            .collect();
        let rbac = body.restore_rbac.unwrap_or(true);
        self.start_restore(&backup, dest, RESTORE_CLUSTER_JOB, targets, rbac)
            .await
    }

    /// Refuses a destination whose Milvus version the restore path is not tested against,
    /// unless the caller says to go ahead.
    async fn check_destination_version(
        &self,
        dest: &Cluster,
        allow_untested: Option<bool>,
    ) -> Result<(), Error> {
        let version = self
            .milvus(dest)?
            .version()
            .await
            .map_err(|e| upstream(&dest.id, e))?;
        if tested_destination(&version) || allow_untested == Some(true) {
            return Ok(());
        }
        Err(Error::Unprocessable(format!(
            "cluster {} runs Milvus {version}, which restores are not tested against (tested: \
             {TESTED_DESTINATIONS}); pass allowUntestedVersion: true to restore anyway",
            dest.id
        )))
    }

    /// The id of a cluster restore's destination: `destClusterId`, or the cluster registered
    /// as `clusterName` in `projectId` (Zilliz's body, which there names a cluster to create).
    async fn cluster_restore_destination(
        &self,
        principal: &Principal,
        body: &RestoreCluster,
    ) -> Result<String, Error> {
        match (&body.dest_cluster_id, &body.project_id, &body.cluster_name) {
            (Some(id), None, None) => Ok(id.clone()),
            (Some(_), _, _) => Err(Error::invalid(
                "give either destClusterId or projectId with clusterName, not both",
            )),
            (None, Some(project_id), Some(name)) => {
                principal.authorize(project_id, Privilege::BackupRestore, "project", project_id)?;
                let found = self.store.find_cluster_by_name(project_id, name).await?;
                found.map(|c| c.id).ok_or_else(|| {
                    Error::NotFound(format!(
                        "no cluster named '{name}' is registered in project {project_id};                          Backstop restores into registered clusters and creates none:                          register the destination Milvus first (POST /v2/clusters) or give                          destClusterId"
                    ))
                })
            }
            (None, _, _) => Err(Error::invalid(
                "destClusterId is required (or projectId with clusterName naming a registered                  cluster)",
            )),
        }
    }

    /// The backup (AVAILABLE, of `cluster_id`) and the destination cluster, both checked.
    async fn source_and_destination(
        &self,
        principal: &Principal,
        cluster_id: &str,
        backup_id: &str,
        dest_cluster_id: &str,
    ) -> Result<(Backup, Cluster), Error> {
        let backup = self
            .visible_backup(principal, cluster_id, backup_id, Privilege::BackupRestore)
            .await?;
        if backup.status != BackupStatus::Available {
            return Err(Error::Conflict(format!(
                "backup {backup_id} is {}; only AVAILABLE backups can be restored",
                backup.status.as_str()
            )));
        }
        let dest = self
            .visible_cluster(principal, dest_cluster_id, Privilege::BackupRestore)
            .await?;
        DedicatedOnly::Restore
            .check(dest.plan, "destClusterId", dest_cluster_id)
            .map_err(Error::Unprocessable)?;
        if dest.region_id != backup.region_id {
            let copy = self.store.get_copy(&backup.id, &dest.region_id).await?;
            if copy.is_none_or(|c| c.status != BackupStatus::Available) {
                return Err(Error::Unprocessable(format!(
                    "backup {backup_id} is stored in region {}, cluster {dest_cluster_id} is in \
                     region {}; a restore needs an AVAILABLE copy of the backup in the \
                     destination's region (crossRegionCopies)",
                    backup.region_id, dest.region_id
                )));
            }
        }
        Ok((backup, dest))
    }

    /// Checks the destination names are free, then enqueues the restore job. It reads the
    /// backup from the destination's region: the backup itself, or its copy there.
    async fn start_restore(
        &self,
        backup: &Backup,
        dest: Cluster,
        job_type: &str,
        targets: Vec<RestoreTarget>,
        rbac: bool,
    ) -> Result<RestoreStarted, Error> {
        self.check_destinations_free(&dest, &targets).await?;
        let plan = RestorePlan {
            dest_cluster_id: dest.id.clone(),
            source_region_id: dest.region_id.clone(),
            targets,
            rbac,
        };
        let mut job = self
            .new_job(
                &dest.project_id,
                job_type,
                serde_json::to_value(&plan).expect("plan serializes"),
            )
            .for_cluster(&dest.id);
        job.backup_id = Some(backup.id.clone());
        self.store.insert_job(&job, Utc::now()).await?;
        tracing::info!(backup_id = %backup.id, dest_cluster_id = %dest.id, job_id = %job.id, "restore requested");
        Ok(RestoreStarted {
            dest,
            job_id: job.id,
        })
    }

    /// Refuses two targets with one destination name, and destination collections that exist
    /// unless the target says to drop or skip them.
    async fn check_destinations_free(
        &self,
        dest: &Cluster,
        targets: &[RestoreTarget],
    ) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for t in targets {
            if !seen.insert((&t.dest_db_name, &t.dest_collection_name)) {
                return Err(Error::invalid(format!(
                    "two collections would be restored as {}.{}; give them different destCollectionName",
                    t.dest_db_name, t.dest_collection_name
                )));
            }
        }
        let databases: Vec<&str> = targets.iter().map(|t| t.dest_db_name.as_str()).collect();
        // A database that does not exist yet is created by the restore.
        let existing = self.collections(dest, Some(&databases)).await?;
        for t in targets {
            let taken = existing
                .get(&t.dest_db_name)
                .is_some_and(|cs| cs.iter().any(|c| c.name == t.dest_collection_name));
            if taken && t.on_existing == OnExisting::Fail {
                return Err(Error::Conflict(format!(
                    "collection {}.{} already exists in cluster {}; restore it under another \
                     destCollectionName, drop it first, or pass onExisting DROP (replace it) \
                     or SKIP (leave it)",
                    t.dest_db_name, t.dest_collection_name, dest.id
                )));
            }
        }
        Ok(())
    }
}

/// A body's `onExisting` and `metaOnly`, for the collections that do not say their own.
#[derive(Debug, Clone, Copy)]
struct Defaults {
    on_existing: OnExisting,
    meta_only: bool,
}

fn target(
    c: &BackedUpCollection,
    dest_db: &str,
    dest_name: &str,
    load: bool,
    defaults: Defaults,
) -> RestoreTarget {
    RestoreTarget {
        db_name: c.db_name.clone(),
        collection_name: c.collection_name.clone(),
        dest_db_name: dest_db.to_owned(),
        dest_collection_name: dest_name.to_owned(),
        load,
        on_existing: defaults.on_existing,
        meta_only: defaults.meta_only,
    }
}

/// The collections a `restoreCollection` body names, each found in the backup, renamed and
/// loaded as asked.
fn chosen_targets(
    backup: &Backup,
    chosen: &[DbToRestore],
    defaults: Defaults,
) -> Result<Vec<RestoreTarget>, Error> {
    let in_backup: HashMap<(&str, &str), &BackedUpCollection> = backup
        .collections
        .iter()
        .map(|c| ((c.db_name.as_str(), c.collection_name.as_str()), c))
        .collect();
    let mut targets = Vec::new();
    for (i, db) in chosen.iter().enumerate() {
        if db.collections.is_empty() {
            return Err(Error::invalid(format!(
                "dbCollections[{i}].collections is empty; name at least one collection"
            )));
        }
        for (j, c) in db.collections.iter().enumerate() {
            let Some(backed_up) = in_backup.get(&(db.db_name.as_str(), c.collection_name.as_str()))
            else {
                return Err(Error::NotFound(format!(
                    "dbCollections[{i}].collections[{j}]: collection {}.{} is not in backup {}",
                    db.db_name, c.collection_name, backup.id
                )));
            };
            let load = c.dest_collection_status == Some(CollectionStatus::Loaded);
            if load && backed_up.loadable == Some(false) {
                return Err(Error::invalid(format!(
                    "dbCollections[{i}].collections[{j}].destCollectionStatus: collection {}.{} has \
                     no index on a vector field in the backup and Milvus loads only indexed \
                     collections; restore it NOT_LOADED, then create an index and load it",
                    db.db_name, c.collection_name
                )));
            }
            let dest_name = c
                .dest_collection_name
                .as_ref()
                .unwrap_or(&c.collection_name);
            names::validate_resource_name("destCollectionName", dest_name)
                .map_err(Error::invalid)?;
            let dest_db = db.dest_db_name.as_ref().unwrap_or(&db.db_name);
            names::validate_resource_name("destDbName", dest_db).map_err(Error::invalid)?;
            let own = Defaults {
                on_existing: c.on_existing.unwrap_or(defaults.on_existing),
                meta_only: c.meta_only.unwrap_or(defaults.meta_only),
            };
            targets.push(target(backed_up, dest_db, dest_name, load, own));
        }
    }
    Ok(targets)
}
