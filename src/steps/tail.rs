//! deploy.cmd's tail, kept for apps that rely on it: the web-config step (copy
//! `web.X.Y.config` over `web.config`, for IIS on Windows App Service) and the collectstatic
//! step (Django's `collectstatic --noinput --clear` when the app is a Django app).

use std::path::Path;

use crate::config::DeployConfig;
use crate::env::PreparedEnv;
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::process::{Runner, describe_status};
use crate::python::PythonVersion;
use crate::steps::Outcome;
use crate::steps::error::StepError;

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

/// The web.config the web-config step leaves in the site: `web.X.Y.config` when the app has one
/// for this Python, else the app's own `web.config`.
fn live_web_config(app: &Path, version: &PythonVersion) -> Option<String> {
    let versioned = format!("web.{}.config", version.minor_version());
    [versioned.as_str(), "web.config"]
        .into_iter()
        .find(|name| app.join(name).is_file())
        .map(String::from)
}

/// The env folders a web.config runs from: for every Windows path in it of the form
/// `…\wwwroot\<env>\Scripts\…` (the handler's `python.exe`, `activate_this.py`), `<env>`.
pub fn env_folders_in_web_config(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let tokens = text.split(|c: char| c.is_whitespace() || "\"'<>=|;".contains(c));
    for token in tokens {
        let segments: Vec<&str> = token.split(['\\', '/']).collect();
        for i in 2..segments.len() {
            if segments[i].eq_ignore_ascii_case("scripts")
                && segments[i - 2].eq_ignore_ascii_case("wwwroot")
                && !found
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(segments[i - 1]))
            {
                found.push(segments[i - 1].to_string());
            }
        }
    }
    found
}

/// Before anything changes, on a Windows site: the web.config the site will start with must run
/// the env kuduhook builds (`wwwroot\<env_name>\Scripts\python.exe`), or IIS starts the app
/// without its packages. Returns the log line saying which env it runs.
pub fn check_web_config(
    app: &Path,
    version: &PythonVersion,
    env_name: &str,
) -> Result<Option<String>, DeployError> {
    let Some(file) = live_web_config(app, version) else {
        return Ok(None);
    };
    let path = app.join(&file);
    let text = std::fs::read(&path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|error| SystemError::Unreadable { path, error })?;
    let envs = env_folders_in_web_config(&text);
    if envs.is_empty() {
        return Ok(Some(format!(
            "{file} names no env folder under wwwroot: IIS starts the app with whatever \
             interpreter it names"
        )));
    }
    match envs.iter().all(|e| e.eq_ignore_ascii_case(env_name)) {
        true => Ok(Some(format!(
            "{file} runs the env kuduhook builds (wwwroot\\{env_name}\\Scripts)"
        ))),
        false => Err(StepError::WebConfigOtherEnv {
            file,
            named: envs,
            env_name: env_name.to_string(),
        }
        .into()),
    }
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
        return Err(StepError::CommandFailed {
            step: "collectstatic".into(),
            command: command.into(),
            status: describe_status(&finished.status),
        }
        .into());
    }
    Ok(Outcome::Done("Collected static files".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUDUSCRIPT_WEB_CONFIG: &str = r#"<configuration>
  <appSettings>
    <add key="WSGI_ALT_VIRTUALENV_ACTIVATE_THIS" value="D:\home\site\wwwroot\env\Scripts\activate_this.py" />
  </appSettings>
  <system.webServer>
    <handlers>
      <add name="PythonHandler" path="*" verb="*" modules="httpPlatformHandler" resourceType="Unspecified"/>
    </handlers>
    <httpPlatform processPath="D:\home\site\wwwroot\env\Scripts\python.exe" arguments="runserver.py %HTTP_PLATFORM_PORT%" />
  </system.webServer>
</configuration>"#;

    #[test]
    fn a_web_config_names_the_env_it_runs() {
        assert_eq!(
            env_folders_in_web_config(KUDUSCRIPT_WEB_CONFIG),
            vec!["env"]
        );
        let home = r#"processPath="%HOME%\site\wwwroot\antenv\Scripts\python.exe|x""#;
        assert_eq!(env_folders_in_web_config(home), vec!["antenv"]);
        assert!(env_folders_in_web_config(r"D:\Python34\python.exe").is_empty());
    }

    #[test]
    fn the_web_config_the_site_starts_with_must_run_the_live_env() {
        let app = tempfile::tempdir().unwrap();
        let v311 = PythonVersion::parse("3.11").unwrap();
        assert_eq!(check_web_config(app.path(), &v311, "env").unwrap(), None);
        std::fs::write(app.path().join("web.config"), KUDUSCRIPT_WEB_CONFIG).unwrap();
        let ok = check_web_config(app.path(), &v311, "env").unwrap().unwrap();
        assert!(
            ok.contains("web.config runs the env kuduhook builds"),
            "{ok}"
        );
        // web.3.11.config wins over web.config, as the web-config step copies it over.
        let other = KUDUSCRIPT_WEB_CONFIG.replace(r"wwwroot\env\", r"wwwroot\venv\");
        std::fs::write(app.path().join("web.3.11.config"), other).unwrap();
        let error = check_web_config(app.path(), &v311, "env")
            .unwrap_err()
            .explain();
        assert!(
            error.what.contains("web.3.11.config runs the env venv"),
            "{}",
            error.what
        );
        assert!(
            error.fix.contains("KUDUHOOK_ENV_NAME=venv"),
            "{}",
            error.fix
        );
        assert!(check_web_config(app.path(), &v311, "venv").is_ok());
    }
}
