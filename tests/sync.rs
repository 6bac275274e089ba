//! `kuduhook sync`, the drop-in for KUDU_SYNC_CMD, run as a user's deploy script would run it:
//! KuduSync's flags, real folders, manifests on disk.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::{Run, kuduhook};

/// A source and a target side by side, with manifests in a `deployments` folder as Kudu keeps
/// them, and a folder outside both that nothing may touch.
struct Dirs {
    _root: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    dst: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-sync-")
            .tempdir()
            .unwrap();
        let path = root.path().to_path_buf();
        let dirs = Dirs {
            src: path.join("repository"),
            dst: path.join("wwwroot"),
            root: path,
            _root: root,
        };
        fs::create_dir_all(&dirs.src).unwrap();
        fs::create_dir_all(dirs.root.join("deployments")).unwrap();
        dirs
    }

    fn manifest(&self, name: &str) -> PathBuf {
        self.root.join("deployments").join(name).join("manifest")
    }

    fn write(&self, relative: &str, content: &str) -> PathBuf {
        write(&self.src, relative, content)
    }

    fn write_target(&self, relative: &str, content: &str) -> PathBuf {
        write(&self.dst, relative, content)
    }

    fn target(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.dst.join(relative)).ok()
    }

    /// `kuduhook sync -f <src> -t <dst>` plus `args`, with no TTY and a bare environment.
    fn sync(&self, args: &[&str]) -> Run {
        self.sync_with(args, &[])
    }

    fn sync_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(kuduhook());
        cmd.arg("sync")
            .arg("-f")
            .arg(&self.src)
            .arg("-t")
            .arg(&self.dst)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied());
        run(cmd)
    }

    /// A sync as Kudu runs it: previous and next manifest by deployment name.
    fn deploy(&self, previous: &str, next: &str) -> Run {
        self.deploy_with(previous, next, &[])
    }

    fn deploy_with(&self, previous: &str, next: &str, env: &[(&str, &str)]) -> Run {
        let (p, n) = (self.manifest(previous), self.manifest(next));
        fs::create_dir_all(n.parent().unwrap()).unwrap();
        self.sync_with(&["-p", p.to_str().unwrap(), "-n", n.to_str().unwrap()], env)
    }
}

fn write(base: &Path, relative: &str, content: &str) -> PathBuf {
    let path = base.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    path
}

fn run(cmd: Command) -> Run {
    Run::of(cmd)
}

/// Every path under `dir` (files, folders, links), `/`-separated, sorted; folders end in `/`.
fn tree(dir: &Path) -> Vec<String> {
    support::walk(dir)
        .into_iter()
        .map(|(path, is_dir)| if is_dir { format!("{path}/") } else { path })
        .collect()
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// 1985-10-26, the timestamp npm and some archives pin every file to.
fn pinned_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(499_137_600)
}

#[test]
fn kudusync_flags_sync_delete_what_the_manifest_lists_and_keep_app_files() {
    let d = Dirs::new();
    d.write("app.py", "print('v1')\n");
    d.write("static/site.css", "body {}\n");
    d.write("old.py", "old\n");
    d.write("cache/x.pyc", "bytecode");
    d.write("notes/draft.md", "draft");
    d.write_target("hostingstart.html", "<h1>placeholder</h1>");
    d.deploy("none", "one")
        .assert_ok()
        .assert_contains("Copying file: 'app.py'")
        .assert_contains("Deleting file: 'hostingstart.html'");
    assert_eq!(d.target("app.py").as_deref(), Some("print('v1')\n"));
    assert_eq!(d.target("hostingstart.html"), None, "first deployment");
    let manifest = fs::read_to_string(d.manifest("one")).unwrap();
    assert!(
        manifest.lines().any(|l| l == "static/site.css"),
        "{manifest}"
    );

    // -i: KuduSync's ignore list, globs at any depth and paths from the root.
    let m = d.manifest("ignored");
    fs::create_dir_all(m.parent().unwrap()).unwrap();
    d.sync(&[
        "-p",
        d.manifest("one").to_str().unwrap(),
        "-n",
        m.to_str().unwrap(),
        "-i",
        "*.pyc;notes/draft.md",
    ])
    .assert_ok();
    let ignored = fs::read_to_string(&m).unwrap();
    assert!(
        !ignored.contains("x.pyc") && !ignored.contains("draft.md"),
        "{ignored}"
    );

    // The app writes a file; the repository drops one: only the repository's goes.
    d.write_target("uploads/photo.jpg", "jpeg");
    d.write_target("app.log", "log");
    fs::remove_file(d.src.join("old.py")).unwrap();
    d.deploy("one", "two")
        .assert_ok()
        .assert_contains("Deleting file: 'old.py'")
        .assert_contains("kept 2 entries not from the repository");
    assert_eq!(d.target("old.py"), None);
    assert_eq!(d.target("uploads/photo.jpg").as_deref(), Some("jpeg"));
    assert_eq!(d.target("app.log").as_deref(), Some("log"));

    // Unchanged: nothing copied, the summary says so.
    d.deploy("two", "three")
        .assert_ok()
        .assert_contains("Nothing changed")
        .assert_lacks("Copying file");
}

