//! Backup vocabulary and rules with no I/O: types, statuses, the selection a user asks for,
//! default names, and where each object of a backup lives in the region's storage.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] #[schema(rename = $text)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "'{other}' is not a {}; use one of: {}",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum!(
    /// What a backup covers.
    BackupType { Cluster = "CLUSTER", Collection = "COLLECTION" }
);

text_enum!(
    /// Who started a backup: a user, or the schedule.
    CreationMethod { Manual = "MANUAL", Auto = "AUTO" }
);

text_enum!(
    /// A backup's life: CREATING until its manifest is written, then AVAILABLE; FAILED and
    /// CANCELED backups hold no objects; DELETING until its objects are gone, then DELETED
    /// (kept only for the usage report, never shown).
    BackupStatus {
        Creating = "CREATING",
        Available = "AVAILABLE",
        Failed = "FAILED",
        Canceled = "CANCELED",
        Deleting = "DELETING",
        Deleted = "DELETED",
    }
);

use super::schedule::RetentionDays;

/// Job types of the backup work.
pub const BACKUP_JOB: &str = "BACKUP";
pub const DELETE_BACKUP_JOB: &str = "DELETE_BACKUP";
pub const COPY_BACKUP_JOB: &str = "COPY_BACKUP";
pub const VERIFY_BACKUP_JOB: &str = "VERIFY_BACKUP";

/// Keys of jobs that must never run twice (`jobs.dedupe_key` is unique for ever), in one
/// place so that every writer of a kind spells its key alike.
pub mod dedupe {
    use chrono::NaiveDate;

    /// The automatic backup of one scheduled slot.
    pub fn auto_slot(cluster_id: &str, slot: NaiveDate) -> String {
        format!("auto:{cluster_id}:{slot}")
    }

    /// The first automatic backup, taken when a policy is enabled outside its window: one
    /// per day however often the policy is toggled.
    pub fn auto_enabled(cluster_id: &str, day: NaiveDate) -> String {
        format!("auto:{cluster_id}:enabled:{day}")
    }

    /// The copy of a backup into another region.
    pub fn copy(backup_id: &str, region_id: &str) -> String {
        format!("copy:{backup_id}:{region_id}")
    }

    /// The removal of what an unfinished backup left in storage that was down as it ended.
    pub fn purge(backup_id: &str) -> String {
        format!("purge:{backup_id}")
    }
}

/// Attempts a purge job gets at least: it runs because the storage was down, and keeps
/// trying (with the queue's backoff, capped at `jobs.backoff_max_ms`) long after a backup job
/// would give up, so leftovers go once the storage is back.
pub const PURGE_MIN_ATTEMPTS: i32 = 100;

/// A region a backup is copied to once AVAILABLE (`crossRegionCopies`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CopyRequest {
    pub region_id: String,
    /// Days the copy is kept (automatic backups); manual backups' copies stay until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 30)]
    pub retention_days: Option<i64>,
}

/// Copy targets, checked: known regions, not the backup's own, each once.
pub fn validate_copies(
    copies: &[CopyRequest],
    own_region: &str,
    known: &[&str],
) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, copy) in copies.iter().enumerate() {
        if !known.contains(&copy.region_id.as_str()) {
            return Err(format!(
                "crossRegionCopies[{i}].regionId '{}' is not a configured region; use one of: {}",
                copy.region_id,
                known.join(", ")
            ));
        }
        if copy.region_id == own_region {
            return Err(format!(
                "crossRegionCopies[{i}].regionId '{own_region}' is the cluster's own region, \
                 where the backup is stored anyway"
            ));
        }
        if !seen.insert(&copy.region_id) {
            return Err(format!(
                "crossRegionCopies names region '{}' twice",
                copy.region_id
            ));
        }
        if let Some(days) = copy.retention_days {
            RetentionDays::parse(&format!("crossRegionCopies[{i}].retentionDays"), days)?;
        }
    }
    Ok(())
}

/// Collections of one database a COLLECTION backup asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbCollections {
    #[serde(default = "default_db")]
    pub db_name: String,
    pub collection_names: Vec<String>,
}

pub fn default_db() -> String {
    "default".to_owned()
}

