//! `/v2/clusters`: the registry of running Milvus deployments. Status and collections are read
//! live from Milvus with a short deadline, so a dead cluster answers UNREACHABLE, not a hang.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    ok, page_of, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams,
};
use crate::domain::access::Privilege;
use crate::domain::clusters::{ClusterStorage, Plan};
use crate::service::clusters::{created_at, Probed, RegisterCluster};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cluster, list_clusters))
        .routes(routes!(describe_cluster, delete_cluster))
        .routes(routes!(list_collections))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCreated {
    pub(super) cluster_id: String,
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
    /// `REACHABLE` when the service can list and read the cluster's binlog storage now, else
    /// `UNREACHABLE` (describe only; lists do not probe storage).
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_status: Option<&'static str>,
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
    /// Milvus's 64-bit collection id, as a string: JavaScript numbers cannot hold it.
    collection_id: String,
    create_time: Option<DateTime<Utc>>,
}

/// One page of a cluster's collections, ordered by database, then name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionList {
    #[serde(flatten)]
    page: PageInfo,
    collections: Vec<CollectionView>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ClusterFilter {
    project_id: Option<String>,
}

/// Register a running Milvus deployment in a project.
#[utoipa::path(post, path = "/v2/clusters", tag = "clusters", request_body = RegisterCluster,
    responses((status = 200, body = ClusterCreated)))]
async fn create_cluster(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<RegisterCluster>,
) -> ApiResult<ClusterCreated> {
    principal.authorize(
        &body.project_id,
        Privilege::ClusterManage,
        "project",
        &body.project_id,
    )?;
    let cluster = state.services.register_cluster(body).await?;
    Ok(ok(ClusterCreated {
        cluster_id: cluster.id,
    }))
}

fn view(probed: Probed) -> ClusterView {
    let Probed {
        cluster,
        milvus_version,
    } = probed;
    ClusterView {
        status: if milvus_version.is_some() {
            "RUNNING"
        } else {
            "UNREACHABLE"
        },
        milvus_version,
        connect_address: cluster.milvus_uri,
        cluster_id: cluster.id,
        cluster_name: cluster.name,
        project_id: cluster.project_id,
        region_id: cluster.region_id,
        plan: cluster.plan,
        cu_size: cluster.cu_size,
        storage: cluster.storage,
        storage_status: None,
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
    let views = state
        .services
        .probe_all(clusters)
        .await
        .into_iter()
        .map(view)
        .collect();
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
    let cluster = state
        .services
        .visible_cluster(&principal, &cluster_id, Privilege::ClusterRead)
        .await?;
    let (probed, storage) = tokio::join!(
        state.services.probe_now(cluster.clone()),
        state.services.storage_reachable(&cluster)
    );
    let mut view = view(probed);
    view.storage_status = Some(if storage { "REACHABLE" } else { "UNREACHABLE" });
    Ok(ok(view))
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
    let services = &state.services;
    let cluster = services
        .visible_cluster(&principal, &cluster_id, Privilege::ClusterManage)
        .await?;
    services
        .delete_cluster(&principal, &state.jobs, &cluster, Utc::now())
        .await?;
    Ok(ok(ClusterDeleted { cluster_id }))
}

/// List the databases and collections of the cluster, read live from Milvus, a page at a
/// time (by database, then name).
#[utoipa::path(get, path = "/v2/clusters/{clusterId}/collections", tag = "clusters",
    params(("clusterId" = String, Path), PageParams),
    responses((status = 200, body = CollectionList)))]
async fn list_collections(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(cluster_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<CollectionList> {
    let page = params.page()?;
    let services = &state.services;
    let cluster = services
        .visible_cluster(&principal, &cluster_id, Privilege::ClusterRead)
        .await?;
    let mut collections: Vec<CollectionView> = services
        .collections(&cluster, None)
        .await?
        .into_values()
        .flatten()
        .map(|c| CollectionView {
            create_time: created_at(&c),
            db_name: c.db_name,
            collection_name: c.name,
            collection_id: c.id.to_string(),
        })
        .collect();
    collections
        .sort_by(|a, b| (&a.db_name, &a.collection_name).cmp(&(&b.db_name, &b.collection_name)));
    let (page, collections) = page_of(collections, page);
    Ok(ok(CollectionList { page, collections }))
}
