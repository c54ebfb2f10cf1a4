//! The command-line client against the real server binary on the embedded default (SQLite,
//! local region) and the shared embedded Milvus: the same commands a cron job or an operator
//! at a terminal runs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{seed, shared_milvus, unique};

/// `backstop serve` in a directory of its own, with its first OWNER key.
struct Server {
    child: Child,
    url: String,
    key: String,
    dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server; `env` adds variables (test barriers).
    fn start(env: &[(&str, String)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_backstop"));
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("BACKSTOP_SERVER__LISTEN", "127.0.0.1:0")
            .env("BACKSTOP_SCHEDULER__ENABLED", "false")
            .env("BACKSTOP_JOBS__POLL_INTERVAL_MS", "200")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("BACKSTOP_TEST_BACKUP_PAUSE")
            // The client's own variables in the server's environment change nothing.
            .env("BACKSTOP_URL", "http://127.0.0.1:9")
            .env("BACKSTOP_API_KEY", "bsk_client_side_only")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start backstop serve");
        // The log is drained on a thread (a full pipe would stall the server).
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut key = None;
        let mut line = String::new();
        while key.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
            key = line
                .split_whitespace()
                .find(|w| w.starts_with("bsk_"))
                .map(str::to_owned);
            line.clear();
        }
        let key = key.expect("the first start prints a key");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let found = log.lock().unwrap().lines().find_map(|l| {
                l.contains("backstop listening")
                    .then(|| l.split("addr=").nth(1))
                    .flatten()
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            url: format!("http://{addr}"),
            key,
            dir,
            log,
        }
    }

    /// Runs the client against this server with its key (stdin closed, output piped).
    fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(Some(&self.key), args)
    }

    fn cli_as(&self, key: Option<&str>, args: &[&str]) -> Output {
        let mut command = client();
        command.args(args).env("BACKSTOP_URL", &self.url);
        match key {
            Some(key) => command.env("BACKSTOP_API_KEY", key),
            None => command.env_remove("BACKSTOP_API_KEY"),
        };
        command.output().unwrap()
    }

