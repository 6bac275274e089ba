//! The installer that creates envs and installs requirements into them: pip (the default) or
//! uv (`KUDUHOOK_INSTALLER=uv`, or `auto`: uv when it is found, else pip).
//!
//! Both run with the same logs and guarantees, and each keeps a persistent cache beside the
//! site, outside the served files and on the envs' filesystem so that uv can hardlink from it:
//! `<site>/.kuduhook/cache/pip` and `<site>/.kuduhook/cache/uv`. pip's own index settings
//! (`PIP_NO_INDEX`, `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS`) are passed to uv
//! as its flags, so that switching installers keeps the app's package sources.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::error::EnvError;
use crate::ground::error::DeployError;
use crate::ground::paths;
use crate::process::Runner;
use crate::settings::Platform;
use crate::settings::kudu::KuduEnv;
use crate::settings::{Origin, Setting, truthy};

/// What `KUDUHOOK_INSTALLER` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallerChoice {
    Pip,
    Uv,
    /// uv when it is found, else pip.
    Auto,
}

impl InstallerChoice {
    pub fn parse(value: &str) -> Option<InstallerChoice> {
        match value.trim().to_ascii_lowercase().as_str() {
            "pip" => Some(InstallerChoice::Pip),
            "uv" => Some(InstallerChoice::Uv),
            "auto" => Some(InstallerChoice::Auto),
            _ => None,
        }
    }
}

/// The installer a deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    Pip,
    Uv { program: PathBuf, version: String },
}

/// The folder a repository commits wheels into, for packages App Service cannot build.
pub const WHEELHOUSE: &str = "wheelhouse";

impl Installer {
    /// "pip", "uv 0.13.9".
    pub fn name(&self) -> String {
        match self {
            Installer::Pip => "pip".into(),
            Installer::Uv { version, .. } => format!("uv {version}"),
        }
    }

    /// The persistent cache of this installer for `target`: beside the site, on its filesystem
    /// (so that uv can link from it into envs). Where the site's filesystem refuses links (App
    /// Service Linux's SMB share), on local disk instead ([`local_cache`]), kept as long as
    /// the machine's temp folder is: uv's cache is made of links, and envs are built on local
    /// disk there anyway.
    pub fn cache_dir(&self, target: &Path) -> PathBuf {
        let beside = self.cache_beside(target);
        let parent = beside.parent().unwrap_or(&beside);
        let _ = std::fs::create_dir_all(parent);
        match crate::env::files::links_work(parent) {
            true => beside,
            false => self.local_cache(target),
        }
    }

    /// The cache's place on local disk, for a site whose filesystem refuses links.
    pub fn local_cache(&self, target: &Path) -> PathBuf {
        let cache = paths::local_state_dir(target).join("cache");
        match self {
            Installer::Pip => cache.join("pip"),
            Installer::Uv { .. } => cache.join("uv"),
        }
    }

    /// The cache's place beside the site: `<site>/.kuduhook/cache/<installer>`.
    fn cache_beside(&self, target: &Path) -> PathBuf {
        let state = paths::state_dir(target);
        let cache = state.parent().unwrap_or(&state).join("cache");
        match self {
            Installer::Pip => cache.join("pip"),
            Installer::Uv { .. } => cache.join("uv"),
        }
    }

    /// The command that creates an env at `dir` with `interpreter`.
    pub fn venv_command(
        &self,
        runner: &Runner,
        interpreter: &Path,
        dir: &Path,
        cache: &Path,
    ) -> Command {
        match self {
            Installer::Pip => {
                let mut cmd = runner.command(interpreter);
                cmd.args(["-m", "venv"]).arg(dir);
                cmd
            }
            Installer::Uv { program, .. } => {
                let mut cmd = runner.command(program);
                cmd.args(["venv", "--no-project", "--no-python-downloads", "--python"])
                    .arg(interpreter)
                    .arg(dir)
                    .env("UV_CACHE_DIR", cache);
                cmd
            }
        }
    }

