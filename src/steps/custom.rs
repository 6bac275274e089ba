//! Run steps: the user's own commands from `deploy/steps.json`, and Oryx's
//! `PRE_BUILD_COMMAND` / `POST_BUILD_COMMAND` app settings.
//!
//! A command runs through the platform's shell, in the target, with the env activated when
//! there is one (`VIRTUAL_ENV`, its bin folder first on `PATH`, `PYTHON`) and Kudu's variables
//! (`DEPLOYMENT_SOURCE`, `DEPLOYMENT_TARGET`) set even when kuduhook was run by hand.

use std::path::Path;

use tracing::info;

use crate::config::DeployConfig;
use crate::env::PreparedEnv;
use crate::ground::error::DeployError;
use crate::process::{Runner, describe_status};
use crate::settings::Platform;
use crate::settings::kudu::var;
use crate::steps::Outcome;
use crate::steps::error::StepError;

/// A run step, as the pipeline runs it: in a dry run, only says what it would run.
pub fn run_step(
    config: &DeployConfig,
    env: Option<&PreparedEnv>,
    name: &str,
    command: &str,
    runner: &Runner,
) -> Result<Outcome, DeployError> {
    if config.dry_run {
        return Ok(Outcome::Skipped(format!("dry run: would run `{command}`")));
    }
    info!("Running `{command}` in {}", config.target.value.display());
    let context = CommandContext {
        platform: config.platform,
        source: &config.source.value,
        target: &config.target.value,
        env,
    };
    run(name, command, &context, runner)?;
    Ok(Outcome::Done(format!("`{command}` succeeded")))
}

/// Where a command runs and what it sees.
pub struct CommandContext<'a> {
    pub platform: Platform,
    pub source: &'a Path,
    pub target: &'a Path,
    pub env: Option<&'a PreparedEnv>,
}

/// Runs a user's command line; a non-zero exit is an error naming the step.
pub fn run(
    step: &str,
    command: &str,
    context: &CommandContext,
    runner: &Runner,
) -> Result<(), DeployError> {
    let [shell, flag] = context.platform.shell();
    let mut cmd = runner.command(shell);
    cmd.arg(flag)
        .arg(command)
        .current_dir(context.target)
        .env(var::DEPLOYMENT_SOURCE, context.source)
        .env(var::DEPLOYMENT_TARGET, context.target)
        .env("PYTHONUNBUFFERED", "1");
    if let Some(env) = context.env {
        let bin = env.dir.join(context.platform.env_bin_dir());
        let path = runner.env.get("PATH").unwrap_or("");
        let separator = context.platform.path_list_separator();
        cmd.env("VIRTUAL_ENV", &env.dir)
            .env("PATH", format!("{}{separator}{path}", bin.display()))
            .env("PYTHON", &env.python);
    }
    let finished = runner.run(&mut cmd, step)?;
    if finished.status.success() {
        Ok(())
    } else {
        Err(StepError::CommandFailed {
            step: step.to_string(),
            command: command.to_string(),
            status: describe_status(&finished.status),
        }
        .into())
    }
}
