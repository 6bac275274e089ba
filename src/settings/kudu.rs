//! The Kudu contract: the environment Kudu gives a deployment command, its app settings, and the
//! repository's `.deployment` file, read exactly the way Kudu reads them.
//!
//! Kudu exports every merged setting (app settings over `.deployment` keys) as an environment
//! variable, and app settings again as `APPSETTING_<NAME>`. So `APPSETTING_X` is surely an app
//! setting, while a plain `X` may be either; [`KuduEnv::setting`] tells them apart for the log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Variables Kudu sets for the deployment command (docs/platform.md §1).
pub mod var {
    pub const DEPLOYMENT_SOURCE: &str = "DEPLOYMENT_SOURCE";
    pub const DEPLOYMENT_TARGET: &str = "DEPLOYMENT_TARGET";
    pub const DEPLOYMENT_TEMP: &str = "DEPLOYMENT_TEMP";
    pub const NEXT_MANIFEST_PATH: &str = "NEXT_MANIFEST_PATH";
    pub const PREVIOUS_MANIFEST_PATH: &str = "PREVIOUS_MANIFEST_PATH";
    pub const IN_PLACE_DEPLOYMENT: &str = "IN_PLACE_DEPLOYMENT";
    pub const IGNORE_MANIFEST: &str = "IGNORE_MANIFEST";
    pub const SCM_COMMIT_ID: &str = "SCM_COMMIT_ID";
    pub const SCM_COMMAND_IDLE_TIMEOUT: &str = "SCM_COMMAND_IDLE_TIMEOUT";
    /// The site's Python stack on App Service Linux (`PYTHON|3.11` gives `3.11`).
    pub const FRAMEWORK_VERSION: &str = "FRAMEWORK_VERSION";
}

/// Where KuduLite extracts a zip deployment, under its temp folder: `DEPLOYMENT_SOURCE` of
/// every zip deployment (no `.git`, the zip's 2-second times, modes only if the zip has them).
pub const ZIP_EXTRACTED: [&str; 2] = ["zipdeploy", "extracted"];

/// Whether `source` is the folder KuduLite extracted a zip deployment into.
pub fn is_zip_extraction(source: &Path) -> bool {
    let mut parts = source.components().rev().map(|c| c.as_os_str());
    parts.next().is_some_and(|p| p == ZIP_EXTRACTED[1])
        && parts.next().is_some_and(|p| p == ZIP_EXTRACTED[0])
}

/// Whether a `.deployment` command runs a program inside the repository with arguments
/// (`deploy/kuduhook deploy`): Kudu makes the command executable before running it only when the
/// whole command is a path into the repository, so from a zip without modes (made on Windows)
/// such a command fails with "Permission denied".
pub fn command_needs_modes(command: &str) -> bool {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("");
    let relative = !program.is_empty()
        && !program.starts_with('/')
        && (program.contains('/') || program.contains('\\'));
    relative && words.next().is_some()
}

/// A snapshot of the process environment, taken once at start-up.
///
/// Everything in the library reads the environment through this value, never through
/// `std::env`, so that a deployment's inputs are explicit and tests can supply their own.
#[derive(Debug, Clone, Default)]
pub struct KuduEnv {
    vars: BTreeMap<String, String>,
}

/// Where a setting's value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingSource {
    /// `APPSETTING_<NAME>`: set in the portal.
    AppSetting,
    /// A plain environment variable: an app setting, or set by hand.
    Environment,
}

impl KuduEnv {
    /// The current process environment.
    pub fn from_process() -> KuduEnv {
        KuduEnv {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (for tests and tools).
    pub fn from_pairs<I, K, V>(pairs: I) -> KuduEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        KuduEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value, if it is set (possibly to the empty string).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A variable's value as a path, if it is set and not empty.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// A flag Kudu sets to `1` (`IN_PLACE_DEPLOYMENT`, `IGNORE_MANIFEST`).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.trim() == "1")
    }

    /// An app setting: `APPSETTING_<NAME>` first (surely from the portal), then `<NAME>`.
    pub fn setting(&self, name: &str) -> Option<(&str, SettingSource)> {
        if let Some(v) = self.get(&format!("APPSETTING_{name}")) {
            return Some((v, SettingSource::AppSetting));
        }
        self.get(name).map(|v| (v, SettingSource::Environment))
    }

    /// The folders of `PATH`, in order.
    pub fn search_path(&self, platform: crate::settings::Platform) -> Vec<PathBuf> {
        self.get("PATH")
            .unwrap_or("")
            .split(platform.path_list_separator())
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// All variables, for passing on to child processes.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The `[config]` section of a repository's `.deployment` file.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFile {
    /// Where it was read from; `None` when the repository has none.
    pub path: Option<PathBuf>,
    /// Keys upper-cased (Kudu compares them case-insensitively), with value and line number.
    keys: BTreeMap<String, (String, usize)>,
}

impl DeploymentFile {
    /// Reads `<repo>/.deployment`; a missing file is an empty one.
    pub fn read(repo: &Path) -> std::io::Result<DeploymentFile> {
        let path = repo.join(".deployment");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut file = DeploymentFile::parse(&String::from_utf8_lossy(&bytes));
                file.path = Some(path);
                Ok(file)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeploymentFile::default()),
            Err(e) => Err(e),
        }
    }

