//! Configuration precedence: every setting a deployment uses, resolved once, with where it came
//! from.
//!
//! Highest first: command-line flags, app settings (`APPSETTING_<NAME>`, then `<NAME>`),
//! `.deployment` keys, `deploy/steps.json`, defaults. The README's settings table is this file
//! in prose; keep them together.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::installer::InstallerChoice;
use crate::env::lock::DEFAULT_LOCK_WAIT;
use crate::env::store::{SIDE_SUFFIXES, StoreOptions, SwitchMode};
use crate::env::{EnvMode, ForceRebuild};
use crate::ground::error::{DeployError, SystemError};
use crate::ground::paths;
use crate::platform::linux_start::MANIFEST;
use crate::release::ReleaseOptions;
use crate::settings::kudu::{DeploymentFile, KuduEnv, var};
use crate::settings::steps_file::{BuiltinStep, StepsFile};
use crate::settings::{Origin, Platform, Setting, SettingsError, name, truthy};

mod lookup;
use crate::sync::{
    DEFAULT_FULL_COMPARE, DEFAULT_SYNC_IGNORE, OutsideLinks, Patterns, Protected, SyncOptions,
    split_list,
};
use lookup::{Lookup, check_env_name, check_relative_path, looks_like_path, step_option};

/// The command line's say in a deployment (`kuduhook deploy`'s flags), as plain data.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub source: Option<PathBuf>,
    pub target: Option<PathBuf>,
    pub next_manifest: Option<PathBuf>,
    pub previous_manifest: Option<PathBuf>,
    /// `--python`: a version, or an interpreter's path.
    pub python: Option<String>,
    pub force_env_rebuild: bool,
    pub dry_run: bool,
}

/// What the start-check step checks (`KUDUHOOK_START_CHECK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartCheck {
    /// The entry the platform would detect.
    Auto,
    Off,
    /// `module:callable`, imported.
    Entry(String),
    /// A command, run by the shell with the env activated.
    Command(String),
}

/// Everything a deployment needs to know, resolved.
#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub platform: Platform,
    pub source: Setting<PathBuf>,
    pub target: Setting<PathBuf>,
    pub next_manifest: Setting<PathBuf>,
    pub previous_manifest: Setting<PathBuf>,
    /// `IN_PLACE_DEPLOYMENT=1`: the source is the target; nothing is synced.
    pub in_place: bool,
    /// `IGNORE_MANIFEST=1`: a clean deployment; what the source lacks is deleted.
    pub ignore_manifest: bool,
    pub commit_id: Option<String>,
    /// `.deployment`'s `command` and its line, as written (app settings aside).
    pub deployment_command: Option<(String, usize)>,
    pub dry_run: bool,
    /// `--python X.Y` or `PYTHON_VERSION`, raw; files are read by the detect-runtime step.
    pub python_version: Option<Setting<String>>,
    /// `--python /path` or `KUDUHOOK_PYTHON`: an interpreter to use.
    pub interpreter: Option<Setting<PathBuf>>,
    pub force_rebuild: Setting<ForceRebuild>,
    pub env_name: Setting<String>,
    pub requirements: Setting<String>,
    /// `KUDUHOOK_DEPENDENCIES`: the dependency source to install from, when one is named
    /// (requirements file, uv.lock, poetry.lock, Pipfile.lock, pyproject.toml).
    pub dependencies: Option<Setting<String>>,
    /// Extras and dependency groups installed besides the main dependencies.
    pub dependency_groups: Setting<Vec<String>>,
    pub pip_args: Setting<Vec<String>>,
    pub installer: Setting<InstallerChoice>,
    /// `KUDUHOOK_UV`: the uv program to use.
    pub uv: Option<Setting<PathBuf>>,
    pub env_mode: Setting<EnvMode>,
    pub start_check: Setting<StartCheck>,
    /// Seconds the start check may take (`KUDUHOOK_START_CHECK_TIMEOUT`).
    pub start_check_timeout: Setting<u64>,
    /// `KUDUHOOK_ENV_SWITCH`: `None` is auto (link where the filesystem allows it).
    pub env_switch: Setting<Option<SwitchMode>>,
    /// `KUDUHOOK_ENV_ARCHIVE`: ship the env as an archive the platform extracts to local disk
    /// on start; `None` is auto (where the site is on a network filesystem).
    pub env_archive: Setting<Option<bool>>,
    /// How long to wait for another deployment of the same target.
    pub lock_wait: Setting<Duration>,
    /// `KUDUHOOK_KEEP_RELEASES`: how many successful deployments the site keeps, the live one
    /// included, for `kuduhook rollback` (1: none to go back to).
    pub keep_releases: Setting<usize>,
    /// Ignore entries on top of [`DEFAULT_SYNC_IGNORE`].
    pub sync_ignore: Setting<Vec<String>>,
    /// Names compared by content on top of `web.config`.
    pub sync_full_compare: Setting<Vec<String>>,
    pub sync_checksum: Setting<bool>,
    /// `KUDUHOOK_SYNC_VERIFY=full`: always walk the site (never plan the sync from git).
    pub sync_verify_full: Setting<bool>,
    pub sync_outside_links: Setting<OutsideLinks>,
    /// The release's options (and the env store's), built once from the settings above.
    pub release: ReleaseOptions,
    /// The sync step's options, built (and its patterns checked) once from the settings above.
    pub sync: SyncOptions,
    pub disable_collectstatic: Setting<bool>,
    pub pre_build_command: Option<Setting<String>>,
    pub post_build_command: Option<Setting<String>>,
    /// Kudu kills a command silent for this long (`SCM_COMMAND_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// The target's modification time when the deployment started, before any step changed
    /// it: the sync compares it with the last deployment's end.
    pub target_stamp_at_start: Option<u128>,
    pub steps: StepsFile,
    pub env: KuduEnv,
}

