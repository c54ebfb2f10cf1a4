//! Restores into a real Milvus: the shared instance (same cluster, renamed or after a drop)
//! and a private second instance (another cluster), compared row by row with what was backed
//! up.

use backstop::test_hooks::PausePoint;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    s3_region, seed, seed_output, shared_milvus, unique, wait_for_file, wait_for_job, Backend,
    PrivateMilvus, TestApp,
};

/// Shard count, partitions, indexes, load state and every row of a collection.
async fn dump(uri: &str, db: &str, name: &str) -> Value {
    let text = seed_output(uri, &["dump", db, name]).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("dump of {db}.{name}: {e}: {text}"))
}

/// Backs up `collections` of `db` on the shared Milvus; returns (cluster, backup).
async fn backed_up(
    app: &TestApp,
    project: &str,
    db: &str,
    collections: &[&str],
) -> (String, String) {
    let milvus = shared_milvus();
    let cluster = app
        .register_cluster(project, "source", &milvus.uri, &milvus.storage)
        .await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": db, "collectionNames": collections}]})),
        )
        .await;
    let job = wait_for_job(app, created["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    (cluster, created["backupId"].as_str().unwrap().to_owned())
}

async fn restore(app: &TestApp, cluster: &str, backup: &str, body: Value) -> Value {
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(body),
        )
        .await;
    wait_for_job(app, started["jobId"].as_str().unwrap()).await
}

async fn restore_renamed_and_after_a_drop_gives_identical_rows(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("rich");
    seed(&milvus.uri, &["create-rich", &db, &name, "30"]).await;
    let (cluster, backup) = backed_up(&app, &project, &db, &[&name]).await;
    let original = dump(&milvus.uri, &db, &name).await;
    assert_eq!(
        original["rows"].as_array().unwrap().len(),
        54,
        "60 rows, 6 deleted"
    );
    assert!(
        original["rows"][0]["extra"].is_number(),
        "dynamic field: {}",
        original["rows"][0]
    );

    // Under a new name beside the original.
    let copy = unique("copy");
    let job = restore(
        &app,
        &cluster,
        &backup,
        json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
               "collections": [{"collectionName": name, "destCollectionName": copy}]}]}),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let restored = dump(&milvus.uri, &db, &copy).await;
    assert_eq!(restored["loaded"], false, "NOT_LOADED by default");
    assert_eq!(restored["rows"], original["rows"]);
    assert_eq!(restored["partitions"], original["partitions"]);
    assert_eq!(
        restored["indexes"],
        json!([{"field": "vec", "type": "IVF_FLAT"}])
    );

    // The same name again: refused, it exists.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(&app.admin_key),
            Some(json!({"destClusterId": cluster})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&name), "{body}");

    // Dropped, then restored under its own name, loaded, after the source cluster's record was
    // deleted (into the same Milvus, registered again as another cluster).
    seed(&milvus.uri, &["drop-collection", &db, &name]).await;
    let dest = app
        .register_cluster(&project, "again", &milvus.uri, &milvus.storage)
        .await;
    app.admin(Method::DELETE, &format!("/v2/clusters/{cluster}"), None)
        .await;
    let job = restore(
        &app,
        &cluster,
        &backup,
        json!({"destClusterId": dest, "dbCollections": [{"dbName": db,
               "collections": [{"collectionName": name, "destCollectionStatus": "LOADED"}]}]}),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let back = dump(&milvus.uri, &db, &name).await;
    assert_eq!(back["loaded"], true);
    assert_eq!(back["rows"], original["rows"]);
}

/// Milvus loads only indexed collections: asking to restore an unindexed one LOADED is refused
/// at once, naming the field and the fix, instead of failing after the whole import.
async fn loading_an_unindexed_collection_is_refused_up_front(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let name = unique("plain");
    seed(&milvus.uri, &["create-collection", "default", &name, "20"]).await;
    let (cluster, backup) = backed_up(&app, &project, "default", &[&name]).await;
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup}"),
            None,
        )
        .await;
    assert_eq!(
        details["dbCollections"][0]["collections"][0]["loadable"], false,
        "{details}"
    );
    let path = format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection");
    let body = |status: &str| {
        json!({"destClusterId": cluster, "dbCollections": [{"dbName": "default",
               "collections": [{"collectionName": name, "destCollectionName": format!("{name}_r"),
                                "destCollectionStatus": status}]}]})
    };
    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin_key),
            Some(body("LOADED")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["code"], 90400);
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.starts_with("dbCollections[0].collections[0].destCollectionStatus")
            && message.contains("NOT_LOADED"),
        "{message}"
    );

    let job = restore(&app, &cluster, &backup, body("NOT_LOADED")).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    seed(&milvus.uri, &["drop-collection", "default", &name]).await;
    seed(
        &milvus.uri,
        &["drop-collection", "default", &format!("{name}_r")],
    )
    .await;
}

