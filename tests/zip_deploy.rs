//! Zip deployment, the way `az webapp deploy`, `az webapp up`, VS Code and GitHub Actions
//! deploy: a repository set up by `kuduhook init`, zipped (on Windows: no modes, 2-second
//! times; or on Linux, with modes), deployed to the local App Service as KuduLite deploys a zip
//! (`kuduhook rehearse --zip`: extracted into a fresh local folder that is
//! `DEPLOYMENT_SOURCE`, `.deployment`'s command made executable by Kudu's rule, a clean publish
//! with `IGNORE_MANIFEST=1`), and the site served.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::rehearsal::{Rehearsal, SUCCEEDED, kuduhook_in};

const FLASK_APP: &str = r#"from flask import Flask

app = Flask(__name__)
MESSAGE = "v1"


@app.route("/")
def index():
    return "zip says " + MESSAGE
"#;

/// A stdlib WSGI app: no dependencies, no env, checked with the stack's Python as it starts.
const WSGI_APP: &str = r#"def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"#;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sets a file's time to `secs` since the epoch.
fn set_time(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// `kuduhook init`'s repository deploys by zip whether the zip was made on Windows (no modes:
/// Kudu makes the bare `./deploy/kuduhook` executable itself) or on Linux (modes kept), and a
/// one-file change is synced from the record of the last sync.
#[test]
fn a_repository_set_up_by_init_deploys_by_zip_made_on_windows_or_linux() {
    let flask_wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wheels/flask-app");
    assert!(flask_wheels.is_dir(), "run bash tests/setup.sh first");
    let r = Rehearsal::new(&[
        ("app.py", FLASK_APP),
        ("requirements.txt", "Flask==3.1.*\n"),
        ("runtime.txt", "python-3.11\n"),
    ]);
    assert_eq!(
        read(&r.app.join(".deployment")),
        "[config]\ncommand = ./deploy/kuduhook\n"
    );
    r.settings(&[
        ("PIP_NO_INDEX", "1"),
        ("PIP_FIND_LINKS", flask_wheels.to_str().unwrap()),
    ]);

    // Made on Windows: the folder zipped with no modes.
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains("as a tool on Windows does (no modes, 2-second times)")
        .assert_contains("Running deployment command './deploy/kuduhook'")
        .assert_contains("A zip deployment: Kudu extracted the zip into")
        .assert_lacks("Kudu makes the command executable only when")
        .assert_contains("==> [3/7] pip-install")
        .assert_contains(SUCCEEDED);
    let extracted = r.service.join("tmp/zipdeploy/extracted");
    assert!(!extracted.join(".git").exists(), "a zip has no history");
    assert!(!r.wwwroot().join("hostingstart.html").exists());
    assert!(!r.wwwroot().join("deploy/kuduhook").exists());
    let page = || {
        r.serve(&["-m", "flask", "--app", "app", "run", "--port", "PORT"])
            .get("/")
            .1
    };
    assert_eq!(page(), "zip says v1");
    let status = r
        .kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_ok()
        .log
        .clone();
    assert!(status.contains("succeeded"), "{status}");

    // Made on Linux, by Python's zipfile: modes kept, times in 2-second steps.
    r.write("app.py", &FLASK_APP.replace("\"v1\"", "\"v2\""));
    let zip = r.service.join("linux.zip");
    let made = Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .args([
            ".deployment",
            "app.py",
            "requirements.txt",
            "runtime.txt",
            "deploy",
        ])
        .current_dir(&r.app)
        .status()
        .unwrap();
    assert!(made.success());
    r.zip_deploy(&zip, &[])
        .assert_ok()
        .assert_contains("skipped: requirements.txt unchanged")
        .assert_contains("Copying file: 'app.py'")
        .assert_contains(
            "(from the record of the last sync, 1 changed path, without walking the site)",
        )
        .assert_contains(SUCCEEDED);
    assert_eq!(page(), "zip says v2");
}

/// On the share: a zip that adds, changes (within the same 2-second time and size), deletes and
/// renames by case lands exactly; a file the app wrote stays, except in a clean publish.
#[test]
fn zip_redeploys_on_the_share_add_change_delete_and_rename_by_case() {
    let r = Rehearsal::on_share(
        &[
            ("app.py", WSGI_APP),
            ("data.txt", "aaaa"),
            ("Notes.txt", "notes"),
            ("old.txt", "old"),
        ],
        0.0,
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 2
        * 2;
    set_time(&r.app.join("data.txt"), now);
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains(SUCCEEDED);
    assert_eq!(read(&r.wwwroot().join("data.txt")), "aaaa");

    // The same size and the same 2-second zip time, other content: only the content tells.
    r.write("data.txt", "bbbb");
    set_time(&r.app.join("data.txt"), now + 1);
    r.write("static/new.txt", "new");
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains("Copying file: 'data.txt'")
        .assert_contains("from the record of the last sync, 3 changed paths");
    assert_eq!(read(&r.wwwroot().join("data.txt")), "bbbb");
    assert_eq!(read(&r.wwwroot().join("static/new.txt")), "new");

    // A deletion and a rename by case (one name on the share: the walk decides that one).
    std::fs::remove_file(r.app.join("old.txt")).unwrap();
    std::fs::rename(r.app.join("Notes.txt"), r.app.join("notes.txt")).unwrap();
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains("Walking the whole site: a case-only rename (notes.txt)");
    let names = support::names_in(&r.wwwroot());
    assert!(names.contains(&"notes.txt".to_string()), "{names:?}");
    assert!(!names.contains(&"Notes.txt".to_string()), "{names:?}");
    assert!(!names.contains(&"old.txt".to_string()), "{names:?}");

    // A file the app wrote stays through a zip deployment, and goes with a clean publish.
    std::fs::write(r.wwwroot().join("uploaded.txt"), "the app's").unwrap();
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains(SUCCEEDED);
    assert_eq!(read(&r.wwwroot().join("uploaded.txt")), "the app's");
    r.zip_deploy(&r.app, &["--clean"])
        .assert_ok()
        .assert_contains("a clean deployment (IGNORE_MANIFEST)")
        .assert_contains("Deleting file: 'uploaded.txt'");
    let names = support::names_in(&r.wwwroot());
    assert_eq!(
        names,
        ["app.py", "data.txt", "deploy", "notes.txt", "static"].map(String::from),
        "a clean publish leaves exactly the zip's files"
    );
}

/// `kill -9` of a zip deployment in its sync, on the share: the next zip deployment walks the
/// site (the record vouches for nothing after a kill) and leaves exactly the zip's files.
#[test]
fn kill_9_during_a_zip_deployment_then_the_next_one_lands_exactly() {
    let mut files: Vec<(String, String)> = vec![("app.py".into(), WSGI_APP.into())];
    for i in 0..300 {
        files.push((format!("pkg{}/m{i}.py", i % 10), format!("X = {i}\n")));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let r = Rehearsal::on_share(&files, 1.0);
    r.zip_deploy(&r.app, &[]).assert_ok();
    for i in 0..300 {
        r.write(
            &format!("pkg{}/m{i}.py", i % 10),
            &format!("X = {}\n", i + 1000),
        );
    }
    r.write("added.txt", "added");

    let mut child = Command::new(support::kuduhook());
    child
        .args(["rehearse", "--site", r.service.to_str().unwrap(), "--zip"])
        .arg(&r.app)
        .current_dir(&r.app)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = child.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Copying file:") {
            break;
        }
    }
    assert!(
        seen.contains("Copying file:"),
        "never reached the sync:\n{seen}"
    );
    // Kudu kills the deployment command and everything it started: kuduhook runs in a process
    // group of its own, under the local App Service's process.
    let deployment = Command::new("pgrep")
        .args(["-P", &child.id().to_string()])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&deployment.stdout)
        .trim()
        .to_string();
    let pid: u32 = pid
        .parse()
        .unwrap_or_else(|_| panic!("not one deployment command running: {pid:?}\n{seen}"));
    assert!(pid > 1);
    let killed = Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    assert!(!child.wait().unwrap().success(), "{seen}");
    assert!(seen.contains(support::rehearsal::FAILED), "{seen}");

    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains("Walking the whole site")
        .assert_contains(SUCCEEDED);
    let site: Vec<(String, bool)> = support::walk(&r.wwwroot())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("deploy") && p != "oryx-manifest.toml")
        .collect();
    let mut expected: Vec<(String, bool)> = support::walk(&r.app)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".git") && !p.starts_with(".deployment"))
        .filter(|(p, _)| !p.starts_with("deploy"))
        .collect();
    expected.sort();
    let mut site_sorted = site.clone();
    site_sorted.sort();
    assert_eq!(
        site_sorted, expected,
        "the site holds exactly the zip's files"
    );
    for i in [0, 150, 299] {
        let path = format!("pkg{}/m{i}.py", i % 10);
        assert_eq!(
            read(&r.wwwroot().join(&path)),
            format!("X = {}\n", i + 1000)
        );
    }
    let status = kuduhook_in(
        &r.app,
        &["status", "--target", r.wwwroot().to_str().unwrap()],
    );
    status.assert_ok();
}

