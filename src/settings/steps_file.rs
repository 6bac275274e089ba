//! `deploy/steps.json`: which steps a deployment runs, in which order, with which options.
//!
//! The repository's own `deploy/steps.json` is compiled in as the default, so the documented
//! default and the real one are one file. A user's file replaces it whole. Any mistake (bad
//! JSON, an unknown step or option, an option on the wrong step) fails with file, line and
//! column before anything is touched.

use std::path::Path;

use serde::Deserialize;

use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::settings::OutsideLinks;
use crate::settings::SettingsError;

/// The default pipeline: this repository's `deploy/steps.json`.
pub const DEFAULT_STEPS_JSON: &str = include_str!("../../deploy/steps.json");

/// Where a repository keeps its steps, relative to its root.
pub const STEPS_FILE: &str = "deploy/steps.json";

/// The steps kuduhook knows, in their default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinStep {
    Sync,
    DetectRuntime,
    ValidateEnv,
    PipInstall,
    StartCheck,
    WebConfig,
    Collectstatic,
}

impl BuiltinStep {
    /// The step's name, as written in `steps.json` and in the log.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinStep::Sync => "sync",
            BuiltinStep::DetectRuntime => "detect-runtime",
            BuiltinStep::ValidateEnv => "validate-env",
            BuiltinStep::PipInstall => "pip-install",
            BuiltinStep::StartCheck => "start-check",
            BuiltinStep::WebConfig => "web-config",
            BuiltinStep::Collectstatic => "collectstatic",
        }
    }

    /// The step that must come earlier for this one to work.
    pub fn needs(self) -> Option<BuiltinStep> {
        match self {
            // web-config picks web.X.Y.config by the detected Python.
            BuiltinStep::ValidateEnv | BuiltinStep::WebConfig => Some(BuiltinStep::DetectRuntime),
            BuiltinStep::PipInstall | BuiltinStep::StartCheck | BuiltinStep::Collectstatic => {
                Some(BuiltinStep::ValidateEnv)
            }
            _ => None,
        }
    }

    /// Steps that use the app's Python env; they are skipped, like deploy.cmd did, when the app
    /// has no requirements file or a `.skipPythonDeployment` marker.
    pub fn is_python(self) -> bool {
        !matches!(self, BuiltinStep::Sync)
    }

    /// Whether a failure of this step may be tolerated: later steps need what the first four
    /// make, so only the tail steps may continue on error.
    fn may_continue_on_error(self) -> bool {
        matches!(self, BuiltinStep::WebConfig | BuiltinStep::Collectstatic)
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    Builtin(BuiltinStep),
    /// A user's command line, run by the shell in the target with the env activated.
    Run(String),
}

/// One entry of the pipeline, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEntry {
    pub action: StepAction,
    /// How the log names it: the builtin's name, or the user's `name` (else the command).
    pub name: String,
    pub enabled: bool,
    pub continue_on_error: bool,
    /// `sync`: extra ignore patterns, KuduSync style (a name at any depth, or a glob).
    pub ignore: Vec<String>,
    /// `sync`: extra names compared by content (besides `web.config`).
    pub full_compare: Vec<String>,
    /// `sync`: compare every same-size file by content.
    pub checksum: Option<bool>,
    /// `sync`: what a link out of the repository does.
    pub outside_links: Option<OutsideLinks>,
    /// `validate-env`: the env folder's name.
    pub env_name: Option<String>,
    /// `pip-install`: the requirements file, relative to the app.
    pub requirements: Option<String>,
    /// `pip-install`: extra arguments for `pip install`.
    pub pip_args: Vec<String>,
    /// `pip-install`: extras and dependency groups to install besides the main dependencies.
    pub groups: Vec<String>,
}

/// The pipeline a repository asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepsFile {
    pub steps: Vec<StepEntry>,
    /// Where it came from: the repository's file, or `None` for the built-in default.
    pub path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawStepFields")]
struct RawStep(StepEntry);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStepFields {
    step: Option<BuiltinStep>,
    run: Option<String>,
    name: Option<String>,
    enabled: Option<bool>,
    continue_on_error: Option<bool>,
    ignore: Option<Vec<String>>,
    full_compare: Option<Vec<String>>,
    checksum: Option<bool>,
    outside_links: Option<OutsideLinks>,
    env_name: Option<String>,
    requirements: Option<String>,
    pip_args: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

impl TryFrom<RawStepFields> for RawStep {
    type Error = String;

