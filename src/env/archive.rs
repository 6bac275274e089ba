//! The env as one archive, for App Service Linux's start when the site is on a network share.
//!
//! On the platform, `/home` (and so wwwroot and its env) is an SMB share: every file Python
//! looks up while importing costs round trips, so a site started from an env folder there
//! starts several times slower than from local disk. The platform has an answer, and Oryx's
//! own builds use it: when `oryx-manifest.toml` names a `compressedVirtualEnvFile`, every start
//! extracts that archive to `/<virtualEnvName>` on the container's local disk (`tar -xzf <file>
//! -C /<name>`, run in wwwroot) and puts *that* env's site-packages on `PYTHONPATH`.
//!
//! So where kuduhook finds the site on such a filesystem, it also packs the env into
//! `<site>/.kuduhook/<target>/env-archives/<env>-<hash>.tar.gz` and the manifest names it
//! (relative to wwwroot). The archive holds the env (but pip, see [`is_pip`], and where
//! nothing needs it at start the bytecode of the setuptools venv seeds, see
//! [`seed_setuptools_extra`]) as it must be at
//! `/<name>` in the app's container, not where it was built: console scripts and `activate`
//! name `/<name>`, and the interpreter is the image's own (`bin/python*` link to
//! `/opt/python/X.Y/bin/pythonX.Y`, the `home` of `pyvenv.cfg`): the build machine's
//! interpreter does not exist there. The env folder in wwwroot stays what the deployment's own
//! steps run.
//!
//! An archive is named by the hash of the env's record (which every build and install
//! rewrites), so an archive always belongs to one state of one env; beside it, a small record
//! of the env folder's `bin` and site-packages times when it was packed shows whether a later
//! step (a user's `pip install`) changed the env since.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::str::FromStr;

use pep508_rs::PackageName;

use crate::ground::error::DeployError;
use crate::settings::Platform;

/// The folder, in kuduhook's state folder for the target, that holds the archives.
pub const ARCHIVES_DIR: &str = "env-archives";

/// The archive's file name for an env named `env_name` whose record file holds `record`.
pub fn file_name(env_name: &str, record: &[u8]) -> String {
    let hash = Sha256::digest(record);
    let short = crate::ground::digest::hex(&hash[..6]);
    format!("{env_name}-{short}.tar.gz")
}

/// Where the platform extracts the archive of an env named `env_name`.
pub fn extracted_at(env_name: &str) -> PathBuf {
    Path::new("/").join(env_name)
}

/// The image's interpreter for Python `minor` ("3.11"), as the app's container has it.
pub fn image_interpreter(minor: &str) -> String {
    format!("/opt/python/{minor}/bin/python{minor}")
}

/// The env folder's state when an archive was packed from it: the modification times of its
/// `bin` and site-packages folders, which any install or removal changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    pub bin_nanos: u128,
    pub site_packages_nanos: u128,
}

impl FolderState {
    /// The state of the env folder `env_dir` (Python `minor`), if it can be read.
    pub fn of(env_dir: &Path, minor: &str) -> Option<FolderState> {
        let nanos = |dir: PathBuf| -> Option<u128> {
            let modified = std::fs::metadata(dir).ok()?.modified().ok()?;
            Some(modified.duration_since(UNIX_EPOCH).ok()?.as_nanos())
        };
        Some(FolderState {
            bin_nanos: nanos(env_dir.join("bin"))?,
            site_packages_nanos: nanos(super::site_packages(env_dir, minor))?,
        })
    }

    /// The record beside `archive`.
    fn record_path(archive: &Path) -> PathBuf {
        let mut name = archive.as_os_str().to_os_string();
        name.push(".json");
        PathBuf::from(name)
    }

    /// The state recorded beside `archive` when it was packed.
    pub fn read(archive: &Path) -> Option<FolderState> {
        serde_json::from_slice(&std::fs::read(Self::record_path(archive)).ok()?).ok()
    }

