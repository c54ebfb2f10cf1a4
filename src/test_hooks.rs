//! Barriers that stop a job at an exact point, for tests that crash a process, cancel a job
//! mid-way or change Milvus under a running backup. They exist only in builds with the
//! `test-hooks` cargo feature, which `scripts/test` enables: in any other build `TestHooks` is
//! empty, every barrier is absent, and no `BACKSTOP_TEST_*` variable is read.

use std::path::PathBuf;

use crate::jobs::{JobContext, Stop};

/// After `after_files` files, a job creates `<dir>/paused` and waits until `<dir>/resume`
/// exists (or the job must stop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausePoint {
    pub after_files: u64,
    pub dir: PathBuf,
}

/// Where a job may be held. Set in-process by tests, or for a child process with
/// `BACKSTOP_TEST_BACKUP_PAUSE=<files>:<dir>`, `BACKSTOP_TEST_RESTORE_PAUSE=<files>:<dir>`,
/// `BACKSTOP_TEST_IMPORT_PAUSE=<imports>:<dir>`.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestHooks {
    /// In a backup's copy, after N binlogs copied by this attempt.
    pub backup_copy: Option<PausePoint>,
    /// In a restore's staging, after N binlogs staged.
    pub restore_stage: Option<PausePoint>,
    /// In a restore's import, after Milvus accepted N `Import` calls (before waiting on them).
    pub restore_import: Option<PausePoint>,
}

/// Without the `test-hooks` feature there are no barriers.
#[cfg(not(feature = "test-hooks"))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestHooks {}

impl TestHooks {
    /// The barriers named by `BACKSTOP_TEST_*` variables in `env`.
    #[cfg(feature = "test-hooks")]
    pub fn from_env(env: &[(String, String)]) -> Result<TestHooks, String> {
        let point = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, text)| PausePoint::parse(name, text))
                .transpose()
        };
        Ok(TestHooks {
            backup_copy: point("BACKSTOP_TEST_BACKUP_PAUSE")?,
            restore_stage: point("BACKSTOP_TEST_RESTORE_PAUSE")?,
            restore_import: point("BACKSTOP_TEST_IMPORT_PAUSE")?,
        })
    }

    #[cfg(not(feature = "test-hooks"))]
    pub fn from_env(_env: &[(String, String)]) -> Result<TestHooks, String> {
        Ok(TestHooks {})
    }

    /// The barrier in a backup's copy, if one is set.
    pub fn backup_copy(&self) -> Option<&PausePoint> {
        #[cfg(feature = "test-hooks")]
        return self.backup_copy.as_ref();
        #[cfg(not(feature = "test-hooks"))]
        None
    }

    /// The barrier in a restore's import, if one is set.
    pub fn restore_import(&self) -> Option<&PausePoint> {
        #[cfg(feature = "test-hooks")]
        return self.restore_import.as_ref();
        #[cfg(not(feature = "test-hooks"))]
        None
    }

    /// The barrier in a restore's staging, if one is set.
    pub fn restore_stage(&self) -> Option<&PausePoint> {
        #[cfg(feature = "test-hooks")]
        return self.restore_stage.as_ref();
        #[cfg(not(feature = "test-hooks"))]
        None
    }
}

impl PausePoint {
    #[cfg(feature = "test-hooks")]
    fn parse(name: &str, text: &str) -> Result<PausePoint, String> {
        text.split_once(':')
            .and_then(|(n, dir)| {
                Some(PausePoint {
                    after_files: n.parse().ok()?,
                    dir: PathBuf::from(dir),
                })
            })
            .ok_or_else(|| format!("{name} is '{text}'; use <files>:<directory>"))
    }

    /// Is the `count`th file (counting from 1) the one to stop after?
    pub fn after(&self, count: u64) -> bool {
        self.after_files == count
    }

    /// Says `paused`, then waits for `resume`, or returns early when the job must stop.
    pub async fn wait(&self, ctx: &JobContext) -> Result<(), Stop> {
        let _ = std::fs::create_dir_all(&self.dir);
        let _ = std::fs::write(self.dir.join("paused"), b"");
        tracing::warn!(dir = %self.dir.display(), "test barrier: job paused");
        while !self.dir.join("resume").exists() {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                stop = ctx.stopped() => return Err(stop),
            }
        }
        Ok(())
    }
}

/// A test's callback inside `Store::create_backup`'s transaction, after the task rules were
/// read and before the backup is written: the window two creators could race in. It gets the
/// creation method of the backup being recorded.
#[cfg(feature = "test-hooks")]
pub type TaskRuleWindow = std::sync::Arc<
    dyn Fn(crate::domain::backups::CreationMethod) -> futures::future::BoxFuture<'static, ()>
        + Send
        + Sync,
>;

/// The store's barriers, shared by every clone of one `Store`.
#[cfg(feature = "test-hooks")]
#[derive(Default)]
pub struct StoreHooks {
    pub task_rule_window: std::sync::Mutex<Option<TaskRuleWindow>>,
}

#[cfg(feature = "test-hooks")]
impl std::fmt::Debug for StoreHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHooks")
    }
}

#[cfg(feature = "test-hooks")]
impl StoreHooks {
    pub(crate) async fn in_task_rule_window(&self, method: crate::domain::backups::CreationMethod) {
        let hook = self
            .task_rule_window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(method).await;
        }
    }
}
