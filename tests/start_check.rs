//! A deployment is a success only if the site then starts: before the site changes, the
//! start-check step imports the app the way App Service Linux will start it, with the new env
//! and the new code. A push whose app cannot import fails there, and the site keeps serving
//! the previous deployment. Real venvs and pip, no network.

mod support;

use support::Site;

/// The app's file as the site serves it.
fn served_app(site: &Site) -> String {
    std::fs::read_to_string(site.target_file("app.py")).unwrap()
}

#[test]
fn an_app_that_cannot_import_fails_before_the_site_changes() {
    let site = Site::app("3.11");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("==> [4/7] start-check")
        .assert_contains(
            "The app imports app:app (app.py, exposing app) with the new env and code",
        );
    let serving = served_app(&site);
    site.write(
        "app.py",
        "import kudupkg\nimport missing_module_xyz\n\n\ndef app():\n    return 1\n",
    );
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.deploy(&[])
        .assert_failed()
        .assert_contains("error: the app does not start: the check that it imports app:app (app.py, exposing app) failed: ModuleNotFoundError: No module named 'missing_module_xyz'")
        .assert_contains("File \"")
        .assert_contains("fix: fix the error and push again")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(served_app(&site), serving, "the previous files serve");
    assert_eq!(
        site.imported_version("kudupkg").as_deref(),
        Some("1.0"),
        "and the previous env"
    );
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

/// The check imports the app from the repository, before the sync: what the import writes
/// beside the code (a SQLite database, a log, an instance folder) would be made there and then
/// copied by the sync over what the running app keeps on the site. It is taken away again,
/// whether the check passes or fails.
#[test]
fn what_the_apps_import_creates_in_the_repository_never_reaches_the_site() {
    let site = Site::app("3.11");
    site.write(
        "app.py",
        "import os, sqlite3\nimport kudupkg\n\nhere = os.path.dirname(os.path.abspath(__file__))\n\
         os.makedirs(os.path.join(here, 'instance', 'cache'), exist_ok=True)\n\
         with open(os.path.join(here, 'instance', 'app.db'), 'a') as db:\n    db.write('empty')\n\
         sqlite3.connect(os.path.join(here, 'data.sqlite3')).execute('create table if not exists t (x)')\n\
         with open('import.log', 'a') as log:\n    log.write('imported')\n\n\
         def app():\n    return 1\n",
    );
    site.deploy(&[]).assert_ok().assert_contains(
        "The app's import created data.sqlite3, import.log, instance/ in the repository: removed, \
         so that the sync does not copy it over what the app keeps on the site",
    );
    for made in ["instance", "data.sqlite3", "import.log"] {
        assert!(
            !site.repo.join(made).exists(),
            "{made} is left in the repository"
        );
        assert!(!site.target.join(made).exists(), "{made} was deployed");
    }

    // The running app made its own, on the site, and wrote its data there.
    std::fs::create_dir_all(site.target.join("instance")).unwrap();
    std::fs::write(site.target.join("instance/app.db"), "the app's data").unwrap();
    std::fs::write(site.target.join("data.sqlite3"), "the app's rows").unwrap();
    site.write("README.md", "a code change\n");
    site.deploy(&[]).assert_ok();
    let on_site = |relative: &str| std::fs::read_to_string(site.target.join(relative)).unwrap();
    assert_eq!(on_site("instance/app.db"), "the app's data");
    assert_eq!(on_site("data.sqlite3"), "the app's rows");

    // A check that fails takes away what the import made before it failed.
    site.write(
        "app.py",
        "with open('partial.txt', 'w') as f:\n    f.write('x')\nimport missing_module_xyz\n",
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("The app's import created partial.txt in the repository: removed");
    assert!(!site.repo.join("partial.txt").exists());
}

#[test]
fn an_entry_that_is_not_callable_fails_and_a_setting_names_another_or_turns_it_off() {
    let site = Site::app("3.11");
    site.write(
        "app.py",
        "import kudupkg\n\napp = 'not a WSGI app'\n\n\ndef real():\n    return 1\n",
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("app:app is not callable");
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_START_CHECK", "app:real")])
        .assert_ok()
        .assert_contains("The app imports app:real (named by app setting KUDUHOOK_START_CHECK)");
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_START_CHECK", "off")])
        .assert_ok()
        .assert_contains("skipped: turned off by app setting KUDUHOOK_START_CHECK");
}

#[test]
fn a_check_command_runs_with_the_env_and_a_hanging_import_is_stopped() {
    let site = Site::app("3.11");
    site.deploy_with(
        &[],
        &[(
            "APPSETTING_KUDUHOOK_START_CHECK",
            "python -c 'import kudupkg, sys; sys.exit(kudupkg.__version__ != \"1.0\")'",
        )],
    )
    .assert_ok()
    .assert_contains("The app runs `python -c");
    site.write(
        "app.py",
        "import time\ntime.sleep(600)\n\n\ndef app():\n    return 1\n",
    );
    let started = std::time::Instant::now();
    site.deploy_with(&[], &[("APPSETTING_KUDUHOOK_START_CHECK_TIMEOUT", "3")])
        .assert_failed()
        .assert_contains("error: the start check did not finish within 3s: the app imports app:app")
        .assert_contains("Nothing in the target was changed");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(!served_app(&site).contains("sleep"));
}

#[test]
fn an_app_without_an_entry_the_platform_would_start_is_not_checked_and_says_how_to() {
    let site = Site::app("3.11");
    site.remove("app.py");
    site.write("main.py", "import kudupkg\n");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("skipped: no entry the platform would start")
        .assert_contains("set KUDUHOOK_START_CHECK to module:callable");
}

/// On App Service Linux's share the env ships as an archive; when it did not change, the check
/// runs from that archive, extracted to local disk as the platform does at start, rather than
/// importing across the network.
#[test]
fn on_the_share_an_unchanged_env_is_checked_from_its_archive() {
    let (site, _share) = support::smb_mount::site_on_share(Site::app("3.11"), 0.2);
    site.deploy(&[]).assert_ok();
    site.write(
        "app.py",
        "import kudupkg\n\n\ndef app():\n    return 'v2'\n",
    );
    site.deploy(&[])
        .assert_ok()
        .assert_contains("The app imports app:app (app.py, exposing app) with the env's archive as the platform extracts it, and the new code");
    let serving = served_app(&site);
    site.write(
        "app.py",
        "import kudupkg\nimport missing_module_xyz\n\n\ndef app():\n    return 1\n",
    );
    site.deploy(&[])
        .assert_failed()
        .assert_contains("No module named 'missing_module_xyz'")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(served_app(&site), serving);
}

/// Puts every file of the repository a minute in the past: files written just before a check
/// are not trusted by their time alone (they could change unseen within its resolution).
fn age(dir: &std::path::Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if path.is_dir() {
            age(&path);
        } else {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(past).unwrap();
        }
    }
}

/// An unchanged redeploy skips the start check and says why in one line; each thing it depends
/// on, changed alone, runs it again: the app's files, its own settings, the env, and an app
/// setting (one that makes the import fail is refused, never skipped).
#[test]
fn the_start_check_runs_again_only_when_something_it_depends_on_changed() {
    let site = Site::app("3.11");
    site.write(
        "app.py",
        "import os, kudupkg\nassert os.environ.get('BREAK_IMPORT') != '1', 'BREAK_IMPORT is set'\n\n\
         def app():\n    return kudupkg.__version__\n",
    );
    let checked = "The app imports app:app (app.py, exposing app)";
    let skipped = "skipped: nothing it depends on changed since the check that passed";
    age(&site.repo);
    site.deploy(&[]).assert_ok().assert_contains(checked);
    site.deploy(&[])
        .assert_ok()
        .assert_contains(skipped)
        .assert_contains("the app's 3 files, the env, the interpreter, the app settings")
        .assert_lacks(checked);

    site.write("helper.py", "x = 1\n");
    age(&site.repo);
    site.deploy(&[]).assert_ok().assert_contains(checked);
    site.deploy(&[]).assert_ok().assert_contains(skipped);

    let timeout = [("KUDUHOOK_START_CHECK_TIMEOUT", "30")];
    site.deploy_with(&[], &timeout)
        .assert_ok()
        .assert_contains(checked);
    site.deploy_with(&[], &timeout)
        .assert_ok()
        .assert_contains(skipped);

    let rebuild = [
        ("KUDUHOOK_START_CHECK_TIMEOUT", "30"),
        ("KUDUHOOK_FORCE_ENV_REBUILD", "2026-12-06"),
    ];
    site.deploy_with(&[], &rebuild)
        .assert_ok()
        .assert_contains("Rebuilding env")
        .assert_contains(checked);
    site.deploy_with(&[], &rebuild)
        .assert_ok()
        .assert_contains(skipped);

    let broken = [
        ("KUDUHOOK_START_CHECK_TIMEOUT", "30"),
        ("KUDUHOOK_FORCE_ENV_REBUILD", "2026-12-06"),
        ("APPSETTING_BREAK_IMPORT", "1"),
        ("BREAK_IMPORT", "1"),
    ];
    site.deploy_with(&[], &broken)
        .assert_failed()
        .assert_contains("AssertionError: BREAK_IMPORT is set")
        .assert_contains("Nothing in the target was changed");
    // A check that failed vouches for nothing: the next deployment checks again.
    site.deploy_with(&[], &rebuild)
        .assert_ok()
        .assert_contains(checked);
}

/// For a new commit with the env unchanged, the check begins while validate-env runs (on App
/// Service, its wait on the share and the check's Python overlap). Its outcome counts only for
/// the env it ran with: a push whose app needs the new requirements is checked again after the
/// install, and a push whose app cannot import is still refused.
#[test]
fn a_check_begun_early_counts_only_for_the_env_it_ran_with() {
    let site = Site::app("3.11");
    let commit = |id: &str| [("SCM_COMMIT_ID", id.to_string())];
    let deploy = |id: &str| {
        let vars = commit(id);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        site.deploy_with(&[], &vars)
    };
    // The first deployment builds the env: nothing to begin with.
    deploy("1111111111111111")
        .assert_ok()
        .assert_lacks("begun while the env was validated");
    site.write(
        "app.py",
        "import kudupkg\n\ndef app():\n    return 'two ' + kudupkg.__version__\n",
    );
    deploy("2222222222222222")
        .assert_ok()
        .assert_contains("begun while the env was validated");
    assert!(served_app(&site).contains("two"));
    // The same commit again (its check most likely skipped): none is begun for it.
    deploy("2222222222222222")
        .assert_ok()
        .assert_lacks("begun while the env was validated");
    // An app that needs kudupkg 2.0: the check begun with the live env (1.0) fails, and does
    // not count: the env built with 2.0 is checked. What the stopped check's import made is
    // taken away too (else the second import would find it there, and the sync copy it).
    site.write(
        "app.py",
        "import kudupkg\nopen('made-by-import.txt', 'w').write('x')\n\
         assert kudupkg.__version__ == '2.0', kudupkg.__version__\n\n\
         def app():\n    return 'three'\n",
    );
    site.write("requirements.txt", "kudupkg==2.0\n");
    deploy("3333333333333333")
        .assert_ok()
        .assert_lacks("begun while the env was validated")
        .assert_lacks("AssertionError");
    assert!(served_app(&site).contains("three"));
    assert!(!site.target_file("made-by-import.txt").exists());
    assert!(!site.repo.join("made-by-import.txt").exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    // An app that cannot import, with the env unchanged: refused by the check begun early, and
    // the site keeps serving the previous files.
    site.write(
        "app.py",
        "import missing_module_xyz\n\ndef app():\n    return 4\n",
    );
    deploy("4444444444444444")
        .assert_failed()
        .assert_contains("No module named 'missing_module_xyz'")
        .assert_contains("Nothing in the target was changed");
    assert!(served_app(&site).contains("three"));
    assert_eq!(site.leftovers(), Vec::<String>::new());
}