/// The site a command works on, without resolving a whole deployment: `--target`, else
/// `DEPLOYMENT_TARGET`, else `../artifacts/wwwroot` (a deployment run by hand from `cwd`).
/// `kuduhook status` reads this site, and a deployment whose configuration fails records its
/// failure there.
pub fn target_of(target: Option<&Path>, env: &KuduEnv, cwd: &Path) -> PathBuf {
    let given = target
        .map(Path::to_path_buf)
        .or_else(|| env.path(var::DEPLOYMENT_TARGET))
        .unwrap_or_else(|| PathBuf::from("../artifacts/wwwroot"));
    paths::normalize(&cwd.join(given))
}

impl DeployConfig {
    /// Resolves the configuration from the flags, the environment and the repository's files.
    ///
    /// Reads `.deployment` and `deploy/steps.json` from the source; changes nothing.
    pub fn resolve(args: &Flags, env: KuduEnv, cwd: &Path) -> Result<DeployConfig, DeployError> {
        let absolute = |p: &Path| -> PathBuf {
            let joined = if p.is_absolute() {
                p.to_path_buf()
            } else {
                cwd.join(p)
            };
            paths::normalize(&joined)
        };
        let path_setting = |flag: &Option<PathBuf>, flag_name: &'static str, var_name: &str| {
            flag.as_deref()
                .map(|p| Setting::new(absolute(p), Origin::Flag(flag_name)))
                .or_else(|| {
                    env.path(var_name)
                        .map(|p| Setting::new(absolute(&p), Origin::Environment(var_name.into())))
                })
        };

        let source = path_setting(&args.source, "--source", var::DEPLOYMENT_SOURCE)
            .unwrap_or_else(|| Setting::new(absolute(cwd), Origin::Default));
        if !source.value.is_dir() {
            return Err(SettingsError::SourceMissing {
                source: source.value,
                origin: source.origin,
            }
            .into());
        }
        // deploy.cmd's layout when run by hand: ../artifacts/wwwroot and ../artifacts/manifest.
        let target =
            path_setting(&args.target, "--target", var::DEPLOYMENT_TARGET).unwrap_or_else(|| {
                Setting::new(
                    absolute(&source.value.join("../artifacts/wwwroot")),
                    Origin::Default,
                )
            });
        let default_manifest =
            || Setting::new(absolute(&target.value.join("../manifest")), Origin::Default);
        let next_manifest = path_setting(
            &args.next_manifest,
            "--next-manifest",
            var::NEXT_MANIFEST_PATH,
        )
        .unwrap_or_else(default_manifest);
        let previous_manifest = path_setting(
            &args.previous_manifest,
            "--previous-manifest",
            var::PREVIOUS_MANIFEST_PATH,
        )
        .unwrap_or_else(default_manifest);

        let deployment =
            DeploymentFile::read(&source.value).map_err(|error| SystemError::Unreadable {
                path: source.value.join(".deployment"),
                error,
            })?;
        let steps = StepsFile::load(&source.value)?;
        let lookup = Lookup {
            env: &env,
            deployment: &deployment,
        };

