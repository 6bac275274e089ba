//! The validate-env step: reuse the app's virtual environment only when it is sound for the
//! chosen Python (and, in exact mode, holds exactly the current requirements), else build a
//! new one, and log every reason either way.
//!
//! An env is reused when its `pyvenv.cfg` names the selected Python, its base interpreter still
//! exists and is the selected one, its own python runs, Kudu's `azure.env.python-X.Y.txt`
//! marker (if any) agrees, no force-rebuild asks otherwise, and (exact mode) the requirements
//! are those of its last install. A new env is built at the path it keeps
//! ([`crate::env::store`]): the site goes on running the live env until the pipeline switches
//! it over, once the new env is complete.

use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{info, warn};

use crate::config::DeployConfig;
use crate::env::error::EnvError;
use crate::env::files as env_files;
use crate::env::installer::Installer;
use crate::env::record::{EnvRecord, now_unix};
use crate::env::store::{self as env_store, EnvStore, LiveEnv};
use crate::env::venv::{PreparedEnv, PyvenvCfg, Reuse, env_python};
use crate::env::{EnvMode, ForceRebuild};
use crate::ground::error::DeployError;
use crate::ground::logging::{ago, seconds};
use crate::process::Runner;
use crate::python::packages;
use crate::python::requirements::{self, Root};
use crate::python::{self, PythonVersion};
use crate::settings::Platform;
use crate::settings::Setting;
use crate::steps::Outcome;
use crate::steps::pip::InstallPlan;
use crate::steps::runtime::Runtime;

/// What the validate-env step decided and made.
pub struct Validated {
    pub outcome: Outcome,
    /// The env later steps use; `None` in a dry run that would rebuild it.
    pub env: Option<PreparedEnv>,
    /// A new env that the site does not run yet: the pipeline switches to it once complete.
    pub pending: Option<PathBuf>,
}

/// What the step works with besides the configuration.
pub struct EnvInputs<'a> {
    pub runtime: &'a Runtime,
    pub store: &'a EnvStore,
    pub installer: &'a Installer,
    /// The install pip-install will run, when it runs: exact mode compares it with the env's
    /// last install.
    pub install: Option<&'a InstallPlan>,
    /// The live env's archive, where the site ships the env as one: a new env gets a new
    /// archive, about as large (counted before the env is written).
    pub archive: Option<PathBuf>,
}

impl EnvInputs<'_> {
    /// The archive's size, for the estimate.
    fn archive_bytes(&self) -> Option<u64> {
        self.archive
            .as_ref()
            .and_then(|a| std::fs::metadata(a).ok())
            .map(|m| m.len())
    }
}

/// The size of the env at `env` (the live one): walked on local disk; on a network share,
/// where every file is a round trip, read from its archive where there is one (a gzip stream
/// ends with its uncompressed size, modulo 4 GiB: the env's files plus their tar headers).
fn env_size(env: &Path, archive: Option<&Path>) -> u64 {
    let on_share = env_files::network_filesystem(env).is_some();
    if on_share && let Some(size) = archive.and_then(gzip_uncompressed_size) {
        return size;
    }
    crate::ground::disk::tree_size(env)
}

fn gzip_uncompressed_size(path: &Path) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::End(-4)).ok()?;
    let mut tail = [0u8; 4];
    file.read_exact(&mut tail).ok()?;
    Some(u32::from_le_bytes(tail) as u64)
}

