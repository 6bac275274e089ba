//! The pipeline: runs a deployment's steps in order, each under a header with what it decided
//! and how long it took, and on failure says what state the site was left in.
//!
//! Everything that can be checked without changing the target is checked first (the steps
//! file, the Python version and interpreter, the installer, the paths), so that a bad push
//! fails before the site is touched. Then the deploy lock is taken: one deployment at a time.
//!
//! The default steps build and fill a new env (from the repository's requirements) before the
//! sync, so a failed install leaves the site's files and env as they were. A new env goes live
//! (one atomic switch) once it is complete and the files are synced, so that the steps after
//! that run the new env from its usual path. When a later step fails, the site is switched
//! back to the previous env, which is removed only when the deployment succeeds.

use std::path::PathBuf;
use std::time::Instant;

use tracing::{info, info_span, warn};

use crate::config::{DeployConfig, EnvMode};
use crate::dependencies::{self, Prepared};
use crate::deploy_record::{DeploymentRecord, StepRecord};
use crate::env_store::{EnvStore, Switched, remove_any};
use crate::errors::{DeployError, site_state as state};
use crate::installer::{self, Installer};
use crate::lock::{self, DeployLock};
use crate::logging::seconds;
use crate::platform::env_archive::SiteArchives;
use crate::platform::{Platform, linux_start};
use crate::process::{self, Runner};
use crate::steps::env::{self as env_step, EnvInputs, PreparedEnv, env_python};
use crate::steps::pip::InstallPlan;
use crate::steps::runtime::{self, Runtime};
use crate::steps::{Outcome, custom, pip, start_check, sync, tail};
use crate::steps_file::{BuiltinStep, StepAction};

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
    let started_unix = crate::env_record::now_unix();
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
                crate::deploy_record::path(&config.target.value).display()
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
        None => match dependencies::choose(&config.source.value, config).map_err(untouched)? {
            Some(source) => (None, Some(source)),
            None => (Some(NO_DEPENDENCIES.to_string()), None),
        },
    };
    let wants_runtime = plan_has(config, BuiltinStep::DetectRuntime);
    let runner = Runner {
        env: &config.env,
        heartbeat: process::heartbeat_for(config.idle_timeout),
    };
    let runtime = match (&python_skip, wants_runtime) {
        (None, true) => Some(runtime::detect(config, &runner).map_err(untouched)?),
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
            let out = crate::paths::local_state_dir(&config.target.value).join("dependencies");
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
    let installer = match &runtime {
        Some(_) => {
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
        None => None,
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
    let mut deployment = Deployment {
        config,
        synced: !sync_planned,
        runner,
        python_skip,
        runtime,
        dependencies,
        installer,
        store: None,
        env: None,
        install: None,
        pending: None,
        switched: None,
        changed_in_place: false,
        files_changed: false,
        sync_partial: false,
        start_file: None,
        archives: None,
        live_archive: None,
        sync_ran: false,
        _lock: lock,
    };
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
    }
    Ok(())
}

fn print_header(config: &DeployConfig) {
    let commit = config
        .commit_id
        .as_deref()
        .map(|c| format!(" (commit {})", crate::logging::short_commit(c)))
        .unwrap_or_default();
    info!(
        "kuduhook {} deploying {} -> {}{commit}",
        env!("CARGO_PKG_VERSION"),
        config.source.value.display(),
        config.target.value.display()
    );
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

/// Whether `step` is in the steps file and enabled.
fn plan_has(config: &DeployConfig, step: BuiltinStep) -> bool {
    config.steps.builtin(step).is_some_and(|e| e.enabled)
}

/// The steps to run: the enabled entries of the steps file, with the `PRE_BUILD_COMMAND` and
/// `POST_BUILD_COMMAND` settings around pip-install.
fn plan(config: &DeployConfig) -> Vec<Planned> {
    let mut plan = Vec::new();
    let build_command = |setting: &Option<crate::config::Setting<String>>, name: &str| {
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
    if requirements.origin != crate::config::Origin::Default
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
     Pipfile.lock in the app: like deploy.cmd, kuduhook builds an env only for an app that \
     declares its dependencies; add requirements.txt, even empty, to get one";

/// A deployment in progress: what earlier steps found and made.
struct Deployment<'a> {
    config: &'a DeployConfig,
    runner: Runner<'a>,
    python_skip: Option<String>,
    runtime: Option<Runtime>,
    /// What pip-install installs, from the app's dependency source.
    dependencies: Option<Prepared>,
    installer: Option<Installer>,
    /// The site's envs, once validate-env has looked at them.
    store: Option<EnvStore>,
    env: Option<PreparedEnv>,
    /// The install validate-env planned (and compared with the env's last), for pip-install.
    install: Option<InstallPlan>,
    /// Whether the app's files are in the target yet (the sync step has run, or there is none).
    synced: bool,
    /// A new env the site does not run yet.
    pending: Option<PathBuf>,
    /// The switch to a new env, undone if the deployment fails.
    switched: Option<Switched>,
    /// An incremental install changed the live env in place.
    changed_in_place: bool,
    files_changed: bool,
    /// This deployment's sync step ran (its record is sealed when the deployment succeeds).
    sync_ran: bool,
    /// The sync failed after it had started changing the target.
    sync_partial: bool,
    /// The platform's start file this deployment changed (`oryx-manifest.toml`), undone on
    /// failure.
    start_file: Option<linux_start::ManifestChange>,
    /// Where the env is shipped as an archive too (decided once, with the store).
    archives: Option<SiteArchives>,
    /// The live env's archive as the manifest names it, where the env is shipped as one.
    live_archive: Option<String>,
    /// Held until the deployment ends.
    _lock: Option<DeployLock>,
}

impl Deployment<'_> {
    fn run(&mut self, step: &Planned) -> Result<Outcome, DeployError> {
        let c = self.config;
        let builtin = match &step.action {
            StepAction::Run(command) => {
                return custom::run_step(c, self.env.as_ref(), &step.name, command, &self.runner);
            }
            StepAction::Builtin(builtin) => *builtin,
        };
        if builtin.is_python()
            && let Some(why) = &self.python_skip
        {
            return Ok(Outcome::Skipped(why.clone()));
        }
        // Before the sync (and in a dry run, whose sync copies nothing) the app's files are
        // read from the repository.
        let app = if c.dry_run || !self.synced {
            &c.source.value
        } else {
            &c.target.value
        };
        let runtime = || self.runtime.as_ref().expect("detect-runtime runs first");
        match builtin {
            BuiltinStep::Sync => {
                let (outcome, changed) = sync::run(c).map_err(|failure| {
                    self.sync_partial = failure.target_changed;
                    failure.error
                })?;
                self.files_changed |= changed;
                self.synced = true;
                self.sync_ran = !c.in_place;
                self.go_live()?;
                Ok(outcome)
            }
            BuiltinStep::DetectRuntime => Ok(runtime::run(runtime())),
            BuiltinStep::ValidateEnv => {
                let store = env_step::store(c);
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
                };
                let validated = env_step::run(c, &inputs, &self.runner)?;
                self.env = validated.env;
                self.pending = validated.pending;
                self.store = Some(store);
                self.archives = self.site_archives();
                self.install = install;
                if !self.pip_planned() && self.synced {
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
                let live = self.store.as_ref().map(|s| s.live.clone());
                let live = live.unwrap_or_else(|| c.env_dir());
                // Only incremental mode installs into the env the site runs.
                self.changed_in_place = c.env_mode.value == EnvMode::Incremental
                    && self.env.as_ref().is_some_and(|e| e.dir == live);
                let installed = pip::run(
                    c,
                    installer,
                    &plan,
                    self.env.as_mut(),
                    &live,
                    app,
                    &self.runner,
                );
                let outcome = match installed {
                    Err(DeployError::ReuseUnproven { why }) => {
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
                    other => other?,
                };
                self.changed_in_place = false;
                if self.synced {
                    self.go_live()?;
                }
                Ok(outcome)
            }
            BuiltinStep::StartCheck => {
                // The live env, unchanged, shipped as an archive: checked from its archive.
                let archived = match (&self.pending, &self.archives, &self.store) {
                    (None, Some(archives), Some(store)) => {
                        archives.current_for(&store.live).map(|archive| {
                            let interpreter = &runtime().interpreter;
                            start_check::ArchivedEnv {
                                archive,
                                interpreter: interpreter.path.clone(),
                                minor: interpreter.version.minor_version(),
                            }
                        })
                    }
                    _ => None,
                };
                start_check::run(c, self.env.as_ref(), app, &self.runner, archived.as_ref())
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
        if let Some(copied) = self.pending.take() {
            remove_any(&copied)?;
        }
        let store = self.store.as_ref().expect("validate-env ran");
        let inputs = EnvInputs {
            runtime: self.runtime.as_ref().expect("detect-runtime ran"),
            store,
            installer: self.installer.as_ref().expect("resolved with the runtime"),
            install: Some(plan),
        };
        let validated = env_step::build_fresh(self.config, &inputs, &self.runner, vec![why])?;
        if let Outcome::Done(what) = &validated.outcome {
            info!("{what}");
        }
        self.env = validated.env;
        self.pending = validated.pending;
        Ok(())
    }

    /// Whether pip-install runs in this deployment.
    fn pip_planned(&self) -> bool {
        plan_has(self.config, BuiltinStep::PipInstall)
    }

    /// Switches the site to the new env, if one is waiting: from here on the steps run it
    /// from the live path. It happens once both the env is complete and the files are synced,
    /// so the new files and the new env start serving together.
    fn go_live(&mut self) -> Result<(), DeployError> {
        let (Some(built), Some(store)) = (self.pending.take(), &self.store) else {
            return Ok(());
        };
        let archives = self.archives.as_ref();
        let pack = archives.map(|archives| |built: &std::path::Path| archives.pack_built(built));
        let (switched, packed) = match store.go_live_with(&built, pack) {
            Ok(done) => done,
            Err(error) => {
                let _ = remove_any(&built);
                return Err(error);
            }
        };
        if let (Some(archives), Some(packed)) = (archives, packed) {
            archives.went_live(&store.live);
            info!(
                "Packed the new env for the platform's start while it was copied ({}): {}; \
                 App Service extracts it to /{} on local disk at each start, so imports do not \
                 cross the network",
                packed.describe(),
                archives.why,
                self.config.env_name.value
            );
        }
        info!(
            "The site now runs the new env: {} -> {} ({} switch{})",
            store.live.display(),
            built.display(),
            store.mode.name(),
            if switched.not_atomic {
                ""
            } else {
                ", one atomic rename"
            }
        );
        if switched.not_atomic {
            warn!(
                "this filesystem cannot exchange folders atomically: {} was missing for an \
                 instant between two renames",
                store.live.display()
            );
        }
        if let Some(env) = &mut self.env {
            env.dir = store.live.clone();
            env.python = env_python(&store.live, self.config.platform);
        }
        self.switched = Some(switched);
        self.publish_start_file()
    }

    /// On a Linux site, makes `oryx-manifest.toml` name the live env, so that the platform's
    /// next start uses it. Written right after the env switch (and, when the env was reused,
    /// at the end): no start between two deployments sees a manifest and an env that disagree.
    fn publish_start_file(&mut self) -> Result<(), DeployError> {
        let c = self.config;
        if c.platform != Platform::Linux || c.dry_run || self.store.is_none() || !self.synced {
            return Ok(());
        }
        let keep = crate::paths::state_dir(&c.target.value);
        let archive = match (&self.archives, &self.store) {
            (Some(archives), Some(store)) if store.live.join("pyvenv.cfg").is_file() => {
                let mut named_as = vec![store.live.clone()];
                if let crate::env_store::LiveEnv::Link(to) = store.live_env() {
                    named_as.push(to);
                }
                let live = archives.for_live(&store.live, &named_as)?;
                if let Some((packed, why)) = &live.packed {
                    info!(
                        "Packed the env into {} for the platform's start ({}): {why} \
                         (it is shipped as an archive because {})",
                        live.relative,
                        packed.describe(),
                        archives.why
                    );
                }
                Some(live.relative)
            }
            _ => None,
        };
        let published = linux_start::publish(
            &c.target.value,
            &c.env_name.value,
            archive.as_deref(),
            &keep,
        )?;
        self.live_archive = archive;
        if let Some(change) = published {
            match change.replaced_foreign {
                true => warn!("{}", change.said),
                false => info!("{}", change.said),
            }
            self.start_file.get_or_insert(change);
        }
        Ok(())
    }

    /// Whether the env is also shipped as one archive for the platform's start: a Linux site on
    /// a network filesystem (App Service's `/home`, an SMB share), where a start that imports
    /// from the env folder would cross the network for every file it looks up.
    /// `KUDUHOOK_ENV_ARCHIVE` turns it on or off.
    fn site_archives(&self) -> Option<SiteArchives> {
        let c = self.config;
        let store = self.store.as_ref()?;
        if c.platform != Platform::Linux || c.dry_run {
            return None;
        }
        let why = match c.env_archive.value {
            Some(false) => return None,
            Some(true) => format!("{} is on", crate::config::name::KUDUHOOK_ENV_ARCHIVE),
            None => match crate::env_store::network_filesystem(&c.target.value) {
                Some(kind) => format!("the site is on a network filesystem ({kind})"),
                None if store.staging.is_some() => {
                    "the site's filesystem refuses links (a network share)".into()
                }
                None => return None,
            },
        };
        let minor = self.runtime.as_ref()?.interpreter.version.minor_version();
        Some(SiteArchives::new(
            &c.target.value,
            &c.env_name.value,
            &minor,
            why,
        ))
    }

    /// After the last step: a new env still waiting goes live, and the previous env is no
    /// longer needed.
    fn finish(&mut self) -> Result<(), DeployError> {
        self.go_live()?;
        self.publish_start_file()?;
        match (&self.archives, &self.live_archive) {
            (Some(archives), Some(live)) => {
                let removed = archives.remove_others(live);
                if removed > 0 {
                    info!("Removed {removed} archive(s) of previous envs");
                }
            }
            (None, _)
                if self.store.is_some()
                    && !self.config.dry_run
                    && SiteArchives::remove_all(&self.config.target.value) =>
            {
                info!("Removed the env's archives: the env is no longer shipped as one");
            }
            _ => {}
        }
        let retired = self.retire_previous_env();
        if self.sync_ran && !self.config.dry_run {
            // Last: nothing after this changes the site's top folder.
            crate::sync::delta::seal(&self.config.target.value);
        }
        retired
    }

    /// Removes the env the site ran before this deployment's switch, if there was one.
    fn retire_previous_env(&mut self) -> Result<(), DeployError> {
        let (Some(switched), Some(store)) = (self.switched.take(), &self.store) else {
            return Ok(());
        };
        match store.retire(&switched) {
            Ok(Some(old)) => info!("Removed the previous env {}", old.display()),
            Ok(None) => {}
            Err(e) => warn!(
                "could not remove the previous env: {} (the next deployment tries again)",
                e.explain().what
            ),
        }
        Ok(())
    }

    /// Switches the site back to the previous env (or drops a new one it never ran), and says
    /// what the site serves now.
    fn fail(&mut self, error: DeployError) -> Failure {
        if let Some(built) = self.pending.take() {
            let _ = remove_any(&built);
        }
        let rolled_back = match (self.switched.take(), &self.store) {
            (Some(switched), Some(store)) => {
                let result = store.roll_back(&switched);
                match &result {
                    Ok(()) => info!("Switched the site back to the previous env"),
                    Err(e) => warn!("could not switch back: {}", e.explain().what),
                }
                Some(result.is_ok())
            }
            _ => None,
        };
        if let Some(change) = self.start_file.take() {
            match linux_start::restore(&self.config.target.value, &change) {
                Ok(()) => info!("Put back the previous {}", linux_start::MANIFEST),
                Err(e) => warn!(
                    "could not put back {}: {}",
                    linux_start::MANIFEST,
                    e.explain().what
                ),
            }
        }
        let state = match (rolled_back, self.files_changed) {
            _ if self.sync_partial => state::SYNC_PARTIAL,
            _ if self.changed_in_place => state::ENV_CHANGED_IN_PLACE,
            (Some(false), _) => state::ENV_NOT_RESTORED,
            (Some(true), true) => state::FILES_CHANGED_ENV_RESTORED,
            (Some(true), false) => state::ENV_RESTORED,
            (None, true) => state::FILES_CHANGED_ENV_KEPT,
            (None, false) => state::UNTOUCHED,
        };
        Failure { error, state }
    }
}
