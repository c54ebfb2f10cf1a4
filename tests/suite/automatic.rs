//! Automatic backups, retention and usage, driven by the test's own clock through
//! `Scheduler::tick`. Backup jobs do not run here (workers off): these tests are about which
//! backups exist and when, not about copying.

use backstop::automatic::Scheduler;
use backstop::service::Services;
use backstop::store::Store;
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::{shared_milvus, test_config, Backend, TestApp};

/// A scheduler of its own, as another replica would run it, on the app's database.
async fn replica(app: &TestApp) -> Scheduler {
    Scheduler::new(Services::connect(test_config(&app.db)).await.unwrap())
}

/// Ends every pending automatic backup of `cluster` (FAILED), as its job would: workers are
/// off here, and a cluster has at most one automatic backup pending at a time.
async fn end_pending_autos(app: &TestApp, cluster: &str) {
    let store = Store::connect(&app.db.url, 1).await.unwrap();
    for (id, status, _) in store.auto_backups_of_cluster(cluster).await.unwrap() {
        if status == backstop::domain::backups::BackupStatus::Creating {
            store
                .end_backup(
                    &id,
                    backstop::domain::backups::BackupStatus::Failed,
                    "test",
                    Utc::now(),
                )
                .await
                .unwrap();
        }
    }
    store.close().await;
}

/// `h:min` UTC on the Monday `week` weeks after the first Monday at least two weeks from
/// now: never today, whose slot enabling a policy takes (a fixed date failed on the day it
/// named).
fn monday_at(week: i64, h: u32, min: u32) -> DateTime<Utc> {
    let mut day = Utc::now().date_naive() + Duration::days(14);
    while day.weekday() != chrono::Weekday::Mon {
        day += Duration::days(1);
    }
    let day = day + Duration::weeks(week);
    Utc.from_utc_datetime(&day.and_hms_opt(h, min, 0).unwrap())
}

async fn backups(app: &TestApp, cluster: &str, method: &str) -> Vec<Value> {
    let listed = app
        .admin(
            Method::GET,
            &format!("/v2/backups?clusterId={cluster}&creationMethod={method}&pageSize=100"),
            None,
        )
        .await;
    listed["backups"].as_array().unwrap().clone()
}

