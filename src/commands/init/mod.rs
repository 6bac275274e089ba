//! `kuduhook init`: makes a repository deploy with kuduhook. Writes `.deployment` (its
//! `command` pointing at the binary, any other keys kept), `deploy/steps.json` (the default
//! steps, plus the user's own lines of an old `deploy.cmd`/`deploy.sh` as run steps),
//! `deploy/README.md`, and a copy of the kuduhook binary for the site's platform.
//!
//! Nothing is overwritten without `--force`: files that exist with other content are listed
//! and nothing is written.

pub mod deploy_script;
pub mod launcher;

use std::path::{Path, PathBuf};

use crate::commands::error::CommandError;
use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::settings::Platform;
use crate::settings::steps_file::{BuiltinStep, DEFAULT_STEPS_JSON};
use deploy_script::{Dialect, Translation};

/// What init was asked to do.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub app: PathBuf,
    pub platform: Platform,
    /// The kuduhook binary to copy into `deploy/`.
    pub binary: PathBuf,
    /// Whether `binary` was given (`--binary`) rather than the running one.
    pub binary_given: bool,
    /// Commit a launcher pinned to this kuduhook (`--launcher`) instead of the binary.
    pub launcher: Option<launcher::Pin>,
    pub force: bool,
}

/// A file init writes.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Relative to the app.
    pub path: String,
    pub content: Vec<u8>,
    pub executable: bool,
    pub state: FileState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    New,
    /// It exists with this content already.
    Same,
    /// It exists with other content: written only with `--force`.
    Differs,
}

/// What init found and will write.
#[derive(Debug)]
pub struct Plan {
    pub files: Vec<Planned>,
    /// The old deploy script, and what it becomes.
    pub script: Option<(String, Translation)>,
}

/// The binary's name in `deploy/` on `platform`.
pub fn binary_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => "deploy/kuduhook",
        Platform::Windows => "deploy/kuduhook.exe",
    }
}

/// Where a kuduhook wheel installs the binary init commits for each site platform, from the
/// folder of the installed `kuduhook` (`bin/` or `Scripts/` of the env it went into): the
/// wheel's data, `<env>/share/kuduhook/sites/<platform>-x86_64/`.
pub fn wheel_site_binary(running: &Path, platform: Platform) -> Option<PathBuf> {
    let folder = match platform {
        Platform::Linux => "linux-x86_64",
        Platform::Windows => "windows-x86_64",
    };
    let name = Path::new(binary_name(platform)).file_name()?;
    let bin = running.parent()?;
    Some(bin.join("../share/kuduhook/sites").join(folder).join(name))
}

/// The binary init commits when `--binary` is not given: the running kuduhook when it is built
/// for the site's platform (and, for Linux, static), else the one for that platform that the
/// wheel it came from carries beside it; when neither fits, the running one, which
/// [`plan`] refuses with the reason.
pub fn default_binary(running: &Path, platform: Platform) -> PathBuf {
    let fits = |path: &Path| {
        std::fs::read(path).is_ok_and(|bytes| {
            executable_platform(&bytes) == Some(platform)
                && (platform != Platform::Linux || elf_interpreter(&bytes).is_none())
        })
    };
    if fits(running) {
        return running.to_path_buf();
    }
    match wheel_site_binary(running, platform) {
        Some(beside) if fits(&beside) => crate::ground::paths::normalize(&beside),
        _ => running.to_path_buf(),
    }
}

/// The `.deployment` command that runs the copied binary on `platform`: the bare path, with
/// no arguments (run by Kudu, kuduhook deploys). On Linux that is the one form Kudu makes
/// executable before running it, which a zip made on Windows (no modes) needs; Windows runs it
/// through `cmd /c`, which wants backslashes.
/// With a launcher the command runs its wrapper instead ([`launcher::wrapper_name`]), which on
/// Linux has the binary's path.
pub fn deployment_command(platform: Platform, launcher: bool) -> String {
    let path = match launcher {
        true => launcher::wrapper_name(platform),
        false => binary_name(platform),
    };
    match platform {
        Platform::Linux => format!("./{path}"),
        Platform::Windows => path.replace('/', "\\"),
    }
}

