//! The pip-install step: install the app's requirements into its env, or skip when nothing
//! changed.
//!
//! The skip decision rests on a fingerprint of every requirement file (the main one and each
//! file it pulls in with `-r` or `-c`, recursively), the installer and its arguments, and the
//! env's identity. It is recorded in the env only after a successful install, so a failed or
//! interrupted install is retried by the next deployment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use tracing::info;

use crate::config::DeployConfig;
use crate::env_record::{EnvRecord, InstallRecord, now_unix};
use crate::errors::DeployError;
use crate::logging::plural;
use crate::paths;
use crate::process::{Runner, describe_status};
use crate::steps::Outcome;
use crate::steps::env::PreparedEnv;

/// The folder a repository commits wheels into, for packages App Service cannot build.
pub const WHEELHOUSE: &str = "wheelhouse";

/// The pip-install step: install the app's requirements into `env`, or skip with the reason.
/// `app` is where the app's files are (the target, or the source in a dry run).
pub fn run(
    config: &DeployConfig,
    env: Option<&mut PreparedEnv>,
    app: &Path,
    runner: &Runner,
) -> Result<Outcome, DeployError> {
    let c = config;
    let shown = &c.requirements.value;
    let Some(env) = env else {
        return Ok(Outcome::Done(format!(
            "Would install {shown} into the new env"
        )));
    };
    if !c.pip_args.value.is_empty() {
        info!(
            "Extra pip arguments from {}: {}",
            c.pip_args.origin,
            c.pip_args.value.join(" ")
        );
    }
    let requirements = app.join(shown);
    let installed = install(
        env,
        &requirements,
        app,
        &c.pip_args.value,
        runner,
        c.dry_run,
    )?;
    Ok(match installed {
        Installed::Skipped { fingerprint, files } => Outcome::Skipped(format!(
            "{shown} unchanged since the last successful install into this env ({}, \
             fingerprint {}); set KUDUHOOK_FORCE_ENV_REBUILD to rebuild from scratch",
            plural(files, "requirement file"),
            &fingerprint[..12]
        )),
        Installed::Ran { .. } if c.dry_run => Outcome::Done(format!(
            "Would install {shown} (changed since the last install)"
        )),
        Installed::Ran { fingerprint } => Outcome::Done(format!(
            "Installed {shown} (fingerprint {})",
            &fingerprint[..12]
        )),
    })
}

/// The requirement files an install reads: the main file first, then each `-r`/`-c` include.
pub fn requirement_files(main: &Path) -> Vec<PathBuf> {
    let mut files = vec![main.to_path_buf()];
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    seen.insert(main.to_path_buf());
    let mut index = 0;
    while index < files.len() {
        let file = files[index].clone();
        index += 1;
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let dir = file.parent().unwrap_or(Path::new("."));
        for include in includes(&text) {
            let path = paths::normalize(&dir.join(include));
            if seen.insert(path.clone()) {
                files.push(path);
            }
        }
    }
    files
}

/// The files a requirements text includes with `-r`, `-c`, `--requirement`, `--constraint`.
fn includes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        // pip treats ` #` (or a leading #) as a comment.
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for option in ["--requirement", "--constraint", "-r", "-c"] {
            if let Some(rest) = line.strip_prefix(option) {
                // "-rfile" is allowed for the short forms; "--requirementX" is not an option.
                let value = match rest.strip_prefix('=') {
                    Some(value) => value,
                    None if rest.starts_with(char::is_whitespace) || !option.starts_with("--") => {
                        rest
                    }
                    None => break,
                };
                let value = value.trim();
                if !value.is_empty() {
                    found.push(value.to_string());
                }
                break;
            }
        }
    }
    found
}

