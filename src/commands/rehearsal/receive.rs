//! What the local App Service's receive hook does with a push: for the deployment branch,
//! one deployment, as Kudu runs it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{info, warn};

use super::{
    LocalSite, clear_git_variables, exported_settings, git, git_command, make_executable,
    split_command,
};
use crate::commands::error::CommandError;
use crate::env::record::now_unix;
use crate::ground::error::DeployError;
use crate::ground::logging::{seconds, short_commit};
use crate::settings::kudu::{DeploymentFile, var};

/// Kudu's last line for a deployment that failed; the push itself has landed.
pub const FAILED_LINE: &str =
    "Error - Changes committed to remote repository but deployment to website failed.";
pub const SUCCEEDED_LINE: &str = "Deployment successful.";
/// What a deployment that could not run leaves: the site as it was.
pub const KEEPS_SERVING: &str = "The site keeps serving the last successful deployment.";

/// One line of git's input to a receive hook: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// Parses a receive hook's standard input.
pub fn parse_pushed(text: &str) -> Vec<PushedRef> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some(PushedRef {
                old: parts.next()?.to_string(),
                new: parts.next()?.to_string(),
                name: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// Deploys what a push brought to the deployment branch. `Ok(false)` is a failed deployment
/// (already reported in the output); `Err` is a problem with the local App Service itself.
pub fn receive(root: &Path, pushed: &[PushedRef]) -> Result<bool, DeployError> {
    let site = LocalSite::new(root);
    let app_settings = read_app_settings(&site)?;
    let branch = app_settings
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("DEPLOYMENT_BRANCH"))
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| super::DEFAULT_BRANCH.to_string());
    let wanted = format!("refs/heads/{branch}");
    let mut succeeded = true;
    for r in pushed {
        if r.name != wanted {
            let pushed_branch = r.name.strip_prefix("refs/heads/").unwrap_or(&r.name);
            info!(
                "Pushed {}, which is not the deployment branch ({branch}): nothing was deployed. \
                 To deploy it, push it to {branch} (git push <remote> {pushed_branch}:{branch}) or \
                 set DEPLOYMENT_BRANCH={pushed_branch} in {}",
                r.name,
                site.app_settings().display()
            );
            continue;
        }
        if r.new.bytes().all(|b| b == b'0') {
            info!("The deployment branch {branch} was deleted: the site keeps what it serves");
            continue;
        }
        succeeded &= deploy(&site, &r.new, &app_settings)?;
    }
    Ok(succeeded)
}

fn read_app_settings(site: &LocalSite) -> Result<Vec<(String, String)>, DeployError> {
    let path = site.app_settings();
    match std::fs::read_to_string(&path) {
        Ok(text) => super::parse_app_settings(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(DeployError::io("read the app settings", &path, e)),
    }
}

/// The status Kudu keeps for each deployment (`site/deployments/<commit>/status.json`).
#[derive(Debug, Serialize)]
struct DeploymentStatus<'a> {
    commit: &'a str,
    message: &'a str,
    command: &'a str,
    succeeded: bool,
    exit_code: Option<i32>,
    idle_killed: bool,
    started_unix: u64,
    seconds: f64,
}

/// The deployment log: every line goes to the pusher and into `log.log`.
struct Transcript {
    file: Option<File>,
}

