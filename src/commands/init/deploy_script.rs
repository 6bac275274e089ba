//! Reading a KuduScript-generated `deploy.cmd` or `deploy.sh` for `kuduhook init`: which of its
//! numbered sections each built-in step replaces, which lines the user added (they become
//! `run` steps, placed after the step of the section they were in), and which lines cannot be
//! translated (control flow, variables), listed with their line numbers.
//!
//! KuduScript's scripts number their deployment sections in comments (`:: 1. KuduSync`,
//! `# 2. Select Python version`); a line is the template's when it does the section's own job
//! (it names the sync command, the Python selector, the env, pip, requirements.txt, web.config,
//! Django or an error check) or is plain structure (parentheses, `goto`, `popd`, `echo`).

use crate::settings::Platform;
use crate::settings::steps_file::BuiltinStep;

/// The language of a deploy script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `deploy.cmd`, run by `cmd /c` on Windows.
    Cmd,
    /// `deploy.sh`, run by bash on Linux.
    Bash,
}

/// What a deploy script becomes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translation {
    /// Its numbered sections, each with the built-in step that replaces it (`None` for a
    /// section of the user's own).
    pub sections: Vec<(String, Option<BuiltinStep>)>,
    /// The user's lines, as run steps.
    pub run_steps: Vec<RunStep>,
    /// Lines that could not be translated, with the reason.
    pub untranslated: Vec<Untranslated>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The built-in step this one runs after (`None`: before all of them).
    pub after: Option<BuiltinStep>,
    pub command: String,
    pub line: usize,
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    pub line: usize,
    pub text: String,
    pub reason: &'static str,
}

/// The built-in step that does what a KuduScript section title says.
fn step_for_title(title: &str) -> Option<BuiltinStep> {
    let t = title.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["kudusync", "sync"]) {
        Some(BuiltinStep::Sync)
    } else if has(&["select python", "python version", "runtime"]) {
        Some(BuiltinStep::DetectRuntime)
    } else if has(&["virtual environment", "virtualenv", "create env"]) {
        Some(BuiltinStep::ValidateEnv)
    } else if has(&[
        "install packages",
        "install requirements",
        "pip",
        "dependencies",
    ]) {
        Some(BuiltinStep::PipInstall)
    } else if has(&["web.config"]) {
        Some(BuiltinStep::WebConfig)
    } else if has(&["collectstatic", "static files"]) {
        Some(BuiltinStep::Collectstatic)
    } else {
        None
    }
}

/// Words that mark a line as the template's own work for its section.
const TEMPLATE_WORDS: [&str; 23] = [
    "kudu_sync_cmd",
    "in_place_deployment",
    "selectpythonversion",
    "kudu_select_python_version_cmd",
    "python_runtime",
    "python_ver",
    "python_env_module",
    "python_exe",
    "azure.env",
    "requirements.txt",
    "web.config",
    "collectstatic",
    "site-packages\\django",
    "site-packages/django",
    ".skippythondeployment",
    ".skipdjango",
    "errorlevel",
    "exitwithmessageonerror",
    "deployment_temp",
    "virtualenv",
    "-m venv",
    "env\\scripts\\pip",
    "env/bin/pip",
];

/// Reads `text`, a deploy script in `dialect`, and translates the user's lines for `platform`.
pub fn translate(text: &str, dialect: Dialect, platform: Platform) -> Translation {
    let mut out = Translation::default();
    let mut in_deployment = false;
    let mut current: Option<BuiltinStep> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if let Some(title) = section_title(line, dialect) {
            in_deployment = true;
            let step = step_for_title(&title);
            if step.is_some() {
                current = step;
            }
            out.sections.push((title, step));
            continue;
        }
        if !in_deployment {
            continue;
        }
        if ends_deployment(line, dialect) {
            break;
        }
        if is_comment_or_blank(line, dialect) || is_template(line, dialect, current.is_some()) {
            continue;
        }
        match user_command(line, dialect) {
            Ok(command) => out.run_steps.push(RunStep {
                after: current,
                command: for_platform(&command, dialect, platform),
                line: number,
                original: line.to_string(),
            }),
            Err(reason) => out.untranslated.push(Untranslated {
                line: number,
                text: line.to_string(),
                reason,
            }),
        }
    }
    out
}

