//! Whether Kudu's checkout holds exactly its commit, proven from git's index without `git
//! status` where that can be done safely.
//!
//! On App Service the repository is on `/home`, the network share, like the site: `git status`
//! stats every tracked file there with at most 20 threads and lists the folders one at a time,
//! so a code-only redeploy of a 10,000-file repository paid more than a second for it alone.
//! This check reads `.git/index` itself and asks the same questions git's status does, with
//! enough workers that latency, not one call at a time, is the limit:
//! - the index is what `HEAD` holds: its cached tree (which `git checkout`, `reset --hard` and
//!   `commit` leave valid) names `HEAD`'s tree;
//! - each tracked file is as the index recorded it: its `lstat` (type, size, times, inode)
//!   matches, as git's own check trusts; where it does not, or the file was written in the
//!   second the index was (git's "racy" case: Kudu's checkout writes the changed files and the
//!   index together), its content is hashed as git hashes a blob and compared;
//! - no folder holds a file the index does not track (untracked or ignored: the walk would
//!   copy those).
//!
//! It only ever proves "clean". Anything it does not understand (another index version, a
//! split or sparse index, conflicts, submodules, flags such as skip-worktree, a SHA-256
//! repository, content that differs from the blob, which line-ending conversion or a filter can
//! explain) leaves the answer to `git status`: never wrong, at worst as slow as before.
//!
//! **Without a stat per file, when Kudu just checked the commit out.** Before it runs the
//! deployment command, Kudu brings the repository to the commit with `git checkout <id>
//! --force` (KuduLite's `GitExeRepository.Update`): every tracked file is made the commit's,
//! whatever was changed in it, and the index is written anew. What that leaves unproven is what
//! `checkout --force` does not touch: files that are not tracked. Those are found as git's
//! untracked cache finds them, by the folders' times: adding, removing or renaming a name in
//! a folder moves that folder's modification time. So when Kudu names the commit
//! (`SCM_COMMIT_ID` is `HEAD`), git's index was written after the last check here ([`Folders`],
//! kept by the sync), the check stats each tracked folder (not each file) and reads again only
//! the folders whose time moved since, or moved after git's index was written and too close
//! to that check to vouch ([`RACY`]), or are new: every name there must be tracked, every
//! tracked name there. A folder the last check saw that the commit no longer has sends its
//! parent to be read again. Git's index, read and parsed once, serves a check again in the
//! same deployment (after the start check ran a process in the checkout) while its file has
//! not changed. Anything else, or any doubt, is the file-by-file check above, and the log says
//! why.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use super::gitfiles::TrackedFile;
use crate::ground::digest::hex;

/// What the check could prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The checkout holds exactly `HEAD`: nothing modified, staged, untracked or ignored, each
    /// tracked file proven by its stat or content; `not_trusted`: why Kudu's checkout was not
    /// trusted instead.
    Clean {
        files: usize,
        hashed: usize,
        folders: Folders,
        not_trusted: String,
        index: Arc<IndexRead>,
    },
    /// Kudu's `git checkout --force` wrote the tracked files, and no folder holds a name the
    /// index does not track: `relisted` folders (of `folders`) were read again.
    Trusted {
        files: usize,
        relisted: usize,
        folders: Folders,
        index: Arc<IndexRead>,
    },
    /// Not proven (why, for the log): `git status` decides.
    Unsure(String),
    /// Every folder listed and every name in them tracked, but not every file's content
    /// proven (why: more to hash than [`MAX_HASHED`], or one that differs from its blob, which
    /// a filter may explain): `git status` decides, and when it finds the checkout clean,
    /// `folders` (taken before it ran) vouch for the next check.
    Listed { why: String, folders: Folders },
}

/// What may let the check trust Kudu's checkout instead of a stat per file.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Kudu names the commit the repository is at (`SCM_COMMIT_ID` is `HEAD`): this is the
    /// checkout Kudu's `git checkout <id> --force` wrote for this deployment.
    pub named_by_kudu: bool,
    /// The folders as the last check here found them.
    pub previous: Option<Folders>,
    /// That check was this deployment's, after Kudu's checkout (a process ran in the checkout
    /// since): its record vouches although git's index was not written after it.
    pub proven_in_this_deployment: bool,
    /// Git's index as that check read it: not read again while its file has not changed.
    pub index: Option<Arc<IndexRead>>,
}

/// Git's index as a check read and parsed it, and the identity of its file then.
#[derive(Debug)]
pub struct IndexRead {
    file: FileIdentity,
    index: Index,
    /// Each folder holding tracked files, with how many files and folders it holds: worked
    /// out once per read.
    holds: std::sync::OnceLock<HashMap<String, (usize, usize)>>,
    /// Each tracked file's path, mode and blob: listed once per read.
    tracked: std::sync::OnceLock<Arc<[TrackedFile]>>,
}

impl PartialEq for IndexRead {
    fn eq(&self, other: &IndexRead) -> bool {
        self.file == other.file && self.index == other.index
    }
}

impl Eq for IndexRead {}

impl IndexRead {
    /// Each tracked file's path, mode and blob: the commit's tree, once the index is proven
    /// to be it (for the next sync's diff, [`super::gitfiles`]).
    pub fn tracked_files(&self) -> Arc<[TrackedFile]> {
        let list = || {
            let files = self.index.entries.iter().map(|e| TrackedFile {
                path: e.path.clone(),
                mode: e.mode,
                oid: e.oid,
            });
            files.collect()
        };
        self.tracked.get_or_init(list).clone()
    }

