//! A worker process with one demonstration job type, `STEPS`: the smallest complete use of the
//! handler interface, and the process the crash and shutdown tests kill.
//!
//! ```sh
//! cargo run --example job_worker -- <database-url> <effects-dir>
//! ```
//!
//! A `STEPS` job (payload `{"steps": N, "stepMillis": M}`) runs N steps of M ms each. Step i
//! appends one line to `<effects-dir>/<jobId>.log` unless its marker file exists, then saves
//! `{"done": i}` as the job's state: after a crash the job resumes at the next step and no
//! line is ever written twice.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use backstop::config::Config;
use backstop::jobs::{JobContext, JobError, JobHandler, Jobs, Registry};
use backstop::store::{Progress, Store};
use tokio_util::sync::CancellationToken;

struct Steps {
    effects: PathBuf,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepsPayload {
    steps: u32,
    step_millis: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StepsState {
    done: u32,
}

#[async_trait]
impl JobHandler for Steps {
    async fn run(&self, ctx: JobContext) -> Result<(), JobError> {
        let payload: StepsPayload = ctx.payload()?;
        let start = ctx.saved_state::<StepsState>().map_or(0, |s| s.done);
        let job_id = ctx.job().id.clone();
        let attempt = ctx.job().attempts;
        for step in start + 1..=payload.steps {
            ctx.checkpoint()?;
            tokio::time::sleep(Duration::from_millis(payload.step_millis)).await;
            let marker = self.effects.join(format!("{job_id}.step{step}"));
            if !marker.exists() {
                let mut log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.effects.join(format!("{job_id}.log")))
                    .map_err(|e| JobError::Retryable(e.to_string()))?;
                writeln!(log, "step {step} attempt {attempt}")
                    .map_err(|e| JobError::Retryable(e.to_string()))?;
                log.sync_all()
                    .map_err(|e| JobError::Retryable(e.to_string()))?;
                std::fs::write(&marker, b"").map_err(|e| JobError::Retryable(e.to_string()))?;
            }
            ctx.save_state(&StepsState { done: step }).await?;
            ctx.progress(Progress {
                percent: (step * 100 / payload.steps) as i32,
                step: Some(format!("step {step} of {}", payload.steps)),
                ..Progress::default()
            })
            .await?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(effects)) = (args.next(), args.next()) else {
        eprintln!("usage: job_worker <database-url> <effects-dir>");
        std::process::exit(2);
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut config = Config::load(&[]).expect("config");
    config.jobs.lease_ms = std::env::var("LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    config.jobs.poll_interval_ms = 100;
    let store = Store::connect(&url, 4).await.expect("database");
    let registry = Registry::new().register(
        "STEPS",
        Steps {
            effects: PathBuf::from(effects),
        },
    );
    let jobs = Jobs::new(store.clone(), registry, config.jobs.clone());
    let shutdown = CancellationToken::new();
    let signal = backstop::shutdown_signal().expect("signal handlers");
    let workers = jobs.start_workers(shutdown.clone());
    println!("ready");
    signal.await;
    shutdown.cancel();
    workers.await.expect("workers stop");
    store.close().await;
    eprintln!("job_worker stopped");
}
