//! A deployment is a success only if the site then starts the way App Service Linux starts it:
//! the image's Python with gunicorn, the env the wwwroot names (`oryx-manifest.toml`, else
//! `antenv`) on `PYTHONPATH`, the entry it detects (see `support::app_service_start`). The
//! Flask example and a small Django app are pushed to a local App Service through every kind of
//! change, and after each one the site is started and must answer 200.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::app_service_start::{
    first_page, image_python, in_container, manifest_value, platform_env, start_with_command,
};
use support::rehearsal::{FAILED, Rehearsal, SUCCEEDED, Server, example, free_port};
use support::{Site, kuduhook, python, shared_wheels, version_of};

fn wheels(kind: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools/wheels")
        .join(kind);
    assert!(
        dir.is_dir(),
        "run bash tests/setup.sh first ({})",
        dir.display()
    );
    dir
}

/// The app settings of a Linux site on the Python `minor` stack, installing offline.
fn settings(minor: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let find_links = format!(
        "{} {} {} {}",
        wheels("flask-app").display(),
        wheels("platform").display(),
        shared_wheels().display(),
        wheels("layouts").display()
    );
    let mut all = vec![
        ("FRAMEWORK".to_string(), "PYTHON".to_string()),
        ("FRAMEWORK_VERSION".to_string(), minor.to_string()),
        ("PIP_NO_INDEX".to_string(), "1".to_string()),
        ("PIP_FIND_LINKS".to_string(), find_links),
    ];
    all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

fn apply(r: &Rehearsal, settings: &[(String, String)]) {
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    r.settings(&pairs);
}

/// The bundled Flask example's files.
fn flask_example() -> Vec<(&'static str, String)> {
    ["app.py", "requirements.txt", "runtime.txt"]
        .into_iter()
        .map(|file| (file, example(file)))
        .collect()
}

/// Starts the deployed site as the platform does and returns its first page.
fn page(r: &Rehearsal, minor: &str) -> String {
    first_page(&r.wwwroot(), minor, &[]).1
}

/// Pushes `r` through a first deploy, an unchanged redeploy, a requirement change, a stack
/// switch from 3.11 to 3.12 (with runtime.txt, when the app has one), a force rebuild and a
/// failed install; after each, the site starts
/// as App Service starts it, answers 200, and `expect(minor, body)` holds.
fn every_kind_of_push(r: &Rehearsal, expect: impl Fn(&str, &str)) -> String {
    let has_runtime_txt = r.app.join("runtime.txt").is_file();
    apply(r, &settings("3.11", &[]));
    let first = r.push();
    first
        .assert_contains(match has_runtime_txt {
            true => "Python 3.11 requested by runtime.txt line 1",
            false => "Python 3.11 requested by the site's stack (FRAMEWORK_VERSION)",
        })
        .assert_contains(
            "Wrote oryx-manifest.toml: App Service Linux starts the site with the env in env/",
        )
        .assert_contains(SUCCEEDED);
    assert_eq!(platform_env(&r.wwwroot()), r.wwwroot().join("env"));
    expect("3.11", &page(r, "3.11"));

    r.commit("redeploy, nothing changed");
    r.push()
        .assert_contains("Reusing env")
        .assert_lacks("oryx-manifest.toml")
        .assert_contains(SUCCEEDED);
    expect("3.11", &page(r, "3.11"));

    let requirements = std::fs::read_to_string(r.app.join("requirements.txt")).unwrap();
    r.write("requirements.txt", &format!("{requirements}kudupkg==1.0\n"));
    r.commit("a new requirement");
    r.push()
        .assert_contains("added kudupkg 1.0")
        .assert_contains(SUCCEEDED);
    expect("3.11", &page(r, "3.11"));

    // The stack is switched to 3.12. An app whose runtime.txt still says 3.11 is refused,
    // the site untouched, until the two agree.
    apply(r, &settings("3.12", &[]));
    if has_runtime_txt {
        r.commit("stack switched, runtime.txt not yet");
        r.push()
            .assert_contains(
                "runtime.txt line 1 asks for Python 3.11, but this site runs Python 3.12",
            )
            .assert_contains("--linux-fx-version")
            .assert_contains("or make runtime.txt say python-3.12")
            .assert_contains("Nothing in the target was changed")
            .assert_contains(FAILED);
        expect("3.11", &page(r, "3.11"));
        r.write("runtime.txt", "python-3.12\n");
    }
    r.commit("python 3.12");
    r.push()
        .assert_contains("Python changed 3.11")
        .assert_contains(SUCCEEDED);
    expect("3.12", &page(r, "3.12"));

    apply(
        r,
        &settings("3.12", &[("KUDUHOOK_FORCE_ENV_REBUILD", "2026-11-25")]),
    );
    r.commit("force a rebuild");
    r.push()
        .assert_contains("KUDUHOOK_FORCE_ENV_REBUILD")
        .assert_contains(SUCCEEDED);
    let good = page(r, "3.12");
    expect("3.12", &good);

    r.write("requirements.txt", &format!("{requirements}kudupkg==9.9\n"));
    r.commit("a requirement that does not exist");
    r.push()
        .assert_contains("kudupkg==9.9")
        .assert_contains("Nothing in the target was changed")
        .assert_contains(FAILED);
    assert_eq!(page(r, "3.12"), good, "the previous release still answers");
    first.log
}

#[test]
fn the_flask_example_starts_as_app_service_starts_it_after_every_kind_of_push() {
    let r = Rehearsal::new(&flask_example());
    let first = every_kind_of_push(&r, |minor, body| {
        assert!(
            body.starts_with(&format!("Hello from kuduhook! Python {minor}.")),
            "{body}"
        );
    });
    assert!(
        first.contains("(link switch, one atomic rename)"),
        "{first}"
    );
}

/// Where the site is on the share, the platform starts it from the env's archive, extracted
/// to `/env` on the container's local disk: the manifest names the one archive the site keeps
/// (the previous envs' are gone), the app imports `package` from `/env`, and the env's console
/// `script` and `activate` are valid there, as a user's SSH session would run them. pip is not
/// there: what it installed would vanish at the next start, which extracts the env anew.
fn assert_runs_from_the_extracted_archive(r: &Rehearsal, minor: &str, package: &str, script: &str) {
    let wwwroot = r.wwwroot();
    let archive = manifest_value(&wwwroot, "compressedVirtualEnvFile")
        .expect("the manifest names the env's archive");
    let path = wwwroot.join(&archive);
    assert!(path.is_file(), "{}", path.display());
    let mut kept: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    // Beside the live env's archive, only those of the releases kept for a rollback.
    let releases: serde_json::Value = std::fs::read(
        wwwroot
            .parent()
            .unwrap()
            .join(".kuduhook/wwwroot/releases/releases.json"),
    )
    .ok()
    .and_then(|b| serde_json::from_slice(&b).ok())
    .unwrap_or_default();
    let mut wanted: Vec<String> = releases["releases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["archive"].as_str())
        .chain([archive.as_str()])
        .flat_map(|a| {
            let name = Path::new(a)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            [format!("{name}.json"), name]
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    assert_eq!(kept, wanted);
    assert!(kept.contains(&name));
    assert!(
        kept.len() <= 4,
        "at most the live and the previous release's: {kept:?}"
    );
    let checks = format!(
        "set -e; python{minor} -c 'import {package}; print({package}.__file__)'; \
         /env/bin/{script}; . /env/bin/activate; python -c 'import sys; print(sys.prefix)'; \
         test ! -e /env/bin/pip && echo no pip in /env; \
         if [ -d /env/lib/python{minor}/site-packages/setuptools ]; then \
           test ! -e /env/lib/python{minor}/site-packages/setuptools/__pycache__; \
           python{minor} -c 'import pkg_resources, setuptools; print(\"setuptools from\", setuptools.__file__)'; \
         fi"
    );
    let out = in_container(&wwwroot, minor, &checks);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    for expected in [
        format!("Extracting {archive} to /env"),
        format!("/env/lib/python{minor}/site-packages/{package}/__init__.py"),
        "\n/env\n".to_string(),
        "no pip in /env".to_string(),
    ]
    .into_iter()
    .chain(before_3_12(minor).then(|| {
        format!("setuptools from /env/lib/python{minor}/site-packages/setuptools/__init__.py")
    })) {
        assert!(said.contains(&expected), "{expected:?} in:\n{said}");
    }
}

/// Whether Python `minor` ("3.11") is older than 3.12, whose venvs no longer seed setuptools.
fn before_3_12(minor: &str) -> bool {
    let mut parts = minor.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap()) < (3, 12)
}

/// The same pushes with the site on an SMB-like share (App Service Linux's `/home`): no
/// symlinks, no atomic exchange, case-insensitive names, a round trip per metadata call.
#[test]
fn the_flask_example_on_the_share_starts_as_app_service_starts_it_after_every_kind_of_push() {
    let r = Rehearsal::on_share(&flask_example(), 0.5);
    let first = every_kind_of_push(&r, |minor, body| {
        assert!(
            body.starts_with(&format!("Hello from kuduhook! Python {minor}.")),
            "{body}"
        );
    });
    for said in [
        "Links are refused in",
        "refuses symbolic links (an SMB share, as App Service Linux's /home is): creating the \
         env with python -m venv --copies, its lib64 made as a folder",
        "Copied the env built on local disk (",
        "Packed the new env for the platform's start while it was copied (",
        "(move switch",
        "(shipped as ../.kuduhook/wwwroot/env-archives/env-",
        ".tar.gz, extracted to /env on each start)",
    ] {
        assert!(first.contains(said), "{said:?} in:\n{first}");
    }
    // After the last push (a failed install), the previous release's archive serves.
    assert_runs_from_the_extracted_archive(&r, "3.12", "flask", "flask --version");
}

/// `KUDUHOOK_ENV_ARCHIVE` ships the env as an archive on any filesystem (on local disk here),
/// and turns it off again: the manifest and the start follow, and the archives go.
#[test]
fn the_env_archive_setting_turns_it_on_and_off() {
    let r = Rehearsal::new(&flask_example());
    apply(&r, &settings("3.11", &[("KUDUHOOK_ENV_ARCHIVE", "true")]));
    r.push()
        .assert_contains("Packed the env into ../.kuduhook/wwwroot/env-archives/env-")
        .assert_contains("the env had no archive (it is shipped as an archive because KUDUHOOK_ENV_ARCHIVE is on)")
        .assert_contains("Left out setuptools' bytecode and Windows launchers from the archive (")
        .assert_contains("(shipped as ../.kuduhook/wwwroot/env-archives/env-")
        .assert_contains(SUCCEEDED);
    assert_runs_from_the_extracted_archive(&r, "3.11", "flask", "flask --version");
    assert!(page(&r, "3.11").starts_with("Hello from kuduhook!"));

    apply(&r, &settings("3.11", &[("KUDUHOOK_ENV_ARCHIVE", "false")]));
    r.commit("no archive");
    r.push()
        .assert_contains("Updated oryx-manifest.toml: the site now starts with the env in env/")
        .assert_lacks("(shipped as")
        .assert_contains("Removed the env's archives: the env is no longer shipped as one")
        .assert_contains(SUCCEEDED);
    assert_eq!(
        manifest_value(&r.wwwroot(), "compressedVirtualEnvFile"),
        None
    );
    assert!(
        !r.service
            .join("site/.kuduhook/wwwroot/env-archives")
            .exists()
    );
    assert!(page(&r, "3.11").starts_with("Hello from kuduhook!"));

    apply(
        &r,
        &settings("3.11", &[("KUDUHOOK_ENV_ARCHIVE", "sometimes")]),
    );
    r.commit("a bad value");
    r.push()
        .assert_contains("KUDUHOOK_ENV_ARCHIVE")
        .assert_contains(
            "auto (the default: where the site is on a network filesystem), true, or false",
        )
        .assert_contains(FAILED);
}

/// A step after the env went live (here a user's `pip install` in deploy/steps.json) changes
/// the env folder: the archive packed before it would start the site without that package, so
/// it is packed again, and the platform's start imports it.
#[test]
fn a_step_that_changes_the_env_on_the_share_gets_it_packed_again() {
    let r = Rehearsal::on_share(&flask_example(), 0.5);
    r.write(
        "deploy/steps.json",
        &support::core_steps_then(
            r#"{"run": "env/bin/pip install --quiet kudupkg==1.0", "name": "extra package"}"#,
        ),
    );
    r.commit("a step that installs into the env");
    apply(&r, &settings("3.11", &[]));
    r.push()
        .assert_contains("Packed the new env for the platform's start while it was copied")
        .assert_contains("for the platform's start (")
        .assert_contains("a step changed the env after it was packed")
        .assert_contains(SUCCEEDED);
    let out = in_container(
        &r.wwwroot(),
        "3.11",
        "python3.11 -c 'import kudupkg; print(kudupkg.__file__)'",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("\n/env/lib/python3.11/site-packages/kudupkg/"),
        "{out:?}"
    );
    assert!(page(&r, "3.11").starts_with("Hello from kuduhook!"));
}

const DJANGO_SETTINGS: &str = r#"from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.staticfiles"]
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "assets"]
"#;

const DJANGO_URLS: &str = r#"import sys

import django
from django.http import HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse(
        "Django %s on Python %d.%d\n" % (django.get_version(), *sys.version_info[:2]),
        content_type="text/plain",
    )


urlpatterns = [path("", hello)]
"#;

const DJANGO_WSGI: &str = r#"import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
"#;

const MANAGE_PY: &str = r#"import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"#;

const DJANGO_APP: [(&str, &str); 7] = [
    ("manage.py", MANAGE_PY),
    ("mysite/__init__.py", ""),
    ("mysite/settings.py", DJANGO_SETTINGS),
    ("mysite/urls.py", DJANGO_URLS),
    ("mysite/wsgi.py", DJANGO_WSGI),
    ("assets/site.css", "body { color: teal }\n"),
    ("requirements.txt", "Django==4.2.*\n"),
];

fn django_pushes(r: &Rehearsal) {
    let _ = every_kind_of_push(r, |minor, body| {
        assert!(body.starts_with("Django 4.2."), "{body}");
        assert!(body.ends_with(&format!("on Python {minor}\n")), "{body}");
    });
    assert!(
        r.wwwroot().join("staticfiles/site.css").is_file(),
        "collectstatic ran in the deployed site"
    );
}

#[test]
fn a_django_app_starts_as_app_service_starts_it_after_every_kind_of_push() {
    django_pushes(&Rehearsal::new(&DJANGO_APP));
}

#[test]
fn a_django_app_on_the_share_starts_as_app_service_starts_it_after_every_kind_of_push() {
    let r = Rehearsal::on_share(&DJANGO_APP, 0.5);
    django_pushes(&r);
    assert_runs_from_the_extracted_archive(&r, "3.12", "django", "django-admin --version");
}

/// `kuduhook status` says how the platform will start the site, and `kuduhook rehearse
/// --serve` starts it that way and prints where it serves.
#[test]
fn status_and_rehearse_serve_show_the_platforms_start() {
    let r = Rehearsal::new(&flask_example());
    r.kuduhook(&["rehearse", "--serve", "--site", r.service.to_str().unwrap()])
        .assert_failed()
        .assert_contains("cannot be started as App Service Linux starts it")
        .assert_contains("why: nothing has been deployed to it yet")
        .assert_contains("git push rehearsal HEAD:master");
    apply(&r, &settings("3.11", &[]));
    r.push().assert_contains(SUCCEEDED);
    r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_ok()
        .assert_contains("Platform start (App Service Linux, no startup command): gunicorn app:app")
        .assert_contains("env env/ (named by oryx-manifest.toml, written by kuduhook)")
        .assert_lacks("warning:");

    let port = free_port();
    let mut serve = Command::new(kuduhook());
    serve
        .args(["rehearse", "--serve", "--site"])
        .arg(&r.service)
        .args(["--port", &port.to_string(), "--python"])
        .arg(image_python("3.11"))
        .current_dir(&r.app);
    let server = Server::spawn(serve, port);
    let (status, body) = server.get("/");
    assert!(status.contains(" 200 "), "{status}\n{}", server.output());
    assert!(
        body.starts_with("Hello from kuduhook! Python 3.11."),
        "{body}"
    );
    assert!(
        server
            .output()
            .contains(&format!("Serving on http://127.0.0.1:{port}/")),
        "{}",
        server.output()
    );

    // Without the manifest, the platform looks for antenv and finds none: status warns.
    std::fs::remove_file(r.wwwroot().join("oryx-manifest.toml")).unwrap();
    r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_contains("env antenv/ (named by the platform's default")
        .assert_contains("warning: there is no env at")
        .assert_contains("ModuleNotFoundError");
}

const WSGI_APP: &str = r#"import kudupkg


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("kudupkg " + kudupkg.__version__).encode()]
"#;

/// A manifest kuduhook did not write (Oryx's, from builds before kuduhook) is replaced with a
/// warning and kept; a deployment that fails after the switch puts it back; the repository's
/// own manifest is not synced.
#[test]
fn a_manifest_kuduhook_did_not_write_is_replaced_loudly_and_restored_on_failure() {
    let site = Site::app("3.11");
    site.write("app.py", WSGI_APP);
    let oryx = "PythonVersion=\"3.11.4\"\nvirtualEnvName=\"antenv\"\ncompressedVirtualEnvFile=\"antenv.tar.gz\"\n";
    std::fs::create_dir_all(&site.target).unwrap();
    std::fs::write(site.target.join("oryx-manifest.toml"), oryx).unwrap();
    site.write("oryx-manifest.toml", "virtualEnvName=\"mine\"\n");
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(r#"{"run": "exit 3", "name": "after the sync"}"#),
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("the repository has its own oryx-manifest.toml: it is not synced")
        .assert_contains(
            "Replaced oryx-manifest.toml, which kuduhook did not write (it named virtualEnvName \
             antenv, compressedVirtualEnvFile antenv.tar.gz)",
        )
        .assert_contains("Put back the previous oryx-manifest.toml");
    assert_eq!(
        std::fs::read_to_string(site.target.join("oryx-manifest.toml")).unwrap(),
        oryx,
        "a failed deployment leaves the platform's start as it was"
    );

    site.remove("deploy/steps.json");
    site.deploy(&[]).assert_ok();
    assert_eq!(platform_env(&site.target), site.target.join("env"));
    let kept = site
        .target
        .parent()
        .unwrap()
        .join(".kuduhook/wwwroot/oryx-manifest.toml.replaced");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), oryx);
    let (_, body) = first_page(&site.target, "3.11", &[]);
    assert_eq!(body, "kudupkg 1.0");
}

