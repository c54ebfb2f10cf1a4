//! The metadata store: one `Store` with domain-level methods over either Postgres (production,
//! many replicas) or SQLite (the embedded default).
//!
//! Both databases run the same SQL text (`$N` placeholders work on both, ids and timestamps are
//! made in Rust, JSON is TEXT), so each method is written once and `on_pool!` instantiates it
//! for each driver with full type checking — no `sqlx::Any`. What really differs per database
//! (connect options, migrations, the job claim, constraint names) lives in `postgres.rs` /
//! `sqlite.rs`. One conformance suite (`tests/suite/store.rs`, `tests/suite/store_backups.rs`)
//! runs against both.

/// Runs the same expression against whichever pool the store holds.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::store::Pool::Postgres($p) => $body,
            $crate::store::Pool::Sqlite($p) => $body,
        }
    };
}

mod backups;
mod events;
mod idempotency;
mod jobs;
mod policies;
mod postgres;
mod records;
mod sqlite;

pub use backups::{
    BackedUpCollection, Backup, BackupCopy, BackupFilter, CreateBackupError, Held, NewBackup,
};
use chrono::{DateTime, Utc};

use crate::domain::access::OrgRole;
pub use idempotency::{IdempotencyClaim, IdempotencyRecord, IdempotencyRequest};
pub use jobs::{Job, JobFilter, JobStatus, Lease, NewJob, Outcome, Progress};
pub use policies::{CrossRegionCopy, Policy};
pub use records::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A named unique constraint refused the write.
    #[error("unique constraint {0} violated")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The named unique constraints of both schemas, as `StoreError::Conflict` names them (SQLite
/// reports columns; `sqlite::unique_constraint_name` maps them to these).
pub const UNIQUE_CONSTRAINTS: &[&str] = &[
    "projects_pkey",
    "projects_name_key",
    "api_keys_pkey",
    "api_keys_key_hash_key",
    "roles_pkey",
    "clusters_pkey",
    "clusters_project_name_key",
    "jobs_pkey",
    "jobs_dedupe_key_key",
    "backups_pkey",
    "backups_cluster_seq_key",
    "backups_cluster_name_key",
    "backups_one_manual_creating",
    "backup_copies_pkey",
];

/// Turns the violation of one named constraint into the caller's error (realworld's
/// `on_constraint`): the one way a caller reads a conflict, so a conflict on another
/// constraint is never mistaken for it.
pub trait OnConstraint<T> {
    fn on_constraint<E: From<StoreError>>(
        self,
        constraint: &str,
        err: impl FnOnce() -> E,
    ) -> Result<T, E>;
}

impl<T> OnConstraint<T> for StoreResult<T> {
    fn on_constraint<E: From<StoreError>>(
        self,
        constraint: &str,
        err: impl FnOnce() -> E,
    ) -> Result<T, E> {
        match self {
            Err(StoreError::Conflict(name)) if name == constraint => Err(err()),
            other => other.map_err(E::from),
        }
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(err: StoreError) -> Self {
        crate::error::Error::internal(err)
    }
}

impl StoreError {
    /// A failed write, with a unique violation named by its constraint (on both databases).
    pub fn from_write(err: sqlx::Error) -> StoreError {
        conflict_or(err)
    }
}

/// Maps a unique violation to `Conflict(constraint)` so callers match on constraint names, not
/// on error text.
fn conflict_or(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let name = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| sqlite::unique_constraint_name(db.message()));
            return StoreError::Conflict(name);
        }
    }
    StoreError::Database(err)
}

#[derive(Clone, Debug)]
pub enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A page request: `current_page` from 1, `page_size` 1..=100 (validated at the HTTP edge).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub current_page: u32,
    pub page_size: u32,
}

impl Page {
    pub fn all() -> Page {
        Page {
            current_page: 1,
            page_size: 10_000,
        }
    }
    fn limit(self) -> i64 {
        i64::from(self.page_size)
    }
    fn offset(self) -> i64 {
        i64::from(self.current_page.saturating_sub(1)) * i64::from(self.page_size)
    }
}

/// A listed row with the count of every row the list's filter matches (`COUNT(*) OVER ()`).
#[derive(sqlx::FromRow)]
struct Counted<T> {
    #[sqlx(flatten)]
    row: T,
    total_count: i64,
}

/// The SQL that a list query appends to its columns to carry the count of all matches.
const TOTAL_COUNT: &str = "COUNT(*) OVER () AS total_count";

