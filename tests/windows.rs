//! Windows App Service, under Wine: `kuduhook.exe`, cross-built for x86_64-pc-windows-gnu with
//! Debian's mingw-w64, run as Kudu on Windows runs it: Windows paths in `DEPLOYMENT_SOURCE`,
//! `DEPLOYMENT_TARGET` and the manifests (`Z:\` is the Linux root under Wine), `cmd /c` for run
//! steps and for `.deployment`'s command. `bash tests/setup.sh` installs Wine, mingw-w64 and
//! the Rust target, and makes the Wine prefix, with a stand-in for the `bcryptprimitives.dll`
//! Debian's Wine lacks (see `tests/support/wine/`).
//!
//! What cannot run here: the Python steps. No Windows CPython can be had from the registries
//! these machines reach (PyPI, npm, Debian, crates.io); the Windows layout (`env\Scripts`,
//! `D:\home\python*`, `web.X.Y.config`) is unit-tested as plain functions of the platform.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use support::{Run, cargo_build, walk};

const TARGET: &str = "x86_64-pc-windows-gnu";
const WINE: &str = "/usr/lib/wine/wine64";

/// kuduhook.exe, built once per test binary.
fn exe() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            cargo_build(&["--bin", "kuduhook", "--target", TARGET])
                .join(TARGET)
                .join("debug/kuduhook.exe")
        })
        .clone()
}

fn tools() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wine");
    assert!(
        dir.join("prefix/drive_c/windows/system32/bcryptprimitives.dll")
            .is_file(),
        "run bash tests/setup.sh first (the Wine prefix in {})",
        dir.display()
    );
    dir
}

