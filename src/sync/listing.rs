//! The sync without a walk of the site, for a source that is not a git checkout: a zip
//! deployment's extracted folder, an app in a subfolder of a repository, `kuduhook sync` from
//! any folder.
//!
//! What the last sync copied is recorded beside the site ([`FILE`], in kuduhook's state folder
//! for the target): every file's path, size and SHA-256, the identity of the file it was read
//! from (size, modification and change times, inode: its [`Stamp`]), and every folder's stamp.
//! The next sync lists the source (on local disk, where a zip is extracted: cheap) and compares
//! it with that record instead of listing the site (on App Service's share: a round trip per
//! folder and per file). What differs is what `delta.rs` turns into a plan, as it does git's
//! diff.
//!
//! Exact, never trusting a time alone (git's own rule: a change time cannot be set back, so an
//! unchanged change time and inode mean an unchanged file or folder), and nothing changed within
//! [`RACY`] of when the record was taken is trusted:
//! - a file whose stamp is the recorded one keeps its recorded hash; every other file is
//!   hashed. A zip's extraction writes every file anew (new change times, new inodes), so each is
//!   hashed: a file whose content changed within the same 2-second zip time is still copied;
//! - a folder whose stamp is the recorded one holds the entries recorded in it (adding, removing
//!   or renaming an entry changes its folder's times): on a local Linux filesystem its files are
//!   stat'ed by their recorded names, without reading the folder, when the record was taken with
//!   the same options. A file rewritten in place moves no folder's time: every file is stat'ed.
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
const HEADER: &str = "kuduhook synced files 3";

/// A file or folder changed this close to when the record was taken may have changed again
/// within the same tick of its change time (2 s: the coarsest a share keeps): not trusted.
const RACY: Duration = Duration::from_secs(2);

/// What says a file or folder was not touched since it was recorded: its modification and change
/// times (ns since the epoch) and inode. All 0 where the platform gives none: never trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub mtime: u64,
    pub ctime: u64,
    pub ino: u64,
}

impl Stamp {
    /// Whether this recorded stamp vouches for what was recorded with it, the entry's stamp
    /// being `now`: the same, and changed before `trusted_before`.
    fn vouches_for(&self, now: &Stamp, trusted_before: u64) -> bool {
        self == now && self.ctime != 0 && self.ctime < trusted_before
    }
}

/// One file as read from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub size: u64,
    /// The file the content was read from.
    pub stamp: Stamp,
    pub sha256: [u8; 32],
}

/// An entry of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Folder(Stamp),
    File(FileId),
}

impl Entry {
    pub fn file(&self) -> Option<&FileId> {
        match self {
            Entry::File(file) => Some(file),
            Entry::Folder(_) => None,
        }
    }
}

/// The source as a sync saw it: every folder and file it syncs, by path (`/`-separated),
/// sorted by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// When the listing was taken (ns since the epoch).
    taken: u64,
    /// The options it was taken with ([`SyncOptions::fingerprint`]).
    options: String,
    /// The source folder's own stamp.
    root: Stamp,
    pub entries: Vec<(String, Entry)>,
    /// What it holds ([`Listing::id`]), computed once.
    id: String,
    /// Files read and hashed to take it (the others were vouched for by the record).
    hashed: usize,
    /// Folders not read to take it (the record vouched for them), when it was taken here.
    folders_not_read: Option<usize>,
    /// Exactly the record it was compared with: nothing to write.
    as_recorded: bool,
}

impl Listing {
    fn new(taken: u64, options: String, root: Stamp, entries: Vec<(String, Entry)>) -> Listing {
        let id = Listing::id_of(&entries);
        Listing::with_id(taken, options, root, entries, id)
    }

    /// A listing of `entries`, whose id is `id`.
    fn with_id(
        taken: u64,
        options: String,
        root: Stamp,
        entries: Vec<(String, Entry)>,
        id: String,
    ) -> Listing {
        Listing {
            taken,
            options,
            root,
            entries,
            id,
            hashed: 0,
            folders_not_read: None,
            as_recorded: false,
        }
    }

    /// The id of `entries`: a hash of each path, what it is, and each file's size and content.
    fn id_of(entries: &[(String, Entry)]) -> String {
        let mut hash = Sha256::new();
        for (path, entry) in entries {
            hash.update(path.as_bytes());
            match entry {
                Entry::Folder(_) => hash.update(b"\0dir\n"),
                Entry::File(file) => {
                    hash.update(b"\0");
                    hash.update(file.size.to_le_bytes());
                    hash.update(file.sha256);
                    hash.update(b"\n");
                }
            }
        }
        format!("files:{}", hex(&hash.finalize()))
    }