        // --python takes a version or an interpreter's path.
        let (python_version, mut interpreter) = match &args.python {
            Some(value) if looks_like_path(value) => (
                None,
                Some(Setting::new(
                    absolute(Path::new(value)),
                    Origin::Flag("--python"),
                )),
            ),
            Some(value) => (
                Some(Setting::new(value.clone(), Origin::Flag("--python"))),
                None,
            ),
            None => (lookup.non_empty(name::PYTHON_VERSION), None),
        };
        if interpreter.is_none() {
            interpreter = lookup.non_empty(name::KUDUHOOK_PYTHON).map(|s| Setting {
                value: absolute(Path::new(s.value.trim())),
                origin: s.origin,
            });
        }

        let force_rebuild = if args.force_env_rebuild {
            Setting::new(ForceRebuild::Always, Origin::Flag("--force-env-rebuild"))
        } else {
            lookup
                .get(name::KUDUHOOK_FORCE_ENV_REBUILD)
                .map(|s| Setting::new(ForceRebuild::parse(&s.value), s.origin))
                .unwrap_or_else(|| Setting::new(ForceRebuild::Off, Origin::Default))
        };

        let env_name = lookup.layered(
            name::KUDUHOOK_ENV_NAME,
            |v| v.to_string(),
            step_option(&steps, BuiltinStep::ValidateEnv, |e| e.env_name.clone()),
            "env".into(),
        );
        check_env_name(&env_name)?;
        let requirements = lookup.layered(
            name::CUSTOM_REQUIREMENTSTXT_PATH,
            |v| v.to_string(),
            step_option(&steps, BuiltinStep::PipInstall, |e| e.requirements.clone()),
            "requirements.txt".into(),
        );
        check_relative_path(&requirements)?;
        let dependencies = lookup
            .non_empty(name::KUDUHOOK_DEPENDENCIES)
            .map(|s| Setting::new(s.value.trim().to_string(), s.origin));
        if let Some(named) = &dependencies {
            check_relative_path(named)?;
        }
        let dependency_groups = lookup.layered(
            name::KUDUHOOK_DEPENDENCY_GROUPS,
            |v| {
                v.split([',', ' ', ';'])
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            },
            step_option(&steps, BuiltinStep::PipInstall, |e| {
                Some(e.groups.clone()).filter(|g| !g.is_empty())
            }),
            Vec::new(),
        );
        let pip_args = lookup.layered(
            name::KUDUHOOK_PIP_ARGS,
            |v| v.split_whitespace().map(String::from).collect(),
            step_option(&steps, BuiltinStep::PipInstall, |e| {
                Some(e.pip_args.clone()).filter(|a| !a.is_empty())
            }),
            Vec::new(),
        );
        let sync_ignore = lookup.layered(
            name::KUDUHOOK_SYNC_IGNORE,
            split_list,
            step_option(&steps, BuiltinStep::Sync, |e| {
                Some(e.ignore.clone()).filter(|i| !i.is_empty())
            }),
            Vec::new(),
        );
        let sync_full_compare = lookup.layered(
            name::KUDUHOOK_SYNC_FULL_COMPARE,
            split_list,
            step_option(&steps, BuiltinStep::Sync, |e| {
                Some(e.full_compare.clone()).filter(|i| !i.is_empty())
            }),
            Vec::new(),
        );
        let sync_checksum = lookup.layered(
            name::KUDUHOOK_SYNC_CHECKSUM,
            |v| truthy(v).unwrap_or(true),
            step_option(&steps, BuiltinStep::Sync, |e| e.checksum),
            false,
        );
        let sync_verify_full = lookup.choice(
            name::KUDUHOOK_SYNC_VERIFY,
            |v| match v.to_ascii_lowercase().as_str() {
                "auto" => Some(false),
                "full" => Some(true),
                _ => None,
            },
            false,
            "auto (the default: from git's diff when the last sync is proven, else a walk) or \
             full (always walk the site)",
        )?;
        let sync_outside_links = match lookup.non_empty(name::KUDUHOOK_SYNC_OUTSIDE_LINKS) {
            Some(_) => lookup.choice(
                name::KUDUHOOK_SYNC_OUTSIDE_LINKS,
                |v| match v.to_ascii_lowercase().as_str() {
                    "skip" => Some(OutsideLinks::Skip),
                    "error" => Some(OutsideLinks::Error),
                    _ => None,
                },
                OutsideLinks::Skip,
                "skip (a link out of the repository is left out, with a warning) or error (it \
                 fails the deployment)",
            )?,
            None => step_option(&steps, BuiltinStep::Sync, |e| e.outside_links)
                .unwrap_or_else(|| Setting::new(OutsideLinks::Skip, Origin::Default)),
        };
        let installer = lookup.choice(
            name::KUDUHOOK_INSTALLER,
            InstallerChoice::parse,
            InstallerChoice::Pip,
            "pip (the default), uv, or auto (uv when it is found, else pip)",
        )?;
        let uv = lookup.non_empty(name::KUDUHOOK_UV).map(|s| Setting {
            value: absolute(Path::new(s.value.trim())),
            origin: s.origin,
        });
        let env_mode = lookup.choice(
            name::KUDUHOOK_ENV_MODE,
            |v| match v.to_ascii_lowercase().as_str() {
                "exact" => Some(EnvMode::Exact),
                "incremental" => Some(EnvMode::Incremental),
                _ => None,
            },
            EnvMode::Exact,
            "exact (the default: changed requirements get a copy of the live env pruned to them, \
             so removed packages go) or incremental (install over the live env, like deploy.cmd)",
        )?;
        let env_switch = lookup.choice(
            name::KUDUHOOK_ENV_SWITCH,
            |v| match v.to_ascii_lowercase().as_str() {
                "auto" => Some(None),
                "link" => Some(Some(SwitchMode::Link)),
                "move" => Some(Some(SwitchMode::Move)),
                _ => None,
            },
            None,
            "auto (the default: link where the filesystem allows links, else move), link, or \
             move",
        )?;
        let env_archive = lookup.choice(
            name::KUDUHOOK_ENV_ARCHIVE,
            |v| match v.to_ascii_lowercase().as_str() {
                "auto" => Some(None),
                other => truthy(other).map(Some),
            },
            None,
            "auto (the default: where the site is on a network filesystem), true, or false",
        )?;
        let start_check = lookup.layered(
            name::KUDUHOOK_START_CHECK,
            |v| match v {
                _ if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("false") => {
                    StartCheck::Off
                }
                _ if v.eq_ignore_ascii_case("auto") => StartCheck::Auto,
                _ if v.contains(char::is_whitespace) => StartCheck::Command(v.to_string()),
                _ => StartCheck::Entry(v.to_string()),
            },
            None,
            StartCheck::Auto,
        );
        let start_check_timeout = lookup.choice(
            name::KUDUHOOK_START_CHECK_TIMEOUT,
            |v| v.parse::<u64>().ok().filter(|s| *s > 0),
            60,
            "a number of seconds, such as 60",
        )?;
        let lock_wait = lookup.choice(
            name::KUDUHOOK_LOCK_WAIT,
            |v| v.parse::<u64>().ok().map(Duration::from_secs),
            DEFAULT_LOCK_WAIT,
            "a number of seconds, such as 600",
        )?;
        let keep_releases = lookup.choice(
            name::KUDUHOOK_KEEP_RELEASES,
            |v| v.parse::<usize>().ok().filter(|n| (1..=100).contains(n)),
            crate::release::DEFAULT_KEEP,
            "a number of releases from 1 to 100, such as 2 (the live one and the one before it; \
             1 keeps none to roll back to)",
        )?;
        // Oryx's DISABLE_COLLECTSTATIC=true; any value but an explicit "off" turns it off.
        let disable_collectstatic = lookup.layered(
            name::DISABLE_COLLECTSTATIC,
            |v| truthy(v).unwrap_or(true),
            None,
            false,
        );

