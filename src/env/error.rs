//! Building the env: venv, the installer, reuse of the live env, and the deploy lock.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`EnvError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};
use crate::settings::Origin;

/// Building the env: venv, the installer, reuse of the live env, and the deploy lock.
#[derive(Debug)]
pub enum EnvError {
    /// `python -m venv` failed.
    EnvCreateFailed {
        interpreter: PathBuf,
        env: PathBuf,
        detail: String,
    },
    /// The installer exited non-zero.
    InstallFailed {
        requirements: PathBuf,
        installer: String,
        status: String,
        /// Set when the installer's output says it ran out of space: where it was writing
        /// (its filesystem's space is measured when the failure is told, after the
        /// deployment removed what it had built).
        disk_full: Option<PathBuf>,
    },
    /// The env copied from the live one could not be proven to hold exactly what a fresh one
    /// would: the pipeline builds a fresh env instead (never shown as a failure).
    ReuseUnproven { why: String },
    /// uv was asked for (`KUDUHOOK_INSTALLER=uv`) and none was found.
    UvMissing {
        origin: Origin,
        searched: Vec<String>,
    },
    /// Before building the env: what it will take is more than the filesystem has free.
    NotEnoughSpace {
        /// Where the env would be written.
        at: PathBuf,
        /// What the estimate is made of, each with its bytes.
        parts: Vec<(String, u64)>,
        free: u64,
        total: u64,
    },
    /// Another deployment of the same target held the deploy lock for the whole wait.
    Locked {
        holder: String,
        waited: std::time::Duration,
        lock: PathBuf,
    },
}

impl Failure for EnvError {
    fn disk_full(&self) -> bool {
        match self {
            EnvError::InstallFailed { disk_full, .. } => disk_full.is_some(),
            EnvError::NotEnoughSpace { .. } => true,
            EnvError::EnvCreateFailed { detail, .. } => {
                matches!(venv_failure_cause(detail), VenvFailure::NoSpace)
            }
            _ => false,
        }
    }

    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            EnvError::EnvCreateFailed {
                interpreter,
                env,
                detail,
            } => (
                format!("could not create the env {}", env.display()),
                format!("{} -m venv failed: {detail}", interpreter.display()),
                match venv_failure_cause(detail) {
                    VenvFailure::LinksRefused => "the site's filesystem refused a symbolic link \
                         (an SMB share without mfsymlinks): report this with the log, since \
                         kuduhook makes envs without links where links are refused"
                        .to_string(),
                    VenvFailure::NoSpace => format!(
                        "the disk is full: {}; {}",
                        crate::ground::disk::describe_space(env),
                        crate::ground::error::DISK_FULL_FIX
                    ),
                    VenvFailure::Other => "check the interpreter has the venv and ensurepip \
                         modules (on Debian: apt-get install python3-venv), and that the target \
                         is writable"
                        .to_string(),
                },
            ),
            EnvError::InstallFailed {
                requirements,
                installer,
                status,
                disk_full: Some(writing),
            } => (
                format!(
                    "installing {} with {installer} failed ({status}): the disk is full",
                    requirements.display()
                ),
                format!(
                    "{installer} said it had no space left to write the packages; {}",
                    crate::ground::disk::describe_space(writing)
                ),
                crate::ground::error::DISK_FULL_FIX.to_string(),
            ),
            EnvError::InstallFailed {
                requirements,
                installer,
                status,
                disk_full: None,
            } => (
                format!(
                    "installing {} with {installer} failed ({status})",
                    requirements.display()
                ),
                format!(
                    "{installer}'s own output above names the requirement it could not install"
                ),
                "fix that requirement and push again; a package that needs a compiler can be \
                 built into a committed wheelhouse/ folder"
                    .to_string(),
            ),
            EnvError::NotEnoughSpace {
                at,
                parts,
                free,
                total,
            } => {
                use crate::ground::logging::bytes;
                let needed: u64 = parts.iter().map(|(_, b)| b).sum();
                let made_of: Vec<String> = parts
                    .iter()
                    .map(|(what, b)| format!("{what} {}", bytes(*b)))
                    .collect();
                (
                    format!(
                        "not enough space to build the env: it needs about {} ({}) and the \
                         filesystem holding {} has {} free of {}",
                        bytes(needed),
                        made_of.join(", "),
                        at.display(),
                        bytes(*free),
                        bytes(*total)
                    ),
                    "kuduhook measures what the env will take before it writes anything, \
                     rather than fail half-way with the disk full"
                        .to_string(),
                    crate::ground::error::DISK_FULL_FIX.to_string(),
                )
            }
            EnvError::ReuseUnproven { why } => (
                format!("the env copied from the live one cannot be proven exact: {why}"),
                "kuduhook removes only what it can prove the requirements no longer need".into(),
                "nothing: the deployment builds a fresh env instead".into(),
            ),
            EnvError::UvMissing { origin, searched } => (
                format!("{origin} asks for uv, and no uv was found"),
                format!("looked for a uv that runs at: {}", searched.join(", ")),
                "commit the uv binary for the site's platform as deploy/uv (beside kuduhook), \
                 or name it with the setting KUDUHOOK_UV, or set KUDUHOOK_INSTALLER to auto \
                 (uv when found, else pip) or pip"
                    .to_string(),
            ),
            EnvError::Locked {
                holder,
                waited,
                lock,
            } => (
                format!(
                    "another deployment of this site is still running after {}s: {holder}",
                    waited.as_secs()
                ),
                format!(
                    "one deployment at a time may change a site, and {} stayed locked for the \
                     whole wait",
                    lock.display()
                ),
                "deploy again once it has finished (the log of the running deployment shows \
                 its progress), or wait longer with the setting KUDUHOOK_LOCK_WAIT (seconds); a \
                 killed deployment never holds the lock"
                    .to_string(),
            ),
        };
        Explanation { what, why, fix }
    }
}

/// What a failed `python -m venv` ran into, read from its last output line.
enum VenvFailure {
    LinksRefused,
    NoSpace,
    Other,
}

fn venv_failure_cause(detail: &str) -> VenvFailure {
    if detail.contains("Operation not supported") || detail.contains("Errno 95") {
        VenvFailure::LinksRefused
    } else if detail.contains("No space left") || detail.contains("Errno 28") {
        VenvFailure::NoSpace
    } else {
        VenvFailure::Other
    }
}
