//! Objects in an S3 bucket (AWS or any S3-compatible endpoint, path-style by default).
//!
//! Puts stream: content is read one part at a time (`part_size_mib`), sent as one PutObject
//! when it fits in a part, else as a multipart upload with up to `parts_in_flight` parts in
//! flight, so memory stays at (in-flight + 1) parts whatever the object size. Each request
//! carries the CRC32C of its bytes and the server rejects a body that does not match it.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use futures::stream::{FuturesUnordered, StreamExt};
use secrecy::ExposeSecret;
use tokio::io::AsyncReadExt;

use super::{
    validate_key, Checksum, ListPage, Location, ObjectError, ObjectMeta, ObjectReader,
    ObjectResult, ObjectStore, Written,
};
use crate::config::S3Config;

/// CopyObject copies at most 5 GiB; larger objects are streamed instead.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    endpoint: String,
    bucket: String,
    prefix: String,
    part_size: usize,
    parts_in_flight: usize,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a bucket cannot be used, as far as the S3 server says (no server text is kept: a
/// registration's error names the field to fix, never echoes what the other side sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessProblem {
    NoSuchBucket,
    UnknownAccessKey,
    BadSignature,
    Denied,
    /// Connection refused, DNS, TLS or a timeout.
    Unreachable,
    /// Any other refusal, by its S3 error code when it had one.
    Other(Option<String>),
}

fn remote(operation: &'static str) -> impl FnOnce(String) -> ObjectError {
    move |message| ObjectError::Remote { operation, message }
}

fn sdk_message<E: std::error::Error>(err: E) -> String {
    DisplayErrorContext(err).to_string()
}

impl S3Store {
    /// Lists one key under the prefix and reads it back, so the bucket exists and these
    /// credentials may list and read there.
    pub async fn check_access(&self) -> Result<(), AccessProblem> {
        use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
        fn classify<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> AccessProblem {
            match &err {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                    return AccessProblem::Unreachable
                }
                _ => {}
            }
            match err.code() {
                Some("NoSuchBucket") => AccessProblem::NoSuchBucket,
                Some("InvalidAccessKeyId") => AccessProblem::UnknownAccessKey,
                Some("SignatureDoesNotMatch") => AccessProblem::BadSignature,
                Some("AccessDenied") => AccessProblem::Denied,
                code => AccessProblem::Other(code.map(str::to_owned)),
            }
        }
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(classify)?;
        if let Some(key) = listed.contents().first().and_then(|o| o.key()) {
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    pub fn new(config: &S3Config) -> S3Store {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "backstop-config",
        );
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(config.force_path_style)
            .timeout_config(timeouts)
            .http_client(http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        S3Store {
            client: Client::from_conf(builder.build()),
            endpoint: config
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("aws:{}", config.region)),
            bucket: config.bucket.clone(),
            prefix: config.prefix.trim_matches('/').to_owned(),
            part_size: (config.part_size_mib * 1024 * 1024) as usize,
            parts_in_flight: config.parts_in_flight.max(1),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip_prefix<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    /// Creates the bucket unless it exists (tests and first-time set-up).
    pub async fn create_bucket_if_missing(&self) -> ObjectResult<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let owned = err
                    .as_service_error()
                    .map(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists())
                    .unwrap_or(false);
                if owned {
                    Ok(())
                } else {
                    Err(remote("CreateBucket")(sdk_message(err)))
                }
            }
        }
    }

    async fn put_single(&self, key: &str, body: Vec<u8>, checksum: Checksum) -> ObjectResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_crc32_c(checksum.to_base64())
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| remote("PutObject")(sdk_message(e)))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        first: Vec<u8>,
        reader: &mut ObjectReader,
        expected: Option<Checksum>,
        original_key: &str,
    ) -> ObjectResult<Written> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .map_err(|e| remote("CreateMultipartUpload")(sdk_message(e)))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let outcome = self
            .upload_parts(key, &upload_id, first, reader)
            .await
            .and_then(|(parts, written)| match expected {
                Some(expected) if expected != written.checksum => {
                    Err(ObjectError::ChecksumMismatch {
                        key: original_key.to_owned(),
                        expected,
                        actual: written.checksum,
                    })
                }
                _ => Ok((parts, written)),
            });
        let (parts, written) = match outcome {
            Ok(done) => done,
            Err(err) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(err);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| remote("CompleteMultipartUpload")(sdk_message(e)))?;
        Ok(written)
    }

    /// Reads and uploads parts with at most `parts_in_flight` requests outstanding.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        reader: &mut ObjectReader,
    ) -> ObjectResult<(Vec<CompletedPart>, Written)> {
        let mut in_flight = FuturesUnordered::new();
        let mut completed = Vec::new();
        let mut checksum = Checksum::default();
        let mut size = 0u64;
        let mut part = first;
        let mut part_number = 1i32;
        loop {
            checksum = checksum.extend(&part);
            size += part.len() as u64;
            let part_checksum = Checksum::of(&part).to_base64();
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .checksum_crc32_c(part_checksum.clone())
                .body(ByteStream::from(part))
                .send();
            in_flight.push(async move {
                let out = request
                    .await
                    .map_err(|e| remote("UploadPart")(sdk_message(e)))?;
                Ok::<_, ObjectError>(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .checksum_crc32_c(part_checksum)
                        .build(),
                )
            });
            if in_flight.len() >= self.parts_in_flight {
                if let Some(done) = in_flight.next().await {
                    completed.push(done?);
                }
            }
            let next = read_up_to(reader, self.part_size, key).await?;
            if next.is_empty() {
                break;
            }
            part = next;
            part_number += 1;
        }
        while let Some(done) = in_flight.next().await {
            completed.push(done?);
        }
        completed.sort_by_key(|p| p.part_number());
        Ok((completed, Written { size, checksum }))
    }
}

