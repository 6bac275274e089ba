//! How a deployment is configured: Kudu's environment, app settings over files, the Python
//! version sources, the user's own steps, and deploy.cmd's tail (web.config, collectstatic).

mod support;

use std::process::Command;

use support::{Site, python, version_of};

/// Runs `kuduhook deploy` with no flags, in the repository, the way Kudu does.
fn deploy_like_kudu(site: &Site, extra: &[(&str, &str)]) -> support::Run {
    let deployments = site.target.parent().unwrap().join("deployments");
    let previous = deployments.join("previous/manifest");
    let next = deployments.join("next/manifest");
    let source = site.repo.display().to_string();
    let target = site.target.display().to_string();
    let (previous, next) = (previous.display().to_string(), next.display().to_string());
    let mut env = vec![
        ("DEPLOYMENT_SOURCE", source.as_str()),
        ("DEPLOYMENT_TARGET", target.as_str()),
        ("PREVIOUS_MANIFEST_PATH", previous.as_str()),
        ("NEXT_MANIFEST_PATH", next.as_str()),
        ("SCM_COMMIT_ID", "0123456789abcdef0123"),
    ];
    env.extend_from_slice(extra);
    let mut cmd = Command::new(support::kuduhook());
    cmd.arg("deploy");
    site.run(cmd, &env)
}

