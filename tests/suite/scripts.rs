//! The helper scripts a new user runs before anything else.

use std::path::Path;

use crate::support::{
    private_milvus_dir, private_milvus_turn, repo_root, seed, start_instance, wait_serving,
};

/// Stops a `scripts/milvus-instance` on drop, whatever the test did.
struct Instance<'a>(&'a Path);

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("scripts/milvus-instance"))
            .arg("stop")
            .arg(self.0)
            .status();
    }
}

/// `scripts/milvus-instance start` twice at once on a machine where its venv does not exist
/// yet: one makes the venv while the other waits for it, each chooses ports of its own, and
/// both come up and serve.
#[tokio::test]
async fn milvus_instance_started_twice_at_once_without_a_venv() {
    let _turn = private_milvus_turn().await;
    let root = private_milvus_dir();
    let venv = root.path().join("fresh-venv");
    assert!(!venv.exists());
    let env = vec![(
        "BACKSTOP_TEST_MILVUS_VENV".to_owned(),
        venv.display().to_string(),
    )];
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let (_stop_a, _stop_b) = (Instance(&a), Instance(&b));
    let (line_a, line_b) =
        tokio::join!(start_instance(&a, &[], &env), start_instance(&b, &[], &env));
    let uri = |line: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix("uri="))
            .unwrap_or_else(|| panic!("no uri in {line:?}"))
            .to_owned()
    };
    let (uri_a, uri_b) = (uri(&line_a), uri(&line_b));
    assert_ne!(uri_a, uri_b, "each on a port of its own");
    assert!(venv.join("bin/milvus-server").exists(), "the venv was made");
    for uri in [&uri_a, &uri_b] {
        wait_serving(uri, None).await;
        seed(uri, &["create-collection", "default", "both_up", "3"]).await;
    }
}