    /// `cli` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "backstop {args:?}: {}", show(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ok` with `-o json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn region_dir(&self) -> PathBuf {
        self.dir.path().join("data/regions/local")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backstop"));
    command
        .stdin(Stdio::null())
        .env_remove("BACKSTOP_URL")
        .env_remove("BACKSTOP_API_KEY");
    command
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A project and a cluster on the shared Milvus, registered through the client.
fn register(server: &Server) -> (String, String) {
    let project = server.json(&["projects", "create", "--name", "cli"]);
    let project = project["projectId"].as_str().unwrap().to_owned();
    let milvus = shared_milvus();
    let cluster = server.json(&[
        "clusters",
        "register",
        "--name",
        "shared",
        "--project",
        &project,
        "--uri",
        &milvus.uri,
        "--storage-path",
        &milvus.storage,
    ]);
    (project, cluster["clusterId"].as_str().unwrap().to_owned())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The round trip a user scripts: register, back up one collection with `--wait`, list it
/// as JSON, restore it under a new name with `--wait`; then a verify that fails (a binlog
/// removed from the backup) exits non-zero with the job's reason.
#[tokio::test]
async fn backup_and_restore_from_the_command_line() {
    let name = unique("cli");
    seed(
        &shared_milvus().uri,
        &["create-collection", "default", &name, "12"],
    )
    .await;
    let server = Server::start(&[]);
    let (_project, cluster) = register(&server);

    let collections = server.json(&["clusters", "collections", &cluster]);
    let listed = collections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["collectionName"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} listed: {collections}"));
    assert!(listed["collectionId"].is_string(), "{listed}");

    let collection = format!("default.{name}");
    let out = server.cli(&[
        "backup",
        "create",
        "--cluster",
        &cluster,
        "--collections",
        &collection,
        "--wait",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.contains("AVAILABLE"), "{}", show(&out));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(stderr.contains("started: job"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no escape codes when not a terminal: {stderr:?}"
    );
    assert!(stderr.contains("SUCCESSFUL"), "progress lines: {stderr}");
    let backup_id = last.split_whitespace().nth(1).unwrap().to_owned();

    let backups = server.json(&["backup", "list", "--cluster", &cluster]);
    let backup = backups
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backupId"] == backup_id.as_str())
        .unwrap_or_else(|| panic!("{backup_id} listed: {backups}"));
    assert_eq!(backup["status"], "AVAILABLE");
    let described = server.ok(&["backup", "describe", "--cluster", &cluster, &backup_id]);
    assert!(described.contains(&name), "{described}");

    let restored = format!("{name}_r");
    let rename = format!("{name}:{restored}");
    let out = server.cli(&[
        "restore",
        "collection",
        "--cluster",
        &cluster,
        "--backup",
        &backup_id,
        "--to-cluster",
        &cluster,
        "--collections",
        &collection,
        "--rename",
        &rename,
        "--wait",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESSFUL"),
        "{}",
        show(&out)
    );
    let collections = server.json(&["clusters", "collections", &cluster]);
    assert!(
        collections
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["collectionName"] == restored.as_str()),
        "{restored} restored: {collections}"
    );
    let jobs = server.ok(&[
        "jobs",
        "list",
        "--cluster",
        &cluster,
        "--type",
        "RESTORE_COLLECTION",
    ]);
    assert!(jobs.contains("SUCCESSFUL"), "{jobs}");

    // A verify that finds a binlog gone: the job fails, the client says why and exits 1.
    let binlog = files_under(&server.region_dir())
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/binlogs/insert_log/"))
        .expect("the backup holds binlogs");
    std::fs::remove_file(&binlog).unwrap();
    let out = server.cli(&[
        "backup",
        "verify",
        "--cluster",
        &cluster,
        &backup_id,
        "--wait",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAILED"), "{stderr}");
    let file_name = binlog.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&file_name),
        "the reason names the object: {stderr}"
    );
    assert!(
        !server.log.lock().unwrap().contains(&server.key),
        "the key is never logged"
    );
}

/// Waits until `path` exists.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running job, held at a barrier. Watched on a pseudo-terminal it draws a bar in place,
/// and Ctrl-C there asks whether to cancel it (yes: it ends CANCELED, exit 1); watched
/// through a pipe it prints plain lines. A second one ends with `jobs cancel --wait`.
#[tokio::test]
async fn progress_on_a_terminal_and_in_a_pipe_and_cancel() {
    let name = unique("cliw");
    seed(
        &shared_milvus().uri,
        &["create-collection", "default", &name, "30"],
    )
    .await;
    let barrier = tempfile::tempdir().unwrap();
    let server = Server::start(&[(
        "BACKSTOP_TEST_BACKUP_PAUSE",
        format!("1:{}", barrier.path().display()),
    )]);
    let (_project, cluster) = register(&server);
    let backup = || {
        let created = server.json(&[
            "backup",
            "create",
            "--cluster",
            &cluster,
            "--collections",
            &name,
        ]);
        created["jobId"].as_str().unwrap().to_owned()
    };
    let job = backup();
    wait_for(&barrier.path().join("paused"));

    // On a pseudo-terminal (util-linux `script`, which passes our writes to it as typed).
    let mut terminal = Command::new("script")
        .args(["-q", "-f", "-e", "-c"])
        .arg(format!(
            "exec {} jobs watch {job}",
            env!("CARGO_BIN_EXE_backstop")
        ))
        .arg("/dev/null")
        .env("BACKSTOP_URL", &server.url)
        .env("BACKSTOP_API_KEY", &server.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the client on a pseudo-terminal");
    // Through a pipe: plain lines.
    let piped = client()
        .args(["jobs", "watch", &job])
        .env("BACKSTOP_URL", &server.url)
        .env("BACKSTOP_API_KEY", &server.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Ctrl-C, then "y" at the question.
    let mut keys = terminal.stdin.take().unwrap();
    std::io::Write::write_all(&mut keys, b"\x03").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    std::io::Write::write_all(&mut keys, b"y\n").unwrap();
    let mut shown = Vec::new();
    terminal
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut shown)
        .unwrap();
    let status = terminal.wait().unwrap();
    drop(keys);
    let shown = String::from_utf8_lossy(&shown);
    assert_eq!(
        status.code(),
        Some(1),
        "a canceled job is no success: {shown:?}"
    );
    assert!(
        shown.contains("\r\x1b[2K["),
        "the bar is redrawn in place: {shown:?}"
    );
    assert!(shown.contains('%'), "{shown:?}");
    assert!(shown.contains(&format!("Cancel job {job}?")), "{shown:?}");
    assert!(shown.contains("CANCELED"), "{shown:?}");

    let piped = piped.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(1), "{}", show(&piped));
    let lines = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !lines.contains('\x1b'),
        "no escape codes in a pipe: {lines:?}"
    );
    assert!(lines.contains(&format!("job {job} IN_PROGRESS")), "{lines}");
    assert!(lines.contains("CANCELED"), "{lines}");

    // Another backup, held at the same barrier, canceled with `jobs cancel --wait`.
    let second = backup();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.json(&["jobs", "describe", &second])["status"] != "IN_PROGRESS" {
        assert!(Instant::now() < deadline, "job {second} never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = server.cli(&["jobs", "cancel", &second, "--wait"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CANCELED"),
        "{}",
        show(&out)
    );
}

/// What goes wrong before any job: bad flags (exit 2, saying what to give), no server at the
/// URL (exit 3, naming it), a wrong key (the API's code and message, exit 1); and the shell
/// completions.
#[test]
fn bad_flags_no_server_and_a_wrong_key_are_said_plainly() {
    let out = client().args(["backup", "create"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cluster"),
        "{}",
        show(&out)
    );
    let out = client()
        .args([
            "restore",
            "collection",
            "--cluster",
            "c",
            "--backup",
            "b",
            "--to-cluster",
            "d",
        ])
        .args(["--collections", "docs", "--rename", "docs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("old:new"),
        "{}",
        show(&out)
    );

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = client()
        .args([
            "jobs",
            "list",
            "--url",
            &url,
            "--api-key",
            "bsk_secret_never_shown",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("bsk_secret_never_shown"), "{stderr}");

    let server = Server::start(&[]);
    let out = server.cli_as(Some("bsk_wrong"), &["clusters", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("90401"), "{stderr}");
    assert!(!stderr.contains("bsk_wrong"), "{stderr}");
    let listed = server.ok(&["clusters", "list"]);
    assert_eq!(listed, "(none)\n");

    let help = client()
        .args(["jobs", "list", "--help"])
        .env("BACKSTOP_API_KEY", &server.key)
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", show(&help));
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains(&server.key),
        "help never shows the key"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = client().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("restore"),
            "{shell}: {}",
            show(&out)
        );
    }
}
