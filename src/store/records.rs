//! What the store reads and writes. `*Row` types are the raw columns; the public types are
//! decoded (enums parsed, JSON columns opened) so nothing above the store handles raw text.

use chrono::{DateTime, Utc};

use super::{from_json, StoreError, StoreResult};
use crate::domain::access::{OrgRole, Privilege, ProjectRole};
pub use crate::domain::clusters::{ClusterStorage, Plan};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub key_hash: String,
    pub org_role: OrgRole,
    pub project_roles: Vec<ProjectRole>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    name: String,
    key_hash: String,
    org_role: String,
    project_roles: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(row: ApiKeyRow) -> StoreResult<ApiKey> {
        Ok(ApiKey {
            org_role: row.org_role.parse().map_err(StoreError::Corrupt)?,
            project_roles: from_json("api_keys.project_roles", &row.project_roles)?,
            id: row.id,
            name: row.name,
            key_hash: row.key_hash,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomRole {
    pub name: String,
    pub privileges: Vec<Privilege>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct RoleRow {
    name: String,
    privileges: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<RoleRow> for CustomRole {
    type Error = StoreError;
    fn try_from(row: RoleRow) -> StoreResult<CustomRole> {
        Ok(CustomRole {
            privileges: from_json("roles.privileges", &row.privileges)?,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Region {
    pub id: String,
    pub cloud_provider: String,
    /// `local` or `s3`.
    pub storage_type: String,
    pub price_per_gb_month: f64,
}

/// A registered Milvus deployment. `storage` is the non-secret part of where it keeps its
/// binlogs; `secrets` holds the sealed credentials (Milvus token, storage keys), opened only
/// by `crate::clusters` with the service's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub region_id: String,
    pub plan: Plan,
    pub cu_size: i64,
    pub milvus_uri: String,
    pub storage: ClusterStorage,
    pub secrets: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ClusterRow {
    id: String,
    project_id: String,
    name: String,
    region_id: String,
    plan: String,
    cu_size: i64,
    milvus_uri: String,
    storage: String,
    secrets: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<ClusterRow> for Cluster {
    type Error = StoreError;
    fn try_from(row: ClusterRow) -> StoreResult<Cluster> {
        Ok(Cluster {
            plan: row.plan.parse().map_err(StoreError::Corrupt)?,
            id: row.id,
            project_id: row.project_id,
            name: row.name,
            region_id: row.region_id,
            cu_size: row.cu_size,
            milvus_uri: row.milvus_uri,
            storage: from_json("clusters.storage", &row.storage)?,
            secrets: row.secrets,
            created_at: row.created_at,
        })
    }
}
