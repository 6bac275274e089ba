//! kuduhook on App Service Linux's own filesystem: `/home` is an Azure Files share over SMB,
//! played here by `tools/smbfs` (symlinks refused, no `renameat2` flags, mode bits ignored,
//! case-insensitive names, latency per metadata call). No setting is forced: kuduhook finds out
//! what the filesystem can do, and says so in the log.

mod support;

use std::path::Path;
use std::process::Command;

use support::Site;
use support::smb_mount::{SmbMount, site_on_share};

#[test]
fn the_share_behaves_like_app_services_home() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let share = SmbMount::at(&dir.path().join("home"), 0.0);
    let p = |name: &str| share.path.join(name);
    std::fs::write(p("App.py"), "one").unwrap();
    assert_eq!(
        std::fs::read_to_string(p("app.py")).unwrap(),
        "one",
        "case-insensitive"
    );
    std::fs::write(p("APP.PY"), "two").unwrap();
    let names: Vec<String> = std::fs::read_dir(&share.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["App.py"],
        "case-preserving: one file, its first name"
    );
    let refused = std::os::unix::fs::symlink("App.py", p("link")).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(95), "EOPNOTSUPP: {refused}");
    std::fs::set_permissions(p("App.py"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mode = std::fs::metadata(p("App.py")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "mode bits are ignored");
    std::fs::create_dir(p("a")).unwrap();
    std::fs::create_dir(p("b")).unwrap();
    let exchange = rustix_free_exchange(&p("a"), &p("b"));
    assert_eq!(exchange, Some(22), "renameat2 flags fail with EINVAL");
}

/// `renameat2(RENAME_EXCHANGE)` through the raw syscall: the errno it fails with.
fn rustix_free_exchange(a: &Path, b: &Path) -> Option<i32> {
    let script = format!(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.renameat2(-100, b'{}', -100, b'{}', 2)\nprint(ctypes.get_errno() if r else 0)",
        a.display(),
        b.display()
    );
    let out = Command::new(support::python("3.11"))
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// On a share that ignores case: a case-only rename takes the new case and loses nothing (a
/// case-sensitive sync would copy `app.py`, then delete `App.py`: the same file; kuduhook
/// deletes the old name first, then copies); two names
/// that differ only in case are refused before anything changes.
#[test]
fn case_only_renames_apply_and_case_collisions_are_refused_on_the_share() {
    let (site, _share) = site_on_share(Site::empty(), 0.2);
    site.write("App.py", "v1");
    site.write("Static/site.css", "body {}");
    // Its app.py is no Python app: the start check (which would refuse it) is off.
    let deploy = || site.deploy_with(&[], &[("KUDUHOOK_START_CHECK", "off")]);
    deploy().assert_ok();
    assert_eq!(support::names_in(&site.target), ["App.py", "Static"]);

    std::fs::rename(site.repo.join("App.py"), site.repo.join("app.py")).unwrap();
    std::fs::rename(site.repo.join("Static"), site.repo.join("static")).unwrap();
    // The old name goes first (into the undo log), then the file is copied under the new one:
    // never the other way round, which would delete the file just copied.
    let run = deploy();
    run.assert_ok();
    let deleted = run
        .log
        .find("Deleting file: 'App.py'")
        .expect("the old name goes");
    let copied = run
        .log
        .find("Copying file: 'app.py'")
        .expect("the new name comes");
    assert!(deleted < copied, "{}", run.log);
    assert_eq!(
        support::names_in(&site.target),
        ["Static", "app.py"],
        "the file takes the new case"
    );
    assert_eq!(
        std::fs::read_to_string(site.target.join("app.py")).unwrap(),
        "v1"
    );
    assert_eq!(
        std::fs::read_to_string(site.target.join("static/site.css")).unwrap(),
        "body {}",
        "a folder keeps its first case; what is in it is right"
    );

    site.write("APP.py", "v2");
    deploy()
        .assert_failed()
        .assert_contains("the repository holds both APP.py and app.py")
        .assert_contains("one would silently replace the other")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(
        std::fs::read_to_string(site.target.join("app.py")).unwrap(),
        "v1"
    );
}

/// The share refuses links, so a repository's links cannot be copied as links (KuduSync's
/// users meet this with a committed venv's bin/python). Each kind has one outcome, and the
/// sync never stops half-way.
#[test]
fn links_in_the_repository_are_synced_as_copies_on_the_share() {
    let (site, _share) = site_on_share(Site::empty(), 0.2);
    site.write("data.txt", "the data");
    site.write("assets/logo.txt", "a logo");
    let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, site.repo.join(at)).unwrap();
    link("data.txt", "to-file");
    link("assets", "to-folder");
    link("missing.txt", "dangling");
    link("/etc/hostname", "outside");
    link("..", "assets/loop");
    site.deploy(&[])
        .assert_ok()
        .assert_contains("to-file is a link to data.txt, and the site's filesystem refuses links: synced as a copy")
        .assert_contains("dangling is a link to missing.txt, and the site's filesystem refuses links: it leads nowhere")
        .assert_contains("outside is a link to /etc/hostname, and the site's filesystem refuses links: it leads outside")
        .assert_contains("assets/loop is a link to .., and the site's filesystem refuses links: it leads to a folder holding it");
    let target = &site.target;
    assert_eq!(
        std::fs::read_to_string(target.join("to-file")).unwrap(),
        "the data"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("to-folder/logo.txt")).unwrap(),
        "a logo"
    );
    assert_eq!(
        support::names_in(target),
        ["assets", "data.txt", "to-file", "to-folder"]
    );
    assert_eq!(support::names_in(&target.join("assets")), ["logo.txt"]);

    // Unchanged, nothing is copied again.
    site.deploy(&[])
        .assert_ok()
        .assert_contains("Nothing changed");
}

