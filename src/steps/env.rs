//! The validate-env step: reuse the app's virtual environment only when it is sound for the
//! chosen Python, else rebuild it, and log every reason either way.
//!
//! An env is reused when its `pyvenv.cfg` names the selected Python, its base interpreter still
//! exists and is the selected one, its own python runs, Kudu's `azure.env.python-X.Y.txt`
//! marker (if any) agrees, and no force-rebuild asks otherwise. A rebuild sets the old env
//! aside first; the pipeline puts it back if the deployment fails, and deletes it on success.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::{DeployConfig, ForceRebuild, Setting};
use crate::env_record::{EnvRecord, now_unix};
use crate::errors::DeployError;
use crate::logging::ago;
use crate::platform::Platform;
use crate::process::{self, Runner};
use crate::python::{self, PythonVersion};
use crate::steps::Outcome;
use crate::steps::runtime::Runtime;

/// An env ready for the steps after this one.
#[derive(Debug, Clone)]
pub struct PreparedEnv {
    pub dir: PathBuf,
    /// The env's own interpreter (`env/bin/python`, `env\Scripts\python.exe`).
    pub python: PathBuf,
    pub record: EnvRecord,
}

/// What the validate-env step decided and made.
pub struct Validated {
    pub outcome: Outcome,
    /// The env later steps use; `None` in a dry run that would rebuild it.
    pub env: Option<PreparedEnv>,
    /// Where a rebuild set the previous env aside: the pipeline puts it back if the deployment
    /// fails, and removes it when it succeeds.
    pub parked: Option<PathBuf>,
}

/// The validate-env step: reuse the env when sound, else rebuild it, logging every reason.
pub fn run(
    config: &DeployConfig,
    runtime: &Runtime,
    runner: &Runner,
) -> Result<Validated, DeployError> {
    let c = config;
    let env_dir = c.env_dir();
    if c.force_rebuild.value == ForceRebuild::Always {
        warn!(
            "{} is still on: every deployment rebuilds the env from scratch. Remove it, or set \
             it to a token such as today's date to rebuild just once.",
            c.force_rebuild.origin
        );
    }
    if !c.dry_run
        && let Some(line) = recover_interrupted(&env_dir)?
    {
        info!("{line}");
    }
    let record = EnvRecord::read(&env_dir);
    let reasons = rebuild_reasons(
        &env_dir,
        c.platform,
        runtime,
        &c.force_rebuild,
        record.as_ref(),
    );
    let token = match &c.force_rebuild.value {
        ForceRebuild::Token(token) => Some(token.clone()),
        _ => None,
    };
    if reasons.is_empty() {
        let record = match record {
            Some(record) => record,
            None => adopt(&env_dir, runtime, token, c.dry_run)?,
        };
        let outcome = Outcome::Done(format!(
            "Reusing env {}: Python {} as selected, base interpreter present, its python runs \
             (built {}: {})",
            env_dir.display(),
            record.python,
            ago(record.created_unix, now_unix()),
            record.reason
        ));
        let env = PreparedEnv {
            python: env_python(&env_dir, c.platform),
            dir: env_dir,
            record,
        };
        return Ok(Validated {
            outcome,
            env: Some(env),
            parked: None,
        });
    }
    let reason = reasons.join("; ");
    if c.dry_run {
        return Ok(Validated {
            outcome: Outcome::Done(format!("Would rebuild the env: {reason}")),
            env: None,
            parked: None,
        });
    }
    info!("Rebuilding env: {reason}");
    let new = NewEnv {
        dir: &env_dir,
        platform: c.platform,
        runtime,
        reason,
        rebuild_token: token,
    };
    let (env, parked) = rebuild(new, runner)?;
    Ok(Validated {
        outcome: Outcome::Done(format!(
            "Built a new env {} with Python {}",
            env_dir.display(),
            runtime.interpreter.version
        )),
        env: Some(env),
        parked,
    })
}

