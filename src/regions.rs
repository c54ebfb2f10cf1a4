//! The configured regions and the object store each writes its backups to. Built once at
//! start-up from the config; backups of a cluster go to its own region's store and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, StorageConfig};
use crate::objects::{DynObjectStore, LocalStore, S3Store};
use crate::store::Region;

#[derive(Debug)]
pub struct RegionHandle {
    pub info: Region,
    pub storage: DynObjectStore,
}

#[derive(Debug, Default)]
pub struct Regions {
    by_id: BTreeMap<String, RegionHandle>,
}

impl Regions {
    pub fn from_config(config: &Config) -> Regions {
        let by_id = config
            .regions
            .iter()
            .map(|region| {
                let (storage_type, storage): (&str, DynObjectStore) = match &region.storage {
                    StorageConfig::Local { path } => (
                        "local",
                        Arc::new(LocalStore::new(
                            config.local_region_path(&region.id, path.as_deref()),
                        )),
                    ),
                    StorageConfig::S3(s3) => ("s3", Arc::new(S3Store::new(s3))),
                };
                let info = Region {
                    id: region.id.clone(),
                    cloud_provider: region.cloud_provider.clone(),
                    storage_type: storage_type.to_owned(),
                    price_per_gb_month: region.price_per_gb_month,
                };
                (region.id.clone(), RegionHandle { info, storage })
            })
            .collect();
        Regions { by_id }
    }

    pub fn get(&self, id: &str) -> Option<&RegionHandle> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &RegionHandle> {
        self.by_id.values()
    }

    pub fn ids(&self) -> Vec<&str> {
        self.by_id.keys().map(String::as_str).collect()
    }
}