/// Another cluster (a second Milvus), a two-database backup restored whole, with a smaller
/// `cuSize`: identical rows, shards clamped to the destination's allowance. Postgres only,
/// like the other private-Milvus test: one more Milvus per backend would crowd the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restore_into_a_second_milvus() {
    let backend = Backend::Postgres;
    let milvus = shared_milvus();
    let second = PrivateMilvus::start().await;
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let (db_a, db_b) = (unique("dba"), unique("dbb"));
    let (rich, plain) = (unique("rich"), unique("plain"));
    seed(&milvus.uri, &["create-rich", &db_a, &rich, "20"]).await;
    seed(&milvus.uri, &["create-collection", &db_b, &plain, "12"]).await;
    let cluster = app
        .register_cluster(&project, "source", &milvus.uri, &milvus.storage)
        .await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION", "dbCollections": [
                {"dbName": db_a, "collectionNames": [rich]},
                {"dbName": db_b, "collectionNames": [plain]}]})),
        )
        .await;
    let job = wait_for_job(&app, created["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let backup = created["backupId"].as_str().unwrap();
    let dest = app
        .admin(
            Method::POST,
            "/v2/clusters",
            Some(
                json!({"clusterName": "small", "projectId": project, "regionId": "local",
                        "plan": "Dedicated", "cuSize": 1, "milvus": {"uri": second.uri},
                        "storage": {"type": "local", "path": second.storage}}),
            ),
        )
        .await["clusterId"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCluster"),
            Some(json!({"destClusterId": dest, "collectionStatus": "RELEASE"})),
        )
        .await;
    assert_eq!(started["clusterId"], dest.as_str());
    let job = wait_for_job(&app, started["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");

    for (db, name) in [(&db_a, &rich), (&db_b, &plain)] {
        let source = dump(&milvus.uri, db, name).await;
        let restored = dump(&second.uri, db, name).await;
        assert_eq!(restored["rows"], source["rows"], "{db}.{name}");
        assert_eq!(restored["partitions"], source["partitions"], "{db}.{name}");
    }
    let rich_restored = dump(&second.uri, &db_a, &rich).await;
    assert_eq!(
        rich_restored["shards"], 1,
        "2 shards clamped to cuSize 1's allowance"
    );
}

/// A backup object changed after the backup: the restore fails before creating anything and
/// names the object.
async fn a_tampered_backup_is_refused_before_the_destination_is_touched(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-collection", &db, &name, "20"]).await;
    let (cluster, backup) = backed_up(&app, &project, &db, &[&name]).await;
    let verify = format!("/v2/clusters/{cluster}/backups/{backup}/verify");
    let started = app.admin(Method::POST, &verify, None).await;
    let job = wait_for_job(&app, started["jobId"].as_str().unwrap()).await;
    assert_eq!(
        job["status"], "SUCCESSFUL",
        "an intact backup verifies: {job}"
    );
    let region = app.db.dir.path().join("data/regions/local");
    let binlogs = region.join(format!(
        "backups/{project}/{cluster}/{backup}/binlogs/insert_log"
    ));
    let victim = walk_first_file(&binlogs);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();

    // Verify finds it and names it.
    let started = app.admin(Method::POST, &verify, None).await;
    let job = wait_for_job(&app, started["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let damaged = victim
        .strip_prefix(&region)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(job["reason"].as_str().unwrap().contains(&damaged), "{job}");

    let target = unique("never");
    let job = restore(
        &app,
        &cluster,
        &backup,
        json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
               "collections": [{"collectionName": name, "destCollectionName": target}]}]}),
    )
    .await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let reason = job["reason"].as_str().unwrap();
    let key = victim
        .strip_prefix(&region)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(reason.contains(&key), "reason names {key}: {reason}");
    let listed = app.collections(&cluster).await;
    assert!(
        !listed
            .iter()
            .any(|c| c["collectionName"] == target.as_str()),
        "nothing was created on the destination"
    );
}

