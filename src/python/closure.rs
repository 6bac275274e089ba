//! Exact reuse: what an env must hold for its requirements, and the removal of the rest.
//!
//! The env a deployment builds by copying the live one and installing the requirements into it
//! holds what they need plus whatever earlier requirements left behind. What they need is the
//! closure of their roots ([`crate::python::requirements`]) over the installed distributions'
//! `Requires-Dist`, markers and extras evaluated for the env's own interpreter, plus what a
//! fresh env holds of its own (pip, and setuptools before Python 3.12: the env record's
//! seeds). Everything else is uninstalled the way pip does it, by each distribution's
//! `RECORD`, sparing any file a kept distribution owns too (a package replaced by another
//! that ships the same module).
//!
//! Whatever cannot be proven (a root that is not installed, metadata that cannot be read, a
//! distribution without a RECORD, a seed at another version than a fresh env would have) is
//! returned as the reason, and the deployment builds a fresh env instead.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{ExtraName, MarkerEnvironment, PackageName, Requirement, VerbatimUrl};

use crate::python::metadata::Metadata;
use crate::python::packages;
use crate::python::requirements::{Root, canonical_url};
use crate::settings::Platform;

/// One installed distribution (a `*.dist-info` folder).
#[derive(Debug, Clone)]
pub struct Dist {
    pub name: PackageName,
    pub version: String,
    pub dist_info: PathBuf,
    /// Its METADATA's `Requires-Dist` values, read with its name and version.
    requires: Vec<String>,
}

impl Dist {
    /// The distribution whose `METADATA` holds `bytes`, installed at `dist_info`.
    pub fn from_metadata(bytes: &[u8], dist_info: PathBuf) -> Result<Dist, String> {
        let metadata = Metadata::parse_bytes(bytes);
        let name = metadata.get("Name").unwrap_or_default();
        let name = PackageName::from_str(name).map_err(|e| {
            format!(
                "{}: the name {name:?} could not be read: {e}",
                dist_info.join("METADATA").display()
            )
        })?;
        Ok(Dist {
            name,
            version: metadata.get("Version").unwrap_or_default().to_string(),
            requires: metadata
                .get_all("Requires-Dist")
                .map(str::to_string)
                .collect(),
            dist_info,
        })
    }

    /// The site-packages folder the distribution's RECORD paths are relative to.
    fn site(&self) -> &Path {
        self.dist_info.parent().unwrap_or(Path::new("."))
    }

    /// Its `Requires-Dist` entries.
    fn requires(&self) -> Result<Vec<Requirement<VerbatimUrl>>, String> {
        self.requires
            .iter()
            .map(|value| {
                Requirement::from_str(value).map_err(|e| {
                    format!(
                        "{} {}: Requires-Dist {value:?} could not be read: {e}",
                        self.name, self.version
                    )
                })
            })
            .collect()
    }

    /// What it depends on for `extras`: its `Requires-Dist` entries whose markers hold for
    /// `markers` with those extras asked (none: its plain dependencies).
    pub fn dependencies(
        &self,
        markers: &MarkerEnvironment,
        extras: &[ExtraName],
    ) -> Result<Vec<Requirement<VerbatimUrl>>, String> {
        let mut applying = self.requires()?;
        applying.retain(|requirement| requirement.evaluate_markers(markers, extras));
        Ok(applying)
    }

    /// Whether one of its `Requires-Dist` entries names `name`, under any marker (one that
    /// cannot be read counts: the caller keeps what it might need).
    pub fn requires_name(&self, name: &PackageName) -> bool {
        self.requires
            .iter()
            .any(|value| match Requirement::<VerbatimUrl>::from_str(value) {
                Ok(requirement) => &requirement.name == name,
                Err(_) => true,
            })
    }

    /// The URL pip recorded for a distribution installed from a URL or path.
    fn direct_url(&self) -> Option<String> {
        let bytes = std::fs::read(self.dist_info.join("direct_url.json")).ok()?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        json.get("url")?
            .as_str()
            .map(|url| canonical_url(url, Path::new("/")))
    }

    /// The files it installed, as absolute paths inside `env_dir`.
    pub fn files(&self, env_dir: &Path) -> Result<Vec<PathBuf>, String> {
        let record = self.dist_info.join("RECORD");
        let text = std::fs::read_to_string(&record).map_err(|e| {
            format!(
                "{} {} has no readable RECORD ({e}): which files are its own cannot be told",
                self.name, self.version
            )
        })?;
        let mut files = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let path = crate::ground::paths::normalize(&self.site().join(first_csv_field(line)));
            if !path.starts_with(env_dir) {
                return Err(format!(
                    "the RECORD of {} {} names {}, outside the env",
                    self.name,
                    self.version,
                    path.display()
                ));
            }
            files.push(path);
        }
        Ok(files)
    }
}

