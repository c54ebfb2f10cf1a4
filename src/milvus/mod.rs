//! The one place that talks to Milvus: a thin connector over the generated gRPC client of
//! `milvus-sdk-rust` (its high-level client lacks calls we need, such as Import). Every call has
//! a deadline, carries the cluster's token and database as gRPC metadata, and checks both
//! `status.error_code` and `status.code` (Milvus 2.3 sets both).
//!
//! Newer Milvus versions can be handled here without touching the callers.

pub mod binlog;
mod catalog;
mod rbac;
mod restore_calls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use milvus::proto::common::Status;
use milvus::proto::milvus::milvus_service_client::MilvusServiceClient;
use milvus::proto::milvus::{GetVersionRequest, ListDatabasesRequest, ShowCollectionsRequest};
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::outbound::OutboundPolicy;

pub use catalog::{
    is_excluded_property, CollectionDescription, FieldDescription, IndexDescription,
    PartitionDescription, SegmentDescription,
};
pub use rbac::{Grant, Rbac, RoleRecord, BUILTIN_ROLES, BUILTIN_USERS};
pub use restore_calls::schema_for;

#[derive(Debug, thiserror::Error)]
pub enum MilvusError {
    #[error("Milvus URI '{0}' is not valid: use http://host:port or https://host:port")]
    BadUri(String),
    /// Never echoes the URI: it holds a password.
    #[error(
        "the URI carries credentials (user:password@); give it as http://host:port and put \
         them in milvus.token, which is stored encrypted"
    )]
    CredentialsInUri,
    /// A CA certificate was given for a Milvus reached without TLS.
    #[error("a CA certificate needs an https:// URI (Milvus with TLS); use https://host:port")]
    TlsNeedsHttps,
    /// The CA certificate is not usable PEM.
    #[error(
        "the CA certificate is not usable: {0}; give the PEM text (-----BEGIN CERTIFICATE-----...)"
    )]
    BadCaCertificate(String),
    #[error("Milvus at {uri} did not answer within {timeout_ms} ms")]
    Timeout { uri: String, timeout_ms: u128 },
    /// `message` says what kind of failure, in our words (`why_unreachable`).
    #[error("Milvus at {uri} did not answer ({message})")]
    Unreachable { uri: String, message: String },
    /// The credentials (`milvus.token`) were refused.
    #[error("Milvus at {uri} refused the credentials: {reason}")]
    Unauthenticated { uri: String, reason: String },
    #[error("Milvus refused {operation}: {reason}")]
    Refused {
        operation: &'static str,
        reason: String,
    },
}

impl MilvusError {
    /// Milvus did not answer (stopped, restarting, out of reach): the same call may work
    /// later, unlike a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MilvusError::Timeout { .. } | MilvusError::Unreachable { .. }
        )
    }
}

