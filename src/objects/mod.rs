//! Object storage: the one interface through which every byte of a backup is written or read,
//! with a local-directory and an S3 implementation that pass the same test suite
//! (`tests/suite/objects.rs`).
//!
//! Every put streams (bounded memory: at most one part per in-flight upload slot) and computes a
//! CRC32C of the content, which the caller records (the backup manifest). A put given an
//! expected checksum refuses content that does not match and leaves nothing behind.

mod checksum;
mod local;
mod s3;

use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use checksum::{Checksum, ChecksumReader};
pub use local::LocalStore;
pub use s3::{AccessProblem, S3Store};

pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("object '{0}' does not exist")]
    NotFound(String),
    #[error("object '{key}' has checksum {actual}, expected {expected}")]
    ChecksumMismatch {
        key: String,
        expected: Checksum,
        actual: Checksum,
    },
    #[error(
        "invalid object key '{0}': keys are relative, '/'-separated, without '.' or '..' parts"
    )]
    InvalidKey(String),
    #[error("local storage I/O on '{path}': {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The S3 endpoint refused or did not answer. Never carries credentials.
    #[error("object storage request {operation} failed: {message}")]
    Remote {
        operation: &'static str,
        message: String,
    },
}

pub type ObjectResult<T> = Result<T, ObjectError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// What a put wrote: its size and the CRC32C of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub checksum: Checksum,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass back to `list` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Where a store's bytes live, so a copy can tell when both sides share an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local { root: std::path::PathBuf },
    S3 { endpoint: String, bucket: String },
}

#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    fn location(&self) -> Location;

    /// Streams `reader` into `key`, replacing any object there. With `expected`, content whose
    /// CRC32C differs is refused with `ChecksumMismatch` and nothing is left at `key`.
    async fn put(
        &self,
        key: &str,
        reader: ObjectReader,
        expected: Option<Checksum>,
    ) -> ObjectResult<Written>;

    async fn get(&self, key: &str) -> ObjectResult<ObjectReader>;

    async fn head(&self, key: &str) -> ObjectResult<Option<ObjectMeta>>;

    /// Objects whose key starts with `prefix`, in key order, at most `max_keys` per page.
    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> ObjectResult<ListPage>;

    /// Deletes every key given; keys that do not exist are not an error.
    async fn delete_many(&self, keys: &[String]) -> ObjectResult<()>;

    /// Copies `src_key` of `source` to `dst_key` here without the bytes passing through this
    /// process, when the two stores allow it (same S3 endpoint, or two local directories).
    /// `Ok(None)` means "not possible here": the caller streams instead.
    async fn copy_from(
        &self,
        source: &dyn ObjectStore,
        src_key: &str,
        dst_key: &str,
    ) -> ObjectResult<Option<Written>>;

    /// Makes every object this store wrote durable. `put` is durable when it returns;
    /// `copy_from` may defer durability to this barrier (local directories do), so a writer
    /// calls it before the write that commits its objects (a backup's manifest).
    async fn sync(&self) -> ObjectResult<()> {
        Ok(())
    }

    /// The S3 side of `copy_from`, exposed so another S3 store can see bucket and client.
    fn as_s3(&self) -> Option<&S3Store> {
        None
    }

    /// Is the storage reachable (for `/readyz`)?
    async fn ping(&self) -> ObjectResult<()>;
}

pub type DynObjectStore = Arc<dyn ObjectStore>;

/// Small objects (manifests, metadata) from memory.
pub async fn put_bytes(store: &dyn ObjectStore, key: &str, bytes: Bytes) -> ObjectResult<Written> {
    store
        .put(key, Box::pin(std::io::Cursor::new(bytes)), None)
        .await
}

/// Reads a whole (small) object into memory.
pub async fn get_bytes(store: &dyn ObjectStore, key: &str) -> ObjectResult<Vec<u8>> {
    let mut reader = store.get(key).await?;
    let mut buf = Vec::new();
    reader
        .read_to_end(&mut buf)
        .await
        .map_err(|source| ObjectError::Io {
            path: key.to_owned(),
            source,
        })?;
    Ok(buf)
}

/// Re-reads `key` and checks its content against `expected`.
pub async fn verify(
    store: &dyn ObjectStore,
    key: &str,
    expected: Checksum,
) -> ObjectResult<Written> {
    let written = verify_read(store, key).await?;
    if written.checksum != expected {
        return Err(ObjectError::ChecksumMismatch {
            key: key.to_owned(),
            expected,
            actual: written.checksum,
        });
    }
    Ok(written)
}

/// Reads `key` to its end and returns its size and checksum.
pub async fn verify_read(store: &dyn ObjectStore, key: &str) -> ObjectResult<Written> {
    let reader = store.get(key).await?;
    let mut checked = ChecksumReader::new(reader);
    let mut sink = tokio::io::sink();
    let size = tokio::io::copy(&mut checked, &mut sink)
        .await
        .map_err(|source| ObjectError::Io {
            path: key.to_owned(),
            source,
        })?;
    Ok(Written {
        size,
        checksum: checked.checksum(),
    })
}

/// Copies one object between stores: server-side where `copy_from` can, streamed otherwise.
pub async fn copy(
    source: &dyn ObjectStore,
    src_key: &str,
    dest: &dyn ObjectStore,
    dst_key: &str,
) -> ObjectResult<Written> {
    if let Some(written) = dest.copy_from(source, src_key, dst_key).await? {
        return Ok(written);
    }
    let reader = source.get(src_key).await?;
    dest.put(dst_key, reader, None).await
}

/// Lists every object under `prefix`, following pages.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let page = store.list(prefix, next, 1000).await?;
        all.extend(page.objects);
        match page.next {
            Some(token) => next = Some(token),
            None => return Ok(all),
        }
    }
}

/// Keys are relative and '/'-separated; no empty, `.` or `..` segments, so a key can never
/// reach outside a local root or alias another key.
pub fn validate_key(key: &str) -> ObjectResult<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(ObjectError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_their_root() {
        assert!(validate_key("backups/p/c/manifest.json").is_ok());
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a/", "a\\b"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }
}
