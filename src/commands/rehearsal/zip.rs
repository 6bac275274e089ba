//! Zips as the tools that deploy them make them, and their extraction as KuduLite does it
//! (docs/platform.md §1): a fresh local folder (`<temp>/zipdeploy/extracted`),
//! every file written anew with its entry's time (a DOS time: 2-second steps, no time zone,
//! read as UTC as on App Service), a unix mode only where the zip carries one (a zip made on
//! Windows carries none, so nothing in it is executable).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

use crate::commands::error::CommandError;
use crate::ground::calendar;
use crate::ground::error::DeployError;

/// What a zip holds: files and folders, written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub files: usize,
    pub folders: usize,
}

/// Zips `folder` into `out` as a tool on Windows does: deflated, DOS times, DOS attributes and
/// no unix modes. `.git` is left out (the deploying tools zip a working folder, not its
/// history).
pub fn make(folder: &Path, out: &Path) -> Result<Counts, DeployError> {
    let file = File::create(out).map_err(|e| DeployError::io("create", out, e))?;
    let mut writer = ZipWriter::new(file);
    let mut counts = Counts::default();
    let zip_failed =
        |e: zip::result::ZipError| DeployError::io("write the zip", out, std::io::Error::other(e));
    for (relative, meta) in entries(folder).map_err(|e| DeployError::io("list", folder, e))? {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .system(System::Dos)
            .last_modified_time(dos_time(meta.modified().unwrap_or(UNIX_EPOCH)));
        let path = folder.join(&relative);
        if meta.is_dir() {
            writer
                .add_directory(relative.as_str(), options.external_attributes(0x10))
                .map_err(zip_failed)?;
            counts.folders += 1;
            continue;
        }
        writer
            .start_file(relative.as_str(), options.external_attributes(0x20))
            .map_err(zip_failed)?;
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| DeployError::io("read", &path, e))?;
        writer
            .write_all(&bytes)
            .map_err(|e| DeployError::io("write", out, e))?;
        counts.files += 1;
    }
    writer.finish().map_err(zip_failed)?;
    Ok(counts)
}

/// Every folder and file under `root` but `.git`, parents first, with `/`-separated paths.
fn entries(root: &Path) -> std::io::Result<Vec<(String, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let mut folders = vec![String::new()];
    while let Some(relative) = folders.pop() {
        let mut children: Vec<_> =
            std::fs::read_dir(root.join(&relative))?.collect::<Result<Vec<_>, _>>()?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            if relative.is_empty() && name == ".git" {
                continue;
            }
            let path = match relative.as_str() {
                "" => name,
                _ => format!("{relative}/{name}"),
            };
            let meta = std::fs::metadata(child.path())?;
            if meta.is_dir() {
                folders.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    Ok(out)
}

/// Extracts `zip` into `into` (created; it must not exist) as KuduLite does. Refuses an
/// entry whose path leaves the folder.
pub fn extract(zip: &Path, into: &Path) -> Result<Counts, DeployError> {
    let bad_zip = |e: zip::result::ZipError| -> DeployError {
        CommandError::NotAZip {
            path: zip.to_path_buf(),
            detail: e.to_string(),
        }
        .into()
    };
    let file = File::open(zip).map_err(|e| DeployError::io("open", zip, e))?;
    let mut archive = ZipArchive::new(file).map_err(bad_zip)?;
    std::fs::create_dir_all(into).map_err(|e| DeployError::io("create the folder", into, e))?;
    let mut counts = Counts::default();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(bad_zip)?;
        let unsafe_entry = |entry: &zip::read::ZipFile<File>, why: String| -> DeployError {
            CommandError::UnsafeZip {
                path: zip.to_path_buf(),
                entry: entry.name().unwrap_or_default().to_string(),
                why,
            }
            .into()
        };
        let Some(relative) = entry.enclosed_name() else {
            return Err(unsafe_entry(
                &entry,
                "would be written outside the folder it is extracted into".into(),
            ));
        };
        let path: PathBuf = into.join(&relative);
        if entry.is_symlink() {
            let mut target = String::new();
            std::io::Read::read_to_string(&mut entry, &mut target)
                .map_err(|e| DeployError::io("extract", &path, e))?;
            let lands =
                crate::ground::paths::normalize(&path.parent().unwrap_or(into).join(&target));
            if Path::new(&target).is_absolute() || !lands.starts_with(into) {
                return Err(unsafe_entry(
                    &entry,
                    format!("is a link to {target}, outside the folder it is extracted into"),
                ));
            }
            // A link inside the folder becomes a file holding its target's text, as any other
            // entry's content is written.
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| DeployError::io("create the folder", parent, e))?;
            }
            let mut out = File::create(&path).map_err(|e| DeployError::io("create", &path, e))?;
            std::io::Write::write_all(&mut out, target.as_bytes())
                .map_err(|e| DeployError::io("extract", &path, e))?;
            counts.files += 1;
            continue;
        }
        if entry.is_dir() {
            std::fs::create_dir_all(&path)
                .map_err(|e| DeployError::io("create the folder", &path, e))?;
            counts.folders += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| DeployError::io("create the folder", parent, e))?;
        }
        let mut out = File::create(&path).map_err(|e| DeployError::io("create", &path, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| DeployError::io("extract", &path, e))?;
        if let Some(time) = entry.last_modified().and_then(system_time) {
            out.set_modified(time)
                .map_err(|e| DeployError::io("set the time of", &path, e))?;
        }
        // A unix mode only where the zip carries one (in the attributes' high 16 bits).
        let mode = entry.external_attributes() >> 16;
        #[cfg(unix)]
        if mode != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| DeployError::io("set the mode of", &path, e))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        counts.files += 1;
    }
    Ok(counts)
}

