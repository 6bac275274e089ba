//! The sync's undo log: what a sync overwrote or deleted in the target, kept so that the
//! previous files can come back (a later step failed, a killed deployment is repaired,
//! `kuduhook rollback`).
//!
//! A log is a folder (the release's, see the `release` module) holding `undo.json` and the kept
//! files, named by number in a few folders `files/<n>/` (no parent folders of the app's to
//! make, no two names that only a case-folding filesystem would confuse, and not one folder
//! for all: a filesystem changes one folder at a time, so on a share a single folder would
//! make every keep wait for the one before). The sync fills it in this order:
//! 1. every file it will overwrite is kept first: hard-linked (one call), or copied where the
//!    filesystem has no hard links (an SMB share), before anything in the target changes;
//! 2. `undo.json` is written: what the sync adds, the folders it makes and removes, and what
//!    is kept where;
//! 3. the sync runs; what it deletes is moved into the log (a rename, the same cost as a
//!    delete) instead of being deleted.
//!
//! So from the moment `undo.json` exists, undoing is correct at any point of the sync, and
//! again after an undo that was itself interrupted: each kept file is put back by one rename
//! (it is then no longer in the log), each added entry is removed if it is there. Before it
//! exists, the target has not been changed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::ground::error::DeployError;

/// The log's description of a sync, written before the sync changes anything.
const RECORD: &str = "undo.json";
/// The folder of kept files.
const FILES: &str = "files";
const FORMAT: u32 = 1;

/// What undoing a sync does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    pub format: u32,
    /// Files and links the sync created where nothing was: removed.
    pub added: Vec<String>,
    /// Folders it created: removed when empty, deepest first.
    pub folders: Vec<String>,
    /// Folders it removed: made again, outermost first.
    pub removed_dirs: Vec<String>,
    /// Entries it overwrote or deleted, each kept in the log: put back.
    pub kept: Vec<Kept>,
}

/// An entry the sync overwrote or deleted, and where the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Its path in the target, relative, with the case the target had.
    pub path: String,
    /// Its name in the log's `files/`.
    pub file: String,
}

/// What an undo did, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undone {
    pub restored: usize,
    pub removed: usize,
}

impl Undone {
    pub fn describe(&self) -> String {
        format!(
            "put back {}, removed {} the deployment had added",
            crate::ground::logging::plural(self.restored, "file"),
            self.removed
        )
    }
}

/// How many entries share one folder of kept files, at most 16 folders.
const PER_FOLDER: usize = 8;
const MAX_FOLDERS: usize = 16;

/// An undo log being filled by a sync.
#[derive(Debug)]
pub struct UndoLog {
    dir: PathBuf,
    folders: usize,
    /// The filesystem refused a hard link: the rest are copied without asking again.
    no_hard_links: std::sync::atomic::AtomicBool,
}

