//! What several benches share: their knobs from the environment and a fresh Postgres
//! database per run. Each bench includes it with `mod support;` and uses what it needs.
#![allow(dead_code)]

/// `name` from the environment as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A new, empty database on the Postgres at `admin`; its URL.
pub async fn fresh_database(admin: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres not reachable at {admin}: {e}; start it (scripts/test does)")
        });
    let name = format!("bs_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

/// A Backstop server's API as a bench drives it: every answer must be `code` 0.
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, key: String) -> Api {
        Api {
            base,
            key,
            http: reqwest::Client::new(),
        }
    }

    /// The answer's `data`; panics on any other code, naming the request.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["code"], 0, "{method} {path}: {answer}");
        answer["data"].clone()
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, path, None).await
    }
}
