//! Where the app's dependencies come from, and what the installer is given for them.
//!
//! Sources: `requirements.txt` (or the file a setting names), `uv.lock` (with pyproject.toml),
//! `poetry.lock` (with pyproject.toml), `Pipfile.lock`, and pyproject.toml alone (its
//! `[project] dependencies`). The rules, as Heroku's Python buildpack decides them:
//! - a setting names the source (`KUDUHOOK_DEPENDENCIES`, or the requirements file by
//!   `CUSTOM_REQUIREMENTSTXT_PATH` or steps.json): that one;
//! - else exactly one of requirements.txt, uv.lock, poetry.lock, Pipfile.lock: that one; more
//!   than one is ambiguous (a requirements.txt exported from a lock, say) and fails before
//!   anything changes, naming them;
//! - else pyproject.toml with a `[project]` table: its dependencies. A Poetry project without
//!   poetry.lock, or a Pipfile without Pipfile.lock, fails with the command that makes the lock;
//! - else `setup.py`: the project itself, with its `install_requires`, as Oryx installs it;
//! - else nothing: the Python steps are skipped, as deploy.cmd skipped them.
//!
//! A lock is installed exactly: the packages it pins for this interpreter (markers evaluated,
//! the main dependencies plus the groups and extras a setting selects, the project itself
//! left out) become a pinned requirements file, hashed where the lock hashes every one of
//! them, installed without dependency resolution (`--no-deps`). pyproject.toml's own
//! dependencies become a requirements file resolved by the installer.

mod pipfile_lock;
mod poetry_lock;
mod pyproject;
mod setup_py;
mod uv_lock;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::ground::error::DeployError;
use crate::python::error::PythonError;
use crate::python::{Interpreter, PythonVersion};
use crate::settings::{Origin, Setting};

/// The kinds of dependency source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requirements,
    UvLock,
    PoetryLock,
    PipfileLock,
    /// A setuptools project (`setup.py`): the project itself is installed, with its
    /// `install_requires`, as Oryx installs it (`pip install .`).
    SetupPy,
    Pyproject,
}

impl Kind {
    /// The file that makes an app this kind (a requirements file may be named otherwise).
    pub fn file(self) -> &'static str {
        match self {
            Kind::Requirements => "requirements.txt",
            Kind::UvLock => "uv.lock",
            Kind::PoetryLock => "poetry.lock",
            Kind::PipfileLock => "Pipfile.lock",
            Kind::Pyproject => "pyproject.toml",
            Kind::SetupPy => "setup.py",
        }
    }

    /// Whether the source pins every package (installed without resolution).
    pub fn is_lock(self) -> bool {
        matches!(self, Kind::UvLock | Kind::PoetryLock | Kind::PipfileLock)
    }
}

/// The source a deployment installs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: Kind,
    /// The file, relative to the app.
    pub file: String,
    /// Why this one, for the log.
    pub why: String,
}

/// What `kuduhook init` says of the app's dependencies, by the same rules (default settings).
pub fn describe_for_init(app: &Path) -> String {
    let requirements = Setting::new("requirements.txt".to_string(), Origin::Default);
    match choose(app, None, &requirements) {
        Ok(Some(source)) => format!(
            "Dependencies: {} ({}); KUDUHOOK_DEPENDENCIES names another",
            source.file, source.why
        ),
        Ok(None) => "Dependencies: none declared (no requirements.txt, pyproject.toml or lock): \
                     deployments will build no env; add requirements.txt, even empty, to get one"
            .into(),
        Err(error) => {
            let e = error.explain();
            format!(
                "Dependencies: deployments will fail until this is fixed: {}; fix: {}",
                e.what, e.fix
            )
        }
    }
}

