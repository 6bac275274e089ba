//! The pipeline: runs a deployment's steps in order, each under a header with what it decided
//! and how long it took, and on failure says what state the site was left in.
//!
//! Everything that can be checked without changing the target is checked first (the steps
//! file, the Python version and interpreter, the paths), so that a bad push fails before the
//! site is touched. When a later step fails, an env that a rebuild set aside is put back.

use std::path::PathBuf;
use std::time::Instant;

use tracing::{info, info_span, warn};

use crate::config::DeployConfig;
use crate::errors::{DeployError, site_state as state};
use crate::logging::seconds;
use crate::process::{self, Runner};
use crate::steps::env::{self as env_step, PreparedEnv};
use crate::steps::runtime::{self, Runtime};
use crate::steps::{Outcome, custom, pip, sync, tail};
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

/// Runs the deployment `config` describes.
pub fn deploy(config: &DeployConfig) -> Result<(), Failure> {
    let started = Instant::now();
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
    let python_skip = python_skip_reason(config);
    let wants_runtime = config
        .steps
        .steps
        .iter()
        .any(|s| s.enabled && s.action == StepAction::Builtin(BuiltinStep::DetectRuntime));
    let runtime = match (&python_skip, wants_runtime) {
        (None, true) => Some(runtime::detect(config).map_err(untouched)?),
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

    let mut deployment = Deployment {
        config,
        runner: Runner {
            env: &config.env,
            heartbeat: process::heartbeat_for(config.idle_timeout),
        },
        python_skip,
        runtime,
        env: None,
        parked_env: None,
        files_changed: false,
        sync_partial: false,
    };
    for (index, step) in plan.iter().enumerate() {
        info!("==> [{}/{}] {}", index + 1, plan.len(), step.name);
        let span = info_span!("step").entered();
        let step_started = Instant::now();
        match deployment.run(step) {
            Ok(Outcome::Done(what)) => {
                info!("{what}");
                info!("done in {}", seconds(step_started.elapsed()));
            }
            Ok(Outcome::Skipped(why)) => {
                info!("skipped: {why} ({})", seconds(step_started.elapsed()))
            }
            Err(error) if step.continue_on_error => {
                warn!(
                    "{} (continuing: the step is marked continue_on_error)",
                    error.explain().what
                );
            }
            Err(error) => {
                drop(span);
                info!("Deployment failed after {}", seconds(started.elapsed()));
                return Err(deployment.fail(error));
            }
        }
    }
    deployment.finish();
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
        .map(|c| format!(" (commit {})", &c[..c.len().min(12)]))
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
    let pip_enabled = config
        .steps
        .builtin(BuiltinStep::PipInstall)
        .is_some_and(|e| e.enabled);
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

/// Why the Python steps do not apply to this app, like deploy.cmd decided it.
fn python_skip_reason(config: &DeployConfig) -> Option<String> {
    let source = &config.source.value;
    if source.join(".skipPythonDeployment").exists() {
        return Some("the app has a .skipPythonDeployment file".into());
    }
    let requirements = &config.requirements;
    if !source.join(&requirements.value).is_file() {
        return Some(format!(
            "no {} in the app (from {}): like deploy.cmd, kuduhook builds an env only for an app \
             with requirements; add the file, even empty, to get one",
            requirements.value, requirements.origin
        ));
    }
    None
}

/// A deployment in progress: what earlier steps found and made.
struct Deployment<'a> {
    config: &'a DeployConfig,
    runner: Runner<'a>,
    python_skip: Option<String>,
    runtime: Option<Runtime>,
    env: Option<PreparedEnv>,
    /// The previous env, set aside by a rebuild until the deployment succeeds.
    parked_env: Option<PathBuf>,
    files_changed: bool,
    /// The sync failed after it had started changing the target.
    sync_partial: bool,
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
        // After a dry run's sync (which copied nothing), the app's files are in the source.
        let app = if c.dry_run {
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
                Ok(outcome)
            }
            BuiltinStep::DetectRuntime => Ok(runtime::run(runtime())),
            BuiltinStep::ValidateEnv => {
                let validated = env_step::run(c, runtime(), &self.runner)?;
                self.env = validated.env;
                self.parked_env = validated.parked;
                Ok(validated.outcome)
            }
            BuiltinStep::PipInstall => pip::run(c, self.env.as_mut(), app, &self.runner),
            BuiltinStep::WebConfig => {
                tail::web_config(app, &runtime().interpreter.version, c.dry_run)
            }
            BuiltinStep::Collectstatic => {
                tail::collectstatic_step(c, self.env.as_ref(), app, &self.runner)
            }
        }
    }

    /// After the last step: the previous env is no longer needed.
    fn finish(&mut self) {
        if let Some(parked) = self.parked_env.take() {
            match env_step::remove_dir(&parked) {
                Ok(()) => info!("Removed the previous env {}", parked.display()),
                Err(e) => warn!(
                    "could not remove the previous env {}: {} (the next deployment tries again)",
                    parked.display(),
                    e.explain().what
                ),
            }
        }
    }

    /// Puts a set-aside env back, and says what the site serves now.
    fn fail(&mut self, error: DeployError) -> Failure {
        let restored = match (self.parked_env.take(), &self.env) {
            (Some(parked), Some(env)) => Some(env_step::put_back(&parked, &env.dir).is_ok()),
            _ => None,
        };
        let state = match (restored, self.files_changed) {
            _ if self.sync_partial => state::SYNC_PARTIAL,
            (Some(false), _) => state::ENV_NOT_RESTORED,
            (Some(true), true) => state::FILES_CHANGED_ENV_RESTORED,
            (Some(true), false) => state::ENV_RESTORED,
            (None, true) => state::FILES_CHANGED_ENV_KEPT,
            (None, false) => state::UNTOUCHED,
        };
        Failure { error, state }
    }
}
