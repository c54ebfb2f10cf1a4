//! Restores (`design/api.md`): `restoreCollection` and `restoreCluster` check everything they
//! can before answering (the backup is AVAILABLE, the destination is reachable, in the
//! backup's region, and has none of the collections to create), then run as a job.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiResult, AppState, Auth};
use crate::auth::Principal;
use crate::clusters::{self, ClusterStorage};
use crate::domain::access::Privilege;
use crate::domain::backups::BackupStatus;
use crate::domain::restore::{
    RestorePlan, RestoreTarget, RESTORE_CLUSTER_JOB, RESTORE_COLLECTION_JOB,
};
use crate::error::Error;
use crate::milvus::MilvusError;
use crate::store::{BackedUpCollection, Backup, Cluster, Plan};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(restore_collection))
        .routes(routes!(restore_cluster))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CollectionStatus {
    Loaded,
    NotLoaded,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionToRestore {
    collection_name: String,
    dest_collection_name: Option<String>,
    dest_collection_status: Option<CollectionStatus>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DbToRestore {
    db_name: String,
    dest_db_name: Option<String>,
    collections: Vec<CollectionToRestore>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreCollections {
    dest_cluster_id: String,
    /// Omitted or empty: every collection of the backup, under its own name, NOT_LOADED.
    #[serde(default)]
    db_collections: Vec<DbToRestore>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterCollectionStatus {
    /// Load what was loaded when the backup was taken.
    Keep,
    /// Load nothing.
    Release,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreCluster {
    dest_cluster_id: String,
    collection_status: Option<ClusterCollectionStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStarted {
    job_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRestoreStarted {
    cluster_id: String,
    job_id: String,
}

/// The backup (AVAILABLE, of `cluster_id`) and the destination cluster, both checked.
async fn source_and_destination(
    state: &AppState,
    principal: &Principal,
    cluster_id: &str,
    backup_id: &str,
    dest_cluster_id: &str,
) -> Result<(Backup, Cluster), Error> {
    let backup = state
        .store
        .get_backup(backup_id)
        .await?
        .filter(|b| b.cluster_id == cluster_id && b.status != BackupStatus::Deleted)
        .ok_or_else(|| Error::not_found("backup", backup_id))?;
    principal.authorize(
        &backup.project_id,
        Privilege::BackupRestore,
        "backup",
        backup_id,
    )?;
    if backup.status != BackupStatus::Available {
        return Err(Error::Conflict(format!(
            "backup {backup_id} is {}; only AVAILABLE backups can be restored",
            backup.status.as_str()
        )));
    }
    let dest = state
        .store
        .get_cluster(dest_cluster_id)
        .await?
        .ok_or_else(|| Error::not_found("cluster", dest_cluster_id))?;
    principal.authorize(
        &dest.project_id,
        Privilege::BackupRestore,
        "cluster",
        dest_cluster_id,
    )?;
    if dest.plan != Plan::Dedicated {
        return Err(Error::Unprocessable(format!(
            "destClusterId {dest_cluster_id} is {}: restore exists only for Dedicated clusters",
            dest.plan.as_str()
        )));
    }
    if dest.region_id != backup.region_id {
        let copy = state.store.get_copy(&backup.id, &dest.region_id).await?;
        if copy.is_none_or(|c| c.status != BackupStatus::Available) {
            return Err(Error::Unprocessable(format!(
                "backup {backup_id} is stored in region {}, cluster {dest_cluster_id} is in region {}; \
                 a restore needs an AVAILABLE copy of the backup in the destination's region \
                 (crossRegionCopies)",
                backup.region_id, dest.region_id
            )));
        }
    }
    if matches!(clusters::storage_of(&dest), Ok(ClusterStorage::S3 { .. })) {
        return Err(Error::Unprocessable(format!(
            "cluster {dest_cluster_id} keeps its binlogs in S3; restoring into such clusters is \
             not supported yet"
        )));
    }
    Ok((backup, dest))
}

/// Refuses destination collections that exist already, naming them.
async fn check_destinations_free(
    state: &AppState,
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
    let timeout = Duration::from_secs(state.config.milvus.request_timeout_secs);
    let client = clusters::milvus_client(dest, &state.secrets, timeout).map_err(Error::internal)?;
    let upstream = |e: MilvusError| Error::Upstream(format!("cluster {}: {e}", dest.id));
    let databases: HashSet<String> = client
        .list_databases()
        .await
        .map_err(upstream)?
        .into_iter()
        .collect();
    let mut existing: HashMap<&str, HashSet<String>> = Default::default();
    for t in targets {
        if !databases.contains(&t.dest_db_name) {
            continue; // created by the restore
        }
        if !existing.contains_key(t.dest_db_name.as_str()) {
            let names = client
                .list_collections(&t.dest_db_name)
                .await
                .map_err(upstream)?
                .into_iter()
                .map(|c| c.name)
                .collect();
            existing.insert(&t.dest_db_name, names);
        }
        if existing[t.dest_db_name.as_str()].contains(&t.dest_collection_name) {
            return Err(Error::Conflict(format!(
                "collection {}.{} already exists in cluster {}; restore it under another \
                 destCollectionName or drop it first",
                t.dest_db_name, t.dest_collection_name, dest.id
            )));
        }
    }
    Ok(())
}

async fn enqueue(
    state: &AppState,
    backup: &Backup,
    dest: &Cluster,
    job_type: &str,
    targets: Vec<RestoreTarget>,
) -> Result<String, Error> {
    check_destinations_free(state, dest, &targets).await?;
    // Read from the destination's region: the backup itself, or its copy there.
    let plan = RestorePlan {
        dest_cluster_id: dest.id.clone(),
        source_region_id: dest.region_id.clone(),
        targets,
    };
    let mut job = state.jobs.new_job(
        &dest.project_id,
        job_type,
        serde_json::to_value(&plan).expect("plan serializes"),
    );
    job.cluster_id = Some(dest.id.clone());
    job.backup_id = Some(backup.id.clone());
    state.jobs.enqueue(&job).await?;
    tracing::info!(backup_id = %backup.id, dest_cluster_id = %dest.id, job_id = %job.id, "restore requested");
    Ok(job.id)
}

/// Restore chosen collections (or all) of a backup into a registered cluster, optionally
/// renamed and loaded. Answers at once; the restore runs as a job.
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/{backupId}/restoreCollection",
    tag = "backups", params(("clusterId" = String, Path), ("backupId" = String, Path)),
    request_body = RestoreCollections, responses((status = 200, body = RestoreStarted)))]
async fn restore_collection(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RestoreCollections>,
) -> ApiResult<RestoreStarted> {
    let (backup, dest) = source_and_destination(
        &state,
        &principal,
        &cluster_id,
        &backup_id,
        &body.dest_cluster_id,
    )
    .await?;
    let in_backup: HashMap<(&str, &str), &BackedUpCollection> = backup
        .collections
        .iter()
        .map(|c| ((c.db_name.as_str(), c.collection_name.as_str()), c))
        .collect();
    let mut targets = Vec::new();
    if body.db_collections.is_empty() {
        for c in &backup.collections {
            targets.push(RestoreTarget {
                db_name: c.db_name.clone(),
                collection_name: c.collection_name.clone(),
                dest_db_name: c.db_name.clone(),
                dest_collection_name: c.collection_name.clone(),
                load: false,
            });
        }
    }
    for (i, db) in body.db_collections.iter().enumerate() {
        if db.collections.is_empty() {
            return Err(Error::invalid(format!(
                "dbCollections[{i}].collections is empty; name at least one collection"
            )));
        }
        for (j, c) in db.collections.iter().enumerate() {
            let Some(backed_up) = in_backup.get(&(db.db_name.as_str(), c.collection_name.as_str()))
            else {
                return Err(Error::NotFound(format!(
                    "dbCollections[{i}].collections[{j}]: collection {}.{} is not in backup {backup_id}",
                    db.db_name, c.collection_name
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
                .clone()
                .unwrap_or_else(|| c.collection_name.clone());
            crate::domain::names::validate_resource_name("destCollectionName", &dest_name)
                .map_err(Error::invalid)?;
            let dest_db = db
                .dest_db_name
                .clone()
                .unwrap_or_else(|| db.db_name.clone());
            crate::domain::names::validate_resource_name("destDbName", &dest_db)
                .map_err(Error::invalid)?;
            targets.push(RestoreTarget {
                db_name: db.db_name.clone(),
                collection_name: c.collection_name.clone(),
                dest_db_name: dest_db,
                dest_collection_name: dest_name,
                load,
            });
        }
    }
    let job_id = enqueue(&state, &backup, &dest, RESTORE_COLLECTION_JOB, targets).await?;
    Ok(ok(RestoreStarted { job_id }))
}

/// Restore every database and collection of a backup into a registered cluster, loading what
/// was loaded (`KEEP`, the default) or nothing (`RELEASE`).
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/{backupId}/restoreCluster",
    tag = "backups", params(("clusterId" = String, Path), ("backupId" = String, Path)),
    request_body = RestoreCluster, responses((status = 200, body = ClusterRestoreStarted)))]
async fn restore_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RestoreCluster>,
) -> ApiResult<ClusterRestoreStarted> {
    let (backup, dest) = source_and_destination(
        &state,
        &principal,
        &cluster_id,
        &backup_id,
        &body.dest_cluster_id,
    )
    .await?;
    let keep = body.collection_status != Some(ClusterCollectionStatus::Release);
    let targets = backup
        .collections
        .iter()
        .map(|c| RestoreTarget {
            db_name: c.db_name.clone(),
            collection_name: c.collection_name.clone(),
            dest_db_name: c.db_name.clone(),
            dest_collection_name: c.collection_name.clone(),
            load: keep && c.loaded,
        })
        .collect();
    let job_id = enqueue(&state, &backup, &dest, RESTORE_CLUSTER_JOB, targets).await?;
    Ok(ok(ClusterRestoreStarted {
        cluster_id: dest.id,
        job_id,
    }))
}
