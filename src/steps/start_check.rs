//! The start-check step: before the site changes, import the app the way App Service Linux
//! will start it, with the new env and the new code, so that a push whose app cannot import
//! fails here rather than crash the site at its next start.
//!
//! The entry is found as the platform finds it (the `platform::entry` module: Django's
//! `<project>.wsgi`, FastAPI from Python 3.14, else `application.py`, `app.py`, `run.py`,
//! `index.py`, `server.py`, `wsgi.py` exposing `app`); an ASGI app the platform would not start
//! as one gets a warning with the startup command it needs, or named by `KUDUHOOK_START_CHECK` (`module:callable`, or a command run by the shell
//! with the env activated; `off` skips the check). The import runs with the env's own python in
//! the app's folder, with the app settings in its environment, and is stopped after
//! `KUDUHOOK_START_CHECK_TIMEOUT` seconds (an import that hangs would hang the start too).
//!
//! The app's folder is the repository, until the sync: what the import creates there (an
//! SQLite database, a log, an instance folder: seen by a Python audit hook) is removed after
//! the check, pass or fail, so that the repository stays as Kudu checked it out and the sync
//! never copies it over what the running app keeps on the site.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::config::{DeployConfig, StartCheck};
use crate::env::PreparedEnv;
use crate::ground::error::DeployError;
use crate::ground::logging::seconds;
use crate::platform::entry;
use crate::process::Runner;
use crate::python::{Interpreter, PythonVersion};
use crate::settings::Platform;
use crate::steps::Outcome;
use crate::steps::check_memo;
use crate::steps::error::StepError;

/// Imports `module[:callable]` and checks the callable is one, as gunicorn will. What the
/// import creates (files opened for writing, folders made, SQLite databases opened, rename
/// targets that did not exist before) is written to the report file `argv[2]` as it happens,
/// so that kuduhook can take it away again, even after a failure or a timeout.
const IMPORT_SCRIPT: &str = r#"
import importlib, os, sys
module, _, name = sys.argv[1].partition(":")
report = open(sys.argv[2], "w", encoding="utf-8", errors="surrogateescape")
def created(path):
    if isinstance(path, int):
        return
    path = os.path.abspath(os.fsdecode(path))
    if not os.path.lexists(path):
        report.write(path + "\n")
        report.flush()
WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT
def hook(event, args):
    try:
        if event == "open":
            path, mode, flags = args
            if (any(c in mode for c in "wax+") if isinstance(mode, str) else flags & WRITES):
                created(path)
        elif event == "os.mkdir":
            created(args[0])
        elif event == "os.rename":
            created(args[1])
        elif event == "sqlite3.connect":
            database = os.fsdecode(args[0])
            if database != ":memory:" and not database.startswith("file:"):
                created(database)
    except Exception:
        pass
if hasattr(sys, "addaudithook"):  # Python 3.8 and later
    sys.addaudithook(hook)
loaded = importlib.import_module(module)
name = name or "application"
target = getattr(loaded, name, None)
if target is None:
    sys.exit(f"{module} has no {name}: gunicorn serves {module}:{name}")
if not callable(target):
    sys.exit(f"{module}:{name} is not callable: gunicorn serves a WSGI or ASGI callable")
import inspect
call = target if inspect.isfunction(target) or inspect.ismethod(target) else type(target).__call__
if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call):
    print("kuduhook-start-check: asgi")
"#;

/// What the check runs.
enum Check {
    /// Import `entry` (found as said); `worker` is gunicorn's worker class the platform runs it
    /// with, `rules` how the platform detected it (`None`: named by the user).
    Import {
        entry: String,
        found: String,
        worker: Option<String>,
        rules: Option<entry::Rules>,
    },
    Command(String),
}

/// What the pipeline learned before the check: the live env's archive (when the check runs
/// from it), the look at the app's files (for the key), the check begun early.
#[derive(Default)]
pub struct Beforehand<'a> {
    pub archive: Option<&'a ArchivedEnv>,
    pub looked: Option<&'a crate::sync::Looked>,
    pub early: Option<Early>,
}

