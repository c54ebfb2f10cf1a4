//! `/v2/clusters`: the registry of running Milvus deployments. Status and collections are read
//! live from Milvus with a short deadline, so a dead cluster answers UNREACHABLE, not a hang.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::clusters::{self, ClusterSecrets, ClusterStorage};
use crate::domain::access::Privilege;
use crate::domain::{ids, names};
use crate::error::Error;
use crate::milvus::{parse_uri, MilvusError};
use crate::store::{Cluster, Plan, StoreError};

/// Compute units a cluster may declare (the product sells 1–256 CU).
const MAX_CU_SIZE: i64 = 256;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cluster, list_clusters))
        .routes(routes!(describe_cluster, delete_cluster))
        .routes(routes!(list_collections))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCluster {
    cluster_name: String,
    project_id: String,
    region_id: String,
    plan: Plan,
    cu_size: i64,
    milvus: MilvusInput,
    storage: StorageInput,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MilvusInput {
    /// `http://host:port` of the Milvus proxy (gRPC).
    uri: String,
    /// `user:password` or an API key; stored encrypted.
    token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageInput {
    Local {
        path: String,
    },
    #[serde(rename_all = "camelCase")]
    S3 {
        endpoint: Option<String>,
        bucket: String,
        #[serde(default)]
        root_path: String,
        access_key_id: String,
        secret_access_key: String,
        region: Option<String>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCreated {
    cluster_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    cluster_id: String,
    cluster_name: String,
    project_id: String,
    region_id: String,
    plan: Plan,
    cu_size: i64,
    /// `RUNNING` when Milvus answered the probe, else `UNREACHABLE`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    milvus_version: Option<String>,
    connect_address: String,
    storage: ClusterStorage,
    create_time: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterList {
    #[serde(flatten)]
    page: PageInfo,
    clusters: Vec<ClusterView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDeleted {
    cluster_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionView {
    db_name: String,
    collection_name: String,
    collection_id: i64,
    create_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ClusterFilter {
    project_id: Option<String>,
}

fn validate(body: &CreateCluster) -> Result<(), Error> {
    names::validate_resource_name("clusterName", &body.cluster_name).map_err(Error::invalid)?;
    if !(1..=MAX_CU_SIZE).contains(&body.cu_size) {
        return Err(Error::invalid(format!(
            "cuSize is {}; use a whole number from 1 to {MAX_CU_SIZE}",
            body.cu_size
        )));
    }
    parse_uri(&body.milvus.uri).map_err(|e| Error::invalid(format!("milvus.uri: {e}")))?;
    match &body.storage {
        StorageInput::Local { path } => {
            if !path.starts_with('/') {
                return Err(Error::invalid(
                    "storage.path must be the absolute path of the Milvus localStorage.path",
                ));
            }
        }
        StorageInput::S3 {
            bucket,
            access_key_id,
            secret_access_key,
            endpoint,
            ..
        } => {
            if bucket.is_empty() {
                return Err(Error::invalid("storage.bucket must name the Milvus bucket"));
            }
            if access_key_id.is_empty() || secret_access_key.is_empty() {
                return Err(Error::invalid(
                    "storage.accessKeyId and storage.secretAccessKey are required for S3 storage",
                ));
            }
            if let Some(endpoint) = endpoint {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(Error::invalid(
                        "storage.endpoint must start with http:// or https://",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Register a running Milvus deployment in a project.
#[utoipa::path(post, path = "/v2/clusters", tag = "clusters", request_body = CreateCluster,
    responses((status = 200, body = ClusterCreated)))]
async fn create_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateCluster>,
) -> ApiResult<ClusterCreated> {
    principal.authorize(
        &body.project_id,
        Privilege::ClusterManage,
        "project",
        &body.project_id,
    )?;
    if state.store.get_project(&body.project_id).await?.is_none() {
        return Err(Error::not_found("project", &body.project_id));
    }
    validate(&body)?;
    if state.regions.get(&body.region_id).is_none() {
        return Err(Error::invalid(format!(
            "regionId '{}' is not a configured region; use one of: {}",
            body.region_id,
            state.regions.ids().join(", ")
        )));
    }
    let (storage, mut secrets) = match body.storage {
        StorageInput::Local { path } => (ClusterStorage::Local { path }, ClusterSecrets::default()),
        StorageInput::S3 {
            endpoint,
            bucket,
            root_path,
            access_key_id,
            secret_access_key,
            region,
        } => (
            ClusterStorage::S3 {
                endpoint,
                bucket,
                root_path,
                region,
            },
            ClusterSecrets {
                access_key_id: Some(access_key_id),
                secret_access_key: Some(secret_access_key),
                ..Default::default()
            },
        ),
    };
    secrets.milvus_token = body.milvus.token.filter(|t| !t.is_empty());
    let cluster = Cluster {
        id: ids::new_cluster_id(),
        project_id: body.project_id,
        name: body.cluster_name,
        region_id: body.region_id,
        plan: body.plan,
        cu_size: body.cu_size,
        milvus_uri: parse_uri(&body.milvus.uri).map_err(|e| Error::invalid(e.to_string()))?,
        storage: serde_json::to_string(&storage).expect("storage serializes"),
        secrets: secrets.seal(&state.secrets),
        created_at: Utc::now(),
    };
    match state.store.insert_cluster(&cluster).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(Error::Conflict(format!(
                "clusterName '{}' is already used in project {}; choose another name",
                cluster.name, cluster.project_id
            )))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(cluster_id = %cluster.id, project_id = %cluster.project_id, "cluster registered");
    Ok(ok(ClusterCreated {
        cluster_id: cluster.id,
    }))
}

/// Loads a cluster the key may act on, or answers 404 (also for other projects' clusters).
pub(super) async fn visible_cluster(
    state: &AppState,
    principal: &crate::auth::Principal,
    cluster_id: &str,
    privilege: Privilege,
) -> Result<Cluster, Error> {
    let cluster = state
        .store
        .get_cluster(cluster_id)
        .await?
        .ok_or_else(|| Error::not_found("cluster", cluster_id))?;
    principal.authorize(&cluster.project_id, privilege, "cluster", cluster_id)?;
    Ok(cluster)
}

/// Probes the cluster with `GetVersion` under the configured short deadline.
async fn view(state: &AppState, cluster: Cluster) -> ClusterView {
    let timeout = Duration::from_millis(state.config.milvus.probe_timeout_ms);
    let version = match clusters::milvus_client(&cluster, &state.secrets, timeout) {
        Ok(client) => match client.version().await {
            Ok(version) => Some(version),
            Err(e) => {
                tracing::debug!(cluster_id = %cluster.id, error = %e, "cluster probe failed");
                None
            }
        },
        Err(e) => {
            tracing::warn!(cluster_id = %cluster.id, error = %e, "cluster record unusable");
            None
        }
    };
    let storage = clusters::storage_of(&cluster).unwrap_or(ClusterStorage::Local {
        path: String::new(),
    });
    ClusterView {
        status: if version.is_some() {
            "RUNNING"
        } else {
            "UNREACHABLE"
        },
        milvus_version: version,
        connect_address: cluster.milvus_uri,
        cluster_id: cluster.id,
        cluster_name: cluster.name,
        project_id: cluster.project_id,
        region_id: cluster.region_id,
        plan: cluster.plan,
        cu_size: cluster.cu_size,
        storage,
        create_time: cluster.created_at,
    }
}

/// List clusters of the projects this key can read, each with a live status.
#[utoipa::path(get, path = "/v2/clusters", tag = "clusters", params(ClusterFilter, PageParams),
    responses((status = 200, body = ClusterList)))]
async fn list_clusters(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(filter): ApiQuery<ClusterFilter>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ClusterList> {
    let page = params.page()?;
    let visible = principal.projects_with(Privilege::ClusterRead);
    let (clusters, count) = state
        .store
        .list_clusters(&visible, filter.project_id.as_deref(), page)
        .await?;
    let views = join_all(clusters.into_iter().map(|c| view(&state, c))).await;
    Ok(ok(ClusterList {
        page: PageInfo::new(count, page),
        clusters: views,
    }))
}

/// Describe a cluster, with `status` from a live probe of its Milvus.
#[utoipa::path(get, path = "/v2/clusters/{clusterId}", tag = "clusters",
    params(("clusterId" = String, Path)), responses((status = 200, body = ClusterView)))]
async fn describe_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
) -> ApiResult<ClusterView> {
    let cluster = visible_cluster(&state, &principal, &cluster_id, Privilege::ClusterRead).await?;
    Ok(ok(view(&state, cluster).await))
}

/// Remove a cluster from the registry. Its Milvus is not touched; its automatic backups are
/// deleted, its manual backups kept.
#[utoipa::path(delete, path = "/v2/clusters/{clusterId}", tag = "clusters",
    params(("clusterId" = String, Path)), responses((status = 200, body = ClusterDeleted)))]
async fn delete_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
) -> ApiResult<ClusterDeleted> {
    visible_cluster(&state, &principal, &cluster_id, Privilege::ClusterManage).await?;
    // Its automatic backups go with it; manual ones stay (src/automatic.rs).
    state
        .scheduler
        .retire_cluster(&cluster_id, Utc::now())
        .await?;
    if !state.store.delete_cluster(&cluster_id).await? {
        return Err(Error::not_found("cluster", &cluster_id));
    }
    tracing::info!(cluster_id = %cluster_id, "cluster deleted");
    Ok(ok(ClusterDeleted { cluster_id }))
}

/// List every database and collection of the cluster, read live from Milvus.
#[utoipa::path(get, path = "/v2/clusters/{clusterId}/collections", tag = "clusters",
    params(("clusterId" = String, Path)), responses((status = 200, body = [CollectionView])))]
async fn list_collections(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
) -> ApiResult<Vec<CollectionView>> {
    let cluster = visible_cluster(&state, &principal, &cluster_id, Privilege::ClusterRead).await?;
    let timeout = Duration::from_secs(state.config.milvus.request_timeout_secs);
    let client =
        clusters::milvus_client(&cluster, &state.secrets, timeout).map_err(Error::internal)?;
    let upstream = |e: MilvusError| Error::Upstream(format!("cluster {cluster_id}: {e}"));
    let databases = client.list_databases().await.map_err(upstream)?;
    let listed = join_all(databases.iter().map(|db| client.list_collections(db))).await;
    let mut collections = Vec::new();
    for result in listed {
        for c in result.map_err(upstream)? {
            collections.push(CollectionView {
                create_time: DateTime::from_timestamp_millis(c.created_utc_ms as i64)
                    .filter(|_| c.created_utc_ms > 0),
                db_name: c.db_name,
                collection_name: c.name,
                collection_id: c.id,
            });
        }
    }
    Ok(ok(collections))
}
