//! Bad input: each failure exits non-zero, says what happened, why and what to do, and leaves
//! the previous deployment serving: its files, and an env that still imports the app's
//! packages.

mod support;

use support::{Run, Site};

/// A site deployed once, successfully, with `kudupkg` 1.0 in its env.
fn deployed_site() -> Site {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site
}

/// The previous deployment is untouched: same files, working env.
fn assert_previous_deployment_serves(site: &Site, run: &Run) {
    run.assert_contains(
        "Nothing in the target was changed: the site still serves the previous deployment.",
    );
    assert_eq!(
        std::fs::read_to_string(site.target_file("app.py")).unwrap(),
        "import kudupkg\n\ndef app():\n    return kudupkg.__version__\n",
        "the app's files changed"
    );
    assert!(
        !site.target_file("new_module.py").exists(),
        "the sync ran before the failure"
    );
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

/// Deploys once, pushes a change with `file` set to `content`, and deploys again: the second
/// deployment must fail without touching the site. Returns its run, for the message.
fn fails_before_touching_the_site(file: &str, content: &str) -> Run {
    let site = deployed_site();
    push_change(&site);
    site.write(file, content);
    let run = site.deploy(&[]);
    run.assert_failed();
    assert_previous_deployment_serves(&site, &run);
    run
}

/// A change the failing deployment would have synced.
fn push_change(site: &Site) {
    site.write("new_module.py", "X = 1\n");
    site.write(
        "app.py",
        "changed = True\n\n\ndef app():\n    return 'changed'\n",
    );
}

#[test]
fn a_malformed_runtime_txt_fails_before_touching_the_site() {
    fails_before_touching_the_site("runtime.txt", "\u{feff}  python3.12\r\n")
        .assert_contains(
            "error: runtime.txt line 1 says \"python3.12\", which is not a Python version",
        )
        .assert_contains("why: runtime.txt must hold one line python-X.Y or python-X.Y.Z")
        .assert_contains("fix: write python-3.12 into runtime.txt");
}

#[test]
fn runtime_txt_with_bom_crlf_and_spaces_is_accepted() {
    let site = Site::app("3.11");
    site.write("runtime.txt", "\u{feff}  python-3.11  \r\n\r\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Python 3.11 requested by runtime.txt line 1");
}

#[test]
fn an_unsupported_python_fails_before_touching_the_site() {
    fails_before_touching_the_site("runtime.txt", "python-2.7\n")
        .assert_contains("error: Python 2.7 (from runtime.txt line 1) is not supported")
        .assert_contains("need Python 3.6 or newer");
}

#[test]
fn a_missing_interpreter_fails_listing_what_was_found() {
    fails_before_touching_the_site("runtime.txt", "python-3.99\n")
        .assert_contains(
            "error: no interpreter for Python 3.99 (from runtime.txt line 1) was found",
        )
        .assert_contains("python3.99 on PATH")
        .assert_contains("/.pyenv/versions/3.99*/bin/python3.99")
        .assert_contains(&format!(
            "(Python {})",
            support::version_of(&support::python("3.12"))
        ))
        .assert_contains(&format!(
            "(Python {})",
            support::version_of(&support::python("3.11"))
        ))
        .assert_contains("fix: ask for one of the versions found");
}

#[test]
fn a_malformed_steps_file_fails_with_line_and_column() {
    let missing_comma = r#"{
  "steps": [
    { "step": "sync" }
    { "step": "detect-runtime" }
  ]
}
"#;
    fails_before_touching_the_site("deploy/steps.json", missing_comma)
        .assert_contains("error: deploy/steps.json line 4 column 5: expected `,` or `]`")
        .assert_contains("fix: fix deploy/steps.json");
}

#[test]
fn an_unknown_step_fails_with_line_and_column() {
    let unknown_step = r#"{
  "steps": [
    { "step": "sync" },
    { "step": "npm-install" }
  ]
}
"#;
    fails_before_touching_the_site("deploy/steps.json", unknown_step)
        .assert_contains("error: deploy/steps.json line 4 column 27: unknown variant `npm-install`")
        .assert_contains("expected one of `sync`, `detect-runtime`");
}

#[test]
fn a_failing_pip_install_keeps_the_previous_env_working() {
    let site = deployed_site();
    site.write("requirements.txt", "kudupkg==1.0\nno-such-package==9.9\n");
    let run = site.deploy(&[]);
    run.assert_failed()
        .assert_contains("| ERROR: No matching distribution found for no-such-package==9.9")
        .assert_contains("error: installing")
        .assert_contains("requirements.txt with pip failed (exited with code 1)")
        .assert_contains("why: pip's own output above names the requirement")
        .assert_contains(
            "Nothing in the target was changed: the site still serves the previous deployment.",
        );
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    // The env is built before the sync: the site's files are the previous deployment's too.
    assert_eq!(
        std::fs::read_to_string(site.target_file("requirements.txt")).unwrap(),
        "kudupkg==1.0\n"
    );
    assert_eq!(site.leftovers(), Vec::<String>::new());

    // The failed install is retried by the next deployment, not skipped as "unchanged".
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.deploy(&[]).assert_ok();
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
}

#[test]
fn a_failing_install_after_a_rebuild_puts_the_previous_env_back() {
    let site = deployed_site();
    site.write("runtime.txt", "python-3.12\n");
    site.write("requirements.txt", "kudupkg==1.0\nno-such-package==9.9\n");
    let run = site.deploy(&[]);
    run.assert_failed()
        .assert_contains("Rebuilding env: Python changed")
        .assert_contains("Nothing in the target was changed");
    // The 3.11 env is back, whole, and still imports the app's package.
    assert_eq!(
        site.env_version(),
        support::version_of(&support::python("3.11"))
    );
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(site.leftovers(), Vec::<String>::new());

    // Fixing the requirement completes the switch to 3.12.
    site.write("requirements.txt", "kudupkg==1.0\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Rebuilding env: Python changed");
    assert_eq!(
        site.env_version(),
        support::version_of(&support::python("3.12"))
    );
}