    /// Parses `.deployment` text with Kudu's rules: only `[config]` counts; section and key
    /// names are case-insensitive; a line splits on its first `=` with both sides trimmed; a
    /// line without `=` is skipped; there is no comment syntax.
    pub fn parse(text: &str) -> DeploymentFile {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut keys = BTreeMap::new();
        let mut in_config = false;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('[') && line.ends_with(']') {
                in_config = line[1..line.len() - 1]
                    .trim()
                    .eq_ignore_ascii_case("config");
                continue;
            }
            if !in_config {
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                let key = key.trim().to_ascii_uppercase();
                if !key.is_empty() {
                    keys.insert(key, (value.trim().to_string(), index + 1));
                }
            }
        }
        DeploymentFile { path: None, keys }
    }

    /// Every key (upper-cased) with its value, in name order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys.iter().map(|(k, (v, _))| (k.as_str(), v.as_str()))
    }

    /// A key's value and line number, compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<(&str, usize)> {
        self.keys
            .get(&key.to_ascii_uppercase())
            .map(|(v, line)| (v.as_str(), *line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_repository_program_with_arguments_needs_the_zips_modes() {
        assert!(command_needs_modes("deploy/kuduhook deploy"));
        assert!(command_needs_modes("./deploy/kuduhook deploy --dry-run"));
        assert!(!command_needs_modes("./deploy/kuduhook"));
        assert!(!command_needs_modes("deploy/kuduhook"));
        assert!(!command_needs_modes("bash deploy.sh"));
        assert!(!command_needs_modes("/usr/bin/env kuduhook deploy"));
    }

    #[test]
    fn a_zip_deployment_is_told_by_the_folder_kudulite_extracts_into() {
        assert!(is_zip_extraction(Path::new("/tmp/zipdeploy/extracted")));
        assert!(!is_zip_extraction(Path::new("/home/site/repository")));
        assert!(!is_zip_extraction(Path::new("/tmp/extracted")));
        assert!(!is_zip_extraction(Path::new("extracted")));
    }

    #[test]
    fn deployment_file_follows_kudu_ini_rules() {
        let file = DeploymentFile::parse(
            "\u{feff}[other]\ncommand = wrong\n[CONFIG]\n  Command =  deploy/kuduhook deploy = x \n\
             no equals sign here\n; not a comment = still a key\nPYTHON_VERSION=3.12\n",
        );
        assert_eq!(file.get("command"), Some(("deploy/kuduhook deploy = x", 4)));
        assert_eq!(file.get("python_version"), Some(("3.12", 7)));
        assert_eq!(file.get("; NOT A COMMENT"), Some(("still a key", 6)));
        assert_eq!(file.get("missing"), None);
    }

    #[test]
    fn keys_outside_config_do_not_count() {
        let file = DeploymentFile::parse("command = before any section\n[config]\n");
        assert_eq!(file.get("command"), None);
    }

    #[test]
    fn app_settings_prefer_the_appsetting_prefix() {
        let env = KuduEnv::from_pairs([("X", "plain"), ("APPSETTING_X", "portal"), ("Y", "only")]);
        assert_eq!(
            env.setting("X"),
            Some(("portal", SettingSource::AppSetting))
        );
        assert_eq!(env.setting("Y"), Some(("only", SettingSource::Environment)));
        assert_eq!(env.setting("Z"), None);
    }

    #[test]
    fn kudu_flags_are_one_only() {
        let env = KuduEnv::from_pairs([("IN_PLACE_DEPLOYMENT", "1"), ("IGNORE_MANIFEST", "0")]);
        assert!(env.flag(var::IN_PLACE_DEPLOYMENT));
        assert!(!env.flag(var::IGNORE_MANIFEST));
        assert!(!env.flag("UNSET"));
    }
}