/// uv's own venv links its interpreter, which the share refuses: the env is made with
/// `venv --copies` instead and uv installs into it; a truthy force-rebuild setting rebuilds on
/// every deployment there too, and the env's console scripts run after each swap.
#[test]
fn uv_envs_and_forced_rebuilds_work_on_the_share() {
    let (site, _share) = site_on_share(Site::app("3.11"), 0.2);
    let uv = support::uv().display().to_string();
    let uv_settings = [("KUDUHOOK_INSTALLER", "uv"), ("KUDUHOOK_UV", uv.as_str())];
    site.deploy_with(&[], &uv_settings)
        .assert_ok()
        .assert_contains("refuses symbolic links")
        .assert_contains(
            "The site's filesystem refuses links: uv 0.13.9's cache lives on local disk",
        )
        .assert_contains("Copied the env built on local disk (")
        .assert_contains("(move switch");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));
    site.write("requirements.txt", "kudupkg==2.0\n");
    site.deploy_with(&[], &uv_settings)
        .assert_ok()
        .assert_contains("changed kudupkg 1.0 -> 2.0");
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("2.0"));

    let forced = [("KUDUHOOK_FORCE_ENV_REBUILD", "true")];
    for _ in 0..2 {
        site.deploy_with(&[], &forced)
            .assert_ok()
            .assert_contains("forced by")
            .assert_contains("(move switch");
        let hello = Command::new(site.env_dir().join("bin/kudupkg-hello"))
            .output()
            .unwrap();
        assert!(hello.status.success(), "{hello:?}");
    }
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

