//! Restore benchmark: one collection (`BENCH_ROWS` x `BENCH_DIM` random floats in
//! `BENCH_SEGMENTS` sealed segments; by default 140,000 x 512 in 4, ~290 MB of binlogs)
//! restored through the API into a Milvus that keeps its binlogs in S3, three ways side by
//! side in one run, alternating round by round:
//!
//! - **1 import at a time**: a service with `restore.import_parallelism = 1`, i.e. Milvus's
//!   own import speed with one task: the baseline;
//! - **`BENCH_IMPORTS` imports at once** (default 4), staging server-side: the backup's region
//!   and the Milvus bucket share an endpoint, so staging is S3 `CopyObject` inside the server;
//! - the same, **streamed**: the S3 server named by another host name (`localhost` for
//!   `127.0.0.1`), so the endpoints differ and every byte streams through the service.
//!
//! Each figure is a whole restore job, POST to SUCCESSFUL: verify, create, stage, import, row
//! check, index, load.
//!
//! ```sh
//! scripts/test --exec cargo bench --bench restore     # starts SeaweedFS and the S3 Milvus
//! BENCH_ROWS=70000 BENCH_ROUNDS=3 scripts/test --exec cargo bench --bench restore
//! ```

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backstop::config::{Config, RegionConfig, S3Config, StorageConfig};
use backstop::objects::S3Store;
use backstop::Application;
use serde_json::json;
use support::{env_usize, Api};

const MB: f64 = 1_000_000.0;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the benchmark as `scripts/test --exec cargo bench --bench \
             restore`, which starts SeaweedFS and a Milvus on it"
        )
    })
}