    /// The arguments that make the installer choose every package's version as it would for
    /// an empty env (the newest the requirements allow), rather than keep an installed one.
    pub fn fresh_choice_args(&self) -> &'static [&'static str] {
        match self {
            Installer::Pip => &["--upgrade", "--upgrade-strategy", "eager"],
            Installer::Uv { .. } => &["--upgrade"],
        }
    }

    /// The installer's arguments for installing `requirements` (relative to `app`, where it
    /// runs): non-interactive, the committed wheelhouse as a package source, then the user's
    /// own. The fingerprint of an install is taken over these, so they hold no env path.
    pub fn install_args(
        &self,
        requirements: &str,
        app: &Path,
        extra: &[String],
        env: &KuduEnv,
    ) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Installer::Pip => [
                "install",
                "-r",
                requirements,
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
            ]
            .map(String::from)
            .to_vec(),
            Installer::Uv { .. } => {
                let mut args: Vec<String> = ["pip", "install", "-r", requirements]
                    .map(String::from)
                    .to_vec();
                args.extend(uv_index_args(env));
                args
            }
        };
        if app.join(WHEELHOUSE).is_dir() {
            args.push("--find-links".into());
            args.push(WHEELHOUSE.into());
        }
        args.extend(extra.iter().cloned());
        args
    }

    /// The install command: `args` from [`Installer::install_args`], into the env whose
    /// interpreter is `env_python`, run in `app`.
    pub fn install_command(
        &self,
        runner: &Runner,
        env_python: &Path,
        args: &[String],
        app: &Path,
        cache: &Path,
    ) -> Command {
        let mut cmd = match self {
            Installer::Pip => {
                let mut cmd = runner.command(env_python);
                cmd.args(["-m", "pip"]).args(args);
                cmd.env("PIP_NO_INPUT", "1")
                    .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
                if runner.env.get("PIP_CACHE_DIR").is_none() {
                    cmd.env("PIP_CACHE_DIR", cache);
                }
                cmd
            }
            Installer::Uv { program, .. } => {
                let mut cmd = runner.command(program);
                cmd.args(args).arg("--python").arg(env_python);
                if runner.env.get("UV_CACHE_DIR").is_none() {
                    cmd.env("UV_CACHE_DIR", cache);
                }
                cmd.env("UV_PYTHON_DOWNLOADS", "never");
                cmd
            }
        };
        cmd.current_dir(app).env("PYTHONUNBUFFERED", "1");
        cmd
    }
}

/// pip's index settings as uv flags: uv does not read `PIP_*` variables.
pub fn uv_index_args(env: &KuduEnv) -> Vec<String> {
    let mut args = Vec::new();
    if env.get("PIP_NO_INDEX").and_then(truthy) == Some(true) {
        args.push("--no-index".into());
    }
    for (var, flag) in [
        ("PIP_INDEX_URL", "--index-url"),
        ("PIP_EXTRA_INDEX_URL", "--extra-index-url"),
        ("PIP_FIND_LINKS", "--find-links"),
    ] {
        for value in env.get(var).unwrap_or("").split_whitespace() {
            args.push(flag.into());
            args.push(value.into());
        }
    }
    args
}

/// uv's program name on `platform`.
fn uv_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => "uv",
        Platform::Windows => "uv.exe",
    }
}

/// Where uv is looked for, best first: `KUDUHOOK_UV`, a `deploy/uv` committed in the repository
/// beside kuduhook, then `PATH`.
pub fn uv_candidates(
    setting: Option<&Setting<PathBuf>>,
    source: &Path,
    env: &KuduEnv,
    platform: Platform,
) -> Vec<PathBuf> {
    let name = uv_name(platform);
    let mut out: Vec<PathBuf> = setting.map(|s| s.value.clone()).into_iter().collect();
    out.push(source.join("deploy").join(name));
    out.extend(env.search_path(platform).into_iter().map(|d| d.join(name)));
    out
}

