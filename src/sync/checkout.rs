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

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use sha1::{Digest, Sha1};

use crate::ground::digest::hex;

/// What the check could prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The checkout holds exactly `HEAD`: nothing modified, staged, untracked or ignored.
    Clean { files: usize, hashed: usize },
    /// Not proven (why, for the log): `git status` decides.
    Unsure(String),
}

/// More files than this to hash (their stat changed since the index was written) and the
/// check leaves the question to git, which would hash them too.
const MAX_HASHED: usize = 256;

/// One tracked file, as the index recorded it.
#[derive(Debug, Clone)]
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
#[derive(Debug)]
struct Index {
    entries: Vec<Entry>,
    /// The cached tree of the whole index, when valid.
    root_tree: Option<[u8; 20]>,
}

/// Checks the checkout at `source` against `head_tree`, the tree `HEAD` names (hex).
pub fn check(source: &Path, head_tree: &str) -> Verdict {
    match try_check(source, head_tree) {
        Ok(verdict) => verdict,
        Err(why) => Verdict::Unsure(why),
    }
}

fn try_check(source: &Path, head_tree: &str) -> Result<Verdict, String> {
    if head_tree.len() != 40 {
        return Err("the repository does not name its objects by SHA-1".into());
    }
    let git_dir = source.join(".git");
    let index_path = git_dir.join("index");
    // One open for both its time and its bytes (on the share, each is a round trip).
    let failed = |e: std::io::Error| format!("git's index: {e}");
    let mut file = std::fs::File::open(&index_path).map_err(failed)?;
    let index_meta = file.metadata().map_err(failed)?;
    let mut bytes = Vec::with_capacity(index_meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(failed)?;
    let index = parse(&bytes)?;
    match index.root_tree {
        Some(tree) if hex(&tree) == head_tree => {}
        Some(_) => return Err("git's index is not HEAD's tree (staged changes)".into()),
        None => return Err("git's index has no valid cached tree".into()),
    }
    let index_time = times(&index_meta).1;
    let tracked: HashMap<&str, &Entry> =
        index.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // One walk: every file must be tracked, and each is checked by the directory's handle.
    let walk = Walk {
        source,
        tracked: &tracked,
        index_time,
        seen: AtomicUsize::new(0),
        to_hash: Mutex::new(Vec::new()),
    };
    // The sync's workers, sized for the repository's filesystem.
    let pool = super::thread_pool(source);
    pool.install(|| walk.folder(""))?;
    let seen = walk.seen.into_inner();
    if seen != index.entries.len() {
        return Err(format!(
            "{} tracked files are missing",
            index.entries.len() - seen
        ));
    }
    let to_hash = walk.to_hash.into_inner().unwrap_or_default();
    if to_hash.len() > MAX_HASHED {
        return Err(format!(
            "{} tracked files changed their times since git's index was written",
            to_hash.len()
        ));
    }
    let hashed: Vec<Result<(), String>> = pool.install(|| {
        to_hash
            .par_iter()
            .map(|entry| content_matches(source, entry))
            .collect()
    });
    hashed.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(Verdict::Clean {
        files: index.entries.len(),
        hashed: to_hash.len(),
    })
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
}

impl Walk<'_> {
    /// Checks the folder `dir` (relative, `/`-separated) and every folder under it.
    fn folder(&self, dir: &str) -> Result<(), String> {
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

    fn verdict(dir: &Path) -> Verdict {
        check(dir, &head_tree(dir))
    }

    #[test]
    fn a_fresh_commit_is_proven_clean() {
        let dir = repo();
        // Files written in the second the index was are "racy": compared by content.
        match verdict(dir.path()) {
            Verdict::Clean { files, hashed } => assert!(files == 5 && hashed <= 5),
            other => panic!("{other:?}"),
        }
        // An index written later: the older files' stat alone proves them.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(dir.path().join("b.txt"), "b\n").unwrap();
        git(dir.path(), &["add", "b.txt"]);
        git(dir.path(), &["commit", "-q", "-m", "b"]);
        match verdict(dir.path()) {
            Verdict::Clean { files, hashed } => assert!(files == 6 && hashed <= 1, "{hashed}"),
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
            match verdict(dir.path()) {
                Verdict::Unsure(why) => assert!(!why.is_empty(), "{what}"),
                clean => panic!("{what}: {clean:?}"),
            }
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
            check(dir.path(), "0000000000000000000000000000000000000000"),
            Verdict::Unsure(why) if why.contains("staged changes")
        ));
        assert!(parse(b"DIRC").is_err());
    }
}
