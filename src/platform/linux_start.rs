//! How App Service Linux starts a Python site, and the file that tells it which env to use.
//!
//! On every start of every instance, the platform's Python image looks in wwwroot for
//! `oryx-manifest.toml`; its `virtualEnvName` names the env (else the env is `antenv`). That
//! env's `lib/pythonX.Y/site-packages` is appended to `PYTHONPATH` of the image's own Python,
//! whose global gunicorn serves the entry it detects: a Django project (a top-level folder with
//! `wsgi.py`), else `application.py`, `app.py`, `index.py` or `server.py` exposing `app`, unless
//! the portal's startup command says otherwise.
//!
//! kuduhook keeps the env at its own name (`env`, as deploy.cmd did) and writes a manifest that
//! holds that name and, where the site is on a network share, the env's archive
//! (`compressedVirtualEnvFile`, see [`super::env_archive`]), which the platform extracts to
//! local disk on each start. It does none of what the other fields declare (no compressed
//! app). The manifest goes live with the env (see the pipeline's go-live).
//! A manifest kuduhook did not write is replaced only with a warning that says what it named,
//! and a copy of it is kept beside kuduhook's records.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::entry::{self, Entry};
use crate::python::PythonVersion;

use crate::ground::error::DeployError;
use crate::ground::error::SystemError;

/// The manifest's file name, in wwwroot.
pub const MANIFEST: &str = "oryx-manifest.toml";

/// The env the platform uses when no manifest names one.
pub const DEFAULT_ENV: &str = "antenv";

/// The first line of every manifest kuduhook writes: how it knows its own.
const HEADER: &str = "# Written by kuduhook";

/// The manifest kuduhook writes for an env named `env_name`, shipped as the archive at
/// `archive` (relative to wwwroot) when there is one.
pub fn manifest_text(env_name: &str, archive: Option<&str>) -> String {
    let mut text = format!(
        "{HEADER} on each deployment: App Service Linux starts the site with the env named\n\
         # here (its site-packages on PYTHONPATH). Do not edit: the next deployment rewrites it.\n\
         virtualEnvName = \"{env_name}\"\n"
    );
    if let Some(archive) = archive {
        text.push_str(&format!(
            "# On each start the platform extracts this archive of the env to /{env_name}, on local disk.\n\
             compressedVirtualEnvFile = \"{archive}\"\n"
        ));
    }
    text
}

/// What wwwroot's manifest is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Missing,
    /// Written by kuduhook.
    Ours(String),
    /// Written by someone else (Oryx's build, by hand).
    Foreign(String),
}

impl Manifest {
    pub fn read(wwwroot: &Path) -> Result<Manifest, DeployError> {
        let path = wwwroot.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                Ok(match text.starts_with(HEADER) {
                    true => Manifest::Ours(text),
                    false => Manifest::Foreign(text),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::Missing),
            Err(error) => Err(SystemError::Unreadable { path, error }.into()),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Manifest::Missing => None,
            Manifest::Ours(text) | Manifest::Foreign(text) => Some(text),
        }
    }
}

/// The values of a manifest the platform acts on, as far as it holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestFields {
    pub virtual_env_name: Option<String>,
    pub compressed_virtual_env_file: Option<String>,
    pub compress_destination_dir: Option<String>,
}

impl ManifestFields {
    /// Reads a manifest's text; what does not parse as TOML holds nothing.
    pub fn parse(text: &str) -> ManifestFields {
        let table: toml::Table = text.parse().unwrap_or_default();
        let field = |key: &str| table.get(key).and_then(|v| v.as_str()).map(String::from);
        ManifestFields {
            virtual_env_name: field("virtualEnvName"),
            compressed_virtual_env_file: field("compressedVirtualEnvFile"),
            compress_destination_dir: field("compressDestinationDir"),
        }
    }

    /// The fields, as a log line shows them.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(name) = &self.virtual_env_name {
            parts.push(format!("virtualEnvName {name}"));
        }
        if let Some(file) = &self.compressed_virtual_env_file {
            parts.push(format!("compressedVirtualEnvFile {file}"));
        }
        if let Some(dir) = &self.compress_destination_dir {
            parts.push(format!("compressDestinationDir {dir}"));
        }
        match parts.is_empty() {
            true => "nothing kuduhook recognizes".into(),
            false => parts.join(", "),
        }
    }
}

/// A change to wwwroot's manifest, undone if the deployment fails.
#[derive(Debug, Clone)]
pub struct ManifestChange {
    /// What the manifest held before (`None`: there was none).
    pub previous: Option<String>,
    /// The log line that says what happened.
    pub said: String,
    /// It replaced a manifest kuduhook did not write (a warning, not news).
    pub replaced_foreign: bool,
}

