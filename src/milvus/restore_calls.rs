//! What a restore asks of Milvus: databases, collections with given field ids, partitions,
//! `Import` with `backup=true`, indexes and load.

use std::time::Duration;

use milvus::proto::common::{ConsistencyLevel, ImportState, KeyValuePair};
use milvus::proto::milvus::{
    AlterAliasRequest, CreateAliasRequest, CreateCollectionRequest, CreateDatabaseRequest,
    CreateIndexRequest, CreatePartitionRequest, DescribeCollectionRequest, DropCollectionRequest,
    GetImportStateRequest, GetLoadingProgressRequest, ImportRequest, LoadCollectionRequest,
};
use milvus::proto::schema::{CollectionSchema, DataType, FieldSchema};
use prost::Message;

use super::{check, CollectionDescription, MilvusClient, MilvusError};

fn kv(key: &str, value: &str) -> KeyValuePair {
    KeyValuePair {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn data_type(name: &str) -> Result<i32, MilvusError> {
    DataType::from_str_name(name)
        .map(|t| t as i32)
        .ok_or_else(|| MilvusError::Refused {
            operation: "CreateCollection",
            reason: format!("the backup names an unknown data type '{name}'"),
        })
}

/// The schema to recreate `description` under `name`: the same fields in the same order, so
/// Milvus gives them the same ids (checked by the caller). The dynamic field is not listed:
/// Milvus adds it from `enable_dynamic_field`.
pub fn schema_for(description: &CollectionDescription, name: &str) -> Result<Vec<u8>, MilvusError> {
    let mut fields = Vec::new();
    for f in description.fields.iter().filter(|f| !f.is_dynamic) {
        fields.push(FieldSchema {
            name: f.name.clone(),
            description: f.description.clone(),
            data_type: data_type(&f.data_type)?,
            element_type: f
                .element_type
                .as_deref()
                .map(data_type)
                .transpose()?
                .unwrap_or(0),
            is_primary_key: f.is_primary_key,
            auto_id: f.auto_id,
            is_partition_key: f.is_partition_key,
            nullable: f.nullable,
            type_params: f.type_params.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        });
    }
    let schema = CollectionSchema {
        name: name.to_owned(),
        description: description.description.clone(),
        fields,
        enable_dynamic_field: description.enable_dynamic_field,
        ..Default::default()
    };
    Ok(schema.encode_to_vec())
}

/// What Milvus 2.3 says of an import task it was running when it stopped.
const IMPORT_LOST_IN_RESTART: &str = "marked failed as service restarted";

impl MilvusClient {
    /// Creates `db_name` unless it exists.
    pub async fn ensure_database(&self, db_name: &str) -> Result<(), MilvusError> {
        if self.list_databases().await?.iter().any(|d| d == db_name) {
            return Ok(());
        }
        let mut client = self.client.clone();
        let message = CreateDatabaseRequest {
            db_name: db_name.to_owned(),
            ..Default::default()
        };
        let status = self
            .call(client.create_database(self.request(message, None)))
            .await?;
        check(Some(&status), "CreateDatabase")
    }

    /// Creates `name` with the schema of `description`. A partition-key collection gets as
    /// many partitions as the backup recorded, so Milvus names them as the backup does.
    pub async fn create_collection(
        &self,
        db_name: &str,
        name: &str,
        description: &CollectionDescription,
        shards_num: i32,
    ) -> Result<(), MilvusError> {
        let num_partitions = if description.has_partition_key() {
            description.partitions.len() as i64
        } else {
            0
        };
        let mut client = self.client.clone();
        let message = CreateCollectionRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            schema: schema_for(description, name)?,
            shards_num,
            consistency_level: ConsistencyLevel::from_str_name(&description.consistency_level)
                .unwrap_or(ConsistencyLevel::Bounded) as i32,
            properties: description
                .properties
                .iter()
                .map(|(k, v)| kv(k, v))
                .collect(),
            num_partitions,
            ..Default::default()
        };
        let status = self
            .call(client.create_collection(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "CreateCollection")
    }

    pub async fn create_partition(
        &self,
        db_name: &str,
        collection: &str,
        partition: &str,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = CreatePartitionRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            partition_name: partition.to_owned(),
            ..Default::default()
        };
        let status = self
            .call(client.create_partition(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "CreatePartition")
    }

    pub async fn drop_collection(&self, db_name: &str, name: &str) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = DropCollectionRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let status = self
            .call(client.drop_collection(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "DropCollection")
    }

    /// Gives `collection` the other name `alias`. Milvus refuses an alias another collection
    /// holds (it is not moved).
    pub async fn create_alias(
        &self,
        db_name: &str,
        collection: &str,
        alias: &str,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = CreateAliasRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        let status = self
            .call(client.create_alias(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "CreateAlias")
    }

    /// Points `alias` at `collection` (it must exist already).
    pub async fn alter_alias(
        &self,
        db_name: &str,
        collection: &str,
        alias: &str,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = AlterAliasRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        let status = self
            .call(client.alter_alias(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "AlterAlias")
    }

    /// Whether `name` (a collection or an alias) names a collection that exists. Milvus 2.3
    /// keeps the aliases of a dropped collection: they name none.
    pub async fn names_a_collection(&self, db_name: &str, name: &str) -> Result<bool, MilvusError> {
        let mut client = self.client.clone();
        let message = DescribeCollectionRequest {
            db_name: db_name.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let described = self
            .call(client.describe_collection(self.request(message, Some(db_name))))
            .await?;
        Ok(check(described.status.as_ref(), "DescribeCollection").is_ok())
    }

    /// `Import` of one partition's binlog directories with `backup=true`; returns task ids.
    pub async fn import_backup(
        &self,
        db_name: &str,
        collection: &str,
        partition: &str,
        files: Vec<String>,
    ) -> Result<Vec<i64>, MilvusError> {
        let mut client = self.client.clone();
        let message = ImportRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            partition_name: partition.to_owned(),
            files,
            options: vec![kv("backup", "true"), kv("skip_disk_quota_check", "true")],
            ..Default::default()
        };
        let response = self
            .call(client.import(self.request(message, Some(db_name))))
            .await?;
        check(response.status.as_ref(), "Import")?;
        Ok(response.tasks)
    }

    /// Waits until an import task has persisted its rows; returns how many it imported.
    pub async fn wait_import(&self, task: i64, wait: Duration) -> Result<i64, MilvusError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(200);
        loop {
            let mut client = self.client.clone();
            let state = self
                .call(client.get_import_state(self.request(GetImportStateRequest { task }, None)))
                .await?;
            check(state.status.as_ref(), "GetImportState")?;
            match ImportState::try_from(state.state) {
                Ok(ImportState::ImportCompleted | ImportState::ImportFlushed) => {
                    return Ok(state.row_count)
                }
                Ok(ImportState::ImportFailed | ImportState::ImportFailedAndCleaned) => {
                    let reason = state
                        .infos
                        .iter()
                        .find(|kv| kv.key == "failed_reason")
                        .map(|kv| kv.value.clone())
                        .unwrap_or_else(|| "no reason given".to_owned());
                    // Milvus 2.3 fails the import tasks it was running when it stopped.
                    if reason.contains(IMPORT_LOST_IN_RESTART) {
                        return Err(MilvusError::Unreachable {
                            uri: self.uri.clone(),
                            message: format!("it restarted during import task {task}"),
                        });
                    }
                    return Err(MilvusError::Refused {
                        operation: "Import",
                        reason,
                    });
                }
                _ => {}
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(MilvusError::Refused {
                    operation: "Import",
                    reason: format!("task {task} did not finish within {} s", wait.as_secs()),
                });
            }
            tokio::time::sleep(pause).await;
            // GetImportState is cheap; a long pause would only leave a finished import
            // unnoticed (with 2 s, a ~10 s import waited a second more on average).
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    pub async fn create_index(
        &self,
        db_name: &str,
        collection: &str,
        field: &str,
        index_name: &str,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = CreateIndexRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            field_name: field.to_owned(),
            index_name: index_name.to_owned(),
            extra_params: params.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        };
        let status = self
            .call(client.create_index(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "CreateIndex")
    }

    /// Loads the collection and waits until it is fully loaded.
    pub async fn load_and_wait(
        &self,
        db_name: &str,
        collection: &str,
        wait: Duration,
    ) -> Result<(), MilvusError> {
        let mut client = self.client.clone();
        let message = LoadCollectionRequest {
            db_name: db_name.to_owned(),
            collection_name: collection.to_owned(),
            replica_number: 1,
            ..Default::default()
        };
        let status = self
            .call(client.load_collection(self.request(message, Some(db_name))))
            .await?;
        check(Some(&status), "LoadCollection")?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut client = self.client.clone();
            let message = GetLoadingProgressRequest {
                db_name: db_name.to_owned(),
                collection_name: collection.to_owned(),
                ..Default::default()
            };
            let progress = self
                .call(client.get_loading_progress(self.request(message, Some(db_name))))
                .await?;
            check(progress.status.as_ref(), "GetLoadingProgress")?;
            if progress.progress >= 100 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(MilvusError::Refused {
                    operation: "LoadCollection",
                    reason: format!(
                        "{db_name}.{collection} not loaded within {} s",
                        wait.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
