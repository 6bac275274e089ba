//! deploy.cmd's tail, kept for apps that rely on it: the web-config step (copy
//! `web.X.Y.config` over `web.config`, for IIS on Windows App Service) and the collectstatic
//! step (Django's `collectstatic --noinput --clear` when the app is a Django app).

use std::path::Path;

use crate::config::DeployConfig;
use crate::errors::DeployError;
use crate::process::{Runner, describe_status};
use crate::python::PythonVersion;
use crate::steps::Outcome;
use crate::steps::env::PreparedEnv;

/// Copies `web.X.Y.config` over `web.config` when the app has one for this Python.
pub fn web_config(
    target: &Path,
    version: &PythonVersion,
    dry_run: bool,
) -> Result<Outcome, DeployError> {
    let name = format!("web.{}.config", version.minor_version());
    let from = target.join(&name);
    if !from.is_file() {
        return Ok(Outcome::Skipped(format!("no {name} in the app")));
    }
    let to = target.join("web.config");
    if !dry_run {
        let temp = target.join(".web.config.kuduhook-tmp");
        std::fs::copy(&from, &temp)
            .and_then(|_| std::fs::rename(&temp, &to))
            .map_err(|e| DeployError::io("copy over", &to, e))?;
    }
    Ok(Outcome::Done(format!("Copied {name} over web.config")))
}

/// The collectstatic step. `app` is where the app's files are (the source in a dry run).
pub fn collectstatic_step(
    config: &DeployConfig,
    env: Option<&PreparedEnv>,
    app: &Path,
    runner: &Runner,
) -> Result<Outcome, DeployError> {
    let Some(env) = env else {
        return Ok(Outcome::Skipped("no env yet (dry run)".into()));
    };
    let disabled = &config.disable_collectstatic;
    let disabled_by = disabled.value.then(|| disabled.origin.to_string());
    if let Some(why) = collectstatic_skip_reason(app, disabled_by, env, runner) {
        return Ok(Outcome::Skipped(why));
    }
    if config.dry_run {
        return Ok(Outcome::Skipped(
            "dry run: would run python manage.py collectstatic --noinput --clear".into(),
        ));
    }
    collectstatic(app, env, runner)
}

/// Why collectstatic should not run, if it should not.
fn collectstatic_skip_reason(
    target: &Path,
    disabled_by: Option<String>,
    env: &PreparedEnv,
    runner: &Runner,
) -> Option<String> {
    if !target.join("manage.py").is_file() {
        return Some("no manage.py: not a Django app".into());
    }
    if target.join(".skipDjango").exists() {
        return Some("the app has a .skipDjango file".into());
    }
    if let Some(origin) = disabled_by {
        return Some(format!("turned off by {origin}"));
    }
    let django = runner
        .command(&env.python)
        .args(["-c", "import django"])
        .current_dir(target)
        .output();
    match django {
        Ok(out) if out.status.success() => None,
        _ => Some("Django is not installed in the env".into()),
    }
}

/// Runs `python manage.py collectstatic --noinput --clear` in the target.
fn collectstatic(
    target: &Path,
    env: &PreparedEnv,
    runner: &Runner,
) -> Result<Outcome, DeployError> {
    let command = "python manage.py collectstatic --noinput --clear";
    let mut cmd = runner.command(&env.python);
    cmd.args(["manage.py", "collectstatic", "--noinput", "--clear"])
        .current_dir(target)
        .env("PYTHONUNBUFFERED", "1");
    let finished = runner.run(&mut cmd, "collectstatic")?;
    if !finished.status.success() {
        return Err(DeployError::CommandFailed {
            step: "collectstatic".into(),
            command: command.into(),
            status: describe_status(&finished.status),
        });
    }
    Ok(Outcome::Done("Collected static files".into()))
}
