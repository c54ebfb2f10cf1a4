//! Cluster rules with no I/O: plans, the CU bound, where a cluster's Milvus keeps its binlogs,
//! and what only Dedicated clusters have.

use serde::{Deserialize, Serialize};

/// Compute units a cluster may declare (the product sells 1–256 CU).
pub const MAX_CU_SIZE: i64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Plan {
    Dedicated,
    Serverless,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Dedicated => "Dedicated",
            Plan::Serverless => "Serverless",
        }
    }
}

impl std::str::FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Plan, String> {
        match s {
            "Dedicated" => Ok(Plan::Dedicated),
            "Serverless" => Ok(Plan::Serverless),
            other => Err(format!("unknown plan '{other}'")),
        }
    }
}

/// What the product offers for Dedicated clusters only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedicatedOnly {
    Backups,
    AutomaticBackups,
    Restore,
}

impl DedicatedOnly {
    /// Refuses `feature` for a cluster on another plan; `subject` names the cluster as the
    /// request does (`cluster`, `destClusterId`).
    pub fn check(self, plan: Plan, subject: &str, cluster_id: &str) -> Result<(), String> {
        if plan == Plan::Dedicated {
            return Ok(());
        }
        let feature = match self {
            DedicatedOnly::Backups => "backups exist",
            DedicatedOnly::AutomaticBackups => "automatic backups exist",
            DedicatedOnly::Restore => "restore exists",
        };
        Err(format!(
            "{subject} {cluster_id} is {}: {feature} only for Dedicated clusters",
            plan.as_str()
        ))
    }
}

/// Where a cluster's Milvus keeps its binlogs, without secrets (stored as JSON, returned by the
/// API as is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClusterStorage {
    /// Milvus `localStorage.path`.
    Local { path: String },
    /// Milvus's MinIO/S3 bucket and `rootPath`.
    #[serde(rename_all = "camelCase")]
    S3 {
        endpoint: Option<String>,
        bucket: String,
        root_path: String,
        region: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dedicated_clusters_have_backups() {
        assert!(DedicatedOnly::Backups
            .check(Plan::Dedicated, "cluster", "c1")
            .is_ok());
        assert_eq!(
            DedicatedOnly::Restore
                .check(Plan::Serverless, "destClusterId", "c2")
                .unwrap_err(),
            "destClusterId c2 is Serverless: restore exists only for Dedicated clusters"
        );
    }
}

/// The longest `storage.path` accepted.
pub const MAX_LOCAL_PATH_LEN: usize = 4096;

/// What Milvus keeps in its `localStorage.path` (and the embedded server's etcd and RocksMQ
/// beside it, and a restore's staging): a directory holding none of these is not one.
pub const MILVUS_LOCAL_ENTRIES: &[&str] = &[
    "insert_log",
    "delta_log",
    "stats_log",
    "index_files",
    "etcd.data",
    "rdb_data",
    "rdb_data_meta_kv",
    "backstop-restore",
];

/// The shape of a local `storage.path`: absolute, no `.` or `..` segments, not too long.
pub fn check_local_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_LOCAL_PATH_LEN {
        return Err(format!(
            "storage.path is {} bytes long; give a path of at most {MAX_LOCAL_PATH_LEN}",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Err(
            "storage.path must be the absolute path of the Milvus localStorage.path".into(),
        );
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(format!(
            "storage.path '{path}' holds '.' or '..' segments; give the directory itself"
        ));
    }
    Ok(())
}

/// Whether `path` (resolved, links followed) lies under one of `roots`; no roots means any.
pub fn under_roots(path: &std::path::Path, roots: &[std::path::PathBuf]) -> bool {
    roots.is_empty() || roots.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
mod path_tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn local_paths_are_absolute_plain_and_bounded() {
        assert!(check_local_path("/var/lib/milvus/data").is_ok());
        assert!(check_local_path("/var/lib/milvus/data/").is_ok());
        for bad in ["relative/data", "/var/lib/../../etc", "/var/./lib", ".."] {
            assert!(check_local_path(bad).is_err(), "{bad}");
        }
        let long = format!("/{}", "a".repeat(MAX_LOCAL_PATH_LEN));
        assert!(check_local_path(&long)
            .unwrap_err()
            .contains("at most 4096"));
    }

    #[test]
    fn roots_confine_by_whole_segments() {
        let roots = [PathBuf::from("/srv/milvus")];
        assert!(under_roots(Path::new("/srv/milvus/a/data"), &roots));
        assert!(under_roots(Path::new("/srv/milvus"), &roots));
        assert!(!under_roots(Path::new("/srv/milvus-other"), &roots));
        assert!(!under_roots(Path::new("/etc"), &roots));
        assert!(under_roots(Path::new("/etc"), &[]), "no roots: any");
    }
}
