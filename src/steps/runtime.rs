//! The detect-runtime step: which Python the app wants, and which interpreter provides it.
//!
//! The version comes from, highest first: `--python`, the `PYTHON_VERSION` app setting (or
//! `.deployment` key), `runtime.txt`, `.python-version`, else the default interpreter. The
//! interpreter from: `--python <path>` or the `KUDUHOOK_PYTHON` setting, then the platform's
//! App Service layout, `PATH`, and pyenv. Every candidate is run before it is trusted. All of
//! this happens before anything in the target changes, so a bad version fails a deployment
//! without touching the site.

use std::path::{Path, PathBuf};

use crate::config::{DeployConfig, Origin, Setting};
use crate::errors::{DeployError, WrongVersion};
use crate::platform::{Platform, SearchLocation, version_dir_matches};
use crate::python::{self, Interpreter, PythonVersion};
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

/// Decides the Python version and finds its interpreter.
pub fn detect(config: &DeployConfig) -> Result<Runtime, DeployError> {
    let requested = requested_version(config)?;
    if let Some(request) = &requested
        && !request.value.is_supported()
    {
        return Err(DeployError::UnsupportedPython {
            version: request.value,
            origin: request.origin.clone(),
        });
    }
    if let Some(named) = &config.interpreter {
        return use_named_interpreter(named, requested);
    }

    let platform = Platform::host();
    let env = &config.env;
    let locations = match &requested {
        Some(request) => platform.interpreter_locations(
            &request.value,
            env.get("HOME").or(env.get("USERPROFILE")),
            env.get("SYSTEMDRIVE"),
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
    for location in &locations {
        for path in expand(location, config) {
            let Ok(interpreter) = python::probe(&path) else {
                continue;
            };
            let fits = match &requested {
                Some(request) => request.value.is_satisfied_by(&interpreter.version),
                None => interpreter.version.is_supported(),
            };
            if fits {
                return Ok(Runtime {
                    requested: requested.as_ref().map(|r| r.value),
                    origin: requested.map_or(Origin::Default, |r| r.origin),
                    interpreter,
                    found_via: location.label().to_string(),
                });
            }
        }
    }
    Err(DeployError::InterpreterNotFound {
        version: requested.as_ref().map(|r| r.value),
        origin: requested.map_or(Origin::Default, |r| r.origin),
        searched: locations.iter().map(|l| l.describe(platform)).collect(),
        found: all_interpreters(config)
            .iter()
            .map(|i| format!("{} (Python {})", i.path.display(), i.version))
            .collect(),
    })
}

/// The version asked for, and by whom; `None` when nothing asks.
fn requested_version(config: &DeployConfig) -> Result<Option<Setting<PythonVersion>>, DeployError> {
    if let Some(setting) = &config.python_version {
        return match python::parse_setting(&setting.value) {
            Some(version) => Ok(Some(Setting::new(version, setting.origin.clone()))),
            None => Err(DeployError::BadVersionSetting {
                origin: setting.origin.clone(),
                value: setting.value.clone(),
            }),
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
            Err(error) => return Err(DeployError::Unreadable { path, error }),
        };
        return match parse(&bytes) {
            Ok(declared) => Ok(Some(Setting::new(
                declared.version,
                Origin::File {
                    name: file,
                    line: declared.line,
                },
            ))),
            Err(bad) => Err(DeployError::BadVersionFile {
                file,
                line: bad.line,
                value: bad.value,
            }),
        };
    }
    Ok(None)
}

fn use_named_interpreter(
    named: &Setting<PathBuf>,
    requested: Option<Setting<PythonVersion>>,
) -> Result<Runtime, DeployError> {
    let interpreter =
        python::probe(&named.value).map_err(|detail| DeployError::InterpreterUnusable {
            path: named.value.clone(),
            origin: named.origin.clone(),
            detail,
        })?;
    if let Some(request) = &requested
        && !request.value.is_satisfied_by(&interpreter.version)
    {
        return Err(DeployError::InterpreterWrongVersion(Box::new(
            WrongVersion {
                path: named.value.clone(),
                origin: named.origin.clone(),
                actual: interpreter.version,
                requested: request.value,
                requested_origin: request.origin.clone(),
            },
        )));
    }
    if !interpreter.version.is_supported() {
        return Err(DeployError::UnsupportedPython {
            version: interpreter.version,
            origin: named.origin.clone(),
        });
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
