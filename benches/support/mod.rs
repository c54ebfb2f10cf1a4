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
