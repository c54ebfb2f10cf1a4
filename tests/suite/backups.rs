//! Backups of a real Milvus: the shared instance (collections of their own per test) and the
//! regions' real storage (a local directory, the shared SeaweedFS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backstop::backup::manifest::Manifest;
use backstop::config::Config;
use backstop::objects::{self, LocalStore, ObjectStore};
use backstop::test_hooks::PausePoint;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    s3_region, seed, shared_milvus, unique, wait_for_file, wait_for_job, wait_for_job_within,
    Backend, PrivateMilvus, TestApp,
};

fn region_dir(app: &TestApp) -> PathBuf {
    app.db.dir.path().join("data/regions/local")
}

/// Files under `root/prefix` with their sizes, keyed relative to `root`.
fn files_under(root: &Path, prefix: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.join(prefix)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(key, entry.metadata().unwrap().len());
            }
        }
    }
    out
}

async fn create_backup(app: &TestApp, cluster: &str, body: Value) -> (String, String) {
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(body),
        )
        .await;
    (
        created["backupId"].as_str().unwrap().to_owned(),
        created["jobId"].as_str().unwrap().to_owned(),
    )
}

/// Every object the manifest lists exists with its size and checksum.
async fn verify_manifest(store: &dyn ObjectStore, manifest: &Manifest) {
    assert!(!manifest.objects.is_empty());
    for object in &manifest.objects {
        let written = objects::verify(store, &object.key, object.checksum)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", object.key));
        assert_eq!(written.size, object.size, "{}", object.key);
    }
}

/// The backup's binlogs are exactly the files Milvus wrote for the segments the backup names
/// (keys and sizes). Segments Milvus wrote later (compaction) are not part of the backup.
fn assert_binlogs_match(milvus_root: &Path, manifest: &Manifest, prefix: &str) {
    for collection in &manifest.collections {
        let id = collection.collection_id;
        let mut in_milvus = BTreeMap::new();
        for s in &collection.segments {
            let tail = format!("{id}/{}/{}", s.partition_id, s.segment_id);
            in_milvus.extend(files_under(milvus_root, &format!("insert_log/{tail}")));
            in_milvus.extend(files_under(milvus_root, &format!("delta_log/{tail}")));
        }
        let in_backup: BTreeMap<String, u64> = manifest
            .objects
            .iter()
            .filter_map(|o| {
                let key = o.key.strip_prefix(&format!("{prefix}binlogs/"))?;
                let id_part = key.split('/').nth(1)?;
                (id_part == id.to_string()).then(|| (key.to_owned(), o.size))
            })
            .collect();
        assert!(
            !in_milvus.is_empty(),
            "{} has binlogs",
            collection.collection_name
        );
        assert_eq!(
            in_backup, in_milvus,
            "binlogs of {}",
            collection.collection_name
        );
    }
}