/// A Windows path for a Linux one, as Wine maps it.
fn win(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// `wine64 PROGRAM ARGS` in `dir`, with only `env` (and Wine's own) in its environment.
fn wine_command(program: &str, args: &[&str], env: &[(&str, String)], dir: &Path) -> Command {
    let mut cmd = Command::new(WINE);
    cmd.arg(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("WINEPREFIX", tools().join("prefix"))
        .env("WINEDEBUG", "-all")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

/// A repository and the Windows site it deploys to.
struct WinSite {
    _root: tempfile::TempDir,
    repo: PathBuf,
    target: PathBuf,
    manifest: PathBuf,
}

impl WinSite {
    fn new(files: &[(&str, &str)]) -> WinSite {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-windows-")
            .tempdir()
            .unwrap();
        let site = WinSite {
            repo: root.path().join("repository"),
            target: root.path().join("wwwroot"),
            manifest: root.path().join("manifest"),
            _root: root,
        };
        std::fs::create_dir_all(&site.repo).unwrap();
        for (path, text) in files {
            site.write(path, text);
        }
        site
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.repo.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn remove(&self, relative: &str) {
        std::fs::remove_file(self.repo.join(relative)).unwrap();
    }

    /// What Kudu on Windows sets for the deployment command.
    fn kudu_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DEPLOYMENT_SOURCE", win(&self.repo)),
            ("DEPLOYMENT_TARGET", win(&self.target)),
            ("PREVIOUS_MANIFEST_PATH", win(&self.manifest)),
            ("NEXT_MANIFEST_PATH", win(&self.manifest)),
            ("SCM_COMMAND_IDLE_TIMEOUT", "60".into()),
        ]
    }

    fn deploy_command(&self, settings: &[(&'static str, &str)]) -> Command {
        let mut env = self.kudu_env();
        env.extend(settings.iter().map(|(k, v)| (*k, v.to_string())));
        wine_command(exe().to_str().unwrap(), &["deploy"], &env, &self.repo)
    }

    fn deploy(&self, settings: &[(&'static str, &str)]) -> Run {
        Run::of(self.deploy_command(settings))
    }

    fn kuduhook(&self, args: &[&str]) -> Run {
        Run::of(wine_command(
            exe().to_str().unwrap(),
            args,
            &self.kudu_env(),
            &self.repo,
        ))
    }

    /// The site's files (path -> content).
    fn files(&self) -> BTreeMap<String, String> {
        walk(&self.target)
            .into_iter()
            .filter(|(_, is_dir)| !is_dir)
            .map(|(path, _)| {
                let text = std::fs::read_to_string(self.target.join(&path)).unwrap();
                (path, text)
            })
            .collect()
    }

    /// The repository's files, as the site must hold them.
    fn expected(&self) -> BTreeMap<String, String> {
        walk(&self.repo)
            .into_iter()
            .filter(|(path, is_dir)| !is_dir && path != ".deployment")
            .map(|(path, _)| {
                let text = std::fs::read_to_string(self.repo.join(&path)).unwrap();
                (path, text)
            })
            .collect()
    }
}

/// Makes `path` read-only (Wine shows a file without write permission as read-only).
fn read_only(path: &Path) {
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(path, permissions).unwrap();
}

/// Starts `hold.exe FILE SECONDS` (a file held open as IIS holds it) and waits until it holds.
fn hold(file: &Path, seconds: u32) -> std::process::Child {
    let hold = tools().join("hold.exe");
    let mut child = wine_command(
        hold.to_str().unwrap(),
        &[&win(file), &seconds.to_string()],
        &[],
        file.parent().unwrap(),
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "holding");
    child
}

#[test]
fn the_windows_binary_syncs_a_site_with_windows_paths() {
    let site = WinSite::new(&[
        ("index.html", "<h1>hello</h1>\n"),
        ("static/site.css", "body {}\n"),
        ("docs/a.txt", "a\n"),
    ]);
    site.deploy(&[])
        .assert_ok()
        .assert_contains(&format!("-> {}", win(&site.target)))
        .assert_contains("Copied 3 files")
        .assert_contains(&format!("manifest {}", win(&site.manifest)));
    assert_eq!(site.files(), site.expected());
    // KuduSync's manifest on Windows: one entry per line, with backslashes.
    let manifest = std::fs::read_to_string(&site.manifest).unwrap();
    assert!(
        manifest.lines().any(|l| l == "static\\site.css"),
        "{manifest}"
    );
    std::fs::create_dir_all(site.target.join("uploads")).unwrap();
    std::fs::write(site.target.join("uploads/photo.jpg"), "jpeg").unwrap();

    // Only what changed is copied; what the manifest lists and the repository lost goes; the
    // app's own files stay.
    site.write("static/site.css", "body { color: red }\n");
    site.remove("docs/a.txt");
    std::fs::remove_dir(site.repo.join("docs")).unwrap();
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Copied 1 file")
        .assert_contains("deleted 2")
        .assert_contains("1 unchanged");
    let mut expected = site.expected();
    expected.insert("uploads/photo.jpg".into(), "jpeg".into());
    assert_eq!(site.files(), expected);
    assert!(!site.target.join("docs").exists());
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Nothing changed");
}

/// Windows names ignore case: a case-only rename must still take the new case (Python on
/// Windows imports `app` only from `app.py`, not `App.py`).
#[test]
fn a_case_only_rename_takes_the_new_case_on_a_windows_site() {
    let site = WinSite::new(&[("App.py", "v1\n")]);
    site.deploy(&[]).assert_ok();
    site.remove("App.py");
    site.write("app.py", "v2\n");
    site.deploy(&[]).assert_ok();
    assert_eq!(site.files(), site.expected());
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Nothing changed");
}

#[test]
fn read_only_files_are_replaced_and_deleted() {
    let site = WinSite::new(&[("config.ini", "a=1\n"), ("old.ini", "b=2\n")]);
    site.deploy(&[]).assert_ok();
    read_only(&site.target.join("config.ini"));
    read_only(&site.target.join("old.ini"));
    site.write("config.ini", "a=2\n");
    site.remove("old.ini");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Copied 1 file")
        .assert_contains("deleted 1")
        .assert_lacks("warning");
    assert_eq!(site.files(), site.expected());
    // The undo logs that kept the read-only files are removed as they age out.
    site.write("more.txt", "x\n");
    site.deploy(&[]).assert_ok().assert_lacks("warning");
    site.deploy(&[]).assert_ok().assert_lacks("warning");
}

/// IIS holds a site's files open: a replace waits for it (retried with pauses), and one held
/// for good fails the deployment clearly with the previous files put back.
#[test]
fn a_file_held_open_as_iis_holds_it_is_retried_then_replaced_or_reported() {
    let site = WinSite::new(&[("app.dll", "v1\n"), ("other.txt", "o1\n")]);
    site.deploy(&[]).assert_ok();
    site.write("app.dll", "v2\n");
    let mut holder = hold(&site.target.join("app.dll"), 2);
    site.deploy(&[])
        .assert_ok()
        .assert_contains("it may be busy or locked, retrying up to 10 times");
    holder.wait().unwrap();
    assert_eq!(site.files(), site.expected());

    site.write("app.dll", "v3\n");
    site.write("other.txt", "o3\n");
    let mut holder = hold(&site.target.join("app.dll"), 20);
    site.deploy(&[])
        .assert_failed()
        .assert_contains("stayed locked or busy through 10 attempts")
        .assert_contains("The previous files were put back");
    assert_eq!(
        std::fs::read_to_string(site.target.join("app.dll")).unwrap(),
        "v2\n"
    );
    assert_eq!(
        std::fs::read_to_string(site.target.join("other.txt")).unwrap(),
        "o1\n"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    site.deploy(&[]).assert_ok();
    assert_eq!(site.files(), site.expected());
}

#[test]
fn hostile_manifest_entries_touch_nothing_outside_the_site() {
    let site = WinSite::new(&[("index.html", "hi\n")]);
    let outside = site.target.parent().unwrap().join("outside.txt");
    std::fs::write(&outside, "keep me\n").unwrap();
    std::fs::write(
        &site.manifest,
        format!(
            "..\\outside.txt\r\n{}\r\nC:\\windows\\win.ini\r\n\\\\server\\share\\x\r\n",
            win(&outside)
        ),
    )
    .unwrap();
    site.deploy(&[])
        .assert_ok()
        .assert_contains("line 1: \"..\\outside.txt\" refused, it climbs out")
        .assert_contains("line 3: \"C:\\windows\\win.ini\" refused, it is an absolute path")
        .assert_contains("line 4: \"\\\\server\\share\\x\" refused")
        .assert_contains("nothing outside the target is touched");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me\n");
    assert!(tools().join("prefix/drive_c/windows/win.ini").is_file());
}

/// `kuduhook init --platform windows` writes the `.deployment` Kudu on Windows runs with
/// `cmd /c`; the run steps of `deploy/steps.json` run with `cmd /c` too.
#[test]
fn init_for_windows_and_its_deployment_command_run_with_cmd() {
    let site = WinSite::new(&[("index.html", "hi\n")]);
    site.kuduhook(&["init", "--platform", "windows", "--binary", &win(&exe())])
        .assert_ok();
    let deployment = std::fs::read_to_string(site.repo.join(".deployment")).unwrap();
    let command = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("command"))
        .and_then(|rest| rest.trim().strip_prefix('='))
        .unwrap_or_else(|| panic!("no command in .deployment:\n{deployment}"))
        .trim()
        .to_string();
    assert!(command.contains("kuduhook.exe"), "{command}");
    assert!(site.repo.join("deploy/kuduhook.exe").is_file());
    site.write(
        "deploy/steps.json",
        r#"{"steps": [{"step": "sync"}, {"run": "echo ran in %CD%> ran.txt", "name": "note"}]}"#,
    );
    // As Kudu on Windows runs it: cmd /c "<command>" in the repository.
    let run = Run::of(wine_command(
        "cmd",
        &["/c", &command],
        &site.kudu_env(),
        &site.repo,
    ));
    run.assert_ok()
        .assert_contains("==> [2/2] note")
        .assert_contains("Deployed to");
    assert_eq!(site.files()["index.html"], "hi\n");
    assert!(!site.target.join("deploy/kuduhook.exe").exists());
    let ran = std::fs::read_to_string(site.target.join("ran.txt")).unwrap();
    assert_eq!(ran.trim(), format!("ran in {}", win(&site.target)));
}

/// Two deployments started at once on one site take turns under the deploy lock.
#[test]
fn two_deployments_at_once_take_turns() {
    let site = WinSite::new(&[("index.html", "hi\n")]);
    let hold = win(&tools().join("hold.exe"));
    site.write(
        "deploy/steps.json",
        &format!(
            r#"{{"steps": [{{"step": "sync"}}, {{"run": "{} index.html 2", "name": "slow"}}]}}"#,
            hold.replace('\\', "\\\\")
        ),
    );
    let children: Vec<_> = (0..2)
        .map(|_| {
            site.deploy_command(&[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{log}");
            log
        })
        .collect();
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("Waiting for a deployment"))
            .count(),
        1,
        "{}",
        logs.join("\n---\n")
    );
}

/// What a Windows site says when Python is asked for and not there, or a setting is wrong:
/// what, why and fix, before anything changes.
#[test]
fn a_windows_site_explains_a_missing_interpreter_and_a_bad_setting() {
    let site = WinSite::new(&[("index.html", "hi\n"), ("requirements.txt", "flask\n")]);
    site.deploy(&[("PYTHON_VERSION", "3.11")])
        .assert_failed()
        .assert_contains("no interpreter for Python 3.11")
        .assert_contains("D:\\home\\python")
        .assert_contains("fix:")
        .assert_contains("Nothing in the target was changed");
    assert!(!site.target.join("index.html").exists());
    site.deploy(&[("KUDUHOOK_KEEP_RELEASES", "zero")])
        .assert_failed()
        .assert_contains("KUDUHOOK_KEEP_RELEASES")
        .assert_contains("a number of releases from 1 to 100")
        .assert_contains("Nothing in the target was changed");
    site.deploy(&[("PYTHON_VERSION", "three")])
        .assert_failed()
        .assert_contains("which is not a Python version");
}

/// The library's unit tests, built for Windows and run under Wine: the platform's layouts,
/// settings, the sync's planning, the undo log, the env store, on the Windows target itself.
#[test]
fn the_library_unit_tests_pass_on_windows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--quiet", "--no-run", "--lib", "-p", "kuduhook"])
        .args(["--target", TARGET, "--message-format", "json"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tests = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the unit tests' executable");
    let run = Run::of(wine_command(tests.to_str().unwrap(), &[], &[], root));
    run.assert_ok().assert_contains("test result: ok.");
}

/// The releases on a Windows site: a rollback puts back the previous release's files.
#[test]
fn a_windows_site_rolls_back_to_the_previous_release() {
    let site = WinSite::new(&[("index.html", "v1\n"), ("old.txt", "old\n")]);
    site.deploy(&[("SCM_COMMIT_ID", "1111111111111111")])
        .assert_ok();
    let first = site.files();
    site.write("index.html", "v2\n");
    site.remove("old.txt");
    site.write("new.txt", "new\n");
    site.deploy(&[("SCM_COMMIT_ID", "2222222222222222")])
        .assert_ok();
    site.kuduhook(&["rollback", "--target", &win(&site.target)])
        .assert_ok()
        .assert_contains("Rolled back to commit 111111111111");
    assert_eq!(site.files(), first);
    site.deploy(&[("SCM_COMMIT_ID", "3333333333333333")])
        .assert_ok();
    assert_eq!(site.files(), site.expected());
}
