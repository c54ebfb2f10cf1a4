//! The real binary, as the README's quick start runs it: no config, first admin key printed once
//! on stdout (never in the log), graceful stop on SIGTERM; and `backstop migrate`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn backstop() -> Command {
    Command::new(env!("CARGO_BIN_EXE_backstop"))
}

fn wait_for_line(reader: &mut impl BufRead, needle: &str, seen: &mut String) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("output ended before {needle:?}; saw:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains(needle) {
            return line.clone();
        }
    }
    panic!("no {needle:?} within 30 s; saw:\n{seen}");
}

#[test]
fn serve_on_the_embedded_default_prints_a_key_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let start = |seen: &mut String| {
        let mut child = backstop()
            .arg("serve")
            .current_dir(dir.path())
            .env("BACKSTOP_SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let listening = wait_for_line(&mut stderr, "backstop listening", seen);
        (child, stderr, listening)
    };

    let mut log = String::new();
    let (mut child, mut stderr, listening) = start(&mut log);
    assert!(
        listening.contains("sqlite://./data/backstop.db"),
        "{listening}"
    );
    assert!(dir.path().join("data/backstop.db").exists());
    assert!(dir.path().join("data/encryption.key").exists());

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_for_line(&mut stderr, "backstop stopped", &mut log);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let key = stdout
        .split_whitespace()
        .find(|w| w.starts_with("bsk_"))
        .unwrap_or_else(|| panic!("no key printed: {stdout}"));
    assert_eq!(key.len(), 4 + 64);
    assert!(!log.contains(key), "the key must never reach the log");

    // Second start on the same data: no new key.
    let mut log2 = String::new();
    let (mut child, _stderr, _) = start(&mut log2);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        !stdout.contains("bsk_"),
        "a second start prints no key: {stdout}"
    );
}

#[test]
fn migrate_applies_migrations_and_bad_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = backstop()
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sqlite"));

    let out = backstop()
        .arg("serve")
        .current_dir(dir.path())
        .env("BACKSTOP_SERVER__LISTN", "typo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listn"), "{stderr}");
}

/// The way back in: every OWNER key gone (or the last refused), `backstop admin-key` on the
/// server mints a new one against the configured database, printed once.
#[test]
fn admin_key_mints_a_working_owner_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = backstop()
        .args(["admin-key", "--name", "rescue"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(secret.starts_with("bsk_"), "{secret}");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(&secret),
        "the key is not logged"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("sqlite://{}/data/backstop.db", dir.path().display());
        let store = backstop::store::Store::connect(&url, 1).await.unwrap();
        let key = store
            .find_api_key_by_hash(&backstop::crypto::hash_api_key(&secret))
            .await
            .unwrap()
            .expect("the printed key is stored, as its hash");
        assert_eq!(key.name, "rescue");
        assert_eq!(key.org_role, backstop::domain::access::OrgRole::Owner);
    });
}
