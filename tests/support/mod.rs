//! What the integration tests share: real interpreters, wheels built on the fly, and a site (a
//! repository, a target and a manifest in a temporary folder) to deploy with the real binary.
//!
//! Nothing here touches the network: every deploy runs with `PIP_NO_INDEX=1` and a local
//! `PIP_FIND_LINKS` of wheels the tests build themselves.

#![allow(dead_code)] // each test binary uses a different part

pub mod app_service_start;
pub mod rehearsal;
pub mod smb_mount;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The kuduhook binary under test.
pub fn kuduhook() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kuduhook"))
}

/// The kuduhook a Linux site commits as `deploy/kuduhook`: the same code built static (musl),
/// as `kuduhook init` requires. Built once per test binary (cargo skips it when up to date).
pub fn static_kuduhook() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    const TARGET: &str = "x86_64-unknown-linux-musl";
    BUILT
        .get_or_init(|| {
            cargo_build(&["--bin", "kuduhook", "--target", TARGET])
                .join(TARGET)
                .join("debug/kuduhook")
        })
        .clone()
}

/// `cargo build --quiet ARGS` in this workspace, into the tests' target folder, which it
/// returns. (bash tests/setup.sh installs the musl target.)
pub fn cargo_build(args: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(root)
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir.to_path_buf()
}

/// A real interpreter of version `minor` ("3.11") from pyenv. Tests need 3.11 and 3.12; a
/// missing one fails loudly rather than skipping.
pub fn python(minor: &str) -> PathBuf {
    let home = std::env::var("HOME").expect("HOME is set");
    let versions = Path::new(&home).join(".pyenv/versions");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&versions)
        .unwrap_or_else(|e| panic!("tests need {}: {e}", versions.display()))
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == minor || name.starts_with(&format!("{minor}."))
        })
        .map(|e| e.path().join("bin").join(format!("python{minor}")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "tests need Python {minor} under {} (see .ci/run)",
            versions.display()
        )
    })
}

/// The full version an interpreter reports ("3.11.7").
pub fn version_of(python: &Path) -> String {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .expect("run python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds a wheel `name-version` into `dir`, with optional console scripts.
pub fn build_wheel(dir: &Path, name: &str, version: &str, scripts: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_wheel.py");
    let status = Command::new(python("3.11"))
        .arg(script)
        .arg(dir)
        .args([name, version])
        .args(scripts)
        .output()
        .expect("run make_wheel.py");
    assert!(status.status.success(), "make_wheel failed: {status:?}");
}

/// Builds a wheel into `dir` from `make_wheel.py`'s arguments after its OUTDIR: `name`,
/// `version`, console scripts, and options (`--requires SPEC`, `--extra NAME`, `--module NAME`).
pub fn build_wheel_with(dir: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_wheel.py");
    let status = Command::new(python("3.11"))
        .arg(script)
        .arg(dir)
        .args(args)
        .output()
        .expect("run make_wheel.py");
    assert!(status.status.success(), "make_wheel failed: {status:?}");
}

/// Wheels most tests install: `kudupkg` 1.0 and 2.0 (console script `kudupkg-hello`), and a
/// stand-in `django` 4.2 that makes an app look like a Django app.
pub fn shared_wheels() -> &'static Path {
    static WHEELS: OnceLock<PathBuf> = OnceLock::new();
    WHEELS.get_or_init(|| {
        // Under target/ (cargo's scratch space for integration tests), one folder per test
        // binary, so that nothing is left in the system's temp folder.
        let dir = tempfile::Builder::new()
            .prefix("wheels-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temp dir")
            .keep();
        build_wheel(&dir, "kudupkg", "1.0", &["kudupkg-hello"]);
        build_wheel(&dir, "kudupkg", "2.0", &["kudupkg-hello"]);
        build_wheel(&dir, "django", "4.2", &[]);
        dir
    })
}

/// uv, installed by `tests/setup.sh` (the README's test command runs it first).
pub fn uv() -> PathBuf {
    let uv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/uv");
    assert!(
        uv.is_file(),
        "tests need uv at {}: run bash tests/setup.sh",
        uv.display()
    );
    uv
}

/// A `deploy/steps.json` with the four core steps, then `extra` (JSON step objects).
pub fn core_steps_then(extra: &str) -> String {
    format!(
        r#"{{"steps": [
            {{"step": "sync"}}, {{"step": "detect-runtime"}}, {{"step": "validate-env"}},
            {{"step": "pip-install"}},
            {extra}
        ]}}"#
    )
}

