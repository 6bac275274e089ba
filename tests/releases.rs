//! Releases: every successful deployment keeps what it replaced (the files its sync overwrote
//! or deleted, the env it switched away from), so that `kuduhook rollback` brings the release
//! before it back in one step, and the next deployment goes on top of a rolled-back site.
//! Here on local disk (both env switches), on the share, and through `git push` to a local App
//! Service whose site is started the way App Service starts it.

mod support;

use std::path::Path;

use support::app_service_start::first_page;
use support::rehearsal::{Rehearsal, SUCCEEDED, example};
use support::smb_mount::site_on_share;
use support::{Run, Site, app_files};

fn commit(n: u32) -> String {
    format!("{n}{}", "0".repeat(39))
}

/// Deploys the repository as commit `n`.
fn deploy(site: &Site, n: u32, settings: &[(&str, &str)]) -> Run {
    let id = commit(n);
    let mut all = vec![("SCM_COMMIT_ID", id.as_str())];
    all.extend_from_slice(settings);
    site.deploy_with(&[], &all)
}

fn rollback(site: &Site, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(support::kuduhook());
    cmd.arg("rollback")
        .arg("--target")
        .arg(&site.target)
        .args(args);
    site.run(cmd, &[])
}

fn status(site: &Site) -> Run {
    let mut cmd = std::process::Command::new(support::kuduhook());
    cmd.arg("status").arg("--target").arg(&site.target);
    site.run(cmd, &[])
}

/// Release 1: kudupkg 1.0, with a module and a data folder that release 2 deletes.
fn release_1(site: &Site) {
    site.write("old.py", "OLD = True\n");
    site.write("data/a.txt", "a\n");
    site.write("static/site.css", "body { color: black }\n");
}

/// Release 2: kudupkg 2.0, a changed app and stylesheet, the module and data folder gone, a
/// new package.
fn release_2(site: &Site) {
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.write(
        "app.py",
        "import kudupkg\n\ndef app():\n    return 'two ' + kudupkg.__version__\n",
    );
    site.write("static/site.css", "body { color: red }\n");
    site.remove("old.py");
    site.remove("data/a.txt");
    std::fs::remove_dir(site.repo.join("data")).unwrap();
    site.write("new/__init__.py", "NEW = True\n");
}

fn rollback_brings_back_the_release_before(site: &Site, settings: &[(&str, &str)]) {
    release_1(site);
    deploy(site, 1, settings).assert_ok();
    let first = app_files(&site.target);
    // A file the app writes itself: no rollback or deployment may lose it.
    std::fs::create_dir_all(site.target_file("uploads")).unwrap();
    std::fs::write(site.target_file("uploads/photo.jpg"), "jpeg").unwrap();

    release_2(site);
    deploy(site, 2, settings)
        .assert_ok()
        .assert_contains("Kept the previous release (commit 100000000000) for `kuduhook rollback`");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    let second = app_files(&site.target);
    assert_ne!(first, second);

    let run = rollback(site, &[]);
    run.assert_ok()
        .assert_contains("Rolling back")
        .assert_contains("from commit 200000000000 to commit 100000000000")
        .assert_contains("Undid release commit 200000000000: put back 5 files, removed 1")
        .assert_contains("env switched back to")
        .assert_contains("Rolled back to commit 100000000000 in ");
    let mut expected = first.clone();
    expected.insert("uploads/photo.jpg".into(), "jpeg".into());
    assert_eq!(app_files(&site.target), expected);
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(site.leftovers(), Vec::<String>::new());
    status(site)
        .assert_ok()
        .assert_contains("ROLLED BACK")
        .assert_contains("from 200000000000 to 100000000000")
        .assert_contains("Releases kept: 100000000000 (live, deployed just now) (none before it");

    // Nothing older is kept: a clear error, the site unchanged.
    rollback(site, &[])
        .assert_failed()
        .assert_contains("there is no release to roll back to")
        .assert_contains("only the live one (commit 100000000000)")
        .assert_contains("KUDUHOOK_KEEP_RELEASES")
        .assert_contains("Nothing was changed: the site still serves the release it served.");
    assert_eq!(app_files(&site.target), expected);

    // The next push deploys on top: release 2's changes again, plus one more file, and what
    // the rolled-back release had deleted is deleted again.
    site.write("more.py", "MORE = 1\n");
    deploy(site, 3, settings).assert_ok();
    let mut third = second.clone();
    third.insert("more.py".into(), "MORE = 1\n".into());
    third.insert("uploads/photo.jpg".into(), "jpeg".into());
    assert_eq!(app_files(&site.target), third);
    assert!(!site.target_file("data").exists());
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
    assert_eq!(site.leftovers(), Vec::<String>::new());
    status(site).assert_ok().assert_lacks("ROLLED BACK");
}

