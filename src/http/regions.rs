//! `GET /v2/regions`: the configured regions, never their credentials.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, page_of, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_regions))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionView {
    region_id: String,
    cloud_provider: String,
    storage_type: String,
    price_per_gb_month: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionList {
    #[serde(flatten)]
    page: PageInfo,
    regions: Vec<RegionView>,
}

/// List the regions backups can be stored in.
#[utoipa::path(get, path = "/v2/regions", tag = "regions", params(PageParams),
    responses((status = 200, body = RegionList)))]
async fn list_regions(
    State(state): State<AppState>,
    Auth(_principal): Auth,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<RegionList> {
    let page = params.page()?;
    let regions: Vec<RegionView> = state
        .regions
        .iter()
        .map(|r| RegionView {
            region_id: r.info.id.clone(),
            cloud_provider: r.info.cloud_provider.clone(),
            storage_type: r.info.storage_type.clone(),
            price_per_gb_month: r.info.price_per_gb_month,
        })
        .collect();
    let (page, regions) = page_of(regions, page);
    Ok(ok(RegionList { page, regions }))
}
