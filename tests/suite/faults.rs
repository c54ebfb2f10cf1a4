//! Dependencies going away in the middle of a job, on a SeaweedFS of the test's own (the
//! shared one stays up for the other tests): the backup region's object store is stopped while
//! a backup copies and while a restore stages from it, then started again after longer than
//! one retry delay. The job retries with backoff and finishes once the store is back, and the
//! backup verifies; kept down past `max_attempts`, the job fails naming the storage and the
//! backup is FAILED, never AVAILABLE. Then the same for the cluster's Milvus (a private
//! instance, stopped and started again on its data and address) in the middle of a backup
//! and in the middle of a restore's import.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backstop::config::{RegionConfig, S3Config, StorageConfig};
use backstop::objects::S3Store;
use backstop::test_hooks::PausePoint;
use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    seed, seed_output, shared_milvus, unique, wait_for_file, wait_for_job, wait_for_job_within,
    Backend, PrivateMilvus, TestApp, HOW_TO_START,
};

/// `weed mini` in a directory of its own, on ports picked once so that a restart serves the
/// same endpoint with the same data. Killed on drop.
struct PrivateSeaweed {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    child: Option<Child>,
    endpoint: String,
}

/// `n` distinct ports free now (all held at once while chosen, so none repeats).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl PrivateSeaweed {
    async fn start() -> PrivateSeaweed {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("identities.json"),
            r#"{"identities": [{"name": "test",
                "credentials": [{"accessKey": "AKIDFAULT", "secretKey": "SECRETFAULT"}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}"#,
        )
        .unwrap();
        let ports = free_ports(10);
        let endpoint = format!("http://127.0.0.1:{}", ports[0]);
        let mut weed = PrivateSeaweed {
            dir,
            ports,
            child: None,
            endpoint,
        };
        weed.run().await;
        weed
    }

    /// Starts the process and waits until its S3 port answers. A port chosen free can be
    /// taken by another process before weed binds it (weed then exits, "address already in
    /// use"): the internal ports are chosen again and weed started again, twice at most; the
    /// S3 port, which the endpoint names, stays.
    async fn run(&mut self) {
        for attempt in 1..=3 {
            if self.run_once().await {
                return;
            }
            let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
            assert!(
                attempt < 3 && log.contains("address already in use"),
                "private SeaweedFS did not start; log:\n{log}"
            );
            let fresh = free_ports(self.ports.len() - 1);
            self.ports.splice(1.., fresh);
        }
    }

    /// One start: true once the S3 port answers, false when weed exited first.
    async fn run_once(&mut self) -> bool {
        let weed = std::env::var("BACKSTOP_TEST_WEED").unwrap_or_else(|_| {
            panic!("BACKSTOP_TEST_WEED (the SeaweedFS binary) is not set; {HOW_TO_START}")
        });
        let dir = self.dir.path();
        let p = &self.ports;
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let child = Command::new(&weed)
            .arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-webdav=false",
                "-admin.ui=false",
            ])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-s3.port={}", p[0]))
            .arg(format!(
                "-s3.config={}",
                dir.join("identities.json").display()
            ))
            .arg(format!("-master.port={}", p[1]))
            .arg(format!("-master.port.grpc={}", p[2]))
            .arg(format!("-volume.port={}", p[3]))
            .arg(format!("-volume.port.grpc={}", p[4]))
            .arg(format!("-filer.port={}", p[5]))
            .arg(format!("-filer.port.grpc={}", p[6]))
            .arg(format!("-admin.port={}", p[7]))
            .arg(format!("-admin.port.grpc={}", p[8]))
            .arg(format!("-s3.port.grpc={}", p[9]))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {weed}: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        let client = reqwest::Client::new();
        while client.get(&self.endpoint).send().await.is_err() {
            if let Some(child) = self.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                    return false;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "private SeaweedFS not answering after 60 s; log:\n{}",
                std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// kill -9: the store vanishes mid-request.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: bucket.to_owned(),
            prefix: "backstop".to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: "AKIDFAULT".to_owned(),
            secret_access_key: "SECRETFAULT".to_owned().into(),
            force_path_style: true,
            part_size_mib: 5,
            parts_in_flight: 2,
        }
    }
}

