//! Backups (`design/api.md`, "Backups"): create answers at once with the backup and its job;
//! the job does the copying. Listing and describing read the store only, so backups of a
//! deleted cluster stay visible. A backup is visible with `backup.read` on its project.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::domain::access::Privilege;
use crate::domain::backups::{BackupStatus, BackupType, CreationMethod};
use crate::service::backups::CreateBackup;
use crate::store::{Backup, BackupFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_backup))
        .routes(routes!(list_backups))
        .routes(routes!(describe_backup, delete_backup))
        .routes(routes!(verify_backup))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupCreated {
    pub(super) backup_id: String,
    pub(super) backup_name: String,
    pub(super) job_id: String,
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
    /// The collection's aliases, restored with it.
    aliases: Vec<String>,
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
    /// Users (names only, never passwords), roles, their grants and members, as the backup
    /// holds them (CLUSTER backups of a Milvus with authorization on).
    #[serde(skip_serializing_if = "Option::is_none")]
    rbac: Option<crate::milvus::Rbac>,
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
                    aliases: c.aliases.clone(),
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
                        aliases: Vec::new(),
                    },
                );
            }
        }
    }
    out
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
    let services = &state.services;
    let cluster = services
        .visible_cluster(&principal, &cluster_id, Privilege::BackupCreate)
        .await?;
    let started = services.create_manual_backup(&cluster, body).await?;
    Ok(ok(BackupCreated {
        backup_id: started.backup.id,
        backup_name: started.backup.name,
        job_id: started.job_id,
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
    let backup = state
        .services
        .visible_backup(&principal, &cluster_id, &backup_id, Privilege::BackupRead)
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
        rbac: backup.rbac.clone(),
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
    let services = &state.services;
    let backup = services
        .visible_backup(&principal, &cluster_id, &backup_id, Privilege::BackupDelete)
        .await?;
    let job_id = services.delete_backup(&backup, Utc::now()).await?;
    Ok(ok(BackupDeleted {
        backup_id: backup.id,
        backup_name: backup.name,
        job_id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyStarted {
    pub(super) job_id: String,
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
    let services = &state.services;
    let backup = services
        .visible_backup(&principal, &cluster_id, &backup_id, Privilege::BackupRead)
        .await?;
    let job_id = services.verify_backup(&backup).await?;
    Ok(ok(VerifyStarted { job_id }))
}
