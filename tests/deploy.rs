//! End-to-end deployments with the real binary, real interpreters, venv and pip: what a user
//! sees on a first push, on an unchanged push, and when they change their requirements, their
//! Python, or ask for a clean env.

mod support;

use std::process::Command;

use support::{Site, python, version_of};

#[test]
fn first_deploy_syncs_the_app_builds_the_env_and_installs() {
    let site = Site::app("3.11");
    let run = site.deploy(&[]);
    run.assert_ok()
        .assert_contains("==> [1/7] detect-runtime")
        .assert_contains("==> [5/7] sync")
        .assert_contains("First deployment: no previous manifest")
        .assert_contains("Python 3.11 requested by runtime.txt line 1")
        .assert_contains("Rebuilding env: no env at")
        .assert_contains("| Successfully installed kudupkg-1.0")
        .assert_contains("Installed requirements.txt")
        .assert_contains("done in ");

    assert!(site.target_file("app.py").is_file());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(site.env_version(), version_of(&python("3.11")));
    // Kudu's marker, for deploy.cmd-era tooling.
    assert!(site.env_dir().join("azure.env.python-3.11.txt").is_file());
    // The manifest lists what was synced, KuduSync style.
    let manifest = std::fs::read_to_string(&site.manifest).unwrap();
    let mut lines: Vec<&str> = manifest.lines().collect();
    lines.sort();
    assert_eq!(lines, ["app.py", "requirements.txt", "runtime.txt"]);
}

#[test]
fn unchanged_redeploy_skips_pip_and_reuses_the_env() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    let mark = site.mark_env();

    let run = site.deploy(&[]);
    run.assert_ok()
        .assert_contains("Nothing changed in ")
        // Not a git checkout: the sync compares the app's files with what it last copied.
        .assert_contains(
            "(from the record of the last sync, 0 changed paths, without walking the site)",
        )
        .assert_contains("Reusing env")
        .assert_contains("skipped: requirements.txt unchanged since the last successful install")
        .assert_lacks("| ");
    assert!(mark.exists(), "the env was rebuilt");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn a_bumped_requirement_is_installed() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site.write("requirements.txt", "kudupkg==2.0\n");

    site.deploy(&[])
        .assert_ok()
        .assert_contains("Copying file: 'requirements.txt'")
        .assert_contains("Copied the live env")
        .assert_contains("to install into: requirements.txt changed since the last install")
        .assert_contains("| Successfully installed kudupkg-2.0")
        .assert_contains("Reused 2 packages from the live env; changed kudupkg 1.0 -> 2.0 (");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    // The env's console script runs from the site's path after the switch.
    let hello = Command::new(site.env_dir().join("bin/kudupkg-hello"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "hello from kudupkg 2.0\n"
    );
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

#[test]
fn a_change_in_an_included_requirements_file_is_installed() {
    let site = Site::app("3.11");
    site.write("requirements.txt", "-r requirements/base.txt\n");
    site.write("requirements/base.txt", "-c pins.txt\nkudupkg\n");
    site.write("requirements/pins.txt", "kudupkg==1.0\n");
    site.deploy(&[]).assert_ok();
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));

    // Only the constraints file, two includes deep, changes.
    site.write("requirements/pins.txt", "kudupkg==2.0\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("| Successfully installed kudupkg-2.0");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
}

#[test]
fn changing_runtime_txt_rebuilds_the_env_with_the_new_python() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    let old = version_of(&python("3.11"));
    let new = version_of(&python("3.12"));

    site.write("runtime.txt", "python-3.12\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains(&format!("Rebuilding env: Python changed {old} -> {new}"))
        .assert_contains("| Successfully installed kudupkg-1.0")
        .assert_contains("Kept the previous release")
        .assert_contains("for `kuduhook rollback`");
    assert_eq!(site.env_version(), new);
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert!(site.env_dir().join("azure.env.python-3.12.txt").is_file());
    assert!(!site.env_dir().join("azure.env.python-3.11.txt").exists());
    assert!(!site.target.join("env.kuduhook-previous").exists());
}

#[test]
fn the_force_flag_rebuilds_the_env() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    let mark = site.mark_env();

    site.deploy(&["--force-env-rebuild"])
        .assert_ok()
        .assert_contains("Rebuilding env: forced by --force-env-rebuild")
        .assert_contains("| Successfully installed kudupkg-1.0");
    assert!(!mark.exists(), "the env was reused");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn a_truthy_force_setting_rebuilds_every_time_and_warns() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    for _ in 0..2 {
        let mark = site.mark_env();
        site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_FORCE_ENV_REBUILD", "true")])
            .assert_ok()
            .assert_contains("Rebuilding env: forced by app setting KUDUHOOK_FORCE_ENV_REBUILD")
            .assert_contains("warning: app setting KUDUHOOK_FORCE_ENV_REBUILD is still on");
        assert!(!mark.exists(), "the env was reused");
    }
    // Off again: the env is reused.
    let mark = site.mark_env();
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_FORCE_ENV_REBUILD", "0")])
        .assert_ok()
        .assert_contains("Reusing env");
    assert!(mark.exists());
}

