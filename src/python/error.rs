//! The app's Python: the version it asks for, the interpreter found for it, and where its dependencies come from.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`PythonError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};
use crate::python::{MIN_SUPPORTED, PythonVersion};
use crate::settings::Origin;

/// The app's Python: the version it asks for, the interpreter found for it, and where its dependencies come from.
#[derive(Debug)]
pub enum PythonError {
    /// A version file (`runtime.txt`, `.python-version`) that does not say a version.
    BadVersionFile {
        file: &'static str,
        line: usize,
        value: String,
    },
    /// A version setting (`--python`, `PYTHON_VERSION`) that does not say a version.
    BadVersionSetting { origin: Origin, value: String },
    /// A well-formed version kuduhook cannot build an env for.
    UnsupportedPython {
        version: PythonVersion,
        origin: Origin,
    },
    /// The app asks for another Python than the one App Service Linux starts it with.
    SiteRunsOtherPython {
        site: PythonVersion,
        requested: PythonVersion,
        origin: Origin,
    },
    /// No interpreter of the requested version was found.
    InterpreterNotFound {
        version: Option<PythonVersion>,
        origin: Origin,
        searched: Vec<String>,
        found: Vec<String>,
    },
    /// An interpreter named by a setting does not run.
    InterpreterUnusable {
        path: PathBuf,
        origin: Origin,
        detail: String,
    },
    /// An interpreter named by a setting is not the requested version.
    InterpreterWrongVersion(Box<WrongVersion>),
    /// KUDUHOOK_DEPENDENCIES names a file the app does not have.
    DependencySourceMissing { file: String, origin: Origin },
    /// More than one dependency source, none named.
    DependencySourcesAmbiguous { found: Vec<String> },
    /// uv.lock or poetry.lock without the pyproject.toml it locks.
    LockWithoutProject { lock: String },
    /// A project whose tool needs a lock (Poetry, pipenv), without it.
    LockMissing {
        project: String,
        lock: String,
        command: String,
    },
    /// A lock made for other requirements than the project's now.
    LockOutdated {
        lock: String,
        project: String,
        command: String,
    },
    /// A dependency source that cannot be read or used.
    DependenciesUnknown { file: String, detail: String },
    /// The project's (or lock's) Python constraint excludes the selected interpreter.
    PythonNotAllowed {
        file: String,
        requires: String,
        version: String,
    },
    /// A selected extra or dependency group the project does not declare.
    UnknownDependencyGroup {
        group: String,
        file: String,
        available: Vec<String>,
    },
}

