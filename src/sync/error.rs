//! What the repository holds that the site cannot take.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`SyncError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};

/// What the repository holds that the site cannot take.
#[derive(Debug)]
pub enum SyncError {
    /// Two repository entries whose names differ only in case, for a target that folds case.
    CaseCollision { first: String, second: String },
    /// The repository has a file or link where the site has a folder holding the app's files.
    FolderInTheWay { relative: String, kept: usize },
    /// A link in the repository points outside it, and the sync was told to refuse such links.
    OutsideLink { relative: String, link: PathBuf },
}

impl Failure for SyncError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            SyncError::CaseCollision { first, second } => (
                format!("the repository holds both {first} and {second}"),
                "the site's filesystem ignores case in names (App Service's /home is an SMB \
                 share): there they are one file, and one would silently replace the other"
                    .to_string(),
                format!(
                    "keep one of them (git rm --cached {second}), or rename one so that the \
                     names differ in more than case"
                ),
            ),
            SyncError::FolderInTheWay { relative, kept } => (
                format!("the repository has a file named {relative} where the site has a folder"),
                format!(
                    "the folder holds {} that no deployment put there (written by the app), so \
                     it cannot be replaced without losing them",
                    crate::ground::logging::plural(*kept, "entry")
                ),
                format!(
                    "move what the app keeps in {relative}/ elsewhere (or delete the folder in \
                     the site), or rename {relative} in the repository, then deploy again"
                ),
            ),
            SyncError::OutsideLink { relative, link } => (
                format!(
                    "{relative} in the repository is a link to {}, outside the repository",
                    link.display()
                ),
                "outside links were set to fail the sync (--outside-links error or \
                 KUDUHOOK_SYNC_OUTSIDE_LINKS=error): the site would serve files that are not \
                 part of the deployment"
                    .to_string(),
                format!(
                    "commit the file itself instead of a link to it, or remove {relative} from \
                     the repository"
                ),
            ),
        };
        Explanation { what, why, fix }
    }
}
