//! Copying a collection's binlogs: every file of every segment, streamed or copied server-side,
//! at most `copy_parallelism` files at once across the whole job (one semaphore shared by all
//! collections), with byte counters for progress and a record of what is already copied so a
//! resumed job skips it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::manifest::ManifestObject;
use crate::domain::backups::BackupLayout;
use crate::jobs::{JobContext, Stop};
use crate::milvus::SegmentDescription;
use crate::objects::{self, Checksum, DynObjectStore, ObjectError, ObjectMeta};
use crate::test_hooks::TestHooks;

/// Objects already in the backup, by destination key: (size, checksum). Saved in the job's
/// state so an attempt after a crash skips them.
pub(super) type Copied = BTreeMap<String, (u64, Checksum)>;

/// The backup job's saved state: what survives a crash is the objects already copied.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SavedState {
    pub copied: Copied,
}

#[derive(Debug)]
pub(super) enum CopyFailure {
    /// A source file disappeared (compaction or drop): the segment list must be read again.
    Vanished(String),
    Storage(ObjectError),
    Stopped(Stop),
}

impl From<Stop> for CopyFailure {
    fn from(stop: Stop) -> Self {
        CopyFailure::Stopped(stop)
    }
}

#[derive(Clone)]
pub(super) struct Copier {
    pub ctx: JobContext,
    pub source: DynObjectStore,
    pub dest: DynObjectStore,
    pub layout: BackupLayout,
    pub slots: Arc<Semaphore>,
    pub parallelism: usize,
    pub bytes_done: Arc<AtomicU64>,
    pub bytes_total: Arc<AtomicU64>,
    pub copied: Arc<Mutex<Copied>>,
    /// For progress: the collection whose copy started last, and how many are done of all.
    pub current: Arc<Mutex<String>>,
    pub collections_done: Arc<AtomicU64>,
    pub collections_total: u64,
    /// Files copied by this attempt (for the test barrier).
    pub files_copied: Arc<AtomicU64>,
    pub hooks: TestHooks,
}

impl Copier {
    /// The insert and delete binlogs of each segment (stats logs are not needed to restore).
    pub async fn list_files(
        &self,
        collection_id: i64,
        segments: &[SegmentDescription],
    ) -> Result<Vec<ObjectMeta>, ObjectError> {
        let per_segment: Vec<Vec<ObjectMeta>> = futures::stream::iter(segments.iter().cloned())
            .map(|segment| async move {
                let tail = format!(
                    "{collection_id}/{}/{}/",
                    segment.partition_id, segment.segment_id
                );
                let mut files =
                    objects::list_all(self.source.as_ref(), &format!("insert_log/{tail}")).await?;
                files.extend(
                    objects::list_all(self.source.as_ref(), &format!("delta_log/{tail}")).await?,
                );
                Ok::<_, ObjectError>(files)
            })
            .buffered(self.parallelism)
            .try_collect()
            .await?;
        Ok(per_segment.into_iter().flatten().collect())
    }

    /// Copies `files` into the backup; returns what landed, in key order.
    pub async fn copy_files(
        &self,
        files: &[ObjectMeta],
    ) -> Result<Vec<ManifestObject>, CopyFailure> {
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.bytes_total.fetch_add(total, Ordering::Relaxed);
        let mut landed: Vec<ManifestObject> = futures::stream::iter(files.iter().cloned())
            .map(|file| self.copy_one(file))
            .buffer_unordered(self.parallelism)
            .try_collect()
            .await?;
        landed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(landed)
    }

    async fn copy_one(&self, file: ObjectMeta) -> Result<ManifestObject, CopyFailure> {
        self.ctx.checkpoint()?;
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the copy semaphore is never closed");
        self.ctx.checkpoint()?;
        let key = self.layout.binlog(&file.key);
        let earlier = self.copied_before(&key);
        if let Some((size, checksum)) = earlier.filter(|(size, _)| *size == file.size) {
            // Copied by an earlier attempt: keep it if it is still there with the checksum it
            // was copied with (reading is cheaper than copying; a crash may have torn it).
            match objects::verify(self.dest.as_ref(), &key, checksum).await {
                Ok(written) if written.size == size => {
                    self.bytes_done.fetch_add(size, Ordering::Relaxed);
                    return Ok(ManifestObject {
                        key,
                        size,
                        checksum,
                    });
                }
                Ok(_) | Err(ObjectError::NotFound(_) | ObjectError::ChecksumMismatch { .. }) => {}
                Err(e) => return Err(CopyFailure::Storage(e)),
            }
        }
        let written =
            match objects::copy(self.source.as_ref(), &file.key, self.dest.as_ref(), &key).await {
                Ok(written) => written,
                Err(ObjectError::NotFound(_)) => return Err(CopyFailure::Vanished(file.key)),
                Err(e) => return Err(CopyFailure::Storage(e)),
            };
        self.bytes_done.fetch_add(written.size, Ordering::Relaxed);
        self.copied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), (written.size, written.checksum));
        let count = self.files_copied.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(pause) = self.hooks.backup_copy().filter(|p| p.after(count)) {
            // What the barrier's test kills or cancels resumes from the saved state.
            self.save_state().await;
            pause.wait(&self.ctx).await?;
        }
        Ok(ManifestObject {
            key,
            size: written.size,
            checksum: written.checksum,
        })
    }

    /// Saves what is copied so far in the job's state. A failure is logged and skipped: a
    /// resumed attempt then copies a few files again.
    pub async fn save_state(&self) {
        let copied = self
            .copied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Err(e) = self.ctx.save_state(&SavedState { copied }).await {
            tracing::debug!(error = %e, "copy state not saved; a resumed attempt copies more again");
        }
    }

    /// The progress step: which collection is being copied, and how far the job is.
    pub fn step(&self) -> String {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "copying binlogs of {current} ({} of {} collections done)",
            self.collections_done.load(Ordering::Relaxed),
            self.collections_total
        )
    }

    fn copied_before(&self, key: &str) -> Option<(u64, Checksum)> {
        self.copied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }
}
