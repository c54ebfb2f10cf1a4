//! The store's conformance suite: the same assertions against SQLite and Postgres.

use backstop::domain::access::{OrgRole, Privilege, ProjectRole};
use backstop::store::{
    ApiKey, Cluster, ClusterStorage, CustomRole, KeyDeletion, Page, Plan, Project, Region, Store,
    StoreError, Visible,
};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::on_both_backends;
use crate::support::{test_db, Backend};

async fn store(backend: Backend) -> (Store, crate::support::TestDb) {
    let db = test_db(backend).await;
    let store = Store::connect(&db.url, 3)
        .await
        .expect("store connects and migrates");
    (store, db)
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn project(id: &str, name: &str, t: i64) -> Project {
    Project {
        id: id.into(),
        name: name.into(),
        created_at: at(t),
    }
}

fn key(id: &str, hash: &str, role: OrgRole) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("name-{id}"),
        key_hash: hash.into(),
        org_role: role,
        project_roles: vec![ProjectRole {
            project_id: "proj-a".into(),
            role: "READ_ONLY".into(),
        }],
        created_at: at(0),
    }
}

fn cluster(id: &str, project_id: &str, name: &str, t: i64) -> Cluster {
    Cluster {
        id: id.into(),
        project_id: project_id.into(),
        name: name.into(),
        region_id: "local".into(),
        plan: Plan::Dedicated,
        cu_size: 4,
        milvus_uri: "http://127.0.0.1:19530".into(),
        storage: ClusterStorage::Local { path: "/x".into() },
        secrets: "sealed".into(),
        created_at: at(t),
    }
}

async fn projects_round_trip_page_and_filter(backend: Backend) {
    let (store, _db) = store(backend).await;
    for i in 0..5 {
        store
            .insert_project(&project(&format!("proj-{i}"), &format!("p{i}"), i))
            .await
            .unwrap();
    }
    assert_eq!(
        store.get_project("proj-3").await.unwrap(),
        Some(project("proj-3", "p3", 3))
    );
    assert_eq!(store.get_project("proj-x").await.unwrap(), None);

    let (page, total) = store
        .list_projects(
            &Visible::All,
            Page {
                current_page: 2,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        page.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["proj-2", "proj-3"]
    );

    let only = Visible::Only(vec!["proj-1".into(), "proj-4".into()]);
    let (page, total) = store
        .list_projects(
            &only,
            Page {
                current_page: 1,
                page_size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        page.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["proj-1", "proj-4"]
    );
    let (page, total) = store
        .list_projects(&Visible::Only(vec![]), Page::all())
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 0));

    match store.insert_project(&project("proj-9", "p1", 9)).await {
        Err(StoreError::Conflict(name)) => assert_eq!(name, "projects_name_key"),
        other => panic!("expected a name conflict, got {other:?}"),
    }
}

async fn api_keys_are_found_by_hash_and_bootstrap_once(backend: Backend) {
    let (store, _db) = store(backend).await;
    assert!(store
        .bootstrap_api_key(&key("key-boot", "h0", OrgRole::Owner))
        .await
        .unwrap());
    assert!(!store
        .bootstrap_api_key(&key("key-boot2", "h00", OrgRole::Owner))
        .await
        .unwrap());
    store
        .insert_api_key(&key("key-1", "h1", OrgRole::Member))
        .await
        .unwrap();

    let found = store.find_api_key_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(found, key("key-1", "h1", OrgRole::Member));
    assert_eq!(store.find_api_key_by_hash("h-unknown").await.unwrap(), None);
    assert_eq!(
        store
            .get_api_key("key-boot")
            .await
            .unwrap()
            .unwrap()
            .org_role,
        OrgRole::Owner
    );

    let (keys, total) = store
        .list_api_keys(Page {
            current_page: 1,
            page_size: 10,
        })
        .await
        .unwrap();
    assert_eq!(total, 2, "the losing bootstrap attempt created nothing");
    assert_eq!(keys.len(), 2);

    assert!(matches!(
        store.insert_api_key(&key("key-2", "h1", OrgRole::Member)).await,
        Err(StoreError::Conflict(c)) if c == "api_keys_key_hash_key"
    ));
    assert_eq!(
        store.delete_api_key("key-1").await.unwrap(),
        KeyDeletion::Deleted
    );
    assert_eq!(
        store.delete_api_key("key-1").await.unwrap(),
        KeyDeletion::NotFound
    );
    assert_eq!(store.find_api_key_by_hash("h1").await.unwrap(), None);
    // The last OWNER key stays; with a second one, either may go.
    assert_eq!(
        store.delete_api_key("key-boot").await.unwrap(),
        KeyDeletion::LastOwner
    );
    store
        .insert_api_key(&key("key-3", "h3", OrgRole::Owner))
        .await
        .unwrap();
    assert_eq!(
        store.delete_api_key("key-boot").await.unwrap(),
        KeyDeletion::Deleted
    );
    assert_eq!(
        store.delete_api_key("key-3").await.unwrap(),
        KeyDeletion::LastOwner
    );
}

