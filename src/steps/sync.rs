//! The sync step: copy the repository into the site with KuduSync's semantics.
//!
//! [`run`] is the step as the pipeline runs it; [`sync`] is the algorithm, usable on its own.
//!
//! - Only changed files are copied: missing in the target, or size or modification time differ
//!   (`web.config` is compared by content). A copy is written beside its destination and
//!   renamed over it, so the running app never reads half a file; it keeps the source's mtime.
//! - A target entry the source lacks is deleted only when the previous manifest lists it
//!   (everything, for a clean deployment), so files the app wrote itself survive; a folder goes
//!   only once empty. The env folder is never synced or deleted.
//! - Ignore entries match a name at any depth (case-insensitive), `*suffix`, or a
//!   root-relative path with `/`. Ignored entries never enter the manifest.
//! - The manifest of what was synced is written only when the sync succeeds.
//!
//! Target entries are examined with `lstat` and never followed: a symlink in the target is
//! deleted as a link, never walked into, so nothing outside the target is ever touched.

use std::collections::{HashMap, HashSet};
use std::fs::{self, FileType, Metadata};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::DeployConfig;
use crate::errors::DeployError;
use crate::logging::{bytes, plural};
use crate::manifest::{self, Manifest};
use crate::paths;
use crate::platform::Platform;
use crate::steps::Outcome;
use crate::steps::env::parked_dir;

/// Names whose content, not just size and time, decides whether they changed.
const FULL_COMPARE: [&str; 1] = ["web.config"];

/// How many changed paths the log lists before it summarizes.
const LISTED_CHANGES: usize = 20;

/// How often a long sync says it is still working (KuduSync's interval).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(20);

/// What to sync, and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub from: PathBuf,
    pub to: PathBuf,
    pub previous_manifest: PathBuf,
    pub next_manifest: PathBuf,
    pub ignore: IgnoreList,
    /// A clean deployment (`IGNORE_MANIFEST=1`): delete whatever the source lacks.
    pub ignore_manifest: bool,
    /// Names at the target's root that are never synced nor deleted (the env).
    pub protected: Vec<String>,
    /// Compute and report, change nothing.
    pub what_if: bool,
    pub platform: Platform,
}

/// What a sync did (or, in what-if mode, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub copied: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Entries absent from the source that no manifest lists: written by the app, kept.
    pub kept: usize,
    pub bytes_copied: u64,
    /// No previous manifest existed: treated as Kudu's stock first-deployment manifest.
    pub first_deployment: bool,
    /// The first changes, as "copy x" / "delete y", for the log.
    pub changes: Vec<String>,
}

/// KuduSync's ignore list.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    names: HashSet<String>,
    suffixes: Vec<String>,
    paths: HashSet<String>,
}

impl IgnoreList {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> IgnoreList {
        let mut list = IgnoreList::default();
        for entry in entries {
            let entry = entry.as_ref().trim().replace('\\', "/");
            let entry = entry.trim_matches('/').to_lowercase();
            if entry.is_empty() {
                continue;
            }
            if let Some(suffix) = entry.strip_prefix('*') {
                list.suffixes.push(suffix.to_string());
            } else if entry.contains('/') {
                list.paths.insert(entry);
            } else {
                list.names.insert(entry);
            }
        }
        list
    }

