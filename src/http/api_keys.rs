//! `/v2/apiKeys`: keys are created by an org OWNER with an org role and roles per project. The
//! secret is returned once and stored only as a hash.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::crypto::hash_api_key;
use crate::domain::access::{BuiltinRole, OrgRole, ProjectRole};
use crate::domain::{ids, names};
use crate::error::Error;
use crate::store::ApiKey;
use crate::store::KeyDeletion;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// `OWNER` or `MEMBER` (default).
    org_role: Option<OrgRole>,
    #[serde(default)]
    project_roles: Vec<ProjectRole>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyCreated {
    api_key_id: String,
    /// The secret: shown only in this answer.
    api_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    api_key_id: String,
    name: String,
    org_role: OrgRole,
    project_roles: Vec<ProjectRole>,
    create_time: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        ApiKeyView {
            api_key_id: k.id,
            name: k.name,
            org_role: k.org_role,
            project_roles: k.project_roles,
            create_time: k.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    #[serde(flatten)]
    page: PageInfo,
    api_keys: Vec<ApiKeyView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDeleted {
    api_key_id: String,
}

/// Create an API key (org OWNER only). The secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/v2/apiKeys", tag = "apiKeys", request_body = CreateApiKey,
    responses((status = 200, body = ApiKeyCreated)))]
async fn create_api_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<ApiKeyCreated> {
    principal.require_owner("creating an API key")?;
    names::validate_resource_name("name", &body.name).map_err(Error::invalid)?;
    for (i, assignment) in body.project_roles.iter().enumerate() {
        if let Some(first) = body.project_roles[..i]
            .iter()
            .position(|a| a.project_id == assignment.project_id)
        {
            return Err(Error::invalid(format!(
                "projectRoles[{i}].projectId: project '{}' already has a role in \
                 projectRoles[{first}]; give each project one role (a custom role can combine \
                 privileges)",
                assignment.project_id
            )));
        }
        if state
            .store
            .get_project(&assignment.project_id)
            .await?
            .is_none()
        {
            return Err(Error::invalid(format!(
                "projectRoles[{i}].projectId: project '{}' does not exist; GET /v2/projects lists them",
                assignment.project_id
            )));
        }
        if BuiltinRole::parse(&assignment.role).is_none()
            && state.store.get_role(&assignment.role).await?.is_none()
        {
            return Err(Error::invalid(format!(
                "projectRoles[{i}].role: '{}' is neither a built-in role (ADMIN, READ_WRITE, READ_ONLY) nor a custom role; GET /v2/roles lists them",
                assignment.role
            )));
        }
    }
    let secret = ids::new_api_key_secret();
    let key = ApiKey {
        id: ids::new_api_key_id(),
        name: body.name,
        key_hash: hash_api_key(&secret),
        org_role: body.org_role.unwrap_or(OrgRole::Member),
        project_roles: body.project_roles,
        created_at: Utc::now(),
    };
    state.store.insert_api_key(&key).await?;
    tracing::info!(api_key_id = %key.id, org_role = key.org_role.as_str(), "API key created");
    Ok(ok(ApiKeyCreated {
        api_key_id: key.id,
        api_key: secret,
    }))
}

/// List API keys: every key for an org OWNER, only the calling key for a MEMBER.
#[utoipa::path(get, path = "/v2/apiKeys", tag = "apiKeys", params(PageParams),
    responses((status = 200, body = ApiKeyList)))]
async fn list_api_keys(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ApiKeyList> {
    let page = params.page()?;
    if principal.is_owner() {
        let (keys, count) = state.store.list_api_keys(page).await?;
        return Ok(ok(ApiKeyList {
            page: PageInfo::new(count, page),
            api_keys: keys.into_iter().map(ApiKeyView::from).collect(),
        }));
    }
    let own: Vec<ApiKeyView> = state
        .store
        .get_api_key(&principal.key_id)
        .await?
        .into_iter()
        .map(ApiKeyView::from)
        .collect();
    Ok(ok(ApiKeyList {
        page: PageInfo::new(own.len() as u64, page),
        api_keys: own,
    }))
}

/// Delete an API key (org OWNER only); it stops working at once.
#[utoipa::path(delete, path = "/v2/apiKeys/{apiKeyId}", tag = "apiKeys",
    params(("apiKeyId" = String, Path)), responses((status = 200, body = ApiKeyDeleted)))]
async fn delete_api_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(api_key_id): ApiPath<String>,
) -> ApiResult<ApiKeyDeleted> {
    principal.require_owner("deleting an API key")?;
    match state.store.delete_api_key(&api_key_id).await? {
        KeyDeletion::Deleted => {}
        KeyDeletion::NotFound => return Err(Error::not_found("API key", &api_key_id)),
        KeyDeletion::LastOwner => {
            return Err(Error::Conflict(format!(
                "API key {api_key_id} is the last key with orgRole OWNER; create another OWNER \
                 key first (POST /v2/apiKeys with orgRole OWNER), or nobody could administer \
                 this instance. Lost every OWNER key? Run `backstop admin-key` where the \
                 service runs"
            )))
        }
    }
    tracing::info!(api_key_id = %api_key_id, "API key deleted");
    Ok(ok(ApiKeyDeleted { api_key_id }))
}
