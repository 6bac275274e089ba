//! A step that ran and failed: the start check, a command of the user's, the site's web.config.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`StepError`] with the facts, and only this file
//! turns it into words.

use crate::ground::error::{Explanation, Failure};

/// A step that ran and failed: the start check, a command of the user's, the site's web.config.
#[derive(Debug)]
pub enum StepError {
    /// An app that declares no dependencies imports a package the stack's Python lacks.
    UndeclaredImport {
        what: String,
        module: String,
        output: Vec<String>,
    },
    /// The app did not import (or the check command failed) as the platform will start it.
    StartCheckFailed {
        what: String,
        output: Vec<String>,
        timed_out: Option<u64>,
    },
    /// A step's command exited non-zero.
    CommandFailed {
        step: String,
        command: String,
        status: String,
    },
    /// The web.config a Windows site starts with runs another env than the one kuduhook builds.
    WebConfigOtherEnv {
        file: String,
        named: Vec<String>,
        env_name: String,
    },
}

impl Failure for StepError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            StepError::UndeclaredImport {
                what,
                module,
                output,
            } => (
                format!(
                    "the app does not start: it imports {module}, which it does not declare (the \
                     check that it {what} failed: ModuleNotFoundError: No module named '{module}')"
                ),
                format!(
                    "the app declares no dependencies (no requirements.txt, pyproject.toml, lock \
                     or setup.py), so App Service starts it with the stack's Python alone, which \
                     has no {module}: the site would crash at its next start. The check \
                     printed:\n    {}",
                    output.join("\n    ")
                ),
                format!(
                    "declare {module}: add it to requirements.txt (with the version you run, \
                     e.g. from pip freeze), or to pyproject.toml's [project] dependencies, a \
                     lock (uv.lock, poetry.lock, Pipfile.lock) or setup.py's install_requires; \
                     then push again"
                ),
            ),
            StepError::StartCheckFailed {
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
            StepError::CommandFailed {
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
            StepError::WebConfigOtherEnv {
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
        };
        Explanation { what, why, fix }
    }
}
