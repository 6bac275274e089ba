//! Every failure a user can meet, and all the words we say about it.
//!
//! Errors are data: code that fails builds a [`DeployError`] with the facts, and this module
//! alone turns it into text. Each error says what happened, why, and what to do; the README's
//! troubleshooting section lists the same errors.

use std::fmt;
use std::path::PathBuf;

use crate::config::Origin;
use crate::python::{MIN_SUPPORTED, PythonVersion};

/// A deployment failure, with the facts needed to explain it.
#[derive(Debug)]
pub enum DeployError {
    /// The folder to deploy from does not exist.
    SourceMissing { source: PathBuf, origin: Origin },
    /// Source and target are one inside the other (and not the same folder).
    Nested { source: PathBuf, target: PathBuf },
    /// A configuration or repository file exists but could not be read.
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `deploy/steps.json` is not valid: bad JSON, an unknown step or option.
    StepsFileInvalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// `deploy/steps.json` names a step before the step it depends on, or twice.
    StepsOrder { path: String, problem: String },
    /// A version file (`runtime.txt`, `.python-version`) that does not say a version.
    BadVersionFile {
        file: &'static str,
        line: usize,
        value: String,
    },
    /// A setting whose value is not one of those it takes.
    BadSetting {
        value: String,
        origin: Origin,
        expected: &'static str,
    },
    /// A version setting (`--python`, `PYTHON_VERSION`) that does not say a version.
    BadVersionSetting { origin: Origin, value: String },
    /// A well-formed version kuduhook cannot build an env for.
    UnsupportedPython {
        version: PythonVersion,
        origin: Origin,
    },
    /// The app asks for another Python than the one App Service Linux starts it with.
    SiteRunsOtherPython {
        site: PythonVersion,
        requested: PythonVersion,
        origin: Origin,
    },
    /// Two repository entries whose names differ only in case, for a target that folds case.
    CaseCollision { first: String, second: String },
    /// The web.config a Windows site starts with runs another env than the one kuduhook builds.
    WebConfigOtherEnv {
        file: String,
        named: Vec<String>,
        env_name: String,
    },
    /// No interpreter of the requested version was found.
    InterpreterNotFound {
        version: Option<PythonVersion>,
        origin: Origin,
        searched: Vec<String>,
        found: Vec<String>,
    },
    /// An interpreter named by a setting does not run.
    InterpreterUnusable {
        path: PathBuf,
        origin: Origin,
        detail: String,
    },
    /// An interpreter named by a setting is not the requested version.
    InterpreterWrongVersion(Box<WrongVersion>),
    /// A setting names a path kuduhook may not use (outside the app, or not a plain name).
    BadPathSetting {
        what: &'static str,
        value: String,
        origin: Origin,
        rule: &'static str,
    },
    /// `python -m venv` failed.
    EnvCreateFailed {
        interpreter: PathBuf,
        env: PathBuf,
        detail: String,
    },
    /// The installer exited non-zero.
    InstallFailed {
        requirements: PathBuf,
        installer: String,
        status: String,
    },
    /// The app did not import (or the check command failed) as the platform will start it.
    StartCheckFailed {
        what: String,
        output: Vec<String>,
        timed_out: Option<u64>,
    },
    /// KUDUHOOK_DEPENDENCIES names a file the app does not have.
    DependencySourceMissing { file: String, origin: Origin },
    /// More than one dependency source, none named.
    DependencySourcesAmbiguous { found: Vec<String> },
    /// uv.lock or poetry.lock without the pyproject.toml it locks.
    LockWithoutProject { lock: String },
    /// A project whose tool needs a lock (Poetry, pipenv), without it.
    LockMissing {
        project: String,
        lock: String,
        command: String,
    },
    /// A lock made for other requirements than the project's now.
    LockOutdated {
        lock: String,
        project: String,
        command: String,
    },
    /// A dependency source that cannot be read or used.
    DependenciesUnknown { file: String, detail: String },
    /// The project's (or lock's) Python constraint excludes the selected interpreter.
    PythonNotAllowed {
        file: String,
        requires: String,
        version: String,
    },
    /// A selected extra or dependency group the project does not declare.
    UnknownDependencyGroup {
        group: String,
        file: String,
        available: Vec<String>,
    },
    /// The env copied from the live one could not be proven to hold exactly what a fresh one
    /// would: the pipeline builds a fresh env instead (never shown as a failure).
    ReuseUnproven { why: String },
    /// A step's command exited non-zero.
    CommandFailed {
        step: String,
        command: String,
        status: String,
    },
    /// A program could not be started at all.
    SpawnFailed {
        program: String,
        error: std::io::Error,
    },
    /// The repository has a file or link where the site has a folder holding the app's files.
    FolderInTheWay { relative: String, kept: usize },
    /// A link in the repository points outside it, and the sync was told to refuse such links.
    OutsideLink { relative: String, link: PathBuf },
    /// A sync pattern (`-i`, `--full-compare`, a setting) is not a valid glob.
    BadPattern { pattern: String, origin: Origin },
    /// A file stayed locked or busy through every retry.
    Busy {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
        attempts: u32,
        waited: std::time::Duration,
    },
    /// Another deployment of the same target held the deploy lock for the whole wait.
    Locked {
        holder: String,
        waited: std::time::Duration,
        lock: PathBuf,
    },
    /// uv was asked for (`KUDUHOOK_INSTALLER=uv`) and none was found.
    UvMissing {
        origin: Origin,
        searched: Vec<String>,
    },
    /// `kuduhook status` found no record of a deployment into the target.
    NoDeploymentRecord { target: PathBuf, record: PathBuf },
    /// `kuduhook rollback` found no release kept before the live one.
    NoReleaseToRollBackTo { target: PathBuf, kept: Vec<String> },
    /// `kuduhook rollback --to` named a commit no kept release (before the live one) has.
    ReleaseNotKept { commit: String, kept: Vec<String> },
    /// A release to roll back has no undo log of its files (an in-place deployment, or one
    /// whose sync step was disabled).
    ReleaseNotUndoable { commit: String },
    /// The local App Service's app settings file has a line that is not `NAME=value`.
    AppSettingsInvalid {
        path: PathBuf,
        line: usize,
        text: String,
    },
    /// The pushed repository names no deployment command (`.deployment` or `COMMAND`).
    NoDeploymentCommand {
        repository: PathBuf,
        settings: PathBuf,
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
        actual: crate::platform::Platform,
        wanted: crate::platform::Platform,
        given: bool,
    },
    /// The Linux binary `kuduhook init` would copy is dynamically linked.
    InitBinaryDynamic {
        binary: PathBuf,
        interpreter: String,
        given: bool,
    },
    /// `kuduhook rehearse --serve` cannot start the deployed site.
    CannotServe { wwwroot: PathBuf, why: String },
    /// `kuduhook init` would replace files that differ, and `--force` was not given.
    InitWouldOverwrite { app: PathBuf, files: Vec<String> },
    /// A file operation failed.
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What a failed deployment left serving: the last line of every failure.
pub mod site_state {
    pub const UNTOUCHED: &str =
        "Nothing in the target was changed: the site still serves the previous deployment.";
    pub const FILES_CHANGED_ENV_KEPT: &str =
        "The app's files were updated; the previous env still serves the site, unchanged.";
    pub const FILES_CHANGED_ENV_RESTORED: &str = "The app's files were updated; the site was \
        switched back to the previous env, which serves it.";
    pub const ENV_RESTORED: &str = "The app's files were not changed; the site was switched \
        back to the previous env, which serves it.";
    pub const ENV_CHANGED_IN_PLACE: &str = "The app's files were updated; the env was changed \
        in place (KUDUHOOK_ENV_MODE=incremental) and may hold part of the new requirements.";
    pub const FILES_AND_ENV_RESTORED: &str = "The previous files were put back and the site \
        was switched back to the previous env: it serves the previous deployment.";
    pub const FILES_RESTORED: &str = "The previous files were put back; the env was not \
        changed: the site serves the previous deployment.";
    pub const FILES_NOT_RESTORED: &str = "Not every previous file could be put back: the \
        undo log stays beside the site, and the next deployment finishes putting them back \
        before it starts.";
    pub const ROLLBACK_REFUSED: &str =
        "Nothing was changed: the site still serves the release it served.";
    pub const ROLLBACK_FAILED: &str = "The rollback stopped: run `kuduhook status` to see what \
        the site serves; releases that were undone are no longer listed, the rest can be rolled \
        back again.";
    pub const SYNC_PARTIAL: &str = "The sync stopped part-way: some files in the target are \
        new, the rest are the previous deployment's. The manifest was not written; the next \
        sync finishes the job and cleans up.";
    pub const ENV_NOT_RESTORED: &str = "The site could not be switched back to the previous \
        env: it runs the new one; the next deployment checks it before anything else.";
}

/// What a failed `python -m venv` ran into, read from its last output line.
enum VenvFailure {
    LinksRefused,
    NoSpace,
    Other,
}

fn venv_failure_cause(detail: &str) -> VenvFailure {
    if detail.contains("Operation not supported") || detail.contains("Errno 95") {
        VenvFailure::LinksRefused
    } else if detail.contains("No space left") || detail.contains("Errno 28") {
        VenvFailure::NoSpace
    } else {
        VenvFailure::Other
    }
}

/// The facts of [`DeployError::InterpreterWrongVersion`].
#[derive(Debug)]
pub struct WrongVersion {
    pub path: PathBuf,
    pub origin: Origin,
    pub actual: PythonVersion,
    pub requested: PythonVersion,
    pub requested_origin: Origin,
}

/// What a user reads about an error: what happened, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub what: String,
    pub why: String,
    pub fix: String,
}