async fn read_manifest(store: &dyn ObjectStore, prefix: &str) -> Manifest {
    Manifest::from_json(
        &objects::get_bytes(store, &format!("{prefix}manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap()
}

async fn collection_backup_copies_binlogs_meta_and_manifest(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let (rich, plain) = (unique("rich"), unique("plain"));
    seed(&milvus.uri, &["create-rich", &db, &rich, "40"]).await;
    seed(&milvus.uri, &["create-collection", &db, &plain, "25"]).await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;

    let (backup_id, job_id) = create_backup(
        &app,
        &cluster,
        json!({"backupType": "COLLECTION",
               "dbCollections": [{"dbName": db, "collectionNames": [rich, plain]}]}),
    )
    .await;
    assert!(backup_id.starts_with("backup1_"), "{backup_id}");
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(job["progress"], 100, "{job}");
    assert!(job["bytesDone"].as_i64().unwrap() > 0, "{job}");

    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(described["status"], "AVAILABLE", "{described}");
    assert_eq!(described["backupName"], "prod_backup1", "{described}");
    assert_eq!(described["creationMethod"], "MANUAL");
    assert_eq!(described["backupType"], "COLLECTION");
    let collections = described["dbCollections"][0]["collections"]
        .as_array()
        .unwrap();
    assert_eq!(described["dbCollections"][0]["dbName"], db.as_str());
    let rows: BTreeMap<&str, i64> = collections
        .iter()
        .map(|c| {
            (
                c["collectionName"].as_str().unwrap(),
                c["rowCount"].as_i64().unwrap(),
            )
        })
        .collect();
    // Rows in the copied segments: deletes live in the delta logs beside them.
    assert_rich_rows(rows[rich.as_str()], 40, &described);
    assert_eq!(rows[plain.as_str()], 25, "{described}");

    // The manifest: every object verifies, and the binlogs are exactly Milvus's files of
    // those collections (count and bytes).
    let region = LocalStore::new(region_dir(&app));
    let prefix = format!("backups/{project}/{cluster}/{backup_id}/");
    let manifest = read_manifest(&region, &prefix).await;
    verify_manifest(&region, &manifest).await;
    assert_eq!(manifest.size as i64, described["size"].as_i64().unwrap());
    assert_binlogs_match(Path::new(&milvus.storage), &manifest, &prefix);
    let rich_entry = manifest
        .collections
        .iter()
        .find(|c| c.collection_name == rich)
        .unwrap();
    assert!(
        manifest.objects.iter().any(|o| o
            .key
            .contains(&format!("binlogs/delta_log/{}/", rich_entry.collection_id))),
        "the deletes' delta logs are in the backup"
    );

    // Meta: schema with field ids, dynamic field, partitions, shards, index; no TTL, no mmap.
    let meta: Value = serde_json::from_slice(
        &objects::get_bytes(&region, &rich_entry.meta_key)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["shardsNum"], 2, "{meta}");
    assert_eq!(meta["enableDynamicField"], true, "{meta}");
    assert_eq!(meta["description"], "rich test collection");
    let fields: Vec<(&str, i64)> = meta["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["fieldId"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![("id", 100), ("title", 101), ("vec", 102)],
        "{meta}"
    );
    assert_eq!(meta["fields"][2]["typeParams"]["dim"], "8", "{meta}");
    let partitions: Vec<&str> = meta["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(partitions, vec!["_default", "p1"], "{meta}");
    assert_eq!(meta["indexes"][0]["fieldName"], "vec", "{meta}");
    assert_eq!(
        meta["indexes"][0]["params"]["index_type"], "IVF_FLAT",
        "{meta}"
    );
    let text = meta.to_string();
    assert!(!text.contains("collection.ttl.seconds"), "{meta}");
    assert!(!text.contains("mmap"), "{meta}");
    assert_eq!(
        meta["segments"].as_array().unwrap().len(),
        rich_entry.segments.len()
    );

    // Listed, filtered.
    let listed = app
        .admin(
            Method::GET,
            &format!("/v2/backups?clusterId={cluster}&backupType=COLLECTION"),
            None,
        )
        .await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["backups"][0]["backupId"], backup_id.as_str());
    let none = app
        .admin(Method::GET, "/v2/backups?creationMethod=AUTO", None)
        .await;
    assert_eq!(none["count"], 0, "{none}");

    // A manual backup outlives its cluster: still listed, described and deletable.
    app.admin(Method::DELETE, &format!("/v2/clusters/{cluster}"), None)
        .await;
    let listed = app.admin(Method::GET, "/v2/backups", None).await;
    assert_eq!(
        listed["backups"][0]["backupId"],
        backup_id.as_str(),
        "{listed}"
    );
    assert_eq!(listed["backups"][0]["clusterName"], "prod", "{listed}");

    // Delete: DELETING, then gone with its objects.
    let deleted = app
        .admin(
            Method::DELETE,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    let delete_job = wait_for_job(&app, deleted["jobId"].as_str().unwrap()).await;
    assert_eq!(delete_job["status"], "SUCCESSFUL", "{delete_job}");
    let (status, gone) = app
        .call(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    assert!(files_under(&region_dir(&app), &prefix).is_empty());
}

async fn create_refuses_what_cannot_be_backed_up(backend: Backend) {
    let milvus = shared_milvus();
    // No workers: a backup stays PENDING, so the task rules can be seen.
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let known = unique("known");
    seed(&milvus.uri, &["create-collection", &db, &known, "0"]).await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let create = format!("/v2/clusters/{cluster}/backups/create");
    let key = Some(app.admin_key.as_str());

    let (status, body) = app
        .call(
            Method::POST,
            &create,
            key,
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": db, "collectionNames": [known, "nope"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 90404);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("nope") && message.contains("collectionNames"),
        "{message}"
    );

    let (status, body) = app
        .call(
            Method::POST,
            &create,
            key,
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": "no_such_db", "collectionNames": ["x"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no_such_db"),
        "{body}"
    );

    for (bad, field) in [
        (json!({"backupType": "COLLECTION"}), "dbCollections"),
        (
            json!({"backupType": "CLUSTER", "dbCollections": [{"collectionNames": ["a"]}]}),
            "dbCollections",
        ),
        (json!({"backupType": "EVERYTHING"}), "backupType"),
        (
            json!({"backupType": "CLUSTER", "backupName": "no spaces"}),
            "backupName",
        ),
    ] {
        let (status, body) = app
            .call(Method::POST, &create, key, Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], 90400);
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }

    // One manual backup at a time; a canceled one frees the cluster.
    let (first, first_job) = create_backup(
        &app,
        &cluster,
        json!({"backupType": "COLLECTION", "dbCollections": [{"dbName": db, "collectionNames": [known]}]}),
    )
    .await;
    let (status, body) = app
        .call(
            Method::POST,
            &create,
            key,
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], 90409);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already pending or running"),
        "{body}"
    );
    app.admin(Method::POST, &format!("/v2/jobs/{first_job}/cancel"), None)
        .await;
    let canceled = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{first}"),
            None,
        )
        .await;
    assert_eq!(canceled["status"], "CANCELED", "{canceled}");
    let (second, _) = create_backup(&app, &cluster, json!({"backupType": "CLUSTER"})).await;
    assert!(second.starts_with("backup2_"), "{second}");

    // Serverless clusters have no backups.
    let body = json!({
        "clusterName": "serverless", "projectId": project, "regionId": "local",
        "plan": "Serverless", "cuSize": 1, "milvus": { "uri": milvus.uri },
        "storage": { "type": "local", "path": milvus.storage }
    });
    let serverless = app.admin(Method::POST, "/v2/clusters", Some(body)).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!(
                "/v2/clusters/{}/backups/create",
                serverless["clusterId"].as_str().unwrap()
            ),
            key,
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], 90422);

    // A READ_ONLY key reads backups but cannot create them.
    let reader = app.create_key(&project, "READ_ONLY").await;
    let (status, body) = app
        .call(
            Method::POST,
            &create,
            Some(&reader),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = app
        .call(Method::GET, "/v2/backups", Some(&reader), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["count"], 2, "{body}");
}

