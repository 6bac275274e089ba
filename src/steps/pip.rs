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
use std::time::Instant;

use sha2::{Digest, Sha256};

use tracing::info;

use crate::config::DeployConfig;
use crate::env::EnvMode;
use crate::env::PreparedEnv;
use crate::env::error::EnvError;
use crate::env::installer::Installer;
use crate::env::record::{InstallRecord, now_unix};
use crate::ground::error::DeployError;
use crate::ground::logging::{plural, seconds};
use crate::ground::paths;
use crate::process::{Runner, describe_status};
use crate::python::closure::{self, Pruned};
use crate::python::dependencies::Prepared;
use crate::python::packages;
use crate::steps::Outcome;

/// An install as it will run: the installer's arguments, the files they read, and the
/// fingerprint of both.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    /// The dependency source as the log names it (`requirements.txt`, `uv.lock`), relative to
    /// the app.
    pub requirements: String,
    pub args: Vec<String>,
    /// The requirements file installed first (the app's own, or the one generated from a
    /// lock), then every file it includes and every file the source was read from.
    pub files: Vec<PathBuf>,
    pub fingerprint: String,
    /// Where the installer runs (relative paths in the requirements are taken from here).
    pub app: PathBuf,
}

impl InstallPlan {
    /// The install of `dependencies` in `app` with `installer`.
    pub fn new(
        config: &DeployConfig,
        installer: &Installer,
        app: &Path,
        dependencies: &Prepared,
    ) -> InstallPlan {
        let mut args = installer.install_args(
            &dependencies.requirements,
            app,
            &config.pip_args.value,
            &config.env,
        );
        if dependencies.no_deps {
            // A lock's pins are the whole resolution.
            args.push("--no-deps".into());
        }
        let mut files = requirement_files(&app.join(&dependencies.requirements));
        files.extend(dependencies.inputs.iter().cloned());
        // The groups selected change what a lock or pyproject.toml installs.
        let mut fingerprinted = args.clone();
        fingerprinted.extend(
            config
                .dependency_groups
                .value
                .iter()
                .map(|g| format!("group:{g}")),
        );
        let fingerprint = fingerprint(&files, app, &installer.name(), &fingerprinted);
        InstallPlan {
            requirements: dependencies.source.file.clone(),
            args,
            files,
            fingerprint,
            app: app.to_path_buf(),
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
    let mut args = plan.args.clone();
    if env.reuse.is_some() {
        // In a copy of the live env, every package is chosen as a fresh install would choose
        // it, not kept because an older version still satisfies.
        args.extend(installer.fresh_choice_args().iter().map(|a| a.to_string()));
    }
    // pip compiles what it installs one file at a time; into a new env, compileall does the
    // same on every core afterwards.
    let compile_after =
        env.reuse.is_none() && env.dir != live && matches!(installer, Installer::Pip);
    if compile_after {
        args.push("--no-compile".into());
    }
    let installing = Instant::now();
    let mut cmd = installer.install_command(runner, &env.python, &args, app, &cache);
    let what = format!("{} install", installer.name());
    let finished = runner.run(&mut cmd, &what)?;
    if !finished.status.success() {
        let full = crate::ground::disk::says_full(finished.tail.iter().map(String::as_str));
        return Err(EnvError::InstallFailed {
            requirements: app.join(shown),
            installer: installer.name(),
            status: describe_status(&finished.status),
            disk_full: full.then(|| env.dir.clone()),
        }
        .into());
    }
    if compile_after {
        compile_bytecode(env, c.platform, runner)?;
    }
    // What reuse bought, kept in the step's outcome so that `kuduhook status` shows it too.
    let bought = match &env.reuse {
        Some(reuse) => {
            let installed_in = installing.elapsed();
            let pruning = Instant::now();
            let pruned = prune(env, c.platform, &c.target.value)?;
            let after = packages::installed(&env.dir, c.platform);
            Some(format!(
                "{} (copy {}, install {}, prune {}: {} files)",
                reuse_summary(&reuse.before, &after),
                seconds(reuse.copied),
                seconds(installed_in),
                seconds(pruning.elapsed()),
                pruned.files
            ))
        }
        None => {
            let after = packages::installed(&env.dir, c.platform);
            info!("{}", packages::changes(&before, &after).summary());
            None
        }
    };
    env.record.install = Some(InstallRecord {
        fingerprint: plan.fingerprint.clone(),
        installer: installer.name(),
        installed_unix: now_unix(),
        source: Some(plan.requirements.clone()),
    });
    env.record
        .write(&env.dir)
        .map_err(|e| DeployError::io("write the env record in", &env.dir, e))?;
    let installed = format!(
        "Installed {shown} with {} (fingerprint {})",
        installer.name(),
        &plan.fingerprint[..12]
    );
    Ok(Outcome::Done(match bought {
        Some(bought) => format!("{bought}; {}", lowercase_first(&installed)),
        None => installed,
    }))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Compiles the env's site-packages to bytecode on every core, as pip would have file by file
/// (`compileall -j 0`; files that do not compile are left to Python, as pip leaves them).
fn compile_bytecode(
    env: &PreparedEnv,
    platform: crate::settings::Platform,
    runner: &Runner,
) -> Result<(), DeployError> {
    let started = Instant::now();
    let mut cmd = runner.command(&env.python);
    cmd.args(["-m", "compileall", "-qq", "-j", "0"])
        .args(packages::site_packages(&env.dir, platform));
    let done = runner.run(&mut cmd, "python -m compileall")?;
    if done.status.success() {
        info!(
            "Compiled the installed packages to bytecode on every core in {}",
            seconds(started.elapsed())
        );
    } else {
        info!(
            "python -m compileall {} in {}: a file that does not compile is compiled (or \
             reported) by Python when it is imported, as with pip",
            describe_status(&done.status),
            seconds(started.elapsed())
        );
    }
    Ok(())
}

/// Removes from the env copied from the live one what the requirements no longer need.
fn prune(
    env: &PreparedEnv,
    platform: crate::settings::Platform,
    target: &Path,
) -> Result<Pruned, DeployError> {
    let reuse = env.reuse.as_ref().expect("a copied env");
    let unproven = |why: String| EnvError::ReuseUnproven { why }.into();
    let dists = closure::installed(&env.dir, platform).map_err(unproven)?;
    // The env's markers are its base interpreter's: asked once per interpreter, then kept.
    let cache = crate::ground::paths::local_state_dir(target).join("dependencies");
    let markers =
        crate::python::marker_environment(&env.record.interpreter, &cache).map_err(unproven)?;
    let needed = closure::closure(&reuse.roots, &dists, &markers).map_err(unproven)?;
    let going = closure::unneeded(&dists, &needed, &reuse.seeds);
    if !going.is_empty() {
        let names: Vec<String> = going
            .iter()
            .map(|d| format!("{} {}", d.name, d.version))
            .collect();
        info!(
            "Removing what the requirements no longer need: {}",
            names.join(", ")
        );
    }
    closure::prune(&env.dir, &dists, &needed, &reuse.seeds).map_err(unproven)
}

/// "Reused 14 packages from the live env; added gunicorn 23.0.0; changed a 1 -> 2; removed
/// packaging 26.3".
pub fn reuse_summary(before: &packages::Packages, after: &packages::Packages) -> String {
    let reused = after
        .iter()
        .filter(|(name, version)| before.get(*name) == Some(version))
        .count();
    let mut parts = vec![format!(
        "Reused {} from the live env",
        plural(reused, "package")
    )];
    parts.extend(packages::changes(before, after).parts());
    parts.join("; ")
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
    use crate::python::requirements::{Line, logical_lines, parse_line};
    logical_lines(text)
        .into_iter()
        .filter_map(|(_, line)| match parse_line(&line) {
            Ok(Line::Include(file) | Line::Constraints(file)) => Some(file),
            _ => None,
        })
        .collect()
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
    crate::ground::digest::hex(&hash.finalize())
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
