//! The pipeline: runs a deployment's steps in order, each under a header with what it decided
//! and how long it took, and on failure says what state the site was left in.
//!
//! Everything that can be checked without changing the target is checked first (the steps
//! file, the Python version and interpreter, the installer, the paths), so that a bad push
//! fails before the site is touched. Then the deploy lock is taken: one deployment at a time.
//!
//! The default steps build and fill a new env (from the repository's requirements) and check
//! that the app starts with it before the sync, so a failed install or a broken import leaves
//! the site's files and env as they were. What the site serves is [`crate::release`]'s: the
//! steps prepare the release, it goes live (the env switch, once the files are synced), and at
//! the end it is recorded, or on a failure rolled back, files and env.

use std::time::Instant;

use tracing::{info, info_span, warn};

use crate::config::DeployConfig;
use crate::env::EnvMode;
use crate::env::PreparedEnv;
use crate::env::error::EnvError;
use crate::env::files::remove_any;
use crate::env::installer::{self, Installer};
use crate::env::lock::{self, DeployLock};
use crate::ground::error::{DeployError, site_state as state};
use crate::ground::logging::seconds;
use crate::process::{self, Runner};
use crate::python::dependencies::{self, Prepared};
use crate::release::Release;
use crate::release::record::{DeploymentRecord, StepRecord};
use crate::settings::Platform;
use crate::settings::steps_file::{BuiltinStep, StepAction};
use crate::steps::env::{self as env_step, EnvInputs};
use crate::steps::pip::InstallPlan;
use crate::steps::runtime::{self, Runtime};
use crate::steps::{Outcome, custom, pip, start_check, sync, tail};

/// A failed deployment: the error, and what the site serves now.
#[derive(Debug)]
pub struct Failure {
    pub error: DeployError,
    pub state: &'static str,
}

/// One step as the pipeline will run it.
#[derive(Debug, Clone)]
struct Planned {
    name: String,
    action: StepAction,
    continue_on_error: bool,
}

/// Runs the deployment `config` describes, and leaves its record for `kuduhook status`.
pub fn deploy(config: &DeployConfig) -> Result<(), Failure> {
    let started = Instant::now();
    let started_unix = crate::env::record::now_unix();
    let mut steps = Vec::new();
    let result = run_steps(config, started, &mut steps);
    if !config.dry_run {
        let explained = result.as_ref().err().map(|f| f.error.explain());
        let record = DeploymentRecord {
            kuduhook_version: env!("CARGO_PKG_VERSION").to_string(),
            commit: config.commit_id.clone(),
            source: config.source.value.clone(),
            target: config.target.value.clone(),
            env: config.env_dir(),
            started_unix,
            seconds: started.elapsed().as_secs_f64(),
            succeeded: result.is_ok(),
            error: explained.map(|e| e.what),
            site_state: result.as_ref().err().map(|f| f.state.to_string()),
            steps,
        };
        if let Err(e) = record.write() {
            warn!(
                "could not write the deployment record {} ({e}): `kuduhook status` will not show this deployment",
                crate::release::record::path(&config.target.value).display()
            );
        }
    }
    result
}

