//! Today's Python projects: the dependency source is chosen by documented rules
//! (requirements.txt, uv.lock, poetry.lock, Pipfile.lock, pyproject.toml alone), a lock is
//! installed exactly as it pins for this interpreter, and an app whose dependencies cannot be
//! determined is refused before anything changes. Locks are made in the tests by real uv
//! (`uv lock --no-index --find-links` over wheels built here) or written in the tool's
//! documented format; installed by real pip and uv.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Run, Site, build_wheel_with, python, uv};

/// A site with the wheels these tests lock: alpha 1.0 and 2.0 (2.0 needs beta), beta, gamma
/// (its extra `fast` needs delta; epsilon only on Python 2), delta, epsilon, pytest.
fn a_site() -> Site {
    let site = Site::empty();
    let wheels = site.wheels_dir_of_its_own();
    for args in [
        &["alpha", "1.0"][..],
        &["alpha", "2.0", "--requires", "beta>=1"],
        &["beta", "1.0"],
        &[
            "gamma",
            "1.0",
            "--extra",
            "fast",
            "--requires",
            "delta; extra == 'fast'",
            "--requires",
            "epsilon; python_version < '3'",
        ],
        &["delta", "1.0"],
        &["epsilon", "1.0"],
        &["pytest", "1.0"],
    ] {
        build_wheel_with(&wheels, args);
    }
    site.write(
        "app.py",
        "import alpha\n\ndef app():\n    return alpha.__version__\n",
    );
    site.write("runtime.txt", "python-3.11\n");
    site
}

const PYPROJECT: &str = r#"[project]
name = "app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["alpha>=2", "gamma[fast]"]

[project.optional-dependencies]
web = ["epsilon"]

[dependency-groups]
dev = ["pytest"]
"#;

