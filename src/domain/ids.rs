//! Identifier formats of `design/api.md`: projects `proj-<hex>`, clusters `in01-<16 hex>`,
//! API keys `key-<hex>`, jobs `job-<hex>`, backups `backup<N>_<hex>`.
//!
//! Ids are random, except inside a request sent with an `Idempotency-Key`: there they derive
//! from the key's seed (`with_seed`), the n-th id of each kind the same on every run. A run
//! that takes over the key of a request that died mid-way thereby creates the same ids, and
//! finds by them (`seeded_id`) what the first run committed. Secrets are always random.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use rand::Rng;
use sha2::{Digest, Sha256};

/// The kinds of id a seed derives, each with its own sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Project,
    Cluster,
    ApiKey,
    Job,
    Backup,
}

impl IdKind {
    fn as_str(self) -> &'static str {
        match self {
            IdKind::Project => "project",
            IdKind::Cluster => "cluster",
            IdKind::ApiKey => "key",
            IdKind::Job => "job",
            IdKind::Backup => "backup",
        }
    }

    fn hex_bytes(self) -> usize {
        match self {
            IdKind::Project | IdKind::ApiKey => 10,
            IdKind::Cluster | IdKind::Backup => 8,
            IdKind::Job => 12,
        }
    }
}

struct Seed {
    seed: String,
    next: Mutex<HashMap<IdKind, u32>>,
}

tokio::task_local! {
    static SEED: Seed;
}

/// Runs `work` with ids derived from `seed`.
pub async fn with_seed<F: Future>(seed: String, work: F) -> F::Output {
    let seed = Seed {
        seed,
        next: Mutex::new(HashMap::new()),
    };
    SEED.scope(seed, work).await
}

/// The hex part of the `n`-th id of `kind` under `seed`.
fn derived_hex(seed: &str, kind: IdKind, n: u32) -> String {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update([0])
        .chain_update(kind.as_str())
        .chain_update(n.to_be_bytes())
        .finalize();
    hex::encode(&digest[..kind.hex_bytes()])
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

fn hex_for(kind: IdKind) -> String {
    SEED.try_with(|s| {
        let mut next = s.next.lock().expect("id sequence lock");
        let n = next.entry(kind).or_insert(0);
        let hex = derived_hex(&s.seed, kind, *n);
        *n += 1;
        hex
    })
    .unwrap_or_else(|_| random_hex(kind.hex_bytes()))
}

fn with_prefix(kind: IdKind, hex: String) -> String {
    match kind {
        IdKind::Project => format!("proj-{hex}"),
        IdKind::Cluster => format!("in01-{hex}"),
        IdKind::ApiKey => format!("key-{hex}"),
        IdKind::Job => format!("job-{hex}"),
        // The sequence number is not known here: callers match on the suffix.
        IdKind::Backup => hex,
    }
}

/// The first id of `kind` a request seeded with `seed` creates (for backups, the part after
/// `backup<N>_`).
pub fn seeded_id(seed: &str, kind: IdKind) -> String {
    with_prefix(kind, derived_hex(seed, kind, 0))
}

/// A fresh seed for a request's ids.
pub fn new_seed() -> String {
    random_hex(16)
}

pub fn new_project_id() -> String {
    with_prefix(IdKind::Project, hex_for(IdKind::Project))
}

pub fn new_cluster_id() -> String {
    with_prefix(IdKind::Cluster, hex_for(IdKind::Cluster))
}

pub fn new_api_key_id() -> String {
    with_prefix(IdKind::ApiKey, hex_for(IdKind::ApiKey))
}

pub fn new_job_id() -> String {
    with_prefix(IdKind::Job, hex_for(IdKind::Job))
}

pub fn new_backup_id(sequence: u64) -> String {
    format!("backup{sequence}_{}", hex_for(IdKind::Backup))
}

/// The secret half of an API key: 32 random bytes, shown once, stored only as a hash.
pub fn new_api_key_secret() -> String {
    format!("bsk_{}", random_hex(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        let cluster = new_cluster_id();
        assert!(
            cluster.starts_with("in01-") && cluster.len() == 5 + 16,
            "{cluster}"
        );
        assert!(new_project_id().starts_with("proj-"));
        assert!(new_job_id().starts_with("job-"));
        assert!(new_backup_id(3).starts_with("backup3_"));
        assert_ne!(new_api_key_secret(), new_api_key_secret());
    }

    #[tokio::test]
    async fn a_seed_gives_the_same_ids_in_the_same_order_and_never_a_secret() {
        let run = || async {
            (
                new_job_id(),
                new_job_id(),
                new_cluster_id(),
                new_backup_id(7),
                new_api_key_secret(),
            )
        };
        let first = with_seed("s".to_owned(), run()).await;
        let again = with_seed("s".to_owned(), run()).await;
        let other = with_seed("t".to_owned(), run()).await;
        assert_eq!(
            (&first.0, &first.1, &first.2, &first.3),
            (&again.0, &again.1, &again.2, &again.3)
        );
        assert_ne!(first.0, first.1, "each id of a kind is its own");
        assert_ne!(first.0, other.0);
        assert_ne!(first.4, again.4, "secrets stay random");
        assert_eq!(first.0, seeded_id("s", IdKind::Job));
        assert_eq!(first.2, seeded_id("s", IdKind::Cluster));
        assert!(first.3.ends_with(&seeded_id("s", IdKind::Backup)));
        assert_eq!(first.2.len(), new_cluster_id().len());
        assert_ne!(new_job_id(), first.0, "outside a seed ids are random");
    }
}
