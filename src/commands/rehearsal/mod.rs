//! A local App Service to rehearse `git push` on: a folder laid out like App Service's `/home`,
//! with a bare repository to push to whose receive hook does what Kudu does on a push (see
//! docs/platform.md §1): check the commit out into `site/repository`, read
//! `.deployment` and the app settings, run the deployment command with Kudu's variables, no TTY
//! and no stdin, stream its output back to the pusher, kill it when idle, and keep each
//! deployment's manifest, log and status.
//!
//! ```text
//! <root>/repository.git        the remote you push to (hooks/post-receive runs `receive`)
//! <root>/appsettings           the portal's app settings: NAME=value per line
//! <root>/site/repository       the checkout the command runs in (DEPLOYMENT_SOURCE)
//! <root>/site/wwwroot          the site (DEPLOYMENT_TARGET), first holding hostingstart.html
//! <root>/site/deployments      <commit>/{manifest,log.log,status.json}, `active`
//! <root>/tmp                   DEPLOYMENT_TEMP folders, one per deployment, removed after
//! ```
//!
//! [`setup`] creates (or refreshes) one; [`receive::receive`] is what its hook runs;
//! [`serve`] starts the deployed site as App Service Linux does.

pub mod receive;
pub mod serve;
pub mod watch;
pub mod zip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::commands::error::CommandError;
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::settings::kudu::DeploymentFile;

/// The branch Kudu deploys when `DEPLOYMENT_BRANCH` is not set.
pub const DEFAULT_BRANCH: &str = "master";

/// Settings Kudu exports with these values unless `.deployment` or an app setting says
/// otherwise.
pub const DEFAULTS: [(&str, &str); 5] = [
    ("SCM_COMMAND_IDLE_TIMEOUT", "60"),
    ("SCM_TRACE_LEVEL", "1"),
    ("KUDU_SYNC_CMD", "kudusync"),
    ("SCM_BUILD_ARGS", ""),
    ("DEPLOYMENT_BRANCH", DEFAULT_BRANCH),
];

/// The paths of a local App Service rooted at `root`.
#[derive(Debug, Clone)]
pub struct LocalSite {
    pub root: PathBuf,
}