    /// Each folder that holds tracked files (the top one too), with how many files and
    /// folders it must hold.
    fn holds(&self) -> &HashMap<String, (usize, usize)> {
        self.holds.get_or_init(|| {
            tracked_folders(&self.index)
                .into_iter()
                .map(|(folder, counts)| (folder.to_string(), counts))
                .collect()
        })
    }
}

/// What tells a file's versions apart: its size, times and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    len: u64,
    times: ((u32, u32), (u32, u32)),
    ino: u32,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            len: meta.len(),
            times: times(meta),
            ino: inode(meta),
        }
    }
}

/// More files than this to hash (their stat changed since the index was written) and the
/// check leaves the question to git, which would hash them too.
const MAX_HASHED: usize = 256;

/// How close to a check a folder's time may be, when it moved after git's index was written,
/// before that check cannot vouch for it: a name added in the same tick of the clock as the
/// listing would not move it.
pub const RACY: Duration = Duration::from_secs(2);

/// The record of the checkout's folders, in the sync's state folder for the target.
pub const FOLDERS_FILE: &str = "checkout-folders";

/// The tracked folders of a checkout found clean, with their modification times: a folder
/// whose time has not moved since holds the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folders {
    /// The checkout's path.
    pub source: String,
    /// When the check that found them started, in nanoseconds since the epoch.
    pub taken: u128,
    /// Each folder (relative, `/`-separated; the top one is empty) and its time, `None` where
    /// it moved too close to `taken` to vouch.
    pub times: HashMap<String, Option<u128>>,
}

const FOLDERS_HEADER: &str = "kuduhook-checkout-folders 1";

impl Folders {
    /// The record at `path`, if it is one this version wrote.
    pub fn read(path: &Path) -> Option<Folders> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != FOLDERS_HEADER {
            return None;
        }
        let source = lines.next()?.strip_prefix("source ")?.to_string();
        let taken = lines.next()?.strip_prefix("taken ")?.parse().ok()?;
        let mut times = HashMap::new();
        for line in lines {
            let (time, folder) = line.split_once(' ')?;
            let time = match time {
                "-" => None,
                time => Some(time.parse().ok()?),
            };
            let folder = folder.strip_prefix('/')?;
            times.insert(folder.to_string(), time);
        }
        Some(Folders {
            source,
            taken,
            times,
        })
    }

    /// Writes the record to `path` (a record that cannot be written costs the next check its
    /// trust, nothing else). Folders whose names hold a line break are left out: read again.
    pub fn write(&self, path: &Path) {
        let mut text = format!(
            "{FOLDERS_HEADER}\nsource {}\ntaken {}\n",
            self.source, self.taken
        );
        for (folder, time) in &self.times {
            if folder.contains('\n') {
                continue;
            }
            match time {
                Some(time) => text.push_str(&format!("{time} /{folder}\n")),
                None => text.push_str(&format!("- /{folder}\n")),
            }
        }
        let _ = crate::ground::paths::write_atomically_in_place(path, text.as_bytes());
    }
}

/// One tracked file, as the index recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    ctime: (u32, u32),
    mtime: (u32, u32),
    ino: u32,
    mode: u32,
    size: u32,
    oid: [u8; 20],
}

/// The parts of the index the check reads.
#[derive(Debug, PartialEq, Eq)]
struct Index {
    entries: Vec<Entry>,
    /// The cached tree of the whole index, when valid.
    root_tree: Option<[u8; 20]>,
}

/// Checks the checkout at `source` against `head_tree`, the tree `HEAD` names (hex), trusting
/// Kudu's checkout where `trust` allows.
pub fn check(source: &Path, head_tree: &str, trust: &Trust) -> Verdict {
    match try_check(source, head_tree, trust) {
        Ok(verdict) => verdict,
        Err(why) => Verdict::Unsure(why),
    }
}