        let idle_timeout = idle_timeout(&env);

        let platform = Platform::host();
        let in_place = env.flag(var::IN_PLACE_DEPLOYMENT) || source.value == target.value;
        let commit_id = env.get(var::SCM_COMMIT_ID).map(String::from);
        let release = ReleaseOptions {
            target: target.value.clone(),
            platform,
            dry_run: args.dry_run,
            in_place,
            commit_id: commit_id.clone(),
            env_archive: env_archive.clone(),
            keep_releases: keep_releases.clone(),
            store: StoreOptions {
                target: target.value.clone(),
                env_name: env_name.value.clone(),
                platform,
                switch: env_switch.value,
                dry_run: args.dry_run,
            },
        };
        let mut config = DeployConfig {
            platform,
            in_place,
            ignore_manifest: env.flag(var::IGNORE_MANIFEST),
            commit_id,
            deployment_command: deployment
                .get("command")
                .map(|(command, line)| (command.to_string(), line)),
            release,
            dry_run: args.dry_run,
            python_version,
            interpreter,
            force_rebuild,
            env_name,
            requirements,
            dependencies,
            dependency_groups,
            pip_args,
            installer,
            uv,
            env_mode,
            start_check,
            start_check_timeout,
            env_switch,
            env_archive,
            lock_wait,
            keep_releases,
            sync_ignore,
            sync_full_compare,
            sync_checksum,
            sync_verify_full,
            sync_outside_links,
            disable_collectstatic,
            pre_build_command: lookup.non_empty(name::PRE_BUILD_COMMAND),
            post_build_command: lookup.non_empty(name::POST_BUILD_COMMAND),
            idle_timeout,
            target_stamp_at_start: crate::sync::delta::target_stamp(&target.value),
            sync: SyncOptions::new(&source.value, &target.value),
            source,
            target,
            next_manifest,
            previous_manifest,
            steps,
            env,
        };
        // Bad patterns fail now, before any step has run.
        config.sync = config.sync_options()?;
        Ok(config)
    }

    /// The env folder in the target.
    pub fn env_dir(&self) -> PathBuf {
        self.target.value.join(&self.env_name.value)
    }

    /// The sync step's options: the manifests, the env kept out of reach, the user's lists.
    fn sync_options(&self) -> Result<SyncOptions, DeployError> {
        let env_name = &self.env_name.value;
        let mut options = SyncOptions::new(&self.source.value, &self.target.value);
        options.previous_manifest = Some(self.previous_manifest.value.clone());
        options.next_manifest = Some(self.next_manifest.value.clone());
        let (ignore, full_compare) = (&self.sync_ignore, &self.sync_full_compare);
        options.ignore = patterns(&DEFAULT_SYNC_IGNORE, &ignore.value, &ignore.origin)?;
        options.full_compare = patterns(
            &DEFAULT_FULL_COMPARE,
            &full_compare.value,
            &full_compare.origin,
        )?;
        options.checksum = self.sync_checksum.value;
        options.ignore_manifest = self.ignore_manifest;
        let env_warning = format!(
            "the repository has its own {env_name}/: it is not synced, so it cannot replace the \
             live env (remove it from the repository, or rename the env with KUDUHOOK_ENV_NAME)"
        );
        options.protected = std::iter::once(env_name.clone())
            .chain(SIDE_SUFFIXES.map(|suffix| format!("{env_name}.{suffix}")))
            .map(|name| Protected {
                name,
                in_repository: env_warning.clone(),
            })
            .collect();
        if self.platform == Platform::Linux {
            options.protected.push(Protected {
                name: MANIFEST.to_string(),
                in_repository: format!(
                    "the repository has its own {MANIFEST}: it is not synced; kuduhook writes \
                     the site's, naming the env it builds (remove it from the repository)"
                ),
            });
        }
        options.outside_links = self.sync_outside_links.value;
        options.what_if = self.dry_run;
        options.progress_interval = progress_interval(self.idle_timeout);
        options.platform = self.platform;
        options.delta = crate::sync::DeltaInputs {
            enabled: !self.sync_verify_full.value,
            disabled_because: self
                .sync_verify_full
                .value
                .then(|| format!("asked for (full, by {})", self.sync_verify_full.origin)),
            commit_id: self.commit_id.clone(),
            target_stamp_at_start: self.target_stamp_at_start,
            sealed_by_caller: true,
        };
        Ok(options)
    }
}

/// Compiles a sync pattern list: the built-in `defaults`, then the user's `entries`; a bad one
/// is named with the setting it came from.
pub fn patterns(
    defaults: &[&str],
    entries: &[String],
    origin: &Origin,
) -> Result<Patterns, DeployError> {
    let all: Vec<&str> = defaults
        .iter()
        .copied()
        .chain(entries.iter().map(String::as_str))
        .collect();
    Patterns::new(&all).map_err(|pattern| {
        SettingsError::BadPattern {
            pattern,
            origin: origin.clone(),
        }
        .into()
    })
}

/// How often a long sync prints progress: KuduSync's 20 s, or often enough that Kudu's idle
/// timeout (a third of it) never passes in silence.
pub fn progress_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(20))
}

/// Kudu's idle timeout from `SCM_COMMAND_IDLE_TIMEOUT` (seconds; default 60).
pub fn idle_timeout(env: &KuduEnv) -> Duration {
    let seconds = env
        .get(var::SCM_COMMAND_IDLE_TIMEOUT)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests;
