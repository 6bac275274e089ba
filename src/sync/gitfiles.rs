//! Git's own files, read where one read answers what a git process would.
//!
//! On App Service the repository is on the share, where every git process pays its start-up
//! round trips (its config, the repository's discovery, the refs, the objects): ~75 ms each at
//! 1 ms per call, twice a deployment (`rev-parse`, `diff`). Kudu's checkout leaves the answers
//! in files one read each away:
//! - `HEAD` and its commit's tree ([`head()`]): `HEAD` detached at the commit Kudu checked out
//!   (or a branch with a loose ref), the tree from the commit's loose object (a push or fetch
//!   of fewer than 100 objects is kept loose: git's `transfer.unpackLimit`);
//! - the tracked files ([`Tracked`]): each one's path, mode and blob, as git's index holds
//!   them once the checkout is proven to be its commit. The sync records them for the commit
//!   it copied ([`FILE`], beside its other records), and the next sync compares the two lists
//!   instead of asking `git diff` to compare the two trees: the same answer, as each list is
//!   its commit's tree.
//!
//! Anything else (a packed ref or object, a `.git` file, another object format, a record of
//! another commit) returns `None`, and the caller asks git: only slower, never another answer.

use std::io::Read;
use std::path::Path;

use crate::ground::digest::unhex;

/// The record of the tree the last sync copied, in the target's state folder.
pub const FILE: &str = "synced-tree";

/// The record's first line: a record of another format is not trusted.
const HEADER: &str = "kuduhook synced tree 1";

/// `HEAD`'s commit and that commit's tree (hex), when git's files give them directly.
pub fn head(source: &Path) -> Option<(String, String)> {
    let git_dir = source.join(".git");
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim_end();
    let commit = match head.strip_prefix("ref: ") {
        None => head.to_string(),
        // A branch: its loose ref (a packed one is git's to find).
        Some(name) if name.starts_with("refs/heads/") && !name.contains("..") => {
            std::fs::read_to_string(git_dir.join(name))
                .ok()?
                .trim_end()
                .to_string()
        }
        Some(_) => return None,
    };
    if !is_object_id(&commit) {
        return None;
    }
    let tree = commit_tree(&git_dir, &commit)?;
    Some((commit, tree))
}

/// The tree a loose commit object names: its first line, `tree <id>`.
fn commit_tree(git_dir: &Path, commit: &str) -> Option<String> {
    let path = git_dir
        .join("objects")
        .join(&commit[..2])
        .join(&commit[2..]);
    let compressed = std::fs::read(path).ok()?;
    // "commit <size>\0tree <40 hex>\n": the first 64 bytes of at most 100.
    let mut start = Vec::with_capacity(100);
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(100)
        .read_to_end(&mut start)
        .ok()?;
    let nul = start.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&start[..nul])
        .ok()?
        .strip_prefix("commit ")?;
    let tree = start.get(nul + 1..)?.strip_prefix(b"tree ")?.get(..41)?;
    let tree = std::str::from_utf8(tree).ok()?.strip_suffix('\n')?;
    is_object_id(tree).then(|| tree.to_string())
}

fn is_object_id(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One tracked file: its path (`/`-separated), mode and blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedFile {
    pub path: String,
    pub mode: u32,
    pub oid: [u8; 20],
}

/// Every file a commit's tree holds, sorted as git sorts its index (by the path's bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub commit: String,
    /// Shared with the read of git's index it was listed from (made once per read).
    pub files: std::sync::Arc<[TrackedFile]>,
}

/// One path that differs between two [`Tracked`] lists, as `git diff --raw` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub existed: bool,
    pub exists: bool,
    /// The blob changed (not only the mode).
    pub content: bool,
    /// A link (mode 120000), before or after.
    pub link: bool,
}

