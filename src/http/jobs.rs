//! The job center: `/v2/jobs` lists and describes jobs, cancels them, and streams their
//! changes as Server-Sent Events. A job is visible with `job.read` on its project.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ok, ApiPath, ApiQuery, ApiResult, AppState, Auth, PageInfo, PageParams};
use crate::domain::access::Privilege;
use crate::domain::restore::{RestoreResult, RESTORE_CLUSTER_JOB, RESTORE_COLLECTION_JOB};
use crate::error::Error;
use crate::jobs::Registry;
use crate::store::{Job, JobFilter, JobStatus};

/// How often an event stream re-reads a job when no in-process change wakes it (changes made
/// by other processes).
const EVENT_POLL: Duration = Duration::from_millis(500);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(describe_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_events))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backup_id: Option<String>,
    /// Restores: the cluster restored into (also `clusterId`), named so a reader need not
    /// know which cluster a restore job is filed under.
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_cluster_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    job_id: String,
    project_id: String,
    #[serde(rename = "type")]
    job_type: String,
    status: JobStatus,
    /// 0–100.
    progress: i32,
    bytes_done: i64,
    bytes_total: i64,
    /// What the job is doing; once it ended, what it did (SUCCESSFUL: "backup available: …")
    /// or where it stopped ("failed while copying binlogs", "canceled while …").
    current_step: Option<String>,
    attempts: i32,
    max_attempts: i32,
    create_time: DateTime<Utc>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    reason: Option<String>,
    resource: JobResource,
    /// Whether `POST /v2/jobs/{jobId}/cancel` would accept it now: a cancellable type
    /// (backup, copy, verify, restore) that is PENDING or IN_PROGRESS.
    cancellable: bool,
    /// What a finished job tells its caller: a cluster restore lists the users it created,
    /// with their new passwords in the first `GET /v2/jobs/{jobId}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<RestoreResult>,
}

impl JobView {
    fn new(j: Job, registry: &Registry, result: Option<RestoreResult>) -> JobView {
        let restore = matches!(
            j.job_type.as_str(),
            RESTORE_COLLECTION_JOB | RESTORE_CLUSTER_JOB
        );
        JobView {
            result,
            cancellable: registry.is_cancellable(&j.job_type)
                && matches!(j.status, JobStatus::Pending | JobStatus::InProgress),
            job_id: j.id,
            project_id: j.project_id,
            job_type: j.job_type,
            status: j.status,
            progress: j.progress,
            bytes_done: j.bytes_done,
            bytes_total: j.bytes_total,
            current_step: shown_step(j.status, j.current_step),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            create_time: j.created_at,
            start_time: j.started_at,
            end_time: j.finished_at,
            reason: j.reason,
            resource: JobResource {
                dest_cluster_id: j.cluster_id.clone().filter(|_| restore),
                cluster_id: j.cluster_id,
                backup_id: j.backup_id,
            },
        }
    }
}

/// A failed or canceled job's last step, said as where it stopped; a running or successful
/// job's step as it is (handlers end with a step that says what they did).
fn shown_step(status: JobStatus, step: Option<String>) -> Option<String> {
    match status {
        JobStatus::Failed => step.map(|s| format!("failed while {s}")),
        JobStatus::Canceled => Some(match step {
            Some(s) => format!("canceled while {s}"),
            None => "canceled before it started".to_owned(),
        }),
        _ => step,
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    #[serde(flatten)]
    page: PageInfo,
    jobs: Vec<JobView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCanceled {
    job_id: String,
    /// CANCELED for a job that had not started; CANCELING while a running one stops.
    status: JobStatus,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    project_id: Option<String>,
    cluster_id: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    status: Option<JobStatus>,
}

/// List jobs of the projects this key can read, newest first.
#[utoipa::path(get, path = "/v2/jobs", tag = "jobs", params(JobQuery, PageParams),
    responses((status = 200, body = JobList)))]