/// The validate-env step: reuse the env when sound, else build a new one, logging every reason.
pub fn run(
    config: &DeployConfig,
    inputs: &EnvInputs,
    runner: &Runner,
) -> Result<Validated, DeployError> {
    let c = config;
    let (runtime, store) = (inputs.runtime, inputs.store);
    let live = &store.live;
    if c.force_rebuild.value == ForceRebuild::Always {
        warn!(
            "{} is still on: every deployment rebuilds the env from scratch. Remove it, or set \
             it to a token such as today's date to rebuild just once.",
            c.force_rebuild.origin
        );
    }
    if !c.dry_run {
        for line in store.clean_leftovers(&crate::release::Release::kept_envs(&c.release))? {
            info!("{line}");
        }
    }
    let record = EnvRecord::read(live);
    let mut reasons = rebuild_reasons(live, c.platform, runtime, &c.force_rebuild, record.as_ref());
    if c.env_mode.value == EnvMode::Exact
        && reasons.is_empty()
        && let Some(plan) = inputs.install
        && let Some(reason) = install_reason(record.as_ref(), plan, inputs.installer)
    {
        match reusable(c, record.as_ref(), plan, inputs.installer) {
            Ok(_) if c.dry_run => {
                return Ok(Validated {
                    outcome: Outcome::Done(format!(
                        "Would copy the live env, install {} into the copy and remove what it no \
                         longer needs",
                        plan.requirements
                    )),
                    env: None,
                    pending: None,
                });
            }
            Ok(roots) => {
                let record = record.expect("a reusable env has a record");
                return copy_live(c, inputs, record, roots, &reason);
            }
            Err(why_not) => reasons.push(format!(
                "{reason}; the live env cannot be reused: {why_not}"
            )),
        }
    }
    let token = match &c.force_rebuild.value {
        ForceRebuild::Token(token) => Some(token.clone()),
        _ => None,
    };
    if reasons.is_empty() {
        let record = match record {
            Some(record) => record,
            None => adopt(live, runtime, token, c.dry_run)?,
        };
        let outcome = Outcome::Done(format!(
            "Reusing env {}: Python {} as selected, base interpreter present, its python runs \
             (built {}, because: {})",
            live.display(),
            record.python,
            ago(record.created_unix, now_unix()),
            record.reason
        ));
        let env = PreparedEnv {
            python: env_python(live, c.platform),
            dir: live.clone(),
            record,
            reuse: None,
        };
        return Ok(Validated {
            outcome,
            env: Some(env),
            pending: None,
        });
    }
    build_fresh(c, inputs, runner, reasons)
}

/// Builds a fresh env for `reasons`.
pub fn build_fresh(
    config: &DeployConfig,
    inputs: &EnvInputs,
    runner: &Runner,
    reasons: Vec<String>,
) -> Result<Validated, DeployError> {
    let c = config;
    let (runtime, store) = (inputs.runtime, inputs.store);
    let token = match &c.force_rebuild.value {
        ForceRebuild::Token(token) => Some(token.clone()),
        _ => None,
    };
    let reason = reasons.join("; ");
    if c.dry_run {
        return Ok(Validated {
            outcome: Outcome::Done(format!("Would rebuild the env: {reason}")),
            env: None,
            pending: None,
        });
    }
    info!("Rebuilding env: {reason}");
    // A new env takes about what the live one does (the best estimate there is before the
    // install; none for a first deployment). Where it is built on local disk first, it is
    // copied beside the live one at the end: both sides count against the site's disk.
    if store.live.join("pyvenv.cfg").is_file() {
        let live = std::fs::canonicalize(&store.live).unwrap_or_else(|_| store.live.clone());
        let size = env_size(&live, inputs.archive.as_deref());
        let site = store.live.parent().unwrap_or(&store.live);
        let mut parts = vec![("a new env the size of the live one".to_string(), size)];
        parts.extend(
            inputs
                .archive_bytes()
                .map(|bytes| ("its archive, as large as the last one".to_string(), bytes)),
        );
        check_space(site, parts)?;
    }
    let built = store.build_path(&format!("{}-{}", now_unix(), std::process::id()))?;
    let new = NewEnv {
        dir: &built,
        platform: c.platform,
        runtime,
        // The record (shown by later "Reusing env" lines) keeps each reason's headline.
        reason: reasons
            .iter()
            .map(|r| r.split(": ").next().unwrap_or(r))
            .collect::<Vec<_>>()
            .join("; "),
        rebuild_token: token,
    };
    let env = match create(new, inputs.installer, store, runner) {
        Ok(env) => env,
        Err(error) => {
            let _ = env_files::remove_any(&built);
            return Err(error);
        }
    };
    Ok(Validated {
        outcome: Outcome::Done(format!(
            "Built a new env with Python {} at {}; the site runs the previous env until this one \
             is complete",
            runtime.interpreter.version,
            built.display()
        )),
        env: Some(env),
        pending: Some(built),
    })
}

/// Before the env is written at `at`: logs what it will take (`parts`, each with its bytes;
/// what the installer adds comes on top) against the space free there, and refuses with those
/// numbers, before anything is written, when it does not fit.
fn check_space(at: &Path, parts: Vec<(String, u64)>) -> Result<(), DeployError> {
    let needed: u64 = parts.iter().map(|(_, b)| b).sum();
    let Some(space) = crate::ground::disk::space(at) else {
        return Ok(());
    };
    let made_of: Vec<String> = parts
        .iter()
        .map(|(what, b)| format!("{what} {}", crate::ground::logging::bytes(*b)))
        .collect();
    info!(
        "Space: about {} needed ({}, plus what the installer adds); {} free on the filesystem \
         holding {}",
        crate::ground::logging::bytes(needed),
        made_of.join(", "),
        crate::ground::logging::bytes(space.free),
        at.ancestors().find(|a| a.exists()).unwrap_or(at).display()
    );
    if needed > space.free {
        return Err(EnvError::NotEnoughSpace {
            at: at.to_path_buf(),
            parts,
            free: space.free,
            total: space.total,
        }
        .into());
    }
    Ok(())
}

