//! The pip-install step: install the app's requirements into its env with the chosen
//! installer (pip or uv), or skip when nothing changed, and log which packages it added,
//! changed and removed.
//!
//! The skip decision rests on a fingerprint of every requirement file (the main one and each
//! file it pulls in with `-r` or `-c`, recursively) and the installer with its arguments. It
//! is recorded in the env only after a successful install, so a failed or interrupted install
//! is retried by the next deployment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use tracing::info;

use crate::config::{DeployConfig, EnvMode};
use crate::env_record::{InstallRecord, now_unix};
use crate::errors::DeployError;
use crate::installer::Installer;
use crate::logging::plural;
use crate::packages;
use crate::paths;
use crate::process::{Runner, describe_status};
use crate::steps::Outcome;
use crate::steps::env::PreparedEnv;

/// An install as it will run: the installer's arguments, the files they read, and the
/// fingerprint of both.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    /// The requirements file as configured (`requirements.txt`), relative to the app.
    pub requirements: String,
    pub args: Vec<String>,
    pub files: Vec<PathBuf>,
    pub fingerprint: String,
}

impl InstallPlan {
    /// The install of `config`'s requirements in `app` with `installer`.
    pub fn new(config: &DeployConfig, installer: &Installer, app: &Path) -> InstallPlan {
        let requirements = config.requirements.value.clone();
        let args = installer.install_args(&requirements, app, &config.pip_args.value, &config.env);
        let files = requirement_files(&app.join(&requirements));
        let fingerprint = fingerprint(&files, app, &installer.name(), &args);
        InstallPlan {
            requirements,
            args,
            files,
            fingerprint,
        }
    }
}

/// The pip-install step: install `plan` into `env`, or skip with the reason. `live` is the env
/// the site runs now, to say what the install changed; `app` is where the app's files are (the
/// target, or the source in a dry run).
pub fn run(
    config: &DeployConfig,
    installer: &Installer,
    plan: &InstallPlan,
    env: Option<&mut PreparedEnv>,
    live: &Path,
    app: &Path,
    runner: &Runner,
) -> Result<Outcome, DeployError> {
    let c = config;
    let shown = &plan.requirements;
    let Some(env) = env else {
        return Ok(Outcome::Done(format!(
            "Would install {shown} into the new env with {}",
            installer.name()
        )));
    };
    let recorded = env.record.install.as_ref().map(|i| i.fingerprint.as_str());
    if recorded == Some(plan.fingerprint.as_str()) {
        return Ok(Outcome::Skipped(format!(
            "{shown} unchanged since the last successful install into this env ({}, \
             fingerprint {}); set KUDUHOOK_FORCE_ENV_REBUILD to rebuild from scratch",
            plural(plan.files.len(), "requirement file"),
            &plan.fingerprint[..12]
        )));
    }
    if c.dry_run {
        return Ok(Outcome::Done(format!(
            "Would install {shown} with {} (changed since the last install)",
            installer.name()
        )));
    }
    if !c.pip_args.value.is_empty() {
        info!(
            "Extra installer arguments from {}: {}",
            c.pip_args.origin,
            c.pip_args.value.join(" ")
        );
    }
    if env.dir == live && c.env_mode.value == EnvMode::Incremental {
        info!(
            "Installing over the live env ({} is incremental): packages dropped from {shown} \
             stay installed",
            c.env_mode.origin
        );
    }
    let before = packages::installed(live, c.platform);
    let cache = installer.cache_dir(&c.target.value);
    if cache == installer.local_cache(&c.target.value) {
        info!(
            "The site's filesystem refuses links: {}'s cache lives on local disk at {}",
            installer.name(),
            cache.display()
        );
    }
    let mut cmd = installer.install_command(runner, &env.python, &plan.args, app, &cache);
    let what = format!("{} install", installer.name());
    let finished = runner.run(&mut cmd, &what)?;
    if !finished.status.success() {
        return Err(DeployError::InstallFailed {
            requirements: app.join(shown),
            installer: installer.name(),
            status: describe_status(&finished.status),
        });
    }
    info!(
        "{}",
        packages::changes(&before, &packages::installed(&env.dir, c.platform)).summary()
    );
    env.record.install = Some(InstallRecord {
        fingerprint: plan.fingerprint.clone(),
        installer: installer.name(),
        installed_unix: now_unix(),
    });
    env.record
        .write(&env.dir)
        .map_err(|e| DeployError::io("write the env record in", &env.dir, e))?;
    Ok(Outcome::Done(format!(
        "Installed {shown} with {} (fingerprint {})",
        installer.name(),
        &plan.fingerprint[..12]
    )))
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

/// The fingerprint that decides whether an install can be skipped: the installer, its
/// arguments and every requirement file (named relative to `root`).
pub fn fingerprint(files: &[PathBuf], root: &Path, installer: &str, args: &[String]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"kuduhook-install-v2\0");
    let kind = installer.split_whitespace().next().unwrap_or(installer);
    for arg in std::iter::once(kind).chain(args.iter().map(String::as_str)) {
        hash.update(arg.as_bytes());
        hash.update(b"\0");
    }
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
        let print = || {
            let files = requirement_files(&root.join("requirements.txt"));
            fingerprint(&files, root, "pip", &[])
        };
        let before = print();
        assert_eq!(before, print());
        std::fs::write(root.join("pins.txt"), "flask==3.1\n").unwrap();
        assert_ne!(before, print());
        let files = requirement_files(&root.join("requirements.txt"));
        assert_ne!(
            fingerprint(&files, root, "pip", &[]),
            fingerprint(&files, root, "uv 0.13.9", &[]),
            "another installer is another install"
        );
        assert_eq!(
            fingerprint(&files, root, "uv 0.13.9", &[]),
            fingerprint(&files, root, "uv 0.14.0", &[]),
            "a new uv version installs the same"
        );
    }
}
