//! Black-box HTTP tests against the service on port 0: the role matrix, bad input, limits,
//! secrets, and the operations endpoints. Every test runs on SQLite and on Postgres.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{s3_region, shared_s3, Backend, TestApp};
use backstop::config::StorageConfig;

/// A cluster address nothing listens on: describe answers UNREACHABLE at once.
const DEAD_MILVUS: &str = "http://127.0.0.1:1";

/// An empty directory: a valid local `storage.path` for a cluster that has no data yet.
fn empty_dir() -> String {
    let dir = std::env::temp_dir().join(crate::support::unique("backstop-empty"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

struct Keys {
    owner: String,
    admin: String,
    read_write: String,
    read_only: String,
    other_project_admin: String,
    custom_reader: String,
}

struct Fixture {
    app: TestApp,
    keys: Keys,
    project: String,
}

async fn fixture(backend: Backend) -> Fixture {
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("main").await;
    let other = app.create_project("other").await;
    app.admin(
        Method::POST,
        "/v2/roles",
        Some(json!({"roleName": "clusterViewer", "privileges": ["cluster.read"]})),
    )
    .await;
    let keys = Keys {
        owner: app.admin_key.clone(),
        admin: app.create_key(&project, "ADMIN").await,
        read_write: app.create_key(&project, "READ_WRITE").await,
        read_only: app.create_key(&project, "READ_ONLY").await,
        other_project_admin: app.create_key(&other, "ADMIN").await,
        custom_reader: app.create_key(&project, "clusterViewer").await,
    };
    Fixture { app, keys, project }
}

/// Expected statuses, in the order owner, ADMIN, READ_WRITE, READ_ONLY, other project's ADMIN,
/// custom role with only cluster.read.
type Row = [u16; 6];

async fn role_matrix(backend: Backend) {
    let f = fixture(backend).await;
    let app = &f.app;
    let keys = [
        ("owner", &f.keys.owner),
        ("ADMIN", &f.keys.admin),
        ("READ_WRITE", &f.keys.read_write),
        ("READ_ONLY", &f.keys.read_only),
        ("other project ADMIN", &f.keys.other_project_admin),
        ("custom clusterViewer", &f.keys.custom_reader),
    ];
    let new_cluster = |name: &str| {
        json!({"clusterName": name, "projectId": f.project, "regionId": "local", "plan": "Dedicated",
               "cuSize": 1, "milvus": {"uri": DEAD_MILVUS}, "storage": {"type": "local", "path": empty_dir()}})
    };
    // One cluster per key that deletes, so each delete has something to delete.
    let mut victims = Vec::new();
    for i in 0..keys.len() {
        victims.push(
            app.register_cluster(&f.project, &format!("victim{i}"), DEAD_MILVUS, &empty_dir())
                .await,
        );
    }
    let cluster = app
        .register_cluster(&f.project, "shared", DEAD_MILVUS, &empty_dir())
        .await;

    let cases: Vec<(Method, String, Option<Value>, Row)> = vec![
        (
            Method::POST,
            "/v2/projects".into(),
            Some(json!({"projectName": "P"})),
            [200, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v2/projects".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/v2/apiKeys".into(),
            Some(json!({"name": "n"})),
            [200, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v2/apiKeys".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::DELETE,
            "/v2/apiKeys/key-doesnotexist".into(),
            None,
            [404, 403, 403, 403, 403, 403],
        ),
        (
            Method::POST,
            "/v2/roles".into(),
            Some(json!({"roleName": "R", "privileges": ["job.read"]})),
            [200, 403, 403, 403, 403, 403],
        ),
        (
            Method::GET,
            "/v2/roles".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            "/v2/regions".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/v2/clusters".into(),
            Some(new_cluster("{i}")),
            [200, 200, 200, 403, 404, 403],
        ),
        (
            Method::GET,
            "/v2/clusters".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v2/clusters/{cluster}"),
            None,
            [200, 200, 200, 200, 404, 200],
        ),
        (
            Method::GET,
            format!("/v2/clusters/{cluster}/collections"),
            None,
            [502, 502, 502, 502, 404, 502],
        ),
        (
            Method::DELETE,
            "/v2/clusters/{victim}".into(),
            None,
            [200, 200, 200, 403, 404, 403],
        ),
    ];
    for (method, path, body, expected) in cases {
        for (i, (role, key)) in keys.iter().enumerate() {
            let path = path.replace("{victim}", &victims[i]);
            // Names must be unique per call where the call creates something.
            let body = body.clone().map(|b| {
                let text = b
                    .to_string()
                    .replace("\"P\"", &format!("\"P{i}\""))
                    .replace("\"R\"", &format!("\"R{i}\""))
                    .replace("\"n\"", &format!("\"n{i}\""))
                    .replace("\"{i}\"", &format!("\"made{i}\""));
                serde_json::from_str::<Value>(&text).unwrap()
            });
            let (status, json) = app.call(method.clone(), &path, Some(key), body).await;
            assert_eq!(
                status.as_u16(),
                expected[i],
                "{method} {path} as {role}: {json}"
            );
            if status == StatusCode::OK {
                assert_eq!(json["code"], 0);
            } else {
                assert_eq!(json["code"], 90000 + expected[i] as u64, "{json}");
                assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
        // Without a key, or with an unknown one, every /v2 route answers 401.
        for key in [None, Some("bsk_not_a_key")] {
            let (status, json) = app.call(method.clone(), &path, key, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {key:?}: {json}"
            );
            assert_eq!(json["code"], 90401);
        }
    }
}

async fn listings_show_only_visible_projects(backend: Backend) {
    let f = fixture(backend).await;
    let app = &f.app;
    app.register_cluster(&f.project, "mine", DEAD_MILVUS, &empty_dir())
        .await;
    let (_, other_view) = app
        .call(
            Method::GET,
            "/v2/clusters",
            Some(&f.keys.other_project_admin),
            None,
        )
        .await;
    assert_eq!(other_view["data"]["count"], 0, "{other_view}");
    let (_, projects) = app
        .call(
            Method::GET,
            "/v2/projects",
            Some(&f.keys.other_project_admin),
            None,
        )
        .await;
    assert_eq!(projects["data"]["count"], 1);
    assert_eq!(projects["data"]["projects"][0]["projectName"], "other");
    let (_, mine) = app
        .call(Method::GET, "/v2/clusters", Some(&f.keys.read_only), None)
        .await;
    assert_eq!(mine["data"]["count"], 1);
    assert_eq!(mine["data"]["clusters"][0]["status"], "UNREACHABLE");
    let (_, keys) = app
        .call(Method::GET, "/v2/apiKeys", Some(&f.keys.read_only), None)
        .await;
    assert_eq!(
        keys["data"]["count"], 1,
        "a member sees only its own key: {keys}"
    );
    // A deleted key stops working at once.
    let key_id = keys["data"]["apiKeys"][0]["apiKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.admin(Method::DELETE, &format!("/v2/apiKeys/{key_id}"), None)
        .await;
    let (status, _) = app
        .call(Method::GET, "/v2/regions", Some(&f.keys.read_only), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Sends a raw body with a content type and returns status and JSON.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(&app.admin_key)
        .body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let json: Value = response.json().await.expect("error bodies are JSON");
    (status, json)
}

fn assert_error(status: StatusCode, json: &Value, expected: u16, mentions: &str) {
    assert_eq!(status.as_u16(), expected, "{json}");
    assert_eq!(json["code"], 90000 + expected as u64, "{json}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
}

async fn bad_input_gets_clear_errors(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.server.body_limit_bytes = 4096).await;
    let project = app.create_project("p").await;
    let valid = || {
        json!({"clusterName": "c1", "projectId": project, "regionId": "local", "plan": "Dedicated",
               "cuSize": 1, "milvus": {"uri": DEAD_MILVUS}, "storage": {"type": "local", "path": empty_dir()}})
    };
    let with = |pointer: &str, value: Value| {
        let mut body = valid();
        *body.pointer_mut(pointer).unwrap() = value;
        body.to_string()
    };
    let json_ct = Some("application/json");
    let post = |body: String| raw(&app, Method::POST, "/v2/clusters", json_ct, body);

    // The body of POST /v2/clusters, and the status and field each mistake is told with.
    let mut unknown_field = valid();
    unknown_field["clusterNmae"] = json!("typo");
    let mut missing = valid();
    missing.as_object_mut().unwrap().remove("regionId");
    let bodies: Vec<(String, u16, &str)> = vec![
        ("{\"clusterName\": ".into(), 400, "not valid JSON"),
        (with("/cuSize", json!("two")), 400, "cuSize"),
        (with("/cuSize", json!(0)), 400, "cuSize"),
        (with("/plan", json!("Huge")), 400, "plan"),
        (
            with("/clusterName", json!("x".repeat(65))),
            400,
            "clusterName",
        ),
        (with("/clusterName", json!("has space")), 400, "clusterName"),
        (
            with("/milvus/uri", json!("localhost:19530")),
            400,
            "milvus.uri",
        ),
        (
            with("/storage", json!({"type": "s3", "bucket": "b"})),
            400,
            "storage",
        ),
        (
            with("/storage/path", json!("relative/path")),
            400,
            "storage.path",
        ),
        (
            with("/storage/path", json!("/var/lib/../../etc")),
            400,
            "'..' segments",
        ),
        // Readable, but not a Milvus data directory.
        (
            with("/storage/path", json!("/etc")),
            422,
            "neither empty nor a Milvus data directory",
        ),
        (
            with("/storage/path", json!("/proc/self")),
            422,
            "storage.path",
        ),
        (with("/regionId", json!("mars")), 400, "regionId"),
        (with("/projectId", json!("proj-nope")), 404, "proj-nope"),
        (unknown_field.to_string(), 400, "clusterNmae"),
        (missing.to_string(), 400, "regionId"),
        (with("/clusterName", json!("x".repeat(5000))), 413, "4096"),
        // A NUL is valid JSON but never a valid name, on either database.
        (
            with("/clusterName", json!("a\u{0}b")),
            400,
            "clusterName contains a NUL",
        ),
        (
            with("/milvus/uri", json!("http://h\u{0}:1")),
            400,
            "milvus.uri contains a NUL",
        ),
    ];
    for (body, expected, mentions) in bodies {
        let (s, j) = post(body.clone()).await;
        assert_error(s, &j, expected, mentions);
    }
    let (s, j) = raw(
        &app,
        Method::POST,
        "/v2/clusters",
        None,
        valid().to_string(),
    )
    .await;
    assert_error(s, &j, 400, "Content-Type");

    // Other routes, as the org OWNER: (method, path, body, status, what the message names).
    let calls: Vec<(Method, &str, Option<Value>, u16, &str)> = vec![
        (
            Method::GET,
            "/v2/clusters/in01-0000000000000000",
            None,
            404,
            "in01-0000000000000000",
        ),
        (
            Method::GET,
            "/v2/clusters?pageSize=0",
            None,
            400,
            "pageSize",
        ),
        (
            Method::GET,
            "/v2/projects?pageSize=abc",
            None,
            400,
            "pageSize",
        ),
        (
            Method::GET,
            "/v2/projects?currentPage=0",
            None,
            400,
            "currentPage",
        ),
        (
            Method::POST,
            "/v2/projects",
            Some(json!({"projectName": ""})),
            400,
            "projectName",
        ),
        (
            Method::POST,
            "/v2/projects",
            Some(json!({"projectName": "p"})),
            409,
            "projectName",
        ),
        (
            Method::POST,
            "/v2/roles",
            Some(json!({"roleName": "r", "privileges": ["backup.everything"]})),
            400,
            "privileges",
        ),
        (
            Method::POST,
            "/v2/roles",
            Some(json!({"roleName": "ADMIN", "privileges": ["job.read"]})),
            409,
            "built-in",
        ),
        (
            Method::POST,
            "/v2/apiKeys",
            Some(json!({"name": "k", "projectRoles": [{"projectId": project, "role": "GOD"}]})),
            400,
            "projectRoles[0].role",
        ),
        (
            Method::POST,
            "/v2/apiKeys",
            Some(json!({"name": "k", "orgRole": "KING"})),
            400,
            "orgRole",
        ),
        (Method::PUT, "/v2/projects", None, 405, "PUT"),
        (Method::GET, "/v2/clusters/in01-%00", None, 400, "NUL"),
        (Method::GET, "/v2/backups?clusterId=a%00b", None, 400, "NUL"),
        (Method::GET, "/v2/jobs?clusterId=%00", None, 400, "NUL"),
        (
            Method::GET,
            "/v2/nothing-here",
            None,
            404,
            "/v2/nothing-here",
        ),
    ];
    for (method, path, body, expected, mentions) in calls {
        let (s, j) = app.call(method, path, Some(&app.admin_key), body).await;
        assert_error(s, &j, expected, mentions);
    }

    // The last org OWNER key cannot be deleted, not even by itself.
    let keys = app.admin(Method::GET, "/v2/apiKeys", None).await;
    let owner = keys["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["orgRole"] == "OWNER")
        .unwrap_or_else(|| panic!("an OWNER key is listed: {keys}"));
    let path = format!("/v2/apiKeys/{}", owner["apiKeyId"].as_str().unwrap());
    let (s, j) = app
        .call(Method::DELETE, &path, Some(&app.admin_key), None)
        .await;
    assert_error(s, &j, 409, "last key with orgRole OWNER");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("backstop admin-key"),
        "{j}"
    );

    // The same name twice in one project is a conflict; in another project it is fine.
    let (s, _) = post(valid().to_string()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, j) = post(valid().to_string()).await;
    assert_error(s, &j, 409, "clusterName");
}

async fn rate_limit_answers_429_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.server.rate_limit_per_second = 1;
        c.server.rate_limit_burst = 3;
    })
    .await;
    for _ in 0..3 {
        let (status, _) = app
            .call(Method::GET, "/v2/regions", Some(&app.admin_key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = app
        .client
        .get(format!("{}/v2/regions", app.base))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["code"], 90429);
    // Another route has its own budget.
    let (status, _) = app
        .call(Method::GET, "/v2/projects", Some(&app.admin_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn secrets_are_never_returned_or_stored_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    // A real bucket (the registration checks it), with the run's S3 keys.
    let (region, _) = s3_region("unused").await;
    let StorageConfig::S3(bucket) = region.storage else {
        unreachable!("s3_region makes S3 storage")
    };
    let s3 = shared_s3();
    let body = json!({"clusterName": "s3c", "projectId": project, "regionId": "local", "plan": "Dedicated", "cuSize": 1,
        "milvus": {"uri": DEAD_MILVUS, "token": "root:TopSecretMilvus"},
        "storage": {"type": "s3", "endpoint": s3.endpoint, "bucket": bucket.bucket, "rootPath": "files",
                    "accessKeyId": s3.access_key, "secretAccessKey": s3.secret_key}});
    let secrets = [
        "TopSecretMilvus",
        s3.secret_key.as_str(),
        s3.access_key.as_str(),
    ];
    let id = app.admin(Method::POST, "/v2/clusters", Some(body)).await["clusterId"]
        .as_str()
        .unwrap()
        .to_owned();
    let described = app
        .admin(Method::GET, &format!("/v2/clusters/{id}"), None)
        .await
        .to_string();
    let listed = app
        .admin(Method::GET, "/v2/clusters", None)
        .await
        .to_string();
    for text in [&described, &listed] {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    assert!(described.contains("\"rootPath\":\"files\""), "{described}");
    // At rest: read the row back from the database itself.
    let store = backstop::store::Store::connect(&app.db.url, 1)
        .await
        .unwrap();
    let row = store.get_cluster(&id).await.unwrap().unwrap();
    let storage = serde_json::to_string(&row.storage).unwrap();
    for secret in secrets {
        assert!(!row.secrets.contains(secret) && !storage.contains(secret));
    }
    // API keys: only the hash is stored.
    let key = app.create_key(&project, "ADMIN").await;
    let (keys, _) = store
        .list_api_keys(backstop::store::Page::all())
        .await
        .unwrap();
    assert!(keys
        .iter()
        .all(|k| k.key_hash != key && !k.key_hash.contains(&key)));
    assert!(keys
        .iter()
        .any(|k| k.key_hash == backstop::crypto::hash_api_key(&key)));
}

async fn restart_keeps_data_and_makes_no_second_admin_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("kept").await;
    let config = crate::support::test_config(&app.db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let again = backstop::Application::build(config, listener)
        .await
        .unwrap();
    assert_eq!(
        again.bootstrap_key(),
        None,
        "the first admin key is made once"
    );
    let projects = again.state().store.get_project(&project).await.unwrap();
    assert!(projects.is_some());
}

async fn operations_endpoints(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get = |path: &'static str| app.client.get(format!("{}{path}", app.base)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        health.headers().contains_key("x-request-id"),
        "every answer carries a request id"
    );
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    app.admin(Method::GET, "/v2/regions", None).await;
    // Nothing stored costs 0, not the -0.0 of an empty float sum.
    let usage = app.admin(Method::GET, "/v2/usage/backups", None).await;
    assert_eq!(usage["totalCost"].to_string(), "0.0", "{usage}");
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            r#"backstop_http_requests_total{method="GET",route="/v2/regions",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("backstop_http_request_duration_seconds_bucket"));
}

/// Every operation the OpenAPI document lists is served and requires a key; every route we
/// serve is in the document.
async fn openapi_lists_exactly_the_served_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let spec: Value = app
        .client
        .get(format!("{}/v2/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    let expected = [
        "DELETE /v2/apiKeys/{apiKeyId}",
        "DELETE /v2/clusters/{clusterId}",
        "DELETE /v2/clusters/{clusterId}/backups/{backupId}",
        "GET /v2/apiKeys",
        "GET /v2/backups",
        "GET /v2/clusters",
        "GET /v2/clusters/{clusterId}",
        "GET /v2/clusters/{clusterId}/backups/policy",
        "GET /v2/clusters/{clusterId}/backups/{backupId}",
        "GET /v2/clusters/{clusterId}/collections",
        "GET /v2/jobs",
        "GET /v2/jobs/{jobId}",
        "GET /v2/jobs/{jobId}/events",
        "GET /v2/projects",
        "GET /v2/regions",
        "GET /v2/roles",
        "GET /v2/usage/backups",
        "POST /v2/apiKeys",
        "POST /v2/clusters",
        "POST /v2/clusters/{clusterId}/backups/create",
        "POST /v2/clusters/{clusterId}/backups/policy",
        "POST /v2/clusters/{clusterId}/backups/{backupId}/restoreCluster",
        "POST /v2/clusters/{clusterId}/backups/{backupId}/restoreCollection",
        "POST /v2/clusters/{clusterId}/backups/{backupId}/verify",
        "POST /v2/jobs/{jobId}/cancel",
        "POST /v2/projects",
        "POST /v2/roles",
    ];
    let ops = ["GET /healthz", "GET /metrics", "GET /readyz"];
    let mut all: Vec<&str> = expected.iter().chain(ops.iter()).copied().collect();
    all.sort();
    assert_eq!(operations, all);
    for op in &ops {
        let (method, path) = op.split_once(' ').unwrap();
        let response = app
            .client
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{op} needs no key");
        assert_eq!(spec["paths"][path]["get"]["security"], json!([]), "{op}");
    }

    // The rules every operation follows are in the document: the envelope, the errors (429
    // with Retry-After), the Idempotency-Key header on writes, the paging bounds.
    let create = &spec["paths"]["/v2/clusters/{clusterId}/backups/create"]["post"];
    let ok_schema = &create["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        ok_schema["required"],
        json!(["code", "data"]),
        "{ok_schema}"
    );
    assert_eq!(
        ok_schema["properties"]["data"]["$ref"],
        "#/components/schemas/BackupCreated"
    );
    for status in [
        "400", "401", "403", "404", "409", "413", "422", "429", "500", "502", "503",
    ] {
        assert!(
            create["responses"][status].is_object(),
            "create lacks {status}"
        );
    }
    assert!(create["responses"]["429"]["headers"]["Retry-After"].is_object());
    let error = &spec["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["code", "message"]));
    let header_names = |op: &Value| -> Vec<String> {
        op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(header_names(create), ["Idempotency-Key"]);
    assert!(
        header_names(&spec["paths"]["/v2/apiKeys"]["post"]).is_empty(),
        "keys are not replayed"
    );
    let list = spec["paths"]["/v2/backups"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let page_size = list.iter().find(|p| p["name"] == "pageSize").unwrap();
    assert_eq!(
        (
            page_size["schema"]["minimum"].as_i64(),
            page_size["schema"]["maximum"].as_i64()
        ),
        (Some(1), Some(100))
    );
    let current = list.iter().find(|p| p["name"] == "currentPage").unwrap();
    assert_eq!(current["schema"]["minimum"], 1);
    assert!(
        spec["paths"]["/v2/backups"]["get"]["responses"]["409"].is_null(),
        "reads do not conflict"
    );
    let method = &spec["components"]["schemas"]["CreationMethod"]["enum"];
    assert_eq!(
        method,
        &json!(["MANUAL", "AUTO"]),
        "enums in the API's case"
    );
    for op in &expected {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{apiKeyId}", "key-x")
            .replace("{clusterId}", "in01-x")
            .replace("{jobId}", "job-x")
            .replace("{backupId}", "backup1_x");
        let (status, json) = app.call(method.parse().unwrap(), &path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{op}: {json}");
    }
}

async fn failed_authentications_are_limited_per_client_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.server.failed_auth_per_second = 1;
        c.server.failed_auth_burst = 3;
    })
    .await;
    // A valid key takes nothing from the address's budget.
    for _ in 0..5 {
        let (status, _) = app
            .call(Method::GET, "/v2/projects", Some(&app.admin_key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    for i in 0..3 {
        let (status, json) = app
            .call(
                Method::GET,
                "/v2/projects",
                Some(&format!("bsk_guess_{i}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    }
    // Used up: refused before any lookup, whatever the key.
    let response = app
        .client
        .get(format!("{}/v2/projects", app.base))
        .bearer_auth("bsk_guess_3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["code"], 90429);
}

/// Filters, names and lists that used to be taken as they came.
async fn filters_role_names_and_key_roles_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    // /v2/jobs validates its filters as /v2/backups does.
    let (s, j) = app
        .call(
            Method::GET,
            "/v2/jobs?type=BAKUP",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_error(s, &j, 400, "type 'BAKUP' is not a job type");
    assert!(
        j["message"].as_str().unwrap().contains("DELETE_BACKUP"),
        "{j}"
    );
    let (s, _) = app
        .call(
            Method::GET,
            "/v2/jobs?type=BACKUP",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // A custom role may not take a built-in's name, nor another's, in any case.
    for name in ["admin", "Read_Only", "READ_WRITE"] {
        let (s, j) = app
            .call(
                Method::POST,
                "/v2/roles",
                Some(&app.admin_key),
                Some(json!({"roleName": name, "privileges": ["backup.read"]})),
            )
            .await;
        assert_error(s, &j, 409, "built-in role");
    }
    app.admin(
        Method::POST,
        "/v2/roles",
        Some(json!({"roleName": "Ops", "privileges": ["backup.read"]})),
    )
    .await;
    let (s, j) = app
        .call(
            Method::POST,
            "/v2/roles",
            Some(&app.admin_key),
            Some(json!({"roleName": "ops", "privileges": ["job.read"]})),
        )
        .await;
    assert_error(s, &j, 409, "already exists as 'Ops'");

    // One role per project in a key.
    let (s, j) = app
        .call(
            Method::POST,
            "/v2/apiKeys",
            Some(&app.admin_key),
            Some(json!({"name": "twice", "projectRoles": [
                {"projectId": project, "role": "READ_ONLY"},
                {"projectId": project, "role": "ADMIN"}]})),
        )
        .await;
    assert_error(s, &j, 400, "projectRoles[1].projectId");

    // Roles and regions page like every other list.
    let roles = app
        .admin(Method::GET, "/v2/roles?pageSize=2&currentPage=2", None)
        .await;
    assert_eq!(roles["count"], 4, "three built-in and Ops: {roles}");
    assert_eq!(roles["currentPage"], 2);
    assert_eq!(roles["pageSize"], 2);
    let names: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["roleName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["READ_ONLY", "Ops"]);
    let regions = app.admin(Method::GET, "/v2/regions", None).await;
    assert_eq!(regions["count"], 1, "{regions}");
    assert_eq!(regions["currentPage"], 1);
    assert_eq!(regions["pageSize"], 10);
    let (s, j) = app
        .call(
            Method::GET,
            "/v2/regions?pageSize=0",
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_error(s, &j, 400, "pageSize");
}

on_both_backends!(
    role_matrix,
    failed_authentications_are_limited_per_client_address,
    filters_role_names_and_key_roles_are_checked,
    listings_show_only_visible_projects,
    bad_input_gets_clear_errors,
    rate_limit_answers_429_with_retry_after,
    secrets_are_never_returned_or_stored_in_clear,
    restart_keeps_data_and_makes_no_second_admin_key,
    operations_endpoints,
    openapi_lists_exactly_the_served_routes,
);
