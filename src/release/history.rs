//! The releases a site keeps: the last successful deployments, newest last, each with what it
//! takes to go back to the one before it (the sync's undo log, the env it replaced).
//!
//! Kept in `<site>/.kuduhook/<target>/releases/`: `releases.json`, a folder per release (its
//! undo log, and the env it replaced when that env was a folder), and `pending/`, the undo log
//! of the deployment in progress.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::env::files::remove_fast;
use crate::ground::error::DeployError;

const FORMAT: u32 = 1;
const RECORD: &str = "releases.json";
const PENDING: &str = "pending";

/// How many releases a site keeps by default: the live one and the one before it.
pub const DEFAULT_KEEP: usize = 2;

/// The releases of one site.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Releases {
    pub format: u32,
    /// Oldest first; the last is what the site serves.
    pub releases: Vec<ReleaseEntry>,
    /// The last `kuduhook rollback`.
    #[serde(default)]
    pub last_rollback: Option<RollbackRecord>,
}

/// One successful deployment, and how to go back to the release before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseEntry {
    /// Counts up per site; names the release's folder.
    pub id: u64,
    pub commit: Option<String>,
    pub deployed_unix: u64,
    /// Its folder holds the undo log of its sync: the files of the release before can come
    /// back.
    pub files_undo: bool,
    /// The env the release before ran, kept to switch back to. `None`: this release runs the
    /// same env (reused), or that env is no longer kept.
    pub previous_env: Option<KeptEnv>,
    /// The release changed the env in place (`KUDUHOOK_ENV_MODE=incremental`): the env of the
    /// release before cannot come back.
    pub env_changed_in_place: bool,
    /// The env archive the platform's start file names (a Linux site on a share).
    pub archive: Option<String>,
    /// The id of the env it runs (from the env's record; `None`: no env, or one without).
    #[serde(default)]
    pub env_id: Option<String>,
}

/// An env kept for a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeptEnv {
    /// A folder in the envs folder, that the live link led to.
    Link(PathBuf),
    /// A folder made for the live path (moved there on a rollback), kept in the release's own
    /// folder.
    Folder(PathBuf),
}

impl KeptEnv {
    pub fn path(&self) -> &Path {
        match self {
            KeptEnv::Link(p) | KeptEnv::Folder(p) => p,
        }
    }
}

/// A rollback, for `kuduhook status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub from_commit: Option<String>,
    pub to_commit: Option<String>,
    pub at_unix: u64,
    pub seconds: f64,
    /// What happened to the files and the env, as the log said it.
    pub what: String,
}

/// `<site>/.kuduhook/<target>/releases`.
pub fn dir(target: &Path) -> PathBuf {
    crate::ground::paths::state_dir(target).join("releases")
}

/// The undo log of the deployment in progress.
pub fn pending(target: &Path) -> PathBuf {
    dir(target).join(PENDING)
}

/// The folder of the release `id`: its undo log (`undo/`) and the env it replaced (`env/`).
pub fn release_dir(target: &Path, id: u64) -> PathBuf {
    dir(target).join(id.to_string())
}

/// The undo log of the release `id`.
pub fn undo_dir(target: &Path, id: u64) -> PathBuf {
    release_dir(target, id).join("undo")
}

