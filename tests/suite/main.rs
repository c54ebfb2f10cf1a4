//! The whole integration suite in one binary (one link, shared fixtures). Needs Postgres,
//! SeaweedFS and Milvus: `scripts/test` starts them and runs this.

#[cfg(not(feature = "test-hooks"))]
compile_error!(
    "the suite holds jobs at test barriers: build it with `--features test-hooks` (scripts/test does)"
);

mod api;
mod automatic;
mod backups;
mod cli;
mod cli_client;
mod clusters;
mod console;
mod faults;
mod jobs;
mod objects;
mod rbac;
mod restore_control;
mod restores;
mod restores_s3;
mod scripts;
mod store;
mod store_backups;
mod support;
mod tls;