/// `uv lock` of the site's pyproject.toml, over its wheels only.
fn uv_lock(site: &Site) {
    let out = Command::new(uv())
        .args(["lock", "--no-index", "--find-links"])
        .arg(site.wheels_dir_of_its_own())
        .arg("--python")
        .arg(python("3.11"))
        .current_dir(&site.repo)
        .env(
            "UV_CACHE_DIR",
            site.target.parent().unwrap().join("uv-cache"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "uv lock: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The distributions in the site's env, `name==version`, sorted.
fn installed(site: &Site) -> Vec<String> {
    let out = Command::new(site.env_python())
        .args([
            "-c",
            "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() + '==' + d.version for d in m.distributions() if d.metadata['Name'].lower() not in ('pip', 'setuptools'))))",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn uv_settings() -> Vec<(&'static str, String)> {
    vec![
        ("APPSETTING_KUDUHOOK_INSTALLER", "uv".to_string()),
        ("KUDUHOOK_UV", uv().display().to_string()),
    ]
}

fn deploy(site: &Site, settings: &[(&str, String)]) -> Run {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    site.deploy_with(&[], &pairs)
}

fn uv_lock_is_installed_exactly(settings: &[(&str, String)]) {
    let site = a_site();
    site.write("pyproject.toml", PYPROJECT);
    uv_lock(&site);
    deploy(&site, settings)
        .assert_ok()
        .assert_contains("Dependencies: uv.lock (the only dependency source in the app)")
        .assert_contains("Installing 4 packages pinned by uv.lock for this interpreter")
        .assert_contains("installed without resolving dependencies");
    // The main dependencies as locked, the extra gamma[fast] asked for; not the project itself,
    // not epsilon (a marker for Python 2, an extra not selected), not the dev group.
    assert_eq!(
        installed(&site),
        ["alpha==2.0", "beta==1.0", "delta==1.0", "gamma==1.0"]
    );
    // `kuduhook status` names the source the env was installed from.
    let status = Command::new(support::kuduhook())
        .args(["status", "--target"])
        .arg(&site.target)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("  uv.lock installed "), "{status}");
    // Unchanged: the install is skipped.
    deploy(&site, settings)
        .assert_ok()
        .assert_contains("skipped: uv.lock unchanged since the last successful install");
    // The extra and the group, selected by a setting.
    let mut with_groups = settings.to_vec();
    with_groups.push((
        "APPSETTING_KUDUHOOK_DEPENDENCY_GROUPS",
        "web, dev".to_string(),
    ));
    deploy(&site, &with_groups).assert_ok();
    assert_eq!(
        installed(&site),
        [
            "alpha==2.0",
            "beta==1.0",
            "delta==1.0",
            "epsilon==1.0",
            "gamma==1.0",
            "pytest==1.0"
        ]
    );
    // And back: what they added goes.
    deploy(&site, settings).assert_ok();
    assert_eq!(
        installed(&site),
        ["alpha==2.0", "beta==1.0", "delta==1.0", "gamma==1.0"]
    );
}

#[test]
fn a_uv_lock_is_installed_exactly_with_pip() {
    uv_lock_is_installed_exactly(&[]);
}

#[test]
fn a_uv_lock_is_installed_exactly_with_uv() {
    uv_lock_is_installed_exactly(&uv_settings());
}

#[test]
fn a_lock_that_no_longer_matches_pyproject_fails_before_anything_changes() {
    let site = a_site();
    site.write("pyproject.toml", PYPROJECT);
    uv_lock(&site);
    site.deploy(&[]).assert_ok();
    site.write(
        "pyproject.toml",
        &PYPROJECT.replace("\"alpha>=2\"", "\"alpha>=2\", \"epsilon\""),
    );
    site.write("app.py", "changed = True\n");
    site.deploy(&[])
        .assert_failed()
        .assert_contains("uv.lock does not match")
        .assert_contains("fix: run `uv lock` and commit the updated lock")
        .assert_contains("Nothing in the target was changed");
    assert!(
        !std::fs::read_to_string(site.target_file("app.py"))
            .unwrap()
            .contains("changed")
    );
    assert_eq!(
        installed(&site),
        ["alpha==2.0", "beta==1.0", "delta==1.0", "gamma==1.0"]
    );
}

#[test]
fn pyproject_alone_installs_its_project_dependencies_and_checks_requires_python() {
    let site = a_site();
    site.write(
        "pyproject.toml",
        "[project]\nname = \"app\"\nversion = \"1\"\nrequires-python = \">=3.11\"\ndependencies = [\"alpha==1.0\"]\n",
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Dependencies: pyproject.toml (its [project] dependencies")
        .assert_contains("Installing 1 requirement from pyproject.toml's [project] dependencies");
    assert_eq!(installed(&site), ["alpha==1.0"]);
    assert_eq!(site.imported_version("alpha").as_deref(), Some("1.0"));

    let strict = a_site();
    strict.write(
        "pyproject.toml",
        "[project]\nname = \"app\"\nversion = \"1\"\nrequires-python = \">=3.12\"\ndependencies = [\"alpha\"]\n",
    );
    strict
        .deploy(&[])
        .assert_failed()
        .assert_contains("requires Python >=3.12, and the selected Python is 3.11.7")
        .assert_contains("Nothing in the target was changed");
    assert!(!strict.target.exists());
}

#[test]
fn several_sources_are_ambiguous_until_a_setting_names_one() {
    let site = a_site();
    site.write("pyproject.toml", PYPROJECT);
    uv_lock(&site);
    site.write("requirements.txt", "alpha==1.0\n");
    site.deploy(&[])
        .assert_failed()
        .assert_contains(
            "error: the app has more than one dependency source: requirements.txt, uv.lock",
        )
        .assert_contains("KUDUHOOK_DEPENDENCIES=uv.lock");
    assert!(!site.target.exists(), "nothing was deployed");
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_DEPENDENCIES", "uv.lock")])
        .assert_ok()
        .assert_contains("Dependencies: uv.lock (named by app setting KUDUHOOK_DEPENDENCIES)");
    assert_eq!(
        installed(&site),
        ["alpha==2.0", "beta==1.0", "delta==1.0", "gamma==1.0"]
    );
}

fn sha256_of(file: &Path) -> String {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_pipfile_lock_is_installed_as_pinned_and_hash_checked() {
    let site = a_site();
    let wheels = site.wheels_dir_of_its_own();
    let alpha = sha256_of(&wheels.join("alpha-2.0-py3-none-any.whl"));
    let beta = sha256_of(&wheels.join("beta-1.0-py3-none-any.whl"));
    let lock = format!(
        r#"{{"_meta": {{"hash": {{"sha256": "x"}}, "pipfile-spec": 6, "requires": {{"python_version": "3.11"}}, "sources": []}},
            "default": {{
                "alpha": {{"hashes": ["sha256:{alpha}"], "version": "==2.0"}},
                "beta": {{"hashes": ["sha256:{beta}"], "version": "==1.0"}},
                "epsilon": {{"hashes": ["sha256:00"], "markers": "python_version < '3'", "version": "==1.0"}}
            }},
            "develop": {{"pytest": {{"hashes": ["sha256:00"], "version": "==1.0"}}}}}}"#
    );
    site.write("Pipfile", "[packages]\nalpha = \"*\"\n");
    site.write("Pipfile.lock", &lock);
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Installing 2 packages pinned by Pipfile.lock for this interpreter (each checked against the lock's hashes)");
    assert_eq!(installed(&site), ["alpha==2.0", "beta==1.0"]);
    // A wheel that does not match the lock's hash is not installed: nothing is deployed.
    let tampered = a_site();
    tampered.write("Pipfile", "[packages]\nalpha = \"*\"\n");
    tampered.write("Pipfile.lock", &lock.replace(&alpha, &"0".repeat(64)));
    tampered
        .deploy(&[])
        .assert_failed()
        .assert_contains("THESE PACKAGES DO NOT MATCH THE HASHES")
        .assert_contains("Nothing in the target was changed");
    assert!(!tampered.env_dir().exists());
}

#[test]
fn a_poetry_lock_is_installed_from_the_projects_poetry_dependencies() {
    let site = a_site();
    site.write(
        "pyproject.toml",
        "[tool.poetry]\nname = \"app\"\nversion = \"1\"\n\n[tool.poetry.dependencies]\npython = \"^3.11\"\nalpha = \"^2.0\"\n\n[tool.poetry.group.dev.dependencies]\npytest = \"*\"\n",
    );
    site.write(
        "poetry.lock",
        r#"# This file is automatically @generated by Poetry 1.8.3 and should not be changed by hand.

[[package]]
name = "alpha"
version = "2.0"
description = ""
optional = false
python-versions = "*"
files = []

[package.dependencies]
beta = ">=1"
epsilon = {version = "*", markers = "python_version < \"3\""}

[[package]]
name = "beta"
version = "1.0"
description = ""
optional = false
python-versions = "*"
files = []

[[package]]
name = "epsilon"
version = "1.0"
description = ""
optional = false
python-versions = "*"
files = []

[[package]]
name = "pytest"
version = "1.0"
description = ""
optional = false
python-versions = "*"
files = []

[metadata]
lock-version = "2.0"
python-versions = "^3.11"
content-hash = "x"
"#,
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Dependencies: poetry.lock (the only dependency source in the app)")
        .assert_contains("Installing 2 packages pinned by poetry.lock");
    assert_eq!(installed(&site), ["alpha==2.0", "beta==1.0"]);
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_DEPENDENCY_GROUPS", "dev")])
        .assert_ok();
    assert_eq!(installed(&site), ["alpha==2.0", "beta==1.0", "pytest==1.0"]);
    // A dependency the lock does not pin: the lock is out of date.
    let pyproject = std::fs::read_to_string(site.repo.join("pyproject.toml")).unwrap();
    site.write(
        "pyproject.toml",
        &pyproject.replace("alpha = \"^2.0\"", "alpha = \"^2.0\"\ngamma = \"*\""),
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("poetry.lock does not match")
        .assert_contains("fix: run `poetry lock` and commit the updated lock");
    // A constraint the locked version no longer meets: out of date too.
    site.write(
        "pyproject.toml",
        &pyproject.replace("alpha = \"^2.0\"", "alpha = \"^3.0\""),
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("poetry.lock does not match");
    // A lock for another Python (Poetry's own constraint syntax).
    site.write("pyproject.toml", &pyproject);
    let lock = std::fs::read_to_string(site.repo.join("poetry.lock")).unwrap();
    site.write(
        "poetry.lock",
        &lock.replace("python-versions = \"^3.11\"", "python-versions = \"^3.12\""),
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("poetry.lock requires Python ^3.12, and the selected Python is 3.11.7");
}

#[test]
fn a_project_without_its_lock_or_any_dependencies_is_refused_not_deployed_without_them() {
    let poetry = a_site();
    poetry.write(
        "pyproject.toml",
        "[tool.poetry]\nname = \"app\"\n[tool.poetry.dependencies]\nalpha = \"*\"\n",
    );
    poetry
        .deploy(&[])
        .assert_failed()
        .assert_contains("error: the app's pyproject.toml ([tool.poetry]) has no poetry.lock")
        .assert_contains("fix: run `poetry lock` and commit poetry.lock");
    let pipenv = a_site();
    pipenv.write("Pipfile", "[packages]\nalpha = \"*\"\n");
    pipenv
        .deploy(&[])
        .assert_failed()
        .assert_contains("fix: run `pipenv lock` and commit Pipfile.lock");
    let unknown = a_site();
    unknown.write("pyproject.toml", "[tool.black]\nline-length = 100\n");
    unknown.deploy(&[]).assert_failed().assert_contains(
        "the app's dependencies cannot be read from pyproject.toml: it has no [project] table",
    );
    for site in [poetry, pipenv, unknown] {
        assert!(!site.target.exists(), "nothing was deployed");
    }
}

#[test]
fn init_says_which_source_deployments_will_use() {
    let binary = support::static_kuduhook();
    let init = |app: &Site| {
        let mut cmd = Command::new(support::kuduhook());
        cmd.args(["init", "--binary"]).arg(&binary).arg(&app.repo);
        Run::of(cmd)
    };
    let locked = a_site();
    locked.write("pyproject.toml", PYPROJECT);
    uv_lock(&locked);
    init(&locked)
        .assert_ok()
        .assert_contains("Dependencies: uv.lock (the only dependency source in the app)");
    let ambiguous = a_site();
    ambiguous.write("Pipfile.lock", "{}");
    ambiguous.write("requirements.txt", "alpha\n");
    init(&ambiguous).assert_ok().assert_contains(
        "Dependencies: deployments will fail until this is fixed: the app has more than one \
         dependency source: requirements.txt, Pipfile.lock",
    );
}