/// Kudu's Linux container ships some Python versions; Oryx installs the others on demand. A
/// stack version found nowhere is installed with `oryx prep` (a stand-in here, which plays the
/// platform's installer by linking the machine's real interpreter into Oryx's install root).
#[test]
fn oryx_installs_the_stacks_python_when_the_container_lacks_it() {
    let site = Site::app("3.12");
    let root = site.target.parent().unwrap().to_path_buf();
    let (bin, home, platforms) = (root.join("bin"), root.join("home"), root.join("platforms"));
    for dir in [&bin, &home] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let real = python("3.12");
    let version = version_of(&real);
    let stand_in = format!(
        "#!/bin/bash\n# A stand-in for Oryx's installer (oryx prep), playing the platform.\n\
         [ \"$1 $2 $3\" = \"prep --skip-detection --platforms-and-versions\" ] || exit 2\n\
         [ \"$4\" = \"python=3.12\" ] || exit 3\n\
         mkdir -p \"$DYNAMIC_INSTALL_ROOT_DIR/python/{version}/bin\"\n\
         ln -s {} \"$DYNAMIC_INSTALL_ROOT_DIR/python/{version}/bin/python3.12\"\n\
         echo \"Oryx stand-in: installed python {version}\"\n",
        real.display()
    );
    std::fs::write(bin.join("oryx"), stand_in).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("oryx"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let container = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", home.to_str().unwrap()),
        ("DYNAMIC_INSTALL_ROOT_DIR", platforms.to_str().unwrap()),
        ("FRAMEWORK", "PYTHON"),
        ("FRAMEWORK_VERSION", "3.12"),
    ];
    site.deploy_with(&[], &container)
        .assert_failed()
        .assert_contains("no interpreter for Python 3.12")
        .assert_contains(&format!(
            "{}/python/3.12*/bin/python3.12",
            platforms.display()
        ));

    let mut with_oryx = container.to_vec();
    with_oryx[0] = ("PATH", &path);
    site.deploy_with(&[], &with_oryx)
        .assert_ok()
        .assert_contains("asking Oryx to install it (oryx prep --skip-detection --platforms-and-versions python=3.12)")
        .assert_contains(&format!("Oryx stand-in: installed python {version}"))
        .assert_contains("found via Oryx's on-demand installs, installed now by oryx prep");
    assert_eq!(site.env_version(), version);

    // The next deployment finds it installed.
    site.deploy_with(&[], &with_oryx)
        .assert_ok()
        .assert_lacks("oryx prep")
        .assert_contains("Reusing env");
}

