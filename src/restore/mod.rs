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
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::backup::checked::{
    available_backup, copy_objects, read_manifest, verify_objects, CopyProgress,
};
use crate::backup::delete_prefix;
use crate::backup::manifest::CollectionMeta;
use crate::backup::manifest::{Manifest, ManifestCollection, ManifestObject};
use crate::clusters::{self, ClusterStorage};
use crate::crypto::SecretBox;
use crate::domain::backups::BackupLayout;
use crate::domain::restore::{
    allowed_shards, clamp_shards, CreatedUser, RestorePlan, RestoreResult, RestoreTarget,
};
use crate::domain::restore::{RESTORE_CLUSTER_JOB, RESTORE_COLLECTION_JOB};
use crate::jobs::Registry;
use crate::jobs::{Abandoned, JobContext, JobError, JobHandler, Stop};
use crate::milvus::{MilvusClient, MilvusError, Rbac, BUILTIN_ROLES, BUILTIN_USERS};
use crate::objects::{self, DynObjectStore};
use crate::outbound::OutboundPolicy;
use crate::service::Services;
use crate::store::{Cluster, Job, Progress};

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

/// Where binlogs are staged for the destination Milvus to read: inside its own storage (its
/// local directory, or its bucket under its `rootPath`), under one prefix per job.
struct Staging {
    /// The destination's binlog storage, keys relative to its root.
    store: DynObjectStore,
    /// `backstop-restore/<jobId>/`.
    prefix: String,
    /// What Import puts before a key of `store`: the absolute directory of local storage
    /// (`/data/`), or the bucket-relative `rootPath` of S3 storage (`files/`, or nothing).
    import_base: String,
}

impl Staging {
    async fn new(
        dest: &Cluster,
        secrets: &SecretBox,
        outbound: &OutboundPolicy,
        job_id: &str,
    ) -> Result<Staging, JobError> {
        let import_base = match &dest.storage {
            ClusterStorage::Local { path } => format!("{}/", path.trim_end_matches('/')),
            ClusterStorage::S3 { root_path, .. } => match root_path.trim_matches('/') {
                "" => String::new(),
                root => format!("{root}/"),
            },
        };
        Ok(Staging {
            store: clusters::binlog_store(dest, secrets, outbound).await?,
            prefix: staging_prefix(job_id),
            import_base,
        })
    }

    /// The directory Import reads for `rest`, a path under this job's prefix.
    fn import_dir(&self, rest: &str) -> String {
        format!("{}{}{rest}", self.import_base, self.prefix)
    }

    /// Removes this job's staging files (Milvus has read them, or never will).
    async fn remove(&self) {
        if let Err(e) = delete_prefix(self.store.as_ref(), &self.prefix).await {
            tracing::warn!(error = %e, prefix = %self.prefix, "staging files not removed");
        }
    }
}

/// One staging prefix per job, so attempts of a job reuse (and remove) the same files.
fn staging_prefix(job_id: &str) -> String {
    format!("backstop-restore/{job_id}/")
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
    /// A canceled restore drops what it created and removes its staging files.
    fn cancellable(&self) -> bool {
        true
    }

    /// Attempts exhausted by crashes (or canceled before it ran): what earlier attempts left in
    /// the destination goes, collections and staging files alike.
    async fn abandoned(&self, job: &Job, _why: &Abandoned) {
        let Ok(plan) = serde_json::from_value::<RestorePlan>(job.payload.clone()) else {
            return;
        };
        let Ok(Some(dest)) = self.services.store.get_cluster(&plan.dest_cluster_id).await else {
            return;
        };
        let saved: SavedState = job
            .state
            .clone()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        if let Ok(client) = self.services.milvus(&dest) {
            for (db, name) in &saved.created {
                if let Err(e) = client.drop_collection(db, name).await {
                    tracing::warn!(%db, %name, error = %e, "could not drop a collection of an abandoned restore");
                }
            }
        }
        let services = &self.services;
        match Staging::new(&dest, &services.secrets, &services.config.outbound, &job.id).await {
            Ok(stage) => stage.remove().await,
            Err(e) => tracing::warn!(error = %e, "staging of an abandoned restore not removed"),
        }
    }

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
        let client = services.milvus(&dest)?;
        let stage = Staging::new(
            &dest,
            &services.secrets,
            &services.config.outbound,
            &ctx.job().id,
        )
        .await?;

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
        stage.remove().await;
        let err = match result {
            Ok(bytes) => {
                // A finished job's step says what it did, not the last thing it was doing.
                let done = Progress {
                    percent: 100,
                    bytes_done: bytes as i64,
                    bytes_total: bytes as i64,
                    step: Some(format!(
                        "restored {} collection(s) into cluster {}",
                        plan.targets.len(),
                        dest.id
                    )),
                };
                let _ = ctx.progress(done).await;
                return Ok(());
            }
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

/// One collection to restore: where it goes, and what the backup holds of it.
struct Entry<'a> {
    target: &'a RestoreTarget,
    backed_up: &'a ManifestCollection,
}

/// One attempt of a restore: the backup it reads and the destination it writes.
struct Attempt<'a> {
    ctx: &'a JobContext,
    services: &'a Services,
    client: &'a MilvusClient,
    stage: &'a Staging,
    /// The backup's storage in the region the restore reads from.
    source: DynObjectStore,
    layout: BackupLayout,
    manifest: Manifest,
}

