//! File operations the env, the sync and the releases share: whether links can be made, whether
//! a folder is on a network filesystem, the workers for a share's round trips, and copies and
//! removals of whole trees that never follow a link.

use std::io;
use std::path::{Path, PathBuf};

use crate::ground::error::DeployError;
use crate::ground::paths;
use crate::settings::Platform;

/// Whether links can be made in `dir` (an SMB share without `mfsymlinks` refuses them). A
/// filesystem answers once per process: the store, the installer's cache and the sync all ask,
/// and on a share every probe costs round trips.
pub fn links_work(dir: &Path) -> bool {
    static ANSWERS: std::sync::Mutex<Vec<(u64, bool)>> = std::sync::Mutex::new(Vec::new());
    let Some(device) = device_of(dir) else {
        return probe_link(dir);
    };
    if let Some((_, known)) = ANSWERS.lock().unwrap().iter().find(|(d, _)| *d == device) {
        return *known;
    }
    let works = probe_link(dir);
    ANSWERS.lock().unwrap().push((device, works));
    works
}

/// The kind of network filesystem `dir` is on (cifs, smb2, nfs, fuse), where every metadata
/// call is a round trip to another machine; `None` for a local one.
pub fn network_filesystem(dir: &Path) -> Option<&'static str> {
    #[cfg(target_os = "linux")]
    {
        // A target not made yet is on its nearest existing folder's filesystem.
        let existing = dir.ancestors().find(|d| d.exists())?;
        let kind = rustix::fs::statfs(existing).ok()?.f_type as u64;
        match kind {
            0xFF53_4D42 => Some("cifs"),
            0xFE53_4D42 => Some("smb2"),
            0x517B => Some("smb"),
            0x6969 => Some("nfs"),
            // sshfs, blobfuse, and the tests' SMB-like share.
            0x6573_5546 => Some("fuse"),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// The filesystem `dir` is on (`None` where that cannot be told cheaply).
fn device_of(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| m.dev())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

fn probe_link(dir: &Path) -> bool {
    let probe = dir.join(".kuduhook-link-probe");
    let _ = remove_any(&probe);
    let made = make_link(Platform::host(), &probe, dir).is_ok();
    let _ = remove_any(&probe);
    made
}

/// What the link at `link` should hold to lead to `to`: a relative path on Linux (the site
/// still works when `/home/site` is mounted elsewhere), an absolute one on Windows (junctions
/// hold absolute paths).
pub fn link_text(platform: Platform, link: &Path, to: &Path) -> PathBuf {
    match platform {
        Platform::Linux => {
            let from = link.parent().unwrap_or(Path::new("/"));
            paths::relative(from, to).unwrap_or_else(|| to.to_path_buf())
        }
        Platform::Windows => to.to_path_buf(),
    }
}

pub fn make_link(platform: Platform, link: &Path, to: &Path) -> io::Result<()> {
    let text = link_text(platform, link, to);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(text, link)
    }
    #[cfg(windows)]
    {
        // A directory junction needs no privilege, unlike a symlink.
        let status = std::process::Command::new("cmd")
            .args(["/c", "mklink", "/J"])
            .arg(link)
            .arg(text)
            .stdout(std::process::Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other("mklink /J failed"))
        }
    }
}

#[cfg(windows)]
pub fn is_junction(meta: &std::fs::Metadata) -> bool {
    use std::os::windows::fs::MetadataExt;
    const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
    meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
}

#[cfg(not(windows))]
pub fn is_junction(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Workers for the many small writes and deletes of an env on a network share: each waits on a
/// round trip, so far more of them than cores.
pub fn share_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(32)
            .build()
            .expect("start the env copy's worker threads")
    })
}

/// How [`copy_tree`] makes each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAs {
    /// Every file copied; a link copied as the file it leads to, one to a folder left out
    /// (for a filesystem that refuses links: the share).
    Files,
    /// Links made again as the same links; the installed packages' files (under `lib/`) hard-linked rather than
    /// copied: an env copied to be installed into on the same disk. pip and Python never
    /// write into an existing file (they write a new one and rename it, or unlink first), so
    /// the copy's changes do not reach the original; the rest (scripts, `pyvenv.cfg`, records)
    /// is copied, as it is rewritten.
    PackagesShared,
}