/// A cluster registered in an S3 region writes its backup there, and nowhere else.
async fn backup_lands_only_in_its_clusters_region(backend: Backend) {
    let milvus = shared_milvus();
    let (region, s3_store) = s3_region("s3-test").await;
    let app = TestApp::spawn_with(backend, move |c: &mut Config| c.regions.push(region)).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-collection", &db, &name, "30"]).await;
    let cluster = app
        .admin(
            Method::POST,
            "/v2/clusters",
            Some(json!({
                "clusterName": "remote", "projectId": project, "regionId": "s3-test",
                "plan": "Dedicated", "cuSize": 2, "milvus": { "uri": milvus.uri },
                "storage": { "type": "local", "path": milvus.storage }
            })),
        )
        .await["clusterId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (backup_id, job_id) = create_backup(
        &app,
        &cluster,
        json!({"backupType": "COLLECTION", "dbCollections": [{"dbName": db, "collectionNames": [name]}]}),
    )
    .await;
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(described["regionId"], "s3-test");

    let prefix = format!("backups/{project}/{cluster}/{backup_id}/");
    let manifest = Manifest::from_json(
        &objects::get_bytes(&s3_store, &format!("{prefix}manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    verify_manifest(&s3_store, &manifest).await;
    assert!(manifest
        .objects
        .iter()
        .any(|o| o.key.contains("/binlogs/insert_log/")));
    assert!(
        files_under(&region_dir(&app), "backups").is_empty(),
        "nothing in the local region"
    );
}

/// The rows a backup records for a `create-rich` collection of `per_partition` rows in each of
/// its two partitions, 3 of them deleted in each: the rows of the copied segments, which keep
/// a partition's deleted rows (beside their delete log) until Milvus compacts that segment,
/// something it may do at any moment, partition by partition (seen under load in CI).
fn assert_rich_rows(recorded: i64, per_partition: i64, context: &dyn std::fmt::Display) {
    let all = 2 * per_partition;
    assert!(
        [all, all - 3, all - 6].contains(&recorded),
        "{recorded} rows recorded; expected {all}, less 3 per compacted partition: {context}"
    );
}

/// A whole cluster (a Milvus of its own, so no other test's collections join in): two
/// databases and over a thousand collections, every one backed up with its binlogs, meta and
/// row count; describe and list calls run in parallel, flushes in batches per database.
/// Runs on Postgres only: a private Milvus per backend would double the suite's heaviest
/// fixture, and the backup rows it writes are the ones the other tests check on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_backup_covers_every_database_and_scales() {
    let milvus = PrivateMilvus::start().await;
    let app = TestApp::spawn(Backend::Postgres).await;
    let project = app.create_project("p").await;
    seed(&milvus.uri, &["create-rich", "default", "rich", "30"]).await;
    seed(
        &milvus.uri,
        &["create-collection", "default", "plain", "10"],
    )
    .await;
    seed(&milvus.uri, &["create-collection", "second", "other", "15"]).await;
    // 1,000 more: every 100th with 3 rows, the rest empty.
    seed(&milvus.uri, &["create-many", "second", "many", "1000"]).await;
    let cluster = app
        .register_cluster(&project, "whole", &milvus.uri, &milvus.storage)
        .await;
    let started = Instant::now();
    let (backup_id, job_id) = create_backup(
        &app,
        &cluster,
        json!({"backupType": "CLUSTER", "backupName": "nightly"}),
    )
    .await;
    let job = wait_for_job_within(&app, &job_id, Duration::from_secs(540)).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    println!(
        "CLUSTER backup of 1,003 collections took {:?}",
        started.elapsed()
    );
    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(described["backupName"], "nightly");
    assert_eq!(described["backupType"], "CLUSTER");
    let mut seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    for db in described["dbCollections"].as_array().unwrap() {
        for c in db["collections"].as_array().unwrap() {
            assert_eq!(c["status"], "AVAILABLE");
            seen.insert(
                (
                    db["dbName"].as_str().unwrap().to_owned(),
                    c["collectionName"].as_str().unwrap().to_owned(),
                ),
                c["rowCount"].as_i64().unwrap(),
            );
        }
    }
    assert_eq!(seen.len(), 1003);
    let rows = |db: &str, name: &str| seen[&(db.to_owned(), name.to_owned())];
    assert_rich_rows(rows("default", "rich"), 30, &"default.rich");
    assert_eq!(rows("default", "plain"), 10);
    assert_eq!(rows("second", "other"), 15);
    assert_eq!(rows("second", "many0100"), 3);
    assert_eq!(rows("second", "many0101"), 0);
    let many_rows: i64 = seen
        .iter()
        .filter(|((_, name), _)| name.starts_with("many"))
        .map(|(_, rows)| rows)
        .sum();
    assert_eq!(many_rows, 30, "3 rows in each of 10 collections");

    let region = LocalStore::new(region_dir(&app));
    let prefix = format!("backups/{project}/{cluster}/{backup_id}/");
    let manifest = read_manifest(&region, &prefix).await;
    assert_eq!(manifest.collections.len(), 1003);
    verify_manifest(&region, &manifest).await;
    let with_rows = Manifest {
        collections: manifest
            .collections
            .iter()
            .filter(|c| c.row_count > 0)
            .cloned()
            .collect(),
        ..manifest.clone()
    };
    assert_binlogs_match(Path::new(&milvus.storage), &with_rows, &prefix);
    assert!(
        objects::get_bytes(&region, &format!("{prefix}meta/second/other.json"))
            .await
            .is_ok()
    );
}

/// A backup of `db.name` whose copy is paused after its first file (a test barrier). Create
/// `<barrier>/resume` to let it go on.
struct PausedBackup {
    app: TestApp,
    cluster: String,
    prefix: String,
    job_id: String,
    barrier: tempfile::TempDir,
}

impl PausedBackup {
    async fn start(backend: Backend, db: &str, name: &str) -> PausedBackup {
        let milvus = shared_milvus();
        let barrier = tempfile::tempdir().unwrap();
        let pause_dir = barrier.path().to_path_buf();
        let app = TestApp::spawn_with(backend, move |c: &mut Config| {
            c.backup.copy_parallelism = 1;
            // The paused job must keep its lease while the test changes the collection (a
            // few seconds of pymilvus on a loaded machine): with the suite's 1.5 s lease a
            // slow heartbeat let a second worker take the job mid-change, and that attempt
            // saw the collection between its drop and its re-creation.
            c.jobs.lease_ms = 10_000;
            c.test_hooks.backup_copy = Some(PausePoint {
                after_files: 1,
                dir: pause_dir,
            });
        })
        .await;
        let project = app.create_project("p").await;
        let cluster = app
            .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
            .await;
        let (backup_id, job_id) = create_backup(
            &app,
            &cluster,
            json!({"backupType": "COLLECTION", "dbCollections": [{"dbName": db, "collectionNames": [name]}]}),
        )
        .await;
        wait_for_file(&barrier.path().join("paused")).await;
        let prefix = format!("backups/{project}/{cluster}/{backup_id}/");
        PausedBackup {
            app,
            cluster,
            prefix,
            job_id,
            barrier,
        }
    }

    async fn resume(&self) -> Value {
        std::fs::write(self.barrier.path().join("resume"), b"").unwrap();
        wait_for_job(&self.app, &self.job_id).await
    }
}

/// Pauses the backup after one file, runs `change` on Milvus, lets it go on.
async fn backup_with_change_midway(
    backend: Backend,
    db: &str,
    name: &str,
    change: &[&[&str]],
) -> (TestApp, String, String, Value) {
    let paused = PausedBackup::start(backend, db, name).await;
    for args in change {
        seed(&shared_milvus().uri, args).await;
    }
    let job = paused.resume().await;
    (paused.app, paused.cluster, paused.prefix, job)
}

async fn canceling_a_running_backup_removes_its_objects(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("c");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let paused = PausedBackup::start(backend, &db, &name).await;
    let app = &paused.app;
    let running = app
        .admin(Method::GET, &format!("/v2/jobs/{}", paused.job_id), None)
        .await;
    assert_eq!(running["status"], "IN_PROGRESS", "{running}");
    assert!(
        running["currentStep"].as_str().unwrap().contains(&name),
        "progress names the collection being copied: {running}"
    );
    assert!(
        !files_under(&region_dir(app), &paused.prefix).is_empty(),
        "a file was copied"
    );
    let canceled = app
        .admin(
            Method::POST,
            &format!("/v2/jobs/{}/cancel", paused.job_id),
            None,
        )
        .await;
    assert_eq!(canceled["status"], "CANCELING");
    // The barrier gives way to the cancel; no resume needed.
    let job = wait_for_job(app, &paused.job_id).await;
    assert_eq!(job["status"], "CANCELED", "{job}");
    let backup_id = job["resource"]["backupId"].as_str().unwrap();
    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{}/backups/{backup_id}", paused.cluster),
            None,
        )
        .await;
    assert_eq!(described["status"], "CANCELED", "{described}");
    assert!(
        files_under(&region_dir(app), &paused.prefix).is_empty(),
        "no objects left"
    );
}

async fn a_collection_dropped_during_the_backup_fails_it(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("doomed");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let (app, cluster, prefix, job) =
        backup_with_change_midway(backend, &db, &name, &[&["drop-collection", &db, &name]]).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains(&name) && reason.contains("dropped"),
        "{reason}"
    );
    let backup_id = job["resource"]["backupId"].as_str().unwrap();
    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(described["status"], "FAILED", "{described}");
    assert!(described["reason"].as_str().unwrap().contains(&name));
    assert!(
        files_under(&region_dir(&app), &prefix).is_empty(),
        "no objects left"
    );
}