/// A folder whose times and inode are as the record has them, unchanged for 2 seconds before
/// it was taken, is not read again, and the log says how many; a file rewritten in place there
/// (same size, same time) is still found, and a folder that got a new file is read.
#[test]
fn a_resync_reads_only_the_folders_changed_since_the_record() {
    let d = Dirs::new();
    d.write("app.py", "print('v1')\n");
    let module = d.write("pkg/m0.py", "X = 1\n");
    d.write("static/site.css", "body {}\n");
    d.deploy("none", "one").assert_ok();
    // Everything changed just before the first record: a later one vouches for it.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    d.deploy("one", "two")
        .assert_ok()
        .assert_contains("Nothing changed")
        .assert_lacks("folders not read");
    let time = fs::metadata(&module).unwrap().modified().unwrap();
    fs::write(&module, "X = 2\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&module)
        .unwrap()
        .set_modified(time)
        .unwrap();
    d.write("static/new.css", "p {}\n");
    d.deploy("two", "three")
        .assert_ok()
        .assert_contains(
            "2 of the source's 3 folders not read: their times and inode are as the record of \
             the last sync has them",
        )
        .assert_contains("Copying file: 'pkg/m0.py'")
        .assert_contains("Copying file: 'static/new.css'")
        .assert_contains("(from the record of the last sync, 2 changed paths, without walking");
    assert_eq!(d.target("pkg/m0.py").as_deref(), Some("X = 2\n"));
    assert_eq!(d.target("static/new.css").as_deref(), Some("p {}\n"));
}

/// An unchanged re-sync given KuduSync's one manifest for both writes nothing: not the site's
/// folder (once the last sync's state says whether its names ignore case, it is not probed
/// again), not the manifest, not the records kept beside the site.
#[test]
fn an_unchanged_resync_writes_nothing() {
    let d = Dirs::new();
    d.write("app.py", "print('v1')\n");
    d.write("pkg/m0.py", "X = 1\n");
    // Older than the record by 2 s: the record vouches for them as they are.
    std::thread::sleep(Duration::from_millis(2100));
    let manifest = d.root.join("manifest");
    let manifest = manifest.to_str().unwrap();
    d.sync(&["-p", manifest, "-n", manifest]).assert_ok();
    let before = times_beside_the_source(&d.root);
    assert!(before.len() > 5, "{before:?}");
    for _ in 0..2 {
        d.sync(&["-p", manifest, "-n", manifest])
            .assert_ok()
            .assert_contains("Nothing changed")
            .assert_contains("from the record of the last sync, 0 changed paths");
        assert_eq!(times_beside_the_source(&d.root), before);
    }
}

/// Every path under `root` but the source (`repository`), with its modification time.
fn times_beside_the_source(root: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut out = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path == root.join("repository") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                folders.push(path.clone());
            }
            out.push((path, meta.modified().unwrap()));
        }
    }
    out.sort();
    out
}