/// Why exact mode cannot reuse the env for `plan`, if it cannot.
fn install_reason(
    record: Option<&EnvRecord>,
    plan: &InstallPlan,
    installer: &Installer,
) -> Option<String> {
    let last = record.and_then(|r| r.install.as_ref());
    let kind = |name: &str| name.split_whitespace().next().unwrap_or("").to_string();
    match last {
        Some(last) if last.fingerprint == plan.fingerprint => None,
        Some(last) if kind(&last.installer) != kind(&installer.name()) => Some(format!(
            "the installer changed {} -> {}: a fresh env holds exactly what {} installs",
            last.installer,
            installer.name(),
            plan.requirements
        )),
        Some(last) => Some(format!(
            "{} changed since the last install into this env (fingerprint {} -> {})",
            plan.requirements,
            &last.fingerprint[..12],
            &plan.fingerprint[..12]
        )),
        None => Some(
            "no record of what was installed into the env (made before kuduhook, or its last \
             install failed): exact mode starts from a fresh env"
                .to_string(),
        ),
    }
}

/// The roots of `plan`'s requirements when the live env can be copied and pruned to exactly
/// them; else why not.
fn reusable(
    config: &DeployConfig,
    record: Option<&EnvRecord>,
    plan: &InstallPlan,
    installer: &Installer,
) -> Result<Vec<Root>, String> {
    if config.platform == Platform::Windows {
        return Err("reusing an env is proven on Linux only so far".into());
    }
    if matches!(installer, Installer::Uv { .. }) {
        // Measured (bench/deploy.sh): uv links a fresh env's packages from its cache in less
        // time than the live env takes to copy.
        return Err("uv fills a fresh env from its cache faster than the env copies".into());
    }
    let record = record.ok_or("it has no record")?;
    let kind = |name: &str| name.split_whitespace().next().unwrap_or("").to_string();
    match &record.install {
        None => return Err("no record of what was installed into it".into()),
        // An env uv made has no pip; one pip made holds what pip seeded.
        Some(last) if kind(&last.installer) != kind(&installer.name()) => {
            return Err("another installer made it".into());
        }
        Some(_) => {}
    }
    if record.seeds.is_none() {
        return Err(
            "it was made before kuduhook recorded what a fresh env holds of its own".into(),
        );
    }
    let live = config.env_dir();
    crate::python::closure::installed(&live, config.platform)?;
    let main = plan.files.first().ok_or("no requirements file")?;
    let env = &config.env;
    requirements::roots(main, &plan.app, &|name| env.get(name).map(str::to_string))
}