#[test]
fn a_force_token_rebuilds_once_per_value() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    let token = [("KUDUHOOK_FORCE_ENV_REBUILD", "2026-11-23")];

    let mark = site.mark_env();
    site.deploy_with(&[], &token)
        .assert_ok()
        .assert_contains("changed to \"2026-11-23\" (the env was built for no token)")
        .assert_lacks("still on");
    assert!(!mark.exists(), "the token did not rebuild");

    let mark = site.mark_env();
    site.deploy_with(&[], &token)
        .assert_ok()
        .assert_contains("Reusing env");
    assert!(mark.exists(), "the same token rebuilt twice");

    site.deploy_with(&[], &[("KUDUHOOK_FORCE_ENV_REBUILD", "2026-11-24")])
        .assert_ok()
        .assert_contains("changed to \"2026-11-24\" (the env was built for \"2026-11-23\")");
    assert!(!mark.exists());
}

#[test]
fn a_force_token_in_dot_deployment_works_too() {
    let site = Site::app("3.11");
    site.deploy(&[]).assert_ok();
    site.write(
        ".deployment",
        "[config]\ncommand = deploy/kuduhook deploy\nKUDUHOOK_FORCE_ENV_REBUILD = monday\n",
    );
    let mark = site.mark_env();
    site.deploy(&[])
        .assert_ok()
        .assert_contains(".deployment line 3 (KUDUHOOK_FORCE_ENV_REBUILD) changed to \"monday\"")
        // The command of an older `kuduhook init`: fine for git, not for a zip made on Windows.
        .assert_contains(
            "Note: .deployment line 2 runs `deploy/kuduhook deploy`: Kudu makes the command \
             executable only when it is a bare path",
        )
        .assert_contains("`command = ./deploy/kuduhook` deploys the same");
    assert!(!mark.exists());
    // .deployment is never synced into the site.
    assert!(!site.target_file(".deployment").exists());
}

#[test]
fn deleted_files_go_while_files_the_app_wrote_stay() {
    let site = Site::app("3.11");
    site.write("static/old.css", "body {}\n");
    site.write("static/site.css", "body {}\n");
    site.deploy(&[]).assert_ok();
    // The running app writes its own files into the site.
    std::fs::create_dir_all(site.target_file("uploads")).unwrap();
    std::fs::write(site.target_file("uploads/photo.jpg"), "jpeg").unwrap();
    std::fs::write(site.target_file("static/generated.css"), "x").unwrap();

    site.remove("static/old.css");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Deleting file: 'static/old.css'")
        .assert_contains("kept 2 entries not from the repository");
    assert!(!site.target_file("static/old.css").exists());
    assert!(site.target_file("static/site.css").exists());
    assert!(site.target_file("uploads/photo.jpg").exists());
    assert!(site.target_file("static/generated.css").exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));

    // A folder that empties out goes too, but not one the app still uses.
    site.remove("static/site.css");
    site.deploy(&[]).assert_ok();
    assert!(!site.target_file("static/site.css").exists());
    assert!(site.target_file("static/generated.css").exists());
}

#[test]
fn the_first_deployment_removes_kudus_placeholder_page() {
    let site = Site::app("3.11");
    std::fs::create_dir_all(&site.target).unwrap();
    std::fs::write(
        site.target_file("hostingstart.html"),
        "<h1>placeholder</h1>",
    )
    .unwrap();
    std::fs::write(site.target_file("keep.txt"), "not ours").unwrap();
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Deleting file: 'hostingstart.html'");
    assert!(!site.target_file("hostingstart.html").exists());
    assert!(site.target_file("keep.txt").exists());
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let site = Site::app("3.11");
    site.deploy(&["--dry-run"])
        .assert_ok()
        .assert_contains("Dry run: printing the plan, changing nothing")
        .assert_contains("Would copy 3 files")
        .assert_contains("Would rebuild the env: no env at")
        .assert_contains("Would install requirements.txt")
        .assert_contains("Dry run finished");
    assert!(!site.target.exists(), "a dry run created the target");
    assert!(!site.manifest.exists(), "a dry run wrote the manifest");

    site.deploy(&[]).assert_ok();
    site.write("requirements.txt", "kudupkg==2.0\n");
    let mark = site.mark_env();
    site.deploy(&["--dry-run", "--force-env-rebuild"])
        .assert_ok()
        .assert_contains("Copying file: 'requirements.txt'")
        .assert_contains("Would rebuild the env: forced by --force-env-rebuild");
    assert!(mark.exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
}

#[test]
fn help_and_version_work_like_any_rust_cli() {
    let site = Site::empty();
    let mut help = std::process::Command::new(support::kuduhook());
    help.args(["deploy", "--help"]);
    let run = site.run(help, &[]);
    run.assert_ok()
        .assert_contains("--force-env-rebuild")
        .assert_contains("--dry-run")
        .assert_contains("--python <VERSION|PATH>");
    let mut version = std::process::Command::new(support::kuduhook());
    version.arg("--version");
    site.run(version, &[])
        .assert_ok()
        .assert_contains(&format!("kuduhook {}", env!("CARGO_PKG_VERSION")));
}
