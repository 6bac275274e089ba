//! The sync's second phase: make the planned changes, in an order that never leaves the app a
//! half-written file.
//!
//! Deletions first (a case-only rename frees its old name, a file gives way to a folder), then
//! new folders, then copies in parallel, then links, then the full-compare names. A copy goes
//! through the kernel's copy path (`copy_file_range`, which clones on filesystems that can) into
//! a temporary file beside its destination, takes the source's mode and mtime, and is renamed
//! over the destination. Busy or locked files are retried with backoff, then reported.
//!
//! With an undo log ([`super::undo`]), the files the copies overwrite are kept first and the
//! log's record written before anything changes; deleted entries are moved into the log.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tracing::{Span, warn};

use super::plan::{FileCopy, Kind, Plan};
use super::undo::{Kept, UndoLog, UndoRecord};
use super::{Progress, SyncOptions, temp_beside};
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;

/// How many times a busy or locked file is tried (KuduSync tries 10 times too).
const ATTEMPTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) fn apply(
    options: &SyncOptions,
    plan: &Plan,
    progress: &Progress,
) -> Result<(), DeployError> {
    let to = &options.to;
    if !to.is_dir() {
        fs::create_dir_all(to).map_err(|e| DeployError::io("create the target folder", to, e))?;
    }
    let span = Span::current();
    let (dirs, files): (Vec<_>, Vec<_>) = plan.removals.iter().partition(|r| r.kind == Kind::Dir);
    let undo = match &options.undo {
        Some(dir) => Some(start_undo(dir, to, plan, &files, &dirs)?),
        None => None,
    };
    // Files and links first, many at once (each waits on a round trip on a share); then
    // folders, deepest first, a level at a time. A folder that is not empty holds files the
    // app wrote (the plan deletes a folder only when everything kuduhook put in it goes): kept.
    files.par_iter().enumerate().try_for_each(|(i, removal)| {
        let _entered = span.enter();
        let path = to.join(&removal.relative);
        ignore_missing(retry("delete", &path, || match &undo {
            Some(log) if !is_temp(removal) => log.keep_moved(&path, &log.name("r", i)),
            _ => crate::env::files::remove_file(&path),
        }))
    })?;
    for level in by_depth(dirs.iter().map(|r| r.relative.as_str()), true) {
        level.par_iter().try_for_each(|relative| {
            let path = to.join(relative);
            match fs::remove_dir(&path) {
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
                _ => ignore_missing(retry("delete", &path, || match fs::remove_dir(&path) {
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
                    other => other,
                })),
            }
        })?;
    }
    for level in by_depth(plan.folders.iter().map(String::as_str), false) {
        level.par_iter().try_for_each(|folder| {
            let path = to.join(folder);
            retry("create the folder", &path, || match fs::create_dir(&path) {
                // A case-insensitive filesystem may already have it under another case.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
                other => other,
            })
        })?;
    }
    let (last, first): (Vec<&FileCopy>, Vec<&FileCopy>) = plan.copies.iter().partition(|c| c.last);
    first.par_iter().try_for_each(|copy| {
        let _entered = span.enter();
        copy_file(&options.from, to, copy)?;
        progress.copied(copy.len);
        Ok::<(), DeployError>(())
    })?;
    for (relative, link) in &plan.links {
        let path = to.join(relative);
        retry("create the link", &path, || make_link(link, &path))?;
    }
    for copy in last {
        copy_file(&options.from, to, copy)?;
        progress.copied(copy.len);
    }
    Ok(())
}

/// Starts the undo log in `dir` for `plan`: keeps every file a copy will overwrite, then
/// writes the log's record. The target is not changed.
fn start_undo(
    dir: &Path,
    to: &Path,
    plan: &Plan,
    files: &[&super::plan::Removal],
    dirs: &[&super::plan::Removal],
) -> Result<UndoLog, DeployError> {
    let replaced = plan.copies.iter().filter(|c| c.replaces.is_some()).count();
    let log = UndoLog::create(dir, replaced + files.len())?;
    let span = Span::current();
    let kept_copies: Vec<Option<Kept>> = plan
        .copies
        .par_iter()
        .enumerate()
        .map(|(i, copy)| {
            let _entered = span.enter();
            let Some(existing) = &copy.replaces else {
                return Ok(None);
            };
            let path = to.join(existing);
            let file = log.name("c", i);
            let kept = retry("keep a copy of", &path, || log.keep_copy(&path, &file))?;
            Ok(kept.then(|| Kept {
                path: existing.clone(),
                file,
            }))
        })
        .collect::<Result<_, DeployError>>()?;
    let mut record = UndoRecord::new();
    for (copy, kept) in plan.copies.iter().zip(&kept_copies) {
        if kept.is_none() {
            record.added.push(copy.relative.clone());
        }
    }
    record
        .added
        .extend(plan.links.iter().map(|(l, _)| l.clone()));
    record.kept.extend(kept_copies.into_iter().flatten());
    record.kept.extend(
        files
            .iter()
            .enumerate()
            .filter(|(_, removal)| !is_temp(removal))
            .map(|(i, removal)| Kept {
                path: removal.relative.clone(),
                file: log.name("r", i),
            }),
    );
    record.folders = plan.folders.clone();
    record.removed_dirs = dirs.iter().map(|d| d.relative.clone()).collect();
    log.write(&record)?;
    Ok(log)
}