    pub fn write(&self, archive: &Path) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        crate::ground::paths::write_atomically(&Self::record_path(archive), &json)
    }
}

/// What [`pack`] made.
#[derive(Debug, Clone)]
pub struct Packed {
    pub path: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub took: std::time::Duration,
    /// Whether the bytecode and Windows launchers of the env's seed setuptools were left out,
    /// and why (or why not), for the log.
    pub setuptools: SeedSetuptools,
}

/// What the archive holds of the setuptools a venv seeds (Python 3.11 and older), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedSetuptools {
    /// The env has no setuptools (Python 3.12+, uv, or it was removed).
    Absent,
    /// Kept whole: something may import it at start.
    Kept(String),
    /// Its `__pycache__` folders and `.exe` launchers were left out: `bytes` of `files` files.
    BytecodeLeftOut { files: usize, bytes: u64 },
}

impl Packed {
    /// What the log says of it: "2345 files, 12.3 MB, in 0.41s".
    pub fn describe(&self) -> String {
        format!(
            "{} files, {:.1} MB, in {}",
            self.files,
            self.bytes as f64 / 1e6,
            crate::ground::logging::seconds(self.took)
        )
    }

    /// The log's line on what the archive holds of setuptools, and why; `None` without one.
    pub fn setuptools_line(&self) -> Option<String> {
        match &self.setuptools {
            SeedSetuptools::Absent => None,
            SeedSetuptools::Kept(why) => {
                Some(format!("Kept setuptools whole in the archive: {why}"))
            }
            SeedSetuptools::BytecodeLeftOut { files, bytes } => Some(format!(
                "Left out setuptools' bytecode and Windows launchers from the archive ({files} \
                 files, {:.1} MB): venv seeds it and nothing installed requires it; an app that \
                 imports it has it compiled at that start",
                *bytes as f64 / 1e6
            )),
        }
    }
}

/// How an env will run where the platform extracts it.
#[derive(Debug, Clone)]
pub struct Relocation<'a> {
    /// The paths the env's scripts may name now (where it was built, where it is live).
    pub built_at: &'a [PathBuf],
    /// Its name: it runs at `/<name>`.
    pub env_name: &'a str,
    /// Its Python, "3.11": the image's interpreter it runs with.
    pub minor: &'a str,
}

/// One entry of the env, in the archive's order.
enum Entry {
    Dir,
    Link(PathBuf),
    File { mode: u32, mtime: u64, len: u64 },
}

/// Files read ahead at once: on a share each read waits on round trips.
const READ_AHEAD: usize = 256;

/// Packs the env in `env_dir` into `out` (written under a temporary name, then renamed), as it
/// must be at `/<name>` in the app's container.
pub fn pack(env_dir: &Path, how: &Relocation, out: &Path) -> io::Result<Packed> {
    use rayon::prelude::*;
    let started = std::time::Instant::now();
    let mut entries = list(env_dir)?;
    let setuptools = match seed_setuptools(env_dir) {
        Some(kept_or_absent) => kept_or_absent,
        None => {
            let (mut files, mut bytes) = (0, 0);
            entries.retain(|(relative, entry)| {
                let keep = !seed_setuptools_extra(relative);
                if let (false, Entry::File { len, .. }) = (keep, entry) {
                    files += 1;
                    bytes += len;
                }
                keep
            });
            SeedSetuptools::BytecodeLeftOut { files, bytes }
        }
    };
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = crate::ground::paths::shared_temp_file(dir)?;
    let writer = io::BufWriter::with_capacity(1 << 20, temp.reopen()?);
    let gzip = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gzip);
    let mut files = 0;
    for chunk in entries.chunks(READ_AHEAD) {
        // Files are read by many workers at once, then appended in order.
        let contents: Vec<io::Result<Option<Vec<u8>>>> =
            crate::env::files::share_pool().install(|| {
                chunk
                    .par_iter()
                    .map(|(relative, entry)| match entry {
                        Entry::File { .. } => std::fs::read(env_dir.join(relative)).map(Some),
                        _ => Ok(None),
                    })
                    .collect()
            });
        for ((relative, entry), content) in chunk.iter().zip(contents) {
            let content = content?;
            append(&mut tar, relative, entry, content, how)?;
            files += usize::from(matches!(entry, Entry::File { .. }));
        }
    }
    let writer = tar.into_inner()?.finish()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    temp.persist(out).map_err(|e| e.error)?;
    Ok(Packed {
        path: out.to_path_buf(),
        files,
        bytes,
        took: started.elapsed(),
        setuptools,
    })
}