/// Makes wwwroot's manifest name `env_name` (and its `archive`), in one rename. `None` when it
/// already does. A foreign manifest is kept in `keep_dir` first.
pub fn publish(
    wwwroot: &Path,
    env_name: &str,
    archive: Option<&str>,
    keep_dir: &Path,
) -> Result<Option<ManifestChange>, DeployError> {
    let wanted = manifest_text(env_name, archive);
    let shipped = match archive {
        Some(file) => format!(" (shipped as {file}, extracted to /{env_name} on each start)"),
        None => String::new(),
    };
    let now = Manifest::read(wwwroot)?;
    let said = match &now {
        Manifest::Ours(text) if *text == wanted => return Ok(None),
        Manifest::Missing => {
            format!(
                "Wrote {MANIFEST}: App Service Linux starts the site with the env in \
                 {env_name}/{shipped}"
            )
        }
        Manifest::Ours(_) => {
            format!("Updated {MANIFEST}: the site now starts with the env in {env_name}/{shipped}")
        }
        Manifest::Foreign(text) => {
            std::fs::create_dir_all(keep_dir)
                .map_err(|e| DeployError::io("create", keep_dir, e))?;
            let kept = keep_dir.join(format!("{MANIFEST}.replaced"));
            std::fs::write(&kept, text).map_err(|e| DeployError::io("keep a copy at", &kept, e))?;
            format!(
                "Replaced {MANIFEST}, which kuduhook did not write (it named {}): the platform \
                 would have started the site without kuduhook's env. It now names the env in \
                 {env_name}/{shipped}; the old one is kept at {}",
                ManifestFields::parse(text).describe(),
                kept.display()
            )
        }
    };
    let path = wwwroot.join(MANIFEST);
    crate::ground::paths::write_atomically(&path, wanted.as_bytes())
        .map_err(|e| DeployError::io("write", &path, e))?;
    Ok(Some(ManifestChange {
        previous: now.text().map(String::from),
        said,
        replaced_foreign: matches!(now, Manifest::Foreign(_)),
    }))
}

/// Puts back what the manifest held before `change`.
pub fn restore(wwwroot: &Path, change: &ManifestChange) -> Result<(), DeployError> {
    let path = wwwroot.join(MANIFEST);
    match &change.previous {
        Some(text) => crate::ground::paths::write_atomically(&path, text.as_bytes())
            .map_err(|e| DeployError::io("put back", &path, e)),
        None => crate::env::files::remove_any(&path),
    }
}

/// The env the platform will use: its name, whether a manifest named it, and its folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformEnv {
    pub name: String,
    /// How the name was decided, for people.
    pub named_by: String,
    pub dir: PathBuf,
    pub exists: bool,
    /// A compressed env the manifest names, which the platform extracts to `/<name>` and uses
    /// instead of the folder (relative to wwwroot, as the manifest says it).
    pub compressed: Option<String>,
    /// kuduhook wrote the manifest.
    pub by_kuduhook: bool,
}

/// What the platform's start will use, read from wwwroot.
pub fn platform_env(wwwroot: &Path) -> PlatformEnv {
    let manifest = Manifest::read(wwwroot).unwrap_or(Manifest::Missing);
    let fields = manifest
        .text()
        .map(ManifestFields::parse)
        .unwrap_or_default();
    let (name, named_by) = match (&manifest, fields.virtual_env_name) {
        (Manifest::Ours(_), Some(name)) => (name, format!("{MANIFEST}, written by kuduhook")),
        (Manifest::Foreign(_), Some(name)) => {
            (name, format!("{MANIFEST}, not written by kuduhook"))
        }
        _ => (
            DEFAULT_ENV.to_string(),
            format!("the platform's default (no {MANIFEST} names one)"),
        ),
    };
    let dir = wwwroot.join(&name);
    PlatformEnv {
        by_kuduhook: matches!(manifest, Manifest::Ours(_)),
        exists: dir.join("pyvenv.cfg").is_file(),
        dir,
        name,
        named_by,
        compressed: fields.compressed_virtual_env_file,
    }
}

/// How the platform will start the site (with no startup command set), and what is wrong.
#[derive(Debug, Clone, Serialize)]
pub struct StartPlan {
    pub env: PlatformEnv,
    pub entry: Option<Entry>,
    /// What would keep the site from starting as deployed.
    pub warnings: Vec<String>,
}