/// The first field of a CSV line (RECORD quotes paths holding commas or quotes).
fn first_csv_field(line: &str) -> String {
    let Some(quoted) = line.strip_prefix('"') else {
        return line.split(',').next().unwrap_or(line).to_string();
    };
    let mut field = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => break,
            c => field.push(c),
        }
    }
    field
}

/// The distributions installed in the env at `env_dir`.
pub fn installed(env_dir: &Path, platform: Platform) -> Result<Vec<Dist>, String> {
    let mut dists = Vec::new();
    for site in packages::site_packages(env_dir, platform) {
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let folder = entry.file_name().to_string_lossy().into_owned();
            if folder.ends_with(".egg-info") || folder.ends_with(".egg-link") {
                return Err(format!(
                    "{folder} in {} was installed the legacy way (no RECORD of its files)",
                    site.display()
                ));
            }
            if !folder.ends_with(".dist-info") {
                continue;
            }
            let path = entry.path().join("METADATA");
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("{} could not be read: {e}", path.display()))?;
            dists.push(Dist::from_metadata(&bytes, entry.path())?);
        }
    }
    Ok(dists)
}

/// The PEP 508 marker values of the interpreter `python`: what the env's dependencies' markers
/// are evaluated against.
pub const MARKER_ENVIRONMENT_SCRIPT: &str = r#"
import json, os, platform, sys
def version(info):
    text = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        text += info.releaselevel[0] + str(info.serial)
    return text
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": version(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"#;

/// Reads what [`MARKER_ENVIRONMENT_SCRIPT`] printed.
pub fn parse_marker_environment(json: &str) -> Result<MarkerEnvironment, String> {
    serde_json::from_str(json.trim())
        .map_err(|e| format!("the interpreter's marker values could not be read: {e}"))
}

/// What the requirements need: every distribution in the closure of their roots, with the
/// requirements on it (to tell which version a fresh install would keep).
#[derive(Debug, Default)]
pub struct Needed {
    pub names: BTreeSet<PackageName>,
    requirements: Vec<Requirement<VerbatimUrl>>,
}

impl Needed {
    /// Whether every requirement on `name` accepts `version`.
    fn accept(&self, name: &PackageName, version: &str) -> bool {
        let Ok(version) = pep508_rs::pep440_rs::Version::from_str(version) else {
            return false;
        };
        self.requirements
            .iter()
            .filter(|r| &r.name == name)
            .all(|r| match &r.version_or_url {
                Some(pep508_rs::VersionOrUrl::VersionSpecifier(specifiers)) => {
                    specifiers.contains(&version)
                }
                Some(pep508_rs::VersionOrUrl::Url(_)) => false,
                None => true,
            })
    }
}

/// The closure of `roots` over the installed `dists`, markers evaluated with `markers`.
pub fn closure(
    roots: &[Root],
    dists: &[Dist],
    markers: &MarkerEnvironment,
) -> Result<Needed, String> {
    let by_name: BTreeMap<&PackageName, &Dist> = dists.iter().map(|d| (&d.name, d)).collect();
    let mut needed = Needed::default();
    let mut queue: Vec<(PackageName, Vec<ExtraName>, String)> = Vec::new();
    for root in roots {
        match root {
            Root::Named(requirement) => {
                if requirement.marker.evaluate(markers, &[]) {
                    needed.requirements.push(requirement.clone());
                    queue.push((
                        requirement.name.clone(),
                        requirement.extras.clone(),
                        "the requirements".into(),
                    ));
                }
            }
            Root::Unnamed { url } => {
                let dist = dists
                    .iter()
                    .find(|d| d.direct_url().as_deref() == Some(url.as_str()))
                    .ok_or_else(|| {
                        format!("nothing installed was recorded as installed from {url}")
                    })?;
                queue.push((dist.name.clone(), Vec::new(), "the requirements".into()));
            }
        }
    }
    // Each distribution with the extras it was expanded for so far.
    let mut expanded: BTreeMap<PackageName, BTreeSet<ExtraName>> = BTreeMap::new();
    while let Some((name, extras, wanted_by)) = queue.pop() {
        let dist = by_name
            .get(&name)
            .ok_or_else(|| format!("{name} (needed by {wanted_by}) is not installed"))?;
        if !wants(&mut expanded, &name, extras) {
            continue;
        }
        let all_extras: Vec<ExtraName> = expanded[&name].iter().cloned().collect();
        for requirement in dist.dependencies(markers, &all_extras)? {
            queue.push((
                requirement.name.clone(),
                requirement.extras.clone(),
                format!("{} {}", dist.name, dist.version),
            ));
            needed.requirements.push(requirement);
        }
    }
    needed.names = expanded.into_keys().collect();
    Ok(needed)
}

