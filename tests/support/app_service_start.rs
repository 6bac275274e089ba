//! App Service Linux's start of a deployed site, played in the tests: the judge of whether a
//! deployment gives a site that starts. Written from the platform's documented behaviour
//! (`shared/kudu-contract.md` §8), independently of kuduhook's own code, on purpose: kuduhook
//! writes what the platform reads, and this reads it the way the platform does.
//!
//! - The env: the one `oryx-manifest.toml` names (`virtualEnvName`), else `antenv`. It is not
//!   activated: its `lib/pythonX.Y/site-packages` is appended to `PYTHONPATH`.
//! - The interpreter: the image's own Python X.Y, with gunicorn installed globally. Here: a
//!   venv of the machine's real Python X.Y with gunicorn in it (from the wheels
//!   `tests/setup.sh` downloads), which plays `/opt/python/X.Y`.
//! - The entry: a startup command when one is set; else a top-level folder with `wsgi.py`
//!   (Django: `<folder>.wsgi`), else `application.py`, `app.py`, `index.py`, `server.py`
//!   (`<name>:app`); gunicorn runs it with `--timeout 600 --chdir <wwwroot>`, bound to `PORT`
//!   (a loopback port here).

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

/// The env the platform uses for the site in `wwwroot`.
pub fn platform_env(wwwroot: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(wwwroot.join("oryx-manifest.toml")).unwrap_or_default();
    let named = manifest.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "virtualEnvName").then(|| value.trim().trim_matches('"').to_string())
    });
    wwwroot.join(named.unwrap_or_else(|| "antenv".into()))
}

/// The module gunicorn serves when no startup command is set.
fn detected_entry(wwwroot: &Path) -> String {
    let mut django: Vec<String> = std::fs::read_dir(wwwroot)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("wsgi.py").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    django.sort();
    if let Some(project) = django.first() {
        return format!("{project}.wsgi");
    }
    for file in ["application.py", "app.py", "index.py", "server.py"] {
        if wwwroot.join(file).is_file() {
            return format!("{}:app", file.trim_end_matches(".py"));
        }
    }
    panic!(
        "the platform finds no entry in {}: it would serve its default page",
        wwwroot.display()
    );
}

/// Starts the site in `wwwroot` as App Service Linux does on a stack of Python `minor`, and
/// waits until it listens. `settings` are the app settings (the platform exports them).
pub fn start(wwwroot: &Path, minor: &str, settings: &[(&str, &str)]) -> Server {
    let env = platform_env(wwwroot);
    let site_packages = env.join(format!("lib/python{minor}/site-packages"));
    let port = free_port();
    let mut cmd = Command::new(image_python(minor));
    cmd.args(["-m", "gunicorn", "--timeout", "600", "--chdir"])
        .arg(wwwroot)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .arg(detected_entry(wwwroot))
        .current_dir(wwwroot)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .envs(settings.iter().copied());
    if env.is_dir() {
        cmd.env("PYTHONPATH", &site_packages);
    }
    Server::spawn(cmd, port)
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
