//! Typed configuration, layered: embedded defaults < TOML files < `BACKSTOP_*` environment
//! variables (and `DATABASE_URL`). With no file and no variable the service runs on the embedded
//! default: SQLite and local directories under `./data`, one region `local`.
//!
//! Environment keys map to the TOML path with `__` between levels, lower-cased:
//! `BACKSTOP_SERVER__LISTEN=0.0.0.0:8080` sets `server.listen`. A value that parses as TOML
//! (a number, a boolean, an inline array) is taken as such; anything else is a string.
//! `BACKSTOP_CONFIG` (config files) and `BACKSTOP_TEST_*` (test suite) are not config keys.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// The compiled-in defaults; `config/example.toml` documents every key beside them.
const DEFAULTS: &str = r#"
data_dir = "./data"

[server]
listen = "127.0.0.1:8080"
body_limit_bytes = 1048576
rate_limit_per_second = 20
rate_limit_burst = 20
failed_auth_per_second = 1
failed_auth_burst = 30
shutdown_grace_secs = 30

[database]
max_connections = 10

[secrets]

[milvus]
probe_timeout_ms = 2000
status_cache_ms = 5000
request_timeout_secs = 60
local_storage_roots = []

[outbound]
allow = []
deny = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128"]

[jobs]
enabled = true
workers = 4
lease_ms = 30000
poll_interval_ms = 2000
max_attempts = 5
backoff_base_ms = 1000
backoff_max_ms = 300000
shutdown_grace_ms = 20000

[backup]
copy_parallelism = 8
describe_parallelism = 8
flush_timeout_secs = 600

[scheduler]
enabled = true
tick_secs = 30

[restore]
shards_per_cu = 1
max_shards = 16
import_timeout_secs = 3600
import_parallelism = 4

[[regions]]
id = "local"
cloud_provider = "local"
price_per_gb_month = 0.0
storage = { type = "local" }
"#;

/// `BACKSTOP_*` variables of the command-line client (`src/client/`), which are not config
/// keys: `BACKSTOP_URL`, `BACKSTOP_API_KEY`, and the secrets `clusters register` may read.
pub const CLIENT_VARIABLES: &[&str] = &[
    "URL",
    "API_KEY",
    "MILVUS_TOKEN",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its SQLite file, encryption key and region directories.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub secrets: SecretsConfig,
    pub milvus: MilvusConfig,
    /// Where the service may connect for a cluster (its Milvus and its S3 endpoint).
    pub outbound: crate::outbound::OutboundPolicy,
    pub jobs: JobsConfig,
    pub backup: BackupConfig,
    pub restore: RestoreConfig,
    pub scheduler: SchedulerConfig,
    pub regions: Vec<RegionConfig>,
    /// Test barriers (only in `test-hooks` builds; never read from TOML).
    #[serde(skip)]
    pub test_hooks: crate::test_hooks::TestHooks,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    pub body_limit_bytes: usize,
    /// Sustained requests per second per API key and route.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Failed authentications per client address: sustained per second, and at once. An
    /// address past them gets 429 before its key is looked up.
    pub failed_auth_per_second: u32,
    pub failed_auth_burst: u32,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...`; unset means `sqlite://<data_dir>/backstop.db`.
    pub url: Option<String>,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Base64 of 32 random bytes; encrypts cluster credentials at rest. Unset: a key is generated
    /// once and kept in `<data_dir>/encryption.key`. Replicas sharing a database must share it.
    pub encryption_key: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MilvusConfig {
    /// How long a status probe (`GetVersion`) may take before the cluster counts as UNREACHABLE.
    pub probe_timeout_ms: u64,
    /// How long a cluster list reuses a status probed before (0: probe on every list). Older
    /// statuses are still served at once while one probe refreshes them.
    pub status_cache_ms: u64,
    pub request_timeout_secs: u64,
    /// Directories a cluster's local `storage.path` must lie under (links resolved). Empty:
    /// any directory the service can read that is empty or holds Milvus data.
    pub local_storage_roots: Vec<PathBuf>,
}

/// The job queue of this process. Durations in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Run workers in this process (false: an API-only replica).
    pub enabled: bool,
    /// Jobs this process runs at once.
    pub workers: usize,
    /// A running job's lease; renewed every third of it. A job whose process died is taken
    /// again by another process after at most this long.
    pub lease_ms: u64,
    /// Fallback poll when no wake-up arrives (LISTEN/NOTIFY or in-process).
    pub poll_interval_ms: u64,
    /// Attempts before a job that keeps failing is FAILED.
    pub max_attempts: i32,
    /// Retry delay: base * 2^(attempt-1), capped, with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// On shutdown, how long running jobs get to reach a step boundary.
    pub shutdown_grace_ms: u64,
}

