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
    },
    /// The env copied from the live one could not be proven to hold exactly what a fresh one
    /// would: the pipeline builds a fresh env instead (never shown as a failure).
    ReuseUnproven { why: String },
    /// uv was asked for (`KUDUHOOK_INSTALLER=uv`) and none was found.
    UvMissing {
        origin: Origin,
        searched: Vec<String>,
    },
    /// Another deployment of the same target held the deploy lock for the whole wait.
    Locked {
        holder: String,
        waited: std::time::Duration,
        lock: PathBuf,
    },
}

impl Failure for EnvError {
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
                    VenvFailure::NoSpace => {
                        "free space on the site's disk, then deploy again".to_string()
                    }
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