async fn a_collection_recreated_during_the_backup_is_backed_up_again(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("reborn");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    let (app, _cluster, prefix, job) = backup_with_change_midway(
        backend,
        &db,
        &name,
        &[
            &["drop-collection", &db, &name],
            &["create-collection", &db, &name, "7"],
        ],
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let region = LocalStore::new(region_dir(&app));
    let manifest = read_manifest(&region, &prefix).await;
    verify_manifest(&region, &manifest).await;
    assert_eq!(manifest.collections.len(), 1);
    assert_eq!(
        manifest.collections[0].row_count, 7,
        "the new collection's rows only"
    );
    // Only the new collection's files: the old one's copies were removed.
    assert_binlogs_match(Path::new(&milvus.storage), &manifest, &prefix);
    let on_disk = files_under(&region_dir(&app), &format!("{prefix}binlogs"));
    assert_eq!(
        on_disk.len(),
        manifest
            .objects
            .iter()
            .filter(|o| o.key.contains("/binlogs/"))
            .count()
    );
}

/// kill -9 of the process copying a backup: another process takes the job after the lease
/// expires, keeps what was copied, and finishes a backup that verifies.
async fn killed_process_backup_is_finished_by_another(backend: Backend) {
    let milvus = shared_milvus();
    let db = unique("db");
    let name = unique("crash");
    seed(&milvus.uri, &["create-rich", &db, &name, "20"]).await;
    // This process only answers the API; the two child processes run the job.
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let (backup_id, job_id) = create_backup(
        &app,
        &cluster,
        json!({"backupType": "COLLECTION", "dbCollections": [{"dbName": db, "collectionNames": [name]}]}),
    )
    .await;
    let barrier = tempfile::tempdir().unwrap();
    let data_dir = app.db.dir.path().join("data");
    let worker = |pause: bool| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_backstop"));
        command
            .arg("serve")
            .env("DATABASE_URL", &app.db.url)
            .env("BACKSTOP_DATA_DIR", &data_dir)
            .env("BACKSTOP_SERVER__LISTEN", "127.0.0.1:0")
            .env("BACKSTOP_JOBS__LEASE_MS", "1500")
            .env("BACKSTOP_JOBS__POLL_INTERVAL_MS", "200")
            .env("BACKSTOP_BACKUP__COPY_PARALLELISM", "1")
            .env_remove("BACKSTOP_TEST_BACKUP_PAUSE")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if pause {
            command.env(
                "BACKSTOP_TEST_BACKUP_PAUSE",
                format!("3:{}", barrier.path().display()),
            );
        }
        command.spawn().expect("start backstop serve")
    };
    let mut first = worker(true);
    wait_for_file(&barrier.path().join("paused")).await;
    let killed_at = std::time::SystemTime::now();
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let _second = worker(false);
    let job = wait_for_job(&app, &job_id).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    let region = LocalStore::new(region_dir(&app));
    let prefix = format!("backups/{project}/{cluster}/{backup_id}/");
    let manifest = read_manifest(&region, &prefix).await;
    verify_manifest(&region, &manifest).await;
    assert_binlogs_match(Path::new(&milvus.storage), &manifest, &prefix);
    // The files the killed process copied were kept, not copied again.
    let kept = manifest
        .objects
        .iter()
        .filter(|o| o.key.contains("/binlogs/"))
        .filter(|o| {
            let modified = std::fs::metadata(region_dir(&app).join(&o.key))
                .unwrap()
                .modified()
                .unwrap();
            modified <= killed_at
        })
        .count();
    assert_eq!(kept, 3, "the three files copied before the kill are kept");
}

