//! Restores in the production shape: a Milvus that keeps its binlogs in S3 (the run's
//! SeaweedFS) and runs with authorization on, in each of the four storage shapes — backup in a
//! local or an S3 region, destination Milvus on local or S3 storage.

use reqwest::Method;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    collection_backup, s3_region, seed_as, shared_milvus, shared_s3_milvus, unique, wait_for_file,
    wait_for_job, Backend, TestApp,
};

/// Shard count, partitions, indexes, load state and every row of a collection.
async fn dump(uri: &str, token: Option<&str>, db: &str, name: &str) -> Value {
    let text = seed_as(uri, token, &["dump", db, name]).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("dump of {db}.{name}: {e}: {text}"))
}

async fn backup_of(app: &TestApp, cluster: &str, db: &str, name: &str) -> String {
    collection_backup(app, cluster, db, name, std::time::Duration::from_secs(120)).await
}

/// Runs a restore request to its end; returns the (successful) job's id.
async fn restored(app: &TestApp, path: &str, body: Value) -> String {
    let started = app.admin(Method::POST, path, Some(body)).await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    let job = wait_for_job(app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    // The finished job says what it did and how many bytes it moved (every collection
    // restored here has rows).
    assert!(
        job["currentStep"]
            .as_str()
            .is_some_and(|s| s.starts_with("restored 1 collection(s) into cluster")),
        "{job}"
    );
    assert!(job["bytesTotal"].as_i64().unwrap() > 0, "{job}");
    assert_eq!(job["bytesDone"], job["bytesTotal"], "{job}");
    job_id
}

fn one_collection(dest: &str, db: &str, name: &str, renamed: &str, status: &str) -> Value {
    json!({"destClusterId": dest, "dbCollections": [{"dbName": db, "collections": [
        {"collectionName": name, "destCollectionName": renamed, "destCollectionStatus": status}]}]})
}

/// No file is left under the job's staging prefix of a local Milvus's storage.
fn no_local_staging(storage: &str, job_id: &str) {
    let dir = std::path::Path::new(storage).join(format!("backstop-restore/{job_id}"));
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            assert!(path.is_dir(), "staging file left: {}", path.display());
            stack.push(path);
        }
    }
}

/// Every shape restores the rows exactly (ids, scalars, vectors, dynamic fields), rebuilds the
/// index, loads as asked, and leaves no staging object in the destination's storage.
async fn restores_cross_every_storage_shape(backend: Backend) {
    let local = shared_milvus();
    let s3 = shared_s3_milvus();
    let token = Some(s3.token.as_str());
    let (region, _) = s3_region("eu").await;
    let app = TestApp::spawn_with(backend, move |c| c.regions.push(region)).await;
    let project = app.create_project("p").await;
    let local_milvus = json!({"uri": local.uri});
    let local_storage = json!({"type": "local", "path": local.storage});
    // The two Milvus deployments, each registered in the local region and in the S3 one.
    let local_here = app
        .register_in(
            &project,
            "local-here",
            "local",
            (local_milvus.clone(), local_storage.clone()),
        )
        .await;
    let local_eu = app
        .register_in(&project, "local-eu", "eu", (local_milvus, local_storage))
        .await;
    let s3_here = app
        .register_in(&project, "s3-here", "local", s3.registration())
        .await;
    let s3_eu = app
        .register_in(&project, "s3-eu", "eu", s3.registration())
        .await;

    let db = unique("db");
    let on_local = unique("rich");
    let on_s3 = unique("rich");
    seed_as(&local.uri, None, &["create-rich", &db, &on_local, "20"]).await;
    let original_local = dump(&local.uri, None, &db, &on_local).await;
    seed_as(&s3.uri, token, &["create-rich", &db, &on_s3, "20"]).await;
    let original_s3 = dump(&s3.uri, token, &db, &on_s3).await;
    assert_eq!(
        original_s3["rows"].as_array().unwrap().len(),
        34,
        "40 rows, 6 deleted"
    );

    // 1. Local-region backup of the local Milvus -> the S3-backed Milvus (streamed staging).
    let backup = backup_of(&app, &local_here, &db, &on_local).await;
    let renamed = unique("from_local");
    let job = restored(
        &app,
        &format!("/v2/clusters/{local_here}/backups/{backup}/restoreCollection"),
        one_collection(&s3_here, &db, &on_local, &renamed, "LOADED"),
    )
    .await;
    let copy = dump(&s3.uri, token, &db, &renamed).await;
    assert_eq!(copy["rows"], original_local["rows"]);
    assert_eq!(copy["indexes"], original_local["indexes"]);
    assert_eq!(copy["partitions"], original_local["partitions"]);
    assert_eq!(copy["loaded"], true);
    s3.assert_no_staging(&job).await;

    // 2. S3-region backup of the S3-backed Milvus -> itself, renamed (the same endpoint: staged
    //    by server-side copies).
    let backup = backup_of(&app, &s3_eu, &db, &on_s3).await;
    let renamed = unique("from_s3");
    let job = restored(
        &app,
        &format!("/v2/clusters/{s3_eu}/backups/{backup}/restoreCollection"),
        one_collection(&s3_eu, &db, &on_s3, &renamed, "NOT_LOADED"),
    )
    .await;
    let copy = dump(&s3.uri, token, &db, &renamed).await;
    assert_eq!(copy["rows"], original_s3["rows"]);
    assert_eq!(copy["indexes"], original_s3["indexes"]);
    s3.assert_no_staging(&job).await;

    // 3. The same S3-region backup -> the local Milvus, whole (restoreCluster).
    let job = restored(
        &app,
        &format!("/v2/clusters/{s3_eu}/backups/{backup}/restoreCluster"),
        json!({"destClusterId": local_eu, "collectionStatus": "RELEASE"}),
    )
    .await;
    let copy = dump(&local.uri, None, &db, &on_s3).await;
    assert_eq!(copy["rows"], original_s3["rows"]);
    assert_eq!(copy["loaded"], false);
    no_local_staging(&local.storage, &job);
}