impl Transcript {
    /// A line of the local App Service's own.
    fn say(&mut self, line: &str) {
        info!("{line}");
        self.keep(line);
    }
    /// A line of the deployment command's, passed on as it printed it.
    fn relay(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        self.keep(line);
    }
    fn keep(&mut self, line: &str) {
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// Where a deployment's files are, and what Kudu tells the command about them.
struct Delivered {
    /// `DEPLOYMENT_SOURCE`: the checkout, or the folder a zip was extracted into.
    source: PathBuf,
    commit: String,
    message: String,
    /// A clean deployment (`IGNORE_MANIFEST=1`).
    clean: bool,
}

/// One deployment of `commit`, one at a time per site.
fn deploy(
    site: &LocalSite,
    commit: &str,
    app_settings: &[(String, String)],
) -> Result<bool, DeployError> {
    let _lock = lock_site(site)?;
    let repository = site.repository();
    info!(
        "Updating {} to commit {}",
        repository.display(),
        short_commit(commit)
    );
    check_out(site, commit)?;
    let message = git_text(&["log", "-1", "--format=%B", commit], &repository);
    run(
        site,
        &Delivered {
            source: repository,
            commit: commit.to_string(),
            message,
            clean: false,
        },
        app_settings,
    )
}

/// A zip deployment, as KuduLite runs one (`az webapp deploy`, `az webapp up`, VS Code, GitHub
/// Actions): `zip` (or a folder, zipped first as a tool on Windows zips it: no modes, DOS
/// times) is extracted into `<temp>/zipdeploy/extracted`, which is `DEPLOYMENT_SOURCE`, under a
/// generated commit id; `clean` is a clean publish (`IGNORE_MANIFEST=1`). `Ok(false)` is a
/// failed deployment (already reported in the output).
pub fn deploy_zip(root: &Path, zip: &Path, clean: bool) -> Result<bool, DeployError> {
    let site = LocalSite::new(root);
    let app_settings = read_app_settings(&site)?;
    let _lock = lock_site(&site)?;
    let name = zip
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let made;
    let zip = if zip.is_dir() {
        made = site.temp().join(format!("{name}.zip"));
        let counts = super::zip::make(zip, &made)?;
        info!(
            "Zipped {} as a tool on Windows does (no modes, 2-second times): {} files",
            zip.display(),
            counts.files
        );
        made.as_path()
    } else {
        zip
    };
    let extracted = crate::settings::kudu::ZIP_EXTRACTED
        .iter()
        .fold(site.temp(), |path, part| path.join(part));
    if extracted.exists() {
        std::fs::remove_dir_all(&extracted).map_err(|e| DeployError::io("clear", &extracted, e))?;
    }
    let counts = super::zip::extract(zip, &extracted)?;
    info!(
        "Extracted {} ({} files) into {}",
        zip.display(),
        counts.files,
        extracted.display()
    );
    let commit = generated_id(zip);
    run(
        &site,
        &Delivered {
            source: extracted,
            commit,
            message: format!("Zip deployment of {name}"),
            clean,
        },
        &app_settings,
    )
}

/// A deployment id for what has no commit of the user's, as Kudu generates one: 40 hex
/// digits, unique per deployment (from the zip's path and a new id of this process).
fn generated_id(zip: &Path) -> String {
    use sha1::{Digest, Sha1};
    let mut hash = Sha1::new();
    hash.update(zip.to_string_lossy().as_bytes());
    hash.update(crate::env::record::new_id().as_bytes());
    crate::ground::digest::hex(&hash.finalize())
}

/// Runs the deployment command for what was delivered, as Kudu does, and keeps its log,
/// status and (on success) the site's `active` deployment.
fn run(
    site: &LocalSite,
    delivered: &Delivered,
    app_settings: &[(String, String)],
) -> Result<bool, DeployError> {
    let started = Instant::now();
    let started_unix = now_unix();
    let (commit, message) = (delivered.commit.as_str(), delivered.message.as_str());
    let repository = delivered.source.clone();
    let folder = site.deployment(commit);
    std::fs::create_dir_all(&folder)
        .map_err(|e| DeployError::io("create the deployment folder", &folder, e))?;
    let log_path = folder.join("log.log");
    let mut transcript = Transcript {
        file: File::create(&log_path).ok(),
    };
    transcript.say(&format!(
        "Preparing deployment for commit id '{}'",
        short_commit(commit)
    ));

    let deployment_file = DeploymentFile::read(&repository)
        .map_err(|e| DeployError::io("read", repository.join(".deployment"), e))?;
    let settings = exported_settings(&deployment_file, app_settings);
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(command) = setting("COMMAND").filter(|c| !c.trim().is_empty()) else {
        return Err(CommandError::NoDeploymentCommand {
            repository: repository.clone(),
            settings: site.app_settings(),
            zip: crate::settings::kudu::is_zip_extraction(&repository),
        }
        .into());
    };
    let idle = setting(var::SCM_COMMAND_IDLE_TIMEOUT)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(60);
    let temp = tempfile::Builder::new()
        .prefix("deployment-")
        .tempdir_in(site.temp())
        .map_err(|e| DeployError::io("create DEPLOYMENT_TEMP in", site.temp(), e))?;
    let target = match setting("SCM_TARGET_PATH").filter(|p| !p.is_empty()) {
        Some(sub) => site.wwwroot().join(sub),
        None => site.wwwroot(),
    };
    let mut variables = settings.clone();
    variables.extend(kudu_variables(&KuduInputs {
        site,
        source: &repository,
        commit,
        message,
        target: &target,
        temp: temp.path(),
    }));
    if delivered.clean {
        variables.insert(var::IGNORE_MANIFEST.to_string(), "1".to_string());
    }

    transcript.say(&format!("Running deployment command '{command}'"));
    let words = split_command(command);
    let mut program = PathBuf::from(&words[0]);
    let in_repo = repository.join(&program);
    if words.len() == 1 && in_repo.is_file() {
        // Kudu makes the command executable before it runs it only when the whole command
        // is a path inside the repository (no arguments).
        let _ = make_executable(&in_repo);
    }
    if words[0].contains('/') && in_repo.is_file() {
        program = in_repo;
    }
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&words[1..]).current_dir(&repository);
    clear_git_variables(&mut cmd);
    cmd.envs(&variables);
    let watched = super::watch::run(&mut cmd, Duration::from_secs(idle), |line| {
        transcript.relay(line)
    });
    let (succeeded, exit_code, idle_killed) = match watched {
        Ok(w) => (
            w.status.success() && !w.idle_killed,
            w.status.code(),
            w.idle_killed,
        ),
        Err(error) => {
            transcript.say(&format!("Could not start '{}': {error}", program.display()));
            (false, None, false)
        }
    };
    if idle_killed {
        transcript.say(&format!(
            "Command '{command}' was aborted due to no output nor CPU activity for {idle} \
             seconds. Raise the app setting SCM_COMMAND_IDLE_TIMEOUT if it needs longer."
        ));
    } else if !succeeded && let Some(code) = exit_code {
        transcript.say(&format!("Command '{command}' exited with code {code}"));
    }
    if let Err(e) = temp.close() {
        warn!("could not remove DEPLOYMENT_TEMP: {e}");
    }
    let status = DeploymentStatus {
        commit,
        message: message.trim(),
        command,
        succeeded,
        exit_code,
        idle_killed,
        started_unix,
        seconds: started.elapsed().as_secs_f64(),
    };
    let status_path = folder.join("status.json");
    let json = serde_json::to_vec_pretty(&status).expect("the status serializes");
    std::fs::write(&status_path, json).map_err(|e| DeployError::io("write", &status_path, e))?;
    if succeeded {
        let active = site.deployments().join("active");
        std::fs::write(&active, commit).map_err(|e| DeployError::io("write", &active, e))?;
        transcript.say(&format!(
            "{SUCCEEDED_LINE} ({} in {})",
            short_commit(commit),
            seconds(started.elapsed())
        ));
    } else {
        transcript.say(&format!(
            "The site keeps serving the last successful deployment ({}). Log: {}",
            site.active()
                .map(|c| short_commit(&c).to_string())
                .unwrap_or_else(|| "none yet".into()),
            log_path.display()
        ));
        transcript.say(FAILED_LINE);
    }
    Ok(succeeded)
}

/// What the Kudu variables are made from.
struct KuduInputs<'a> {
    site: &'a LocalSite,
    /// `DEPLOYMENT_SOURCE`.
    source: &'a Path,
    commit: &'a str,
    message: &'a str,
    target: &'a Path,
    temp: &'a Path,
}

