//! The env a site can trust: exact packages with pip and uv (or deploy.cmd's incremental way),
//! uv as installer, an atomic switch by link or by move, a committed wheelhouse. Real venvs,
//! real pip and uv, wheels built in the test, no network.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Run, Site, build_wheel, python, uv};

/// App settings that make a deployment install with the uv from `tests/setup.sh`.
fn with_uv() -> Vec<(&'static str, String)> {
    vec![
        ("APPSETTING_KUDUHOOK_INSTALLER", "uv".to_string()),
        ("KUDUHOOK_UV", uv().display().to_string()),
    ]
}

fn deploy(site: &Site, settings: &[(&str, String)]) -> Run {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    site.deploy_with(&[], &pairs)
}

/// A site whose app requires `kudupkg==1.0` and `extrapkg==1.0` (a wheel of its own).
fn app_with_an_extra_package() -> Site {
    let site = Site::app("3.11");
    build_wheel(&site.wheels_dir_of_its_own(), "extrapkg", "1.0", &[]);
    site.write("requirements.txt", "kudupkg==1.0\nextrapkg==1.0\n");
    site
}

/// The console script `kudupkg-hello` of the live env, run by its path in the site.
fn hello(site: &Site) -> String {
    let out = Command::new(site.env_dir().join("bin/kudupkg-hello"))
        .output()
        .expect("run the env's console script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn removed_requirement_is_uninstalled(settings: &[(&str, String)], how: &[&str]) {
    let site = app_with_an_extra_package();
    deploy(&site, settings).assert_ok();
    assert_eq!(site.imported_version("extrapkg").as_deref(), Some("1.0"));

    site.write("requirements.txt", "kudupkg==2.0\n");
    let run = deploy(&site, settings);
    run.assert_ok()
        .assert_contains("The site now runs the new env");
    for line in how {
        run.assert_contains(line);
    }
    assert_eq!(site.imported_version("extrapkg"), None, "extrapkg is gone");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    assert_eq!(hello(&site), "hello from kudupkg 2.0\n");
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

#[test]
fn a_removed_requirement_is_uninstalled_with_pip() {
    // pip: the live env is copied, installed into, and pruned.
    removed_requirement_is_uninstalled(
        &[],
        &[
            "to install into: requirements.txt changed since the last install",
            "Reused 2 packages from the live env; changed kudupkg 1.0 -> 2.0; removed extrapkg 1.0 (",
        ],
    );
}

#[test]
fn a_removed_requirement_is_uninstalled_with_uv() {
    // uv: a fresh env, filled from uv's cache (faster than a copy).
    removed_requirement_is_uninstalled(
        &with_uv(),
        &[
            "Rebuilding env: requirements.txt changed since the last install",
            "the live env cannot be reused: uv fills a fresh env from its cache faster than the \
             env copies",
            "Packages: changed kudupkg 1.0 -> 2.0; removed extrapkg 1.0",
        ],
    );
}

#[test]
fn incremental_mode_installs_over_the_live_env_and_keeps_removed_packages() {
    let site = app_with_an_extra_package();
    let incremental = [("APPSETTING_KUDUHOOK_ENV_MODE", "incremental".to_string())];
    deploy(&site, &incremental).assert_ok();
    let mark = site.mark_env();
    site.write("requirements.txt", "kudupkg==2.0\n");
    deploy(&site, &incremental)
        .assert_ok()
        .assert_contains("Reusing env")
        .assert_contains("Installing over the live env (app setting KUDUHOOK_ENV_MODE is")
        .assert_contains("Packages: changed kudupkg 1.0 -> 2.0 (");
    assert!(mark.exists(), "the env was not rebuilt");
    assert_eq!(site.imported_version("extrapkg").as_deref(), Some("1.0"));
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
}

#[test]
fn uv_creates_and_fills_the_env_and_an_unchanged_redeploy_skips_it() {
    let site = Site::app("3.11");
    let run = deploy(&site, &with_uv());
    run.assert_ok()
        .assert_contains("Installer: uv 0.13.9 (")
        .assert_contains("from app setting KUDUHOOK_INSTALLER")
        .assert_contains("with Python 3.11.7 (uv 0.13.9 venv)")
        .assert_contains("Packages: added kudupkg 1.0 (1 installed)")
        .assert_contains("Installed requirements.txt with uv 0.13.9");
    assert_eq!(hello(&site), "hello from kudupkg 1.0\n");
    // uv's cache is kept beside the site, outside the served files.
    let cache = site.target.parent().unwrap().join(".kuduhook/cache/uv");
    assert!(cache.is_dir(), "no uv cache at {}", cache.display());

    deploy(&site, &with_uv())
        .assert_ok()
        .assert_contains("Reusing env")
        .assert_contains("skipped: requirements.txt unchanged");

    // Switching installers is a change of install: a fresh env made by pip.
    site.deploy(&[])
        .assert_ok()
        .assert_contains("the installer changed uv 0.13.9 -> pip")
        .assert_contains("(python -m venv)");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn auto_uses_uv_when_found_and_pip_otherwise() {
    let site = Site::app("3.11");
    let uv_dir = uv().parent().unwrap().display().to_string();
    let path_with_uv = format!("{uv_dir}:{}", std::env::var("PATH").unwrap());
    site.deploy_with(
        &[],
        &[("KUDUHOOK_INSTALLER", "auto"), ("PATH", &path_with_uv)],
    )
    .assert_ok()
    .assert_contains("Installer: uv 0.13.9 (")
    .assert_contains(&format!("{uv_dir}/uv), from setting KUDUHOOK_INSTALLER"));

    let other = Site::app("3.11");
    other
        .deploy_with(&[], &[("KUDUHOOK_INSTALLER", "auto")])
        .assert_ok()
        .assert_contains(
            "Installer: pip: setting KUDUHOOK_INSTALLER (environment) is auto and no uv was found",
        );
}

#[test]
fn uv_asked_for_and_missing_fails_before_touching_the_site() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site.write("app.py", "changed = True\n");
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_INSTALLER", "uv")])
        .assert_failed()
        .assert_contains("error: app setting KUDUHOOK_INSTALLER asks for uv, and no uv was found")
        .assert_contains("why: looked for a uv that runs at: ")
        .assert_contains("deploy/uv")
        .assert_contains("fix: commit the uv binary for the site's platform as deploy/uv")
        .assert_contains("Nothing in the target was changed");
    assert!(
        !std::fs::read_to_string(site.target_file("app.py"))
            .unwrap()
            .contains("changed")
    );
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_INSTALLER", "pyp")])
        .assert_failed()
        .assert_contains("it takes pip (the default), uv, or auto");
}

#[test]
fn move_mode_builds_beside_the_live_env_and_relocates_its_scripts() {
    let site = Site::app("3.11");
    let settings = [("KUDUHOOK_ENV_SWITCH", "move".to_string())];
    deploy(&site, &settings).assert_ok();
    assert!(
        !site.env_dir().is_symlink(),
        "move mode keeps a plain folder"
    );
    site.write("requirements.txt", "kudupkg==2.0\n");
    deploy(&site, &settings)
        .assert_ok()
        .assert_contains("env.kuduhook-new in ")
        .assert_contains("(move switch, one atomic rename)");
    assert!(!site.env_dir().is_symlink());
    // The env was copied to env.kuduhook-new (its scripts rewritten for that path), installed
    // into, and its console script rewritten for env when it was moved there.
    assert_eq!(hello(&site), "hello from kudupkg 2.0\n");
    assert_eq!(site.leftovers(), Vec::<String>::new());

    // Back to links: the folder is swapped for a link in one step.
    site.write("requirements.txt", "kudupkg==1.0\n");
    site.deploy(&[]).assert_ok();
    assert!(site.env_dir().is_symlink());
    assert_eq!(hello(&site), "hello from kudupkg 1.0\n");
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

#[test]
fn an_env_made_by_deploy_cmd_is_replaced_by_an_exact_one() {
    let site = app_with_an_extra_package();
    // deploy.cmd's env: a plain folder in wwwroot, with a package no longer required.
    std::fs::create_dir_all(&site.target).unwrap();
    let made = Command::new(python("3.11"))
        .args(["-m", "venv"])
        .arg(site.env_dir())
        .status()
        .unwrap();
    assert!(made.success());
    let pip = Command::new(site.env_python())
        .args(["-m", "pip", "install", "-q", "--no-index", "--find-links"])
        .arg(site.wheels_dir_of_its_own())
        .arg("extrapkg==1.0")
        .status()
        .unwrap();
    assert!(pip.success());
    site.write("requirements.txt", "kudupkg==1.0\n");

    site.deploy(&[])
        .assert_ok()
        .assert_contains("no record of what was installed into the env")
        .assert_contains("Packages: added kudupkg 1.0; removed extrapkg 1.0");
    assert!(site.env_dir().is_symlink());
    assert_eq!(site.imported_version("extrapkg"), None);
    assert_eq!(hello(&site), "hello from kudupkg 1.0\n");
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

fn wheelhouse_is_a_package_source(settings: &[(&str, String)]) {
    let site = Site::app("3.11");
    build_wheel(&site.repo.join("wheelhouse"), "housepkg", "3.1", &[]);
    site.write("requirements.txt", "housepkg==3.1\n");
    site.write("app.py", "import housepkg\n\n\ndef app():\n    return 1\n");
    // No other package source at all: only the committed wheelhouse.
    let mut settings = settings.to_vec();
    settings.push(("PIP_FIND_LINKS", String::new()));
    deploy(&site, &settings)
        .assert_ok()
        .assert_contains("Packages: added housepkg 3.1");
    assert_eq!(site.imported_version("housepkg").as_deref(), Some("3.1"));
}

#[test]
fn a_committed_wheelhouse_is_a_package_source_for_pip() {
    wheelhouse_is_a_package_source(&[]);
}

#[test]
fn a_committed_wheelhouse_is_a_package_source_for_uv() {
    wheelhouse_is_a_package_source(&with_uv());
}

#[test]
fn a_dry_run_builds_nothing() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.deploy(&["--dry-run"]).assert_ok().assert_contains(
        "Would copy the live env, install requirements.txt into the copy and remove what it \
             no longer needs",
    );
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    let envs: Vec<_> = std::fs::read_dir(site.envs_dir()).unwrap().collect();
    assert_eq!(envs.len(), 1);
    assert!(Path::new(&site.env_dir()).is_symlink());
}

#[test]
fn leaked_variables_do_not_redirect_a_uv_install() {
    let site = Site::app("3.11");
    let elsewhere = site.target.parent().unwrap().join("elsewhere");
    let mut settings = with_uv();
    settings.extend([
        ("VIRTUAL_ENV", elsewhere.display().to_string()),
        ("UV_SYSTEM_PYTHON", "1".to_string()),
        ("PYTHONPATH", elsewhere.display().to_string()),
    ]);
    deploy(&site, &settings).assert_ok().assert_contains(
        "Ignoring VIRTUAL_ENV, PYTHONPATH, UV_SYSTEM_PYTHON from the host environment",
    );
    assert!(!elsewhere.exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}
