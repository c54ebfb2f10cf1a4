//! Users, roles and grants of a Milvus with authorization on: what a CLUSTER backup records
//! and a cluster restore recreates. Passwords cannot be read (Milvus keeps only hashes), so a
//! restore creates missing users with new passwords.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use milvus::proto::milvus::{
    CreateCredentialRequest, CreateRoleRequest, GrantEntity, GrantorEntity, ListCredUsersRequest,
    ObjectEntity, OperatePrivilegeRequest, OperatePrivilegeType, OperateUserRoleRequest,
    OperateUserRoleType, PrivilegeEntity, RoleEntity, SelectGrantRequest, SelectRoleRequest,
};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check, MilvusClient, MilvusError};

/// Built-in users and roles: recorded, never recreated (every Milvus has them).
pub const BUILTIN_USERS: &[&str] = &["root"];
pub const BUILTIN_ROLES: &[&str] = &["admin", "public"];

/// One privilege a role holds on one object.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// `Global`, `Collection`, `User`, ...
    pub object_type: String,
    /// A collection's name, or `*`.
    pub object_name: String,
    pub privilege: String,
    pub db_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRecord {
    pub name: String,
    pub grants: Vec<Grant>,
    /// The users bound to the role.
    pub users: Vec<String>,
}

/// Users (names only) and roles with their grants and members.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rbac {
    pub users: Vec<String>,
    pub roles: Vec<RoleRecord>,
}

/// The object type of a grant on one collection.
const COLLECTION_OBJECT: &str = "Collection";