/// The variables Kudu sets for the deployment command (besides the exported settings).
fn kudu_variables(i: &KuduInputs) -> BTreeMap<String, String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let source = i.source.to_path_buf();
    let mut vars = BTreeMap::from([
        (var::DEPLOYMENT_SOURCE.to_string(), path(&source)),
        (var::DEPLOYMENT_TARGET.to_string(), path(i.target)),
        (var::DEPLOYMENT_TEMP.to_string(), path(i.temp)),
        (
            var::NEXT_MANIFEST_PATH.to_string(),
            path(&i.site.deployment(i.commit).join("manifest")),
        ),
        (
            var::PREVIOUS_MANIFEST_PATH.to_string(),
            path(&i.site.previous_manifest()),
        ),
        (var::SCM_COMMIT_ID.to_string(), i.commit.to_string()),
        (
            "SCM_COMMIT_MESSAGE".to_string(),
            i.message.trim().to_string(),
        ),
    ]);
    if source == i.target {
        vars.insert(var::IN_PLACE_DEPLOYMENT.to_string(), "1".to_string());
    }
    vars
}

/// Brings `site/repository` to `commit` as Kudu does (KuduLite's `GitExeRepository.Update`:
/// `git checkout <id> --force`): every tracked file made the commit's; files no commit tracks
/// (left there by someone, or by the app) stay, and the deployment finds them.
fn check_out(site: &LocalSite, commit: &str) -> Result<(), DeployError> {
    let repository = site.repository();
    if !repository.join(".git").exists() {
        git(&["init", "--quiet"], &repository)?;
    }
    let git_dir = site.git_dir().to_string_lossy().into_owned();
    git(&["fetch", "--quiet", &git_dir, commit], &repository)?;
    git(&["checkout", "--quiet", "--force", commit], &repository)
}