/// The top-level names of setuptools' distribution (`distutils-precedence.pth` aside).
const SETUPTOOLS_TOPS: [&str; 3] = ["setuptools", "pkg_resources", "_distutils_hack"];

/// Whether the env's entry at `relative` is bytecode of setuptools (a `__pycache__` folder or
/// what it holds, under one of [`SETUPTOOLS_TOPS`]) or one of its `.exe` launchers, which only
/// Windows runs: half of setuptools' bytes, and a quarter of a Flask env's. Left out of the
/// archive when [`seed_setuptools`] says so; the sources stay, so an import of `pkg_resources`
/// still works, compiled at that start.
fn seed_setuptools_extra(relative: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = relative.iter().collect();
    let Some(at) = parts.iter().position(|p| *p == "site-packages") else {
        return false;
    };
    let rest = &parts[at + 1..];
    let Some(top) = rest.first().and_then(|t| t.to_str()) else {
        return false;
    };
    if !SETUPTOOLS_TOPS.contains(&top) {
        return false;
    }
    rest.iter().any(|p| *p == "__pycache__")
        || (top == "setuptools"
            && rest.len() > 1
            && relative
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("exe")))
}

/// `None` where the archive may leave out the bytecode of the env's setuptools, else why it
/// may not (`Absent`, `Kept`): only where setuptools is the one venv seeded (the env record's
/// seed, at that version) and no installed distribution requires it (old gunicorn does, and
/// imports `pkg_resources` at every start: its bytecode is kept then).
fn seed_setuptools(env_dir: &Path) -> Option<SeedSetuptools> {
    let setuptools = PackageName::from_str("setuptools").expect("a valid name");
    let dists = match crate::python::closure::installed(env_dir, Platform::Linux) {
        Ok(dists) => dists,
        Err(why) => {
            return Some(SeedSetuptools::Kept(format!(
                "{why}, so what requires it is unknown"
            )));
        }
    };
    let Some(installed) = dists.iter().find(|d| d.name == setuptools) else {
        return Some(SeedSetuptools::Absent);
    };
    let seeded = crate::env::record::EnvRecord::read(env_dir)
        .and_then(|r| r.seeds)
        .and_then(|seeds| {
            seeds
                .into_iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("setuptools"))
        })
        .map(|(_, version)| version);
    match seeded {
        None => {
            return Some(SeedSetuptools::Kept(
                "the env's record does not say venv seeded it".to_string(),
            ));
        }
        Some(seed) if seed != installed.version => {
            return Some(SeedSetuptools::Kept(format!(
                "it is {}, not the {seed} venv seeds: a requirement asked for it",
                installed.version
            )));
        }
        Some(_) => {}
    }
    dists
        .iter()
        .find(|d| d.name != setuptools && d.requires_name(&setuptools))
        .map(|d| SeedSetuptools::Kept(format!("{}-{} requires it", d.name, d.version)))
}