/// The start-check step.
pub fn run(
    config: &DeployConfig,
    env: Option<&PreparedEnv>,
    app: &Path,
    runner: &Runner,
    stack: Option<&Interpreter>,
    beforehand: Beforehand,
) -> Result<Outcome, DeployError> {
    let Beforehand {
        archive,
        looked,
        early,
    } = beforehand;
    if config.platform == Platform::Windows {
        return Ok(Outcome::Skipped(
            "App Service on Windows starts the app by its web.config: not checked here".into(),
        ));
    }
    let setting = &config.start_check;
    let check = match &setting.value {
        StartCheck::Off => {
            return Ok(Outcome::Skipped(format!(
                "turned off by {}",
                setting.origin
            )));
        }
        StartCheck::Entry(entry) => Check::Import {
            entry: entry.clone(),
            found: format!("named by {}", setting.origin),
            worker: None,
            rules: None,
        },
        StartCheck::Command(command) => Check::Command(command.clone()),
        StartCheck::Auto => {
            let rules = platform_rules(config, stack.map(|i| i.version));
            let detected = entry::detect(app, &rules);
            if let Some(advice) = entry::asgi_advice(app, &rules, detected.as_ref()) {
                warn!("{advice}");
            }
            match detected {
                Some(entry) => Check::Import {
                    entry: entry.module,
                    found: entry.found,
                    worker: entry.worker,
                    rules: Some(rules),
                },
                None => {
                    return Ok(Outcome::Skipped(format!(
                        "no entry the platform would start (no Django project, no {}); set \
                         KUDUHOOK_START_CHECK to module:callable to check the one your startup \
                         command runs",
                        entry::FLASK_FILES.join(", ")
                    )));
                }
            }
        }
    };
    let what = match &check {
        Check::Import { entry, found, .. } => format!("imports {entry} ({found})"),
        Check::Command(command) => format!("runs `{command}`"),
    };
    // Without an env (an app that declares no dependencies) the platform starts the app with
    // the stack's Python alone: so does the check.
    let python = match (env, stack) {
        (Some(env), _) => env.python.clone(),
        (None, Some(stack)) => stack.path.clone(),
        (None, None) => return Ok(Outcome::Done(format!("Would check that the app {what}"))),
    };
    if config.dry_run {
        return Ok(Outcome::Done(format!("Would check that the app {what}")));
    }
    // Nothing it depends on changed since the last check that passed: it would pass again.
    let state = crate::ground::paths::local_state_dir(&config.target.value);
    let (checked_at, step_began) = (SystemTime::now(), Instant::now());
    let check_text = format!("{what}; timeout {}s", config.start_check_timeout.value);
    let memo = check_memo::key(
        app,
        &check_memo::inputs(config, env, stack, check_text),
        looked,
    );
    if let Some((key, files, newest)) = &memo
        && let Some(passed) = check_memo::read(&state)
        && check_memo::vouches(&passed, key, *newest)
    {
        drop(early); // stopped, and what it made taken away
        return Ok(Outcome::Skipped(check_memo::skipped(
            &passed, *files, &what,
        )));
    }
    // Where the site ships its env as an archive and the env did not change, the check runs
    // the way the platform starts: the archive extracted to local disk, its packages on the
    // base interpreter's PYTHONPATH (rather than imports across the network share).
    let extracted = match (archive, &check) {
        (Some(archived), Check::Import { .. }) => Some(extracted_env(config, archived)?),
        _ => None,
    };
    let report = created_report(config)?;
    let mut cmd = match (&check, &extracted, archive) {
        (Check::Import { entry, .. }, Some(dir), Some(archived)) => {
            let packages = Packages::Archive(crate::env::site_packages(dir, &archived.minor));
            import_command(runner, &archived.interpreter, packages, entry, &report, app)
        }
        (Check::Import { entry, .. }, _, _) => {
            let packages = match env {
                Some(_) => Packages::Env,
                None => Packages::None,
            };
            import_command(runner, &python, packages, entry, &report, app)
        }
        (Check::Command(command), _, _) => {
            let [shell, flag] = config.platform.shell();
            let mut cmd = runner.command(shell);
            cmd.args([flag, command.as_str()]);
            if let Some(env) = env {
                let bin = env.dir.join(config.platform.env_bin_dir());
                let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
                    &config.env.get("PATH").unwrap_or_default(),
                )))
                .unwrap_or_default();
                cmd.env("VIRTUAL_ENV", &env.dir).env("PATH", path);
            }
            in_app(&mut cmd, app);
            cmd
        }
    };
    let limit = Duration::from_secs(config.start_check_timeout.value);
    // The same check begun early (the same command) is the one that counts; another is
    // stopped, and this one runs.
    let (checked_at, beside, begun) = match early.and_then(|early| early.finish(&cmd)) {
        Some(begun) => (begun.at, begun.ahead_of(step_began), begun),
        None => (checked_at, String::new(), Begun::run(&mut cmd, limit, None)),
    };
    let (finished, took) = (begun.finished, begun.took);
    // Whatever the outcome: the app is checked from the repository, which must stay as Kudu
    // checked it out (what the import made there would reach the site with the sync, over
    // what the app itself keeps there).
    if !config.dry_run && app != config.target.value {
        take_away_created(&report, app);
    }
    let _ = std::fs::remove_file(&report);
    let finished = finished.map_err(|e| DeployError::io("run the start check in", app, e))?;
    let with = match archive.is_some() && matches!(check, Check::Import { .. }) {
        true => "the env's archive as the platform extracts it, and the new code",
        false => "the new env and code",
    };
    match (&finished, &memo) {
        (Finished::Passed(_), Some((key, _, _))) => check_memo::record(
            &state,
            &check_memo::Passed {
                key: key.clone(),
                started_unix_nanos: checked_at
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                what: what.clone(),
                commit: config.commit_id.clone(),
            },
        ),
        _ => check_memo::forget(&state),
    }
    match finished {
        Finished::Passed(output) => {
            if output.lines().any(|l| l.trim() == ASGI_MARKER)
                && let Check::Import {
                    entry,
                    worker: None,
                    rules,
                    ..
                } = &check
            {
                let module = entry.split(':').next().unwrap_or(entry);
                warn!("{}", asgi_warning(module, entry, rules.as_ref()));
            }
            Ok(Outcome::Done(format!(
                "The app {what} with {with}, as App Service will start it ({}{beside})",
                seconds(took)
            )))
        }
        Finished::Failed(output) => match (env, missing_module(&output)) {
            (None, Some(module)) => Err(StepError::UndeclaredImport {
                what,
                module,
                output: last_lines(&output, 12),
            }
            .into()),
            _ => Err(StepError::StartCheckFailed {
                what,
                output: last_lines(&output, 12),
                timed_out: None,
            }
            .into()),
        },
        Finished::TimedOut(output) => Err(StepError::StartCheckFailed {
            what,
            output: last_lines(&output, 12),
            timed_out: Some(limit.as_secs()),
        }
        .into()),
    }
}