/// Looks at the app and works out every file to write.
pub fn plan(options: &InitOptions) -> Result<Plan, DeployError> {
    let app = &options.app;
    if !app.is_dir() {
        return Err(CommandError::InitAppMissing { app: app.clone() }.into());
    }
    let runs = match &options.launcher {
        Some(pin) => launcher::files(pin),
        None => vec![(
            binary_name(options.platform).to_string(),
            checked_binary(options)?,
            true,
        )],
    };
    let existing_deployment = read_optional(&app.join(".deployment"))?;
    let script = find_script(app, existing_deployment.as_deref(), options.platform)?;
    let steps = steps_json(script.as_ref().map(|(name, t)| (name.as_str(), t)));
    let command = deployment_command(options.platform, options.launcher.is_some());
    let mut files = vec![
        (
            ".deployment".to_string(),
            deployment_text(existing_deployment.as_deref(), &command).into_bytes(),
            false,
        ),
        ("deploy/steps.json".to_string(), steps.into_bytes(), false),
        (
            "deploy/README.md".to_string(),
            DEPLOY_README.as_bytes().to_vec(),
            false,
        ),
    ];
    files.extend(runs);
    let files = files
        .into_iter()
        .map(|(path, content, executable)| {
            let state = match std::fs::read(app.join(&path)) {
                Ok(old) if old == content => FileState::Same,
                Ok(_) => FileState::Differs,
                Err(_) => FileState::New,
            };
            Planned {
                path,
                content,
                executable,
                state,
            }
        })
        .collect();
    Ok(Plan { files, script })
}

/// `kuduhook upgrade`: pins a launcher to `version` (asked of the package index), or replaces
/// the committed binary with `running`'s for the same platform ([`default_binary`]). Says what
/// changed.
pub fn upgrade(app: &Path, running: &Path, version: &str) -> Result<String, DeployError> {
    let write = |path: &str, content: &[u8], executable: bool| -> Result<(), DeployError> {
        let path = app.join(path);
        crate::ground::paths::write_atomically(&path, content)
            .map_err(|e| DeployError::io("write", &path, e))?;
        if executable {
            crate::commands::rehearsal::make_executable(&path)
                .map_err(|e| DeployError::io("make executable", &path, e))?;
        }
        Ok(())
    };
    if let Some(old) = launcher::read_pin(app) {
        let new = launcher::resolve(version, old.platform)?;
        for (path, content, executable) in launcher::files(&new) {
            write(&path, &content, executable)?;
        }
        return Ok(format!(
            "Pinned kuduhook {} -> {} in {} ({}, SHA-256 {}). Commit deploy/ and push: the \
             next deployment downloads it once.",
            old.version,
            new.version,
            launcher::PIN_FILE,
            new.wheel,
            new.sha256
        ));
    }
    for platform in [Platform::Linux, Platform::Windows] {
        if !app.join(binary_name(platform)).is_file() {
            continue;
        }
        let options = InitOptions {
            app: app.to_path_buf(),
            platform,
            binary: default_binary(running, platform),
            binary_given: false,
            launcher: None,
            force: true,
        };
        let binary = checked_binary(&options)?;
        write(binary_name(platform), &binary, true)?;
        return Ok(format!(
            "Replaced {} with kuduhook {} for App Service on {}. Commit deploy/ and push.",
            binary_name(platform),
            env!("CARGO_PKG_VERSION"),
            platform.name()
        ));
    }
    Err(CommandError::UpgradeNotInitialized {
        app: app.to_path_buf(),
    }
    .into())
}

/// The binary init commits, read and checked to be built for the site's platform (static, for
/// Linux).
fn checked_binary(options: &InitOptions) -> Result<Vec<u8>, DeployError> {
    let binary = std::fs::read(&options.binary)
        .map_err(|e| DeployError::io("read the kuduhook binary", &options.binary, e))?;
    if let Some(actual) = executable_platform(&binary)
        && actual != options.platform
    {
        return Err(CommandError::InitBinaryPlatform {
            binary: options.binary.clone(),
            actual,
            wanted: options.platform,
            given: options.binary_given,
        }
        .into());
    }
    if options.platform == Platform::Linux
        && let Some(interpreter) = elf_interpreter(&binary)
    {
        return Err(CommandError::InitBinaryDynamic {
            binary: options.binary.clone(),
            interpreter,
            given: options.binary_given,
        }
        .into());
    }
    Ok(binary)
}

/// Writes the plan's files: all of them, or (with files that differ and no `force`) none.
pub fn write(options: &InitOptions, plan: &Plan) -> Result<(), DeployError> {
    let differing: Vec<String> = plan
        .files
        .iter()
        .filter(|f| f.state == FileState::Differs)
        .map(|f| f.path.clone())
        .collect();
    if !differing.is_empty() && !options.force {
        return Err(CommandError::InitWouldOverwrite {
            app: options.app.clone(),
            files: differing,
        }
        .into());
    }
    for file in plan.files.iter().filter(|f| f.state != FileState::Same) {
        let path = options.app.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DeployError::io("create", dir, e))?;
        }
        crate::ground::paths::write_atomically(&path, &file.content)
            .map_err(|e| DeployError::io("write", &path, e))?;
        if file.executable {
            crate::commands::rehearsal::make_executable(&path)
                .map_err(|e| DeployError::io("make executable", &path, e))?;
        }
    }
    Ok(())
}