    /// How many of the source's folders were read to take the listing, of all of them (the
    /// others were as recorded), when it was taken here.
    pub fn folders_read(&self) -> Option<(usize, usize)> {
        let folders = 1 + self
            .entries
            .iter()
            .filter(|(_, e)| e.file().is_none())
            .count();
        self.folders_not_read
            .map(|not_read| (folders - not_read.min(folders), folders))
    }

    /// What the listing holds, whatever files it was read from: the paths, what each is, and
    /// each file's size and content. Two syncs of the same content have the same id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The entry for `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The stamp of folder `relative` ("": the source itself), and the entries recorded
    /// directly in it.
    #[cfg(target_os = "linux")]
    fn folder(&self, relative: &str) -> Option<(Stamp, impl Iterator<Item = &(String, Entry)>)> {
        let stamp = match relative {
            "" => self.root,
            _ => match self.get(relative)? {
                Entry::Folder(stamp) => *stamp,
                Entry::File(_) => return None,
            },
        };
        let prefix = match relative {
            "" => String::new(),
            _ => format!("{relative}/"),
        };
        let entries = &self.entries;
        let mut at = entries.partition_point(|(p, _)| p.as_str() < prefix.as_str());
        // Everything under the folder is one run of the sorted entries, and everything under
        // each of its folders a run within it: such a run is skipped in one search, not read
        // entry by entry (the source's own folder would otherwise go through every entry).
        let children = std::iter::from_fn(move || {
            loop {
                let (path, _) = entries.get(at)?;
                let name = path.strip_prefix(prefix.as_str())?;
                match name.find('/') {
                    None => {
                        at += 1;
                        return Some(&entries[at - 1]);
                    }
                    Some(slash) => {
                        let under = &path[..prefix.len() + slash + 1];
                        at += entries[at..].partition_point(|(p, _)| p.starts_with(under));
                    }
                }
            }
        });
        Some((stamp, children))
    }

    /// The record's text: a header, when it was taken, the options, its id, then one line per
    /// entry, the path last (`- <mtime> <ctime> <inode> <path>` for a folder, the source itself
    /// first with an empty path; `<size> <mtime> <ctime> <inode> <sha256> <path>` for a file).
    fn render(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 140);
        let folder = |out: &mut String, path: &str, s: &Stamp| {
            out.push_str(&format!("- {} {} {} {path}\n", s.mtime, s.ctime, s.ino));
        };
        out.push_str(&format!(
            "{HEADER}\n{}\n{}\n{}\n",
            self.taken, self.options, self.id
        ));
        folder(&mut out, "", &self.root);
        for (path, entry) in &self.entries {
            match entry {
                Entry::Folder(stamp) => folder(&mut out, path, stamp),
                Entry::File(f) => out.push_str(&format!(
                    "{} {} {} {} {} {path}\n",
                    f.size,
                    f.stamp.mtime,
                    f.stamp.ctime,
                    f.stamp.ino,
                    hex(&f.sha256)
                )),
            }
        }
        out
    }

    fn parse(text: &str) -> Option<Listing> {
        let mut lines = text.splitn(5, '\n');
        if lines.next()? != HEADER {
            return None;
        }
        let taken = lines.next()?.parse().ok()?;
        let options = lines.next()?.to_string();
        // Kept with the entries it was computed from (this file is kuduhook's own): not
        // hashed again at every read.
        let id = lines.next()?.to_string();
        // The source itself first (an empty path), then the entries, sorted.
        let rest = lines.next()?;
        let (first, rest) = rest.split_once('\n')?;
        let root = match parse_line(first)? {
            ("", Entry::Folder(stamp)) => stamp,
            _ => return None,
        };
        // A record of 10,000 files is read at every sync, before the source is listed: each
        // line in one pass over its bytes (the numbers and the hash read in place, the path the
        // rest of the line).
        let mut entries: Vec<(String, Entry)> = Vec::with_capacity(rest.len() / 100);
        for line in rest.split('\n').filter(|l| !l.is_empty()) {
            let (path, entry) = parse_line(line)?;
            if entries
                .last()
                .is_some_and(|(last, _)| last.as_str() >= path)
                || path.is_empty()
            {
                return None;
            }
            entries.push((path.to_string(), entry));
        }
        Some(Listing::with_id(taken, options, root, entries, id))
    }
}

