//! `kuduhook rollback`: the site back to a kept release in one step, under the deploy lock.
//!
//! Going back from the live release to the one before it undoes the live release's sync
//! (its undo log puts back every file it replaced or deleted and removes what it added) and
//! switches the env it replaced back in; going back further repeats that, newest first. Then
//! the platform's start file names that env again, and the releases rolled back are removed.
//! Every check that can refuse a rollback runs before anything changes. Undoing a release
//! also forgets the record of the last sync (the next deployment walks the whole site) and
//! adds the files brought back to the ledger, so that the next `git push` deploys correctly
//! on top: Kudu's previous manifest is then the rolled-back-from release's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::history::{self, KeptEnv, ReleaseEntry, Releases, RollbackRecord};
use crate::env::record::now_unix;
use crate::env::store::{EnvStore, LiveEnv, Previous, SwitchMode, Switched};
use crate::ground::error::DeployError;
use crate::ground::logging::{seconds, short_commit};
use crate::platform::linux_start;
use crate::release::error::ReleaseError;
use crate::settings::Platform;
use crate::sync::undo;

/// What to roll back.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The site's wwwroot.
    pub target: PathBuf,
    /// The commit (or its prefix) of the release to go back to; `None`: the one before the
    /// live one.
    pub to: Option<String>,
    pub platform: Platform,
    /// How long to wait for a deployment in progress.
    pub lock_wait: Duration,
}

/// A rollback that failed, and whether it had changed the site by then (every check that
/// can refuse it runs before anything changes).
#[derive(Debug)]
pub struct RollbackFailure {
    pub error: DeployError,
    pub changed: bool,
}

/// Rolls the site back; see the module documentation.
pub fn rollback(options: &RollbackOptions) -> Result<RollbackRecord, RollbackFailure> {
    let unchanged = |error| RollbackFailure {
        error,
        changed: false,
    };
    let started = Instant::now();
    let target = &options.target;
    let env_path = crate::release::record::DeploymentRecord::read(target)
        .ok()
        .flatten()
        .map(|r| r.env)
        .ok_or_else(|| {
            ReleaseError::NoDeploymentRecord {
                target: target.clone(),
                record: crate::release::record::path(target),
            }
            .into()
        })
        .map_err(unchanged)?;
    let _lock = crate::env::lock::acquire(target, None, options.lock_wait, Duration::from_secs(20))
        .map_err(unchanged)?;
    let mut releases = Releases::read(target);
    let dest = destination(&releases, options.to.as_deref(), target).map_err(unchanged)?;
    let undone: Vec<_> = releases.releases[dest + 1..].to_vec();
    if let Some(stuck) = undone.iter().find(|r| !r.files_undo) {
        return Err(unchanged(
            ReleaseError::ReleaseNotUndoable {
                commit: describe(stuck),
            }
            .into(),
        ));
    }
    let env_name = env_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "env".into());
    let store = store_for(target, &env_name, options.platform);
    roll_back_to(options, &mut releases, dest, &undone, &store, started).map_err(|error| {
        RollbackFailure {
            error,
            changed: true,
        }
    })
}