#[test]
fn kudus_environment_drives_a_deployment_without_flags() {
    let site = Site::app("3.11");
    let deployments = site.target.parent().unwrap().join("deployments");
    std::fs::create_dir_all(deployments.join("previous")).unwrap();
    // The last successful deployment had a file this commit removed, and Kudu's placeholder.
    std::fs::write(
        deployments.join("previous/manifest"),
        "old.py\nhostingstart.html",
    )
    .unwrap();
    std::fs::create_dir_all(&site.target).unwrap();
    std::fs::write(site.target_file("old.py"), "").unwrap();
    std::fs::write(site.target_file("hostingstart.html"), "").unwrap();

    deploy_like_kudu(&site, &[])
        .assert_ok()
        .assert_contains("(commit 0123456789ab)")
        .assert_contains("Deleting file: 'old.py'")
        .assert_contains("Deleting file: 'hostingstart.html'");
    let next = std::fs::read_to_string(deployments.join("next/manifest")).unwrap();
    assert!(next.lines().any(|l| l == "app.py"), "{next}");
    assert!(!site.target_file("old.py").exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn an_in_place_deployment_syncs_nothing_and_builds_the_env_in_the_repository() {
    let site = Site::app("3.11");
    let repo = site.repo.display().to_string();
    let mut cmd = Command::new(support::kuduhook());
    cmd.arg("deploy");
    site.run(
        cmd,
        &[
            ("DEPLOYMENT_SOURCE", &repo),
            ("DEPLOYMENT_TARGET", &repo),
            ("IN_PLACE_DEPLOYMENT", "1"),
        ],
    )
    .assert_ok()
    .assert_contains("skipped: in-place deployment");
    assert!(site.repo.join("env/bin/python").is_file());
}

#[test]
fn a_clean_deployment_deletes_what_the_repository_lacks_but_keeps_the_env() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    std::fs::write(site.target_file("stray.txt"), "left by hand").unwrap();
    deploy_like_kudu(&site, &[("IGNORE_MANIFEST", "1")])
        .assert_ok()
        .assert_contains("Clean deployment (IGNORE_MANIFEST=1)")
        .assert_contains("Deleting file: 'stray.txt'")
        .assert_contains("Reusing env");
    assert!(!site.target_file("stray.txt").exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn python_version_sources_follow_their_precedence() {
    let site = Site::app("3.11");
    site.remove("runtime.txt");
    site.write(".python-version", "# chosen for the app\n3.12\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Python 3.12 requested by .python-version line 2");
    assert_eq!(site.env_version(), version_of(&python("3.12")));

    // runtime.txt wins over .python-version; the app setting over both; the flag over all.
    site.write("runtime.txt", "python-3.11\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Python 3.11 requested by runtime.txt line 1");
    site.deploy_with(&[], &[("APPSETTING_PYTHON_VERSION", "3.12")])
        .assert_ok()
        .assert_contains("Python 3.12 requested by app setting PYTHON_VERSION");
    site.deploy_with(
        &["--python", "3.11"],
        &[("APPSETTING_PYTHON_VERSION", "3.12")],
    )
    .assert_ok()
    .assert_contains("Python 3.11 requested by --python");
    assert_eq!(site.env_version(), version_of(&python("3.11")));
}

#[test]
fn an_interpreter_can_be_named_by_path() {
    let site = Site::app("3.12");
    let interpreter = python("3.12").display().to_string();
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_PYTHON", &interpreter)])
        .assert_ok()
        .assert_contains("found via app setting KUDUHOOK_PYTHON");

    // One that contradicts the requested version is refused, naming both.
    let other = python("3.11").display().to_string();
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_PYTHON", &other)])
        .assert_failed()
        .assert_contains("but runtime.txt line 1 asks for 3.12");
    let missing = "/nowhere/bin/python3";
    site.deploy(&["--python", missing])
        .assert_failed()
        .assert_contains("error: the interpreter /nowhere/bin/python3 does not run");
}

#[test]
fn without_any_version_the_default_interpreter_is_used() {
    let site = Site::app("3.11");
    site.remove("runtime.txt");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("No Python version requested")
        .assert_contains("found via PATH");
}

#[test]
fn the_env_name_and_requirements_file_can_be_changed() {
    let site = Site::app("3.11");
    site.remove("requirements.txt");
    site.write("requirements/prod.txt", "kudupkg==2.0\n");
    site.write(
        ".deployment",
        "[config]\ncommand = deploy/kuduhook deploy\nKUDUHOOK_ENV_NAME = antenv\n",
    );
    site.deploy_with(
        &[],
        &[("CUSTOM_REQUIREMENTSTXT_PATH", "requirements/prod.txt")],
    )
    .assert_ok()
    .assert_contains("Installed requirements/prod.txt");
    let out = Command::new(site.target.join("antenv/bin/python"))
        .args(["-c", "import kudupkg; print(kudupkg.__version__)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2.0");
    assert!(!site.env_dir().exists());
}

#[test]
fn steps_json_options_configure_their_steps() {
    let site = Site::app("3.11");
    site.write("notes/draft.md", "private");
    site.write("cache.tmp", "x");
    site.write(
        "deploy/steps.json",
        r#"{"steps": [
            {"step": "sync", "ignore": ["notes", "*.tmp"]},
            {"step": "detect-runtime"},
            {"step": "validate-env", "env_name": "venv"},
            {"step": "pip-install", "pip_args": ["--no-compile"]},
            {"step": "web-config", "enabled": false},
            {"step": "collectstatic", "enabled": false}
        ]}"#,
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Steps: deploy/steps.json; disabled: web-config, collectstatic")
        .assert_contains(
            "Extra installer arguments from deploy/steps.json (step pip-install): --no-compile",
        )
        .assert_lacks("==> [5/");
    assert!(!site.target_file("notes").exists());
    assert!(!site.target_file("cache.tmp").exists());
    assert!(site.target.join("venv/bin/python").is_file());
    // The steps file itself is part of the repository, and synced.
    assert!(site.target_file("deploy/steps.json").is_file());
}

#[test]
fn a_run_step_sees_the_activated_env_and_kudus_variables() {
    let site = Site::app("3.11");
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(
            r#"{"run": "kudupkg-hello > hello.txt && python -c \"import sys, kudupkg; print(sys.prefix)\" > prefix.txt && echo \"$VIRTUAL_ENV|$PYTHON|$DEPLOYMENT_SOURCE|$(pwd)\" > vars.txt", "name": "check env"}"#,
        ),
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("==> [5/5] check env")
        .assert_contains("`kudupkg-hello > hello.txt");
    let read = |name: &str| {
        std::fs::read_to_string(site.target_file(name))
            .unwrap()
            .trim()
            .to_string()
    };
    // The env's console script is on PATH, and `python` is the env's.
    assert_eq!(read("hello.txt"), "hello from kudupkg 1.0");
    assert_eq!(read("prefix.txt"), site.env_dir().display().to_string());
    let env = site.env_dir().display().to_string();
    assert_eq!(
        read("vars.txt"),
        format!(
            "{env}|{env}/bin/python|{}|{}",
            site.repo.display(),
            site.target.display()
        )
    );
}

#[test]
fn pre_and_post_build_commands_run_around_the_install() {
    let site = Site::app("3.11");
    site.deploy_with(
        &[],
        &[
            ("APPSETTING_PRE_BUILD_COMMAND", "echo pre >> order.txt"),
            (
                "APPSETTING_POST_BUILD_COMMAND",
                "python -c \"import kudupkg\" && echo post >> order.txt",
            ),
        ],
    )
    .assert_ok()
    .assert_contains("==> [3/9] PRE_BUILD_COMMAND (from app setting PRE_BUILD_COMMAND)")
    .assert_contains("==> [4/9] pip-install")
    .assert_contains("==> [5/9] POST_BUILD_COMMAND");
    assert_eq!(
        std::fs::read_to_string(site.target_file("order.txt")).unwrap(),
        "pre\npost\n"
    );
}

#[test]
fn without_requirements_the_python_steps_are_skipped_like_deploy_cmd() {
    let site = Site::app("3.11");
    site.remove("requirements.txt");
    // An app that needs nothing (the start check runs it with the stack's Python alone).
    site.write("app.py", "def app():\n    return 1\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("skipped: no requirements.txt, pyproject.toml, uv.lock, poetry.lock or Pipfile.lock in the app")
        .assert_lacks("Rebuilding env");
    assert!(site.target_file("app.py").is_file());
    assert!(!site.env_dir().exists());

    let site = Site::app("3.11");
    site.write(".skipPythonDeployment", "");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("skipped: the app has a .skipPythonDeployment file");
    assert!(!site.env_dir().exists());
}

#[test]
fn a_versioned_web_config_replaces_web_config() {
    let site = Site::app("3.11");
    site.write("web.config", "<generic/>");
    site.write("web.3.11.config", "<python311/>");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Copied web.3.11.config over web.config");
    assert_eq!(
        std::fs::read_to_string(site.target_file("web.config")).unwrap(),
        "<python311/>"
    );
}

#[test]
fn collectstatic_runs_for_django_apps_unless_turned_off() {
    let site = Site::app("3.11");
    site.write("requirements.txt", "kudupkg==1.0\ndjango==4.2\n");
    // A manage.py that records how it was called, standing in for Django's.
    site.write(
        "manage.py",
        "import sys\nopen('collected.txt', 'w').write(' '.join(sys.argv[1:]))\n",
    );
    site.deploy(&[]).assert_ok();
    assert_eq!(
        std::fs::read_to_string(site.target_file("collected.txt")).unwrap(),
        "collectstatic --noinput --clear"
    );

    std::fs::remove_file(site.target_file("collected.txt")).unwrap();
    site.deploy_with(&[], &[("APPSETTING_DISABLE_COLLECTSTATIC", "true")])
        .assert_ok()
        .assert_contains("skipped: turned off by app setting DISABLE_COLLECTSTATIC");
    site.write(".skipDjango", "");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("skipped: the app has a .skipDjango file");
    assert!(!site.target_file("collected.txt").exists());
}

#[test]
fn a_leaked_virtual_env_or_pip_target_does_not_redirect_the_install() {
    let site = Site::app("3.11");
    let elsewhere = site.target.parent().unwrap().join("elsewhere");
    let elsewhere = elsewhere.display().to_string();
    site.deploy_with(
        &[],
        &[
            ("VIRTUAL_ENV", &elsewhere),
            ("PIP_TARGET", &elsewhere),
            ("PIP_PREFIX", &elsewhere),
        ],
    )
    .assert_ok()
    .assert_contains("Ignoring VIRTUAL_ENV, PIP_TARGET, PIP_PREFIX from the host environment");
    assert!(!std::path::Path::new(&elsewhere).exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn the_env_folder_in_the_repository_is_never_synced_over_the_live_env() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site.write("env/pyvenv.cfg", "home = /committed/by/mistake\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("warning: the repository has its own env/")
        .assert_contains("Reusing env");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn run_by_hand_it_deploys_into_artifacts_like_deploy_cmd() {
    let site = Site::app("3.11");
    let mut cmd = Command::new(support::kuduhook());
    cmd.arg("deploy");
    let run = site.run(cmd, &[]);
    let artifacts = site.repo.parent().unwrap().join("artifacts");
    run.assert_ok().assert_contains(&format!(
        "Deployed to {} in",
        artifacts.join("wwwroot").display()
    ));
    assert!(artifacts.join("wwwroot/app.py").is_file());
    assert!(artifacts.join("wwwroot/env/bin/python").is_file());
    let manifest = std::fs::read_to_string(artifacts.join("manifest")).unwrap();
    assert!(manifest.lines().any(|l| l == "app.py"), "{manifest}");
}

#[test]
fn a_silent_step_gets_heartbeats_within_kudus_idle_timeout() {
    let site = Site::app("3.11");
    site.remove("requirements.txt");
    site.write(
        "deploy/steps.json",
        r#"{"steps": [{"step": "sync"}, {"run": "sleep 4", "name": "quiet"}]}"#,
    );
    let run = site.deploy_with(&[], &[("SCM_COMMAND_IDLE_TIMEOUT", "3")]);
    run.assert_ok();
    // A third of the 3 s timeout: about one line a second while the step is silent.
    let beats = run.log.matches("still running quiet (").count();
    assert!((2..=5).contains(&beats), "{beats} heartbeats:\n{}", run.log);
}

#[test]
fn sync_settings_reach_the_sync_step() {
    let site = Site::empty();
    site.write("app.py", "def app():\n    return 1\n");
    site.write("conf/app.ini", "debug=0\n");
    let pinned = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(499_137_600);
    let pin = || {
        std::fs::File::options()
            .write(true)
            .open(site.repo.join("conf/app.ini"))
            .unwrap()
            .set_modified(pinned)
            .unwrap()
    };
    pin();
    site.deploy(&[]).assert_ok();
    // Same size, same pinned mtime: only a content comparison sees the change. The walk alone
    // (KUDUHOOK_SYNC_VERIFY=full) compares size and time, as KuduSync does.
    let walk = ("KUDUHOOK_SYNC_VERIFY", "full");
    site.write("conf/app.ini", "debug=1\n");
    pin();
    site.deploy_with(&[], &[walk])
        .assert_ok()
        .assert_contains("Nothing changed");
    site.deploy_with(&[], &[walk, ("KUDUHOOK_SYNC_FULL_COMPARE", "*.ini")])
        .assert_ok()
        .assert_contains("Copying file: 'conf/app.ini'");
    site.write("conf/app.ini", "debug=2\n");
    pin();
    site.deploy_with(&[], &[walk, ("APPSETTING_KUDUHOOK_SYNC_CHECKSUM", "1")])
        .assert_ok()
        .assert_contains("Comparing file contents (app setting KUDUHOOK_SYNC_CHECKSUM)")
        .assert_contains("Copying file: 'conf/app.ini'");
    assert_eq!(
        std::fs::read_to_string(site.target_file("conf/app.ini")).unwrap(),
        "debug=2\n"
    );
    // By default a source that is not a git checkout is listed with its content: the change
    // is seen, first by the walk (no record of the last sync), then from the record.
    for content in ["debug=3\n", "debug=4\n"] {
        site.write("conf/app.ini", content);
        pin();
        site.deploy(&[])
            .assert_ok()
            .assert_contains("Copying file: 'conf/app.ini'");
        assert_eq!(
            std::fs::read_to_string(site.target_file("conf/app.ini")).unwrap(),
            content
        );
    }
    site.write("conf/app.ini", "debug=5\n");
    pin();
    site.deploy(&[])
        .assert_ok()
        .assert_contains("from the record of the last sync, 1 changed path");

    site.deploy_with(&[], &[("KUDUHOOK_SYNC_OUTSIDE_LINKS", "sometimes")])
        .assert_failed()
        .assert_contains(
            "error: setting KUDUHOOK_SYNC_OUTSIDE_LINKS (environment) is \"sometimes\", which \
             kuduhook does not understand",
        )
        .assert_contains("it takes skip (a link out of the repository is left out");
}
