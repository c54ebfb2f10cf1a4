//! Cluster statuses for lists: a `GetVersion` probe per cluster, kept for a few seconds so
//! that listing clusters does not wait on every Milvus on every call. A stale status is
//! served at once while one background probe refreshes it; only a cluster never probed (or
//! whose address changed) is probed in the request, all of them at once under the short
//! probe deadline. Describing a cluster always probes it live.
//!
//! The cache holds statuses, never clusters: a list is read from the store first, so a
//! deleted cluster is never shown whatever the cache holds, and deleting one forgets it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::clusters::Probed;
use super::Services;
use crate::store::Cluster;

#[derive(Debug, Default)]
pub struct StatusCache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// The address probed: a cluster re-registered elsewhere is probed again.
    uri: String,
    at: Instant,
    milvus_version: Option<String>,
    refreshing: bool,
}

/// What the cache says of one cluster.
#[derive(Debug, PartialEq, Eq)]
enum Cached {
    Fresh(Option<String>),
    /// Served as is; the caller starts a refresh.
    Stale(Option<String>),
    Missing,
}

impl StatusCache {
    /// What the cache holds for cluster `id` at `uri`; a stale entry is handed to one
    /// caller to refresh (the others get it as fresh meanwhile). `fresh_for` zero: always
    /// missing (probe on every list).
    fn lookup(&self, id: &str, uri: &str, fresh_for: Duration) -> Cached {
        if fresh_for.is_zero() {
            return Cached::Missing;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(id) {
            Some(e) if e.uri == uri && e.at.elapsed() < fresh_for => {
                Cached::Fresh(e.milvus_version.clone())
            }
            Some(e) if e.uri == uri => {
                if e.refreshing {
                    return Cached::Fresh(e.milvus_version.clone());
                }
                e.refreshing = true;
                Cached::Stale(e.milvus_version.clone())
            }
            _ => Cached::Missing,
        }
    }

    fn store(&self, cluster: &Cluster, milvus_version: Option<String>) {
        self.store_status(&cluster.id, &cluster.milvus_uri, milvus_version);
    }

    fn store_status(&self, id: &str, uri: &str, milvus_version: Option<String>) {
        let entry = Entry {
            uri: uri.to_owned(),
            at: Instant::now(),
            milvus_version,
            refreshing: false,
        };
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), entry);
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, cluster_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster_id);
    }
}

impl Services {
    /// Statuses for a list of clusters, in their order: cached when fresh, stale ones served
    /// and refreshed in the background, missing ones probed now (concurrently).
    pub async fn probe_all(&self, clusters: Vec<Cluster>) -> Vec<Probed> {
        let fresh_for = Duration::from_millis(self.config.milvus.status_cache_ms);
        let cache = &self.statuses;
        let answers = clusters.into_iter().map(|cluster| async move {
            match cache.lookup(&cluster.id, &cluster.milvus_uri, fresh_for) {
                Cached::Fresh(milvus_version) => Probed {
                    cluster,
                    milvus_version,
                },
                Cached::Stale(milvus_version) => {
                    let services = self.clone();
                    let again = cluster.clone();
                    tokio::spawn(async move {
                        let probed = services.probe(again).await;
                        services
                            .statuses
                            .store(&probed.cluster, probed.milvus_version);
                    });
                    Probed {
                        cluster,
                        milvus_version,
                    }
                }
                Cached::Missing => {
                    let probed = self.probe(cluster).await;
                    cache.store(&probed.cluster, probed.milvus_version.clone());
                    probed
                }
            }
        });
        join_all(answers).await
    }

    /// `probe`, remembered for the lists that follow.
    pub async fn probe_now(&self, cluster: Cluster) -> Probed {
        let probed = self.probe(cluster).await;
        self.statuses
            .store(&probed.cluster, probed.milvus_version.clone());
        probed
    }
}

/// Shared by every clone of `Services`.
pub type Statuses = Arc<StatusCache>;

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "http://milvus:19530";

    #[test]
    fn fresh_then_stale_once_then_refreshed() {
        let cache = StatusCache::default();
        let long = Duration::from_secs(60);
        assert_eq!(cache.lookup("c1", URI, long), Cached::Missing);
        cache.store_status("c1", URI, Some("v2.3.5".into()));
        assert_eq!(
            cache.lookup("c1", URI, long),
            Cached::Fresh(Some("v2.3.5".into()))
        );

        // Past its time: one caller refreshes, the others are served the old status.
        std::thread::sleep(Duration::from_millis(5));
        let short = Duration::from_millis(1);
        assert_eq!(
            cache.lookup("c1", URI, short),
            Cached::Stale(Some("v2.3.5".into()))
        );
        assert_eq!(
            cache.lookup("c1", URI, short),
            Cached::Fresh(Some("v2.3.5".into()))
        );
        cache.store_status("c1", URI, None);
        assert_eq!(cache.lookup("c1", URI, long), Cached::Fresh(None));
    }

    #[test]
    fn another_address_or_a_deleted_cluster_is_probed_again() {
        let cache = StatusCache::default();
        let long = Duration::from_secs(60);
        cache.store_status("c1", URI, Some("v2.3.5".into()));
        assert_eq!(
            cache.lookup("c1", "http://elsewhere:19530", long),
            Cached::Missing
        );
        cache.forget("c1");
        assert_eq!(cache.lookup("c1", URI, long), Cached::Missing);
        cache.store_status("c1", URI, Some("v2.3.5".into()));
        assert_eq!(cache.lookup("c1", URI, Duration::ZERO), Cached::Missing);
    }
}