/// Given both manifests, a re-sync is planned from the record of the files the last sync
/// copied (by content), without walking the target; anything the record cannot vouch for walks,
/// and says why.
#[test]
fn a_resync_is_planned_from_the_record_of_the_last_sync_unless_it_cannot_be_trusted() {
    let d = Dirs::new();
    d.write("app.py", "print('v1')\n");
    for i in 0..20 {
        d.write(&format!("pkg/m{i}.py"), "X = 1\n");
    }
    d.deploy("none", "one")
        .assert_ok()
        .assert_contains("Copying file: 'app.py'");
    d.write("app.py", "print('v2')\n");
    d.deploy("one", "two")
        .assert_ok()
        .assert_contains("Copying file: 'app.py'")
        .assert_contains(
            "(from the record of the last sync, 1 changed path, without walking the site)",
        );
    assert_eq!(d.target("app.py").as_deref(), Some("print('v2')\n"));
    d.deploy("two", "three")
        .assert_ok()
        .assert_contains("Nothing changed in ")
        .assert_contains("from the record of the last sync, 0 changed paths");
    // Something added at the site's top: the record no longer says what the site holds.
    d.write_target("upload.bin", "the app's");
    d.write("pkg/m0.py", "X = 2\n");
    d.write("pkg/new.py", "NEW = 1\n");
    d.deploy("three", "four")
        .assert_ok()
        .assert_contains("Walking the whole site: the site's top folder changed")
        .assert_contains("Copying file: 'pkg/m0.py'")
        .assert_contains("kept 1 entry not from the repository");
    // A previous manifest that is not the one the last sync wrote (that deployment failed
    // later, so Kudu gives the one before).
    d.write("pkg/m1.py", "X = 2\n");
    d.deploy("three", "five")
        .assert_ok()
        .assert_contains("Walking the whole site: the previous manifest is not the one");
    // Asked to walk.
    d.deploy_with("five", "six", &[("KUDUHOOK_SYNC_VERIFY", "full")])
        .assert_ok()
        .assert_contains("Walking the whole site: asked for (KUDUHOOK_SYNC_VERIFY=full)")
        .assert_contains("Nothing changed: 22 files unchanged");
    assert_eq!(d.target("upload.bin").as_deref(), Some("the app's"));
}

#[test]
fn what_if_prints_the_changes_and_changes_nothing() {
    let d = Dirs::new();
    d.write("app.py", "x");
    let next = d.manifest("one");
    d.sync(&["-w", "-n", next.to_str().unwrap()])
        .assert_ok()
        .assert_contains("what-if")
        .assert_contains("Copying file: 'app.py'")
        .assert_contains("Would copy 1 file");
    assert!(!d.dst.exists(), "what-if created the target");
    assert!(!next.exists(), "what-if wrote a manifest");
}

#[test]
fn quiet_prints_nothing_and_verbose_limits_the_lines() {
    let d = Dirs::new();
    for i in 0..5 {
        d.write(&format!("f{i}.py"), "x");
    }
    let quiet = d.sync(&["-q", "-p", d.manifest("missing").to_str().unwrap()]);
    quiet.assert_ok();
    assert_eq!(quiet.log.trim(), "", "quiet printed: {}", quiet.log);

    let d = Dirs::new();
    for i in 0..5 {
        d.write(&format!("f{i}.py"), "x");
    }
    let verbose = d.sync(&["-v", "2", "--perf"]);
    verbose
        .assert_ok()
        .assert_contains("... and 3 more changes")
        .assert_contains("Operation took");
    assert_eq!(
        verbose.log.matches("Copying file").count(),
        2,
        "{}",
        verbose.log
    );
    d.sync(&["-q", "-v", "2"]).assert_failed();
}