/// Records that `key` is wanted with `extras` in a walk of a dependency graph; whether it must
/// be expanded: the first time it is reached, or again with an extra not asked before.
pub(crate) fn wants<K: Ord + Clone, E: Ord>(
    wanted: &mut BTreeMap<K, BTreeSet<E>>,
    key: &K,
    extras: impl IntoIterator<Item = E>,
) -> bool {
    let first = !wanted.contains_key(key);
    let known = wanted.entry(key.clone()).or_default();
    let mut grew = false;
    for extra in extras {
        grew |= known.insert(extra);
    }
    first || grew
}

/// What pruning removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Name and version of each distribution removed.
    pub removed: Vec<(String, String)>,
    pub files: usize,
}

/// Removes from the env at `env_dir` every distribution that neither `needed` nor `seeds` (a
/// fresh env's own distributions, by name and version) names. `Err` says why that cannot be
/// done exactly; nothing is removed then.
pub fn prune(
    env_dir: &Path,
    dists: &[Dist],
    needed: &Needed,
    seeds: &[(String, String)],
) -> Result<Pruned, String> {
    for (seed, version) in seeds {
        let name = PackageName::from_str(seed).map_err(|e| format!("seed {seed}: {e}"))?;
        let installed = dists.iter().find(|d| d.name == name);
        match installed {
            Some(d) if &d.version == version => {}
            // The install upgraded a needed seed: a fresh install would too, unless the
            // version a fresh env has of its own already met every requirement on it.
            Some(_) if needed.names.contains(&name) && !needed.accept(&name, version) => {}
            Some(d) => {
                return Err(format!(
                    "{name} is {} where a fresh env would have {version}, its own",
                    d.version
                ));
            }
            None => return Err(format!("{name}, which a fresh env has of its own, is gone")),
        }
    }
    let removed = unneeded(dists, needed, seeds);
    let kept: Vec<&Dist> = dists
        .iter()
        .filter(|d| !removed.iter().any(|r| r.name == d.name))
        .collect();
    if removed.is_empty() {
        return Ok(Pruned::default());
    }
    let mut owned: HashSet<PathBuf> = HashSet::new();
    for dist in &kept {
        // A kept distribution without a RECORD could own anything: nothing can be removed safely.
        owned.extend(dist.files(env_dir)?);
    }
    let mut doomed: Vec<(&Dist, Vec<PathBuf>)> = Vec::new();
    for dist in &removed {
        doomed.push((dist, dist.files(env_dir)?));
    }
    let mut pruned = Pruned::default();
    let mut emptied: BTreeSet<PathBuf> = BTreeSet::new();
    for (dist, files) in doomed {
        for file in files.iter().filter(|f| !owned.contains(*f)) {
            match std::fs::remove_file(file) {
                Ok(()) => pruned.files += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{} could not be removed: {e}", file.display())),
            }
            if file.extension().is_some_and(|e| e == "py") {
                remove_bytecode(file, &mut emptied);
            }
            if let Some(parent) = file.parent() {
                emptied.insert(parent.to_path_buf());
            }
        }
        if !owned.iter().any(|f| f.starts_with(&dist.dist_info)) {
            let _ = std::fs::remove_dir_all(&dist.dist_info);
        }
        pruned
            .removed
            .push((dist.name.to_string(), dist.version.clone()));
    }
    remove_empty_folders(emptied, env_dir);
    Ok(pruned)
}

/// The distributions that neither `needed` nor `seeds` (by name) names: what pruning removes.
pub fn unneeded<'a>(
    dists: &'a [Dist],
    needed: &Needed,
    seeds: &[(String, String)],
) -> Vec<&'a Dist> {
    let seed_names: HashSet<PackageName> = seeds
        .iter()
        .filter_map(|(n, _)| PackageName::from_str(n).ok())
        .collect();
    dists
        .iter()
        .filter(|d| !needed.names.contains(&d.name) && !seed_names.contains(&d.name))
        .collect()
}