/// The source `app` declares, by the rules above (`named`: `KUDUHOOK_DEPENDENCIES`;
/// `requirements`: the requirements file's setting); `None` when it declares none.
pub fn choose(
    app: &Path,
    named: Option<&Setting<String>>,
    requirements: &Setting<String>,
) -> Result<Option<Source>, DeployError> {
    if let Some(named) = named {
        let file = named.value.clone();
        let kind = kind_of(&file);
        if !app.join(&file).is_file() {
            return Err(PythonError::DependencySourceMissing {
                file,
                origin: named.origin.clone(),
            }
            .into());
        }
        return Ok(Some(Source {
            kind,
            file,
            why: format!("named by {}", named.origin),
        }));
    }
    if names_a_file(app, requirements) {
        // Named by a setting or steps.json: that file, present or not (as before).
        return Ok(app.join(&requirements.value).is_file().then(|| Source {
            kind: Kind::Requirements,
            file: requirements.value.clone(),
            why: format!("named by {}", requirements.origin),
        }));
    }
    let found: Vec<Kind> = [
        Kind::Requirements,
        Kind::UvLock,
        Kind::PoetryLock,
        Kind::PipfileLock,
    ]
    .into_iter()
    .filter(|k| app.join(k.file()).is_file())
    .collect();
    match found.as_slice() {
        [one] => {
            if matches!(one, Kind::UvLock | Kind::PoetryLock)
                && !app.join("pyproject.toml").is_file()
            {
                return Err(PythonError::LockWithoutProject {
                    lock: one.file().into(),
                }
                .into());
            }
            return Ok(Some(Source {
                kind: *one,
                file: one.file().into(),
                why: "the only dependency source in the app".into(),
            }));
        }
        [] => {}
        several => {
            return Err(PythonError::DependencySourcesAmbiguous {
                found: several.iter().map(|k| k.file().to_string()).collect(),
            }
            .into());
        }
    }
    if app.join("Pipfile").is_file() {
        return Err(PythonError::LockMissing {
            project: "Pipfile".into(),
            lock: "Pipfile.lock".into(),
            command: "pipenv lock".into(),
        }
        .into());
    }
    let setup_py = || {
        app.join("setup.py").is_file().then(|| Source {
            kind: Kind::SetupPy,
            file: "setup.py".into(),
            why: "the project itself and its install_requires (pip install ., as Oryx installs \
                  it), as the app has no requirements file, lock or [project] table"
                .into(),
        })
    };
    let pyproject = app.join("pyproject.toml");
    if !pyproject.is_file() {
        return Ok(setup_py());
    }
    let project = pyproject::read(&pyproject)?;
    if project.has_project_table {
        return Ok(Some(Source {
            kind: Kind::Pyproject,
            file: "pyproject.toml".into(),
            why: "its [project] dependencies, as the app has no requirements file or lock".into(),
        }));
    }
    if let Some(source) = setup_py().filter(|_| !project.is_poetry) {
        // pyproject.toml only configures the build (`[build-system]`, tools).
        return Ok(Some(source));
    }
    if project.is_poetry {
        return Err(PythonError::LockMissing {
            project: "pyproject.toml ([tool.poetry])".into(),
            lock: "poetry.lock".into(),
            command: "poetry lock".into(),
        }
        .into());
    }
    Err(PythonError::DependenciesUnknown {
        file: "pyproject.toml".into(),
        detail: "it has no [project] table (and no lock or requirements file beside it)".into(),
    }
    .into())
}

/// The requirements file's default name: a setting or `deploy/steps.json` (`kuduhook init`
/// writes it there) giving this name names no other source, so the app's own is looked for.
pub const DEFAULT_REQUIREMENTS: &str = "requirements.txt";

/// Whether the requirements setting names the one file to install from: set to another file
/// than the default, or to the default while the app has it.
pub fn names_a_file(app: &Path, requirements: &Setting<String>) -> bool {
    requirements.origin != Origin::Default
        && (requirements.value != DEFAULT_REQUIREMENTS || app.join(DEFAULT_REQUIREMENTS).is_file())
}