impl Tracked {
    /// What differs from `old` to `self`, as `git diff --raw` between their commits says it.
    pub fn differences_from(&self, old: &Tracked) -> Vec<Difference> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let is_link = |file: &TrackedFile| file.mode & 0o170000 == 0o120000;
        let (mut a, mut b) = (old.files.iter().peekable(), self.files.iter().peekable());
        let mut out = Vec::new();
        loop {
            let order = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Less,
                (None, Some(_)) => Greater,
                (Some(x), Some(y)) => x.path.cmp(&y.path),
            };
            let (before, now) = match order {
                Less => (a.next(), None),
                Greater => (None, b.next()),
                Equal => (a.next(), b.next()),
            };
            if let (Some(x), Some(y)) = (before, now)
                && (x.mode, x.oid) == (y.mode, y.oid)
            {
                continue;
            }
            let file = before.or(now).expect("one side");
            out.push(Difference {
                path: file.path.clone(),
                existed: before.is_some(),
                exists: now.is_some(),
                content: before.map(|f| f.oid) != now.map(|f| f.oid),
                link: before.is_some_and(is_link) || now.is_some_and(is_link),
            });
        }
        out
    }

    /// The record's text: a header, the commit, then `<mode> <blob> <path>` per file (octal
    /// and hex, as git writes them). Written and read at every sync (100,000 lines for
    /// 100,000 files): each line built in place, with no formatting machinery.
    fn render(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let size: usize = self.files.iter().map(|f| f.path.len() + 50).sum();
        let mut out = Vec::with_capacity(64 + size);
        out.extend_from_slice(HEADER.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.commit.as_bytes());
        out.push(b'\n');
        for file in self.files.iter() {
            let mut octal = [0u8; 11];
            let mut at = octal.len();
            let mut mode = file.mode;
            loop {
                at -= 1;
                octal[at] = b'0' + (mode & 7) as u8;
                mode >>= 3;
                if mode == 0 {
                    break;
                }
            }
            out.extend_from_slice(&octal[at..]);
            out.push(b' ');
            for byte in file.oid {
                out.push(DIGITS[usize::from(byte >> 4)]);
                out.push(DIGITS[usize::from(byte & 15)]);
            }
            out.push(b' ');
            out.extend_from_slice(file.path.as_bytes());
            out.push(b'\n');
        }
        String::from_utf8(out).expect("built from UTF-8 pieces")
    }

    fn parse(text: &str) -> Option<Tracked> {
        let mut lines = text.split('\n');
        if lines.next()? != HEADER {
            return None;
        }
        let commit = lines.next()?.to_string();
        let mut files = Vec::with_capacity(text.len() / 64);
        for line in lines.filter(|l| !l.is_empty()) {
            // `<mode> <40 hex> <path>`: the mode up to the first space, the rest in place.
            let bytes = line.as_bytes();
            let space = bytes.iter().position(|b| *b == b' ')?;
            let mode = bytes[..space].iter().try_fold(0u32, |n, d| {
                let d = d.checked_sub(b'0').filter(|d| *d < 8)?;
                n.checked_mul(8)?.checked_add(u32::from(d))
            })?;
            let rest = &bytes[space + 1..];
            let oid = unhex(rest.get(..40)?)?;
            let path = line
                .get(space + 42..)
                .filter(|_| rest.get(40) == Some(&b' '))?;
            if space == 0 || path.is_empty() {
                return None;
            }
            files.push(TrackedFile {
                path: path.to_string(),
                mode,
                oid,
            });
        }
        let sorted = files.windows(2).all(|w| w[0].path < w[1].path);
        (is_object_id(&commit) && sorted).then(|| Tracked {
            commit,
            files: files.into(),
        })
    }

    /// The record of the tree the last sync of `target` copied, if any and readable.
    pub fn read(target: &Path) -> Option<Tracked> {
        Tracked::parse(&std::fs::read_to_string(path(target)).ok()?)
    }

    /// Records this as the tree the sync of `target` copied. A failure costs the next sync a
    /// git process. Never forgotten: the record names its commit, whose tree it is whatever
    /// happened since, and the next sync uses it only when that commit is the one last synced.
    pub fn write(&self, target: &Path) {
        let _ = crate::ground::paths::write_atomically_in_place(
            &path(target),
            self.render().as_bytes(),
        );
    }
}

fn path(target: &Path) -> std::path::PathBuf {
    crate::ground::paths::state_dir(target).join(FILE)
}

// They run git, which the Wine the Windows tests use does not have.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["-c", "user.name=t", "-c", "user.email=t@example.com"];
        all.extend_from_slice(args);
        let out = super::super::delta::git(dir, &all).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        String::from_utf8(out).unwrap().trim().to_string()
    }

    #[test]
    fn head_and_its_tree_are_what_git_says_or_left_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("app.py"), "app = 1\n").unwrap();
        git(root, &["add", "app.py"]);
        git(root, &["commit", "-q", "-m", "first"]);
        let want = || {
            (
                git(root, &["rev-parse", "HEAD"]),
                git(root, &["rev-parse", "HEAD^{tree}"]),
            )
        };
        // A branch with a loose ref, then detached at the commit as Kudu checks it out.
        assert_eq!(head(root), Some(want()));
        git(root, &["checkout", "-q", "--force", &want().0]);
        assert_eq!(head(root), Some(want()));
        // Packed: git's to answer.
        git(root, &["checkout", "-q", "main"]);
        git(root, &["gc", "-q"]);
        assert_eq!(head(root), None);
        assert_eq!(head(&root.join("no-such-folder")), None);
    }

    #[test]
    fn differences_are_git_diffs_between_the_two_trees() {
        let file = |path: &str, mode: u32, blob: u8| TrackedFile {
            path: path.into(),
            mode,
            oid: [blob; 20],
        };
        let tracked = |files: Vec<TrackedFile>| Tracked {
            commit: "a".repeat(40),
            files: files.into(),
        };
        let old = tracked(vec![
            file("a.py", 0o100644, 1),
            file("gone.txt", 0o100644, 2),
            file("link", 0o120000, 3),
            file("run.sh", 0o100644, 4),
        ]);
        let new = tracked(vec![
            file("a.py", 0o100644, 9),
            file("link", 0o120000, 3),
            file("new.txt", 0o100644, 5),
            file("run.sh", 0o100755, 4),
        ]);
        let got: Vec<_> = new
            .differences_from(&old)
            .into_iter()
            .map(|d| (d.path, d.existed, d.exists, d.content, d.link))
            .collect();
        let want = [
            ("a.py", true, true, true, false),
            ("gone.txt", true, false, true, false),
            ("new.txt", false, true, true, false),
            ("run.sh", true, true, false, false),
        ];
        assert_eq!(got, want.map(|(p, a, b, c, d)| (p.to_string(), a, b, c, d)));
        // The record reads back as written; a damaged one is not trusted.
        let text = new.render();
        assert_eq!(Tracked::parse(&text), Some(new));
        assert_eq!(Tracked::parse(&text.replace("new.txt", "a.py")), None);
        assert_eq!(Tracked::parse(&text.replace("100755", "1007x5")), None);
        assert_eq!(
            Tracked::parse(&text.replacen("kuduhook synced tree 1", "x", 1)),
            None
        );
    }
}
