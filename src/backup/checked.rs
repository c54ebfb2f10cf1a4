//! Reading and moving a finished backup's objects, each checked against its manifest. Shared
//! by verify, cross-region copy and restore, so "damaged" means the same thing in all three.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};

use super::manifest::{Manifest, ManifestObject};
use super::storage_error;
use crate::domain::backups::{BackupLayout, BackupStatus};
use crate::jobs::{JobContext, JobError};
use crate::objects::{self, DynObjectStore, ObjectError, ObjectStore};
use crate::service::Services;
use crate::store::{Backup, Progress};
use crate::test_hooks::PausePoint;

/// The job's backup, which must be AVAILABLE.
pub async fn available_backup(services: &Services, ctx: &JobContext) -> Result<Backup, JobError> {
    let backup_id = ctx
        .job()
        .backup_id
        .clone()
        .ok_or_else(|| JobError::Permanent("job without a backupId".to_owned()))?;
    services
        .store
        .get_backup(&backup_id)
        .await?
        .filter(|b| b.status == BackupStatus::Available)
        .ok_or_else(|| JobError::Permanent(format!("backup {backup_id} is not AVAILABLE")))
}

/// The manifest at `layout` in `storage`, and its bytes (a copy writes them as they are).
pub async fn read_manifest(
    storage: &dyn ObjectStore,
    layout: &BackupLayout,
) -> Result<(Manifest, Vec<u8>), JobError> {
    let key = layout.manifest();
    let bytes = objects::get_bytes(storage, &key)
        .await
        .map_err(|e| match e {
            ObjectError::NotFound(_) => {
                JobError::Permanent(format!("the manifest {key} is missing"))
            }
            e => storage_error("reading the manifest", e),
        })?;
    let manifest = Manifest::from_json(&bytes)
        .map_err(|e| JobError::Permanent(format!("the manifest {key} is unreadable: {e}")))?;
    Ok((manifest, bytes))
}

/// Re-reads every object and checks it against the manifest; the first damaged or missing one
/// fails the job, named. With `report`, progress follows the bytes read.
pub async fn verify_objects(
    ctx: &JobContext,
    storage: &DynObjectStore,
    objects: Vec<ManifestObject>,
    parallelism: usize,
    report: bool,
) -> Result<(), JobError> {
    let total: u64 = objects.iter().map(|o| o.size).sum();
    let done = AtomicU64::new(0);
    futures::stream::iter(objects)
        .map(|object| {
            let (storage, done) = (storage.clone(), &done);
            async move {
                ctx.checkpoint()?;
                match objects::verify(storage.as_ref(), &object.key, object.checksum).await {
                    Ok(written) if written.size == object.size => {}
                    Ok(written) => {
                        return Err(JobError::Permanent(format!(
                            "backup object {} has {} bytes, the manifest says {}",
                            object.key, written.size, object.size
                        )))
                    }
                    Err(e @ (ObjectError::ChecksumMismatch { .. } | ObjectError::NotFound(_))) => {
                        return Err(JobError::Permanent(format!(
                            "backup object {} is damaged: {e}",
                            object.key
                        )))
                    }
                    Err(e) => return Err(storage_error("reading backup objects", e)),
                }
                let bytes = done.fetch_add(object.size, Ordering::Relaxed) + object.size;
                if report {
                    let _ = ctx
                        .progress(Progress {
                            percent: ((bytes as f64 / total.max(1) as f64) * 99.0) as i32,
                            bytes_done: bytes as i64,
                            bytes_total: total as i64,
                            step: Some("verifying objects".to_owned()),
                        })
                        .await;
                }
                Ok(())
            }
        })
        .buffer_unordered(parallelism)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// How a copy reports its bytes in the job: as `step`, its percent going from `from` to `to`.
#[derive(Debug, Clone, Copy)]
pub struct CopyProgress<'a> {
    pub step: &'a str,
    pub from: i32,
    pub to: i32,
}

/// Reports written at most this often (and once at the end).
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Copies each object to its destination key (server-side where the stores allow), checking
/// what lands against the manifest, with bytes in the job's progress; returns the bytes
/// copied. `barrier` (tests only) holds the copy after some files.
pub async fn copy_objects(
    ctx: &JobContext,
    source: &DynObjectStore,
    dest: &DynObjectStore,
    objects: Vec<(ManifestObject, String)>,
    parallelism: usize,
    progress: CopyProgress<'_>,
    barrier: Option<&PausePoint>,
) -> Result<u64, JobError> {
    let total: u64 = objects.iter().map(|(o, _)| o.size).sum();
    let copied = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let reported = std::sync::Mutex::new(std::time::Instant::now());
    let report = |done: u64| {
        let span = f64::from(progress.to - progress.from);
        Progress {
            percent: progress.from + (done as f64 / total.max(1) as f64 * span) as i32,
            bytes_done: done as i64,
            bytes_total: total as i64,
            step: Some(progress.step.to_owned()),
        }
    };
    // After the first failure no new copy starts, but those in flight run to their end: a
    // request dropped half-way may still land on the server after the caller has cleaned up
    // (a canceled restore would then leave a staged object behind).
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<Result<(), JobError>> = futures::stream::iter(objects)
        .map(|(object, dest_key)| {
            let (source, dest, copied, bytes) = (source.clone(), dest.clone(), &copied, &bytes);
            let (reported, report, failed) = (&reported, &report, &failed);
            let copy = async move {
                if failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                ctx.checkpoint()?;
                let written = objects::copy(source.as_ref(), &object.key, dest.as_ref(), &dest_key)
                    .await
                    .map_err(|e| storage_error(&format!("copying {}", object.key), e))?;
                if written.checksum != object.checksum || written.size != object.size {
                    return Err(JobError::Permanent(format!(
                        "backup object {} does not match its manifest (checksum {} ≠ {}); \
                         verify the backup",
                        object.key, written.checksum, object.checksum
                    )));
                }
                let count = copied.fetch_add(1, Ordering::Relaxed) + 1;
                let done = bytes.fetch_add(object.size, Ordering::Relaxed) + object.size;
                let due = {
                    let mut last = reported.lock().unwrap_or_else(|e| e.into_inner());
                    let due = last.elapsed() >= REPORT_EVERY;
                    if due {
                        *last = std::time::Instant::now();
                    }
                    due
                };
                if due {
                    ctx.progress(report(done)).await?;
                }
                if let Some(pause) = barrier.filter(|p| p.after(count)) {
                    pause.wait(ctx).await?;
                }
                Ok(())
            };
            async move {
                let result = copy.await;
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                result
            }
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
    if let Some(err) = results.into_iter().find_map(Result::err) {
        return Err(err);
    }
    ctx.progress(report(total)).await?;
    Ok(total)
}
