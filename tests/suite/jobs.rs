//! The job queue against real databases: exactly-once draining by two pools, crash recovery
//! of a killed process, graceful release on SIGTERM, retries, cancel, event streams, fencing
//! of a stale lease, and a Postgres restart under load.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backstop::jobs::{JobContext, JobError, JobHandler, Jobs, Registry, Stop};
use backstop::store::{Job, JobFilter, JobStatus, NewJob, Outcome, Page, Progress, Store, Visible};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::support::{
    example_bin, test_config, test_db, Backend, PrivatePostgres, TestApp, TestDb,
};

// ----- test job types -------------------------------------------------------------------

/// Counts how often each job ran.
#[derive(Clone, Default)]
struct Count {
    runs: Arc<Mutex<HashMap<String, u32>>>,
}

#[async_trait]
impl JobHandler for Count {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(ctx.job().id.clone())
            .or_default() += 1;
        Ok(())
    }
}

/// Fails its first `failures` attempts.
struct Flaky {
    failures: i32,
}

#[async_trait]
impl JobHandler for Flaky {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let attempt = ctx.job().attempts;
        if attempt <= self.failures {
            return Err(JobError::Retryable(format!(
                "the target said no (attempt {attempt})"
            )));
        }
        Ok(())
    }
}

/// Works in small steps until canceled, then cleans up.
#[derive(Clone, Default)]
struct UntilCanceled {
    cleaned_up: Arc<AtomicBool>,
}

#[async_trait]
impl JobHandler for UntilCanceled {
    fn cancellable(&self) -> bool {
        true
    }

    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        for i in 0.. {
            if let Err(stop) = ctx.checkpoint() {
                if stop == Stop::Canceled {
                    self.cleaned_up.store(true, Ordering::SeqCst);
                }
                return Err(stop.into());
            }
            ctx.progress(Progress {
                percent: i % 100,
                ..Progress::default()
            })
            .await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(())
    }
}

/// Reports progress in five steps.
struct Progressive;

#[async_trait]
impl JobHandler for Progressive {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        for step in 1..=5i64 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            ctx.progress(Progress {
                percent: (step * 20) as i32,
                bytes_done: step * 1000,
                bytes_total: 5000,
                step: Some(format!("step {step}")),
            })
            .await?;
        }
        Ok(())
    }
}

/// Not cancellable by users.
struct Stubborn;

#[async_trait]
impl JobHandler for Stubborn {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let _ = ctx.stopped().await;
        Err(JobError::Stopped(Stop::Interrupted))
    }
    fn cancellable(&self) -> bool {
        false
    }
}

// ----- helpers --------------------------------------------------------------------------

fn new_job(jobs: &Jobs, project: &str, job_type: &str, payload: Value) -> NewJob {
    jobs.new_job(project, job_type, payload)
}

