//! Idempotency records: the first answer to a write request sent with an `Idempotency-Key`,
//! kept for a window (24 h) so a retried request returns it instead of doing the work again.
//! A placeholder row (status 0) is inserted before the work starts, so two concurrent requests
//! with the same key cannot both run it. The placeholder is held under a lease its request
//! renews; one whose lease lapsed (the process died mid-request) is taken over, with the same
//! `seed`, by the next request with that key.

use chrono::{DateTime, Utc};

use super::{Store, StoreResult};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    /// 0 while the first request is still running.
    pub status_code: i32,
    pub response: String,
    pub created_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub seed: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// No answer yet: this request does the work, renews its lease, then records its answer.
    /// `taken_over` says an earlier request with this key died before answering: what it
    /// committed carries ids derived from `seed`.
    Fresh { seed: String, taken_over: bool },
    /// The same request was answered before: replay this.
    Replay { status_code: u16, response: String },
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key has not finished (and its lease is live).
    InProgress,
}

/// What a request claims a key with.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest<'a> {
    pub scope: &'a str,
    pub route: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    /// Seeds the ids of a fresh request.
    pub seed: &'a str,
}

impl Store {
    /// Claims the key for this request, or says what was already recorded for it. Records
    /// older than `window_start` are forgotten first; a placeholder whose lease ended before
    /// `now` is taken over.
    pub async fn claim_idempotency(
        &self,
        req: &IdempotencyRequest<'_>,
        now: DateTime<Utc>,
        window_start: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<IdempotencyClaim> {
        const EXPIRE: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND idem_key = $3 AND created_at < $4";
        const INSERT: &str = "INSERT INTO idempotency_keys (scope, route, idem_key, request_hash, status_code, response, created_at, lease_until, seed) \
                              VALUES ($1, $2, $3, $4, 0, '', $5, $6, $7) ON CONFLICT (scope, route, idem_key) DO NOTHING";
        const SELECT: &str = "SELECT request_hash, status_code, response, created_at, lease_until, seed FROM idempotency_keys \
                              WHERE scope = $1 AND route = $2 AND idem_key = $3";
        // Placeholders written before leases existed have none: they count as lapsed.
        const TAKE_OVER: &str = "UPDATE idempotency_keys SET lease_until = $5 \
                                 WHERE scope = $1 AND route = $2 AND idem_key = $3 AND request_hash = $4 \
                                 AND status_code = 0 AND (lease_until IS NULL OR lease_until < $6)";
        let (scope, route, key) = (req.scope, req.route, req.key);
        let (inserted, existing): (u64, Option<IdempotencyRecord>) = on_pool!(&self.pool, p => {
            sqlx::query(EXPIRE).bind(scope).bind(route).bind(key).bind(window_start).execute(p).await?;
            let inserted = sqlx::query(INSERT)
                .bind(scope).bind(route).bind(key).bind(req.request_hash).bind(now)
                .bind(lease_until).bind(req.seed)
                .execute(p).await?.rows_affected();
            let existing = if inserted == 0 {
                sqlx::query_as(SELECT).bind(scope).bind(route).bind(key).fetch_optional(p).await?
            } else {
                None
            };
            (inserted, existing)
        });
        let record = match (inserted, existing) {
            (1, _) => {
                return Ok(IdempotencyClaim::Fresh {
                    seed: req.seed.to_owned(),
                    taken_over: false,
                })
            }
            (_, None) => return Ok(IdempotencyClaim::InProgress),
            (_, Some(r)) => r,
        };
        if record.request_hash != req.request_hash {
            return Ok(IdempotencyClaim::Mismatch);
        }
        if record.status_code != 0 {
            return Ok(IdempotencyClaim::Replay {
                status_code: record.status_code as u16,
                response: record.response,
            });
        }
        if record.lease_until.is_some_and(|until| until >= now) {
            return Ok(IdempotencyClaim::InProgress);
        }
        let taken: u64 = on_pool!(&self.pool, p => sqlx::query(TAKE_OVER)
            .bind(scope).bind(route).bind(key).bind(req.request_hash).bind(lease_until).bind(now)
            .execute(p).await?.rows_affected());
        Ok(if taken == 1 {
            IdempotencyClaim::Fresh {
                seed: record.seed,
                taken_over: true,
            }
        } else {
            // Another request took it over first.
            IdempotencyClaim::InProgress
        })
    }

    /// Extends the lease of a claimed key whose request is still running.
    pub async fn renew_idempotency(
        &self,
        scope: &str,
        route: &str,
        key: &str,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<()> {
        const SQL: &str = "UPDATE idempotency_keys SET lease_until = $4 WHERE scope = $1 AND route = $2 AND idem_key = $3 AND status_code = 0";
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(scope).bind(route).bind(key).bind(lease_until)
            .execute(p).await?.rows_affected());
        Ok(())
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
        const SQL: &str = "UPDATE idempotency_keys SET status_code = $4, response = $5, lease_until = NULL WHERE scope = $1 AND route = $2 AND idem_key = $3";
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