/// One line of the record: its path and entry.
fn parse_line(line: &str) -> Option<(&str, Entry)> {
    let (folder, mut rest) = match line.strip_prefix("- ") {
        Some(rest) => (true, rest.as_bytes()),
        None => (false, line.as_bytes()),
    };
    let mut number = || -> Option<u64> {
        let end = rest.iter().position(|b| *b == b' ')?;
        let value = decimal(&rest[..end])?;
        rest = &rest[end + 1..];
        Some(value)
    };
    let size = if folder { 0 } else { number()? };
    let stamp = Stamp {
        mtime: number()?,
        ctime: number()?,
        ino: number()?,
    };
    let (entry, path) = match folder {
        true => (Entry::Folder(stamp), rest),
        false => {
            let (sha, path) = (rest.get(..64)?, rest.get(64..)?);
            let file = FileId {
                size,
                stamp,
                sha256: unhex(sha)?,
            };
            (Entry::File(file), path.strip_prefix(b" ")?)
        }
    };
    // The path is the line's rest: what precedes it is ASCII, so it starts on a character.
    Some((line.get(line.len() - path.len()..)?, entry))
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

/// Every folder and file of the source, with each one's stamp and each file's size, before
/// any is read (the files' hashes are not known yet): what [`finish`] completes.
pub struct Stated {
    entries: Vec<(String, Entry)>,
    root: Stamp,
    /// When the listing started (ns since the epoch).
    taken: u64,
    /// Folders taken as the record has them, not read.
    vouched: usize,
    /// The record of the last sync it was listed against: read once, for the listing and for
    /// what it completes ([`Stated::take_record`]).
    record: Option<Listing>,
}

impl Stated {
    /// The record of the last sync this listing was taken against, for [`finish`].
    pub fn take_record(&mut self) -> Option<Listing> {
        self.record.take()
    }

    /// Each file's path, size and modification time (ns since the epoch), by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.entries.iter().filter_map(|(path, entry)| {
            entry.file().map(|f| (path.as_str(), f.size, f.stamp.mtime))
        })
    }
}

/// What a listing asks of the record of the last one: the folders it vouches for (on Linux,
/// where folders are given stamps).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct Vouching<'a> {
    record: &'a Listing,
    trusted_before: u64,
}

/// Lists the source as the sync would copy it: one stat per file, the folders in parallel.
/// With `record`, the last sync's (when taken with these options), a folder whose stamp it
/// vouches for is not read: its recorded files are stat'ed by name. The record is kept with
/// the listing.
pub fn stat(options: &SyncOptions, record: Option<Listing>) -> Result<Stated, String> {
    let taken = now();
    let network = crate::env::files::network_filesystem(&options.from).is_some();
    let fingerprint = record.as_ref().map(|_| options.fingerprint());
    let vouching = record
        .as_ref()
        .filter(|r| !network && Some(&r.options) == fingerprint.as_ref())
        .map(|record| Vouching {
            record,
            trusted_before: record.taken.saturating_sub(RACY.as_nanos() as u64),
        });
    let lister = Lister {
        options,
        network,
        vouching,
        vouched: std::sync::atomic::AtomicUsize::new(0),
    };
    let (root, entries) = lister.folder("")?;
    debug_assert!(
        entries.is_sorted_by(|a, b| a.0 < b.0),
        "the listing is in path order"
    );
    let vouched = lister.vouched.into_inner();
    Ok(Stated {
        entries,
        root,
        taken,
        vouched,
        record,
    })
}

/// The listing of `stated`: each file's recorded hash where `previous` vouches for it (its
/// stamp the recorded one, changed more than [`RACY`] before the record was taken), else its
/// content hashed, in parallel.
pub fn finish(
    options: &SyncOptions,
    stated: Stated,
    previous: Option<&Listing>,
) -> Result<Listing, String> {
    let taken = stated.taken;
    let fingerprint = options.fingerprint();
    let trusted_before = previous.map_or(0, |p| p.taken.saturating_sub(RACY.as_nanos() as u64));
    // Both sorted by path: one pass pairs each entry with its recorded one, and tells whether
    // every entry is the recorded one.
    let recorded = previous.map_or(&[][..], |p| p.entries.as_slice());
    let mut at = 0;
    // A folder as recorded but changed too close to the record is read at every sync until
    // the record is taken again: one not old enough leaves it to be rewritten.
    let old_enough = |stamp: &Stamp| stamp.ctime < trusted_before;
    let mut as_recorded = previous.is_some_and(|p| {
        p.options == fingerprint
            && p.root == stated.root
            && old_enough(&p.root)
            && p.entries.len() == stated.entries.len()
    });
    let mut to_hash = Vec::new();
    // Completed in place (a new vector of 10,000 entries costs its memory's page faults).
    let mut entries = stated.entries;
    for (i, (path, entry)) in entries.iter_mut().enumerate() {
        while at < recorded.len() && recorded[at].0 < *path {
            at += 1;
        }
        let known = recorded.get(at).filter(|(p, _)| p == path).map(|(_, e)| e);
        match (&*entry, known) {
            (Entry::Folder(stamp), _) => as_recorded &= known == Some(entry) && old_enough(stamp),
            (Entry::File(file), Some(Entry::File(known)))
                if known.size == file.size
                    && known.stamp.vouches_for(&file.stamp, trusted_before) =>
            {
                *entry = Entry::File(*known)
            }
            (Entry::File(_), _) => to_hash.push(i),
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
        if let Entry::File(file) = &mut entries[*i].1 {
            file.sha256 = sha256;
        }
    }
    let hashed = to_hash.len();
    let folders_not_read = Some(stated.vouched);
    match previous {
        // Exactly the record: its time and id stand (nothing to rewrite or hash again).
        Some(p) if hashed == 0 && as_recorded => Ok(Listing {
            taken: p.taken,
            options: fingerprint,
            root: stated.root,
            entries,
            id: p.id.clone(),
            hashed,
            folders_not_read,
            as_recorded: true,
        }),
        _ => {
            let mut listing = Listing::new(taken, fingerprint, stated.root, entries);
            listing.hashed = hashed;
            listing.folders_not_read = folders_not_read;
            Ok(listing)
        }
    }
}

/// One listing of the source under way.
struct Lister<'a> {
    options: &'a SyncOptions,
    /// The source is on a network filesystem: each stat is a round trip.
    network: bool,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    vouching: Option<Vouching<'a>>,
    vouched: std::sync::atomic::AtomicUsize,
}