async fn wait_for_job(store: &Store, id: &str, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.get_job(id).await.unwrap().expect("job exists");
        if done(&job) {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never reached {what}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn count_with_status(store: &Store, status: JobStatus) -> u64 {
    let filter = JobFilter {
        status: Some(status),
        ..JobFilter::default()
    };
    store
        .list_jobs(
            &Visible::All,
            &filter,
            Page {
                current_page: 1,
                page_size: 1,
            },
        )
        .await
        .unwrap()
        .1
}

async fn jobs_on(db: &TestDb, registry: Registry, workers: usize) -> Jobs {
    let store = Store::connect(&db.url, 5).await.unwrap();
    let mut config = test_config(db).jobs;
    config.workers = workers;
    Jobs::new(store, registry, config)
}

// ----- queue semantics ------------------------------------------------------------------

/// A job committed beside another row (a backup and the job that makes it; a finished backup
/// and its copy jobs) wakes idle workers at once: nothing waits for the fallback poll, set to
/// ten minutes here (SQLite has no NOTIFY; the store wakes its process itself).
async fn jobs_committed_with_their_rows_wake_idle_workers(backend: Backend) {
    use backstop::domain::backups::{BackupType, CopyRequest, CreationMethod};
    use backstop::store::NewBackup;
    let db = test_db(backend).await;
    let count = Count::default();
    let mut config = test_config(&db).jobs;
    config.poll_interval_ms = 600_000;
    config.workers = 2;
    let store = Store::connect(&db.url, 5).await.unwrap();
    let jobs = Jobs::new(
        store.clone(),
        Registry::new().register("COUNT", count.clone()),
        config,
    );
    let stop = CancellationToken::new();
    let pool = jobs.start_workers(stop.clone());
    // The pool's first claim finds nothing; from then on only a wake-up (or the poll) helps.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let backup = NewBackup {
        project_id: "proj-x".into(),
        cluster_id: "c1".into(),
        cluster_name: "prod".into(),
        region_id: "local".into(),
        name: None,
        backup_type: BackupType::Cluster,
        creation_method: CreationMethod::Manual,
        selection: Vec::new(),
        expire_at: None,
        copy_regions: Vec::new(),
    };
    let mut job = new_job(&jobs, "proj-x", "COUNT", json!({}));
    let backup = store
        .create_backup(&backup, &mut job, Utc::now())
        .await
        .unwrap();
    wait_for_job(&store, &job.id, "SUCCESSFUL", |j| {
        j.status == JobStatus::Successful
    })
    .await;

    let copy = (
        CopyRequest {
            region_id: "eu".into(),
            retention_days: None,
        },
        new_job(&jobs, "proj-x", "COUNT", json!({})).for_backup(&backup),
    );
    let copy_id = copy.1.id.clone();
    assert!(store
        .complete_backup(
            &backup.id,
            &backstop::store::Held {
                size: 0,
                collections: &[],
                rbac: None
            },
            &[copy],
            Utc::now()
        )
        .await
        .unwrap());
    wait_for_job(&store, &copy_id, "SUCCESSFUL", |j| {
        j.status == JobStatus::Successful
    })
    .await;
    stop.cancel();
    pool.await.unwrap();
}

async fn two_pools_drain_1000_jobs_exactly_once(backend: Backend) {
    let db = test_db(backend).await;
    let count = Count::default();
    let a = jobs_on(&db, Registry::new().register("COUNT", count.clone()), 4).await;
    let b = jobs_on(&db, Registry::new().register("COUNT", count.clone()), 4).await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    let stop = CancellationToken::new();
    let pools = [a.start_workers(stop.clone()), b.start_workers(stop.clone())];
    for i in 0..1000 {
        let enqueuer = if i % 2 == 0 { &a } else { &b };
        enqueuer
            .enqueue(&new_job(enqueuer, "proj-x", "COUNT", json!({ "i": i })))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while count_with_status(&store, JobStatus::Successful).await < 1000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained: {:?}",
            count.runs.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    for pool in pools {
        pool.await.unwrap();
    }
    let runs = count.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1000, "every job ran");
    assert!(
        runs.values().all(|n| *n == 1),
        "a job ran twice: {:?}",
        runs.iter().find(|(_, n)| **n != 1)
    );
    let (all, total) = store
        .list_jobs(&Visible::All, &JobFilter::default(), Page::all())
        .await
        .unwrap();
    assert_eq!(total, 1000);
    assert!(all
        .iter()
        .all(|j| j.status == JobStatus::Successful && j.attempts == 1 && j.lease_owner.is_none()));
}

async fn retries_with_backoff_then_succeeds_or_fails_with_last_reason(backend: Backend) {
    let db = test_db(backend).await;
    let registry = Registry::new()
        .register("FLAKY", Flaky { failures: 2 })
        .register("HOPELESS", Flaky { failures: i32::MAX });
    let jobs = jobs_on(&db, registry, 2).await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    let stop = CancellationToken::new();
    let pool = jobs.start_workers(stop.clone());
    let mut flaky = new_job(&jobs, "p", "FLAKY", json!({}));
    flaky.max_attempts = 5;
    let mut hopeless = new_job(&jobs, "p", "HOPELESS", json!({}));
    hopeless.max_attempts = 3;
    jobs.enqueue(&flaky).await.unwrap();
    jobs.enqueue(&hopeless).await.unwrap();

    let done = wait_for_job(&store, &flaky.id, "SUCCESSFUL", |j| j.status.is_final()).await;
    assert_eq!(
        (done.status, done.attempts),
        (JobStatus::Successful, 3),
        "{done:?}"
    );
    assert_eq!(done.reason, None);
    assert_eq!(done.progress, 100);
    let failed = wait_for_job(&store, &hopeless.id, "FAILED", |j| j.status.is_final()).await;
    assert_eq!(
        (failed.status, failed.attempts),
        (JobStatus::Failed, 3),
        "{failed:?}"
    );
    let reason = failed.reason.unwrap();
    assert!(
        reason.contains("the target said no (attempt 3)") && reason.contains("after 3 attempts"),
        "{reason}"
    );
    assert!(failed.finished_at.is_some());
    stop.cancel();
    pool.await.unwrap();
}

async fn a_stale_lease_cannot_write(backend: Backend) {
    let db = test_db(backend).await;
    let store = Store::connect(&db.url, 2).await.unwrap();
    let jobs = Jobs::new(store.clone(), Registry::new(), test_config(&db).jobs);
    let job = new_job(&jobs, "p", "ANY", json!({}));
    jobs.enqueue(&job).await.unwrap();
    let t0 = Utc::now();
    let lease_for = chrono::Duration::seconds(1);
    let first = store
        .claim_jobs("owner-a", 10, t0, t0 + lease_for)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let lease_a = first[0].lease().unwrap();
    // Nothing else is claimable while the lease holds.
    assert!(store
        .claim_jobs("owner-b", 10, t0, t0 + lease_for)
        .await
        .unwrap()
        .is_empty());
    // The lease of A expired (its process stalled): B takes the job over.
    let later = t0 + chrono::Duration::seconds(2);
    let second = store
        .claim_jobs("owner-b", 10, later, later + lease_for)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    let lease_b = second[0].lease().unwrap();
    // Every write of A is refused; B's succeed.
    assert!(!store
        .update_progress(&lease_a, &Progress::default(), later)
        .await
        .unwrap());
    assert!(!store
        .save_job_state(&lease_a, &json!({"x": 1}), later)
        .await
        .unwrap());
    assert_eq!(
        store
            .heartbeat(&lease_a, later, later + lease_for)
            .await
            .unwrap(),
        None
    );
    assert!(!store
        .finish_job(&lease_a, &Outcome::Succeeded, later)
        .await
        .unwrap());
    assert_eq!(
        store
            .heartbeat(&lease_b, later, later + lease_for)
            .await
            .unwrap(),
        Some(JobStatus::InProgress)
    );
    assert!(store
        .finish_job(&lease_b, &Outcome::Failed { reason: "b".into() }, later)
        .await
        .unwrap());
    let end = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (end.status, end.reason.as_deref()),
        (JobStatus::Failed, Some("b"))
    );
    // A dedupe key admits one job only.
    let mut once = new_job(&jobs, "p", "ANY", json!({}));
    once.dedupe_key = Some("auto:cluster-1:2026-11-24T01".into());
    jobs.enqueue(&once).await.unwrap();
    let mut twice = new_job(&jobs, "p", "ANY", json!({}));
    twice.dedupe_key = once.dedupe_key.clone();
    assert!(
        matches!(jobs.enqueue(&twice).await, Err(backstop::store::StoreError::Conflict(c)) if c == "jobs_dedupe_key_key")
    );
}