/// The Flask example's code in `file`, with its requirements and runtime.txt.
fn flask_in(file: &'static str) -> Vec<(&'static str, String)> {
    vec![
        (file, example("app.py")),
        ("requirements.txt", example("requirements.txt")),
        ("runtime.txt", example("runtime.txt")),
    ]
}

/// Oryx's current startup script takes a Flask-style app from application.py, app.py, run.py,
/// index.py, server.py or wsgi.py, in that order: kuduhook checks the app on the entry the
/// platform will start, and the platform's start serves it. (app.py: the Flask example's tests.)
#[test]
fn flask_apps_in_run_py_and_wsgi_py_are_checked_and_served_as_the_platform_starts_them() {
    for file in [
        "application.py",
        "run.py",
        "index.py",
        "server.py",
        "wsgi.py",
    ] {
        let module = file.trim_end_matches(".py");
        let r = Rehearsal::new(&flask_in(file));
        apply(&r, &settings("3.11", &[]));
        r.push()
            .assert_contains(&format!(
                "The app imports {module}:app ({file}, exposing app) with the new env and code"
            ))
            .assert_contains(SUCCEEDED);
        let body = page(&r, "3.11");
        assert!(
            body.starts_with("Hello from kuduhook! Python 3.11."),
            "{file}: {body}"
        );
        r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
            .assert_contains(&format!(
                "Platform start (App Service Linux, no startup command): gunicorn {module}:app"
            ))
            .assert_lacks("warning:");
    }
}