/// Where the import's packages come from.
enum Packages {
    /// The env's own python: its packages.
    Env,
    /// The env's archive extracted in this folder, on the base interpreter's path.
    Archive(PathBuf),
    /// The stack's Python alone (no env): none of the packages this machine's interpreter may
    /// hold besides its standard library.
    None,
}

/// The import as the check runs it: `python` with `packages`, in the app's folder, reporting
/// what it creates to `report`.
fn import_command(
    runner: &Runner,
    python: &Path,
    packages: Packages,
    entry: &str,
    report: &Path,
    app: &Path,
) -> Command {
    let mut cmd = runner.command(python);
    match packages {
        Packages::Env => {}
        Packages::Archive(packages) => {
            cmd.env("PYTHONPATH", packages);
        }
        Packages::None => {
            cmd.arg("-S");
        }
    }
    cmd.args(["-c", IMPORT_SCRIPT, entry]).arg(report);
    in_app(&mut cmd, app);
    cmd
}

/// The check's process runs in the app's folder, writes no bytecode there, reads no input.
fn in_app(cmd: &mut Command, app: &Path) {
    cmd.current_dir(app)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
}

/// How a check's process ended, when it started and how long it took.
struct Begun {
    /// When it started (a file changed after this may be one it did not see).
    at: SystemTime,
    started: Instant,
    took: Duration,
    finished: std::io::Result<Finished>,
}

impl Begun {
    /// Runs `cmd`, as [`run_with_limit`].
    fn run(cmd: &mut Command, limit: Duration, stop: Option<&AtomicBool>) -> Begun {
        let (at, started) = (SystemTime::now(), Instant::now());
        let finished = run_with_limit(cmd, limit, stop);
        Begun {
            at,
            started,
            took: started.elapsed(),
            finished,
        }
    }

    /// Said after the time of a check begun before its step (`step`: when the step began):
    /// how much of it ran while the env was validated, so that the step's own time, shorter
    /// than the check's, reads right.
    fn ahead_of(&self, step: Instant) -> String {
        let ahead = step.saturating_duration_since(self.started);
        match ahead >= self.took {
            true => ", begun while the env was validated: all of it before this step".into(),
            false => format!(
                ", begun while the env was validated: {} of it before this step",
                seconds(ahead)
            ),
        }
    }
}

