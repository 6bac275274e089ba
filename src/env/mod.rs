//! The env: the virtual environment the site runs with, built, recorded and switched in.
//!
//! - [`store`]: where envs live beside the live one, and how a new one goes live (a link swap,
//!   or a rename on a share that refuses links);
//! - [`files`]: links probed, network filesystems, tree copies and removals on a share;
//! - [`seed`]: pip for a new env without ensurepip; [`installer`]: pip or uv, and how each is run;
//! - [`venv`]: an env on disk, its interpreter and `pyvenv.cfg`;
//! - [`record`]: what an env holds and was built from (`.kuduhook-env.json`);
//! - [`archive`]: the env shipped as one archive that App Service Linux extracts on start;
//! - [`lock`]: one deployment at a time per site;
//! - [`error`]: what can fail here, in words.

pub mod archive;
pub mod error;
pub mod files;
pub mod installer;
pub mod lock;
pub mod record;
pub mod seed;
pub mod store;
pub mod venv;

pub use venv::{PreparedEnv, PyvenvCfg, Reuse, env_python};

use std::path::{Path, PathBuf};

use crate::settings::truthy;

/// What `KUDUHOOK_FORCE_ENV_REBUILD` (or `--force-env-rebuild`) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceRebuild {
    /// Unset, empty, or `0/false/no/off`.
    Off,
    /// `1/true/yes/on`: rebuild on every deployment.
    Always,
    /// Any other value: rebuild once for each distinct value.
    Token(String),
}
impl ForceRebuild {
    pub fn parse(value: &str) -> ForceRebuild {
        match truthy(value) {
            Some(true) => ForceRebuild::Always,
            Some(false) => ForceRebuild::Off,
            None => ForceRebuild::Token(value.trim().to_string()),
        }
    }
}

/// What a changed requirements file does to the env (`KUDUHOOK_ENV_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvMode {
    /// A fresh env, switched in once complete: the env holds exactly what is required.
    Exact,
    /// deploy.cmd's way: install over the live env; removed requirements stay installed.
    Incremental,
}

/// The env's site-packages as the platform puts it on `PYTHONPATH` (`minor` is "3.11").
pub fn site_packages(env: &Path, minor: &str) -> PathBuf {
    env.join("lib")
        .join(format!("python{minor}"))
        .join("site-packages")
}