/// A run.py that cannot import is refused with the import error, as app.py always was; the
/// site keeps serving the previous release.
#[test]
fn a_run_py_that_cannot_import_is_refused_naming_the_error() {
    let r = Rehearsal::new(&flask_in("run.py"));
    apply(&r, &settings("3.11", &[]));
    r.push().assert_contains(SUCCEEDED);
    let good = page(&r, "3.11");
    r.write(
        "run.py",
        &format!("import missing_module_xyz\n{}", example("app.py")),
    );
    r.commit("a run.py that cannot import");
    r.push()
        .assert_contains(
            "the check that it imports run:app (run.py, exposing app) failed: \
             ModuleNotFoundError: No module named 'missing_module_xyz'",
        )
        .assert_contains("Nothing in the target was changed")
        .assert_contains(FAILED);
    assert_eq!(page(&r, "3.11"), good, "the previous release still answers");
}

/// An ASGI app below Python 3.14: App Service starts it only with a startup command. A FastAPI
/// main.py is not detected (the platform would serve its default page); an ASGI callable in
/// app.py would be served by gunicorn's synchronous worker. Both deploy (the portal may have the
/// startup command), and the log and `kuduhook status` give the command it needs.
#[test]
fn an_asgi_app_below_3_14_is_told_the_startup_command_it_needs() {
    let mut files = flask_in("app.py");
    files[0] = (
        "main.py",
        "from fastapi import FastAPI\n\napp = FastAPI()\n".to_string(),
    );
    let r = Rehearsal::new(&files);
    apply(&r, &settings("3.11", &[]));
    r.push()
        .assert_contains(
            "main:app is an ASGI app (FastAPI): the platform would serve its default page \
             (App Service detects FastAPI apps from Python 3.14, and this site runs 3.11)",
        )
        .assert_contains("`gunicorn -k uvicorn.workers.UvicornWorker main:app`")
        .assert_contains("skipped: no entry the platform would start")
        .assert_contains(SUCCEEDED);
    r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_contains("warning: main:app is an ASGI app (FastAPI)")
        .assert_contains("gunicorn -k uvicorn.workers.UvicornWorker main:app");

    // A hand-written ASGI callable in app.py: the start check accepts it, and says how to
    // start it.
    std::fs::remove_file(r.app.join("main.py")).unwrap();
    r.write(
        "app.py",
        "async def app(scope, receive, send):\n    await send({'type': 'http.response.start', 'status': 200})\n",
    );
    r.commit("an ASGI callable in app.py");
    r.push()
        .assert_contains("The app imports app:app (app.py, exposing app)")
        .assert_contains(
            "app:app is an ASGI app (its app is a coroutine): the platform would serve it with \
             gunicorn's synchronous worker, which fails at the first request",
        )
        .assert_contains("`gunicorn -k uvicorn.workers.UvicornWorker app:app`")
        .assert_contains(SUCCEEDED);
}

