//! The app App Service Linux starts when no startup command is set, found as Oryx's startup
//! script generator finds it (docs/platform.md §8), in its order:
//!
//! 1. Django: a top-level folder other than the env's holding `wsgi.py`: `<folder>.wsgi`.
//! 2. FastAPI, on Python 3.14 and later unless `PYTHON_DISABLE_FASTAPI_DETECTION` is set: the
//!    first of [`FASTAPI_FILES`] that imports fastapi and not flask, served as `<name>:app` by
//!    gunicorn with the worker [`UVICORN_WORKER`].
//! 3. Flask-style: the first of [`FLASK_FILES`], served as `<name>:app`.
//!
//! Nothing found: the platform serves its default page. Below 3.14 an ASGI app (FastAPI,
//! Starlette) starts only with a startup command: [`asgi_advice`] says which.
//!
//! One function decides, for the start check, `kuduhook status` and `rehearse --serve` alike.

use std::path::Path;

use serde::Serialize;

use crate::python::PythonVersion;

/// The files a Flask-style app is detected by, in the platform's order.
pub const FLASK_FILES: [&str; 6] = [
    "application.py",
    "app.py",
    "run.py",
    "index.py",
    "server.py",
    "wsgi.py",
];

/// The files a FastAPI app is detected by (Python 3.14 and later), in the platform's order.
pub const FASTAPI_FILES: [&str; 8] = [
    "main.py",
    "app.py",
    "application.py",
    "server.py",
    "asgi.py",
    "api.py",
    "index.py",
    "run.py",
];

/// The first Python whose platform image detects FastAPI apps.
pub const FASTAPI_DETECTED_FROM: (u32, u32) = (3, 14);

/// The app setting that turns FastAPI detection off.
pub const DISABLE_FASTAPI: &str = "PYTHON_DISABLE_FASTAPI_DETECTION";

/// The gunicorn worker the platform runs a detected FastAPI app with.
pub const UVICORN_WORKER: &str = "uvicorn_worker.UvicornWorker";

/// The app module gunicorn serves, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// `module:callable` or `package.wsgi`, as gunicorn takes it.
    pub module: String,
    /// Why this one, for people: "Django project mysite (mysite/wsgi.py)".
    pub found: String,
    /// gunicorn's worker class (`-k`) when it is not the default (synchronous, WSGI) one.
    pub worker: Option<String>,
}

/// What the detection depends on besides the files.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The env's folder name, never taken for a Django project.
    pub env_name: String,
    /// The site's Python; `None` when unknown (the FastAPI rule is then not applied).
    pub python: Option<PythonVersion>,
    /// `PYTHON_DISABLE_FASTAPI_DETECTION` is set.
    pub fastapi_disabled: bool,
}

impl Rules {
    /// Whether the platform image looks for FastAPI apps.
    pub fn detects_fastapi(&self) -> bool {
        !self.fastapi_disabled
            && self
                .python
                .is_some_and(|v| (v.major, v.minor) >= FASTAPI_DETECTED_FROM)
    }
}

/// Whether `value` of `PYTHON_DISABLE_FASTAPI_DETECTION` turns detection off: any value but an
/// empty one or a word for false.
pub fn disables_fastapi(value: Option<&str>) -> bool {
    value.is_some_and(|v| crate::settings::truthy(v) != Some(false))
}

/// The entry the platform detects in wwwroot when no startup command is set.
pub fn detect(wwwroot: &Path, rules: &Rules) -> Option<Entry> {
    let mut folders: Vec<String> = std::fs::read_dir(wwwroot)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("wsgi.py").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && *name != rules.env_name)
        .collect();
    folders.sort();
    if let Some(project) = folders.first() {
        return Some(Entry {
            module: format!("{project}.wsgi"),
            found: format!("Django project {project} ({project}/wsgi.py)"),
            worker: None,
        });
    }
    if rules.detects_fastapi()
        && let Some(file) = first_fastapi_file(wwwroot)
    {
        return Some(Entry {
            module: format!("{}:app", file.trim_end_matches(".py")),
            found: format!("{file}, a FastAPI app exposing app"),
            worker: Some(UVICORN_WORKER.to_string()),
        });
    }
    FLASK_FILES
        .iter()
        .find(|file| wwwroot.join(file).is_file())
        .map(|file| Entry {
            module: format!("{}:app", file.trim_end_matches(".py")),
            found: format!("{file}, exposing app"),
            worker: None,
        })
}

