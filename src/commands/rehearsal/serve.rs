//! `kuduhook rehearse --serve`: starts the local App Service's site the way App Service Linux
//! starts it (docs/platform.md §8), so that a user sees the deployed site answer before
//! pushing to Azure.
//!
//! The platform does not activate the env: it appends the env's site-packages (the env the
//! wwwroot's `oryx-manifest.toml` names, else `antenv`) to `PYTHONPATH` of its image's Python
//! of the same X.Y, and runs that image's gunicorn on the entry it detects, with the app
//! settings in the environment. Here the image's Python is `--python`, else App Service's
//! `/opt/python/X.Y`, else the interpreter the env was built from.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::commands::error::CommandError;
use crate::env::PyvenvCfg;
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::platform::entry;
use crate::platform::linux_start::{self, StartPlan};
use crate::python::{self, PythonVersion};

use super::LocalSite;

/// How the site will be started: everything `serve` runs, for the log and the tests.
#[derive(Debug, Clone)]
pub struct Start {
    pub python: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub wwwroot: PathBuf,
    pub url: String,
}

/// Works out how the platform would start the local App Service's site on `port`.
pub fn plan(site: &LocalSite, port: u16, python: Option<&Path>) -> Result<Start, DeployError> {
    let wwwroot = site.wwwroot();
    let cannot = |why: String| {
        CommandError::CannotServe {
            wwwroot: wwwroot.clone(),
            why,
        }
        .into()
    };
    if !matches!(
        crate::release::record::DeploymentRecord::read(&wwwroot),
        Ok(Some(_))
    ) {
        return Err(cannot("nothing has been deployed to it yet".into()));
    }
    let settings_path = site.app_settings();
    let settings = match std::fs::read_to_string(&settings_path) {
        Ok(text) => super::parse_app_settings(&settings_path, &text)?,
        Err(_) => Vec::new(),
    };
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let stack = setting("FRAMEWORK_VERSION").and_then(python::parse_setting);
    let StartPlan {
        env,
        entry,
        warnings,
    } = linux_start::start_plan(
        &wwwroot,
        stack,
        entry::disables_fastapi(setting(entry::DISABLE_FASTAPI)),
    );
    let Some(entry) = entry else {
        return Err(cannot(warnings.join("; ")));
    };
    if !env.exists {
        return Err(cannot(warnings.join("; ")));
    }
    let cfg = std::fs::read_to_string(env.dir.join("pyvenv.cfg"))
        .map(|text| PyvenvCfg::parse(&text))
        .unwrap_or_default();
    let Some(version) = stack.or(cfg.version) else {
        return Err(cannot(format!(
            "{}/pyvenv.cfg does not say which Python built the env",
            env.dir.display()
        )));
    };
    let python = match python {
        Some(given) => given.to_path_buf(),
        None => image_python(&version, &cfg).ok_or_else(|| {
            cannot(format!(
                "no Python {} was found in /opt/python or where the env was built from; pass \
                 --python with an interpreter of that version",
                version.minor_version()
            ))
        })?,
    };
    let site_packages = crate::env::site_packages(&env.dir, &version.minor_version());
    let python_path = match std::env::var("PYTHONPATH") {
        Ok(existing) if !existing.is_empty() => format!("{existing}:{}", site_packages.display()),
        _ => site_packages.display().to_string(),
    };
    let mut vars = settings;
    vars.push(("PYTHONPATH".into(), python_path));
    vars.push(("PORT".into(), port.to_string()));
    let gunicorn = Command::new(&python)
        .args(["-c", "import gunicorn"])
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output();
    if !gunicorn.is_ok_and(|out| out.status.success()) {
        return Err(cannot(format!(
            "gunicorn cannot be imported by {} (App Service's image has it installed \
             globally): install it there ({} -m pip install gunicorn), or add gunicorn to your \
             requirements",
            python.display(),
            python.display()
        )));
    }
    let bind = format!("127.0.0.1:{port}");
    let mut args = vec!["-m".to_string(), "gunicorn".to_string()];
    args.extend(linux_start::gunicorn_args(&wwwroot, &entry, &bind));
    Ok(Start {
        python,
        args,
        env: vars,
        url: format!("http://{bind}/"),
        wwwroot,
    })
}

/// The interpreter App Service's image would run for `version`: `/opt/python/X.Y*`, else the
/// one the env was built from, if it is that version.
fn image_python(version: &PythonVersion, cfg: &PyvenvCfg) -> Option<PathBuf> {
    let minor = version.minor_version();
    let name = format!("python{minor}");
    let opt = Path::new("/opt/python")
        .join(&minor)
        .join("bin")
        .join(&name);
    let built_from = cfg.home.as_ref().map(|home| home.join(&name));
    [Some(opt), built_from]
        .into_iter()
        .flatten()
        .find(|p| python::probe(p).is_ok_and(|i| i.version.minor_version() == minor))
}

/// Starts the site and serves until it is stopped; says where.
pub fn serve(start: &Start) -> Result<(), DeployError> {
    tracing::info!(
        "Starting {} as App Service Linux does: {} {}\nServing on {} (Ctrl-C stops it)",
        start.wwwroot.display(),
        start.python.display(),
        start.args.join(" "),
        start.url
    );
    let mut gunicorn = Command::new(&start.python);
    gunicorn
        .args(&start.args)
        .envs(start.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&start.wwwroot);
    // gunicorn takes kuduhook's place, so that a signal that stops "kuduhook rehearse --serve"
    // stops gunicorn and its workers with it.
    #[cfg(unix)]
    {
        let error = std::os::unix::process::CommandExt::exec(&mut gunicorn);
        Err(SystemError::SpawnFailed {
            program: start.python.display().to_string(),
            error,
        }
        .into())
    }
    #[cfg(not(unix))]
    {
        let status = gunicorn
            .status()
            .map_err(|error| SystemError::SpawnFailed {
                program: start.python.display().to_string(),
                error,
            })?;
        match status.success() {
            true => Ok(()),
            false => Err(CommandError::CannotServe {
                wwwroot: start.wwwroot.clone(),
                why: format!(
                    "gunicorn {} (its output above says why)",
                    crate::process::describe_status(&status)
                ),
            }
            .into()),
        }
    }
}