const SETUP_PY: &str = r##"from setuptools import setup

with open("deps.txt") as f:
    requires = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(name="hello-app", version="1.0", py_modules=["app"], install_requires=requires)
"##;

/// A setuptools app with nothing else naming its dependencies (Oryx's `flask-setup-py-app`
/// layout): the project is installed as Oryx installs it, install_requires read from a file by
/// setup.py, exact like any env: a requirement dropped from the file is gone from the env.
#[test]
fn a_setup_py_app_gets_its_install_requires_installed_and_served() {
    let r = Rehearsal::new(&[
        ("setup.py", SETUP_PY.to_string()),
        (
            "deps.txt",
            "Flask==3.1.*\ngunicorn==23.0.0\nkudupkg==1.0\n".to_string(),
        ),
        ("app.py", example("app.py")),
        ("runtime.txt", example("runtime.txt")),
    ]);
    apply(&r, &settings("3.11", &[]));
    r.push()
        .assert_contains("Dependencies: setup.py (the project itself and its install_requires (pip install ., as Oryx installs it)")
        .assert_contains("The app imports app:app (app.py, exposing app) with the new env and code")
        .assert_contains(SUCCEEDED);
    let body = page(&r, "3.11");
    assert!(
        body.starts_with("Hello from kuduhook! Python 3.11."),
        "{body}"
    );
    let site_packages = r.wwwroot().join("env/lib/python3.11/site-packages");
    assert!(
        site_packages.join("kudupkg").is_dir(),
        "kudupkg is installed"
    );
    assert!(
        !r.app.join("build").exists(),
        "the build wrote nothing into the repository"
    );
    assert!(
        !r.wwwroot().join("build").exists() && !r.wwwroot().join("hello_app.egg-info").exists()
    );

    r.commit("redeploy, nothing changed");
    r.push()
        .assert_contains("skipped: ")
        .assert_contains(SUCCEEDED);

    r.write("deps.txt", "Flask==3.1.*\ngunicorn==23.0.0\n");
    r.commit("kudupkg no longer required");
    r.push().assert_contains(SUCCEEDED);
    let site_packages = r.wwwroot().join("env/lib/python3.11/site-packages");
    assert!(
        !site_packages.join("kudupkg").exists(),
        "a dropped requirement is gone"
    );
    let body = page(&r, "3.11");
    assert!(body.starts_with("Hello from kuduhook!"), "{body}");
}

