//! Restore fidelity and control on a real Milvus: partition-key collections (on both Milvus
//! shapes), aliases, `onExisting` FAIL / SKIP / DROP, `metaOnly`, and Zilliz's documented
//! request bodies.

use backstop::test_hooks::PausePoint;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    collection_backup, seed, seed_2_2, seed_as, seed_output, shared_milvus, shared_s3_milvus,
    unique, wait_for_file, wait_for_job, Backend, PrivateMilvus, TestApp,
};

const BACKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

async fn dump(uri: &str, token: Option<&str>, db: &str, name: &str) -> Value {
    let text = seed_as(uri, token, &["dump", db, name]).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("dump of {db}.{name}: {e}: {text}"))
}

/// Starts a restoreCollection and waits for its job; returns the ended job.
async fn restore(app: &TestApp, cluster: &str, backup: &str, body: Value) -> Value {
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(body),
        )
        .await;
    let job_id = started["jobId"]
        .as_str()
        .unwrap_or_else(|| panic!("no job: {started}"));
    wait_for_job(app, job_id).await
}

/// An app with a project and the shared Milvus registered in it: (app, project, cluster).
async fn on_shared_milvus(backend: Backend) -> (TestApp, String, String) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "source", &milvus.uri, &milvus.storage)
        .await;
    (app, project, cluster)
}

fn renamed(dest: &str, db: &str, name: &str, to: &str) -> Value {
    json!({"destClusterId": dest, "dbCollections": [{"dbName": db,
           "collections": [{"collectionName": name, "destCollectionName": to}]}]})
}

/// Backs up `db.name` of `cluster`, restores it renamed into the same cluster, and checks the
/// copy has the `original` dump's rows and partitions; returns the copy's name.
async fn round_trip(
    app: &TestApp,
    cluster: &str,
    (uri, token): (&str, Option<&str>),
    db: &str,
    name: &str,
    original: &Value,
) -> String {
    let backup = collection_backup(app, cluster, db, name, BACKUP_WAIT).await;
    let copy = unique("copy");
    let job = restore(app, cluster, &backup, renamed(cluster, db, name, &copy)).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let restored = dump(uri, token, db, &copy).await;
    assert_eq!(restored["rows"], original["rows"]);
    assert_eq!(restored["partitions"], original["partitions"]);
    copy
}

/// A VARCHAR partition key over 16 partitions, with deletes (of existing ids and of one that
/// never existed): every row comes back, in the same 16 partitions, and a query on one key
/// (which Milvus prunes to that key's partition) finds the same rows as on the source.
async fn partition_key_collection_restores_every_row(backend: Backend) {
    let milvus = shared_milvus();
    let (app, _, cluster) = on_shared_milvus(backend).await;
    let db = unique("db");
    let name = unique("tenants");
    seed(&milvus.uri, &["create-partition-key", &db, &name, "300"]).await;
    let original = dump(&milvus.uri, None, &db, &name).await;
    assert_eq!(original["rows"].as_array().unwrap().len(), 297, "3 deleted");
    assert_eq!(original["partitions"].as_array().unwrap().len(), 16);

    let copy = round_trip(&app, &cluster, (&milvus.uri, None), &db, &name, &original).await;
    for tenant in ["t0", "t5", "t10"] {
        let expr = format!("tenant == \"{tenant}\"");
        let source = seed_output(&milvus.uri, &["count-where", &db, &name, &expr]).await;
        let back = seed_output(&milvus.uri, &["count-where", &db, &copy, &expr]).await;
        assert_eq!(
            back.trim(),
            source.trim(),
            "rows of {tenant} where its key routes"
        );
    }
}

/// The same on the production shape: binlogs in S3, authorization on.
async fn partition_key_collection_restores_on_the_s3_milvus(backend: Backend) {
    let s3 = shared_s3_milvus();
    let token = Some(s3.token.as_str());
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_in(&project, "s3", "local", s3.registration())
        .await;
    let db = unique("db");
    let name = unique("tenants");
    seed_as(&s3.uri, token, &["create-partition-key", &db, &name, "200"]).await;
    let original = dump(&s3.uri, token, &db, &name).await;
    let copy = round_trip(&app, &cluster, (&s3.uri, token), &db, &name, &original).await;
    // The shared S3 Milvus is backed up whole by the RBAC test: leave it no 16-partition
    // collections to import.
    for name in [&name, &copy] {
        seed_as(&s3.uri, token, &["drop-collection", &db, name]).await;
    }
}

