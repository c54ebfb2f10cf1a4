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