impl RestoreHandler {
    /// Verify → create → stage → import, each a step below; returns the bytes staged.
    async fn restore(
        &self,
        ctx: &JobContext,
        plan: &RestorePlan,
        dest: &Cluster,
        client: &MilvusClient,
        stage: &Staging,
        created: &mut SavedState,
    ) -> Result<u64, JobError> {
        let services = &self.services;
        let backup = available_backup(services, ctx).await?;
        let source = services.storage_in(&plan.source_region_id)?;
        let layout = BackupLayout::new(&backup.project_id, &backup.cluster_id, &backup.id);
        let (manifest, _) = read_manifest(source.as_ref(), &layout).await?;
        let attempt = Attempt {
            ctx,
            services,
            client,
            stage,
            source,
            layout,
            manifest,
        };
        let entries = attempt.entries(plan, &backup.id)?;

        step(ctx, 2, "verifying backup objects".to_owned()).await?;
        let binlogs = attempt.verify(&entries).await?;
        let metas = attempt.create(dest, &entries, created).await?;
        let staged = attempt.stage(binlogs).await?;
        // `step`, with the bytes staged kept in the job's progress for the steps after.
        let after = |percent: i32, name: String| async move {
            ctx.checkpoint()?;
            ctx.progress(Progress {
                percent,
                bytes_done: staged as i64,
                bytes_total: staged as i64,
                step: Some(name),
            })
            .await
        };
        for (i, (entry, meta)) in entries.iter().zip(&metas).enumerate() {
            let (db, name) = (
                &entry.target.dest_db_name,
                &entry.target.dest_collection_name,
            );
            after(
                40 + (55 * i / entries.len()) as i32,
                format!("importing {db}.{name}"),
            )
            .await?;
            attempt.import(entry, meta).await?;
        }
        if plan.rbac {
            if let Some(rbac) = &attempt.manifest.rbac {
                // A cluster restore brings everything; a collection restore the grants on
                // the collections it restores, under their new names.
                let rbac = if ctx.job().job_type == RESTORE_CLUSTER_JOB {
                    after(97, "restoring users, roles and grants".to_owned()).await?;
                    rbac.clone()
                } else {
                    after(97, "restoring grants".to_owned()).await?;
                    rbac.collection_grants(&plan.renames())
                };
                self.restore_rbac(ctx, client, &rbac).await?;
            }
        }
        after(99, "removing staging files".to_owned()).await?;
        tracing::info!(
            collections = entries.len(),
            bytes = staged,
            "restore finished"
        );
        Ok(staged)
    }

