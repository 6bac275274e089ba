//! What kuduhook remembers about an env, kept inside the env itself (`.kuduhook-env.json`), so
//! that it disappears with the env it describes: which Python built it, why, for which
//! force-rebuild token, and what was last installed into it successfully.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The record's file name inside the env.
pub const RECORD_FILE: &str = ".kuduhook-env.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRecord {
    /// The full version of the interpreter that built the env.
    pub python: String,
    pub interpreter: PathBuf,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Why it was (re)built, as the log said it.
    pub reason: String,
    /// The `KUDUHOOK_FORCE_ENV_REBUILD` token in force when it was built.
    pub rebuild_token: Option<String>,
    /// The last successful install into this env.
    pub install: Option<InstallRecord>,
    /// What the env held of its own when it was made (pip, setuptools: name and version), kept
    /// by exact reuse as a fresh env would hold them. `None` where that is not known (an
    /// adopted env, an earlier kuduhook's): such an env is not reused.
    #[serde(default)]
    pub seeds: Option<Vec<(String, String)>>,
    /// Names this env among the site's (the releases kept name the env each one ran); a new
    /// one per env made. `None` in records of earlier versions.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// Fingerprint of the requirement files, installer arguments and env.
    pub fingerprint: String,
    pub installer: String,
    pub installed_unix: u64,
    /// The dependency source installed (`requirements.txt`, `uv.lock`, ...).
    #[serde(default)]
    pub source: Option<String>,
}

impl EnvRecord {
    /// The env's record, if it has a readable one.
    pub fn read(env_dir: &Path) -> Option<EnvRecord> {
        let bytes = std::fs::read(env_dir.join(RECORD_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the record atomically.
    pub fn write(&self, env_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::ground::paths::write_atomically(&env_dir.join(RECORD_FILE), &json)
    }
}

/// Seconds since the Unix epoch.
/// A new env id: the time in nanoseconds and the process, unique on a site (one deployment at
/// a time makes envs).
pub fn new_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", std::process::id())
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