/// `onExisting`: FAIL refuses up front and says how to proceed; SKIP leaves an existing
/// collection untouched and restores the rest; DROP replaces one with the backup's; `metaOnly`
/// makes the schema, partitions and index with no rows.
async fn on_existing_and_meta_only_restores(backend: Backend) {
    let milvus = shared_milvus();
    let (app, _, cluster) = on_shared_milvus(backend).await;
    let db = unique("db");
    let (a, b) = (unique("a"), unique("b"));
    seed(&milvus.uri, &["create-rich", &db, &a, "20"]).await;
    seed(&milvus.uri, &["create-collection", &db, &b, "10"]).await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": db, "collectionNames": [a, b]}]})),
        )
        .await;
    let job = wait_for_job(&app, created["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let backup = created["backupId"].as_str().unwrap().to_owned();
    let (original_a, original_b) = (
        dump(&milvus.uri, None, &db, &a).await,
        dump(&milvus.uri, None, &db, &b).await,
    );
    let both = |on_existing: &str| {
        json!({"destClusterId": cluster, "onExisting": on_existing,
               "dbCollections": [{"dbName": db, "collections": [
                   {"collectionName": a}, {"collectionName": b}]}]})
    };
    let path = format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection");

    // FAIL, the default: refused before a job exists, naming the way out.
    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin_key),
            Some(both("FAIL")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("onExisting"),
        "{answer}"
    );

    // SKIP: `a` is now another collection of 5 rows and stays so; `b` is gone and comes back.
    seed(&milvus.uri, &["drop-collection", &db, &a]).await;
    seed(&milvus.uri, &["create-collection", &db, &a, "5"]).await;
    seed(&milvus.uri, &["drop-collection", &db, &b]).await;
    let replaced_a = dump(&milvus.uri, None, &db, &a).await["rows"].clone();
    let job = restore(&app, &cluster, &backup, both("SKIP")).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert!(
        job["currentStep"]
            .as_str()
            .is_some_and(|s| s.starts_with("restored 1 collection(s)") && s.contains("skipped 1")),
        "{job}"
    );
    assert_eq!(dump(&milvus.uri, None, &db, &a).await["rows"], replaced_a);
    assert_eq!(
        dump(&milvus.uri, None, &db, &b).await["rows"],
        original_b["rows"]
    );

    // DROP: `a` is replaced by the backup's, its rows, partitions and index.
    let body = json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
        "collections": [{"collectionName": a, "onExisting": "DROP"}]}]});
    let job = restore(&app, &cluster, &backup, body).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let back = dump(&milvus.uri, None, &db, &a).await;
    assert_eq!(back["rows"], original_a["rows"]);
    assert_eq!(back["partitions"], original_a["partitions"]);
    assert_eq!(back["indexes"], original_a["indexes"]);

    // metaOnly: the shape without the rows.
    let empty = unique("empty");
    let body = json!({"destClusterId": cluster, "metaOnly": true,
        "dbCollections": [{"dbName": db, "collections": [
            {"collectionName": a, "destCollectionName": empty}]}]});
    let job = restore(&app, &cluster, &backup, body).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(job["bytesTotal"], 0, "no binlog staged: {job}");
    let shape = dump(&milvus.uri, None, &db, &empty).await;
    assert_eq!(shape["rows"], json!([]));
    assert_eq!(shape["partitions"], original_a["partitions"]);
    assert_eq!(shape["indexes"], original_a["indexes"]);
}

