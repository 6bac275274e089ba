//! The failure vocabulary every layer speaks, at the ground floor: it imports nothing of ours.
//!
//! Each layer keeps its own failures in its own `error.rs` (an enum of the facts, and the one
//! place that turns them into words: what happened, why, and what to do), and implements
//! [`Failure`] for it. Code returns a [`DeployError`], which carries any layer's failure, so that
//! `?` works across layers; a caller that branches on a failure asks for its type with
//! [`DeployError::downcast_ref`]. The failures of the ground floor itself (a file operation, a
//! program that would not start) are [`SystemError`].

use std::any::Any;
use std::fmt;
use std::path::PathBuf;

/// What a user reads about an error: what happened, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub what: String,
    pub why: String,
    pub fix: String,
}

/// A failure of one layer, with the facts needed to explain it.
pub trait Failure: Any + fmt::Debug + Send + Sync {
    /// The text a user reads.
    fn explain(&self) -> Explanation;

    /// Whether it was the disk (or its quota) filling up: the deployment then says what
    /// kuduhook keeps there that could go.
    fn disk_full(&self) -> bool {
        false
    }
}

/// A deployment failure: any layer's [`Failure`].
pub struct DeployError(Box<dyn Failure>);

impl DeployError {
    /// Shorthand for [`SystemError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        SystemError::Io {
            action,
            path: path.into(),
            error,
        }
        .into()
    }

    /// The text a user reads.
    pub fn explain(&self) -> Explanation {
        self.0.explain()
    }

    /// Whether the failure was a full disk ([`Failure::disk_full`]).
    pub fn disk_full(&self) -> bool {
        self.0.disk_full()
    }

    /// The failure, when it is a `T`: for a caller that branches on one.
    pub fn downcast_ref<T: Failure>(&self) -> Option<&T> {
        let failure: &dyn Any = self.0.as_ref();
        failure.downcast_ref::<T>()
    }
}

impl<F: Failure> From<F> for DeployError {
    fn from(failure: F) -> DeployError {
        DeployError(Box::new(failure))
    }
}

impl fmt::Debug for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.explain();
        write!(f, "{}\n  why: {}\n  fix: {}", e.what, e.why, e.fix)
    }
}

impl std::error::Error for DeployError {}

/// What a failed deployment left serving: the last line of every failure.
pub mod site_state {
    pub const UNTOUCHED: &str =
        "Nothing in the target was changed: the site still serves the previous deployment.";
    pub const FILES_CHANGED_ENV_KEPT: &str =
        "The app's files were updated; the previous env still serves the site, unchanged.";
    pub const FILES_CHANGED_ENV_RESTORED: &str = "The app's files were updated; the site was \
        switched back to the previous env, which serves it.";
    pub const ENV_RESTORED: &str = "The app's files were not changed; the site was switched \
        back to the previous env, which serves it.";
    pub const ENV_CHANGED_IN_PLACE: &str = "The app's files were updated; the env was changed \
        in place (KUDUHOOK_ENV_MODE=incremental) and may hold part of the new requirements.";
    pub const FILES_AND_ENV_RESTORED: &str = "The previous files were put back and the site \
        was switched back to the previous env: it serves the previous deployment.";
    pub const FILES_RESTORED: &str = "The previous files were put back; the env was not \
        changed: the site serves the previous deployment.";
    pub const FILES_NOT_RESTORED: &str = "Not every previous file could be put back: the \
        undo log stays beside the site, and the next deployment finishes putting them back \
        before it starts.";
    pub const ROLLBACK_REFUSED: &str =
        "Nothing was changed: the site still serves the release it served.";
    pub const ROLLBACK_FAILED: &str = "The rollback stopped: run `kuduhook status` to see what \
        the site serves; releases that were undone are no longer listed, the rest can be rolled \
        back again.";
    pub const SYNC_PARTIAL: &str = "The sync stopped part-way: some files in the target are \
        new, the rest are the previous deployment's. The manifest was not written; the next \
        sync finishes the job and cleans up.";
    pub const ENV_NOT_RESTORED: &str = "The site could not be switched back to the previous \
        env: it runs the new one; the next deployment checks it before anything else.";
}

/// What to do when the disk is full, wherever it was met.
pub const DISK_FULL_FIX: &str = "free space on that filesystem (`kuduhook status` shows what \
    kuduhook keeps there: the kept releases' envs, KUDUHOOK_KEEP_RELEASES=1 keeps only the live \
    one; env archives), or move the app to a plan with more storage (App Service: 1 GB on Free \
    and Shared, 10 GB on Basic, 50 GB on Standard), then deploy again";