async fn keyed_creates_that_died_answer_with_what_they_made(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let name = unique("keyed");
    seed(&milvus.uri, &["create-collection", &db, &name, "0"]).await;
    let post = |path: String, key: &'static str, body: Value| {
        app.client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let lapsed = || Utc::now() - chrono::Duration::seconds(1);

    let register = json!({
        "clusterName": "prod", "projectId": project, "regionId": "local",
        "plan": "Dedicated", "cuSize": 2,
        "milvus": { "uri": milvus.uri }, "storage": { "type": "local", "path": milvus.storage }
    });
    let first: Value = post("/v2/clusters".into(), "k-register", register.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    crate::support::die_mid_request(&app, "k-register", lapsed()).await;
    let retry = post("/v2/clusters".into(), "k-register", register)
        .await
        .unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);
    let cluster = first["data"]["clusterId"].as_str().unwrap().to_owned();
    let clusters = app.admin(Method::GET, "/v2/clusters", None).await;
    assert_eq!(clusters["count"], 1, "{clusters}");

    let create = format!("/v2/clusters/{cluster}/backups/create");
    let body = json!({"backupType": "COLLECTION",
                      "dbCollections": [{"dbName": db, "collectionNames": [name]}]});
    let first: Value = post(create.clone(), "k-backup", body.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(first["data"]["backupName"].is_string(), "{first}");
    crate::support::die_mid_request(&app, "k-backup", lapsed()).await;
    let retry = post(create, "k-backup", body).await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(
        retry, first,
        "the backup the first request made, not a second one"
    );
    let backups = app
        .admin(
            Method::GET,
            &format!("/v2/backups?clusterId={cluster}"),
            None,
        )
        .await;
    assert_eq!(backups["count"], 1, "{backups}");
}

on_both_backends!(
    canceling_a_running_backup_removes_its_objects,
    a_collection_dropped_during_the_backup_fails_it,
    a_collection_recreated_during_the_backup_is_backed_up_again,
    killed_process_backup_is_finished_by_another,
    collection_backup_copies_binlogs_meta_and_manifest,
    create_refuses_what_cannot_be_backed_up,
    backup_lands_only_in_its_clusters_region,
    keyed_creates_that_died_answer_with_what_they_made,
);