#[test]
fn rollback_brings_back_the_release_before_with_a_link_switch() {
    rollback_brings_back_the_release_before(&Site::app("3.11"), &[("KUDUHOOK_ENV_SWITCH", "link")]);
}

#[test]
fn rollback_brings_back_the_release_before_with_a_move_switch() {
    rollback_brings_back_the_release_before(&Site::app("3.11"), &[("KUDUHOOK_ENV_SWITCH", "move")]);
}

/// On App Service Linux's share: no links, the env swapped by renames and shipped as an
/// archive the platform extracts; the rollback makes the start file name the previous
/// release's archive again.
#[test]
fn rollback_on_the_share_brings_back_the_release_before_and_its_archive() {
    let (site, _share) = site_on_share(Site::app("3.11"), 0.2);
    rollback_brings_back_the_release_before(&site, &[]);
    rollback(&site, &[]).assert_ok();
    let manifest = std::fs::read_to_string(site.target.join("oryx-manifest.toml")).unwrap();
    let table: toml::Table = manifest.parse().unwrap();
    let archive = site
        .target
        .join(table["compressedVirtualEnvFile"].as_str().unwrap());
    let init = kuduhook::env::archive::read_text(
        &archive,
        "lib/python3.11/site-packages/kudupkg/__init__.py",
    )
    .unwrap()
    .unwrap();
    assert!(init.contains("\"1.0\""), "{init}");
}

#[test]
fn rollback_to_an_older_commit_when_more_releases_are_kept() {
    let site = Site::app("3.11");
    let keep = [("KUDUHOOK_KEEP_RELEASES", "3")];
    release_1(&site);
    deploy(&site, 1, &keep).assert_ok();
    let first = app_files(&site.target);
    release_2(&site);
    deploy(&site, 2, &keep).assert_ok();
    site.write("requirements.txt", "kudupkg==1.0\n");
    site.write("third.py", "THIRD = 3\n");
    deploy(&site, 3, &keep)
        .assert_ok()
        .assert_contains("(3 release(s) kept, KUDUHOOK_KEEP_RELEASES)");
    status(&site).assert_ok().assert_contains(
        "Releases kept, newest first: 300000000000 (live, deployed just now), 200000000000 \
         (deployed just now), 100000000000 (deployed just now); `kuduhook rollback` goes back \
         to 200000000000",
    );

    rollback(&site, &["--to", "99999"])
        .assert_failed()
        .assert_contains("no release kept before the live one has commit 99999")
        .assert_contains("commit 300000000000, commit 200000000000, commit 100000000000");
    rollback(&site, &["--to", "1000"])
        .assert_ok()
        .assert_contains("Undid release commit 300000000000")
        .assert_contains("Undid release commit 200000000000");
    assert_eq!(app_files(&site.target), first);
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    assert_eq!(site.leftovers(), Vec::<String>::new());
    assert!(site.kept_envs().is_empty());
}

