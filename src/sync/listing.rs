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

use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::SyncOptions;
use crate::ground::digest::{hex, unhex};

/// The record of the files the last sync copied, in the target's state folder.
pub const FILE: &str = "synced-files";

/// The record's first line: a record of another format is not trusted.
const HEADER: &str = "kuduhook synced files 2";

/// A file changed this close to when the record was taken may have changed again within the
/// same tick of its change time (2 s: the coarsest a share keeps): it is hashed, not trusted.
const RACY: Duration = Duration::from_secs(2);

/// One file as read from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub size: u64,
    /// Modification and change times (ns since the epoch), and inode: the identity of the
    /// file the content was read from.
    pub mtime: u64,
    pub ctime: u64,
    pub ino: u64,
    pub sha256: [u8; 32],
}

/// The source as a sync saw it: every folder and file it syncs, by path (`/`-separated),
/// sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// When the listing was taken (ns since the epoch).
    taken: u64,
    /// `None`: a folder.
    pub entries: Vec<(String, Option<FileId>)>,
    /// What it holds ([`Listing::id`]), computed once.
    id: String,
    /// Files read and hashed to take it (the others were vouched for by the record).
    hashed: usize,
    /// Exactly the record it was compared with: nothing to write.
    as_recorded: bool,
}

impl Listing {
    fn new(taken: u64, entries: Vec<(String, Option<FileId>)>) -> Listing {
        let id = Listing::id_of(&entries);
        Listing {
            taken,
            entries,
            id,
            hashed: 0,
            as_recorded: false,
        }
    }

    /// The id of `entries`: a hash of each path, what it is, and each file's size and content.
    fn id_of(entries: &[(String, Option<FileId>)]) -> String {
        let mut hash = Sha256::new();
        for (path, entry) in entries {
            hash.update(path.as_bytes());
            match entry {
                None => hash.update(b"\0dir\n"),
                Some(file) => {
                    hash.update(b"\0");
                    hash.update(file.size.to_le_bytes());
                    hash.update(file.sha256);
                    hash.update(b"\n");
                }
            }
        }
        format!("files:{}", hex(&hash.finalize()))
    }

    /// What the listing holds, whatever files it was read from: the paths, what each is, and
    /// each file's size and content. Two syncs of the same content have the same id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The entry for `path`: `Some(None)` for a folder.
    pub fn get(&self, path: &str) -> Option<&Option<FileId>> {
        self.entries
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The record's text: a header, when it was taken, its id, then one line per entry, the
    /// path last (`<size> <mtime> <ctime> <inode> <sha256> <path>` for a file, `- <path>` for a
    /// folder).
    fn render(&self) -> String {
        let mut out = format!("{HEADER}\n{}\n{}\n", self.taken, self.id);
        for (path, entry) in &self.entries {
            match entry {
                None => out.push_str(&format!("- {path}\n")),
                Some(f) => out.push_str(&format!(
                    "{} {} {} {} {} {path}\n",
                    f.size,
                    f.mtime,
                    f.ctime,
                    f.ino,
                    hex(&f.sha256)
                )),
            }
        }
        out
    }

    fn parse(text: &str) -> Option<Listing> {
        let mut lines = text.split('\n');
        if lines.next()? != HEADER {
            return None;
        }
        let taken = lines.next()?.parse().ok()?;
        // Kept with the entries it was computed from (this file is kuduhook's own): not
        // hashed again at every read.
        let id = lines.next()?.to_string();
        // One pass over each line's bytes (a record of 10,000 files is read at every sync):
        // the numbers and the hash read in place, the path the rest of the line.
        let mut entries = Vec::with_capacity(text.bytes().filter(|b| *b == b'\n').count());
        for line in lines.filter(|l| !l.is_empty()) {
            if let Some(path) = line.strip_prefix("- ") {
                entries.push((path.to_string(), None));
                continue;
            }
            let mut rest = line.as_bytes();
            let mut number = || -> Option<u64> {
                let end = rest.iter().position(|b| *b == b' ')?;
                let value = decimal(&rest[..end])?;
                rest = &rest[end + 1..];
                Some(value)
            };
            let (size, mtime, ctime, ino) = (number()?, number()?, number()?, number()?);
            let (sha, path) = (rest.get(..64)?, rest.get(64..)?);
            let sha256 = unhex(sha)?;
            let path = std::str::from_utf8(path.strip_prefix(b" ")?).ok()?;
            let file = FileId {
                size,
                mtime,
                ctime,
                ino,
                sha256,
            };
            entries.push((path.to_string(), Some(file)));
        }
        entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
            .then_some(Listing {
                taken,
                entries,
                id,
                hashed: 0,
                as_recorded: false,
            })
    }
}

/// The listing the last sync of `target` recorded, if any and readable.
pub fn read(target: &Path) -> Option<Listing> {
    Listing::parse(&std::fs::read_to_string(path(target)).ok()?)
}

/// Records `listing` as what the sync of `target` copied, unless the record says exactly that
/// already. A failure costs the next sync a walk.
pub fn write_if_new(target: &Path, listing: &Listing) {
    if listing.as_recorded {
        return;
    }
    let _ =
        crate::ground::paths::write_atomically_in_place(&path(target), listing.render().as_bytes());
}

fn path(target: &Path) -> std::path::PathBuf {
    crate::ground::paths::state_dir(target).join(FILE)
}

/// Every folder and file of the source, with each file's size and identity, before any is
/// read: what [`finish`] completes once the record is read (the two overlap).
pub struct Stated {
    entries: Vec<(String, Option<Stat>)>,
    /// When the listing started (ns since the epoch).
    taken: u64,
}

impl Stated {
    /// Each file's path, size and modification time (ns since the epoch), by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.entries
            .iter()
            .filter_map(|(path, stat)| stat.map(|s| (path.as_str(), s.size, s.mtime)))
    }
}