/// A `backstop serve` child process running jobs on `app`'s database (this process only
/// answers the API), held at `barrier` when given: `(variable, "<files>:<dir>")`.
fn worker(app: &TestApp, barrier: Option<(&str, String)>) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_backstop"));
    command
        .arg("serve")
        .env("DATABASE_URL", &app.db.url)
        .env("BACKSTOP_DATA_DIR", app.db.dir.path().join("data"))
        .env("BACKSTOP_SERVER__LISTEN", "127.0.0.1:0")
        .env("BACKSTOP_SCHEDULER__ENABLED", "false")
        .env("BACKSTOP_JOBS__LEASE_MS", "1500")
        .env("BACKSTOP_JOBS__POLL_INTERVAL_MS", "200")
        .env("BACKSTOP_BACKUP__COPY_PARALLELISM", "1")
        .env_remove("BACKSTOP_TEST_BACKUP_PAUSE")
        .env_remove("BACKSTOP_TEST_RESTORE_PAUSE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some((variable, value)) = barrier {
        command.env(variable, value);
    }
    command.spawn().expect("start backstop serve")
}

/// kill -9 of the process staging a restore into the S3-backed Milvus: another process
/// takes the job once the lease expires, drops what the first attempt created, stages again
/// and finishes with every row once; no staging object is left.
async fn killed_process_restore_into_s3_is_finished_by_another(backend: Backend) {
    let local = shared_milvus();
    let s3 = shared_s3_milvus();
    let token = Some(s3.token.as_str());
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let source = app
        .register_cluster(&project, "source", &local.uri, &local.storage)
        .await;
    let dest = app
        .register_in(&project, "dest", "local", s3.registration())
        .await;
    let db = unique("db");
    let name = unique("rich");
    seed_as(&local.uri, None, &["create-rich", &db, &name, "20"]).await;
    let original = dump(&local.uri, None, &db, &name).await;
    let backup = {
        let _runs_the_backup = worker(&app, None);
        backup_of(&app, &source, &db, &name).await
    };

    let renamed = unique("crash");
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{source}/backups/{backup}/restoreCollection"),
            Some(one_collection(&dest, &db, &name, &renamed, "NOT_LOADED")),
        )
        .await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    let barrier = tempfile::tempdir().unwrap();
    let hold = format!("2:{}", barrier.path().display());
    let mut first = worker(&app, Some(("BACKSTOP_TEST_RESTORE_PAUSE", hold)));
    wait_for_file(&barrier.path().join("paused")).await;
    assert!(
        !s3.keys_under(&format!("backstop-restore/{job_id}/"))
            .await
            .is_empty(),
        "the first attempt staged files"
    );
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let _second = worker(&app, None);
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let restored = dump(&s3.uri, token, &db, &renamed).await;
    assert_eq!(restored["rows"], original["rows"], "every row once");
    s3.assert_no_staging(&job_id).await;
}

/// A restore into the S3-backed Milvus canceled while it stages drops its collection and
/// leaves no staging object in the bucket.
async fn a_canceled_restore_into_s3_leaves_nothing(backend: Backend) {
    let local = shared_milvus();
    let s3 = shared_s3_milvus();
    let barrier = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(backend, |c| {
        c.test_hooks.restore_stage = Some(backstop::test_hooks::PausePoint {
            after_files: 1,
            dir: barrier.path().to_path_buf(),
        });
    })
    .await;
    let project = app.create_project("p").await;
    let source = app
        .register_cluster(&project, "source", &local.uri, &local.storage)
        .await;
    let dest = app
        .register_in(&project, "dest", "local", s3.registration())
        .await;
    let db = unique("db");
    let name = unique("c");
    seed_as(&local.uri, None, &["create-collection", &db, &name, "20"]).await;
    let backup = backup_of(&app, &source, &db, &name).await;
    let renamed = unique("canceled");
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{source}/backups/{backup}/restoreCollection"),
            Some(one_collection(&dest, &db, &name, &renamed, "NOT_LOADED")),
        )
        .await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    wait_for_file(&barrier.path().join("paused")).await;
    app.admin(Method::POST, &format!("/v2/jobs/{job_id}/cancel"), None)
        .await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "CANCELED", "{job}");
    s3.assert_no_staging(&job_id).await;
    let listed = app.collections(&dest).await;
    assert!(
        !listed
            .iter()
            .any(|c| c["collectionName"] == renamed.as_str()),
        "dropped: {listed:?}"
    );
}

on_both_backends!(
    restores_cross_every_storage_shape,
    killed_process_restore_into_s3_is_finished_by_another,
    a_canceled_restore_into_s3_leaves_nothing,
);