#[test]
fn a_changed_size_is_caught_under_a_pinned_mtime_and_checksum_catches_the_rest() {
    let d = Dirs::new();
    let file = d.write("lib/vendor.js", "var a = 1;");
    set_mtime(&file, pinned_time());
    d.sync(&[]).assert_ok();

    // New content, new size, same pinned mtime: KuduSync misses it; we do not.
    fs::write(&file, "var a = 12;").unwrap();
    set_mtime(&file, pinned_time());
    d.sync(&[])
        .assert_ok()
        .assert_contains("Copying file: 'lib/vendor.js'");
    assert_eq!(d.target("lib/vendor.js").as_deref(), Some("var a = 12;"));

    // Same size, same pinned mtime: only a content comparison can tell.
    fs::write(&file, "var a = 13;").unwrap();
    set_mtime(&file, pinned_time());
    d.sync(&[]).assert_ok().assert_contains("Nothing changed");
    d.sync(&["--checksum"])
        .assert_ok()
        .assert_contains("Copying file: 'lib/vendor.js'");
    assert_eq!(d.target("lib/vendor.js").as_deref(), Some("var a = 13;"));

    // Full-compare names: web.config always, more with --full-compare.
    let config = d.write("web.config", "<a/>");
    let settings = d.write("conf/settings.ini", "a=1");
    for f in [&config, &settings] {
        set_mtime(f, pinned_time());
    }
    d.sync(&[]).assert_ok();
    fs::write(&config, "<b/>").unwrap();
    fs::write(&settings, "a=2").unwrap();
    for f in [&config, &settings] {
        set_mtime(f, pinned_time());
    }
    d.sync(&["--full-compare", "*.ini"])
        .assert_ok()
        .assert_contains("Copying file: 'web.config'")
        .assert_contains("Copying file: 'conf/settings.ini'");
    assert_eq!(d.target("web.config").as_deref(), Some("<b/>"));
    // A copy keeps the source's mtime, so the next sync sees it unchanged.
    let copied = fs::metadata(d.dst.join("web.config"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(copied, pinned_time());
}

#[test]
fn a_case_only_rename_is_applied() {
    let d = Dirs::new();
    d.write("App.py", "app");
    d.write("Static/Site.css", "css");
    d.deploy("none", "one").assert_ok();
    fs::rename(d.src.join("App.py"), d.src.join("app.py")).unwrap();
    fs::rename(d.src.join("Static"), d.src.join("static")).unwrap();
    d.deploy("one", "two").assert_ok();
    assert_eq!(
        tree(&d.dst),
        vec!["app.py", "static/", "static/Site.css"],
        "the old names must go"
    );
}

#[test]
fn a_folder_becomes_a_file_and_a_file_becomes_a_folder() {
    let d = Dirs::new();
    d.write("config/a.py", "a");
    d.write("config/sub/b.py", "b");
    d.write("data", "a file");
    d.deploy("none", "one").assert_ok();

    fs::remove_dir_all(d.src.join("config")).unwrap();
    d.write("config", "now a file");
    fs::remove_file(d.src.join("data")).unwrap();
    d.write("data/inner.txt", "now a folder");
    d.deploy("one", "two").assert_ok();
    assert_eq!(d.target("config").as_deref(), Some("now a file"));
    assert_eq!(d.target("data/inner.txt").as_deref(), Some("now a folder"));

    // And back again.
    fs::remove_file(d.src.join("config")).unwrap();
    d.write("config/a.py", "a2");
    fs::remove_dir_all(d.src.join("data")).unwrap();
    d.write("data", "a file again");
    d.deploy("two", "three").assert_ok();
    assert_eq!(tree(&d.dst), vec!["config/", "config/a.py", "data"]);
}

#[test]
fn a_folder_holding_app_files_is_not_replaced_and_nothing_changes() {
    let d = Dirs::new();
    d.write("media/logo.png", "png");
    d.write("app.py", "v1");
    d.deploy("none", "one").assert_ok();
    d.write_target("media/upload.jpg", "the user's photo");
    fs::remove_dir_all(d.src.join("media")).unwrap();
    d.write("media", "a file now");
    d.write("app.py", "v2 is longer");
    let before = tree(&d.dst);
    d.deploy("one", "two")
        .assert_failed()
        .assert_contains("the repository has a file named media where the site has a folder")
        .assert_contains("holds 1 entry that no deployment put there")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(tree(&d.dst), before);
    assert_eq!(d.target("app.py").as_deref(), Some("v1"));
    assert_eq!(
        d.target("media/upload.jpg").as_deref(),
        Some("the user's photo")
    );
}

#[test]
fn files_of_a_deployment_that_failed_later_are_still_cleaned_up() {
    let d = Dirs::new();
    d.write("app.py", "v1");
    d.deploy("none", "one").assert_ok();
    // Deployment two syncs a new file, then fails in a later step: Kudu never makes its
    // manifest "previous", so KuduSync would keep experiment.py forever.
    d.write("experiment.py", "oops");
    d.deploy("one", "two").assert_ok();
    d.write_target("upload.txt", "the app's");
    fs::remove_file(d.src.join("experiment.py")).unwrap();
    d.deploy("one", "three")
        .assert_ok()
        .assert_contains("Deleting file: 'experiment.py'");
    assert_eq!(d.target("experiment.py"), None);
    assert_eq!(d.target("upload.txt").as_deref(), Some("the app's"));
}

#[cfg(unix)]
#[test]
fn a_hostile_manifest_touches_nothing_outside_the_target() {
    let d = Dirs::new();
    let outside = d.root.join("outside");
    let victim = write(&outside, "victim.txt", "must survive");
    d.write("app.py", "x");
    d.deploy("none", "one").assert_ok();
    // A link in the target (made by the app, or by anyone) into the outside folder.
    std::os::unix::fs::symlink(&outside, d.dst.join("linked")).unwrap();
    let hostile = d.manifest("hostile");
    fs::create_dir_all(hostile.parent().unwrap()).unwrap();
    fs::write(
        &hostile,
        format!(
            "app.py\n../outside/victim.txt\n{}\nlinked/victim.txt\nlinked\n..\\outside\nnul\0byte\n",
            victim.display()
        ),
    )
    .unwrap();
    let run = d.sync_with(
        &[
            "-p",
            hostile.to_str().unwrap(),
            "-n",
            d.manifest("two").to_str().unwrap(),
        ],
        &[],
    );
    run.assert_ok()
        .assert_contains("line 2: \"../outside/victim.txt\" refused, it climbs out of the target")
        .assert_contains(&format!(
            "line 3: \"{}\" refused, it is an absolute path",
            victim.display()
        ))
        .assert_contains("a manifest lists linked/victim.txt, inside linked, which is a link")
        .assert_contains("line 6: \"..\\outside\" refused")
        .assert_contains("line 7: \"nul\\0byte\" refused, it contains a NUL character");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "must survive");
    // The link itself is listed, so it goes as a link; what it pointed to stays.
    assert!(!d.dst.join("linked").exists());
    assert!(outside.join("victim.txt").is_file());

    // -x deletes whatever the source lacks, but never follows a link out.
    std::os::unix::fs::symlink(&outside, d.dst.join("linked2")).unwrap();
    d.sync(&["-x"]).assert_ok();
    assert!(!d.dst.join("linked2").exists());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "must survive");
}

