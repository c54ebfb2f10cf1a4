//! `/v2/projects`: projects group clusters, backups and jobs; keys get roles per project.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiJson, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::domain::{ids, names};
use crate::error::Error;
use crate::store::{OnConstraint, Project};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_project, list_projects))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProject {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    project_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCreated {
    pub(super) project_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    project_id: String,
    project_name: String,
    create_time: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectList {
    #[serde(flatten)]
    page: PageInfo,
    projects: Vec<ProjectView>,
}

/// Create a project (org OWNER only).
#[utoipa::path(post, path = "/v2/projects", tag = "projects", request_body = CreateProject,
    responses((status = 200, body = ProjectCreated), (status = 409, description = "name taken")))]
async fn create_project(
    axum::extract::State(state): axum::extract::State<AppState>,
    Auth(principal): Auth,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<ProjectCreated> {
    principal.require_owner("creating a project")?;
    names::validate_display_name("projectName", &body.project_name).map_err(Error::invalid)?;
    let project = Project {
        id: ids::new_project_id(),
        name: body.project_name,
        created_at: Utc::now(),
    };
    state
        .store
        .insert_project(&project)
        .await
        .on_constraint("projects_name_key", || {
            Error::Conflict(format!(
                "projectName '{}' is already used; choose another name",
                project.name
            ))
        })?;
    Ok(ok(ProjectCreated {
        project_id: project.id,
    }))
}

/// List the projects this key has a role in (all of them for an org OWNER).
#[utoipa::path(get, path = "/v2/projects", tag = "projects", params(PageParams),
    responses((status = 200, body = ProjectList)))]
async fn list_projects(
    axum::extract::State(state): axum::extract::State<AppState>,
    Auth(principal): Auth,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<ProjectList> {
    let page = params.page()?;
    let (projects, count) = state
        .store
        .list_projects(&principal.visible_projects(), page)
        .await?;
    Ok(ok(ProjectList {
        page: PageInfo::new(count, page),
        projects: projects
            .into_iter()
            .map(|p| ProjectView {
                project_id: p.id,
                project_name: p.name,
                create_time: p.created_at,
            })
            .collect(),
    }))
}