/// The result of one `kuduhook` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    /// stdout and stderr, as the deployment log shows them.
    pub log: String,
}

impl Run {
    /// Runs `cmd` to completion, keeping its exit code and its output.
    pub fn of(mut cmd: Command) -> Run {
        let out = cmd.output().expect("run the command");
        Run {
            code: out.status.code().unwrap_or(-1),
            log: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, 0, "deploy failed:\n{}", self.log);
        self
    }

    pub fn assert_failed(&self) -> &Run {
        assert_ne!(self.code, 0, "deploy should have failed:\n{}", self.log);
        self
    }

    pub fn assert_contains(&self, text: &str) -> &Run {
        assert!(
            self.log.contains(text),
            "log should contain {text:?}:\n{}",
            self.log
        );
        self
    }

    pub fn assert_lacks(&self, text: &str) -> &Run {
        assert!(
            !self.log.contains(text),
            "log should not contain {text:?}:\n{}",
            self.log
        );
        self
    }
}

/// What Kudu does with a push before it runs the deployment command: the commit at
/// `developer`'s `HEAD` arrives in `repository`'s branch (fetched into it, as a push sends
/// only what the branch lacks: a small change arrives as loose objects), and is checked out by
/// id, `--force` (KuduLite's `GitExeRepository.Update`). Returns the id, Kudu's
/// `SCM_COMMIT_ID`.
pub fn kudu_checkout(repository: &Path, developer: &Path) -> String {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(repository)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let developer = developer.to_str().unwrap();
    git(&[
        "fetch",
        "-q",
        "--update-head-ok",
        developer,
        "+HEAD:refs/heads/master",
    ]);
    let id = git(&["rev-parse", "refs/heads/master"]);
    git(&["checkout", "-q", "--force", &id]);
    id
}