impl LocalSite {
    pub fn new(root: &Path) -> LocalSite {
        LocalSite {
            root: root.to_path_buf(),
        }
    }
    pub fn git_dir(&self) -> PathBuf {
        self.root.join("repository.git")
    }
    pub fn app_settings(&self) -> PathBuf {
        self.root.join("appsettings")
    }
    pub fn repository(&self) -> PathBuf {
        self.root.join("site").join("repository")
    }
    pub fn wwwroot(&self) -> PathBuf {
        self.root.join("site").join("wwwroot")
    }
    pub fn deployments(&self) -> PathBuf {
        self.root.join("site").join("deployments")
    }
    pub fn temp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// The stock manifest of the very first deployment: it lists the placeholder page, so the
    /// first sync removes it.
    pub fn first_manifest(&self) -> PathBuf {
        self.deployments().join("firstDeploymentManifest")
    }
    pub fn deployment(&self, commit: &str) -> PathBuf {
        self.deployments().join(commit)
    }
    /// The last successful deployment's commit (`site/deployments/active`).
    pub fn active(&self) -> Option<String> {
        std::fs::read_to_string(self.deployments().join("active"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
    /// The manifest a deployment reads as previous: the last successful deployment's, or the
    /// stock first one.
    pub fn previous_manifest(&self) -> PathBuf {
        match self.active() {
            Some(commit) => self.deployment(&commit).join("manifest"),
            None => self.first_manifest(),
        }
    }
}

/// What [`setup`] did.
#[derive(Debug)]
pub struct SetUp {
    pub site: LocalSite,
    pub created: bool,
    /// The remote added to the app's repository, if it was run inside one.
    pub remote: Option<String>,
}

const HOSTINGSTART: &str = "<!doctype html>\n<title>Your app service is up and running</title>\n\
    <p>This is the placeholder page of a new site: your first deployment replaces it.</p>\n";

const APP_SETTINGS_TEMPLATE: &str = "\
# App settings of this local App Service: one NAME=value per line, read on every push.
# Each reaches the deployment command as NAME and as APPSETTING_NAME, like the portal's.
# Examples:
#   KUDUHOOK_FORCE_ENV_REBUILD=2026-11-23
#   PYTHON_VERSION=3.12
#   SCM_COMMAND_IDLE_TIMEOUT=60
#   DEPLOYMENT_BRANCH=master
";

/// Creates the local App Service at `root` (or refreshes the hook of an existing one) whose
/// hook runs `binary`; given a `remote` name, adds it as a git remote of `repo` when that is a
/// git repository.
pub fn setup(
    root: &Path,
    binary: &Path,
    repo: &Path,
    remote: Option<&str>,
) -> Result<SetUp, DeployError> {
    let site = LocalSite::new(root);
    // A remote of the user's that points elsewhere stops everything before anything is made.
    let remote = match remote {
        Some(remote) => remote_to_add(repo, remote, &site.git_dir())?,
        None => RemoteToAdd::NotARepository,
    };
    let created = !site.git_dir().join("HEAD").is_file();
    let io = |action, path: &Path, e| DeployError::io(action, path, e);
    for dir in [
        site.repository(),
        site.wwwroot(),
        site.deployments(),
        site.temp(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| io("create the folder", &dir, e))?;
    }
    if created {
        let git_dir = site.git_dir().to_string_lossy().into_owned();
        git(&["init", "--quiet", "--bare", &git_dir], &site.root)?;
        let page = site.wwwroot().join("hostingstart.html");
        std::fs::write(&page, HOSTINGSTART).map_err(|e| io("write", &page, e))?;
    }
    let first = site.first_manifest();
    std::fs::write(&first, "hostingstart.html\n").map_err(|e| io("write", &first, e))?;
    let settings = site.app_settings();
    if !settings.exists() {
        std::fs::write(&settings, APP_SETTINGS_TEMPLATE).map_err(|e| io("write", &settings, e))?;
    }
    write_hook(&site, binary)?;
    let remote = match remote {
        RemoteToAdd::NotARepository => None,
        RemoteToAdd::AlreadyThere(name) => Some(name),
        RemoteToAdd::Add(name) => {
            let url = site.git_dir().to_string_lossy().into_owned();
            git(&["remote", "add", &name, &url], repo)?;
            Some(name)
        }
    };
    Ok(SetUp {
        site,
        created,
        remote,
    })
}

/// What a user needs to use the local App Service `done` set up.
pub fn describe(done: &SetUp, binary: &Path) -> String {
    let site = &done.site;
    let push = match &done.remote {
        Some(remote) => format!("git push {remote} HEAD:{DEFAULT_BRANCH}"),
        None => format!(
            "git remote add rehearsal {} && git push rehearsal HEAD:{DEFAULT_BRANCH}",
            site.git_dir().display()
        ),
    };
    let wwwroot = site.wwwroot();
    format!(
        "Local App Service {} at {}\n\
         \x20 deploy:        {push}\n\
         \x20 app settings:  {} (NAME=value per line, read on every push)\n\
         \x20 the site:      {}\n\
         \x20 logs:          {}/<commit>/log.log\n\
         \x20 what it runs:  kuduhook status --target {}\n\
         \x20 start it:      kuduhook rehearse --serve --site {} (as App Service Linux does)\n\
         \x20 its hook runs: {}",
        if done.created { "created" } else { "refreshed" },
        site.root.display(),
        site.app_settings().display(),
        wwwroot.display(),
        site.deployments().display(),
        wwwroot.display(),
        site.root.display(),
        binary.display()
    )
}

/// The receive hook: runs on every push, after the push has landed (as on App Service, a failed
/// deployment does not undo the push).
fn write_hook(site: &LocalSite, binary: &Path) -> Result<(), DeployError> {
    let hook = site.git_dir().join("hooks").join("post-receive");
    let text = format!(
        "#!/bin/sh\n# kuduhook's local App Service: deploy what was pushed, as Kudu does.\n\
         exec {} rehearse-receive --site {}\n",
        shell_quote(&binary.to_string_lossy()),
        shell_quote(&site.root.to_string_lossy())
    );
    std::fs::write(&hook, text).map_err(|e| DeployError::io("write the hook", &hook, e))?;
    make_executable(&hook).map_err(|e| DeployError::io("make executable", &hook, e))
}

enum RemoteToAdd {
    NotARepository,
    AlreadyThere(String),
    Add(String),
}

/// Whether remote `name` of `repo` is to be added for `url`: only in a git work tree, and an
/// existing remote of that name must already point there.
fn remote_to_add(repo: &Path, name: &str, url: &Path) -> Result<RemoteToAdd, DeployError> {
    let inside = git_output(&["rev-parse", "--is-inside-work-tree"], repo);
    if inside.as_deref() != Some("true") {
        return Ok(RemoteToAdd::NotARepository);
    }
    let url = url.to_string_lossy().into_owned();
    match git_output(&["remote", "get-url", name], repo) {
        Some(existing) if existing == url => Ok(RemoteToAdd::AlreadyThere(name.to_string())),
        Some(existing) => Err(CommandError::RemoteTaken {
            remote: name.to_string(),
            existing,
            wanted: url,
        }
        .into()),
        None => Ok(RemoteToAdd::Add(name.to_string())),
    }
}

/// Runs git in `dir` with none of the variables a hook inherits (`GIT_DIR`, ...), so that it
/// works on the repository in `dir`.
pub fn git_command(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(dir);
    clear_git_variables(&mut cmd);
    cmd
}

/// Removes the `GIT_*` variables a hook runs with from what `cmd` will see.
pub fn clear_git_variables(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GIT_") {
            cmd.env_remove(key);
        }
    }
}

/// Runs git in `dir`; its error output becomes the error.
fn git(args: &[&str], dir: &Path) -> Result<(), DeployError> {
    let out = git_command(args, dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| SystemError::SpawnFailed {
            program: "git".into(),
            error,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(CommandError::GitFailed {
        command: format!("git {}", args.join(" ")),
        dir: dir.to_path_buf(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
    .into())
}

/// A git command's trimmed stdout, if it succeeded.
fn git_output(args: &[&str], dir: &Path) -> Option<String> {
    let out = git_command(args, dir).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Marks a file executable (nothing to do on Windows, where the name says it).
pub(crate) fn make_executable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = std::fs::metadata(path)?.permissions();
        permissions.set_mode(permissions.mode() | 0o111);
        std::fs::set_permissions(path, permissions)?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Reads an app settings file: `NAME=value` per line; blank lines and lines starting with `#`
/// are skipped; the value is everything after the first `=`, trimmed.
pub fn parse_app_settings(path: &Path, text: &str) -> Result<Vec<(String, String)>, DeployError> {
    let mut settings = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let valid = line.split_once('=').filter(|(name, _)| {
            let name = name.trim();
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        let Some((name, value)) = valid else {
            return Err(CommandError::AppSettingsInvalid {
                path: path.to_path_buf(),
                line: index + 1,
                text: raw.to_string(),
            }
            .into());
        };
        settings.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(settings)
}

/// The settings Kudu exports to the deployment command: defaults, then `.deployment` keys
/// (upper-cased), then app settings (named as written), each overriding the one before by name
/// regardless of case; plus every app setting again as `APPSETTING_<NAME>`.
pub fn exported_settings(
    deployment: &DeploymentFile,
    app_settings: &[(String, String)],
) -> BTreeMap<String, String> {
    // Upper-cased name -> (name as exported, value).
    let mut merged: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        merged.insert(
            name.to_ascii_uppercase(),
            (name.to_string(), value.to_string()),
        );
    };
    for (name, value) in DEFAULTS {
        set(name, value);
    }
    for (name, value) in deployment.entries() {
        set(name, value);
    }
    for (name, value) in app_settings {
        set(name, value);
        set(&format!("APPSETTING_{name}"), value);
    }
    merged.into_values().collect()
}

/// Splits a deployment command into words: whitespace separates, double or single quotes
/// group (Kudu on Linux executes the command itself, not through a shell).
pub fn split_command(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_settings_are_name_value_lines() {
        let path = Path::new("appsettings");
        let parsed = parse_app_settings(
            path,
            "# comment\n\nPYTHON_VERSION = 3.12\nPIP_FIND_LINKS=/a=b\nEMPTY=\n",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                ("PYTHON_VERSION".to_string(), "3.12".to_string()),
                ("PIP_FIND_LINKS".to_string(), "/a=b".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        let err = parse_app_settings(path, "A=1\nexport B=2\n").unwrap_err();
        assert!(err.explain().what.contains("line 2"), "{:?}", err.explain());
        assert!(parse_app_settings(path, "no equals\n").is_err());
    }

    #[test]
    fn app_settings_override_deployment_keys_which_override_defaults() {
        let file = DeploymentFile::parse(
            "[config]\ncommand = deploy/kuduhook deploy\nSCM_COMMAND_IDLE_TIMEOUT=120\nproject=x\n",
        );
        let app = [
            ("COMMAND".to_string(), "bash other.sh".to_string()),
            ("Mixed_Case".to_string(), "v".to_string()),
        ];
        let env = exported_settings(&file, &app);
        assert_eq!(env["COMMAND"], "bash other.sh");
        assert_eq!(env["APPSETTING_COMMAND"], "bash other.sh");
        assert_eq!(env["SCM_COMMAND_IDLE_TIMEOUT"], "120");
        assert_eq!(env["PROJECT"], "x");
        assert_eq!(env["SCM_TRACE_LEVEL"], "1");
        assert_eq!(env["Mixed_Case"], "v");
        assert_eq!(env["APPSETTING_Mixed_Case"], "v");
        assert!(!env.contains_key("MIXED_CASE"));
        assert!(!env.contains_key("APPSETTING_PROJECT"));

        let env = exported_settings(&file, &[]);
        assert_eq!(env["COMMAND"], "deploy/kuduhook deploy");
        assert_eq!(env["DEPLOYMENT_BRANCH"], DEFAULT_BRANCH);
    }

    #[test]
    fn commands_split_into_words_with_quotes() {
        assert_eq!(
            split_command("  deploy/kuduhook   deploy --python \"3.12\" 'a b' \"\" "),
            ["deploy/kuduhook", "deploy", "--python", "3.12", "a b", ""]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn the_previous_manifest_is_the_last_successful_deployments() {
        let root = tempfile::tempdir().unwrap();
        let site = LocalSite::new(root.path());
        std::fs::create_dir_all(site.deployments()).unwrap();
        assert_eq!(site.previous_manifest(), site.first_manifest());
        std::fs::write(site.deployments().join("active"), "abc123\n").unwrap();
        assert_eq!(
            site.previous_manifest(),
            site.deployments().join("abc123").join("manifest")
        );
    }

    #[test]
    fn hook_paths_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