/// The first of [`FASTAPI_FILES`] that imports fastapi and not flask.
fn first_fastapi_file(wwwroot: &Path) -> Option<&'static str> {
    FASTAPI_FILES.into_iter().find(|file| {
        let text = std::fs::read_to_string(wwwroot.join(file)).unwrap_or_default();
        imports(&text, "fastapi") && !imports(&text, "flask")
    })
}

/// Whether Python source `text` has an import statement of the top-level package `package`.
fn imports(text: &str, package: &str) -> bool {
    text.lines().map(str::trim_start).any(|line| {
        let rest = line
            .strip_prefix("import ")
            .or_else(|| line.strip_prefix("from "));
        rest.is_some_and(|rest| {
            rest.split([',', ' '])
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .take(if line.starts_with("from ") {
                    1
                } else {
                    usize::MAX
                })
                .any(|name| name == package || name.starts_with(&format!("{package}.")))
        })
    })
}

/// What to tell the user when the app is an ASGI app the platform will not start as one: a
/// FastAPI file below Python 3.14 (or with detection off) is either not detected at all (the
/// default page) or detected as a Flask-style `app` and run by a synchronous worker, which fails
/// at the first request. `None` when the platform starts it right, or there is none.
pub fn asgi_advice(wwwroot: &Path, rules: &Rules, entry: Option<&Entry>) -> Option<String> {
    if entry.is_some_and(|e| e.worker.is_some() || !e.module.ends_with(":app")) {
        return None;
    }
    let file = first_fastapi_file(wwwroot)?;
    let module = file.trim_end_matches(".py");
    if entry.is_some_and(|e| e.module != format!("{module}:app")) {
        return None;
    }
    Some(advice_for(
        module,
        "an ASGI app (FastAPI)",
        rules,
        entry.is_some(),
    ))
}

