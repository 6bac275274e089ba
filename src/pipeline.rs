//! The pipeline: runs a deployment's steps in order, each under a header with what it decided
//! and how long it took, and on failure says what state the site was left in.
//!
//! Everything that can be checked without changing the target is checked first (the steps
//! file, the Python version and interpreter, the paths), so that a bad push fails before the
//! site is touched. When a later step fails, an env that a rebuild set aside is put back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, info_span, warn};

use crate::config::{DeployConfig, ForceRebuild};
use crate::env_record::{EnvRecord, now_unix};
use crate::errors::DeployError;
use crate::process::{self, Runner};
use crate::steps::custom::{self, CommandContext};
use crate::steps::env::{self as env_step, NewEnv, PreparedEnv};
use crate::steps::pip::{self, Installed};
use crate::steps::runtime::{self, Runtime};
use crate::steps::sync::{self, IgnoreList, SyncOptions};
use crate::steps::{Outcome, tail};
use crate::steps_file::{BuiltinStep, StepAction};

/// A failed deployment: the error, and what the site serves now.
#[derive(Debug)]
pub struct Failure {
    pub error: DeployError,
    pub state: &'static str,
}

/// What a failed deployment left serving, as the log says it.
pub mod state {
    pub const UNTOUCHED: &str =
        "Nothing in the target was changed: the site still serves the previous deployment.";
    pub const FILES_CHANGED_ENV_KEPT: &str =
        "The app's files were updated; the env was not replaced.";
    pub const FILES_CHANGED_ENV_RESTORED: &str =
        "The app's files were updated; the previous env was put back and serves the site.";
    pub const ENV_RESTORED: &str =
        "The app's files were not changed; the previous env was put back and serves the site.";
    pub const ENV_NOT_RESTORED: &str = "The previous env could not be put back: the next \
        deployment restores it before anything else.";
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
        check_not_nested(&config.source.value, &config.target.value).map_err(untouched)?;
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

fn check_not_nested(source: &Path, target: &Path) -> Result<(), DeployError> {
    let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let (s, t) = (real(source), real(target));
    if s != t && (t.starts_with(&s) || s.starts_with(&t)) {
        return Err(DeployError::Nested {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
        });
    }
    Ok(())
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        format!(
            "{}m {:02}s",
            duration.as_secs() / 60,
            duration.as_secs() % 60
        )
    }
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
}