/// A backup keeps a collection's aliases: restored under a new name after the original was
/// dropped, the alias follows it; restored beside the original, which still holds the alias,
/// the alias stays where it is and the job says so.
async fn aliases_follow_the_restored_collection(backend: Backend) {
    let milvus = shared_milvus();
    let (app, _, cluster) = on_shared_milvus(backend).await;
    let db = unique("db");
    let name = unique("c");
    let alias = unique("al");
    seed(&milvus.uri, &["create-collection", &db, &name, "10"]).await;
    seed(&milvus.uri, &["add-alias", &db, &name, &alias]).await;
    let backup = collection_backup(&app, &cluster, &db, &name, BACKUP_WAIT).await;
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup}"),
            None,
        )
        .await;
    assert_eq!(
        details["dbCollections"][0]["collections"][0]["aliases"],
        json!([alias]),
        "{details}"
    );
    let aliases = |name: String| {
        let db = db.clone();
        async move {
            let text = seed_output(&milvus.uri, &["aliases", &db, &name]).await;
            serde_json::from_str::<Value>(text.trim()).unwrap()
        }
    };

    // Beside the original, which keeps its alias: reported, not moved.
    let beside = unique("beside");
    let job = restore(
        &app,
        &cluster,
        &backup,
        renamed(&cluster, &db, &name, &beside),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let warnings = job["result"]["warnings"].to_string();
    assert!(warnings.contains(&alias), "the conflict is reported: {job}");
    assert_eq!(aliases(name.clone()).await, json!([alias]));
    assert_eq!(aliases(beside.clone()).await, json!([]));

    // The original dropped (Milvus 2.3 keeps its alias, naming nothing), restored renamed:
    // the alias follows.
    seed(&milvus.uri, &["drop-collection", &db, &name]).await;
    let moved = unique("moved");
    let job = restore(
        &app,
        &cluster,
        &backup,
        renamed(&cluster, &db, &name, &moved),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(aliases(moved).await, json!([alias]));
}

/// Zilliz's documented bodies work unchanged: restoreCollection without `dbName` and with
/// the `target…` field names, `UNLOADED` as a status; restoreCluster naming a registered
/// cluster by project and name (with `cuSize`), or saying how to make one exist.
async fn zilliz_documented_bodies_are_accepted(backend: Backend) {
    let milvus = shared_milvus();
    let (app, project, cluster) = on_shared_milvus(backend).await;
    let name = unique("zz");
    seed(&milvus.uri, &["create-rich", "default", &name, "10"]).await;
    let original = dump(&milvus.uri, None, "default", &name).await;
    let backup = collection_backup(&app, &cluster, "default", &name, BACKUP_WAIT).await;

    // As in Zilliz's restore-collection example: no dbName, targetCollection*.
    let target = format!("restore_{name}");
    let body = json!({"destClusterId": cluster, "dbCollections": [{"collections": [
        {"collectionName": name, "targetCollectionName": target,
         "targetCollectionStatus": "LOADED"}]}]});
    let job = restore(&app, &cluster, &backup, body).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let restored = dump(&milvus.uri, None, "default", &target).await;
    assert_eq!(restored["rows"], original["rows"]);
    assert_eq!(restored["loaded"], true);

    let body = json!({"destClusterId": cluster, "dbCollections": [{"collections": [
        {"collectionName": name, "destCollectionName": format!("{target}_u"),
         "destCollectionStatus": "UNLOADED"}]}]});
    let job = restore(&app, &cluster, &backup, body).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    assert_eq!(
        dump(&milvus.uri, None, "default", &format!("{target}_u")).await["loaded"],
        false
    );

    // A misspelt field: named, with the accepted ones listed.
    let path = format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection");
    let body = json!({"destClusterId": cluster, "dbCollections": [{"collections": [
        {"collectionName": name, "destCollectionNme": "x"}]}]});
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.admin_key), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("destCollectionNme") && message.contains("destCollectionName"),
        "{message}"
    );

    // restoreCluster as Zilliz documents it: the destination named by project and name.
    let path = format!("/v2/clusters/{cluster}/backups/{backup}/restoreCluster");
    let zilliz = |cu: i64| {
        json!({"projectId": project, "clusterName": "Dedicated-12", "cuSize": cu,
               "collectionStatus": "KEEP"})
    };
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.admin_key), Some(zilliz(2)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("register the destination"),
        "{answer}"
    );
    let dest = app
        .register_cluster(&project, "Dedicated-12", &milvus.uri, &milvus.storage)
        .await;
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.admin_key), Some(zilliz(7)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().starts_with("cuSize"),
        "{answer}"
    );
    // Found (it is the same Milvus, where the collection exists: the usual conflict).
    let registered_cu = app
        .admin(Method::GET, &format!("/v2/clusters/{dest}"), None)
        .await["cuSize"]
        .as_i64()
        .unwrap();
    let (status, answer) = app
        .call(
            Method::POST,
            &path,
            Some(&app.admin_key),
            Some(zilliz(registered_cu)),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains(&dest),
        "{answer}"
    );
}

