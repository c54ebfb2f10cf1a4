//! What the command-line client prints: the API's `data` as JSON for scripts, or tables and
//! `field: value` lines for people.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and `field: value` lines.
    Table,
    /// The API's `data`, as it came, one JSON document.
    Json,
}

/// A list: one row per item, the named fields as columns (`a.b` reaches into objects).
pub fn list(format: Format, items: &[Value], columns: &[(&str, &str)]) -> String {
    if format == Format::Json {
        return json(&Value::Array(items.to_vec()));
    }
    if items.is_empty() {
        return "(none)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, path)| cell(item, path)).collect())
        .collect();
    let headers: Vec<String> = columns.iter().map(|(h, _)| (*h).to_owned()).collect();
    table(&headers, &rows)
}

/// One object: `field: value` lines (nested values as compact JSON).
pub fn object(format: Format, value: &Value) -> String {
    if format == Format::Json {
        return json(value);
    }
    let Some(fields) = value.as_object() else {
        return format!("{}\n", plain(value));
    };
    let width = fields.keys().map(|k| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(&format!("{key:<width$}  {}\n", plain(value)));
    }
    out
}

pub fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers);
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn cell(item: &Value, path: &str) -> String {
    let mut value = item;
    for part in path.split('.') {
        value = &value[part];
    }
    if path.ends_with("size") || path.ends_with("Size") {
        if let Some(bytes) = value.as_i64() {
            return bytes_text(bytes);
        }
    }
    plain(value)
}

/// A value as a person reads it: strings bare, null as `-`, the rest as compact JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|v| v.is_string()) => items
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Bytes in binary units with one decimal (`1.5 GiB`), plain bytes under 1 KiB.
pub fn bytes_text(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_line_up_and_reach_into_objects() {
        let items = vec![
            json!({"jobId": "job-1", "status": "SUCCESSFUL", "resource": {"clusterId": "in01-a"}}),
            json!({"jobId": "job-22", "status": "FAILED", "resource": {}}),
        ];
        let text = list(
            Format::Table,
            &items,
            &[
                ("JOB", "jobId"),
                ("STATUS", "status"),
                ("CLUSTER", "resource.clusterId"),
            ],
        );
        assert_eq!(
            text,
            "JOB     STATUS      CLUSTER\n\
             job-1   SUCCESSFUL  in01-a\n\
             job-22  FAILED      -\n"
        );
        assert_eq!(list(Format::Table, &[], &[("JOB", "jobId")]), "(none)\n");
    }

    #[test]
    fn json_output_is_the_data_as_is() {
        let items = vec![json!({"collectionId": "449"})];
        let text = list(Format::Json, &items, &[("ID", "collectionId")]);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!(items));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(5 * 1024 * 1024 * 1024), "5.0 GiB");
        let text = list(Format::Table, &[json!({"size": 2048})], &[("SIZE", "size")]);
        assert_eq!(text, "SIZE\n2.0 KiB\n");
    }
}