/// The start check begun before its step, while validate-env runs (on App Service most of
/// that step is waiting on the share, most of the check is Python importing the app): with
/// the live env, as validate-env reuses it when nothing asks for another. The step takes its
/// result only when it would run the very same command (the same interpreter, env, archive,
/// entry, settings and folder) and the steps between changed neither env nor app (the
/// pipeline drops it otherwise); else it is stopped, and what its import created is taken
/// away, as after any check.
pub struct Early {
    app: PathBuf,
    report: PathBuf,
    shared: Arc<EarlyShared>,
    running: Option<std::thread::JoinHandle<Option<Begun>>>,
}

/// What the early check's thread and the step share.
#[derive(Default)]
struct EarlyShared {
    /// Set to stop the check.
    stop: AtomicBool,
    /// The command the thread runs, once it has made it.
    command: Mutex<Option<String>>,
}

/// The live env as an early check runs it.
pub struct LiveEnv {
    /// The env's python.
    pub python: PathBuf,
    /// Its archive, when the site ships one and it is current.
    pub archived: Option<ArchivedEnv>,
}

impl Early {
    /// Begins the check for `app` with the live env `env` (found in the thread, as it is
    /// round trips on a share), when the step would import an entry: `None` when it would not
    /// or cannot be told yet (an archive not yet extracted here).
    pub fn begin(
        config: &DeployConfig,
        app: &Path,
        stack: &Interpreter,
        env: impl FnOnce() -> Option<LiveEnv> + Send + 'static,
    ) -> Option<Early> {
        let entry = match &config.start_check.value {
            StartCheck::Entry(entry) => Some(entry.clone()),
            StartCheck::Auto => None,
            StartCheck::Off | StartCheck::Command(_) => return None,
        };
        if config.platform == Platform::Windows || config.dry_run {
            return None;
        }
        let report = created_report(config).ok()?;
        let shared = Arc::new(EarlyShared::default());
        let (config, app_dir) = (config.clone(), app.to_path_buf());
        let (version, thread_shared) = (stack.version, shared.clone());
        let (thread_report, span) = (report.clone(), tracing::Span::current());
        let running = std::thread::spawn(move || {
            let _entered = span.enter();
            let entry = entry.or_else(|| {
                let rules = platform_rules(&config, Some(version));
                entry::detect(&app_dir, &rules).map(|entry| entry.module)
            })?;
            let env = env()?;
            let (python, packages) = match &env.archived {
                Some(archived) => {
                    let dir = extracted_dir(&config, archived);
                    let packages = crate::env::site_packages(&dir, &archived.minor);
                    match is_extracted(&dir) {
                        true => (archived.interpreter.clone(), Packages::Archive(packages)),
                        false => return None,
                    }
                }
                None => (env.python.clone(), Packages::Env),
            };
            let runner = Runner {
                env: &config.env,
                heartbeat: Duration::ZERO,
            };
            let mut cmd =
                import_command(&runner, &python, packages, &entry, &thread_report, &app_dir);
            *thread_shared.command.lock().ok()? = Some(format!("{cmd:?}"));
            if thread_shared.stop.load(Ordering::Relaxed) {
                return None;
            }
            let limit = Duration::from_secs(config.start_check_timeout.value);
            Some(Begun::run(&mut cmd, limit, Some(&thread_shared.stop)))
        });
        Some(Early {
            app: app.to_path_buf(),
            report,
            shared,
            running: Some(running),
        })
    }

    /// The early check's outcome, when it ran `cmd` to its end; else `None` (it is stopped,
    /// and what it created taken away).
    fn finish(mut self, cmd: &Command) -> Option<Begun> {
        let wanted = format!("{cmd:?}");
        let same = self.shared.command.lock().ok()?.as_deref() == Some(wanted.as_str());
        if !same {
            return None;
        }
        self.running.take()?.join().ok()?
    }
}

impl Drop for Early {
    /// An early check the step does not take: stopped, and what its import created in the
    /// app's folder taken away.
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Ok(Some(_)) = running.join() {
            take_away_created(&self.report, &self.app);
        }
        let _ = std::fs::remove_file(&self.report);
    }
}

/// How the platform finds the entry of an app on Python `python`, with this deployment's
/// settings.
fn platform_rules(config: &DeployConfig, python: Option<PythonVersion>) -> entry::Rules {
    entry::Rules {
        env_name: config.env_name.value.clone(),
        python,
        fastapi_disabled: entry::disables_fastapi(config.env.get(entry::DISABLE_FASTAPI)),
    }
}

