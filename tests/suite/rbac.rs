//! Users, roles and grants in CLUSTER backups of an authorization-enabled Milvus, restored by
//! restoreCluster into a second one: missing users get new passwords, shown once. COLLECTION
//! backups hold the grants on their collections, restored by restoreCollection when asked.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{
    collection_backup, seed_as, shared_s3_milvus, unique, wait_for_job_within, Backend,
    PrivateMilvus, TestApp,
};

const ROOT: &str = "root:Milvus";
/// A whole cluster is backed up and restored: the suite's other collections come too.
/// The cluster restore below takes every collection the other tests left on the shared
/// S3 Milvus (a 16-partition one imports in ~20 s here): minutes, on a busy machine.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(400);

async fn rbac_of(uri: &str) -> Value {
    let text = seed_as(uri, Some(ROOT), &["rbac"]).await;
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("rbac: {e}: {text}"))
}

async fn can_login(uri: &str, user: &str, password: &str) -> bool {
    let output = tokio::process::Command::new(crate::support::milvus_python())
        .arg(crate::support::repo_root().join("tests/support/milvus_seed.py"))
        .args([uri, "can-login", user, password])
        .output()
        .await
        .unwrap();
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_restore_brings_users_roles_and_grants() {
    let source = shared_s3_milvus();
    let dest = PrivateMilvus::start_with(&["--authorization-enabled", "true"]).await;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let collection = unique("c");
    let user = unique("u");
    let role = unique("r");
    let old_password = "OldPassword123";
    seed_as(
        &source.uri,
        Some(ROOT),
        &["create-collection", &db, &collection, "10"],
    )
    .await;
    seed_as(
        &source.uri,
        Some(ROOT),
        &["create-rbac", &user, old_password, &role, &db, &collection],
    )
    .await;
    let cluster = app
        .register_in(&project, "source", "local", source.registration())
        .await;
    let dest_cluster = app
        .register_in(
            &project,
            "dest",
            "local",
            (
                json!({"uri": dest.uri, "token": ROOT}),
                json!({"type": "local", "path": dest.storage}),
            ),
        )
        .await;

    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    let backup = created["backupId"].as_str().unwrap().to_owned();
    let job = wait_for_job_within(&app, created["jobId"].as_str().unwrap(), LIMIT).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup}"),
            None,
        )
        .await;
    let recorded = &details["rbac"];
    assert!(
        recorded["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == &json!(user)),
        "{recorded}"
    );
    let recorded_role = recorded["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!(role))
        .unwrap_or_else(|| panic!("role {role} recorded: {recorded}"));
    assert_eq!(recorded_role["users"], json!([user]));
    assert_eq!(
        recorded_role["grants"],
        json!([{"objectType": "Collection", "objectName": collection, "privilege": "Search", "dbName": db}])
    );
    assert!(
        !details.to_string().contains(old_password),
        "no password in a backup"
    );

    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCluster"),
            Some(json!({"destClusterId": dest_cluster, "collectionStatus": "RELEASE"})),
        )
        .await;
    let job_id = started["jobId"].as_str().unwrap().to_owned();
    // Polling the running job (GET, as wait_for_job does) does not use the passwords up: they
    // are shown to the first read after the job ended.
    let job = wait_for_job_within(&app, &job_id, LIMIT).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let users = job["result"]["users"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ours = users
        .iter()
        .find(|u| u["userName"] == json!(user))
        .unwrap_or_else(|| panic!("{user} created: {job}"));
    let password = ours["password"]
        .as_str()
        .unwrap_or_else(|| panic!("the first read shows the password: {job}"))
        .to_owned();
    // Shown once: the next read, the list and the event stream have names only.
    let again = app
        .admin(Method::GET, &format!("/v2/jobs/{job_id}"), None)
        .await;
    assert!(again["result"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["userName"] == json!(user)));
    assert!(!again.to_string().contains(&password), "{again}");
    let listed = app.admin(Method::GET, "/v2/jobs?pageSize=100", None).await;
    assert!(!listed.to_string().contains(&password));
    // At rest the result is sealed.
    let store = backstop::store::Store::connect(&app.db.url, 1)
        .await
        .unwrap();
    let row = store.get_job(&job_id).await.unwrap().unwrap();
    assert!(!row.result.unwrap_or_default().contains(&password));

    assert!(
        can_login(&dest.uri, &user, &password).await,
        "the new password works"
    );
    assert!(
        !can_login(&dest.uri, &user, old_password).await,
        "the old one does not"
    );
    let restored = rbac_of(&dest.uri).await;
    assert!(
        restored["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == &json!(user)),
        "{restored}"
    );
    let restored_role = &restored["roles"][&role];
    assert_eq!(restored_role["users"], json!([user]), "{restored}");
    assert_eq!(
        restored_role["grants"],
        json!([["Collection", collection, "Search", db]]),
        "{restored}"
    );
    // The collection came too.
    let listed = app.collections(&dest_cluster).await;
    assert!(
        listed
            .iter()
            .any(|c| c["collectionName"] == collection.as_str()),
        "{listed:?}"
    );
    drop(dest);
}

/// A COLLECTION backup records the grants on its collections (not users, not other
/// collections' grants); restoreCollection with `restoreRbac` grants them on the restored,
/// renamed collection, and without it grants nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_restore_brings_the_grants_on_its_collections() {
    let milvus = shared_s3_milvus();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let project = app.create_project("p").await;
    let (db, other_db) = (unique("db"), unique("db"));
    let (collection, ungranted) = (unique("c"), unique("c"));
    let (user, role) = (unique("u"), unique("r"));
    for name in [&collection, &ungranted] {
        seed_as(
            &milvus.uri,
            Some(ROOT),
            &["create-collection", &db, name, "10"],
        )
        .await;
    }
    seed_as(
        &milvus.uri,
        Some(ROOT),
        &["create-rbac", &user, "Password123", &role, &db, &collection],
    )
    .await;
    let cluster = app
        .register_in(&project, "source", "local", milvus.registration())
        .await;
    let backup = collection_backup(&app, &cluster, &db, &collection, LIMIT).await;
    let details = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup}"),
            None,
        )
        .await;
    assert_eq!(
        details["rbac"],
        json!({"users": [], "roles": [{"name": role, "users": [], "grants": [
            {"objectType": "Collection", "objectName": collection, "privilege": "Search", "dbName": db}]}]}),
        "{details}"
    );

    let restore = |renamed: &str, rbac: Option<bool>| {
        let mut body = json!({"destClusterId": cluster, "dbCollections": [{"dbName": db,
            "destDbName": other_db, "collections": [{"collectionName": collection,
            "destCollectionName": renamed}]}]});
        if let Some(rbac) = rbac {
            body["restoreRbac"] = json!(rbac);
        }
        body
    };
    let path = format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection");
    let (plain, granted) = (unique("plain"), unique("granted"));
    for (renamed, rbac) in [(&plain, None), (&granted, Some(true))] {
        let started = app
            .admin(Method::POST, &path, Some(restore(renamed, rbac)))
            .await;
        let job = wait_for_job_within(&app, started["jobId"].as_str().unwrap(), LIMIT).await;
        assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    }
    let now = rbac_of(&milvus.uri).await;
    assert_eq!(
        now["roles"][&role]["grants"],
        json!([
            ["Collection", collection, "Search", db],
            ["Collection", granted, "Search", other_db],
        ]),
        "the grant follows the renamed collection only when asked: {now}"
    );
    assert_eq!(now["roles"][&role]["users"], json!([user]), "{now}");

    // Asked of a backup that holds no grant on what it restores: refused up front.
    let bare = collection_backup(&app, &cluster, &db, &ungranted, LIMIT).await;
    let (status, answer) = app
        .call(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{bare}/restoreCollection"),
            Some(&app.admin_key),
            Some(json!({"destClusterId": cluster, "restoreRbac": true,
                        "dbCollections": [{"dbName": db, "collections": [
                            {"collectionName": ungranted, "destCollectionName": unique("x")}]}]})),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("restoreRbac"),
        "{answer}"
    );
}