/// Whether the env's entry at `relative` is pip (its package, its record, its scripts): left
/// out of the archive. The start does not run it, and it is most of the env's bytes, which
/// every start of every instance would read and extract; in the app's container the env is
/// extracted anew on each start, so a package pip installed there would vanish at the next
/// one anyway (the env folder in wwwroot keeps pip for the deployment's steps).
fn is_pip(relative: &Path) -> bool {
    let name = relative
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_ascii_lowercase();
    match relative.parent().and_then(Path::file_name) {
        Some(dir) if dir == "bin" => {
            relative.parent() == Some(Path::new("bin"))
                && (name == "pip" || name.starts_with("pip3"))
        }
        Some(dir) if dir == "site-packages" => {
            name == "pip" || (name.starts_with("pip-") && name.ends_with(".dist-info"))
        }
        _ => false,
    }
}

/// Every entry under `root` but pip's, folders before what they hold, names sorted.
fn list(root: &Path) -> io::Result<Vec<(PathBuf, Entry)>> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let mut names: Vec<_> =
            std::fs::read_dir(root.join(&dir))?.collect::<io::Result<Vec<_>>>()?;
        names.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in names {
            let relative = dir.join(entry.file_name());
            if is_pip(&relative) {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.file_type().is_symlink() {
                out.push((relative, Entry::Link(std::fs::read_link(entry.path())?)));
            } else if meta.is_dir() {
                out.push((relative.clone(), Entry::Dir));
                subdirs.push(relative);
            } else {
                out.push((
                    relative,
                    Entry::File {
                        mode: file_mode(&meta),
                        len: meta.len(),
                        // Kept: a module's cached bytecode is valid only for its source's time.
                        mtime: meta
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs()),
                    },
                ));
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Whether `name` in `bin` is the env's interpreter (`python`, `python3`, `python3.11`).
fn is_interpreter(name: &str) -> bool {
    name.strip_prefix("python")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    relative: &Path,
    entry: &Entry,
    content: Option<Vec<u8>>,
    how: &Relocation,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    let in_bin = relative.parent() == Some(Path::new("bin"));
    let name = relative
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if in_bin && is_interpreter(&name) && !matches!(entry, Entry::Dir) {
        return append_link(tar, relative, Path::new(&image_interpreter(how.minor)));
    }
    match (entry, content) {
        (Entry::Dir, _) => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, relative, io::empty())
        }
        (Entry::Link(to), _) => append_link(tar, relative, to),
        (Entry::File { mode, mtime, .. }, Some(bytes)) => {
            let bytes = match (relative == Path::new("pyvenv.cfg"), in_bin) {
                (true, _) => pyvenv_cfg_for_image(&bytes, how.minor),
                (false, true) => rewrite_script(bytes, how),
                _ => bytes,
            };
            let mode = match in_bin {
                true => 0o755,
                false => mode | 0o644,
            };
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(mode);
            header.set_mtime(*mtime);
            header.set_size(bytes.len() as u64);
            tar.append_data(&mut header, relative, bytes.as_slice())
        }
        (Entry::File { .. }, None) => unreachable!("every file is read before it is appended"),
    }
}

fn append_link<W: Write>(tar: &mut tar::Builder<W>, relative: &Path, to: &Path) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_size(0);
    tar.append_link(&mut header, relative, to)
}

/// A script of the env's `bin`, naming `/<name>` where it named the env's path.
fn rewrite_script(bytes: Vec<u8>, how: &Relocation) -> Vec<u8> {
    let to = extracted_at(how.env_name).to_string_lossy().into_owned();
    let mut text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(binary) => return binary.into_bytes(),
    };
    // Longest first: one path may begin with another.
    let mut from: Vec<String> = how
        .built_at
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    from.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in from {
        if text.contains(&path) {
            text = text.replace(&path, &to);
        }
    }
    text.into_bytes()
}