/// The platform an executable is built for, from its first bytes (ELF or PE).
pub fn executable_platform(bytes: &[u8]) -> Option<Platform> {
    if bytes.starts_with(b"\x7fELF") {
        Some(Platform::Linux)
    } else if bytes.starts_with(b"MZ") {
        Some(Platform::Windows)
    } else {
        None
    }
}

/// The dynamic loader a 64-bit little-endian ELF executable asks for (its `PT_INTERP`), if
/// any: a binary that has one needs the host's C library, and Kudu's Linux container may have
/// an older one than the machine that built it. A static binary (musl) has none.
pub fn elf_interpreter(bytes: &[u8]) -> Option<String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let n = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        usize::try_from(n).ok()
    };
    // ELFCLASS64, little-endian: what x86_64 App Service runs.
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let (table, entry_size, count) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..usize::from(count)).find_map(|i| {
        let header = table.checked_add(i.checked_mul(usize::from(entry_size))?)?;
        if u32_at(header)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(header + 8)?, u64_at(header + 32)?);
        let path = bytes.get(offset..offset.checked_add(size)?)?;
        Some(
            String::from_utf8_lossy(path)
                .trim_end_matches('\0')
                .to_string(),
        )
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, DeployError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SystemError::Unreadable {
            path: path.to_path_buf(),
            error: e,
        }
        .into()),
    }
}

/// The old deploy script: the one `.deployment` runs, else `deploy.cmd` (Windows) or
/// `deploy.sh` (Linux) at the root, else the other one.
fn find_script(
    app: &Path,
    deployment: Option<&str>,
    platform: Platform,
) -> Result<Option<(String, Translation)>, DeployError> {
    let named = deployment
        .map(crate::settings::kudu::DeploymentFile::parse)
        .and_then(|d| d.get("command").map(|(c, _)| c.to_string()))
        .and_then(|c| {
            crate::commands::rehearsal::split_command(&c)
                .into_iter()
                .find(|w| w.ends_with(".cmd") || w.ends_with(".sh") || w.ends_with(".bat"))
        });
    let preferred: [&str; 2] = match platform {
        Platform::Windows => ["deploy.cmd", "deploy.sh"],
        Platform::Linux => ["deploy.sh", "deploy.cmd"],
    };
    let candidates = named.into_iter().chain(preferred.map(String::from));
    for name in candidates {
        let Some(text) = read_optional(&app.join(&name))? else {
            continue;
        };
        let dialect = if name.ends_with(".sh") {
            Dialect::Bash
        } else {
            Dialect::Cmd
        };
        return Ok(Some((
            name,
            deploy_script::translate(&text, dialect, platform),
        )));
    }
    Ok(None)
}

/// `.deployment` with its `command` set to kuduhook's: a new file, or the old one with every
/// other line kept.
fn deployment_text(existing: Option<&str>, command: &str) -> String {
    let command = format!("command = {command}");
    let Some(old) = existing else {
        return format!("[config]\n{command}\n");
    };
    let mut out = Vec::new();
    let mut in_config = false;
    let mut done = false;
    for line in old.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            if in_config && !done {
                out.push(command.clone());
                done = true;
            }
            in_config = trimmed[1..trimmed.len() - 1]
                .trim()
                .eq_ignore_ascii_case("config");
        } else if in_config
            && trimmed
                .split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("command"))
        {
            if !done {
                out.push(command.clone());
                done = true;
            }
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        if !in_config {
            out.push("[config]".to_string());
        }
        out.push(command);
    }
    out.join("\n") + "\n"
}

/// Where a translated run step goes: after the step of its section, but never before the
/// sync (the default steps build the env first), since deploy.cmd ran its lines on the site's
/// new files.
pub fn placement(run: &deploy_script::RunStep) -> Option<BuiltinStep> {
    match run.after {
        Some(BuiltinStep::DetectRuntime | BuiltinStep::ValidateEnv | BuiltinStep::PipInstall) => {
            Some(BuiltinStep::Sync)
        }
        other => other,
    }
}

