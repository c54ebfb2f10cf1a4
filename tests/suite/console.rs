//! The web console's files as the binary serves them (the pages themselves are tested in a
//! real browser by tests/browser, run by scripts/test).

use reqwest::header;
use reqwest::StatusCode;

use crate::support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| plain.get(format!("{}{path}", app.base));

    let root = get("/").send().await.unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()[header::LOCATION], "/console/");

    let index = get("/console/").send().await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    let headers = index.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"));
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let body = index.text().await.unwrap();
    assert!(body.contains("/console/app.js"), "{body}");

    // Modules load with a JavaScript type (browsers refuse modules served otherwise).
    let script = get("/console/app.js").send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );

    // An unchanged file is revalidated for free.
    let etag = headers[header::ETAG].clone();
    let again = get("/console/")
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A missing file is a clear 404 in the API's envelope, not the index page.
    let missing = get("/console/nope.js").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let error: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(error["code"], 90404);
    assert!(error["message"].as_str().unwrap().contains("nope.js"));
}
