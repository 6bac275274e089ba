//! The sync's first phase: walk source and target in parallel and decide every change.
//!
//! Nothing here writes. Every condition the user must fix (a folder in the way holding the app's
//! files, a link out of the repository under `--outside-links error`) fails here, so a failed
//! sync of that kind leaves the target exactly as it was.

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata, Permissions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use tracing::info;

use super::{
    OutsideLinks, Progress, Protected, SyncOptions, is_leftover_temp, link_inside, same_content,
};
use crate::ground::error::DeployError;
use crate::ground::paths;
use crate::sync::error::SyncError;
use crate::sync::listing::Listing;
use crate::sync::manifest::Manifest;

pub(super) use crate::sync::listing::Kind;

/// A target entry to delete (a folder only after everything in it).
#[derive(Debug)]
pub(super) struct Removal {
    pub relative: String,
    pub kind: Kind,
}

/// A file to copy, with what the copy must carry over.
#[derive(Debug)]
pub(super) struct FileCopy {
    pub relative: String,
    pub len: u64,
    pub modified: Option<SystemTime>,
    pub permissions: Permissions,
    /// A full-compare name: copied last.
    pub last: bool,
    /// The file in the target the copy overwrites (its path with the target's case), kept by
    /// the undo log first; `None` when the copy creates a new file.
    pub replaces: Option<String>,
}

/// Every change a sync makes, in the order the apply phase needs them.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub removals: Vec<Removal>,
    /// Folders to create, parents first.
    pub folders: Vec<String>,
    pub copies: Vec<FileCopy>,
    /// Links to create: (relative path, what it points to).
    pub links: Vec<(String, PathBuf)>,
    /// The next manifest: every file, folder and link synced; left empty by a plan from the
    /// record or git that changes nothing (`manifest_grows` says the manifest is the previous
    /// one: nothing reads it then).
    pub manifest: Vec<String>,
    /// Known without comparing (a plan from git or the record): whether the manifest gains
    /// entries, and whether it differs from the previous one at all.
    pub manifest_grows: Option<(bool, bool)>,
    pub unchanged: usize,
    pub kept: usize,
    /// Links found in the target: nothing under them is ever reached.
    pub target_links: Vec<String>,
    pub warnings: Vec<String>,
}

impl Plan {
    fn append(&mut self, other: Plan) {
        self.removals.extend(other.removals);
        self.folders.extend(other.folders);
        self.copies.extend(other.copies);
        self.links.extend(other.links);
        self.manifest.extend(other.manifest);
        self.unchanged += other.unchanged;
        self.kept += other.kept;
        self.target_links.extend(other.target_links);
        self.warnings.extend(other.warnings);
    }