/// Builds the new env as a copy of the live one (relocated to its own path), to install the
/// changed requirements into; pip-install prunes it back to exactly what they need.
fn copy_live(
    config: &DeployConfig,
    inputs: &EnvInputs,
    record: EnvRecord,
    roots: Vec<Root>,
    reason: &str,
) -> Result<Validated, DeployError> {
    let store = inputs.store;
    let live = &store.live;
    let from = match store.live_env() {
        LiveEnv::Link(to) => to,
        _ => live.clone(),
    };
    let built = store.build_path(&format!("{}-{}", now_unix(), std::process::id()))?;
    let started = Instant::now();
    // On the same local disk the packages are shared, not copied; onto or from a share that
    // refuses links, every file is copied: that takes the live env's size again (checked
    // before the first file is written).
    let same_disk =
        store.staging.is_none() && env_files::links_work(built.parent().unwrap_or(live));
    if !same_disk {
        let size = env_size(&from, inputs.archive.as_deref());
        // Where it is copied on local disk first, it lands beside the live env at the end.
        let mut parts = vec![("a copy of the live env".to_string(), size)];
        parts.extend(
            inputs
                .archive_bytes()
                .map(|bytes| ("its archive, as large as the last one".to_string(), bytes)),
        );
        check_space(live.parent().unwrap_or(live), parts)?;
    }
    let mode = match same_disk {
        true => env_files::CopyAs::PackagesShared,
        false => env_files::CopyAs::Files,
    };
    let copied = env_files::copy_tree(&from, &built, mode).and_then(|files| {
        env_store::relocate_from(&built, &from, &built, config.platform)?;
        if &from != live {
            env_store::relocate_from(&built, live, &built, config.platform)?;
        }
        Ok(files)
    });
    let files = match copied {
        Ok(files) => files,
        Err(error) => {
            let _ = env_files::remove_any(&built);
            return Err(error);
        }
    };
    let took = started.elapsed();
    let seeds = record.seeds.clone().unwrap_or_default();
    let record = EnvRecord {
        created_unix: now_unix(),
        reason: "copied from the previous env for changed requirements, pruned to them".into(),
        id: Some(crate::env::record::new_id()),
        ..record
    };
    record
        .write(&built)
        .map_err(|e| DeployError::io("write the env record in", &built, e))?;
    let env = PreparedEnv {
        python: env_python(&built, config.platform),
        dir: built.clone(),
        record,
        reuse: Some(Reuse {
            roots,
            before: packages::installed(&from, config.platform),
            seeds,
            copied: took,
        }),
    };
    Ok(Validated {
        outcome: Outcome::Done(format!(
            "Copied the live env ({files} files) to {} in {} to install into: {reason}; what the \
             requirements no longer need is removed after the install, so the env holds exactly \
             what a fresh one would",
            built.display(),
            seconds(took)
        )),
        env: Some(env),
        pending: Some(built),
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
        seeds: None,
        id: Some(crate::env::record::new_id()),
    };
    if !dry_run {
        record
            .write(env_dir)
            .map_err(|e| DeployError::io("write the env record in", env_dir, e))?;
    }
    Ok(record)
}

/// Kudu's marker file for an env built for `version` (`azure.env.python-3.6.txt`).
pub fn kudu_marker(version: &PythonVersion) -> String {
    format!("azure.env.python-{}.txt", version.minor_version())
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

/// Creates the env `new` describes with `installer`, marks it for Kudu, and records it.
fn create(
    new: NewEnv,
    installer: &Installer,
    store: &EnvStore,
    runner: &Runner,
) -> Result<PreparedEnv, DeployError> {
    let target = store.live.parent().unwrap_or(&store.live);
    let (env_dir, runtime) = (new.dir, new.runtime);
    let interpreter = &runtime.interpreter.path;
    let tool = match installer {
        Installer::Pip => "python -m venv".to_string(),
        Installer::Uv { .. } => format!("{} venv", installer.name()),
    };
    info!(
        "Creating env {} with Python {} ({tool})",
        env_dir.display(),
        runtime.interpreter.version,
    );
    let cache = installer.cache_dir(target);
    let parent = env_dir.parent().unwrap_or(target);
    // A staged env goes onto a filesystem that refuses links: it is made without any.
    let no_links = store.staging.is_some() || !env_files::links_work(parent);
    // With pip on Linux, pip comes from the base interpreter rather than venv's ensurepip.
    let seed = matches!(installer, Installer::Pip) && new.platform == Platform::Linux;
    let without_pip = seed || matches!(installer, Installer::Uv { .. });
    if new.platform == Platform::Linux && no_links {
        create_without_links(env_dir, interpreter, without_pip, runner)?;
    } else {
        create_with(installer, &tool, env_dir, interpreter, &cache, runner, seed)?;
    }
    if seed {
        seed_pip(env_dir, runtime, runner)?;
    }
    let marker = env_dir.join(kudu_marker(&runtime.interpreter.version));
    std::fs::write(&marker, b"Created by kuduhook\n")
        .map_err(|e| DeployError::io("write Kudu's env marker", &marker, e))?;
    let seeds = packages::installed(env_dir, new.platform)
        .into_iter()
        .collect();
    let record = EnvRecord {
        python: runtime.interpreter.version.to_string(),
        interpreter: interpreter.clone(),
        created_unix: now_unix(),
        reason: new.reason,
        rebuild_token: new.rebuild_token,
        install: None,
        seeds: Some(seeds),
        id: Some(crate::env::record::new_id()),
    };
    record
        .write(env_dir)
        .map_err(|e| DeployError::io("write the env record in", env_dir, e))?;
    Ok(PreparedEnv {
        dir: env_dir.to_path_buf(),
        python: env_python(env_dir, new.platform),
        record,
        reuse: None,
    })
}

/// Gives the env made `--without-pip` the pip (and setuptools) venv would have given it: from
/// the base interpreter's own where it has them, else from ensurepip as venv does.
fn seed_pip(env_dir: &Path, runtime: &Runtime, runner: &Runner) -> Result<(), DeployError> {
    let started = Instant::now();
    let interpreter = &runtime.interpreter;
    if let Some(seeded) =
        crate::env::seed::from_base(&interpreter.path, &interpreter.version, env_dir)?
    {
        let names: Vec<String> = seeded
            .seeds
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        info!(
            "Seeded the env with {} copied from the base interpreter's own ({} files in {}; venv's \
             ensurepip takes seconds to install the same)",
            names.join(" and "),
            seeded.files,
            seconds(started.elapsed())
        );
        return Ok(());
    }
    info!(
        "No {} in the base interpreter's own site-packages to copy: installing pip with \
         ensurepip, as venv does",
        crate::env::seed::venv_seeds(&interpreter.version).join(" and ")
    );
    let mut cmd = runner.command(env_python(env_dir, Platform::Linux));
    cmd.args(["-m", "ensurepip", "--upgrade", "--default-pip"]);
    let done = runner.run(&mut cmd, "python -m ensurepip")?;
    match done.status.success() {
        true => Ok(()),
        false => Err(EnvError::EnvCreateFailed {
            interpreter: interpreter.path.clone(),
            env: env_dir.to_path_buf(),
            detail: done.detail(),
        }
        .into()),
    }
}

/// Creates the env with the installer's own venv, then with `python -m venv --copies` if that
/// fails; `without_pip` leaves pip out (it is seeded apart).
fn create_with(
    installer: &Installer,
    tool: &str,
    env_dir: &Path,
    interpreter: &Path,
    cache: &Path,
    runner: &Runner,
    without_pip: bool,
) -> Result<(), DeployError> {
    let mut cmd = installer.venv_command(runner, interpreter, env_dir, cache);
    if without_pip {
        cmd.arg("--without-pip");
    }
    let first = runner.run(&mut cmd, tool)?;
    if !first.status.success() {
        // App Service Linux keeps the site on an SMB share that may refuse symlinks (EOPNOTSUPP):
        // Oryx builds its envs with --copies for this reason.
        info!(
            "{tool} failed ({}); trying again with python -m venv --copies, which needs no \
             symlinks",
            first.detail()
        );
        env_files::remove_any(env_dir)?;
        let mut cmd = runner.command(interpreter);
        cmd.args(["-m", "venv", "--copies"]).arg(env_dir);
        if without_pip {
            cmd.arg("--without-pip");
        }
        let second = runner.run(&mut cmd, "python -m venv --copies")?;
        if !second.status.success() {
            return Err(EnvError::EnvCreateFailed {
                interpreter: interpreter.to_path_buf(),
                env: env_dir.to_path_buf(),
                detail: second.detail(),
            }
            .into());
        }
        info!("Created the env with --copies");
    }
    Ok(())
}

/// Creates an env where symbolic links are refused (App Service Linux's SMB share without
/// `mfsymlinks`): `python -m venv --copies` copies the interpreter instead of linking it, and a
/// `lib64` folder made first stops CPython from linking `lib64 -> lib`, which it does on 64-bit
/// Linux even with `--copies`. uv's venv links its interpreter, so with uv the env is made the
/// same way, without pip (uv installs into it; pip is seeded apart).
fn create_without_links(
    env_dir: &Path,
    interpreter: &Path,
    without_pip: bool,
    runner: &Runner,
) -> Result<(), DeployError> {
    info!(
        "The site's filesystem refuses symbolic links (an SMB share, as App Service Linux's \
         /home is): creating the env with python -m venv --copies, its lib64 made as a folder"
    );
    let lib64 = env_dir.join("lib64");
    std::fs::create_dir_all(&lib64).map_err(|e| DeployError::io("create", &lib64, e))?;
    let mut cmd = runner.command(interpreter);
    cmd.args(["-m", "venv", "--copies"]);
    if without_pip {
        cmd.arg("--without-pip");
    }
    cmd.arg(env_dir);
    let made = runner.run(&mut cmd, "python -m venv --copies")?;
    match made.status.success() {
        true => Ok(()),
        false => Err(EnvError::EnvCreateFailed {
            interpreter: interpreter.to_path_buf(),
            env: env_dir.to_path_buf(),
            detail: made.detail(),
        }
        .into()),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzip_archive_tells_its_uncompressed_size() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(&vec![b'x'; 123_456]).unwrap();
        gz.finish().unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 10_000);
        assert_eq!(gzip_uncompressed_size(&path), Some(123_456));
        assert_eq!(gzip_uncompressed_size(&dir.path().join("missing")), None);
    }

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
            origin: crate::settings::Origin::Default,
            interpreter: python::Interpreter {
                path: PathBuf::from("/usr/bin/python3.12"),
                version: PythonVersion::parse("3.12.1").unwrap(),
            },
            found_via: "PATH".into(),
        };
        let force = Setting::new(
            ForceRebuild::Token("t2".into()),
            crate::settings::Origin::AppSetting("KUDUHOOK_FORCE_ENV_REBUILD".into()),
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
    }
}
