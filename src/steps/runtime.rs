//! The detect-runtime step: which Python the app wants, and which interpreter provides it.
//!
//! The version comes from, highest first: `--python`, the `PYTHON_VERSION` app setting (or
//! `.deployment` key), `runtime.txt`, `.python-version`, then on App Service Linux the site's
//! stack (`FRAMEWORK_VERSION`), else the default interpreter. On App Service Linux a request
//! for another X.Y than the stack's fails: the platform starts the app with the stack's Python. The
//! interpreter from: `--python <path>` or the `KUDUHOOK_PYTHON` setting, then the platform's
//! App Service layout (and Oryx's on-demand installs, asking `oryx prep` for a missing version),
//! `PATH`, and pyenv. Every candidate is run before it is trusted. All of
//! this happens before anything in the target changes, so a bad version fails a deployment
//! without touching the site.

use std::path::{Path, PathBuf};

use crate::config::DeployConfig;
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::platform::{SearchLocation, interpreter_locations, version_dir_matches};
use crate::process::Runner;
use crate::python::error::PythonError;
use crate::python::error::WrongVersion;
use crate::python::{self, Interpreter, PythonVersion};
use crate::settings::Platform;
use crate::settings::{Origin, Setting};
use crate::steps::Outcome;

/// The Python a deployment uses.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The version asked for; `None` when nothing asked and the default interpreter was taken.
    pub requested: Option<PythonVersion>,
    /// Where the request (or the interpreter, when none) came from.
    pub origin: Origin,
    pub interpreter: Interpreter,
    /// How the interpreter was found, for the log.
    pub found_via: String,
}

impl Runtime {
    /// The log lines that explain the decision.
    pub fn describe(&self) -> Vec<String> {
        let asked = match &self.requested {
            Some(v) => format!("Python {v} requested by {}", self.origin),
            None => "No Python version requested (no --python, PYTHON_VERSION, runtime.txt or \
                     .python-version): using the default interpreter"
                .to_string(),
        };
        vec![
            asked,
            format!(
                "Interpreter: {} (Python {}, found via {})",
                self.interpreter.path.display(),
                self.interpreter.version,
                self.found_via
            ),
        ]
    }
}

/// The detect-runtime step. The work happened before anything changed ([`detect`], in the
/// pipeline's preflight); the step reports it where the user looks for it.
pub fn run(runtime: &Runtime) -> Outcome {
    for line in runtime.describe() {
        tracing::info!("{line}");
    }
    Outcome::Done(format!("Using Python {}", runtime.interpreter.version))
}

/// Decides the Python version and finds its interpreter. On App Service Linux the site's stack
/// (`FRAMEWORK_VERSION`) is the Python that will start the app: it is the version when nothing
/// else asks, and a request for another one fails here, before anything changes.
pub fn detect(config: &DeployConfig, runner: &Runner) -> Result<Runtime, DeployError> {
    let requested = requested_version(config)?;
    let requested = match (requested, site_stack(config)?) {
        (None, stack) => stack,
        (Some(request), Some(stack))
            if request.value.minor_version() != stack.value.minor_version() =>
        {
            return Err(PythonError::SiteRunsOtherPython {
                site: stack.value,
                requested: request.value,
                origin: request.origin,
            }
            .into());
        }
        (request, _) => request,
    };
    if let Some(request) = &requested
        && !request.value.is_supported()
    {
        return Err(PythonError::UnsupportedPython {
            version: request.value,
            origin: request.origin.clone(),
        }
        .into());
    }
    if let Some(named) = &config.interpreter {
        return use_named_interpreter(named, requested);
    }

    let platform = Platform::host();
    let env = &config.env;
    let locations = match &requested {
        Some(request) => interpreter_locations(
            platform,
            &request.value,
            env.get("HOME").or(env.get("USERPROFILE")),
            env.get("SYSTEMDRIVE"),
            env.get(ORYX_INSTALL_ROOT_VAR),
        ),
        None => platform
            .default_interpreter_names()
            .iter()
            .map(|name| SearchLocation::OnPath {
                name: name.to_string(),
                label: "PATH",
            })
            .collect(),
    };
    let wanted = requested.as_ref().map(|r| r.value);
    let mut found = search(&locations, wanted.as_ref(), config);
    if found.is_none()
        && let Some(version) = &wanted
        && platform == Platform::Linux
        && let Some(oryx) = on_path("oryx", config)
    {
        found = install_with_oryx(&oryx, version, runner)
            .then(|| search(&locations, wanted.as_ref(), config))
            .flatten()
            .map(|(interpreter, via)| (interpreter, format!("{via}, installed now by oryx prep")));
    }
    if let Some((interpreter, found_via)) = found {
        return Ok(Runtime {
            requested: wanted,
            origin: requested.map_or(Origin::Default, |r| r.origin),
            interpreter,
            found_via,
        });
    }
    Err(PythonError::InterpreterNotFound {
        version: requested.as_ref().map(|r| r.value),
        origin: requested.map_or(Origin::Default, |r| r.origin),
        searched: locations.iter().map(|l| l.describe(platform)).collect(),
        found: all_interpreters(config)
            .iter()
            .map(|i| format!("{} (Python {})", i.path.display(), i.version))
            .collect(),
    }
    .into())
}