/// A time as a zip entry holds it: to the even second below, as UTC (1980 at the earliest).
pub fn dos_time(time: SystemTime) -> DateTime {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (year, month, day, hour, minute, second) = calendar::civil(secs);
    DateTime::from_date_and_time(
        year.clamp(1980, 2107) as u16,
        month,
        day,
        hour,
        minute,
        second,
    )
    .unwrap_or_default()
}

/// A zip entry's time as the time a file gets (UTC).
pub fn system_time(time: DateTime) -> Option<SystemTime> {
    let secs = calendar::unix(
        i64::from(time.year()),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
    );
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_goes_into_a_zip_at_the_even_second_below_and_comes_back_as_utc() {
        // 2026-12-06 23:05:07 UTC.
        let time = UNIX_EPOCH + Duration::from_secs(1_796_598_307);
        let dos = dos_time(time);
        assert_eq!(
            (
                dos.year(),
                dos.month(),
                dos.day(),
                dos.hour(),
                dos.minute(),
                dos.second()
            ),
            (2026, 12, 6, 23, 5, 6)
        );
        assert_eq!(
            system_time(dos),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_598_306))
        );
        // A leap day.
        let leap = dos_time(UNIX_EPOCH + Duration::from_secs(1_709_164_800));
        assert_eq!((leap.year(), leap.month(), leap.day()), (2024, 2, 29));
    }

    #[test]
    #[cfg(unix)]
    fn a_zip_made_as_on_windows_extracts_with_its_times_and_no_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("deploy")).unwrap();
        std::fs::create_dir_all(app.join(".git")).unwrap();
        std::fs::create_dir_all(app.join("empty")).unwrap();
        std::fs::write(app.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(app.join("deploy/kuduhook"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            app.join("deploy/kuduhook"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let when = UNIX_EPOCH + Duration::from_secs(1_796_598_307);
        File::options()
            .write(true)
            .open(app.join("deploy/kuduhook"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let zip = dir.path().join("app.zip");
        assert_eq!(
            make(&app, &zip).unwrap(),
            Counts {
                files: 1,
                folders: 2
            }
        );
        let out = dir.path().join("extracted");
        assert_eq!(
            extract(&zip, &out).unwrap(),
            Counts {
                files: 1,
                folders: 2
            }
        );
        let meta = std::fs::metadata(out.join("deploy/kuduhook")).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o111,
            0,
            "no mode: not executable"
        );
        assert_eq!(
            meta.modified().unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_796_598_306)
        );
        assert!(out.join("empty").is_dir());
        assert!(!out.join(".git").exists());
    }
}
