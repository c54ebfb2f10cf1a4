//! The `BACKUP` job: describe → flush → list segments → copy binlogs → re-describe → meta →
//! manifest → AVAILABLE (`design/architecture.md`, "Backup algorithm").
//!
//! Every step is idempotent: an attempt after a crash re-reads Milvus, skips the objects the
//! job state says are already copied (and still there, whole), and writes meta and manifest
//! again. Nothing is AVAILABLE before its manifest is written; a backup that fails for good or
//! is canceled loses its objects and ends FAILED or CANCELED.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::copy::{Copier, CopyFailure, SavedState};
use super::live_rows;
use super::manifest::{
    CollectionMeta, Manifest, ManifestCollection, ManifestObject, ManifestSegment, PartitionRows,
    FORMAT_VERSION,
};
use super::{delete_prefix, storage_error};
use crate::clusters;
use crate::domain::backups::{
    dedupe, BackupLayout, BackupStatus, BackupType, DELETE_BACKUP_JOB, PURGE_MIN_ATTEMPTS,
};
use crate::jobs::{Abandoned, JobContext, JobError, JobHandler, Stop};
use crate::milvus::{
    retry_read, CollectionDescription, MilvusClient, MilvusError, Rbac, SegmentDescription,
};
use crate::objects::{self, DynObjectStore};
use crate::service::Services;
use crate::store::{BackedUpCollection, Backup, Cluster, Held, Job, Progress, StoreError};

pub struct BackupHandler {
    pub(super) services: Services,
}

/// One collection, copied and checked.
struct CopiedCollection {
    description: CollectionDescription,
    segments: Vec<SegmentDescription>,
    objects: Vec<ManifestObject>,
}

fn milvus_error(context: &str, err: MilvusError) -> JobError {
    JobError::Retryable(format!("{context}: {err}"))
}

#[async_trait]
impl JobHandler for BackupHandler {
    /// A canceled backup loses its objects and ends CANCELED.
    fn cancellable(&self) -> bool {
        true
    }

    async fn abandoned(&self, job: &Job, why: &Abandoned) {
        let Some(backup_id) = &job.backup_id else {
            return;
        };
        let store = &self.services.store;
        let backup = match store.get_backup(backup_id).await {
            Ok(Some(backup)) if backup.status == BackupStatus::Creating => backup,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%backup_id, error = %e, "abandoned backup not ended; it stays CREATING");
                return;
            }
        };
        let (status, reason) = match why {
            Abandoned::Canceled => (
                BackupStatus::Canceled,
                "canceled before it started".to_owned(),
            ),
            Abandoned::GaveUp(reason) => (BackupStatus::Failed, reason.clone()),
        };
        if let Err(e) = self.discard(&backup, status, &reason).await {
            tracing::warn!(%backup_id, error = %e, "abandoned backup not ended; it stays CREATING");
        }
    }

    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let backup_id = ctx
            .job()
            .backup_id
            .clone()
            .ok_or_else(|| JobError::Permanent("backup job without a backupId".to_owned()))?;
        let Some(backup) = self.services.store.get_backup(&backup_id).await? else {
            return Err(JobError::Permanent(format!(
                "backup {backup_id} no longer exists"
            )));
        };
        if backup.status != BackupStatus::Creating {
            // An earlier attempt finished it (and crashed before recording the job's end).
            return Ok(());
        }
        let storage = self.services.storage_in(&backup.region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        match self.make(&ctx, &backup, &storage, &layout).await {
            Ok(()) => Ok(()),
            Err(err) => self.after_error(&ctx, &backup, err).await,
        }
    }
}

impl BackupHandler {
    /// A canceled backup, or one that will not be tried again, loses its objects and ends
    /// CANCELED or FAILED; otherwise the error goes back to the queue for a retry.
    async fn after_error(
        &self,
        ctx: &JobContext,
        backup: &Backup,
        err: JobError,
    ) -> Result<(), JobError> {
        if !ctx.ends_with(&err) {
            return Err(err);
        }
        let (status, reason) = if ctx.is_canceled(&err) {
            (BackupStatus::Canceled, "canceled by request".to_owned())
        } else {
            (BackupStatus::Failed, err.to_string())
        };
        self.discard(backup, status, &reason).await?;
        tracing::info!(status = status.as_str(), %reason, "backup ended without data");
        Err(err)
    }