/// How a backup job uses the cluster and the storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Binlog files copied at once by one backup job (across its collections and segments).
    pub copy_parallelism: usize,
    /// Milvus describe / list-segments calls in flight at once (keeps within Milvus's rate
    /// limits on clusters with thousands of collections).
    pub describe_parallelism: usize,
    /// How long a backup waits for Milvus to persist the flushed segments.
    pub flush_timeout_secs: u64,
}

/// Automatic backups and retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Run the scheduler and retention sweeper in this process (safe in every replica).
    pub enabled: bool,
    /// How often it looks for open windows and expired backups.
    pub tick_secs: u64,
}

/// How restores fit a backup into its destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// Shards a destination allows per CU of its `cuSize` (at least 1 in all)...
    pub shards_per_cu: u32,
    /// ...and at most this many; a backup with more shards is restored with the allowance.
    pub max_shards: u32,
    /// How long one Import (one backed-up segment) may take.
    pub import_timeout_secs: u64,
    /// Imports a restore job keeps in flight at once (one per backed-up segment).
    pub import_parallelism: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub id: String,
    pub cloud_provider: String,
    /// Storage price used for the usage report: per GB and month (30 days).
    pub price_per_gb_month: f64,
    pub storage: StorageConfig,
}

/// Where a region keeps its backups.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// A local directory; unset path means `<data_dir>/regions/<regionId>`.
    Local {
        path: Option<PathBuf>,
    },
    S3(S3Config),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Custom endpoint (MinIO, SeaweedFS, ...); unset means AWS.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_s3_region")]
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    #[serde(default = "default_true")]
    pub force_path_style: bool,
    /// Part size of multipart uploads in MiB (5..=5120).
    #[serde(default = "default_part_size_mib")]
    pub part_size_mib: u64,
    /// Parts of one upload in flight at once.
    #[serde(default = "default_parts_in_flight")]
    pub parts_in_flight: usize,
}