/// `:: 3. Create virtual environment` is section "Create virtual environment".
fn section_title(line: &str, dialect: Dialect) -> Option<String> {
    let rest = match dialect {
        Dialect::Cmd => line.strip_prefix("::").or_else(|| strip_rem(line))?,
        Dialect::Bash => line.strip_prefix('#')?,
    }
    .trim();
    let (number, title) = rest.split_once('.')?;
    let number = number.trim();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_string())
}

fn strip_rem(line: &str) -> Option<&str> {
    let lower = line.to_ascii_lowercase();
    lower.starts_with("rem ").then(|| &line[4..])
}

fn is_comment_or_blank(line: &str, dialect: Dialect) -> bool {
    line.is_empty()
        || match dialect {
            Dialect::Cmd => line.starts_with("::") || strip_rem(line).is_some(),
            Dialect::Bash => line.starts_with('#'),
        }
}

/// Where the generated deployment body ends: the post-deployment stub, the jump to the end, or
/// the script's helper functions.
fn ends_deployment(line: &str, dialect: Dialect) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("post deployment")
        || lower.contains("post_deployment_action")
        || match dialect {
            Dialect::Cmd => {
                lower == "goto end" || (lower.starts_with(':') && !lower.starts_with("::"))
            }
            Dialect::Bash => lower.starts_with("echo \"finished successfully"),
        }
}

/// The template's own lines: its section work, error checks and structure. Inside a section
/// a built-in step replaces, the file checks that guard its work are the template's too.
fn is_template(line: &str, dialect: Dialect, in_builtin_section: bool) -> bool {
    let lower = line.to_ascii_lowercase();
    if TEMPLATE_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    let guard = [
        "if exist",
        "if not exist",
        "if [ -f",
        "if [ ! -f",
        "if [[ -f",
    ];
    if in_builtin_section && guard.iter().any(|g| lower.starts_with(g)) {
        return true;
    }
    let first = lower.split_whitespace().next().unwrap_or("");
    let structure: &[&str] = match dialect {
        Dialect::Cmd => &[
            "(", ")", "goto", "popd", "pushd", "echo", "@echo", "setlocal",
        ],
        Dialect::Bash => &["fi", "else", "then", "popd", "pushd", "echo", "cd", "}"],
    };
    structure.contains(&first) || lower.starts_with(')') || lower.starts_with('(')
}

/// The command a user line runs, or why it cannot become a run step.
fn user_command(line: &str, dialect: Dialect) -> Result<String, &'static str> {
    let lower = line.to_ascii_lowercase();
    let first = lower.split_whitespace().next().unwrap_or("");
    match dialect {
        Dialect::Cmd => {
            if let Some(rest) = strip_prefix_ci(line, "call :executecmd ") {
                return Ok(rest.trim().to_string());
            }
            match first {
                "set" | "setlocal" | "endlocal" => {
                    Err("it sets a variable: make it an app setting instead")
                }
                "if" | "for" => Err("control flow: write it as a run step of your own"),
                "call" if lower.starts_with("call :") => {
                    Err("it calls a routine of the script: write what it does as a run step")
                }
                "call" => Ok(line[4..].trim().to_string()),
                _ => Ok(line.to_string()),
            }
        }
        Dialect::Bash => match first {
            "export" => Err("it sets a variable: make it an app setting instead"),
            "if" | "for" | "while" | "until" | "case" | "function" | "do" | "done" | "esac" => {
                Err("control flow: write it as a run step of your own")
            }
            _ if lower.contains("()") => Err("a function definition: write it as a run step"),
            _ if first.contains('=') => Err("it sets a variable: make it an app setting instead"),
            _ => Ok(line.to_string()),
        },
    }
}

fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

/// A user line as a run step on `platform`: run steps have the env activated, so the script's
/// ways of naming the env's python and pip become `python` and `pip`; on Linux, a `deploy.cmd`
/// line's `%VAR%` and `!VAR!` become `$VAR` and its backslashes slashes.
fn for_platform(command: &str, dialect: Dialect, platform: Platform) -> String {
    let mut text = command.to_string();
    for (from, to) in [
        (
            "\"%DEPLOYMENT_TARGET%\\env\\scripts\\python.exe\"",
            "python",
        ),
        ("%DEPLOYMENT_TARGET%\\env\\scripts\\python.exe", "python"),
        ("env\\scripts\\python.exe", "python"),
        ("env\\scripts\\python", "python"),
        ("env\\scripts\\pip", "pip"),
        ("\"$DEPLOYMENT_TARGET/env/bin/python\"", "python"),
        ("$DEPLOYMENT_TARGET/env/bin/python", "python"),
        ("env/bin/python", "python"),
        ("env/bin/pip", "pip"),
    ] {
        text = replace_ci(&text, from, to);
    }
    if dialect == Dialect::Cmd && platform == Platform::Linux {
        text = cmd_variables_to_shell(&text).replace('\\', "/");
    }
    text
}