/// Gives a sound env that has no record (made by deploy.cmd, say) one, so that its installs
/// can be fingerprinted from now on.
fn adopt(
    env_dir: &Path,
    runtime: &Runtime,
    token: Option<String>,
    dry_run: bool,
) -> Result<EnvRecord, DeployError> {
    let record = EnvRecord {
        python: runtime.interpreter.version.to_string(),
        interpreter: runtime.interpreter.path.clone(),
        created_unix: now_unix(),
        reason: "adopted an existing env (made before kuduhook)".into(),
        rebuild_token: token,
        install: None,
    };
    if !dry_run {
        record
            .write(env_dir)
            .map_err(|e| DeployError::io("write the env record in", env_dir, e))?;
    }
    Ok(record)
}

/// Where a rebuild sets the previous env aside until the deployment succeeds.
pub fn parked_dir(env_dir: &Path) -> PathBuf {
    let name = env_dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    env_dir.with_file_name(format!("{name}.kuduhook-previous"))
}

/// Kudu's marker file for an env built for `version` (`azure.env.python-3.6.txt`).
pub fn kudu_marker(version: &PythonVersion) -> String {
    format!("azure.env.python-{}.txt", version.minor_version())
}

/// The env's interpreter on `platform`.
pub fn env_python(env_dir: &Path, platform: Platform) -> PathBuf {
    platform
        .env_python()
        .iter()
        .fold(env_dir.to_path_buf(), |p, s| p.join(s))
}

/// What `pyvenv.cfg` says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PyvenvCfg {
    pub home: Option<PathBuf>,
    pub version: Option<PythonVersion>,
    pub executable: Option<PathBuf>,
}

impl PyvenvCfg {
    pub fn parse(text: &str) -> PyvenvCfg {
        let mut cfg = PyvenvCfg::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "home" => cfg.home = Some(PathBuf::from(value)),
                "executable" => cfg.executable = Some(PathBuf::from(value)),
                // `version` (venv) or `version_info` (virtualenv: 3.8.10.final.0)
                "version" | "version_info" if cfg.version.is_none() => {
                    let numbers: Vec<&str> = value.split('.').take(3).collect();
                    cfg.version = PythonVersion::parse(&numbers.join("."));
                }
                _ => {}
            }
        }
        cfg
    }
}