impl Drop for PrivateSeaweed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An app whose only region keeps its backups in `weed`, retrying failed attempts after
/// 300 ms to 1 s, at most `max_attempts` times, with the barriers `hooks` sets.
async fn app_on(
    backend: Backend,
    weed: &PrivateSeaweed,
    max_attempts: i32,
    hooks: impl FnOnce(&mut backstop::config::Config),
) -> (TestApp, S3Store) {
    let config = weed.config(&unique("faults").replace('_', "-"));
    let region = S3Store::new(&config);
    region.create_bucket_if_missing().await.unwrap();
    let app = TestApp::spawn_with(backend, move |c| {
        c.regions = vec![RegionConfig {
            id: "local".to_owned(),
            cloud_provider: "aws".to_owned(),
            price_per_gb_month: 0.02,
            storage: StorageConfig::S3(config),
        }];
        c.backup.copy_parallelism = 1;
        c.jobs.max_attempts = max_attempts;
        c.jobs.backoff_base_ms = 300;
        c.jobs.backoff_max_ms = 1000;
        hooks(c);
    })
    .await;
    (app, region)
}

fn pause_after_one_file(dir: &Path) -> PausePoint {
    PausePoint {
        after_files: 1,
        dir: dir.to_path_buf(),
    }
}

/// Waits for the job at `barrier`, runs `stop` (the dependency goes away), lets the job go on.
async fn stop_at_barrier(barrier: &Path, stop: impl FnOnce()) {
    wait_for_file(&barrier.join("paused")).await;
    stop();
    std::fs::write(barrier.join("resume"), b"").unwrap();
}

/// Waits for an attempt of the job to fail and asserts the job waits to be retried; returns it.
async fn assert_retrying(app: &TestApp, job_id: &str) -> Value {
    let failing = wait_for_failed_attempt(app, job_id).await;
    assert_ne!(
        failing["status"], "FAILED",
        "retried, not given up: {failing}"
    );
    failing
}

/// Polls the job until an attempt has failed (it waits to be retried, its reason says why).
async fn wait_for_failed_attempt(app: &TestApp, job_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let job = app
            .admin(Method::GET, &format!("/v2/jobs/{job_id}"), None)
            .await;
        if job["attempts"].as_i64().unwrap_or(0) >= 2 || job["status"] == "FAILED" {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failed attempt: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn describe_backup(app: &TestApp, cluster: &str, backup: &str) -> Value {
    app.admin(
        Method::GET,
        &format!("/v2/clusters/{cluster}/backups/{backup}"),
        None,
    )
    .await
}

/// The backup is AVAILABLE and a verify job re-reads every object whole.
async fn assert_available_and_whole(app: &TestApp, cluster: &str, backup: &str) {
    let described = describe_backup(app, cluster, backup).await;
    assert_eq!(described["status"], "AVAILABLE", "{described}");
    let verify = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/verify"),
            None,
        )
        .await;
    let verified = wait_for_job(app, verify["jobId"].as_str().unwrap()).await;
    assert_eq!(
        verified["status"], "SUCCESSFUL",
        "every object whole: {verified}"
    );
}

async fn start_backup(app: &TestApp, db: &str, name: &str) -> (String, String, String) {
    start_backup_of(
        app,
        &shared_milvus().uri,
        &shared_milvus().storage,
        db,
        name,
    )
    .await
}

async fn start_backup_of(
    app: &TestApp,
    uri: &str,
    storage: &str,
    db: &str,
    name: &str,
) -> (String, String, String) {
    let project = app.create_project("p").await;
    let cluster = app.register_cluster(&project, "prod", uri, storage).await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                "dbCollections": [{"dbName": db, "collectionNames": [name]}]})),
        )
        .await;
    let backup = created["backupId"].as_str().unwrap().to_owned();
    let job = created["jobId"].as_str().unwrap().to_owned();
    (cluster, backup, job)
}

