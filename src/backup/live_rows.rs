//! The rows a backup holds after its deletes, per partition: what `Import` with `backup=true`
//! brings back, counted from the backed-up binlogs themselves (so it is the count at the
//! backup's flush, whatever the cluster did since).
//!
//! Import applies a partition's delta logs to that partition's rows: a row is gone when a
//! delete of its primary key has a later timestamp than the row. A delete of a key that never
//! existed (or was inserted again afterwards) removes nothing.

use std::collections::{BTreeMap, HashMap};

use super::manifest::ManifestObject;
use crate::milvus::binlog::{self, PrimaryKey};
use crate::milvus::SegmentDescription;
use crate::objects::{self, ObjectError, ObjectStore};

/// The field id of Milvus's row timestamps.
const TIMESTAMP_FIELD: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Storage(#[from] ObjectError),
    #[error("{key}: {source}")]
    Binlog {
        key: String,
        source: binlog::BinlogError,
    },
    #[error("segment {segment}: {keys} primary keys but {timestamps} timestamps")]
    Mismatch {
        segment: i64,
        keys: usize,
        timestamps: usize,
    },
}

/// Where a backed-up binlog sits: `…/binlogs/<kind>/<coll>/<part>/<seg>/[<field>/]<log>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    delta: bool,
    partition: i64,
    segment: i64,
    /// Insert logs only.
    field: Option<i64>,
    log: i64,
}

fn place(key: &str) -> Option<Place> {
    let rest = key.split("/binlogs/").nth(1)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok());
    match *parts.first()? {
        "insert_log" if parts.len() == 6 => Some(Place {
            delta: false,
            partition: number(2)?,
            segment: number(3)?,
            field: Some(number(4)?),
            log: number(5)?,
        }),
        "delta_log" if parts.len() == 5 => Some(Place {
            delta: true,
            partition: number(2)?,
            segment: number(3)?,
            field: None,
            log: number(4)?,
        }),
        _ => None,
    }
}

/// Live rows per partition id of one collection whose binlogs `objects` (keys in `store`)
/// holds. Partitions without delete logs count their segments' rows as Milvus reported them;
/// the others read their primary keys and timestamps.
pub async fn live_rows_per_partition(
    store: &dyn ObjectStore,
    objects: &[ManifestObject],
    segments: &[SegmentDescription],
    primary_key_field: i64,
) -> Result<BTreeMap<i64, i64>, CountError> {
    // Each log indexed once: delta logs by partition, insert logs by (segment, field) in log
    // order (a collection holds thousands of segments and tens of thousands of logs).
    let mut delta_logs: HashMap<i64, Vec<&str>> = HashMap::new();
    let mut insert_logs: HashMap<(i64, i64), Vec<(i64, &str)>> = HashMap::new();
    for object in objects {
        let key = object.key.as_str();
        match place(key) {
            Some(p) if p.delta => delta_logs.entry(p.partition).or_default().push(key),
            Some(Place {
                segment,
                field: Some(field),
                log,
                ..
            }) => insert_logs
                .entry((segment, field))
                .or_default()
                .push((log, key)),
            _ => {}
        }
    }
    for logs in insert_logs.values_mut() {
        logs.sort_unstable();
    }
    let column = |segment: i64, field: i64| -> Vec<&str> {
        insert_logs
            .get(&(segment, field))
            .map(|logs| logs.iter().map(|(_, key)| *key).collect())
            .unwrap_or_default()
    };
    let mut live = BTreeMap::new();
    for segment in segments {
        *live.entry(segment.partition_id).or_insert(0) += segment.num_rows;
    }
    for (partition, rows) in live.iter_mut() {
        let mut deletes: HashMap<PrimaryKey, u64> = HashMap::new();
        for key in delta_logs.get(partition).into_iter().flatten() {
            for (pk, ts) in binlog::deletes(&read(store, key).await?).map_err(|e| binlog(key, e))? {
                let latest = deletes.entry(pk).or_insert(ts);
                *latest = (*latest).max(ts);
            }
        }
        if deletes.is_empty() {
            continue;
        }
        *rows = 0;
        for segment in segments.iter().filter(|s| s.partition_id == *partition) {
            let column = |field: i64| column(segment.segment_id, field);
            let keys = read_column(store, &column(primary_key_field)).await?;
            let timestamps = read_column(store, &column(TIMESTAMP_FIELD)).await?;
            if keys.len() != timestamps.len() {
                return Err(CountError::Mismatch {
                    segment: segment.segment_id,
                    keys: keys.len(),
                    timestamps: timestamps.len(),
                });
            }
            let alive = keys
                .iter()
                .zip(&timestamps)
                .filter(|(pk, ts)| {
                    let inserted = match ts {
                        PrimaryKey::Int(ts) => *ts as u64,
                        PrimaryKey::Str(_) => u64::MAX,
                    };
                    deletes.get(*pk).is_none_or(|deleted| *deleted <= inserted)
                })
                .count();
            *rows += alive as i64;
        }
    }
    Ok(live)
}

fn binlog(key: &str, source: binlog::BinlogError) -> CountError {
    CountError::Binlog {
        key: key.to_owned(),
        source,
    }
}

async fn read(store: &dyn ObjectStore, key: &str) -> Result<Vec<u8>, CountError> {
    Ok(objects::get_bytes(store, key).await?)
}

/// Every value of a field's logs, in log order.
async fn read_column(
    store: &dyn ObjectStore,
    keys: &[&str],
) -> Result<Vec<PrimaryKey>, CountError> {
    let mut values = Vec::new();
    for key in keys {
        values.extend(binlog::column(&read(store, key).await?).map_err(|e| binlog(key, e))?);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_keys_say_where_they_sit() {
        assert_eq!(
            place("backups/p/c/b/binlogs/insert_log/1/2/3/101/44"),
            Some(Place {
                delta: false,
                partition: 2,
                segment: 3,
                field: Some(101),
                log: 44
            })
        );
        assert_eq!(
            place("backups/p/c/b/binlogs/delta_log/1/2/3/45"),
            Some(Place {
                delta: true,
                partition: 2,
                segment: 3,
                field: None,
                log: 45
            })
        );
        assert_eq!(place("backups/p/c/b/meta/default/docs.json"), None);
        assert_eq!(place("backups/p/c/b/binlogs/stats_log/1/2/3/101/44"), None);
    }
}