/// The rollback itself, once it is known to be possible: `undone` (the releases after `dest`)
/// undone newest first.
fn roll_back_to(
    options: &RollbackOptions,
    releases: &mut Releases,
    dest: usize,
    undone: &[ReleaseEntry],
    store: &EnvStore,
    started: Instant,
) -> Result<RollbackRecord, DeployError> {
    let target = &options.target;
    let env_name = store
        .live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    super::repair_interrupted(target, options.platform, || Some(store.clone()))?;
    let from = releases.current().and_then(|r| r.commit.clone());
    let to = releases.releases[dest].commit.clone();
    let to_described = describe(&releases.releases[dest]);
    info!(
        "Rolling back {} from {} to {to_described}",
        target.display(),
        releases.current().map(describe).unwrap_or_default(),
    );

    let mut said = Vec::new();
    for release in undone.iter().rev() {
        let dir = history::undo_dir(target, release.id);
        let files = undo::put_back(&dir, target, options.platform, false)?.ok_or_else(|| {
            ReleaseError::ReleaseNotUndoable {
                commit: describe(release),
            }
        })?;
        let env = match (&release.previous_env, release.env_changed_in_place) {
            (Some(kept), _) => {
                switch_back(store, kept)?;
                format!("env switched back to {}", kept.path().display())
            }
            (None, true) => {
                warn!(
                    "release {} changed the env in place (KUDUHOOK_ENV_MODE=incremental): the \
                     env before it cannot come back, the site keeps the current one",
                    describe(release)
                );
                "env kept (it was changed in place)".to_string()
            }
            (None, false) => "env unchanged (the same env served both)".to_string(),
        };
        let line = format!(
            "Undid release {}: {}; {env}",
            describe(release),
            files.describe()
        );
        info!("{line}");
        said.push(line);
        // Recorded one release at a time: a rollback that stops can be run again.
        releases.releases.pop();
        releases.write(target)?;
        let _ = crate::env::files::remove_fast(&history::release_dir(target, release.id));
    }
    if options.platform == Platform::Linux && store.live.join("pyvenv.cfg").is_file() {
        let keep = crate::ground::paths::state_dir(target);
        let archive = releases.current().and_then(|r| r.archive.as_deref());
        if let Some(change) = linux_start::publish(target, &env_name, archive, &keep)? {
            info!("{}", change.said);
        }
    }
    let record = RollbackRecord {
        from_commit: from,
        to_commit: to,
        at_unix: now_unix(),
        seconds: started.elapsed().as_secs_f64(),
        what: said.join("; "),
    };
    releases.last_rollback = Some(record.clone());
    releases.write(target)?;
    info!(
        "Rolled back to {to_described} in {}: the site serves it now. The next `git push` \
         deploys on top of it.",
        seconds(started.elapsed())
    );
    Ok(record)
}

/// The index of the release to go back to.
fn destination(releases: &Releases, to: Option<&str>, target: &Path) -> Result<usize, DeployError> {
    let list = &releases.releases;
    let kept: Vec<String> = list.iter().rev().map(describe).collect();
    if list.len() < 2 {
        return Err(ReleaseError::NoReleaseToRollBackTo {
            target: target.to_path_buf(),
            kept,
        }
        .into());
    }
    let Some(wanted) = to else {
        return Ok(list.len() - 2);
    };
    let wanted = wanted.trim().to_ascii_lowercase();
    list[..list.len() - 1]
        .iter()
        .rposition(|r| {
            !wanted.is_empty()
                && r.commit
                    .as_deref()
                    .is_some_and(|c| c.to_ascii_lowercase().starts_with(&wanted))
        })
        .ok_or(
            ReleaseError::ReleaseNotKept {
                commit: wanted,
                kept,
            }
            .into(),
        )
}

/// The site's env store as the envs kept were made: link mode where the live env is a link.
fn store_for(target: &Path, env_name: &str, platform: Platform) -> EnvStore {
    let probe = EnvStore::new(target, env_name, platform, SwitchMode::Link);
    let mode = match probe.live_env() {
        LiveEnv::Link(_) => SwitchMode::Link,
        _ => SwitchMode::Move,
    };
    EnvStore::new(target, env_name, platform, mode)
}

/// Makes the kept env the live one and removes the one the site ran.
fn switch_back(store: &EnvStore, kept: &KeptEnv) -> Result<(), DeployError> {
    let built = match store.live_env() {
        LiveEnv::Link(to) => to,
        // A live folder is displaced by the switch and removed with it.
        _ => store.beside("kuduhook-new"),
    };
    let previous = match kept {
        KeptEnv::Link(path) => Previous::Link(path.clone()),
        KeptEnv::Folder(path) => Previous::Folder(path.clone()),
    };
    store.roll_back(&Switched {
        built,
        previous,
        not_atomic: false,
    })
}

/// A release as the log names it: by its commit, else by when it was deployed.
fn describe(release: &ReleaseEntry) -> String {
    match &release.commit {
        Some(c) => format!("commit {}", short_commit(c)),
        None => format!(
            "the deployment of {}",
            crate::ground::logging::utc(release.deployed_unix)
        ),
    }
}
