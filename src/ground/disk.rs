//! The filesystem as a failure speaks of it: whether an error (or an installer's output) means
//! the disk is full, an I/O error or a refused write, and the numbers a user needs then: the
//! space free on the filesystem holding a path, and who owns a path and its mode.
//!
//! App Service's `/home` is a quota'd share (1 GB on the Free and Shared plans, 10 GB on Basic,
//! 50 GB on Standard): "not enough space" is among the failures users meet most, and it must
//! be named as what it is, never as a bad requirement.

use std::io;
use std::path::{Path, PathBuf};

/// What kind of failure a filesystem error is, as a user must be told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC, or a quota exceeded (EDQUOT): the disk (or the share's quota) is full.
    Full,
    /// EIO: the filesystem itself failed (on App Service, the network share).
    Io,
    /// EACCES or EPERM: the write was refused.
    Refused,
    Other,
}

/// The system's error number behind `error`, also where a library wrapped it: an error in the
/// chain of sources, or else the "(os error N)" its text keeps (tempfile's "... at path ..."
/// errors keep the original only in their text).
fn os_code(error: &io::Error) -> Option<i32> {
    if let Some(code) = error.raw_os_error() {
        return Some(code);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(inner) = source {
        if let Some(code) = inner
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        source = inner.source();
    }
    let text = error.get_ref()?.to_string();
    let digits = text.split("(os error ").nth(1)?.split(')').next()?;
    digits.parse().ok()
}

/// The kind of `error`.
pub fn fault(error: &io::Error) -> Fault {
    match os_code(error) {
        Some(28) | Some(122) if cfg!(unix) => return Fault::Full, // ENOSPC, EDQUOT (Linux)
        Some(5) if cfg!(unix) => return Fault::Io,                // EIO
        // ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL, ERROR_IO_DEVICE
        Some(112) | Some(39) if cfg!(windows) => return Fault::Full,
        Some(1117) if cfg!(windows) => return Fault::Io,
        _ => {}
    }
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Fault::Full,
        io::ErrorKind::PermissionDenied => Fault::Refused,
        _ => Fault::Other,
    }
}

/// Whether a program's output says it ran out of space: pip's `[Errno 28] No space left on
/// device`, uv's `(os error 28)`, a quota, or Windows' "There is not enough space on the disk".
pub fn says_full<'a>(lines: impl IntoIterator<Item = &'a str>) -> bool {
    lines.into_iter().any(|line| {
        line.contains("No space left on device")
            || line.contains("Errno 28")
            || line.contains("os error 28")
            || line.contains("Disk quota exceeded")
            || line.contains("not enough space on the disk")
    })
}

/// The space of the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Space {
    pub free: u64,
    pub total: u64,
}

impl Space {
    /// The share used, in percent.
    pub fn used_percent(&self) -> u64 {
        match self.total {
            0 => 0,
            total => (total - self.free.min(total)) * 100 / total,
        }
    }
}

/// The nearest folder at or above `path` that exists (what a failed create's path lacks).
fn existing(path: &Path) -> Option<PathBuf> {
    path.ancestors().find(|p| p.exists()).map(Path::to_path_buf)
}

/// The space of the filesystem holding `path` (or its nearest existing folder); `None` where it
/// cannot be asked (Windows, for now).
pub fn space(path: &Path) -> Option<Space> {
    #[cfg(target_os = "linux")]
    {
        let stat = rustix::fs::statvfs(&existing(path)?).ok()?;
        let unit = stat.f_frsize.max(1);
        Some(Space {
            free: stat.f_bavail.saturating_mul(unit),
            total: stat.f_blocks.saturating_mul(unit),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = existing(path);
        None
    }
}

/// The bytes of the files under `path` (links not followed; a file counted once per name):
/// a walk of the tree, one stat per entry.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    let mut total = 0;
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => folders.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    total
}

/// "the filesystem holding /home/site has 3.1 MB free of 40.0 MB (92% used)", or what can be
/// said without the numbers.
pub fn describe_space(path: &Path) -> String {
    let place = existing(path).unwrap_or_else(|| path.to_path_buf());
    match space(path) {
        Some(s) => format!(
            "the filesystem holding {} has {} free of {} ({}% used)",
            place.display(),
            crate::ground::logging::bytes(s.free),
            crate::ground::logging::bytes(s.total),
            s.used_percent()
        ),
        None => format!("the filesystem holding {} is full", place.display()),
    }
}

/// "/home/site/wwwroot is owned by uid 1000 (gid 1000), mode 755; kuduhook runs as uid 0": who
/// may write where a write was refused (the path, or its nearest existing folder).
pub fn describe_owner(path: &Path) -> String {
    let Some(place) = existing(path) else {
        return format!("{} does not exist", path.display());
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&place) {
            Ok(meta) => format!(
                "{} is owned by uid {} (gid {}), mode {:o}{}",
                place.display(),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777,
                runs_as()
            ),
            Err(e) => format!("{} could not be examined: {e}", place.display()),
        }
    }
    #[cfg(not(unix))]
    {
        match std::fs::symlink_metadata(&place) {
            Ok(meta) if meta.permissions().readonly() => {
                format!("{} is read-only", place.display())
            }
            _ => format!("{} refuses the deployment's user", place.display()),
        }
    }
}

