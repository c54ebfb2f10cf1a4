//! `manifest.json`: the commit point of a backup. It is written last; a backup without one is
//! not AVAILABLE. It names every object by key with size and checksum, so a verify or a
//! restore can check each byte, and a later (incremental) backup may point at objects of an
//! earlier one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::milvus::{CollectionDescription, Rbac};
use crate::objects::Checksum;

pub const FORMAT_VERSION: u32 = 1;

/// `meta/<db>/<collection>.json`: what a restore recreates a collection from (schema,
/// partitions, indexes, load state) and the segments whose binlogs the backup holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionMeta {
    #[serde(flatten)]
    pub collection: CollectionDescription,
    pub segments: Vec<ManifestSegment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub backup_id: String,
    pub backup_name: String,
    pub project_id: String,
    pub cluster_id: String,
    pub cluster_name: String,
    pub region_id: String,
    pub backup_type: String,
    pub milvus_version: String,
    /// When the data was flushed: the backup holds what Milvus had persisted then.
    pub backup_time: DateTime<Utc>,
    /// Users (names only), roles, grants and bindings (CLUSTER backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rbac: Option<Rbac>,
    pub collections: Vec<ManifestCollection>,
    /// Every object of the backup but the manifest itself, in key order.
    pub objects: Vec<ManifestObject>,
    /// Sum of the objects' sizes.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCollection {
    pub db_name: String,
    pub collection_name: String,
    pub collection_id: i64,
    /// Key of the collection's meta file (schema, partitions, indexes, load state).
    pub meta_key: String,
    /// Rows in the copied segments (before deletes in the delta logs are applied).
    pub row_count: i64,
    /// Rows after the backup's deletes: what a restore brings back, counted from the binlogs
    /// (`backup::live_rows`). Absent in backups made before it was counted, or when a binlog
    /// could not be read for it (the restore then checks `row_count` as an upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_row_count: Option<i64>,
    /// The same per partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionRows>,
    /// Bytes of the collection's binlogs.
    pub size: u64,
    pub segments: Vec<ManifestSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionRows {
    pub partition_id: i64,
    pub live_row_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSegment {
    pub segment_id: i64,
    pub partition_id: i64,
    pub num_rows: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestObject {
    pub key: String,
    pub size: u64,
    /// CRC32C, base64 of the big-endian value (as S3's `x-amz-checksum-crc32c`).
    pub checksum: Checksum,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
