//! `/v2/roles`: custom roles, named sets of privileges usable in a key's `projectRoles`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, page_of, ApiJson, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::domain::access::{BuiltinRole, Privilege};
use crate::domain::names;
use crate::error::Error;
use crate::store::{CustomRole, OnConstraint};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_role, list_roles))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRole {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    role_name: String,
    #[schema(min_items = 1)]
    privileges: Vec<Privilege>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    role_name: String,
    privileges: Vec<Privilege>,
    builtin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleList {
    #[serde(flatten)]
    page: PageInfo,
    roles: Vec<RoleView>,
}

/// Define a custom role (org OWNER only).
#[utoipa::path(post, path = "/v2/roles", tag = "roles", request_body = CreateRole,
    responses((status = 200, body = RoleView)))]
async fn create_role(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateRole>,
) -> ApiResult<RoleView> {
    principal.require_owner("defining a role")?;
    names::validate_resource_name("roleName", &body.role_name).map_err(Error::invalid)?;
    // Names differing only in case would read as one role in a key's projectRoles.
    if let Some(builtin) = BuiltinRole::NAMES
        .iter()
        .find(|name| name.eq_ignore_ascii_case(&body.role_name))
    {
        return Err(Error::Conflict(format!(
            "roleName '{}' is the built-in role {builtin} (names are compared ignoring case); \
             choose another name",
            body.role_name
        )));
    }
    if let Some(existing) = state
        .store
        .list_roles()
        .await?
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(&body.role_name))
    {
        return Err(Error::Conflict(format!(
            "roleName '{}' already exists as '{}' (names are compared ignoring case)",
            body.role_name, existing.name
        )));
    }
    if body.privileges.is_empty() {
        return Err(Error::invalid(
            "privileges must list at least one privilege, e.g. [\"backup.read\"]",
        ));
    }
    let mut privileges = body.privileges;
    privileges.sort_by_key(|p| p.as_str());
    privileges.dedup();
    let role = CustomRole {
        name: body.role_name,
        privileges,
        created_at: Utc::now(),
    };
    state
        .store
        .insert_role(&role)
        .await
        .on_constraint("roles_pkey", || {
            Error::Conflict(format!("roleName '{}' already exists", role.name))
        })?;
    Ok(ok(RoleView {
        role_name: role.name,
        privileges: role.privileges,
        builtin: false,
        create_time: Some(role.created_at),
    }))
}

/// List the built-in and custom roles with their privileges.
#[utoipa::path(get, path = "/v2/roles", tag = "roles", params(PageParams),
    responses((status = 200, body = RoleList)))]
async fn list_roles(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<RoleList> {
    let page = params.page()?;
    let mut roles: Vec<RoleView> = BuiltinRole::NAMES
        .iter()
        .map(|name| RoleView {
            role_name: (*name).to_owned(),
            privileges: BuiltinRole::parse(name)
                .expect("built-in name")
                .privileges()
                .to_vec(),
            builtin: true,
            create_time: None,
        })
        .collect();
    roles.extend(
        state
            .store
            .list_roles()
            .await?
            .into_iter()
            .map(|r| RoleView {
                role_name: r.name,
                privileges: r.privileges,
                builtin: false,
                create_time: Some(r.created_at),
            }),
    );
    let (page, roles) = page_of(roles, page);
    Ok(ok(RoleList { page, roles }))
}
