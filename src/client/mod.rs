//! The command-line client in the `backstop` binary: subcommands that call a Backstop server's
//! public `/v2` API (local or remote) and nothing else, so they follow the same rules as any
//! other caller. `--wait` follows a started job to its end (`watch`).

pub mod api;
pub mod output;
pub mod watch;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use api::{query, segment};
pub use api::{Api, ClientError, Connection};
use output::Format;
use watch::Display;

/// Where the client talks to, given once for every client command. Its variables are listed
/// in `config::CLIENT_VARIABLES`, which `serve` does not take for config keys.
#[derive(Debug, Args)]
pub struct Target {
    /// The Backstop server.
    #[arg(
        long,
        global = true,
        env = "BACKSTOP_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// The API key to send (never printed; prefer the environment variable).
    #[arg(long, global = true, env = "BACKSTOP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// `table` for people, `json` for scripts (the API's `data` as it came).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// The client's commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Projects (org OWNER creates them).
    #[command(subcommand)]
    Projects(Projects),
    /// Registered Milvus clusters.
    #[command(subcommand)]
    Clusters(Clusters),
    /// Backups: create, list, describe, delete, verify.
    #[command(subcommand)]
    Backup(Backups),
    /// Restore a backup's collections, or all of it, into a registered cluster.
    #[command(subcommand)]
    Restore(Restore),
    /// The job center: list, describe, watch and cancel jobs.
    #[command(subcommand)]
    Jobs(Jobs),
    /// A cluster's automatic backups.
    #[command(subcommand)]
    Policy(Policy),
    /// Stored bytes and cost per region and backup.
    Usage(Usage),
    /// API keys (org OWNER).
    #[command(subcommand)]
    Keys(Keys),
}

#[derive(Debug, Subcommand)]
pub enum Projects {
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        idempotency: Idempotency,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum Clusters {
    /// Clusters the key can see, with a live status.
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Register a running Milvus and where it keeps its binlogs.
    Register(Box<Register>),
    /// One cluster, probed now.
    Describe { cluster: String },
    /// Databases and collections, read live from the cluster's Milvus.
    Collections { cluster: String },
    /// Forget a cluster (its automatic backups go with it; manual ones stay).
    Delete { cluster: String },
}

#[derive(Debug, Args)]
pub struct Register {
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub project: String,
    #[arg(long, default_value = "local")]
    pub region: String,
    /// The Milvus proxy, http(s)://host:port.
    #[arg(long)]
    pub uri: String,
    /// `user:password` or an API key for Milvus (stored encrypted; prefer the variable).
    #[arg(long, env = "BACKSTOP_MILVUS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The Milvus's local binlog directory (its localStorage.path)...
    #[arg(
        long,
        conflicts_with = "s3_bucket",
        required_unless_present = "s3_bucket"
    )]
    pub storage_path: Option<String>,
    /// ...or its MinIO/S3 bucket.
    #[arg(long)]
    pub s3_bucket: Option<String>,
    #[arg(long, requires = "s3_bucket")]
    pub s3_root_path: Option<String>,
    #[arg(long, requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    #[arg(
        long,
        requires = "s3_bucket",
        env = "BACKSTOP_S3_ACCESS_KEY_ID",
        hide_env_values = true
    )]
    pub s3_access_key_id: Option<String>,
    #[arg(
        long,
        requires = "s3_bucket",
        env = "BACKSTOP_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub s3_secret_access_key: Option<String>,
    #[arg(long, default_value = "Dedicated")]
    pub plan: String,
    #[arg(long, default_value_t = 1)]
    pub cu_size: i64,
    #[command(flatten)]
    pub idempotency: Idempotency,
}

/// `--idempotency-key`: without one, commands that create send a new random key, so a retry
/// of the same command run (after a dropped connection) cannot create twice.
#[derive(Debug, Args)]
pub struct Idempotency {
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

impl Idempotency {
    fn key(&self) -> String {
        self.idempotency_key
            .clone()
            .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4()))
    }
}