impl Releases {
    /// The site's releases; none when there is no record, or one this version cannot read
    /// (said in the log: rollbacks start again from the next deployment).
    pub fn read(target: &Path) -> Releases {
        let path = dir(target).join(RECORD);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => return Releases::empty(),
        };
        match serde_json::from_slice::<Releases>(&bytes) {
            Ok(releases) if releases.format == FORMAT => releases,
            _ => {
                warn!(
                    "{} is not a record this kuduhook reads: the releases before this one \
                     cannot be rolled back to",
                    path.display()
                );
                Releases::empty()
            }
        }
    }

    fn empty() -> Releases {
        Releases {
            format: FORMAT,
            ..Releases::default()
        }
    }

    pub fn write(&self, target: &Path) -> Result<(), DeployError> {
        let path = dir(target).join(RECORD);
        std::fs::create_dir_all(dir(target))
            .map_err(|e| DeployError::io("create the releases folder", dir(target), e))?;
        let json = serde_json::to_vec_pretty(self).expect("the releases record serializes");
        crate::ground::paths::write_atomically(&path, &json)
            .map_err(|e| DeployError::io("write the releases record", &path, e))
    }

    pub fn current(&self) -> Option<&ReleaseEntry> {
        self.releases.last()
    }

    pub fn next_id(&self) -> u64 {
        self.releases.last().map_or(1, |r| r.id + 1)
    }

    /// The envs kept for rollbacks that live in the envs folder (spared by its cleanup).
    pub fn kept_envs(&self) -> Vec<PathBuf> {
        self.releases
            .iter()
            .filter_map(|r| r.previous_env.as_ref().map(|e| e.path().to_path_buf()))
            .collect()
    }

    /// The env archives the kept releases start from.
    pub fn kept_archives(&self) -> Vec<String> {
        self.releases
            .iter()
            .filter_map(|r| r.archive.clone())
            .collect()
    }

    /// Keeps the `keep` newest releases: older ones are dropped with what they kept, and the
    /// oldest kept one no longer needs its way back. Returns the folders to remove once the
    /// record is written (so that no record ever names a removed folder), each with whether it
    /// is an env.
    pub fn prune(&mut self, target: &Path, keep: usize) -> Vec<(PathBuf, bool)> {
        let mut remove = Vec::new();
        let env = |e: KeptEnv| (e.path().to_path_buf(), true);
        let excess = self.releases.len().saturating_sub(keep.max(1));
        for old in self.releases.drain(..excess) {
            remove.extend(old.previous_env.map(env));
            remove.push((release_dir(target, old.id), false));
        }
        if let Some(oldest) = self.releases.first_mut() {
            remove.extend(oldest.previous_env.take().map(env));
            if std::mem::take(&mut oldest.files_undo) {
                remove.push((release_dir(target, oldest.id), false));
            }
        }
        remove
    }
}

/// Removes what [`Releases::prune`] dropped; says which envs went, for the log.
pub fn remove_dropped(dropped: &[(PathBuf, bool)]) -> Vec<String> {
    let mut said = Vec::new();
    for (path, is_env) in dropped {
        match remove_fast(path) {
            Ok(()) if *is_env => said.push(format!("Removed the previous env {}", path.display())),
            Ok(()) => {}
            Err(e) => warn!(
                "could not remove {}: {} (the next deployment tries again)",
                path.display(),
                e.explain().what
            ),
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, env: Option<&Path>) -> ReleaseEntry {
        ReleaseEntry {
            id,
            commit: Some(format!("c{id}")),
            deployed_unix: id,
            files_undo: true,
            previous_env: env.map(|p| KeptEnv::Link(p.to_path_buf())),
            env_changed_in_place: false,
            archive: None,
            env_id: None,
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_removes_what_older_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("wwwroot");
        let envs: Vec<PathBuf> = (1..=3)
            .map(|i| root.path().join(format!("env-{i}")))
            .collect();
        for (i, env) in envs.iter().enumerate() {
            std::fs::create_dir_all(env).unwrap();
            std::fs::create_dir_all(release_dir(&target, i as u64 + 1)).unwrap();
        }
        let mut releases = Releases::empty();
        releases.releases = vec![
            entry(1, None),
            entry(2, Some(&envs[0])),
            entry(3, Some(&envs[1])),
        ];
        let dropped = releases.prune(&target, 2);
        let said = remove_dropped(&dropped);
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        assert_eq!(
            releases.releases.iter().map(|r| r.id).collect::<Vec<_>>(),
            [2, 3]
        );
        // Release 2 is the oldest kept: nothing before it to go back to.
        assert_eq!(releases.releases[0].previous_env, None);
        assert!(!releases.releases[0].files_undo);
        assert!(!envs[0].exists() && envs[1].exists());
        assert!(!release_dir(&target, 1).exists() && !release_dir(&target, 2).exists());
        assert!(release_dir(&target, 3).exists());
        assert_eq!(releases.kept_envs(), vec![envs[1].clone()]);
    }

    #[test]
    fn an_unreadable_record_means_no_releases() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("wwwroot");
        std::fs::create_dir_all(dir(&target)).unwrap();
        std::fs::write(dir(&target).join(RECORD), "{not json").unwrap();
        assert!(Releases::read(&target).releases.is_empty());
        let mut releases = Releases::empty();
        releases.releases.push(entry(1, None));
        releases.write(&target).unwrap();
        assert_eq!(Releases::read(&target).releases, releases.releases);
    }
}