    /// Creates the backup's roles, grants, users and bindings that the destination lacks.
    /// Built-in users and roles are not recreated; existing users keep their passwords;
    /// missing users get a new random password each, saved (sealed) in the job's result
    /// before any user is made, so an attempt after a crash makes them with the same ones.
    async fn restore_rbac(
        &self,
        ctx: &JobContext,
        client: &MilvusClient,
        rbac: &Rbac,
    ) -> Result<(), JobError> {
        let secrets = &self.services.secrets;
        let existing = client
            .read_rbac()
            .await
            .map_err(|e| milvus("reading the destination's users and roles", e))?;
        let earlier: RestoreResult = ctx
            .job()
            .result
            .as_deref()
            .and_then(|sealed| secrets.open(sealed).ok())
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default();
        let mut result = RestoreResult::default();
        for user in &rbac.users {
            if BUILTIN_USERS.contains(&user.as_str()) {
                continue;
            }
            let from_earlier = earlier
                .users
                .iter()
                .find(|u| &u.user_name == user)
                .and_then(|u| u.password.clone());
            if existing.users.contains(user) && from_earlier.is_none() {
                continue; // it was there before this restore: it keeps its password
            }
            result.users.push(CreatedUser {
                user_name: user.clone(),
                password: Some(from_earlier.unwrap_or_else(new_password)),
            });
        }
        if !result.users.is_empty() {
            let plain = serde_json::to_vec(&result).expect("result serializes");
            ctx.save_result(&secrets.seal(&plain)).await?;
        }
        for role in &rbac.roles {
            let known = existing.roles.iter().find(|r| r.name == role.name);
            if known.is_none() && !BUILTIN_ROLES.contains(&role.name.as_str()) {
                client
                    .create_role(&role.name)
                    .await
                    .map_err(|e| milvus(&format!("creating role {}", role.name), e))?;
            }
            for grant in &role.grants {
                if known.is_some_and(|r| r.grants.contains(grant)) {
                    continue;
                }
                client
                    .ensure_database(&grant.db_name)
                    .await
                    .map_err(|e| milvus(&format!("creating database {}", grant.db_name), e))?;
                client.grant(&role.name, grant).await.map_err(|e| {
                    milvus(
                        &format!("granting {} to role {}", grant.privilege, role.name),
                        e,
                    )
                })?;
            }
        }
        for user in &result.users {
            if existing.users.contains(&user.user_name) {
                continue; // made by an earlier attempt, with this password
            }
            let password = user.password.as_deref().expect("new users have a password");
            client
                .create_user(&user.user_name, password)
                .await
                .map_err(|e| milvus(&format!("creating user {}", user.user_name), e))?;
        }
        for role in &rbac.roles {
            let known = existing.roles.iter().find(|r| r.name == role.name);
            for user in &role.users {
                if BUILTIN_USERS.contains(&user.as_str())
                    || known.is_some_and(|r| r.users.contains(user))
                {
                    continue;
                }
                client
                    .add_user_to_role(user, &role.name)
                    .await
                    .map_err(|e| milvus(&format!("adding user {user} to role {}", role.name), e))?;
            }
        }
        tracing::info!(
            roles = rbac.roles.len(),
            users_created = result.users.len(),
            "users, roles and grants restored"
        );
        Ok(())
    }
}

/// A new user's password: 24 random letters and digits.
fn new_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