async fn scheduler_takes_each_slot_once_on_chosen_days(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let policy_path = format!("/v2/clusters/{cluster}/backups/policy");
    let key = Some(app.admin_key.as_str());

    // Invalid values are refused with the field named.
    for (bad, field) in [
        (
            json!({"enabled": true, "frequency": "0,8", "startTime": "02:00-04:00", "retentionDays": 3}),
            "frequency",
        ),
        (
            json!({"enabled": true, "frequency": "1", "startTime": "2am", "retentionDays": 3}),
            "startTime",
        ),
        (
            json!({"enabled": true, "frequency": "1", "startTime": "02:00-04:00", "retentionDays": 31}),
            "retentionDays",
        ),
        (
            json!({"enabled": true, "frequency": "1", "startTime": "02:00-04:00"}),
            "retentionDays",
        ),
        (
            json!({"enabled": true, "frequency": "1", "startTime": "02:00-04:00", "retentionDays": 3,
                   "crossRegionCopies": [{"regionId": "nowhere", "retentionDays": 3}]}),
            "crossRegionCopies[0].regionId",
        ),
    ] {
        let (status, body) = app
            .call(Method::POST, &policy_path, key, Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }
    let before = app.admin(Method::GET, &policy_path, None).await;
    assert_eq!(before["status"], "DISABLED");

    // A manual backup is pending; enabling the policy still starts an automatic one at once.
    let manual = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    let policy = app
        .admin(
            Method::POST,
            &policy_path,
            Some(json!({"enabled": true, "frequency": "1", "startTime": "02:00-04:00", "retentionDays": 3})),
        )
        .await;
    assert_eq!(policy["status"], "ENABLED");
    assert_eq!(policy["frequency"], "1");
    let auto = backups(&app, &cluster, "AUTO").await;
    assert_eq!(auto.len(), 1, "first automatic backup on enable: {auto:?}");
    assert_eq!(auto[0]["backupType"], "CLUSTER");
    assert!(auto[0]["expireTime"].is_string(), "{}", auto[0]);

    // While it is pending, a manual backup is refused, saying why.
    app.admin(
        Method::POST,
        &format!("/v2/jobs/{}/cancel", manual["jobId"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            key,
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("automatic"),
        "{body}"
    );

    // At most one automatic backup at a time: a tick while the first is pending starts none.
    let (a, b) = (replica(&app).await, replica(&app).await);
    assert!(a
        .tick(monday_at(0, 2, 10))
        .await
        .unwrap()
        .started
        .is_empty());
    end_pending_autos(&app, &cluster).await;

    // Two replicas tick in Monday's window at once: one backup.
    let monday = monday_at(0, 2, 30);
    let (ra, rb) = tokio::join!(a.tick(monday), b.tick(monday));
    let started = ra.unwrap().started.len() + rb.unwrap().started.len();
    assert_eq!(started, 1, "one backup per slot across replicas");
    assert_eq!(
        a.tick(monday + Duration::minutes(20))
            .await
            .unwrap()
            .started
            .len(),
        0
    );
    // Not on Tuesday, not outside the window.
    assert!(a
        .tick(monday_at(0, 2, 30) + Duration::days(1))
        .await
        .unwrap()
        .started
        .is_empty());
    assert!(a.tick(monday_at(0, 4, 0)).await.unwrap().started.is_empty());
    assert_eq!(backups(&app, &cluster, "AUTO").await.len(), 2);

    // The service was down through the next Monday's window: reported, not taken.
    let late = a.tick(monday_at(1, 5, 0)).await.unwrap();
    assert!(late.started.is_empty());
    assert!(
        late.missed
            .contains(&(cluster.clone(), monday_at(1, 0, 0).date_naive())),
        "{late:?}"
    );
    // Back within the following window: taken.
    end_pending_autos(&app, &cluster).await;
    let back = a.tick(monday_at(2, 3, 59)).await.unwrap();
    assert_eq!(back.started.len(), 1, "{back:?}");
    assert_eq!(backups(&app, &cluster, "AUTO").await.len(), 3);

    // Disabled: nothing more.
    app.admin(Method::POST, &policy_path, Some(json!({"enabled": false})))
        .await;
    assert!(a
        .tick(monday_at(3, 2, 30))
        .await
        .unwrap()
        .started
        .is_empty());
}

async fn retention_deletes_only_automatic_backups(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let other = app
        .register_cluster(&project, "other", &milvus.uri, &milvus.storage)
        .await;
    // A window twelve hours away from now, so that the sweeper's ticks below (now, in one
    // day, in three) fall outside it and start no automatic backup of their own.
    let hour = (Utc::now().hour() + 12) % 24;
    let window = format!("{hour:02}:00-{hour:02}:59");
    for c in [&cluster, &other] {
        app.admin(
            Method::POST,
            &format!("/v2/clusters/{c}/backups/policy"),
            Some(json!({"enabled": true, "frequency": "1,2,3,4,5,6,7", "startTime": window, "retentionDays": 2})),
        )
        .await;
    }
    // The automatic backups end (canceled before they ran); a manual one too.
    for c in [&cluster, &other] {
        let auto = backups(&app, c, "AUTO").await;
        app.admin(
            Method::POST,
            &format!("/v2/jobs/{}/cancel", auto[0]["jobId"].as_str().unwrap()),
            None,
        )
        .await;
    }
    let manual = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    app.admin(
        Method::POST,
        &format!("/v2/jobs/{}/cancel", manual["jobId"].as_str().unwrap()),
        None,
    )
    .await;

    // Not yet expired.
    let sweeper = replica(&app).await;
    assert!(sweeper
        .tick(Utc::now() + Duration::days(1))
        .await
        .unwrap()
        .expired
        .is_empty());
    // Expired: the automatic backups go, the manual one stays.
    let report = sweeper.tick(Utc::now() + Duration::days(3)).await.unwrap();
    assert_eq!(report.expired.len(), 2, "{report:?}");
    for c in [&cluster, &other] {
        let auto = backups(&app, c, "AUTO").await;
        assert_eq!(auto[0]["status"], "DELETING", "{auto:?}");
    }
    let kept = backups(&app, &cluster, "MANUAL").await;
    assert_eq!(kept[0]["status"], "CANCELED", "{kept:?}");

    // Deleting a cluster deletes its automatic backups, the one still pending too (canceled,
    // then swept), and keeps its manual ones.
    app.admin(
        Method::POST,
        &format!("/v2/clusters/{other}/backups/create"),
        Some(json!({"backupType": "CLUSTER"})),
    )
    .await;
    let second_auto = sweeper
        .services()
        .start_auto_backup(
            &app_policy(&app, &other).await,
            &format!("auto:{other}:test"),
            Utc::now(),
        )
        .await
        .unwrap()
        .expect("started");
    app.admin(Method::DELETE, &format!("/v2/clusters/{other}"), None)
        .await;
    sweeper.tick(Utc::now()).await.unwrap();
    let listed = app
        .admin(
            Method::GET,
            &format!("/v2/backups?clusterId={other}&pageSize=100"),
            None,
        )
        .await;
    let statuses: Vec<(String, String)> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["creationMethod"].as_str().unwrap().to_owned(),
                b["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses
            .iter()
            .any(|(m, s)| m == "MANUAL" && s != "DELETING"),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|(m, _)| m == "AUTO")
            .all(|(_, s)| s == "DELETING"),
        "{statuses:?}"
    );
    assert!(listed.to_string().contains(&second_auto.id));
}

/// Copies of automatic backups follow their region's retention: past it, the sweeper deletes
/// the copy (and only the copy).
async fn expired_copies_are_swept(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| {
        c.jobs.enabled = false;
        c.regions.push(backstop::config::RegionConfig {
            id: "eu".to_owned(),
            cloud_provider: "local".to_owned(),
            price_per_gb_month: 0.0,
            storage: backstop::config::StorageConfig::Local { path: None },
        });
    })
    .await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    let backup_id = created["backupId"].as_str().unwrap();
    // Record the backup as made, with a copy in "eu" kept one day (as a policy would ask).
    let store = Store::connect(&app.db.url, 1).await.unwrap();
    let copy = backstop::domain::backups::CopyRequest {
        region_id: "eu".to_owned(),
        retention_days: Some(1),
    };
    let mut job =
        backstop::store::NewJob::due_now(&project, "COPY_BACKUP", json!({"regionId": "eu"}), 5);
    job.backup_id = Some(backup_id.to_owned());
    assert!(store
        .complete_backup(
            backup_id,
            &backstop::store::Held {
                size: 10,
                collections: &[],
                rbac: None
            },
            &[(copy, job)],
            Utc::now()
        )
        .await
        .unwrap());
    let available = backstop::domain::backups::BackupStatus::Available;
    assert!(store
        .finish_copy(backup_id, "eu", available, 10, None, Utc::now())
        .await
        .unwrap());

    let sweeper = replica(&app).await;
    assert!(sweeper.tick(Utc::now()).await.unwrap().expired.is_empty());
    let report = sweeper.tick(Utc::now() + Duration::days(2)).await.unwrap();
    assert_eq!(report.expired, vec![format!("{backup_id}@eu")]);
    let described = app
        .admin(
            Method::GET,
            &format!("/v2/clusters/{cluster}/backups/{backup_id}"),
            None,
        )
        .await;
    assert_eq!(
        described["status"], "AVAILABLE",
        "the manual backup stays: {described}"
    );
    assert_eq!(described["copies"][0]["status"], "DELETING", "{described}");
}

async fn app_policy(app: &TestApp, cluster: &str) -> backstop::store::Policy {
    let store = Store::connect(&app.db.url, 1).await.unwrap();
    store.get_policy(cluster).await.unwrap().expect("policy")
}

/// 2 GB kept 44 days and 6 hours is billed as 45 days at the region's price.
async fn usage_bills_started_days_with_a_minimum_of_one(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| {
        c.jobs.enabled = false;
        c.regions[0].price_per_gb_month = 0.3;
    })
    .await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(json!({"backupType": "CLUSTER"})),
        )
        .await;
    let backup_id = created["backupId"].as_str().unwrap();
    // The copy itself is not the point here: record the backup as made 50 days ago with 2 GB
    // and deleted 44 days 6 hours later.
    let store = Store::connect(&app.db.url, 1).await.unwrap();
    assert!(store
        .complete_backup(
            backup_id,
            &backstop::store::Held {
                size: 2_000_000_000,
                collections: &[],
                rbac: None
            },
            &[],
            Utc::now()
        )
        .await
        .unwrap());
    let created_at = Utc::now() - Duration::days(50);
    let deleted_at = created_at + Duration::days(44) + Duration::hours(6);
    let backdate =
        "UPDATE backups SET created_at = $1, deleted_at = $2, status = 'DELETED' WHERE id = $3";
    match store.pool() {
        backstop::store::Pool::Postgres(p) => {
            let q = sqlx::query(backdate).bind(created_at).bind(deleted_at);
            q.bind(backup_id).execute(p).await.unwrap();
        }
        backstop::store::Pool::Sqlite(p) => {
            let q = sqlx::query(backdate).bind(created_at).bind(deleted_at);
            q.bind(backup_id).execute(p).await.unwrap();
        }
    }
    let end = Utc::now();
    let usage = app
        .admin(
            Method::GET,
            &format!(
                "/v2/usage/backups?projectId={project}&startTime={}&endTime={}",
                urlencode(created_at - Duration::days(1)),
                urlencode(end)
            ),
            None,
        )
        .await;
    let region = &usage["regions"][0];
    assert_eq!(region["regionId"], "local");
    let line = &region["backups"][0];
    assert_eq!(line["backupId"], backup_id);
    assert_eq!(line["days"], 45, "{usage}");
    assert!(
        (line["gbDays"].as_f64().unwrap() - 90.0).abs() < 1e-9,
        "{usage}"
    );
    assert!(
        (line["cost"].as_f64().unwrap() - 0.9).abs() < 1e-9,
        "{usage}"
    );
    assert!((usage["totalCost"].as_f64().unwrap() - 0.9).abs() < 1e-9);

    // A few minutes still bill one day.
    let created_at = deleted_at - Duration::minutes(10);
    let short = app
        .admin(
            Method::GET,
            &format!(
                "/v2/usage/backups?startTime={}&endTime={}",
                urlencode(created_at),
                urlencode(created_at + Duration::minutes(5))
            ),
            None,
        )
        .await;
    assert_eq!(short["regions"][0]["backups"][0]["days"], 1, "{short}");
}

