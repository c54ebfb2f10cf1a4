//! What a backup reads from Milvus: collection schemas, partitions, indexes and load state,
//! flush, and the persisted segments whose binlogs are copied.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use milvus::proto::common::{ConsistencyLevel, KeyValuePair, SegmentState};
use milvus::proto::milvus::{
    DescribeCollectionRequest, DescribeIndexRequest, FlushRequest, GetFlushStateRequest,
    GetPersistentSegmentInfoRequest, ShowCollectionsRequest, ShowPartitionsRequest, ShowType,
};
use milvus::proto::schema::{DataType, FieldSchema};
use serde::{Deserialize, Serialize};

use super::{check, MilvusClient, MilvusError};

/// A field as the backup records it: enough to recreate it with the same field id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescription {
    pub field_id: i64,
    pub name: String,
    pub description: String,
    /// Milvus `DataType` name, e.g. `Int64`, `FloatVector`.
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_type: Option<String>,
    pub is_primary_key: bool,
    pub auto_id: bool,
    pub is_partition_key: bool,
    pub is_dynamic: bool,
    pub nullable: bool,
    /// `dim`, `max_length`, ...; `mmap.*` settings are left out.
    pub type_params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDescription {
    pub name: String,
    pub partition_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexDescription {
    pub index_name: String,
    pub field_name: String,
    /// `index_type`, `metric_type`, `params`, ... as Milvus reports them.
    pub params: BTreeMap<String, String>,
}

/// Everything a backup keeps about one collection besides its binlogs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionDescription {
    pub db_name: String,
    pub collection_name: String,
    pub collection_id: i64,
    pub description: String,
    pub fields: Vec<FieldDescription>,
    pub enable_dynamic_field: bool,
    pub shards_num: i32,
    pub consistency_level: String,
    /// Collection properties; the TTL and `mmap.*` are left out.
    pub properties: BTreeMap<String, String>,
    pub partitions: Vec<PartitionDescription>,
    pub indexes: Vec<IndexDescription>,
    pub loaded: bool,
    pub created_utc_ms: u64,
    /// Other names the collection answers to (backups made before aliases were kept: none).
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl CollectionDescription {
    /// What must not change between the start and the end of a backup for its binlogs and
    /// meta to describe the same collection.
    pub fn same_collection_as(&self, other: &CollectionDescription) -> bool {
        self.collection_id == other.collection_id
            && self.fields == other.fields
            && self.partitions == other.partitions
    }

    /// A partition-key collection: Milvus makes and names its partitions itself
    /// (`_default_0` … `_default_<n-1>`), routing each row by the key's hash.
    pub fn has_partition_key(&self) -> bool {
        self.fields.iter().any(|f| f.is_partition_key)
    }

    /// Milvus loads a collection only when every vector field has an index.
    pub fn loadable(&self) -> bool {
        self.fields
            .iter()
            .filter(|f| f.data_type.ends_with("Vector"))
            .all(|f| self.indexes.iter().any(|i| i.field_name == f.name))
    }
}

/// A sealed segment whose binlogs are on storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDescription {
    pub segment_id: i64,
    pub partition_id: i64,
    pub num_rows: i64,
}

/// Properties a backup never keeps (`design/api.md`: "Leaves out").
pub fn is_excluded_property(key: &str) -> bool {
    key == "collection.ttl.seconds" || key.starts_with("mmap.")
}