    /// Whether the entry `name` at `relative` (`/`-separated) is ignored.
    pub fn matches(&self, relative: &str, name: &str) -> bool {
        let name = name.to_lowercase();
        self.names.contains(&name)
            || self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
            || (!self.paths.is_empty() && self.paths.contains(&relative.to_lowercase()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

struct Entry {
    name: String,
    kind: Kind,
    meta: Metadata,
}

/// Lists a folder without following links: one `lstat` per entry.
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

fn join(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_string()
    } else {
        format!("{relative}/{name}")
    }
}

/// The sync step: syncs the repository into the site, logs what changed, and says whether any
/// file in the site changed.
pub fn run(config: &DeployConfig) -> Result<(Outcome, bool), DeployError> {
    let c = config;
    if c.in_place {
        return Ok((
            Outcome::Skipped("in-place deployment: the repository is the site".into()),
            false,
        ));
    }
    let env_name = &c.env_name.value;
    let options = SyncOptions {
        from: c.source.value.clone(),
        to: c.target.value.clone(),
        previous_manifest: c.previous_manifest.value.clone(),
        next_manifest: c.next_manifest.value.clone(),
        ignore: IgnoreList::new(&c.sync_ignore_list()),
        ignore_manifest: c.ignore_manifest,
        protected: vec![
            env_name.clone(),
            parked_dir(Path::new(env_name))
                .to_string_lossy()
                .into_owned(),
        ],
        what_if: c.dry_run,
        platform: c.platform,
    };
    if c.ignore_manifest {
        info!(
            "Clean deployment (IGNORE_MANIFEST=1): whatever the repository lacks is deleted, \
             except {env_name}/"
        );
    }
    let report = sync(&options)?;
    if report.first_deployment {
        info!(
            "First deployment: no previous manifest at {}",
            c.previous_manifest.value.display()
        );
    }
    let changed = report.copied + report.deleted;
    for change in &report.changes {
        info!("{change}");
    }
    if changed > report.changes.len() {
        info!("... and {} more changes", changed - report.changes.len());
    }
    let mut summary = if changed == 0 {
        format!(
            "Nothing changed: {} unchanged",
            plural(report.unchanged, "file")
        )
    } else {
        format!(
            "{} {} ({}), deleted {}, {} unchanged",
            if c.dry_run { "Would copy" } else { "Copied" },
            plural(report.copied, "file"),
            bytes(report.bytes_copied),
            report.deleted,
            report.unchanged
        )
    };
    if report.kept > 0 {
        summary.push_str(&format!(
            "; kept {} not from the repository (written by the app)",
            plural(report.kept, "entry")
        ));
    }
    if !c.dry_run {
        summary.push_str(&format!("; manifest {}", c.next_manifest.value.display()));
    }
    Ok((Outcome::Done(summary), !c.dry_run && changed > 0))
}

/// Syncs `from` into `to`; see the module documentation for the rules.
pub fn sync(options: &SyncOptions) -> Result<SyncReport, DeployError> {
    let previous = Manifest::read(&options.previous_manifest).map_err(|e| {
        DeployError::io("read the previous manifest", &options.previous_manifest, e)
    })?;
    let mut syncer = Syncer {
        options,
        first_deployment: previous.is_none(),
        previous: previous.unwrap_or_else(Manifest::first_deployment),
        next: Vec::new(),
        report: SyncReport::default(),
        processed: 0,
        last_progress: Instant::now(),
    };
    syncer.report.first_deployment = syncer.first_deployment;
    let to_exists = options.to.is_dir();
    if !to_exists && !options.what_if {
        fs::create_dir_all(&options.to)
            .map_err(|e| DeployError::io("create the target folder", &options.to, e))?;
    }
    syncer.sync_dir("", &options.from, &options.to, to_exists)?;
    if !options.what_if {
        manifest::write(&options.next_manifest, &syncer.next, options.platform)
            .map_err(|e| DeployError::io("write the manifest", &options.next_manifest, e))?;
    }
    Ok(syncer.report)
}

struct Syncer<'a> {
    options: &'a SyncOptions,
    previous: Manifest,
    first_deployment: bool,
    next: Vec<String>,
    report: SyncReport,
    processed: usize,
    last_progress: Instant,
}

impl Syncer<'_> {
    /// Whether this sync may delete `relative`: a previous deployment put it there.
    fn is_ours(&self, relative: &str) -> bool {
        self.options.ignore_manifest || self.previous.contains(relative)
    }

    fn is_protected(&self, relative: &str) -> bool {
        self.options
            .protected
            .iter()
            .any(|p| p.eq_ignore_ascii_case(relative))
    }

    fn note(&mut self, change: String) {
        if self.report.changes.len() < LISTED_CHANGES {
            self.report.changes.push(change);
        }
    }

    fn tick(&mut self) {
        self.processed += 1;
        if self.processed.is_multiple_of(256) && self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            info!("Processed {} files...", self.processed);
            self.last_progress = Instant::now();
        }
    }