/// What the operating system refused: a file operation, a file that stayed busy, a program that would not start.
#[derive(Debug)]
pub enum SystemError {
    /// A file operation failed.
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A configuration or repository file exists but could not be read.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file stayed locked or busy through every retry.
    Busy {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
        attempts: u32,
        waited: std::time::Duration,
    },
    /// A program could not be started at all.
    SpawnFailed {
        program: String,
        error: std::io::Error,
    },
}

impl Failure for SystemError {
    fn disk_full(&self) -> bool {
        match self {
            SystemError::Io { error, .. } | SystemError::Busy { error, .. } => {
                crate::ground::disk::fault(error) == crate::ground::disk::Fault::Full
            }
            _ => false,
        }
    }

    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            SystemError::Io {
                action,
                path,
                error,
            } => {
                use crate::ground::disk::{self, Fault};
                let what = format!("could not {action} {}", path.display());
                match disk::fault(error) {
                    Fault::Full => (
                        format!("{what}: the disk is full"),
                        format!("{} (the system said: {error})", disk::describe_space(path)),
                        DISK_FULL_FIX.to_string(),
                    ),
                    Fault::Io => (
                        format!("{what}: the filesystem failed the operation (an I/O error)"),
                        format!(
                            "the system said: {error}; on App Service /home is a network share, \
                             and the share failed"
                        ),
                        "deploy again; if it fails again, restart the site (or wait for the \
                         share to recover: App Service's Resource health)"
                            .to_string(),
                    ),
                    Fault::Refused => (
                        format!("{what}: permission denied"),
                        format!("{} (the system said: {error})", disk::describe_owner(path)),
                        "give the deployment's user write access to it (chown or chmod from \
                         the Kudu console or SSH), or remove it, then deploy again"
                            .to_string(),
                    ),
                    Fault::Other => (
                        what,
                        format!("the system said: {error}"),
                        "check permissions and free disk space on the target, then deploy again"
                            .to_string(),
                    ),
                }
            }
            SystemError::Unreadable { path, error } => (
                format!("could not read {}", path.display()),
                format!("the system said: {error}"),
                "check that the file is readable by the deployment's user".to_string(),
            ),
            SystemError::Busy {
                action,
                path,
                error,
                attempts,
                waited,
            } => (
                format!("could not {action} {}", path.display()),
                format!(
                    "it stayed locked or busy through {attempts} attempts over {} (the system \
                     said: {error})",
                    crate::ground::logging::seconds(*waited)
                ),
                "stop whatever holds the file (the running app, an FTP or editor session), or \
                 clear a read-only or immutable attribute on it, then deploy again"
                    .to_string(),
            ),
            SystemError::SpawnFailed { program, error } => (
                format!("could not start {program}"),
                format!("the system said: {error}"),
                format!("check that {program} is installed and on PATH"),
            ),
        };
        Explanation { what, why, fix }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(errno: i32, path: &std::path::Path) -> Explanation {
        SystemError::Io {
            action: "write",
            path: path.to_path_buf(),
            error: std::io::Error::from_raw_os_error(errno),
        }
        .explain()
    }

    #[test]
    #[cfg(unix)] // the system's error numbers are Linux's here
    fn each_filesystem_fault_is_named_as_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env/lib/x.py");
        let full = explained(28, &file);
        assert!(full.what.ends_with("x.py: the disk is full"), "{full:?}");
        assert!(
            full.why.starts_with(&format!(
                "the filesystem holding {} has ",
                dir.path().display()
            )),
            "{full:?}"
        );
        assert_eq!(full.fix, DISK_FULL_FIX);
        let io = explained(5, &file);
        assert!(
            io.what
                .ends_with("the filesystem failed the operation (an I/O error)")
        );
        assert!(io.why.contains("the share failed"), "{io:?}");
        let refused = explained(13, &file);
        assert!(refused.what.ends_with("x.py: permission denied"));
        #[cfg(unix)]
        assert!(
            refused
                .why
                .starts_with(&format!("{} is owned by uid ", dir.path().display()))
                && refused.why.contains(", mode ")
                && refused.why.contains("; kuduhook runs as uid "),
            "{refused:?}"
        );
        let other = explained(2, &file);
        assert!(other.why.starts_with("the system said: "), "{other:?}");
        assert!(
            SystemError::Io {
                action: "write",
                path: file.clone(),
                error: std::io::Error::from_raw_os_error(28)
            }
            .disk_full()
        );
    }
}
