//! The restore jobs (`RESTORE_COLLECTION`, `RESTORE_CLUSTER`): verify → create collections and
//! partitions → stage binlogs where the destination Milvus reads them → `Import` with
//! `backup=true` per partition → compare row counts → indexes → load → remove the staging copy
//! (`design/architecture.md`, "Restore algorithm").
//!
//! Nothing touches the destination before every object the restore needs has been checked
//! against the manifest. A restore that fails for good or is canceled drops the collections it
//! created and removes its staging files; an attempt after a crash drops what an earlier
//! attempt created and starts the destination side again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backup::checked::{available_backup, copy_objects, read_manifest, verify_objects};
use crate::backup::manifest::{Manifest, ManifestCollection, ManifestObject};
use crate::backup::{delete_prefix, CollectionMeta, Services};
use crate::clusters::{self, ClusterStorage};
use crate::domain::backups::BackupLayout;
use crate::domain::restore::{allowed_shards, clamp_shards, RestorePlan, RestoreTarget};
use crate::domain::restore::{RESTORE_CLUSTER_JOB, RESTORE_COLLECTION_JOB};
use crate::jobs::Registry;
use crate::jobs::{JobContext, JobError, JobHandler, Stop};
use crate::milvus::{MilvusClient, MilvusError};
use crate::objects::{self, DynObjectStore, LocalStore, ObjectStore};
use crate::store::{Cluster, Progress};

pub struct RestoreHandler {
    pub services: Services,
}

/// Adds the restore job types to `registry`.
pub fn register(registry: Registry, services: &Services) -> Registry {
    registry
        .register(
            RESTORE_COLLECTION_JOB,
            RestoreHandler {
                services: services.clone(),
            },
        )
        .register(
            RESTORE_CLUSTER_JOB,
            RestoreHandler {
                services: services.clone(),
            },
        )
}

/// Where binlogs are staged for the destination Milvus to read: a directory under its own
/// storage (`root`), one per job (`prefix`).
struct Staging {
    store: Arc<LocalStore>,
    root: String,
    prefix: String,
}

/// What survives a crash: the destination collections this job created.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    created: Vec<(String, String)>,
}

fn retryable(context: &str, err: impl std::fmt::Display) -> JobError {
    JobError::Retryable(format!("{context}: {err}"))
}

fn milvus(context: &str, err: MilvusError) -> JobError {
    retryable(context, err)
}

/// Keys of one collection's binlogs in the backup.
fn binlogs_of<'a>(
    manifest: &'a Manifest,
    layout: &BackupLayout,
    collection_id: i64,
) -> Vec<&'a ManifestObject> {
    let insert = layout.binlog(&format!("insert_log/{collection_id}/"));
    let delta = layout.binlog(&format!("delta_log/{collection_id}/"));
    manifest
        .objects
        .iter()
        .filter(|o| o.key.starts_with(&insert) || o.key.starts_with(&delta))
        .collect()
}

async fn step(ctx: &JobContext, percent: i32, name: String) -> Result<(), Stop> {
    ctx.checkpoint()?;
    ctx.progress(Progress {
        percent,
        step: Some(name),
        ..Progress::default()
    })
    .await
}

#[async_trait]
impl JobHandler for RestoreHandler {
    #[tracing::instrument(skip_all, fields(backup_id = ctx.job().backup_id.as_deref().unwrap_or("")))]
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let plan: RestorePlan = ctx.payload()?;
        let saved: SavedState = ctx.saved_state().unwrap_or_default();
        let services = &self.services;
        let dest = services
            .store
            .get_cluster(&plan.dest_cluster_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "destination cluster {} was deleted",
                    plan.dest_cluster_id
                ))
            })?;
        let client = services.milvus_for(&dest)?;
        let stage_root =
            match clusters::storage_of(&dest) {
                Ok(ClusterStorage::Local { path }) => path,
                Ok(ClusterStorage::S3 { .. }) => return Err(JobError::Permanent(
                    "restoring into a cluster that keeps its binlogs in S3 is not supported yet"
                        .to_owned(),
                )),
                Err(e) => return Err(JobError::Permanent(e.to_string())),
            };
        let stage = Staging {
            store: Arc::new(LocalStore::new(&stage_root)),
            prefix: format!("backstop-restore/{}/", ctx.job().id),
            root: stage_root,
        };

        // An earlier attempt may have created collections: start the destination side again.
        for (db, name) in &saved.created {
            if let Err(e) = client.drop_collection(db, name).await {
                tracing::warn!(%db, %name, error = %e, "could not drop a collection of an earlier attempt");
            }
        }
        let mut created = SavedState::default();
        let result = self
            .restore(&ctx, &plan, &dest, &client, &stage, &mut created)
            .await;
        // The staging copy goes whatever happened (Milvus has read it, or will not).
        if let Err(e) = delete_prefix(stage.store.as_ref(), &stage.prefix).await {
            tracing::warn!(error = %e, "staging files not removed");
        }
        let err = match result {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        if ctx.ends_with(&err) {
            for (db, name) in &created.created {
                if let Err(e) = client.drop_collection(db, name).await {
                    tracing::warn!(%db, %name, error = %e, "could not drop a collection of a failed restore");
                }
            }
        }
        Err(err)
    }
}