#[test]
fn keeping_one_release_keeps_nothing_to_roll_back_to() {
    let site = Site::app("3.11");
    let keep = [("KUDUHOOK_KEEP_RELEASES", "1")];
    deploy(&site, 1, &keep).assert_ok();
    site.write("requirements.txt", "kudupkg==2.0\n");
    deploy(&site, 2, &keep)
        .assert_ok()
        .assert_contains("Removed the previous env")
        .assert_lacks("Kept the previous release");
    assert!(site.kept_envs().is_empty());
    assert_eq!(std::fs::read_dir(site.envs_dir()).unwrap().count(), 1);
    rollback(&site, &[])
        .assert_failed()
        .assert_contains("there is no release to roll back to");
    deploy(&site, 3, &[("KUDUHOOK_KEEP_RELEASES", "none")])
        .assert_failed()
        .assert_contains("a number of releases from 1 to 100");
}

/// An env changed in place (`KUDUHOOK_ENV_MODE=incremental`) cannot come back: the rollback
/// puts back the files and says the env stays.
#[test]
fn a_rollback_over_an_env_changed_in_place_puts_back_the_files_and_says_the_env_stays() {
    let site = Site::app("3.11");
    let incremental = [("KUDUHOOK_ENV_MODE", "incremental")];
    deploy(&site, 1, &incremental).assert_ok();
    let first = app_files(&site.target);
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.write("extra.py", "EXTRA = 1\n");
    deploy(&site, 2, &incremental).assert_ok();
    rollback(&site, &[])
        .assert_ok()
        .assert_contains("changed the env in place (KUDUHOOK_ENV_MODE=incremental)")
        .assert_contains("env kept (it was changed in place)");
    assert_eq!(app_files(&site.target), first);
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));
}

/// Through `git push` to a local App Service: the rolled-back site, started the way App
/// Service starts it, answers with the previous release, and the next push deploys on top.
#[test]
fn a_pushed_release_rolls_back_and_the_next_push_deploys_on_top() {
    let files: Vec<(&str, String)> = ["app.py", "requirements.txt", "runtime.txt"]
        .into_iter()
        .map(|file| (file, example(file)))
        .collect();
    let r = Rehearsal::new(&files);
    let minor = "3.11";
    let settings = platform_settings(minor);
    r.settings(
        &settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    r.push().assert_contains(SUCCEEDED);
    let first = r.head();
    let page = |r: &Rehearsal| first_page(&r.wwwroot(), minor, &[]).1;
    assert!(page(&r).starts_with("Hello from kuduhook!"));

    let app = example("app.py").replace("Hello from kuduhook!", "Release two!");
    r.write("app.py", &app);
    r.commit("release two");
    r.push().assert_contains(SUCCEEDED);
    assert!(page(&r).starts_with("Release two!"));

    r.kuduhook(&["rollback", "--target", r.wwwroot().to_str().unwrap()])
        .assert_ok()
        .assert_contains(&format!("to commit {}", &first[..12]));
    assert!(
        page(&r).starts_with("Hello from kuduhook!"),
        "the previous release serves"
    );

    let app = example("app.py").replace("Hello from kuduhook!", "Release three!");
    r.write("app.py", &app);
    r.commit("release three");
    r.push().assert_contains(SUCCEEDED);
    assert!(page(&r).starts_with("Release three!"));
}

/// The app settings of a Linux site on the Python `minor` stack, installing the example's
/// wheels offline.
fn platform_settings(minor: &str) -> Vec<(String, String)> {
    let wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wheels");
    let find_links = format!(
        "{} {} {}",
        wheels.join("flask-app").display(),
        wheels.join("platform").display(),
        support::shared_wheels().display()
    );
    vec![
        ("FRAMEWORK".into(), "PYTHON".into()),
        ("FRAMEWORK_VERSION".into(), minor.into()),
        ("PIP_NO_INDEX".into(), "1".into()),
        ("PIP_FIND_LINKS".into(), find_links),
    ]
}