#[derive(Debug, Args)]
pub struct Wait {
    /// Follow the job it starts to its end (exit 0 only when it succeeds).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum Backups {
    /// Back up a whole cluster, or the collections named.
    Create {
        #[arg(long)]
        cluster: String,
        /// `db.collection` (or `collection` in `--db`), comma-separated; none: the cluster.
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// The database of collections given without one.
        #[arg(long, default_value = "default")]
        db: String,
        #[arg(long)]
        name: Option<String>,
        /// Also keep a copy in this region (repeatable).
        #[arg(long = "copy-to")]
        copy_to: Vec<String>,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        idempotency: Idempotency,
    },
    /// Backups the key can see, newest first.
    List {
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        project: Option<String>,
        /// CLUSTER or COLLECTION.
        #[arg(long = "type")]
        backup_type: Option<String>,
        /// MANUAL or AUTO.
        #[arg(long)]
        method: Option<String>,
    },
    /// One backup with its collections.
    Describe {
        #[arg(long)]
        cluster: String,
        backup: String,
    },
    /// Delete a backup (and its copies).
    Delete {
        #[arg(long)]
        cluster: String,
        backup: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// Re-read every object of a backup and check it against its manifest.
    Verify {
        #[arg(long)]
        cluster: String,
        backup: String,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        idempotency: Idempotency,
    },
}

#[derive(Debug, Args)]
pub struct RestoreCommon {
    /// The backup's cluster.
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub backup: String,
    /// The registered cluster to restore into.
    #[arg(long)]
    pub to_cluster: String,
    /// What to do with a destination collection that exists: FAIL, DROP or SKIP.
    #[arg(long)]
    pub on_existing: Option<String>,
    /// Schema, partitions, indexes and aliases only; no rows.
    #[arg(long)]
    pub meta_only: bool,
    /// Also restore the backup's roles and grants.
    #[arg(long)]
    pub rbac: bool,
    /// Restore into a Milvus version Backstop has not been tested against.
    #[arg(long)]
    pub allow_untested_version: bool,
    #[command(flatten)]
    pub wait: Wait,
    #[command(flatten)]
    pub idempotency: Idempotency,
}

#[derive(Debug, Subcommand)]
pub enum Restore {
    /// Restore chosen collections (all of the backup's when none is named).
    Collection {
        #[command(flatten)]
        common: RestoreCommon,
        /// `db.collection` (or `collection` in `--db`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        #[arg(long, default_value = "default")]
        db: String,
        /// `old:new` restores collection old as new (repeatable).
        #[arg(long)]
        rename: Vec<String>,
        /// LOADED or NOT_LOADED.
        #[arg(long)]
        status: Option<String>,
    },
    /// Restore every collection of the backup, under its own name.
    Cluster {
        #[command(flatten)]
        common: RestoreCommon,
        /// KEEP (load what was loaded) or RELEASE.
        #[arg(long)]
        status: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum Jobs {
    /// Jobs the key can see, newest first.
    List {
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long = "type")]
        job_type: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    Describe {
        job: String,
    },
    /// Follow a job to its end (exit 0 only when it succeeds).
    Watch {
        job: String,
    },
    Cancel {
        job: String,
        #[command(flatten)]
        wait: Wait,
    },
}

#[derive(Debug, Subcommand)]
pub enum Policy {
    Get {
        #[arg(long)]
        cluster: String,
    },
    /// Turn automatic backups on (with their schedule) or off.
    Set {
        #[arg(long)]
        cluster: String,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Days of the week, 1 (Monday) to 7: `1,3,5`.
        #[arg(long)]
        days: Option<String>,
        /// UTC window `HH:mm-HH:mm`.
        #[arg(long)]
        window: Option<String>,
        /// Days each automatic backup is kept (1-30).
        #[arg(long)]
        retention: Option<i64>,
        #[command(flatten)]
        idempotency: Idempotency,
    },
}

#[derive(Debug, Args)]
pub struct Usage {
    #[arg(long)]
    pub project: Option<String>,
    /// RFC 3339; default 30 days before --end.
    #[arg(long)]
    pub start: Option<String>,
    /// RFC 3339; default now.
    #[arg(long)]
    pub end: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Create a key; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// OWNER or MEMBER.
        #[arg(long)]
        org_role: Option<String>,
        /// `projectId:ROLE` (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    List,
    Delete {
        key: String,
    },
}

/// Runs one client command; what it prints goes to stdout, progress and errors to stderr.
pub async fn run(command: ClientCommand, target: &Target) -> Result<(), ClientError> {
    let api = Api::new(Connection {
        url: target.url.clone(),
        api_key: target.api_key.clone(),
    })?;
    let out = target.output;
    let text = match command {
        ClientCommand::Projects(c) => projects(&api, out, c).await?,
        ClientCommand::Clusters(c) => clusters(&api, out, c).await?,
        ClientCommand::Backup(c) => backups(&api, out, c).await?,
        ClientCommand::Restore(c) => restore(&api, out, c).await?,
        ClientCommand::Jobs(c) => jobs(&api, out, c).await?,
        ClientCommand::Policy(c) => policy(&api, out, c).await?,
        ClientCommand::Usage(u) => usage(&api, out, u).await?,
        ClientCommand::Keys(c) => keys(&api, out, c).await?,
    };
    print!("{text}");
    Ok(())
}

const CLUSTER_COLUMNS: &[(&str, &str)] = &[
    ("CLUSTER", "clusterId"),
    ("NAME", "clusterName"),
    ("PROJECT", "projectId"),
    ("REGION", "regionId"),
    ("STATUS", "status"),
    ("URI", "connectAddress"),
];

const BACKUP_COLUMNS: &[(&str, &str)] = &[
    ("BACKUP", "backupId"),
    ("NAME", "backupName"),
    ("CLUSTER", "clusterId"),
    ("TYPE", "backupType"),
    ("METHOD", "creationMethod"),
    ("STATUS", "status"),
    ("SIZE", "size"),
    ("CREATED", "createTime"),
];

const JOB_COLUMNS: &[(&str, &str)] = &[
    ("JOB", "jobId"),
    ("TYPE", "type"),
    ("STATUS", "status"),
    ("PROGRESS", "progress"),
    ("CLUSTER", "resource.clusterId"),
    ("BACKUP", "resource.backupId"),
    ("STEP", "currentStep"),
];

async fn projects(api: &Api, out: Format, command: Projects) -> Result<String, ClientError> {
    Ok(match command {
        Projects::Create { name, idempotency } => {
            let key = idempotency.key();
            let body = json!({"projectName": name});
            let created = api.post("/v2/projects", Some(body), Some(&key)).await?;
            said(out, &created, || {
                format!("project {} created\n", text(&created, "projectId"))
            })
        }
        Projects::List => output::list(
            out,
            &api.get_all("/v2/projects", "projects").await?,
            &[
                ("PROJECT", "projectId"),
                ("NAME", "projectName"),
                ("CREATED", "createTime"),
            ],
        ),
    })
}

async fn clusters(api: &Api, out: Format, command: Clusters) -> Result<String, ClientError> {
    Ok(match command {
        Clusters::List { project } => {
            let path = format!(
                "/v2/clusters{}",
                query(&[("projectId", project.as_deref())])
            );
            output::list(out, &api.get_all(&path, "clusters").await?, CLUSTER_COLUMNS)
        }
        Clusters::Register(r) => {
            let storage = match (&r.storage_path, &r.s3_bucket) {
                (Some(path), _) => json!({"type": "local", "path": path}),
                (None, Some(bucket)) => {
                    let mut s3 = json!({"type": "s3", "bucket": bucket,
                        "rootPath": r.s3_root_path.clone().unwrap_or_default(),
                        "accessKeyId": r.s3_access_key_id, "secretAccessKey": r.s3_secret_access_key});
                    if let Some(endpoint) = &r.s3_endpoint {
                        s3["endpoint"] = json!(endpoint);
                    }
                    s3
                }
                (None, None) => unreachable!("clap requires one of them"),
            };
            let mut milvus = json!({"uri": r.uri});
            if let Some(token) = &r.token {
                milvus["token"] = json!(token);
            }
            let body = json!({"clusterName": r.name, "projectId": r.project, "regionId": r.region,
                "plan": r.plan, "cuSize": r.cu_size, "milvus": milvus, "storage": storage});
            let key = r.idempotency.key();
            let created = api.post("/v2/clusters", Some(body), Some(&key)).await?;
            said(out, &created, || {
                format!("cluster {} registered\n", text(&created, "clusterId"))
            })
        }
        Clusters::Describe { cluster } => {
            output::object(out, &api.get(&cluster_path(&cluster)).await?)
        }
        Clusters::Collections { cluster } => {
            let path = format!("{}/collections", cluster_path(&cluster));
            let collections = api.get_all(&path, "collections").await?;
            output::list(
                out,
                &collections,
                &[
                    ("DATABASE", "dbName"),
                    ("COLLECTION", "collectionName"),
                    ("ID", "collectionId"),
                    ("CREATED", "createTime"),
                ],
            )
        }
        Clusters::Delete { cluster } => {
            let deleted = api.delete(&cluster_path(&cluster)).await?;
            said(out, &deleted, || format!("cluster {cluster} deleted\n"))
        }
    })
}

async fn backups(api: &Api, out: Format, command: Backups) -> Result<String, ClientError> {
    Ok(match command {
        Backups::Create {
            cluster,
            collections,
            db,
            name,
            copy_to,
            wait,
            idempotency,
        } => {
            let mut body = Map::new();
            if collections.is_empty() {
                body.insert("backupType".into(), json!("CLUSTER"));
            } else {
                body.insert("backupType".into(), json!("COLLECTION"));
                body.insert(
                    "dbCollections".into(),
                    json!(by_database(&collections, &db)?
                        .into_iter()
                        .map(|(db, names)| json!({"dbName": db, "collectionNames": names}))
                        .collect::<Vec<_>>()),
                );
            }
            if let Some(name) = name {
                body.insert("backupName".into(), json!(name));
            }
            if !copy_to.is_empty() {
                body.insert(
                    "crossRegionCopies".into(),
                    json!(copy_to
                        .iter()
                        .map(|r| json!({"regionId": r}))
                        .collect::<Vec<_>>()),
                );
            }
            let path = format!("{}/backups/create", cluster_path(&cluster));
            let key = idempotency.key();
            let created = api
                .post(&path, Some(Value::Object(body)), Some(&key))
                .await?;
            let backup_id = text(&created, "backupId");
            let started = format!(
                "backup {backup_id} ({}) started: job {}\n",
                text(&created, "backupName"),
                text(&created, "jobId")
            );
            if !wait.wait {
                return Ok(said(out, &created, || started));
            }
            eprint!("{started}");
            watch::watch(api, &text(&created, "jobId"), Display::for_stderr()).await?;
            let backup = api
                .get(&format!(
                    "{}/backups/{}",
                    cluster_path(&cluster),
                    segment(&backup_id)
                ))
                .await?;
            said(out, &backup, || {
                format!(
                    "backup {backup_id} ({}) {}: {}\n",
                    text(&backup, "backupName"),
                    text(&backup, "status"),
                    output::bytes_text(backup["size"].as_i64().unwrap_or(0))
                )
            })
        }
        Backups::List {
            cluster,
            project,
            backup_type,
            method,
        } => {
            let path = format!(
                "/v2/backups{}",
                query(&[
                    ("clusterId", cluster.as_deref()),
                    ("projectId", project.as_deref()),
                    ("backupType", backup_type.as_deref()),
                    ("creationMethod", method.as_deref()),
                ])
            );
            output::list(out, &api.get_all(&path, "backups").await?, BACKUP_COLUMNS)
        }
        Backups::Describe { cluster, backup } => {
            let path = format!("{}/backups/{}", cluster_path(&cluster), segment(&backup));
            let described = api.get(&path).await?;
            if out == Format::Json {
                return Ok(output::json(&described));
            }
            let mut fields = described.clone();
            let collections = fields
                .as_object_mut()
                .and_then(|f| f.remove("dbCollections"))
                .unwrap_or(Value::Null);
            let mut rows = Vec::new();
            for db in collections.as_array().into_iter().flatten() {
                for c in db["collections"].as_array().into_iter().flatten() {
                    let mut row = c.clone();
                    row["dbName"] = db["dbName"].clone();
                    rows.push(row);
                }
            }
            let mut text = output::object(out, &fields);
            text.push('\n');
            text.push_str(&output::list(
                out,
                &rows,
                &[
                    ("DATABASE", "dbName"),
                    ("COLLECTION", "collectionName"),
                    ("ROWS", "rowCount"),
                    ("SIZE", "size"),
                    ("STATUS", "status"),
                ],
            ));
            text
        }
        Backups::Delete {
            cluster,
            backup,
            wait,
        } => {
            let path = format!("{}/backups/{}", cluster_path(&cluster), segment(&backup));
            let deleting = api.delete(&path).await?;
            let message = format!(
                "backup {backup} deleting: job {}\n",
                text(&deleting, "jobId")
            );
            finish_job(api, out, &deleting, wait, message).await?
        }
        Backups::Verify {
            cluster,
            backup,
            wait,
            idempotency,
        } => {
            let path = format!(
                "{}/backups/{}/verify",
                cluster_path(&cluster),
                segment(&backup)
            );
            let key = idempotency.key();
            let started = api.post(&path, None, Some(&key)).await?;
            let message = format!(
                "verifying backup {backup}: job {}\n",
                text(&started, "jobId")
            );
            finish_job(api, out, &started, wait, message).await?
        }
    })
}

async fn restore(api: &Api, out: Format, command: Restore) -> Result<String, ClientError> {
    let (common, path, body) = match command {
        Restore::Collection {
            common,
            collections,
            db,
            rename,
            status,
        } => {
            let renames = renames(&rename)?;
            let mut body = common_body(&common);
            if !collections.is_empty() {
                let groups: Vec<Value> = by_database(&collections, &db)?
                    .into_iter()
                    .map(|(db, names)| {
                        let list: Vec<Value> = names
                            .iter()
                            .map(|name| {
                                let mut c = json!({"collectionName": name});
                                if let Some(new) = renames.get(name.as_str()) {
                                    c["destCollectionName"] = json!(new);
                                }
                                if let Some(status) = &status {
                                    c["destCollectionStatus"] = json!(status);
                                }
                                c
                            })
                            .collect();
                        json!({"dbName": db, "collections": list})
                    })
                    .collect();
                body["dbCollections"] = json!(groups);
            } else if !renames.is_empty() || status.is_some() {
                return Err(ClientError::Usage(
                    "--rename and --status apply to the collections named with --collections; \
                     name them (e.g. --collections default.docs --rename docs:docs_restored)"
                        .into(),
                ));
            }
            let path = format!(
                "{}/backups/{}/restoreCollection",
                cluster_path(&common.cluster),
                segment(&common.backup)
            );
            (common, path, body)
        }
        Restore::Cluster { common, status } => {
            let mut body = common_body(&common);
            if let Some(status) = status {
                body["collectionStatus"] = json!(status);
            }
            let path = format!(
                "{}/backups/{}/restoreCluster",
                cluster_path(&common.cluster),
                segment(&common.backup)
            );
            (common, path, body)
        }
    };
    let key = common.idempotency.key();
    let started = api.post(&path, Some(body), Some(&key)).await?;
    let message = format!(
        "restoring backup {} into {}: job {}\n",
        common.backup,
        common.to_cluster,
        text(&started, "jobId")
    );
    finish_job(api, out, &started, common.wait, message).await
}

fn common_body(common: &RestoreCommon) -> Value {
    let mut body = json!({"destClusterId": common.to_cluster});
    if let Some(on_existing) = &common.on_existing {
        body["onExisting"] = json!(on_existing);
    }
    if common.meta_only {
        body["metaOnly"] = json!(true);
    }
    if common.rbac {
        body["restoreRbac"] = json!(true);
    }
    if common.allow_untested_version {
        body["allowUntestedVersion"] = json!(true);
    }
    body
}

async fn jobs(api: &Api, out: Format, command: Jobs) -> Result<String, ClientError> {
    Ok(match command {
        Jobs::List {
            cluster,
            project,
            job_type,
            status,
        } => {
            let path = format!(
                "/v2/jobs{}",
                query(&[
                    ("clusterId", cluster.as_deref()),
                    ("projectId", project.as_deref()),
                    ("type", job_type.as_deref()),
                    ("status", status.as_deref()),
                ])
            );
            output::list(out, &api.get_all(&path, "jobs").await?, JOB_COLUMNS)
        }
        Jobs::Describe { job } => {
            output::object(out, &api.get(&format!("/v2/jobs/{}", segment(&job))).await?)
        }
        Jobs::Watch { job } => {
            let ended = watch::watch(api, &job, Display::for_stderr()).await?;
            said(out, &ended, || job_summary(&ended))
        }
        Jobs::Cancel { job, wait } => {
            let canceled = api
                .post(&format!("/v2/jobs/{}/cancel", segment(&job)), None, None)
                .await?;
            let message = format!("job {job} {}\n", text(&canceled, "status"));
            if !wait.wait {
                return Ok(said(out, &canceled, || message));
            }
            eprint!("{message}");
            // A canceled job ends CANCELED: that is what was asked, so it is no failure here.
            match watch::watch(api, &job, Display::for_stderr()).await {
                Ok(ended) => said(out, &ended, || job_summary(&ended)),
                Err(ClientError::JobEnded { status, .. }) if status == "CANCELED" => {
                    let ended = api.get(&format!("/v2/jobs/{}", segment(&job))).await?;
                    said(out, &ended, || job_summary(&ended))
                }
                Err(e) => return Err(e),
            }
        }
    })
}

async fn policy(api: &Api, out: Format, command: Policy) -> Result<String, ClientError> {
    Ok(match command {
        Policy::Get { cluster } => output::object(
            out,
            &api.get(&format!("{}/backups/policy", cluster_path(&cluster)))
                .await?,
        ),
        Policy::Set {
            cluster,
            enable,
            disable,
            days,
            window,
            retention,
            idempotency,
        } => {
            if !enable && !disable {
                return Err(ClientError::Usage(
                    "say --enable (with --days, --window, --retention) or --disable".into(),
                ));
            }
            let mut body = json!({"enabled": enable});
            if let Some(days) = days {
                body["frequency"] = json!(days);
            }
            if let Some(window) = window {
                body["startTime"] = json!(window);
            }
            if let Some(retention) = retention {
                body["retentionDays"] = json!(retention);
            }
            let path = format!("{}/backups/policy", cluster_path(&cluster));
            let key = idempotency.key();
            output::object(out, &api.post(&path, Some(body), Some(&key)).await?)
        }
    })
}

async fn usage(api: &Api, out: Format, u: Usage) -> Result<String, ClientError> {
    let path = format!(
        "/v2/usage/backups{}",
        query(&[
            ("projectId", u.project.as_deref()),
            ("startTime", u.start.as_deref()),
            ("endTime", u.end.as_deref()),
        ])
    );
    let report = api.get(&path).await?;
    if out == Format::Json {
        return Ok(output::json(&report));
    }
    let mut text = format!(
        "{} to {}: total cost {}\n\n",
        text_of(&report, "startTime"),
        text_of(&report, "endTime"),
        report["totalCost"]
    );
    let mut rows = Vec::new();
    for region in report["regions"].as_array().into_iter().flatten() {
        for backup in region["backups"].as_array().into_iter().flatten() {
            let mut row = backup.clone();
            row["regionId"] = region["regionId"].clone();
            rows.push(row);
        }
    }
    text.push_str(&output::list(
        out,
        &rows,
        &[
            ("REGION", "regionId"),
            ("BACKUP", "backupId"),
            ("NAME", "backupName"),
            ("SIZE", "size"),
            ("DAYS", "days"),
            ("GB-DAYS", "gbDays"),
            ("COST", "cost"),
        ],
    ));
    Ok(text)
}

async fn keys(api: &Api, out: Format, command: Keys) -> Result<String, ClientError> {
    Ok(match command {
        Keys::Create {
            name,
            org_role,
            roles,
        } => {
            let mut project_roles = Vec::new();
            for role in &roles {
                let Some((project, role)) = role.split_once(':') else {
                    return Err(ClientError::Usage(format!(
                        "--role {role}: give projectId:ROLE, e.g. proj-123:READ_ONLY"
                    )));
                };
                project_roles.push(json!({"projectId": project, "role": role}));
            }
            let mut body = json!({"name": name, "projectRoles": project_roles});
            if let Some(org_role) = org_role {
                body["orgRole"] = json!(org_role);
            }
            let created = api.post("/v2/apiKeys", Some(body), None).await?;
            // The one time the secret exists outside the server: printed, for the user to keep.
            said(out, &created, || {
                format!(
                    "key {} created; its secret is shown only now:\n{}\n",
                    text(&created, "apiKeyId"),
                    text(&created, "apiKey")
                )
            })
        }
        Keys::List => output::list(
            out,
            &api.get_all("/v2/apiKeys", "apiKeys").await?,
            &[
                ("KEY", "apiKeyId"),
                ("NAME", "name"),
                ("ORG ROLE", "orgRole"),
                ("CREATED", "createTime"),
            ],
        ),
        Keys::Delete { key } => {
            let deleted = api
                .delete(&format!("/v2/apiKeys/{}", segment(&key)))
                .await?;
            said(out, &deleted, || format!("key {key} deleted\n"))
        }
    })
}

/// A command that started a job: says so, or with `--wait` follows it and says how it ended.
async fn finish_job(
    api: &Api,
    out: Format,
    started: &Value,
    wait: Wait,
    message: String,
) -> Result<String, ClientError> {
    if !wait.wait {
        return Ok(said(out, started, || message));
    }
    eprint!("{message}");
    let ended = watch::watch(api, &text(started, "jobId"), Display::for_stderr()).await?;
    Ok(said(out, &ended, || job_summary(&ended)))
}

fn job_summary(job: &Value) -> String {
    let mut line = format!("job {} {}", text(job, "jobId"), text(job, "status"));
    if let Some(step) = job["currentStep"].as_str() {
        line.push_str(&format!(": {step}"));
    }
    line + "\n"
}

/// JSON output: the data; table output: the sentence.
fn said(out: Format, data: &Value, sentence: impl FnOnce() -> String) -> String {
    match out {
        Format::Json => output::json(data),
        Format::Table => sentence(),
    }
}

fn cluster_path(cluster: &str) -> String {
    format!("/v2/clusters/{}", segment(cluster))
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or("").to_owned()
}

fn text_of(value: &Value, field: &str) -> String {
    match &value[field] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `db.coll` and bare `coll` (in `default_db`), grouped by database in the order given.
fn by_database(
    collections: &[String],
    default_db: &str,
) -> Result<Vec<(String, Vec<String>)>, ClientError> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for entry in collections.iter().map(|c| c.trim()) {
        let (db, name) = entry.split_once('.').unwrap_or((default_db, entry));
        if db.is_empty() || name.is_empty() {
            return Err(ClientError::Usage(format!(
                "--collections {entry:?}: give db.collection or collection (in --db)"
            )));
        }
        match groups.iter_mut().find(|(d, _)| d == db) {
            Some((_, names)) => names.push(name.to_owned()),
            None => groups.push((db.to_owned(), vec![name.to_owned()])),
        }
    }
    Ok(groups)
}

/// `--rename old:new` pairs.
fn renames(pairs: &[String]) -> Result<std::collections::HashMap<String, String>, ClientError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once(':') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                Ok((old.to_owned(), new.to_owned()))
            }
            _ => Err(ClientError::Usage(format!(
                "--rename {pair:?}: give old:new, e.g. --rename docs:docs_restored"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_group_by_database() {
        let given = vec!["a".to_owned(), "second.b".to_owned(), "c".to_owned()];
        assert_eq!(
            by_database(&given, "default").unwrap(),
            vec![
                ("default".to_owned(), vec!["a".to_owned(), "c".to_owned()]),
                ("second".to_owned(), vec!["b".to_owned()]),
            ]
        );
        let err = by_database(&[".x".to_owned()], "default").unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn renames_need_both_names() {
        let ok = renames(&["docs:docs2".to_owned()]).unwrap();
        assert_eq!(ok["docs"], "docs2");
        assert!(renames(&["docs".to_owned()]).is_err());
        assert!(renames(&["docs:".to_owned()]).is_err());
    }
}