/// The source a file name is.
fn kind_of(file: &str) -> Kind {
    let name = Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "uv.lock" => Kind::UvLock,
        "poetry.lock" => Kind::PoetryLock,
        "Pipfile.lock" => Kind::PipfileLock,
        "pyproject.toml" => Kind::Pyproject,
        _ => Kind::Requirements,
    }
}

/// What the installer is given for a source.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: Source,
    /// The requirements file to install: the app's own, or one generated from the source (an
    /// absolute path in kuduhook's local state folder).
    pub requirements: String,
    /// Install without resolving dependencies: the file pins every package (a lock's).
    pub no_deps: bool,
    /// The files the source is read from (for the install's fingerprint).
    pub inputs: Vec<PathBuf>,
    /// What was generated, for the log ("14 packages pinned by uv.lock, hashed").
    pub summary: Option<String>,
}

/// What a lock or pyproject.toml pins or asks for, as requirement lines.
#[derive(Debug)]
pub(crate) struct Lines {
    pub lines: Vec<String>,
    pub summary: String,
}

/// Turns `source` into what the installer takes: requirement lines written to `out_dir`, for
/// `interpreter` (a lock's markers are evaluated with its values), with `groups` (extras and dependency
/// groups) besides the main dependencies. Checks the project's Python constraint and that a
/// lock matches its pyproject.toml first.
pub fn prepare(
    source: Source,
    app: &Path,
    interpreter: &Interpreter,
    groups: &[String],
    out_dir: &Path,
) -> Result<Prepared, DeployError> {
    let file = app.join(&source.file);
    let version = &interpreter.version;
    let markers = || {
        crate::python::marker_environment(&interpreter.path, out_dir).map_err(|detail| {
            DeployError::from(PythonError::DependenciesUnknown {
                file: source.file.clone(),
                detail: format!(
                    "the marker values of {}: {detail}",
                    interpreter.path.display()
                ),
            })
        })
    };
    let pyproject = app.join("pyproject.toml");
    let lines = match source.kind {
        Kind::Requirements => {
            return Ok(Prepared {
                requirements: source.file.clone(),
                source,
                no_deps: false,
                inputs: Vec::new(),
                summary: None,
            });
        }
        Kind::Pyproject => {
            let project = pyproject::read(&file)?;
            project.check_python(version)?;
            project.requirements(groups)?
        }
        Kind::UvLock => {
            let project = pyproject::read(&pyproject)?;
            project.check_python(version)?;
            uv_lock::pinned(&file, &project, &markers()?, version, groups)?
        }
        Kind::PoetryLock => {
            let project = pyproject::read(&pyproject)?;
            project.check_python(version)?;
            poetry_lock::pinned(&file, &project, &markers()?, version, groups)?
        }
        Kind::PipfileLock => pipfile_lock::pinned(&file, &markers()?, version, groups)?,
        Kind::SetupPy => return setup_py::prepare(source, app, out_dir),
    };
    std::fs::create_dir_all(out_dir).map_err(|e| DeployError::io("create", out_dir, e))?;
    let generated = out_dir.join(format!("requirements-from-{}.txt", source.kind.file()));
    let mut text = format!(
        "# Generated by kuduhook from {} for this deployment: do not edit.\n",
        source.file
    );
    for line in &lines.lines {
        text.push_str(line);
        text.push('\n');
    }
    // Unchanged (the usual redeploy): left as it is.
    if std::fs::read(&generated).ok().as_deref() != Some(text.as_bytes()) {
        crate::ground::paths::write_atomically(&generated, text.as_bytes())
            .map_err(|e| DeployError::io("write", &generated, e))?;
    }
    let mut inputs = vec![file];
    if source.kind != Kind::Pyproject && pyproject.is_file() {
        inputs.push(pyproject);
    }
    Ok(Prepared {
        requirements: generated.to_string_lossy().into_owned(),
        no_deps: source.kind.is_lock(),
        source,
        inputs,
        summary: Some(lines.summary),
    })
}

