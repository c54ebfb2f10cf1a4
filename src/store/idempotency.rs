//! Idempotency records: the first answer to a write request sent with an `Idempotency-Key`,
//! kept for a window (24 h) so a retried request returns it instead of doing the work again.
//! A placeholder row (status 0) is inserted before the work starts, so two concurrent requests
//! with the same key cannot both run it.

use chrono::{DateTime, Utc};

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// 0 while the first request is still running.
    pub status_code: i32,
    pub response: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// No answer yet: this request does the work and then records its answer.
    Fresh,
    /// The same request was answered before: replay this.
    Replay { status_code: u16, response: String },
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key has not finished.
    InProgress,
}

impl Store {
    /// Claims `key` for this request, or says what was already recorded for it. Records older
    /// than `window_start` are forgotten first.
    pub async fn claim_idempotency(
        &self,
        scope: &str,
        route: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim> {
        const EXPIRE: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND idem_key = $3 AND created_at < $4";
        const INSERT: &str = "INSERT INTO idempotency_keys (scope, route, idem_key, request_hash, status_code, response, created_at) \
                              VALUES ($1, $2, $3, $4, 0, '', $5) ON CONFLICT (scope, route, idem_key) DO NOTHING";
        const SELECT: &str =
            "SELECT request_hash, status_code, response, created_at FROM idempotency_keys \
                              WHERE scope = $1 AND route = $2 AND idem_key = $3";
        let (inserted, existing): (u64, Option<IdempotencyRecord>) = on_pool!(&self.pool, p => {
            sqlx::query(EXPIRE).bind(scope).bind(route).bind(key).bind(window_start).execute(p).await?;
            let inserted = sqlx::query(INSERT)
                .bind(scope).bind(route).bind(key).bind(request_hash).bind(now)
                .execute(p).await?.rows_affected();
            let existing = if inserted == 0 {
                sqlx::query_as(SELECT).bind(scope).bind(route).bind(key).fetch_optional(p).await?
            } else {
                None
            };
            (inserted, existing)
        });
        Ok(match (inserted, existing) {
            (1, _) => IdempotencyClaim::Fresh,
            (_, None) => IdempotencyClaim::InProgress,
            (_, Some(r)) if r.request_hash != request_hash => IdempotencyClaim::Mismatch,
            (_, Some(r)) if r.status_code == 0 => IdempotencyClaim::InProgress,
            (_, Some(r)) => IdempotencyClaim::Replay {
                status_code: r.status_code as u16,
                response: r.response,
            },
        })
    }

    /// Records the answer of a claimed key.
    pub async fn complete_idempotency(
        &self,
        scope: &str,
        route: &str,
        key: &str,
        status_code: u16,
        response: &str,
    ) -> StoreResult<()> {
        const SQL: &str = "UPDATE idempotency_keys SET status_code = $4, response = $5 WHERE scope = $1 AND route = $2 AND idem_key = $3";
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(scope).bind(route).bind(key).bind(i32::from(status_code)).bind(response)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Forgets a claimed key whose request failed, so the client may retry it.
    pub async fn abandon_idempotency(
        &self,
        scope: &str,
        route: &str,
        key: &str,
    ) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND idem_key = $3 AND status_code = 0";
        on_pool!(&self.pool, p => sqlx::query(SQL).bind(scope).bind(route).bind(key).execute(p).await?.rows_affected());
        Ok(())
    }
}