/// The variable that moves Oryx's on-demand installs (default [`ORYX_INSTALL_ROOT`]).
const ORYX_INSTALL_ROOT_VAR: &str = "DYNAMIC_INSTALL_ROOT_DIR";

/// The first interpreter in `locations` that runs and fits `wanted`, and where it was found.
fn search(
    locations: &[SearchLocation],
    wanted: Option<&PythonVersion>,
    config: &DeployConfig,
) -> Option<(Interpreter, String)> {
    locations.iter().find_map(|location| {
        expand(location, config).into_iter().find_map(|path| {
            let interpreter = python::probe(&path).ok()?;
            let fits = match wanted {
                Some(version) => version.is_satisfied_by(&interpreter.version),
                None => interpreter.version.is_supported(),
            };
            fits.then(|| (interpreter, location.label().to_string()))
        })
    })
}

/// Asks Oryx (in Kudu's Linux container) to install `version`, as the platform does for a
/// version its image does not ship. Whether it says it did.
fn install_with_oryx(oryx: &Path, version: &PythonVersion, runner: &Runner) -> bool {
    let spec = format!("python={version}");
    tracing::info!(
        "No interpreter for Python {version} is installed here: asking Oryx to install it \
         (oryx prep --skip-detection --platforms-and-versions {spec})"
    );
    let mut cmd = runner.command(oryx);
    cmd.args([
        "prep",
        "--skip-detection",
        "--platforms-and-versions",
        &spec,
    ]);
    match runner.run(&mut cmd, "oryx prep") {
        Ok(finished) if finished.status.success() => true,
        Ok(finished) => {
            tracing::warn!("oryx prep failed: {}", finished.detail());
            false
        }
        Err(e) => {
            tracing::warn!("oryx prep did not run: {}", e.explain().what);
            false
        }
    }
}

/// A program on the deployment's `PATH`.
fn on_path(name: &str, config: &DeployConfig) -> Option<PathBuf> {
    let location = SearchLocation::OnPath {
        name: name.to_string(),
        label: "PATH",
    };
    expand(&location, config).into_iter().next()
}

/// The Python the site's stack runs, on App Service Linux: Kudu exports `FRAMEWORK=PYTHON` and
/// `FRAMEWORK_VERSION=3.11` to deployment commands. `None` elsewhere.
fn site_stack(config: &DeployConfig) -> Result<Option<Setting<PythonVersion>>, DeployError> {
    let env = &config.env;
    let is_python = env
        .get("FRAMEWORK")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("python"));
    let version = env.get("FRAMEWORK_VERSION").map(str::trim).unwrap_or("");
    if !is_python || version.is_empty() {
        return Ok(None);
    }
    match python::parse_setting(version) {
        Some(parsed) => Ok(Some(Setting::new(parsed, Origin::SiteStack))),
        None => Err(PythonError::BadVersionSetting {
            origin: Origin::SiteStack,
            value: version.to_string(),
        }
        .into()),
    }
}