    fn sync_dir(
        &mut self,
        relative: &str,
        src: &Path,
        dst: &Path,
        dst_exists: bool,
    ) -> Result<(), DeployError> {
        let mut sources = Vec::new();
        for entry in list(src)? {
            let child = join(relative, &entry.name);
            if self.options.ignore.matches(&child, &entry.name) {
                continue;
            }
            if self.is_protected(&child) {
                warn!(
                    "the repository has its own {child}/: it is not synced, so it cannot replace \
                     the live env (remove it from the repository, or rename the env with \
                     KUDUHOOK_ENV_NAME)"
                );
                continue;
            }
            sources.push(entry);
        }
        let mut targets: HashMap<String, Entry> = HashMap::new();
        if dst_exists {
            for entry in list(dst)? {
                targets.insert(entry.name.clone(), entry);
            }
        }
        let source_names: HashSet<&str> = sources.iter().map(|e| e.name.as_str()).collect();

        // Deletions first, so that a case-only rename frees its name before the copy.
        let mut absent: Vec<&Entry> = targets
            .values()
            .filter(|t| !source_names.contains(t.name.as_str()))
            .collect();
        absent.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in absent {
            let child = join(relative, &entry.name);
            if self.options.ignore.matches(&child, &entry.name) || self.is_protected(&child) {
                continue;
            }
            if self.is_ours(&child) {
                self.delete(&child, &dst.join(&entry.name), entry.kind)?;
            } else {
                self.report.kept += 1;
            }
        }

        for entry in &sources {
            self.tick();
            let child = join(relative, &entry.name);
            let src_path = src.join(&entry.name);
            let dst_path = dst.join(&entry.name);
            let existing = targets.get(&entry.name);
            match entry.kind {
                Kind::File => {
                    self.next.push(child.clone());
                    self.sync_file(&child, &src_path, &dst_path, entry, existing)?;
                }
                Kind::Symlink => self.sync_symlink(&child, &src_path, &dst_path, existing)?,
                Kind::Dir => {
                    self.next.push(child.clone());
                    let dir_exists = match existing.map(|e| e.kind) {
                        Some(Kind::Dir) => true,
                        Some(_) => {
                            self.remove_file(&child, &dst_path)?;
                            false
                        }
                        None => false,
                    };
                    if !dir_exists && !self.options.what_if {
                        fs::create_dir(&dst_path)
                            .map_err(|e| DeployError::io("create the folder", &dst_path, e))?;
                    }
                    self.sync_dir(&child, &src_path, &dst_path, dir_exists)?;
                }
                Kind::Other => {
                    warn!("{child} is not a file, folder or link: not synced");
                }
            }
        }
        Ok(())
    }

    fn sync_file(
        &mut self,
        relative: &str,
        src_path: &Path,
        dst_path: &Path,
        source: &Entry,
        existing: Option<&Entry>,
    ) -> Result<(), DeployError> {
        match existing {
            Some(target)
                if target.kind == Kind::File
                    && self.is_unchanged(source, target, src_path, dst_path)? =>
            {
                self.report.unchanged += 1;
                return Ok(());
            }
            Some(target) if target.kind == Kind::File => {}
            Some(target) if target.kind == Kind::Dir => {
                self.clear_folder_for_file(relative, dst_path)?
            }
            Some(_) => self.remove_file(relative, dst_path)?,
            None => {}
        }
        self.note(format!("copy {relative}"));
        self.report.copied += 1;
        self.report.bytes_copied += source.meta.len();
        if !self.options.what_if {
            copy_file(src_path, dst_path, &source.meta)?;
        }
        Ok(())
    }