/// A backup records the rows it holds after its deletes — deletes of existing ids and of ids
/// that never existed, a compaction, a deleted id inserted again, rows inserted and deleted
/// while the backup copies — equal to `count(*)` at its flush; a restore brings back exactly
/// that many, and fails naming both numbers when the recorded count is not what it imports.
async fn live_row_counts_are_exact(backend: Backend) {
    let milvus = shared_milvus();
    let barrier = tempfile::tempdir().unwrap();
    let pause = PausePoint {
        after_files: 1,
        dir: barrier.path().to_path_buf(),
    };
    let app = TestApp::spawn_with(backend, move |c| {
        c.backup.copy_parallelism = 1;
        c.test_hooks.backup_copy = Some(pause);
    })
    .await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "source", &milvus.uri, &milvus.storage)
        .await;
    let db = unique("db");
    let name = unique("counted");
    let at_flush: i64 = seed_output(&milvus.uri, &["create-counted", &db, &name])
        .await
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        at_flush, 296,
        "300 rows, 5 deleted (2 never existed), 1 back"
    );
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "COLLECTION",
                        "dbCollections": [{"dbName": db, "collectionNames": [name]}]})),
        )
        .await;
    // While the backup copies: 20 rows more and two deletes, after its flush.
    wait_for_file(&barrier.path().join("paused")).await;
    seed(&milvus.uri, &["insert-more", &db, &name, "5000", "20"]).await;
    std::fs::write(barrier.path().join("resume"), b"").unwrap();
    let job = wait_for_job(&app, created["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let backup = created["backupId"].as_str().unwrap().to_owned();
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup}"),
            None,
        )
        .await;
    assert_eq!(
        details["dbCollections"][0]["collections"][0]["rowCount"], at_flush,
        "{details}"
    );

    let copy = unique("copy");
    let job = restore(
        &app,
        &cluster,
        &backup,
        renamed(&cluster, &db, &name, &copy),
    )
    .await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let restored = seed_output(&milvus.uri, &["count-where", &db, &copy, "id >= 0"]).await;
    assert_eq!(restored.trim(), at_flush.to_string());

    // The manifest's count tampered with: the restore says what it imported and expected.
    let manifest = app.db.dir.path().join(format!(
        "data/regions/local/backups/{project}/{cluster}/{backup}/manifest.json"
    ));
    let mut recorded: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(recorded["collections"][0]["liveRowCount"], at_flush);
    recorded["collections"][0]["liveRowCount"] = json!(at_flush + 1);
    std::fs::write(&manifest, serde_json::to_vec(&recorded).unwrap()).unwrap();
    let tampered = unique("t");
    let job = restore(
        &app,
        &cluster,
        &backup,
        renamed(&cluster, &db, &name, &tampered),
    )
    .await;
    assert_eq!(job["status"], "FAILED", "{job}");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("{db}.{tampered}"))
            && reason.contains(&format!("imported {at_flush} rows"))
            && reason.contains(&format!("{} live rows", at_flush + 1)),
        "{job}"
    );
}

/// The upgrade path: a backup of Milvus 2.2.16 (a collection with an index, two partitions, a
/// dynamic field and deletes) restores into Milvus 2.3.5 with every row; a restore *into* the
/// 2.2 server, a version restores are not tested against, is refused up front unless the
/// caller overrides it. Postgres only, like the other private-Milvus tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_milvus_2_2_backup_restores_into_2_3() {
    let old = PrivateMilvus::start_2_2().await;
    let milvus = shared_milvus();
    let app = TestApp::spawn(Backend::Postgres).await;
    let project = app.create_project("p").await;
    let source = app
        .register_cluster(&project, "old", &old.uri, &old.storage)
        .await;
    let dest = app
        .register_cluster(&project, "new", &milvus.uri, &milvus.storage)
        .await;
    let db = unique("db");
    let name = unique("rich");
    seed_2_2(&old.uri, &["create-rich", &db, &name, "30"]).await;
    let original: Value =
        serde_json::from_str(seed_2_2(&old.uri, &["dump", &db, &name]).await.trim()).unwrap();
    let backup = collection_backup(&app, &source, &db, &name, BACKUP_WAIT).await;
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{source}/backups/{backup}"),
            None,
        )
        .await;
    assert_eq!(
        details["dbCollections"][0]["collections"][0]["rowCount"], 54,
        "60 rows, 6 deleted: {details}"
    );

    let job = restore(&app, &source, &backup, renamed(&dest, &db, &name, &name)).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let restored = dump(&milvus.uri, None, &db, &name).await;
    assert_eq!(restored["partitions"], original["partitions"]);
    assert_eq!(restored["indexes"], original["indexes"]);
    // 2.2's query leaves vectors out of `*`: compare the rest, and the vectors with the
    // values the seed wrote (id % 7 in every dimension).
    let without_vectors = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("vec");
                r
            })
            .collect()
    };
    assert_eq!(
        without_vectors(&restored["rows"]),
        without_vectors(&original["rows"])
    );
    for row in restored["rows"].as_array().unwrap() {
        let id = row["id"].as_i64().unwrap();
        let written = (id % 7) as f64;
        assert_eq!(row["vec"], json!(vec![written; 8]), "{row}");
    }

    // Into the 2.2 server: not a tested destination.
    let path = format!("/v2/clusters/{source}/backups/{backup}/restoreCollection");
    let body = |allow: bool| {
        json!({"destClusterId": source, "allowUntestedVersion": allow, "dbCollections": [
            {"dbName": db, "collections": [{"collectionName": name,
                                            "destCollectionName": format!("{name}_back")}]}]})
    };
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.admin_key), Some(body(false)))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("v2.2.16")
            && message.contains("2.3.x")
            && message.contains("allowUntestedVersion"),
        "{message}"
    );
    let (status, answer) = app
        .call(Method::POST, &path, Some(&app.admin_key), Some(body(true)))
        .await;
    assert_eq!(status, StatusCode::OK, "the override is honoured: {answer}");
}

on_both_backends!(
    live_row_counts_are_exact,
    partition_key_collection_restores_every_row,
    partition_key_collection_restores_on_the_s3_milvus,
    on_existing_and_meta_only_restores,
    aliases_follow_the_restored_collection,
    zilliz_documented_bodies_are_accepted,
);