    /// Ends a CREATING backup as FAILED or CANCELED: its objects first, then its record, so
    /// a backup that says it holds nothing holds nothing.
    async fn discard(
        &self,
        backup: &Backup,
        status: BackupStatus,
        reason: &str,
    ) -> Result<(), JobError> {
        // A region no longer configured holds nothing this process can reach or remove.
        if let Ok(storage) = self.services.storage_in(&backup.region_id) {
            let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
            if let Err(e) = delete_prefix(storage.as_ref(), layout.prefix()).await {
                // The storage is what failed the backup, often: the backup still ends (a
                // CREATING one would block the cluster's next manual backup for ever), and a
                // purge job removes what it left once the storage answers.
                tracing::warn!(error = %e, "objects of the unfinished backup not removed yet; a purge job will");
                let services = &self.services;
                let mut purge = services
                    .new_job(
                        &backup.project_id,
                        DELETE_BACKUP_JOB,
                        serde_json::json!({"purge": true}),
                    )
                    .for_backup(backup);
                purge.dedupe_key = Some(dedupe::purge(&backup.id));
                purge.max_attempts = purge.max_attempts.max(PURGE_MIN_ATTEMPTS);
                match services.store.insert_job(&purge, Utc::now()).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.services
            .store
            .end_backup(&backup.id, status, reason, Utc::now())
            .await?;
        Ok(())
    }

    /// Plan (describe and flush), copy, commit (meta, manifest, AVAILABLE).
    async fn make(
        &self,
        ctx: &JobContext,
        backup: &Backup,
        storage: &DynObjectStore,
        layout: &BackupLayout,
    ) -> Result<(), JobError> {
        let cluster = self
            .services
            .store
            .get_cluster(&backup.cluster_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "cluster {} was deleted before its backup could run",
                    backup.cluster_id
                ))
            })?;
        let client = self.services.milvus(&cluster)?;
        let mut plan = self.plan(ctx, &client, backup).await?;
        let described = std::mem::take(&mut plan.collections);
        let (copied, bytes) = self
            .copy(ctx, &client, &cluster, storage, layout, described)
            .await?;
        ctx.checkpoint()?;
        ctx.progress(Progress {
            percent: 96,
            bytes_done: bytes as i64,
            bytes_total: bytes as i64,
            step: Some("writing manifest".to_owned()),
        })
        .await?;
        let manifest = self.commit(backup, storage, layout, plan, &copied).await?;
        // The job's bytes end as the backup's size: binlogs and meta, counted alike.
        let summary = format!(
            "backup available: {} collection(s), {} object(s)",
            manifest.collections.len(),
            manifest.objects.len()
        );
        ctx.finished(summary, manifest.size as i64).await;
        Ok(())
    }

    /// Describes the collections the backup covers and flushes them, so that what Milvus has
    /// persisted at `backup_time` is what the backup holds.
    async fn plan(
        &self,
        ctx: &JobContext,
        client: &MilvusClient,
        backup: &Backup,
    ) -> Result<Plan, JobError> {
        let settings = &self.services.config.backup;
        step(ctx, 1, "describing collections").await?;
        let milvus_version = retry_read(|| client.version())
            .await
            .map_err(|e| milvus_error("reaching the cluster", e))?;
        let targets = targets(client, backup).await?;
        let collections = describe_all(client, &targets, settings.describe_parallelism).await?;
        ctx.checkpoint()?;

        step(ctx, 3, "flushing collections").await?;
        let backup_time = Utc::now();
        let flush_timeout = Duration::from_secs(settings.flush_timeout_secs);
        let mut by_db: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for c in &collections {
            by_db
                .entry(c.db_name.as_str())
                .or_default()
                .push(c.collection_name.clone());
        }
        for (db, names) in &by_db {
            // Flush takes many collections of one database per call.
            for chunk in names.chunks(100) {
                client
                    .flush_and_wait(db, chunk, flush_timeout)
                    .await
                    .map_err(|e| milvus_error(&format!("flushing database {db}"), e))?;
                ctx.checkpoint()?;
            }
        }
        // Users, roles and grants come with a whole-cluster backup (names only: passwords
        // cannot be read); a collection backup holds the grants on its collections. A Milvus
        // without authorization has none to speak of.
        let rbac = match retry_read(|| client.read_rbac()).await {
            Ok(rbac) => match backup.backup_type {
                BackupType::Cluster => Some(rbac),
                BackupType::Collection => {
                    let own = collections
                        .iter()
                        .map(|c| {
                            let key = (c.db_name.as_str(), c.collection_name.as_str());
                            (key, key)
                        })
                        .collect();
                    Some(rbac.collection_grants(&own)).filter(|grants| !grants.is_empty())
                }
            },
            // Silence from Milvus is not "no users": the attempt ends and is tried again.
            Err(e) if e.is_transient() => {
                return Err(milvus_error("reading users and roles", e));
            }
            Err(e) => {
                tracing::warn!(error = %e, "users and roles not readable; the backup holds none");
                None
            }
        };
        Ok(Plan {
            milvus_version,
            backup_time,
            collections,
            rbac,
        })
    }

    /// Copies every collection's binlogs (resuming from the saved state), with progress;
    /// returns the collections in name order and the bytes copied.
    async fn copy(
        &self,
        ctx: &JobContext,
        client: &MilvusClient,
        cluster: &Cluster,
        storage: &DynObjectStore,
        layout: &BackupLayout,
        described: Vec<CollectionDescription>,
    ) -> Result<(Vec<CopiedCollection>, u64), JobError> {
        let services = &self.services;
        let settings = &services.config.backup;
        step(ctx, 5, "copying binlogs").await?;
        let source =
            clusters::binlog_store(cluster, &services.secrets, &services.config.outbound).await?;
        let saved: SavedState = ctx.saved_state().unwrap_or_default();
        let copier = Copier {
            ctx: ctx.clone(),
            source,
            dest: storage.clone(),
            layout: layout.clone(),
            slots: Arc::new(Semaphore::new(settings.copy_parallelism)),
            parallelism: settings.copy_parallelism,
            bytes_done: Arc::new(AtomicU64::new(0)),
            bytes_total: Arc::new(AtomicU64::new(0)),
            copied: Arc::new(Mutex::new(saved.copied)),
            current: Arc::new(Mutex::new(String::new())),
            collections_done: Arc::new(AtomicU64::new(0)),
            collections_total: described.len() as u64,
            files_copied: Arc::new(AtomicU64::new(0)),
            hooks: services.config.test_hooks.clone(),
        };
        let flush_timeout = Duration::from_secs(settings.flush_timeout_secs);
        let reporting = CancellationToken::new();
        let reporter = tokio::spawn(report_progress(copier.clone(), reporting.clone()));
        let copied: Result<Vec<CopiedCollection>, JobError> = futures::stream::iter(described)
            .map(|description| copy_collection(client, &copier, description, flush_timeout))
            .buffer_unordered(settings.describe_parallelism)
            .try_collect()
            .await;
        reporting.cancel();
        let _ = reporter.await;
        let mut copied = copied?;
        copied.sort_by(|a, b| {
            (&a.description.db_name, &a.description.collection_name)
                .cmp(&(&b.description.db_name, &b.description.collection_name))
        });
        Ok((copied, copier.bytes_done.load(Ordering::Relaxed)))
    }

    /// Writes meta and manifest, then marks the backup AVAILABLE with what it holds and, in
    /// the same transaction, enqueues its cross-region copies.
    async fn commit(
        &self,
        backup: &Backup,
        storage: &DynObjectStore,
        layout: &BackupLayout,
        plan: Plan,
        copied: &[CopiedCollection],
    ) -> Result<Manifest, JobError> {
        let services = &self.services;
        let manifest =
            write_meta_and_manifest(storage.as_ref(), layout, backup, plan, copied).await?;
        let collections: Vec<BackedUpCollection> = manifest
            .collections
            .iter()
            .zip(copied)
            .map(|(m, c)| BackedUpCollection {
                db_name: m.db_name.clone(),
                collection_name: m.collection_name.clone(),
                description: c.description.description.clone(),
                row_count: m.live_row_count.unwrap_or(m.row_count),
                size: m.size as i64,
                loaded: c.description.loaded,
                loadable: Some(c.description.loadable()),
                aliases: c.description.aliases.clone(),
            })
            .collect();
        let completed = services
            .store
            .complete_backup(
                &backup.id,
                &Held {
                    size: manifest.size as i64,
                    collections: &collections,
                    rbac: manifest.rbac.as_ref(),
                },
                &services.copy_jobs(backup),
                Utc::now(),
            )
            .await?;
        if !completed {
            return Err(JobError::Permanent(format!(
                "backup {} left CREATING while it was being made",
                backup.id
            )));
        }
        tracing::info!(
            size = manifest.size,
            collections = collections.len(),
            objects = manifest.objects.len(),
            "backup available"
        );
        Ok(manifest)
    }
}