async fn read_up_to(reader: &mut ObjectReader, limit: usize, key: &str) -> ObjectResult<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(64 * 1024 * 1024));
    reader
        .take(limit as u64)
        .read_to_end(&mut buf)
        .await
        .map_err(|source| ObjectError::Io {
            path: key.to_owned(),
            source,
        })?;
    Ok(buf)
}

/// Percent-encodes a key for the `x-amz-copy-source` header, keeping `/`.
fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> Location {
        Location::S3 {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
        }
    }

    fn as_s3(&self) -> Option<&S3Store> {
        Some(self)
    }

    async fn put(
        &self,
        key: &str,
        mut reader: ObjectReader,
        expected: Option<Checksum>,
    ) -> ObjectResult<Written> {
        validate_key(key)?;
        let full = self.full_key(key);
        let first = read_up_to(&mut reader, self.part_size, key).await?;
        if first.len() < self.part_size {
            let written = Written {
                size: first.len() as u64,
                checksum: Checksum::of(&first),
            };
            if let Some(expected) = expected.filter(|e| *e != written.checksum) {
                return Err(ObjectError::ChecksumMismatch {
                    key: key.to_owned(),
                    expected,
                    actual: written.checksum,
                });
            }
            self.put_single(&full, first, written.checksum).await?;
            return Ok(written);
        }
        self.put_multipart(&full, first, &mut reader, expected, key)
            .await
    }

    async fn get(&self, key: &str) -> ObjectResult<ObjectReader> {
        validate_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => Ok(Box::pin(out.body.into_async_read())),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                Err(ObjectError::NotFound(key.to_owned()))
            }
            Err(err) => Err(remote("GetObject")(sdk_message(err))),
        }
    }

    async fn head(&self, key: &str) -> ObjectResult<Option<ObjectMeta>> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(remote("HeadObject")(sdk_message(err))),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> ObjectResult<ListPage> {
        let full_prefix = if self.prefix.is_empty() {
            prefix.to_owned()
        } else {
            format!("{}/{prefix}", self.prefix)
        };
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(full_prefix)
            .set_continuation_token(continuation)
            .max_keys(max_keys.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| remote("ListObjectsV2")(sdk_message(e)))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectMeta {
                    key: self.strip_prefix(o.key()?).to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn delete_many(&self, keys: &[String]) -> ObjectResult<()> {
        for chunk in keys.chunks(1000) {
            let mut ids = Vec::with_capacity(chunk.len());
            for key in chunk {
                validate_key(key)?;
                ids.push(
                    ObjectIdentifier::builder()
                        .key(self.full_key(key))
                        .build()
                        .map_err(|e| remote("DeleteObjects")(e.to_string()))?,
                );
            }
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| remote("DeleteObjects")(e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| remote("DeleteObjects")(sdk_message(e)))?;
            if let Some(first) = out.errors().first() {
                return Err(remote("DeleteObjects")(format!(
                    "{} of {} keys not deleted, first {}: {}",
                    out.errors().len(),
                    chunk.len(),
                    first.key().unwrap_or("?"),
                    first.message().unwrap_or("no message")
                )));
            }
        }
        Ok(())
    }

    async fn copy_from(
        &self,
        source: &dyn ObjectStore,
        src_key: &str,
        dst_key: &str,
    ) -> ObjectResult<Option<Written>> {
        let Some(src) = source.as_s3() else {
            return Ok(None);
        };
        if src.endpoint != self.endpoint {
            return Ok(None);
        }
        validate_key(src_key)?;
        validate_key(dst_key)?;
        let Some(meta) = src.head(src_key).await? else {
            return Err(ObjectError::NotFound(src_key.to_owned()));
        };
        if meta.size > MAX_SINGLE_COPY {
            return Ok(None);
        }
        let out = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.full_key(dst_key))
            .copy_source(encode_copy_source(&src.bucket, &src.full_key(src_key)))
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // Credentials of this side may not read the other bucket: stream instead.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 403) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(remote("CopyObject")(sdk_message(err))),
        };
        let reported = out
            .copy_object_result()
            .and_then(|r| r.checksum_crc32_c())
            .and_then(Checksum::parse);
        let checksum = match reported {
            Some(checksum) => checksum,
            // The endpoint did not report a full-object CRC32C: read the copy back once.
            None => super::verify_read(self, dst_key).await?.checksum,
        };
        Ok(Some(Written {
            size: meta.size,
            checksum,
        }))
    }

    async fn ping(&self) -> ObjectResult<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| remote("HeadBucket")(sdk_message(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded_but_keeps_slashes() {
        assert_eq!(
            encode_copy_source("b", "files/insert_log/1/2/a b+c"),
            "b/files/insert_log/1/2/a%20b%2Bc"
        );
    }
}