impl Failure for PythonError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            PythonError::BadVersionFile { file, line, value } => {
                let runtime_txt = *file == "runtime.txt";
                let syntax = if runtime_txt {
                    "one line python-X.Y or python-X.Y.Z, for example python-3.12"
                } else {
                    "one line X.Y or X.Y.Z, for example 3.12 (# comments allowed)"
                };
                let said = if value.is_empty() {
                    "no version".to_string()
                } else {
                    format!("{value:?}")
                };
                let fix = match version_in(value) {
                    Some(v) if runtime_txt => format!("write python-{v} into {file}"),
                    Some(v) => format!("write {v} into {file}"),
                    None => format!("write {syntax} into {file}"),
                };
                (
                    format!("{file} line {line} says {said}, which is not a Python version"),
                    format!("{file} must hold {syntax}"),
                    format!("{fix}, or delete the file to use the default interpreter"),
                )
            }
            PythonError::BadVersionSetting { origin, value } => {
                let or_path = if *origin == Origin::Flag("--python") {
                    " or an interpreter's path (with a / in it)"
                } else {
                    ""
                };
                let fix = match version_in(value) {
                    Some(v) => format!("set {origin} to {v}{or_path}, or remove it"),
                    None => {
                        format!("set {origin} to a version such as 3.12{or_path}, or remove it")
                    }
                };
                (
                    format!("{origin} is {value:?}, which is not a Python version"),
                    "a version is written X.Y or X.Y.Z, for example 3.12".to_string(),
                    fix,
                )
            }
            PythonError::UnsupportedPython { version, origin } => (
                format!("Python {version} (from {origin}) is not supported"),
                format!(
                    "kuduhook builds envs with venv and pip, which need Python {}.{} or newer",
                    MIN_SUPPORTED.0, MIN_SUPPORTED.1
                ),
                format!(
                    "ask for Python {}.{} or newer in {origin}",
                    MIN_SUPPORTED.0, MIN_SUPPORTED.1
                ),
            ),
            PythonError::SiteRunsOtherPython {
                site,
                requested,
                origin,
            } => {
                let minor = site.minor_version();
                let agree = match origin {
                    Origin::File { name, .. } if *name == "runtime.txt" => {
                        format!("make runtime.txt say python-{minor}")
                    }
                    Origin::File { name, .. } => format!("make {name} say {minor}"),
                    other => format!("set {other} to {minor}, or remove it"),
                };
                (
                    format!(
                        "{origin} asks for Python {requested}, but this site runs Python {site}"
                    ),
                    format!(
                        "App Service Linux starts the app with its stack's Python ({site}, which \
                         Kudu passes as FRAMEWORK_VERSION) and the env's packages: an env built \
                         for {requested} would not import there"
                    ),
                    format!(
                        "make the two agree: set the site's stack to Python {} (portal: \
                         Configuration > General settings; or az webapp config set \
                         --linux-fx-version \"PYTHON|{}\"), or {agree}",
                        requested.minor_version(),
                        requested.minor_version()
                    ),
                )
            }
            PythonError::InterpreterNotFound {
                version,
                origin,
                searched,
                found,
            } => {
                let wanted = match version {
                    Some(v) => format!("Python {v} (from {origin})"),
                    None => "a default Python interpreter".to_string(),
                };
                let found = if found.is_empty() {
                    "no Python interpreters at all".to_string()
                } else {
                    format!("these:\n       {}", found.join("\n       "))
                };
                (
                    format!("no interpreter for {wanted} was found"),
                    format!("searched {}\n  found {found}", searched.join(", ")),
                    "ask for one of the versions found, or set the app setting KUDUHOOK_PYTHON \
                     to the interpreter's full path"
                        .to_string(),
                )
            }
            PythonError::InterpreterUnusable {
                path,
                origin,
                detail,
            } => (
                format!("the interpreter {} does not run", path.display()),
                format!("it was named by {origin}, and running it failed: {detail}"),
                format!("point {origin} at a working python executable, or remove it"),
            ),
            PythonError::InterpreterWrongVersion(wrong) => {
                let WrongVersion {
                    path,
                    origin,
                    actual,
                    requested,
                    requested_origin,
                } = wrong.as_ref();
                (
                    format!(
                        "{} (from {origin}) is Python {actual}, but {requested_origin} asks for {requested}",
                        path.display()
                    ),
                    "kuduhook will not build an env with a different Python than the one asked for"
                        .to_string(),
                    format!(
                        "point {origin} at a Python {requested} interpreter, or change {requested_origin}"
                    ),
                )
            }
            PythonError::DependencySourceMissing { file, origin } => (
                format!("the dependency source {file} named by {origin} is not in the app"),
                "kuduhook installs the app's dependencies from the file that setting names".into(),
                format!("commit {file}, or point {origin} at the app's requirements file or lock"),
            ),
            PythonError::DependencySourcesAmbiguous { found } => (
                format!("the app has more than one dependency source: {}", found.join(", ")),
                "kuduhook installs from one of them and cannot tell which one the app is meant \
                 to run with (a requirements.txt exported from a lock may have drifted from it)"
                    .into(),
                format!(
                    "remove the ones the app does not use, or name the one to install with the \
                     app setting KUDUHOOK_DEPENDENCIES (for example KUDUHOOK_DEPENDENCIES={})",
                    found.last().map(String::as_str).unwrap_or("requirements.txt")
                ),
            ),
            PythonError::LockWithoutProject { lock } => (
                format!("the app has {lock} but no pyproject.toml"),
                format!("{lock} locks the dependencies of the project pyproject.toml declares"),
                "commit pyproject.toml beside the lock".into(),
            ),
            PythonError::LockMissing {
                project,
                lock,
                command,
            } => (
                format!("the app's {project} has no {lock}"),
                format!(
                    "the versions to install are those {lock} pins; without it, what would run \
                     is unknown"
                ),
                format!("run `{command}` and commit {lock}"),
            ),
            PythonError::LockOutdated {
                lock,
                project,
                command,
            } => (
                format!("{lock} does not match {project}"),
                "the lock was made for other requirements than the project declares now: \
                 installing it would not give what the project asks for"
                    .into(),
                format!("run `{command}` and commit the updated lock"),
            ),
            PythonError::DependenciesUnknown { file, detail } => (
                format!("the app's dependencies cannot be read from {file}: {detail}"),
                "kuduhook deploys an app only with the dependencies it declares, never without \
                 them"
                    .into(),
                format!("fix {file} (the tool that made it can check it), or deploy a requirements.txt"),
            ),
            PythonError::PythonNotAllowed {
                file,
                requires,
                version,
            } => (
                format!("{file} requires Python {requires}, and the selected Python is {version}"),
                "the project says it does not run on this Python".into(),
                "select a Python it allows (the site's stack, runtime.txt, .python-version or \
                 PYTHON_VERSION), or change the project's Python constraint"
                    .into(),
            ),
            PythonError::UnknownDependencyGroup {
                group,
                file,
                available,
            } => (
                format!("{file} declares no extra or dependency group {group:?}"),
                "KUDUHOOK_DEPENDENCY_GROUPS (or steps.json's \"groups\") selects extras and groups \
                 by the names the project declares"
                    .into(),
                match available.is_empty() {
                    true => format!("remove {group:?} from the selection: {file} declares none"),
                    false => format!("select among: {}", available.join(", ")),
                },
            ),
        };
        Explanation { what, why, fix }
    }
}

/// The facts of [`PythonError::InterpreterWrongVersion`].
#[derive(Debug)]
pub struct WrongVersion {
    pub path: PathBuf,
    pub origin: Origin,
    pub actual: PythonVersion,
    pub requested: PythonVersion,
    pub requested_origin: Origin,
}

/// The version a malformed declaration most likely meant: `python3.12` means 3.12.
fn version_in(text: &str) -> Option<PythonVersion> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let candidate: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    PythonVersion::parse(candidate.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground::error::DeployError;

    #[test]
    fn every_error_says_what_why_and_fix() {
        let err = PythonError::BadVersionFile {
            file: "runtime.txt",
            line: 1,
            value: "python3.12".into(),
        };
        let text = DeployError::from(err).to_string();
        assert!(
            text.starts_with("runtime.txt line 1 says \"python3.12\""),
            "{text}"
        );
        assert!(
            text.contains("why: runtime.txt must hold one line python-X.Y"),
            "{text}"
        );
        assert!(
            text.contains("fix: write python-3.12 into runtime.txt, or delete the file"),
            "{text}"
        );
        let vague = PythonError::BadVersionFile {
            file: ".python-version",
            line: 2,
            value: "latest".into(),
        };
        assert!(
            DeployError::from(vague)
                .to_string()
                .contains("fix: write one line X.Y or X.Y.Z")
        );
    }
}