impl DeployError {
    /// Shorthand for [`DeployError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        DeployError::Io {
            action,
            path: path.into(),
            error,
        }
    }

    /// The text a user reads.
    pub fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            DeployError::SourceMissing { source, origin } => (
                format!("the folder to deploy, {}, does not exist", source.display()),
                format!("it was given by {origin}"),
                if *origin == Origin::Default {
                    "run kuduhook from the repository root, or pass --source <repo>".to_string()
                } else {
                    format!("point {origin} at the repository to deploy")
                },
            ),
            DeployError::Nested { source, target } => (
                format!(
                    "source {} and target {} are inside one another",
                    source.display(),
                    target.display()
                ),
                "syncing a folder into itself would copy or delete the deployment's own files"
                    .to_string(),
                "choose a target outside the repository (--target, or -t for kuduhook sync); \
                 to deploy in place, where source and target are the same folder, set \
                 IN_PLACE_DEPLOYMENT=1"
                    .to_string(),
            ),
            DeployError::Unreadable { path, error } => (
                format!("could not read {}", path.display()),
                format!("the system said: {error}"),
                "check that the file is readable by the deployment's user".to_string(),
            ),
            DeployError::StepsFileInvalid {
                path,
                line,
                column,
                message,
            } => (
                format!("{path} line {line} column {column}: {message}"),
                "kuduhook reads the deployment's steps from this file and will not guess at a \
                 broken one"
                    .to_string(),
                format!(
                    "fix {path} (the README's \"deploy/steps.json reference\" lists every step \
                     and option), or delete it to use the default steps"
                ),
            ),
            DeployError::StepsOrder { path, problem } => (
                format!("{path}: {problem}"),
                "each Python step uses what an earlier step made: the interpreter (web-config, \
                 validate-env), then the env (pip-install, collectstatic)"
                    .to_string(),
                "keep the order sync, detect-runtime, validate-env, pip-install; disable a step \
                 with \"enabled\": false rather than removing the steps it needs"
                    .to_string(),
            ),
            DeployError::BadVersionFile { file, line, value } => {
                let runtime_txt = *file == "runtime.txt";
                let syntax = if runtime_txt {
                    "one line python-X.Y or python-X.Y.Z, for example python-3.12"
                } else {
                    "one line X.Y or X.Y.Z, for example 3.12 (# comments allowed)"
                };
                let said = if value.is_empty() {
                    "no version".to_string()
                } else {
                    format!("{value:?}")
                };
                let fix = match version_in(value) {
                    Some(v) if runtime_txt => format!("write python-{v} into {file}"),
                    Some(v) => format!("write {v} into {file}"),
                    None => format!("write {syntax} into {file}"),
                };
                (
                    format!("{file} line {line} says {said}, which is not a Python version"),
                    format!("{file} must hold {syntax}"),
                    format!("{fix}, or delete the file to use the default interpreter"),
                )
            }
            DeployError::BadVersionSetting { origin, value } => {
                let or_path = if *origin == Origin::Flag("--python") {
                    " or an interpreter's path (with a / in it)"
                } else {
                    ""
                };
                let fix = match version_in(value) {
                    Some(v) => format!("set {origin} to {v}{or_path}, or remove it"),
                    None => {
                        format!("set {origin} to a version such as 3.12{or_path}, or remove it")
                    }
                };
                (
                    format!("{origin} is {value:?}, which is not a Python version"),
                    "a version is written X.Y or X.Y.Z, for example 3.12".to_string(),
                    fix,
                )
            }
            DeployError::UnsupportedPython { version, origin } => (
                format!("Python {version} (from {origin}) is not supported"),
                format!(
                    "kuduhook builds envs with venv and pip, which need Python {}.{} or newer",
                    MIN_SUPPORTED.0, MIN_SUPPORTED.1
                ),
                format!(
                    "ask for Python {}.{} or newer in {origin}",
                    MIN_SUPPORTED.0, MIN_SUPPORTED.1
                ),
            ),
            DeployError::CaseCollision { first, second } => (
                format!("the repository holds both {first} and {second}"),
                "the site's filesystem ignores case in names (App Service's /home is an SMB \
                 share): there they are one file, and one would silently replace the other"
                    .to_string(),
                format!(
                    "keep one of them (git rm --cached {second}), or rename one so that the \
                     names differ in more than case"
                ),
            ),
            DeployError::WebConfigOtherEnv {
                file,
                named,
                env_name,
            } => (
                format!(
                    "{file} runs the env {}, but kuduhook builds the env {env_name}",
                    named.join(" and ")
                ),
                "IIS starts the site with the python.exe the web.config names: the site would \
                 start without the packages kuduhook installs"
                    .to_string(),
                format!(
                    "point {file} at wwwroot\\{env_name}\\Scripts\\python.exe, or build the env \
                     where it looks: app setting KUDUHOOK_ENV_NAME={}",
                    named[0]
                ),
            ),
            DeployError::SiteRunsOtherPython {
                site,
                requested,
                origin,
            } => {
                let minor = site.minor_version();
                let agree = match origin {
                    Origin::File { name, .. } if *name == "runtime.txt" => {
                        format!("make runtime.txt say python-{minor}")
                    }
                    Origin::File { name, .. } => format!("make {name} say {minor}"),
                    other => format!("set {other} to {minor}, or remove it"),
                };
                (
                    format!(
                        "{origin} asks for Python {requested}, but this site runs Python {site}"
                    ),
                    format!(
                        "App Service Linux starts the app with its stack's Python ({site}, which \
                         Kudu passes as FRAMEWORK_VERSION) and the env's packages: an env built \
                         for {requested} would not import there"
                    ),
                    format!(
                        "make the two agree: set the site's stack to Python {} (portal: \
                         Configuration > General settings; or az webapp config set \
                         --linux-fx-version \"PYTHON|{}\"), or {agree}",
                        requested.minor_version(),
                        requested.minor_version()
                    ),
                )
            }
            DeployError::InterpreterNotFound {
                version,
                origin,
                searched,
                found,
            } => {
                let wanted = match version {
                    Some(v) => format!("Python {v} (from {origin})"),
                    None => "a default Python interpreter".to_string(),
                };
                let found = if found.is_empty() {
                    "no Python interpreters at all".to_string()
                } else {
                    format!("these:\n       {}", found.join("\n       "))
                };
                (
                    format!("no interpreter for {wanted} was found"),
                    format!("searched {}\n  found {found}", searched.join(", ")),
                    "ask for one of the versions found, or set the app setting KUDUHOOK_PYTHON \
                     to the interpreter's full path"
                        .to_string(),
                )
            }
            DeployError::InterpreterUnusable {
                path,
                origin,
                detail,
            } => (
                format!("the interpreter {} does not run", path.display()),
                format!("it was named by {origin}, and running it failed: {detail}"),
                format!("point {origin} at a working python executable, or remove it"),
            ),
            DeployError::InterpreterWrongVersion(wrong) => {
                let WrongVersion {
                    path,
                    origin,
                    actual,
                    requested,
                    requested_origin,
                } = wrong.as_ref();
                (
                    format!(
                        "{} (from {origin}) is Python {actual}, but {requested_origin} asks for {requested}",
                        path.display()
                    ),
                    "kuduhook will not build an env with a different Python than the one asked for"
                        .to_string(),
                    format!(
                        "point {origin} at a Python {requested} interpreter, or change {requested_origin}"
                    ),
                )
            }
            DeployError::BadPathSetting {
                what,
                value,
                origin,
                rule,
            } => (
                format!("{origin} sets the {what} to {value:?}, which kuduhook will not use"),
                rule.to_string(),
                format!("change {origin}"),
            ),
            DeployError::EnvCreateFailed {
                interpreter,
                env,
                detail,
            } => (
                format!("could not create the env {}", env.display()),
                format!("{} -m venv failed: {detail}", interpreter.display()),
                match venv_failure_cause(detail) {
                    VenvFailure::LinksRefused => "the site's filesystem refused a symbolic link \
                         (an SMB share without mfsymlinks): report this with the log, since \
                         kuduhook makes envs without links where links are refused"
                        .to_string(),
                    VenvFailure::NoSpace => {
                        "free space on the site's disk, then deploy again".to_string()
                    }
                    VenvFailure::Other => "check the interpreter has the venv and ensurepip \
                         modules (on Debian: apt-get install python3-venv), and that the target \
                         is writable"
                        .to_string(),
                },
            ),
            DeployError::StartCheckFailed {
                what,
                output,
                timed_out,
            } => (
                match timed_out {
                    Some(limit) => format!(
                        "the start check did not finish within {limit}s: the app {what} hangs"
                    ),
                    None => format!(
                        "the app does not start: the check that it {what} failed{}",
                        match output.last() {
                            Some(last) => format!(": {last}"),
                            None => String::new(),
                        }
                    ),
                },
                match output.is_empty() {
                    true => "App Service starts the site this way; a site that cannot would \
                             crash at its next start"
                        .into(),
                    false => format!(
                        "App Service starts the site this way; it would crash at its next start. \
                         The check printed:\n    {}",
                        output.join("\n    ")
                    ),
                },
                "fix the error and push again (`kuduhook rehearse --serve` starts the site \
                 locally); KUDUHOOK_START_CHECK=module:callable names another entry, =off skips \
                 the check"
                    .into(),
            ),
            DeployError::DependencySourceMissing { file, origin } => (
                format!("the dependency source {file} named by {origin} is not in the app"),
                "kuduhook installs the app's dependencies from the file that setting names".into(),
                format!("commit {file}, or point {origin} at the app's requirements file or lock"),
            ),
            DeployError::DependencySourcesAmbiguous { found } => (
                format!("the app has more than one dependency source: {}", found.join(", ")),
                "kuduhook installs from one of them and cannot tell which one the app is meant \
                 to run with (a requirements.txt exported from a lock may have drifted from it)"
                    .into(),
                format!(
                    "remove the ones the app does not use, or name the one to install with the \
                     app setting KUDUHOOK_DEPENDENCIES (for example KUDUHOOK_DEPENDENCIES={})",
                    found.last().map(String::as_str).unwrap_or("requirements.txt")
                ),
            ),
            DeployError::LockWithoutProject { lock } => (
                format!("the app has {lock} but no pyproject.toml"),
                format!("{lock} locks the dependencies of the project pyproject.toml declares"),
                "commit pyproject.toml beside the lock".into(),
            ),
            DeployError::LockMissing {
                project,
                lock,
                command,
            } => (
                format!("the app's {project} has no {lock}"),
                format!(
                    "the versions to install are those {lock} pins; without it, what would run \
                     is unknown"
                ),
                format!("run `{command}` and commit {lock}"),
            ),
            DeployError::LockOutdated {
                lock,
                project,
                command,
            } => (
                format!("{lock} does not match {project}"),
                "the lock was made for other requirements than the project declares now: \
                 installing it would not give what the project asks for"
                    .into(),
                format!("run `{command}` and commit the updated lock"),
            ),
            DeployError::DependenciesUnknown { file, detail } => (
                format!("the app's dependencies cannot be read from {file}: {detail}"),
                "kuduhook deploys an app only with the dependencies it declares, never without \
                 them"
                    .into(),
                format!("fix {file} (the tool that made it can check it), or deploy a requirements.txt"),
            ),
            DeployError::PythonNotAllowed {
                file,
                requires,
                version,
            } => (
                format!("{file} requires Python {requires}, and the selected Python is {version}"),
                "the project says it does not run on this Python".into(),
                "select a Python it allows (the site's stack, runtime.txt, .python-version or \
                 PYTHON_VERSION), or change the project's Python constraint"
                    .into(),
            ),
            DeployError::UnknownDependencyGroup {
                group,
                file,
                available,
            } => (
                format!("{file} declares no extra or dependency group {group:?}"),
                "KUDUHOOK_DEPENDENCY_GROUPS (or steps.json's \"groups\") selects extras and groups \
                 by the names the project declares"
                    .into(),
                match available.is_empty() {
                    true => format!("remove {group:?} from the selection: {file} declares none"),
                    false => format!("select among: {}", available.join(", ")),
                },
            ),
            DeployError::ReuseUnproven { why } => (
                format!("the env copied from the live one cannot be proven exact: {why}"),
                "kuduhook removes only what it can prove the requirements no longer need".into(),
                "nothing: the deployment builds a fresh env instead".into(),
            ),
            DeployError::InstallFailed {
                requirements,
                installer,
                status,
            } => (
                format!(
                    "installing {} with {installer} failed ({status})",
                    requirements.display()
                ),
                format!(
                    "{installer}'s own output above names the requirement it could not install"
                ),
                "fix that requirement and push again; a package that needs a compiler can be \
                 built into a committed wheelhouse/ folder"
                    .to_string(),
            ),
            DeployError::CommandFailed {
                step,
                command,
                status,
            } => (
                format!("step {step} failed: `{command}` {status}"),
                "its output above says why".to_string(),
                "fix the command, or mark the step \"continue_on_error\": true in \
                 deploy/steps.json if the deployment may go on without it"
                    .to_string(),
            ),
            DeployError::SpawnFailed { program, error } => (
                format!("could not start {program}"),
                format!("the system said: {error}"),
                format!("check that {program} is installed and on PATH"),
            ),
            DeployError::BadSetting {
                value,
                origin,
                expected,
            } => (
                format!("{origin} is \"{value}\", which kuduhook does not understand"),
                format!("it takes {expected}"),
                format!("set {origin} to one of those values, or remove it"),
            ),
            DeployError::FolderInTheWay { relative, kept } => (
                format!("the repository has a file named {relative} where the site has a folder"),
                format!(
                    "the folder holds {} that no deployment put there (written by the app), so \
                     it cannot be replaced without losing them",
                    crate::logging::plural(*kept, "entry")
                ),
                format!(
                    "move what the app keeps in {relative}/ elsewhere (or delete the folder in \
                     the site), or rename {relative} in the repository, then deploy again"
                ),
            ),
            DeployError::OutsideLink { relative, link } => (
                format!(
                    "{relative} in the repository is a link to {}, outside the repository",
                    link.display()
                ),
                "outside links were set to fail the sync (--outside-links error or \
                 KUDUHOOK_SYNC_OUTSIDE_LINKS=error): the site would serve files that are not \
                 part of the deployment"
                    .to_string(),
                format!(
                    "commit the file itself instead of a link to it, or remove {relative} from \
                     the repository"
                ),
            ),
            DeployError::BadPattern { pattern, origin } => (
                format!("the pattern \"{pattern}\" from {origin} is not a valid glob"),
                "patterns use glob syntax: * and ? match within a name, ** across folders, \
                 [...] a set of characters, and brackets must be closed"
                    .to_string(),
                format!("fix or remove \"{pattern}\" in {origin}"),
            ),
            DeployError::Busy {
                action,
                path,
                error,
                attempts,
                waited,
            } => (
                format!("could not {action} {}", path.display()),
                format!(
                    "it stayed locked or busy through {attempts} attempts over {} (the system \
                     said: {error})",
                    crate::logging::seconds(*waited)
                ),
                "stop whatever holds the file (the running app, an FTP or editor session), or \
                 clear a read-only or immutable attribute on it, then deploy again"
                    .to_string(),
            ),
            DeployError::Locked {
                holder,
                waited,
                lock,
            } => (
                format!(
                    "another deployment of this site is still running after {}s: {holder}",
                    waited.as_secs()
                ),
                format!(
                    "one deployment at a time may change a site, and {} stayed locked for the \
                     whole wait",
                    lock.display()
                ),
                "deploy again once it has finished (the log of the running deployment shows \
                 its progress), or wait longer with the setting KUDUHOOK_LOCK_WAIT (seconds); a \
                 killed deployment never holds the lock"
                    .to_string(),
            ),
            DeployError::NoReleaseToRollBackTo { target, kept } => (
                format!(
                    "there is no release to roll back to in {}: kept {}",
                    target.display(),
                    match kept.is_empty() {
                        true => "none".to_string(),
                        false => format!("only the live one ({})", kept.join(", ")),
                    }
                ),
                format!(
                    "a rollback goes back to a successful deployment kept before the live one; \
                     a site keeps {} of them ({}, default {}), starting with the deployment \
                     after the first one by a kuduhook that keeps releases",
                    crate::config::name::KUDUHOOK_KEEP_RELEASES,
                    "the live one included",
                    crate::release::DEFAULT_KEEP
                ),
                "deploy the commit you want (git push it, or `git revert` and push); to roll back \
                 next time, keep KUDUHOOK_KEEP_RELEASES at 2 or more"
                    .to_string(),
            ),
            DeployError::ReleaseNotKept { commit, kept } => (
                format!("no release kept before the live one has commit {commit}"),
                format!(
                    "the site keeps these releases, newest (live) first: {}",
                    kept.join(", ")
                ),
                "name one of the older ones with --to, or run `kuduhook rollback` without --to \
                 for the one before the live one; to go further back, raise \
                 KUDUHOOK_KEEP_RELEASES for the next deployments"
                    .to_string(),
            ),
            DeployError::ReleaseNotUndoable { commit } => (
                format!("release {commit} cannot be rolled back: its files were not kept"),
                "its deployment did not sync the files (an in-place deployment, or the sync step \
                 was disabled), so there is no record of what it replaced"
                    .to_string(),
                "deploy the commit you want instead (git push it)".to_string(),
            ),
            DeployError::NoDeploymentRecord { target, record } => (
                format!("no deployment into {} is recorded", target.display()),
                format!(
                    "every kuduhook deploy (except --dry-run) writes {}, and there is none",
                    record.display()
                ),
                "pass the site's wwwroot with --target (on App Service: /home/site/wwwroot), or \
                 deploy once"
                    .to_string(),
            ),
            DeployError::AppSettingsInvalid { path, line, text } => (
                format!("{} line {line} is not NAME=value: {text:?}", path.display()),
                "the local App Service reads one app setting per line, NAME=value, like the \
                 portal's; blank lines and lines starting with # are skipped"
                    .to_string(),
                format!(
                    "fix or remove line {line} of {}, then push again",
                    path.display()
                ),
            ),
            DeployError::NoDeploymentCommand {
                repository,
                settings,
            } => (
                "the pushed repository names no deployment command".to_string(),
                format!(
                    "Kudu runs the `command` of .deployment's [config] section (or the COMMAND \
                     app setting), and {} has neither",
                    repository.join(".deployment").display()
                ),
                format!(
                    "run `kuduhook init` in your repository and commit what it writes, or set \
                     COMMAND in {}",
                    settings.display()
                ),
            ),
            DeployError::RemoteTaken {
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
            DeployError::GitFailed {
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
            DeployError::InitAppMissing { app } => (
                format!("{} does not exist", app.display()),
                "kuduhook init sets up an existing app's repository".to_string(),
                "run it in your app's folder, or pass that folder: kuduhook init path/to/app"
                    .to_string(),
            ),
            DeployError::CannotServe { wwwroot, why } => (
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
            DeployError::InitBinaryDynamic {
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
                "build the static one and pass it: rustup target add x86_64-unknown-linux-musl && \
                 cargo build --release --target x86_64-unknown-linux-musl, then kuduhook init \
                 --binary target/x86_64-unknown-linux-musl/release/kuduhook"
                    .to_string(),
            ),
            DeployError::InitBinaryPlatform {
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
                    "build kuduhook for {} (cargo build --release --target {}) and pass it with \
                     --binary, or pick the site's platform with --platform",
                    wanted.name(),
                    match wanted {
                        crate::platform::Platform::Linux => "x86_64-unknown-linux-musl",
                        crate::platform::Platform::Windows => "x86_64-pc-windows-gnu",
                    }
                ),
            ),
            DeployError::InitWouldOverwrite { app, files } => (
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
            DeployError::UvMissing { origin, searched } => (
                format!("{origin} asks for uv, and no uv was found"),
                format!("looked for a uv that runs at: {}", searched.join(", ")),
                "commit the uv binary for the site's platform as deploy/uv (beside kuduhook), \
                 or name it with the setting KUDUHOOK_UV, or set KUDUHOOK_INSTALLER to auto \
                 (uv when found, else pip) or pip"
                    .to_string(),
            ),
            DeployError::Io {
                action,
                path,
                error,
            } => (
                format!("could not {action} {}", path.display()),
                format!("the system said: {error}"),
                "check permissions and free disk space on the target, then deploy again"
                    .to_string(),
            ),
        };
        Explanation { what, why, fix }
    }
}

/// The version a malformed declaration most likely meant: `python3.12` means 3.12.
fn version_in(text: &str) -> Option<PythonVersion> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let candidate: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    PythonVersion::parse(candidate.trim_end_matches('.'))
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.explain();
        write!(f, "{}\n  why: {}\n  fix: {}", e.what, e.why, e.fix)
    }
}

impl std::error::Error for DeployError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_says_what_why_and_fix() {
        let err = DeployError::BadVersionFile {
            file: "runtime.txt",
            line: 1,
            value: "python3.12".into(),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("runtime.txt line 1 says \"python3.12\""),
            "{text}"
        );
        assert!(
            text.contains("why: runtime.txt must hold one line python-X.Y"),
            "{text}"
        );
        assert!(
            text.contains("fix: write python-3.12 into runtime.txt, or delete the file"),
            "{text}"
        );
        let vague = DeployError::BadVersionFile {
            file: ".python-version",
            line: 2,
            value: "latest".into(),
        };
        assert!(
            vague
                .to_string()
                .contains("fix: write one line X.Y or X.Y.Z")
        );
    }
}