/// Every reason the env at `env_dir` cannot be reused for `runtime`; empty when it can.
pub fn rebuild_reasons(
    env_dir: &Path,
    platform: Platform,
    runtime: &Runtime,
    force: &Setting<ForceRebuild>,
    record: Option<&EnvRecord>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    match &force.value {
        ForceRebuild::Off => {}
        ForceRebuild::Always => reasons.push(format!("forced by {}", force.origin)),
        ForceRebuild::Token(token) => {
            let built_for = record.and_then(|r| r.rebuild_token.as_deref());
            if built_for != Some(token.as_str()) && env_dir.exists() {
                reasons.push(format!(
                    "{} changed to {token:?} (the env was built for {})",
                    force.origin,
                    built_for.map_or("no token".to_string(), |t| format!("{t:?}"))
                ));
            }
        }
    }
    if !env_dir.is_dir() {
        reasons.push(format!("no env at {} yet", env_dir.display()));
        return reasons;
    }
    let wanted = runtime.interpreter.version;
    let Ok(text) = std::fs::read_to_string(env_dir.join("pyvenv.cfg")) else {
        reasons.push(format!(
            "{} has no pyvenv.cfg: it is not a virtual environment kuduhook can check",
            env_dir.display()
        ));
        return reasons;
    };
    let cfg = PyvenvCfg::parse(&text);
    match cfg.version {
        Some(have) if have.minor_version() != wanted.minor_version() => {
            reasons.push(format!("Python changed {have} -> {wanted}"))
        }
        Some(have) if runtime.requested.is_some_and(|r| r.patch.is_some()) && have != wanted => {
            reasons.push(format!("Python changed {have} -> {wanted}"))
        }
        Some(_) => {}
        None => reasons.push("pyvenv.cfg does not say which Python built the env".into()),
    }
    match (&cfg.executable, &cfg.home) {
        (Some(exe), _) if !exe.is_file() => {
            reasons.push(format!("base interpreter {} missing", exe.display()))
        }
        (None, Some(home)) if !home.is_dir() => reasons.push(format!(
            "base interpreter folder {} missing",
            home.display()
        )),
        (None, None) => reasons.push("pyvenv.cfg does not name a base interpreter".into()),
        (exe, home) => {
            let selected = &runtime.interpreter.path;
            let same = match exe {
                Some(exe) => same_file(exe, selected),
                None => home
                    .as_ref()
                    .zip(selected.parent())
                    .is_some_and(|(h, s)| same_file(h, s)),
            };
            if !same {
                let was = exe
                    .as_ref()
                    .or(home.as_ref())
                    .map(|p| p.display().to_string());
                reasons.push(format!(
                    "interpreter changed {} -> {}",
                    was.unwrap_or_default(),
                    selected.display()
                ));
            }
        }
    }
    if let Some(other) = kudu_markers(env_dir)
        .into_iter()
        .find(|m| *m != kudu_marker(&wanted))
    {
        reasons.push(format!("Kudu's marker {other} is for another Python"));
    }
    if reasons.is_empty() {
        // Only worth running when everything else holds.
        match python::probe(&env_python(env_dir, platform)) {
            Ok(own) if own.version.minor_version() == wanted.minor_version() => {}
            Ok(own) => reasons.push(format!("the env's python is {}", own.version)),
            Err(detail) => reasons.push(format!("the env's python does not run: {detail}")),
        }
    }
    reasons
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn kudu_markers(env_dir: &Path) -> Vec<String> {
    std::fs::read_dir(env_dir)
        .map(|read| {
            read.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("azure.env.") && n.ends_with(".txt"))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts back an env that an interrupted deployment set aside, or removes it when the rebuild
/// had finished. Returns a line for the log when it did something.
pub fn recover_interrupted(env_dir: &Path) -> Result<Option<String>, DeployError> {
    let parked = parked_dir(env_dir);
    if !parked.exists() {
        return Ok(None);
    }
    if env_dir.is_dir() && EnvRecord::read(env_dir).is_some() {
        remove_dir(&parked)?;
        return Ok(Some(format!(
            "Removed {}, left by an interrupted deployment",
            parked.display()
        )));
    }
    put_back(&parked, env_dir)?;
    Ok(Some(format!(
        "Restored the previous env from {}, set aside by an interrupted deployment",
        parked.display()
    )))
}

/// Replaces whatever is at `env_dir` (a half-built or rejected env) with the env set aside at
/// `parked`.
pub fn put_back(parked: &Path, env_dir: &Path) -> Result<(), DeployError> {
    remove_dir(env_dir)?;
    std::fs::rename(parked, env_dir)
        .map_err(|e| DeployError::io("restore the previous env from", parked, e))
}

/// What a new env is built from, and why.
pub struct NewEnv<'a> {
    pub dir: &'a Path,
    pub platform: Platform,
    pub runtime: &'a Runtime,
    /// Why it is (re)built, for the log and the env record.
    pub reason: String,
    /// The force-rebuild token in force, remembered so it rebuilds only once.
    pub rebuild_token: Option<String>,
}

/// Sets the current env aside (if any) and builds a new one. Returns the new env and where the
/// old one was put.
pub fn rebuild(
    new: NewEnv,
    runner: &Runner,
) -> Result<(PreparedEnv, Option<PathBuf>), DeployError> {
    let env_dir = new.dir;
    let parked = if env_dir.exists() {
        let parked = parked_dir(env_dir);
        std::fs::rename(env_dir, &parked)
            .map_err(|e| DeployError::io("set aside the previous env", env_dir, e))?;
        info!(
            "Set the previous env aside at {} until this deployment succeeds",
            parked.display()
        );
        Some(parked)
    } else {
        None
    };
    let result = create(new, runner);
    if result.is_err()
        && let Some(parked) = &parked
        && put_back(parked, env_dir).is_ok()
    {
        info!("Put the previous env back");
    }
    result.map(|env| (env, parked))
}

fn create(new: NewEnv, runner: &Runner) -> Result<PreparedEnv, DeployError> {
    let (env_dir, runtime) = (new.dir, new.runtime);
    let interpreter = &runtime.interpreter.path;
    info!(
        "Creating env {} with Python {}",
        env_dir.display(),
        runtime.interpreter.version
    );
    let venv = |copies: bool| -> Result<process::Finished, DeployError> {
        let mut cmd = runner.command(interpreter);
        cmd.args(["-m", "venv"]);
        if copies {
            cmd.arg("--copies");
        }
        cmd.arg(env_dir);
        runner.run(&mut cmd, "python -m venv")
    };
    let first = venv(false)?;
    if !first.status.success() {
        // App Service Linux keeps the site on an SMB share that may refuse symlinks (EOPNOTSUPP):
        // Oryx builds its envs with --copies for this reason.
        info!(
            "python -m venv failed ({}); trying again with --copies, which needs no symlinks",
            first.detail()
        );
        let _ = remove_dir(env_dir);
        let second = venv(true)?;
        if !second.status.success() {
            let _ = remove_dir(env_dir);
            return Err(DeployError::EnvCreateFailed {
                interpreter: interpreter.clone(),
                env: env_dir.to_path_buf(),
                detail: second.detail(),
            });
        }
        info!("Created the env with --copies");
    }
    let marker = env_dir.join(kudu_marker(&runtime.interpreter.version));
    std::fs::write(&marker, b"Created by kuduhook\n")
        .map_err(|e| DeployError::io("write Kudu's env marker", &marker, e))?;
    let record = EnvRecord {
        python: runtime.interpreter.version.to_string(),
        interpreter: interpreter.clone(),
        created_unix: now_unix(),
        reason: new.reason,
        rebuild_token: new.rebuild_token,
        install: None,
    };
    record
        .write(env_dir)
        .map_err(|e| DeployError::io("write the env record in", env_dir, e))?;
    Ok(PreparedEnv {
        dir: env_dir.to_path_buf(),
        python: env_python(env_dir, new.platform),
        record,
    })
}

/// Removes a folder tree; a missing one is fine.
pub fn remove_dir(dir: &Path) -> Result<(), DeployError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DeployError::io("delete", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_venv_and_virtualenv_configs() {
        let venv = PyvenvCfg::parse(
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n\
             executable = /usr/bin/python3.11\n",
        );
        assert_eq!(venv.home, Some(PathBuf::from("/usr/bin")));
        assert_eq!(venv.version, PythonVersion::parse("3.11.7"));
        assert_eq!(venv.executable, Some(PathBuf::from("/usr/bin/python3.11")));
        let virtualenv = PyvenvCfg::parse("home = /x\nversion_info = 3.8.10.final.0\n");
        assert_eq!(virtualenv.version, PythonVersion::parse("3.8.10"));
    }

    #[test]
    fn every_reason_against_an_env_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir(&env).unwrap();
        std::fs::write(
            env.join("pyvenv.cfg"),
            "home = /gone/bin\nversion = 3.11.7\nexecutable = /gone/bin/python3.11\n",
        )
        .unwrap();
        std::fs::write(env.join("azure.env.python-3.6.txt"), "").unwrap();
        let runtime = Runtime {
            requested: PythonVersion::parse("3.12"),
            origin: crate::config::Origin::Default,
            interpreter: python::Interpreter {
                path: PathBuf::from("/usr/bin/python3.12"),
                version: PythonVersion::parse("3.12.1").unwrap(),
            },
            found_via: "PATH".into(),
        };
        let force = Setting::new(
            ForceRebuild::Token("t2".into()),
            crate::config::Origin::AppSetting("KUDUHOOK_FORCE_ENV_REBUILD".into()),
        );
        let reasons = rebuild_reasons(&env, Platform::Linux, &runtime, &force, None);
        assert_eq!(
            reasons,
            [
                "app setting KUDUHOOK_FORCE_ENV_REBUILD changed to \"t2\" (the env was built for no token)",
                "Python changed 3.11.7 -> 3.12.1",
                "base interpreter /gone/bin/python3.11 missing",
                "Kudu's marker azure.env.python-3.6.txt is for another Python",
            ]
        );
    }

    #[test]
    fn layout_names_match_both_platforms_and_kudu() {
        let v = PythonVersion::parse("3.6.4").unwrap();
        assert_eq!(kudu_marker(&v), "azure.env.python-3.6.txt");
        assert_eq!(
            env_python(Path::new("env"), Platform::Linux),
            PathBuf::from("env/bin/python")
        );
        assert_eq!(
            env_python(Path::new("env"), Platform::Windows),
            Path::new("env").join("Scripts").join("python.exe")
        );
        assert_eq!(
            parked_dir(Path::new("/site/wwwroot/env")),
            PathBuf::from("/site/wwwroot/env.kuduhook-previous")
        );
    }
}