fn kv_map(pairs: &[KeyValuePair]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter(|kv| !is_excluded_property(&kv.key))
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

fn data_type_name(value: i32) -> String {
    DataType::try_from(value)
        .map(|t| t.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("DataType({value})"))
}

fn field_description(field: &FieldSchema) -> FieldDescription {
    FieldDescription {
        field_id: field.field_id,
        name: field.name.clone(),
        description: field.description.clone(),
        data_type: data_type_name(field.data_type),
        element_type: (field.element_type != 0).then(|| data_type_name(field.element_type)),
        is_primary_key: field.is_primary_key,
        auto_id: field.auto_id,
        is_partition_key: field.is_partition_key,
        is_dynamic: field.is_dynamic,
        nullable: field.nullable,
        type_params: kv_map(&field.type_params),
    }
}

impl MilvusClient {
    /// Schema, partitions, indexes and load state of one collection.
    pub async fn describe_collection(
        &self,
        db_name: &str,
        name: &str,
    ) -> Result<CollectionDescription, MilvusError> {
        let mut client = self.client.clone();
        let message = DescribeCollectionRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let described = self
            .call(client.describe_collection(self.request(message, Some(db_name))))
            .await?;
        check(described.status.as_ref(), "DescribeCollection")?;
        let schema = described.schema.unwrap_or_default();
        let partitions = self.list_partitions(db_name, name).await?;
        let indexes = self.describe_indexes(db_name, name).await?;
        let loaded = self.loaded_collections(db_name).await?;
        Ok(CollectionDescription {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            collection_id: described.collection_id,
            description: schema.description.clone(),
            fields: schema.fields.iter().map(field_description).collect(),
            enable_dynamic_field: schema.enable_dynamic_field,
            shards_num: described.shards_num,
            consistency_level: ConsistencyLevel::try_from(described.consistency_level)
                .map(|c| c.as_str_name().to_owned())
                .unwrap_or_else(|_| "Bounded".to_owned()),
            properties: kv_map(&described.properties),
            partitions,
            indexes,
            loaded: loaded.contains_key(name),
            created_utc_ms: described.created_utc_timestamp,
            aliases: {
                let mut aliases = described.aliases;
                aliases.sort();
                aliases
            },
        })
    }

    pub async fn list_partitions(
        &self,
        db_name: &str,
        name: &str,
    ) -> Result<Vec<PartitionDescription>, MilvusError> {
        let mut client = self.client.clone();
        let message = ShowPartitionsRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let response = self
            .call(client.show_partitions(self.request(message, Some(db_name))))
            .await?;
        check(response.status.as_ref(), "ShowPartitions")?;
        Ok(response
            .partition_names
            .into_iter()
            .zip(response.partition_i_ds)
            .map(|(name, partition_id)| PartitionDescription { name, partition_id })
            .collect())
    }

    /// Index definitions; a collection without an index has none (not an error).
    pub async fn describe_indexes(
        &self,
        db_name: &str,
        name: &str,
    ) -> Result<Vec<IndexDescription>, MilvusError> {
        let mut client = self.client.clone();
        let message = DescribeIndexRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let response = self
            .call(client.describe_index(self.request(message, Some(db_name))))
            .await?;
        match check(response.status.as_ref(), "DescribeIndex") {
            Ok(()) => {}
            Err(MilvusError::Refused { reason, .. })
                if reason.contains("index not found") || reason.contains("IndexNotExist") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        }
        Ok(response
            .index_descriptions
            .into_iter()
            .map(|index| IndexDescription {
                index_name: index.index_name,
                field_name: index.field_name,
                params: index
                    .params
                    .into_iter()
                    .filter(|kv| !is_excluded_property(&kv.key))
                    .map(|kv| (kv.key, kv.value))
                    .collect(),
            })
            .collect())
    }

    /// Loaded collections of a database, with their in-memory percentage.
    pub async fn loaded_collections(
        &self,
        db_name: &str,
    ) -> Result<HashMap<String, i64>, MilvusError> {
        let mut client = self.client.clone();
        let message = ShowCollectionsRequest {
            db_name: db_name.to_owned(),
            r#type: ShowType::InMemory as i32,
            ..Default::default()
        };
        let response = self
            .call(client.show_collections(self.request(message, Some(db_name))))
            .await?;
        check(response.status.as_ref(), "ShowCollections")?;
        #[expect(deprecated)]
        let percentages = response.in_memory_percentages;
        Ok(response
            .collection_names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, percentages.get(i).copied().unwrap_or(100)))
            .collect())
    }

    /// Flushes the collections of one database and waits until their data is on storage, or
    /// `wait` passes. Milvus seals the growing segments and reports when they are persisted.
    pub async fn flush_and_wait(
        &self,
        db_name: &str,
        names: &[String],
        wait: Duration,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = FlushRequest {
            db_name: db_name.to_owned(),
            collection_names: names.to_vec(),
            ..Default::default()
        };
        // Milvus seals every named collection before it answers: the call's own work grows
        // with `names`, so it gets the flush's whole wait, not one request's deadline.
        let flushed = self
            .call_within(
                wait,
                client.flush(self.request_within(wait, message, Some(db_name))),
            )
            .await?;
        check(flushed.status.as_ref(), "Flush")?;
        let deadline = tokio::time::Instant::now() + wait;
        for name in names {
            let segment_ids = flushed
                .coll_seg_i_ds
                .get(name)
                .map(|ids| ids.data.clone())
                .unwrap_or_default();
            let flush_ts = flushed.coll_flush_ts.get(name).copied().unwrap_or_default();
            let mut pause = Duration::from_millis(100);
            loop {
                let mut client = self.client.clone();
                let message = GetFlushStateRequest {
                    segment_i_ds: segment_ids.clone(),
                    flush_ts,
                    db_name: db_name.to_owned(),
                    collection_name: name.clone(),
                };
                let state = self
                    .call(client.get_flush_state(self.request(message, Some(db_name))))
                    .await?;
                check(state.status.as_ref(), "GetFlushState")?;
                if state.flushed {
                    break;
                }
                if tokio::time::Instant::now() + pause > deadline {
                    return Err(MilvusError::Refused {
                        operation: "Flush",
                        reason: format!(
                            "collection {db_name}.{name} was not flushed within {} s",
                            wait.as_secs()
                        ),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        Ok(())
    }

    /// The collection's flushed segments (growing, dropped and importing ones are not on
    /// storage in a usable state).
    pub async fn persistent_segments(
        &self,
        db_name: &str,
        name: &str,
    ) -> Result<Vec<SegmentDescription>, MilvusError> {
        let mut client = self.client.clone();
        let message = GetPersistentSegmentInfoRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let response = self
            .call(client.get_persistent_segment_info(self.request(message, Some(db_name))))
            .await?;
        check(response.status.as_ref(), "GetPersistentSegmentInfo")?;
        let mut segments: Vec<SegmentDescription> = response
            .infos
            .into_iter()
            .filter(|s| s.state == SegmentState::Flushed as i32)
            .map(|s| SegmentDescription {
                segment_id: s.segment_id,
                partition_id: s.partition_id,
                num_rows: s.num_rows,
            })
            .collect();
        segments.sort_by_key(|s| s.segment_id);
        Ok(segments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_mmap_are_left_out() {
        let pairs = vec![
            KeyValuePair {
                key: "collection.ttl.seconds".into(),
                value: "60".into(),
            },
            KeyValuePair {
                key: "mmap.enabled".into(),
                value: "true".into(),
            },
            KeyValuePair {
                key: "dim".into(),
                value: "8".into(),
            },
        ];
        let kept = kv_map(&pairs);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.get("dim").map(String::as_str), Some("8"));
    }

    #[test]
    fn data_types_are_named() {
        assert_eq!(data_type_name(DataType::Int64 as i32), "Int64");
        assert_eq!(data_type_name(DataType::FloatVector as i32), "FloatVector");
        assert_eq!(data_type_name(9999), "DataType(9999)");
    }
}