async fn object_store_stopped_mid_backup_and_mid_restore_is_waited_out(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let mut weed = PrivateSeaweed::start().await;
    let backup_barrier = tempfile::tempdir().unwrap();
    let restore_barrier = tempfile::tempdir().unwrap();
    let (app, _region) = app_on(backend, &weed, 30, |c| {
        c.test_hooks.backup_copy = Some(pause_after_one_file(backup_barrier.path()));
        c.test_hooks.restore_stage = Some(pause_after_one_file(restore_barrier.path()));
    })
    .await;

    // The backup: one file copied, then the store goes away under it.
    let (cluster, backup, job_id) = start_backup(&app, &db, &name).await;
    stop_at_barrier(backup_barrier.path(), || weed.stop()).await;
    assert_retrying(&app, &job_id).await;
    assert_eq!(
        describe_backup(&app, &cluster, &backup).await["status"],
        "CREATING"
    );
    // Down for longer than one retry delay: more attempts fail, none gives up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    weed.run().await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_available_and_whole(&app, &cluster, &backup).await;

    // The restore from it: staging reads the region, which goes away after one file.
    let target = unique("back");
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(
                json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
                "collections": [{"collectionName": name, "destCollectionName": target}]}]}),
            ),
        )
        .await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    stop_at_barrier(restore_barrier.path(), || weed.stop()).await;
    assert_retrying(&app, &job_id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    weed.run().await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let collections = app.collections(&cluster).await;
    let restored = collections
        .iter()
        .filter(|c| c["dbName"] == db.as_str() && c["collectionName"] == target.as_str())
        .count();
    assert_eq!(restored, 1, "restored once: {collections:?}");
}

async fn object_store_down_past_max_attempts_fails_the_backup(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let mut weed = PrivateSeaweed::start().await;
    let barrier = tempfile::tempdir().unwrap();
    let (app, region) = app_on(backend, &weed, 2, |c| {
        c.test_hooks.backup_copy = Some(pause_after_one_file(barrier.path()));
    })
    .await;
    let (cluster, backup, job_id) = start_backup(&app, &db, &name).await;
    stop_at_barrier(barrier.path(), || weed.stop()).await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let reason = job["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        reason.contains("storage") || reason.contains("s3") || reason.contains("object"),
        "the reason names the storage: {job}"
    );
    let described = describe_backup(&app, &cluster, &backup).await;
    assert_eq!(
        described["status"], "FAILED",
        "never AVAILABLE: {described}"
    );
    // Ended, so the cluster takes its next manual backup (one runs at a time).
    let next = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                "dbCollections": [{"dbName": db, "collectionNames": [name]}]})),
        )
        .await;
    assert!(next["backupId"].is_string(), "{next}");
    // What the failed backup copied before the store went away is removed once it is back.
    let purges = app
        .admin(Method::GET, "/v2/jobs?type=DELETE_BACKUP", None)
        .await;
    let of_backup: Vec<&Value> = purges["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["resource"]["backupId"] == backup.as_str())
        .collect();
    assert_eq!(
        of_backup.len(),
        1,
        "one purge of the failed backup: {purges}"
    );
    // It outlasts the backup job's two attempts: the store may stay down a while yet.
    assert!(
        of_backup[0]["maxAttempts"].as_i64().unwrap_or(0) >= 100,
        "{purges}"
    );
    let purge_id = of_backup[0]["jobId"].as_str().unwrap().to_owned();
    weed.run().await;
    let purged = wait_for_job(&app, &purge_id).await;
    assert_eq!(purged["status"], "SUCCESSFUL", "{purged}");
    let project = described["projectId"].as_str().unwrap();
    let prefix = format!("backups/{project}/{cluster}/{backup}/");
    let left = backstop::objects::ObjectStore::list(&region, &prefix, None, 100)
        .await
        .unwrap();
    assert!(left.objects.is_empty(), "left behind: {:?}", left.objects);
}

