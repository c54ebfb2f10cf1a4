//! A Milvus that speaks TLS (one-way, `--tls-mode 1`) with a certificate signed by a private
//! CA: registered with that CA's certificate, backed up and restored over TLS; registrations
//! that could never connect are refused naming `milvus.tlsCaPem`.
//!
//! One backend: what is under test is the connection to Milvus, not the metadata store, and
//! each run starts a private Milvus.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    collection_backup, seed_tls, unique, wait_for_job, Backend, PrivateMilvus, TestApp, TestCa,
};

#[tokio::test]
async fn milvus_over_tls_is_reached_with_its_ca() {
    let ca = TestCa::generate();
    let stranger = TestCa::generate();
    let milvus = PrivateMilvus::start_tls(&ca).await;
    assert!(milvus.uri.starts_with("https://"), "{}", milvus.uri);
    let app = TestApp::spawn(Backend::Sqlite).await;
    let project = app.create_project("p").await;
    let body = |milvus_input: Value| {
        json!({
            "clusterName": unique("tls"), "projectId": project, "regionId": "local",
            "plan": "Dedicated", "cuSize": 2, "milvus": milvus_input,
            "storage": {"type": "local", "path": milvus.storage}
        })
    };

    // Refused, naming the field: no CA (the server's issuer is unknown to the service),
    // another CA, a CA beside an http:// URI, text that is no certificate.
    let plain_uri = milvus.uri.replacen("https://", "http://", 1);
    for (input, status) in [
        (json!({"uri": milvus.uri}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"uri": milvus.uri, "tlsCaPem": stranger.ca_pem}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"uri": plain_uri, "tlsCaPem": ca.ca_pem}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"uri": milvus.uri, "tlsCaPem": "not a certificate"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, answer) = app
            .call(
                Method::POST,
                "/v2/clusters",
                Some(&app.admin_key),
                Some(body(input.clone())),
            )
            .await;
        assert_eq!(got, status, "{input}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("milvus.tlsCaPem"), "{input}: {answer}");
        // The certificates given are never echoed.
        for pem in [&ca.ca_pem, &stranger.ca_pem] {
            assert!(!message.contains(pem.lines().nth(1).unwrap()), "{answer}");
        }
    }
    let listed = app.admin(Method::GET, "/v2/clusters", None).await;
    assert_eq!(listed["count"], 0, "nothing stored: {listed}");

    // With its CA: probed, backed up and restored over TLS.
    let registered = app
        .admin(
            Method::POST,
            "/v2/clusters",
            Some(body(json!({"uri": milvus.uri, "tlsCaPem": ca.ca_pem}))),
        )
        .await;
    let cluster = registered["clusterId"].as_str().unwrap().to_owned();
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{cluster}"), None)
        .await;
    assert_eq!(described["status"], "RUNNING", "{described}");
    assert!(
        !described
            .to_string()
            .contains(ca.ca_pem.lines().nth(1).unwrap()),
        "{described}"
    );

    seed_tls(
        &milvus.uri,
        &ca,
        &["create-collection", "default", "docs", "300"],
    )
    .await;
    let limit = std::time::Duration::from_secs(120);
    let backup = &collection_backup(&app, &cluster, "default", "docs", limit).await;
    let started = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/{backup}/restoreCollection"),
            Some(
                json!({"destClusterId": cluster, "dbCollections": [{"dbName": "default",
                "collections": [{"collectionName": "docs", "destCollectionName": "docs_back"}]}]}),
            ),
        )
        .await;
    let job = wait_for_job(&app, started["jobId"].as_str().unwrap()).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    let dump = |name: &'static str| {
        let (uri, ca) = (&milvus.uri, &ca);
        async move {
            let text = seed_tls(uri, ca, &["dump", "default", name]).await;
            serde_json::from_str::<Value>(text.trim()).unwrap()
        }
    };
    let (source, restored) = (dump("docs").await, dump("docs_back").await);
    assert_eq!(
        source["rows"].as_array().map(Vec::len),
        Some(300),
        "{source}"
    );
    assert_eq!(restored["rows"], source["rows"]);
}