/// A file's size, modification and change times and inode.
#[derive(Debug, Clone, Copy)]
struct Stat {
    size: u64,
    mtime: u64,
    ctime: u64,
    ino: u64,
}

/// Lists the source as the sync would copy it: one stat per file, asked of its folder's
/// handle, the folders in parallel.
pub fn stat(options: &SyncOptions) -> Result<Stated, String> {
    let taken = now();
    // On local disk a stat takes ~2 us, less than a task costs: a few dozen per task. On a
    // network filesystem each is a round trip: one per task, as many at once as workers.
    let per_task = match crate::env::files::network_filesystem(&options.from) {
        Some(_) => 1,
        None => 32,
    };
    let mut entries = folder(options, "", per_task)?;
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(Stated { entries, taken })
}

/// The listing of `stated`: each file's recorded hash where `previous`
/// vouches for it (the same size, times and inode, changed more than [`RACY`] before the record
/// was taken), else its content hashed, in parallel.
pub fn finish(
    options: &SyncOptions,
    stated: Stated,
    previous: Option<&Listing>,
) -> Result<Listing, String> {
    let taken = stated.taken;
    let trusted_before = previous.map_or(0, |p| p.taken.saturating_sub(RACY.as_nanos() as u64));
    // Both sorted by path: one pass pairs each file with its recorded entry.
    let recorded = previous.map_or(&[][..], |p| p.entries.as_slice());
    let mut at = 0;
    let mut to_hash = Vec::new();
    let mut entries: Vec<(String, Option<FileId>)> = Vec::with_capacity(stated.entries.len());
    for (path, stat) in stated.entries {
        let Some(s) = stat else {
            entries.push((path, None));
            continue;
        };
        while at < recorded.len() && recorded[at].0 < path {
            at += 1;
        }
        let known = recorded
            .get(at)
            .filter(|(p, _)| *p == path)
            .and_then(|(_, e)| e.as_ref());
        let file = FileId {
            size: s.size,
            mtime: s.mtime,
            ctime: s.ctime,
            ino: s.ino,
            sha256: [0; 32],
        };
        match known {
            Some(known)
                if known.size == s.size
                    && (known.mtime, known.ctime, known.ino) == (s.mtime, s.ctime, s.ino)
                    && s.ctime != 0
                    && s.ctime < trusted_before =>
            {
                entries.push((path, Some(*known)))
            }
            _ => {
                to_hash.push(entries.len());
                entries.push((path, Some(file)));
            }
        }
    }
    let hashes: Vec<[u8; 32]> = to_hash
        .par_iter()
        .map(|i| {
            let path = &entries[*i].0;
            hash_file(&options.from.join(path)).map_err(|e| format!("{path}: {e}"))
        })
        .collect::<Result<_, String>>()?;
    for (i, sha256) in to_hash.iter().zip(hashes) {
        if let Some(file) = entries[*i].1.as_mut() {
            file.sha256 = sha256;
        }
    }
    let hashed = to_hash.len();
    match previous {
        // Exactly the record: its time and id stand (nothing to rewrite or hash again).
        Some(p) if hashed == 0 && p.entries == entries => Ok(Listing {
            taken: p.taken,
            entries,
            id: p.id.clone(),
            hashed,
            as_recorded: true,
        }),
        _ => {
            let mut listing = Listing::new(taken, entries);
            listing.hashed = hashed;
            Ok(listing)
        }
    }
}