async fn custom_roles_round_trip(backend: Backend) {
    let (store, _db) = store(backend).await;
    let role = CustomRole {
        name: "auditor".into(),
        privileges: vec![Privilege::BackupRead, Privilege::JobRead],
        created_at: at(1),
    };
    store.insert_role(&role).await.unwrap();
    assert_eq!(store.get_role("auditor").await.unwrap(), Some(role.clone()));
    assert_eq!(store.get_role("nobody").await.unwrap(), None);
    assert_eq!(store.list_roles().await.unwrap(), vec![role.clone()]);
    assert!(matches!(
        store.insert_role(&role).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn regions_mirror_the_config(backend: Backend) {
    let (store, _db) = store(backend).await;
    let mut eu = Region {
        id: "eu-1".into(),
        cloud_provider: "aws".into(),
        storage_type: "s3".into(),
        price_per_gb_month: 0.023,
    };
    store
        .sync_regions(std::slice::from_ref(&eu), at(0))
        .await
        .unwrap();
    eu.price_per_gb_month = 0.05;
    let local = Region {
        id: "local".into(),
        cloud_provider: "local".into(),
        storage_type: "local".into(),
        price_per_gb_month: 0.0,
    };
    store
        .sync_regions(&[eu.clone(), local.clone()], at(1))
        .await
        .unwrap();
    assert_eq!(store.list_regions().await.unwrap(), vec![eu, local]);
}

async fn clusters_are_scoped_by_project(backend: Backend) {
    let (store, _db) = store(backend).await;
    store
        .insert_project(&project("proj-a", "a", 0))
        .await
        .unwrap();
    store
        .insert_project(&project("proj-b", "b", 1))
        .await
        .unwrap();
    store
        .insert_cluster(&cluster("in01-1", "proj-a", "c1", 1))
        .await
        .unwrap();
    store
        .insert_cluster(&cluster("in01-2", "proj-a", "c2", 2))
        .await
        .unwrap();
    store
        .insert_cluster(&cluster("in01-3", "proj-b", "c1", 3))
        .await
        .unwrap();

    assert_eq!(
        store.get_cluster("in01-2").await.unwrap(),
        Some(cluster("in01-2", "proj-a", "c2", 2))
    );
    let ids = |v: Vec<Cluster>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();

    let (all, total) = store
        .list_clusters(&Visible::All, None, Page::all())
        .await
        .unwrap();
    assert_eq!(
        (ids(all), total),
        (
            vec!["in01-1".to_string(), "in01-2".into(), "in01-3".into()],
            3
        )
    );
    let (only_b, total) = store
        .list_clusters(&Visible::Only(vec!["proj-b".into()]), None, Page::all())
        .await
        .unwrap();
    assert_eq!((ids(only_b), total), (vec!["in01-3".to_string()], 1));
    let (filtered, total) = store
        .list_clusters(
            &Visible::All,
            Some("proj-a"),
            Page {
                current_page: 2,
                page_size: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!((ids(filtered), total), (vec!["in01-2".to_string()], 2));
    let (hidden, total) = store
        .list_clusters(
            &Visible::Only(vec!["proj-b".into()]),
            Some("proj-a"),
            Page::all(),
        )
        .await
        .unwrap();
    assert_eq!(
        (hidden.len(), total),
        (0, 0),
        "a project filter cannot widen visibility"
    );

    assert!(matches!(
        store.insert_cluster(&cluster("in01-4", "proj-a", "c1", 4)).await,
        Err(StoreError::Conflict(c)) if c == "clusters_project_name_key"
    ));
    // A cluster must belong to an existing project.
    assert!(store
        .insert_cluster(&cluster("in01-5", "proj-none", "c9", 5))
        .await
        .is_err());

    assert!(store.delete_cluster("in01-1").await.unwrap());
    assert!(!store.delete_cluster("in01-1").await.unwrap());
    assert_eq!(store.get_cluster("in01-1").await.unwrap(), None);
}

async fn migrations_are_idempotent(backend: Backend) {
    let (store, db) = store(backend).await;
    store.migrate().await.unwrap();
    let again = Store::connect(&db.url, 1).await.unwrap();
    again.ping().await.unwrap();
    assert_eq!(
        again.backend_name(),
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
}

on_both_backends!(
    projects_round_trip_page_and_filter,
    api_keys_are_found_by_hash_and_bootstrap_once,
    custom_roles_round_trip,
    regions_mirror_the_config,
    clusters_are_scoped_by_project,
    migrations_are_idempotent,
);
