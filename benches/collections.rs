//! Many collections: a CLUSTER backup of a Milvus holding N collections (each 1 in 100 with
//! rows), for N = 500, 2,000 and 5,000 by default, timed through the API, beside the Milvus
//! calls the backup must make, made alone in the same run with the same parallelism
//! (list, load state, describe, flush in groups of 100, segment list, describe again):
//! what is left is Backstop's own cost per collection.
//!
//! ```sh
//! scripts/bench collections                       # starts a Milvus of its own per size
//! BENCH_COLLECTIONS=500,2000 BENCH_PROFILE=dev scripts/bench collections
//! ```

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backstop::config::Config;
use backstop::milvus::MilvusClient;
use backstop::Application;
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use support::Api;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    let venv = std::env::var("BACKSTOP_TEST_MILVUS_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/backstop/venv-milvus"),
        PathBuf::from,
    );
    venv.join("bin/python")
}

/// A Milvus of the bench's own (`scripts/milvus-instance`), stopped on drop.
struct Milvus {
    dir: tempfile::TempDir,
    uri: String,
    storage: String,
}

impl Milvus {
    fn start() -> Milvus {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(root().join("scripts/milvus-instance"))
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/milvus-instance start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_owned()
        };
        Milvus {
            uri: field("uri"),
            storage: field("storage"),
            dir,
        }
    }
}

impl Drop for Milvus {
    fn drop(&mut self) {
        let _ = std::process::Command::new(root().join("scripts/milvus-instance"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// The Milvus calls of a backup, alone: seconds.
async fn milvus_calls_alone(client: &MilvusClient, parallelism: usize) -> f64 {
    let started = Instant::now();
    let all = client.collections_by_database(None).await.unwrap();
    for (db, collections) in &all {
        client.loaded_collections(db).await.unwrap();
        let names: Vec<String> = collections.iter().map(|c| c.name.clone()).collect();
        futures::stream::iter(names.iter())
            .map(|name| client.describe_collection(db, name))
            .buffered(parallelism)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        for chunk in names.chunks(100) {
            client
                .flush_and_wait(db, chunk, Duration::from_secs(600))
                .await
                .unwrap();
        }
        futures::stream::iter(names.iter())
            .map(|name| async move {
                client.persistent_segments(db, name).await?;
                client.describe_collection(db, name).await
            })
            .buffer_unordered(parallelism)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_COLLECTIONS")
        .unwrap_or_else(|_| "500,2000,5000".to_owned())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BENCH_COLLECTIONS: numbers, comma-separated")
        })
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        let milvus = Milvus::start();
        let seeded = Instant::now();
        let out = tokio::process::Command::new(venv_python())
            .arg(root().join("tests/support/milvus_seed.py"))
            .arg(&milvus.uri)
            .args(["create-many", "default", "many", &n.to_string()])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "{n} collections seeded in {:.1} s",
            seeded.elapsed().as_secs_f64()
        );

        let work = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_default();
        config.data_dir = work.path().to_path_buf();
        config.scheduler.enabled = false;
        let parallelism = config.backup.describe_parallelism;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Application::build(config, listener).await.unwrap();
        let api = Api::new(
            format!("http://{}", app.local_addr().unwrap()),
            app.bootstrap_key().unwrap().to_owned(),
        );
        let server = tokio::spawn(app.run_until(std::future::pending()));
        let project = api
            .post("/v2/projects", json!({"projectName": "many"}))
            .await["projectId"]
            .as_str()
            .unwrap()
            .to_owned();
        let cluster = api
            .post(
                "/v2/clusters",
                json!({"clusterName": "many", "projectId": project, "regionId": "local",
                    "plan": "Dedicated", "cuSize": 1, "milvus": {"uri": milvus.uri},
                    "storage": {"type": "local", "path": milvus.storage}}),
            )
            .await["clusterId"]
            .as_str()
            .unwrap()
            .to_owned();

        let started = Instant::now();
        let created = api
            .post(
                &format!("/v2/clusters/{cluster}/backups/create"),
                json!({"backupType": "CLUSTER"}),
            )
            .await;
        let job = created["jobId"].as_str().unwrap().to_owned();
        loop {
            let state = api.get(&format!("/v2/jobs/{job}")).await;
            match state["status"].as_str() {
                Some("SUCCESSFUL") => break,
                Some("FAILED" | "CANCELED") => panic!("backup of {n} collections ended: {state}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let backup = started.elapsed().as_secs_f64();
        server.abort();

        let client = MilvusClient::new(&milvus.uri, None, None, Duration::from_secs(60)).unwrap();
        let calls = milvus_calls_alone(&client, parallelism).await;
        let per = |s: f64| s * 1000.0 / n as f64;
        println!(
            "{n} collections: backup {backup:.1} s ({:.1} ms each); the same Milvus calls alone {calls:.1} s ({:.1} ms each)",
            per(backup),
            per(calls)
        );
        rows.push((n, backup, calls));
    }
    println!();
    println!("| collections | backup, end to end | per collection | Milvus calls alone | per collection | Backstop's own, per collection |");
    println!("|---|---|---|---|---|---|");
    for (n, backup, calls) in rows {
        let per = |s: f64| s * 1000.0 / n as f64;
        println!(
            "| {n} | {backup:.1} s | {:.1} ms | {calls:.1} s | {:.1} ms | {:.1} ms |",
            per(backup),
            per(calls),
            per(backup - calls)
        );
    }
}
