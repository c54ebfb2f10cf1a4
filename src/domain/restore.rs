//! Restore rules with no I/O: what a restore job does (its plan) and how many shards a
//! destination cluster allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const RESTORE_COLLECTION_JOB: &str = "RESTORE_COLLECTION";
pub const RESTORE_CLUSTER_JOB: &str = "RESTORE_CLUSTER";

/// What a restore does when its destination collection exists already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnExisting {
    /// Refuse the restore (409 before it starts); the default.
    #[default]
    Fail,
    /// Drop the existing collection and restore in its place, once every object the restore
    /// reads has been verified.
    Drop,
    /// Leave the existing collection as it is and restore the others.
    Skip,
}

/// One collection to restore: where it comes from in the backup, where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTarget {
    pub db_name: String,
    pub collection_name: String,
    pub dest_db_name: String,
    pub dest_collection_name: String,
    /// Load the restored collection.
    pub load: bool,
    #[serde(default)]
    pub on_existing: OnExisting,
    /// Schema, partitions, indexes and aliases only: no rows are imported.
    #[serde(default)]
    pub meta_only: bool,
}

/// The payload of a restore job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePlan {
    pub dest_cluster_id: String,
    /// The region whose copy of the backup is read (the backup's own, or a cross-region copy
    /// in the destination's region).
    pub source_region_id: String,
    pub targets: Vec<RestoreTarget>,
    /// Recreate the backup's users, roles and grants (restoreCluster, by default), or, in a
    /// collection restore, the grants on the restored collections (`restoreRbac`).
    #[serde(default)]
    pub rbac: bool,
}

impl RestorePlan {
    pub fn renames(&self) -> BTreeMap<(&str, &str), (&str, &str)> {
        renames(&self.targets)
    }
}

/// Each restored collection's `(db, name)` in the backup → the `(db, name)` it takes.
pub fn renames(targets: &[RestoreTarget]) -> BTreeMap<(&str, &str), (&str, &str)> {
    targets
        .iter()
        .map(|t| {
            (
                (t.db_name.as_str(), t.collection_name.as_str()),
                (t.dest_db_name.as_str(), t.dest_collection_name.as_str()),
            )
        })
        .collect()
}

/// What a restore tells its caller: the users it created. Each new password is shown once,
/// to the first reader of the job, then only the names (`without_passwords`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    pub users: Vec<CreatedUser>,
    /// What the restore left as it found it, e.g. an alias another collection holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl RestoreResult {
    pub fn has_passwords(&self) -> bool {
        self.users.iter().any(|u| u.password.is_some())
    }

    pub fn without_passwords(&self) -> RestoreResult {
        RestoreResult {
            users: self
                .users
                .iter()
                .map(|u| CreatedUser {
                    user_name: u.user_name.clone(),
                    password: None,
                })
                .collect(),
            warnings: self.warnings.clone(),
        }
    }
}

/// The Milvus versions a restore is tested against as its destination (the suite restores
/// into 2.3.5, from backups of 2.3.5 and of 2.2.16). Others are refused up front unless the
/// caller passes `allowUntestedVersion`.
pub const TESTED_DESTINATIONS: &str = "2.3.x";

/// Whether `version` as Milvus reports it (`v2.3.5`, `v2.3.5-lite`, `2.3.0`) is in
/// [`TESTED_DESTINATIONS`].
pub fn tested_destination(version: &str) -> bool {
    let numbers: Vec<u32> = version
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .map_while(|part| part.parse().ok())
        .collect();
    numbers == [2, 3]
}

/// Shards a destination of `cu_size` allows: `cu_size × shards_per_cu`, at least 1, at most
/// `max_shards`. A backup with more shards is restored with this many (Import re-hashes rows
/// into the destination's shards).
pub fn allowed_shards(cu_size: i64, shards_per_cu: u32, max_shards: u32) -> i32 {
    let allowed = cu_size.saturating_mul(i64::from(shards_per_cu));
    allowed.clamp(1, i64::from(max_shards.max(1))) as i32
}

/// The shard count to create: the backup's, clamped to what the destination allows.
pub fn clamp_shards(backup_shards: i32, allowed: i32) -> i32 {
    backup_shards.clamp(1, allowed.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_loses_its_passwords_once_read() {
        let result = RestoreResult {
            users: vec![CreatedUser {
                user_name: "u".into(),
                password: Some("p".into()),
            }],
            warnings: vec![],
        };
        assert!(result.has_passwords());
        let read = result.without_passwords();
        assert!(!read.has_passwords());
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            r#"{"users":[{"userName":"u"}]}"#
        );
    }

    #[test]
    fn only_tested_destinations_pass() {
        for tested in ["v2.3.5", "v2.3.5-lite", "2.3.0", "v2.3.21"] {
            assert!(tested_destination(tested), "{tested}");
        }
        for untested in [
            "v2.2.16-lite",
            "v2.4.0",
            "v3.3.1",
            "2.30.0",
            "",
            "dev",
            "v2",
        ] {
            assert!(!tested_destination(untested), "{untested}");
        }
    }

    #[test]
    fn shards_follow_the_destination_size() {
        assert_eq!(allowed_shards(1, 1, 16), 1);
        assert_eq!(allowed_shards(2, 1, 16), 2);
        assert_eq!(allowed_shards(64, 1, 16), 16);
        assert_eq!(allowed_shards(0, 1, 16), 1);
        assert_eq!(clamp_shards(2, 1), 1);
        assert_eq!(clamp_shards(2, 16), 2);
        assert_eq!(clamp_shards(0, 4), 1);
    }
}
