//! The whole integration suite in one binary (one link, shared fixtures). Needs Postgres,
//! SeaweedFS and Milvus: `scripts/test` starts them and runs this.

mod api;
mod automatic;
mod backups;
mod cli;
mod clusters;
mod console;
mod jobs;
mod objects;
mod restores;
mod store;
mod support;