fn run_steps(
    config: &DeployConfig,
    started: Instant,
    records: &mut Vec<StepRecord>,
) -> Result<(), Failure> {
    let untouched = |error: DeployError| Failure {
        error,
        state: state::UNTOUCHED,
    };
    print_header(config);

    // Preflight: fail before anything changes.
    if !config.in_place {
        crate::sync::check_not_nested(&config.source.value, &config.target.value)
            .map_err(untouched)?;
    }
    let wants_python = [
        BuiltinStep::DetectRuntime,
        BuiltinStep::ValidateEnv,
        BuiltinStep::PipInstall,
    ]
    .into_iter()
    .any(|step| plan_has(config, step));
    let (python_skip, source) = match python_skip_reason(config) {
        Some(skip) => (Some(skip), None),
        None if !wants_python => (None, None),
        None => match dependencies::choose(
            &config.source.value,
            config.dependencies.as_ref(),
            &config.requirements,
        )
        .map_err(untouched)?
        {
            Some(source) => (None, Some(source)),
            None => (Some(NO_DEPENDENCIES.to_string()), None),
        },
    };
    let wants_runtime = plan_has(config, BuiltinStep::DetectRuntime);
    let runner = Runner {
        env: &config.env,
        heartbeat: process::heartbeat_for(config.idle_timeout),
    };
    // An app that declares no dependencies still starts on the platform, with the stack's
    // Python alone: the start check runs it that way, with the interpreter found for it.
    let check_without_env = python_skip.as_deref() == Some(NO_DEPENDENCIES)
        && wants_runtime
        && plan_has(config, BuiltinStep::StartCheck)
        && start_check::would_check(config, &config.source.value);
    let runtime = match (&python_skip, wants_runtime) {
        (None, true) => Some(runtime::detect(config, &runner).map_err(untouched)?),
        (Some(_), true) if check_without_env => match runtime::detect(config, &runner) {
            Ok(runtime) => Some(runtime),
            Err(e) => {
                warn!(
                    "the start check cannot run the app without an env: {}",
                    e.explain().what
                );
                None
            }
        },
        _ => None,
    };
    if let Some(runtime) = &runtime
        && config.platform == Platform::Windows
        && plan_has(config, BuiltinStep::WebConfig)
        && let Some(line) = tail::check_web_config(
            &config.source.value,
            &runtime.interpreter.version,
            &config.env_name.value,
        )
        .map_err(untouched)?
    {
        info!("{line}");
    }
    let dependencies = match (source, &runtime) {
        (Some(source), Some(runtime)) => {
            info!("Dependencies: {} ({})", source.file, source.why);
            let out =
                crate::ground::paths::local_state_dir(&config.target.value).join("dependencies");
            let prepared = dependencies::prepare(
                source,
                &config.source.value,
                &runtime.interpreter,
                &config.dependency_groups.value,
                &out,
            )
            .map_err(untouched)?;
            if let Some(summary) = &prepared.summary {
                info!("Installing {summary}");
            }
            Some(prepared)
        }
        _ => None,
    };
    let plan = plan(config);
    let leaky = process::leaky_variables_present(&config.env);
    if !leaky.is_empty() {
        info!(
            "Ignoring {} from the host environment: they would make pip install into the wrong \
             place",
            leaky.join(", ")
        );
    }
    let installer = match (&runtime, &python_skip) {
        (Some(_), None) => {
            let installer = installer::resolve(
                &config.installer,
                config.uv.as_ref(),
                &config.source.value,
                &runner,
            )
            .map_err(untouched)?;
            info!(
                "Installer: {}",
                installer::describe(&installer, &config.installer)
            );
            Some(installer)
        }
        _ => None,
    };
    let lock = match config.dry_run {
        true => None,
        false => Some(
            lock::acquire(
                &config.target.value,
                config.commit_id.as_deref(),
                config.lock_wait.value,
                runner.heartbeat,
            )
            .map_err(untouched)?,
        ),
    };

    // The files reach the site at the sync step; until then the Python steps read the app from
    // the repository, so that a failed install changes nothing the site serves.
    let sync_planned = !config.in_place
        && plan
            .iter()
            .any(|s| s.action == StepAction::Builtin(BuiltinStep::Sync));
    let release = Release::prepare(&config.release, !sync_planned).map_err(untouched)?;
    let mut deployment = Deployment {
        config,
        runner,
        python_skip,
        runtime,
        dependencies,
        installer,
        env: None,
        install: None,
        release,
        looked: None,
        early_look: early_look(config, &plan),
        early_check: None,
        _lock: lock,
    };
    deployment.early_check = early_check(config, &plan, &deployment);
    for (index, step) in plan.iter().enumerate() {
        info!("==> [{}/{}] {}", index + 1, plan.len(), step.name);
        let span = info_span!("step").entered();
        let step_started = Instant::now();
        let result = deployment.run(step);
        let took = step_started.elapsed();
        match result {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Done(what) => {
                        info!("{what}");
                        info!("done in {}", seconds(took));
                    }
                    Outcome::Skipped(why) => info!("skipped: {why} ({})", seconds(took)),
                }
                records.push(StepRecord::new(&step.name, &outcome, took));
            }
            Err(error) if step.continue_on_error => {
                let what = error.explain().what;
                warn!("{what} (continuing: the step is marked continue_on_error)");
                records.push(StepRecord::failed(&step.name, &what, true, took));
            }
            Err(error) => {
                records.push(StepRecord::failed(
                    &step.name,
                    &error.explain().what,
                    false,
                    took,
                ));
                drop(span);
                info!("Deployment failed after {}", seconds(started.elapsed()));
                return Err(deployment.fail(error));
            }
        }
    }
    if let Err(error) = deployment.finish() {
        info!("Deployment failed after {}", seconds(started.elapsed()));
        return Err(deployment.fail(error));
    }
    if config.dry_run {
        info!(
            "Dry run finished in {}: nothing was changed",
            seconds(started.elapsed())
        );
    } else {
        info!(
            "Deployed to {} in {}",
            config.target.value.display(),
            seconds(started.elapsed())
        );
        info!(
            "Space: {}",
            deployment.release.space_report(false).summary()
        );
    }
    Ok(())
}