/// Reads wwwroot as the platform's start does. `stack` is the site's Python (its
/// `FRAMEWORK_VERSION`), else the env's own is taken; `fastapi_disabled`: the app setting
/// `PYTHON_DISABLE_FASTAPI_DETECTION` is set.
pub fn start_plan(
    wwwroot: &Path,
    stack: Option<PythonVersion>,
    fastapi_disabled: bool,
) -> StartPlan {
    let env = platform_env(wwwroot);
    let python = stack.or_else(|| {
        let text = std::fs::read_to_string(env.dir.join("pyvenv.cfg")).ok()?;
        crate::env::PyvenvCfg::parse(&text).version
    });
    let rules = entry::Rules {
        env_name: env.name.clone(),
        python,
        fastapi_disabled,
    };
    let entry = entry::detect(wwwroot, &rules);
    let mut warnings = Vec::new();
    match &env.compressed {
        Some(file) if !env.by_kuduhook => warnings.push(format!(
            "{MANIFEST} names a compressed env ({file}): the platform extracts and uses that, \
             not a folder kuduhook built"
        )),
        Some(file) if !wwwroot.join(file).is_file() => warnings.push(format!(
            "{MANIFEST} names the env's archive {file}, which is missing: the platform's start \
             would fail to extract it; deploy again to make it"
        )),
        _ => {}
    }
    if env.compressed.is_none() && !env.exists {
        warnings.push(format!(
            "there is no env at {}: the platform would start the app without its packages \
             (ModuleNotFoundError at the first import)",
            env.dir.display()
        ));
    }
    if let Some(advice) = entry::asgi_advice(wwwroot, &rules, entry.as_ref()) {
        warnings.push(advice);
    } else if entry.is_none() {
        warnings.push(format!(
            "no entry found (no Django project folder with wsgi.py, no {}): the platform \
             would serve its default page; set a startup command, e.g. gunicorn --bind=0.0.0.0 \
             --timeout 600 mymodule:app",
            entry::FLASK_FILES.join(", ")
        ));
    }
    StartPlan {
        env,
        entry,
        warnings,
    }
}

/// gunicorn's arguments for `entry`, as the platform runs it (bound to `bind`).
pub fn gunicorn_args(wwwroot: &Path, entry: &Entry, bind: &str) -> Vec<String> {
    let worker = entry
        .worker
        .iter()
        .flat_map(|w| ["-k".to_string(), w.clone()]);
    let mut args: Vec<String> = vec![
        "--timeout".into(),
        "600".into(),
        "--access-logfile".into(),
        "-".into(),
        "--error-logfile".into(),
        "-".into(),
        "--chdir".into(),
        wwwroot.to_string_lossy().into_owned(),
        "--bind".into(),
        bind.into(),
    ];
    args.extend(worker);
    args.push(entry.module.clone());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_only_the_env_and_is_known_as_ours() {
        let site = tempfile::tempdir().unwrap();
        let keep = site.path().join("state");
        let change = publish(site.path(), "env", None, &keep).unwrap().unwrap();
        assert_eq!(change.previous, None);
        let text = std::fs::read_to_string(site.path().join(MANIFEST)).unwrap();
        assert_eq!(
            ManifestFields::parse(&text),
            ManifestFields {
                virtual_env_name: Some("env".into()),
                ..Default::default()
            }
        );
        assert!(matches!(
            Manifest::read(site.path()).unwrap(),
            Manifest::Ours(_)
        ));
        assert!(
            publish(site.path(), "env", None, &keep).unwrap().is_none(),
            "unchanged"
        );
        restore(site.path(), &change).unwrap();
        assert!(!site.path().join(MANIFEST).exists());
    }

    #[test]
    fn a_foreign_manifest_is_replaced_loudly_kept_and_restored() {
        let site = tempfile::tempdir().unwrap();
        let oryx = "PythonVersion=\"3.11.4\"\nvirtualEnvName=\"antenv\"\ncompressedVirtualEnvFile=\"antenv.tar.gz\"\n";
        std::fs::write(site.path().join(MANIFEST), oryx).unwrap();
        let keep = site.path().join("state");
        let change = publish(site.path(), "env", None, &keep).unwrap().unwrap();
        assert!(
            change
                .said
                .contains("virtualEnvName antenv, compressedVirtualEnvFile antenv.tar.gz"),
            "{}",
            change.said
        );
        assert_eq!(
            std::fs::read_to_string(keep.join("oryx-manifest.toml.replaced")).unwrap(),
            oryx
        );
        assert_eq!(platform_env(site.path()).name, "env");
        restore(site.path(), &change).unwrap();
        let back = platform_env(site.path());
        assert_eq!(back.name, "antenv");
        assert_eq!(back.compressed.as_deref(), Some("antenv.tar.gz"));
    }

    #[test]
    fn the_start_plan_reads_the_env_and_the_entry() {
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("run.py"), "").unwrap();
        let plan = start_plan(site.path(), None, false);
        assert_eq!(plan.entry.unwrap().module, "run:app");
        assert_eq!(plan.env.name, "antenv");
        assert!(!plan.env.exists);
        std::fs::remove_file(site.path().join("run.py")).unwrap();
        std::fs::write(site.path().join("main.py"), "import fastapi\n").unwrap();
        let plan = start_plan(
            site.path(),
            crate::python::PythonVersion::parse("3.12"),
            false,
        );
        assert!(plan.entry.is_none());
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("-k uvicorn.workers.UvicornWorker main:app")),
            "{:?}",
            plan.warnings
        );
        let plan = start_plan(
            site.path(),
            crate::python::PythonVersion::parse("3.14"),
            false,
        );
        assert_eq!(
            plan.entry.unwrap().worker.as_deref(),
            Some(entry::UVICORN_WORKER)
        );
    }
}