impl UndoLog {
    /// A new, empty log in `dir` (whatever was there is removed), for about `entries` kept
    /// files.
    pub fn create(dir: &Path, entries: usize) -> Result<UndoLog, DeployError> {
        let files = dir.join(FILES);
        let made = || fs::create_dir_all(dir).and_then(|()| fs::create_dir(&files));
        if made().is_err() {
            crate::env::files::remove_fast(dir)?;
            made().map_err(|e| DeployError::io("create the undo log", &files, e))?;
        }
        let folders = entries.div_ceil(PER_FOLDER).clamp(1, MAX_FOLDERS);
        crate::env::files::share_pool().install(|| {
            (0..folders).into_par_iter().try_for_each(|n| {
                let folder = files.join(n.to_string());
                fs::create_dir(&folder)
                    .map_err(|e| DeployError::io("create the undo log", &folder, e))
            })
        })?;
        Ok(UndoLog {
            dir: dir.to_path_buf(),
            folders,
            no_hard_links: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name, in the log, of the `index`th entry of a kind (`prefix`).
    pub fn name(&self, prefix: &str, index: usize) -> String {
        format!("{}/{prefix}{index}", index % self.folders)
    }

    /// Where the log keeps the entry named `file`.
    pub fn file(&self, file: &str) -> PathBuf {
        self.dir.join(FILES).join(file)
    }

    /// Keeps the file at `path` (about to be overwritten) as `file`: a hard link where the
    /// filesystem has them, else a copy with its time and mode. `false` when there is no file.
    pub fn keep_copy(&self, path: &Path, file: &str) -> io::Result<bool> {
        use std::sync::atomic::Ordering::Relaxed;
        let kept = self.file(file);
        let linked = match self.no_hard_links.load(Relaxed) {
            true => Err(io::ErrorKind::Unsupported.into()),
            false => fs::hard_link(path, &kept),
        };
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(_) => match crate::ground::paths::copy_file_keeping_mtime(path, &kept) {
                Ok(_) => {
                    self.no_hard_links.store(true, Relaxed);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = fs::remove_file(&kept);
                    Ok(false)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Moves the entry at `path` (being deleted) into the log as `file`.
    pub fn keep_moved(&self, path: &Path, file: &str) -> io::Result<()> {
        let kept = self.file(file);
        match fs::rename(path, &kept) {
            Err(e) if e.kind() != io::ErrorKind::NotFound && !path_missing(path) => {
                // Another filesystem than the target's: keep a copy, then delete.
                crate::ground::paths::copy_file_keeping_mtime(path, &kept)?;
                fs::remove_file(path)
            }
            other => other,
        }
    }

    /// Writes the log's record: from here on the sync can be undone.
    pub fn write(&self, record: &UndoRecord) -> Result<(), DeployError> {
        let path = self.dir.join(RECORD);
        let json = serde_json::to_vec(record).expect("the undo record serializes");
        crate::ground::paths::write_atomically(&path, &json)
            .map_err(|e| DeployError::io("write the undo log", &path, e))
    }
}

fn path_missing(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err()
}

/// Whether the log in `dir` has its record (without reading it: it lists every change).
pub fn has_record(dir: &Path) -> bool {
    dir.join(RECORD).is_file()
}

/// The record of the log in `dir`: `None` when the sync never got to write it (so it changed
/// nothing) or it is not one this version reads.
fn read(dir: &Path) -> Option<UndoRecord> {
    let bytes = fs::read(dir.join(RECORD)).ok()?;
    serde_json::from_slice::<UndoRecord>(&bytes)
        .ok()
        .filter(|r| r.format == FORMAT)
}

impl UndoRecord {
    pub fn new() -> UndoRecord {
        UndoRecord {
            format: FORMAT,
            ..UndoRecord::default()
        }
    }

    /// The paths the sync deleted or overwrote (for the ledger: they are the site's again
    /// after an undo).
    pub fn kept_paths(&self) -> impl Iterator<Item = &str> {
        let dirs = self.removed_dirs.iter().map(String::as_str);
        self.kept.iter().map(|k| k.path.as_str()).chain(dirs)
    }
}

/// Undoes the sync logged in `dir` on the site `target`, and tells the sync's own bookkeeping:
/// the files put back join the ledger (a later sync may delete them again) and the record of
/// the last sync is forgotten (the next one walks the site). `None` when the log has no record
/// (its sync changed nothing). For a sync that was `interrupted`, the temporary files its
/// copies were writing are removed too. Can be run again after an interruption.
pub fn put_back(
    dir: &Path,
    target: &Path,
    platform: crate::settings::Platform,
    interrupted: bool,
) -> Result<Option<Undone>, DeployError> {
    let Some(record) = read(dir) else {
        return Ok(None);
    };
    let undone = undo(dir, target, interrupted)?;
    super::ledger_add(target, record.kept_paths(), platform);
    super::delta::forget(target);
    Ok(Some(undone))
}

/// Undoes the sync logged in `dir` on `target`: removes what it added, makes the folders it
/// removed, puts back what it overwrote or deleted.
fn undo(dir: &Path, target: &Path, interrupted: bool) -> Result<Undone, DeployError> {
    let Some(record) = read(dir) else {
        return Ok(Undone::default());
    };
    let log = UndoLog {
        dir: dir.to_path_buf(),
        folders: 1,
        no_hard_links: Default::default(),
    };
    let remove = |relative: &str| -> Result<usize, DeployError> {
        let path = target.join(relative);
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_dir() => crate::env::files::remove_file(&path)
                .map(|()| 1)
                .map_err(|e| DeployError::io("remove", &path, e)),
            _ => Ok(0),
        }
    };
    if interrupted {
        crate::env::files::share_pool().install(|| {
            let paths = record
                .added
                .par_iter()
                .chain(record.kept.par_iter().map(|k| &k.path));
            paths.for_each(|relative| {
                let _ = fs::remove_file(super::temp_beside(&target.join(relative)));
            });
        });
    }
    let removed: usize = crate::env::files::share_pool().install(|| {
        record
            .added
            .par_iter()
            .map(|relative| remove(relative))
            .sum::<Result<usize, DeployError>>()
    })?;
    let mut folders: Vec<&String> = record.folders.iter().collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.matches('/').count()));
    for folder in folders {
        let _ = fs::remove_dir(target.join(folder)); // kept when the app wrote into it
    }
    let mut dirs: Vec<&String> = record.removed_dirs.iter().collect();
    dirs.sort_by_key(|d| d.matches('/').count());
    for dir in dirs {
        let path = target.join(dir);
        match fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(DeployError::io("make again", &path, e));
            }
            _ => {}
        }
    }
    let restored = crate::env::files::share_pool().install(|| {
        record
            .kept
            .par_iter()
            .map(|kept| {
                let from = log.file(&kept.file);
                if path_missing(&from) {
                    return Ok(0); // put back already (an undo run again), or never taken
                }
                let to = target.join(&kept.path);
                match fs::rename(&from, &to) {
                    Ok(()) => Ok(1),
                    // Never replaced (the copy over it failed: it is held open, say): it
                    // holds what is kept already.
                    // (Its kept copy may be held with it, as a hard link: then it stays, and
                    // is removed with the log.)
                    Err(_) if super::same_content(&from, &to).unwrap_or(false) => {
                        let _ = crate::env::files::remove_file(&from);
                        Ok(1)
                    }
                    Err(e) => Err(DeployError::io("put back", &to, e)),
                }
            })
            .sum::<Result<usize, DeployError>>()
    })?;
    Ok(Undone { restored, removed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_puts_back_what_was_kept_and_removes_what_was_added() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("site");
        fs::create_dir_all(target.join("old")).unwrap();
        fs::write(target.join("app.py"), "v1").unwrap();
        fs::write(target.join("old/gone.py"), "gone").unwrap();
        let log = UndoLog::create(&root.path().join("log"), 3).unwrap();
        assert!(
            log.keep_copy(&target.join("app.py"), &log.name("c", 0))
                .unwrap()
        );
        assert!(
            !log.keep_copy(&target.join("new.py"), &log.name("c", 1))
                .unwrap()
        );
        let mut record = UndoRecord::new();
        record.added = vec!["new/new.py".into()];
        record.folders = vec!["new".into()];
        record.removed_dirs = vec!["old".into()];
        record.kept = vec![
            Kept {
                path: "app.py".into(),
                file: log.name("c", 0),
            },
            Kept {
                path: "old/gone.py".into(),
                file: log.name("r", 0),
            },
        ];
        log.write(&record).unwrap();
        // The sync: app.py rewritten (a new file renamed over it), old/ deleted, new/ added.
        let temp = target.join(".app.py.tmp");
        fs::write(&temp, "v2").unwrap();
        fs::rename(&temp, target.join("app.py")).unwrap();
        log.keep_moved(&target.join("old/gone.py"), &log.name("r", 0))
            .unwrap();
        fs::remove_dir(target.join("old")).unwrap();
        fs::create_dir(target.join("new")).unwrap();
        fs::write(target.join("new/new.py"), "new").unwrap();

        let undone = undo(log.dir(), &target, false).unwrap();
        assert_eq!(
            undone,
            Undone {
                restored: 2,
                removed: 1
            }
        );
        assert_eq!(fs::read_to_string(target.join("app.py")).unwrap(), "v1");
        assert_eq!(
            fs::read_to_string(target.join("old/gone.py")).unwrap(),
            "gone"
        );
        assert!(!target.join("new").exists());
        // Run again (an undo interrupted and repeated): nothing changes.
        assert_eq!(undo(log.dir(), &target, true).unwrap().restored, 0);
        assert_eq!(fs::read_to_string(target.join("app.py")).unwrap(), "v1");
    }

    #[test]
    fn a_log_without_its_record_undoes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let log = UndoLog::create(&root.path().join("log"), 1).unwrap();
        fs::write(root.path().join("app.py"), "v1").unwrap();
        log.keep_copy(&root.path().join("app.py"), &log.name("c", 0))
            .unwrap();
        assert_eq!(
            undo(log.dir(), root.path(), true).unwrap(),
            Undone::default()
        );
        assert!(root.path().join("app.py").exists());
    }
}
