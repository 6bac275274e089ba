//! What a site's deployments take on its disk, and what of it could go: the live env and its
//! archive, and what kuduhook keeps beside the site (the envs the kept releases would roll back
//! to, env archives, the releases' undo logs, the sync's records), with the filesystem's space.
//! Said at the end of every deployment (as Heroku prints a slug's size), by `kuduhook status`
//! (with a warning above 80% used), and after a failure that found the disk full.

use std::path::{Path, PathBuf};

use crate::env::archive::ARCHIVES_DIR;
use crate::ground::disk::{self, Space};
use crate::ground::logging::bytes;
use crate::ground::paths::state_dir;
use crate::release::history::Releases;

/// Above this share of the filesystem used, `kuduhook status` warns.
pub const WARN_PERCENT: u64 = 80;

/// The sizes of what a site's deployments keep.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SpaceReport {
    /// The live env (the folder its path or link leads to); `None` when not walked.
    pub env: Option<u64>,
    /// The live env's archive, where the env is shipped as one.
    pub archive: Option<u64>,
    /// The envs the kept releases would roll back to, each with its size (0 when not walked).
    pub kept_envs: Vec<(PathBuf, u64)>,
    /// Whether the envs were walked (not on a network share at every deployment).
    pub envs_walked: bool,
    /// Every env archive kuduhook keeps (the live one's included).
    pub archives: u64,
    /// The archives (and their records) of envs other than the live one.
    pub older_archives: u64,
    /// Everything in kuduhook's folder beside the site not counted above (undo logs, records).
    pub other: u64,
    /// The filesystem holding the site.
    pub filesystem: Option<Space>,
    pub target: PathBuf,
}

