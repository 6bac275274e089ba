//! What every deployment leaves behind for `kuduhook status`: the last deployment's commit,
//! outcome and steps with their timings, kept beside the site and outside the served files
//! (`<site>/.kuduhook/wwwroot/last-deployment.json`).
//!
//! The env's own story (which Python, when and why it was built, what was installed) lives in
//! the env itself ([`crate::env::record`]); this record says where that env is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The record's file name in the site's state folder.
pub const RECORD_FILE: &str = "last-deployment.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub kuduhook_version: String,
    pub commit: Option<String>,
    pub source: PathBuf,
    pub target: PathBuf,
    /// The env folder the site runs (`wwwroot/env`), for `status` to read its record.
    pub env: PathBuf,
    pub started_unix: u64,
    pub seconds: f64,
    pub succeeded: bool,
    /// For a failure: what happened, and what the site serves now.
    pub error: Option<String>,
    pub site_state: Option<String>,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub outcome: StepOutcome,
    /// What the step said it did, or why it skipped or failed.
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Done,
    Skipped,
    Failed,
    /// Failed, and the deployment went on (`continue_on_error`).
    FailedContinued,
}

impl StepOutcome {
    pub fn word(self) -> &'static str {
        match self {
            StepOutcome::Done => "done",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Failed => "FAILED",
            StepOutcome::FailedContinued => "failed, continued",
        }
    }
}

impl StepRecord {
    pub fn failed(name: &str, what: &str, continued: bool, took: Duration) -> StepRecord {
        StepRecord {
            name: name.to_string(),
            outcome: match continued {
                true => StepOutcome::FailedContinued,
                false => StepOutcome::Failed,
            },
            detail: first_line(what),
            seconds: took.as_secs_f64(),
        }
    }
}

pub fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// Where the record of deployments into `target` lives.
pub fn path(target: &Path) -> PathBuf {
    crate::ground::paths::state_dir(target).join(RECORD_FILE)
}

impl DeploymentRecord {
    /// The record of the last deployment into `target`: `Ok(None)` when there is none.
    pub fn read(target: &Path) -> std::io::Result<Option<DeploymentRecord>> {
        let path = path(target);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records a deployment that failed before its configuration was complete (a bad steps
    /// file or setting): no step ran. Best effort: the error itself is what the user reads.
    pub fn record_early_failure(
        source: &Path,
        target: &Path,
        commit: Option<&str>,
        error: &crate::ground::error::DeployError,
        site_state: &str,
    ) {
        let record = DeploymentRecord {
            kuduhook_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: commit.map(str::to_string),
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            env: target.join("env"),
            started_unix: crate::env::record::now_unix(),
            seconds: 0.0,
            succeeded: false,
            error: Some(error.explain().what),
            site_state: Some(site_state.to_string()),
            steps: Vec::new(),
        };
        let _ = record.write();
    }

    /// Writes the record atomically (a reader sees the previous one or this one).
    pub fn write(&self) -> std::io::Result<()> {
        let path = path(&self.target);
        let dir = path.parent().expect("the record has a folder");
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::ground::paths::write_atomically(&path, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::Outcome;

    #[test]
    fn a_record_reads_back_as_written_and_lives_outside_the_served_files() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("wwwroot");
        std::fs::create_dir(&target).unwrap();
        assert_eq!(DeploymentRecord::read(&target).unwrap(), None);
        let record = DeploymentRecord {
            kuduhook_version: "0.1.0".into(),
            commit: Some("abc".into()),
            source: root.path().join("repository"),
            target: target.clone(),
            env: target.join("env"),
            started_unix: 1,
            seconds: 2.5,
            succeeded: false,
            error: Some("installing failed".into()),
            site_state: Some("Nothing changed".into()),
            steps: vec![
                StepRecord::new(
                    "sync",
                    &Outcome::Done("Copied 3 files\nmore".into()),
                    Duration::from_millis(20),
                ),
                StepRecord::failed("pip-install", "boom", false, Duration::from_secs(1)),
            ],
        };
        record.write().unwrap();
        assert!(!path(&target).starts_with(&target));
        let back = DeploymentRecord::read(&target).unwrap().unwrap();
        assert_eq!(back, record);
        assert_eq!(back.steps[0].detail, "Copied 3 files");
        assert_eq!(back.steps[1].outcome, StepOutcome::Failed);
    }
}
