//! Job queue benchmark on Postgres: drain N no-op jobs with 1, 2 and 4 workers (jobs/s), and
//! the pickup latency of jobs enqueued one at a time into an idle pool (enqueue commit to
//! handler start, p50/p99), beside a baseline in the same run: the same rows written with a
//! plain INSERT and then one UPDATE each, with no claiming, leasing or fencing.
//!
//! ```sh
//! cargo bench --bench queue                      # Postgres from BACKSTOP_TEST_DATABASE_URL
//! BENCH_JOBS=20000 cargo bench --bench queue
//! ```

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backstop::config::Config;
use backstop::jobs::{JobContext, JobError, JobHandler, Jobs, Registry};
use backstop::store::{JobFilter, JobStatus, Page, Store, Visible};
use chrono::Utc;
use support::fresh_database;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct NoOp {
    pickup: Arc<Mutex<Vec<Duration>>>,
}

#[async_trait]
impl JobHandler for NoOp {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let waited = (Utc::now() - ctx.job().created_at)
            .to_std()
            .unwrap_or_default();
        self.pickup.lock().unwrap().push(waited);
        Ok(())
    }
}

async fn succeeded(store: &Store) -> u64 {
    let filter = JobFilter {
        status: Some(JobStatus::Successful),
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn drain(admin: &str, workers: usize, n: usize) -> (f64, Duration, Duration) {
    let url = fresh_database(admin).await;
    let store = Store::connect(&url, (workers as u32 + 4).max(8))
        .await
        .unwrap();
    let handler = NoOp::default();
    let mut config = Config::embedded_default().jobs;
    config.workers = workers;
    let jobs = Jobs::new(
        store.clone(),
        Registry::new().register("NOOP", handler.clone()),
        config,
    );
    for i in 0..n {
        jobs.enqueue(&jobs.new_job("proj-bench", "NOOP", serde_json::json!({ "i": i })))
            .await
            .unwrap();
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    let pool = jobs.start_workers(stop.clone());
    while succeeded(&store).await < n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();

    // Pickup latency: one job at a time into an idle pool.
    handler.pickup.lock().unwrap().clear();
    let singles = 200;
    for _ in 0..singles {
        jobs.enqueue(&jobs.new_job("proj-bench", "NOOP", serde_json::json!({})))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while succeeded(&store).await < (n + singles) as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    pool.await.unwrap();
    let mut pickup = handler.pickup.lock().unwrap().clone();
    pickup.sort();
    store.close().await;
    (
        n as f64 / elapsed.as_secs_f64(),
        percentile(&pickup, 0.5),
        percentile(&pickup, 0.99),
    )
}

/// The same rows with plain SQL: one INSERT each, then one UPDATE each from `workers`
/// connections. What a queue costs beyond this is claiming, leasing and fencing.
async fn baseline(admin: &str, workers: usize, n: usize) -> f64 {
    let url = fresh_database(admin).await;
    let store = Store::connect(&url, 2).await.unwrap();
    store.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(workers as u32 + 1)
        .connect(&url)
        .await
        .unwrap();
    let now = Utc::now();
    let ids: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
    for id in &ids {
        sqlx::query("INSERT INTO jobs (id, project_id, job_type, status, payload, attempts, max_attempts, run_after, progress, bytes_done, bytes_total, created_at, updated_at) VALUES ($1, 'p', 'NOOP', 'PENDING', '{}', 0, 5, $2, 0, 0, 0, $2, $2)")
            .bind(id).bind(now).execute(&pool).await.unwrap();
    }
    let started = Instant::now();
    let chunks: Vec<Vec<String>> = ids
        .chunks(n.div_ceil(workers))
        .map(|c| c.to_vec())
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                sqlx::query("UPDATE jobs SET status = 'SUCCESSFUL', updated_at = $2 WHERE id = $1")
                    .bind(&id)
                    .bind(Utc::now())
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`. Test runners (`cargo test --all-targets`, nextest's
    // `--list`) start bench binaries too: a benchmark is not a test, so list nothing and exit.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let admin = std::env::var("BACKSTOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let n: usize = std::env::var("BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    println!(
        "queue benchmark: {n} no-op jobs on Postgres, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    println!("| workers | queue jobs/s | baseline INSERT+UPDATE rows/s (UPDATE phase) | pickup p50 | pickup p99 |");
    println!("|---|---|---|---|---|");
    for workers in [1, 2, 4] {
        let (rate, p50, p99) = drain(&admin, workers, n).await;
        let base = baseline(&admin, workers, n).await;
        println!(
            "| {workers} | {rate:.0} | {base:.0} | {:.1} ms | {:.1} ms |",
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0
        );
    }
}
