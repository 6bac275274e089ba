//! The sync step: the pipeline's use of [`crate::sync`], with the deployment's settings.

use std::path::PathBuf;

use tracing::info;

use crate::config::DeployConfig;
use crate::steps::Outcome;
use crate::sync::{self, SyncFailure};

/// How many changed paths the deployment log lists before it summarizes.
const LISTED_CHANGES: usize = 20;

/// Syncs the repository into the site and logs what changed; what it replaces is kept in
/// the undo log `undo` (see [`crate::sync::undo`]).
///
/// `listed`: the source as the start check just listed it, reused (one stat per file).
/// The sync's options in a deployment: the config's, saying in the log what it does.
pub fn options(config: &DeployConfig) -> sync::SyncOptions {
    let mut options = config.sync.clone();
    options.listed_changes = LISTED_CHANGES;
    options
}

pub fn run(
    config: &DeployConfig,
    undo: Option<PathBuf>,
    looked: Option<sync::Looked>,
) -> Result<Outcome, SyncFailure> {
    let c = config;
    if c.in_place {
        return Ok(Outcome::Skipped(
            "in-place deployment: the repository is the site".into(),
        ));
    }
    let mut options = options(c);
    options.undo = undo;
    if c.ignore_manifest {
        info!(
            "Clean deployment (IGNORE_MANIFEST=1): whatever the repository lacks is deleted, \
             except {}/",
            c.env_name.value
        );
    }
    if options.checksum {
        info!("Comparing file contents ({})", c.sync_checksum.origin);
    }
    let report = sync::sync_looked(&options, looked)?;
    let mut summary = report.summary();
    if !c.dry_run {
        summary.push_str(&format!("; manifest {}", c.next_manifest.value.display()));
    }
    Ok(Outcome::Done(summary))
}