/// What the backup covers, described and flushed.
struct Plan {
    milvus_version: String,
    backup_time: chrono::DateTime<Utc>,
    collections: Vec<CollectionDescription>,
    rbac: Option<Rbac>,
}

async fn step(ctx: &JobContext, percent: i32, name: &str) -> Result<(), Stop> {
    ctx.checkpoint()?;
    ctx.progress(Progress {
        percent,
        step: Some(name.to_owned()),
        ..Progress::default()
    })
    .await
}

/// Reports bytes copied twice a second and saves what is copied every few seconds.
async fn report_progress(copier: Copier, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        ticks += 1;
        let done = copier.bytes_done.load(Ordering::Relaxed);
        let total = copier.bytes_total.load(Ordering::Relaxed);
        let percent = if total == 0 {
            5
        } else {
            5 + ((done.min(total) as f64 / total as f64) * 90.0) as i32
        };
        let progress = Progress {
            percent,
            bytes_done: done as i64,
            bytes_total: total as i64,
            step: Some(copier.step()),
        };
        if copier.ctx.progress(progress).await.is_err() {
            break;
        }
        if ticks.is_multiple_of(10) {
            copier.save_state().await;
        }
    }
    copier.save_state().await;
}

/// The collections the backup covers, checked to exist now.
async fn targets(
    client: &MilvusClient,
    backup: &Backup,
) -> Result<Vec<(String, String)>, JobError> {
    let selected: Vec<&str> = backup
        .selection
        .iter()
        .map(|s| s.db_name.as_str())
        .collect();
    let only = (backup.backup_type == BackupType::Collection).then_some(selected.as_slice());
    let existing = retry_read(|| client.collections_by_database(only))
        .await
        .map_err(|e| milvus_error("listing databases and collections", e))?;
    if backup.backup_type == BackupType::Cluster {
        return Ok(existing
            .into_iter()
            .flat_map(|(db, collections)| {
                collections.into_iter().map(move |c| (db.clone(), c.name))
            })
            .collect());
    }
    let mut targets = Vec::new();
    for selected in &backup.selection {
        let Some(collections) = existing.get(&selected.db_name) else {
            return Err(JobError::Permanent(format!(
                "database '{}' no longer exists in cluster {}",
                selected.db_name, backup.cluster_id
            )));
        };
        for name in &selected.collection_names {
            if !collections.iter().any(|c| &c.name == name) {
                return Err(JobError::Permanent(format!(
                    "collection '{}.{name}' no longer exists in cluster {}",
                    selected.db_name, backup.cluster_id
                )));
            }
            targets.push((selected.db_name.clone(), name.clone()));
        }
    }
    Ok(targets)
}