/// The default steps, with the translated run steps placed by [`placement`].
pub fn steps_json(script: Option<(&str, &Translation)>) -> String {
    let runs = script.map(|(_, t)| t.run_steps.as_slice()).unwrap_or(&[]);
    let script_name = script
        .map(|(name, _)| name)
        .unwrap_or("the old deploy script");
    let run_line = |r: &deploy_script::RunStep, script_line: String| {
        format!(
            "    {{ \"run\": {}, \"name\": {} }}",
            serde_json::to_string(&r.command).expect("a string serializes"),
            serde_json::to_string(&script_line).expect("a string serializes")
        )
    };
    let mut lines: Vec<String> = Vec::new();
    let name_of = |r: &deploy_script::RunStep| format!("{script_name} line {}", r.line);
    for r in runs.iter().filter(|r| placement(r).is_none()) {
        lines.push(run_line(r, name_of(r)));
    }
    for line in DEFAULT_STEPS_JSON.lines() {
        let trimmed = line.trim_end().trim_end_matches(',');
        let Some(step) = builtin_on_line(trimmed) else {
            continue;
        };
        lines.push(trimmed.to_string());
        for r in runs.iter().filter(|r| placement(r) == Some(step)) {
            lines.push(run_line(r, name_of(r)));
        }
    }
    format!("{{\n  \"steps\": [\n{}\n  ]\n}}\n", lines.join(",\n"))
}

/// The built-in step a line of the default steps file holds (`{ "step": "sync", ... }`).
fn builtin_on_line(line: &str) -> Option<BuiltinStep> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    serde_json::from_value(entry.get("step")?.clone()).ok()
}

/// What init says it did.
pub fn describe(options: &InitOptions, plan: &Plan, written: bool) -> String {
    let mut out = String::new();
    if let Some((name, t)) = &plan.script {
        out.push_str(&format!("{name} becomes:\n"));
        for (title, step) in &t.sections {
            let becomes = match step {
                Some(step) => format!("the {} step", step.name()),
                None => "your own section: its lines are below".to_string(),
            };
            out.push_str(&format!("  {title:<30} -> {becomes}\n"));
        }
        if !t.run_steps.is_empty() {
            out.push_str("Your own lines, now run steps in deploy/steps.json:\n");
            for r in &t.run_steps {
                let place = placement(r)
                    .map(|s| format!("after {}", s.name()))
                    .unwrap_or_else(|| "first".into());
                out.push_str(&format!(
                    "  line {}: {}\n    -> {place}: {}\n",
                    r.line, r.original, r.command
                ));
            }
        }
        if !t.untranslated.is_empty() {
            out.push_str(
                "Lines kuduhook could not translate (redo them as a run step or an app setting):\n",
            );
            for u in &t.untranslated {
                out.push_str(&format!(
                    "  line {}: {}\n    ({})\n",
                    u.line, u.text, u.reason
                ));
            }
        }
        out.push_str(&format!(
            "{name} is no longer run; remove it once a deployment works: git rm {name}\n"
        ));
    }
    let verb = |f: &Planned| match (f.state, written) {
        (FileState::Same, _) => "unchanged",
        (FileState::New, true) => "wrote",
        (FileState::Differs, true) => "replaced",
        (FileState::New, false) => "would write",
        (FileState::Differs, false) => "exists, differs",
    };
    for f in &plan.files {
        out.push_str(&format!("{:<15} {}\n", verb(f), f.path));
    }
    out.push_str(&crate::python::dependencies::describe_for_init(
        &options.app,
    ));
    out.push('\n');
    if written {
        out.push_str(&format!(
            "Next: commit these files (git add .deployment deploy && git commit), then rehearse the \
             push locally with `kuduhook rehearse` or push to App Service. To deploy by zip \
             instead (az webapp deploy, GitHub Actions), put .deployment and deploy/ in the zip; \
             `kuduhook rehearse --zip .` rehearses that. {} for {}.",
            match &options.launcher {
                Some(pin) => format!(
                    "The launcher runs kuduhook {} ({}, SHA-256 {}), downloaded at the first \
                     deployment from the package index the app's requirements come from; \
                     `kuduhook upgrade` changes the pin. It is",
                    pin.version, pin.wheel, pin.sha256
                ),
                None => "The binary is".to_string(),
            },
            match options.platform {
                Platform::Linux => "App Service on Linux",
                Platform::Windows => "App Service on Windows",
            }
        ));
        let other = match options.platform {
            Platform::Linux => None,
            Platform::Windows if options.launcher.is_some() => Some(binary_name(Platform::Windows)),
            Platform::Windows => Some(launcher::wrapper_name(Platform::Windows)),
        };
        if let Some(other) = other.filter(|o| options.app.join(o).exists()) {
            out.push_str(&format!("\n{other} is no longer run: git rm {other}"));
        }
    }
    out
}