impl Deployment<'_> {
    fn run(&mut self, step: &Planned) -> Result<Outcome, DeployError> {
        let builtin = match &step.action {
            StepAction::Run(command) => return self.run_command(&step.name, command),
            StepAction::Builtin(builtin) => *builtin,
        };
        if builtin.is_python()
            && let Some(why) = &self.python_skip
        {
            return Ok(Outcome::Skipped(why.clone()));
        }
        match builtin {
            BuiltinStep::Sync => self.sync(),
            BuiltinStep::DetectRuntime => self.detect_runtime(),
            BuiltinStep::ValidateEnv => self.validate_env(),
            BuiltinStep::PipInstall => self.pip_install(),
            BuiltinStep::WebConfig => self.web_config(),
            BuiltinStep::Collectstatic => self.collectstatic(),
        }
    }

    /// Where the app's files are for the steps after sync: the target, or in a dry run (which
    /// synced nothing) the source.
    fn app_dir(&self) -> &Path {
        if self.config.dry_run {
            &self.config.source.value
        } else {
            &self.config.target.value
        }
    }

    fn sync(&mut self) -> Result<Outcome, DeployError> {
        let c = self.config;
        if c.in_place {
            return Ok(Outcome::Skipped(
                "in-place deployment: the repository is the site".into(),
            ));
        }
        let env_name = &c.env_name.value;
        let options = SyncOptions {
            from: c.source.value.clone(),
            to: c.target.value.clone(),
            previous_manifest: c.previous_manifest.value.clone(),
            next_manifest: c.next_manifest.value.clone(),
            ignore: IgnoreList::new(&c.sync_ignore_list()),
            ignore_manifest: c.ignore_manifest,
            protected: vec![
                env_name.clone(),
                env_step::parked_dir(Path::new(env_name))
                    .to_string_lossy()
                    .into_owned(),
            ],
            what_if: c.dry_run,
            platform: c.platform,
        };
        if c.ignore_manifest {
            info!(
                "Clean deployment (IGNORE_MANIFEST=1): whatever the repository lacks is deleted, except {env_name}/"
            );
        }
        let report = sync::sync(&options)?;
        if report.first_deployment {
            info!(
                "First deployment: no previous manifest at {}",
                c.previous_manifest.value.display()
            );
        }
        let changed = report.copied + report.deleted;
        for change in &report.changes {
            info!("{change}");
        }
        if changed > report.changes.len() {
            info!("... and {} more changes", changed - report.changes.len());
        }
        self.files_changed = !c.dry_run && changed > 0;
        let mut summary = if changed == 0 {
            format!(
                "Nothing changed: {} unchanged",
                plural(report.unchanged, "file")
            )
        } else {
            format!(
                "{} {} ({}), deleted {}, {} unchanged",
                if c.dry_run { "Would copy" } else { "Copied" },
                plural(report.copied, "file"),
                bytes(report.bytes_copied),
                report.deleted,
                report.unchanged
            )
        };
        if report.kept > 0 {
            summary.push_str(&format!(
                "; kept {} not from the repository (written by the app)",
                plural(report.kept, "entry")
            ));
        }
        if !c.dry_run {
            summary.push_str(&format!("; manifest {}", c.next_manifest.value.display()));
        }
        Ok(Outcome::Done(summary))
    }

    fn detect_runtime(&mut self) -> Result<Outcome, DeployError> {
        let runtime = self.runtime.as_ref().expect("detected during preflight");
        for line in runtime.describe() {
            info!("{line}");
        }
        Ok(Outcome::Done(format!(
            "Using Python {}",
            runtime.interpreter.version
        )))
    }

    fn validate_env(&mut self) -> Result<Outcome, DeployError> {
        let c = self.config;
        let runtime = self.runtime.as_ref().expect("detect-runtime runs first");
        let env_dir = c.env_dir();
        if c.force_rebuild.value == ForceRebuild::Always {
            warn!(
                "{} is still on: every deployment rebuilds the env from scratch. Remove it, or set \
                 it to a token such as today's date to rebuild just once.",
                c.force_rebuild.origin
            );
        }
        if !c.dry_run
            && let Some(line) = env_step::recover_interrupted(&env_dir)?
        {
            info!("{line}");
        }
        let record = EnvRecord::read(&env_dir);
        let reasons = env_step::rebuild_reasons(
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
                None => self.adopt(&env_dir, runtime, token)?,
            };
            let env = PreparedEnv {
                python: env_step::env_python(&env_dir, c.platform),
                dir: env_dir.clone(),
                record,
            };
            let built = format!(
                "Reusing env {}: Python {} as selected, base interpreter present, its python \
                 runs (built because: {})",
                env_dir.display(),
                env.record.python,
                env.record.reason
            );
            self.env = Some(env);
            return Ok(Outcome::Done(built));
        }
        let reason = reasons.join("; ");
        if c.dry_run {
            return Ok(Outcome::Done(format!("Would rebuild the env: {reason}")));
        }
        info!("Rebuilding env: {reason}");
        let new = NewEnv {
            dir: &env_dir,
            platform: c.platform,
            runtime,
            reason,
            rebuild_token: token,
        };
        let (env, parked) = env_step::rebuild(new, &self.runner)?;
        self.parked_env = parked;
        self.env = Some(env);
        Ok(Outcome::Done(format!(
            "Built a new env {} with Python {}",
            env_dir.display(),
            runtime.interpreter.version
        )))
    }

    /// Gives a sound env that has no record (made by deploy.cmd, say) one, so that its
    /// installs can be fingerprinted from now on.
    fn adopt(
        &self,
        env_dir: &Path,
        runtime: &Runtime,
        token: Option<String>,
    ) -> Result<EnvRecord, DeployError> {
        let record = EnvRecord {
            python: runtime.interpreter.version.to_string(),
            interpreter: runtime.interpreter.path.clone(),
            created_unix: now_unix(),
            reason: "adopted an existing env (made before kuduhook)".into(),
            rebuild_token: token,
            install: None,
        };
        if !self.config.dry_run {
            record
                .write(env_dir)
                .map_err(|e| DeployError::io("write the env record in", env_dir, e))?;
        }
        Ok(record)
    }

    fn pip_install(&mut self) -> Result<Outcome, DeployError> {
        let c = self.config;
        let app = self.app_dir().to_path_buf();
        let requirements = app.join(&c.requirements.value);
        let Some(env) = self.env.as_mut() else {
            return Ok(Outcome::Done(format!(
                "Would install {} into the new env",
                c.requirements.value
            )));
        };
        if !c.pip_args.value.is_empty() {
            info!(
                "Extra pip arguments from {}: {}",
                c.pip_args.origin,
                c.pip_args.value.join(" ")
            );
        }
        let installed = pip::install(
            env,
            &requirements,
            &app,
            &c.pip_args.value,
            &self.runner,
            c.dry_run,
        )?;
        Ok(match installed {
            Installed::Skipped { fingerprint, files } => Outcome::Skipped(format!(
                "{} unchanged since the last successful install into this env ({}, \
                 fingerprint {}); set KUDUHOOK_FORCE_ENV_REBUILD to rebuild from scratch",
                c.requirements.value,
                plural(files, "requirement file"),
                &fingerprint[..12]
            )),
            Installed::Ran { .. } if c.dry_run => Outcome::Done(format!(
                "Would install {} (changed since the last install)",
                c.requirements.value
            )),
            Installed::Ran { fingerprint } => Outcome::Done(format!(
                "Installed {} (fingerprint {})",
                c.requirements.value,
                &fingerprint[..12]
            )),
        })
    }

    fn web_config(&mut self) -> Result<Outcome, DeployError> {
        let runtime = self.runtime.as_ref().expect("detect-runtime runs first");
        tail::web_config(
            self.app_dir(),
            &runtime.interpreter.version,
            self.config.dry_run,
        )
    }

    fn collectstatic(&mut self) -> Result<Outcome, DeployError> {
        let c = self.config;
        let Some(env) = &self.env else {
            return Ok(Outcome::Skipped("no env yet (dry run)".into()));
        };
        let disabled_by = c
            .disable_collectstatic
            .value
            .then(|| c.disable_collectstatic.origin.to_string());
        if let Some(why) =
            tail::collectstatic_skip_reason(self.app_dir(), disabled_by, env, &self.runner)
        {
            return Ok(Outcome::Skipped(why));
        }
        if c.dry_run {
            return Ok(Outcome::Skipped(
                "dry run: would run python manage.py collectstatic --noinput --clear".into(),
            ));
        }
        tail::collectstatic(&c.target.value, env, &self.runner)
    }

    fn run_command(&mut self, name: &str, command: &str) -> Result<Outcome, DeployError> {
        let c = self.config;
        if c.dry_run {
            return Ok(Outcome::Skipped(format!("dry run: would run `{command}`")));
        }
        info!("Running `{command}` in {}", c.target.value.display());
        let context = CommandContext {
            platform: c.platform,
            source: &c.source.value,
            target: &c.target.value,
            env: self.env.as_ref(),
        };
        custom::run(name, command, &context, &self.runner)?;
        Ok(Outcome::Done(format!("`{command}` succeeded")))
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
            (Some(parked), Some(env)) => Some(
                env_step::remove_dir(&env.dir).is_ok()
                    && std::fs::rename(&parked, &env.dir).is_ok(),
            ),
            _ => None,
        };
        let state = match (restored, self.files_changed) {
            (Some(false), _) => state::ENV_NOT_RESTORED,
            (Some(true), true) => state::FILES_CHANGED_ENV_RESTORED,
            (Some(true), false) => state::ENV_RESTORED,
            (None, true) => state::FILES_CHANGED_ENV_KEPT,
            (None, false) => state::UNTOUCHED,
        };
        Failure { error, state }
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{count} {stem}ies")
    } else {
        format!("{count} {noun}s")
    }
}

fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_folders_are_refused_but_siblings_pass() {
        let base = Path::new("/tmp/kuduhook-nested");
        assert!(check_not_nested(&base.join("repo"), &base.join("repo/www")).is_err());
        assert!(check_not_nested(&base.join("repo/www"), &base.join("repo")).is_err());
        assert!(check_not_nested(&base.join("repo"), &base.join("repo2")).is_ok());
    }

    #[test]
    fn sizes_and_counts_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "entry"), "2 entries");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.50s");
        assert_eq!(seconds(Duration::from_secs(63)), "1m 03s");
    }
}