/// Waits for the job to end, panicking unless it succeeded; returns how long each of its
/// steps (`currentStep`, polled every 50 ms) ran, in order.
async fn finished(api: &Api, job_id: &str) -> Vec<(String, f64)> {
    let mut steps: Vec<(String, Instant)> = Vec::new();
    loop {
        let job = api.get(&format!("/v2/jobs/{job_id}")).await;
        let step = job["currentStep"].as_str().unwrap_or_default().to_owned();
        if steps.last().is_none_or(|(last, _)| *last != step) {
            steps.push((step, Instant::now()));
        }
        match job["status"].as_str() {
            Some("SUCCESSFUL") => break,
            Some("FAILED" | "CANCELED") => panic!("job {job_id} ended: {job}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let end = Instant::now();
    let starts: Vec<Instant> = steps
        .iter()
        .map(|(_, at)| *at)
        .skip(1)
        .chain([end])
        .collect();
    steps
        .into_iter()
        .zip(starts)
        .map(|((step, at), next)| (step, next.duration_since(at).as_secs_f64()))
        .collect()
}

/// Runs `tests/support/milvus_seed.py` against the S3 Milvus.
async fn seed(uri: &str, token: &str, args: &[&str]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var("BACKSTOP_TEST_MILVUS_VENV").map_or_else(
        |_| PathBuf::from(env("HOME")).join(".cache/backstop/venv-milvus"),
        PathBuf::from,
    );
    let output = tokio::process::Command::new(venv.join("bin/python"))
        .arg(root.join("tests/support/milvus_seed.py"))
        .arg(uri)
        .args(args)
        .env("MILVUS_TOKEN", token)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "milvus_seed.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn s3_region(id: &str, endpoint: &str, bucket: &str) -> RegionConfig {
    RegionConfig {
        id: id.to_owned(),
        cloud_provider: "aws".to_owned(),
        price_per_gb_month: 0.02,
        storage: StorageConfig::S3(S3Config {
            endpoint: Some(endpoint.to_owned()),
            bucket: bucket.to_owned(),
            prefix: "backstop".to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: env("BACKSTOP_TEST_S3_ACCESS_KEY"),
            secret_access_key: env("BACKSTOP_TEST_S3_SECRET_KEY").into(),
            force_path_style: true,
            part_size_mib: 16,
            parts_in_flight: 4,
        }),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Seconds spent in the steps whose name starts with `prefix`.
fn spent(steps: &[(String, f64)], prefix: &str) -> f64 {
    steps
        .iter()
        .filter(|(step, _)| step.starts_with(prefix))
        .map(|(_, s)| s)
        .sum()
}

/// A service of its own (SQLite in `work`, the two S3 regions) restoring with `imports`
/// Imports in flight; its API.
async fn start_service(work: &std::path::Path, imports: usize, endpoint: &str, tag: &str) -> Api {
    let other_name = endpoint.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(
        other_name, endpoint,
        "the S3 endpoint must be http://127.0.0.1:PORT"
    );
    let mut config = Config::embedded_default();
    config.data_dir = work.join(format!("data-{imports}"));
    config.scheduler.enabled = false;
    config.server.rate_limit_per_second = 1000;
    config.server.rate_limit_burst = 1000;
    config.restore.import_parallelism = imports;
    config.regions = vec![
        s3_region("same", endpoint, &format!("bench-same-{tag}")),
        s3_region("streamed", &other_name, &format!("bench-far-{tag}")),
    ];
    for region in &config.regions {
        let StorageConfig::S3(s3) = &region.storage else {
            unreachable!()
        };
        S3Store::new(s3).create_bucket_if_missing().await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build_with(config, listener, backstop::jobs::Registry::new())
        .await
        .unwrap();
    let api = Api::new(
        format!("http://{}", app.local_addr().unwrap()),
        app.bootstrap_key().unwrap().to_owned(),
    );
    tokio::spawn(app.run_until(std::future::pending()));
    api
}

/// One way of restoring the same collection, and its figures.
struct Case {
    label: String,
    api: usize,
    region: &'static str,
    cluster: String,
    backup: String,
    size: u64,
    seconds: Vec<f64>,
    staging: Vec<f64>,
    importing: Vec<f64>,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; test runners list or run bench binaries without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let rows = env_usize("BENCH_ROWS", 140_000);
    let dim = env_usize("BENCH_DIM", 512);
    let segments = env_usize("BENCH_SEGMENTS", 4);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let parallel = env_usize("BENCH_IMPORTS", 4);
    let endpoint = env("BACKSTOP_TEST_S3_ENDPOINT");
    let milvus_uri = env("BACKSTOP_TEST_MILVUS_S3_URI");
    let token = env("BACKSTOP_TEST_MILVUS_S3_TOKEN");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let work = tempfile::tempdir().unwrap();
    // One service imports one segment at a time (the baseline: Milvus's import speed with
    // one task), the other `BENCH_IMPORTS` at once.
    let apis = [
        start_service(work.path(), 1, &endpoint, &tag).await,
        start_service(work.path(), parallel, &endpoint, &tag).await,
    ];
    let storage = json!({"type": "s3", "endpoint": endpoint,
        "bucket": env("BACKSTOP_TEST_MILVUS_S3_BUCKET"), "rootPath": env("BACKSTOP_TEST_MILVUS_S3_ROOT"),
        "accessKeyId": env("BACKSTOP_TEST_S3_ACCESS_KEY"),
        "secretAccessKey": env("BACKSTOP_TEST_S3_SECRET_KEY")});
    let db = format!("bench_{tag}");
    let collection = "wide";
    println!(
        "restore benchmark: {rows} rows x dim {dim} in {segments} segment(s) into the \
         S3-backed Milvus at {milvus_uri}"
    );
    let seeded = Instant::now();
    seed(
        &milvus_uri,
        &token,
        &[
            "create-wide",
            &db,
            collection,
            &rows.to_string(),
            &dim.to_string(),
            &segments.to_string(),
        ],
    )
    .await;
    println!("seeded in {:.1} s", seeded.elapsed().as_secs_f64());

    // The same Milvus registered per service and region: its backups land in that region.
    let mut cases = Vec::new();
    for (api_index, region, label) in [
        (
            0,
            "same",
            "server-side staging, 1 import at a time".to_owned(),
        ),
        (
            1,
            "same",
            format!("server-side staging, {parallel} imports at once"),
        ),
        (
            1,
            "streamed",
            format!("streamed staging, {parallel} imports at once"),
        ),
    ] {
        let api = &apis[api_index];
        let project = api
            .post(
                "/v2/projects",
                json!({"projectName": format!("bench-{region}")}),
            )
            .await["projectId"]
            .as_str()
            .unwrap()
            .to_owned();
        let cluster = api
            .post(
                "/v2/clusters",
                json!({"clusterName": format!("bench-{region}"), "projectId": project,
                    "regionId": region, "plan": "Dedicated", "cuSize": 2,
                    "milvus": {"uri": milvus_uri, "token": token}, "storage": storage}),
            )
            .await["clusterId"]
            .as_str()
            .unwrap()
            .to_owned();
        let created = api
            .post(
                &format!("/v2/clusters/{cluster}/backups/create"),
                json!({"backupType": "COLLECTION",
                    "dbCollections": [{"dbName": db, "collectionNames": [collection]}]}),
            )
            .await;
        finished(api, created["jobId"].as_str().unwrap()).await;
        let backup = created["backupId"].as_str().unwrap().to_owned();
        let size = api
            .get(&format!("/v2/clusters/{cluster}/backups/{backup}"))
            .await["size"]
            .as_u64()
            .unwrap();
        cases.push(Case {
            label,
            api: api_index,
            region,
            cluster,
            backup,
            size,
            seconds: Vec::new(),
            staging: Vec::new(),
            importing: Vec::new(),
        });
    }

    for round in 0..rounds {
        for (i, case) in cases.iter_mut().enumerate() {
            let api = &apis[case.api];
            let renamed = format!("restored_{round}_{i}");
            let dest_db = format!("{db}_{}", case.region);
            let started = Instant::now();
            let job = api
                .post(
                    &format!(
                        "/v2/clusters/{}/backups/{}/restoreCollection",
                        case.cluster, case.backup
                    ),
                    json!({"destClusterId": case.cluster, "dbCollections": [{"dbName": db,
                        "destDbName": dest_db, "collections": [{
                        "collectionName": collection, "destCollectionName": renamed,
                        "destCollectionStatus": "NOT_LOADED"}]}]}),
                )
                .await;
            let steps = finished(api, job["jobId"].as_str().unwrap()).await;
            let took = started.elapsed().as_secs_f64();
            let (staged, imported) = (spent(&steps, "staging"), spent(&steps, "importing"));
            println!(
                "round {round} {}: {took:.1} s, {:.1} MB/s; staging {staged:.1} s, \
                 importing {imported:.1} s, verifying {:.1} s",
                case.label,
                case.size as f64 / MB / took,
                spent(&steps, "verifying"),
            );
            case.seconds.push(took);
            case.staging.push(staged);
            case.importing.push(imported);
            seed(
                &milvus_uri,
                &token,
                &["drop-collection", &dest_db, &renamed],
            )
            .await;
        }
    }

    println!();
    println!(
        "| restore | backup size | end to end, median of {rounds} | MB/s | staging step | \
         import step | import MB/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let took = median(case.seconds.clone());
        let staged = median(case.staging.clone());
        let imported = median(case.importing.clone());
        let mb = case.size as f64 / MB;
        println!(
            "| {} | {mb:.0} MB | {took:.1} s | {:.1} | {staged:.1} s | {imported:.1} s | {:.0} |",
            case.label,
            mb / took,
            mb / imported
        );
    }
    seed(&milvus_uri, &token, &["drop-collection", &db, collection]).await;
}