/// The selection, checked: no empty list, no duplicate, every name non-empty.
pub fn validate_selection(selection: &[DbCollections]) -> Result<(), String> {
    if selection.is_empty() {
        return Err(
            "dbCollections is empty: a COLLECTION backup names at least one collection, \
                    e.g. [{\"dbName\": \"default\", \"collectionNames\": [\"books\"]}]"
                .to_owned(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, db) in selection.iter().enumerate() {
        if db.db_name.trim().is_empty() {
            return Err(format!(
                "dbCollections[{i}].dbName is empty; name a database"
            ));
        }
        if db.collection_names.is_empty() {
            return Err(format!(
                "dbCollections[{i}].collectionNames is empty; name at least one collection of database '{}'",
                db.db_name
            ));
        }
        for name in &db.collection_names {
            if name.trim().is_empty() {
                return Err(format!(
                    "dbCollections[{i}].collectionNames has an empty name"
                ));
            }
            if !seen.insert((db.db_name.as_str(), name.as_str())) {
                return Err(format!(
                    "dbCollections names {}.{name} twice; name each collection once",
                    db.db_name
                ));
            }
        }
    }
    Ok(())
}

/// `<clusterName>_backup<N>`, N counting the cluster's backups from 1.
pub fn default_backup_name(cluster_name: &str, sequence: i64) -> String {
    format!("{cluster_name}_backup{sequence}")
}

/// Where a backup's objects live in its region's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLayout {
    prefix: String,
}

impl BackupLayout {
    pub fn new(project_id: &str, cluster_id: &str, backup_id: &str) -> BackupLayout {
        BackupLayout {
            prefix: format!("backups/{project_id}/{cluster_id}/{backup_id}/"),
        }
    }

    /// Every object of the backup starts with this (ends in `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Written last: a backup without it is not AVAILABLE.
    pub fn manifest(&self) -> String {
        format!("{}manifest.json", self.prefix)
    }

    pub fn meta(&self, db_name: &str, collection_name: &str) -> String {
        format!("{}meta/{db_name}/{collection_name}.json", self.prefix)
    }

    /// A binlog's key in the backup, from its key relative to the Milvus storage root
    /// (`insert_log/...` or `delta_log/...`).
    pub fn binlog(&self, source_key: &str) -> String {
        format!("{}binlogs/{source_key}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_text_is_named() {
        for status in [
            BackupStatus::Creating,
            BackupStatus::Available,
            BackupStatus::Failed,
            BackupStatus::Canceled,
            BackupStatus::Deleting,
        ] {
            assert_eq!(status.as_str().parse::<BackupStatus>(), Ok(status));
        }
        let err = "DONE".parse::<BackupType>().unwrap_err();
        assert!(err.contains("CLUSTER, COLLECTION"), "{err}");
    }

    #[test]
    fn selections_must_name_each_collection_once() {
        let ok = vec![DbCollections {
            db_name: "default".into(),
            collection_names: vec!["a".into(), "b".into()],
        }];
        assert!(validate_selection(&ok).is_ok());
        assert!(validate_selection(&[]).is_err());
        let twice = vec![DbCollections {
            db_name: "default".into(),
            collection_names: vec!["a".into(), "a".into()],
        }];
        assert!(validate_selection(&twice).unwrap_err().contains("twice"));
        let empty = vec![DbCollections {
            db_name: "db1".into(),
            collection_names: vec![],
        }];
        assert!(validate_selection(&empty).unwrap_err().contains("db1"));
    }

    #[test]
    fn layout_follows_the_architecture() {
        let layout = BackupLayout::new("proj-1", "in01-2", "backup1_3");
        assert_eq!(
            layout.manifest(),
            "backups/proj-1/in01-2/backup1_3/manifest.json"
        );
        assert_eq!(
            layout.meta("db", "c"),
            "backups/proj-1/in01-2/backup1_3/meta/db/c.json"
        );
        assert_eq!(
            layout.binlog("insert_log/1/2/3/100/4"),
            "backups/proj-1/in01-2/backup1_3/binlogs/insert_log/1/2/3/100/4"
        );
        assert_eq!(default_backup_name("prod", 4), "prod_backup4");
    }
}
