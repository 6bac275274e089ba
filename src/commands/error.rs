//! The commands around a deployment: `kuduhook init`, the local App Service (`rehearse`) and its push.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`CommandError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};

/// The commands around a deployment: `kuduhook init`, the local App Service (`rehearse`) and its push.
#[derive(Debug)]
pub enum CommandError {
    /// The local App Service's app settings file has a line that is not `NAME=value`.
    AppSettingsInvalid {
        path: PathBuf,
        line: usize,
        text: String,
    },
    /// The pushed repository (or the deployed zip) names no deployment command
    /// (`.deployment` or `COMMAND`).
    NoDeploymentCommand {
        repository: PathBuf,
        settings: PathBuf,
        zip: bool,
    },
    /// `kuduhook rehearse --zip` was given a path with nothing there.
    ZipMissing { path: PathBuf },
    /// `kuduhook rehearse --zip` was given a file that is not a zip it can read.
    NotAZip { path: PathBuf, detail: String },
    /// A zip whose entry would land outside the folder it is extracted into: a path with `..`
    /// or a root, or a link pointing out.
    UnsafeZip {
        path: PathBuf,
        entry: String,
        why: String,
    },
    /// The git remote the rehearsal would add already points elsewhere.
    RemoteTaken {
        remote: String,
        existing: String,
        wanted: String,
    },
    /// A git command of the local App Service failed.
    GitFailed {
        command: String,
        dir: PathBuf,
        detail: String,
    },
    /// `kuduhook init` was pointed at a folder that does not exist.
    InitAppMissing { app: PathBuf },
    /// The binary `kuduhook init` would copy is built for another platform than the site's.
    InitBinaryPlatform {
        binary: PathBuf,
        actual: crate::settings::Platform,
        wanted: crate::settings::Platform,
        given: bool,
    },
    /// The Linux binary `kuduhook init` would copy is dynamically linked.
    InitBinaryDynamic {
        binary: PathBuf,
        interpreter: String,
        given: bool,
    },
    /// `kuduhook init --launcher` or `kuduhook upgrade` could not get kuduhook's wheel from the
    /// package index to pin it.
    LauncherPinFailed {
        requirement: String,
        platform: crate::settings::Platform,
        output: String,
    },
    /// `kuduhook upgrade` in a repository kuduhook does not deploy.
    UpgradeNotInitialized { app: PathBuf },
    /// `kuduhook rehearse --serve` cannot start the deployed site.
    CannotServe { wwwroot: PathBuf, why: String },
    /// `kuduhook init` would replace files that differ, and `--force` was not given.
    InitWouldOverwrite { app: PathBuf, files: Vec<String> },
}