/// "; kuduhook runs as uid 1000", where the process's user can be asked (Linux).
#[cfg(unix)]
fn runs_as() -> String {
    #[cfg(target_os = "linux")]
    {
        format!(
            "; kuduhook runs as uid {}",
            rustix::process::getuid().as_raw()
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(windows)]
    fn windows_errors_are_told_apart_by_their_kind() {
        assert_eq!(fault(&io::Error::from_raw_os_error(112)), Fault::Full);
        assert_eq!(fault(&io::Error::from_raw_os_error(1117)), Fault::Io);
        assert_eq!(fault(&io::Error::from_raw_os_error(5)), Fault::Refused);
        assert_eq!(
            fault(&io::Error::from_raw_os_error(28)),
            Fault::Other,
            "out of paper"
        );
    }

    #[test]
    #[cfg(unix)]
    fn errors_are_told_apart_by_their_kind() {
        assert_eq!(fault(&io::Error::from_raw_os_error(28)), Fault::Full);
        assert_eq!(fault(&io::Error::from_raw_os_error(122)), Fault::Full);
        assert_eq!(fault(&io::Error::from_raw_os_error(5)), Fault::Io);
        assert_eq!(fault(&io::Error::from_raw_os_error(13)), Fault::Refused);
        assert_eq!(fault(&io::Error::from_raw_os_error(1)), Fault::Refused);
        assert_eq!(fault(&io::Error::from_raw_os_error(2)), Fault::Other);
    }

    #[test]
    #[cfg(unix)]
    fn a_wrapped_error_is_told_by_the_error_inside() {
        let dir = tempfile::tempdir().unwrap();
        let inner = io::Error::from_raw_os_error(5);
        let wrapped = io::Error::new(
            inner.kind(),
            tempfile::PathPersistError {
                error: inner,
                path: tempfile::TempPath::try_from_path(dir.path().join("x")).unwrap(),
            },
        );
        assert_eq!(wrapped.raw_os_error(), None);
        assert_eq!(fault(&wrapped), Fault::Io);
        // What tempfile returns when it cannot create its file: the number in the text only.
        let missing = tempfile::Builder::new()
            .tempfile_in(dir.path().join("no/such/folder"))
            .unwrap_err();
        assert_eq!(missing.raw_os_error(), None);
        assert_eq!(os_code(&missing), Some(2));
    }

    #[test]
    fn installer_output_that_says_the_disk_is_full_is_recognized() {
        assert!(says_full([
            "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"
        ]));
        assert!(says_full([
            "error: Failed to install: x.whl",
            "  Caused by: failed to write to file `/env/lib/x.py`: No space left on device (os error 28)"
        ]));
        assert!(!says_full([
            "ERROR: No matching distribution found for nosuchpkg"
        ]));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_space_of_a_missing_paths_filesystem_is_its_folders() {
        let dir = tempfile::tempdir().unwrap();
        let space = space(&dir.path().join("not/yet/made")).unwrap();
        assert!(space.total > 0 && space.free <= space.total);
        let said = describe_space(&dir.path().join("not/yet"));
        assert!(
            said.starts_with(&format!(
                "the filesystem holding {} has ",
                dir.path().display()
            )),
            "{said}"
        );
    }
}
