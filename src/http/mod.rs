//! The HTTP layer: router, shared state, envelope and middleware. Nothing below this module
//! knows about axum. Each resource has its own module with a `router()`; routes are declared with
//! `utoipa_axum::routes!`, so `/v2/openapi.json` lists exactly the routes that are served.

mod api_keys;
mod backups;
mod clusters;
mod console;
mod extract;
mod idempotency;
mod jobs;
mod openapi;
mod ops;
mod policies;
mod projects;
mod ratelimit;
mod regions;
mod restores;
mod roles;
mod usage;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use extract::{ApiJson, ApiPath, ApiQuery, Auth, PageParams};
pub use ratelimit::RateLimiter;

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::error::Error;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use crate::regions::Regions;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub secrets: SecretBox,
    pub regions: Arc<Regions>,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Failed authentications per client address (`server.failed_auth_*`).
    pub auth_failures: Arc<RateLimiter>,
    /// The use cases (`crate::service`): handlers call the rules there.
    pub services: crate::service::Services,
    pub jobs: crate::jobs::Jobs,
    pub scheduler: crate::automatic::Scheduler,
    /// Cancelled when the process begins to stop (ends event streams).
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The success envelope `{"code": 0, "data": ...}`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    code: u32,
    data: T,
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

pub fn ok<T: Serialize>(data: T) -> Envelope<T> {
    Envelope { code: 0, data }
}

pub type ApiResult<T> = Result<Envelope<T>, Error>;

/// The page fields every list answer carries beside its items.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub count: u64,
    pub current_page: u32,
    pub page_size: u32,
}

/// One page of a list held in memory (roles, regions): the page's items and the count of all.
pub fn page_of<T>(items: Vec<T>, page: crate::store::Page) -> (PageInfo, Vec<T>) {
    let count = items.len() as u64;
    let skip =
        (page.current_page.saturating_sub(1) as usize).saturating_mul(page.page_size as usize);
    let items = items
        .into_iter()
        .skip(skip)
        .take(page.page_size as usize)
        .collect();
    (PageInfo::new(count, page), items)
}

impl PageInfo {
    pub fn new(count: u64, page: crate::store::Page) -> PageInfo {
        PageInfo {
            count,
            current_page: page.current_page,
            page_size: page.page_size,
        }
    }
}

/// The full router with its OpenAPI document.
pub fn router(state: AppState) -> axum::Router {
    let (api, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(projects::router())
        .merge(api_keys::router())
        .merge(roles::router())
        .merge(regions::router())
        .merge(clusters::router())
        .merge(backups::router())
        .merge(restores::router())
        .merge(policies::router())
        .merge(usage::router())
        .merge(jobs::router())
        .split_for_parts();
    let openapi = Arc::new(openapi::contract(openapi, &state.jobs.registry().types()));
    let request_id = HeaderName::from_static("x-request-id");
    api.merge(ops::router(openapi))
        .merge(console::router())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .layer(DefaultBodyLimit::max(state.config.server.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|m| m.as_str())
                    .unwrap_or("unmatched");
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), route, request_id, key_id = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn fallback(method: Method, uri: axum::http::Uri) -> Error {
    Error::NotFound(format!(
        "no route {method} {}; GET /v2/openapi.json lists every route",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method) -> Error {
    Error::MethodNotAllowed(method.to_string())
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let elapsed: Duration = started.elapsed();
    state
        .metrics
        .http_latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