on_both_backends!(
    jobs_committed_with_their_rows_wake_idle_workers,
    two_pools_drain_1000_jobs_exactly_once,
    retries_with_backoff_then_succeeds_or_fails_with_last_reason,
    a_stale_lease_cannot_write,
);

// ----- processes that die or stop ---------------------------------------------------------

struct Worker {
    child: Child,
}

impl Worker {
    fn spawn(db_url: &str, effects: &std::path::Path) -> Worker {
        let mut child = Command::new(example_bin("job_worker"))
            .arg(db_url)
            .arg(effects)
            .env("LEASE_MS", "1500")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn job_worker");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "job_worker did not start");
        Worker { child }
    }

    fn signal(&self, signal: &str) {
        assert!(Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    }

    fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_file(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Each step's effect exactly once, in order.
fn assert_effects_once(effects: &std::path::Path, job_id: &str, steps: u32) -> Vec<(u32, i32)> {
    let log = std::fs::read_to_string(effects.join(format!("{job_id}.log"))).unwrap();
    let lines: Vec<(u32, i32)> = log
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts[1].parse().unwrap(), parts[3].parse().unwrap())
        })
        .collect();
    let steps_seen: Vec<u32> = lines.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        steps_seen,
        (1..=steps).collect::<Vec<_>>(),
        "effects duplicated or missing:\n{log}"
    );
    lines
}