fn replace_ci(text: &str, from: &str, to: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let from_lower = from.to_ascii_lowercase();
    let mut out = String::new();
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(&from_lower) {
        out.push_str(&text[rest..rest + found]);
        out.push_str(to);
        rest += found + from.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// `%NAME%` and `!NAME!` become `$NAME`.
fn cmd_variables_to_shell(text: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '%' || c == '!')
            && let Some(len) = chars[i + 1..].iter().position(|&d| d == c)
        {
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            if !name.is_empty() && name.chars().all(|d| d.is_ascii_alphanumeric() || d == '_') {
                out.push('$');
                out.push_str(&name);
                i += len + 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a KuduScript Python deploy.cmd, with three lines a user added (shared with
    /// the end-to-end test that pushes its translation).
    const DEPLOY_CMD: &str = include_str!("../../../tests/fixtures/kuduscript-deploy.cmd");

    #[test]
    fn a_kuduscript_deploy_cmd_maps_to_steps_and_keeps_the_users_lines() {
        let t = translate(DEPLOY_CMD, Dialect::Cmd, Platform::Windows);
        let steps: Vec<_> = t.sections.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            steps,
            [
                Some(BuiltinStep::Sync),
                Some(BuiltinStep::DetectRuntime),
                Some(BuiltinStep::ValidateEnv),
                Some(BuiltinStep::PipInstall),
                Some(BuiltinStep::WebConfig),
                Some(BuiltinStep::Collectstatic),
                None,
            ]
        );
        let runs: Vec<_> = t
            .run_steps
            .iter()
            .map(|r| (r.after, r.command.as_str(), r.line))
            .collect();
        assert_eq!(
            runs,
            [
                (
                    Some(BuiltinStep::PipInstall),
                    "python tools\\seed.py %SEED_MODE%",
                    32
                ),
                (
                    Some(BuiltinStep::Collectstatic),
                    "python tools\\seed.py warm !SEED_MODE!",
                    46
                ),
            ]
        );
        assert_eq!(t.untranslated.len(), 1, "{:?}", t.untranslated);
        assert_eq!(t.untranslated[0].line, 33);
        assert!(t.untranslated[0].reason.contains("app setting"));
    }

    #[test]
    fn on_linux_a_deploy_cmd_line_gets_shell_variables_and_slashes() {
        let t = translate(DEPLOY_CMD, Dialect::Cmd, Platform::Linux);
        assert_eq!(
            t.run_steps[1].command,
            "python tools/seed.py warm $SEED_MODE"
        );
        assert_eq!(
            for_platform(
                "\"%DEPLOYMENT_TARGET%\\env\\scripts\\python.exe\" tools\\seed.py !MODE!",
                Dialect::Cmd,
                Platform::Linux
            ),
            "python tools/seed.py $MODE"
        );
    }

    #[test]
    fn a_deploy_sh_keeps_its_commands_as_they_are() {
        let script = "#!/bin/bash\n# 1. KuduSync\nif [[ \"$IN_PLACE_DEPLOYMENT\" -ne \"1\" ]]; then\n  \
            \"$KUDU_SYNC_CMD\" -f a -t b\n  exitWithMessageOnError \"Kudu Sync failed\"\nfi\n\
            # 2. Install packages\ncd \"$DEPLOYMENT_TARGET\"\nenv/bin/pip install -r requirements.txt\n\
            env/bin/python manage.py migrate --noinput\nexport FOO=bar\n\
            for f in a b; do echo $f; done\necho \"Finished successfully.\"\nrm -rf after-end\n";
        let t = translate(script, Dialect::Bash, Platform::Linux);
        assert_eq!(t.run_steps.len(), 1);
        assert_eq!(t.run_steps[0].command, "python manage.py migrate --noinput");
        assert_eq!(t.run_steps[0].after, Some(BuiltinStep::PipInstall));
        let lines: Vec<usize> = t.untranslated.iter().map(|u| u.line).collect();
        assert_eq!(lines, [11, 12]);
    }
}
