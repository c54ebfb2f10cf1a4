//! Clusters against a real Milvus: the shared instance for listing, and a private instance
//! that the test stops to see the cluster turn UNREACHABLE.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{
    seed, seed_as, shared_milvus, shared_s3, shared_s3_milvus, unique, Backend, PrivateMilvus,
    TestApp,
};

async fn registered_cluster_is_running_and_lists_live_collections(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let db = unique("db");
    let collection = unique("coll");
    seed(&milvus.uri, &["create-collection", &db, &collection, "5"]).await;
    seed(
        &milvus.uri,
        &["create-collection", "default", &collection, "0"],
    )
    .await;
    let id = app
        .register_cluster(&project, "live", &milvus.uri, &milvus.storage)
        .await;

    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await;
    assert_eq!(described["status"], "RUNNING", "{described}");
    assert!(
        described["milvusVersion"]
            .as_str()
            .unwrap()
            .starts_with("v2.3"),
        "{described}"
    );

    let listed = app.collections(&id).await;
    let pairs: Vec<(String, String)> = listed
        .iter()
        .map(|c| {
            (
                c["dbName"].as_str().unwrap().to_owned(),
                c["collectionName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&(db.clone(), collection.clone())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("default".to_owned(), collection.clone())),
        "{pairs:?}"
    );
    let entry = listed.iter().find(|c| c["dbName"] == db.as_str()).unwrap();
    // A string: JavaScript cannot hold a 64-bit id as a number.
    let collection_id: i64 = entry["collectionId"].as_str().unwrap().parse().unwrap();
    assert!(collection_id > 0, "{entry}");
    let first = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{id}/collections?pageSize=1"),
            None,
        )
        .await;
    assert_eq!(first["count"], listed.len(), "{first}");
    assert_eq!(first["pageSize"], 1, "{first}");
    assert_eq!(first["collections"].as_array().unwrap().len(), 1, "{first}");
}

/// Registration checks what it can reach: a storage that is not there or does not accept
/// the keys, and a Milvus that refuses the token, are each refused naming the field to fix,
/// and nothing is stored.
async fn registration_refuses_storage_and_tokens_that_do_not_work(backend: Backend) {
    let s3_milvus = shared_s3_milvus();
    let s3 = shared_s3();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let (milvus, storage) = s3_milvus.registration();
    // Flushed segments there, so a rootPath without binlogs is known to be wrong.
    let (db, flushed) = (unique("db"), unique("flushed"));
    seed_as(
        &s3_milvus.uri,
        Some(&s3_milvus.token),
        &["create-collection", &db, &flushed, "5"],
    )
    .await;
    let token = secrecy::SecretString::from(s3_milvus.token.clone());
    backstop::milvus::MilvusClient::new(
        &s3_milvus.uri,
        Some(&token),
        None,
        Duration::from_secs(30),
    )
    .unwrap()
    .flush_and_wait(&db, std::slice::from_ref(&flushed), Duration::from_secs(60))
    .await
    .unwrap();
    let register = |milvus: Value, storage: Value| {
        let app = &app;
        let body = json!({"clusterName": unique("c").replace('_', "-"), "projectId": project,
            "regionId": "local", "plan": "Dedicated", "cuSize": 1,
            "milvus": milvus, "storage": storage});
        async move {
            app.call(
                Method::POST,
                "/v2/clusters",
                Some(&app.admin_key),
                Some(body),
            )
            .await
        }
    };
    let with = |pointer: &str, value: Value| {
        let mut changed = storage.clone();
        *changed.pointer_mut(pointer).unwrap() = value;
        changed
    };
    let refusals = [
        (
            milvus.clone(),
            with("/bucket", json!("no-such-bucket")),
            "storage.bucket",
        ),
        (
            milvus.clone(),
            with("/secretAccessKey", json!("wrong")),
            "storage.secretAccessKey",
        ),
        (
            milvus.clone(),
            with("/accessKeyId", json!("AKIDUNKNOWN")),
            "storage.accessKeyId",
        ),
        (
            milvus.clone(),
            with("/endpoint", json!("http://127.0.0.1:1")),
            "storage.endpoint",
        ),
        (
            json!({"uri": s3_milvus.uri, "token": "root:wrong-password"}),
            storage.clone(),
            "milvus.token",
        ),
        (
            json!({"uri": s3_milvus.uri}),
            json!({"type": "local", "path": "/nonexistent/milvus/data"}),
            "storage.path",
        ),
        // Reachable, but not where this Milvus writes its binlogs.
        (
            milvus.clone(),
            with("/rootPath", json!("elsewhere")),
            "storage.rootPath",
        ),
    ];
    for (milvus, storage, field) in refusals {
        let (status, body) = register(milvus, storage).await;
        assert!(status.is_client_error(), "{field}: {status} {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{field}: {message}");
        assert!(
            !message.contains(&s3.secret_key),
            "no secret echoed: {message}"
        );
    }
    let listed = app.admin(Method::GET, "/v2/clusters", None).await;
    assert_eq!(listed["count"], 0, "nothing stored: {listed}");

    // The right ones register, and the cluster answers with its token.
    let (status, body) = register(milvus, storage).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["data"]["clusterId"].as_str().unwrap();
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await;
    assert_eq!(described["status"], "RUNNING", "{described}");
    assert_eq!(described["storageStatus"], "REACHABLE", "{described}");

    // Storage that goes away afterwards shows in describe.
    let dir = tempfile::tempdir().unwrap();
    let gone = app
        .register_cluster(
            &project,
            "gone",
            "http://127.0.0.1:1",
            dir.path().to_str().unwrap(),
        )
        .await;
    drop(dir);
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{gone}"), None)
        .await;
    assert_eq!(described["storageStatus"], "UNREACHABLE", "{described}");
    assert_eq!(described["status"], "UNREACHABLE", "{described}");
}

/// With `milvus.local_storage_roots` set, a local `storage.path` must lie under one of them,
/// links resolved: a link inside a root that points out of it is refused too. (A Milvus that
/// does not answer: only the storage is under test.)
async fn local_storage_is_confined_to_the_configured_roots(backend: Backend) {
    let milvus = shared_milvus();
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("milvus-a");
    std::fs::create_dir_all(&inside).unwrap();
    let escape = root.path().join("escape");
    std::os::unix::fs::symlink(&milvus.storage, &escape).unwrap();
    let roots = vec![root.path().to_path_buf()];
    let app = TestApp::spawn_with(backend, |c| c.milvus.local_storage_roots = roots).await;
    let project = app.create_project("p").await;
    let register = |path: String| {
        let body = json!({"clusterName": unique("c"), "projectId": project, "regionId": "local",
            "plan": "Dedicated", "cuSize": 2, "milvus": {"uri": "http://127.0.0.1:1"},
            "storage": {"type": "local", "path": path}});
        app.call(
            Method::POST,
            "/v2/clusters",
            Some(&app.admin_key),
            Some(body),
        )
    };
    for (path, status, mentions) in [
        (milvus.storage.clone(), 422, "milvus.local_storage_roots"),
        (
            escape.display().to_string(),
            422,
            "milvus.local_storage_roots",
        ),
        (format!("/{}", "a".repeat(4100)), 400, "at most 4096"),
    ] {
        let (got, body) = register(path).await;
        assert_eq!(got.as_u16(), status, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("storage.path"), "{message}");
        assert!(message.contains(mentions), "{message}");
    }
    let (got, body) = register(inside.display().to_string()).await;
    assert_eq!(
        got,
        StatusCode::OK,
        "an empty directory under the root: {body}"
    );
}

/// Lists the cluster's collections, expecting the service to say it could not reach the
/// Milvus (a 5xx); the message.
async fn listing_fails(app: &TestApp, cluster: &str) -> String {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v2/clusters/{cluster}/collections"),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert!(status.is_server_error(), "{status}: {body}");
    body["message"].as_str().unwrap().to_owned()
}

/// The outbound policy: a cluster may not point the service at a denied network (the cloud
/// metadata address by default), at registration or at any later connection, and a Milvus
/// that does not answer is described in our words, not the far side's.
async fn outbound_policy_keeps_clusters_off_denied_networks(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let register = |name: &str, uri: &str, storage: Value| {
        let body = json!({
            "clusterName": name, "projectId": project, "regionId": "local",
            "plan": "Dedicated", "cuSize": 2, "milvus": { "uri": uri }, "storage": storage
        });
        app.call(
            Method::POST,
            "/v2/clusters",
            Some(&app.admin_key),
            Some(body),
        )
    };
    let local = json!({"type": "local", "path": milvus.storage});
    for uri in [
        "http://169.254.169.254:19530",
        "http://[::ffff:169.254.169.254]:19530",
        "http://0.0.0.0:19530",
    ] {
        let (status, body) = register("meta", uri, local.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("milvus.uri:") && message.contains("outbound.deny"),
            "{message}"
        );
    }
    let s3 = json!({"type": "s3", "endpoint": "http://169.254.169.254", "bucket": "b",
                    "accessKeyId": "a", "secretAccessKey": "s"});
    let (status, body) = register("meta", &milvus.uri, s3).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("storage.endpoint:"),
        "{body}"
    );
    let clusters = app.admin(Method::GET, "/v2/clusters", None).await;
    assert_eq!(clusters["count"], 0, "nothing stored: {clusters}");

    // A cluster registered while its network was allowed is not reached once it is denied:
    // the same database served by a process whose policy denies loopback.
    let id = app
        .register_cluster(&project, "live", &milvus.uri, &milvus.storage)
        .await;
    let confined = app
        .spawn_beside(|c| c.outbound.deny.push("127.0.0.0/8".parse().unwrap()))
        .await;
    let described = confined
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await;
    assert_eq!(described["status"], "UNREACHABLE", "{described}");
    let message = listing_fails(&confined, &id).await;
    assert!(
        message.contains("outbound.deny") && message.contains("127.0.0.0/8"),
        "{message}"
    );

    // Something that is not a Milvus answers on the port: the error says so and repeats
    // nothing it sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nsecret-token")
                .await;
        }
    });
    let id = app
        .register_cluster(
            &project,
            "web",
            &format!("http://127.0.0.1:{port}"),
            &milvus.storage,
        )
        .await;
    let message = listing_fails(&app, &id).await;
    assert!(message.contains("did not answer"), "{message}");
    assert!(
        !message.contains("secret-token") && !message.contains("HTTP/1.1"),
        "{message}"
    );
}