/// The archive the platform starts the live env from, where there is one.
fn live_archive(target: &std::path::Path) -> Option<std::path::PathBuf> {
    let archive = crate::platform::linux_start::platform_env(target).compressed?;
    Some(target.join(archive)).filter(|a| a.is_file())
}

fn print_header(config: &DeployConfig) {
    let commit = config
        .commit_id
        .as_deref()
        .map(|c| format!(" (commit {})", crate::ground::logging::short_commit(c)))
        .unwrap_or_default();
    info!(
        "kuduhook {} deploying {} -> {}{commit}",
        env!("CARGO_PKG_VERSION"),
        config.source.value.display(),
        config.target.value.display()
    );
    if crate::settings::kudu::is_zip_extraction(&config.source.value) {
        info!(
            "A zip deployment: Kudu extracted the zip into {} (no git; the sync compares the \
             files by content with what it last copied)",
            config.source.value.display()
        );
    }
    if let Some((command, line)) = &config.deployment_command
        && config.platform == crate::settings::Platform::Linux
        && crate::settings::kudu::command_needs_modes(command)
    {
        info!(
            "Note: .deployment line {line} runs `{command}`: Kudu makes the command executable \
             only when it is a bare path, so a zip deployment made on Windows (no modes) would \
             fail with \"Permission denied\"; `command = ./deploy/kuduhook` deploys the same \
             (run by Kudu with no arguments, kuduhook deploys)"
        );
    }
    if config.dry_run {
        info!("Dry run: printing the plan, changing nothing");
    }
    let steps_from = config
        .steps
        .path
        .clone()
        .unwrap_or_else(|| "the built-in default (no deploy/steps.json)".into());
    let disabled: Vec<&str> = config
        .steps
        .steps
        .iter()
        .filter(|s| !s.enabled)
        .map(|s| s.name.as_str())
        .collect();
    let disabled = if disabled.is_empty() {
        String::new()
    } else {
        format!("; disabled: {}", disabled.join(", "))
    };
    info!("Steps: {steps_from}{disabled}");
}

/// The start check's look at the source, taken in a thread while the steps before the check
/// run (on App Service's share the look is round trips, the Python steps mostly wait on their
/// processes): only when the check reads the app from the source, and only the runtime, env
/// and install steps come before it, which do not change the source (an install that ran is
/// the exception: its look is taken again).
fn early_look(
    config: &DeployConfig,
    plan: &[Planned],
) -> Option<std::thread::JoinHandle<Option<crate::sync::Looked>>> {
    if !only_python_before_check(plan) || config.dry_run || config.in_place {
        return None;
    }
    let options = sync::options(config);
    let span = tracing::Span::current();
    Some(std::thread::spawn(move || {
        span.in_scope(|| crate::sync::look_at_source(&options))
    }))
}

/// The start check begun while validate-env runs, with the live env: only where
/// [`early_look`] may look early (nothing before the check changes the app but an install,
/// which drops it), the check reads the app from the repository, and the commit is not the
/// one the last passing check saw (whose check is most likely skipped, and a process begun
/// for nothing would only take a core).
fn early_check(
    config: &DeployConfig,
    plan: &[Planned],
    deployment: &Deployment,
) -> Option<start_check::Early> {
    if !only_python_before_check(plan)
        || config.dry_run
        || config.in_place
        || deployment.release.synced
        || deployment.python_skip.is_some()
    {
        return None;
    }
    let stack = &deployment.runtime.as_ref()?.interpreter;
    let commit = config.commit_id.as_deref()?;
    let state = crate::ground::paths::local_state_dir(&config.target.value);
    let passed = crate::steps::check_memo::read(&state);
    if passed.is_some_and(|passed| passed.commit.as_deref() == Some(commit)) {
        return None;
    }
    let options = config.release.clone();
    let platform = config.platform;
    let (live, interpreter) = (config.env_dir(), stack.clone());
    start_check::Early::begin(config, &config.source.value, stack, move || {
        let minor = interpreter.version.minor_version();
        Some(start_check::LiveEnv {
            python: crate::env::venv::env_python(&live, platform),
            archived: Release::current_archive(&options, &minor)
                .map(|archive| start_check::ArchivedEnv::new(archive, &interpreter)),
        })
    })
}

