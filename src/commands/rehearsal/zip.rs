//! Zips as the tools that deploy them make them, and their extraction as KuduLite does it
//! (`shared/kudu-contract.md` §1): a fresh local folder (`<temp>/zipdeploy/extracted`),
//! every file written anew with its entry's time (a DOS time: 2-second steps, no time zone,
//! read as UTC as on App Service), a unix mode only where the zip carries one (a zip made on
//! Windows carries none, so nothing in it is executable).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

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
    let io =
        |action: &'static str, path: &Path, e: std::io::Error| DeployError::io(action, path, e);
    let file = File::create(out).map_err(|e| io("create", out, e))?;
    let mut writer = ZipWriter::new(file);
    let mut counts = Counts::default();
    let zip_failed = |e: zip::result::ZipError| io("write the zip", out, std::io::Error::other(e));
    for (relative, meta) in entries(folder).map_err(|e| io("list", folder, e))? {
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
            .map_err(|e| io("read", &path, e))?;
        writer.write_all(&bytes).map_err(|e| io("write", out, e))?;
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
    let io =
        |action: &'static str, path: &Path, e: std::io::Error| DeployError::io(action, path, e);
    let bad_zip = |e: zip::result::ZipError| io("read the zip", zip, std::io::Error::other(e));
    let file = File::open(zip).map_err(|e| io("open", zip, e))?;
    let mut archive = ZipArchive::new(file).map_err(bad_zip)?;
    std::fs::create_dir_all(into).map_err(|e| io("create the folder", into, e))?;
    let mut counts = Counts::default();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(bad_zip)?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(io(
                "extract",
                zip,
                std::io::Error::other(format!(
                    "the entry {} would be written outside the folder",
                    entry.name().unwrap_or_default()
                )),
            ));
        };
        let path: PathBuf = into.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| io("create the folder", &path, e))?;
            counts.folders += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create the folder", parent, e))?;
        }
        let mut out = File::create(&path).map_err(|e| io("create", &path, e))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| io("extract", &path, e))?;
        if let Some(time) = entry.last_modified().and_then(system_time) {
            out.set_modified(time)
                .map_err(|e| io("set the time of", &path, e))?;
        }
        // A unix mode only where the zip carries one (in the attributes' high 16 bits).
        let mode = entry.external_attributes() >> 16;
        #[cfg(unix)]
        if mode != 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| io("set the mode of", &path, e))?;
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
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    DateTime::from_date_and_time(
        year.clamp(1980, 2107) as u16,
        month,
        day,
        (rest / 3600) as u8,
        (rest % 3600 / 60) as u8,
        (rest % 60) as u8,
    )
    .unwrap_or_default()
}

/// A zip entry's time as the time a file gets (UTC).
pub fn system_time(time: DateTime) -> Option<SystemTime> {
    let days = days_from_civil(time.year() as i64, time.month(), time.day());
    let secs = days * 86_400
        + time.hour() as i64 * 3600
        + time.minute() as i64 * 60
        + time.second() as i64;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