impl Failure for CommandError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            CommandError::AppSettingsInvalid { path, line, text } => (
                format!("{} line {line} is not NAME=value: {text:?}", path.display()),
                "the local App Service reads one app setting per line, NAME=value, like the \
                 portal's; blank lines and lines starting with # are skipped"
                    .to_string(),
                format!(
                    "fix or remove line {line} of {}, then push again",
                    path.display()
                ),
            ),
            CommandError::NoDeploymentCommand {
                repository,
                settings,
                zip,
            } => (
                match zip {
                    true => "the zip names no deployment command",
                    false => "the pushed repository names no deployment command",
                }
                .to_string(),
                format!(
                    "Kudu runs the `command` of .deployment's [config] section (or the COMMAND \
                     app setting), and {} has neither",
                    repository.join(".deployment").display()
                ),
                match zip {
                    true => format!(
                        "run `kuduhook init` in your app's folder and put what it writes \
                         (.deployment and deploy/) in the zip, or set COMMAND in {}",
                        settings.display()
                    ),
                    false => format!(
                        "run `kuduhook init` in your repository and commit what it writes, or \
                         set COMMAND in {}",
                        settings.display()
                    ),
                },
            ),
            CommandError::ZipMissing { path } => (
                format!("there is no zip or folder at {}", path.display()),
                "kuduhook rehearse --zip deploys a zip, or a folder it zips first".to_string(),
                "give the zip your tool deploys (what az webapp deploy --src-path takes), or \
                 your app's folder"
                    .to_string(),
            ),
            CommandError::NotAZip { path, detail } => (
                format!("{} is not a zip kuduhook can read", path.display()),
                format!("reading it said: {detail}"),
                "give a zip made by `zip -r`, your editor or CI (deflated or stored), or your \
                 app's folder, which kuduhook zips as a tool on Windows does"
                    .to_string(),
            ),
            CommandError::UnsafeZip { path, entry, why } => (
                format!(
                    "the zip {} is unsafe: its entry {entry:?} {why}",
                    path.display()
                ),
                "an entry written outside the folder a zip is extracted into could replace any \
                 file the deployment's user can write (a \"zip slip\"), so kuduhook refuses \
                 the whole zip"
                    .to_string(),
                "make the zip from the app's own folder with a tool that stores relative paths \
                 (az webapp deploy, zip -r, Compress-Archive), without links out of it; nothing \
                 was extracted into the site"
                    .to_string(),
            ),
            CommandError::RemoteTaken {
                remote,
                existing,
                wanted,
            } => (
                format!("the git remote {remote} already points at {existing}"),
                format!(
                    "the rehearsal wants to add {remote} for {wanted}, and will not change a remote of yours"
                ),
                format!(
                    "choose another name with --remote, or remove it first: git remote remove {remote}"
                ),
            ),
            CommandError::GitFailed {
                command,
                dir,
                detail,
            } => (
                format!("`{command}` failed in {}", dir.display()),
                format!("git said: {detail}"),
                "check that git works and the folder is writable; removing the local App \
                 Service folder and running `kuduhook rehearse` again starts afresh"
                    .to_string(),
            ),
            CommandError::InitAppMissing { app } => (
                format!("{} does not exist", app.display()),
                "kuduhook init sets up an existing app's repository".to_string(),
                "run it in your app's folder, or pass that folder: kuduhook init path/to/app"
                    .to_string(),
            ),
            CommandError::InitBinaryPlatform {
                binary,
                actual,
                wanted,
                given,
            } => (
                format!(
                    "{} is a {} binary, and the site runs {}",
                    binary.display(),
                    actual.name(),
                    wanted.name()
                ),
                format!(
                    "App Service runs the binary committed in deploy/, so it must be built for \
                     the site's platform{}",
                    if *given {
                        ""
                    } else {
                        " (this kuduhook is the one running init)"
                    }
                ),
                format!(
                    "install kuduhook from its wheel (pipx install kuduhook, uv tool install \
                     kuduhook: it carries the binary for each site platform), or build kuduhook \
                     for {} (cargo build --release --target {}) and pass it with --binary; or \
                     pick the site's platform with --platform",
                    wanted.name(),
                    match wanted {
                        crate::settings::Platform::Linux => "x86_64-unknown-linux-musl",
                        crate::settings::Platform::Windows => "x86_64-pc-windows-gnu",
                    }
                ),
            ),
            CommandError::LauncherPinFailed {
                requirement,
                platform,
                output,
            } => (
                format!(
                    "the package index gave no wheel of {requirement} for App Service on {}",
                    platform.name()
                ),
                format!(
                    "the launcher pins the wheel the site will download and its SHA-256, so \
                     kuduhook asks pip for it first, with this machine's index settings \
                     (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, pip.conf); pip said: {}",
                    output
                        .trim()
                        .lines()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
                "publish that version to the index the site installs from (or point \
                 PIP_INDEX_URL at it), or commit the binary instead \
                 (kuduhook init without --launcher); nothing was written"
                    .to_string(),
            ),
            CommandError::UpgradeNotInitialized { app } => (
                format!("{} is not deployed by kuduhook", app.display()),
                "kuduhook upgrade changes the kuduhook a repository runs: deploy/launcher.py's \
                 pin, or the binary in deploy/; neither is there"
                    .to_string(),
                "run kuduhook init (with --launcher to commit no binary) first".to_string(),
            ),
            CommandError::InitBinaryDynamic {
                binary,
                interpreter,
                given,
            } => (
                format!(
                    "{} is dynamically linked (it needs {interpreter} and this machine's C library)",
                    binary.display()
                ),
                format!(
                    "App Service runs deploy/kuduhook in Kudu's Linux container (Debian buster to \
                     bookworm, glibc 2.28 to 2.36), where a binary built against a newer glibc \
                     does not start (\"GLIBC_2.34 not found\"){}; nothing was written",
                    if *given {
                        ""
                    } else {
                        " (this kuduhook is the one running init)"
                    }
                ),
                "install kuduhook from its wheel (pipx install kuduhook, uv tool install \
                 kuduhook: its Linux binary is the static one), or build the static one and pass \
                 it: rustup target add x86_64-unknown-linux-musl && cargo build --release \
                 --target x86_64-unknown-linux-musl, then kuduhook init --binary \
                 target/x86_64-unknown-linux-musl/release/kuduhook"
                    .to_string(),
            ),
            CommandError::CannotServe { wwwroot, why } => (
                format!(
                    "the site in {} cannot be started as App Service Linux starts it",
                    wwwroot.display()
                ),
                why.clone(),
                format!(
                    "deploy to the local App Service (git push rehearsal HEAD:master), and read \
                     kuduhook status --target {} for how the platform finds the env and the entry",
                    wwwroot.display()
                ),
            ),
            CommandError::InitWouldOverwrite { app, files } => (
                format!(
                    "{} already has {}, with other content",
                    app.display(),
                    files.join(", ")
                ),
                "kuduhook init never replaces a file of yours unless told to; nothing was written"
                    .to_string(),
                "look at the plan above; run again with --force to replace them (other \
                 .deployment keys are kept), or move them aside"
                    .to_string(),
            ),
        };
        Explanation { what, why, fix }
    }
}
