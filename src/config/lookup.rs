//! How one setting is read: the app setting (or `.deployment` key), then `deploy/steps.json`'s
//! option, then the default, each value with its [`Origin`]; and the checks of values that name
//! paths.

use std::path::Path;

use crate::ground::error::DeployError;
use crate::settings::kudu::{DeploymentFile, KuduEnv, SettingSource};
use crate::settings::steps_file::{BuiltinStep, StepEntry, StepsFile};
use crate::settings::{Origin, Setting, SettingsError};

/// Reads settings from app settings and `.deployment`, in that order.
pub(super) struct Lookup<'a> {
    pub(super) env: &'a KuduEnv,
    pub(super) deployment: &'a DeploymentFile,
}

impl Lookup<'_> {
    pub(super) fn get(&self, name: &str) -> Option<Setting<String>> {
        if let Some((value, source)) = self.env.setting(name) {
            // Kudu exports `.deployment` keys too: a plain variable equal to the file's value
            // most likely came from the file.
            let origin = match (source, self.deployment.get(name)) {
                (SettingSource::AppSetting, _) => Origin::AppSetting(name.into()),
                (SettingSource::Environment, Some((file_value, line))) if file_value == value => {
                    Origin::DeploymentFile {
                        key: name.into(),
                        line,
                    }
                }
                (SettingSource::Environment, _) => Origin::Environment(name.into()),
            };
            return Some(Setting::new(value.to_string(), origin));
        }
        self.deployment.get(name).map(|(value, line)| {
            Setting::new(
                value.to_string(),
                Origin::DeploymentFile {
                    key: name.into(),
                    line,
                },
            )
        })
    }

    /// A setting that counts only when not blank.
    pub(super) fn non_empty(&self, name: &str) -> Option<Setting<String>> {
        self.get(name).filter(|s| !s.value.trim().is_empty())
    }

    /// A setting that takes one of a few words: `parse` maps a value to one; a value it does
    /// not take is an error that lists what it takes.
    pub(super) fn choice<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        default: T,
        expected: &'static str,
    ) -> Result<Setting<T>, DeployError> {
        match self.non_empty(name) {
            None => Ok(Setting::new(default, Origin::Default)),
            Some(s) => match parse(s.value.trim()) {
                Some(value) => Ok(Setting::new(value, s.origin)),
                None => Err(SettingsError::BadSetting {
                    value: s.value,
                    origin: s.origin,
                    expected,
                }
                .into()),
            },
        }
    }

    /// The precedence of every layered setting: the app setting (or `.deployment` key) `name`,
    /// read with `parse`; else the `deploy/steps.json` option; else `default`.
    pub(super) fn layered<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> T,
        from_steps: Option<Setting<T>>,
        default: T,
    ) -> Setting<T> {
        self.non_empty(name)
            .map(|s| Setting::new(parse(s.value.trim()), s.origin))
            .or(from_steps)
            .unwrap_or_else(|| Setting::new(default, Origin::Default))
    }
}

/// An option of a built-in step in `deploy/steps.json`, when set. Options of the built-in
/// default pipeline are plain defaults.
pub(super) fn step_option<T>(
    steps: &StepsFile,
    step: BuiltinStep,
    pick: impl Fn(&StepEntry) -> Option<T>,
) -> Option<Setting<T>> {
    let value = steps.builtin(step).and_then(pick)?;
    let origin = match &steps.path {
        Some(path) => Origin::StepsFile {
            path: path.clone(),
            step: step.name(),
        },
        None => Origin::Default,
    };
    Some(Setting::new(value, origin))
}

pub(super) fn looks_like_path(value: &str) -> bool {
    value.contains('/') || value.contains('\\')
}

pub(super) fn check_env_name(setting: &Setting<String>) -> Result<(), DeployError> {
    let v = &setting.value;
    if v.is_empty() || v == "." || v == ".." || looks_like_path(v) {
        return Err(SettingsError::BadPathSetting {
            what: "env folder",
            value: v.clone(),
            origin: setting.origin.clone(),
            rule: "the env is a folder directly inside the target: give a plain name such as env \
                   or antenv, without / or \\",
        }
        .into());
    }
    Ok(())
}

pub(super) fn check_relative_path(setting: &Setting<String>) -> Result<(), DeployError> {
    let path = Path::new(&setting.value);
    // Rooted (`/etc/passwd`, `\\x`: on Windows rooted on the current drive, not absolute),
    // on a drive (`C:x`), or climbing out: all outside the app.
    let escapes = path.is_absolute()
        || setting.value.starts_with(['/', '\\'])
        || path.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::Prefix(_)
            )
        });
    if setting.value.is_empty() || escapes {
        return Err(SettingsError::BadPathSetting {
            what: "requirements file",
            value: setting.value.clone(),
            origin: setting.origin.clone(),
            rule: "the requirements file is part of the app: give a path relative to the \
                   repository root, without .., such as requirements/prod.txt",
        }
        .into());
    }
    Ok(())
}