fn try_check(source: &Path, head_tree: &str, trust: &Trust) -> Result<Verdict, String> {
    let started = now_nanos();
    if head_tree.len() != 40 {
        return Err("the repository does not name its objects by SHA-1".into());
    }
    let git_dir = source.join(".git");
    let index_path = git_dir.join("index");
    // One open for both its time and its bytes (on the share, each is a round trip).
    let failed = |e: std::io::Error| format!("git's index: {e}");
    let mut file = std::fs::File::open(&index_path).map_err(failed)?;
    let index_meta = file.metadata().map_err(failed)?;
    // Read once per deployment while its file is the same (100,000 entries take tens of ms).
    let identity = FileIdentity::of(&index_meta);
    let read = match &trust.index {
        Some(read) if read.file == identity && cfg!(unix) => read.clone(),
        _ => {
            let mut bytes = Vec::with_capacity(index_meta.len() as usize);
            file.read_to_end(&mut bytes).map_err(failed)?;
            Arc::new(IndexRead {
                file: identity,
                index: parse(&bytes)?,
                holds: Default::default(),
                tracked: Default::default(),
            })
        }
    };
    let index = &read.index;
    match index.root_tree {
        Some(tree) if hex(&tree) == head_tree => {}
        Some(_) => return Err("git's index is not HEAD's tree (staged changes)".into()),
        None => return Err("git's index has no valid cached tree".into()),
    }
    let pool = super::thread_pool(source);
    let clock = Clock {
        started,
        index_written: index_meta.modified().map(nanos).unwrap_or(0),
    };
    let not_trusted = match why_not_trusted(source, trust, &index_meta) {
        None => {
            let previous = trust.previous.as_ref().expect("checked");
            return pool.install(|| trusted(source, &read, previous, &clock));
        }
        Some(why) => why,
    };
    let tracked: HashMap<&str, &Entry> =
        index.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // One walk: every file must be tracked, and each is checked by the directory's handle.
    let walk = Walk {
        source,
        tracked: &tracked,
        index_time: times(&index_meta).1,
        seen: AtomicUsize::new(0),
        to_hash: Mutex::new(Vec::new()),
        folders: Mutex::new(HashMap::new()),
    };
    // The sync's workers, sized for the repository's filesystem.
    pool.install(|| walk.folder(""))?;
    let seen = walk.seen.into_inner();
    if seen != index.entries.len() {
        return Err(format!(
            "{} tracked files are missing",
            index.entries.len() - seen
        ));
    }
    let to_hash = walk.to_hash.into_inner().unwrap_or_default();
    // Only the tracked folders: an empty one git does not track is no file to copy.
    let holds = read.holds();
    let mut times = walk.folders.into_inner().unwrap_or_default();
    let cannot_vouch: HashSet<String> = times
        .keys()
        .filter(|f| !holds.contains_key(f.as_str()))
        .map(|untracked| tracked_above(untracked, holds).to_string())
        .collect();
    times.retain(|folder, _| holds.contains_key(folder.as_str()));
    let folders = folders(source, &clock, times, &cannot_vouch);
    if to_hash.len() > MAX_HASHED {
        return Ok(Verdict::Listed {
            why: format!(
                "{} tracked files changed their times since git's index was written",
                to_hash.len()
            ),
            folders,
        });
    }
    let hashed: Vec<Result<(), String>> = pool.install(|| {
        to_hash
            .par_iter()
            .map(|entry| content_matches(source, entry))
            .collect()
    });
    if let Err(why) = hashed.into_iter().collect::<Result<Vec<()>, String>>() {
        return Ok(Verdict::Listed { why, folders });
    }
    Ok(Verdict::Clean {
        files: index.entries.len(),
        hashed: to_hash.len(),
        folders,
        not_trusted,
        index: read.clone(),
    })
}

/// Each folder that holds tracked files (the top one too), with how many files and folders
/// it must hold.
fn tracked_folders(index: &Index) -> HashMap<&str, (usize, usize)> {
    let mut holds: HashMap<&str, (usize, usize)> = HashMap::from([("", (0, 0))]);
    for entry in &index.entries {
        let (mut child, mut is_file) = (entry.path.as_str(), true);
        loop {
            let parent = parent_of(child);
            let known = holds.contains_key(parent);
            let counts = holds.entry(parent).or_default();
            match is_file {
                true => counts.0 += 1,
                false => counts.1 += 1,
            }
            // A folder seen before is counted in its own parents already.
            if known {
                break;
            }
            (child, is_file) = (parent, false);
        }
    }
    holds
}

/// Why this checkout may not be trusted as Kudu's `git checkout --force` wrote it (`None`: it
/// may).
fn why_not_trusted(source: &Path, trust: &Trust, index_meta: &std::fs::Metadata) -> Option<String> {
    if !trust.named_by_kudu {
        return Some("Kudu does not name the commit (no SCM_COMMIT_ID)".into());
    }
    let previous = match &trust.previous {
        Some(previous) if previous.source == source.display().to_string() => previous,
        _ => {
            return Some(
                "no record of the repository's folders from an earlier check here (the first \
                 deployment by this version of kuduhook)"
                    .into(),
            );
        }
    };
    let written = index_meta.modified().ok().map(nanos).unwrap_or(0);
    if written <= previous.taken && !trust.proven_in_this_deployment {
        return Some(
            "git's index was not written since the last check: this is not a checkout Kudu \
             just made"
                .into(),
        );
    }
    None
}

/// The check when Kudu's checkout is trusted: each tracked folder's time against the last
/// check's, and the folders that moved read again.
fn trusted(
    source: &Path,
    read: &Arc<IndexRead>,
    previous: &Folders,
    clock: &Clock,
) -> Result<Verdict, String> {
    let index = &read.index;
    let holds = read.holds();
    let stated: Vec<(&str, Result<u128, String>)> = holds
        .keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|folder| (folder, folder_time(source, folder)))
        .collect();
    let mut times = HashMap::with_capacity(stated.len());
    let mut to_read: HashSet<&str> = HashSet::new();
    for (folder, time) in stated {
        let time = time?;
        if previous.times.get(folder) != Some(&Some(time)) {
            to_read.insert(folder);
        }
        times.insert(folder.to_string(), time);
    }
    // A folder the last check saw that the commit has no more: if it is still there, only its
    // parent's listing shows it.
    for gone in previous
        .times
        .keys()
        .filter(|f| !holds.contains_key(f.as_str()))
    {
        to_read.insert(tracked_above(gone, holds));
    }
    let relisted = to_read.len();
    // The tracked files of the folders read again (of 100,000, often those of one folder).
    let tracked: HashMap<&str, &Entry> = match to_read.is_empty() {
        true => HashMap::new(),
        false => index
            .entries
            .iter()
            .filter(|e| to_read.contains(parent_of(&e.path)))
            .map(|e| (e.path.as_str(), e))
            .collect(),
    };
    let listed: Vec<(&str, bool)> = to_read
        .into_par_iter()
        .map(|folder| read_again(source, folder, &tracked, holds).map(|empty| (folder, empty)))
        .collect::<Result<_, String>>()?;
    let cannot_vouch: HashSet<String> = listed
        .into_iter()
        .filter(|(_, holds_untracked)| *holds_untracked)
        .map(|(folder, _)| folder.to_string())
        .collect();
    Ok(Verdict::Trusted {
        files: index.entries.len(),
        relisted,
        folders: folders(source, clock, times, &cannot_vouch),
        index: read.clone(),
    })
}