    fn is_unchanged(
        &self,
        source: &Entry,
        target: &Entry,
        src_path: &Path,
        dst_path: &Path,
    ) -> Result<bool, DeployError> {
        if source.meta.len() != target.meta.len() {
            return Ok(false);
        }
        if FULL_COMPARE
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&source.name))
        {
            let a = fs::read(src_path).map_err(|e| DeployError::io("read", src_path, e))?;
            let b = fs::read(dst_path).map_err(|e| DeployError::io("read", dst_path, e))?;
            return Ok(a == b);
        }
        Ok(matches!(
            (source.meta.modified(), target.meta.modified()),
            (Ok(a), Ok(b)) if a == b
        ))
    }

    fn sync_symlink(
        &mut self,
        relative: &str,
        src_path: &Path,
        dst_path: &Path,
        existing: Option<&Entry>,
    ) -> Result<(), DeployError> {
        let link =
            fs::read_link(src_path).map_err(|e| DeployError::io("read the link", src_path, e))?;
        if !stays_inside(&self.options.from, src_path, &link) {
            warn!(
                "{relative} links to {}, outside the repository: not synced",
                link.display()
            );
            return Ok(());
        }
        self.next.push(relative.to_string());
        if let Some(target) = existing {
            if target.kind == Kind::Symlink && fs::read_link(dst_path).ok().as_ref() == Some(&link)
            {
                self.report.unchanged += 1;
                return Ok(());
            }
            if target.kind == Kind::Dir {
                self.clear_folder_for_file(relative, dst_path)?;
            } else {
                self.remove_file(relative, dst_path)?;
            }
        }
        self.note(format!("link {relative} -> {}", link.display()));
        self.report.copied += 1;
        if !self.options.what_if {
            make_symlink(&link, dst_path)?;
        }
        Ok(())
    }

    /// Removes a file or link that is in the way or no longer in the source.
    fn remove_file(&mut self, relative: &str, path: &Path) -> Result<(), DeployError> {
        self.note(format!("delete {relative}"));
        self.report.deleted += 1;
        if !self.options.what_if {
            fs::remove_file(path).map_err(|e| DeployError::io("delete", path, e))?;
        }
        Ok(())
    }

    /// Deletes an entry a previous deployment made; a folder only keeps what is not ours.
    fn delete(&mut self, relative: &str, path: &Path, kind: Kind) -> Result<(), DeployError> {
        if kind != Kind::Dir {
            return self.remove_file(relative, path);
        }
        let mut remaining = 0;
        for entry in list(path)? {
            let child = join(relative, &entry.name);
            if self.is_ours(&child) {
                self.delete(&child, &path.join(&entry.name), entry.kind)?;
            } else {
                self.report.kept += 1;
                remaining += 1;
            }
        }
        if remaining == 0 {
            self.note(format!("delete {relative}/"));
            self.report.deleted += 1;
            if !self.options.what_if {
                fs::remove_dir(path).map_err(|e| DeployError::io("delete the folder", path, e))?;
            }
        }
        Ok(())
    }

    /// The source has a file where the target has a folder: the folder goes, unless the app
    /// keeps its own files in it.
    fn clear_folder_for_file(&mut self, relative: &str, path: &Path) -> Result<(), DeployError> {
        if self.is_ours(relative) {
            self.delete(relative, path, Kind::Dir)?;
        }
        if !self.options.what_if && path.exists() {
            return Err(DeployError::io(
                "replace with a file the folder",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::DirectoryNotEmpty,
                    "it holds files that did not come from the repository",
                ),
            ));
        }
        Ok(())
    }
}

/// Copies `src` beside `dst`, gives it the source's modification time, and renames it over
/// `dst`: readers see the old file or the new one, never a partial one.
fn copy_file(src: &Path, dst: &Path, meta: &Metadata) -> Result<(), DeployError> {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dst.with_file_name(format!(".{name}.kuduhook-tmp"));
    let result = (|| {
        fs::copy(src, &temp)?;
        if let Ok(modified) = meta.modified() {
            fs::File::open(&temp)?.set_modified(modified)?;
        }
        fs::rename(&temp, dst)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(DeployError::io("copy to", dst, e));
    }
    Ok(())
}

#[cfg(unix)]
fn make_symlink(link: &Path, at: &Path) -> Result<(), DeployError> {
    std::os::unix::fs::symlink(link, at).map_err(|e| DeployError::io("create the link", at, e))
}

#[cfg(not(unix))]
fn make_symlink(link: &Path, at: &Path) -> Result<(), DeployError> {
    // Windows needs a privilege for symlinks: copy what the link points to instead.
    let resolved = at.parent().unwrap_or(Path::new(".")).join(link);
    fs::copy(&resolved, at)
        .map(|_| ())
        .map_err(|e| DeployError::io("copy the link target to", at, e))
}

/// Whether a link at `link_path` pointing to `link` resolves (lexically) inside `root`.
fn stays_inside(root: &Path, link_path: &Path, link: &Path) -> bool {
    let base = link_path.parent().unwrap_or(root);
    paths::normalize(&base.join(link)).starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_entries_follow_kudusync() {
        let list = IgnoreList::new(&[".git", "*.PYC", "static/cache", " "]);
        assert!(list.matches(".git", ".git"));
        assert!(list.matches("sub/.GIT", ".GIT"));
        assert!(list.matches("pkg/mod.pyc", "mod.pyc"));
        assert!(list.matches("static/cache", "cache"));
        assert!(!list.matches("other/cache", "cache"));
        assert!(!list.matches("app.py", "app.py"));
    }

    #[test]
    fn links_must_stay_inside_the_source() {
        let root = Path::new("/repo");
        assert!(stays_inside(
            root,
            Path::new("/repo/a/link"),
            Path::new("../b")
        ));
        assert!(stays_inside(
            root,
            Path::new("/repo/link"),
            Path::new("/repo/x")
        ));
        assert!(!stays_inside(
            root,
            Path::new("/repo/link"),
            Path::new("../etc")
        ));
        assert!(!stays_inside(
            root,
            Path::new("/repo/link"),
            Path::new("/etc/passwd")
        ));
        assert!(!stays_inside(
            root,
            Path::new("/repo/a/link"),
            Path::new("../../../..")
        ));
    }
}
