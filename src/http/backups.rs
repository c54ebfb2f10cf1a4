//! Backups (`design/api.md`, "Backups"): create answers at once with the backup and its job;
//! the job does the copying. Listing and describing read the store only, so backups of a
//! deleted cluster stay visible. A backup is visible with `backup.read` on its project.

use std::collections::HashSet;
use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::clusters::visible_cluster;
use super::{ok, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::auth::Principal;
use crate::clusters;
use crate::domain::access::Privilege;
use crate::domain::backups::{
    validate_copies, validate_selection, BackupStatus, BackupType, CopyRequest, CreationMethod,
    DbCollections, BACKUP_JOB, DELETE_BACKUP_JOB, VERIFY_BACKUP_JOB,
};
use crate::domain::names;
use crate::error::Error;
use crate::milvus::MilvusError;
use crate::store::{Backup, BackupFilter, Cluster, CreateBackupError, NewBackup, Plan};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_backup))
        .routes(routes!(list_backups))
        .routes(routes!(describe_backup, delete_backup))
        .routes(routes!(verify_backup))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBackup {
    backup_type: BackupType,
    /// For COLLECTION backups: the collections, per database (`dbName` defaults to `default`).
    #[serde(default)]
    db_collections: Vec<DbCollections>,
    /// Default: `<clusterName>_backup<N>`.
    backup_name: Option<String>,
    /// Other regions to copy the backup to once it is AVAILABLE (kept until deleted).
    #[serde(default)]
    cross_region_copies: Vec<CopyRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupCreated {
    backup_id: String,
    backup_name: String,
    job_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    project_id: String,
    cluster_id: String,
    cluster_name: String,
    region_id: String,
    backup_id: String,
    backup_name: String,
    backup_type: BackupType,
    creation_method: CreationMethod,
    status: BackupStatus,
    /// Bytes held in the region's storage.
    size: i64,
    create_time: DateTime<Utc>,
    expire_time: Option<DateTime<Utc>>,
    /// The job that made (or is deleting) the backup.
    job_id: Option<String>,
    /// Why a backup is FAILED or CANCELED.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionInBackup {
    collection_name: String,
    description: String,
    status: BackupStatus,
    row_count: i64,
    size: i64,
    /// Whether the collection can be restored LOADED: Milvus loads only collections whose
    /// vector fields all have an index. Absent when not known (backups taken before it was
    /// recorded, or still being taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    loadable: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbInBackup {
    db_name: String,
    collections: Vec<CollectionInBackup>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyView {
    region_id: String,
    status: BackupStatus,
    size: i64,
    expire_time: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    job_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupDetails {
    #[serde(flatten)]
    backup: BackupView,
    db_collections: Vec<DbInBackup>,
    /// Copies in other regions (`crossRegionCopies`), each with its own status.
    copies: Vec<CopyView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    #[serde(flatten)]
    page: PageInfo,
    backups: Vec<BackupView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupDeleted {
    backup_id: String,
    backup_name: String,
    job_id: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    project_id: Option<String>,
    cluster_id: Option<String>,
    creation_method: Option<CreationMethod>,
    backup_type: Option<BackupType>,
    /// Created at or after (RFC 3339).
    start_time: Option<DateTime<Utc>>,
    /// Created at or before (RFC 3339).
    end_time: Option<DateTime<Utc>>,
}

impl From<&Backup> for BackupView {
    fn from(b: &Backup) -> BackupView {
        BackupView {
            project_id: b.project_id.clone(),
            cluster_id: b.cluster_id.clone(),
            cluster_name: b.cluster_name.clone(),
            region_id: b.region_id.clone(),
            backup_id: b.id.clone(),
            backup_name: b.name.clone(),
            backup_type: b.backup_type,
            creation_method: b.creation_method,
            status: b.status,
            size: b.size,
            create_time: b.created_at,
            expire_time: b.expire_at,
            job_id: b.job_id.clone(),
            reason: b.reason.clone(),
        }
    }
}

/// Per database: what an AVAILABLE backup holds, or what was asked for while it is made.
fn db_collections(backup: &Backup) -> Vec<DbInBackup> {
    let mut out: Vec<DbInBackup> = Vec::new();
    let mut push =
        |db: &str, collection: CollectionInBackup| match out.iter_mut().find(|d| d.db_name == db) {
            Some(entry) => entry.collections.push(collection),
            None => out.push(DbInBackup {
                db_name: db.to_owned(),
                collections: vec![collection],
            }),
        };
    if backup.status == BackupStatus::Available || !backup.collections.is_empty() {
        for c in &backup.collections {
            push(
                &c.db_name,
                CollectionInBackup {
                    collection_name: c.collection_name.clone(),
                    description: c.description.clone(),
                    status: backup.status,
                    row_count: c.row_count,
                    size: c.size,
                    loadable: c.loadable,
                },
            );
        }
    } else {
        for db in &backup.selection {
            for name in &db.collection_names {
                push(
                    &db.db_name,
                    CollectionInBackup {
                        collection_name: name.clone(),
                        description: String::new(),
                        status: backup.status,
                        row_count: 0,
                        size: 0,
                        loadable: None,
                    },
                );
            }
        }
    }
    out
}

/// The request's shape, before anything is asked of Milvus.
fn validate(body: &CreateBackup) -> Result<(), Error> {
    if let Some(name) = &body.backup_name {
        names::validate_resource_name("backupName", name).map_err(Error::invalid)?;
    }
    match body.backup_type {
        BackupType::Cluster if !body.db_collections.is_empty() => Err(Error::invalid(
            "dbCollections is only for backupType COLLECTION; a CLUSTER backup takes every \
             database and collection (drop dbCollections, or use backupType COLLECTION)",
        )),
        BackupType::Cluster => Ok(()),
        BackupType::Collection => validate_selection(&body.db_collections).map_err(Error::invalid),
    }
}

/// Every database and collection named must exist in the cluster now, so a typo is refused
/// here rather than discovered by the job.
async fn check_selection_exists(
    state: &AppState,
    cluster: &Cluster,
    selection: &[DbCollections],
) -> Result<(), Error> {
    let timeout = Duration::from_secs(state.config.milvus.request_timeout_secs);
    let client =
        clusters::milvus_client(cluster, &state.secrets, timeout).map_err(Error::internal)?;
    let upstream = |e: MilvusError| Error::Upstream(format!("cluster {}: {e}", cluster.id));
    let databases: HashSet<String> = client
        .list_databases()
        .await
        .map_err(upstream)?
        .into_iter()
        .collect();
    for (i, db) in selection.iter().enumerate() {
        if !databases.contains(&db.db_name) {
            return Err(Error::NotFound(format!(
                "dbCollections[{i}].dbName: database '{}' does not exist in cluster {}; \
                 GET /v2/clusters/{}/collections lists what exists",
                db.db_name, cluster.id, cluster.id
            )));
        }
        let existing: HashSet<String> = client
            .list_collections(&db.db_name)
            .await
            .map_err(upstream)?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let missing: Vec<&str> = db
            .collection_names
            .iter()
            .filter(|n| !existing.contains(*n))
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

/// Start a backup of a whole cluster or of chosen collections. Answers at once; the copy runs
/// as a job (see `jobId`). One manual backup at a time per cluster.
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/create", tag = "backups",
    params(("clusterId" = String, Path)), request_body = CreateBackup,
    responses((status = 200, body = BackupCreated)))]
async fn create_backup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateBackup>,
) -> ApiResult<BackupCreated> {
    let cluster = visible_cluster(&state, &principal, &cluster_id, Privilege::BackupCreate).await?;
    validate(&body)?;
    if cluster.plan != Plan::Dedicated {
        return Err(Error::Unprocessable(format!(
            "cluster {cluster_id} is {}: backups exist only for Dedicated clusters",
            cluster.plan.as_str()
        )));
    }
    validate_copies(
        &body.cross_region_copies,
        &cluster.region_id,
        &state.regions.ids(),
    )
    .map_err(Error::invalid)?;
    if body
        .cross_region_copies
        .iter()
        .any(|c| c.retention_days.is_some())
    {
        return Err(Error::invalid(
            "crossRegionCopies[].retentionDays is for automatic backups (the policy); copies of a \
             manual backup are kept until it is deleted",
        ));
    }
    if body.backup_type == BackupType::Collection {
        check_selection_exists(&state, &cluster, &body.db_collections).await?;
    }
    let new_backup = NewBackup {
        project_id: cluster.project_id.clone(),
        cluster_id: cluster.id.clone(),
        cluster_name: cluster.name.clone(),
        region_id: cluster.region_id.clone(),
        name: body.backup_name.clone(),
        backup_type: body.backup_type,
        creation_method: CreationMethod::Manual,
        selection: body.db_collections,
        expire_at: None,
        copy_regions: body.cross_region_copies,
    };
    let mut job = state
        .jobs
        .new_job(&cluster.project_id, BACKUP_JOB, serde_json::json!({}));
    job.cluster_id = Some(cluster.id.clone());
    let backup = match state
        .store
        .create_backup(&new_backup, &mut job, Utc::now())
        .await
    {
        Ok(backup) => backup,
        Err(CreateBackupError::ManualRunning) => {
            return Err(Error::Conflict(format!(
                "a manual backup of cluster {cluster_id} is already pending or running; wait \
                 for it to finish (GET /v2/jobs?clusterId={cluster_id}) or cancel its job"
            )))
        }
        Err(CreateBackupError::AutoRunning) => {
            return Err(Error::Conflict(format!(
                "an automatic backup of cluster {cluster_id} is pending or running; a manual \
                 backup can start when it ends"
            )))
        }
        Err(CreateBackupError::NameTaken(name)) => {
            return Err(Error::Conflict(format!(
                "backupName '{name}' is already used in cluster {cluster_id}; choose another name"
            )))
        }
        Err(CreateBackupError::Duplicate) => {
            return Err(Error::Conflict(
                "this backup was already started".to_owned(),
            ))
        }
        Err(CreateBackupError::Store(e)) => return Err(e.into()),
    };
    state.jobs.enqueued();
    tracing::info!(backup_id = %backup.id, job_id = %job.id, cluster_id = %cluster_id, "backup requested");
    Ok(ok(BackupCreated {
        backup_id: backup.id,
        backup_name: backup.name,
        job_id: job.id,
    }))
}

/// List backups of the projects this key can read, newest first. Backups of deleted clusters
/// are listed too.
#[utoipa::path(get, path = "/v2/backups", tag = "backups", params(BackupQuery, PageParams),
    responses((status = 200, body = BackupList)))]
async fn list_backups(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<BackupQuery>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<BackupList> {
    let page = params.page()?;
    let filter = BackupFilter {
        project_id: query.project_id,
        cluster_id: query.cluster_id,
        creation_method: query.creation_method,
        backup_type: query.backup_type,
        created_from: query.start_time,
        created_to: query.end_time,
    };
    let (backups, count) = state
        .store
        .list_backups(
            &principal.projects_with(Privilege::BackupRead),
            &filter,
            page,
        )
        .await?;
    Ok(ok(BackupList {
        page: PageInfo::new(count, page),
        backups: backups.iter().map(BackupView::from).collect(),
    }))
}

/// A backup of `cluster_id` the key may act on, or 404 (also for other projects' backups).
/// The cluster itself may be gone: manual backups outlive it.
async fn visible_backup(
    state: &AppState,
    principal: &Principal,
    cluster_id: &str,
    backup_id: &str,
    privilege: Privilege,
) -> Result<Backup, Error> {
    let backup = state
        .store
        .get_backup(backup_id)
        .await?
        .filter(|b| b.cluster_id == cluster_id && b.status != BackupStatus::Deleted)
        .ok_or_else(|| Error::not_found("backup", backup_id))?;
    principal.authorize(&backup.project_id, privilege, "backup", backup_id)?;
    Ok(backup)
}

/// Describe a backup, with its databases and collections (row counts and sizes once it is
/// AVAILABLE).
#[utoipa::path(get, path = "/v2/clusters/{clusterId}/backups/{backupId}", tag = "backups",
    params(("clusterId" = String, Path), ("backupId" = String, Path)),
    responses((status = 200, body = BackupDetails)))]
