//! Shared fixtures: a fresh database per test (a new Postgres database, or a SQLite file), the
//! service on port 0, the shared S3 server and Milvus started by `scripts/test`.
//!
//! A required service that is missing fails the test with a message saying how to start it;
//! nothing is skipped silently.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backstop::config::{Config, RegionConfig, S3Config, StorageConfig};
use backstop::objects::S3Store;
use backstop::Application;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$name(Backend)` as two tests, `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )*
    };
}

pub const HOW_TO_START: &str =
    "run the suite with scripts/test, which starts Postgres, SeaweedFS and Milvus";

pub fn postgres_admin_url() -> String {
    std::env::var("BACKSTOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test. Postgres databases are named `bs_test_*`;
/// `scripts/test` drops leftovers of earlier runs.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
}

pub async fn test_db(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("backstop.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("Postgres is not reachable at {admin} ({e}); {HOW_TO_START}, or start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` and set BACKSTOP_TEST_DATABASE_URL")
            });
            let name = format!("bs_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    };
    TestDb { url, dir }
}

pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::embedded_default();
    config.data_dir = db.dir.path().join("data");
    config.database.url = Some(db.url.clone());
    config.database.max_connections = 5;
    config.server.rate_limit_per_second = 1000;
    config.server.rate_limit_burst = 1000;
    // The role matrix tries an unknown key on every route from one address.
    config.server.failed_auth_burst = 1000;
    config.server.shutdown_grace_secs = 2;
    config.milvus.probe_timeout_ms = 1500;
    config.milvus.request_timeout_secs = 10;
    // Tests drive the scheduler with their own clock (`Scheduler::tick`).
    config.scheduler.enabled = false;
    // Short enough that crash and retry tests finish quickly.
    config.jobs.lease_ms = 1500;
    config.jobs.poll_interval_ms = 200;
    config.jobs.backoff_base_ms = 20;
    config.jobs.backoff_max_ms = 200;
    config.jobs.shutdown_grace_ms = 3000;
    config
}

/// The service, running in this process on a random port.
pub struct TestApp {
    pub base: String,
    pub admin_key: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_full(backend, tweak, backstop::jobs::Registry::new()).await
    }

    /// The service with the job handlers given (test job types).
    pub async fn spawn_full(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
        registry: backstop::jobs::Registry,
    ) -> TestApp {
        // The service's log goes to the test's output, shown when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn,backstop=info".into()),
            )
            .try_init();
        let db = test_db(backend).await;
        let mut config = test_config(&db);
        tweak(&mut config);
        Self::start(db, config, registry, None).await
    }

    /// Another process of the service on this one's database (a replica, or the service
    /// restarted with other settings), answering on its own address to this one's admin key.
    pub async fn spawn_beside(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&self.db);
        tweak(&mut config);
        // The first app owns the database and its directory.
        let db = TestDb {
            url: self.db.url.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let registry = backstop::jobs::Registry::new();
        Self::start(db, config, registry, Some(self.admin_key.clone())).await
    }

    async fn start(
        db: TestDb,
        config: Config,
        registry: backstop::jobs::Registry,
        admin_key: Option<String>,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Application::build_with(config, listener, registry)
            .await
            .expect("app builds");
        let base = format!("http://{}", app.local_addr().unwrap());
        let admin_key = admin_key.unwrap_or_else(|| {
            app.bootstrap_key()
                .expect("a fresh database gets a bootstrap key")
                .to_owned()
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            admin_key,
            client: reqwest::Client::new(),
            db,
            stop: Some(stop),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{path}: response is not JSON: {text}"));
        (status, json)
    }

    /// GET/POST/DELETE as the bootstrap OWNER, asserting success and returning `data`.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self
            .call(method.clone(), path, Some(&self.admin_key), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {json}");
        assert_eq!(json["code"], 0, "{json}");
        json["data"].clone()
    }

    /// Every collection of a cluster, read page by page (100 at a time).
    pub async fn collections(&self, cluster: &str) -> Vec<Value> {
        let mut all = Vec::new();
        for page in 1.. {
            let listed = self
                .admin(
                    Method::GET,
                    &format!("/v2/clusters/{cluster}/collections?pageSize=100&currentPage={page}"),
                    None,
                )
                .await;
            let items = listed["collections"]
                .as_array()
                .expect("collections")
                .clone();
            all.extend(items);
            if all.len() as u64 >= listed["count"].as_u64().expect("count") {
                return all;
            }
        }
        unreachable!()
    }

    pub async fn create_project(&self, name: &str) -> String {
        let data = self
            .admin(
                Method::POST,
                "/v2/projects",
                Some(serde_json::json!({ "projectName": name })),
            )
            .await;
        data["projectId"].as_str().unwrap().to_owned()
    }

    /// A new key with `role` in `project_id` (MEMBER org role).
    pub async fn create_key(&self, project_id: &str, role: &str) -> String {
        let body = serde_json::json!({
            "name": format!("k-{role}").replace('.', "-"),
            "projectRoles": [{ "projectId": project_id, "role": role }]
        });
        let data = self.admin(Method::POST, "/v2/apiKeys", Some(body)).await;
        data["apiKey"].as_str().unwrap().to_owned()
    }

    /// Registers a cluster pointing at `uri` with local storage `path`.
    pub async fn register_cluster(
        &self,
        project_id: &str,
        name: &str,
        uri: &str,
        path: &str,
    ) -> String {
        let body = serde_json::json!({
            "clusterName": name, "projectId": project_id, "regionId": "local",
            "plan": "Dedicated", "cuSize": 2,
            "milvus": { "uri": uri },
            "storage": { "type": "local", "path": path }
        });
        let data = self.admin(Method::POST, "/v2/clusters", Some(body)).await;
        data["clusterId"].as_str().unwrap().to_owned()
    }

    /// Registers a cluster in `region` with the `milvus` and `storage` objects given.
    pub async fn register_in(
        &self,
        project_id: &str,
        name: &str,
        region: &str,
        (milvus, storage): (Value, Value),
    ) -> String {
        let body = serde_json::json!({
            "clusterName": name, "projectId": project_id, "regionId": region,
            "plan": "Dedicated", "cuSize": 2, "milvus": milvus, "storage": storage
        });
        let data = self.admin(Method::POST, "/v2/clusters", Some(body)).await;
        data["clusterId"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The shared Milvus started by `scripts/test`.
pub struct SharedMilvus {
    pub uri: String,
    pub storage: String,
}

/// The run's production-shaped Milvus: binlogs in the shared S3 server's bucket under a root
/// path, authorization on.
pub struct S3Milvus {
    pub uri: String,
    pub bucket: String,
    pub root_path: String,
    /// `user:password` of its root user.
    pub token: String,
}

pub fn shared_s3_milvus() -> &'static S3Milvus {
    static MILVUS: OnceLock<S3Milvus> = OnceLock::new();
    MILVUS.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: this test needs the S3-backed Milvus with authorization on; {HOW_TO_START}")
            })
        };
        S3Milvus {
            uri: var("BACKSTOP_TEST_MILVUS_S3_URI"),
            bucket: var("BACKSTOP_TEST_MILVUS_S3_BUCKET"),
            root_path: var("BACKSTOP_TEST_MILVUS_S3_ROOT"),
            token: var("BACKSTOP_TEST_MILVUS_S3_TOKEN"),
        }
    })
}

impl S3Milvus {
    /// Its storage and credentials as `POST /v2/clusters` takes them.
    pub fn registration(&self) -> (Value, Value) {
        let s3 = shared_s3();
        (
            serde_json::json!({"uri": self.uri, "token": self.token}),
            serde_json::json!({"type": "s3", "endpoint": s3.endpoint, "bucket": self.bucket,
                "rootPath": self.root_path, "accessKeyId": s3.access_key,
                "secretAccessKey": s3.secret_key}),
        )
    }

    /// Fails the test if restore job `job_id` left staging objects in the bucket.
    pub async fn assert_no_staging(&self, job_id: &str) {
        let staged = self
            .keys_under(&format!("backstop-restore/{job_id}/"))
            .await;
        assert!(staged.is_empty(), "staging left in the bucket: {staged:?}");
    }

    /// Objects under `prefix` (relative to its root path) in its bucket.
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let store = S3Store::new(&shared_s3_config(&self.bucket, &self.root_path));
        backstop::objects::list_all(&store, prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect()
    }
}

pub fn shared_milvus() -> &'static SharedMilvus {
    static MILVUS: OnceLock<SharedMilvus> = OnceLock::new();
    MILVUS.get_or_init(|| {
        let uri = std::env::var("BACKSTOP_TEST_MILVUS_URI").unwrap_or_else(|_| {
            panic!("BACKSTOP_TEST_MILVUS_URI is not set: this test needs a real Milvus; {HOW_TO_START}, or start one with `scripts/milvus-instance start DIR` and export BACKSTOP_TEST_MILVUS_URI and BACKSTOP_TEST_MILVUS_STORAGE")
        });
        let storage = std::env::var("BACKSTOP_TEST_MILVUS_STORAGE")
            .expect("BACKSTOP_TEST_MILVUS_STORAGE is set beside BACKSTOP_TEST_MILVUS_URI");
        SharedMilvus { uri, storage }
    })
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn milvus_python() -> PathBuf {
    python_of(&milvus_venv("BACKSTOP_TEST_MILVUS_VENV", "venv-milvus"))
}

/// The venv of Milvus 2.2.16 (`scripts/requirements-milvus-2.2.txt`; scripts/test makes it).
pub fn milvus_22_venv() -> PathBuf {
    milvus_venv("BACKSTOP_TEST_MILVUS_22_VENV", "venv-milvus-2.2")
}

fn milvus_venv(variable: &str, default: &str) -> PathBuf {
    std::env::var(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/backstop")
                .join(default)
        })
}

fn python_of(venv: &Path) -> PathBuf {
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: {HOW_TO_START}",
        python.display()
    );
    python
}

/// Runs `tests/support/milvus_seed.py` against `uri`.
pub async fn seed(uri: &str, args: &[&str]) {
    seed_output(uri, args).await;
}

/// `seed`, returning what the script printed.
pub async fn seed_output(uri: &str, args: &[&str]) -> String {
    seed_as(uri, None, args).await
}

/// `seed_output` signed in with `token` (a Milvus with authorization on).
pub async fn seed_as(uri: &str, token: Option<&str>, args: &[&str]) -> String {
    let env: Vec<(&str, &str)> = token.map(|t| ("MILVUS_TOKEN", t)).into_iter().collect();
    seed_with(uri, &env, args).await
}

/// `seed_output` over TLS to a Milvus whose certificate `ca` signed.
pub async fn seed_tls(uri: &str, ca: &TestCa, args: &[&str]) -> String {
    let ca_file = ca.ca_file.to_str().expect("utf-8 path");
    seed_with(uri, &[("MILVUS_CA_PEM", ca_file)], args).await
}

/// `seed_output` with the pymilvus of Milvus 2.2 (for a [`PrivateMilvus::start_2_2`]).
pub async fn seed_2_2(uri: &str, args: &[&str]) -> String {
    seed_in(python_of(&milvus_22_venv()), uri, &[], args).await
}

async fn seed_with(uri: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    seed_in(milvus_python(), uri, env, args).await
}

async fn seed_in(python: PathBuf, uri: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(repo_root().join("tests/support/milvus_seed.py"))
        .arg(uri)
        .args(args)
        .envs(env.iter().copied());
    let output = command.output().await.expect("run milvus_seed.py");
    assert!(
        output.status.success(),
        "milvus_seed.py {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Milvus of the test's own (`scripts/milvus-instance`), for tests that stop it or need a
/// cluster no other test writes to. Stopped on drop.
///
/// One at a time per machine (a file lock held for the instance's life, so it holds across
/// test processes and runners): embedded Milvus instances starting together beside the shared
/// one were seen to never become ready on a 2-core machine.
pub struct PrivateMilvus {
    pub uri: String,
    pub storage: String,
    dir: TempDir,
    /// What it was started with, for `restart`.
    flags: Vec<String>,
    /// Environment of `scripts/milvus-instance` (another Milvus version's venv).
    env: Vec<(String, String)>,
    tls_ca_pem: Option<String>,
    _turn: std::fs::File,
}

impl PrivateMilvus {
    pub async fn start() -> PrivateMilvus {
        Self::start_with(&[]).await
    }

    /// A private Milvus started with extra `milvus-server` flags (e.g. authorization on).
    pub async fn start_with(flags: &[&str]) -> PrivateMilvus {
        Self::start_inner(flags, None, Vec::new()).await
    }

    /// A private Milvus 2.2.16 (the older server of the migration test).
    pub async fn start_2_2() -> PrivateMilvus {
        let venv = milvus_22_venv();
        let requirements = repo_root().join("scripts/requirements-milvus-2.2.txt");
        let env = vec![
            (
                "BACKSTOP_TEST_MILVUS_VENV".to_owned(),
                venv.display().to_string(),
            ),
            (
                "BACKSTOP_TEST_MILVUS_REQUIREMENTS".to_owned(),
                requirements.display().to_string(),
            ),
        ];
        Self::start_inner(&[], None, env).await
    }

    /// A private Milvus serving one-way TLS (`--tls-mode 1`) with a certificate `ca`
    /// signed; its `uri` is `https://127.0.0.1:PORT`.
    pub async fn start_tls(ca: &TestCa) -> PrivateMilvus {
        let (pem, key) = (ca.server_pem.to_str(), ca.server_key.to_str());
        let flags = ["--tls-mode", "1", "--server-pem-path", pem.unwrap()];
        let flags = [&flags[..], &["--server-key-path", key.unwrap()]].concat();
        Self::start_inner(&flags, Some(&ca.ca_pem), Vec::new()).await
    }

    async fn start_inner(
        flags: &[&str],
        tls_ca_pem: Option<&str>,
        env: Vec<(String, String)>,
    ) -> PrivateMilvus {
        let turn = private_milvus_turn().await;
        let dir = private_milvus_dir();
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let line = start_instance(dir.path(), &flags, &env).await;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                .to_owned()
        };
        let uri = field("uri");
        let uri = match tls_ca_pem {
            Some(_) => uri.replacen("http://", "https://", 1),
            None => uri,
        };
        let milvus = PrivateMilvus {
            uri,
            storage: field("storage"),
            dir,
            flags,
            env,
            tls_ca_pem: tls_ca_pem.map(str::to_owned),
            _turn: turn,
        };
        wait_serving(&milvus.uri, tls_ca_pem).await;
        milvus
    }

    /// Starts it again after `stop`, on the same data and address (a Milvus that went away
    /// and came back).
    pub async fn restart(&self) {
        let port = self
            .uri
            .rsplit(':')
            .next()
            .expect("uri with a port")
            .to_owned();
        let flags = [&self.flags[..], &["--proxy-port".to_owned(), port]].concat();
        start_instance(self.dir.path(), &flags, &self.env).await;
        wait_serving(&self.uri, self.tls_ca_pem.as_deref()).await;
    }

    pub fn stop(&self) -> bool {
        std::process::Command::new(repo_root().join("scripts/milvus-instance"))
            .arg("stop")
            .arg(self.dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

/// The turn of a test that starts Milvus instances of its own, held until dropped.
pub async fn private_milvus_turn() -> std::fs::File {
    tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("backstop-private-milvus.lock");
        let file = std::fs::File::create(&path).expect("create the private Milvus lock file");
        file.lock().expect("wait for the private Milvus lock");
        file
    })
    .await
    .unwrap()
}

/// A directory for a private instance: under the run's directory when scripts/test gives
/// one, so its clean-up stops instances whose test was killed before it could stop them.
pub fn private_milvus_dir() -> TempDir {
    let parent = std::env::var("BACKSTOP_TEST_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir())
        .join("private-milvus");
    std::fs::create_dir_all(&parent).expect("private Milvus parent dir");
    tempfile::tempdir_in(&parent).expect("temp dir")
}

/// `scripts/milvus-instance start DIR FLAGS...`; its line `uri=... storage=... pid=...`.
pub async fn start_instance(dir: &Path, flags: &[String], env: &[(String, String)]) -> String {
    let started = tokio::process::Command::new(repo_root().join("scripts/milvus-instance"))
        .arg("start")
        .arg(dir)
        .args(flags)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("run scripts/milvus-instance");
    assert!(
        started.status.success(),
        "scripts/milvus-instance start failed: {}; {HOW_TO_START}",
        String::from_utf8_lossy(&started.stderr)
    );
    String::from_utf8_lossy(&started.stdout).to_string()
}

/// Waits until the Milvus at `uri` serves gRPC (the wrapper's banner can come before the proxy
/// does on a busy machine); a Milvus with authorization on counts when it refuses no
/// credentials.
pub async fn wait_serving(uri: &str, tls_ca_pem: Option<&str>) {
    let client = backstop::milvus::MilvusClient::new(
        uri,
        None,
        tls_ca_pem,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let started = std::time::Instant::now();
    while let Err(e) = client.version().await.or_else(|e| match e {
        backstop::milvus::MilvusError::Unauthenticated { .. } => Ok(String::new()),
        e => Err(e),
    }) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "private Milvus at {uri} not serving after 90 s: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

impl Drop for PrivateMilvus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A certificate authority of the test's own and a server certificate it signed for
/// `localhost` and `127.0.0.1` (made with openssl).
pub struct TestCa {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub server_pem: PathBuf,
    pub server_key: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    pub fn generate() -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs (scripts/test installs it: apt-get install openssl)");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Backstop test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ]);
        TestCa {
            ca_pem: std::fs::read_to_string(path("ca.pem")).unwrap(),
            ca_file: path("ca.pem"),
            server_pem: path("server.pem"),
            server_key: path("server.key"),
            _dir: dir,
        }
    }
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The shared S3 server started by `scripts/test`.
pub struct SharedS3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

pub fn shared_s3() -> SharedS3 {
    let endpoint = std::env::var("BACKSTOP_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("BACKSTOP_TEST_S3_ENDPOINT is not set: this test needs a real S3 server; {HOW_TO_START} (SeaweedFS, see ../shared/notes/s3.md)")
    });
    SharedS3 {
        endpoint,
        access_key: std::env::var("BACKSTOP_TEST_S3_ACCESS_KEY")
            .unwrap_or_else(|_| "AKIDTEST".into()),
        secret_key: std::env::var("BACKSTOP_TEST_S3_SECRET_KEY")
            .unwrap_or_else(|_| "SECRETTEST".into()),
    }
}

/// A binary of `examples/`, at the plain path `cargo build --examples` writes (scripts/test runs it).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/suite-<hash> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .expect("target layout");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --examples` (scripts/test does)",
        path.display()
    );
    path
}

/// A Postgres server of the test's own, for tests that restart it. Runs as the `postgres`
/// user when the suite runs as root (Postgres refuses to run as root).
pub struct PrivatePostgres {
    pub url: String,
    dir: TempDir,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn bin_dir() -> PathBuf {
        let base = PathBuf::from("/usr/lib/postgresql");
        let mut versions: Vec<PathBuf> = std::fs::read_dir(&base)
            .unwrap_or_else(|_| {
                panic!(
                    "no {} : install Postgres (scripts/test does)",
                    base.display()
                )
            })
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().expect("a Postgres installation with initdb")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let as_root = running_as_root();
        let mut cmd = if as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        // pg_ctl leaves the server running with our stdio: capture nothing, or the call
        // would wait for the server to close pipes it holds forever. The server logs to a file.
        let status = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run Postgres tool");
        assert!(
            status.success(),
            "{} {args:?} failed ({status}); server log: {}",
            program.display(),
            std::fs::read_to_string(format!("{}.log", self.data())).unwrap_or_default()
        );
    }

    pub fn start() -> PrivatePostgres {
        let dir = tempfile::Builder::new()
            .prefix("bs-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        if running_as_root() {
            std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pg = PrivatePostgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            bin: Self::bin_dir(),
            dir,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            pg.dir.path().display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &format!("{data}.log"),
                "-w",
                "start",
            ],
        );
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Stops and starts the server (fast shutdown: open connections are cut).
    pub fn restart(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "restart"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut cmd = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Backs up collection `db`.`name` of `cluster` (a COLLECTION backup) and waits, up to
/// `limit`, for it to succeed; returns the backup's id.
pub async fn collection_backup(
    app: &TestApp,
    cluster: &str,
    db: &str,
    name: &str,
    limit: Duration,
) -> String {
    let created = app
        .admin(
            Method::POST,
            &format!("/v2/clusters/{cluster}/backups/create"),
            Some(serde_json::json!({"backupType": "COLLECTION",
                "dbCollections": [{"dbName": db, "collectionNames": [name]}]})),
        )
        .await;
    let job = wait_for_job_within(app, created["jobId"].as_str().unwrap(), limit).await;
    assert_eq!(job["status"], "SUCCESSFUL", "{job}");
    created["backupId"].as_str().unwrap().to_owned()
}

/// What a kill -9 in the middle of a keyed request leaves behind: its placeholder, unanswered,
/// with a lease nobody renews (ending at `lease_until`).
pub async fn die_mid_request(app: &TestApp, key: &str, lease_until: chrono::DateTime<chrono::Utc>) {
    const SQL: &str =
        "UPDATE idempotency_keys SET status_code = 0, response = '', lease_until = $1 \
                       WHERE idem_key = $2";
    let store = backstop::store::Store::connect(&app.db.url, 1)
        .await
        .unwrap();
    let updated = match store.pool() {
        backstop::store::Pool::Postgres(p) => sqlx::query(SQL)
            .bind(lease_until)
            .bind(key)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
        backstop::store::Pool::Sqlite(p) => sqlx::query(SQL)
            .bind(lease_until)
            .bind(key)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(updated, 1, "one record for key {key}");
}

/// Polls the job until it is final; panics with its last state after two minutes.
pub async fn wait_for_job(app: &TestApp, job_id: &str) -> Value {
    wait_for_job_within(app, job_id, Duration::from_secs(120)).await
}

/// `wait_for_job` for the suite's heaviest jobs (a thousand collections, a whole cluster's
/// restore), which share two cores with the rest of the suite: up to `limit`.
pub async fn wait_for_job_within(app: &TestApp, job_id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = app
            .admin(Method::GET, &format!("/v2/jobs/{job_id}"), None)
            .await;
        if matches!(
            job["status"].as_str(),
            Some("SUCCESSFUL" | "FAILED" | "CANCELED")
        ) {
            return job;
        }
        assert!(
            started.elapsed() < limit,
            "job {job_id} not final after {} s: {job}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The shared S3 server's `bucket`, keys under `prefix`, with the run's credentials.
pub fn shared_s3_config(bucket: &str, prefix: &str) -> S3Config {
    let s3 = shared_s3();
    S3Config {
        endpoint: Some(s3.endpoint.clone()),
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        region: "us-east-1".to_owned(),
        access_key_id: s3.access_key.clone(),
        secret_access_key: s3.secret_key.clone().into(),
        force_path_style: true,
        part_size_mib: 5,
        parts_in_flight: 2,
    }
}

pub async fn s3_region(id: &str) -> (RegionConfig, S3Store) {
    let config = shared_s3_config(&unique("region").replace('_', "-"), "backstop");
    let store = S3Store::new(&config);
    store.create_bucket_if_missing().await.unwrap();
    let region = RegionConfig {
        id: id.to_owned(),
        cloud_provider: "aws".to_owned(),
        price_per_gb_month: 0.02,
        storage: StorageConfig::S3(config),
    };
    (region, store)
}

/// Waits until `path` exists (a test barrier says it was reached); panics after a minute.
pub async fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