/// A folder's files (each with its stamp and size) and folders, by path.
#[cfg(target_os = "linux")]
type Children = (Vec<(String, Entry)>, Vec<String>);

/// A piece of a folder's listing, to be put in path order: one entry (a file, or a folder's
/// own), or everything under a folder (its path and '/', the key it sorts by, with its entries).
enum Piece {
    One((String, Entry)),
    Under(String, Vec<(String, Entry)>),
}

impl Piece {
    fn key(&self) -> &str {
        match self {
            Piece::One((path, _)) | Piece::Under(path, _) => path,
        }
    }

    fn len(&self) -> usize {
        match self {
            Piece::One(_) => 1,
            Piece::Under(_, entries) => entries.len(),
        }
    }
}

/// Folder `relative`'s stamp, its files (each with its stamp and size) and its folders.
type FolderRead = (Stamp, Vec<(String, Entry)>, Vec<String>);

impl Lister<'_> {
    /// Folder `relative`'s stamp, and the entries of it and of everything under it, its
    /// folders in parallel, in the record's order (by path, as bytes).
    fn folder(&self, relative: &str) -> Result<(Stamp, Vec<(String, Entry)>), String> {
        let (stamp, files, folders) = self.read_folder(relative)?;
        let under: Vec<[Piece; 2]> = folders
            .into_par_iter()
            .map(|child| {
                let (stamp, under) = self.folder(&child)?;
                let key = format!("{child}/");
                Ok([
                    Piece::One((child, Entry::Folder(stamp))),
                    Piece::Under(key, under),
                ])
            })
            .collect::<Result<_, String>>()?;
        // In path order without a sort of the whole listing (10,000 paths: 1.2 ms on one core,
        // while the listing's stats take 8 ms on two): each folder orders its own pieces, a
        // folder's entry by its path and what is under it by the path and '/' ("a" < "a.txt" <
        // "a/x").
        let mut pieces: Vec<Piece> = files.into_iter().map(Piece::One).collect();
        pieces.extend(under.into_iter().flatten());
        pieces.sort_by(|a, b| a.key().cmp(b.key()));
        let count = pieces.iter().map(Piece::len).sum();
        let mut found = Vec::with_capacity(count);
        for piece in pieces {
            match piece {
                Piece::One(entry) => found.push(entry),
                Piece::Under(_, under) => found.extend(under),
            }
        }
        Ok((stamp, found))
    }

    /// The path of entry `name` of folder `relative`, if the sync copies it (`None`:
    /// ignored), or why this path cannot describe it.
    fn admit(&self, relative: &str, name: &str, kind: Kind) -> Result<Option<String>, String> {
        let options = self.options;
        let child = match relative {
            "" => name.to_string(),
            _ => format!("{relative}/{name}"),
        };
        if options.ignore.matches(&child, name) {
            return Ok(None);
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
        match kind {
            Kind::Symlink => Err(format!("the source has a link ({child})")),
            _ if name.eq_ignore_ascii_case("pyvenv.cfg") => {
                Err(format!("the source has a virtual environment ({child})"))
            }
            Kind::Other => Err(format!("{child} is neither a file nor a folder")),
            Kind::File | Kind::Dir => Ok(Some(child)),
        }
    }

    /// Reads folder `relative` of the source.
    fn read_folder(&self, relative: &str) -> Result<FolderRead, String> {
        #[cfg(target_os = "linux")]
        if !self.network {
            return self.read_folder_linux(relative);
        }
        self.read_folder_std(relative)
    }

    /// On a local Linux filesystem one task reads a folder and stats its files, asked of the
    /// folder's handle (a stat there costs ~2 us, less than handing it to another thread: the
    /// folders are what run in parallel). A folder the record vouches for is not read.
    #[cfg(target_os = "linux")]
    fn read_folder_linux(&self, relative: &str) -> Result<FolderRead, String> {
        use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, open, statx};
        let path = self.options.from.join(relative);
        let failed =
            |e: rustix::io::Errno| format!("{}: {}", path.display(), std::io::Error::from(e));
        let fd = open(
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(failed)?;
        // The folder's own stamp, before its entries are read: a change while they are
        // read leaves a stamp the next listing does not trust.
        let stamp =
            statx_stamp(&statx(&fd, c"", AtFlags::EMPTY_PATH, STATX_WANTED).map_err(failed)?);
        if let Some(vouching) = &self.vouching
            && let Some((recorded, children)) = vouching.record.folder(relative)
            && recorded.vouches_for(&stamp, vouching.trusted_before)
            && let Some((files, folders)) = as_recorded(&fd, relative, children)
        {
            self.vouched
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok((stamp, files, folders));
        }
        let mut dir = Dir::new(fd).map_err(failed)?;
        let (mut files, mut folders) = (Vec::new(), Vec::new());
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let text = name.to_string_lossy();
            // A file is stat'ed anyway: its kind is taken from the stat (some filesystems'
            // listings give none).
            let (kind, file) = match entry.file_type() {
                FileType::Directory => (Kind::Dir, None),
                FileType::Symlink => (Kind::Symlink, None),
                _ => {
                    let fd = dir.fd().map_err(failed)?;
                    let stat = statx(fd, name, AtFlags::SYMLINK_NOFOLLOW, STATX_WANTED)
                        .map_err(|e| format!("{relative}/{text}: {}", std::io::Error::from(e)))?;
                    (Kind::of_mode(stat.stx_mode.into()), Some(statx_file(&stat)))
                }
            };
            match (self.admit(relative, &text, kind)?, file) {
                (None, _) => {}
                (Some(child), Some(file)) if kind == Kind::File => {
                    files.push((child, Entry::File(file)))
                }
                (Some(child), _) => folders.push(child),
            }
        }
        Ok((stamp, files, folders))
    }

    /// Reads folder `relative` with the standard library, its files stat'ed in parallel (on
    /// a network filesystem each stat is a round trip: one per task, as many at once as
    /// workers). Folders are given no stamp: the record vouches for none of them.
    fn read_folder_std(&self, relative: &str) -> Result<FolderRead, String> {
        let dir = self.options.from.join(relative);
        let read = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (mut files, mut folders) = (Vec::new(), Vec::new());
        for entry in read {
            let entry = entry.map_err(|e| format!("{relative}: {e}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry
                .file_type()
                .map_err(|e| format!("{relative}/{name}: {e}"))?;
            let kind = Kind::of(file_type);
            match self.admit(relative, &name, kind)? {
                Some(child) if kind == Kind::File => files.push((child, entry)),
                Some(child) => folders.push(child),
                None => {}
            }
        }
        let per_task = if self.network { 1 } else { 32 };
        let files = files
            .into_par_iter()
            .with_min_len(per_task)
            .map(|(child, entry)| {
                // Asked of the folder's handle: no walk of the path again.
                let meta = entry.metadata().map_err(|e| format!("{child}: {e}"))?;
                let file = FileId {
                    size: meta.len(),
                    stamp: stamp_of(&meta),
                    sha256: [0; 32],
                };
                Ok((child, Entry::File(file)))
            })
            .collect::<Result<_, String>>()?;
        Ok((Stamp::default(), files, folders))
    }
}

/// What an entry is, as its folder's listing (or its stat) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    pub(super) fn of(file_type: std::fs::FileType) -> Kind {
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

    #[cfg(target_os = "linux")]
    fn of_mode(mode: u32) -> Kind {
        use rustix::fs::FileType;
        match FileType::from_raw_mode(mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// What the Linux listing asks of each stat: the kind, size, times and inode.
#[cfg(target_os = "linux")]
const STATX_WANTED: rustix::fs::StatxFlags = rustix::fs::StatxFlags::TYPE
    .union(rustix::fs::StatxFlags::SIZE)
    .union(rustix::fs::StatxFlags::MTIME)
    .union(rustix::fs::StatxFlags::CTIME)
    .union(rustix::fs::StatxFlags::INO);

#[cfg(target_os = "linux")]
fn statx_stamp(s: &rustix::fs::Statx) -> Stamp {
    let nanos = |t: rustix::fs::StatxTimestamp| {
        (t.tv_sec.max(0) as u64) * 1_000_000_000 + u64::from(t.tv_nsec)
    };
    Stamp {
        mtime: nanos(s.stx_mtime),
        ctime: nanos(s.stx_ctime),
        ino: s.stx_ino,
    }
}

/// A file as its stat gives it, not yet hashed.
#[cfg(target_os = "linux")]
fn statx_file(s: &rustix::fs::Statx) -> FileId {
    FileId {
        size: s.stx_size,
        stamp: statx_stamp(s),
        sha256: [0; 32],
    }
}

/// The files and folders of folder `relative` (open as `fd`) as the record has them
/// (`children`), each recorded file stat'ed by name; `None` when one is gone or no longer a
/// file (changed since its folder was stat'ed): the folder is read after all.
#[cfg(target_os = "linux")]
fn as_recorded<'a>(
    fd: &rustix::fd::OwnedFd,
    relative: &str,
    children: impl Iterator<Item = &'a (String, Entry)>,
) -> Option<Children> {
    use rustix::fs::{AtFlags, statx};
    let name_at = relative.len() + usize::from(!relative.is_empty());
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    for (child, entry) in children {
        match entry {
            Entry::Folder(_) => folders.push(child.clone()),
            Entry::File(_) => {
                let stat = statx(
                    fd,
                    &child[name_at..],
                    AtFlags::SYMLINK_NOFOLLOW,
                    STATX_WANTED,
                )
                .ok()?;
                if Kind::of_mode(stat.stx_mode.into()) != Kind::File {
                    return None;
                }
                files.push((child.clone(), Entry::File(statx_file(&stat))));
            }
        }
    }
    Some((files, folders))
}

/// A file's stamp (times 0 where the platform has none: such a file is always hashed).
fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    let nanos = |t: std::io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ctime = (meta.ctime().max(0) as u64) * 1_000_000_000 + meta.ctime_nsec().max(0) as u64;
        Stamp {
            mtime: nanos(meta.modified()),
            ctime,
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        Stamp {
            mtime: nanos(meta.modified()),
            ctime: 0,
            ino: 0,
        }
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
    // The record's numbers (times in nanoseconds: 19 digits; 40,000 of them in a record of
    // 10,000 files): up to 19 digits cannot overflow, so only the digits are checked, and they
    // are read eight at a time.
    if digits.len() <= 19 {
        let (mut n, mut all_digits) = (0u64, true);
        let mut eights = digits.chunks_exact(8);
        for eight in &mut eights {
            let word = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
            all_digits &= eight_digits(word);
            n = n
                .wrapping_mul(100_000_000)
                .wrapping_add(value_of_eight(word));
        }
        for d in eights.remainder() {
            let d = d.wrapping_sub(b'0');
            all_digits &= d <= 9;
            n = n.wrapping_mul(10).wrapping_add(u64::from(d));
        }
        return all_digits.then_some(n);
    }
    digits.iter().try_fold(0u64, |n, d| {
        let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Whether the 8 bytes of `word` are all ASCII digits: each byte's high half is 3, and its low
/// half stays under 16 when 6 is added.
fn eight_digits(word: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    word & HIGH == THREES && word.wrapping_add(0x0606_0606_0606_0606) & HIGH == THREES
}

/// The number 8 ASCII digits spell (the first, most significant, in the lowest byte): pairs,
/// then fours, then the eight, each step in all lanes at once.
fn value_of_eight(word: u64) -> u64 {
    let v = word.wrapping_sub(0x3030_3030_3030_3030);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = v.wrapping_mul(100).wrapping_add(v >> 16) & 0x0000_FFFF_0000_FFFF;
    v.wrapping_mul(10_000).wrapping_add(v >> 32) & 0xFFFF_FFFF
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
                out.push(change(path, true, false, before.file().is_none()));
            }
            Greater => {
                let (path, now) = b.next().expect("peeked");
                out.push(change(path, false, true, now.file().is_none()));
            }
            Equal => {
                let ((path, before), (_, now)) =
                    (a.next().expect("peeked"), b.next().expect("peeked"));
                match (before.file(), now.file()) {
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

    /// The source listed and hashed in one go, with the record `previous` (which may vouch
    /// for folders).
    fn take(options: &SyncOptions, previous: Option<&Listing>) -> Result<Listing, String> {
        finish(options, stat(options, previous.cloned())?, previous)
    }

    fn options(from: &Path) -> SyncOptions {
        let mut options = SyncOptions::new(from, from.join("../target"));
        options.ignore = super::super::Patterns::new(&[".git"]).unwrap();
        options
    }

    /// `listing` as a record taken `later` ns after it was, through its text as on disk.
    fn recorded(listing: &Listing, later: u64) -> Listing {
        let mut record = listing.clone();
        record.taken += later;
        Listing::parse(&record.render()).unwrap()
    }

    const SECONDS_10: u64 = 10 * 1_000_000_000;

    fn file(listing: &Listing, path: &str) -> FileId {
        *listing.get(path).unwrap().file().unwrap()
    }

    #[test]
    fn a_file_rewritten_with_the_same_size_and_time_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("pkg/empty")).unwrap();
        std::fs::write(app.join("pkg/a.py"), "A = 1\n").unwrap();
        let first = take(&options(&app), None).unwrap();
        assert_eq!(
            first
                .entries
                .iter()
                .filter(|(_, e)| e.file().is_some())
                .count(),
            1
        );
        assert!(matches!(first.get("pkg/empty"), Some(Entry::Folder(_))));
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
        // Even with a record old enough to vouch for the folder (its entries are the same),
        // the file itself is looked at.
        let second = take(&options(&app), Some(&recorded(&first, SECONDS_10))).unwrap();
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
        // record shows it was not read again.
        let with_wrong_hash = |later: u64| {
            let mut listing = first.clone();
            if let Entry::File(file) = &mut listing.entries[0].1 {
                file.sha256 = [7; 32];
            }
            recorded(&listing, later)
        };
        let old_enough = with_wrong_hash(SECONDS_10);
        let second = take(&options(&app), Some(&old_enough)).unwrap();
        assert_eq!(file(&second, "a.py").sha256, [7; 32]);
        assert_eq!((second.hashed, second.as_recorded), (0, true));
        // Taken within 2 s of the file's change: not trusted, read again.
        let racy = with_wrong_hash(0);
        let third = take(&options(&app), Some(&racy)).unwrap();
        assert_ne!(file(&third, "a.py").sha256, [7; 32]);
        assert_eq!((third.hashed, third.as_recorded), (1, false));
    }

    /// A record of `app` that says folder `pkg` holds only `a.py`, as if taken `later` ns
    /// after the listing.
    fn record_without_b(app: &Path, later: u64) -> (Listing, Listing) {
        std::fs::create_dir_all(app.join("pkg")).unwrap();
        std::fs::write(app.join("pkg/a.py"), "A = 1\n").unwrap();
        std::fs::write(app.join("pkg/b.py"), "B = 1\n").unwrap();
        let first = take(&options(app), None).unwrap();
        let mut listing = first.clone();
        listing.entries.retain(|(path, _)| path != "pkg/b.py");
        (first, recorded(&listing, later))
    }

    #[test]
    #[cfg(target_os = "linux")] // where folders are given stamps
    fn a_folder_is_taken_from_the_record_only_while_its_stamp_vouches_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        // A record that lacks pkg/b.py with pkg's own stamp: the listing follows the record for
        // pkg (a record kuduhook wrote has every entry: this one shows pkg was not read), and
        // still stats the files it names (a.py rewritten in place is found).
        let (first, record) = record_without_b(&at("app"), SECONDS_10);
        std::fs::write(
            at("app/pkg/a.py"),
            "A = 22
",
        )
        .unwrap();
        let listing = take(&options(&at("app")), Some(&record)).unwrap();
        assert_eq!(listing.get("pkg/b.py"), None);
        let sha = |l: &Listing| file(l, "pkg/a.py").sha256;
        assert_ne!(sha(&listing), sha(&first));
        assert_eq!(listing.folders_read(), Some((0, 2)));
        // Each of these has pkg read, and b.py found: a record taken with other options (another
        // ignore list); an entry added since (the folder's times move); the same stamp, but
        // changed within 2 s of when the record was taken.
        let mut other = options(&at("app"));
        other.ignore = super::super::Patterns::new(&[".git", "*.pyc"]).unwrap();
        let (_, added) = record_without_b(&at("added"), SECONDS_10);
        std::fs::write(
            at("added/pkg/c.py"),
            "C = 1
",
        )
        .unwrap();
        let (_, racy) = record_without_b(&at("racy"), 0);
        for (options, record) in [
            (other, &record),
            (options(&at("added")), &added),
            (options(&at("racy")), &racy),
        ] {
            let listing = take(&options, Some(record)).unwrap();
            assert!(listing.get("pkg/b.py").is_some(), "{:?}", options.from);
            assert_eq!(listing.folders_read().map(|(read, _)| read > 0), Some(true));
        }
    }

    #[test]
    fn names_that_sort_around_a_folders_slash_are_listed_in_the_records_order() {
        // As bytes, ' ' '-' '.' come before '/' and '0' after it: a folder's entry and what is
        // under it are apart ("a" < "a b" < "a-b" < "a.txt" < "a/x" < "a0").
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        for file in [
            "a/x", "a/y/z", "a/y.py", "a b", "a-b", "a.txt", "a.d/q", "a0", "b/c",
        ] {
            let path = app.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        let first = take(&options(&app), None).unwrap();
        let paths: Vec<&str> = first.entries.iter().map(|(p, _)| p.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(paths.len(), 13, "{paths:?}");
        // Its record reads back (the order is checked), and an unchanged source listed again
        // from it, its folders taken from the record where Linux gives them stamps, differs in
        // nothing.
        let record = recorded(&first, SECONDS_10);
        let again = take(&options(&app), Some(&record)).unwrap();
        assert!(differences(&record, &again).is_empty());
        // (Where files have change times: elsewhere each is hashed again, the record rewritten.)
        #[cfg(unix)]
        assert!(again.as_recorded);
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

    fn test_file(size: u64, n: u8) -> FileId {
        FileId {
            size,
            stamp: Stamp {
                mtime: 1_700_000_000_123_456_789,
                ctime: 1_700_000_001_000_000_000,
                ino: u64::from(n),
            },
            sha256: [n.wrapping_mul(37); 32],
        }
    }

    fn listing(entries: Vec<(&str, Entry)>) -> Listing {
        let entries = entries
            .into_iter()
            .map(|(p, e)| (p.to_string(), e))
            .collect();
        Listing::new(42, "options".into(), Stamp::default(), entries)
    }

    #[test]
    fn differences_name_added_removed_and_changed_entries() {
        let file = |n: u8| Entry::File(test_file(1, n));
        let folder = Entry::Folder(Stamp::default());
        let old = listing(vec![
            ("a", file(1)),
            ("d", folder),
            ("d/b", file(2)),
            ("x", folder),
        ]);
        let new = listing(vec![("a", file(1)), ("d", file(3)), ("e", folder)]);
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
        let mut listing = listing(vec![
            ("a b.txt", Entry::File(test_file(u64::MAX, 1))),
            (
                "static",
                Entry::Folder(Stamp {
                    mtime: 1,
                    ctime: 2,
                    ino: 3,
                }),
            ),
            ("static/\u{e9}t\u{e9} 2.css", Entry::File(test_file(7, 250))),
        ]);
        listing.root = Stamp {
            mtime: 4,
            ctime: 5,
            ino: 6,
        };
        let text = listing.render();
        assert_eq!(Listing::parse(&text), Some(listing));
        // Each damage the next sync could meet: the record is not used (the sync walks).
        let damaged = [
            text.replacen("kuduhook synced files 3", "kuduhook synced files 2", 1),
            text.replacen(" 1700000001000000000 ", " 17000000010000x0000 ", 1),
            text.replacen("18446744073709551615", "18446744073709551616", 1),
            text.replacen(&hex(&[37; 32]), &hex(&[37; 31]), 1),
            text.replacen(&hex(&[37; 32]), &format!("g{}", &hex(&[37; 32])[1..]), 1),
            text.replacen("- 1 2 3 static\n", "- 1 2 3 zz\n", 1),
            text.replacen("- 4 5 6 \n", "", 1),
            text.replacen("- 4 5 6 \n", "- 4 5 \n", 1),
        ];
        for text in damaged {
            assert_eq!(Listing::parse(&text), None, "{text}");
        }
    }

    #[test]
    fn the_records_numbers_read_back_and_any_other_byte_is_refused() {
        let mut values = vec![
            0,
            1,
            9,
            10,
            99_999_999,
            100_000_000,
            u64::MAX / 10,
            u64::MAX,
        ];
        values.extend((1..20).map(|digits| 10u64.pow(digits - 1) * 7 + 3));
        values.push(1_796_655_732_550_952_920);
        for value in values {
            let text = value.to_string();
            assert_eq!(decimal(text.as_bytes()), Some(value), "{text}");
            // One byte that is not a digit, anywhere, in each of the 8-digit groups and the rest.
            for at in 0..text.len() {
                for bad in [b'/', b':', b' ', b'a', 0xb0, 0x00] {
                    let mut damaged = text.clone().into_bytes();
                    damaged[at] = bad;
                    assert_eq!(decimal(&damaged), None, "{damaged:?}");
                }
            }
        }
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"18446744073709551616"), None);
        assert_eq!(decimal(b"00000000000000000001"), Some(1));
    }
}
