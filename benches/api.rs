//! API latency under a steady load: the job center and the lists (`GET /v2/jobs`,
//! `/v2/backups`, `/v2/clusters`) at a fixed request rate from 16 connections, on SQLite and
//! on Postgres, beside two baselines in the same run: `GET /healthz` (no key, no database)
//! and `GET /v2/regions` (key checked, answer from memory). Each list holds 1,000 jobs and
//! 1,000 backups, made through the API.
//!
//! ```sh
//! cargo bench --bench api                      # Postgres from BACKSTOP_TEST_DATABASE_URL
//! BENCH_RATE=1000 BENCH_SECONDS=10 cargo bench --bench api
//! ```

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop::config::Config;
use backstop::Application;
use serde_json::json;
use support::{env_usize, fresh_database, Api};

const CONNECTIONS: usize = 16;

/// A service on `database_url` (None: SQLite in `work`), jobs and scheduler off, rate limit
/// out of the way; 1,000 backups (each created, then its job canceled) and their jobs.
async fn start(work: &std::path::Path, database_url: Option<String>) -> Api {
    let mut config = Config::embedded_default();
    config.data_dir = work.to_path_buf();
    config.database.url = database_url;
    config.database.max_connections = 16;
    config.jobs.enabled = false;
    config.scheduler.enabled = false;
    config.server.rate_limit_per_second = 1_000_000;
    config.server.rate_limit_burst = 1_000_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(config, listener).await.unwrap();
    let api = Api::new(
        format!("http://{}", app.local_addr().unwrap()),
        app.bootstrap_key().unwrap().to_owned(),
    );
    tokio::spawn(app.run_until(std::future::pending()));

    let project = api
        .post("/v2/projects", json!({"projectName": "bench"}))
        .await["projectId"]
        .as_str()
        .unwrap()
        .to_owned();
    // A Milvus that does not answer: registered all the same (UNREACHABLE).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let storage = work.join("milvus-data");
    std::fs::create_dir_all(&storage).unwrap();
    let cluster = api
        .post(
            "/v2/clusters",
            json!({"clusterName": "bench", "projectId": project, "regionId": "local",
                "plan": "Dedicated", "cuSize": 1, "milvus": {"uri": format!("http://{closed}")},
                "storage": {"type": "local", "path": storage}}),
        )
        .await["clusterId"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..1000 {
        let created = api
            .post(
                &format!("/v2/clusters/{cluster}/backups/create"),
                json!({"backupType": "CLUSTER"}),
            )
            .await;
        let job = created["jobId"].as_str().unwrap();
        api.call(
            reqwest::Method::POST,
            &format!("/v2/jobs/{job}/cancel"),
            None,
        )
        .await;
    }
    api
}

/// `rate` requests per second of `path` from 16 connections for `seconds`; the latency
/// p50 and p99 in ms and the rate reached.
async fn load(api: &Api, path: &str, rate: usize, seconds: usize) -> (f64, f64, f64) {
    let target = Arc::new(Api {
        base: api.base.clone(),
        key: api.key.clone(),
        http: api.http.clone(),
    });
    let every = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds as u64);
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let (target, path) = (target.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + every.mul_f64(i as f64 / CONNECTIONS as f64),
                every,
            );
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latencies = Vec::new();
            while Instant::now() < until {
                ticks.tick().await;
                let sent = Instant::now();
                let response = http
                    .get(format!("{}{path}", target.base))
                    .bearer_auth(&target.key)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
                response.bytes().await.unwrap();
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let took = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let at = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), all.len() as f64 / took)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rate = env_usize("BENCH_RATE", 1000);
    let seconds = env_usize("BENCH_SECONDS", 10);
    let admin = std::env::var("BACKSTOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    println!("API latency: {rate} req/s from {CONNECTIONS} connections, {seconds} s per row");
    println!();
    println!("| database | request | p50 ms | p99 ms | req/s reached |");
    println!("|---|---|---|---|---|");
    for database in ["sqlite", "postgres"] {
        let work = tempfile::tempdir().unwrap();
        let url = match database {
            "postgres" => Some(fresh_database(&admin).await),
            _ => None,
        };
        let target = start(work.path(), url).await;
        for path in [
            "/healthz",
            "/v2/regions",
            "/v2/jobs",
            "/v2/backups",
            "/v2/clusters",
        ] {
            let (p50, p99, reached) = load(&target, path, rate, seconds).await;
            println!("| {database} | GET {path} | {p50:.2} | {p99:.2} | {reached:.0} |");
        }
    }
}
