//! Clusters against a real Milvus: the shared instance for listing, and a private instance
//! that the test stops to see the cluster turn UNREACHABLE.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::on_both_backends;
use crate::support::{seed, shared_milvus, unique, Backend, PrivateMilvus, TestApp};

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

    let listed = app
        .admin(Method::GET, &format!("/v2/clusters/{id}/collections"), None)
        .await;
    let pairs: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
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
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dbName"] == db.as_str())
        .unwrap();
    assert!(entry["collectionId"].as_i64().unwrap() > 0);
}

on_both_backends!(registered_cluster_is_running_and_lists_live_collections);

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