fn git_text(args: &[&str], dir: &Path) -> String {
    git_command(args, dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// One deployment at a time per local site: a second push waits, as Kudu queues it.
fn lock_site(site: &LocalSite) -> Result<File, DeployError> {
    let path = site.root.join("deployment.lock");
    let file = File::create(&path).map_err(|e| DeployError::io("open", &path, e))?;
    if file.try_lock().is_err() {
        info!("Waiting for the deployment in progress to finish");
        file.lock().map_err(|e| DeployError::io("lock", &path, e))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_reads_old_new_and_ref_per_line() {
        let pushed =
            parse_pushed("0000 abcd refs/heads/master\nbad line\n1111 2222 refs/tags/v1\n");
        assert_eq!(pushed.len(), 2);
        assert_eq!(pushed[0].new, "abcd");
        assert_eq!(pushed[1].name, "refs/tags/v1");
    }

    #[test]
    #[cfg(unix)] // the local App Service is a Linux one
    fn kudu_variables_point_at_the_site_and_the_last_good_manifest() {
        let root = tempfile::tempdir().unwrap();
        let site = LocalSite::new(root.path());
        let vars = kudu_variables(&KuduInputs {
            site: &site,
            source: &site.repository(),
            commit: "abc",
            message: "Fix it\n",
            target: &site.wwwroot(),
            temp: Path::new("/tmp/t"),
        });
        assert_eq!(
            vars["NEXT_MANIFEST_PATH"],
            site.deployments().join("abc/manifest").to_string_lossy()
        );
        assert_eq!(
            vars["PREVIOUS_MANIFEST_PATH"],
            site.first_manifest().to_string_lossy()
        );
        assert_eq!(vars["SCM_COMMIT_MESSAGE"], "Fix it");
        assert!(!vars.contains_key("IN_PLACE_DEPLOYMENT"));
    }
}
