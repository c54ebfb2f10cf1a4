//! The store's conformance suite, continued: backups and their task rules, cross-region
//! copies, policies, idempotency records and the job claim, on SQLite and Postgres alike.

use std::sync::Arc;

use backstop::domain::backups::{BackupStatus, BackupType, CopyRequest, CreationMethod};
use backstop::domain::schedule::{Frequency, RetentionDays, Window};
use backstop::store::{
    BackedUpCollection, BackupFilter, CreateBackupError, CrossRegionCopy, IdempotencyClaim,
    IdempotencyRequest, JobStatus, NewBackup, NewJob, Page, Policy, Project, Store, Visible,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use tokio::sync::Notify;

use crate::on_both_backends;
use crate::support::{test_db, Backend, TestDb};

async fn store(backend: Backend) -> (Store, TestDb) {
    let db = test_db(backend).await;
    let store = Store::connect(&db.url, 4).await.expect("store connects");
    store
        .insert_project(&Project {
            id: "proj-a".into(),
            name: "a".into(),
            created_at: at(0),
        })
        .await
        .unwrap();
    (store, db)
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn new_backup(cluster: &str, method: CreationMethod, name: Option<&str>) -> NewBackup {
    NewBackup {
        project_id: "proj-a".into(),
        cluster_id: cluster.into(),
        cluster_name: "prod".into(),
        region_id: "local".into(),
        name: name.map(str::to_owned),
        backup_type: BackupType::Cluster,
        creation_method: method,
        selection: Vec::new(),
        expire_at: (method == CreationMethod::Auto).then(|| at(86_400)),
        copy_regions: vec![CopyRequest {
            region_id: "eu".into(),
            retention_days: None,
        }],
    }
}

fn job(job_type: &str) -> NewJob {
    NewJob::due_now("proj-a", job_type, json!({}), 3)
}

async fn backups_follow_their_life_and_the_task_rules(backend: Backend) {
    let (store, _db) = store(backend).await;
    let mut first_job = job("BACKUP");
    let first = store
        .create_backup(
            &new_backup("c1", CreationMethod::Manual, None),
            &mut first_job,
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(first.name, "prod_backup1");
    assert_eq!(first.status, BackupStatus::Creating);
    assert_eq!(first_job.backup_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(first.job_id.as_deref(), Some(first_job.id.as_str()));
    assert_eq!(
        store.get_backup(&first.id).await.unwrap(),
        Some(first.clone())
    );
    let queued = store.get_job(&first_job.id).await.unwrap().unwrap();
    assert_eq!(queued.status, JobStatus::Pending);
    assert_eq!(queued.backup_id.as_deref(), Some(first.id.as_str()));

    // One manual backup at a time per cluster; another cluster is not affected.
    assert!(matches!(
        store
            .create_backup(
                &new_backup("c1", CreationMethod::Manual, None),
                &mut job("BACKUP"),
                at(2)
            )
            .await,
        Err(CreateBackupError::ManualRunning)
    ));
    store
        .create_backup(
            &new_backup("c2", CreationMethod::Manual, None),
            &mut job("BACKUP"),
            at(2),
        )
        .await
        .unwrap();
    // An automatic backup still starts while a manual one runs...
    let mut auto_job = job("BACKUP");
    auto_job.dedupe_key = Some("auto:c1:2026-01-01".into());
    let auto = store
        .create_backup(
            &new_backup("c1", CreationMethod::Auto, None),
            &mut auto_job,
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(
        auto.name, "prod_backup2",
        "sequence numbers are per cluster"
    );
    // ...one at a time...
    let mut again = job("BACKUP");
    again.dedupe_key = Some("auto:c1:2026-01-02".into());
    assert!(matches!(
        store
            .create_backup(
                &new_backup("c1", CreationMethod::Auto, None),
                &mut again,
                at(4)
            )
            .await,
        Err(CreateBackupError::AutoRunning)
    ));

    // The manual backup completes, with its copy job committed alongside.
    let collections = vec![BackedUpCollection {
        db_name: "default".into(),
        collection_name: "docs".into(),
        description: String::new(),
        row_count: 10,
        size: 100,
        loaded: true,
        loadable: Some(true),
        aliases: vec!["current".into()],
    }];
    let copy_job = job("COPY_BACKUP").for_backup(&first);
    let copy = (first.copy_regions[0].clone(), copy_job.clone());
    assert!(store
        .complete_backup(
            &first.id,
            &backstop::store::Held {
                size: 100,
                collections: &collections,
                rbac: None
            },
            &[copy],
            at(5)
        )
        .await
        .unwrap());
    assert!(
        !store
            .complete_backup(
                &first.id,
                &backstop::store::Held {
                    size: 100,
                    collections: &collections,
                    rbac: None
                },
                &[],
                at(5)
            )
            .await
            .unwrap(),
        "only a CREATING backup completes"
    );
    let done = store.get_backup(&first.id).await.unwrap().unwrap();
    assert_eq!(done.status, BackupStatus::Available);
    assert_eq!((done.size, done.collections.clone()), (100, collections));
    assert_eq!(done.finished_at, Some(at(5)));
    let copies = store.list_copies(&first.id).await.unwrap();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].status, BackupStatus::Creating);
    assert_eq!(copies[0].job_id.as_deref(), Some(copy_job.id.as_str()));
    assert!(store
        .finish_copy(&first.id, "eu", BackupStatus::Available, 100, None, at(6))
        .await
        .unwrap());
    assert_eq!(
        store
            .get_copy(&first.id, "eu")
            .await
            .unwrap()
            .unwrap()
            .status,
        BackupStatus::Available
    );

    // Now a second manual backup of c1 is refused for the automatic one pending.
    assert!(matches!(
        store
            .create_backup(
                &new_backup("c1", CreationMethod::Manual, None),
                &mut job("BACKUP"),
                at(7)
            )
            .await,
        Err(CreateBackupError::AutoRunning)
    ));
    store
        .end_backup(&auto.id, BackupStatus::Failed, "broken", at(8))
        .await
        .unwrap();
    // ...and once per slot, even after the first one ended.
    let mut same_slot = job("BACKUP");
    same_slot.dedupe_key = Some("auto:c1:2026-01-01".into());
    assert!(matches!(
        store
            .create_backup(
                &new_backup("c1", CreationMethod::Auto, None),
                &mut same_slot,
                at(8)
            )
            .await,
        Err(CreateBackupError::Duplicate)
    ));
    let named = store
        .create_backup(
            &new_backup("c1", CreationMethod::Manual, Some("nightly")),
            &mut job("BACKUP"),
            at(9),
        )
        .await
        .unwrap();
    assert_eq!(named.name, "nightly");
    store
        .end_backup(
            &named.id,
            BackupStatus::Canceled,
            "canceled by request",
            at(10),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_backup(
                &new_backup("c1", CreationMethod::Manual, Some("nightly")),
                &mut job("BACKUP"),
                at(11)
            )
            .await,
        Err(CreateBackupError::NameTaken(n)) if n == "nightly"
    ));

    // Lists: newest first, filtered, paged; the count ignores the page.
    let (page, total) = store
        .list_backups(
            &Visible::All,
            &BackupFilter {
                cluster_id: Some("c1".into()),
                ..Default::default()
            },
            Page {
                current_page: 1,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["nightly", "prod_backup2"]
    );
    // A page past the end is empty and still counts every match.
    let (beyond, total) = store
        .list_backups(
            &Visible::All,
            &BackupFilter {
                cluster_id: Some("c1".into()),
                ..Default::default()
            },
            Page {
                current_page: 9,
                page_size: 2,
            },
        )
        .await
        .unwrap();
    assert!(beyond.is_empty());
    assert_eq!(total, 3);
    let (autos, _) = store
        .list_backups(
            &Visible::Only(vec!["proj-a".into()]),
            &BackupFilter {
                creation_method: Some(CreationMethod::Auto),
                ..Default::default()
            },
            Page::all(),
        )
        .await
        .unwrap();
    assert_eq!(autos.len(), 1);
    let (none, total) = store
        .list_backups(
            &Visible::Only(vec![]),
            &BackupFilter::default(),
            Page::all(),
        )
        .await
        .unwrap();
    assert!(none.is_empty() && total == 0);

    // Deletion: DELETING with its job and its copies, then DELETED (hidden from lists).
    let delete_job = job("DELETE_BACKUP").for_backup(&done);
    assert!(store
        .start_backup_deletion(&done.id, &delete_job, at(12))
        .await
        .unwrap());
    assert!(
        !store
            .start_backup_deletion(&done.id, &job("DELETE_BACKUP"), at(12))
            .await
            .unwrap(),
        "already DELETING"
    );
    assert_eq!(
        store
            .get_copy(&done.id, "eu")
            .await
            .unwrap()
            .unwrap()
            .status,
        BackupStatus::Deleting
    );
    store.delete_copy_row(&done.id, "eu").await.unwrap();
    assert!(store.mark_backup_deleted(&done.id, at(13)).await.unwrap());
    let (listed, _) = store
        .list_backups(&Visible::All, &BackupFilter::default(), Page::all())
        .await
        .unwrap();
    assert!(listed.iter().all(|b| b.id != done.id));
    let gone = store.get_backup(&done.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.status, gone.deleted_at),
        (BackupStatus::Deleted, Some(at(13)))
    );
    let auto_rows = store.auto_backups_of_cluster("c1").await.unwrap();
    assert_eq!(
        auto_rows,
        vec![(
            auto.id.clone(),
            BackupStatus::Failed,
            Some(auto_job.id.clone())
        )]
    );
}

/// Drives two creators of one cluster into the window between the task rules' read and the
/// backup's write: the second waits for the first, so the rules hold as if they ran one after
/// the other (Postgres: a per-cluster lock; SQLite: one writer).
async fn task_rules_hold_when_two_creators_race(backend: Backend) {
    let (store, _db) = store(backend).await;
    let in_window = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let hold = |method: CreationMethod| {
        let (in_window, release) = (in_window.clone(), release.clone());
        Arc::new(move |m: CreationMethod| {
            let (in_window, release) = (in_window.clone(), release.clone());
            Box::pin(async move {
                if m == method {
                    in_window.notify_one();
                    release.notified().await;
                }
            }) as futures::future::BoxFuture<'static, ()>
        }) as backstop::test_hooks::TaskRuleWindow
    };

    // An automatic backup is in its window when a manual one is asked for: the manual one
    // waits, then sees the automatic one pending and is refused.
    store.set_task_rule_window(Some(hold(CreationMethod::Auto)));
    let auto = spawn_create(&store, CreationMethod::Auto, 1);
    in_window.notified().await;
    let manual = spawn_create(&store, CreationMethod::Manual, 2);
    wait_until_blocked(&store, backend).await;
    release.notify_one();
    let auto = auto
        .await
        .unwrap()
        .expect("the automatic backup is recorded");
    assert!(
        matches!(manual.await.unwrap(), Err(CreateBackupError::AutoRunning)),
        "a manual backup must not start while an automatic one is pending"
    );

    // A manual backup is in its window when an automatic one is asked for: the automatic one
    // waits and starts after it (automatic backups start while a manual one runs).
    store
        .end_backup(&auto.id, BackupStatus::Failed, "test", at(3))
        .await
        .unwrap();
    store.set_task_rule_window(Some(hold(CreationMethod::Manual)));
    let manual = spawn_create(&store, CreationMethod::Manual, 4);
    in_window.notified().await;
    let auto = spawn_create(&store, CreationMethod::Auto, 5);
    wait_until_blocked(&store, backend).await;
    release.notify_one();
    let manual = manual
        .await
        .unwrap()
        .expect("the manual backup is recorded");
    let auto = auto
        .await
        .unwrap()
        .expect("the automatic backup is recorded after it");
    assert!(auto.seq > manual.seq, "{} then {}", manual.seq, auto.seq);
    store.set_task_rule_window(None);
}

/// Records a backup of cluster c1 in a task of its own (to race another).
fn spawn_create(
    store: &Store,
    method: CreationMethod,
    t: i64,
) -> tokio::task::JoinHandle<Result<backstop::store::Backup, CreateBackupError>> {
    let store = store.clone();
    tokio::spawn(async move {
        store
            .create_backup(&new_backup("c1", method, None), &mut job("BACKUP"), at(t))
            .await
    })
}

/// Postgres: until another session waits for the cluster's lock. SQLite shows no waiters;
/// there the second writer waits in `BEGIN IMMEDIATE` (up to its busy timeout), so a short
/// pause lets it get there.
async fn wait_until_blocked(store: &Store, backend: Backend) {
    match (backend, store.pool()) {
        (Backend::Postgres, backstop::store::Pool::Postgres(pool)) => {
            for _ in 0..500 {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                )
                .fetch_one(pool)
                .await
                .unwrap();
                if waiting > 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("the second creator never waited for the first");
        }
        _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
    }
}

async fn policies_round_trip_typed(backend: Backend) {
    let (store, _db) = store(backend).await;
    let cluster = backstop::store::Cluster {
        id: "in01-p".into(),
        project_id: "proj-a".into(),
        name: "prod".into(),
        region_id: "local".into(),
        plan: backstop::store::Plan::Dedicated,
        cu_size: 2,
        milvus_uri: "http://127.0.0.1:19530".into(),
        storage: backstop::store::ClusterStorage::Local { path: "/x".into() },
        secrets: "sealed".into(),
        created_at: at(0),
    };
    store.insert_cluster(&cluster).await.unwrap();
    let policy = Policy {
        cluster_id: cluster.id.clone(),
        project_id: "proj-a".into(),
        enabled: true,
        frequency: Frequency::parse("1,3").unwrap(),
        window: Window::parse("02:00-04:00").unwrap(),
        retention_days: RetentionDays::parse("retentionDays", 7).unwrap(),
        cross_region_copies: vec![CrossRegionCopy {
            region_id: "eu".into(),
            retention_days: RetentionDays::parse("retentionDays", 3).unwrap(),
        }],
        enabled_at: Some(at(1)),
        updated_at: at(1),
    };
    store.put_policy(&policy).await.unwrap();
    assert_eq!(
        store.get_policy(&cluster.id).await.unwrap(),
        Some(policy.clone())
    );
    assert_eq!(
        store.enabled_policies().await.unwrap(),
        vec![policy.clone()]
    );
    let disabled = Policy {
        enabled: false,
        updated_at: at(2),
        ..policy
    };
    store.put_policy(&disabled).await.unwrap();
    assert_eq!(store.get_policy(&cluster.id).await.unwrap(), Some(disabled));
    assert!(store.enabled_policies().await.unwrap().is_empty());
    // Deleting the cluster deletes its policy.
    store.delete_cluster(&cluster.id).await.unwrap();
    assert_eq!(store.get_policy(&cluster.id).await.unwrap(), None);
}

async fn idempotency_records_claim_replay_and_expire(backend: Backend) {
    let (store, _db) = store(backend).await;
    // A claim at `now` holds the key until now + 10.
    let claim = |key: &'static str, hash: &'static str, now: i64| {
        let store = store.clone();
        async move {
            let seed = format!("seed-{now}");
            let req = IdempotencyRequest {
                scope: "scope",
                route: "POST /v2/x",
                key,
                request_hash: hash,
                seed: &seed,
            };
            store
                .claim_idempotency(&req, at(now), at(now - 100), at(now + 10))
                .await
                .unwrap()
        }
    };
    let fresh = |claimed_at: i64, taken_over| IdempotencyClaim::Fresh {
        seed: format!("seed-{claimed_at}"),
        taken_over,
    };
    assert_eq!(claim("k1", "h1", 0).await, fresh(0, false));
    assert_eq!(claim("k1", "h1", 1).await, IdempotencyClaim::InProgress);
    assert_eq!(claim("k1", "h2", 1).await, IdempotencyClaim::Mismatch);
    store
        .complete_idempotency("scope", "POST /v2/x", "k1", 200, "{\"code\":0}")
        .await
        .unwrap();
    assert_eq!(
        claim("k1", "h1", 20).await,
        IdempotencyClaim::Replay {
            status_code: 200,
            response: "{\"code\":0}".into()
        },
        "an answer outlives the lease"
    );
    // A failed request's claim is given up, so the client may retry it.
    assert_eq!(claim("k2", "h1", 3).await, fresh(3, false));
    store
        .abandon_idempotency("scope", "POST /v2/x", "k2")
        .await
        .unwrap();
    assert_eq!(claim("k2", "h1", 4).await, fresh(4, false));
    // A renewed lease keeps the key; one that lapsed (its process died) is taken over once,
    // with the first claim's seed, and only by the same request.
    store
        .renew_idempotency("scope", "POST /v2/x", "k2", at(30))
        .await
        .unwrap();
    assert_eq!(claim("k2", "h1", 25).await, IdempotencyClaim::InProgress);
    assert_eq!(claim("k2", "h2", 31).await, IdempotencyClaim::Mismatch);
    assert_eq!(claim("k2", "h1", 31).await, fresh(4, true));
    assert_eq!(claim("k2", "h1", 32).await, IdempotencyClaim::InProgress);
    // Past the window the record is forgotten.
    assert_eq!(claim("k1", "h2", 500).await, fresh(500, false));
}

async fn claims_take_due_jobs_and_expired_leases_once(backend: Backend) {
    let (store, _db) = store(backend).await;
    let now = Utc::now();
    let mut due = job("A");
    due.run_after = now;
    let mut later = job("B");
    later.run_after = now + Duration::hours(1);
    store.insert_job(&due, now).await.unwrap();
    store.insert_job(&later, now).await.unwrap();

    let lease = now + Duration::seconds(30);
    let first = store.claim_jobs("w1", 10, now, lease).await.unwrap();
    assert_eq!(
        first.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [due.id.as_str()]
    );
    assert_eq!(
        (first[0].status, first[0].attempts),
        (JobStatus::InProgress, 1)
    );
    assert!(
        store
            .claim_jobs("w2", 10, now, lease)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // The lease lapses (its process died): another worker takes the job, the first is fenced.
    let later_now = lease + Duration::seconds(1);
    let taken = store
        .claim_jobs("w2", 10, later_now, later_now + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(
        (taken[0].lease_owner.as_deref(), taken[0].attempts),
        (Some("w2"), 2)
    );
    let stale = first[0].lease().unwrap();
    assert_eq!(
        store.heartbeat(&stale, later_now, lease).await.unwrap(),
        None
    );
    // A canceled running job is claimed as CANCELING once its lease lapses.
    let fresh = taken[0].lease().unwrap();
    assert_eq!(
        store.request_cancel(&due.id, later_now).await.unwrap(),
        Some(JobStatus::Canceling)
    );
    let expired = later_now + Duration::seconds(31);
    let again = store
        .claim_jobs("w3", 10, expired, expired + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(again[0].status, JobStatus::Canceling);
    assert_eq!(
        store.heartbeat(&fresh, expired, expired).await.unwrap(),
        None
    );
}

on_both_backends!(
    backups_follow_their_life_and_the_task_rules,
    task_rules_hold_when_two_creators_race,
    policies_round_trip_typed,
    idempotency_records_claim_replay_and_expire,
    claims_take_due_jobs_and_expired_leases_once,
);

/// Every named unique constraint is reported by its name on both databases (SQLite reports
/// columns, mapped to the Postgres names), so callers can match on it.
async fn every_unique_constraint_is_named_alike(backend: Backend) {
    use backstop::domain::access::OrgRole;
    use backstop::store::{
        ApiKey, Cluster, ClusterStorage, CustomRole, Plan, StoreError, UNIQUE_CONSTRAINTS,
    };
    let (store, _db) = store(backend).await;
    let mut seen: Vec<String> = Vec::new();
    let mut expect = |result: Result<(), StoreError>, name: &str| match result {
        Err(StoreError::Conflict(got)) => {
            assert_eq!(got, name);
            seen.push(got);
        }
        other => panic!("{name}: expected a conflict, got {other:?}"),
    };
    let project = |id: &str, name: &str| Project {
        id: id.into(),
        name: name.into(),
        created_at: at(0),
    };
    expect(
        store.insert_project(&project("proj-a", "other")).await,
        "projects_pkey",
    );
    expect(
        store.insert_project(&project("proj-b", "a")).await,
        "projects_name_key",
    );
    let key = |id: &str, hash: &str| ApiKey {
        id: id.into(),
        name: "k".into(),
        key_hash: hash.into(),
        org_role: OrgRole::Member,
        project_roles: Vec::new(),
        created_at: at(0),
    };
    store.insert_api_key(&key("key-1", "h1")).await.unwrap();
    expect(
        store.insert_api_key(&key("key-1", "h2")).await,
        "api_keys_pkey",
    );
    expect(
        store.insert_api_key(&key("key-2", "h1")).await,
        "api_keys_key_hash_key",
    );
    let role = CustomRole {
        name: "auditor".into(),
        privileges: Vec::new(),
        created_at: at(0),
    };
    store.insert_role(&role).await.unwrap();
    expect(store.insert_role(&role).await, "roles_pkey");
    let cluster = |id: &str, name: &str| Cluster {
        id: id.into(),
        project_id: "proj-a".into(),
        name: name.into(),
        region_id: "local".into(),
        plan: Plan::Dedicated,
        cu_size: 1,
        milvus_uri: "http://127.0.0.1:19530".into(),
        storage: ClusterStorage::Local { path: "/x".into() },
        secrets: "sealed".into(),
        created_at: at(0),
    };
    store
        .insert_cluster(&cluster("in01-1", "c1"))
        .await
        .unwrap();
    expect(
        store.insert_cluster(&cluster("in01-1", "c2")).await,
        "clusters_pkey",
    );
    expect(
        store.insert_cluster(&cluster("in01-2", "c1")).await,
        "clusters_project_name_key",
    );
    let plain = job("A");
    store.insert_job(&plain, at(0)).await.unwrap();
    expect(store.insert_job(&plain, at(0)).await, "jobs_pkey");
    let mut deduped = job("A");
    deduped.dedupe_key = Some("once".into());
    store.insert_job(&deduped, at(0)).await.unwrap();
    let mut again = job("A");
    again.dedupe_key = Some("once".into());
    expect(store.insert_job(&again, at(0)).await, "jobs_dedupe_key_key");

    let created = |result: Result<backstop::store::Backup, CreateBackupError>| match result {
        Err(CreateBackupError::Store(e)) => Err(e),
        Err(CreateBackupError::ManualRunning) => {
            Err(StoreError::Conflict("backups_one_manual_creating".into()))
        }
        Err(CreateBackupError::NameTaken(_)) => {
            Err(StoreError::Conflict("backups_cluster_name_key".into()))
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => Ok(()),
    };
    let backup = store
        .create_backup(
            &new_backup("c1", CreationMethod::Manual, Some("b")),
            &mut job("B"),
            at(1),
        )
        .await
        .unwrap();
    expect(
        created(
            store
                .create_backup(
                    &new_backup("c1", CreationMethod::Manual, None),
                    &mut job("B"),
                    at(2),
                )
                .await,
        ),
        "backups_one_manual_creating",
    );
    expect(
        created(
            store
                .create_backup(
                    &new_backup("c1", CreationMethod::Auto, Some("b")),
                    &mut job("B"),
                    at(2),
                )
                .await,
        ),
        "backups_cluster_name_key",
    );
    // What no store method can provoke (ids and sequence numbers are the store's own), by
    // copying the row with one unique column kept.
    const COPY_ROW: &str = "INSERT INTO backups (id, project_id, cluster_id, cluster_name, region_id, name, seq, \
        backup_type, creation_method, status, selection, collections, size, job_id, reason, expire_at, \
        created_at, updated_at, finished_at, deleted_at, copy_regions) \
        SELECT $2, project_id, cluster_id, cluster_name, region_id, $3, $4, backup_type, 'AUTO', 'FAILED', \
        selection, collections, size, job_id, reason, expire_at, created_at, updated_at, finished_at, \
        deleted_at, copy_regions FROM backups WHERE id = $1";
    let raw = |sql: &'static str, args: Vec<String>, seq: i64| {
        let store = store.clone();
        async move {
            let result = match store.pool() {
                backstop::store::Pool::Postgres(p) => {
                    let mut q = sqlx::query(sql);
                    for a in &args {
                        q = q.bind(a);
                    }
                    q.bind(seq).execute(p).await.map(|_| ())
                }
                backstop::store::Pool::Sqlite(p) => {
                    let mut q = sqlx::query(sql);
                    for a in &args {
                        q = q.bind(a);
                    }
                    q.bind(seq).execute(p).await.map(|_| ())
                }
            };
            result.map_err(StoreError::from_write)
        }
    };
    let id = backup.id.clone();
    expect(
        raw(COPY_ROW, vec![id.clone(), id.clone(), "b2".into()], 9).await,
        "backups_pkey",
    );
    expect(
        raw(
            COPY_ROW,
            vec![id.clone(), "backup-x".into(), "b3".into()],
            backup.seq,
        )
        .await,
        "backups_cluster_seq_key",
    );
    let copy_job = job("COPY_BACKUP").for_backup(&backup);
    let copy = (backup.copy_regions[0].clone(), copy_job);
    assert!(store
        .complete_backup(
            &backup.id,
            &backstop::store::Held {
                size: 0,
                collections: &[],
                rbac: None
            },
            std::slice::from_ref(&copy),
            at(3)
        )
        .await
        .unwrap());
    const COPY_COPY: &str = "INSERT INTO backup_copies (backup_id, region_id, status, size, job_id, reason, expire_at, created_at, updated_at) \
        SELECT backup_id, region_id, status, $2 + size, job_id, reason, expire_at, created_at, updated_at \
        FROM backup_copies WHERE backup_id = $1";
    expect(raw(COPY_COPY, vec![id], 0).await, "backup_copies_pkey");

    seen.sort();
    let mut all: Vec<String> = UNIQUE_CONSTRAINTS.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(seen, all, "every named constraint is exercised");
}

on_both_backends!(every_unique_constraint_is_named_alike);