/// Copies the folder tree `from` to `to`, which must not exist: folders level by level, files
/// all at once, each by one of many workers (on a share each call is a round trip), each
/// file's modification time kept. Returns the files copied (or linked).
pub fn copy_tree(from: &Path, to: &Path, mode: CopyAs) -> Result<usize, DeployError> {
    use rayon::prelude::*;
    let mut levels: Vec<Vec<PathBuf>> = vec![vec![PathBuf::new()]];
    let mut files: Vec<PathBuf> = Vec::new();
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    while let Some(level) = levels.last().filter(|l| !l.is_empty()) {
        let mut next = Vec::new();
        for dir in level {
            let read = std::fs::read_dir(from.join(dir))
                .map_err(|e| DeployError::io("list", from.join(dir), e))?;
            for entry in read.flatten() {
                let relative = dir.join(entry.file_name());
                let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
                if is_link && mode != CopyAs::Files {
                    let held = std::fs::read_link(entry.path())
                        .map_err(|e| DeployError::io("read the link", entry.path(), e))?;
                    links.push((relative, held));
                    continue;
                }
                match std::fs::metadata(entry.path()) {
                    Ok(meta) if meta.is_dir() && !is_link => next.push(relative),
                    Ok(meta) if meta.is_file() => files.push(relative),
                    _ => {}
                }
            }
        }
        levels.push(next);
    }
    share_pool().install(|| {
        for level in &levels {
            level.par_iter().try_for_each(|dir| {
                std::fs::create_dir_all(to.join(dir))
                    .map_err(|e| DeployError::io("create", to.join(dir), e))
            })?;
        }
        files.par_iter().try_for_each(|file| {
            let (source, copy) = (from.join(file), to.join(file));
            if mode == CopyAs::PackagesShared
                && file.starts_with("lib")
                && std::fs::hard_link(&source, &copy).is_ok()
            {
                return Ok(());
            }
            paths::copy_file_keeping_mtime(&source, &copy)
                .map(|_| ())
                .map_err(|e| DeployError::io("copy the env file to", copy, e))
        })
    })?;
    for (link, held) in &links {
        copy_link(held, &to.join(link))
            .map_err(|e| DeployError::io("make the link", to.join(link), e))?;
    }
    Ok(files.len())
}

#[cfg(unix)]
fn copy_link(held: &Path, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(held, at)
}

#[cfg(not(unix))]
fn copy_link(held: &Path, at: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(held, at)
}

/// Removes a folder tree like [`remove_any`], with many workers at once (on a share every call
/// is a round trip): the folders are listed a level at a time, all of a level at once; each
/// folder's files are deleted by one worker (the kernel lets one change a folder at a time),
/// many folders at once; then the folders, deepest first.
pub fn remove_fast(path: &Path) -> Result<(), DeployError> {
    use rayon::prelude::*;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() && !is_junction(&meta) => {}
        _ => return remove_any(path),
    }
    share_pool().install(|| {
        let mut levels: Vec<Vec<PathBuf>> = vec![vec![path.to_path_buf()]];
        let mut files: Vec<Vec<PathBuf>> = Vec::new();
        while let Some(level) = levels.last().filter(|l| !l.is_empty()) {
            let listed: Vec<(Vec<PathBuf>, Vec<PathBuf>)> = level
                .par_iter()
                .map(|dir| {
                    let (mut subdirs, mut inside) = (Vec::new(), Vec::new());
                    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                        match entry.file_type() {
                            Ok(t) if t.is_dir() => subdirs.push(entry.path()),
                            _ => inside.push(entry.path()),
                        }
                    }
                    (subdirs, inside)
                })
                .collect();
            let mut next = Vec::new();
            for (subdirs, inside) in listed {
                next.extend(subdirs);
                files.push(inside);
            }
            levels.push(next);
        }
        files.par_iter().try_for_each(|inside| {
            inside.iter().try_for_each(|f| match remove_file(f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    Err(DeployError::io("delete", f, e))
                }
                _ => Ok(()),
            })
        })?;
        for level in levels.iter().rev() {
            level
                .par_iter()
                .try_for_each(|d| match std::fs::remove_dir(d) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        Err(DeployError::io("delete", d, e))
                    }
                    _ => Ok(()),
                })?;
        }
        Ok(())
    })
}

/// Removes a file or link. On Windows a read-only file (kept so by a copy that keeps its
/// attributes, or made so by the app) refuses deletion: its attribute is cleared first.
pub fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied => {
            match paths::make_writable(path)? {
                true => std::fs::remove_file(path),
                false => Err(e),
            }
        }
        other => other,
    }
}

/// Removes a link, file or folder tree; a missing one is fine. A link is removed as a link,
/// never followed.
pub fn remove_any(path: &Path) -> Result<(), DeployError> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() && !is_junction(&meta) => {
            std::fs::remove_dir_all(path).or_else(|_| remove_fast(path).map_err(io::Error::other))
        }
        Ok(meta) if meta.is_dir() => std::fs::remove_dir(path),
        Ok(_) => remove_file(path),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DeployError::io("delete", path, e)),
        _ => Ok(()),
    }
}