/// Reads `folder` again: every name tracked (a file as a file, a link as a link, a folder as
/// a tracked folder), and as many as the index tracks there. `true`: it also holds a folder
/// git does not track, with no file in it.
fn read_again(
    source: &Path,
    folder: &str,
    tracked: &HashMap<&str, &Entry>,
    holds: &HashMap<String, (usize, usize)>,
) -> Result<bool, String> {
    let listing = std::fs::read_dir(source.join(folder)).map_err(|e| format!("{folder}: {e}"))?;
    let (mut files, mut folders, mut untracked) = (0, 0, false);
    for entry in listing {
        let entry = entry.map_err(|e| format!("{folder}: {e}"))?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| format!("{folder}: a name that is not UTF-8"))?;
        if folder.is_empty() && name == ".git" {
            continue;
        }
        let path = match folder.is_empty() {
            true => name.to_string(),
            false => format!("{folder}/{name}"),
        };
        let kind = entry.file_type().map_err(|e| format!("{path}: {e}"))?;
        let known = match tracked.get(path.as_str()) {
            Some(entry) if !kind.is_dir() => {
                (entry.mode & 0o170000 == 0o120000) == kind.is_symlink()
            }
            _ => kind.is_dir() && holds.contains_key(path.as_str()),
        };
        match (known, kind.is_dir()) {
            (true, true) => folders += 1,
            (true, false) => files += 1,
            // A folder with no file in it, as the check file by file lets it be (git tracks
            // no folder, and `git status` shows none).
            (false, true) if holds_no_file(&source.join(&path))? => untracked = true,
            (false, _) => return Err(format!("{path} is not tracked by git")),
        }
    }
    match holds.get(folder) == Some(&(files, folders)) {
        true => Ok(untracked),
        false => Err(format!("files git tracks in {folder}/ are missing")),
    }
}

/// The nearest folder above `path` that holds tracked files (at worst the top one).
fn tracked_above<'a>(path: &'a str, holds: &HashMap<String, (usize, usize)>) -> &'a str {
    let mut parent = parent_of(path);
    while !holds.contains_key(parent) {
        parent = parent_of(parent);
    }
    parent
}

/// The folder `path` (relative, `/`-separated) is in; the top one is empty.
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// Whether the folder at `path` holds no file, only (if anything) folders that hold none.
fn holds_no_file(path: &Path) -> Result<bool, String> {
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    for entry in std::fs::read_dir(path).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let is_dir = entry.file_type().map_err(failed)?.is_dir();
        if !is_dir || !holds_no_file(&entry.path())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A tracked folder's modification time (nanoseconds since the epoch).
fn folder_time(source: &Path, folder: &str) -> Result<u128, String> {
    let meta = std::fs::metadata(source.join(folder)).map_err(|e| format!("{folder}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{folder} is no longer a folder"));
    }
    meta.modified()
        .map(nanos)
        .map_err(|e| format!("{folder}: {e}"))
}

/// When a check started, and when git's index was written: what a folder's time is compared
/// with to know whether it vouches.
struct Clock {
    /// When the check started (this machine's clock, nanoseconds since the epoch).
    started: u128,
    /// The index file's modification time (the repository's filesystem's clock).
    index_written: u128,
}

/// The record of `times` taken by a check: a time vouches when the folder was last changed
/// before git's index was written (git's own rule for racy files: the filesystem's clock had
/// moved past it before the check listed the folder, so a later change moves it, whatever
/// the clock's tick), or more than [`RACY`] before the check started. Kudu's checkout writes
/// the folders it changes and then the index: those vouch at once, and the next deployment
/// reads again only what moved since.
///
/// A folder holding a folder git does not track (an empty one: the check let it be) never
/// vouches (`cannot_vouch`): a file added in that one later moves only that one's time.
fn folders(
    source: &Path,
    clock: &Clock,
    times: HashMap<String, u128>,
    cannot_vouch: &HashSet<String>,
) -> Folders {
    let racy = RACY.as_nanos();
    let vouches = |time: u128| time < clock.index_written || time + racy < clock.started;
    Folders {
        source: source.display().to_string(),
        taken: clock.started,
        times: times
            .into_iter()
            .map(|(folder, time)| {
                let vouches = vouches(time) && !cannot_vouch.contains(&folder);
                (folder, vouches.then_some(time))
            })
            .collect(),
    }
}

fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn now_nanos() -> u128 {
    nanos(SystemTime::now())
}

/// The walk of the checkout, comparing each file with the index.
struct Walk<'a> {
    source: &'a Path,
    tracked: &'a HashMap<&'a str, &'a Entry>,
    index_time: (u32, u32),
    /// Tracked files found.
    seen: AtomicUsize,
    /// Files whose stat does not prove them: their content is compared.
    to_hash: Mutex<Vec<&'a Entry>>,
    /// Each folder's time, taken before it is listed.
    folders: Mutex<HashMap<String, u128>>,
}