/// The look [`early_look`] took, once it is done (`None` when none was taken, or it found
/// nothing to hand over).
fn take_look(
    early: &mut Option<std::thread::JoinHandle<Option<crate::sync::Looked>>>,
) -> Option<crate::sync::Looked> {
    early.take().and_then(|look| look.join().ok()).flatten()
}

/// Whether the plan has the start check, and only the runtime, env and install steps before
/// it.
fn only_python_before_check(plan: &[Planned]) -> bool {
    let Some(check) = plan
        .iter()
        .position(|s| s.action == StepAction::Builtin(BuiltinStep::StartCheck))
    else {
        return false;
    };
    plan[..check].iter().all(|s| {
        matches!(
            s.action,
            StepAction::Builtin(
                BuiltinStep::DetectRuntime | BuiltinStep::ValidateEnv | BuiltinStep::PipInstall
            )
        )
    })
}

/// Whether `step` is in the steps file and enabled.
fn plan_has(config: &DeployConfig, step: BuiltinStep) -> bool {
    config.steps.builtin(step).is_some_and(|e| e.enabled)
}

/// The steps to run: the enabled entries of the steps file, with the `PRE_BUILD_COMMAND` and
/// `POST_BUILD_COMMAND` settings around pip-install.
fn plan(config: &DeployConfig) -> Vec<Planned> {
    let mut plan = Vec::new();
    let build_command = |setting: &Option<crate::settings::Setting<String>>, name: &str| {
        setting.as_ref().map(|s| Planned {
            name: format!("{name} (from {})", s.origin),
            action: StepAction::Run(s.value.clone()),
            continue_on_error: false,
        })
    };
    let pip_enabled = plan_has(config, BuiltinStep::PipInstall);
    for entry in config.steps.steps.iter().filter(|e| e.enabled) {
        let is_pip = entry.action == StepAction::Builtin(BuiltinStep::PipInstall);
        if is_pip {
            plan.extend(build_command(
                &config.pre_build_command,
                "PRE_BUILD_COMMAND",
            ));
        }
        plan.push(Planned {
            name: entry.name.clone(),
            action: entry.action.clone(),
            continue_on_error: entry.continue_on_error,
        });
        if is_pip {
            plan.extend(build_command(
                &config.post_build_command,
                "POST_BUILD_COMMAND",
            ));
        }
    }
    if !pip_enabled && (config.pre_build_command.is_some() || config.post_build_command.is_some()) {
        warn!(
            "PRE_BUILD_COMMAND / POST_BUILD_COMMAND run around pip-install, which is disabled: they do not run"
        );
    }
    plan
}

/// Why the Python steps do not apply to this app, like deploy.cmd decided it (an app without
/// any dependency source is the other case, found with the source).
fn python_skip_reason(config: &DeployConfig) -> Option<String> {
    let source = &config.source.value;
    if source.join(".skipPythonDeployment").exists() {
        return Some("the app has a .skipPythonDeployment file".into());
    }
    let requirements = &config.requirements;
    if dependencies::names_a_file(source, requirements)
        && !source.join(&requirements.value).is_file()
    {
        return Some(format!(
            "no {} in the app (from {}): like deploy.cmd, kuduhook builds an env only for an app \
             with requirements; add the file, even empty, to get one",
            requirements.value, requirements.origin
        ));
    }
    None
}

/// Why the Python steps are skipped for an app that declares no dependencies at all.
const NO_DEPENDENCIES: &str = "no requirements.txt, pyproject.toml, uv.lock, poetry.lock or \
     Pipfile.lock in the app (nor setup.py): like deploy.cmd, kuduhook builds an env only for an \
     app that declares its dependencies; add requirements.txt, even empty, to get one";

