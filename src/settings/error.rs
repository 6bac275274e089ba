//! Settings that cannot be used: a folder that is not there, a value a setting does not take, a broken `deploy/steps.json`.
//!
//! Each failure here says what happened, why, and what to do; `docs/troubleshooting.md` lists
//! them for users. Code in this layer builds a [`SettingsError`] with the facts, and only this file
//! turns it into words.

use std::path::PathBuf;

use crate::ground::error::{Explanation, Failure};
use crate::settings::Origin;

/// Settings that cannot be used: a folder that is not there, a value a setting does not take, a broken `deploy/steps.json`.
#[derive(Debug)]
pub enum SettingsError {
    /// The folder to deploy from does not exist.
    SourceMissing { source: PathBuf, origin: Origin },
    /// Source and target are one inside the other (and not the same folder).
    Nested { source: PathBuf, target: PathBuf },
    /// `deploy/steps.json` is not valid: bad JSON, an unknown step or option.
    StepsFileInvalid {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// `deploy/steps.json` names a step before the step it depends on, or twice.
    StepsOrder { path: String, problem: String },
    /// A setting whose value is not one of those it takes.
    BadSetting {
        value: String,
        origin: Origin,
        expected: &'static str,
    },
    /// A setting names a path kuduhook may not use (outside the app, or not a plain name).
    BadPathSetting {
        what: &'static str,
        value: String,
        origin: Origin,
        rule: &'static str,
    },
    /// A sync pattern (`-i`, `--full-compare`, a setting) is not a valid glob.
    BadPattern { pattern: String, origin: Origin },
}

impl Failure for SettingsError {
    fn explain(&self) -> Explanation {
        let (what, why, fix) = match self {
            SettingsError::SourceMissing { source, origin } => (
                format!("the folder to deploy, {}, does not exist", source.display()),
                format!("it was given by {origin}"),
                if *origin == Origin::Default {
                    "run kuduhook from the repository root, or pass --source <repo>".to_string()
                } else {
                    format!("point {origin} at the repository to deploy")
                },
            ),
            SettingsError::Nested { source, target } => (
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
            SettingsError::StepsFileInvalid {
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
                    "fix {path} (kuduhook's docs/reference.md, \"deploy/steps.json reference\", \
                     lists every step and option), or delete it to use the default steps"
                ),
            ),
            SettingsError::StepsOrder { path, problem } => (
                format!("{path}: {problem}"),
                "each Python step uses what an earlier step made: the interpreter (web-config, \
                 validate-env), then the env (pip-install, collectstatic)"
                    .to_string(),
                "keep the order sync, detect-runtime, validate-env, pip-install; disable a step \
                 with \"enabled\": false rather than removing the steps it needs"
                    .to_string(),
            ),
            SettingsError::BadSetting {
                value,
                origin,
                expected,
            } => (
                format!("{origin} is \"{value}\", which kuduhook does not understand"),
                format!("it takes {expected}"),
                format!("set {origin} to one of those values, or remove it"),
            ),
            SettingsError::BadPathSetting {
                what,
                value,
                origin,
                rule,
            } => (
                format!("{origin} sets the {what} to {value:?}, which kuduhook will not use"),
                rule.to_string(),
                format!("change {origin}"),
            ),
            SettingsError::BadPattern { pattern, origin } => (
                format!("the pattern \"{pattern}\" from {origin} is not a valid glob"),
                "patterns use glob syntax: * and ? match within a name, ** across folders, \
                 [...] a set of characters, and brackets must be closed"
                    .to_string(),
                format!("fix or remove \"{pattern}\" in {origin}"),
            ),
        };
        Explanation { what, why, fix }
    }
}