#[test]
fn an_env_left_aside_by_a_switch_killed_between_two_renames_is_put_back() {
    let site = deployed_site();
    // Where folders cannot be exchanged atomically, a switch is two renames; a deployment
    // killed between them leaves no env at the live path and the previous one aside.
    std::fs::rename(site.env_dir(), site.target.join("env.kuduhook-old")).unwrap();
    std::fs::create_dir_all(site.target.join("env.kuduhook-link/bin")).unwrap();
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Put back the env")
        .assert_contains("left aside by an interrupted deployment")
        .assert_contains("Reusing env");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

#[test]
fn a_bad_setting_fails_before_touching_the_site() {
    let site = deployed_site();
    push_change(&site);
    let run = site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_ENV_NAME", "../../elsewhere")]);
    run.assert_failed().assert_contains(
        "error: app setting KUDUHOOK_ENV_NAME sets the env folder to \"../../elsewhere\"",
    );
    assert_previous_deployment_serves(&site, &run);

    let run = site.deploy_with(&[], &[("PYTHON_VERSION", "latest")]);
    run.assert_failed().assert_contains(
        "error: setting PYTHON_VERSION (environment) is \"latest\", which is not a Python version",
    );
    assert_previous_deployment_serves(&site, &run);
}

#[test]
fn a_target_inside_the_repository_is_refused() {
    let site = Site::app("3.11");
    let nested = site.repo.join("wwwroot");
    let mut cmd = std::process::Command::new(support::kuduhook());
    cmd.args(["deploy", "--target"]).arg(&nested);
    let run = site.run(cmd, &[]);
    run.assert_failed()
        .assert_contains("are inside one another")
        .assert_contains("fix: choose a target outside the repository");
    assert!(!nested.exists());
}

#[test]
fn a_failing_custom_step_fails_the_deploy_unless_marked_to_continue() {
    let site = Site::app("3.11");
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(r#"{"run": "echo checking; exit 3", "name": "smoke test"}"#),
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("| checking")
        .assert_contains(
            "error: step smoke test failed: `echo checking; exit 3` exited with code 3",
        )
        .assert_contains("continue_on_error");

    site.write(
        "deploy/steps.json",
        &support::core_steps_then(
            r#"{"run": "exit 3", "name": "optional", "continue_on_error": true},
            {"run": "echo after > after.txt"}"#,
        ),
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("warning: step optional failed");
    assert!(site.target_file("after.txt").exists());
}

#[test]
fn a_bad_sync_pattern_fails_before_touching_the_site() {
    let steps = r#"{"steps": [{"step": "sync", "ignore": ["*.log", "[oops"]},
        {"step": "detect-runtime"}, {"step": "validate-env"}, {"step": "pip-install"}]}"#;
    fails_before_touching_the_site("deploy/steps.json", steps)
        .assert_contains(
            "error: the pattern \"[oops\" from deploy/steps.json (step sync) is not a valid glob",
        )
        .assert_contains("brackets must be closed");
}

const NEW_APP: &str = "import kudupkg\n\ndef app():\n    return 'new ' + kudupkg.__version__\n";

fn a_step_failing_after_the_switch_switches_the_site_back(switch: &str) {
    let site = deployed_site();
    let settings = [("KUDUHOOK_ENV_SWITCH", switch)];
    site.deploy_with(&[], &settings).assert_ok();
    let app_before = std::fs::read_to_string(site.target_file("app.py")).unwrap();
    let steps_before = std::fs::read_to_string(site.target_file("deploy/steps.json")).ok();
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.write("app.py", NEW_APP);
    site.write("added.py", "print('a new module')\n");
    // The step sees the new env at the site's path, then fails the deployment.
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(
            r#"{"run": "env/bin/python -c 'import kudupkg; print(kudupkg.__version__)' > seen.txt; exit 4", "name": "smoke test"}"#,
        ),
    );
    site.deploy_with(&[], &settings)
        .assert_failed()
        .assert_contains("The site now runs the new env")
        .assert_contains("Switched the site back to the previous env")
        .assert_contains("Put the previous files back: put back ")
        .assert_contains(
            "The previous files were put back and the site was switched back to the previous \
             env: it serves the previous deployment.",
        );
    // The step ran with the new env; the site serves the previous files and env again (the
    // file the step wrote is the app's own: kept).
    assert_eq!(
        std::fs::read_to_string(site.target_file("seen.txt")).unwrap(),
        "2.0\n"
    );
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(
        std::fs::read_to_string(site.target_file("app.py")).unwrap(),
        app_before
    );
    assert_eq!(
        std::fs::read_to_string(site.target_file("deploy/steps.json")).ok(),
        steps_before
    );
    assert!(!site.target_file("added.py").exists());
    assert_eq!(site.leftovers(), Vec::<String>::new());

    // The next deployment of the fixed push goes through on top of the put-back files.
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(r#"{"run": "true", "name": "ok"}"#),
    );
    site.deploy_with(&[], &settings).assert_ok();
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    assert_eq!(
        std::fs::read_to_string(site.target_file("app.py")).unwrap(),
        NEW_APP
    );
    assert!(site.target_file("added.py").exists());
}

#[test]
fn a_step_failing_after_a_link_switch_switches_the_site_back() {
    a_step_failing_after_the_switch_switches_the_site_back("link");
}

#[test]
fn a_step_failing_after_a_move_switch_switches_the_site_back() {
    a_step_failing_after_the_switch_switches_the_site_back("move");
}