/// An app that declares no dependencies starts on the platform with the stack's Python alone:
/// the start check runs it that way, and one that imports a package it does not declare is
/// refused, naming the module and the ways to declare it. One that needs nothing deploys.
#[test]
fn an_app_that_declares_nothing_is_checked_with_the_stacks_python_alone() {
    let r = Rehearsal::new(&[("app.py", example("app.py"))]);
    apply(&r, &settings("3.11", &[]));
    r.push()
        .assert_contains("skipped: no requirements.txt, pyproject.toml, uv.lock, poetry.lock or Pipfile.lock in the app")
        .assert_contains(
            "error: the app does not start: it imports flask, which it does not declare",
        )
        .assert_contains("No module named 'flask'")
        .assert_contains("fix: declare flask: add it to requirements.txt")
        .assert_contains("setup.py's install_requires")
        .assert_contains("Nothing in the target was changed")
        .assert_contains(FAILED);
    assert!(!r.wwwroot().join("app.py").exists(), "nothing was deployed");

    r.write(
        "app.py",
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'stdlib only']\n",
    );
    r.commit("an app that needs nothing");
    r.push()
        .assert_contains("The app imports app:app (app.py, exposing app)")
        .assert_contains(SUCCEEDED);
    assert_eq!(page(&r, "3.11"), "stdlib only");
}