/// `crossRegionCopies`: the copy lands in the other region's storage with its own status and
/// verifies; a cluster in that region restores from it; deleting the backup removes the copy.
async fn cross_region_copy_lands_and_restores_there(backend: Backend) {
    let milvus = shared_milvus();
    let (region, s3_store) = s3_region("eu").await;
    let app = TestApp::spawn_with(backend, move |c| c.regions.push(region)).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "15"]).await;
    let cluster = app
        .register_cluster(&project, "home", &milvus.uri, &milvus.storage)
        .await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": db, "collectionNames": [name]}],
                        "crossRegionCopies": [{"regionId": "eu"}]})),
        )
        .await;
    let backup = created["backupId"].as_str().unwrap().to_owned();
    let job = wait_for_job(&app, created["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let path = format!("/v2/clusters/{cluster}/backups/{backup}");
    let started = std::time::Instant::now();
    let copy = loop {
        let described = app.admin(Method::GET, &path, None).await;
        let copy = described["copies"][0].clone();
        if copy["status"] != "CREATING" {
            break copy;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "{described}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(copy["regionId"], "eu");
    assert_eq!(copy["status"], "AVAILABLE", "{copy}");
    let prefix = format!("backups/{project}/{cluster}/{backup}/");
    let manifest = backstop::backup::manifest::Manifest::from_json(
        &backstop::objects::get_bytes(&s3_store, &format!("{prefix}manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    for object in &manifest.objects {
        backstop::objects::verify(&s3_store, &object.key, object.checksum)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", object.key));
    }

    // A cluster in the other region restores from the copy there.
    let remote = app
        .admin(
            Method::POST,
            "/v2/clusters",
            Some(
                json!({"clusterName": "away", "projectId": project, "regionId": "eu",
                        "plan": "Dedicated", "cuSize": 2, "milvus": {"uri": milvus.uri},
                        "storage": {"type": "local", "path": milvus.storage}}),
            ),
        )
        .await["clusterId"]
        .as_str()
        .unwrap()
        .to_owned();
    let renamed = unique("from_eu");
    let job = restore(
        &app,
        &cluster,
        &backup,
        json!({"destClusterId": remote, "dbCollections": [{"dbName": db,
               "collections": [{"collectionName": name, "destCollectionName": renamed}]}]}),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let source = dump(&milvus.uri, &db, &name).await;
    let restored = dump(&milvus.uri, &db, &renamed).await;
    assert_eq!(restored["rows"], source["rows"]);

    // Deleting the backup deletes the copy too.
    let deleted = app.admin(Method::DELETE, &path, None).await;
    let job = wait_for_job(&app, deleted["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let left = backstop::objects::list_all(&s3_store, &prefix)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

fn walk_first_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else {
                return path;
            }
        }
    }
    panic!("no file under {}", dir.display());
}

/// A restore canceled while it stages binlogs (held at a test barrier) drops the collection it
/// created and removes its staging files; the job ends CANCELED.
async fn a_canceled_restore_drops_what_it_created(backend: Backend) {
    let milvus = shared_milvus();
    let barrier = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(backend, |c| {
        c.test_hooks.restore_stage = Some(PausePoint {
            after_files: 1,
            dir: barrier.path().to_path_buf(),
        });
    })
    .await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-collection", &db, &name, "20"]).await;
    let (cluster, backup) = backed_up(&app, &project, &db, &[&name]).await;
    let target = unique("canceled");
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
    wait_for_file(&barrier.path().join("paused")).await;

    let listed = app.collections(&cluster).await;
    assert!(
        listed
            .iter()
            .any(|c| c["collectionName"] == target.as_str()),
        "created before staging: {listed:?}"
    );
    let staging = std::path::Path::new(&milvus.storage).join(format!("backstop-restore/{job_id}"));
    assert!(
        staging.exists(),
        "{} holds the staged binlogs",
        staging.display()
    );
    let described = app
        .admin(Method::GET, &format!("/v2/jobs/{job_id}"), None)
        .await;
    assert_eq!(described["cancellable"], true, "{described}");

    let canceling = app
        .admin(Method::POST, &format!("/v2/jobs/{job_id}/cancel"), None)
        .await;
    assert_eq!(canceling["status"], "CANCELING", "{canceling}");
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "CANCELED", "{job}");
    let listed = app.collections(&cluster).await;
    assert!(
        !listed
            .iter()
            .any(|c| c["collectionName"] == target.as_str()),
        "dropped: {listed:?}"
    );
    let left: Vec<_> = walk_files(&staging);
    assert!(left.is_empty(), "staging files left: {left:?}");
}

/// Every file under `dir` (none when it does not exist).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk_files(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

on_both_backends!(
    a_canceled_restore_drops_what_it_created,
    cross_region_copy_lands_and_restores_there,
    restore_renamed_and_after_a_drop_gives_identical_rows,
    a_tampered_backup_is_refused_before_the_destination_is_touched,
    loading_an_unindexed_collection_is_refused_up_front,
);
