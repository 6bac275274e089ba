//! Path helpers: lexical arithmetic (what a path means without asking the disk, for paths that
//! may not exist yet or must not be followed) and temporary files that are renamed into place.

use std::path::{Component, Path, PathBuf};

/// Drops `.` segments and folds each `..` into the segment before it, without touching the
/// disk. A `..` with nothing left to fold is kept, so an escape stays visible:
/// `/a/../../b` becomes `/../b`, which no folder `/a` contains.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// `to` as a path relative to the folder `from`, both absolute: `/a/b` to `/a/c/d` is `../c/d`.
/// `None` when they share no root (different Windows drives).
pub fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let (from, to) = (normalize(from), normalize(to));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return None;
    }
    let mut out = PathBuf::new();
    for _ in from.components().skip(common) {
        out.push("..");
    }
    for part in to.components().skip(common) {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Some(out)
}

/// Where kuduhook keeps what it knows about a target, beside it and outside the served files:
/// `<parent>/.kuduhook/<name>` (on App Service, `/home/site/.kuduhook/wwwroot`).
pub fn state_dir(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_os_string());
    let parent = target.parent().unwrap_or(target);
    parent
        .join(".kuduhook")
        .join(name.unwrap_or_else(|| "root".into()))
}

/// kuduhook's folder for `target` on the machine's local disk (its temp folder), for what a
/// site on a network share is better without: envs being built, caches made of links.
pub fn local_state_dir(target: &Path) -> PathBuf {
    let name: String = target
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::env::temp_dir()
        .join("kuduhook")
        .join(name.trim_matches('-'))
}

/// A temporary file in `dir`, readable by others like a normally created file (so Kudu, the
/// web server and KuduSync can read what is persisted from it), to be renamed into place.
pub fn shared_temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".kuduhook-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// Copies the file `from` to `to` (created, or truncated) with its permissions and modification
/// time. Python's bytecode records the time of its source: an env copied with new times would
/// recompile every module it imports (and a platform start from its archive too).
pub fn copy_file_keeping_mtime(from: &Path, to: &Path) -> std::io::Result<u64> {
    let mut source = std::fs::File::open(from)?;
    let meta = source.metadata()?;
    let mut copy = std::fs::File::create(to)?;
    let bytes = std::io::copy(&mut source, &mut copy)?;
    copy.set_permissions(meta.permissions())?;
    copy.set_modified(meta.modified()?)?;
    Ok(bytes)
}

/// Clears the read-only attribute of `path`, if it has it: Windows refuses to delete or
/// replace a read-only file (one committed so, or kept so by a copy that keeps attributes).
/// Whether it had it.
pub fn make_writable(path: &Path) -> std::io::Result<bool> {
    let mut permissions = std::fs::symlink_metadata(path)?.permissions();
    if !permissions.readonly() {
        return Ok(false);
    }
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(path, permissions)?;
    Ok(true)
}

/// [`write_atomically`], making `path`'s folder first only when it is missing: kuduhook's
/// records go into a folder that is there after the first deployment, and on App Service's
/// share asking for it every time is a round trip per record.
pub fn write_atomically_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match write_atomically(path, bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            write_atomically(path, bytes)
        }
        done => done,
    }
}

/// Writes `bytes` to `path` atomically: beside it in a [`shared_temp_file`], renamed over it,
/// so a reader sees the old content or the new, never half. Not fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = shared_temp_file(dir)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Every file under `root`, as its path relative to `root` (with `/`) and its metadata, sorted
/// by path, folders read in parallel (on a share each is a round trip); top-level entries
/// `leave_out` names are left out, links are not followed. `None` when something cannot be read.
pub fn files_under(
    root: &Path,
    leave_out: &(dyn Fn(&str) -> bool + Sync),
) -> Option<Vec<(String, std::fs::Metadata)>> {
    let mut files = files_in(root, "", leave_out)?;
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Some(files)
}

fn files_in(
    dir: &Path,
    relative: &str,
    leave_out: &(dyn Fn(&str) -> bool + Sync),
) -> Option<Vec<(String, std::fs::Metadata)>> {
    use rayon::prelude::*;
    let entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    let per_entry: Option<Vec<_>> = entries
        .par_iter()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (!(relative.is_empty() && leave_out(&name))).then_some((entry, name))
        })
        .map(|(entry, name)| {
            let path = format!("{relative}{name}");
            let kind = entry.file_type().ok()?;
            if kind.is_dir() {
                return files_in(&entry.path(), &format!("{path}/"), leave_out);
            }
            match kind.is_file() {
                true => Some(vec![(path, entry.metadata().ok()?)]),
                false => Some(Vec::new()),
            }
        })
        .collect();
    Some(per_entry?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_dots_and_keeps_escapes() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(
            normalize(Path::new("req/../req/base.txt")),
            PathBuf::from("req/base.txt")
        );
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/../b"));
        assert!(!normalize(Path::new("/repo/../../etc")).starts_with("/repo"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
    }

    #[test]
    fn relative_paths_climb_then_descend() {
        let rel = |a: &str, b: &str| relative(Path::new(a), Path::new(b));
        assert_eq!(
            rel(
                "/home/site/wwwroot",
                "/home/site/.kuduhook/wwwroot/envs/env-1"
            ),
            Some(PathBuf::from("../.kuduhook/wwwroot/envs/env-1"))
        );
        assert_eq!(rel("/a/b", "/a/b/c"), Some(PathBuf::from("c")));
        assert_eq!(rel("/a/b", "/a/b"), Some(PathBuf::from(".")));
        assert_eq!(rel("a", "/b"), None);
    }

    #[test]
    fn state_lives_beside_the_target() {
        assert_eq!(
            state_dir(Path::new("/home/site/wwwroot")),
            PathBuf::from("/home/site/.kuduhook/wwwroot")
        );
    }
}