/// `git` in `dir`, as a developer runs it.
fn git_in(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// The example app's second version: the code change the redeploys below sync.
const APP_V2: &str = "import kudupkg\n\ndef app():\n    return 'v2 ' + kudupkg.__version__\n";

/// Whether the site holds [`APP_V2`].
fn serves_v2(site: &Site) -> bool {
    std::fs::read_to_string(site.target.join("app.py"))
        .unwrap()
        .contains("'v2 '")
}

/// The example app with `extra` more files in 20 folders, not yet on the share.
fn app_with_files(extra: usize) -> Site {
    let site = Site::app("3.11");
    for i in 0..extra {
        site.write(
            &format!("static/part{}/file{i}.txt", i % 20),
            &format!("{i}\n"),
        );
    }
    site
}

/// A site whose repository is a git checkout with `extra` more files, deployed once onto the
/// share; then a one-line change to app.py is committed. Returns the site, its share, and the
/// round trips the code-only redeploy cost.
fn code_only_redeploy(extra: usize) -> (Site, SmbMount, u64, String) {
    let site = app_with_files(extra);
    git_in(&site.repo, &["init", "-q"]);
    git_in(&site.repo, &["add", "-A"]);
    git_in(&site.repo, &["commit", "-q", "-m", "first"]);
    let (site, share) = site_on_share(site, 0.0);
    site.deploy(&[]).assert_ok().assert_contains(
        "Walking the whole site: a first deployment: there is nothing to compare with",
    );
    site.write("app.py", APP_V2);
    git_in(&site.repo, &["commit", "-q", "-am", "a code change"]);
    let before = share.calls();
    let run = site.deploy(&[]);
    run.assert_ok();
    let calls = share.calls() - before;
    (site, share, calls, run.log)
}

/// A code-only redeploy is planned from git's diff: no walk of the site, no look at its
/// unchanged files, so its round trips on the share do not grow with the repository (600 more
/// files cost none), and the changed file is served. Anything unproven walks, and says why.
#[test]
fn a_code_only_redeploy_on_the_share_costs_what_changed() {
    let (_small, _share, small_calls, _) = code_only_redeploy(0);
    let (site, share, calls, log) = code_only_redeploy(600);
    eprintln!("code-only redeploy: {small_calls} round trips (4 files), {calls} (604 files)");
    for said in [
        "Copying file: 'app.py'",
        "(from git ",
        "1 changed path, without walking the site)",
    ] {
        assert!(log.contains(said), "{said:?} in:\n{log}");
    }
    assert!(serves_v2(&site), "the change is served");
    assert!(
        calls <= small_calls + 10,
        "600 more files in the repository cost {calls} round trips against {small_calls}"
    );

    // The app writes a file at the site's top: unproven, so the next sync walks, and keeps it.
    std::fs::write(site.target.join("uploaded.db"), "data").unwrap();
    site.write("static/part1/new.txt", "new\n");
    git_in(&site.repo, &["add", "-A"]);
    git_in(&site.repo, &["commit", "-q", "-m", "another"]);
    let before = share.calls();
    site.deploy(&[]).assert_ok().assert_contains(
        "Walking the whole site: the site's top folder changed since the last deployment",
    );
    assert!(
        share.calls() - before > calls + 600,
        "the walk looks at every file"
    );
    assert!(site.target.join("uploaded.db").is_file());

    // With files the commit does not hold in the checkout, or when asked for: a walk.
    site.write("build/output.js", "generated\n");
    for _ in 0..2 {
        // (The second time too: the first walk could not be recorded as a commit's.)
        site.deploy(&[]).assert_ok().assert_contains(
            "Walking the whole site: the repository holds files its commit does not (build/output.js)",
        );
    }
    site.deploy_with(&[], &[("KUDUHOOK_SYNC_VERIFY", "full")])
        .assert_ok()
        .assert_contains(
            "Walking the whole site: asked for (full, by setting KUDUHOOK_SYNC_VERIFY (environment))",
        );
    assert!(site.target.join("build/output.js").is_file());
}

/// On App Service the repository is on the share too (`/home/site/repository`). Whether its
/// checkout holds exactly its commit is proven from git's index (each tracked file's stat,
/// across the share in parallel; the file the commit just wrote, in the index's own second, by
/// its content), not by `git status`; a file the commit does not hold is still found.
#[test]
fn a_checkout_on_the_share_is_proven_clean_from_gits_index() {
    let site = Site::app("3.11");
    for i in 0..200 {
        site.write(
            &format!("static/part{}/file{i}.txt", i % 10),
            &format!("{i}\n"),
        );
    }
    let (mut site, _share) = site_on_share(site, 0.0);
    let repo = site.target.parent().unwrap().join("repository");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&site.repo)
        .arg(&repo)
        .status()
        .unwrap();
    assert!(copied.success());
    site.repo = repo;
    git_in(&site.repo, &["init", "-q"]);
    git_in(&site.repo, &["add", "-A"]);
    git_in(&site.repo, &["commit", "-q", "-m", "first"]);
    site.deploy(&[]).assert_ok();

    site.write("app.py", APP_V2);
    git_in(&site.repo, &["commit", "-q", "-am", "a code change"]);
    site.deploy(&[])
        .assert_ok()
        .assert_contains("1 changed path, without walking the site)")
        .assert_lacks("git status found the checkout clean");
    assert!(serves_v2(&site));

    // Edited without a commit, then a file the commit does not hold: git decides, the walk
    // copies what the checkout holds.
    site.write("static/part3/file3.txt", "edited\n");
    site.deploy(&[]).assert_ok().assert_contains(
        "Walking the whole site: the repository holds files its commit does not \
         (static/part3/file3.txt)",
    );
    // (That walk could not be described by a commit: the next one walks too, then records.)
    git_in(&site.repo, &["commit", "-q", "-am", "the edit"]);
    site.deploy(&[]).assert_ok();
    site.write("build/output.js", "generated\n");
    site.deploy(&[]).assert_ok().assert_contains(
        "Walking the whole site: the repository holds files its commit does not (build/output.js)",
    );
    assert!(site.target.join("build/output.js").is_file());
    assert_eq!(
        std::fs::read_to_string(site.target.join("static/part3/file3.txt")).unwrap(),
        "edited\n"
    );
}

