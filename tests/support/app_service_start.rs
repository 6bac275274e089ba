//! App Service Linux's start of a deployed site, played in the tests: the judge of whether a
//! deployment gives a site that starts. The start itself is `app-service-start.sh` beside this
//! file (also run by `bench/cold-start.sh`): a container of its own, with the image's Python at
//! `/opt/python/X.Y`, where the env the manifest names is used from wwwroot or extracted from
//! its archive to `/<name>`, and gunicorn serves the entry the platform detects. Written from
//! the platform's documented behaviour (docs/platform.md §8), independently of
//! kuduhook's own code, on purpose: kuduhook writes what the platform reads, and this reads it
//! the way the platform does.
//!
//! The image's Python is the machine's real Python X.Y; the image's global packages (gunicorn,
//! from the wheels `tests/setup.sh` downloads) are a folder of their own, mounted over its
//! site-packages in the container.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::python;
use super::rehearsal::{Server, free_port};

/// The image's interpreter for Python `minor` ("3.11"), with gunicorn installed globally.
pub fn image_python(minor: &str) -> PathBuf {
    static IMAGES: OnceLock<Mutex<()>> = OnceLock::new();
    let _one_at_a_time = IMAGES.get_or_init(|| Mutex::new(())).lock();
    let image = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("app-service-image-{minor}"));
    let ready = image.join("gunicorn-installed");
    let interpreter = image.join("bin").join(format!("python{minor}"));
    if !ready.is_file() {
        let _ = std::fs::remove_dir_all(&image);
        let base = python(minor);
        let made = Command::new(&base)
            .args(["-m", "venv", "--without-pip"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wheels/platform");
        assert!(
            wheels.is_dir(),
            "run bash tests/setup.sh first (gunicorn's wheel)"
        );
        let site_packages = image.join(format!("lib/python{minor}/site-packages"));
        let installed = Command::new(&base)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
            ])
            .arg(&wheels)
            .arg("--target")
            .arg(&site_packages)
            .arg("gunicorn")
            .env_remove("PIP_REQUIRE_VIRTUALENV")
            .output()
            .unwrap();
        assert!(installed.status.success(), "{installed:?}");
        std::fs::write(&ready, "").unwrap();
    }
    interpreter
}

/// The env folder the platform uses for the site in `wwwroot` when no archive is named.
pub fn platform_env(wwwroot: &Path) -> PathBuf {
    wwwroot.join(manifest_value(wwwroot, "virtualEnvName").unwrap_or_else(|| "antenv".into()))
}

/// A value of wwwroot's `oryx-manifest.toml`.
pub fn manifest_value(wwwroot: &Path, key: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(wwwroot.join("oryx-manifest.toml")).unwrap_or_default();
    manifest.lines().find_map(|line| {
        let (k, value) = line.split_once('=')?;
        (k.trim() == key).then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The container start: `app-service-start.sh WWWROOT MINOR PORT [COMMAND...]`, its
/// environment the app `settings`, and the folder that becomes the container's root.
fn container(
    wwwroot: &Path,
    minor: &str,
    port: u16,
    settings: &[(&str, &str)],
) -> (Command, tempfile::TempDir) {
    let image = image_python(minor);
    let packages = image
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("lib/python{minor}/site-packages"));
    let home = python(minor)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let containers = Path::new(env!("CARGO_TARGET_TMPDIR")).join("containers");
    std::fs::create_dir_all(&containers).unwrap();
    let root = tempfile::tempdir_in(containers).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/app-service-start.sh"))
        .arg(wwwroot)
        .arg(minor)
        .arg(port.to_string())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONTAINER_ROOT", root.path())
        .env("IMAGE_PYTHON_HOME", home)
        .env("IMAGE_PACKAGES", packages)
        .envs(settings.iter().copied());
    (cmd, root)
}

/// Starts the site in `wwwroot` as App Service Linux does on a stack of Python `minor`, and
/// waits until it listens. `settings` are the app settings (the platform exports them).
pub fn start(wwwroot: &Path, minor: &str, settings: &[(&str, &str)]) -> Server {
    let port = free_port();
    let (cmd, root) = container(wwwroot, minor, port, settings);
    Server::spawn(cmd, port).keeping(root)
}

/// Starts the site with a startup command (the portal's, run by the shell in wwwroot once the
/// env is set up, with `PORT` set), as App Service Linux does when one is set.
pub fn start_with_command(
    wwwroot: &Path,
    minor: &str,
    settings: &[(&str, &str)],
    startup: &str,
) -> Server {
    let port = free_port();
    let (mut cmd, root) = container(wwwroot, minor, port, settings);
    cmd.args(["/bin/bash", "-c", startup]);
    Server::spawn(cmd, port).keeping(root)
}

/// Runs `command` in the site's container on a stack of Python `minor`, once the platform has
/// set up the env (extracted, on `PYTHONPATH`), as a user's SSH session into the app would.
pub fn in_container(wwwroot: &Path, minor: &str, command: &str) -> std::process::Output {
    let (mut cmd, _root) = container(wwwroot, minor, free_port(), &[]);
    cmd.args(["/bin/bash", "-c", command]).output().unwrap()
}

/// Starts the site, asks for `/`, and stops it: the status line and the body.
pub fn first_page(wwwroot: &Path, minor: &str, settings: &[(&str, &str)]) -> (String, String) {
    let server = start(wwwroot, minor, settings);
    let page = server.get("/");
    assert!(
        page.0.contains(" 200 "),
        "the site answered {:?}:\n{}\n{}",
        page.0,
        page.1,
        server.output()
    );
    page
}