/// Describes every target, `parallelism` calls at a time, with load state read once per
/// database.
async fn describe_all(
    client: &MilvusClient,
    targets: &[(String, String)],
    parallelism: usize,
) -> Result<Vec<CollectionDescription>, JobError> {
    let databases: BTreeSet<&str> = targets.iter().map(|(db, _)| db.as_str()).collect();
    let mut loaded: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for db in databases {
        let in_memory = retry_read(|| client.loaded_collections(db))
            .await
            .map_err(|e| milvus_error(&format!("reading load state of database {db}"), e))?;
        loaded.insert(db.to_owned(), in_memory);
    }
    let loaded = &loaded;
    futures::stream::iter(targets.iter().cloned())
        .map(|(db, name)| async move {
            let mut description = retry_read(|| client.describe_collection(&db, &name))
                .await
                .map_err(|e| milvus_error(&format!("describing collection {db}.{name}"), e))?;
            description.loaded = loaded.get(&db).is_some_and(|l| l.contains_key(&name));
            Ok(description)
        })
        .buffered(parallelism)
        .try_collect()
        .await
}

/// Copies one collection's binlogs and checks that the collection did not change meanwhile.
/// Files that vanish (compaction) make the segment list be read again once; a collection
/// recreated or altered during the copy is backed up again once; a dropped one fails the job.
async fn copy_collection(
    client: &MilvusClient,
    copier: &Copier,
    mut description: CollectionDescription,
    flush_timeout: Duration,
) -> Result<CopiedCollection, JobError> {
    let db = description.db_name.clone();
    let name = description.collection_name.clone();
    *copier.current.lock().unwrap_or_else(|e| e.into_inner()) = format!("{db}.{name}");
    let mut again = false;
    loop {
        let (segments, objects) = copy_segments(client, copier, &description).await?;
        let now = match retry_read(|| client.describe_collection(&db, &name)).await {
            Ok(now) => now,
            Err(e) => {
                let still_there = retry_read(|| client.list_collections(&db))
                    .await
                    .map_err(|e| milvus_error(&format!("listing collections of {db}"), e))?
                    .iter()
                    .any(|c| c.name == name);
                if still_there {
                    return Err(milvus_error(
                        &format!("describing collection {db}.{name}"),
                        e,
                    ));
                }
                return Err(JobError::Permanent(format!(
                    "collection {db}.{name} was dropped while it was being backed up; \
                     create the backup again without it"
                )));
            }
        };
        if now.same_collection_as(&description) {
            copier.collections_done.fetch_add(1, Ordering::Relaxed);
            return Ok(CopiedCollection {
                description,
                segments,
                objects,
            });
        }
        if again {
            return Err(JobError::Permanent(format!(
                "collection {db}.{name} changed (recreated or altered) while it was being backed \
                 up, twice; back it up when it is not being changed"
            )));
        }
        tracing::warn!(collection = %format!("{db}.{name}"), "collection changed during the copy; backing it up again");
        again = true;
        let loaded = description.loaded;
        description = now;
        description.loaded = loaded;
        client
            .flush_and_wait(&db, std::slice::from_ref(&name), flush_timeout)
            .await
            .map_err(|e| milvus_error(&format!("flushing {db}.{name}"), e))?;
    }
}