/// The entries of folder `relative` of the source and of everything under it, its files
/// stat'ed `per_task` to a task.
fn folder(
    options: &SyncOptions,
    relative: &str,
    per_task: usize,
) -> Result<Vec<(String, Option<Stat>)>, String> {
    let dir = options.from.join(relative);
    let read = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut children = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("{relative}: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = match relative {
            "" => name.clone(),
            _ => format!("{relative}/{name}"),
        };
        if options.ignore.matches(&child, &name) {
            continue;
        }
        if options
            .protected
            .iter()
            .any(|p| p.name.eq_ignore_ascii_case(&child))
        {
            return Err(format!("the source has {child}, which kuduhook keeps"));
        }
        if child.contains('\n') {
            return Err(format!("a name holds a line break ({child:?})"));
        }
        let file_type = entry.file_type().map_err(|e| format!("{child}: {e}"))?;
        if file_type.is_symlink() {
            return Err(format!("the source has a link ({child})"));
        }
        if name.eq_ignore_ascii_case("pyvenv.cfg") {
            return Err(format!("the source has a virtual environment ({child})"));
        }
        if !file_type.is_dir() && !file_type.is_file() {
            return Err(format!("{child} is neither a file nor a folder"));
        }
        children.push((child, entry, file_type.is_dir()));
    }
    let (folders, files): (Vec<_>, Vec<_>) =
        children.into_iter().partition(|(_, _, is_dir)| *is_dir);
    let mut found: Vec<(String, Option<Stat>)> = files
        .into_par_iter()
        .with_min_len(per_task)
        .map(|(child, entry, _)| {
            // Asked of the folder's handle: no walk of the path again.
            let meta = entry.metadata().map_err(|e| format!("{child}: {e}"))?;
            let (mtime, ctime, ino) = identity(&meta);
            let stat = Stat {
                size: meta.len(),
                mtime,
                ctime,
                ino,
            };
            Ok((child, Some(stat)))
        })
        .collect::<Result<_, String>>()?;
    let under: Vec<Vec<(String, Option<Stat>)>> = folders
        .into_par_iter()
        .map(|(child, _, _)| {
            let mut under = folder(options, &child, per_task)?;
            under.push((child, None));
            Ok(under)
        })
        .collect::<Result<_, String>>()?;
    found.extend(under.into_iter().flatten());
    Ok(found)
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

fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hash.update(&buf[..n]),
        }
    }
    Ok(hash.finalize().into())
}