impl Attempt<'_> {
    /// Each target with the backup's record of it.
    fn entries<'p>(
        &'p self,
        plan: &'p RestorePlan,
        backup_id: &str,
    ) -> Result<Vec<Entry<'p>>, JobError> {
        plan.targets
            .iter()
            .map(|target| {
                self.manifest
                    .collections
                    .iter()
                    .find(|c| {
                        c.db_name == target.db_name && c.collection_name == target.collection_name
                    })
                    .map(|backed_up| Entry { target, backed_up })
                    .ok_or_else(|| {
                        JobError::Permanent(format!(
                            "collection {}.{} is not in backup {backup_id}",
                            target.db_name, target.collection_name
                        ))
                    })
            })
            .collect()
    }

    /// Checks every object the restore needs (meta and binlogs) before the destination is
    /// touched; returns the binlogs.
    async fn verify(&self, entries: &[Entry<'_>]) -> Result<Vec<ManifestObject>, JobError> {
        let mut binlogs: Vec<ManifestObject> = Vec::new();
        let mut needed: Vec<ManifestObject> = Vec::new();
        for entry in entries {
            let meta = self
                .manifest
                .objects
                .iter()
                .filter(|o| o.key == entry.backed_up.meta_key);
            needed.extend(meta.cloned());
            binlogs.extend(
                binlogs_of(&self.manifest, &self.layout, entry.backed_up.collection_id)
                    .into_iter()
                    .cloned(),
            );
        }
        needed.extend(binlogs.iter().cloned());
        verify_objects(self.ctx, &self.source, needed, self.parallelism(), false)
            .await
            .map_err(|e| match e {
                JobError::Permanent(reason) => {
                    JobError::Permanent(format!("{reason}; nothing was restored"))
                }
                other => other,
            })?;
        Ok(binlogs)
    }

    /// Creates the databases, collections (same field ids, shards clamped to the
    /// destination's allowance) and partitions; records each collection in `created` first.
    async fn create(
        &self,
        dest: &Cluster,
        entries: &[Entry<'_>],
        created: &mut SavedState,
    ) -> Result<Vec<CollectionMeta>, JobError> {
        let (client, ctx) = (self.client, self.ctx);
        let settings = &self.services.config.restore;
        let allowed = allowed_shards(dest.cu_size, settings.shards_per_cu, settings.max_shards);
        let mut metas = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let target = entry.target;
            let (db, name) = (&target.dest_db_name, &target.dest_collection_name);
            step(
                ctx,
                10 + (20 * i / entries.len()) as i32,
                format!("creating {db}.{name}"),
            )
            .await?;
            let meta: CollectionMeta = serde_json::from_slice(
                &objects::get_bytes(self.source.as_ref(), &entry.backed_up.meta_key)
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
            if field_ids(&now.fields) != field_ids(&meta.collection.fields) {
                return Err(JobError::Permanent(format!(
                    "{db}.{name} was created with other field ids than the backup's ({:?} vs {:?})",
                    field_ids(&now.fields),
                    field_ids(&meta.collection.fields)
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
        Ok(metas)
    }

    /// Copies the binlogs where the destination Milvus reads them, durably.
    /// Copies the binlogs into the staging prefix, bytes in the job's progress; returns
    /// the bytes staged.
    async fn stage(&self, binlogs: Vec<ManifestObject>) -> Result<u64, JobError> {
        let stage_prefix = &self.stage.prefix;
        let binlogs_prefix = format!("{}binlogs/", self.layout.prefix());
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
        let progress = CopyProgress {
            step: "staging binlogs",
            from: 35,
            to: 40,
        };
        let bytes = copy_objects(
            self.ctx,
            &self.source,
            &self.stage.store,
            staged,
            self.parallelism(),
            progress,
            self.services.config.test_hooks.restore_stage(),
        )
        .await?;
        self.stage
            .store
            .sync()
            .await
            .map_err(|e| retryable("staging binlogs", e))?;
        Ok(bytes)
    }

    /// Imports one collection partition by partition, checks its rows, builds its indexes and
    /// loads it if asked.
    async fn import(&self, entry: &Entry<'_>, meta: &CollectionMeta) -> Result<(), JobError> {
        let (client, ctx, stage) = (self.client, self.ctx, self.stage);
        let (target, backed_up) = (entry.target, entry.backed_up);
        let (db, name) = (&target.dest_db_name, &target.dest_collection_name);
        let import_wait = Duration::from_secs(self.services.config.restore.import_timeout_secs);
        let mut imported = 0;
        for partition in &meta.collection.partitions {
            let has_data = backed_up
                .segments
                .iter()
                .any(|s| s.partition_id == partition.partition_id);
            if !has_data {
                continue;
            }
            let dir = |kind: &str| {
                stage.import_dir(&format!(
                    "{kind}/{}/{}/",
                    backed_up.collection_id, partition.partition_id
                ))
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
        let delta = self
            .layout
            .binlog(&format!("delta_log/{}/", backed_up.collection_id));
        let has_deletes = self
            .manifest
            .objects
            .iter()
            .any(|o| o.key.starts_with(&delta));
        let plausible = if has_deletes {
            imported <= backed_up.row_count
        } else {
            imported == backed_up.row_count
        };
        if !plausible {
            return Err(JobError::Permanent(format!(
                "{db}.{name}: Milvus imported {imported} rows, the backup holds {}{}",
                backed_up.row_count,
                if has_deletes { " before deletes" } else { "" }
            )));
        }
        tracing::info!(collection = %format!("{db}.{name}"), imported, backed_up = backed_up.row_count, "imported");
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
        Ok(())
    }

    fn parallelism(&self) -> usize {
        self.services.config.backup.copy_parallelism
    }
}

/// Field ids by name (the dynamic field aside): what Import maps binlog directories by.
fn field_ids(fields: &[crate::milvus::FieldDescription]) -> BTreeMap<String, i64> {
    fields
        .iter()
        .filter(|f| !f.is_dynamic)
        .map(|f| (f.name.clone(), f.field_id))
        .collect()
}