/// The error for a dependency file that cannot be read or used, by its path.
pub(crate) fn unreadable(file: &Path) -> impl Fn(String) -> DeployError + Copy + '_ {
    move |detail| {
        PythonError::DependenciesUnknown {
            file: file.display().to_string(),
            detail,
        }
        .into()
    }
}

/// Reads the TOML file at `path` (pyproject.toml, uv.lock, poetry.lock).
pub(crate) fn read_toml(path: &Path) -> Result<toml::Table, DeployError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path)(e.to_string()))?;
    text.parse()
        .map_err(|e: toml::de::Error| unreadable(path)(e.message().to_string()))
}

/// Fails when the PEP 440 constraint `requires` (a `requires-python`) of `file` excludes
/// `version`.
pub(crate) fn check_python(
    file: &Path,
    requires: &str,
    version: &PythonVersion,
) -> Result<(), DeployError> {
    use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
    let specifiers = VersionSpecifiers::from_str(requires).map_err(|e| {
        unreadable(file)(format!(
            "requires-python {requires:?} could not be read: {e}"
        ))
    })?;
    let full =
        Version::from_str(&version.to_string()).expect("a Python version is a PEP 440 version");
    match specifiers.contains(&full) {
        true => Ok(()),
        false => Err(PythonError::PythonNotAllowed {
            file: file.display().to_string(),
            requires: requires.to_string(),
            version: version.to_string(),
        }
        .into()),
    }
}

/// `sha256:…` hashes as pip's per-requirement options.
pub(crate) fn hash_options(hashes: &[String]) -> String {
    hashes.iter().map(|h| format!(" --hash={h}")).collect()
}

/// The requirement lines for pinned packages, hashed only when every one has hashes (pip's
/// hash-checking mode is all or nothing).
pub(crate) fn pinned_lines(packages: Vec<(String, Vec<String>)>, from: &str) -> Lines {
    let count = packages.len();
    let all_hashed = !packages.is_empty() && packages.iter().all(|(_, h)| !h.is_empty());
    let lines = packages
        .into_iter()
        .map(|(line, hashes)| match all_hashed {
            true => format!("{line}{}", hash_options(&hashes)),
            false => line,
        })
        .collect();
    let hashed = match all_hashed {
        true => "each checked against the lock's hashes",
        false => "not hash-checked: the lock does not hash every one",
    };
    Lines {
        lines,
        summary: format!(
            "{} pinned by {from} for this interpreter ({hashed}), installed without resolving \
             dependencies",
            crate::ground::logging::plural(count, "package")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_their_kind() {
        assert_eq!(kind_of("uv.lock"), Kind::UvLock);
        assert_eq!(kind_of("sub/poetry.lock"), Kind::PoetryLock);
        assert_eq!(kind_of("Pipfile.lock"), Kind::PipfileLock);
        assert_eq!(kind_of("pyproject.toml"), Kind::Pyproject);
        assert_eq!(kind_of("requirements/prod.txt"), Kind::Requirements);
    }

    #[test]
    fn hashes_are_all_or_nothing() {
        let hashed = pinned_lines(
            vec![
                ("a==1".into(), vec!["sha256:aa".into()]),
                ("b==2".into(), vec!["sha256:bb".into()]),
            ],
            "x.lock",
        );
        assert_eq!(
            hashed.lines,
            ["a==1 --hash=sha256:aa", "b==2 --hash=sha256:bb"]
        );
        let partly = pinned_lines(
            vec![
                ("a==1".into(), vec!["sha256:aa".into()]),
                ("b @ file:///b".into(), vec![]),
            ],
            "x.lock",
        );
        assert_eq!(partly.lines, ["a==1", "b @ file:///b"]);
        assert!(partly.summary.contains("not hash-checked"));
    }
}