/// `pyvenv.cfg` for an env run by the image's interpreter: its `home` and `executable` are
/// the image's; the command that made it elsewhere is left out.
fn pyvenv_cfg_for_image(bytes: &[u8], minor: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim()).unwrap_or("");
        match key {
            "home" => out.push_str(&format!("home = /opt/python/{minor}/bin\n")),
            "executable" => out.push_str(&format!("executable = {}\n", image_interpreter(minor))),
            "command" => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

/// The archives of the envs of the site in `target`.
#[derive(Debug, Clone)]
pub struct SiteArchives {
    /// `<site>/.kuduhook/<target>/env-archives`.
    pub dir: PathBuf,
    /// The same folder as the manifest names it, relative to wwwroot.
    relative_dir: PathBuf,
    pub env_name: String,
    /// The env's Python, "3.11".
    pub minor: String,
    /// Why the env is shipped as an archive, for the log.
    pub why: String,
}

/// An archive the site's live env now has.
#[derive(Debug, Clone)]
pub struct LiveArchive {
    /// As the manifest names it, relative to wwwroot.
    pub relative: String,
    /// It was packed now, and why (for the log); `None`: the live env's archive was current.
    pub packed: Option<(Packed, &'static str)>,
}

impl SiteArchives {
    pub fn new(target: &Path, env_name: &str, minor: &str, why: String) -> SiteArchives {
        let state = crate::ground::paths::state_dir(target);
        let parent = target.parent().unwrap_or(target);
        let inside = state.strip_prefix(parent).unwrap_or(&state);
        SiteArchives {
            dir: state.join(ARCHIVES_DIR),
            relative_dir: Path::new("..").join(inside).join(ARCHIVES_DIR),
            env_name: env_name.to_string(),
            minor: minor.to_string(),
            why,
        }
    }

    /// The archive's path for the env in `env_dir` as it is now.
    fn path_for(&self, env_dir: &Path) -> PathBuf {
        let record =
            std::fs::read(env_dir.join(crate::env::record::RECORD_FILE)).unwrap_or_default();
        self.dir.join(file_name(&self.env_name, &record))
    }

    /// The archive of the env at `live` as it is now, when one was packed and the env has not
    /// changed since (what the platform extracts at its next start).
    pub fn current_for(&self, live: &Path) -> Option<PathBuf> {
        let out = self.path_for(live);
        let now = FolderState::of(live, &self.minor)?;
        (out.is_file() && FolderState::read(&out).as_ref() == Some(&now)).then_some(out)
    }

    /// Extracts the archive `archive` into `dir` (local disk), as the platform does at start.
    pub fn extract(archive: &Path, dir: &Path) -> io::Result<()> {
        let file = std::fs::File::open(archive)?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
        tar.set_preserve_mtime(true);
        tar.unpack(dir)
    }

    /// Packs a new env, built at `built` on local disk, into its archive.
    pub fn pack_built(&self, built: &Path) -> Result<Packed, DeployError> {
        self.pack_into(built, &[built.to_path_buf()], &self.path_for(built))
    }

    /// Packs the env in `env_dir`, whose scripts name the paths `named_as`, into `out`.
    fn pack_into(
        &self,
        env_dir: &Path,
        named_as: &[PathBuf],
        out: &Path,
    ) -> Result<Packed, DeployError> {
        let how = Relocation {
            built_at: named_as,
            env_name: &self.env_name,
            minor: &self.minor,
        };
        pack(env_dir, &how, out).map_err(|e| DeployError::io("pack the env into", out, e))
    }

    /// Records the live env folder's state beside the archive packed from it.
    pub fn went_live(&self, live: &Path) {
        let archive = self.path_for(live);
        if let Some(state) = FolderState::of(live, &self.minor) {
            let _ = state.write(&archive);
        }
    }

    /// The archive of the live env at `live`, packed from it if it has none or was changed
    /// since (a later step installed into it). `named_as` are the paths its scripts may name
    /// (the live path, and the folder a live link leads to).
    pub fn for_live(&self, live: &Path, named_as: &[PathBuf]) -> Result<LiveArchive, DeployError> {
        let out = self.path_for(live);
        let now = FolderState::of(live, &self.minor);
        let why = match (out.is_file(), FolderState::read(&out)) {
            (true, Some(then)) if Some(&then) == now.as_ref() => None,
            (true, Some(_)) => Some("a step changed the env after it was packed"),
            _ => Some("the env had no archive"),
        };
        let packed = match why {
            None => None,
            Some(why) => {
                let packed = self.pack_into(live, named_as, &out)?;
                if let Some(state) = now {
                    let _ = state.write(&out);
                }
                Some((packed, why))
            }
        };
        let name = out.file_name().unwrap_or_default();
        Ok(LiveArchive {
            relative: self.relative_dir.join(name).to_string_lossy().into_owned(),
            packed,
        })
    }

    /// Removes the archives of a site whose env is no longer shipped as one. Whether there
    /// were any.
    pub fn remove_all(target: &Path) -> bool {
        let dir = crate::ground::paths::state_dir(target).join(ARCHIVES_DIR);
        dir.is_dir() && crate::env::files::remove_any(&dir).is_ok()
    }

    /// Removes every archive but those named in `keep` (relative, as the manifest names
    /// them: the live env's and the kept releases'): older envs' archives, and what an
    /// interrupted packing left.
    pub fn remove_others(&self, keep: &[String]) -> usize {
        let mut kept = Vec::new();
        for name in keep {
            let name = Path::new(name)
                .file_name()
                .unwrap_or_default()
                .to_os_string();
            let mut record = name.clone();
            record.push(".json");
            kept.extend([name, record]);
        }
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if !kept.contains(&name) && std::fs::remove_file(entry.path()).is_ok() {
                removed += usize::from(!name.to_string_lossy().ends_with(".json"));
            }
        }
        removed
    }
}

/// Reads the entries' names of an archive (for tests and `status`).
pub fn names(archive: &Path) -> io::Result<Vec<String>> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut out = Vec::new();
    for entry in tar.entries()? {
        let entry = entry?;
        out.push(entry.path()?.to_string_lossy().into_owned());
    }
    Ok(out)
}