#[cfg(unix)]
#[test]
fn links_inside_the_source_are_copied_as_links_and_links_out_are_refused() {
    use std::os::unix::fs::symlink;
    let d = Dirs::new();
    let secret = write(&d.root, "secret.txt", "outside the repository");
    d.write("pkg/real.py", "real");
    symlink("pkg/real.py", d.src.join("alias.py")).unwrap();
    symlink(d.src.join("pkg"), d.src.join("abs-pkg")).unwrap();
    symlink(&secret, d.src.join("leak.txt")).unwrap();
    symlink("../../secret.txt", d.src.join("pkg/leak2.txt")).unwrap();
    d.sync(&[])
        .assert_ok()
        .assert_contains("leak.txt links to")
        .assert_contains("pkg/leak2.txt links to ../../secret.txt, outside the repository");
    assert_eq!(
        fs::read_link(d.dst.join("alias.py")).unwrap(),
        Path::new("pkg/real.py")
    );
    // An absolute link into the repository points into the site, not back at the repository.
    assert_eq!(
        fs::read_link(d.dst.join("abs-pkg")).unwrap(),
        Path::new("pkg")
    );
    assert_eq!(d.target("abs-pkg/real.py").as_deref(), Some("real"));
    assert!(!d.dst.join("leak.txt").exists() && !d.dst.join("pkg/leak2.txt").exists());

    // With --outside-links error, the sync fails before changing anything.
    d.write("new.py", "new");
    d.sync(&["--outside-links", "error"])
        .assert_failed()
        .assert_contains("is a link to")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(d.target("new.py"), None);
}