/// Removes `__pycache__/<stem>.*.pyc` beside a removed module.
fn remove_bytecode(module: &Path, emptied: &mut BTreeSet<PathBuf>) {
    let (Some(parent), Some(stem)) = (module.parent(), module.file_stem()) else {
        return;
    };
    let cache = parent.join("__pycache__");
    let prefix = format!("{}.", stem.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(&cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".pyc") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    emptied.insert(cache);
}

/// Removes each of `folders` that is now empty, and its parents that become empty, up to (not
/// including) `env_dir`'s site-packages and bin folders' level.
fn remove_empty_folders(folders: BTreeSet<PathBuf>, env_dir: &Path) {
    let mut folders: Vec<PathBuf> = folders.into_iter().collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    for folder in folders {
        let mut current = folder.as_path();
        while current.starts_with(env_dir) && current != env_dir {
            let name = current.file_name().unwrap_or_default();
            if name == "site-packages" || name == "bin" || name == "Scripts" {
                break;
            }
            if std::fs::remove_dir(current).is_err() {
                break; // not empty (or gone)
            }
            match current.parent() {
                Some(parent) => current = parent,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers() -> MarkerEnvironment {
        parse_marker_environment(
            r#"{"implementation_name": "cpython", "implementation_version": "3.11.7",
                "os_name": "posix", "platform_machine": "x86_64",
                "platform_python_implementation": "CPython", "platform_release": "6.1",
                "platform_system": "Linux", "platform_version": "1", "python_full_version": "3.11.7",
                "python_version": "3.11", "sys_platform": "linux"}"#,
        )
        .unwrap()
    }

    /// An env with distributions `(name, version, requires, files)`.
    fn env(dists: &[(&str, &str, &[&str], &[&str])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        let site = env.join("lib/python3.11/site-packages");
        for (name, version, requires, files) in dists {
            let info = site.join(format!("{name}-{version}.dist-info"));
            std::fs::create_dir_all(&info).unwrap();
            let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
            for r in *requires {
                metadata.push_str(&format!("Requires-Dist: {r}\n"));
            }
            metadata.push_str("\nDescription body: not a header\n");
            std::fs::write(info.join("METADATA"), metadata).unwrap();
            let mut record = String::new();
            for file in *files {
                let path = site.join(file);
                std::fs::create_dir_all(crate::ground::paths::normalize(&path).parent().unwrap())
                    .unwrap();
                std::fs::write(crate::ground::paths::normalize(&path), name).unwrap();
                record.push_str(&format!("{file},sha256=x,1\n"));
            }
            record.push_str(&format!(
                "{name}-{version}.dist-info/METADATA,,\n{name}-{version}.dist-info/RECORD,,\n"
            ));
            std::fs::write(info.join("RECORD"), record).unwrap();
        }
        (dir, env)
    }

    fn named(text: &str) -> Root {
        let r = Requirement::<VerbatimUrl>::from_str(text).unwrap();
        Root::Named(r)
    }

    fn names(needed: &Needed) -> Vec<String> {
        needed.names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_closure_follows_markers_and_extras() {
        let (_dir, env) = env(&[
            (
                "web",
                "1.0",
                &[
                    "core>=1",
                    "old; python_version < '3.8'",
                    "fast; extra == 'speed'",
                ],
                &[],
            ),
            ("core", "1.0", &["tiny; sys_platform == 'linux'"], &[]),
            ("tiny", "1.0", &[], &[]),
            ("old", "1.0", &[], &[]),
            ("fast", "1.0", &[], &[]),
            ("orphan", "1.0", &[], &[]),
        ]);
        let dists = installed(&env, Platform::Linux).unwrap();
        let plain = closure(&[named("web")], &dists, &markers()).unwrap();
        assert_eq!(names(&plain), ["core", "tiny", "web"]);
        let with_extra = closure(&[named("Web[speed]"), named("web")], &dists, &markers()).unwrap();
        assert_eq!(names(&with_extra), ["core", "fast", "tiny", "web"]);
        let gated = closure(&[named("orphan; python_version < '3'")], &dists, &markers()).unwrap();
        assert!(gated.names.is_empty());
        let missing = closure(&[named("absent")], &dists, &markers()).unwrap_err();
        assert_eq!(
            missing,
            "absent (needed by the requirements) is not installed"
        );
    }

    #[test]
    fn pruning_spares_seeds_and_files_a_kept_distribution_owns() {
        let (_dir, env) = env(&[
            ("app", "1.0", &[], &["app/__init__.py"]),
            (
                "oldmod",
                "1.0",
                &[],
                &[
                    "shared/__init__.py",
                    "shared/old.py",
                    "oldmod.py",
                    "../../../bin/oldtool",
                ],
            ),
            (
                "newmod",
                "1.0",
                &[],
                &["shared/__init__.py", "shared/new.py"],
            ),
            ("pip", "23.2.1", &[], &["pip/__init__.py"]),
        ]);
        let site = env.join("lib/python3.11/site-packages");
        std::fs::create_dir_all(site.join("__pycache__")).unwrap();
        std::fs::write(site.join("__pycache__/oldmod.cpython-311.pyc"), "").unwrap();
        let dists = installed(&env, Platform::Linux).unwrap();
        let needed = closure(&[named("app"), named("newmod")], &dists, &markers()).unwrap();
        let seeds = [("pip".to_string(), "23.2.1".to_string())];
        let pruned = prune(&env, &dists, &needed, &seeds).unwrap();
        assert_eq!(pruned.removed, [("oldmod".to_string(), "1.0".to_string())]);
        assert!(
            site.join("shared/__init__.py").is_file(),
            "newmod's copy of the shared module stays"
        );
        assert!(site.join("shared/new.py").is_file());
        assert!(!site.join("shared/old.py").exists());
        assert!(!site.join("oldmod.py").exists());
        assert!(
            !site.join("__pycache__").exists(),
            "bytecode of removed modules goes, and its empty folder"
        );
        assert!(!env.join("bin/oldtool").exists());
        assert!(!site.join("oldmod-1.0.dist-info").exists());
        assert!(site.join("pip/__init__.py").is_file());
        assert!(env.join("bin").is_dir(), "the bin folder stays, even empty");
    }

    #[test]
    fn a_seed_at_another_version_than_a_fresh_env_has_is_unproven() {
        let (_dir, env) = env(&[("setuptools", "70.0", &[], &[]), ("app", "1.0", &[], &[])]);
        let dists = installed(&env, Platform::Linux).unwrap();
        let needed = closure(&[named("app")], &dists, &markers()).unwrap();
        let seeds = [("setuptools".to_string(), "65.5.0".to_string())];
        let why = prune(&env, &dists, &needed, &seeds).unwrap_err();
        assert_eq!(
            why,
            "setuptools is 70.0 where a fresh env would have 65.5.0, its own"
        );
    }

    #[test]
    fn a_record_pointing_outside_the_env_is_refused() {
        let (_dir, env) = env(&[("evil", "1.0", &[], &["../../../../outside.txt"])]);
        let dists = installed(&env, Platform::Linux).unwrap();
        let why = prune(&env, &dists, &Needed::default(), &[]).unwrap_err();
        assert!(why.contains("outside the env"), "{why}");
        assert!(env.parent().unwrap().join("outside.txt").exists());
    }

    #[test]
    #[cfg(unix)] // Unix paths; exact reuse is not offered on Windows
    fn a_path_or_vcs_requirement_is_found_by_the_url_pip_recorded() {
        let (_dir, env) = env(&[
            ("localpkg", "1.0", &["dep"], &[]),
            ("vcspkg", "2.0", &[], &[]),
            ("dep", "1.0", &[], &[]),
        ]);
        let site = env.join("lib/python3.11/site-packages");
        std::fs::write(
            site.join("localpkg-1.0.dist-info/direct_url.json"),
            r#"{"url": "file:///app/libs/local", "dir_info": {"editable": true}}"#,
        )
        .unwrap();
        std::fs::write(
            site.join("vcspkg-2.0.dist-info/direct_url.json"),
            r#"{"url": "https://github.com/o/vcspkg.git", "vcs_info": {"vcs": "git", "commit_id": "abc"}}"#,
        )
        .unwrap();
        let dists = installed(&env, Platform::Linux).unwrap();
        let editable = Root::Unnamed {
            url: crate::python::requirements::canonical_url("/app/libs/local/", Path::new("/")),
        };
        let vcs = Root::Unnamed {
            url: crate::python::requirements::canonical_url(
                "git+https://github.com/o/vcspkg.git@v2",
                Path::new("/"),
            ),
        };
        let needed = closure(&[editable.clone(), vcs], &dists, &markers()).unwrap();
        assert_eq!(names(&needed), ["dep", "localpkg", "vcspkg"]);
        let only_editable = closure(&[editable], &dists, &markers()).unwrap();
        assert_eq!(names(&only_editable), ["dep", "localpkg"]);
        let elsewhere = Root::Unnamed {
            url: "file:///app/libs/other".into(),
        };
        let why = closure(&[elsewhere], &dists, &markers()).unwrap_err();
        assert_eq!(
            why,
            "nothing installed was recorded as installed from file:///app/libs/other"
        );
    }

    #[test]
    fn reads_quoted_record_paths() {
        assert_eq!(first_csv_field("\"a,b\"\"c.py\",sha256=x,1"), "a,b\"c.py");
        assert_eq!(first_csv_field("plain.py,,"), "plain.py");
    }
}