/// Whether the check would run for the app in `app`: it is on, and names or finds an entry (or
/// a command) on a Linux site.
pub fn would_check(config: &DeployConfig, app: &Path) -> bool {
    if config.platform == Platform::Windows {
        return false;
    }
    match &config.start_check.value {
        StartCheck::Off => false,
        StartCheck::Entry(_) | StartCheck::Command(_) => true,
        StartCheck::Auto => {
            let rules = entry::Rules {
                env_name: config.env_name.value.clone(),
                ..entry::Rules::default()
            };
            entry::detect(app, &rules).is_some()
                || entry::FASTAPI_FILES.iter().any(|f| app.join(f).is_file())
        }
    }
}

/// The module a failed import could not find: "No module named 'flask'" gives `flask`.
fn missing_module(output: &str) -> Option<String> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains("ModuleNotFoundError: No module named '"))?;
    let name = line.split("No module named '").nth(1)?.split('\'').next()?;
    Some(name.split('.').next().unwrap_or(name).to_string())
}

/// The live env's archive, when the check runs from it: what the platform extracts at start,
/// and the base interpreter that runs it.
pub struct ArchivedEnv {
    pub archive: PathBuf,
    pub interpreter: PathBuf,
    pub minor: String,
}

impl ArchivedEnv {
    /// The env's archive `archive`, run by the stack's interpreter `stack`.
    pub fn new(archive: PathBuf, stack: &Interpreter) -> ArchivedEnv {
        ArchivedEnv {
            archive,
            interpreter: stack.path.clone(),
            minor: stack.version.minor_version(),
        }
    }
}

/// The live env's archive extracted on local disk, as the platform extracts it at start: kept
/// in kuduhook's local state under the archive's name (named by the env's record), so a
/// redeploy with the same env extracts nothing; an archive of another env replaces it.
fn extracted_env(config: &DeployConfig, archived: &ArchivedEnv) -> Result<PathBuf, DeployError> {
    let dir = extracted_dir(config, archived);
    let root = dir.parent().unwrap_or(&dir).to_path_buf();
    if is_extracted(&dir) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&root);
    let partial = root.join(format!("partial-{}", std::process::id()));
    crate::env::archive::SiteArchives::extract(&archived.archive, &partial)
        .and_then(|()| std::fs::write(partial.join(EXTRACTED), b""))
        .and_then(|()| std::fs::rename(&partial, &dir))
        .map_err(|e| DeployError::io("extract the env's archive into", &partial, e))?;
    Ok(dir)
}

/// Where the live env's archive is extracted for the check.
fn extracted_dir(config: &DeployConfig, archived: &ArchivedEnv) -> PathBuf {
    let root = crate::ground::paths::local_state_dir(&config.target.value).join("start-check");
    let name = archived
        .archive
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    root.join(name.trim_end_matches(".tar.gz"))
}

/// Whether the archive was extracted into `dir` whole.
fn is_extracted(dir: &Path) -> bool {
    dir.join(EXTRACTED).is_file()
}

/// Where the check's import reports what it creates (its script makes the file).
fn created_report(config: &DeployConfig) -> Result<PathBuf, DeployError> {
    let dir = crate::ground::paths::local_state_dir(&config.target.value);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DeployError::io("make kuduhook's local state folder", &dir, e))?;
    Ok(dir.join(format!("start-check-created-{}", std::process::id())))
}

/// Removes what the check's import created inside `app` (the paths listed in `report`: they
/// did not exist until it opened them for writing, made them a folder, or renamed something
/// onto them), and says so. A folder it created is removed whole: nothing in it was there
/// before the check.
fn take_away_created(report: &Path, app: &Path) {
    let Ok(app) = app.canonicalize() else {
        return;
    };
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let mut created: Vec<&Path> = text
        .lines()
        .map(Path::new)
        .filter(|p| p.starts_with(&app) && *p != app)
        .collect();
    // Sorted, a folder comes right before what is inside it.
    created.sort();
    created.dedup();
    let mut removed: Vec<String> = Vec::new();
    let mut folder: Option<&Path> = None;
    for path in created {
        if folder.is_some_and(|f| path.starts_with(f)) {
            continue; // removed with its folder
        }
        let relative = path.strip_prefix(&app).unwrap_or(path).display();
        let gone = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                folder = Some(path);
                std::fs::remove_dir_all(path).map(|()| format!("{relative}/"))
            }
            Ok(_) => std::fs::remove_file(path).map(|()| relative.to_string()),
            Err(_) => continue, // made and removed by the import itself
        };
        match gone {
            Ok(name) => removed.push(name),
            Err(e) => warn!(
                "the app's import created {relative} in the repository, and it could not be \
                 removed ({e}): the sync will copy it to the site"
            ),
        }
    }
    if !removed.is_empty() {
        info!(
            "The app's import created {} in the repository: removed, so that the sync does not \
             copy it over what the app keeps on the site (the app makes its own there when it \
             starts)",
            crate::ground::logging::list(&removed, 5, String::clone)
        );
    }
}