#[test]
fn a_committed_virtual_environment_is_reported_and_not_synced() {
    let d = Dirs::new();
    d.write("app.py", "x");
    let status = Command::new(support::python("3.11"))
        .args(["-m", "venv", "--without-pip"])
        .arg(d.src.join(".venv"))
        .status()
        .unwrap();
    assert!(status.success());
    d.sync(&[])
        .assert_ok()
        .assert_contains(".venv/ is a virtual environment committed to the repository");
    assert!(!d.dst.join(".venv").exists());
    assert_eq!(d.target("app.py").as_deref(), Some("x"));
}

#[test]
fn source_and_target_inside_one_another_are_refused() {
    let d = Dirs::new();
    d.write("app.py", "x");
    let mut inside = Command::new(kuduhook());
    inside
        .arg("sync")
        .arg("-f")
        .arg(&d.src)
        .arg("-t")
        .arg(d.src.join("wwwroot"));
    run(inside)
        .assert_failed()
        .assert_contains("are inside one another")
        .assert_contains("fix:");
    assert!(!d.src.join("wwwroot").exists());

    let mut missing = Command::new(kuduhook());
    missing
        .arg("sync")
        .arg("-f")
        .arg(d.root.join("nope"))
        .arg("-t")
        .arg(&d.dst);
    run(missing)
        .assert_failed()
        .assert_contains("does not exist")
        .assert_contains("fix: point -f at the repository to deploy");
    assert!(!d.dst.exists());
}

#[test]
fn a_leftover_temporary_file_of_a_killed_sync_is_removed() {
    let d = Dirs::new();
    d.write("app.py", "x");
    d.deploy("none", "one").assert_ok();
    d.write_target(".app.py.kuduhook-tmp", "half a fi");
    d.deploy("one", "two").assert_ok();
    assert_eq!(tree(&d.dst), vec!["app.py"]);
}

/// `chattr +i` makes a file immutable, even for root: the rename over it fails with EPERM, as a
/// file held open by the web server does on Windows.
#[cfg(target_os = "linux")]
#[test]
fn a_locked_file_is_retried_with_progress_then_reported() {
    let d = Dirs::new();
    d.write("app.py", "v1");
    d.deploy("none", "one").assert_ok();
    d.write("app.py", "v2 longer");
    let locked = d.dst.join("app.py");
    let chattr = |flag: &str| {
        let ok = Command::new("chattr")
            .arg(flag)
            .arg(&locked)
            .status()
            .unwrap();
        assert!(ok.success(), "chattr {flag}");
    };

    // Locked for good: retried, then reported; the manifest is not written.
    chattr("+i");
    let failed = d.sync_with(
        &[
            "-p",
            d.manifest("one").to_str().unwrap(),
            "-n",
            d.manifest("two").to_str().unwrap(),
        ],
        &[("SCM_COMMAND_IDLE_TIMEOUT", "3")],
    );
    chattr("-i");
    failed
        .assert_failed()
        .assert_contains("it may be busy or locked, retrying")
        .assert_contains("Copied 0 of 1 files")
        .assert_contains("stayed locked or busy through 10 attempts")
        .assert_contains("The sync stopped part-way");
    assert!(!d.manifest("two").exists());
    assert_eq!(d.target("app.py").as_deref(), Some("v1"));

    // Unlocked while the sync waits: it goes through.
    chattr("+i");
    let unlock = std::thread::spawn({
        let locked = locked.clone();
        move || {
            std::thread::sleep(Duration::from_millis(400));
            Command::new("chattr")
                .arg("-i")
                .arg(&locked)
                .status()
                .unwrap();
        }
    });
    let run = d.deploy("one", "two");
    unlock.join().unwrap();
    run.assert_ok().assert_contains("retrying");
    assert_eq!(d.target("app.py").as_deref(), Some("v2 longer"));
    assert_eq!(tree(&d.dst), vec!["app.py"], "no temporary file left");
}

/// Node KuduSync from npm, installed by tests/setup.sh (the README's test command runs it).
fn node_kudusync() -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/node/node_modules/.bin/kudusync");
    assert!(
        path.is_file(),
        "tests need node kudusync at {}: run tests/setup.sh",
        path.display()
    );
    path
}

