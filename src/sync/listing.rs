//! The sync without a walk of the site, for a source that is not a git checkout: a zip
//! deployment's extracted folder, an app in a subfolder of a repository, `kuduhook sync` from
//! any folder.
//!
//! What the last sync copied is recorded beside the site ([`FILE`], in kuduhook's state folder
//! for the target): every file's path, size and SHA-256, and the identity of the file it was
//! read from (size, modification and change times, inode). The next sync lists the source (on
//! local disk, where a zip is extracted: cheap) and compares it with that record instead of
//! listing the site (on App Service's share: a round trip per folder and per file). What
//! differs is what `delta.rs` turns into a plan, as it does git's diff.
//!
//! Exact, never trusting a time alone: a file whose identity is the recorded one (git's own
//! rule: a change time cannot be set back, so an unchanged change time and inode mean an
//! unchanged file) keeps its recorded hash, unless its change time is within [`RACY`] of when
//! the record was taken; every other file is hashed. A zip's extraction writes every file
//! anew (new change times, new inodes), so each is hashed: a file whose content changed within
//! the same 2-second zip time is still copied.
//!
//! Anything the walk decides in a way this path does not (links, a committed virtual
//! environment, an entry the site keeps for kuduhook, another kind of file, names that differ
//! only in case on a site that ignores case) leaves the sync to the walk, said in the log.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SyncOptions;

/// The record of the files the last sync copied, in the target's state folder.
pub const FILE: &str = "synced-files.json";

/// The record's format: a record of another one is not trusted.
const FORMAT: u32 = 1;

/// A file changed this close to when the record was taken may have changed again within the
/// same tick of its change time (2 s: the coarsest a share keeps): it is hashed, not trusted.
const RACY: Duration = Duration::from_secs(2);

/// One file as read from the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub size: u64,
    /// Modification and change times (ns since the epoch), and inode: the identity of the
    /// file the content was read from.
    pub mtime: u64,
    pub ctime: u64,
    pub ino: u64,
    pub sha256: String,
}

/// The source as a sync saw it: every folder and file it syncs, by path (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    format: u32,
    /// When the listing was taken (ns since the epoch).
    taken: u64,
    /// `None`: a folder.
    pub entries: BTreeMap<String, Option<FileId>>,
    /// Files read and hashed to take it (the others were vouched for by the record).
    #[serde(skip)]
    pub hashed: usize,
    /// Exactly the record it was compared with: nothing to write.
    #[serde(skip)]
    pub as_recorded: bool,
}

impl Listing {
    /// What the listing holds, whatever files it was read from: the paths, what each is, and
    /// each file's size and content. Two syncs of the same content have the same id.
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        for (path, entry) in &self.entries {
            hash.update(path.as_bytes());
            match entry {
                None => hash.update(b"\0dir\n"),
                Some(file) => hash.update(format!("\0{}\0{}\n", file.size, file.sha256)),
            }
        }
        format!("files:{}", hex(&hash.finalize()))
    }

    /// How many files (not folders) it lists.
    pub fn files(&self) -> usize {
        self.entries.values().filter(|e| e.is_some()).count()
    }
}

/// The listing the last sync of `target` recorded, if any and readable.
pub fn read(target: &Path) -> Option<Listing> {
    let bytes = std::fs::read(path(target)).ok()?;
    let listing: Listing = serde_json::from_slice(&bytes).ok()?;
    (listing.format == FORMAT).then_some(listing)
}

/// Records `listing` as what the sync of `target` copied, unless the record says exactly that
/// already. A failure costs the next sync a walk.
pub fn write_if_new(target: &Path, listing: &Listing) {
    if listing.as_recorded {
        return;
    }
    let path = path(target);
    let Ok(json) = serde_json::to_vec(listing) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::ground::paths::write_atomically(&path, &json);
}

fn path(target: &Path) -> std::path::PathBuf {
    crate::ground::paths::state_dir(target).join(FILE)
}

/// Lists the source of `options` as the sync would copy it, hashing what `previous` cannot
/// vouch for. `Err`: what the walk must decide (for the log).
pub fn take(options: &SyncOptions, previous: Option<&Listing>) -> Result<Listing, String> {
    let taken = now();
    let lister = Lister {
        options,
        previous,
        trusted_before: previous.map_or(0, |p| p.taken.saturating_sub(RACY.as_nanos() as u64)),
        found: Mutex::new(Vec::new()),
        hashed: AtomicUsize::new(0),
    };
    lister.folder("")?;
    let entries: BTreeMap<String, Option<FileId>> = lister
        .found
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let hashed = lister.hashed.into_inner();
    let as_recorded = hashed == 0 && previous.is_some_and(|p| p.entries == entries);
    Ok(Listing {
        format: FORMAT,
        // A record whose files were all vouched for keeps its time (a rewrite is not needed).
        taken: match as_recorded {
            true => previous.map_or(taken, |p| p.taken),
            false => taken,
        },
        entries,
        hashed,
        as_recorded,
    })
}