/// What goes wrong before kuduhook runs is said with what to do: no zip at the path (nothing
/// is set up), a file that is not a zip, a zip without `.deployment`.
#[test]
fn a_missing_or_unreadable_zip_or_one_without_a_command_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let site_arg = site.to_str().unwrap();
    kuduhook_in(
        dir.path(),
        &["rehearse", "--site", site_arg, "--zip", "nothere.zip"],
    )
    .assert_failed()
    .assert_contains("error: there is no zip or folder at")
    .assert_contains("fix: give the zip your tool deploys");
    assert!(
        !site.exists(),
        "nothing is set up for a zip that is not there"
    );

    std::fs::write(dir.path().join("bad.zip"), "not a zip").unwrap();
    kuduhook_in(
        dir.path(),
        &["rehearse", "--site", site_arg, "--zip", "bad.zip"],
    )
    .assert_failed()
    .assert_contains("bad.zip is not a zip kuduhook can read");

    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("app.py"), WSGI_APP).unwrap();
    kuduhook_in(
        dir.path(),
        &["rehearse", "--site", site_arg, "--zip", "app"],
    )
    .assert_failed()
    .assert_contains("error: the zip names no deployment command")
    .assert_contains("put what it writes (.deployment and deploy/) in the zip");
}

/// A zip with an entry that climbs out of the folder (`../`), or a link out of it, is refused
/// whole, naming the entry and calling the zip unsafe; nothing lands outside, nothing is
/// deployed.
#[test]
fn a_zip_with_an_entry_or_a_link_outside_its_folder_is_refused_as_unsafe() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let cases: [(&str, &str, Option<&str>, &str); 2] = [
        (
            "slip.zip",
            "../../../escaped.txt",
            None,
            "its entry \"../../../escaped.txt\" would be written outside the folder it is extracted into",
        ),
        (
            "link.zip",
            "static/passwd",
            Some("../../../../../../etc/passwd"),
            "its entry \"static/passwd\" is a link to ../../../../../../etc/passwd, outside the folder",
        ),
    ];
    for (name, entry, link, said) in cases {
        let path = dir.path().join(name);
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file(".deployment", options).unwrap();
        zip.write_all(b"[config]\ncommand = ./deploy/kuduhook\n")
            .unwrap();
        zip.start_file("app.py", options).unwrap();
        zip.write_all(WSGI_APP.as_bytes()).unwrap();
        match link {
            Some(target) => zip.add_symlink(entry, target, options).unwrap(),
            None => {
                zip.start_file(entry, options).unwrap();
                zip.write_all(b"escaped").unwrap();
            }
        }
        zip.finish().unwrap();
        kuduhook_in(
            dir.path(),
            &["rehearse", "--site", site.to_str().unwrap(), "--zip", name],
        )
        .assert_failed()
        .assert_contains(&format!("is unsafe: {said}"))
        .assert_contains("nothing was extracted into the site")
        .assert_lacks("check permissions and free disk space");
        assert!(
            !site.join("site/wwwroot/app.py").exists(),
            "nothing deployed"
        );
    }
    let escaped: Vec<_> = support::walk(dir.path())
        .into_iter()
        .filter(|(p, _)| p.contains("escaped"))
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
}