/// The startup command an ASGI `module:app` (`what`: "an ASGI app (FastAPI)") needs, and why;
/// `detected`: the platform would take it for a Flask-style app.
pub fn advice_for(module: &str, what: &str, rules: &Rules, detected: bool) -> String {
    let why = match (rules.python, rules.fastapi_disabled) {
        (_, true) => format!("{DISABLE_FASTAPI} is set"),
        (Some(v), false) => format!(
            "App Service detects FastAPI apps from Python 3.14, and this site runs {}",
            v.minor_version()
        ),
        (None, false) => "App Service detects FastAPI apps only from Python 3.14".to_string(),
    };
    let fate = match detected {
        true => {
            "the platform would serve it with gunicorn's synchronous worker, which fails at the first request"
        }
        false => "the platform would serve its default page",
    };
    format!(
        "{module}:app is {what}: {fate} ({why}). Set the site's startup command \
         to `gunicorn -k uvicorn.workers.UvicornWorker {module}:app` (portal: Configuration > \
         General settings; or az webapp config set --startup-file), with uvicorn in your \
         requirements"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(python: Option<(u32, u32)>) -> Rules {
        Rules {
            env_name: "antenv".into(),
            python: python.map(|(major, minor)| PythonVersion {
                major,
                minor,
                patch: None,
            }),
            fastapi_disabled: false,
        }
    }

    fn site(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn module(files: &[(&str, &str)], rules: &Rules) -> Option<String> {
        detect(site(files).path(), rules).map(|e| e.module)
    }

    #[test]
    fn flask_style_files_are_taken_in_the_platforms_order() {
        let r = rules(Some((3, 11)));
        assert_eq!(module(&[], &r), None);
        for (i, file) in FLASK_FILES.iter().enumerate() {
            // Each file wins over every file after it in the list.
            let files: Vec<(&str, &str)> = FLASK_FILES[i..].iter().map(|f| (*f, "")).collect();
            let expected = format!("{}:app", file.trim_end_matches(".py"));
            assert_eq!(module(&files, &r), Some(expected), "{file}");
        }
        assert_eq!(module(&[("main.py", "")], &r), None);
    }

    #[test]
    fn a_django_project_wins_and_the_env_folder_is_never_one() {
        let r = rules(Some((3, 11)));
        let files = [
            ("app.py", ""),
            ("mysite/wsgi.py", ""),
            ("antenv/wsgi.py", ""),
        ];
        assert_eq!(module(&files, &r).as_deref(), Some("mysite.wsgi"));
        assert_eq!(
            module(&[("antenv/wsgi.py", ""), ("run.py", "")], &r).as_deref(),
            Some("run:app")
        );
        assert_eq!(module(&[(".hidden/wsgi.py", "")], &r), None);
    }

    #[test]
    fn fastapi_apps_are_detected_from_python_3_14_unless_disabled() {
        let fastapi = "from fastapi import FastAPI\napp = FastAPI()\n";
        let files = [("main.py", fastapi), ("app.py", "")];
        // Below 3.14: the Flask-style rule only.
        assert_eq!(
            module(&files, &rules(Some((3, 13)))).as_deref(),
            Some("app:app")
        );
        assert_eq!(module(&files, &rules(None)).as_deref(), Some("app:app"));
        let entry = detect(site(&files).path(), &rules(Some((3, 14)))).unwrap();
        assert_eq!(entry.module, "main:app");
        assert_eq!(entry.worker.as_deref(), Some(UVICORN_WORKER));
        let mut off = rules(Some((3, 14)));
        off.fastapi_disabled = true;
        assert_eq!(module(&files, &off).as_deref(), Some("app:app"));
        // A file that imports flask too is not a FastAPI app; the next candidate is taken.
        let both = "import flask\nimport fastapi\n";
        let files = [
            ("main.py", both),
            ("server.py", "import fastapi.responses\n"),
        ];
        assert_eq!(
            module(&files, &rules(Some((3, 14)))).as_deref(),
            Some("server:app")
        );
        // Django still wins.
        let files = [("main.py", fastapi), ("proj/wsgi.py", "")];
        assert_eq!(
            module(&files, &rules(Some((3, 15)))).as_deref(),
            Some("proj.wsgi")
        );
    }

    #[test]
    fn imports_are_import_statements_of_the_package() {
        assert!(imports("import fastapi", "fastapi"));
        assert!(imports(
            "  from fastapi.responses import JSONResponse",
            "fastapi"
        ));
        assert!(imports("import os, fastapi as f", "fastapi"));
        assert!(!imports("import fastapi_utils", "fastapi"));
        assert!(!imports("# uses fastapi\nx = 'fastapi'", "fastapi"));
        assert!(!imports("from app import fastapi", "fastapi"));
    }

    #[test]
    fn disabling_takes_any_value_but_false() {
        assert!(!disables_fastapi(None));
        assert!(!disables_fastapi(Some("")));
        assert!(!disables_fastapi(Some("false")));
        assert!(disables_fastapi(Some("true")));
        assert!(disables_fastapi(Some("1")));
    }

    #[test]
    fn an_asgi_app_below_3_14_gets_the_startup_command_it_needs() {
        let fastapi = "from fastapi import FastAPI\napp = FastAPI()\n";
        let r = rules(Some((3, 12)));
        // Not detected at all: the default page.
        let dir = site(&[("main.py", fastapi)]);
        let advice = asgi_advice(dir.path(), &r, detect(dir.path(), &r).as_ref()).unwrap();
        assert!(
            advice.contains("gunicorn -k uvicorn.workers.UvicornWorker main:app"),
            "{advice}"
        );
        assert!(
            advice.contains("default page") && advice.contains("3.12"),
            "{advice}"
        );
        // Detected as a Flask-style app: a synchronous worker.
        let dir = site(&[("app.py", fastapi)]);
        let advice = asgi_advice(dir.path(), &r, detect(dir.path(), &r).as_ref()).unwrap();
        assert!(
            advice.contains("synchronous worker") && advice.contains(" app:app"),
            "{advice}"
        );
        // Started right, or another app: nothing to say.
        let r14 = rules(Some((3, 14)));
        assert_eq!(
            asgi_advice(dir.path(), &r14, detect(dir.path(), &r14).as_ref()),
            None
        );
        let dir = site(&[
            ("main.py", fastapi),
            ("app.py", "from flask import Flask\n"),
        ]);
        assert_eq!(
            asgi_advice(dir.path(), &r, detect(dir.path(), &r).as_ref()),
            None
        );
    }
}