#[test]
fn manifests_pass_both_ways_between_node_kudusync_and_kuduhook() {
    let d = Dirs::new();
    let kudusync = |previous: &str, next: &str| {
        let (p, n) = (d.manifest(previous), d.manifest(next));
        fs::create_dir_all(n.parent().unwrap()).unwrap();
        let mut cmd = Command::new(node_kudusync());
        cmd.arg("-f")
            .arg(&d.src)
            .arg("-t")
            .arg(&d.dst)
            .arg("-n")
            .arg(&n)
            .arg("-p")
            .arg(&p);
        run(cmd).assert_ok();
    };
    // Kudu's stock first manifest: node kudusync fails without one on current Node.
    fs::create_dir_all(d.manifest("stock").parent().unwrap()).unwrap();
    fs::write(d.manifest("stock"), "hostingstart.html").unwrap();
    d.write_target("hostingstart.html", "placeholder");
    d.write("a.py", "a");
    d.write("b.py", "b");
    d.write("static/site.css", "css");
    d.write("static/old.css", "old");
    kudusync("stock", "one");
    d.write_target("static/upload.png", "the app's");

    // kuduhook takes over from node kudusync's manifest.
    fs::remove_file(d.src.join("a.py")).unwrap();
    fs::remove_file(d.src.join("static/old.css")).unwrap();
    d.deploy("one", "two")
        .assert_ok()
        .assert_contains("Deleting file: 'a.py'")
        .assert_contains("Deleting file: 'static/old.css'");
    assert_eq!(
        tree(&d.dst),
        vec!["b.py", "static/", "static/site.css", "static/upload.png"]
    );

    // And node kudusync takes back over from ours.
    fs::remove_file(d.src.join("b.py")).unwrap();
    fs::remove_dir_all(d.src.join("static")).unwrap();
    d.write("c.py", "c");
    kudusync("two", "three");
    assert_eq!(
        tree(&d.dst),
        vec!["c.py", "static/", "static/upload.png"],
        "no orphans, and the app's file stays"
    );
}

/// The sync part of a KuduScript-generated deploy.sh, unchanged: with KUDU_SYNC_CMD pointing at
/// kuduhook under the name `kudusync`, it runs as before.
#[cfg(unix)]
#[test]
fn kuduhook_named_kudusync_drops_into_a_generated_deploy_script() {
    let d = Dirs::new();
    let bin = d.root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(kuduhook(), bin.join("kudusync")).unwrap();
    d.write("app.py", "app");
    d.write("deploy.sh", "#!/bin/bash\n");
    d.write(".deployment", "[config]\ncommand = bash deploy.sh\n");
    let script = d.root.join("deploy.sh");
    fs::write(
        &script,
        r#"
exitWithMessageOnError () {
  if [ ! $? -eq 0 ]; then
    echo "An error has occurred during web site deployment."
    echo $1
    exit 1
  fi
}
if [[ "$IN_PLACE_DEPLOYMENT" -ne "1" ]]; then
  "$KUDU_SYNC_CMD" -v 50 -f "$DEPLOYMENT_SOURCE" -t "$DEPLOYMENT_TARGET" -n "$NEXT_MANIFEST_PATH" -p "$PREVIOUS_MANIFEST_PATH" -i ".git;.hg;.deployment;deploy.sh"
  exitWithMessageOnError "Kudu Sync failed"
fi
echo "Finished successfully."
"#,
    )
    .unwrap();
    let next = d.manifest("one");
    fs::create_dir_all(next.parent().unwrap()).unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("KUDU_SYNC_CMD", bin.join("kudusync"))
        .env("DEPLOYMENT_SOURCE", &d.src)
        .env("DEPLOYMENT_TARGET", &d.dst)
        .env("NEXT_MANIFEST_PATH", &next)
        .env("PREVIOUS_MANIFEST_PATH", d.manifest("none"));
    run(cmd)
        .assert_ok()
        .assert_contains("Copying file: 'app.py'")
        .assert_contains("Finished successfully.");
    assert_eq!(tree(&d.dst), vec!["app.py"]);
    assert_eq!(fs::read_to_string(next).unwrap(), "app.py\n");
}