/// The text of one file in an archive.
pub fn read_text(archive: &Path, wanted: &str) -> io::Result<Option<String>> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()? == Path::new(wanted) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_named_by_the_env_state() {
        let a = file_name("env", b"{\"python\":\"3.11.7\"}");
        assert!(a.starts_with("env-") && a.ends_with(".tar.gz"), "{a}");
        assert_eq!(a, file_name("env", b"{\"python\":\"3.11.7\"}"));
        assert_ne!(a, file_name("env", b"{\"python\":\"3.12.1\"}"));
        assert_eq!(extracted_at("antenv"), Path::new("/antenv"));
    }

    #[test]
    fn the_env_is_packed_as_it_runs_at_its_extracted_path() {
        let site = tempfile::tempdir().unwrap();
        let env = site.path().join("staging/env-1");
        std::fs::create_dir_all(env.join("bin")).unwrap();
        std::fs::create_dir_all(env.join("lib/python3.11/site-packages/pkg")).unwrap();
        std::fs::write(
            env.join("pyvenv.cfg"),
            "home = /root/.pyenv/versions/3.11.7/bin\ninclude-system-site-packages = false\n\
             version = 3.11.7\nexecutable = /root/.pyenv/versions/3.11.7/bin/python3.11\n\
             command = /root/.pyenv/versions/3.11.7/bin/python3.11 -m venv /x\n",
        )
        .unwrap();
        let flask = format!("#!{}/bin/python\nimport flask\n", env.display());
        std::fs::write(env.join("bin/flask"), flask).unwrap();
        std::fs::write(
            env.join("bin/activate"),
            format!("VIRTUAL_ENV=\"{}\"\n", env.display()),
        )
        .unwrap();
        std::fs::write(env.join("bin/python3.11"), b"\x7fELF copied interpreter").unwrap();
        std::fs::write(
            env.join("lib/python3.11/site-packages/pkg/__init__.py"),
            "x = 1\n",
        )
        .unwrap();
        for pip in [
            "lib/python3.11/site-packages/pip/__init__.py",
            "lib/python3.11/site-packages/pip-23.2.1.dist-info/RECORD",
        ] {
            std::fs::create_dir_all(env.join(pip).parent().unwrap()).unwrap();
            std::fs::write(env.join(pip), "").unwrap();
        }
        std::fs::write(env.join("bin/pip3.11"), "#!python\n").unwrap();
        let out = site.path().join("archives/env-abc.tar.gz");
        let how = Relocation {
            built_at: std::slice::from_ref(&env),
            env_name: "env",
            minor: "3.11",
        };
        let packed = pack(&env, &how, &out).unwrap();
        assert_eq!(packed.files, 5);
        let names = names(&out).unwrap();
        assert!(names.contains(&"lib/python3.11/site-packages/pkg/__init__.py".to_string()));
        assert!(
            !names.iter().any(|n| n.contains("pip")),
            "pip is left out: {names:?}"
        );
        assert_eq!(
            read_text(&out, "bin/flask").unwrap().unwrap(),
            "#!/env/bin/python\nimport flask\n"
        );
        assert_eq!(
            read_text(&out, "bin/activate").unwrap().unwrap(),
            "VIRTUAL_ENV=\"/env\"\n"
        );
        let cfg = read_text(&out, "pyvenv.cfg").unwrap().unwrap();
        assert!(cfg.contains("home = /opt/python/3.11/bin\n"), "{cfg}");
        assert!(cfg.contains("executable = /opt/python/3.11/bin/python3.11\n"));
        assert!(!cfg.contains("command"), "{cfg}");
        assert!(!cfg.contains("pyenv"), "{cfg}");
        // The interpreter is the image's, linked.
        let file = std::fs::File::open(&out).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let python = tar
            .entries()
            .unwrap()
            .flatten()
            .find(|e| e.path().unwrap() == Path::new("bin/python3.11"))
            .unwrap();
        assert_eq!(
            python.link_name().unwrap().unwrap(),
            Path::new("/opt/python/3.11/bin/python3.11")
        );
    }

    /// An env with the setuptools venv seeds (65.5.0, per its record), `app` 1.0 requiring
    /// `app_requires`, and setuptools' bytecode and a launcher: what its archive holds of them.
    fn packed_setuptools(installed: &str, app_requires: &str) -> (Packed, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let sp = env.join("lib/python3.11/site-packages");
        for (file, text) in [
            ("setuptools/__init__.py", "x = 1\n"),
            (
                "setuptools/__pycache__/__init__.cpython-311.pyc",
                "bytecode",
            ),
            (
                "setuptools/_vendor/more/__pycache__/m.cpython-311.pyc",
                "bytecode",
            ),
            ("setuptools/cli-64.exe", "MZ launcher"),
            ("pkg_resources/__init__.py", "y = 1\n"),
            (
                "pkg_resources/__pycache__/__init__.cpython-311.pyc",
                "bytecode",
            ),
            (
                "_distutils_hack/__pycache__/__init__.cpython-311.pyc",
                "bytecode",
            ),
            ("distutils-precedence.pth", "import _distutils_hack\n"),
            (
                &format!("setuptools-{installed}.dist-info/METADATA"),
                &format!("Name: setuptools\nVersion: {installed}\n"),
            ),
            ("app/__pycache__/__init__.cpython-311.pyc", "bytecode"),
            (
                "app-1.0.dist-info/METADATA",
                &format!(
                    "Metadata-Version: 2.1\nName: app\nVersion: 1.0\n{app_requires}\n\nbody\n"
                ),
            ),
        ] {
            let path = sp.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(env.join("bin")).unwrap();
        let record = crate::env::record::EnvRecord {
            python: "3.11.7".into(),
            interpreter: PathBuf::from("/usr/bin/python3.11"),
            created_unix: 0,
            reason: String::new(),
            rebuild_token: None,
            install: None,
            seeds: Some(vec![("setuptools".into(), "65.5.0".into())]),
            id: None,
        };
        record.write(&env).unwrap();
        let how = Relocation {
            built_at: std::slice::from_ref(&env),
            env_name: "env",
            minor: "3.11",
        };
        let out = dir.path().join("env.tar.gz");
        let packed = pack(&env, &how, &out).unwrap();
        (packed, names(&out).unwrap())
    }

    #[test]
    fn the_seed_setuptools_bytecode_is_left_out_when_nothing_requires_it() {
        let (packed, names) = packed_setuptools("65.5.0", "Requires-Dist: click>=8");
        let sp = "lib/python3.11/site-packages/";
        for kept in [
            "setuptools/__init__.py",
            "pkg_resources/__init__.py",
            "distutils-precedence.pth",
            // Other packages keep their bytecode.
            "app/__pycache__/__init__.cpython-311.pyc",
        ] {
            assert!(
                names.contains(&format!("{sp}{kept}")),
                "{kept} in {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n.contains("setuptools/__pycache__")
                || n.contains("more/__pycache__")
                || n.contains("pkg_resources/__pycache__")
                || n.contains("_distutils_hack/")
                || n.ends_with(".exe")),
            "{names:?}"
        );
        assert_eq!(
            packed.setuptools,
            SeedSetuptools::BytecodeLeftOut {
                files: 5,
                bytes: 43
            }
        );
        assert!(packed.setuptools_line().unwrap().contains(
            "Left out setuptools' bytecode and Windows launchers from the archive (5 files"
        ));
    }

    #[test]
    fn the_setuptools_bytecode_is_kept_when_something_may_import_it() {
        // Old gunicorn requires setuptools and imports pkg_resources at every start.
        for requires in [
            "Requires-Dist: setuptools (>=3.0)",
            "Requires-Dist: Setuptools>=40; extra == \"dev\"",
        ] {
            let (packed, names) = packed_setuptools("65.5.0", requires);
            assert_eq!(
                packed.setuptools,
                SeedSetuptools::Kept("app-1.0 requires it".into())
            );
            assert!(names.iter().any(|n| n.contains("setuptools/__pycache__")));
            assert_eq!(
                packed.setuptools_line().unwrap(),
                "Kept setuptools whole in the archive: app-1.0 requires it"
            );
        }
        // A requirement asked for another setuptools than the seed.
        let (packed, names) = packed_setuptools("69.0.0", "");
        assert_eq!(
            packed.setuptools,
            SeedSetuptools::Kept(
                "it is 69.0.0, not the 65.5.0 venv seeds: a requirement asked for it".into()
            )
        );
        assert!(names.iter().any(|n| n.ends_with("cli-64.exe")));
        // A similar name, or a mention in the body, is not a requirement.
        let (packed, _) = packed_setuptools(
            "65.5.0",
            "Requires-Dist: setuptools-scm\n\nRequires-Dist: setuptools",
        );
        assert!(matches!(
            packed.setuptools,
            SeedSetuptools::BytecodeLeftOut { .. }
        ));
    }

    #[test]
    fn folder_state_changes_when_a_package_is_added() {
        let env = tempfile::tempdir().unwrap();
        let sp = env.path().join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&sp).unwrap();
        std::fs::create_dir_all(env.path().join("bin")).unwrap();
        let before = FolderState::of(env.path(), "3.11").unwrap();
        let archive = env.path().join("a.tar.gz");
        before.write(&archive).unwrap();
        assert_eq!(FolderState::read(&archive), Some(before.clone()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir(sp.join("newpkg")).unwrap();
        assert_ne!(FolderState::of(env.path(), "3.11"), Some(before));
    }
}