struct Lister<'a> {
    options: &'a SyncOptions,
    previous: Option<&'a Listing>,
    /// A recorded identity is trusted only for a file whose change time is before this.
    trusted_before: u64,
    found: Mutex<Vec<(String, Option<FileId>)>>,
    hashed: AtomicUsize,
}

impl Lister<'_> {
    fn folder(&self, relative: &str) -> Result<(), String> {
        let dir = self.options.from.join(relative);
        let unsupported = Err;
        let read = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut children = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| format!("{relative}: {e}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = match relative {
                "" => name.clone(),
                _ => format!("{relative}/{name}"),
            };
            if self.options.ignore.matches(&child, &name) {
                continue;
            }
            if self
                .options
                .protected
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(&child))
            {
                return unsupported(format!("the source has {child}, which kuduhook keeps"));
            }
            let file_type = entry.file_type().map_err(|e| format!("{child}: {e}"))?;
            if file_type.is_symlink() {
                return unsupported(format!("the source has a link ({child})"));
            }
            if name.eq_ignore_ascii_case("pyvenv.cfg") {
                return unsupported(format!("the source has a virtual environment ({child})"));
            }
            if !file_type.is_dir() && !file_type.is_file() {
                return unsupported(format!("{child} is neither a file nor a folder"));
            }
            children.push((child, file_type.is_dir()));
        }
        children.par_iter().try_for_each(|(child, is_dir)| {
            if *is_dir {
                self.found.lock().unwrap().push((child.clone(), None));
                self.folder(child)
            } else {
                let id = self.file(child)?;
                self.found.lock().unwrap().push((child.clone(), Some(id)));
                Ok(())
            }
        })
    }

    fn file(&self, relative: &str) -> Result<FileId, String> {
        let path = self.options.from.join(relative);
        let failed = |e: std::io::Error| format!("{relative}: {e}");
        let meta = std::fs::symlink_metadata(&path).map_err(failed)?;
        let (mtime, ctime, ino) = identity(&meta);
        let recorded = self
            .previous
            .and_then(|p| p.entries.get(relative))
            .and_then(Option::as_ref);
        if let Some(known) = recorded
            && known.size == meta.len()
            && (known.mtime, known.ctime, known.ino) == (mtime, ctime, ino)
            && ctime != 0
            && ctime < self.trusted_before
        {
            return Ok(known.clone());
        }
        self.hashed.fetch_add(1, Ordering::Relaxed);
        Ok(FileId {
            size: meta.len(),
            mtime,
            ctime,
            ino,
            sha256: hash_file(&path).map_err(failed)?,
        })
    }
}

/// A file's modification time, change time and inode (0 where the platform has none: such
/// a file is always hashed).
fn identity(meta: &std::fs::Metadata) -> (u64, u64, u64) {
    let nanos = |t: std::io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ctime = (meta.ctime().max(0) as u64) * 1_000_000_000 + meta.ctime_nsec().max(0) as u64;
        (nanos(meta.modified()), ctime, meta.ino())
    }
    #[cfg(not(unix))]
    {
        (nanos(meta.modified()), 0, 0)
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hash.update(&buf[..n]),
        }
    }
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One difference between two listings, as git's diff reports one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub existed: bool,
    pub exists: bool,
    pub dir: bool,
}