/// A deployment in progress: what earlier steps found and made.
struct Deployment<'a> {
    config: &'a DeployConfig,
    runner: Runner<'a>,
    python_skip: Option<String>,
    runtime: Option<Runtime>,
    /// What pip-install installs, from the app's dependency source.
    dependencies: Option<Prepared>,
    installer: Option<Installer>,
    env: Option<PreparedEnv>,
    /// The install validate-env planned (and compared with the env's last), for pip-install.
    install: Option<InstallPlan>,
    /// What the site will serve: the new env and files, going live, recorded or rolled back.
    release: Release<'a>,
    /// The source as the start check's key looked at it, for the sync if it comes next.
    looked: Option<crate::sync::Looked>,
    /// The start check's look at the source, taken while the Python steps before it run
    /// ([`early_look`]); `None` once used, or when it may not be taken early.
    early_look: Option<std::thread::JoinHandle<Option<crate::sync::Looked>>>,
    /// The start check begun while validate-env runs ([`early_check`]); dropped (stopped)
    /// when a step before the check changes the env or the app.
    early_check: Option<start_check::Early>,
    /// Held until the deployment ends.
    _lock: Option<DeployLock>,
}

impl Deployment<'_> {
    fn run(&mut self, step: &Planned) -> Result<Outcome, DeployError> {
        let c = self.config;
        // The source as the start check's key looked at it: for the sync only if it runs right
        // after (another step may change the source).
        let looked = self.looked.take();
        let builtin = match &step.action {
            StepAction::Run(command) => {
                return custom::run_step(c, self.env.as_ref(), &step.name, command, &self.runner);
            }
            StepAction::Builtin(builtin) => *builtin,
        };
        let checked_without_env = builtin == BuiltinStep::StartCheck && self.runtime.is_some();
        if builtin.is_python()
            && !checked_without_env
            && let Some(why) = self.python_skip.clone()
        {
            // A look taken for the check that does not run is the sync's (nothing ran since).
            if builtin == BuiltinStep::StartCheck {
                self.looked = take_look(&mut self.early_look);
            }
            return Ok(Outcome::Skipped(why));
        }
        // Before the sync (and in a dry run, whose sync copies nothing) the app's files are
        // read from the repository.
        let app = if c.dry_run || !self.release.synced {
            &c.source.value
        } else {
            &c.target.value
        };
        let runtime = || self.runtime.as_ref().expect("detect-runtime runs first");
        match builtin {
            BuiltinStep::Sync => {
                let outcome =
                    sync::run(c, Release::undo_dir(&c.release), looked).map_err(|failure| {
                        self.release.sync_partial = failure.target_changed;
                        failure.error
                    })?;
                self.release.synced = true;
                self.release.sync_ran = !c.in_place;
                self.go_live()?;
                Ok(outcome)
            }
            BuiltinStep::DetectRuntime => Ok(runtime::run(runtime())),
            BuiltinStep::ValidateEnv => {
                let store = crate::env::store::open(&c.release.store);
                let installer = self.installer.as_ref().expect("resolved with the runtime");
                let install = self
                    .pip_planned()
                    .then_some(self.dependencies.as_ref())
                    .flatten()
                    .map(|deps| InstallPlan::new(c, installer, app, deps));
                let inputs = EnvInputs {
                    runtime: runtime(),
                    store: &store,
                    installer,
                    install: install.as_ref(),
                    archive: live_archive(&c.target.value),
                };
                let validated = env_step::run(c, &inputs, &self.runner)?;
                if validated.pending.is_some() {
                    // Not the live env: the check begun with it is not this deployment's.
                    self.early_check = None;
                }
                self.env = validated.env;
                self.release.pending_env = validated.pending;
                self.release.store = Some(store);
                self.release
                    .decide_archives(&runtime().interpreter.version.minor_version());
                self.install = install;
                if !self.pip_planned() && self.release.synced {
                    self.go_live()?;
                }
                Ok(validated.outcome)
            }
            BuiltinStep::PipInstall => {
                let installer = self.installer.clone().expect("resolved with the runtime");
                let installer = &installer;
                let plan = match self.install.take() {
                    Some(plan) => plan,
                    None => {
                        let deps = self.dependencies.as_ref().expect("found with the runtime");
                        InstallPlan::new(c, installer, app, deps)
                    }
                };
                let live = self.release.store.as_ref().map(|s| s.live.clone());
                let live = live.unwrap_or_else(|| c.env_dir());
                // Only incremental mode installs into the env the site runs.
                self.release.changing_in_place(
                    c.env_mode.value == EnvMode::Incremental
                        && self.env.as_ref().is_some_and(|e| e.dir == live),
                );
                let installed = pip::run(
                    c,
                    installer,
                    &plan,
                    self.env.as_mut(),
                    &live,
                    app,
                    &self.runner,
                );
                let unproven = installed
                    .as_ref()
                    .err()
                    .and_then(|e| match e.downcast_ref() {
                        Some(EnvError::ReuseUnproven { why }) => Some(why.clone()),
                        _ => None,
                    });
                let outcome = match (installed, unproven) {
                    (_, Some(why)) => {
                        self.build_fresh_instead(&plan, why)?;
                        pip::run(
                            c,
                            installer,
                            &plan,
                            self.env.as_mut(),
                            &live,
                            app,
                            &self.runner,
                        )?
                    }
                    (other, None) => other?,
                };
                self.release.changed_in_place = false;
                if self.release.synced {
                    self.go_live()?;
                }
                // An install may build in the source (a local or editable package): what was
                // looked at before it is looked at again.
                if matches!(outcome, Outcome::Done(_)) {
                    take_look(&mut self.early_look);
                    self.early_check = None;
                }
                Ok(outcome)
            }
            BuiltinStep::StartCheck => {
                // The app's files looked at once, as the sync looks at them, for the check's key
                // and then the sync (when it comes next): one stat per file, not two, or for a
                // git checkout its commit's tree.
                let mut looked = match self.early_look.is_some() {
                    true => take_look(&mut self.early_look),
                    false => (!self.release.synced && app == c.source.value.as_path())
                        .then(|| crate::sync::look_at_source(&sync::options(c)))
                        .flatten(),
                };
                if let Some(looked) = &mut looked {
                    looked.tell();
                }
                // The live env, unchanged, shipped as an archive: checked from its archive.
                let r = &self.release;
                let archived = match (&r.pending_env, &r.archives, &r.store) {
                    (None, Some(archives), Some(store)) => {
                        archives.current_for(&store.live).map(|archive| {
                            start_check::ArchivedEnv::new(archive, &runtime().interpreter)
                        })
                    }
                    _ => None,
                };
                let stack = self.runtime.as_ref().map(|r| &r.interpreter);
                let beforehand = start_check::Beforehand {
                    archive: archived.as_ref(),
                    looked: looked.as_ref(),
                    early: self.early_check.take(),
                };
                let outcome =
                    start_check::run(c, self.env.as_ref(), app, &self.runner, stack, beforehand);
                // A check that ran imported the app there, which may have written files.
                self.looked = match outcome {
                    Ok(Outcome::Skipped(_)) => looked,
                    _ => looked.and_then(crate::sync::Looked::after_a_process_ran),
                };
                outcome
            }
            BuiltinStep::WebConfig => {
                tail::web_config(app, &runtime().interpreter.version, c.dry_run)
            }
            BuiltinStep::Collectstatic => {
                tail::collectstatic_step(c, self.env.as_ref(), app, &self.runner)
            }
        }
    }

    /// Replaces the env copied from the live one (whose exactness could not be proven, `why`)
    /// with a fresh one.
    fn build_fresh_instead(&mut self, plan: &InstallPlan, why: String) -> Result<(), DeployError> {
        info!(
            "The env copied from the live one cannot be proven exact ({why}): building a fresh env instead"
        );
        if let Some(copied) = self.release.pending_env.take() {
            remove_any(&copied)?;
        }
        let store = self.release.store.as_ref().expect("validate-env ran");
        let inputs = EnvInputs {
            runtime: self.runtime.as_ref().expect("detect-runtime ran"),
            store,
            installer: self.installer.as_ref().expect("resolved with the runtime"),
            install: Some(plan),
            archive: live_archive(&self.config.target.value),
        };
        let validated = env_step::build_fresh(self.config, &inputs, &self.runner, vec![why])?;
        if let Outcome::Done(what) = &validated.outcome {
            info!("{what}");
        }
        self.env = validated.env;
        self.release.pending_env = validated.pending;
        Ok(())
    }

    /// Whether pip-install runs in this deployment.
    fn pip_planned(&self) -> bool {
        plan_has(self.config, BuiltinStep::PipInstall)
    }

    /// The env as the steps run it, for going live.
    fn go_live(&mut self) -> Result<(), DeployError> {
        self.release.go_live(self.env.as_mut())
    }

    /// After the last step: a new env still waiting goes live, and the release is recorded.
    fn finish(&mut self) -> Result<(), DeployError> {
        self.release.finish(self.env.as_mut())
    }

    /// Puts the site back as it was, and says what it serves now.
    fn fail(&mut self, error: DeployError) -> Failure {
        // Not left writing its record while the site is put back.
        take_look(&mut self.early_look);
        self.early_check = None;
        let state = self.release.fail();
        if error.disk_full() {
            info!("{}", self.release.space_report(true).freeable());
        }
        Failure { error, state }
    }
}
