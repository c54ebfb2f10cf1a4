//! The use cases: each rule of the product once, called alike by the HTTP layer, the
//! scheduler and the job handlers. Functions here return the service `Error`
//! (`crate::error`), which says what went wrong in the API's terms (invalid input, not found,
//! conflict, upstream); `http/` turns it into a response, a job into a retry or a failure
//! (`From<Error> for JobError`). Nothing here knows about axum.
//!
//! - `cluster_status`: the few-seconds cache of cluster statuses behind cluster lists.
//! - `clusters`: registering, the Dedicated-only rule, reaching a cluster's Milvus, deleting
//!   a cluster (and retiring its automatic backups).
//! - `backups`: creating (task rules), deleting, verifying, and the copy jobs of a backup.
//! - `restores`: planning a restore and checking its source and destination.
//! - `policies`: the automatic-backup policy and the first backup on enable.
//! - `access`: which cluster or backup a key may act on.

pub mod access;
pub mod backups;
pub mod cluster_status;
pub mod clusters;
pub mod policies;
pub mod restores;

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::error::Error;
use crate::objects::DynObjectStore;
use crate::regions::Regions;
use crate::store::{NewJob, Store};

/// What the use cases reach: the store, the regions' storage, the key that opens cluster
/// credentials, and the configuration. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    pub store: Store,
    pub regions: Arc<Regions>,
    pub secrets: SecretBox,
    pub config: Arc<Config>,
    /// Recent cluster statuses, for lists (`cluster_status`).
    pub statuses: cluster_status::Statuses,
}

impl Services {
    /// A job due now with the configured attempt limit.
    pub fn new_job(&self, project_id: &str, job_type: &str, payload: serde_json::Value) -> NewJob {
        self.config.jobs.new_job(project_id, job_type, payload)
    }

    /// A region's storage. A region removed from the configuration while backups still live
    /// there is an operator's error, and says how to mend it.
    pub fn storage_in(&self, region_id: &str) -> Result<DynObjectStore, Error> {
        self.regions
            .get(region_id)
            .map(|region| region.storage.clone())
            .ok_or_else(|| {
                Error::Unprocessable(format!(
                    "region '{region_id}' is not configured any more; add it back to the \
                     configuration to reach the backups stored there"
                ))
            })
    }
}