fn urlencode(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace(':', "%3A")
        .replace('+', "%2B")
}

/// Toggling a policy cannot pile up automatic backups: one at a time per cluster, and
/// enabling inside an open window takes that slot's backup, which the scheduler then does
/// not take again.
async fn toggling_a_policy_starts_one_backup(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn(backend).await;
    let project = app.create_project("p").await;
    let cluster = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let policy_path = format!("/v2/clusters/{cluster}/backups/policy");
    // A window open all day, every day: enabling is always inside it.
    let enable = json!({"enabled": true, "frequency": "1,2,3,4,5,6,7", "startTime": "00:00-23:59", "retentionDays": 3});
    for _ in 0..6 {
        app.admin(Method::POST, &policy_path, Some(enable.clone()))
            .await;
        app.admin(Method::POST, &policy_path, Some(json!({"enabled": false})))
            .await;
    }
    assert_eq!(
        backups(&app, &cluster, "AUTO").await.len(),
        1,
        "one, pending"
    );
    // It ends; toggling again the same day, and the scheduler's tick in the window, take
    // no second one: it was this slot's.
    end_pending_autos(&app, &cluster).await;
    app.admin(Method::POST, &policy_path, Some(enable.clone()))
        .await;
    let ticked = replica(&app).await.tick(Utc::now()).await.unwrap();
    assert!(ticked.started.is_empty(), "{ticked:?}");
    assert_eq!(backups(&app, &cluster, "AUTO").await.len(), 1);
}

