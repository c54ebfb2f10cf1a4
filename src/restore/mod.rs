//! The restore jobs (`RESTORE_COLLECTION`, `RESTORE_CLUSTER`): verify → create collections and
//! partitions → stage binlogs where the destination Milvus reads them → `Import` with
//! `backup=true` per partition → compare row counts → indexes → load → remove the staging copy
//! (`design/architecture.md`, "Restore algorithm").
//!
//! Nothing touches the destination before every object the restore needs has been checked
//! against the manifest. A restore that fails for good or is canceled drops the collections it
//! created and removes its staging files; an attempt after a crash drops what an earlier
//! attempt created and starts the destination side again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
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
    allowed_shards, clamp_shards, CreatedUser, OnExisting, RestorePlan, RestoreResult,
    RestoreTarget,
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

/// A refusal ends the job; Milvus not answering (stopped, restarting) is waited out.
fn refused_or_retry(context: &str, err: MilvusError) -> JobError {
    if err.is_transient() {
        retryable(context, err)
    } else {
        JobError::Permanent(format!("{context}: {err}"))
    }
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

        // An earlier attempt may have created collections: start the destination side again
        // (a Milvus that does not answer yet is waited for: the collection must go first).
        for (db, name) in &saved.created {
            match client.drop_collection(db, name).await {
                Err(e) if e.is_transient() => {
                    return Err(milvus(
                        &format!("dropping {db}.{name} of an earlier attempt"),
                        e,
                    ))
                }
                Err(e) => {
                    tracing::warn!(%db, %name, error = %e, "could not drop a collection of an earlier attempt")
                }
                Ok(()) => {}
            }
        }
        let mut created = SavedState::default();
        let result = self
            .restore(&ctx, &plan, &dest, &client, &stage, &mut created)
            .await;
        // The staging copy goes whatever happened (Milvus has read it, or will not).
        stage.remove().await;
        let err = match result {
            Ok(restored) => {
                // A finished job's step says what it did, not the last thing it was doing.
                let mut said = format!(
                    "restored {} collection(s) into cluster {}",
                    restored.collections, dest.id
                );
                if restored.skipped > 0 {
                    said.push_str(&format!(
                        "; skipped {} that existed (onExisting SKIP)",
                        restored.skipped
                    ));
                }
                let done = Progress {
                    percent: 100,
                    bytes_done: restored.bytes as i64,
                    bytes_total: restored.bytes as i64,
                    step: Some(said),
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

/// What a restore did: the bytes staged, the collections restored and skipped.
struct Restored {
    bytes: u64,
    collections: usize,
    skipped: usize,
}

/// One collection to restore: where it goes, and what the backup holds of it.
struct Entry<'a> {
    target: &'a RestoreTarget,
    backed_up: &'a ManifestCollection,
}

impl Entry<'_> {
    /// The destination `(db, name)`.
    fn dest(&self) -> (&String, &String) {
        (&self.target.dest_db_name, &self.target.dest_collection_name)
    }

    /// Whether the destination collection is among `existing` (as `Attempt::existing` lists).
    fn dest_exists(&self, existing: &BTreeSet<(String, String)>) -> bool {
        let (db, name) = self.dest();
        existing.contains(&(db.clone(), name.clone()))
    }
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
    ) -> Result<Restored, JobError> {
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
        let mut entries = attempt.entries(plan, &backup.id)?;
        // What the destination holds already decides onExisting SKIP and DROP.
        let existing = attempt.existing(&entries).await?;
        let mut skipped = 0;
        entries.retain(|e| {
            let skip = e.target.on_existing == OnExisting::Skip && e.dest_exists(&existing);
            skipped += usize::from(skip);
            !skip
        });

        step(ctx, 2, "verifying backup objects".to_owned()).await?;
        let binlogs = attempt.verify(&entries).await?;
        // Replaced only now, with every object the restore reads known to be whole.
        attempt.drop_replaced(&entries, &existing).await?;
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
        let mut warnings = Vec::new();
        for (i, (entry, meta)) in entries.iter().zip(&metas).enumerate() {
            let (db, name) = entry.dest();
            let doing = if entry.target.meta_only {
                "indexing"
            } else {
                "importing"
            };
            after(
                40 + (55 * i / entries.len()) as i32,
                format!("{doing} {db}.{name}"),
            )
            .await?;
            attempt.import(entry, meta).await?;
            warnings.extend(attempt.aliases(entry, meta).await?);
        }
        let mut result = None;
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
                result = Some(self.restore_rbac(ctx, client, &rbac).await?);
            }
        }
        if !warnings.is_empty() {
            let mut result = result.unwrap_or_else(|| self.earlier_result(ctx));
            result.warnings = warnings;
            let plain = serde_json::to_vec(&result).expect("result serializes");
            ctx.save_result(&self.services.secrets.seal(&plain)).await?;
        }
        after(99, "removing staging files".to_owned()).await?;
        tracing::info!(
            collections = entries.len(),
            skipped,
            bytes = staged,
            "restore finished"
        );
        Ok(Restored {
            bytes: staged,
            collections: entries.len(),
            skipped,
        })
    }

    /// The result an earlier attempt saved (its new users' passwords), or none.
    fn earlier_result(&self, ctx: &JobContext) -> RestoreResult {
        ctx.job()
            .result
            .as_deref()
            .and_then(|sealed| self.services.secrets.open(sealed).ok())
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .unwrap_or_default()
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
    ) -> Result<RestoreResult, JobError> {
        let secrets = &self.services.secrets;
        let existing = client
            .read_rbac()
            .await
            .map_err(|e| milvus("reading the destination's users and roles", e))?;
        let earlier = self.earlier_result(ctx);
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
        Ok(result)
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

    /// The destination collections that exist now, of the databases the entries go to.
    async fn existing(
        &self,
        entries: &[Entry<'_>],
    ) -> Result<BTreeSet<(String, String)>, JobError> {
        let databases: BTreeSet<&str> = entries
            .iter()
            .map(|e| e.target.dest_db_name.as_str())
            .collect();
        let databases: Vec<&str> = databases.into_iter().collect();
        let by_db = self
            .client
            .collections_by_database(Some(&databases))
            .await
            .map_err(|e| milvus("listing the destination's collections", e))?;
        Ok(by_db
            .into_iter()
            .flat_map(|(db, cs)| cs.into_iter().map(move |c| (db.clone(), c.name)))
            .collect())
    }

    /// Drops the destination collections that `onExisting: DROP` replaces.
    async fn drop_replaced(
        &self,
        entries: &[Entry<'_>],
        existing: &BTreeSet<(String, String)>,
    ) -> Result<(), JobError> {
        for entry in entries {
            if entry.target.on_existing != OnExisting::Drop || !entry.dest_exists(existing) {
                continue;
            }
            let (db, name) = entry.dest();
            step(self.ctx, 8, format!("dropping {db}.{name} to replace it")).await?;
            self.client
                .drop_collection(db, name)
                .await
                .map_err(|e| refused_or_retry(&format!("dropping {db}.{name} to replace it"), e))?;
            tracing::info!(%db, %name, "existing collection dropped to be replaced (onExisting DROP)");
        }
        Ok(())
    }

    /// Gives the restored collection the backup's aliases. An alias the destination already
    /// gives another collection stays there and is reported; one left behind by a dropped
    /// collection (Milvus 2.3 keeps those) is taken over.
    async fn aliases(
        &self,
        entry: &Entry<'_>,
        meta: &CollectionMeta,
    ) -> Result<Vec<String>, JobError> {
        let client = self.client;
        let (db, name) = entry.dest();
        let mut warnings = Vec::new();
        for alias in &meta.collection.aliases {
            let context = format!("giving {db}.{name} the alias {alias}");
            let refused = match client.create_alias(db, name, alias).await {
                Ok(()) => continue,
                Err(e) if e.is_transient() => return Err(milvus(&context, e)),
                Err(refused) => refused,
            };
            let held = client
                .names_a_collection(db, alias)
                .await
                .map_err(|e| milvus(&context, e))?;
            if held {
                warnings.push(format!(
                    "alias {alias} of {}.{} stays with the collection that holds it in \
                     {db}; {db}.{name} was restored without it ({refused})",
                    entry.target.db_name, entry.target.collection_name
                ));
                continue;
            }
            client
                .alter_alias(db, name, alias)
                .await
                .map_err(|e| refused_or_retry(&context, e))?;
        }
        Ok(warnings)
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
            if entry.target.meta_only {
                continue;
            }
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
            client
                .ensure_database(db)
                .await
                .map_err(|e| milvus(&format!("creating database {db}"), e))?;
            let shards = clamp_shards(meta.collection.shards_num, allowed);
            client
                .create_collection(db, name, &meta.collection, shards)
                .await
                .map_err(|e| refused_or_retry(&format!("creating {db}.{name}"), e))?;
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
            if meta.collection.has_partition_key() {
                // Milvus made them, named as in the backup: each imports into its namesake.
                let names = |ps: &[crate::milvus::PartitionDescription]| {
                    ps.iter().map(|p| p.name.clone()).collect::<BTreeSet<_>>()
                };
                if names(&now.partitions) != names(&meta.collection.partitions) {
                    return Err(JobError::Permanent(format!(
                        "{db}.{name} was created with other partitions than the backup's \
                         partition-key collection ({} vs {})",
                        now.partitions.len(),
                        meta.collection.partitions.len()
                    )));
                }
            } else {
                for partition in meta
                    .collection
                    .partitions
                    .iter()
                    .filter(|p| p.name != "_default")
                {
                    client
                        .create_partition(db, name, &partition.name)
                        .await
                        .map_err(|e| {
                            milvus(&format!("creating partition {}", partition.name), e)
                        })?;
                }
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
        let client = self.client;
        let target = entry.target;
        let (db, name) = entry.dest();
        let import_wait = Duration::from_secs(self.services.config.restore.import_timeout_secs);
        if !target.meta_only {
            self.import_rows(entry, meta, import_wait).await?;
        }
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

    /// Imports one collection's rows, one `Import` per backed-up segment with rows (its
    /// insert logs and its own delta logs: Milvus applies a segment's deletes to that
    /// segment's rows alone, partition import or not), `restore.import_parallelism` of them
    /// in flight, and checks how many rows came in.
    async fn import_rows(
        &self,
        entry: &Entry<'_>,
        meta: &CollectionMeta,
        import_wait: Duration,
    ) -> Result<(), JobError> {
        let stage = self.stage;
        let (target, backed_up) = (entry.target, entry.backed_up);
        let (db, name) = (&target.dest_db_name, &target.dest_collection_name);
        let mut units = Vec::new();
        for partition in &meta.collection.partitions {
            for segment in backed_up
                .segments
                .iter()
                .filter(|s| s.partition_id == partition.partition_id && s.num_rows > 0)
            {
                let dir = |kind: &str| {
                    stage.import_dir(&format!(
                        "{kind}/{}/{}/{}/",
                        backed_up.collection_id, partition.partition_id, segment.segment_id
                    ))
                };
                units.push((
                    partition.name.as_str(),
                    vec![dir("insert_log"), dir("delta_log")],
                ));
            }
        }
        let accepted = AtomicU64::new(0);
        let parallelism = self.services.config.restore.import_parallelism.max(1);
        let imports: Vec<_> = units
            .into_iter()
            .map(|(partition, files)| {
                self.import_segment(db, name, partition, files, &accepted, import_wait)
            })
            .collect();
        let imported: i64 = futures::stream::iter(imports)
            .buffer_unordered(parallelism)
            .try_fold(0, |sum, rows| async move { Ok(sum + rows) })
            .await?;
        // Milvus counts rows after applying the backup's deletes: exactly the backup's live
        // rows. A backup made before they were counted has only the rows before deletes,
        // exact without delete logs and an upper bound with them.
        let delta = self
            .layout
            .binlog(&format!("delta_log/{}/", backed_up.collection_id));
        let has_deletes = self
            .manifest
            .objects
            .iter()
            .any(|o| o.key.starts_with(&delta));
        let (plausible, holds) = match backed_up.live_row_count {
            Some(live) => (imported == live, format!("{live} live rows")),
            None if has_deletes => (
                imported <= backed_up.row_count,
                format!("{} rows before deletes", backed_up.row_count),
            ),
            None => (
                imported == backed_up.row_count,
                format!("{} rows", backed_up.row_count),
            ),
        };
        if !plausible {
            return Err(JobError::Permanent(format!(
                "{db}.{name}: Milvus imported {imported} rows, the backup holds {holds}"
            )));
        }
        tracing::info!(collection = %format!("{db}.{name}"), imported, "imported: {holds}");
        Ok(())
    }

    /// One `Import` of one segment's staged files; the rows Milvus imported.
    async fn import_segment(
        &self,
        db: &str,
        name: &str,
        partition: &str,
        files: Vec<String>,
        accepted: &AtomicU64,
        import_wait: Duration,
    ) -> Result<i64, JobError> {
        let (client, ctx) = (self.client, self.ctx);
        let tasks = client
            .import_backup(db, name, partition, files)
            .await
            .map_err(|e| milvus(&format!("importing {db}.{name}"), e))?;
        let imports = accepted.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(pause) = self.services.config.test_hooks.restore_import() {
            if pause.after(imports) {
                pause.wait(ctx).await?;
            }
        }
        let mut rows = 0;
        for task in tasks {
            rows += tokio::select! {
                rows = client.wait_import(task, import_wait) => rows
                    .map_err(|e| refused_or_retry(&format!("importing {db}.{name}"), e))?,
                stop = ctx.stopped() => return Err(stop.into()),
            };
        }
        Ok(rows)
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
