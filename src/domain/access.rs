//! Roles and privileges of `design/api.md`, as values. The decision "may this key do this on
//! this project" lives in `crate::auth`; this module only says what each role grants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One action a key may take inside a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Privilege {
    #[serde(rename = "cluster.read")]
    ClusterRead,
    #[serde(rename = "cluster.manage")]
    ClusterManage,
    #[serde(rename = "backup.read")]
    BackupRead,
    #[serde(rename = "backup.create")]
    BackupCreate,
    #[serde(rename = "backup.restore")]
    BackupRestore,
    #[serde(rename = "backup.delete")]
    BackupDelete,
    #[serde(rename = "backup.policy")]
    BackupPolicy,
    #[serde(rename = "job.read")]
    JobRead,
    #[serde(rename = "job.cancel")]
    JobCancel,
}

impl Privilege {
    pub const ALL: [Privilege; 9] = [
        Privilege::ClusterRead,
        Privilege::ClusterManage,
        Privilege::BackupRead,
        Privilege::BackupCreate,
        Privilege::BackupRestore,
        Privilege::BackupDelete,
        Privilege::BackupPolicy,
        Privilege::JobRead,
        Privilege::JobCancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::ClusterRead => "cluster.read",
            Privilege::ClusterManage => "cluster.manage",
            Privilege::BackupRead => "backup.read",
            Privilege::BackupCreate => "backup.create",
            Privilege::BackupRestore => "backup.restore",
            Privilege::BackupDelete => "backup.delete",
            Privilege::BackupPolicy => "backup.policy",
            Privilege::JobRead => "job.read",
            Privilege::JobCancel => "job.cancel",
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The organisation-wide role of a key. An `OWNER` may do everything everywhere, including
/// managing projects, keys and roles; a `MEMBER` only what its project roles grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrgRole {
    Owner,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "OWNER",
            OrgRole::Member => "MEMBER",
        }
    }
}

impl FromStr for OrgRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "OWNER" => Ok(OrgRole::Owner),
            "MEMBER" => Ok(OrgRole::Member),
            other => Err(format!("unknown org role '{other}'")),
        }
    }
}

/// The built-in project roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinRole {
    Admin,
    ReadWrite,
    ReadOnly,
}

impl BuiltinRole {
    pub const NAMES: [&'static str; 3] = ["ADMIN", "READ_WRITE", "READ_ONLY"];

    pub fn parse(name: &str) -> Option<BuiltinRole> {
        match name {
            "ADMIN" => Some(BuiltinRole::Admin),
            "READ_WRITE" => Some(BuiltinRole::ReadWrite),
            "READ_ONLY" => Some(BuiltinRole::ReadOnly),
            _ => None,
        }
    }

    /// What each built-in role grants. `READ_WRITE` may register and remove clusters and read
    /// backups and jobs, but cannot create, restore or delete backups (as the product documents).
    pub fn privileges(self) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            BuiltinRole::Admin => &Privilege::ALL,
            BuiltinRole::ReadWrite => &[ClusterRead, ClusterManage, BackupRead, JobRead],
            BuiltinRole::ReadOnly => &[ClusterRead, BackupRead, JobRead],
        }
    }
}

/// A role assigned to a key in one project: a built-in role or a custom role by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    pub project_id: String,
    pub role: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_cannot_touch_backups() {
        let granted = BuiltinRole::ReadWrite.privileges();
        for p in [
            Privilege::BackupCreate,
            Privilege::BackupRestore,
            Privilege::BackupDelete,
            Privilege::BackupPolicy,
            Privilege::JobCancel,
        ] {
            assert!(!granted.contains(&p), "{p}");
        }
        assert!(granted.contains(&Privilege::BackupRead));
        assert_eq!(BuiltinRole::Admin.privileges().len(), Privilege::ALL.len());
    }

    #[test]
    fn privileges_round_trip_through_json() {
        for p in Privilege::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Privilege>(&json).unwrap(), p);
        }
    }
}