const DEPLOY_README: &str = "\
# deploy/

kuduhook deploys this app on every `git push` to Azure App Service, and on every zip deploy
(`az webapp deploy`, `az webapp up`, VS Code, GitHub Actions' `azure/webapps-deploy`: put
`.deployment` and `deploy/` in the zip): `.deployment` runs the binary here, which runs the
steps in `steps.json`. Keep the command a bare path (`./deploy/kuduhook`): that is the form
Kudu makes executable itself, which a zip made on Windows needs.

- Change the order of steps, turn one off (`\"enabled\": false`) or give it options (`ignore`
  for sync, `requirements` and `pip_args` for pip-install, `env_name` for validate-env).
- Add your own: `{ \"run\": \"python manage.py migrate --noinput\", \"name\": \"migrate\" }`
  runs in the site folder with the env activated; `\"continue_on_error\": true` lets the
  deployment go on when it fails.
- A mistake in `steps.json` fails the deployment before anything changes, naming the line.
- Force a clean env: set the app setting `KUDUHOOK_FORCE_ENV_REBUILD` to today's date.
- See what the site runs and what the last deployment did, from SSH or the Kudu console:
  `/home/site/repository/deploy/kuduhook status --target /home/site/wwwroot`.

Every step and setting is in kuduhook's README.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_steps_file_is_valid_and_places_run_steps() {
        let t = deploy_script::translate(
            ":: 4. Install packages\nenv\\scripts\\pip install -r requirements.txt\n\
             call :ExecuteCmd env\\scripts\\python manage.py migrate\n",
            Dialect::Cmd,
            Platform::Windows,
        );
        let json = steps_json(Some(("deploy.cmd", &t)));
        let parsed = crate::settings::steps_file::StepsFile::parse(&json, None).unwrap();
        let names: Vec<&str> = parsed.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "detect-runtime",
                "validate-env",
                "pip-install",
                "start-check",
                "sync",
                "deploy.cmd line 3",
                "web-config",
                "collectstatic"
            ]
        );
        assert_eq!(
            steps_json(None),
            steps_json(Some(("deploy.sh", &Translation::default())))
        );
        crate::settings::steps_file::StepsFile::parse(&steps_json(None), None).unwrap();
    }

    #[test]
    fn deployment_keeps_other_keys_and_replaces_the_command() {
        let linux = deployment_command(Platform::Linux, false);
        let windows = deployment_command(Platform::Windows, false);
        assert_eq!(
            deployment_text(None, &linux),
            "[config]\ncommand = ./deploy/kuduhook\n"
        );
        assert_eq!(
            deployment_text(
                Some("[config]\nCOMMAND = deploy.cmd\nproject = src\n"),
                &windows
            ),
            "[config]\ncommand = deploy\\kuduhook.exe\nproject = src\n"
        );
        assert_eq!(
            deployment_text(Some("[other]\nx=1\n"), &linux),
            "[other]\nx=1\n[config]\ncommand = ./deploy/kuduhook\n"
        );
        assert_eq!(
            deployment_text(Some("[config]\nproject=src\n[other]\n"), &linux),
            "[config]\nproject=src\ncommand = ./deploy/kuduhook\n[other]\n"
        );
        // A launcher: the same bare path on Linux (a script there), its .cmd on Windows.
        assert_eq!(deployment_command(Platform::Linux, true), linux);
        assert_eq!(
            deployment_command(Platform::Windows, true),
            "deploy\\kuduhook.cmd"
        );
    }

    #[test]
    fn executables_are_told_apart_by_their_header() {
        assert_eq!(executable_platform(b"\x7fELF\x02"), Some(Platform::Linux));
        assert_eq!(executable_platform(b"MZ\x90\x00"), Some(Platform::Windows));
        assert_eq!(executable_platform(b"#!/bin/sh"), None);
    }

    #[test]
    #[cfg(target_os = "linux")] // reads the test binary as an ELF file
    fn a_dynamically_linked_binary_is_known_by_its_loader() {
        // The test binary itself is linked against this machine's glibc.
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let loader = elf_interpreter(&this).expect("the test binary is dynamic");
        assert!(loader.contains("ld-linux"), "{loader}");
        assert_eq!(
            elf_interpreter(b"\x7fELF\x02\x01"),
            None,
            "truncated: no answer"
        );
        assert_eq!(elf_interpreter(b"MZ\x90\x00"), None);
    }
}