/// A FastAPI app below Python 3.14 is served once the site has the startup command kuduhook
/// gives; an app with its own startup script and no requirements is served by that script.
#[test]
fn apps_with_a_startup_command_are_served_by_it() {
    let main = "from fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/')\ndef index():\n    return {'hello': 'fastapi'}\n";
    let r = Rehearsal::new(&[
        ("main.py", main.to_string()),
        (
            "requirements.txt",
            "fastapi==0.115.*\nuvicorn==0.32.*\ngunicorn==23.0.0\n".to_string(),
        ),
    ]);
    apply(&r, &settings("3.11", &[]));
    let log = r.push().assert_contains(SUCCEEDED).log.clone();
    let command = log
        .split('`')
        .find(|part| part.starts_with("gunicorn -k uvicorn.workers.UvicornWorker"))
        .expect("the log gives the startup command")
        .to_string();
    assert_eq!(
        command,
        "gunicorn -k uvicorn.workers.UvicornWorker main:app"
    );
    let startup = format!("python3.11 -m {command} --bind 127.0.0.1:$PORT --timeout 600");
    let server = start_with_command(&r.wwwroot(), "3.11", &[], &startup);
    let (status, body) = server.get("/");
    assert!(status.contains(" 200 "), "{status}\n{}", server.output());
    assert_eq!(body, r#"{"hello":"fastapi"}"#);

    let r = Rehearsal::new(&[
        (
            "serve.py",
            "import http.server, os\n\n\nclass Hello(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.end_headers()\n        self.wfile.write(b'custom startup script')\n\n\nhttp.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), Hello).serve_forever()\n".to_string(),
        ),
        ("startup.sh", "#!/bin/sh\nexec python3.11 serve.py\n".to_string()),
    ]);
    apply(&r, &settings("3.11", &[]));
    r.push()
        .assert_contains("skipped: no requirements.txt")
        .assert_contains(SUCCEEDED);
    let server = start_with_command(&r.wwwroot(), "3.11", &[], "sh startup.sh");
    let (status, body) = server.get("/");
    assert!(status.contains(" 200 "), "{status}\n{}", server.output());
    assert_eq!(body, "custom startup script");
}