async fn copy_segments(
    client: &MilvusClient,
    copier: &Copier,
    description: &CollectionDescription,
) -> Result<(Vec<SegmentDescription>, Vec<ManifestObject>), JobError> {
    let (db, name) = (&description.db_name, &description.collection_name);
    let mut relisted = false;
    loop {
        let segments = retry_read(|| client.persistent_segments(db, name))
            .await
            .map_err(|e| milvus_error(&format!("listing segments of {db}.{name}"), e))?;
        let files = copier
            .list_files(description.collection_id, &segments)
            .await
            .map_err(|e| storage_error(&format!("listing binlogs of {db}.{name}"), e))?;
        match copier.copy_files(&files).await {
            Ok(objects) => return Ok((segments, objects)),
            Err(CopyFailure::Vanished(key)) if !relisted => {
                tracing::info!(%key, "a binlog vanished during the copy (compaction); listing segments again");
                relisted = true;
            }
            Err(CopyFailure::Vanished(key)) => {
                return Err(JobError::Retryable(format!(
                    "binlogs of {db}.{name} kept vanishing during the copy (last: {key}); \
                     Milvus is compacting it, the backup will be tried again"
                )))
            }
            Err(CopyFailure::Storage(e)) => {
                return Err(storage_error(&format!("copying binlogs of {db}.{name}"), e))
            }
            Err(CopyFailure::Stopped(stop)) => return Err(stop.into()),
        }
    }
}

