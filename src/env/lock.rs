//! One deployment at a time per target: a lock file beside the target, outside the served files
//! (`<site>/.kuduhook/<target>/deploy.lock`).
//!
//! The lock is the operating system's (`flock` on Linux, `LockFileEx` on Windows), so it dies
//! with its process: a deployment killed with `kill -9` can never leave the site locked. The
//! file also holds who took it; a holder that ended without clearing it was killed, and the
//! next deployment says it took over, then cleans up what was left.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::env::error::EnvError;
use crate::env::record::now_unix;
use crate::ground::error::DeployError;
use crate::ground::logging::{ago, short_commit};
use crate::ground::paths;

/// How long a deployment waits for another one on the same site, by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Who holds (or held) the lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub started_unix: u64,
    pub commit: Option<String>,
}

impl Holder {
    /// "pid 123, commit abc123, started 5m ago".
    pub fn describe(&self) -> String {
        let commit = self
            .commit
            .as_deref()
            .map(|c| format!(", commit {}", short_commit(c)))
            .unwrap_or_default();
        format!(
            "pid {}{commit}, started {}",
            self.pid,
            ago(self.started_unix, now_unix())
        )
    }
}

/// A held deploy lock; released (and the file cleared) when dropped.
#[derive(Debug)]
pub struct DeployLock {
    file: File,
    pub path: PathBuf,
}

/// The lock file of `target`.
pub fn lock_path(target: &Path) -> PathBuf {
    paths::state_dir(target).join("deploy.lock")
}

/// Takes the deploy lock of `target`, waiting at most `wait` for a running deployment to
/// finish, and saying so every `heartbeat` (so that Kudu does not kill the waiting one as idle).
pub fn acquire(
    target: &Path,
    commit: Option<&str>,
    wait: Duration,
    heartbeat: Duration,
) -> Result<DeployLock, DeployError> {
    let path = lock_path(target);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DeployError::io("create the folder for the deploy lock", dir, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| DeployError::io("open the deploy lock", &path, e))?;
    let started = Instant::now();
    let mut last_said = started;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(DeployError::io("take the deploy lock", &path, e));
            }
        }
        let holder = read_holder(&mut file);
        let who = holder.as_ref().map_or("a deployment".to_string(), |h| {
            format!("a deployment ({})", h.describe())
        });
        if started.elapsed() >= wait {
            return Err(EnvError::Locked {
                holder: who,
                waited: wait,
                lock: path,
            }
            .into());
        }
        if last_said == started || last_said.elapsed() >= heartbeat {
            if last_said == started {
                info!(
                    "Waiting for {who} to finish: one deployment at a time on this site (at most \
                     {}s, KUDUHOOK_LOCK_WAIT)",
                    wait.as_secs()
                );
            } else {
                info!("still waiting for {who} ({}s)", started.elapsed().as_secs());
            }
            last_said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if started.elapsed() > Duration::from_millis(200) {
        info!(
            "Took the deploy lock after waiting {}s",
            started.elapsed().as_secs()
        );
    }
    if let Some(stale) = read_holder(&mut file) {
        warn!(
            "Took over the deploy lock from a deployment that ended without releasing it ({}): \
             it was killed or crashed; what it left is cleaned up by this one",
            stale.describe()
        );
    }
    let me = Holder {
        pid: std::process::id(),
        started_unix: now_unix(),
        commit: commit.map(String::from),
    };
    let written = serde_json::to_vec(&me)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(&bytes)
        });
    written.map_err(|e| DeployError::io("write the deploy lock", &path, e))?;
    Ok(DeployLock { file, path })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // A cleared file tells the next deployment this one ended cleanly; the lock itself is
        // released when the file closes.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("wwwroot");
        let held = acquire(&target, Some("abc"), Duration::ZERO, Duration::from_secs(1)).unwrap();
        let taken = acquire(
            &target,
            None,
            Duration::from_millis(300),
            Duration::from_secs(1),
        );
        let Some(EnvError::Locked { holder, .. }) =
            taken.as_ref().err().and_then(|e| e.downcast_ref())
        else {
            panic!("the lock is held");
        };
        assert!(
            holder.contains(&format!("pid {}, commit abc", std::process::id())),
            "{holder}"
        );
        drop(held);
        let again = acquire(&target, None, Duration::ZERO, Duration::from_secs(1));
        assert!(again.is_ok());
        drop(again);
        assert_eq!(std::fs::read(lock_path(&target)).unwrap(), b"");
    }
}