/// The decimal number `digits` spell (nothing else, not empty, no overflow).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
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
/// added or removed (a folder's own changes are its files'). Both are sorted: one pass.
pub fn differences(old: &Listing, new: &Listing) -> Vec<Difference> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let mut out = Vec::new();
    let change = |path: &str, existed: bool, exists: bool, dir: bool| Difference {
        path: path.to_string(),
        existed,
        exists,
        dir,
    };
    let (mut a, mut b) = (old.entries.iter().peekable(), new.entries.iter().peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some((pa, _)), Some((pb, _))) => pa.cmp(pb),
        };
        match order {
            Less => {
                let (path, before) = a.next().expect("peeked");
                out.push(change(path, true, false, before.is_none()));
            }
            Greater => {
                let (path, now) = b.next().expect("peeked");
                out.push(change(path, false, true, now.is_none()));
            }
            Equal => {
                let ((path, before), (_, now)) =
                    (a.next().expect("peeked"), b.next().expect("peeked"));
                match (before, now) {
                    (Some(x), Some(y)) if x.size == y.size && x.sha256 == y.sha256 => {}
                    (None, None) => {}
                    (Some(_), Some(_)) => out.push(change(path, true, true, false)),
                    // A folder became a file or the other way: the old one goes, the new comes.
                    (before, now) => {
                        out.push(change(path, true, false, before.is_none()));
                        out.push(change(path, false, true, now.is_none()));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source listed and hashed in one go.
    fn take(options: &SyncOptions, previous: Option<&Listing>) -> Result<Listing, String> {
        finish(options, stat(options)?, previous)
    }

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
        assert_eq!(first.entries.iter().filter(|(_, e)| e.is_some()).count(), 1);
        assert_eq!(first.get("pkg/empty"), Some(&None));
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
        let first = take(&options(&app), None).unwrap();
        // A record taken long after the file last changed vouches for it: a wrong hash in the
        // record shows it was not read again. The record goes through its text, as on disk.
        let recorded = |taken: u64| {
            let mut entries = first.entries.clone();
            entries[0].1.as_mut().unwrap().sha256 = [7; 32];
            Listing::parse(&Listing::new(taken, entries).render()).unwrap()
        };
        let sha = |l: &Listing| l.get("a.py").unwrap().as_ref().unwrap().sha256;
        let old_enough = recorded(first.taken + 10 * 1_000_000_000);
        let second = take(&options(&app), Some(&old_enough)).unwrap();
        assert_eq!(sha(&second), [7; 32]);
        assert_eq!((second.hashed, second.as_recorded), (0, true));
        // Taken within 2 s of the file's change: not trusted, read again.
        let racy = recorded(first.taken);
        let third = take(&options(&app), Some(&racy)).unwrap();
        assert_ne!(sha(&third), [7; 32]);
        assert_eq!((third.hashed, third.as_recorded), (1, false));
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
        let file = |sha: u8| {
            Some(FileId {
                size: 1,
                mtime: 0,
                ctime: 0,
                ino: 0,
                sha256: [sha; 32],
            })
        };
        let listing = |entries: Vec<(&str, Option<FileId>)>| {
            Listing::new(
                0,
                entries
                    .into_iter()
                    .map(|(p, e)| (p.to_string(), e))
                    .collect(),
            )
        };
        let old = listing(vec![
            ("a", file(1)),
            ("d", None),
            ("d/b", file(2)),
            ("x", None),
        ]);
        let new = listing(vec![("a", file(1)), ("d", file(3)), ("e", None)]);
        let got: Vec<(String, bool, bool, bool)> = differences(&old, &new)
            .into_iter()
            .map(|d| (d.path, d.existed, d.exists, d.dir))
            .collect();
        let want = [
            ("d", true, false, true),
            ("d", false, true, false),
            ("d/b", true, false, false),
            ("e", false, true, true),
            ("x", true, false, true),
        ];
        assert_eq!(
            got,
            want.map(|(p, a, b, c)| (p.to_string(), a, b, c)).to_vec()
        );
    }

    #[test]
    fn the_record_reads_back_what_was_written_and_a_damaged_one_is_not_trusted() {
        let file = |n: u8| FileId {
            size: u64::MAX,
            mtime: 1_700_000_000_123_456_789,
            ctime: 1_700_000_001_000_000_000,
            ino: u64::from(n),
            sha256: [n.wrapping_mul(37); 32],
        };
        let listing = Listing::new(
            42,
            vec![
                ("a b.txt".to_string(), Some(file(1))),
                ("static".to_string(), None),
                ("static/\u{e9}t\u{e9} 2.css".to_string(), Some(file(250))),
            ],
        );
        let text = listing.render();
        assert_eq!(Listing::parse(&text), Some(listing));
        // Each damage the next sync could meet: the record is not used (the sync walks).
        let damaged = [
            text.replacen("kuduhook synced files 2", "kuduhook synced files 1", 1),
            text.replacen(" 1700000001000000000 ", " 17000000010000x0000 ", 1),
            text.replacen("18446744073709551615", "18446744073709551616", 1),
            text.replacen(&hex(&[37; 32]), &hex(&[37; 31]), 1),
            text.replacen(&hex(&[37; 32]), &format!("g{}", &hex(&[37; 32])[1..]), 1),
            text.replacen("- static\n", "- zz\n", 1),
        ];
        for text in damaged {
            assert_eq!(Listing::parse(&text), None, "{text}");
        }
    }
}
