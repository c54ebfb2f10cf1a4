//! Registered clusters: how their credentials are sealed at rest, and how a job or a request
//! reaches the cluster's Milvus and the storage where that Milvus keeps its binlogs.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use crate::domain::clusters::ClusterStorage;

use crate::config::S3Config;
use crate::crypto::{CryptoError, SecretBox};
use crate::milvus::{MilvusClient, MilvusError};
use crate::objects::{DynObjectStore, LocalStore, S3Store};
use crate::outbound::{OutboundError, OutboundPolicy};
use crate::store::Cluster;

/// The sealed part of a cluster: never logged, never returned.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecrets {
    pub milvus_token: Option<String>,
    /// The CA certificate (PEM) of a Milvus reached over TLS with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milvus_tls_ca_pem: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for ClusterSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecrets(..)")
    }
}

impl ClusterSecrets {
    pub fn seal(&self, secrets: &SecretBox) -> String {
        secrets.seal(&serde_json::to_vec(self).expect("secrets serialize"))
    }

    pub fn open(sealed: &str, secrets: &SecretBox) -> Result<ClusterSecrets, CryptoError> {
        let plain = secrets.open(sealed)?;
        serde_json::from_slice(&plain).map_err(|_| CryptoError::Open)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterAccessError {
    #[error("cluster credentials cannot be opened: {0}")]
    Secrets(#[from] CryptoError),
    #[error(transparent)]
    Milvus(#[from] MilvusError),
    #[error("storage.endpoint: {0}")]
    Outbound(#[from] OutboundError),
}

/// An unusable cluster record (credentials that do not open, an address that does not parse
/// or that the outbound policy refuses) will not get better by retrying; a name that did not
/// resolve may.
impl From<ClusterAccessError> for crate::jobs::JobError {
    fn from(err: ClusterAccessError) -> Self {
        match err {
            ClusterAccessError::Outbound(OutboundError::Unresolved(_)) => {
                crate::jobs::JobError::Retryable(err.to_string())
            }
            _ => crate::jobs::JobError::Permanent(err.to_string()),
        }
    }
}

/// A client for the cluster's Milvus with calls bounded by `timeout`, connecting only where
/// `outbound` allows.
pub fn milvus_client(
    cluster: &Cluster,
    secrets: &SecretBox,
    outbound: &OutboundPolicy,
    timeout: Duration,
) -> Result<MilvusClient, ClusterAccessError> {
    let opened = ClusterSecrets::open(&cluster.secrets, secrets)?;
    let token = opened.milvus_token.map(SecretString::from);
    Ok(MilvusClient::within(
        &cluster.milvus_uri,
        token.as_ref(),
        opened.milvus_tls_ca_pem.as_deref(),
        timeout,
        outbound,
    )?)
}

/// The object store holding the cluster's binlogs; keys are relative to Milvus's root
/// (`insert_log/...`, `delta_log/...`). An S3 endpoint is checked against `outbound` each
/// time the store is opened.
pub async fn binlog_store(
    cluster: &Cluster,
    secrets: &SecretBox,
    outbound: &OutboundPolicy,
) -> Result<DynObjectStore, ClusterAccessError> {
    Ok(match &cluster.storage {
        ClusterStorage::Local { path } => Arc::new(LocalStore::new(path)),
        ClusterStorage::S3 { endpoint, .. } => {
            check_s3_endpoint(endpoint.as_deref(), outbound).await?;
            let opened = ClusterSecrets::open(&cluster.secrets, secrets)?;
            Arc::new(s3_binlog_store(&cluster.storage, &opened).expect("S3 storage has a store"))
        }
    })
}

/// A custom S3 endpoint must be one `outbound` allows; AWS's own endpoints (no endpoint) are.
pub async fn check_s3_endpoint(
    endpoint: Option<&str>,
    outbound: &OutboundPolicy,
) -> Result<(), OutboundError> {
    match endpoint {
        Some(endpoint) => outbound.check_url(endpoint).await,
        None => Ok(()),
    }
}

/// The S3 store of S3 `storage` with the keys in `secrets`; `None` for local storage.
pub fn s3_binlog_store(storage: &ClusterStorage, secrets: &ClusterSecrets) -> Option<S3Store> {
    let ClusterStorage::S3 {
        endpoint,
        bucket,
        root_path,
        region,
    } = storage
    else {
        return None;
    };
    Some(S3Store::new(&S3Config {
        endpoint: endpoint.clone(),
        bucket: bucket.clone(),
        prefix: root_path.trim_matches('/').to_owned(),
        region: region.clone().unwrap_or_else(|| "us-east-1".to_owned()),
        access_key_id: secrets.access_key_id.clone().unwrap_or_default(),
        secret_access_key: SecretString::from(
            secrets.secret_access_key.clone().unwrap_or_default(),
        ),
        force_path_style: true,
        part_size_mib: 16,
        parts_in_flight: 4,
    }))
}