/// The fingerprint that decides whether an install can be skipped.
pub fn fingerprint(
    files: &[PathBuf],
    root: &Path,
    installer_args: &[String],
    record: &EnvRecord,
) -> String {
    let mut hash = Sha256::new();
    hash.update(b"kuduhook-install-v1\0");
    for arg in installer_args {
        hash.update(arg.as_bytes());
        hash.update(b"\0");
    }
    hash.update(format!("{}\0{}\0", record.python, record.created_unix).as_bytes());
    for file in files {
        let shown = file.strip_prefix(root).unwrap_or(file);
        hash.update(shown.to_string_lossy().as_bytes());
        hash.update(b"\0");
        match std::fs::read(file) {
            Ok(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update(b"<missing>"),
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the step did.
pub enum Installed {
    Skipped { fingerprint: String, files: usize },
    Ran { fingerprint: String },
}

/// The arguments after `pip`: non-interactive, no version check, no progress bars, the committed
/// wheelhouse as a package source, then the user's own.
pub fn pip_arguments(requirements: &Path, app: &Path, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "install",
        "-r",
        &requirements.to_string_lossy(),
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let wheelhouse = app.join(WHEELHOUSE);
    if wheelhouse.is_dir() {
        args.push("--find-links".into());
        args.push(wheelhouse.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().cloned());
    args
}

/// Installs `requirements` into `env` unless the fingerprint says it already is.
pub fn install(
    env: &mut PreparedEnv,
    requirements: &Path,
    app: &Path,
    extra_args: &[String],
    runner: &Runner,
    dry_run: bool,
) -> Result<Installed, DeployError> {
    let files = requirement_files(requirements);
    let args = pip_arguments(requirements, app, extra_args);
    let fingerprint = fingerprint(&files, app, &args, &env.record);
    let recorded = env.record.install.as_ref().map(|i| i.fingerprint.as_str());
    if recorded == Some(fingerprint.as_str()) {
        return Ok(Installed::Skipped {
            fingerprint,
            files: files.len(),
        });
    }
    if dry_run {
        return Ok(Installed::Ran { fingerprint });
    }
    let mut cmd = runner.command(&env.python);
    cmd.args(["-m", "pip"])
        .args(&args)
        .current_dir(app)
        .env("PIP_NO_INPUT", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONUNBUFFERED", "1");
    let finished = runner.run(&mut cmd, "pip install")?;
    if !finished.status.success() {
        return Err(DeployError::InstallFailed {
            requirements: requirements.to_path_buf(),
            status: describe_status(&finished.status),
        });
    }
    env.record.install = Some(InstallRecord {
        fingerprint: fingerprint.clone(),
        installer: "pip".into(),
        installed_unix: now_unix(),
    });
    env.record
        .write(&env.dir)
        .map_err(|e| DeployError::io("write the env record in", &env.dir, e))?;
    Ok(Installed::Ran { fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_include_form() {
        let text = "flask==3.0\n-r base.txt\n-rdev.txt\n--requirement=more.txt\n\
                    --constraint constraints.txt  # pinned\n-c c2.txt\n# -r commented.txt\n\
                    --requirementX\n-e .\n";
        assert_eq!(
            includes(text),
            [
                "base.txt",
                "dev.txt",
                "more.txt",
                "constraints.txt",
                "c2.txt"
            ]
        );
    }

    #[test]
    fn follows_includes_recursively_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("req")).unwrap();
        std::fs::write(root.join("requirements.txt"), "-r req/base.txt\n").unwrap();
        std::fs::write(
            root.join("req/base.txt"),
            "-c pins.txt\n-r ../requirements.txt\n",
        )
        .unwrap();
        std::fs::write(root.join("req/pins.txt"), "a==1\n").unwrap();
        let files = requirement_files(&root.join("requirements.txt"));
        assert_eq!(
            files,
            [
                root.join("requirements.txt"),
                root.join("req/base.txt"),
                root.join("req/pins.txt"),
            ]
        );
    }

    #[test]
    fn fingerprint_changes_with_an_included_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("requirements.txt"), "-c pins.txt\nflask\n").unwrap();
        std::fs::write(root.join("pins.txt"), "flask==3.0\n").unwrap();
        let record = EnvRecord {
            python: "3.12.1".into(),
            interpreter: "/usr/bin/python3".into(),
            created_unix: 1,
            reason: String::new(),
            rebuild_token: None,
            install: None,
        };
        let print = || {
            let files = requirement_files(&root.join("requirements.txt"));
            fingerprint(&files, root, &[], &record)
        };
        let before = print();
        assert_eq!(before, print());
        std::fs::write(root.join("pins.txt"), "flask==3.1\n").unwrap();
        assert_ne!(before, print());
    }
}