impl SpaceReport {
    /// Measures the site at `target` whose live env is `env` (its archive, if any, named).
    /// Walks each folder it sizes, the envs only with `walk_envs` (on a network share, each
    /// file a round trip: a deployment there sizes the archives alone).
    pub fn measure(
        target: &Path,
        env: &Path,
        archive: Option<&Path>,
        walk_envs: bool,
    ) -> SpaceReport {
        let live = std::fs::canonicalize(env).unwrap_or_else(|_| env.to_path_buf());
        let state = state_dir(target);
        let size = |path: &Path| if walk_envs { disk::tree_size(path) } else { 0 };
        let kept_envs: Vec<(PathBuf, u64)> = Releases::read(target)
            .kept_envs()
            .into_iter()
            .filter(|e| e.exists() && std::fs::canonicalize(e).ok().as_ref() != Some(&live))
            .map(|e| {
                let bytes = size(&e);
                (e, bytes)
            })
            .collect();
        let env_bytes = walk_envs.then(|| disk::tree_size(&live));
        // One listing of the archives: all of them, and those of envs other than the live one
        // (the live archive and its record are the live env's).
        let live_name = archive
            .and_then(|a| a.file_name())
            .map(|n| n.to_os_string());
        let (mut archives, mut older_archives) = (0, 0);
        for entry in std::fs::read_dir(state.join(ARCHIVES_DIR))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(len) = entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len())
            else {
                continue;
            };
            let name = entry.file_name();
            let live = live_name.as_ref().is_some_and(|live| {
                let mut record = live.clone();
                record.push(".json");
                &name == live || name == record
            });
            archives += len;
            if !live {
                older_archives += len;
            }
        }
        // The rest of the state folder, without the envs kept in it (link mode) and the
        // archives: undo logs and records. Not walked where the envs are not.
        let other = match walk_envs {
            true => {
                let in_state = disk::tree_size(&state);
                let envs_in_state: u64 = kept_envs
                    .iter()
                    .filter(|(e, _)| e.starts_with(&state))
                    .map(|(_, bytes)| bytes)
                    .sum::<u64>()
                    + if live.starts_with(&state) {
                        env_bytes.unwrap_or(0)
                    } else {
                        0
                    };
                in_state.saturating_sub(archives + envs_in_state)
            }
            false => 0,
        };
        SpaceReport {
            env: env_bytes,
            archive: archive
                .and_then(|a| std::fs::metadata(a).ok())
                .map(|m| m.len()),
            kept_envs,
            envs_walked: walk_envs,
            archives,
            older_archives,
            other,
            filesystem: disk::space(target),
            target: target.to_path_buf(),
        }
    }

    /// What kuduhook keeps beyond the live env and its archive.
    pub fn kept(&self) -> u64 {
        let kept_envs: u64 = self.kept_envs.iter().map(|(_, s)| s).sum();
        kept_envs + self.older_archives + self.other
    }

    /// "env 45.2 MiB, its archive 12.0 MiB; kuduhook keeps 60.1 MiB beside the site (...);
    /// 3.0 GiB free of 10.0 GiB (70% used) on the filesystem holding /home/site/wwwroot".
    pub fn summary(&self) -> String {
        let mut out = match self.env {
            Some(env) => format!("env {}", bytes(env)),
            None => "env not sized here (on a network share every file is a round trip: \
                     `kuduhook status` sizes it)"
                .to_string(),
        };
        if let Some(archive) = self.archive {
            out.push_str(&format!(", its archive {}", bytes(archive)));
        }
        match self.envs_walked {
            true => out.push_str(&format!(
                "; kuduhook keeps {} beside the site ({})",
                bytes(self.kept()),
                self.parts()
            )),
            false => out.push_str(&format!(
                "; kuduhook keeps beside the site {} for rollbacks and {} of older env archives",
                match self.kept_envs.len() {
                    1 => "1 env".to_string(),
                    n => format!("{n} envs"),
                },
                bytes(self.older_archives)
            )),
        }
        if let Some(space) = self.filesystem {
            out.push_str(&format!(
                "; {} free of {} ({}% used) on the filesystem holding {}",
                bytes(space.free),
                bytes(space.total),
                space.used_percent(),
                self.target.display()
            ));
        }
        out
    }

    fn parts(&self) -> String {
        let envs: u64 = self.kept_envs.iter().map(|(_, s)| s).sum();
        let mut parts = vec![match self.kept_envs.len() {
            0 => "no env kept for rollbacks".to_string(),
            1 => format!("1 env kept for rollbacks {}", bytes(envs)),
            n => format!("{n} envs kept for rollbacks {}", bytes(envs)),
        }];
        if self.older_archives > 0 {
            parts.push(format!("older env archives {}", bytes(self.older_archives)));
        }
        parts.push(format!("undo logs and records {}", bytes(self.other)));
        parts.join(", ")
    }

    /// What could be freed, and the setting for it: for a full disk and for `status`.
    pub fn freeable(&self) -> String {
        let envs: u64 = self.kept_envs.iter().map(|(_, s)| s).sum();
        let older = self.older_archives;
        let mut parts = Vec::new();
        if !self.kept_envs.is_empty() {
            parts.push(format!(
                "{} of envs kept for rolling back {} (KUDUHOOK_KEEP_RELEASES=1 keeps none: the \
                 next deployment removes them)",
                match self.envs_walked {
                    true => bytes(envs),
                    false => "the size".to_string(),
                },
                match self.kept_envs.len() {
                    1 => "1 release".to_string(),
                    n => format!("{n} releases"),
                }
            ));
        }
        if older > 0 {
            parts.push(format!(
                "{} of older env archives (the next deployment that succeeds removes them)",
                bytes(older)
            ));
        }
        match parts.is_empty() {
            true => "Nothing kuduhook keeps beside the site could go: no env is kept for rolling \
                     back and no older env archive; the space is the live env's, the app's \
                     files and whatever else is on that filesystem"
                .to_string(),
            false => format!(
                "What kuduhook keeps beside the site that could go: {}",
                parts.join("; ")
            ),
        }
    }

    /// The warning `status` gives when the filesystem is fuller than [`WARN_PERCENT`].
    pub fn warning(&self) -> Option<String> {
        let space = self.filesystem?;
        (space.used_percent() > WARN_PERCENT).then(|| {
            format!(
                "warning: the filesystem holding {} is {}% used ({} free): a deployment that \
                 copies the env or installs packages may not fit. {}",
                self.target.display(),
                space.used_percent(),
                bytes(space.free),
                self.freeable()
            )
        })
    }
}