/// The installer `choice` resolves to: the first uv that runs, for `uv` and `auto`.
pub fn resolve(
    choice: &Setting<InstallerChoice>,
    uv_setting: Option<&Setting<PathBuf>>,
    source: &Path,
    runner: &Runner,
) -> Result<Installer, DeployError> {
    if choice.value == InstallerChoice::Pip {
        return Ok(Installer::Pip);
    }
    let candidates = uv_candidates(uv_setting, source, runner.env, Platform::host());
    let found = candidates
        .iter()
        .filter(|p| p.is_file())
        .find_map(|program| Some((program, uv_version(runner, program)?)));
    match (found, choice.value) {
        (Some((program, version)), _) => Ok(Installer::Uv {
            program: program.clone(),
            version,
        }),
        (None, InstallerChoice::Auto) => Ok(Installer::Pip),
        (None, _) => Err(EnvError::UvMissing {
            origin: choice.origin.clone(),
            searched: candidates
                .iter()
                .take(3)
                .map(|p| p.display().to_string())
                .chain(std::iter::once("PATH".into()))
                .collect(),
        }
        .into()),
    }
}

/// "0.13.9" from `uv --version`, or `None` when it does not run.
fn uv_version(runner: &Runner, program: &Path) -> Option<String> {
    let out = runner.command(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?;
    out.status.success().then(|| version.to_string())
}

/// What picked the installer, for the log: "uv 0.13.9 (/usr/bin/uv), from app setting
/// KUDUHOOK_INSTALLER".
pub fn describe(installer: &Installer, choice: &Setting<InstallerChoice>) -> String {
    let what = match installer {
        Installer::Pip => "pip".to_string(),
        Installer::Uv { program, version } => format!("uv {version} ({})", program.display()),
    };
    match (choice.value, installer, &choice.origin) {
        (_, _, Origin::Default) => format!("{what} (the default; KUDUHOOK_INSTALLER=uv for uv)"),
        (InstallerChoice::Auto, Installer::Pip, origin) => {
            format!("{what}: {origin} is auto and no uv was found")
        }
        (_, _, origin) => format!("{what}, from {origin}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pips_index_settings_reach_uv_as_flags() {
        let env = KuduEnv::from_pairs([
            ("PIP_NO_INDEX", "1"),
            ("PIP_FIND_LINKS", "/w1 /w2"),
            ("PIP_INDEX_URL", "https://example.org/simple"),
        ]);
        assert_eq!(
            uv_index_args(&env),
            [
                "--no-index",
                "--index-url",
                "https://example.org/simple",
                "--find-links",
                "/w1",
                "--find-links",
                "/w2"
            ]
        );
        assert!(uv_index_args(&KuduEnv::from_pairs([("PIP_NO_INDEX", "0")])).is_empty());
    }

    #[test]
    fn uv_is_looked_for_in_the_setting_the_repository_then_path() {
        let env = KuduEnv::from_pairs([("PATH", "/usr/bin:/bin")]);
        let setting = Setting::new(PathBuf::from("/opt/uv"), Origin::Default);
        assert_eq!(
            uv_candidates(Some(&setting), Path::new("/repo"), &env, Platform::Linux),
            ["/opt/uv", "/repo/deploy/uv", "/usr/bin/uv", "/bin/uv"].map(PathBuf::from)
        );
        let windows = KuduEnv::from_pairs([("PATH", r"D:\tools;C:\bin")]);
        let found = uv_candidates(None, Path::new("repo"), &windows, Platform::Windows);
        assert_eq!(found[0], Path::new("repo").join("deploy").join("uv.exe"));
        assert_eq!(found[1], Path::new(r"D:\tools").join("uv.exe"));
    }

    #[test]
    fn caches_live_beside_the_site_outside_wwwroot() {
        let target = Path::new("/home/site/wwwroot");
        assert_eq!(
            Installer::Pip.cache_beside(target),
            PathBuf::from("/home/site/.kuduhook/cache/pip")
        );
        let uv = Installer::Uv {
            program: "uv".into(),
            version: "0.13.9".into(),
        };
        assert_eq!(
            uv.cache_beside(target),
            PathBuf::from("/home/site/.kuduhook/cache/uv")
        );
        assert_eq!(
            uv.local_cache(target),
            std::env::temp_dir().join("kuduhook/home-site-wwwroot/cache/uv")
        );
    }
}