impl RestoreHandler {
    async fn restore(
        &self,
        ctx: &JobContext,
        plan: &RestorePlan,
        dest: &Cluster,
        client: &MilvusClient,
        stage: &Staging,
        created: &mut SavedState,
    ) -> Result<(), JobError> {
        let stage_prefix = &stage.prefix;
        let services = &self.services;
        let backup = available_backup(services, ctx).await?;
        let backup_id = backup.id.clone();
        let storage = services.storage_in(&plan.source_region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let (manifest, _) = read_manifest(storage.as_ref(), &layout).await?;
        let entries: Vec<(&RestoreTarget, &ManifestCollection)> = plan
            .targets
            .iter()
            .map(|t| {
                manifest
                    .collections
                    .iter()
                    .find(|c| c.db_name == t.db_name && c.collection_name == t.collection_name)
                    .map(|c| (t, c))
                    .ok_or_else(|| {
                        JobError::Permanent(format!(
                            "collection {}.{} is not in backup {backup_id}",
                            t.db_name, t.collection_name
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;

        // 1. Verify every object needed before touching the destination.
        step(ctx, 2, "verifying backup objects".to_owned()).await?;
        let mut binlogs: Vec<ManifestObject> = Vec::new();
        let mut needed: Vec<ManifestObject> = Vec::new();
        for (_, entry) in &entries {
            let meta = manifest.objects.iter().filter(|o| o.key == entry.meta_key);
            needed.extend(meta.cloned());
            binlogs.extend(
                binlogs_of(&manifest, &layout, entry.collection_id)
                    .into_iter()
                    .cloned(),
            );
        }
        needed.extend(binlogs.iter().cloned());
        let parallelism = services.config.backup.copy_parallelism;
        verify_objects(ctx, &storage, needed, parallelism, false)
            .await
            .map_err(|e| match e {
                JobError::Permanent(reason) => {
                    JobError::Permanent(format!("{reason}; nothing was restored"))
                }
                other => other,
            })?;

        // 2. Create databases, collections and partitions.
        let settings = &services.config.restore;
        let allowed = allowed_shards(dest.cu_size, settings.shards_per_cu, settings.max_shards);
        let mut metas = Vec::new();
        for (i, (target, entry)) in entries.iter().enumerate() {
            let (db, name) = (&target.dest_db_name, &target.dest_collection_name);
            step(
                ctx,
                10 + (20 * i / entries.len()) as i32,
                format!("creating {db}.{name}"),
            )
            .await?;
            let meta: CollectionMeta = serde_json::from_slice(
                &objects::get_bytes(storage.as_ref(), &entry.meta_key)
                    .await
                    .map_err(|e| retryable("reading collection meta", e))?,
            )
            .map_err(|e| JobError::Permanent(format!("meta of {db}.{name} is unreadable: {e}")))?;
            if meta.collection.fields.iter().any(|f| f.is_partition_key) {
                return Err(JobError::Permanent(format!(
                    "{}.{} uses a partition key; restoring such collections is not supported yet",
                    target.db_name, target.collection_name
                )));
            }
            client
                .ensure_database(db)
                .await
                .map_err(|e| milvus(&format!("creating database {db}"), e))?;
            let shards = clamp_shards(meta.collection.shards_num, allowed);
            client
                .create_collection(db, name, &meta.collection, shards)
                .await
                .map_err(|e| JobError::Permanent(format!("creating {db}.{name}: {e}")))?;
            created.created.push((db.clone(), name.clone()));
            ctx.save_state(&*created).await?;
            // Import finds fields by id: the new collection must have the backup's ids.
            let now = client
                .describe_collection(db, name)
                .await
                .map_err(|e| milvus(&format!("describing {db}.{name}"), e))?;
            let ids = |fields: &[crate::milvus::FieldDescription]| -> BTreeMap<String, i64> {
                fields
                    .iter()
                    .filter(|f| !f.is_dynamic)
                    .map(|f| (f.name.clone(), f.field_id))
                    .collect()
            };
            if ids(&now.fields) != ids(&meta.collection.fields) {
                return Err(JobError::Permanent(format!(
                    "{db}.{name} was created with other field ids than the backup's ({:?} vs {:?})",
                    ids(&now.fields),
                    ids(&meta.collection.fields)
                )));
            }
            for partition in meta
                .collection
                .partitions
                .iter()
                .filter(|p| p.name != "_default")
            {
                client
                    .create_partition(db, name, &partition.name)
                    .await
                    .map_err(|e| milvus(&format!("creating partition {}", partition.name), e))?;
            }
            metas.push(meta);
        }

        // 3. Stage the binlogs where the destination Milvus reads them.
        step(ctx, 35, "staging binlogs".to_owned()).await?;
        let binlogs_prefix = format!("{}binlogs/", layout.prefix());
        let staged: Vec<(ManifestObject, String)> = binlogs
            .into_iter()
            .map(|object| {
                let rest = object
                    .key
                    .strip_prefix(&binlogs_prefix)
                    .unwrap_or(&object.key);
                let key = format!("{stage_prefix}{rest}");
                (object, key)
            })
            .collect();
        let stage_dyn: DynObjectStore = stage.store.clone();
        copy_objects(ctx, &storage, &stage_dyn, staged, parallelism).await?;
        stage
            .store
            .sync()
            .await
            .map_err(|e| retryable("staging binlogs", e))?;

        // 4. Import per partition, then check the rows, build indexes, load.
        let import_wait = Duration::from_secs(settings.import_timeout_secs);
        for (i, ((target, entry), meta)) in entries.iter().zip(&metas).enumerate() {
            let (db, name) = (&target.dest_db_name, &target.dest_collection_name);
            step(
                ctx,
                40 + (55 * i / entries.len()) as i32,
                format!("importing {db}.{name}"),
            )
            .await?;
            let mut imported = 0;
            for partition in &meta.collection.partitions {
                let has_data = entry
                    .segments
                    .iter()
                    .any(|s| s.partition_id == partition.partition_id);
                if !has_data {
                    continue;
                }
                let dir = |kind: &str| {
                    format!(
                        "{}/{stage_prefix}{kind}/{}/{}/",
                        stage.root.trim_end_matches('/'),
                        entry.collection_id,
                        partition.partition_id
                    )
                };
                let tasks = client
                    .import_backup(
                        db,
                        name,
                        &partition.name,
                        vec![dir("insert_log"), dir("delta_log")],
                    )
                    .await
                    .map_err(|e| milvus(&format!("importing {db}.{name}"), e))?;
                for task in tasks {
                    imported += tokio::select! {
                        rows = client.wait_import(task, import_wait) => rows
                            .map_err(|e| JobError::Permanent(format!("importing {db}.{name}: {e}")))?,
                        stop = ctx.stopped() => return Err(stop.into()),
                    };
                }
            }
            // Milvus counts rows after applying the backup's deletes. Without delete logs the
            // count must match exactly; with them it can only be lower (the number of deleted
            // rows is inside the delta logs, which Backstop does not parse yet).
            let delta = layout.binlog(&format!("delta_log/{}/", entry.collection_id));
            let has_deletes = manifest.objects.iter().any(|o| o.key.starts_with(&delta));
            let plausible = if has_deletes {
                imported <= entry.row_count
            } else {
                imported == entry.row_count
            };
            if !plausible {
                return Err(JobError::Permanent(format!(
                    "{db}.{name}: Milvus imported {imported} rows, the backup holds {}{}",
                    entry.row_count,
                    if has_deletes { " before deletes" } else { "" }
                )));
            }
            tracing::info!(collection = %format!("{db}.{name}"), imported, backed_up = entry.row_count, "imported");
            for index in &meta.collection.indexes {
                client
                    .create_index(
                        db,
                        name,
                        &index.field_name,
                        &index.index_name,
                        &index.params,
                    )
                    .await
                    .map_err(|e| milvus(&format!("creating index {}", index.index_name), e))?;
            }
            if target.load {
                client
                    .load_and_wait(db, name, import_wait)
                    .await
                    .map_err(|e| milvus(&format!("loading {db}.{name}"), e))?;
            }
        }
        step(ctx, 99, "removing staging files".to_owned()).await?;
        tracing::info!(collections = entries.len(), "restore finished");
        Ok(())
    }
}