async fn killed_process_job_is_finished_by_another(backend: Backend) {
    let db = test_db(backend).await;
    let effects = tempfile::tempdir().unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let jobs = Jobs::new(store.clone(), Registry::new(), test_config(&db).jobs);
    let first = Worker::spawn(&db.url, effects.path());
    let job = new_job(&jobs, "p", "STEPS", json!({"steps": 6, "stepMillis": 250}));
    jobs.enqueue(&job).await.unwrap();
    wait_for_file(&effects.path().join(format!("{}.step2", job.id))).await;
    first.signal("-KILL");
    first.wait();
    let stranded = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        stranded.status,
        JobStatus::InProgress,
        "the killed process could not record anything"
    );

    let second = Worker::spawn(&db.url, effects.path());
    let done = wait_for_job(&store, &job.id, "SUCCESSFUL", |j| j.status.is_final()).await;
    assert_eq!(
        (done.status, done.attempts),
        (JobStatus::Successful, 2),
        "{done:?}"
    );
    let lines = assert_effects_once(effects.path(), &job.id, 6);
    assert!(
        lines.iter().any(|(_, attempt)| *attempt == 2),
        "the second process did part of the work"
    );
    assert!(lines.iter().filter(|(_, attempt)| *attempt == 1).count() >= 2);
    second.signal("-TERM");
    assert!(second.wait().success());
}

async fn sigterm_releases_the_lease_for_another_process(backend: Backend) {
    let db = test_db(backend).await;
    let effects = tempfile::tempdir().unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    let jobs = Jobs::new(store.clone(), Registry::new(), test_config(&db).jobs);
    let first = Worker::spawn(&db.url, effects.path());
    let job = new_job(&jobs, "p", "STEPS", json!({"steps": 8, "stepMillis": 200}));
    jobs.enqueue(&job).await.unwrap();
    wait_for_file(&effects.path().join(format!("{}.step1", job.id))).await;
    first.signal("-TERM");
    assert!(first.wait().success(), "graceful stop exits 0");
    let released = store.get_job(&job.id).await.unwrap().unwrap();
    assert_eq!(released.status, JobStatus::Pending, "{released:?}");
    assert_eq!(
        released.lease_owner, None,
        "the lease was released, not left to expire"
    );
    assert_eq!(released.attempts, 0, "a released attempt is not counted");

    let second = Worker::spawn(&db.url, effects.path());
    let done = wait_for_job(&store, &job.id, "SUCCESSFUL", |j| j.status.is_final()).await;
    assert_eq!(
        (done.status, done.attempts),
        (JobStatus::Successful, 1),
        "{done:?}"
    );
    assert_effects_once(effects.path(), &job.id, 8);
    second.signal("-TERM");
    assert!(second.wait().success());
}