/// Marks an extraction as complete.
const EXTRACTED: &str = ".kuduhook-extracted";

/// What the check's script prints when the callable is an ASGI app (a coroutine function, or
/// an object whose `__call__` is one: FastAPI, Starlette).
const ASGI_MARKER: &str = "kuduhook-start-check: asgi";

/// What to say of an ASGI app the platform would serve with gunicorn's synchronous worker.
fn asgi_warning(module: &str, entry: &str, rules: Option<&entry::Rules>) -> String {
    match rules {
        Some(rules) if entry.ends_with(":app") => {
            entry::advice_for(module, "an ASGI app (its app is a coroutine)", rules, true)
        }
        _ => format!(
            "{entry} is an ASGI app: gunicorn serves it only with an ASGI worker; the site's \
             startup command needs `gunicorn -k uvicorn.workers.UvicornWorker {entry}`, with \
             uvicorn in your requirements"
        ),
    }
}

enum Finished {
    Passed(String),
    Failed(String),
    TimedOut(String),
}

/// Runs `cmd` (its output captured), stopping it and everything it started after `limit`, or
/// once `stop` is set (an `Interrupted` error: a check begun early that is not needed).
fn run_with_limit(
    cmd: &mut Command,
    limit: Duration,
    stop: Option<&AtomicBool>,
) -> std::io::Result<Finished> {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    // Both pipes are read at once, so that neither fills while the other is waited on.
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped")));
    let err = read(Box::new(child.stderr.take().expect("piped")));
    let output = move || out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            let output = output();
            return Ok(match status.success() {
                true => Finished::Passed(output),
                false => Finished::Failed(output),
            });
        }
        if stop.is_some_and(|stop| stop.load(Ordering::Relaxed)) {
            crate::process::kill_group(&mut child);
            let _ = child.wait();
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        if Instant::now() >= deadline {
            crate::process::kill_group(&mut child);
            let _ = child.wait();
            return Ok(Finished::TimedOut(output()));
        }
        // Often: the deployment waits on this process, and a check takes a fraction of a
        // second.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The output's last `count` lines, without the traceback frames of Python's own import
/// machinery and of the check's script (`File "<frozen …>"`, `File "<string>"`, `File
/// "…/importlib/__init__.py"`, and the lines under them): what is left points at the app's
/// own code.
fn last_lines(text: &str, count: usize) -> Vec<String> {
    let mut lines: Vec<&str> = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let indent = line.len() - line.trim_start().len();
        if let Some(frame) = skipping {
            if indent > frame {
                continue;
            }
            skipping = None;
        }
        let frame = line.trim_start();
        let machinery = frame.starts_with("File \"<")
            || (frame.starts_with("File \"")
                && ["/importlib/__init__.py\"", "\\importlib\\__init__.py\""]
                    .iter()
                    .any(|file| frame.contains(file)));
        if machinery {
            skipping = Some(indent);
            continue;
        }
        lines.push(line);
    }
    let from = lines.len().saturating_sub(count);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apps_own_frames_are_what_a_failure_shows() {
        let traceback = "Traceback (most recent call last):\n  File \"<string>\", line 4, in <module>\n    loaded = importlib.import_module(module)\n             ^^^^^^\n  File \"/usr/lib/python3.11/importlib/__init__.py\", line 126, in import_module\n    return _bootstrap._gcd_import(name[level:], package, level)\n  File \"<frozen importlib._bootstrap>\", line 1204, in _gcd_import\n  File \"/app/app.py\", line 2, in <module>\n    import missing_thing\nModuleNotFoundError: No module named 'missing_thing'\n";
        assert_eq!(
            last_lines(traceback, 12),
            [
                "Traceback (most recent call last):",
                "  File \"/app/app.py\", line 2, in <module>",
                "    import missing_thing",
                "ModuleNotFoundError: No module named 'missing_thing'",
            ]
        );
    }
}