/// Stops `milvus` at the job's `barrier`, checks an attempt fails saying Milvus did not answer
/// and the job waits to be retried, starts Milvus again; returns the job once final.
async fn milvus_away_and_back(
    app: &TestApp,
    milvus: &PrivateMilvus,
    barrier: &Path,
    job_id: &str,
    limit: Duration,
) -> Value {
    stop_at_barrier(barrier, || assert!(milvus.stop(), "Milvus stopped")).await;
    let failing = assert_retrying(app, job_id).await;
    assert!(
        failing["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer"),
        "the reason says Milvus did not answer: {failing}"
    );
    milvus.restart().await;
    wait_for_job_within(app, job_id, limit).await
}

/// The cluster's Milvus stops after the first binlog of a backup (the copy goes on from its
/// storage; reading the collection again fails): the job retries until Milvus is back, about
/// a minute later, and finishes, and the backup verifies. One database: this is about the
/// job's retries, which both run alike, and a private Milvus costs a minute per start here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_stopped_mid_backup_is_waited_out() {
    let milvus = PrivateMilvus::start().await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let backup_barrier = tempfile::tempdir().unwrap();
    let backup_hook = pause_after_one_file(backup_barrier.path());
    let app = TestApp::spawn_with(Backend::Postgres, move |c| {
        c.backup.copy_parallelism = 1;
        c.jobs.max_attempts = 200;
        c.jobs.backoff_base_ms = 500;
        c.jobs.backoff_max_ms = 2000;
        c.test_hooks.backup_copy = Some(backup_hook);
    })
    .await;
    let limit = Duration::from_secs(300);

    let (cluster, backup, job_id) =
        start_backup_of(&app, &milvus.uri, &milvus.storage, &db, &name).await;
    let job = milvus_away_and_back(&app, &milvus, backup_barrier.path(), &job_id, limit).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_available_and_whole(&app, &cluster, &backup).await;
}

/// The destination Milvus stops while it imports a restore's binlogs (the import task was
/// accepted; Milvus 2.3 marks it failed when it comes back) and is back a minute or two later:
/// the job waits it out, drops what the lost attempt created, imports again, and the restored
/// collection holds exactly the backup's rows, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_stopped_mid_import_is_waited_out() {
    let milvus = PrivateMilvus::start().await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "200"]).await;
    let import_barrier = tempfile::tempdir().unwrap();
    let import_hook = PausePoint {
        after_files: 1,
        dir: import_barrier.path().to_path_buf(),
    };
    let app = TestApp::spawn_with(Backend::Postgres, move |c| {
        c.jobs.max_attempts = 200;
        c.jobs.backoff_base_ms = 500;
        c.jobs.backoff_max_ms = 2000;
        c.test_hooks.restore_import = Some(import_hook);
    })
    .await;
    let limit = Duration::from_secs(400);
    let (cluster, backup, job_id) =
        start_backup_of(&app, &milvus.uri, &milvus.storage, &db, &name).await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");

    let target = unique("back");
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(
                json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
                "collections": [{"collectionName": name, "destCollectionName": target}]}]}),
            ),
        )
        .await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    let job = milvus_away_and_back(&app, &milvus, import_barrier.path(), &job_id, limit).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let original = seed_output(&milvus.uri, &["dump", &db, &name]).await;
    let restored = seed_output(&milvus.uri, &["dump", &db, &target]).await;
    let rows = |text: &str| serde_json::from_str::<Value>(text.trim()).unwrap()["rows"].clone();
    assert_eq!(rows(&restored), rows(&original), "every row, once");
}

on_both_backends!(
    object_store_stopped_mid_backup_and_mid_restore_is_waited_out,
    object_store_down_past_max_attempts_fails_the_backup,
);