/// One page of a list and the count of all its matches, from one query that binds its
/// filters once (`fetch(limit, offset)`, selecting `TOTAL_COUNT` beside the columns). A page
/// past the end has no row to carry the count; then the first row is fetched for it.
async fn paged<R, Fut>(page: Page, fetch: impl Fn(i64, i64) -> Fut) -> StoreResult<(Vec<R>, u64)>
where
    Fut: std::future::Future<Output = StoreResult<Vec<Counted<R>>>>,
{
    let rows = fetch(page.limit(), page.offset()).await?;
    let total = match rows.first() {
        Some(first) => first.total_count,
        None if page.offset() > 0 => fetch(1, 0).await?.first().map_or(0, |r| r.total_count),
        None => 0,
    };
    Ok((rows.into_iter().map(|r| r.row).collect(), total as u64))
}

/// What `Store::delete_api_key` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDeletion {
    Deleted,
    NotFound,
    /// Refused: it is the last org OWNER key.
    LastOwner,
}

/// Which projects a listing may show: all of them (org owner) or only these.
#[derive(Debug, Clone)]
pub enum Visible {
    All,
    Only(Vec<String>),
}

impl Visible {
    /// A JSON array of the visible ids for `IN (SELECT value FROM json_each($n))`-style filters,
    /// or `None` for "no filter".
    fn as_json(&self) -> Option<String> {
        match self {
            Visible::All => None,
            Visible::Only(ids) => Some(serde_json::to_string(ids).expect("strings serialize")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    events: std::sync::Arc<events::JobEvents>,
    #[cfg(feature = "test-hooks")]
    hooks: std::sync::Arc<crate::test_hooks::StoreHooks>,
}

impl Store {
    /// Connects to `postgres://...` or `sqlite://...` and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Store> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(postgres::connect(url, max_connections).await?)
        } else {
            Pool::Sqlite(sqlite::connect(url, max_connections).await?)
        };
        let store = Store {
            pool,
            events: Default::default(),
            #[cfg(feature = "test-hooks")]
            hooks: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Holds every `create_backup` in its task-rule window with `hook` (tests only).
    #[cfg(feature = "test-hooks")]
    pub fn set_task_rule_window(&self, hook: Option<crate::test_hooks::TaskRuleWindow>) {
        *self
            .hooks
            .task_rule_window
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = hook;
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Postgres(p) => postgres::migrate(p).await,
            Pool::Sqlite(p) => sqlite::migrate(p).await,
        }
    }

    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(&self.pool, p => sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(&self.pool, p => p.close().await)
    }

    // ----- projects -------------------------------------------------------------------------

    pub async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        const SQL: &str =
            "INSERT INTO projects (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)";
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&project.id)
            .bind(&project.name)
            .bind(project.created_at)
            .execute(p)
            .await
            .map_err(conflict_or)?.rows_affected());
        Ok(())
    }

    pub async fn get_project(&self, id: &str) -> StoreResult<Option<Project>> {
        const SQL: &str = "SELECT id, name, created_at FROM projects WHERE id = $1";
        Ok(on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await?))
    }

    pub async fn list_projects(
        &self,
        visible: &Visible,
        page: Page,
    ) -> StoreResult<(Vec<Project>, u64)> {
        const FILTER: &str =
            "($1 IS NULL OR id IN (SELECT value FROM json_array_elements_text(CAST($1 AS json))))";
        let filter = self.adapt_json_filter(FILTER);
        let list = format!(
            "SELECT id, name, created_at, {TOTAL_COUNT} FROM projects WHERE {filter} \
             ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let ids = visible.as_json();
        paged(page, |limit, offset| {
            let (list, ids) = (&list, &ids);
            async move {
                Ok(on_pool!(&self.pool, p => sqlx::query_as(list)
                    .bind(ids)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(p)
                    .await?))
            }
        })
        .await
    }

    /// `json_array_elements_text(CAST($1 AS json))` is Postgres; SQLite spells it `json_each($1)`.
    fn adapt_json_filter(&self, sql: &str) -> String {
        match self.pool {
            Pool::Postgres(_) => sql.to_owned(),
            Pool::Sqlite(_) => sql.replace(
                "SELECT value FROM json_array_elements_text(CAST($1 AS json))",
                "SELECT value FROM json_each($1)",
            ),
        }
    }

    // ----- API keys -------------------------------------------------------------------------

    pub async fn insert_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO api_keys (id, name, key_hash, org_role, project_roles, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $6)";
        let roles = serde_json::to_string(&key.project_roles).expect("roles serialize");
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&key.id)
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(key.org_role.as_str())
            .bind(&roles)
            .bind(key.created_at)
            .execute(p)
            .await
            .map_err(conflict_or)?.rows_affected());
        Ok(())
    }

    /// Creates `key` only if no first key was ever made; true when this call made it. Safe when
    /// several replicas start at once: the single `bootstrap` row decides.
    pub async fn bootstrap_api_key(&self, key: &ApiKey) -> StoreResult<bool> {
        const MARK: &str = "INSERT INTO bootstrap (id, api_key_id, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";
        const KEY: &str = "INSERT INTO api_keys (id, name, key_hash, org_role, project_roles, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $6)";
        let roles = serde_json::to_string(&key.project_roles).expect("roles serialize");
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let marked = sqlx::query(MARK)
                .bind(&key.id)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if marked == 0 {
                return Ok(false);
            }
            sqlx::query(KEY)
                .bind(&key.id)
                .bind(&key.name)
                .bind(&key.key_hash)
                .bind(key.org_role.as_str())
                .bind(&roles)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await
                .map_err(conflict_or)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        const SQL: &str = "SELECT id, name, key_hash, org_role, project_roles, created_at FROM api_keys WHERE key_hash = $1";
        let row: Option<ApiKeyRow> =
            on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(key_hash).fetch_optional(p).await?);
        row.map(ApiKey::try_from).transpose()
    }

    pub async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        const SQL: &str = "SELECT id, name, key_hash, org_role, project_roles, created_at FROM api_keys WHERE id = $1";
        let row: Option<ApiKeyRow> =
            on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await?);
        row.map(ApiKey::try_from).transpose()
    }

    pub async fn list_api_keys(&self, page: Page) -> StoreResult<(Vec<ApiKey>, u64)> {
        const SQL: &str =
            "SELECT id, name, key_hash, org_role, project_roles, created_at FROM api_keys \
                           ORDER BY created_at, id LIMIT $1 OFFSET $2";
        const COUNT: &str = "SELECT COUNT(*) FROM api_keys";
        let (rows, total): (Vec<ApiKeyRow>, i64) = on_pool!(&self.pool, p => (
            sqlx::query_as(SQL).bind(page.limit()).bind(page.offset()).fetch_all(p).await?,
            sqlx::query_scalar(COUNT).fetch_one(p).await?,
        ));
        let keys = rows
            .into_iter()
            .map(ApiKey::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((keys, total as u64))
    }

    /// Deletes a key, unless it is the last org OWNER key (an instance nobody could
    /// administer). The count and the delete are one step: a per-instance lock on Postgres,
    /// the single write lock on SQLite.
    pub async fn delete_api_key(&self, id: &str) -> StoreResult<KeyDeletion> {
        const ROLE: &str = "SELECT org_role FROM api_keys WHERE id = $1";
        const OWNERS: &str = "SELECT COUNT(*) FROM api_keys WHERE org_role = 'OWNER'";
        const DELETE: &str = "DELETE FROM api_keys WHERE id = $1";
        let postgres = matches!(self.pool, Pool::Postgres(_));
        let begin = if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
        on_pool!(&self.pool, p => {
            let mut tx = p.begin_with(begin).await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('api_keys:owners'))")
                    .execute(&mut *tx)
                    .await?;
            }
            let role: Option<String> = sqlx::query_scalar(ROLE).bind(id).fetch_optional(&mut *tx).await?;
            let Some(role) = role else {
                return Ok(KeyDeletion::NotFound);
            };
            if role == OrgRole::Owner.as_str() {
                let owners: i64 = sqlx::query_scalar(OWNERS).fetch_one(&mut *tx).await?;
                if owners <= 1 {
                    return Ok(KeyDeletion::LastOwner);
                }
            }
            sqlx::query(DELETE).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(KeyDeletion::Deleted)
        })
    }

    // ----- custom roles ---------------------------------------------------------------------

    pub async fn insert_role(&self, role: &CustomRole) -> StoreResult<()> {
        const SQL: &str =
            "INSERT INTO roles (name, privileges, created_at, updated_at) VALUES ($1, $2, $3, $3)";
        let privileges = serde_json::to_string(&role.privileges).expect("privileges serialize");
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&role.name)
            .bind(&privileges)
            .bind(role.created_at)
            .execute(p)
            .await
            .map_err(conflict_or)?.rows_affected());
        Ok(())
    }

    pub async fn get_role(&self, name: &str) -> StoreResult<Option<CustomRole>> {
        const SQL: &str = "SELECT name, privileges, created_at FROM roles WHERE name = $1";
        let row: Option<RoleRow> =
            on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(name).fetch_optional(p).await?);
        row.map(CustomRole::try_from).transpose()
    }

    pub async fn list_roles(&self) -> StoreResult<Vec<CustomRole>> {
        const SQL: &str = "SELECT name, privileges, created_at FROM roles ORDER BY name";
        let rows: Vec<RoleRow> = on_pool!(&self.pool, p => sqlx::query_as(SQL).fetch_all(p).await?);
        rows.into_iter().map(CustomRole::try_from).collect()
    }

    // ----- regions --------------------------------------------------------------------------

    /// Makes the regions table mirror the configuration (regions are defined in config; the
    /// table lets later rows refer to them and keeps their history).
    pub async fn sync_regions(&self, regions: &[Region], now: DateTime<Utc>) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO regions (id, cloud_provider, storage_type, price_per_gb_month, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $5) \
                           ON CONFLICT (id) DO UPDATE SET cloud_provider = excluded.cloud_provider, \
                           storage_type = excluded.storage_type, price_per_gb_month = excluded.price_per_gb_month, \
                           updated_at = excluded.updated_at";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            for region in regions {
                sqlx::query(SQL)
                    .bind(&region.id)
                    .bind(&region.cloud_provider)
                    .bind(&region.storage_type)
                    .bind(region.price_per_gb_month)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_regions(&self) -> StoreResult<Vec<Region>> {
        const SQL: &str =
            "SELECT id, cloud_provider, storage_type, price_per_gb_month FROM regions ORDER BY id";
        Ok(on_pool!(&self.pool, p => sqlx::query_as(SQL).fetch_all(p).await?))
    }

    // ----- clusters -------------------------------------------------------------------------

    pub async fn insert_cluster(&self, cluster: &Cluster) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO clusters (id, project_id, name, region_id, plan, cu_size, milvus_uri, storage, secrets, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)";
        on_pool!(&self.pool, p => sqlx::query(SQL)
            .bind(&cluster.id)
            .bind(&cluster.project_id)
            .bind(&cluster.name)
            .bind(&cluster.region_id)
            .bind(cluster.plan.as_str())
            .bind(cluster.cu_size)
            .bind(&cluster.milvus_uri)
            .bind(serde_json::to_string(&cluster.storage).expect("storage serializes"))
            .bind(&cluster.secrets)
            .bind(cluster.created_at)
            .execute(p)
            .await
            .map_err(conflict_or)?.rows_affected());
        Ok(())
    }

    pub async fn get_cluster(&self, id: &str) -> StoreResult<Option<Cluster>> {
        const SQL: &str = "SELECT id, project_id, name, region_id, plan, cu_size, milvus_uri, storage, secrets, created_at FROM clusters WHERE id = $1";
        let row: Option<ClusterRow> =
            on_pool!(&self.pool, p => sqlx::query_as(SQL).bind(id).fetch_optional(p).await?);
        row.map(Cluster::try_from).transpose()
    }

    /// The cluster registered as `name` in `project_id` (names are unique per project).
    pub async fn find_cluster_by_name(
        &self,
        project_id: &str,
        name: &str,
    ) -> StoreResult<Option<Cluster>> {
        const SQL: &str = "SELECT id, project_id, name, region_id, plan, cu_size, milvus_uri, storage, secrets, created_at FROM clusters WHERE project_id = $1 AND name = $2";
        let row: Option<ClusterRow> = on_pool!(&self.pool, p => sqlx::query_as(SQL)
            .bind(project_id)
            .bind(name)
            .fetch_optional(p)
            .await?);
        row.map(Cluster::try_from).transpose()
    }

    pub async fn list_clusters(
        &self,
        visible: &Visible,
        project_id: Option<&str>,
        page: Page,
    ) -> StoreResult<(Vec<Cluster>, u64)> {
        const FILTER: &str = "($1 IS NULL OR project_id IN (SELECT value FROM json_array_elements_text(CAST($1 AS json)))) \
                              AND ($2 IS NULL OR project_id = $2)";
        let filter = self.adapt_json_filter(FILTER);
        let list = format!(
            "SELECT id, project_id, name, region_id, plan, cu_size, milvus_uri, storage, secrets, created_at, \
             {TOTAL_COUNT} FROM clusters WHERE {filter} ORDER BY created_at, id LIMIT $3 OFFSET $4"
        );
        let ids = visible.as_json();
        let (rows, total) = paged(page, |limit, offset| {
            let (list, ids) = (&list, &ids);
            async move {
                Ok(
                    on_pool!(&self.pool, p => sqlx::query_as::<_, Counted<ClusterRow>>(list)
                    .bind(ids)
                    .bind(project_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(p)
                    .await?),
                )
            }
        })
        .await?;
        let clusters = rows
            .into_iter()
            .map(Cluster::try_from)
            .collect::<StoreResult<_>>()?;
        Ok((clusters, total))
    }

    pub async fn delete_cluster(&self, id: &str) -> StoreResult<bool> {
        const SQL: &str = "DELETE FROM clusters WHERE id = $1";
        let done =
            on_pool!(&self.pool, p => sqlx::query(SQL).bind(id).execute(p).await?.rows_affected());
        Ok(done > 0)
    }
}

/// Decodes a JSON TEXT column, naming the column when it is not what we wrote.
fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