    fn try_from(raw: RawStepFields) -> Result<RawStep, String> {
        let action = match (raw.step, raw.run) {
            (Some(step), None) => StepAction::Builtin(step),
            (None, Some(run)) if !run.trim().is_empty() => StepAction::Run(run),
            (None, Some(_)) => return Err("\"run\" is empty: give the command to run".into()),
            (Some(_), Some(_)) => {
                return Err(
                    "a step has either \"step\" (a built-in) or \"run\" (a command), \
                            not both"
                        .into(),
                );
            }
            (None, None) => {
                return Err(
                    "each step needs \"step\" (sync, detect-runtime, validate-env, \
                            pip-install, web-config, collectstatic) or \"run\" (a command)"
                        .into(),
                );
            }
        };
        let step_name = match &action {
            StepAction::Builtin(step) => step.name(),
            StepAction::Run(_) => "a run step",
        };
        let allowed: &[&str] = match &action {
            StepAction::Builtin(BuiltinStep::Sync) => {
                &["ignore", "full_compare", "checksum", "outside_links"]
            }
            StepAction::Builtin(BuiltinStep::ValidateEnv) => &["env_name"],
            StepAction::Builtin(BuiltinStep::PipInstall) => &["requirements", "pip_args", "groups"],
            StepAction::Builtin(_) => &[],
            StepAction::Run(_) => &["name"],
        };
        for (option, given) in [
            ("ignore", raw.ignore.is_some()),
            ("full_compare", raw.full_compare.is_some()),
            ("checksum", raw.checksum.is_some()),
            ("outside_links", raw.outside_links.is_some()),
            ("env_name", raw.env_name.is_some()),
            ("requirements", raw.requirements.is_some()),
            ("pip_args", raw.pip_args.is_some()),
            ("groups", raw.groups.is_some()),
            ("name", raw.name.is_some()),
        ] {
            if given && !allowed.contains(&option) {
                let owner = match option {
                    "ignore" | "full_compare" | "checksum" | "outside_links" => "sync",
                    "env_name" => "validate-env",
                    "name" => "run steps",
                    _ => "pip-install",
                };
                return Err(format!(
                    "{step_name} has no option \"{option}\" (it belongs to {owner})"
                ));
            }
        }
        let continue_on_error = raw.continue_on_error.unwrap_or(false);
        if let StepAction::Builtin(step) = &action
            && continue_on_error
            && !step.may_continue_on_error()
        {
            return Err(format!(
                "{step_name} cannot have \"continue_on_error\": the steps after it need what it makes"
            ));
        }
        let name = match &action {
            StepAction::Builtin(step) => step.name().to_string(),
            StepAction::Run(command) => raw.name.unwrap_or_else(|| command.clone()),
        };
        Ok(RawStep(StepEntry {
            action,
            name,
            enabled: raw.enabled.unwrap_or(true),
            continue_on_error,
            ignore: raw.ignore.unwrap_or_default(),
            full_compare: raw.full_compare.unwrap_or_default(),
            checksum: raw.checksum,
            outside_links: raw.outside_links,
            env_name: raw.env_name,
            requirements: raw.requirements,
            pip_args: raw.pip_args.unwrap_or_default(),
            groups: raw.groups.unwrap_or_default(),
        }))
    }
}

impl StepsFile {
    /// Reads `<repo>/deploy/steps.json`, or the built-in default when the repository has none.
    pub fn load(repo: &Path) -> Result<StepsFile, DeployError> {
        let path = repo.join(STEPS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                StepsFile::parse(&text, Some(STEPS_FILE.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StepsFile::default_steps(),
            Err(error) => Err(SystemError::Unreadable { path, error }.into()),
        }
    }

    /// The built-in default pipeline.
    pub fn default_steps() -> Result<StepsFile, DeployError> {
        StepsFile::parse(DEFAULT_STEPS_JSON, None)
    }

    /// Parses and validates a steps file's text.
    pub fn parse(text: &str, path: Option<String>) -> Result<StepsFile, DeployError> {
        let shown = path.clone().unwrap_or_else(|| "built-in steps.json".into());
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let raw: RawFile = serde_json::from_str(text).map_err(|e| {
            // A step's own checks fail after serde_json has read past the step's object: point
            // at the object's opening brace instead.
            let (line, column) = if e.classify() == serde_json::error::Category::Data {
                object_start_before(text, e.line(), e.column()).unwrap_or((e.line(), e.column()))
            } else {
                (e.line(), e.column())
            };
            SettingsError::StepsFileInvalid {
                path: shown.clone(),
                line,
                column,
                message: strip_position(&e.to_string()),
            }
        })?;
        let file = StepsFile {
            steps: raw.steps.into_iter().map(|s| s.0).collect(),
            path,
        };
        file.check_order(&shown)?;
        Ok(file)
    }

    /// Each built-in at most once, and each after the step it needs (when both are enabled).
    fn check_order(&self, shown: &str) -> Result<(), DeployError> {
        let mut seen: Vec<BuiltinStep> = Vec::new();
        for entry in &self.steps {
            let StepAction::Builtin(step) = entry.action else {
                continue;
            };
            if seen.contains(&step) {
                return Err(SettingsError::StepsOrder {
                    path: shown.into(),
                    problem: format!("step {} is listed twice", step.name()),
                }
                .into());
            }
            if entry.enabled
                && let Some(needed) = step.needs()
                && !self.is_enabled_before(needed, seen.len())
            {
                return Err(SettingsError::StepsOrder {
                    path: shown.into(),
                    problem: format!(
                        "step {} needs step {} enabled before it",
                        step.name(),
                        needed.name()
                    ),
                }
                .into());
            }
            seen.push(step);
        }
        Ok(())
    }

    /// Whether `step` is enabled among the first `count` built-in entries.
    fn is_enabled_before(&self, step: BuiltinStep, count: usize) -> bool {
        self.steps
            .iter()
            .filter(|e| matches!(e.action, StepAction::Builtin(_)))
            .take(count)
            .any(|e| e.enabled && e.action == StepAction::Builtin(step))
    }

    /// The entry of a built-in step, if listed.
    pub fn builtin(&self, step: BuiltinStep) -> Option<&StepEntry> {
        self.steps
            .iter()
            .find(|e| e.action == StepAction::Builtin(step))
    }
}

/// The line and column of the `{` opening the JSON object that closes just before the 1-based
/// `line`/`column` position (only whitespace, `,` and `]` between). `None` when there is none.
fn object_start_before(text: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let offset = (line_start + column).min(text.len());
    let bytes = text.as_bytes();
    let mut i = offset;
    while i > 0 && matches!(bytes[i - 1], b' ' | b'\t' | b'\r' | b'\n' | b',' | b']') {
        i -= 1;
    }
    if i == 0 || bytes[i - 1] != b'}' {
        return None;
    }
    // Walk back to the matching '{', skipping strings (a quote counts when the backslashes
    // before it are even in number).
    let (mut depth, mut in_string) = (0usize, false);
    while i > 0 {
        i -= 1;
        match bytes[i] {
            b'"' => {
                let backslashes = bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count();
                if backslashes % 2 == 0 {
                    in_string = !in_string;
                }
            }
            b'}' if !in_string => depth += 1,
            b'{' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    let before = &text[..i];
                    let line = before.matches('\n').count() + 1;
                    let column = i - before.rfind('\n').map_or(0, |n| n + 1) + 1;
                    return Some((line, column));
                }
            }
            _ => {}
        }
    }
    None
}

/// serde_json appends " at line L column C"; we say the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> (usize, usize, String) {
        let parsed = StepsFile::parse(text, Some(STEPS_FILE.into()));
        match parsed.as_ref().err().and_then(|e| e.downcast_ref()) {
            Some(SettingsError::StepsFileInvalid {
                line,
                column,
                message,
                ..
            }) => (*line, *column, message.clone()),
            _ => panic!("expected an invalid-file error, got {parsed:?}"),
        }
    }

    #[test]
    fn the_default_pipeline_is_the_documented_order() {
        let file = StepsFile::default_steps().unwrap();
        let names: Vec<&str> = file.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "detect-runtime",
                "validate-env",
                "pip-install",
                "start-check",
                "sync",
                "web-config",
                "collectstatic"
            ]
        );
        assert!(file.steps.iter().all(|s| s.enabled));
    }

    #[test]
    fn an_unknown_step_names_its_line_and_column() {
        let (line, column, message) = parse_err(
            "{\n  \"steps\": [\n    { \"step\": \"sync\" },\n    { \"step\": \"compile\" }\n  ]\n}",
        );
        assert_eq!(line, 4);
        assert!(column > 10, "column {column}");
        assert!(message.contains("unknown variant `compile`"), "{message}");
        assert!(message.contains("pip-install"), "{message}");
    }

    #[test]
    fn malformed_json_names_its_position() {
        let (line, _, message) =
            parse_err("{\n  \"steps\": [\n    { \"step\": \"sync\" }\n    ,,\n");
        assert_eq!(line, 4);
        assert!(!message.contains("at line"), "{message}");
    }

    #[test]
    fn options_belong_to_their_step() {
        let (line, column, message) = parse_err(
            "{\"steps\": [\n{\"step\": \"sync\"},\n  {\"step\": \"sync\", \"requirements\": \"r.txt\"}\n]}",
        );
        assert_eq!((line, column), (3, 3));
        assert!(
            message.contains("sync has no option \"requirements\" (it belongs to pip-install)"),
            "{message}"
        );
        let (_, _, message) = parse_err("{\"steps\": [{\"step\": \"sync\", \"colour\": 1}]}");
        assert!(message.contains("unknown field `colour`"), "{message}");
        let (_, _, message) =
            parse_err("{\"steps\": [{\"step\": \"pip-install\", \"checksum\": true}]}");
        assert!(message.contains("(it belongs to sync)"), "{message}");
    }

    #[test]
    fn sync_takes_its_options() {
        let text = r#"{"steps": [{"step": "sync", "ignore": ["*.log"], "full_compare": ["*.ini"],
            "checksum": true, "outside_links": "error"}]}"#;
        let file = StepsFile::parse(text, None).unwrap();
        let sync = file.builtin(BuiltinStep::Sync).unwrap();
        assert_eq!(sync.full_compare, vec!["*.ini"]);
        assert_eq!(sync.checksum, Some(true));
        assert_eq!(sync.outside_links, Some(OutsideLinks::Error));
        let (_, _, message) =
            parse_err(r#"{"steps": [{"step": "sync", "outside_links": "follow"}]}"#);
        assert!(message.contains("unknown variant `follow`"), "{message}");
    }

    #[test]
    fn step_errors_point_at_their_object_even_with_braces_in_strings() {
        let text = "{\"steps\": [\n  {\"run\": \"echo \\\"}{\\\" {}\",\n   \"step\": \"sync\"}, {\"step\": \"sync\"}]}";
        let (line, column, message) = parse_err(text);
        assert_eq!((line, column), (2, 3), "{message}");
        assert!(message.contains("not both"), "{message}");
    }

    #[test]
    fn run_steps_take_a_name_and_may_continue() {
        let file = StepsFile::parse(
            r#"{"steps": [{"run": "python manage.py migrate", "name": "migrate", "continue_on_error": true}]}"#,
            None,
        )
        .unwrap();
        let step = &file.steps[0];
        assert_eq!(
            step.action,
            StepAction::Run("python manage.py migrate".into())
        );
        assert_eq!(step.name, "migrate");
        assert!(step.continue_on_error);
    }

    #[test]
    fn core_steps_may_not_continue_on_error() {
        let (_, _, message) =
            parse_err(r#"{"steps": [{"step": "pip-install", "continue_on_error": true}]}"#);
        assert!(message.contains("pip-install cannot have"), "{message}");
    }

    #[test]
    fn order_and_duplicates_are_checked() {
        let err = StepsFile::parse(
            r#"{"steps": [{"step": "validate-env"}, {"step": "detect-runtime"}]}"#,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("step validate-env needs step detect-runtime enabled before it"),
            "{err}"
        );
        let err = StepsFile::parse(r#"{"steps": [{"step": "sync"}, {"step": "sync"}]}"#, None)
            .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = StepsFile::parse(
            r#"{"steps": [{"step": "sync"}, {"step": "web-config"}]}"#,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("step web-config needs step detect-runtime enabled before it"),
            "{err}"
        );
        // Disabling a step together with the steps that need it is fine.
        StepsFile::parse(
            r#"{"steps": [{"step": "sync"}, {"step": "validate-env", "enabled": false}]}"#,
            None,
        )
        .unwrap();
    }
}