/// A temporary file an interrupted sync left: deleted, never kept for an undo.
fn is_temp(removal: &super::plan::Removal) -> bool {
    let name = removal.relative.rsplit('/').next().unwrap_or_default();
    super::is_leftover_temp(name)
}

/// Relative paths grouped by depth: deepest first when `deepest_first`, else outermost first.
/// Each group can be worked on at once.
fn by_depth<'a>(paths: impl Iterator<Item = &'a str>, deepest_first: bool) -> Vec<Vec<&'a str>> {
    let mut levels: std::collections::BTreeMap<usize, Vec<&str>> = Default::default();
    for path in paths {
        levels
            .entry(path.matches('/').count())
            .or_default()
            .push(path);
    }
    let mut out: Vec<Vec<&str>> = levels.into_values().collect();
    if deepest_first {
        out.reverse();
    }
    out
}

/// Copies one file beside its destination, then renames it over the destination.
fn copy_file(from: &Path, to: &Path, copy: &FileCopy) -> Result<(), DeployError> {
    let src = from.join(&copy.relative);
    let dst = to.join(&copy.relative);
    let temp = temp_beside(&dst);
    let result = retry("copy to", &dst, || write_copy(&src, &temp, copy))
        .and_then(|()| retry("replace", &dst, || replace(&temp, &dst)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Renames `temp` over `dst`. Windows refuses to replace a read-only file (KuduSync's users
/// hit it with files committed read-only): its attribute is cleared, and the copy takes the
/// source's.
fn replace(temp: &Path, dst: &Path) -> io::Result<()> {
    match fs::rename(temp, dst) {
        Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied => {
            match crate::ground::paths::make_writable(dst)? {
                true => fs::rename(temp, dst),
                false => Err(e),
            }
        }
        other => other,
    }
}

fn write_copy(src: &Path, temp: &Path, copy: &FileCopy) -> io::Result<()> {
    let mut reader = fs::File::open(src)?;
    let mut writer = fs::File::create(temp)?;
    // File to file: the kernel's copy_file_range (a reflink where the filesystem has them).
    io::copy(&mut reader, &mut writer)?;
    writer.set_permissions(copy.permissions.clone())?;
    if let Some(modified) = copy.modified {
        writer.set_modified(modified)?;
    }
    Ok(())
}

#[cfg(unix)]
fn make_link(link: &Path, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(link, at)
}

#[cfg(not(unix))]
fn make_link(link: &Path, at: &Path) -> io::Result<()> {
    // Windows needs a privilege for symlinks: copy what the link points to instead.
    let resolved = at.parent().unwrap_or(Path::new(".")).join(link);
    fs::copy(&resolved, at).map(|_| ())
}

/// A deletion of something already gone has done its job.
fn ignore_missing(result: Result<(), DeployError>) -> Result<(), DeployError> {
    match result {
        Err(e) if matches!(e.downcast_ref(), Some(SystemError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound) => {
            Ok(())
        }
        other => other,
    }
}

/// Whether an error may go away by itself: a file held open, locked or briefly busy.
fn is_transient(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    // Windows: ERROR_SHARING_VIOLATION (32), ERROR_LOCK_VIOLATION (33).
    let windows_lock = cfg!(windows) && matches!(error.raw_os_error(), Some(32 | 33));
    windows_lock
        || matches!(
            error.kind(),
            PermissionDenied
                | ResourceBusy
                | ExecutableFileBusy
                | WouldBlock
                | Interrupted
                | TimedOut
        )
}

/// Runs `op`, retrying transient failures with growing pauses; says so once, then reports.
fn retry<T>(
    action: &'static str,
    path: &Path,
    mut op: impl FnMut() -> io::Result<T>,
) -> Result<T, DeployError> {
    let started = Instant::now();
    let mut pause = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        match op() {
            Ok(value) => return Ok(value),
            Err(error) if !is_transient(&error) => {
                return Err(DeployError::io(action, PathBuf::from(path), error));
            }
            Err(error) if attempt == ATTEMPTS => {
                return Err(SystemError::Busy {
                    action,
                    path: path.to_path_buf(),
                    error,
                    attempts: attempt,
                    waited: started.elapsed(),
                }
                .into());
            }
            Err(error) => {
                if attempt == 1 {
                    warn!(
                        "could not {action} {} ({error}): it may be busy or locked, retrying \
                         up to {ATTEMPTS} times",
                        path.display()
                    );
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
    unreachable!("the last attempt returns")
}