on_both_backends!(
    killed_process_job_is_finished_by_another,
    sigterm_releases_the_lease_for_another_process
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_loses_no_job() {
    let pg = PrivatePostgres::start();
    let db = TestDb {
        url: pg.url.clone(),
        dir: tempfile::tempdir().unwrap(),
    };
    let count = Count::default();
    let jobs = jobs_on(&db, Registry::new().register("COUNT", count.clone()), 4).await;
    let store = Store::connect(&pg.url, 2).await.unwrap();
    let stop = CancellationToken::new();
    let pool = jobs.start_workers(stop.clone());
    let mut ids = Vec::new();
    for round in 0..2 {
        for _ in 0..50 {
            let job = new_job(&jobs, "p", "COUNT", json!({}));
            // The first calls after the restart may meet broken connections: the caller retries,
            // as an API client would.
            let mut tries = 0;
            while let Err(e) = jobs.enqueue(&job).await {
                tries += 1;
                assert!(tries < 100, "enqueue never recovered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            ids.push(job.id);
        }
        if round == 0 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while count.runs.lock().unwrap().is_empty() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no job ran before the restart"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pg.restart();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        // Errors are expected while the server restarts: keep asking.
        let succeeded = store
            .list_jobs(
                &Visible::All,
                &JobFilter {
                    status: Some(JobStatus::Successful),
                    ..JobFilter::default()
                },
                Page::all(),
            )
            .await
            .map(|(_, n)| n);
        if succeeded.ok() == Some(100) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs lost after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = count.runs.lock().unwrap().clone();
    for id in &ids {
        assert!(
            runs.get(id).copied().unwrap_or(0) >= 1,
            "job {id} never ran"
        );
    }
    stop.cancel();
    pool.await.unwrap();
}

// ----- the job center API -----------------------------------------------------------------

fn api_registry(until: &UntilCanceled) -> Registry {
    Registry::new()
        .register("UNTIL_CANCELED", until.clone())
        .register("PROGRESSIVE", Progressive)
        .register("STUBBORN", Stubborn)
}

async fn enqueuer(app: &TestApp) -> (Jobs, Store) {
    let store = Store::connect(&app.db.url, 2).await.unwrap();
    (
        Jobs::new(store.clone(), Registry::new(), test_config(&app.db).jobs),
        store,
    )
}

async fn cancel_pending_and_running_jobs(backend: Backend) {
    let until = UntilCanceled::default();
    let app = TestApp::spawn_full(backend, |_| {}, api_registry(&until)).await;
    let project = app.create_project("p").await;
    let reader = app.create_key(&project, "READ_ONLY").await;
    let other = app.create_project("other").await;
    let outsider = app.create_key(&other, "ADMIN").await;
    let (jobs, store) = enqueuer(&app).await;

    let mut later = new_job(&jobs, &project, "UNTIL_CANCELED", json!({}));
    later.run_after = Utc::now() + chrono::Duration::hours(1);
    jobs.enqueue(&later).await.unwrap();
    let canceled = app
        .admin(Method::POST, &format!("/v2/jobs/{}/cancel", later.id), None)
        .await;
    assert_eq!(canceled["status"], "CANCELED");
    let described = app
        .admin(Method::GET, &format!("/v2/jobs/{}", later.id), None)
        .await;
    assert_eq!(described["status"], "CANCELED");
    assert!(described["endTime"].is_string());
    assert_eq!(described["cancellable"], false, "final: {described}");

    let running = new_job(&jobs, &project, "UNTIL_CANCELED", json!({}));
    jobs.enqueue(&running).await.unwrap();
    wait_for_job(&store, &running.id, "IN_PROGRESS", |j| {
        j.status == JobStatus::InProgress
    })
    .await;
    let described = app
        .admin(Method::GET, &format!("/v2/jobs/{}", running.id), None)
        .await;
    assert_eq!(described["cancellable"], true, "{described}");
    let path = format!("/v2/jobs/{}/cancel", running.id);
    let (status, _) = app.call(Method::POST, &path, Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::POST, &path, Some(&outsider), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let canceling = app.admin(Method::POST, &path, None).await;
    assert_eq!(canceling["status"], "CANCELING");
    let done = wait_for_job(&store, &running.id, "CANCELED", |j| j.status.is_final()).await;
    assert_eq!(done.status, JobStatus::Canceled, "{done:?}");
    assert!(
        until.cleaned_up.load(Ordering::SeqCst),
        "the handler cleaned up before ending"
    );
    let (status, json) = app
        .call(Method::POST, &path, Some(&app.admin_key), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert!(json["message"].as_str().unwrap().contains("CANCELED"));

    let stubborn = new_job(&jobs, &project, "STUBBORN", json!({}));
    jobs.enqueue(&stubborn).await.unwrap();
    let described = app
        .admin(Method::GET, &format!("/v2/jobs/{}", stubborn.id), None)
        .await;
    assert_eq!(
        described["cancellable"], false,
        "STUBBORN jobs cannot be canceled"
    );
    let (status, json) = app
        .call(
            Method::POST,
            &format!("/v2/jobs/{}/cancel", stubborn.id),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert!(json["message"].as_str().unwrap().contains("STUBBORN"));
}

async fn event_stream_follows_progress_and_closes(backend: Backend) {
    let app = TestApp::spawn_full(backend, |_| {}, api_registry(&UntilCanceled::default())).await;
    let project = app.create_project("p").await;
    let (jobs, _) = enqueuer(&app).await;
    let job = new_job(&jobs, &project, "PROGRESSIVE", json!({}));
    jobs.enqueue(&job).await.unwrap();
    let response = app
        .client
        .get(format!("{}/v2/jobs/{}/events", app.base, job.id))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The whole body arrives only when the server closes the stream after the final state.
    let body = tokio::time::timeout(Duration::from_secs(60), response.text())
        .await
        .expect("stream closes")
        .unwrap();
    let events: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str::<Value>(d.trim()).unwrap()["data"].clone())
        .collect();
    let last = events.last().expect("events");
    assert_eq!(last["status"], "SUCCESSFUL", "{body}");
    assert_eq!(last["progress"], 100);
    let progress: Vec<i64> = events
        .iter()
        .map(|e| e["progress"].as_i64().unwrap())
        .collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(
        progress.iter().any(|p| *p > 0 && *p < 100),
        "intermediate progress streamed: {progress:?}"
    );
    assert!(events.iter().any(|e| e["bytesTotal"] == 5000));
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"backstop_job_attempts_total{job_type="PROGRESSIVE",outcome="SUCCESSFUL"} 1"#
        ),
        "{metrics}"
    );
}

async fn job_center_lists_newest_first_with_filters(backend: Backend) {
    let app = TestApp::spawn_full(backend, |_| {}, Registry::new()).await;
    let p1 = app.create_project("p1").await;
    let p2 = app.create_project("p2").await;
    let p2_reader = app.create_key(&p2, "READ_ONLY").await;
    let (jobs, _) = enqueuer(&app).await;
    let mut ids = Vec::new();
    for (project, job_type) in [
        (&p1, "BACKUP"),
        (&p1, "RESTORE_COLLECTION"),
        (&p1, "BACKUP"),
        (&p2, "BACKUP"),
    ] {
        let mut job = new_job(&jobs, project, job_type, json!({}));
        job.run_after = Utc::now() + chrono::Duration::hours(1);
        job.cluster_id = Some(format!("in01-{project}"));
        jobs.enqueue(&job).await.unwrap();
        ids.push(job.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = app.admin(Method::GET, "/v2/jobs?pageSize=100", None).await;
    assert_eq!(all["count"], 4);
    let listed: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        ids.iter().rev().map(String::as_str).collect::<Vec<_>>(),
        "newest first"
    );
    let page = app
        .admin(Method::GET, "/v2/jobs?pageSize=2&currentPage=2", None)
        .await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["jobId"], ids[1].as_str());
    let backups = app
        .admin(
            Method::GET,
            &format!("/v2/jobs?projectId={p1}&type=BACKUP&status=PENDING"),
            None,
        )
        .await;
    assert_eq!(backups["count"], 2);
    let by_cluster = app
        .admin(Method::GET, &format!("/v2/jobs?clusterId=in01-{p2}"), None)
        .await;
    assert_eq!(by_cluster["count"], 1);
    assert_eq!(
        by_cluster["jobs"][0]["resource"]["clusterId"],
        format!("in01-{p2}")
    );
    let (status, json) = app
        .call(
            Method::GET,
            "/v2/jobs?status=DONE",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(json["message"].as_str().unwrap().contains("status"));

    let (_, mine) = app
        .call(Method::GET, "/v2/jobs", Some(&p2_reader), None)
        .await;
    assert_eq!(mine["data"]["count"], 1, "{mine}");
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v2/jobs/{}", ids[0]),
            Some(&p2_reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v2/jobs/{}/events", ids[0]),
            Some(&p2_reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(Method::GET, "/v2/jobs/job-nope", Some(&app.admin_key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn idempotency_key_replays_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |key: &'static str, name: &'static str| {
        app.client
            .post(format!("{}/v2/projects", app.base))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", key)
            .json(&json!({ "projectName": name }))
            .send()
    };
    let first = post("k-1", "alpha").await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = post("k-1", "alpha").await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the same answer, nothing new created");
    let projects = app.admin(Method::GET, "/v2/projects", None).await;
    assert_eq!(projects["count"], 1);

    let mismatch = post("k-1", "beta").await.unwrap();
    assert_eq!(mismatch.status(), StatusCode::CONFLICT);
    let body: Value = mismatch.json().await.unwrap();
    assert_eq!(body["code"], 90409);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // A failed request is not remembered: fixing the request under the same key works.
    let conflict = post("k-2", "alpha").await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let other = app
        .admin(
            Method::POST,
            "/v2/projects",
            Some(json!({"projectName": "gamma"})),
        )
        .await;
    assert!(other["projectId"].is_string());
    let fresh = post("k-3", "delta").await.unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    // API key secrets are never stored, so key creation is not replayed.
    let mk = || {
        app.client
            .post(format!("{}/v2/apiKeys", app.base))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", "k-keys")
            .json(&json!({ "name": "dup" }))
            .send()
    };
    let a: Value = mk().await.unwrap().json().await.unwrap();
    let b: Value = mk().await.unwrap().json().await.unwrap();
    assert_ne!(a["data"]["apiKey"], b["data"]["apiKey"]);

    // The scheme in any case is the same credential, for authentication and idempotency
    // alike: a lowercase `bearer` retry replays instead of running again.
    let lower = |name: &'static str| {
        app.client
            .post(format!("{}/v2/projects", app.base))
            .header("Authorization", format!("bearer {}", app.admin_key))
            .header("Idempotency-Key", "k-lower")
            .json(&json!({ "projectName": name }))
            .send()
    };
    let first: Value = lower("epsilon").await.unwrap().json().await.unwrap();
    let again = lower("epsilon").await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "{first} vs {again}");

    // The same request is the same JSON, whatever its spacing and key order.
    let send = |body: &'static str| {
        app.client
            .post(format!("{}/v2/roles", app.base))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", "k-json")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let first = send(r#"{"roleName":"viewer","privileges":["backup.read","job.read"]}"#)
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let again = send(
        r#"{ "privileges": [ "backup.read", "job.read" ],
             "roleName": "viewer" }"#,
    )
    .await
    .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
}

async fn delete_project_row(app: &TestApp, id: &str) {
    const SQL: &str = "DELETE FROM projects WHERE id = $1";
    let store = Store::connect(&app.db.url, 1).await.unwrap();
    match store.pool() {
        backstop::store::Pool::Postgres(p) => {
            sqlx::query(SQL).bind(id).execute(p).await.unwrap();
        }
        backstop::store::Pool::Sqlite(p) => {
            sqlx::query(SQL).bind(id).execute(p).await.unwrap();
        }
    }
}

async fn a_keyed_request_that_died_replays_what_it_committed_or_runs_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |key: &'static str| {
        app.client
            .post(format!("{}/v2/projects", app.base))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", key)
            .json(&json!({ "projectName": key }))
            .send()
    };
    let count = || async { app.admin(Method::GET, "/v2/projects", None).await["count"].clone() };

    // The work committed, the answer was never recorded. While the dead request's lease runs
    // the key is busy; once it lapses, the retry answers from what was committed.
    let first: Value = post("k-committed").await.unwrap().json().await.unwrap();
    crate::support::die_mid_request(
        &app,
        "k-committed",
        Utc::now() + chrono::Duration::seconds(60),
    )
    .await;
    let busy = post("k-committed").await.unwrap();
    assert_eq!(busy.status(), StatusCode::CONFLICT);
    let busy: Value = busy.json().await.unwrap();
    assert!(
        busy["message"].as_str().unwrap().contains("still running"),
        "{busy}"
    );
    crate::support::die_mid_request(
        &app,
        "k-committed",
        Utc::now() - chrono::Duration::seconds(1),
    )
    .await;
    let retry = post("k-committed").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first, "the committed project, not a second one");
    assert_eq!(count().await, 1);
    let again: Value = post("k-committed").await.unwrap().json().await.unwrap();
    assert_eq!(again, first, "the recovered answer is recorded");

    // The request died before its work committed: the retry runs it, once, under the same id.
    let first: Value = post("k-lost").await.unwrap().json().await.unwrap();
    let id = first["data"]["projectId"].as_str().unwrap().to_owned();
    delete_project_row(&app, &id).await;
    crate::support::die_mid_request(&app, "k-lost", Utc::now() - chrono::Duration::seconds(1))
        .await;
    assert_eq!(count().await, 1);
    let retry = post("k-lost").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert!(
        retry.headers().get("idempotent-replayed").is_none(),
        "it ran"
    );
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["data"]["projectId"], id.as_str());
    assert_eq!(count().await, 2);
}

on_both_backends!(
    cancel_pending_and_running_jobs,
    event_stream_follows_progress_and_closes,
    job_center_lists_newest_first_with_filters,
    idempotency_key_replays_the_first_answer,
    a_keyed_request_that_died_replays_what_it_committed_or_runs_once,
);