async fn describe_backup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
) -> ApiResult<BackupDetails> {
    let backup = visible_backup(
        &state,
        &principal,
        &cluster_id,
        &backup_id,
        Privilege::BackupRead,
    )
    .await?;
    let copies = state
        .store
        .list_copies(&backup.id)
        .await?
        .into_iter()
        .map(|c| CopyView {
            region_id: c.region_id,
            status: c.status,
            size: c.size,
            expire_time: c.expire_at,
            reason: c.reason,
            job_id: c.job_id,
        })
        .collect();
    Ok(ok(BackupDetails {
        db_collections: db_collections(&backup),
        backup: BackupView::from(&backup),
        copies,
    }))
}

/// Delete a backup: it is DELETING until a job has removed its objects, then gone.
#[utoipa::path(delete, path = "/v2/clusters/{clusterId}/backups/{backupId}", tag = "backups",
    params(("clusterId" = String, Path), ("backupId" = String, Path)),
    responses((status = 200, body = BackupDeleted)))]
async fn delete_backup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
) -> ApiResult<BackupDeleted> {
    let backup = visible_backup(
        &state,
        &principal,
        &cluster_id,
        &backup_id,
        Privilege::BackupDelete,
    )
    .await?;
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
    let mut job = state
        .jobs
        .new_job(&backup.project_id, DELETE_BACKUP_JOB, serde_json::json!({}));
    job.cluster_id = Some(backup.cluster_id.clone());
    job.backup_id = Some(backup.id.clone());
    if !state
        .store
        .start_backup_deletion(&backup.id, &job, Utc::now())
        .await?
    {
        return Err(Error::Conflict(format!(
            "backup {backup_id} changed state meanwhile; read it again and retry"
        )));
    }
    state.jobs.enqueued();
    tracing::info!(backup_id = %backup.id, job_id = %job.id, "backup deletion requested");
    Ok(ok(BackupDeleted {
        backup_id: backup.id,
        backup_name: backup.name,
        job_id: job.id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyStarted {
    job_id: String,
}

/// Re-read every object of an AVAILABLE backup and check it against the manifest's checksums.
/// The job fails naming the first damaged or missing object.
#[utoipa::path(post, path = "/v2/clusters/{clusterId}/backups/{backupId}/verify", tag = "backups",
    params(("clusterId" = String, Path), ("backupId" = String, Path)),
    responses((status = 200, body = VerifyStarted)))]
async fn verify_backup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath((cluster_id, backup_id)): ApiPath<(String, String)>,
) -> ApiResult<VerifyStarted> {
    let backup = visible_backup(
        &state,
        &principal,
        &cluster_id,
        &backup_id,
        Privilege::BackupRead,
    )
    .await?;
    if backup.status != BackupStatus::Available {
        return Err(Error::Conflict(format!(
            "backup {backup_id} is {}; only AVAILABLE backups can be verified",
            backup.status.as_str()
        )));
    }
    let mut job = state
        .jobs
        .new_job(&backup.project_id, VERIFY_BACKUP_JOB, serde_json::json!({}));
    job.cluster_id = Some(backup.cluster_id.clone());
    job.backup_id = Some(backup.id.clone());
    state.jobs.enqueue(&job).await?;
    Ok(ok(VerifyStarted { job_id: job.id }))
}