async fn list_jobs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<JobQuery>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<JobList> {
    let page = params.page()?;
    if let Some(job_type) = &query.job_type {
        let known = state.jobs.registry().types();
        if !known.contains(&job_type.as_str()) {
            return Err(Error::invalid(format!(
                "type '{job_type}' is not a job type; use one of: {}",
                known.join(", ")
            )));
        }
    }
    let filter = JobFilter {
        project_id: query.project_id,
        cluster_id: query.cluster_id,
        job_type: query.job_type,
        status: query.status,
    };
    let (jobs, count) = state
        .store
        .list_jobs(&principal.projects_with(Privilege::JobRead), &filter, page)
        .await?;
    let mut views = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = state.services.job_result(&job, false).await?;
        views.push(JobView::new(job, state.jobs.registry(), result));
    }
    Ok(ok(JobList {
        page: PageInfo::new(count, page),
        jobs: views,
    }))
}

/// Describe a job: status, progress, bytes moved, timing and the reason of a failure.
#[utoipa::path(get, path = "/v2/jobs/{jobId}", tag = "jobs",
    params(("jobId" = String, Path)), responses((status = 200, body = JobView)))]
async fn describe_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<JobView> {
    let job = state
        .services
        .visible_job(&principal, &job_id, Privilege::JobRead)
        .await?;
    let result = state.services.job_result(&job, true).await?;
    Ok(ok(JobView::new(job, state.jobs.registry(), result)))
}

/// Cancel a pending or running job. A pending job is CANCELED at once; a running one becomes
/// CANCELING, stops at its next step boundary, removes what it wrote and ends CANCELED.
#[utoipa::path(post, path = "/v2/jobs/{jobId}/cancel", tag = "jobs",
    params(("jobId" = String, Path)), responses((status = 200, body = JobCanceled)))]
async fn cancel_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<JobCanceled> {
    let job = state
        .services
        .visible_job(&principal, &job_id, Privilege::JobCancel)
        .await?;
    let registry = state.jobs.registry();
    if !registry.is_cancellable(&job.job_type) {
        return Err(Error::Conflict(format!(
            "jobs of type {} cannot be canceled; these types can: {}",
            job.job_type,
            registry.cancellable_types().join(", ")
        )));
    }
    match state.jobs.cancel(&job).await? {
        Some(status) => {
            tracing::info!(job_id = %job_id, status = status.as_str(), "cancel requested");
            Ok(ok(JobCanceled { job_id, status }))
        }
        None => {
            let now = state
                .store
                .get_job(&job_id)
                .await?
                .map(|j| j.status)
                .unwrap_or(job.status);
            Err(Error::Conflict(format!(
                "job {job_id} is {}; only PENDING or IN_PROGRESS jobs can be canceled",
                now.as_str()
            )))
        }
    }
}

/// Server-Sent Events: one `job` event with the body of `GET /v2/jobs/{jobId}` on every
/// change, the stream closing after the final state.
#[utoipa::path(get, path = "/v2/jobs/{jobId}/events", tag = "jobs",
    params(("jobId" = String, Path)),
    responses((status = 200, description = "text/event-stream of job events", content_type = "text/event-stream")))]
async fn job_events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let first = state
        .services
        .visible_job(&principal, &job_id, Privilege::JobRead)
        .await?;
    let stream = futures::stream::unfold(
        (state, job_id, Some(first), None::<String>, false),
        |(state, job_id, mut next, mut last, done)| async move {
            if done {
                return None;
            }
            loop {
                let job = match next.take() {
                    Some(job) => job,
                    None => {
                        tokio::select! {
                            _ = state.jobs.changed() => {}
                            _ = tokio::time::sleep(EVENT_POLL) => {}
                            _ = state.shutdown.cancelled() => return None,
                        }
                        match state.store.get_job(&job_id).await {
                            Ok(Some(job)) => job,
                            Ok(None) => return None,
                            Err(e) => {
                                tracing::warn!(error = %e, "event stream could not read the job");
                                continue;
                            }
                        }
                    }
                };
                let is_final = job.status.is_final();
                let result = state.services.job_result(&job, false).await.ok().flatten();
                let view = JobView::new(job, state.jobs.registry(), result);
                let body = serde_json::json!({ "code": 0, "data": view }).to_string();
                if last.as_deref() == Some(body.as_str()) {
                    continue;
                }
                last = Some(body.clone());
                let event = Event::default().event("job").data(body);
                return Some((Ok(event), (state, job_id, None, last, is_final)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
