//! A virtual environment on disk: the one a deployment prepared, its interpreter, and what its
//! `pyvenv.cfg` says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::record::EnvRecord;
use crate::python::PythonVersion;
use crate::python::packages::Packages;
use crate::python::requirements::Root;
use crate::settings::Platform;

/// An env ready for the steps after this one.
#[derive(Debug, Clone)]
pub struct PreparedEnv {
    pub dir: PathBuf,
    /// The env's own interpreter (`env/bin/python`, `env\Scripts\python.exe`).
    pub python: PathBuf,
    pub record: EnvRecord,
    /// Set when the env is a copy of the live one: pip-install then removes what the
    /// requirements no longer need.
    pub reuse: Option<Reuse>,
}

/// An env copied from the live one to install changed requirements into: what pruning it back
/// to exactly the requirements needs ([`crate::python::closure`]).
#[derive(Debug, Clone)]
pub struct Reuse {
    pub roots: Vec<Root>,
    /// The live env's packages, to say what reuse kept.
    pub before: Packages,
    /// What a fresh env holds of its own.
    pub seeds: Vec<(String, String)>,
    /// How long the copy took.
    pub copied: Duration,
}

/// The env's interpreter on `platform`.
pub fn env_python(env_dir: &Path, platform: Platform) -> PathBuf {
    platform
        .env_python()
        .iter()
        .fold(env_dir.to_path_buf(), |p, s| p.join(s))
}

/// What `pyvenv.cfg` says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PyvenvCfg {
    pub home: Option<PathBuf>,
    pub version: Option<PythonVersion>,
    pub executable: Option<PathBuf>,
}

impl PyvenvCfg {
    pub fn parse(text: &str) -> PyvenvCfg {
        let mut cfg = PyvenvCfg::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "home" => cfg.home = Some(PathBuf::from(value)),
                "executable" => cfg.executable = Some(PathBuf::from(value)),
                // `version` (venv) or `version_info` (virtualenv: 3.8.10.final.0)
                "version" | "version_info" if cfg.version.is_none() => {
                    let numbers: Vec<&str> = value.split('.').take(3).collect();
                    cfg.version = PythonVersion::parse(&numbers.join("."));
                }
                _ => {}
            }
        }
        cfg
    }
}
