//! `/v2/roles`: custom roles, named sets of privileges usable in a key's `projectRoles`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiResult, AppState, Auth};
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
    role_name: String,
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
    count: u64,
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
    if BuiltinRole::parse(&body.role_name).is_some() {
        return Err(Error::Conflict(format!(
            "roleName '{}' is a built-in role; choose another name",
            body.role_name
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
#[utoipa::path(get, path = "/v2/roles", tag = "roles", responses((status = 200, body = RoleList)))]
async fn list_roles(State(state): State<AppState>, Auth(_principal): Auth) -> ApiResult<RoleList> {
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
    Ok(ok(RoleList {
        count: roles.len() as u64,
        roles,
    }))
}
