//! Milvus binlog files, as Milvus writes insert and delta logs: a magic number, a descriptor
//! event, then data events, each a fixed header and a one-column Parquet payload. Read here
//! only to count the rows a backup holds after its deletes; the copy never parses them.
//!
//! ```text
//! magic i32 LE 0xfffabc
//! event: header { timestamp i64, type_code i8, event_length i32, next_position i32 }
//!        descriptor data | { start_ts i64, end_ts i64 } payload (Parquet, to event_length)
//! ```

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

const MAGIC: i32 = 0x00ff_fabc;
const HEADER_LEN: usize = 8 + 1 + 4 + 4;
const DESCRIPTOR_EVENT: u8 = 0;
/// A data event's `{start_ts, end_ts}` before its payload.
const EVENT_DATA_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("not a readable Milvus binlog: {0}")]
pub struct BinlogError(String);

/// A primary key as binlogs carry it (`Int64` or `VarChar`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrimaryKey {
    Int(i64),
    Str(String),
}

/// The values of one binlog's column, every data event in order.
pub fn column(file: &[u8]) -> Result<Vec<PrimaryKey>, BinlogError> {
    let mut values = Vec::new();
    for payload in payloads(file)? {
        let reader = SerializedFileReader::new(Bytes::copy_from_slice(payload))
            .map_err(|e| BinlogError(format!("payload: {e}")))?;
        let rows = reader
            .get_row_iter(None)
            .map_err(|e| BinlogError(format!("payload: {e}")))?;
        for row in rows {
            let row = row.map_err(|e| BinlogError(format!("payload row: {e}")))?;
            let Some((_, field)) = row.get_column_iter().next() else {
                return Err(BinlogError("a payload row without a column".to_owned()));
            };
            values.push(match field {
                Field::Long(v) => PrimaryKey::Int(*v),
                Field::Int(v) => PrimaryKey::Int(i64::from(*v)),
                Field::Str(s) => PrimaryKey::Str(s.clone()),
                Field::Bytes(b) => PrimaryKey::Str(String::from_utf8_lossy(b.data()).into_owned()),
                other => {
                    return Err(BinlogError(format!(
                        "a column of {other:?}, not keys or timestamps"
                    )))
                }
            });
        }
    }
    Ok(values)
}

/// The deletes of a delta log: `(primary key, delete timestamp)` each. Milvus 2.3 writes each
/// as JSON `{"pk":…,"ts":…,"pkType":…}`; older versions as `pk,ts`.
pub fn deletes(file: &[u8]) -> Result<Vec<(PrimaryKey, u64)>, BinlogError> {
    column(file)?
        .into_iter()
        .map(|value| match value {
            PrimaryKey::Str(text) => parse_delete(&text),
            PrimaryKey::Int(_) => Err(BinlogError("a delta log of numbers".to_owned())),
        })
        .collect()
}

fn parse_delete(text: &str) -> Result<(PrimaryKey, u64), BinlogError> {
    let bad = || {
        BinlogError(format!(
            "a delete entry '{}'",
            text.chars().take(80).collect::<String>()
        ))
    };
    if text.starts_with('{') {
        let entry: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let ts = entry["ts"].as_u64().ok_or_else(bad)?;
        let pk = match &entry["pk"] {
            serde_json::Value::Number(n) => PrimaryKey::Int(n.as_i64().ok_or_else(bad)?),
            serde_json::Value::String(s) => PrimaryKey::Str(s.clone()),
            _ => return Err(bad()),
        };
        return Ok((pk, ts));
    }
    let (pk, ts) = text.rsplit_once(',').ok_or_else(bad)?;
    let ts = ts.trim().parse().map_err(|_| bad())?;
    let pk = match pk.parse() {
        Ok(n) => PrimaryKey::Int(n),
        Err(_) => PrimaryKey::Str(pk.to_owned()),
    };
    Ok((pk, ts))
}

/// The Parquet payload of every data event.
fn payloads(file: &[u8]) -> Result<Vec<&[u8]>, BinlogError> {
    let read_i32 = |at: usize| -> Result<i32, BinlogError> {
        file.get(at..at + 4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(|| BinlogError(format!("cut short at byte {at}")))
    };
    if read_i32(0)? != MAGIC {
        return Err(BinlogError("no magic number".to_owned()));
    }
    let mut payloads = Vec::new();
    let mut at = 4;
    while at < file.len() {
        let type_code = *file
            .get(at + 8)
            .ok_or_else(|| BinlogError(format!("cut short at byte {at}")))?;
        let length = usize::try_from(read_i32(at + 9)?).unwrap_or(0);
        let end = at + length;
        if length < HEADER_LEN || end > file.len() {
            return Err(BinlogError(format!(
                "an event at byte {at} of {length} bytes in a file of {}",
                file.len()
            )));
        }
        if type_code != DESCRIPTOR_EVENT {
            let start = at + HEADER_LEN + EVENT_DATA_LEN;
            payloads.push(file.get(start..end).ok_or_else(|| {
                BinlogError(format!("an event at byte {at} shorter than its header"))
            })?);
        }
        at = end;
    }
    Ok(payloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_read_both_encodings() {
        assert_eq!(
            parse_delete(r#"{"pk":7,"ts":470866555724627987,"pkType":5}"#).unwrap(),
            (PrimaryKey::Int(7), 470866555724627987)
        );
        assert_eq!(
            parse_delete(r#"{"pk":"a,b","ts":12,"pkType":21}"#).unwrap(),
            (PrimaryKey::Str("a,b".into()), 12)
        );
        assert_eq!(parse_delete("42,99").unwrap(), (PrimaryKey::Int(42), 99));
        assert!(parse_delete("nonsense").is_err());
    }

    #[test]
    fn a_file_that_is_no_binlog_is_refused() {
        assert!(payloads(b"PAR1").is_err());
        assert!(payloads(&[0xbc, 0xfa, 0xff, 0x00, 1, 2]).is_err());
        // A magic number and one event claiming more bytes than the file has.
        let mut file = vec![0xbc, 0xfa, 0xff, 0x00];
        file.extend_from_slice(&[0; 8]);
        file.push(1);
        file.extend_from_slice(&1000i32.to_le_bytes());
        file.extend_from_slice(&0i32.to_le_bytes());
        assert!(payloads(&file).is_err());
    }
}