impl Walk<'_> {
    /// Checks the folder `dir` (relative, `/`-separated) and every folder under it.
    fn folder(&self, dir: &str) -> Result<(), String> {
        let time = folder_time(self.source, dir)?;
        self.folders.lock().unwrap().insert(dir.to_string(), time);
        let listing =
            std::fs::read_dir(self.source.join(dir)).map_err(|e| format!("{dir}: {e}"))?;
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| format!("{dir}: {e}"))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("{dir}: a name that is not UTF-8"))?;
            let path = match dir.is_empty() {
                true => name.to_string(),
                false => format!("{dir}/{name}"),
            };
            if dir.is_empty() && name == ".git" {
                continue;
            }
            match entry
                .file_type()
                .map_err(|e| format!("{path}: {e}"))?
                .is_dir()
            {
                true => subdirs.push(path),
                false => match self.tracked.get(path.as_str()) {
                    Some(tracked) => files.push((entry, *tracked)),
                    None => return Err(format!("{path} is not tracked by git")),
                },
            }
        }
        files.par_iter().try_for_each(|(entry, tracked)| {
            // By the folder's handle (fstatat): no walk of the path again.
            let meta = entry
                .metadata()
                .map_err(|e| format!("{}: {e}", tracked.path))?;
            if !stat_matches(&meta, tracked, self.index_time)? {
                self.to_hash.lock().unwrap().push(tracked);
            }
            self.seen.fetch_add(1, Ordering::Relaxed);
            Ok::<(), String>(())
        })?;
        subdirs.par_iter().try_for_each(|sub| self.folder(sub))
    }
}

/// Whether a tracked file's stat `meta` is what the index recorded for `entry`, and it was not
/// written in the same second as the index (`Ok(false)`: its content must be compared); an
/// error where it is of another kind or size.
fn stat_matches(
    meta: &std::fs::Metadata,
    entry: &Entry,
    index_time: (u32, u32),
) -> Result<bool, String> {
    let is_link = entry.mode & 0o170000 == 0o120000;
    if is_link != meta.file_type().is_symlink() || !(is_link || meta.is_file()) {
        return Err(format!("{} is no longer a {}", entry.path, kind(is_link)));
    }
    if meta.len() as u32 != entry.size {
        return Err(format!("{} changed size", entry.path));
    }
    let (ctime, mtime) = times(meta);
    let racy = entry.mtime.0 >= index_time.0;
    Ok(!racy && ctime == entry.ctime && mtime == entry.mtime && inode(meta) == entry.ino)
}

fn kind(is_link: bool) -> &'static str {
    match is_link {
        true => "link",
        false => "file",
    }
}

/// Whether `entry`'s file holds the blob the index names, hashed as git hashes it.
fn content_matches(source: &Path, entry: &Entry) -> Result<(), String> {
    let path = source.join(&entry.path);
    let failed = |e: std::io::Error| format!("{}: {e}", entry.path);
    let mut hasher = Sha1::new();
    if entry.mode & 0o170000 == 0o120000 {
        let to = std::fs::read_link(&path).map_err(failed)?;
        let to = to.into_os_string().into_encoded_bytes();
        hasher.update(format!("blob {}\0", to.len()).as_bytes());
        hasher.update(&to);
    } else {
        // Read in pieces: a racy file may be large.
        let mut file = std::fs::File::open(&path).map_err(failed)?;
        let len = file.metadata().map_err(failed)?.len();
        hasher.update(format!("blob {len}\0").as_bytes());
        let mut buf = vec![0; 1 << 16];
        let mut read = 0;
        loop {
            let n = file.read(&mut buf).map_err(failed)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            read += n as u64;
        }
        if read != len {
            return Err(format!("{} changed while it was read", entry.path));
        }
    }
    match hasher.finalize().as_slice() == entry.oid {
        true => Ok(()),
        false => Err(format!("{} differs from its blob in git", entry.path)),
    }
}

/// The status times of a file: (ctime, mtime), as (seconds, nanoseconds) truncated to 32 bits
/// the way git's index keeps them.
#[cfg(unix)]
fn times(meta: &std::fs::Metadata) -> ((u32, u32), (u32, u32)) {
    use std::os::unix::fs::MetadataExt;
    (
        (meta.ctime() as u32, meta.ctime_nsec() as u32),
        (meta.mtime() as u32, meta.mtime_nsec() as u32),
    )
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::MetadataExt;
    meta.ino() as u32
}

