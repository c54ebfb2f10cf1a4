//! Objects as files under a root directory. A put writes a temporary file beside the target,
//! fsyncs it, checks the checksum, then renames it into place, so a reader never sees half an
//! object and a crash leaves at most a temporary file (named `.tmp-*`, skipped by `list`).
//!
//! Bulk copies (`copy_from`) rename without an fsync each and are made durable together by
//! `sync`: one barrier per backup before its manifest instead of one stall per file.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{
    validate_key, Checksum, ChecksumReader, ListPage, Location, ObjectError, ObjectMeta,
    ObjectReader, ObjectResult, ObjectStore, Written,
};

const TMP_PREFIX: &str = ".tmp-";
/// Blocking threads `sync` spreads its fsyncs over.
const SYNC_THREADS: usize = 16;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Files copied in but not yet fsynced (see `sync`).
    unsynced: std::sync::Arc<std::sync::Mutex<Vec<PathBuf>>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ObjectError + '_ {
    move |source| ObjectError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore {
            root: root.into(),
            unsynced: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> ObjectResult<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes via a temporary file and rename; see the module comment.
    async fn write_atomically(
        &self,
        key: &str,
        path: &Path,
        fill: impl std::future::Future<Output = std::io::Result<Written>>,
        tmp: &Path,
        expected: Option<Checksum>,
    ) -> ObjectResult<Written> {
        let result = fill.await.map_err(io_err(path));
        let written = match result {
            Ok(w) => w,
            Err(e) => {
                let _ = tokio::fs::remove_file(tmp).await;
                return Err(e);
            }
        };
        if let Some(expected) = expected {
            if expected != written.checksum {
                let _ = tokio::fs::remove_file(tmp).await;
                return Err(ObjectError::ChecksumMismatch {
                    key: key.to_owned(),
                    expected,
                    actual: written.checksum,
                });
            }
        }
        tokio::fs::rename(tmp, path).await.map_err(io_err(path))?;
        Ok(written)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u64 = rand::random();
    path.with_file_name(format!("{TMP_PREFIX}{nonce:016x}-{name}"))
}

async fn ensure_parent(path: &Path) -> ObjectResult<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io_err(parent))?;
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn location(&self) -> Location {
        Location::Local {
            root: self.root.clone(),
        }
    }

    async fn put(
        &self,
        key: &str,
        reader: ObjectReader,
        expected: Option<Checksum>,
    ) -> ObjectResult<Written> {
        let path = self.path_of(key)?;
        ensure_parent(&path).await?;
        let tmp = tmp_path(&path);
        let fill = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut reader = ChecksumReader::new(reader);
            let size = tokio::io::copy(&mut reader, &mut file).await?;
            file.flush().await?;
            file.sync_all().await?;
            Ok(Written {
                size,
                checksum: reader.checksum(),
            })
        };
        self.write_atomically(key, &path, fill, &tmp, expected)
            .await
    }

    async fn get(&self, key: &str) -> ObjectResult<ObjectReader> {
        let path = self.path_of(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Box::pin(tokio::io::BufReader::with_capacity(1 << 20, file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ObjectError::NotFound(key.to_owned()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    async fn head(&self, key: &str) -> ObjectResult<Option<ObjectMeta>> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: meta.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        continuation: Option<String>,
        max_keys: usize,
    ) -> ObjectResult<ListPage> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let max_keys = max_keys.max(1);
        tokio::task::spawn_blocking(move || {
            let mut keys = walk(&root, &prefix)?;
            keys.sort_by(|a, b| a.key.cmp(&b.key));
            let start = match &continuation {
                Some(after) => keys.partition_point(|m| m.key.as_str() <= after.as_str()),
                None => 0,
            };
            let rest = &keys[start..];
            let objects: Vec<ObjectMeta> = rest.iter().take(max_keys).cloned().collect();
            let next = (rest.len() > max_keys).then(|| objects.last().expect("page").key.clone());
            Ok(ListPage { objects, next })
        })
        .await
        .map_err(|e| ObjectError::Io {
            path: self.root.display().to_string(),
            source: std::io::Error::other(e),
        })?
    }

    async fn delete_many(&self, keys: &[String]) -> ObjectResult<()> {
        for key in keys {
            let path = self.path_of(key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => prune_empty_parents(&self.root, &path).await,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
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
        let Location::Local { root } = source.location() else {
            return Ok(None);
        };
        validate_key(src_key)?;
        let src = root.join(src_key);
        let dst = self.path_of(dst_key)?;
        ensure_parent(&dst).await?;
        let tmp = tmp_path(&dst);
        // std::fs::copy uses copy_file_range on Linux: the kernel moves the bytes (and can
        // reflink). The checksum then reads the copy, which the page cache already holds.
        let (src2, tmp2) = (src.clone(), tmp.clone());
        let fill = async move {
            tokio::task::spawn_blocking(move || -> std::io::Result<Written> {
                let size = match std::fs::copy(&src2, &tmp2) {
                    Ok(size) => size,
                    Err(e) => return Err(e),
                };
                let checksum = checksum_file(&tmp2)?;
                Ok(Written { size, checksum })
            })
            .await
            .map_err(std::io::Error::other)?
        };
        match self.write_atomically(dst_key, &dst, fill, &tmp, None).await {
            Err(ObjectError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(ObjectError::NotFound(src_key.to_owned()))
            }
            Ok(written) => {
                self.unsynced
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(dst);
                Ok(Some(written))
            }
            Err(e) => Err(e),
        }
    }

    async fn sync(&self) -> ObjectResult<()> {
        let files: Vec<PathBuf> =
            std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|e| e.into_inner()));
        if files.is_empty() {
            return Ok(());
        }
        // fsyncs issued together let the filesystem commit them in a few journal
        // transactions instead of one per file.
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|d| d.starts_with(&self.root))
            .collect();
        dirs.sort();
        dirs.dedup();
        for batch in [files, dirs] {
            let chunk = batch.len().div_ceil(SYNC_THREADS).max(1);
            let mut tasks = tokio::task::JoinSet::new();
            for part in batch.chunks(chunk).map(<[PathBuf]>::to_vec) {
                tasks.spawn_blocking(move || -> ObjectResult<()> {
                    for path in &part {
                        match std::fs::File::open(path) {
                            Ok(f) => f.sync_all().map_err(io_err(path))?,
                            // Deleted since (a superseded segment): nothing to keep.
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err(path)(e)),
                        }
                    }
                    Ok(())
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.map_err(|e| ObjectError::Io {
                    path: self.root.display().to_string(),
                    source: std::io::Error::other(e),
                })??;
            }
        }
        Ok(())
    }

    async fn ping(&self) -> ObjectResult<()> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(io_err(&self.root))?;
        let probe = self.root.join(".ping");
        tokio::fs::write(&probe, b"ok")
            .await
            .map_err(io_err(&probe))?;
        Ok(())
    }
}

fn checksum_file(path: &Path) -> std::io::Result<Checksum> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut checksum = Checksum::default();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(checksum);
        }
        checksum = checksum.extend(&buf[..n]);
    }
}

/// Every file under `root` whose key starts with `prefix`, walking only the directory that
/// can hold such keys.
fn walk(root: &Path, prefix: &str) -> ObjectResult<Vec<ObjectMeta>> {
    let base_dir = match prefix.rfind('/') {
        Some(i) => root.join(&prefix[..i]),
        None => root.to_path_buf(),
    };
    let mut out = Vec::new();
    let mut stack = vec![base_dir];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(io_err(&path))?;
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel.to_string_lossy().replace('\\', "/");
            if file_type.is_dir() {
                if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                    stack.push(path);
                }
            } else if file_type.is_file()
                && key.starts_with(prefix)
                && !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
                && key != ".ping"
            {
                let size = entry.metadata().map_err(io_err(&path))?.len();
                out.push(ObjectMeta { key, size });
            }
        }
    }
    Ok(out)
}

async fn prune_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        // remove_dir fails on a non-empty directory, which is where we stop.
        if tokio::fs::remove_dir(d).await.is_err() {
            break;
        }
        dir = d.parent();
    }
}