impl Rbac {
    /// The grants on the collections of `renames` (`(db, name)` in the backup → `(db, name)`
    /// they take), moved onto the names they take, with the roles that hold them: what a
    /// COLLECTION backup records (every name mapped to itself) and a collection restore
    /// recreates. No users or bindings: those belong to the whole cluster.
    pub fn collection_grants(&self, renames: &BTreeMap<(&str, &str), (&str, &str)>) -> Rbac {
        let roles = self
            .roles
            .iter()
            .filter_map(|role| {
                let mut grants: Vec<Grant> = role
                    .grants
                    .iter()
                    .filter(|g| g.object_type == COLLECTION_OBJECT)
                    .filter_map(|g| {
                        let (db, name) =
                            renames.get(&(g.db_name.as_str(), g.object_name.as_str()))?;
                        Some(Grant {
                            object_type: g.object_type.clone(),
                            object_name: (*name).to_owned(),
                            privilege: g.privilege.clone(),
                            db_name: (*db).to_owned(),
                        })
                    })
                    .collect();
                grants.sort();
                grants.dedup();
                (!grants.is_empty()).then(|| RoleRecord {
                    name: role.name.clone(),
                    grants,
                    users: Vec::new(),
                })
            })
            .collect();
        Rbac {
            users: Vec::new(),
            roles,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.roles.is_empty()
    }
}

impl MilvusClient {
    /// Every user, role, grant (in every database) and binding.
    pub async fn read_rbac(&self) -> Result<Rbac, MilvusError> {
        let mut client = self.client.clone();
        let users = self
            .call(client.list_cred_users(self.request(ListCredUsersRequest::default(), None)))
            .await?;
        check(users.status.as_ref(), "ListCredUsers")?;
        let roles = self
            .call(client.select_role(self.request(
                SelectRoleRequest {
                    include_user_info: true,
                    ..Default::default()
                },
                None,
            )))
            .await?;
        check(roles.status.as_ref(), "SelectRole")?;
        let databases = self.list_databases().await?;
        let mut records = Vec::new();
        for result in roles.results {
            let Some(role) = result.role else { continue };
            let mut grants = Vec::new();
            for db in &databases {
                let selected = self
                    .call(client.select_grant(self.request(
                        SelectGrantRequest {
                            entity: Some(GrantEntity {
                                role: Some(role.clone()),
                                db_name: db.clone(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Some(db),
                    )))
                    .await?;
                check(selected.status.as_ref(), "SelectGrant")?;
                for entity in selected.entities {
                    grants.push(Grant {
                        object_type: entity.object.map(|o| o.name).unwrap_or_default(),
                        object_name: entity.object_name,
                        privilege: entity
                            .grantor
                            .and_then(|g| g.privilege)
                            .map(|p| p.name)
                            .unwrap_or_default(),
                        db_name: if entity.db_name.is_empty() {
                            db.clone()
                        } else {
                            entity.db_name
                        },
                    });
                }
            }
            grants.sort();
            grants.dedup();
            let mut users: Vec<String> = result.users.into_iter().map(|u| u.name).collect();
            users.sort();
            records.push(RoleRecord {
                name: role.name,
                grants,
                users,
            });
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let mut users = users.usernames;
        users.sort();
        Ok(Rbac {
            users,
            roles: records,
        })
    }

    pub async fn create_role(&self, name: &str) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = CreateRoleRequest {
            entity: Some(RoleEntity {
                name: name.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let status = self
            .call(client.create_role(self.request(message, None)))
            .await?;
        check(Some(&status), "CreateRole")
    }

    pub async fn grant(&self, role: &str, grant: &Grant) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = OperatePrivilegeRequest {
            entity: Some(GrantEntity {
                role: Some(RoleEntity {
                    name: role.to_owned(),
                    ..Default::default()
                }),
                object: Some(ObjectEntity {
                    name: grant.object_type.clone(),
                }),
                object_name: grant.object_name.clone(),
                grantor: Some(GrantorEntity {
                    user: None,
                    privilege: Some(PrivilegeEntity {
                        name: grant.privilege.clone(),
                    }),
                }),
                db_name: grant.db_name.clone(),
            }),
            r#type: OperatePrivilegeType::Grant as i32,
            ..Default::default()
        };
        let status = self
            .call(client.operate_privilege(self.request(message, Some(&grant.db_name))))
            .await?;
        check(Some(&status), "OperatePrivilege")
    }

    /// Creates `user` with `password` (sent base64-encoded, as Milvus expects).
    pub async fn create_user(&self, user: &str, password: &str) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = CreateCredentialRequest {
            username: user.to_owned(),
            password: B64.encode(password),
            ..Default::default()
        };
        let status = self
            .call(client.create_credential(self.request(message, None)))
            .await?;
        check(Some(&status), "CreateCredential")
    }

    pub async fn add_user_to_role(&self, user: &str, role: &str) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = OperateUserRoleRequest {
            username: user.to_owned(),
            role_name: role.to_owned(),
            r#type: OperateUserRoleType::AddUserToRole as i32,
            ..Default::default()
        };
        let status = self
            .call(client.operate_user_role(self.request(message, None)))
            .await?;
        check(Some(&status), "OperateUserRole")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(object_type: &str, db: &str, name: &str, privilege: &str) -> Grant {
        Grant {
            object_type: object_type.to_owned(),
            object_name: name.to_owned(),
            privilege: privilege.to_owned(),
            db_name: db.to_owned(),
        }
    }

    fn rbac() -> Rbac {
        Rbac {
            users: vec!["ann".to_owned(), "root".to_owned()],
            roles: vec![
                RoleRecord {
                    name: "readers".to_owned(),
                    grants: vec![
                        grant("Collection", "default", "docs", "Search"),
                        grant("Collection", "default", "docs", "Query"),
                        grant("Collection", "default", "other", "Search"),
                        grant("Collection", "sales", "docs", "Search"),
                        grant("Global", "default", "*", "CreateCollection"),
                    ],
                    users: vec!["ann".to_owned()],
                },
                RoleRecord {
                    name: "admins".to_owned(),
                    grants: vec![grant("Global", "default", "*", "All")],
                    users: vec![],
                },
            ],
        }
    }

    #[test]
    fn collection_grants_keep_only_the_mapped_collections_under_their_new_names() {
        let renames = BTreeMap::from([(("default", "docs"), ("archive", "docs_2024"))]);
        let grants = rbac().collection_grants(&renames);
        assert!(grants.users.is_empty(), "users belong to the cluster");
        assert_eq!(
            grants.roles.len(),
            1,
            "a role without such grants is left out"
        );
        let role = &grants.roles[0];
        assert_eq!(role.name, "readers");
        assert!(role.users.is_empty(), "no bindings");
        assert_eq!(
            role.grants,
            vec![
                grant("Collection", "archive", "docs_2024", "Query"),
                grant("Collection", "archive", "docs_2024", "Search"),
            ],
            "same name in another database, other collections and global grants left out"
        );
    }

    #[test]
    fn collection_grants_of_no_collection_are_empty() {
        assert!(rbac().collection_grants(&BTreeMap::new()).is_empty());
    }
}