    /// Manifest entries that would reach through a link in the target.
    pub fn through_links(
        &self,
        previous: &super::manifest::Lazy,
        ledger: &super::manifest::Lazy,
    ) -> Vec<(String, String)> {
        let mut found = Vec::new();
        // (The manifests are parsed only when the target has a link.)
        for link in &self.target_links {
            let prefix = format!("{}/", link.to_lowercase());
            for entry in previous.get().entries().chain(ledger.get().entries()) {
                if entry.starts_with(&prefix) {
                    found.push((entry.to_string(), link.clone()));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    /// Logs the changes as KuduSync does: one line each, up to `limit`.
    pub fn log_changes(&self, limit: usize) {
        let lines = self
            .removals
            .iter()
            .map(|r| match r.kind {
                Kind::Dir => format!("Deleting directory: '{}'", r.relative),
                _ => format!("Deleting file: '{}'", r.relative),
            })
            .chain(
                self.copies
                    .iter()
                    .map(|c| format!("Copying file: '{}'", c.relative)),
            )
            .chain(
                self.links
                    .iter()
                    .map(|(r, l)| format!("Linking: '{r}' -> '{}'", l.display())),
            );
        let total = self.removals.len() + self.copies.len() + self.links.len();
        for line in lines.take(limit) {
            info!("{line}");
        }
        if total > limit && limit > 0 {
            info!("... and {} more changes", total - limit);
        }
    }
}

/// One entry of a folder listing, from a single `lstat`.
struct Entry {
    name: String,
    kind: Kind,
    meta: Metadata,
}

/// Lists a folder without following links.
fn list(dir: &Path) -> Result<Vec<Entry>, DeployError> {
    let read = fs::read_dir(dir).map_err(|e| DeployError::io("list", dir, e))?;
    let mut entries = Vec::new();
    for item in read {
        let item = item.map_err(|e| DeployError::io("list", dir, e))?;
        let meta = item
            .metadata()
            .map_err(|e| DeployError::io("read the metadata of", item.path(), e))?;
        entries.push(Entry {
            name: item.file_name().to_string_lossy().into_owned(),
            kind: Kind::of(meta.file_type()),
            meta,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Whether names in `dir` fold case (`App.py` and `app.py` are one file): asked (when
/// `may_write`: a what-if sync writes nothing, not even a probe) of a probe file with a name never used before, removed at once; else of an
/// entry already there. An existing name can mislead: the kernel may still remember that its
/// other case was missing (a cached negative lookup, as on a cifs mount). For a folder that
/// does not exist yet, its parent is asked, without writing.
pub(super) fn folds_case(dir: &Path, may_write: bool) -> bool {
    if !dir.is_dir() {
        return dir.parent().and_then(existing_name_folds).unwrap_or(false);
    }
    if !may_write {
        return existing_name_folds(dir).unwrap_or(false);
    }
    let unique = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let name = case_probe_name(&unique);
    let probe = dir.join(&name);
    if fs::write(&probe, b"").is_err() {
        return existing_name_folds(dir).unwrap_or(false);
    }
    let folds = same_entry(&probe, &dir.join(name.to_uppercase()));
    let _ = fs::remove_file(&probe);
    folds
}

/// The case probe's name: a sync's temporary file's, so that one a killed sync left behind is
/// removed by the next sync that walks the folder.
pub(super) fn case_probe_name(unique: &str) -> String {
    format!(".kuduhook-case-probe-{unique}{}", super::TEMP_SUFFIX)
}

/// Asks an entry of `dir` that has letters whether its case-swapped name is the same entry.
fn existing_name_folds(dir: &Path) -> Option<bool> {
    let swapped = |name: &str| -> String {
        name.chars()
            .map(|c| match c.is_lowercase() {
                true => c.to_ascii_uppercase(),
                false => c.to_ascii_lowercase(),
            })
            .collect()
    };
    let existing = fs::read_dir(dir).ok().and_then(|read| {
        read.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|name| swapped(name) != *name)
    });
    existing.map(|name| same_entry(&dir.join(&name), &dir.join(swapped(&name))))
}

#[cfg(unix)]
fn same_entry(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Where two names reach one entry, they are that entry (Windows has no cheap inode check).
#[cfg(not(unix))]
fn same_entry(a: &Path, b: &Path) -> bool {
    fs::symlink_metadata(a).is_ok() && fs::symlink_metadata(b).is_ok()
}

fn join(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_string()
    } else {
        format!("{relative}/{name}")
    }
}

/// Decides a sync's changes.
pub(super) struct Planner<'a> {
    options: &'a SyncOptions,
    /// The source, absolute and lexically normalized, and as the disk resolves it.
    from: PathBuf,
    from_real: PathBuf,
    previous: &'a Manifest,
    ledger: &'a Manifest,
    progress: &'a Progress,
    /// The target folds names' case (an SMB share): `App.py` and `app.py` are one file there.
    folds_case: bool,
    /// The target refuses links (an SMB share without `mfsymlinks`): a link inside the
    /// repository is synced as a copy of what it leads to.
    links_refused: bool,
    /// The source's listing and the record of the last sync, when the source is not a git
    /// checkout: what tells a file whose time cannot ([`Planner::with_listings`]).
    listings: Option<(&'a Listing, Option<&'a Listing>)>,
}

impl<'a> Planner<'a> {
    pub fn new(
        options: &'a SyncOptions,
        previous: &'a Manifest,
        ledger: &'a Manifest,
        progress: &'a Progress,
        folds_case: bool,
    ) -> Planner<'a> {
        let from = paths::normalize(
            &std::path::absolute(&options.from).unwrap_or_else(|_| options.from.clone()),
        );
        let from_real = options.from.canonicalize().unwrap_or_else(|_| from.clone());
        Planner {
            options,
            from,
            from_real,
            previous,
            ledger,
            progress,
            folds_case,
            links_refused: !options.what_if
                && options.to.is_dir()
                && !crate::env::files::links_work(&options.to),
            listings: None,
        }
    }

    /// A walk that knows the source's content: a file of the same size and time in both is
    /// unchanged only if the record of the last sync (when the target's file is still as it
    /// recorded) holds the same content, or, without one, if its time is finer than a zip's 2
    /// seconds or the two files hold the same bytes. A zip's times cannot tell two versions
    /// written within 2 seconds apart.
    pub fn with_listings(mut self, source: &'a Listing, recorded: Option<&'a Listing>) -> Self {
        self.listings = Some((source, recorded));
        self
    }

    /// The key a name is matched by in the target: itself, or its lowercase where the target
    /// folds case.
    fn key(&self, name: &str) -> String {
        match self.folds_case {
            true => name.to_lowercase(),
            false => name.to_string(),
        }
    }

    pub fn plan(&self) -> Result<Plan, DeployError> {
        self.plan_dir("", self.options.to.is_dir())
    }

    /// Whether a previous deployment put `relative` into the target.
    fn is_ours(&self, relative: &str) -> bool {
        self.options.ignore_manifest
            || self.previous.contains(relative)
            || self.ledger.contains(relative)
    }

    fn protected(&self, relative: &str) -> Option<&Protected> {
        self.options
            .protected
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(relative))
    }

    fn src(&self, relative: &str) -> PathBuf {
        self.options.from.join(relative)
    }

    fn dst(&self, relative: &str) -> PathBuf {
        self.options.to.join(relative)
    }

    /// Plans folder `relative`, whose target counterpart exists (as a folder) or not.
    fn plan_dir(&self, relative: &str, dst_exists: bool) -> Result<Plan, DeployError> {
        let mut plan = Plan::default();
        let mut sources = Vec::new();
        for entry in list(&self.src(relative))? {
            let child = join(relative, &entry.name);
            if self.options.ignore.matches(&child, &entry.name) {
                continue;
            }
            if let Some(protected) = self.protected(&child) {
                plan.warnings.push(protected.in_repository.clone());
                continue;
            }
            if entry.kind == Kind::Dir && self.src(&child).join("pyvenv.cfg").is_file() {
                plan.warnings.push(format!(
                    "{child}/ is a virtual environment committed to the repository (it has \
                     pyvenv.cfg): not synced, the env is built on the server; add {child}/ to \
                     .gitignore"
                ));
                continue;
            }
            sources.push(entry);
        }
        if self.folds_case {
            let mut seen: HashMap<String, &str> = HashMap::new();
            for entry in &sources {
                if let Some(first) = seen.insert(entry.name.to_lowercase(), &entry.name) {
                    return Err(SyncError::CaseCollision {
                        first: join(relative, first),
                        second: join(relative, &entry.name),
                    }
                    .into());
                }
            }
        }
        let mut targets: HashMap<String, Entry> = HashMap::new();
        if dst_exists {
            for entry in list(&self.dst(relative))? {
                if entry.kind == Kind::Symlink {
                    plan.target_links.push(join(relative, &entry.name));
                }
                targets.insert(self.key(&entry.name), entry);
            }
        }

        // Target entries the source lacks (where the target keeps case, a case-only rename is
        // one: the old name goes; where it folds case, the entry is the renamed one).
        let source_names: HashSet<String> = sources.iter().map(|e| self.key(&e.name)).collect();
        let mut absent: Vec<&Entry> = targets
            .values()
            .filter(|t| !source_names.contains(&self.key(&t.name)))
            .collect();
        absent.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in absent {
            let child = join(relative, &entry.name);
            if self.options.ignore.matches(&child, &entry.name) || self.protected(&child).is_some()
            {
                continue;
            }
            if entry.kind != Kind::Dir && is_leftover_temp(&entry.name) {
                plan.removals.push(Removal {
                    relative: child,
                    kind: entry.kind,
                });
            } else if self.is_ours(&child) {
                self.plan_delete(&mut plan, child, entry.kind)?;
            } else {
                plan.kept += 1;
            }
        }

        let mut subdirs = Vec::new();
        for entry in &sources {
            self.progress.examined();
            let child = join(relative, &entry.name);
            let existing = targets.get(&self.key(&entry.name));
            match entry.kind {
                Kind::File => {
                    plan.manifest.push(child.clone());
                    // A case-only rename on a target that folds case: the old name is deleted
                    // and the file copied again under the new one (a rename over it would
                    // keep the old case on some filesystems: Windows under Wine, for one).
                    // (Anything but a file in the way is made room for first.)
                    let renamed = existing.filter(|t| t.name != entry.name && t.kind == Kind::File);
                    match renamed {
                        Some(old) => {
                            plan.removals.push(Removal {
                                relative: join(relative, &old.name),
                                kind: Kind::File,
                            });
                            self.plan_file(&mut plan, child, entry, None)?;
                        }
                        None => self.plan_file(&mut plan, child, entry, existing)?,
                    }
                }
                Kind::Symlink if self.links_refused => {
                    match self.link_as_copy(&child, entry, &mut plan.warnings) {
                        Some(followed) if followed.kind == Kind::File => {
                            plan.manifest.push(child.clone());
                            self.plan_file(&mut plan, child, &followed, existing)?;
                        }
                        Some(_) => {
                            plan.manifest.push(child.clone());
                            let exists = existing.is_some_and(|e| e.kind == Kind::Dir);
                            if !exists {
                                if let Some(other) = existing {
                                    plan.removals.push(Removal {
                                        relative: child.clone(),
                                        kind: other.kind,
                                    });
                                }
                                plan.folders.push(child.clone());
                            }
                            subdirs.push((child, exists));
                        }
                        None => {}
                    }
                }
                Kind::Symlink => self.plan_link(&mut plan, child, existing)?,
                Kind::Dir => {
                    plan.manifest.push(child.clone());
                    let exists = match existing.map(|e| e.kind) {
                        Some(Kind::Dir) => true,
                        Some(kind) => {
                            plan.removals.push(Removal {
                                relative: child.clone(),
                                kind,
                            });
                            false
                        }
                        None => false,
                    };
                    if !exists {
                        plan.folders.push(child.clone());
                    }
                    subdirs.push((child, exists));
                }
                Kind::Other => plan.warnings.push(format!(
                    "{child} is not a file, folder or link (a socket or pipe?): not synced"
                )),
            }
        }

        let planned: Vec<Plan> = subdirs
            .par_iter()
            .map(|(child, exists)| self.plan_dir(child, *exists))
            .collect::<Result<_, _>>()?;
        for sub in planned {
            plan.append(sub);
        }
        Ok(plan)
    }

    fn plan_file(
        &self,
        plan: &mut Plan,
        relative: String,
        source: &Entry,
        existing: Option<&Entry>,
    ) -> Result<(), DeployError> {
        let last = self.options.full_compare.matches(&relative, &source.name);
        let replaces = existing
            .filter(|t| t.kind == Kind::File)
            .map(|_| relative.clone());
        if let Some(target) = existing {
            if target.kind != Kind::File {
                self.make_room(plan, &relative, target.kind)?;
            } else if self.is_unchanged(&relative, source, target, last)? {
                plan.unchanged += 1;
                return Ok(());
            }
        }
        plan.copies.push(FileCopy {
            relative,
            len: source.meta.len(),
            modified: source.meta.modified().ok(),
            permissions: source.meta.permissions(),
            last,
            replaces,
        });
        Ok(())
    }

    fn is_unchanged(
        &self,
        relative: &str,
        source: &Entry,
        target: &Entry,
        full_compare: bool,
    ) -> Result<bool, DeployError> {
        if source.meta.len() != target.meta.len() {
            return Ok(false);
        }
        if full_compare || self.options.checksum {
            let (src, dst) = (self.src(relative), self.dst(relative));
            return same_content(&src, &dst).map_err(|e| DeployError::io("compare", src, e));
        }
        let same_time = matches!(
            (source.meta.modified(), target.meta.modified()),
            (Ok(a), Ok(b)) if a == b
        );
        match (same_time, self.listings) {
            (true, Some((listing, recorded))) => {
                self.same_by_listings(relative, target, listing, recorded)
            }
            _ => Ok(same_time),
        }
    }

    /// A file of the same size and time in source and target, with the source's listing: the
    /// same content?
    fn same_by_listings(
        &self,
        relative: &str,
        target: &Entry,
        listing: &Listing,
        recorded: Option<&Listing>,
    ) -> Result<bool, DeployError> {
        let listed = |l: &Listing| l.get(relative).and_then(|e| e.file()).copied();
        let source = listed(listing);
        let target_time = target
            .meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64);
        let as_recorded = recorded
            .and_then(listed)
            .filter(|r| r.size == target.meta.len() && Some(r.stamp.mtime) == target_time);
        match (source, as_recorded) {
            (Some(source), Some(recorded)) => Ok(source.sha256 == recorded.sha256),
            // A time finer than a zip's tells, as in any walk.
            _ if target_time.is_some_and(|t| t % 1_000_000_000 != 0) => Ok(true),
            _ => {
                let (src, dst) = (self.src(relative), self.dst(relative));
                same_content(&src, &dst).map_err(|e| DeployError::io("compare", src, e))
            }
        }
    }

    /// For a target that refuses links: what the link at `relative` leads to, followed, when it
    /// is a file or folder inside the repository (a folder that holds the link itself would
    /// never end); else `None`, with a warning saying why it is not synced.
    fn link_as_copy(
        &self,
        relative: &str,
        entry: &Entry,
        warnings: &mut Vec<String>,
    ) -> Option<Entry> {
        let src = self.src(relative);
        let link = fs::read_link(&src).unwrap_or_default();
        let skip = |why: &str| {
            format!(
                "{relative} is a link to {}, and the site's filesystem refuses links: {why}",
                link.display()
            )
        };
        let Ok(real) = src.canonicalize() else {
            warnings.push(skip("it leads nowhere, so it is not synced"));
            return None;
        };
        if !real.starts_with(&self.from_real) {
            warnings.push(skip("it leads outside the repository, so it is not synced"));
            return None;
        }
        let meta = fs::metadata(&src).ok()?;
        let real_parent = src.parent().and_then(|p| p.canonicalize().ok());
        if meta.is_dir() && real_parent.is_some_and(|p| p.starts_with(&real)) {
            warnings.push(skip("it leads to a folder holding it, so it is not synced"));
            return None;
        }
        warnings.push(skip("synced as a copy of what it leads to"));
        Some(Entry {
            name: entry.name.clone(),
            kind: Kind::of(meta.file_type()),
            meta,
        })
    }

    fn plan_link(
        &self,
        plan: &mut Plan,
        relative: String,
        existing: Option<&Entry>,
    ) -> Result<(), DeployError> {
        let src = self.src(&relative);
        let link = fs::read_link(&src).map_err(|e| DeployError::io("read the link", &src, e))?;
        // Inside by its text, and inside as the disk resolves it (no link out on the way).
        let rewritten = link_inside(&self.from, &relative, &link).filter(|_| {
            src.canonicalize()
                .map(|real| real.starts_with(&self.from_real))
                .unwrap_or(true)
        });
        let Some(rewritten) = rewritten else {
            if self.options.outside_links == OutsideLinks::Error {
                return Err(SyncError::OutsideLink { relative, link }.into());
            }
            plan.warnings.push(format!(
                "{relative} links to {}, outside the repository: not synced (commit the file \
                 itself; --outside-links error makes this fail the sync)",
                link.display()
            ));
            return Ok(());
        };
        plan.manifest.push(relative.clone());
        if let Some(target) = existing {
            let same = target.kind == Kind::Symlink
                && fs::read_link(self.dst(&relative)).ok().as_ref() == Some(&rewritten);
            if same {
                plan.unchanged += 1;
                return Ok(());
            }
            self.make_room(plan, &relative, target.kind)?;
        }
        plan.links.push((relative, rewritten));
        Ok(())
    }

    /// Plans the deletion of an entry a previous deployment made; a folder keeps what is not
    /// ours (and then stays). Returns how many entries were kept.
    fn plan_delete(
        &self,
        plan: &mut Plan,
        relative: String,
        kind: Kind,
    ) -> Result<usize, DeployError> {
        if kind != Kind::Dir {
            plan.removals.push(Removal { relative, kind });
            return Ok(0);
        }
        let mut kept = 0;
        for entry in list(&self.dst(&relative))? {
            let child = join(&relative, &entry.name);
            if entry.kind == Kind::Symlink {
                plan.target_links.push(child.clone());
            }
            if self.is_ours(&child) || (entry.kind != Kind::Dir && is_leftover_temp(&entry.name)) {
                kept += self.plan_delete(plan, child, entry.kind)?;
            } else {
                kept += 1;
            }
        }
        if kept == 0 {
            plan.removals.push(Removal { relative, kind });
        } else {
            plan.kept += kept;
        }
        Ok(kept)
    }

    /// A file or link from the source takes the place of whatever else the target has there.
    fn make_room(
        &self,
        plan: &mut Plan,
        relative: &str,
        existing: Kind,
    ) -> Result<(), DeployError> {
        if existing == Kind::Dir {
            return self.clear_folder(plan, relative);
        }
        plan.removals.push(Removal {
            relative: relative.to_string(),
            kind: existing,
        });
        Ok(())
    }

    /// The source has a file or link where the target has a folder: the folder must go whole,
    /// which it can only when nothing in it is the app's own.
    fn clear_folder(&self, plan: &mut Plan, relative: &str) -> Result<(), DeployError> {
        let mut tentative = Plan::default();
        let kept = self.plan_delete(&mut tentative, relative.to_string(), Kind::Dir)?;
        if kept != 0 {
            return Err(SyncError::FolderInTheWay {
                relative: relative.to_string(),
                kept,
            }
            .into());
        }
        plan.append(tentative);
        Ok(())
    }
}