/// The live rows per partition of a copied collection, read from its copy; `None` (and a
/// warning) when a binlog's format is not one this version reads, so that a backup never
/// fails for want of a count.
async fn count_live_rows(
    storage: &dyn objects::ObjectStore,
    c: &CopiedCollection,
) -> Result<Option<Vec<PartitionRows>>, JobError> {
    let Some(pk) = c.description.fields.iter().find(|f| f.is_primary_key) else {
        return Ok(None);
    };
    match live_rows::live_rows_per_partition(storage, &c.objects, &c.segments, pk.field_id).await {
        Ok(per_partition) => Ok(Some(
            per_partition
                .into_iter()
                .map(|(partition_id, live_row_count)| PartitionRows {
                    partition_id,
                    live_row_count,
                })
                .collect(),
        )),
        Err(live_rows::CountError::Storage(e)) => Err(storage_error("counting live rows", e)),
        Err(e) => {
            tracing::warn!(collection = %c.description.collection_name, error = %e, "live rows not counted");
            Ok(None)
        }
    }
}

/// Writes each collection's meta, removes binlogs that no segment of the backup names (left
/// by compaction or a recreated collection), and writes the manifest last.
async fn write_meta_and_manifest(
    storage: &dyn objects::ObjectStore,
    layout: &BackupLayout,
    backup: &Backup,
    plan: Plan,
    copied: &[CopiedCollection],
) -> Result<Manifest, JobError> {
    let mut objects_list = Vec::new();
    let mut collections = Vec::new();
    for c in copied {
        let segments: Vec<ManifestSegment> = c
            .segments
            .iter()
            .map(|s| ManifestSegment {
                segment_id: s.segment_id,
                partition_id: s.partition_id,
                num_rows: s.num_rows,
            })
            .collect();
        let meta = CollectionMeta {
            collection: c.description.clone(),
            segments: segments.clone(),
        };
        let meta_key = layout.meta(&c.description.db_name, &c.description.collection_name);
        let body = Bytes::from(serde_json::to_vec_pretty(&meta).expect("meta serializes"));
        let written = objects::put_bytes(storage, &meta_key, body)
            .await
            .map_err(|e| storage_error("writing collection meta", e))?;
        objects_list.push(ManifestObject {
            key: meta_key.clone(),
            size: written.size,
            checksum: written.checksum,
        });
        objects_list.extend(c.objects.iter().cloned());
        let partitions = count_live_rows(storage, c).await?;
        collections.push(ManifestCollection {
            db_name: c.description.db_name.clone(),
            collection_name: c.description.collection_name.clone(),
            collection_id: c.description.collection_id,
            meta_key,
            row_count: c.segments.iter().map(|s| s.num_rows).sum(),
            live_row_count: partitions
                .as_ref()
                .map(|ps| ps.iter().map(|p| p.live_row_count).sum()),
            partitions: partitions.unwrap_or_default(),
            size: c.objects.iter().map(|o| o.size).sum(),
            segments,
        });
    }
    objects_list.sort_by(|a, b| a.key.cmp(&b.key));

    let kept: BTreeSet<&str> = objects_list.iter().map(|o| o.key.as_str()).collect();
    let binlogs = format!("{}binlogs/", layout.prefix());
    let stray: Vec<String> = objects::list_all(storage, &binlogs)
        .await
        .map_err(|e| storage_error("listing the backup's binlogs", e))?
        .into_iter()
        .map(|o| o.key)
        .filter(|key| !kept.contains(key.as_str()))
        .collect();
    for chunk in stray.chunks(1000) {
        storage
            .delete_many(chunk)
            .await
            .map_err(|e| storage_error("removing binlogs of superseded segments", e))?;
    }

    // The manifest commits the backup: everything it names must be durable first.
    storage
        .sync()
        .await
        .map_err(|e| storage_error("making the copied binlogs durable", e))?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        backup_id: backup.id.clone(),
        backup_name: backup.name.clone(),
        project_id: backup.project_id.clone(),
        cluster_id: backup.cluster_id.clone(),
        cluster_name: backup.cluster_name.clone(),
        region_id: backup.region_id.clone(),
        backup_type: backup.backup_type.as_str().to_owned(),
        milvus_version: plan.milvus_version,
        backup_time: plan.backup_time,
        rbac: plan.rbac,
        size: objects_list.iter().map(|o| o.size).sum(),
        collections,
        objects: objects_list,
    };
    objects::put_bytes(storage, &layout.manifest(), Bytes::from(manifest.to_json()))
        .await
        .map_err(|e| storage_error("writing the manifest", e))?;
    Ok(manifest)
}