/// Cluster lists reuse statuses probed a moment ago, but a list is read from the store first:
/// a deleted cluster is gone from the next list, whatever the cache holds.
async fn cached_statuses_never_outlive_their_cluster(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| c.milvus.status_cache_ms = 60_000).await;
    let project = app.create_project("p").await;
    let running = app
        .register_cluster(&project, "running", &milvus.uri, &milvus.storage)
        .await;
    // Nothing listens there: registered all the same, UNREACHABLE.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let away = app
        .register_cluster(
            &project,
            "away",
            &format!("http://127.0.0.1:{port}"),
            &milvus.storage,
        )
        .await;
    let statuses = |listed: &Value| -> Vec<(String, String)> {
        listed["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["clusterId"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let list = format!("/v2/clusters?projectId={project}");
    for _ in 0..2 {
        let listed = app.admin(Method::GET, &list, None).await;
        let mut got = statuses(&listed);
        got.sort();
        let mut want = vec![
            (running.clone(), "RUNNING".to_owned()),
            (away.clone(), "UNREACHABLE".to_owned()),
        ];
        want.sort();
        assert_eq!(got, want, "{listed}");
    }
    app.admin(Method::DELETE, &format!("/v2/clusters/{running}"), None)
        .await;
    let listed = app.admin(Method::GET, &list, None).await;
    assert_eq!(
        statuses(&listed),
        vec![(away.clone(), "UNREACHABLE".to_owned())],
        "{listed}"
    );
    assert_eq!(listed["count"], 1, "{listed}");
}

on_both_backends!(
    cached_statuses_never_outlive_their_cluster,
    local_storage_is_confined_to_the_configured_roots,
    registered_cluster_is_running_and_lists_live_collections,
    registration_refuses_storage_and_tokens_that_do_not_work,
    outbound_policy_keeps_clusters_off_denied_networks,
);

/// Starts a Milvus of its own, registers it, stops it, and expects UNREACHABLE quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_milvus_shows_unreachable_without_hanging() {
    let milvus = PrivateMilvus::start().await;
    let (uri, storage) = (milvus.uri.clone(), milvus.storage.clone());
    let app = TestApp::spawn(Backend::Postgres).await;
    let project = app.create_project("p").await;
    let id = app
        .register_cluster(&project, "private", &uri, &storage)
        .await;
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await;
    assert_eq!(described["status"], "RUNNING", "{described}");

    assert!(milvus.stop());
    let started_at = Instant::now();
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await;
    let took = started_at.elapsed();
    assert_eq!(described["status"], "UNREACHABLE", "{described}");
    // The probe deadline (1.5 s in tests) bounds the answer, whatever the network does.
    assert!(took < Duration::from_secs(5), "describe took {took:?}");
    let (status, json) = app
        .call(
            Method::GET,
            &format!("/v2/clusters/{id}/collections"),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{json}");
    assert_eq!(json["code"], 90502);
    assert!(json["message"].as_str().unwrap().contains(&id), "{json}");
}