/// What changed from `old` to `new`: files added, removed or with other content, folders
/// added or removed (a folder's own changes are its files').
pub fn differences(old: &Listing, new: &Listing) -> Vec<Difference> {
    let mut out = Vec::new();
    for (path, entry) in &new.entries {
        match (old.entries.get(path), entry) {
            (Some(Some(a)), Some(b)) if a.size == b.size && a.sha256 == b.sha256 => {}
            (Some(None), None) => {}
            (Some(before), now) if before.is_none() != now.is_none() => {
                // A folder became a file or the other way: the old one goes, the new comes.
                out.push(Difference {
                    path: path.clone(),
                    existed: true,
                    exists: false,
                    dir: before.is_none(),
                });
                out.push(Difference {
                    path: path.clone(),
                    existed: false,
                    exists: true,
                    dir: now.is_none(),
                });
            }
            (before, now) => out.push(Difference {
                path: path.clone(),
                existed: before.is_some(),
                exists: true,
                dir: now.is_none(),
            }),
        }
    }
    for (path, entry) in &old.entries {
        if !new.entries.contains_key(path) {
            out.push(Difference {
                path: path.clone(),
                existed: true,
                exists: false,
                dir: entry.is_none(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(from: &Path) -> SyncOptions {
        let mut options = SyncOptions::new(from, from.join("../target"));
        options.ignore = super::super::Patterns::new(&[".git"]).unwrap();
        options
    }

    #[test]
    fn a_file_rewritten_with_the_same_size_and_time_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("pkg/empty")).unwrap();
        std::fs::write(app.join("pkg/a.py"), "A = 1\n").unwrap();
        let first = take(&options(&app), None).unwrap();
        assert_eq!(first.files(), 1);
        assert!(first.entries.contains_key("pkg/empty"));
        // The same size, the same (zip-like, 2-second) modification time, other content.
        let time = std::fs::metadata(app.join("pkg/a.py"))
            .unwrap()
            .modified()
            .unwrap();
        std::fs::write(app.join("pkg/a.py"), "A = 2\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(app.join("pkg/a.py"))
            .unwrap()
            .set_modified(time)
            .unwrap();
        let second = take(&options(&app), Some(&first)).unwrap();
        assert_ne!(first.id(), second.id());
        let changed = differences(&first, &second);
        assert_eq!(
            changed,
            vec![Difference {
                path: "pkg/a.py".into(),
                existed: true,
                exists: true,
                dir: false
            }]
        );
    }

    #[test]
    #[cfg(unix)] // elsewhere no change time is read: every file is hashed
    fn an_untouched_file_keeps_its_recorded_hash_once_the_record_is_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("a.py"), "A = 1\n").unwrap();
        let mut first = take(&options(&app), None).unwrap();
        // A record taken long after the file last changed vouches for it: a wrong hash in the
        // record shows it was not read again.
        first.taken += 10 * 1_000_000_000;
        first
            .entries
            .get_mut("a.py")
            .unwrap()
            .as_mut()
            .unwrap()
            .sha256 = "recorded".into();
        let second = take(&options(&app), Some(&first)).unwrap();
        assert_eq!(second.entries["a.py"].as_ref().unwrap().sha256, "recorded");
        // Taken within 2 s of the file's change: not trusted, read again.
        first.taken -= 10 * 1_000_000_000;
        let third = take(&options(&app), Some(&first)).unwrap();
        assert_ne!(third.entries["a.py"].as_ref().unwrap().sha256, "recorded");
    }

    #[test]
    fn what_the_walk_decides_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join(".venv")).unwrap();
        std::fs::write(app.join(".venv/pyvenv.cfg"), "home = /usr\n").unwrap();
        assert_eq!(
            take(&options(&app), None),
            Err("the source has a virtual environment (.venv/pyvenv.cfg)".to_string())
        );
    }

    #[test]
    fn differences_name_added_removed_and_changed_entries() {
        let file = |sha: &str| {
            Some(FileId {
                size: 1,
                mtime: 0,
                ctime: 0,
                ino: 0,
                sha256: sha.into(),
            })
        };
        let listing = |entries: Vec<(&str, Option<FileId>)>| Listing {
            format: FORMAT,
            taken: 0,
            hashed: 0,
            as_recorded: false,
            entries: entries
                .into_iter()
                .map(|(p, e)| (p.to_string(), e))
                .collect(),
        };
        let old = listing(vec![
            ("a", file("1")),
            ("d", None),
            ("d/b", file("2")),
            ("x", None),
        ]);
        let new = listing(vec![("a", file("1")), ("d", file("3")), ("e", None)]);
        let got: Vec<(String, bool, bool, bool)> = differences(&old, &new)
            .into_iter()
            .map(|d| (d.path, d.existed, d.exists, d.dir))
            .collect();
        let want = [
            ("d", true, false, true),
            ("d", false, true, false),
            ("e", false, true, true),
            ("d/b", true, false, false),
            ("x", true, false, true),
        ];
        assert_eq!(
            got,
            want.map(|(p, a, b, c)| (p.to_string(), a, b, c)).to_vec()
        );
    }
}
