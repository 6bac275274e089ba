//! The releases a site keeps: no record, nothing to roll back to.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`ReleaseError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};

/// The releases a site keeps: no record, nothing to roll back to.
#[derive(Debug)]
pub enum ReleaseError {
    /// `kuduhook status` found no record of a deployment into the target.
    NoDeploymentRecord { target: PathBuf, record: PathBuf },
    /// `kuduhook rollback` found no release kept before the live one.
    NoReleaseToRollBackTo { target: PathBuf, kept: Vec<String> },
    /// `kuduhook rollback --to` named a commit no kept release (before the live one) has.
    ReleaseNotKept { commit: String, kept: Vec<String> },
    /// A release to roll back has no undo log of its files (an in-place deployment, or one
    /// whose sync step was disabled).
    ReleaseNotUndoable { commit: String },
}

impl Failure for ReleaseError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            ReleaseError::NoDeploymentRecord { target, record } => (
                format!("no deployment into {} is recorded", target.display()),
                format!(
                    "every kuduhook deploy (except --dry-run) writes {}, and there is none",
                    record.display()
                ),
                "pass the site's wwwroot with --target (on App Service: /home/site/wwwroot), or \
                 deploy once"
                    .to_string(),
            ),
            ReleaseError::NoReleaseToRollBackTo { target, kept } => (
                format!(
                    "there is no release to roll back to in {}: kept {}",
                    target.display(),
                    match kept.is_empty() {
                        true => "none".to_string(),
                        false => format!("only the live one ({})", kept.join(", ")),
                    }
                ),
                format!(
                    "a rollback goes back to a successful deployment kept before the live one; \
                     a site keeps {} of them ({}, default {}), starting with the deployment \
                     after the first one by a kuduhook that keeps releases",
                    crate::settings::name::KUDUHOOK_KEEP_RELEASES,
                    "the live one included",
                    super::DEFAULT_KEEP
                ),
                "deploy the commit you want (git push it, or `git revert` and push); to roll back \
                 next time, keep KUDUHOOK_KEEP_RELEASES at 2 or more"
                    .to_string(),
            ),
            ReleaseError::ReleaseNotKept { commit, kept } => (
                format!("no release kept before the live one has commit {commit}"),
                format!(
                    "the site keeps these releases, newest (live) first: {}",
                    kept.join(", ")
                ),
                "name one of the older ones with --to, or run `kuduhook rollback` without --to \
                 for the one before the live one; to go further back, raise \
                 KUDUHOOK_KEEP_RELEASES for the next deployments"
                    .to_string(),
            ),
            ReleaseError::ReleaseNotUndoable { commit } => (
                format!("release {commit} cannot be rolled back: its files were not kept"),
                "its deployment did not sync the files (an in-place deployment, or the sync step \
                 was disabled), so there is no record of what it replaced"
                    .to_string(),
                "deploy the commit you want instead (git push it)".to_string(),
            ),
        };
        Explanation { what, why, fix }
    }
}
