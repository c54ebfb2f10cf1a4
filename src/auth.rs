//! The one place that answers "may this key do this action on this project".
//!
//! A request's key is resolved once into a `Principal`: its org role and, per project, the set
//! of privileges its roles grant (built-in or custom). Every route then asks `authorize` (for a
//! project-scoped action) or `require_owner` (for org-wide administration). A key with no role in
//! a project is told the resource does not exist (404), never that it exists but is forbidden.

use std::collections::{HashMap, HashSet};

use crate::crypto::hash_api_key;
use crate::domain::access::{BuiltinRole, OrgRole, Privilege};
use crate::error::{Error, Result};
use crate::store::{Store, Visible};

#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub org_role: OrgRole,
    grants: HashMap<String, HashSet<Privilege>>,
}

impl Principal {
    /// Looks the secret up by its hash and resolves the key's roles.
    pub async fn authenticate(store: &Store, secret: &str) -> Result<Principal> {
        let key = store
            .find_api_key_by_hash(&hash_api_key(secret))
            .await?
            .ok_or(Error::Unauthenticated)?;
        let mut grants: HashMap<String, HashSet<Privilege>> = HashMap::new();
        for assignment in &key.project_roles {
            let privileges: Vec<Privilege> = match BuiltinRole::parse(&assignment.role) {
                Some(builtin) => builtin.privileges().to_vec(),
                // A custom role that no longer exists grants nothing.
                None => store
                    .get_role(&assignment.role)
                    .await?
                    .map(|r| r.privileges)
                    .unwrap_or_default(),
            };
            grants
                .entry(assignment.project_id.clone())
                .or_default()
                .extend(privileges);
        }
        Ok(Principal {
            key_id: key.id,
            org_role: key.org_role,
            grants,
        })
    }

    pub fn is_owner(&self) -> bool {
        self.org_role == OrgRole::Owner
    }

    /// Org-wide administration (projects, keys, roles) is for org owners only.
    pub fn require_owner(&self, action: &str) -> Result<()> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "{action} needs an API key with orgRole OWNER"
            )))
        }
    }

    /// May this key take `privilege` on `project_id`? A project the key has no role in is
    /// reported as a missing `what` `id` (the resource the caller asked about).
    pub fn authorize(
        &self,
        project_id: &str,
        privilege: Privilege,
        what: &str,
        id: &str,
    ) -> Result<()> {
        if self.is_owner() {
            return Ok(());
        }
        match self.grants.get(project_id) {
            None => Err(Error::not_found(what, id)),
            Some(granted) if granted.is_empty() => Err(Error::not_found(what, id)),
            Some(granted) if granted.contains(&privilege) => Ok(()),
            Some(_) => Err(Error::Forbidden(format!(
                "this API key's role in project {project_id} lacks the privilege {privilege}"
            ))),
        }
    }

    /// The projects whose resources a listing may show.
    pub fn visible_projects(&self) -> Visible {
        if self.is_owner() {
            Visible::All
        } else {
            let mut ids: Vec<String> = self
                .grants
                .iter()
                .filter(|(_, privileges)| !privileges.is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            ids.sort();
            Visible::Only(ids)
        }
    }

    /// Projects in which this key holds `privilege`, for listings filtered by privilege.
    pub fn projects_with(&self, privilege: Privilege) -> Visible {
        if self.is_owner() {
            return Visible::All;
        }
        let mut ids: Vec<String> = self
            .grants
            .iter()
            .filter(|(_, privileges)| privileges.contains(&privilege))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        Visible::Only(ids)
    }

    #[cfg(test)]
    fn member(grants: &[(&str, &[Privilege])]) -> Principal {
        Principal {
            key_id: "key-test".into(),
            org_role: OrgRole::Member,
            grants: grants
                .iter()
                .map(|(p, privs)| (p.to_string(), privs.iter().copied().collect()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_projects_are_invisible_and_missing_privileges_forbidden() {
        let reader = Principal::member(&[("proj-a", BuiltinRole::ReadOnly.privileges())]);
        assert!(reader
            .authorize("proj-a", Privilege::ClusterRead, "cluster", "c")
            .is_ok());
        let err = reader
            .authorize("proj-a", Privilege::ClusterManage, "cluster", "c")
            .unwrap_err();
        assert_eq!(err.code(), 90403);
        let err = reader
            .authorize("proj-b", Privilege::ClusterRead, "cluster", "c")
            .unwrap_err();
        assert_eq!(err.code(), 90404);
        assert!(reader.require_owner("creating a project").is_err());
        match reader.visible_projects() {
            Visible::Only(ids) => assert_eq!(ids, vec!["proj-a".to_string()]),
            Visible::All => panic!("a member sees only its projects"),
        }
    }
}