/// The version asked for, and by whom; `None` when nothing asks.
fn requested_version(config: &DeployConfig) -> Result<Option<Setting<PythonVersion>>, DeployError> {
    if let Some(setting) = &config.python_version {
        return match python::parse_setting(&setting.value) {
            Some(version) => Ok(Some(Setting::new(version, setting.origin.clone()))),
            None => Err(PythonError::BadVersionSetting {
                origin: setting.origin.clone(),
                value: setting.value.clone(),
            }
            .into()),
        };
    }
    type Parser = fn(&[u8]) -> Result<python::Declared, python::DeclarationError>;
    let files: [(&'static str, Parser); 2] = [
        ("runtime.txt", python::parse_runtime_txt),
        (".python-version", python::parse_python_version_file),
    ];
    for (file, parse) in files {
        let path = config.source.value.join(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(SystemError::Unreadable { path, error }.into()),
        };
        return match parse(&bytes) {
            Ok(declared) => Ok(Some(Setting::new(
                declared.version,
                Origin::File {
                    name: file,
                    line: declared.line,
                },
            ))),
            Err(bad) => Err(PythonError::BadVersionFile {
                file,
                line: bad.line,
                value: bad.value,
            }
            .into()),
        };
    }
    Ok(None)
}

fn use_named_interpreter(
    named: &Setting<PathBuf>,
    requested: Option<Setting<PythonVersion>>,
) -> Result<Runtime, DeployError> {
    let interpreter =
        python::probe(&named.value).map_err(|detail| PythonError::InterpreterUnusable {
            path: named.value.clone(),
            origin: named.origin.clone(),
            detail,
        })?;
    if let Some(request) = &requested
        && !request.value.is_satisfied_by(&interpreter.version)
    {
        return Err(PythonError::InterpreterWrongVersion(Box::new(WrongVersion {
            path: named.value.clone(),
            origin: named.origin.clone(),
            actual: interpreter.version,
            requested: request.value,
            requested_origin: request.origin.clone(),
        }))
        .into());
    }
    if !interpreter.version.is_supported() {
        return Err(PythonError::UnsupportedPython {
            version: interpreter.version,
            origin: named.origin.clone(),
        }
        .into());
    }
    Ok(Runtime {
        requested: requested.as_ref().map(|r| r.value),
        origin: requested.map_or_else(|| named.origin.clone(), |r| r.origin),
        interpreter,
        found_via: named.origin.to_string(),
    })
}

/// The existing files a search location stands for on this host, best first.
fn expand(location: &SearchLocation, config: &DeployConfig) -> Vec<PathBuf> {
    match location {
        SearchLocation::Exact { path, .. } => {
            let path = PathBuf::from(path);
            if path.is_file() { vec![path] } else { vec![] }
        }
        SearchLocation::VersionDirs {
            parent,
            version_prefix,
            inside,
            ..
        } => {
            let Ok(read) = std::fs::read_dir(parent) else {
                return vec![];
            };
            let mut names: Vec<String> = read
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| version_dir_matches(name, version_prefix))
                .collect();
            // Newest first: 3.11.10 before 3.11.9.
            names.sort_by_key(|name| std::cmp::Reverse(numbers_in(name)));
            names
                .into_iter()
                .map(|name| {
                    inside
                        .iter()
                        .fold(Path::new(parent).join(name), |p, s| p.join(s))
                })
                .filter(|p| p.is_file())
                .collect()
        }
        SearchLocation::OnPath { name, .. } => config
            .env
            .search_path(Platform::host())
            .into_iter()
            .map(|dir| dir.join(name))
            .filter(|p| p.is_file())
            .collect(),
    }
}

fn numbers_in(name: &str) -> Vec<u32> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Every interpreter this host has in the usual places, for "found: …" in errors.
fn all_interpreters(config: &DeployConfig) -> Vec<Interpreter> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    for minor in 0..=20 {
        let location = SearchLocation::OnPath {
            name: format!("python3.{minor}"),
            label: "PATH",
        };
        candidates.extend(expand(&location, config));
    }
    for name in Platform::host().default_interpreter_names() {
        let location = SearchLocation::OnPath {
            name: name.to_string(),
            label: "PATH",
        };
        candidates.extend(expand(&location, config));
    }
    let home = config.env.get("HOME").unwrap_or("");
    for parent in [format!("{home}/.pyenv/versions"), "/opt/python".to_string()] {
        if let Ok(read) = std::fs::read_dir(&parent) {
            candidates.extend(
                read.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin/python3")),
            );
        }
    }
    // The same binary is often reachable by several names (python3, python3.11, /bin vs
    // /usr/bin): list each real file once.
    let mut seen = std::collections::HashSet::new();
    let mut found: Vec<Interpreter> = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        let Ok(real) = path.canonicalize() else {
            continue;
        };
        if !seen.insert(real.clone()) {
            continue;
        }
        let Ok(interpreter) = python::probe(&path) else {
            continue;
        };
        // A shim runs another file: count that one too.
        let executable = interpreter
            .path
            .canonicalize()
            .unwrap_or_else(|_| real.clone());
        if executable == real || seen.insert(executable) {
            found.push(interpreter);
        }
    }
    found.sort_by_key(|i| i.version);
    found
}