/// Git for Windows keeps no ctime or inode in its index (and Windows' are not Unix's): the
/// check does not try there; `git status` decides.
#[cfg(not(unix))]
fn times(_meta: &std::fs::Metadata) -> ((u32, u32), (u32, u32)) {
    ((u32::MAX, u32::MAX), (u32::MAX, u32::MAX))
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u32 {
    u32::MAX
}

/// Reads git's index (versions 2 and 3, SHA-1), refusing whatever the check cannot vouch for.
fn parse(bytes: &[u8]) -> Result<Index, String> {
    let bad = || "git's index is not in a form this check reads".to_string();
    let u32_at = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(bad)
    };
    if bytes.len() < 12 + 20 || &bytes[..4] != b"DIRC" {
        return Err(bad());
    }
    let version = u32_at(4)?;
    if version != 2 && version != 3 {
        return Err(format!("git's index is version {version}"));
    }
    let count = u32_at(8)? as usize;
    let end = bytes.len() - 20; // the trailing checksum
    let mut at = 12;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let start = at;
        let word = |i: usize| u32_at(start + 4 * i);
        let mode = word(6)?;
        let oid: [u8; 20] = bytes
            .get(start + 40..start + 60)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let flags = u16::from_be_bytes(
            bytes
                .get(start + 60..start + 62)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?,
        );
        let path_at = start + 62;
        if flags & 0x4000 != 0 {
            // Extended flags (skip-worktree, intent-to-add): not vouched for.
            return Err("git's index marks files skip-worktree or intent-to-add".into());
        }
        if flags & 0x8000 != 0 {
            return Err("git's index marks files assume-unchanged".into());
        }
        if flags & 0x3000 != 0 {
            return Err("git's index holds a merge conflict".into());
        }
        let nul = bytes
            .get(path_at..end)
            .and_then(|rest| rest.iter().position(|b| *b == 0))
            .ok_or_else(bad)?;
        let path = std::str::from_utf8(&bytes[path_at..path_at + nul])
            .map_err(|_| "git's index holds a path that is not UTF-8".to_string())?;
        if mode & 0o170000 == 0o160000 {
            return Err(format!("{path} is a submodule"));
        }
        entries.push(Entry {
            path: path.to_string(),
            ctime: (word(0)?, word(1)?),
            mtime: (word(2)?, word(3)?),
            ino: word(5)?,
            mode,
            size: word(9)?,
            oid,
        });
        // Entries are padded with 1-8 NULs to a multiple of 8 bytes.
        at = start + ((path_at - start + nul + 8) & !7);
        if at > end {
            return Err(bad());
        }
    }
    let mut root_tree = None;
    while at + 8 <= end {
        let signature = &bytes[at..at + 4];
        let size = u32_at(at + 4)? as usize;
        let body = bytes.get(at + 8..at + 8 + size).ok_or_else(bad)?;
        if signature == b"TREE" {
            root_tree = root_of_tree_extension(body);
        } else if signature[0].is_ascii_lowercase() {
            // A required extension (a split or sparse index): not read here.
            return Err(format!(
                "git's index has the {} extension",
                String::from_utf8_lossy(signature)
            ));
        }
        at += 8 + size;
    }
    Ok(Index { entries, root_tree })
}

/// The whole index's tree from the cached-tree extension: its first entry (the empty path),
/// when valid (an entry count of -1 means it was invalidated).
fn root_of_tree_extension(body: &[u8]) -> Option<[u8; 20]> {
    let nul = body.iter().position(|b| *b == 0)?;
    if nul != 0 {
        return None;
    }
    let newline = body.iter().position(|b| *b == b'\n')?;
    let counts = std::str::from_utf8(body.get(1..newline)?).ok()?;
    let entries: i64 = counts.split(' ').next()?.parse().ok()?;
    if entries < 0 {
        return None;
    }
    body.get(newline + 1..newline + 21)?.try_into().ok()
}