/// The names in `dir` (as its filesystem lists them: on the share, in the case it keeps), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every entry under `dir`, `/`-separated and sorted, with whether it is a folder. Links are
/// listed, never followed.
pub fn walk(dir: &Path) -> Vec<(String, bool)> {
    fn visit(base: &Path, dir: &Path, out: &mut Vec<(String, bool)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_dir = entry.file_type().unwrap().is_dir();
            out.push((relative, is_dir));
            if is_dir {
                visit(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(dir, dir, &mut out);
    out.sort();
    out
}

/// The app's files in `dir` (a site or a repository) as the app sees them (path -> content),
/// without the env and the platform's start file, which the tests check by what they run.
pub fn app_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    walk(dir)
        .into_iter()
        .filter(|(path, is_dir)| {
            !is_dir && !path.starts_with("env/") && path != "env" && path != "oryx-manifest.toml"
        })
        .map(|(path, _)| {
            let content = std::fs::read_to_string(dir.join(&path)).unwrap_or_default();
            (path, content)
        })
        .collect()
}

/// A repository and the site it deploys to, in one temporary folder.
pub struct Site {
    _root: tempfile::TempDir,
    pub repo: PathBuf,
    pub target: PathBuf,
    pub manifest: PathBuf,
    pub wheels: PathBuf,
}

impl Site {
    /// An empty repository.
    pub fn empty() -> Site {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-site-")
            .tempdir()
            .expect("temp dir");
        let repo = root.path().join("repository");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(root.path().join("wheels")).unwrap();
        Site {
            repo,
            target: root.path().join("wwwroot"),
            manifest: root.path().join("manifest"),
            wheels: shared_wheels().to_path_buf(),
            _root: root,
        }
    }

    /// A small web app on Python `minor` that requires `kudupkg==1.0`.
    pub fn app(minor: &str) -> Site {
        let site = Site::empty();
        site.write(
            "app.py",
            "import kudupkg\n\ndef app():\n    return kudupkg.__version__\n",
        );
        site.write("requirements.txt", "kudupkg==1.0\n");
        site.write("runtime.txt", &format!("python-{minor}\n"));
        site
    }

    /// A wheels folder for this site alone (on its `PIP_FIND_LINKS` beside the shared one),
    /// for wheels a test builds.
    pub fn wheels_dir_of_its_own(&self) -> PathBuf {
        self.target.parent().unwrap().join("wheels")
    }

    pub fn write(&self, relative: &str, content: &str) {
        let path = self.repo.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.repo.join(relative)).unwrap();
    }

    /// The environment a deploy runs with: the host's PATH and HOME, local wheels only.
    pub fn base_env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), std::env::var("HOME").unwrap_or_default()),
            ("PIP_NO_INDEX".into(), "1".into()),
            (
                "PIP_FIND_LINKS".into(),
                format!(
                    "{} {}",
                    self.wheels.display(),
                    self.target.parent().unwrap().join("wheels").display()
                ),
            ),
        ]
    }

    /// `kuduhook deploy --source <repo> --target <target>` plus `args`.
    pub fn deploy(&self, args: &[&str]) -> Run {
        self.deploy_with(args, &[])
    }

    /// Like [`Site::deploy`], with extra environment variables (app settings).
    pub fn deploy_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::of(self.deploy_command(args, env))
    }

    /// The command [`Site::deploy_with`] runs, to start it some other way.
    pub fn deploy_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(kuduhook());
        cmd.arg("deploy")
            .arg("--source")
            .arg(&self.repo)
            .arg("--target")
            .arg(&self.target)
            .arg("--next-manifest")
            .arg(&self.manifest)
            .arg("--previous-manifest")
            .arg(&self.manifest)
            .args(args);
        self.in_site(&mut cmd, env);
        cmd
    }

    /// Runs `cmd` in the repository with the base environment and `env`.
    pub fn run(&self, mut cmd: Command, env: &[(&str, &str)]) -> Run {
        self.in_site(&mut cmd, env);
        Run::of(cmd)
    }

    /// Sets `cmd` to run in the repository with the base environment and `env` only.
    fn in_site(&self, cmd: &mut Command, env: &[(&str, &str)]) {
        cmd.env_clear()
            .envs(self.base_env())
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .current_dir(&self.repo);
    }

    pub fn env_dir(&self) -> PathBuf {
        self.target.join("env")
    }

    /// Where kuduhook keeps the site's envs, beside the target.
    pub fn envs_dir(&self) -> PathBuf {
        self.target.parent().unwrap().join(".kuduhook/wwwroot/envs")
    }

    /// The kept releases' record (`releases.json`), parsed; `Null` when there is none.
    pub fn releases(&self) -> serde_json::Value {
        let path = self
            .target
            .parent()
            .unwrap()
            .join(".kuduhook/wwwroot/releases/releases.json");
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The envs the site keeps for rollbacks (the envs the kept releases replaced).
    pub fn kept_envs(&self) -> Vec<PathBuf> {
        let releases = self.releases();
        let Some(list) = releases["releases"].as_array() else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|r| {
                let env = &r["previous_env"];
                env["link"]
                    .as_str()
                    .or(env["folder"].as_str())
                    .map(PathBuf::from)
            })
            .collect()
    }

    /// What a deployment may leave only while it runs: envs the site does not run (nor keeps
    /// for a rollback), folders and links beside the live env, temporary files in the target.
    /// Empty between deployments.
    pub fn leftovers(&self) -> Vec<String> {
        let live = std::fs::canonicalize(self.env_dir()).ok();
        let kept = self.kept_envs();
        let mut found: Vec<String> = std::fs::read_dir(self.envs_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| std::fs::canonicalize(e.path()).ok() != live && !kept.contains(&e.path()))
            .map(|e| e.path().display().to_string())
            .collect();
        found.extend(
            walk(&self.target)
                .into_iter()
                .filter(|(path, _)| !path.starts_with("env/") && path.contains("kuduhook"))
                .map(|(path, _)| path),
        );
        found
    }

    pub fn env_python(&self) -> PathBuf {
        self.env_dir().join("bin/python")
    }

    /// What `import <package>; print(<package>.__version__)` says in the deployed env, run
    /// from the site like the web server would; `None` when it fails.
    pub fn imported_version(&self, package: &str) -> Option<String> {
        let out = Command::new(self.env_python())
            .args([
                "-c",
                &format!("import {package}; print({package}.__version__)"),
            ])
            .current_dir(&self.target)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The full Python version of the deployed env.
    pub fn env_version(&self) -> String {
        version_of(&self.env_python())
    }

    /// Plants a file inside the env, to tell a rebuilt env from a reused one.
    pub fn mark_env(&self) -> PathBuf {
        let mark = self.env_dir().join("planted-by-test");
        std::fs::write(&mark, "x").unwrap();
        mark
    }

    pub fn target_file(&self, relative: &str) -> PathBuf {
        self.target.join(relative)
    }
}