/// Deleting a cluster takes its automatic backups with it, so it needs `backup.delete` as
/// well as `cluster.manage` while it has any; without them `cluster.manage` is enough.
async fn deleting_a_cluster_with_automatic_backups_needs_backup_delete(backend: Backend) {
    let milvus = shared_milvus();
    let app = TestApp::spawn_with(backend, |c| c.jobs.enabled = false).await;
    let project = app.create_project("p").await;
    let read_write = app.create_key(&project, "READ_WRITE").await;
    let with_autos = app
        .register_cluster(&project, "prod", &milvus.uri, &milvus.storage)
        .await;
    let plain = app
        .register_cluster(&project, "dev", &milvus.uri, &milvus.storage)
        .await;
    app.admin(
        Method::POST,
        &format!("/v2/clusters/{with_autos}/backups/policy"),
        Some(json!({"enabled": true, "frequency": "1,2,3,4,5,6,7", "startTime": "00:00-23:59", "retentionDays": 3})),
    )
    .await;
    assert_eq!(backups(&app, &with_autos, "AUTO").await.len(), 1);

    let (status, json) = app
        .call(
            Method::DELETE,
            &format!("/v2/clusters/{with_autos}"),
            Some(&read_write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert!(
        json["message"].as_str().unwrap().contains("backup.delete"),
        "{json}"
    );
    let still = app
        .admin(Method::GET, &format!("/v2/clusters/{with_autos}"), None)
        .await;
    assert_eq!(still["clusterId"], json!(with_autos), "nothing deleted");
    assert_eq!(
        backups(&app, &with_autos, "AUTO").await[0]["status"],
        "CREATING"
    );

    let (status, json) = app
        .call(
            Method::DELETE,
            &format!("/v2/clusters/{plain}"),
            Some(&read_write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // An ADMIN key (backup.delete) deletes the other one, its automatic backup too.
    let admin = app.create_key(&project, "ADMIN").await;
    let (status, json) = app
        .call(
            Method::DELETE,
            &format!("/v2/clusters/{with_autos}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

on_both_backends!(
    deleting_a_cluster_with_automatic_backups_needs_backup_delete,
    toggling_a_policy_starts_one_backup,
    scheduler_takes_each_slot_once_on_chosen_days,
    retention_deletes_only_automatic_backups,
    usage_bills_started_days_with_a_minimum_of_one,
    expired_copies_are_swept,
);