/// App Service's own layout: the repository is on the share too (`/home/site/repository`),
/// and before each deployment Kudu brings it to the pushed commit with `git checkout <id>
/// --force`. kuduhook trusts that checkout (Kudu names the commit, git's index was written
/// since the last deployment) instead of a stat per tracked file, and reads again only the
/// folders whose time moved. A tracked file edited on the server is put back by Kudu's
/// checkout; a file someone left there that no commit tracks is found, and deployed by a walk
/// as KuduSync would.
#[test]
fn a_push_on_app_services_layout_trusts_kudus_checkout_and_finds_what_it_leaves() {
    use support::rehearsal::{Rehearsal, SUCCEEDED};
    let mut files = vec![(
        "app.py".to_string(),
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v1']\n"
            .to_string(),
    )];
    for i in 0..200 {
        files.push((
            format!("static/part{}/file{i}.txt", i % 10),
            format!("{i}\n"),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let r = Rehearsal::on_share(&files, 0.0);
    let repository = r.service.join("site/repository");
    r.push()
        .assert_contains("Walking the whole site")
        .assert_contains(SUCCEEDED);

    let change = |text: &str| {
        r.write(
            "app.py",
            &format!(
                "def app(environ, start_response):\n    start_response('200 OK', [])\n    \
                 return [b'{text}']\n"
            ),
        );
        r.commit(text);
    };
    change("v2");
    r.push()
        .assert_contains("The repository is Kudu's checkout of its commit")
        .assert_contains("files trusted without a stat each")
        .assert_contains("1 changed path, without walking the site)")
        .assert_lacks("checked one by one")
        .assert_contains(SUCCEEDED);
    let served = || std::fs::read_to_string(r.wwwroot().join("app.py")).unwrap();
    assert!(served().contains("v2"));

    // Edited on the server (SSH): Kudu's checkout puts the commit's file back.
    std::fs::write(
        repository.join("static/part3/file3.txt"),
        "edited on the server\n",
    )
    .unwrap();
    change("v3");
    r.push()
        .assert_contains("files trusted without a stat each")
        .assert_contains(SUCCEEDED);
    assert_eq!(
        std::fs::read_to_string(repository.join("static/part3/file3.txt")).unwrap(),
        "3\n"
    );
    assert!(served().contains("v3"));

    // Left there by someone, tracked by no commit: found in the one folder whose time moved,
    // then the site is walked and gets it, as KuduSync would copy it.
    std::fs::write(repository.join("static/part4/left.txt"), "left\n").unwrap();
    change("v4");
    r.push()
        .assert_contains(
            "Walking the whole site: the repository holds files its commit does not \
             (static/part4/left.txt)",
        )
        .assert_contains(SUCCEEDED);
    assert!(r.wwwroot().join("static/part4/left.txt").is_file());
    assert!(served().contains("v4"));

    // Gone again: the next push walks once more (the last walk could not be recorded as a
    // commit's), then trusts Kudu's checkout again.
    std::fs::remove_file(repository.join("static/part4/left.txt")).unwrap();
    change("v5");
    r.push().assert_contains(SUCCEEDED);
    change("v6");
    r.push()
        .assert_contains("files trusted without a stat each")
        .assert_contains("without walking the site)")
        .assert_contains(SUCCEEDED);
    assert!(served().contains("v6"));
}

/// What kuduhook asked git during a deployment: a `git` first on `PATH` that notes each call
/// and runs the real one.
struct GitCalls {
    dir: tempfile::TempDir,
}

impl GitCalls {
    fn new() -> GitCalls {
        let real = std::env::split_paths(&std::env::var("PATH").unwrap())
            .map(|dir| dir.join("git"))
            .find(|git| git.is_file())
            .expect("git on PATH");
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("git");
        let log = dir.path().join("calls");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        GitCalls { dir }
    }

    /// `PATH` with the noting `git` first.
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap()
        )
    }

    /// Each call's arguments, in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// A one-file push with the repository on the share (`/home/site/repository`), brought to the
/// commit as Kudu does (the commit arrives in its branch, `git checkout <id> --force`,
/// `SCM_COMMIT_ID`): the round trips of the deployment grow with the repository's folders, not
/// its files. Returns them, the log, and the git processes kuduhook ran.
fn kudu_push_on_the_share(extra: usize) -> (u64, String, Vec<String>) {
    let site = app_with_files(extra);
    let developer = site.repo.clone();
    git_in(&developer, &["init", "-q"]);
    git_in(&developer, &["add", "-A"]);
    git_in(&developer, &["commit", "-q", "-m", "first"]);
    let (mut site, share) = site_on_share(site, 0.0);
    site.repo = site.target.parent().unwrap().join("repository");
    std::fs::create_dir_all(&site.repo).unwrap();
    git_in(&site.repo, &["init", "-q"]);
    let id = support::kudu_checkout(&site.repo, &developer);
    // Folders older than 2 s when they are recorded: the record vouches for them (a newer one
    // is read again at the next push).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // The first deployment checks the files (or, as many were written in the index's own
    // second, asks git) and records the folders.
    site.deploy_with(&[], &[("SCM_COMMIT_ID", &id)]).assert_ok();
    std::fs::write(developer.join("app.py"), APP_V2).unwrap();
    git_in(&developer, &["commit", "-q", "-am", "a code change"]);
    let id = support::kudu_checkout(&site.repo, &developer);
    let before = share.calls();
    let git = GitCalls::new();
    let run = site.deploy_with(&[], &[("SCM_COMMIT_ID", &id), ("PATH", &git.path())]);
    run.assert_ok();
    let calls = share.calls() - before;
    assert!(serves_v2(&site), "the change is served");
    (calls, run.log, git.calls())
}

/// Kudu's checkout trusted on the share: 600 more files in 20 more folders cost round trips for
/// the folders (each stat'ed, before and after the start check), none for the files, which the
/// check one by one would stat each; and no git process (each costs its own round trips there):
/// the commit, its tree and what changed are read from git's files.
#[test]
fn a_push_with_the_repository_on_the_share_costs_its_folders_not_its_files() {
    let (small, _, _) = kudu_push_on_the_share(0);
    let (big, log, git) = kudu_push_on_the_share(600);
    assert_eq!(
        git,
        Vec::<String>::new(),
        "git processes run by a one-file push:\n{log}"
    );
    eprintln!("one-file push, repository on the share: {small} round trips (4 files), {big} (604)");
    for said in [
        "The repository is Kudu's checkout of its commit",
        "files trusted without a stat each",
        "1 changed path, without walking the site)",
    ] {
        assert!(log.contains(said), "{said:?} in:\n{log}");
    }
    assert!(
        big <= small + 60,
        "600 more files in 20 folders cost {big} round trips against {small}"
    );
}
