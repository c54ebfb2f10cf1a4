//! Registered clusters: registering one (its shape checked), reaching its Milvus, what it
//! holds, and deleting it with its automatic backups.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::Services;
use crate::auth::Principal;
use crate::clusters::{self, ClusterAccessError, ClusterSecrets};
use crate::domain::access::Privilege;
use crate::domain::backups::BackupStatus;
use crate::domain::clusters::{
    check_local_path, under_roots, ClusterStorage, Plan, MAX_CU_SIZE, MILVUS_LOCAL_ENTRIES,
};
use crate::domain::{ids, names};
use crate::error::Error;
use crate::jobs::Jobs;
use crate::milvus::{
    self, check_endpoint, parse_uri, CollectionSummary, MilvusClient, MilvusError,
};
use crate::objects::AccessProblem;
use crate::outbound::OutboundError;
use crate::store::{Cluster, OnConstraint};

/// `POST /v2/clusters`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = CreateCluster)]
pub struct RegisterCluster {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub cluster_name: String,
    pub project_id: String,
    pub region_id: String,
    pub plan: Plan,
    #[schema(minimum = 1, maximum = 256)]
    pub cu_size: i64,
    pub milvus: MilvusInput,
    pub storage: StorageInput,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MilvusInput {
    /// `http://host:port` of the Milvus proxy (gRPC).
    pub uri: String,
    /// `user:password` or an API key; stored encrypted.
    pub token: Option<String>,
    /// For an `https://` URI whose certificate a private CA signed: that CA's certificate
    /// (PEM text). Public CAs are trusted without it.
    pub tls_ca_pem: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageInput {
    Local {
        path: String,
    },
    #[serde(rename_all = "camelCase")]
    S3 {
        endpoint: Option<String>,
        bucket: String,
        #[serde(default)]
        root_path: String,
        access_key_id: String,
        secret_access_key: String,
        region: Option<String>,
    },
}

/// A cluster as a view shows it: the record and what a live probe said.
#[derive(Debug)]
pub struct Probed {
    pub cluster: Cluster,
    /// Milvus's version when it answered the probe in time.
    pub milvus_version: Option<String>,
}

/// "Cluster X did not answer": the Milvus error, named by cluster.
pub fn upstream(cluster_id: &str, err: MilvusError) -> Error {
    Error::Upstream(format!("cluster {cluster_id}: {err}"))
}

impl From<ClusterAccessError> for Error {
    fn from(err: ClusterAccessError) -> Self {
        Error::internal(err)
    }
}

impl RegisterCluster {
    /// The request's shape, before anything is stored.
    fn validate(&self) -> Result<(), Error> {
        names::validate_resource_name("clusterName", &self.cluster_name).map_err(Error::invalid)?;
        if !(1..=MAX_CU_SIZE).contains(&self.cu_size) {
            return Err(Error::invalid(format!(
                "cuSize is {}; use a whole number from 1 to {MAX_CU_SIZE}",
                self.cu_size
            )));
        }
        parse_uri(&self.milvus.uri).map_err(|e| Error::invalid(format!("milvus.uri: {e}")))?;
        check_endpoint(&self.milvus.uri, self.milvus.tls_ca_pem.as_deref())
            .map_err(|e| Error::invalid(format!("milvus.tlsCaPem: {e}")))?;
        match &self.storage {
            StorageInput::Local { path } => {
                check_local_path(path).map_err(Error::invalid)?;
            }
            StorageInput::S3 {
                bucket,
                access_key_id,
                secret_access_key,
                endpoint,
                ..
            } => {
                if bucket.is_empty() {
                    return Err(Error::invalid("storage.bucket must name the Milvus bucket"));
                }
                if access_key_id.is_empty() || secret_access_key.is_empty() {
                    return Err(Error::invalid(
                        "storage.accessKeyId and storage.secretAccessKey are required for S3 storage",
                    ));
                }
                if let Some(endpoint) = endpoint {
                    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                        return Err(Error::invalid(
                            "storage.endpoint must start with http:// or https://",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Services {
    /// A client for the cluster's Milvus, calls bounded by the configured request deadline.
    pub fn milvus(&self, cluster: &Cluster) -> Result<MilvusClient, ClusterAccessError> {
        let timeout = Duration::from_secs(self.config.milvus.request_timeout_secs);
        clusters::milvus_client(cluster, &self.secrets, &self.config.outbound, timeout)
    }

    /// Records a cluster in its project. The caller has checked the key may manage the
    /// project.
    pub async fn register_cluster(&self, body: RegisterCluster) -> Result<Cluster, Error> {
        if self.store.get_project(&body.project_id).await?.is_none() {
            return Err(Error::not_found("project", &body.project_id));
        }
        body.validate()?;
        if self.regions.get(&body.region_id).is_none() {
            return Err(Error::invalid(format!(
                "regionId '{}' is not a configured region; use one of: {}",
                body.region_id,
                self.regions.ids().join(", ")
            )));
        }
        let milvus_uri = parse_uri(&body.milvus.uri).map_err(|e| Error::invalid(e.to_string()))?;
        let (storage, mut secrets) = match body.storage {
            StorageInput::Local { path } => {
                (ClusterStorage::Local { path }, ClusterSecrets::default())
            }
            StorageInput::S3 {
                endpoint,
                bucket,
                root_path,
                access_key_id,
                secret_access_key,
                region,
            } => (
                ClusterStorage::S3 {
                    endpoint,
                    bucket,
                    root_path,
                    region,
                },
                ClusterSecrets {
                    access_key_id: Some(access_key_id),
                    secret_access_key: Some(secret_access_key),
                    ..Default::default()
                },
            ),
        };
        secrets.milvus_token = body.milvus.token.filter(|t| !t.is_empty());
        secrets.milvus_tls_ca_pem = body.milvus.tls_ca_pem.filter(|pem| !pem.trim().is_empty());
        self.check_outbound(&milvus_uri, &storage).await?;
        check_storage(&storage, &secrets, &self.config.milvus.local_storage_roots).await?;
        let cluster = Cluster {
            id: ids::new_cluster_id(),
            project_id: body.project_id,
            name: body.cluster_name,
            region_id: body.region_id,
            plan: body.plan,
            cu_size: body.cu_size,
            milvus_uri,
            storage,
            secrets: secrets.seal(&self.secrets),
            created_at: Utc::now(),
        };
        self.check_milvus_accepts(&cluster).await?;
        self.store.insert_cluster(&cluster).await.on_constraint(
            "clusters_project_name_key",
            || {
                Error::Conflict(format!(
                    "clusterName '{}' is already used in project {}; choose another name",
                    cluster.name, cluster.project_id
                ))
            },
        )?;
        tracing::info!(cluster_id = %cluster.id, project_id = %cluster.project_id, "cluster registered");
        Ok(cluster)
    }

    /// The service may connect to the cluster's Milvus and S3 endpoint (`outbound`). A host
    /// name that does not resolve yet is not refused here: the Milvus shows UNREACHABLE, the
    /// storage check says the endpoint did not answer.
    async fn check_outbound(
        &self,
        milvus_uri: &str,
        storage: &ClusterStorage,
    ) -> Result<(), Error> {
        let refused = |field: &str, e: OutboundError| {
            Error::Unprocessable(format!(
                "{field}: {e}; give an address the service may reach, or ask the operator to \
                 allow that network (outbound.allow / outbound.deny)"
            ))
        };
        // An unresolved name is left to the checks that follow.
        let denied = |result: Result<(), OutboundError>| match result {
            Err(e @ (OutboundError::Denied { .. } | OutboundError::NotAllowed { .. })) => Some(e),
            _ => None,
        };
        let outbound = &self.config.outbound;
        if let Some(e) = denied(outbound.check_url(milvus_uri).await) {
            return Err(refused("milvus.uri", e));
        }
        if let ClusterStorage::S3 { endpoint, .. } = storage {
            let checked = clusters::check_s3_endpoint(endpoint.as_deref(), outbound).await;
            if let Some(e) = denied(checked) {
                return Err(refused("storage.endpoint", e));
            }
        }
        Ok(())
    }

    /// A Milvus that answers must accept the registered token (a wrong one is refused now,
    /// not discovered by a job); one that does not answer is registered all the same and
    /// shows UNREACHABLE until it does.
    async fn check_milvus_accepts(&self, cluster: &Cluster) -> Result<(), Error> {
        let timeout = Duration::from_millis(self.config.milvus.probe_timeout_ms);
        let client =
            clusters::milvus_client(cluster, &self.secrets, &self.config.outbound, timeout)?;
        match client.list_databases().await {
            Ok(_) => self.check_layout(cluster, &client).await,
            Err(MilvusError::Unauthenticated { .. }) => Err(Error::Unprocessable(format!(
                "milvus.token: Milvus at {} refused it; give user:password of a Milvus user \
                 that may read the cluster (or its API key)",
                cluster.milvus_uri
            ))),
            Err(MilvusError::Refused { reason, .. }) if is_auth_refusal(&reason) => {
                Err(Error::Unprocessable(format!(
                    "milvus.token: Milvus at {} refused it; give user:password of a Milvus \
                     user that may read the cluster (or its API key)",
                    cluster.milvus_uri
                )))
            }
            // A handshake that failed is the registration's mistake, not a Milvus that is down.
            Err(MilvusError::Unreachable { message, .. }) if milvus::is_tls_failure(&message) => {
                Err(Error::Unprocessable(format!(
                    "milvus.tlsCaPem: TLS with Milvus at {} failed ({message}); give the CA \
                     certificate (PEM) that signed its server certificate, or an http:// URI \
                     if that Milvus does not speak TLS",
                    cluster.milvus_uri
                )))
            }
            Err(e) => {
                tracing::info!(cluster_id = %cluster.id, error = %e, "registering a cluster whose Milvus did not answer");
                Ok(())
            }
        }
    }

    /// Can the service list and read the cluster's binlog storage now?
    pub async fn storage_reachable(&self, cluster: &Cluster) -> bool {
        let secrets = match &cluster.storage {
            ClusterStorage::Local { .. } => ClusterSecrets::default(),
            ClusterStorage::S3 { endpoint, .. } => {
                let outbound = &self.config.outbound;
                if clusters::check_s3_endpoint(endpoint.as_deref(), outbound)
                    .await
                    .is_err()
                {
                    return false;
                }
                match ClusterSecrets::open(&cluster.secrets, &self.secrets) {
                    Ok(secrets) => secrets,
                    Err(_) => return false,
                }
            }
        };
        let roots = &self.config.milvus.local_storage_roots;
        check_storage(&cluster.storage, &secrets, roots)
            .await
            .is_ok()
    }

    /// Storage that holds no binlogs while the Milvus has flushed segments is not where that
    /// Milvus writes: a wrong path or rootPath, refused now. (Only flushed segments are sure
    /// to have files; up to 20 collections are asked.)
    async fn check_layout(&self, cluster: &Cluster, client: &MilvusClient) -> Result<(), Error> {
        let Ok(listed) = client.collections_by_database(None).await else {
            return Ok(());
        };
        let mut flushed = false;
        for c in listed.values().flatten().take(20) {
            if client
                .persistent_segments(&c.db_name, &c.name)
                .await
                .is_ok_and(|segments| !segments.is_empty())
            {
                flushed = true;
                break;
            }
        }
        if !flushed {
            return Ok(());
        }
        let store = clusters::binlog_store(cluster, &self.secrets, &self.config.outbound).await?;
        let holds_binlogs = match store.list("insert_log/", None, 1).await {
            Ok(page) => !page.objects.is_empty(),
            Err(_) => return Ok(()), // reachability was checked; a hiccup is not a verdict
        };
        if holds_binlogs {
            return Ok(());
        }
        Err(Error::Unprocessable(match &cluster.storage {
            ClusterStorage::Local { path } => format!(
                "storage.path '{path}' holds no Milvus binlogs (no insert_log/) although the \
                 cluster has flushed segments; give the directory of its localStorage.path"
            ),
            ClusterStorage::S3 {
                bucket, root_path, ..
            } => format!(
                "storage.rootPath '{root_path}' in bucket '{bucket}' holds no Milvus binlogs (no \
                 insert_log/) although the cluster has flushed segments; give its \
                 minio.rootPath"
            ),
        }))
    }

    /// Probes the cluster with `GetVersion` under the configured short deadline.
    pub async fn probe(&self, cluster: Cluster) -> Probed {
        let timeout = Duration::from_millis(self.config.milvus.probe_timeout_ms);
        let milvus_version = match clusters::milvus_client(
            &cluster,
            &self.secrets,
            &self.config.outbound,
            timeout,
        ) {
            Ok(client) => match client.version().await {
                Ok(version) => Some(version),
                Err(e) => {
                    tracing::debug!(cluster_id = %cluster.id, error = %e, "cluster probe failed");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(cluster_id = %cluster.id, error = %e, "cluster record unusable");
                None
            }
        };
        Probed {
            cluster,
            milvus_version,
        }
    }

    /// The collections of every database of the cluster (`None`), or of those of `only` that
    /// exist, read live.
    pub async fn collections(
        &self,
        cluster: &Cluster,
        only: Option<&[&str]>,
    ) -> Result<BTreeMap<String, Vec<CollectionSummary>>, Error> {
        self.milvus(cluster)?
            .collections_by_database(only)
            .await
            .map_err(|e| upstream(&cluster.id, e))
    }

    /// Removes a cluster from the registry; its Milvus is not touched. Its automatic backups
    /// go with it (finished ones now, running ones are canceled and swept once they end);
    /// manual backups stay.
    ///
    /// Taking the automatic backups is deleting backups: a key without `backup.delete` may
    /// delete a cluster only when none is left to take.
    pub async fn delete_cluster(
        &self,
        principal: &Principal,
        jobs: &Jobs,
        cluster: &Cluster,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let cluster_id = cluster.id.as_str();
        let autos = self.store.auto_backups_of_cluster(cluster_id).await?;
        let live = autos
            .iter()
            .filter(|(_, status, _)| {
                !matches!(status, BackupStatus::Deleting | BackupStatus::Deleted)
            })
            .count();
        if live > 0 {
            principal
                .authorize(
                    &cluster.project_id,
                    Privilege::BackupDelete,
                    "cluster",
                    cluster_id,
                )
                .map_err(|e| match e {
                    Error::Forbidden(_) => Error::Forbidden(format!(
                        "deleting cluster {cluster_id} deletes its {live} automatic backup(s), \
                         which needs the privilege backup.delete; use a key whose role has it"
                    )),
                    other => other,
                })?;
        }
        for (id, status, job_id) in autos {
            match status {
                BackupStatus::Creating => {
                    let job = match job_id {
                        Some(job_id) => self.store.get_job(&job_id).await?,
                        None => None,
                    };
                    if let Some(job) = job {
                        jobs.cancel(&job).await?;
                    }
                }
                BackupStatus::Available | BackupStatus::Failed | BackupStatus::Canceled => {
                    if let Some(backup) = self.store.get_backup(&id).await? {
                        match self.delete_backup(&backup, now).await {
                            // A conflict: another replica is deleting it already.
                            Ok(_) | Err(Error::Conflict(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                BackupStatus::Deleting | BackupStatus::Deleted => {}
            }
        }
        if !self.store.delete_cluster(cluster_id).await? {
            return Err(Error::not_found("cluster", cluster_id));
        }
        self.statuses.forget(cluster_id);
        tracing::info!(%cluster_id, "cluster deleted");
        Ok(())
    }
}

/// A readable local directory must lie under the configured roots (links resolved) and be
/// empty or hold Milvus data: `/etc` or `/proc/self` is never a cluster's storage.
async fn check_local_contents(
    path: &str,
    mut entries: tokio::fs::ReadDir,
    roots: &[std::path::PathBuf],
) -> Result<(), Error> {
    let resolved = tokio::fs::canonicalize(path)
        .await
        .map_err(|_| Error::Unprocessable(format!("storage.path '{path}' cannot be resolved")))?;
    if !under_roots(&resolved, roots) {
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Error::Unprocessable(format!(
            "storage.path '{path}' is outside the directories this service may use \
             (milvus.local_storage_roots: {}); give a directory under one of them",
            roots.join(", ")
        )));
    }
    let mut empty = true;
    while let Ok(Some(entry)) = entries.next_entry().await {
        empty = false;
        if MILVUS_LOCAL_ENTRIES.contains(&entry.file_name().to_string_lossy().as_ref()) {
            return Ok(());
        }
    }
    if empty {
        return Ok(());
    }
    Err(Error::Unprocessable(format!(
        "storage.path '{path}' is neither empty nor a Milvus data directory (no {}); give \
         the directory of Milvus's localStorage.path",
        MILVUS_LOCAL_ENTRIES[..4].join("/, ") + "/"
    )))
}

/// Milvus 2.3 answers a bad token inside the response status, in words.
fn is_auth_refusal(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    [
        "auth",
        "credential",
        "password",
        "permission denied",
        "unauthenticated",
    ]
    .iter()
    .any(|word| reason.contains(word))
}

/// The storage a cluster is registered with must be there and readable by the service: a
/// wrong path, bucket, key or endpoint is refused naming the field, never a failed job later.
async fn check_storage(
    storage: &ClusterStorage,
    secrets: &ClusterSecrets,
    local_roots: &[std::path::PathBuf],
) -> Result<(), Error> {
    let refused = |message: String| Err(Error::Unprocessable(message));
    match storage {
        ClusterStorage::Local { path } => match tokio::fs::read_dir(path).await {
            Ok(entries) => check_local_contents(path, entries, local_roots).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => refused(format!(
                "storage.path '{path}' does not exist where the service runs; give the \
                 directory Milvus keeps its binlogs in (localStorage.path), mounted for the \
                 service too"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => refused(format!(
                "storage.path '{path}' is not readable by the service's user; let it read the \
                 directory"
            )),
            Err(_) => refused(format!(
                "storage.path '{path}' is not a readable directory; give the directory Milvus \
                 keeps its binlogs in (localStorage.path)"
            )),
        },
        ClusterStorage::S3 {
            bucket,
            endpoint,
            root_path,
            ..
        } => {
            let store = clusters::s3_binlog_store(storage, secrets).expect("S3 storage");
            let at = endpoint.as_deref().unwrap_or("the default AWS endpoint");
            match store.check_access().await {
                Ok(()) => Ok(()),
                Err(AccessProblem::NoSuchBucket) => refused(format!(
                    "storage.bucket: bucket '{bucket}' does not exist at {at}; give the bucket \
                     Milvus keeps its binlogs in (minio.bucketName)"
                )),
                Err(AccessProblem::UnknownAccessKey) => refused(format!(
                    "storage.accessKeyId: {at} does not know this access key; give the key \
                     Milvus uses (minio.accessKeyID)"
                )),
                Err(AccessProblem::BadSignature) => refused(format!(
                    "storage.secretAccessKey: {at} refused the signature made with it; give the \
                     secret of the access key (minio.secretAccessKey)"
                )),
                Err(AccessProblem::Denied) => refused(format!(
                    "storage.accessKeyId: these keys may not list and read bucket '{bucket}' \
                     under rootPath '{root_path}'; give keys that can"
                )),
                Err(AccessProblem::Unreachable) => refused(format!(
                    "storage.endpoint: {at} did not answer (connection refused, DNS or timeout); \
                     give the S3 endpoint Milvus uses (minio.address and minio.port)"
                )),
                Err(AccessProblem::Other(code)) => refused(format!(
                    "storage: {at} refused to list bucket '{bucket}' ({}); check storage.bucket, \
                     storage.rootPath and the keys",
                    code.as_deref().unwrap_or("no error code")
                )),
            }
        }
    }
}

/// A listed collection's creation time, when Milvus reported one.
pub fn created_at(c: &CollectionSummary) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(c.created_utc_ms as i64).filter(|_| c.created_utc_ms > 0)
}