/// How often an idempotent read is tried before a transient failure ends the job's attempt,
/// and the pause before the first retry (doubled after each).
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs an idempotent read (describe, list, segment info) again when Milvus did not answer,
/// a few times with a growing pause. A loaded Milvus with thousands of collections misses a
/// deadline now and then; without this, one slow answer among thousands of calls would
/// restart a whole backup attempt. Refusals are returned at once.
pub async fn retry_read<T, F, Fut>(mut read: F) -> Result<T, MilvusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MilvusError>>,
{
    let mut pause = READ_RETRY_PAUSE;
    let mut attempt = 1;
    loop {
        match read().await {
            Err(e) if e.is_transient() && attempt < READ_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "Milvus read failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A collection as listed by `ShowCollections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    pub db_name: String,
    pub name: String,
    pub id: i64,
    /// Creation time in Unix milliseconds.
    pub created_utc_ms: u64,
}

#[derive(Clone)]
pub struct MilvusClient {
    uri: String,
    client: MilvusServiceClient<Channel>,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    timeout: Duration,
}

impl std::fmt::Debug for MilvusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusClient")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

/// Accepts `http(s)://host:port`; returns the URI as it will be dialled.
pub fn parse_uri(uri: &str) -> Result<String, MilvusError> {
    let trimmed = uri.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(host) if host.contains('@') => Err(MilvusError::CredentialsInUri),
        Some(host) if !host.is_empty() && !host.contains('/') && !host.contains(' ') => {
            Endpoint::from_shared(trimmed.to_owned())
                .map_err(|_| MilvusError::BadUri(uri.to_owned()))?;
            Ok(trimmed.to_owned())
        }
        _ => Err(MilvusError::BadUri(uri.to_owned())),
    }
}

impl MilvusClient {
    /// Prepares a client; the connection is made lazily by the first call, within `timeout`.
    /// An `https://` URI speaks TLS, trusting the public web roots and `tls_ca_pem` (the CA
    /// that signed a self-hosted Milvus's certificate) when given. Connects wherever the URI
    /// points: for tools and tests; the service reaches clusters `within` its outbound policy.
    pub fn new(
        uri: &str,
        token: Option<&SecretString>,
        tls_ca_pem: Option<&str>,
        timeout: Duration,
    ) -> Result<MilvusClient, MilvusError> {
        Self::build(uri, token, tls_ca_pem, timeout, None)
    }

    /// `new`, connecting (and reconnecting) only to addresses `outbound` allows.
    pub fn within(
        uri: &str,
        token: Option<&SecretString>,
        tls_ca_pem: Option<&str>,
        timeout: Duration,
        outbound: &OutboundPolicy,
    ) -> Result<MilvusClient, MilvusError> {
        Self::build(uri, token, tls_ca_pem, timeout, Some(outbound))
    }

    fn build(
        uri: &str,
        token: Option<&SecretString>,
        tls_ca_pem: Option<&str>,
        timeout: Duration,
        outbound: Option<&OutboundPolicy>,
    ) -> Result<MilvusClient, MilvusError> {
        let uri = parse_uri(uri)?;
        let endpoint = endpoint(&uri, tls_ca_pem)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        let authorization = match token {
            Some(token) if !token.expose_secret().is_empty() => Some(
                B64.encode(token.expose_secret())
                    .parse()
                    .map_err(|_| MilvusError::BadUri(uri.clone()))?,
            ),
            _ => None,
        };
        let channel = match outbound {
            Some(policy) => endpoint
                .connect_with_connector_lazy(crate::outbound::connector(Arc::new(policy.clone()))),
            None => endpoint.connect_lazy(),
        };
        Ok(MilvusClient {
            client: MilvusServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024),
            uri,
            authorization,
            timeout,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn request<T>(&self, message: T, db_name: Option<&str>) -> tonic::Request<T> {
        self.request_within(self.timeout, message, db_name)
    }

    fn request_within<T>(
        &self,
        timeout: Duration,
        message: T,
        db_name: Option<&str>,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(auth) = &self.authorization {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        if let Some(db) = db_name.and_then(|db| db.parse().ok()) {
            request.metadata_mut().insert("dbname", db);
        }
        request
    }

    /// Maps a transport failure; a deadline becomes `Timeout` so callers can say so.
    fn transport_error(&self, status: tonic::Status) -> MilvusError {
        match status.code() {
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => MilvusError::Timeout {
                uri: self.uri.clone(),
                timeout_ms: self.timeout.as_millis(),
            },
            tonic::Code::Unavailable | tonic::Code::Unknown => MilvusError::Unreachable {
                uri: self.uri.clone(),
                message: why_unreachable(&status),
            },
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                MilvusError::Unauthenticated {
                    uri: self.uri.clone(),
                    reason: quoted_reason(status.message()),
                }
            }
            _ => MilvusError::Refused {
                operation: "request",
                reason: format!("{}: {}", status.code(), quoted_reason(status.message())),
            },
        }
    }

    /// Runs one call with a hard deadline (covers connect and DNS too).
    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, MilvusError> {
        self.call_within(self.timeout, fut).await
    }

    /// `call` for the few calls whose work grows with their arguments (a flush of a hundred
    /// collections), which get a deadline of their own; the request must carry it too
    /// (`request_within`).
    async fn call_within<T>(
        &self,
        timeout: Duration,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, MilvusError> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(match self.transport_error(status) {
                MilvusError::Timeout { uri, .. } => MilvusError::Timeout {
                    uri,
                    timeout_ms: timeout.as_millis(),
                },
                other => other,
            }),
            Err(_) => Err(MilvusError::Timeout {
                uri: self.uri.clone(),
                timeout_ms: timeout.as_millis(),
            }),
        }
    }

    pub async fn version(&self) -> Result<String, MilvusError> {
        let mut client = self.client.clone();
        let response = self
            .call(client.get_version(self.request(GetVersionRequest {}, None)))
            .await?;
        check(response.status.as_ref(), "GetVersion")?;
        Ok(response.version)
    }

    pub async fn list_databases(&self) -> Result<Vec<String>, MilvusError> {
        let mut client = self.client.clone();
        let response = self
            .call(client.list_databases(self.request(ListDatabasesRequest::default(), None)))
            .await?;
        check(response.status.as_ref(), "ListDatabases")?;
        Ok(response.db_names)
    }

    /// The collections of every database (`None`) or of those of `only` that exist, listed
    /// concurrently: the one reading of "what is in this cluster" for the collections
    /// endpoint, a backup's checks and a restore's free-name check.
    pub async fn collections_by_database(
        &self,
        only: Option<&[&str]>,
    ) -> Result<BTreeMap<String, Vec<CollectionSummary>>, MilvusError> {
        let databases: Vec<String> = self
            .list_databases()
            .await?
            .into_iter()
            .filter(|db| only.is_none_or(|only| only.contains(&db.as_str())))
            .collect();
        let listed =
            futures::future::try_join_all(databases.iter().map(|db| self.list_collections(db)))
                .await?;
        Ok(databases.into_iter().zip(listed).collect())
    }

    pub async fn list_collections(
        &self,
        db_name: &str,
    ) -> Result<Vec<CollectionSummary>, MilvusError> {
        let mut client = self.client.clone();
        let message = ShowCollectionsRequest {
            db_name: db_name.to_owned(),
            ..Default::default()
        };
        let response = self
            .call(client.show_collections(self.request(message, Some(db_name))))
            .await?;
        check(response.status.as_ref(), "ShowCollections")?;
        Ok(response
            .collection_names
            .into_iter()
            .enumerate()
            .map(|(i, name)| CollectionSummary {
                db_name: db_name.to_owned(),
                name,
                id: response.collection_ids.get(i).copied().unwrap_or_default(),
                created_utc_ms: response
                    .created_utc_timestamps
                    .get(i)
                    .copied()
                    .unwrap_or_default(),
            })
            .collect())
    }
}

/// Why a Milvus could not be reached, in our words: what the far side sent is not repeated
/// (it could be anything listening on that port), only what kind of failure it was. The TLS
/// verdict is the local TLS library's, and names what to fix.
fn why_unreachable(status: &tonic::Status) -> String {
    let chain = match std::error::Error::source(status) {
        Some(cause) => format!("{}: {}", status.message(), error_chain(cause)),
        None => status.message().to_owned(),
    };
    let lower = chain.to_ascii_lowercase();
    if let Some(at) = chain.find("outbound policy: ") {
        let rest = &chain[at..];
        return rest
            .split(": transport error")
            .next()
            .unwrap_or(rest)
            .to_owned();
    }
    if lower.contains("connection refused") {
        "connection refused".to_owned()
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup")
        || lower.contains("did not resolve")
    {
        "its host name did not resolve".to_owned()
    } else if is_tls_failure(&chain) {
        format!("TLS failed: {}", tls_verdict(&chain))
    } else if lower.contains("timed out") || lower.contains("deadline") {
        "connection timed out".to_owned()
    } else if lower.contains("unreachable") || lower.contains("no route") {
        "network unreachable".to_owned()
    } else {
        "not a Milvus (it did not answer Milvus's gRPC)".to_owned()
    }
}

/// Whether a transport failure (or our description of it) is a TLS handshake that failed:
/// an unknown issuer, a name mismatch, a server without TLS.
pub fn is_tls_failure(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "invalidcontenttype",
        "corrupt message",
    ]
    .iter()
    .any(|word| message.contains(word))
}

/// The part of a TLS failure that is the local library's verdict (`invalid peer certificate:
/// UnknownIssuer`, `received corrupt message ...`), without the far side's bytes.
fn tls_verdict(chain: &str) -> String {
    chain
        .split(": ")
        .find(|part| {
            let part = part.to_ascii_lowercase();
            part.contains("certificate") || part.contains("corrupt") || part.contains("handshake")
        })
        .unwrap_or("handshake failed")
        .chars()
        .take(200)
        .collect()
}

/// A reason Milvus gave (a gRPC status message): kept, since it says what Milvus refused, but
/// bounded and printable, so whatever answered cannot fill a message or a log.
fn quoted_reason(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}

/// Whether `uri` and `tls_ca_pem` make a usable endpoint (the certificate parses, TLS goes
/// with `https://`), without preparing a connection.
pub fn check_endpoint(uri: &str, tls_ca_pem: Option<&str>) -> Result<(), MilvusError> {
    endpoint(&parse_uri(uri)?, tls_ca_pem).map(|_| ())
}

/// The endpoint of a parsed `uri`, with TLS for `https://`.
fn endpoint(uri: &str, tls_ca_pem: Option<&str>) -> Result<Endpoint, MilvusError> {
    let endpoint =
        Endpoint::from_shared(uri.to_owned()).map_err(|_| MilvusError::BadUri(uri.to_owned()))?;
    match tls_config(uri, tls_ca_pem)? {
        Some(tls) => endpoint
            .tls_config(tls)
            .map_err(|e| MilvusError::BadCaCertificate(error_chain(&e))),
        None => Ok(endpoint),
    }
}

/// TLS for an `https://` URI (web roots, plus the given CA); `None` for `http://`.
fn tls_config(uri: &str, ca_pem: Option<&str>) -> Result<Option<ClientTlsConfig>, MilvusError> {
    let ca_pem = ca_pem.filter(|pem| !pem.trim().is_empty());
    if !uri.starts_with("https://") {
        return match ca_pem {
            Some(_) => Err(MilvusError::TlsNeedsHttps),
            None => Ok(None),
        };
    }
    let mut tls = ClientTlsConfig::new().with_webpki_roots();
    if let Some(pem) = ca_pem {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(MilvusError::BadCaCertificate(
                "it holds no PEM certificate".to_owned(),
            ));
        }
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    Ok(Some(tls))
}

/// An error with its causes, for transport failures whose top line says little
/// ("transport error") and whose cause says what went wrong (a refused certificate).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Milvus answers errors inside a successful gRPC response; both fields must say success.
/// `error_code` is deprecated in the proto but is what 2.3 servers fill.
#[expect(deprecated)]
fn check(status: Option<&Status>, operation: &'static str) -> Result<(), MilvusError> {
    match status {
        Some(s) if s.error_code != 0 || s.code != 0 => Err(MilvusError::Refused {
            operation,
            reason: if s.reason.is_empty() {
                format!("error code {} / {}", s.error_code, s.code)
            } else {
                s.reason.clone()
            },
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_must_be_http_host_port() {
        assert_eq!(
            parse_uri("http://127.0.0.1:19530/").unwrap(),
            "http://127.0.0.1:19530"
        );
        assert!(parse_uri("https://milvus.example.com:443").is_ok());
        let refused = parse_uri("http://root:hunter2@127.0.0.1:19530").unwrap_err();
        assert!(matches!(refused, MilvusError::CredentialsInUri));
        assert!(!refused.to_string().contains("hunter2"));
        for bad in [
            "127.0.0.1:19530",
            "ftp://x",
            "http://",
            "http://a b",
            "http://h/path",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[expect(deprecated)]
    fn a_status_with_either_code_set_is_an_error() {
        let ok = Status::default();
        assert!(check(Some(&ok), "x").is_ok());
        assert!(check(None, "x").is_ok());
        let legacy = Status {
            error_code: 1,
            reason: "boom".into(),
            ..Default::default()
        };
        assert!(check(Some(&legacy), "x").is_err());
        let modern = Status {
            code: 100,
            ..Default::default()
        };
        assert!(check(Some(&modern), "x").is_err());
    }
}
