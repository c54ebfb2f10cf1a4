//! Backstop: a backup control plane for Milvus clusters.
//!
//! `Application::build` wires config, store, regions and the HTTP layer around a listener the
//! caller binds (tests bind port 0); `main.rs` only parses the command line.

pub mod auth;
pub mod automatic;
pub mod backup;
pub mod client;
pub mod clusters;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod milvus;
pub mod objects;
pub mod outbound;
pub mod regions;
pub mod restore;
pub mod service;
pub mod store;
pub mod test_hooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::{hash_api_key, SecretBox};
use crate::domain::access::OrgRole;
use crate::domain::ids;
use crate::http::{AppState, RateLimiter};
use crate::jobs::{Jobs, Registry};
use crate::metrics::Metrics;
use crate::regions::Regions;
use crate::service::Services;
use crate::store::{ApiKey, Store};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] crypto::CryptoError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    bootstrap_key: Option<String>,
}

impl Application {
    /// Connects the store (migrating it), syncs regions, and creates the first admin key when
    /// the database has never had one.
    pub async fn build(config: Config, listener: TcpListener) -> Result<Application, StartupError> {
        Self::build_with(config, listener, Registry::new()).await
    }

    /// `build` with extra job handlers beside the built-in ones (tests register their own).
    pub async fn build_with(
        config: Config,
        listener: TcpListener,
        extra: Registry,
    ) -> Result<Application, StartupError> {
        let services = Services::connect(config).await?;
        let bootstrap_key = bootstrap_admin_key(&services.store).await?;
        let metrics = Arc::new(Metrics::new());
        let registry = restore::register(backup::register(extra, &services), &services);
        let config = services.config.clone();
        let jobs = Jobs::new(services.store.clone(), registry, config.jobs.clone())
            .with_metrics(metrics.clone());
        let state = AppState {
            scheduler: automatic::Scheduler::new(services.clone()),
            jobs,
            shutdown: tokio_util::sync::CancellationToken::new(),
            rate_limiter: Arc::new(RateLimiter::new(
                config.server.rate_limit_per_second,
                config.server.rate_limit_burst,
            )),
            // A request from an address that used these up is refused before its key is
            // looked up, so guessing keys costs the database nothing; valid keys take none.
            auth_failures: Arc::new(RateLimiter::new(
                config.server.failed_auth_per_second,
                config.server.failed_auth_burst,
            )),
            store: services.store.clone(),
            secrets: services.secrets.clone(),
            regions: services.regions.clone(),
            config,
            services,
            metrics,
        };
        Ok(Application {
            listener,
            state,
            bootstrap_key,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The secret of the org OWNER key created on this start, if this start created it.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (and runs job workers, when enabled) until `shutdown` completes; then stops
    /// claiming jobs, lets running jobs reach a step boundary and in-flight requests finish
    /// (each bounded by its grace period), releases leases and closes the database pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs);
        let store = self.state.store.clone();
        let stopping = self.state.shutdown.clone();
        let workers = self
            .state
            .config
            .jobs
            .enabled
            .then(|| self.state.jobs.start_workers(stopping.clone()));
        let scheduler = self.state.config.scheduler.enabled.then(|| {
            let every = Duration::from_secs(self.state.config.scheduler.tick_secs.max(1));
            tokio::spawn(self.state.scheduler.clone().run(every, stopping.clone()))
        });
        let router = http::router(self.state);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The client's address rate-limits failed authentications.
        let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = axum::serve(self.listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            // Event streams and workers watch this token.
            stopping.cancel();
            let _ = stop_tx.send(true);
        });
        let mut stopped = stop_rx.clone();
        let serving = tokio::spawn(async move { server.await });
        let result = tokio::select! {
            joined = serving => joined.map_err(std::io::Error::other)?,
            _ = async {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping anyway");
                Ok(())
            }
        };
        if let Some(workers) = workers {
            let _ = workers.await;
        }
        if let Some(scheduler) = scheduler {
            let _ = scheduler.await;
        }
        store.close().await;
        result
    }
}

impl Services {
    /// What every process of the service shares: the store (connected and migrated), the key
    /// that opens cluster credentials, and the regions (synced into the store).
    pub async fn connect(config: Config) -> Result<Services, StartupError> {
        let store = Store::connect(&config.database_url(), config.database.max_connections).await?;
        let secrets = SecretBox::load_or_create(
            config.secrets.encryption_key.as_ref(),
            &config.data_dir.join("encryption.key"),
        )?;
        let regions = Regions::from_config(&config);
        let region_rows: Vec<_> = regions.iter().map(|r| r.info.clone()).collect();
        store.sync_regions(&region_rows, Utc::now()).await?;
        Ok(Services {
            store,
            regions: Arc::new(regions),
            secrets,
            config: Arc::new(config),
            statuses: Default::default(),
        })
    }
}

/// A new org OWNER key named `name`, and its secret (shown once, stored only as a hash).
fn new_owner_key(name: &str) -> (ApiKey, String) {
    let secret = ids::new_api_key_secret();
    let key = ApiKey {
        id: ids::new_api_key_id(),
        name: name.to_owned(),
        key_hash: hash_api_key(&secret),
        org_role: OrgRole::Owner,
        project_roles: Vec::new(),
        created_at: Utc::now(),
    };
    (key, secret)
}

async fn bootstrap_admin_key(store: &Store) -> Result<Option<String>, StartupError> {
    let (key, secret) = new_owner_key("bootstrap-admin");
    Ok(store.bootstrap_api_key(&key).await?.then_some(secret))
}

/// Recovery for an instance whose every OWNER key is lost: run on the server, against the
/// configured database, it records a new OWNER key and returns its secret.
pub async fn mint_owner_key(store: &Store, name: &str) -> Result<String, StartupError> {
    let (key, secret) = new_owner_key(name);
    store.insert_api_key(&key).await?;
    tracing::info!(api_key_id = %key.id, "OWNER API key created from the command line");
    Ok(secret)
}

/// Installs SIGINT and SIGTERM handlers now (so a signal that arrives while the service
/// starts is not lost) and returns a future that resolves on the first of them.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutdown signal received");
    })
}