// They run git, which the Wine the Windows tests use does not have.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// git in `dir` through the sync's own runner, with an author for commits.
    fn git(dir: &Path, args: &[&str]) -> String {
        let author = ["-c", "user.name=t", "-c", "user.email=t@example.com"];
        let all: Vec<&str> = author.iter().chain(args).copied().collect();
        let out =
            super::super::delta::git(dir, &all).unwrap_or_else(|e| panic!("git {args:?}: {e}"));
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn head_tree(dir: &Path) -> String {
        git(dir, &["rev-parse", "HEAD^{tree}"])
    }

    /// A committed repository: app.py, static/site.css, a link, an ignored pattern.
    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::create_dir_all(root.join("static/img")).unwrap();
        std::fs::write(root.join("app.py"), "app = 1\n").unwrap();
        std::fs::write(root.join("static/site.css"), "body {}\n").unwrap();
        std::fs::write(root.join("static/img/logo.svg"), "<svg/>\n").unwrap();
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("app.py", root.join("main.py")).unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-q", "-m", "first"]);
        dir
    }

    /// Why a verdict leaves the question to `git status`; a panic when it proves the checkout.
    fn left_to_git(verdict: Verdict) -> String {
        match verdict {
            Verdict::Unsure(why) | Verdict::Listed { why, .. } => why,
            proven => panic!("proven, where git should decide: {proven:?}"),
        }
    }

    fn verdict(dir: &Path) -> Verdict {
        check(dir, &head_tree(dir), &Trust::default())
    }

    #[test]
    fn a_fresh_commit_is_proven_clean() {
        let dir = repo();
        // Files written in the second the index was are "racy": compared by content.
        match verdict(dir.path()) {
            Verdict::Clean { files, hashed, .. } => assert!(files == 5 && hashed <= 5),
            other => panic!("{other:?}"),
        }
        // An index written later: the older files' stat alone proves them.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(dir.path().join("b.txt"), "b\n").unwrap();
        git(dir.path(), &["add", "b.txt"]);
        git(dir.path(), &["commit", "-q", "-m", "b"]);
        match verdict(dir.path()) {
            Verdict::Clean { files, hashed, .. } => {
                assert!(files == 6 && hashed <= 1, "{hashed}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_checkout_of_another_commit_is_proven_clean() {
        let dir = repo();
        std::fs::write(dir.path().join("app.py"), "app = 2\n").unwrap();
        git(dir.path(), &["commit", "-q", "-am", "second"]);
        git(dir.path(), &["checkout", "-q", "HEAD~1"]);
        assert!(matches!(verdict(dir.path()), Verdict::Clean { .. }));
        git(dir.path(), &["reset", "-q", "--hard", "master"]);
        assert!(matches!(verdict(dir.path()), Verdict::Clean { .. }));
    }

    #[test]
    fn anything_git_status_would_show_is_left_to_git() {
        type Change = fn(&Path);
        let cases: [(&str, Change); 7] = [
            ("an edit of the same size", |root| {
                std::fs::write(root.join("app.py"), "app = 9\n").unwrap()
            }),
            ("an edit", |root| {
                std::fs::write(root.join("static/site.css"), "body { x }\n").unwrap()
            }),
            ("a deletion", |root| {
                std::fs::remove_file(root.join("static/img/logo.svg")).unwrap()
            }),
            ("an untracked file", |root| {
                std::fs::write(root.join("static/new.js"), "").unwrap()
            }),
            ("an ignored file", |root| {
                std::fs::write(root.join("static/img/debug.log"), "").unwrap()
            }),
            ("a staged change", |root| {
                std::fs::write(root.join("app.py"), "app = 3\n").unwrap();
                git(root, &["add", "app.py"]);
                std::fs::write(root.join("app.py"), "app = 1\n").unwrap();
            }),
            ("a file that became a folder", |root| {
                std::fs::remove_file(root.join("app.py")).unwrap();
                std::fs::create_dir(root.join("app.py")).unwrap();
            }),
        ];
        for (what, change) in cases {
            let dir = repo();
            change(dir.path());
            let why = left_to_git(verdict(dir.path()));
            assert!(!why.is_empty(), "{what}");
        }
    }

    #[test]
    fn an_index_it_cannot_vouch_for_is_left_to_git() {
        let dir = repo();
        git(dir.path(), &["update-index", "--skip-worktree", "app.py"]);
        assert_eq!(
            verdict(dir.path()),
            Verdict::Unsure("git's index marks files skip-worktree or intent-to-add".into())
        );
        let dir = repo();
        git(dir.path(), &["update-index", "--index-version", "4"]);
        assert_eq!(
            verdict(dir.path()),
            Verdict::Unsure("git's index is version 4".into())
        );
        let dir = repo();
        assert!(matches!(
            check(
                dir.path(),
                "0000000000000000000000000000000000000000",
                &Trust::default()
            ),
            Verdict::Unsure(why) if why.contains("staged changes")
        ));
        assert!(parse(b"DIRC").is_err());
    }

    /// Every folder of the checkout made 10 s older: a check now vouches for their times.
    fn age_folders(root: &Path) {
        let old = SystemTime::now() - Duration::from_secs(10);
        for folder in ["", "static", "static/img"] {
            let dir = std::fs::File::open(root.join(folder)).unwrap();
            dir.set_modified(old).unwrap();
        }
    }

    /// The check as the sync runs it for a deployment Kudu names: its record of the folders
    /// from the last check, which it replaces.
    fn kudu_check(root: &Path, record: &mut Option<Folders>) -> Verdict {
        let trust = Trust {
            named_by_kudu: true,
            previous: record.clone(),
            proven_in_this_deployment: false,
            index: None,
        };
        let verdict = check(root, &head_tree(root), &trust);
        match &verdict {
            Verdict::Clean { folders, .. } | Verdict::Trusted { folders, .. } => {
                *record = Some(folders.clone())
            }
            Verdict::Unsure(_) | Verdict::Listed { .. } => {}
        }
        verdict
    }

    /// A repository whose folders are old, checked once (file by file: there is no record
    /// yet), and the record that check left.
    fn checked_once() -> (tempfile::TempDir, Option<Folders>) {
        let dir = repo();
        age_folders(dir.path());
        let mut record = None;
        assert!(matches!(
            kudu_check(dir.path(), &mut record),
            Verdict::Clean { .. }
        ));
        (dir, record)
    }

    /// Kudu's `git checkout <id> --force` of HEAD, a moment after the last check.
    fn kudu_checkout(root: &Path) {
        std::thread::sleep(Duration::from_millis(20));
        let id = git(root, &["rev-parse", "HEAD"]);
        git(root, &["checkout", "-q", "--force", &id]);
    }

    #[test]
    fn kudus_checkout_is_trusted_and_only_the_folders_that_moved_are_read_again() {
        let dir = repo();
        let root = dir.path();
        age_folders(root);
        let mut record = None;
        match kudu_check(root, &mut record) {
            Verdict::Clean { not_trusted, .. } => {
                assert!(not_trusted.contains("no record"), "{not_trusted}")
            }
            other => panic!("the first check is file by file: {other:?}"),
        }
        // The same checkout again, with no git since: not a checkout Kudu just made.
        match kudu_check(root, &mut record) {
            Verdict::Clean { not_trusted, .. } => {
                assert!(not_trusted.contains("not written since"), "{not_trusted}")
            }
            other => panic!("{other:?}"),
        }
        // A commit changing one file in static/img, and a tracked file edited on the server
        // that Kudu's checkout puts back.
        std::fs::write(root.join("static/img/logo.svg"), "<svg></svg>\n").unwrap();
        git(root, &["commit", "-q", "-am", "logo"]);
        std::fs::write(root.join("static/site.css"), "edited on the server\n").unwrap();
        kudu_checkout(root);
        assert_eq!(
            std::fs::read_to_string(root.join("static/site.css")).unwrap(),
            "body {}\n"
        );
        match kudu_check(root, &mut record) {
            Verdict::Trusted {
                files, relisted, ..
            } => {
                assert_eq!(files, 5);
                // static, where the checkout wrote site.css anew; the logo was edited in place
                // before the commit, which moves no folder's time.
                assert_eq!(relisted, 1);
            }
            other => panic!("{other:?}"),
        }
        // An empty folder git does not track is no file to copy, as the check file by file
        // sees it.
        std::fs::create_dir_all(root.join("static/empty/inner")).unwrap();
        kudu_checkout(root);
        assert!(matches!(
            kudu_check(root, &mut record),
            Verdict::Trusted { relisted: 1, .. }
        ));
        std::fs::remove_dir_all(root.join("static/empty")).unwrap();
        // Whatever Kudu's checkout leaves that the commit does not have is found.
        type Change = fn(&Path);
        let cases: [(&str, Change); 4] = [
            ("an untracked file", |root| {
                std::fs::write(root.join("static/new.js"), "").unwrap()
            }),
            ("an ignored file", |root| {
                std::fs::write(root.join("static/img/debug.log"), "").unwrap()
            }),
            ("an untracked folder holding a file", |root| {
                std::fs::create_dir_all(root.join("uploads/empty")).unwrap();
                std::fs::write(root.join("uploads/a.png"), "").unwrap()
            }),
            ("a tracked file deleted after the checkout", |root| {
                std::fs::remove_file(root.join("static/site.css")).unwrap()
            }),
        ];
        for (what, change) in cases {
            let (dir, mut record) = checked_once();
            let root = dir.path();
            kudu_checkout(root);
            change(root);
            let why = left_to_git(kudu_check(root, &mut record));
            assert!(!why.is_empty(), "{what}");
        }
        // A folder the commit no longer has, still there with a file git does not track: its
        // parent, whose time did not move, is read again.
        let dir = repo();
        let root = dir.path();
        std::fs::write(root.join("static/img/debug.log"), "").unwrap();
        git(root, &["rm", "-q", "static/img/logo.svg"]);
        age_folders(root);
        let mut record = None;
        // git status would say the same: the ignored file is there.
        assert!(matches!(
            kudu_check(root, &mut record),
            Verdict::Unsure(_) | Verdict::Listed { .. }
        ));
        std::fs::remove_file(root.join("static/img/debug.log")).unwrap();
        age_folders(root);
        git(root, &["commit", "-q", "-m", "no logo"]);
        std::fs::write(root.join("static/img/debug.log"), "").unwrap();
        record = Some(Folders {
            source: root.display().to_string(),
            taken: now_nanos(),
            times: ["", "static", "static/img"]
                .iter()
                .map(|f| (f.to_string(), folder_time(root, f).ok()))
                .collect(),
        });
        kudu_checkout(root);
        match kudu_check(root, &mut record) {
            Verdict::Unsure(why) => assert!(why.contains("static/img"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn folders_written_before_gits_index_vouch_at_once_and_later_ones_are_read_again() {
        let (dir, mut record) = checked_once();
        let root = dir.path();
        // Files edited on the server, which Kudu's checkout writes anew: both folders move.
        std::fs::write(root.join("static/site.css"), "edited\n").unwrap();
        std::fs::write(root.join("static/img/logo.svg"), "edited\n").unwrap();
        kudu_checkout(root);
        // Within a second of the check: static changed before the index was written (as
        // Kudu's checkout leaves the folders it writes), static/img after it (as a process
        // creating a file there would).
        let index = std::fs::metadata(root.join(".git/index")).unwrap();
        let written = index.modified().unwrap();
        let set = |folder: &str, time: SystemTime| {
            let dir = std::fs::File::open(root.join(folder)).unwrap();
            dir.set_modified(time).unwrap();
        };
        set("static", written - Duration::from_millis(1));
        set("static/img", written + Duration::from_millis(1));
        assert!(matches!(
            kudu_check(root, &mut record),
            Verdict::Trusted { relisted: 2, .. }
        ));
        let times = &record.as_ref().unwrap().times;
        assert!(times["static"].is_some(), "{times:?}");
        assert_eq!(times["static/img"], None, "{times:?}");
        // The next deployment reads again the folder that could not vouch, though its time
        // did not move, and only that one.
        kudu_checkout(root);
        assert!(matches!(
            kudu_check(root, &mut record),
            Verdict::Trusted { relisted: 1, .. }
        ));
    }

    #[test]
    fn a_file_left_later_in_an_empty_folder_git_does_not_track_is_found() {
        let (dir, mut record) = checked_once();
        let root = dir.path();
        // An empty folder made on the server: the check lets it be (no file to copy) ...
        std::fs::create_dir(root.join("static/empty")).unwrap();
        kudu_checkout(root);
        assert!(matches!(
            kudu_check(root, &mut record),
            Verdict::Trusted { relisted: 1, .. }
        ));
        // ... but a file left in it later moves only its time, not its parent's.
        std::fs::write(root.join("static/empty/new.js"), "").unwrap();
        kudu_checkout(root);
        let why = left_to_git(kudu_check(root, &mut record));
        assert!(why.contains("static/empty"), "{why}");
    }

    #[test]
    fn the_record_of_the_folders_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join(FOLDERS_FILE);
        let folders = Folders {
            source: "/home/site/repository".into(),
            taken: 1_700_000_000_123_456_789,
            times: HashMap::from([
                (String::new(), Some(1)),
                ("static/a b".into(), None),
                ("bad\nname".into(), Some(3)),
            ]),
        };
        folders.write(&path);
        let read = Folders::read(&path).unwrap();
        assert_eq!(read.source, folders.source);
        assert_eq!(read.taken, folders.taken);
        assert_eq!(read.times.len(), 2, "a name with a line break is left out");
        assert_eq!(read.times["static/a b"], None);
        assert_eq!(read.times[""], Some(1));
        std::fs::write(&path, "something else\n").unwrap();
        assert_eq!(Folders::read(&path), None);
    }
}