fn default_s3_region() -> String {
    "us-east-1".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_part_size_mib() -> u64 {
    16
}
fn default_parts_in_flight() -> usize {
    4
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then each file in order, then the process environment.
    pub fn load(files: &[PathBuf]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(files, &env)
    }

    /// The embedded default alone, as `serve` uses with no config at all.
    pub fn embedded_default() -> Config {
        Self::load_from(&[], &[]).expect("embedded defaults are valid")
    }

    pub fn load_from(files: &[PathBuf], env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut merged: toml::Table = DEFAULTS.parse().expect("embedded defaults parse");
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source,
            })?;
            merge(&mut merged, table);
        }
        for (key, value) in env {
            if key == "DATABASE_URL" {
                set_path(
                    &mut merged,
                    &["database", "url"],
                    toml::Value::String(value.clone()),
                );
            } else if let Some(rest) = key.strip_prefix("BACKSTOP_") {
                // BACKSTOP_CONFIG names files; BACKSTOP_TEST_* belong to the test suite; the
                // command-line client's variables may be set in the shell that starts serve.
                if rest == "CONFIG" || rest.starts_with("TEST_") || CLIENT_VARIABLES.contains(&rest)
                {
                    continue;
                }
                let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                set_path(&mut merged, &path, parse_env_value(value));
            }
        }
        let mut config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.test_hooks =
            crate::test_hooks::TestHooks::from_env(env).map_err(ConfigError::Invalid)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.regions.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one [[regions]] entry is required".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for region in &self.regions {
            crate::domain::names::validate_region_id(&region.id)
                .map_err(|e| ConfigError::Invalid(format!("regions: {e}")))?;
            if !seen.insert(region.id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "region id '{}' appears twice",
                    region.id
                )));
            }
            if let StorageConfig::S3(s3) = &region.storage {
                if !(5..=5120).contains(&s3.part_size_mib) {
                    return Err(ConfigError::Invalid(format!(
                        "region '{}': part_size_mib must be 5..=5120",
                        region.id
                    )));
                }
            }
        }
        if self.jobs.workers == 0 || self.jobs.max_attempts < 1 || self.jobs.lease_ms < 300 {
            return Err(ConfigError::Invalid(
                "jobs.workers and jobs.max_attempts must be at least 1 and jobs.lease_ms at least 300".into(),
            ));
        }
        if self.server.rate_limit_per_second == 0 || self.server.rate_limit_burst == 0 {
            return Err(ConfigError::Invalid(
                "server.rate_limit_per_second and server.rate_limit_burst must be at least 1"
                    .into(),
            ));
        }
        if self.server.failed_auth_per_second == 0 || self.server.failed_auth_burst == 0 {
            return Err(ConfigError::Invalid(
                "server.failed_auth_per_second and server.failed_auth_burst must be at least 1"
                    .into(),
            ));
        }
        if self.backup.copy_parallelism == 0 || self.backup.describe_parallelism == 0 {
            return Err(ConfigError::Invalid(
                "backup.copy_parallelism and backup.describe_parallelism must be at least 1".into(),
            ));
        }
        if self.restore.import_parallelism == 0 {
            return Err(ConfigError::Invalid(
                "restore.import_parallelism must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("backstop.db").display()
            ),
        }
    }

    /// The directory a local region writes into.
    pub fn local_region_path(&self, region_id: &str, configured: Option<&Path>) -> PathBuf {
        configured
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.data_dir.join("regions").join(region_id))
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert(last.to_string(), value);
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn embedded_default_is_sqlite_under_data() {
        let config = Config::embedded_default();
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(
            config.database_url(),
            "sqlite://./data/backstop.db?mode=rwc"
        );
        assert_eq!(config.regions.len(), 1);
        assert_eq!(config.regions[0].id, "local");
        assert_eq!(
            config.local_region_path("local", None),
            PathBuf::from("./data/regions/local")
        );
    }

    #[test]
    fn the_documented_example_matches_the_embedded_defaults() {
        let example = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"));
        let documented = Config::load_from(&[example], &[]).unwrap();
        let embedded = Config::embedded_default();
        assert_eq!(format!("{documented:?}"), format!("{embedded:?}"));
    }

    #[test]
    fn environment_overrides_files_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"0.0.0.0:1\"\nrate_limit_burst = 5\n",
        )
        .unwrap();
        let config = Config::load_from(
            &[file],
            &env(&[
                ("BACKSTOP_SERVER__LISTEN", "0.0.0.0:2"),
                ("DATABASE_URL", "postgres://x@h/db"),
                ("BACKSTOP_MILVUS__PROBE_TIMEOUT_MS", "750"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:2");
        assert_eq!(config.server.rate_limit_burst, 5);
        assert_eq!(config.server.rate_limit_per_second, 20);
        assert_eq!(config.database_url(), "postgres://x@h/db");
        assert_eq!(config.milvus.probe_timeout_ms, 750);
    }

    #[test]
    fn regions_can_come_from_one_environment_variable() {
        let config = Config::load_from(
            &[],
            &env(&[(
                "BACKSTOP_REGIONS",
                r#"[{id = "eu-1", cloud_provider = "aws", price_per_gb_month = 0.02, storage = {type = "s3", bucket = "b", access_key_id = "a", secret_access_key = "s"}}]"#,
            )]),
        )
        .unwrap();
        assert_eq!(config.regions[0].id, "eu-1");
        let StorageConfig::S3(s3) = &config.regions[0].storage else {
            panic!("expected s3")
        };
        assert_eq!(s3.part_size_mib, 16);
        // The secret never shows in Debug output.
        assert!(!format!("{config:?}").contains("secret_access_key: \"s\""));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
        let err = Config::load_from(&[], &env(&[("BACKSTOP_SERVER__LISTN", "x")])).unwrap_err();
        assert!(Config::load_from(&[], &env(&[("BACKSTOP_TEST_S3_ENDPOINT", "x")])).is_ok());
        // The client's variables, exported in the shell that starts the service.
        assert!(Config::load_from(
            &[],
            &env(&[
                ("BACKSTOP_API_KEY", "bsk_x"),
                ("BACKSTOP_URL", "http://h:1")
            ])
        )
        .is_ok());
        assert!(err.to_string().contains("listn"), "{err}");
        let err = Config::load_from(&[], &env(&[("BACKSTOP_SERVER__RATE_LIMIT_BURST", "0")]))
            .unwrap_err();
        assert!(err.to_string().contains("rate_limit_burst"), "{err}");
    }
}
