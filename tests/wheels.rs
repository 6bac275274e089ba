//! kuduhook as Python developers install it: the wheels `packaging/build-wheels` makes (the
//! static Linux binary; kuduhook.exe; each carrying the other platform's binary for `init`),
//! installed with pip, pipx and `uv tool install`, all offline; `init` from an installed wheel
//! sets up a repository that deploys through the rehearsal and serves, `kuduhook.exe init`
//! from the Windows wheel (under Wine) a Linux site too; and `pip wheel .` from the clone. The
//! launcher (`init --launcher`): no binary in the repository, kuduhook downloaded from a local
//! index (a folder of wheels) at the first deployment, by push and by zip, checked against the
//! pinned SHA-256, cached, upgraded with one command.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::rehearsal::{Rehearsal, example};
use support::{Run, python};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The wheels, built by the repository's one command (cargo and maturin skip what is built).
fn wheels() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("packaging/build-wheels"))
            .output()
            .expect("run packaging/build-wheels");
        assert!(
            out.status.success(),
            "packaging/build-wheels failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let find = |part: &str| {
            std::fs::read_dir(root().join("target/wheels"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with(&format!("kuduhook-{}-", env!("CARGO_PKG_VERSION")))
                        && name.contains(part)
                })
                .unwrap_or_else(|| panic!("no {part} wheel in target/wheels"))
        };
        (
            find("manylinux_2_17_x86_64.musllinux_1_1_x86_64"),
            find("win_amd64"),
        )
    })
}

/// A folder holding only the wheels a test's index serves.
fn index_of(wheels: &[&Path]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for wheel in wheels {
        std::fs::copy(wheel, dir.path().join(wheel.file_name().unwrap())).unwrap();
    }
    dir
}

/// A member of a wheel (a zip).
fn member(wheel: &Path, name: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let mut bytes = Vec::new();
    archive
        .by_name(name)
        .unwrap_or_else(|_| panic!("{} holds no {name}", wheel.display()))
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn run(cmd: &mut Command) -> Run {
    Run::of(std::mem::replace(cmd, Command::new("true")))
}

fn version_line() -> String {
    format!("kuduhook {}", env!("CARGO_PKG_VERSION"))
}

/// `kuduhook init` with an installed kuduhook, in the app's folder.
fn init_with(kuduhook: &Path, app: &Path, args: &[&str]) -> Run {
    run(Command::new(kuduhook)
        .arg("init")
        .args(args)
        .current_dir(app))
}

/// An app repository (not a git one) with the Flask example's files.
fn flask_app(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    for file in ["app.py", "requirements.txt", "runtime.txt"] {
        std::fs::write(app.join(file), example(file)).unwrap();
    }
    app
}

#[test]
fn the_wheels_carry_both_site_binaries_and_are_tagged_for_glibc_and_musl() {
    let (linux, windows) = wheels();
    let version = env!("CARGO_PKG_VERSION");
    let tags = String::from_utf8(member(
        linux,
        &format!("kuduhook-{version}.dist-info/WHEEL"),
    ))
    .unwrap();
    for tag in [
        "py3-none-manylinux_2_17_x86_64",
        "py3-none-musllinux_1_1_x86_64",
    ] {
        assert!(tags.contains(&format!("Tag: {tag}")), "{tags}");
    }
    let linux_binary = member(linux, &format!("kuduhook-{version}.data/scripts/kuduhook"));
    assert_eq!(
        kuduhook::commands::init::elf_interpreter(&linux_binary),
        None,
        "static"
    );
    let exe = member(
        windows,
        &format!("kuduhook-{version}.data/scripts/kuduhook.exe"),
    );
    assert!(exe.starts_with(b"MZ"));
    let sites = format!("kuduhook-{version}.data/data/share/kuduhook/sites");
    assert_eq!(
        member(linux, &format!("{sites}/windows-x86_64/kuduhook.exe")),
        exe
    );
    assert_eq!(
        member(windows, &format!("{sites}/linux-x86_64/kuduhook")),
        linux_binary
    );
}

/// A fresh venv at `venv` with `wheel` pip-installed into it (offline).
fn pip_installed(wheel: &Path, venv: &Path) -> PathBuf {
    run(Command::new(python("3.11")).args(["-m", "venv"]).arg(venv)).assert_ok();
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--no-index", "--disable-pip-version-check"])
        .arg(wheel))
    .assert_ok();
    venv.to_path_buf()
}

#[test]
fn pip_pipx_and_uv_install_a_working_kuduhook_whose_init_commits_each_platforms_binary() {
    let (linux, _) = wheels();
    let dir = tempfile::tempdir().unwrap();
    let tools = root().join("target/tools");
    let linux_binary = member(
        linux,
        &format!(
            "kuduhook-{}.data/scripts/kuduhook",
            env!("CARGO_PKG_VERSION")
        ),
    );

    // pip, into a fresh venv.
    let venv = pip_installed(linux, &dir.path().join("venv"));
    // pipx and uv, into folders of their own.
    let pipx = dir.path().join("pipx");
    run(Command::new(tools.join("pipx/bin/pipx"))
        .args(["install", "--pip-args"])
        .arg(format!(
            "--no-index --find-links {}",
            tools.join("wheels/pipx").display()
        ))
        .arg(linux)
        .env("PIPX_HOME", pipx.join("home"))
        .env("PIPX_BIN_DIR", pipx.join("bin"))
        .env("PIPX_MAN_DIR", pipx.join("man")))
    .assert_ok();
    let uv = dir.path().join("uv");
    run(Command::new(tools.join("bin/uv"))
        .args(["tool", "install", "--offline", "--python"])
        .arg(python("3.11"))
        .arg(linux)
        .env("UV_TOOL_DIR", uv.join("tools"))
        .env("UV_TOOL_BIN_DIR", uv.join("bin"))
        .env("UV_CACHE_DIR", uv.join("cache"))
        .env("UV_PYTHON_DOWNLOADS", "never"))
    .assert_ok();

    let exe = member(
        linux,
        &format!(
            "kuduhook-{}.data/data/share/kuduhook/sites/windows-x86_64/kuduhook.exe",
            env!("CARGO_PKG_VERSION")
        ),
    );
    for (how, kuduhook) in [
        ("pip", venv.join("bin/kuduhook")),
        ("pipx", pipx.join("bin/kuduhook")),
        ("uv tool", uv.join("bin/kuduhook")),
    ] {
        run(Command::new(&kuduhook).arg("--version"))
            .assert_ok()
            .assert_contains(&version_line());
        let app = flask_app(&dir.path().join(how));
        init_with(&kuduhook, &app, &[]).assert_ok();
        assert_eq!(
            std::fs::read(app.join("deploy/kuduhook")).unwrap(),
            linux_binary,
            "{how}: init commits the static Linux binary"
        );
        init_with(&kuduhook, &app, &["--platform", "windows", "--force"])
            .assert_ok()
            .assert_contains("wrote           deploy/kuduhook.exe");
        assert_eq!(
            std::fs::read(app.join("deploy/kuduhook.exe")).unwrap(),
            exe,
            "{how}: init commits kuduhook.exe for a Windows site, from the wheel"
        );
    }
    // `kuduhook upgrade` in a repository that commits the binary: the installed one replaces it.
    let app = dir.path().join("pip/app");
    std::fs::remove_file(app.join("deploy/kuduhook.exe")).unwrap();
    std::fs::write(app.join("deploy/kuduhook"), b"an older kuduhook").unwrap();
    run(Command::new(venv.join("bin/kuduhook"))
        .arg("upgrade")
        .current_dir(&app))
    .assert_ok()
    .assert_contains("Replaced deploy/kuduhook with kuduhook 0.1.0");
    assert_eq!(
        std::fs::read(app.join("deploy/kuduhook")).unwrap(),
        linux_binary
    );
}

/// Starts the deployed Flask example and asks it for its page.
fn serves(r: &Rehearsal) -> String {
    let server = r.serve(&["-m", "flask", "--app", "app", "run", "--port", "PORT"]);
    let (status, body) = server.get("/");
    assert!(status.contains("200"), "{status}");
    body
}

fn flask_settings(r: &Rehearsal, index: &Path) {
    let flask = root().join("target/tools/wheels/flask-app");
    r.settings(&[
        ("PIP_NO_INDEX", "1"),
        (
            "PIP_FIND_LINKS",
            &format!("{} {}", flask.display(), index.display()),
        ),
    ]);
}

const EXAMPLE: [&str; 3] = ["app.py", "requirements.txt", "runtime.txt"];

fn example_files() -> Vec<(&'static str, String)> {
    EXAMPLE.iter().map(|f| (*f, example(f))).collect()
}

#[test]
fn init_from_a_pip_installed_wheel_sets_up_a_repository_that_deploys_and_serves() {
    let (linux, _) = wheels();
    let dir = tempfile::tempdir().unwrap();
    let venv = pip_installed(linux, &dir.path().join("venv"));
    let kuduhook = venv.join("bin/kuduhook");
    let r = Rehearsal::initialized_by(&example_files(), &|r: &Rehearsal| {
        init_with(&kuduhook, &r.app, &[]).assert_ok();
    });
    let index = index_of(&[]);
    flask_settings(&r, index.path());
    r.push()
        .assert_contains(&format!("{} deploying", version_line()))
        .assert_contains("Deployment successful");
    assert!(serves(&r).starts_with("Hello from kuduhook!"));
}

/// What an installer does with a wheel's files, for the Windows wheel on this Linux machine
/// (no Windows pip here): scripts into `Scripts/`, data files under the env's root.
fn unpack_windows_wheel(wheel: &Path, env: &Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry.name().unwrap().to_string();
        let data = format!("kuduhook-{version}.data/");
        let Some(rest) = name.strip_prefix(&data) else {
            continue;
        };
        let path = match rest.split_once('/') {
            Some(("scripts", file)) => env.join("Scripts").join(file),
            Some(("data", file)) => env.join(file),
            _ => continue,
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }
    env.join("Scripts/kuduhook.exe")
}

#[test]
fn kuduhook_exe_from_the_windows_wheel_sets_up_a_linux_site_that_deploys() {
    let (_, windows) = wheels();
    let dir = tempfile::tempdir().unwrap();
    let exe = unpack_windows_wheel(windows, &dir.path().join("env"));
    let wine_prefix = root().join("target/tools/wine/prefix");
    assert!(
        wine_prefix.is_dir(),
        "run bash tests/setup.sh (the Wine prefix)"
    );
    let r = Rehearsal::initialized_by(&example_files(), &|r: &Rehearsal| {
        run(Command::new("/usr/lib/wine/wine64")
            .arg(&exe)
            .args(["init", "--platform", "linux"])
            .env("WINEPREFIX", &wine_prefix)
            .env("WINEDEBUG", "-all")
            .current_dir(&r.app))
        .assert_ok()
        .assert_contains("wrote           deploy/kuduhook");
    });
    let committed = std::fs::read(r.app.join("deploy/kuduhook")).unwrap();
    assert_eq!(
        kuduhook::commands::init::elf_interpreter(&committed),
        None,
        "the static Linux binary from the wheel"
    );
    let index = index_of(&[]);
    flask_settings(&r, index.path());
    r.push().assert_contains("Deployment successful");
    assert!(serves(&r).starts_with("Hello from kuduhook!"));
}

#[test]
fn pip_wheel_and_pipx_install_from_the_clone_give_the_static_binary_init_commits() {
    // After packaging/build-wheels, never beside it: it stages files in the folder the
    // build backend packs as the wheel's data.
    let _ = wheels();
    let dir = tempfile::tempdir().unwrap();
    // The build backend (maturin) from the wheel tests/setup.sh downloaded: no network.
    let out = run(Command::new(python("3.11"))
        .args([
            "-m",
            "pip",
            "wheel",
            "--no-index",
            "--disable-pip-version-check",
        ])
        .arg("--find-links")
        .arg(root().join("target/tools/maturin-wheel"))
        .arg("--wheel-dir")
        .arg(dir.path())
        .arg(root()));
    out.assert_ok();
    let wheel = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a wheel");
    let binary = member(
        &wheel,
        &format!(
            "kuduhook-{}.data/scripts/kuduhook",
            env!("CARGO_PKG_VERSION")
        ),
    );
    assert_eq!(
        kuduhook::commands::init::elf_interpreter(&binary),
        None,
        "{} holds the static binary",
        wheel.display()
    );

    // `pipx install .` from the clone: a kuduhook whose init commits that static binary.
    let pipx = dir.path().join("pipx");
    let tools = root().join("target/tools");
    run(Command::new(tools.join("pipx/bin/pipx"))
        .args(["install", "--pip-args"])
        .arg(format!(
            "--no-index --find-links {} --find-links {}",
            tools.join("wheels/pipx").display(),
            tools.join("maturin-wheel").display()
        ))
        .arg(root())
        .env("PIPX_HOME", pipx.join("home"))
        .env("PIPX_BIN_DIR", pipx.join("bin"))
        .env("PIPX_MAN_DIR", pipx.join("man")))
    .assert_ok();
    let app = flask_app(dir.path());
    init_with(&pipx.join("bin/kuduhook"), &app, &[]).assert_ok();
    assert_eq!(std::fs::read(app.join("deploy/kuduhook")).unwrap(), binary);
}

/// A copy of `wheel` as the next release, `to`: what `kuduhook upgrade` pins (same binary,
/// the version in its names and METADATA; RECORD's hashes are not checked by the launcher).
fn as_version(wheel: &Path, to: &str, dir: &Path) -> PathBuf {
    let from = env!("CARGO_PKG_VERSION");
    let name = wheel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(&format!("kuduhook-{from}-"), &format!("kuduhook-{to}-"));
    let out = dir.join(name);
    let mut archive = zip::ZipArchive::new(std::fs::File::open(wheel).unwrap()).unwrap();
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let name = entry
            .name()
            .unwrap()
            .replace(&format!("kuduhook-{from}."), &format!("kuduhook-{to}."));
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.ends_with("/METADATA") {
            bytes = String::from_utf8(bytes)
                .unwrap()
                .replacen(&format!("Version: {from}"), &format!("Version: {to}"), 1)
                .into_bytes();
        }
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap();
    out
}

fn launcher_rehearsal(index: &Path) -> Rehearsal {
    let r = Rehearsal::initialized_by(&example_files(), &|r: &Rehearsal| {
        let init = r.kuduhook_with(
            &["init", "--launcher"],
            &[
                ("PIP_NO_INDEX", "1"),
                ("PIP_FIND_LINKS", index.to_str().unwrap()),
            ],
        );
        init.assert_ok()
            .assert_contains("The launcher runs kuduhook");
    });
    flask_settings(&r, index);
    r
}

#[test]
fn a_launcher_repository_holds_no_binary_and_deploys_by_push_and_by_zip() {
    let (linux, _) = wheels();
    let index = index_of(&[linux]);
    let r = launcher_rehearsal(index.path());
    let launcher = std::fs::read(r.app.join("deploy/kuduhook")).unwrap();
    assert!(launcher.starts_with(b"#!/bin/sh"), "a script, not a binary");
    let committed: u64 = ["deploy/kuduhook", "deploy/launcher.py"]
        .iter()
        .map(|f| std::fs::metadata(r.app.join(f)).unwrap().len())
        .sum();
    assert!(committed < 20_000, "{committed} bytes committed");
    let pin = std::fs::read_to_string(r.app.join("deploy/launcher.py")).unwrap();
    let wheel_sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(std::fs::read(linux).unwrap());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(pin.contains(&format!("SHA256 = \"{wheel_sha}\"")), "{pin}");

    let first = r.push();
    first
        .assert_contains("kuduhook launcher: kuduhook 0.1.0 is not in the cache")
        .assert_contains("checked and cached in")
        .assert_contains(&format!("{} deploying", version_line()))
        .assert_contains("Deployment successful");
    assert!(serves(&r).starts_with("Hello from kuduhook!"));
    assert!(
        !r.wwwroot().join("deploy/launcher.py").exists(),
        "the launcher stays out of the site"
    );

    // The next deployment runs the cached copy: the index is not asked (here, it is empty).
    let empty = index_of(&[]);
    flask_settings(&r, empty.path());
    r.write("app.py", &example("app.py").replace("Hello", "Hi"));
    r.commit("second");
    r.push()
        .assert_contains("running kuduhook 0.1.0 from the cache")
        .assert_lacks("downloading")
        .assert_contains("Deployment successful");
    assert!(serves(&r).starts_with("Hi from kuduhook!"));

    // A zip deployment of the folder, made as a Windows tool makes it (no unix modes): Kudu
    // makes the bare-path command executable, the launcher runs.
    std::fs::write(
        r.app.join("app.py"),
        example("app.py").replace("Hello", "Zipped"),
    )
    .unwrap();
    r.zip_deploy(&r.app, &[])
        .assert_ok()
        .assert_contains("running kuduhook 0.1.0 from the cache")
        .assert_contains("Deployment successful");
    assert!(serves(&r).starts_with("Zipped from kuduhook!"));
}

#[test]
fn a_wheel_that_differs_from_the_pin_is_refused_and_the_site_keeps_serving() {
    let (linux, _) = wheels();
    let index = index_of(&[linux]);
    let r = launcher_rehearsal(index.path());
    r.push().assert_contains("Deployment successful");
    let before = serves(&r);

    // Another wheel under the pinned name: the index, or a proxy, serves other bytes.
    let other = tempfile::tempdir().unwrap();
    let forged = as_version(linux, "0.1.0", other.path());
    let mut bytes = std::fs::read(&forged).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&forged, bytes).unwrap();
    flask_settings(&r, other.path());
    let cache = r.service.join("site/.kuduhook/launcher");
    std::fs::remove_dir_all(&cache).unwrap();
    r.write("app.py", &example("app.py").replace("Hello", "Changed"));
    r.commit("second");
    let refused = r.push();
    refused
        .assert_contains("is not the wheel kuduhook init pinned: its SHA-256 is")
        .assert_contains("nothing was changed: the site still serves the previous deployment")
        .assert_lacks(&format!("{} deploying", version_line()));
    assert_eq!(
        serves(&r),
        before,
        "the site serves the previous deployment"
    );
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "nothing cached: {cached:?}");
}

#[test]
fn an_unreachable_index_with_no_cached_copy_fails_clearly_and_never_prints_credentials() {
    let (linux, _) = wheels();
    let index = index_of(&[linux]);
    let r = launcher_rehearsal(index.path());
    // Port 9 on loopback: nothing listens; the credentials are the user's secret.
    r.settings(&[
        (
            "PIP_INDEX_URL",
            "http://deployer:s3cret-token@127.0.0.1:9/simple/",
        ),
        ("PIP_RETRIES", "0"),
        ("PIP_TIMEOUT", "2"),
    ]);
    let failed = r.push();
    failed
        .assert_contains("kuduhook 0.1.0 could not be downloaded, and no copy is cached in")
        .assert_contains("let the site reach the package index")
        .assert_contains("nothing was changed")
        .assert_lacks("s3cret-token");
    assert!(
        !r.wwwroot().join("app.py").exists(),
        "nothing was deployed: {}",
        failed.log
    );
}

#[test]
fn upgrade_changes_the_pin_and_the_next_deployment_runs_the_new_version() {
    let (linux, _) = wheels();
    let next = tempfile::tempdir().unwrap();
    let newer = as_version(linux, "0.1.1", next.path());
    let index = index_of(&[linux, &newer]);
    let r = launcher_rehearsal(index.path());
    let pinned = std::fs::read_to_string(r.app.join("deploy/launcher.py")).unwrap();
    assert!(
        pinned.contains("VERSION = \"0.1.0\""),
        "init pins its own version"
    );
    r.push().assert_contains("Deployment successful");

    r.kuduhook_with(
        &["upgrade", "--to", "0.1.1"],
        &[
            ("PIP_NO_INDEX", "1"),
            ("PIP_FIND_LINKS", index.path().to_str().unwrap()),
        ],
    )
    .assert_ok()
    .assert_contains("Pinned kuduhook 0.1.0 -> 0.1.1 in deploy/launcher.py");
    let upgraded = std::fs::read_to_string(r.app.join("deploy/launcher.py")).unwrap();
    assert!(upgraded.contains("VERSION = \"0.1.1\""));
    r.commit("kuduhook 0.1.1");
    r.push()
        .assert_contains("kuduhook launcher: kuduhook 0.1.1 is not in the cache")
        .assert_contains("Deployment successful");
    let cached: Vec<String> = std::fs::read_dir(r.service.join("site/.kuduhook/launcher"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(cached.len(), 2, "one copy per version: {cached:?}");
}

#[test]
fn the_release_workflow_builds_the_wheels_with_the_command_ci_runs() {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    for (name, text) in [("release.yml", &workflow), (".ci/run", &ci)] {
        assert!(
            text.contains("bash packaging/build-wheels"),
            "{name} builds the wheels with packaging/build-wheels"
        );
    }
    assert!(workflow.contains("pypa/gh-action-pypi-publish"));
}

/// A package index on loopback that asks for a user and password (HTTP Basic), serving the
/// wheels in a folder as PEP 503's simple pages: what a private index is to the launcher.
const PRIVATE_INDEX: &str = r#"
import base64, html, http.server, os, sys
folder, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
wanted = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
class Index(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        if self.headers.get("Authorization") != wanted:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="index"')
            self.end_headers()
            return
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if len(parts) == 2 and parts[0] == "simple":
            links = "".join('<a href="/files/%s">%s</a>' % (n, html.escape(n))
                            for n in sorted(os.listdir(folder))
                            if n.lower().startswith(parts[1].replace("-", "_") + "-"))
            body = ("<html><body>%s</body></html>" % links).encode()
            kind = "text/html"
        elif len(parts) == 2 and parts[0] == "files":
            body = open(os.path.join(folder, parts[1]), "rb").read()
            kind = "application/octet-stream"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Index).serve_forever()
"#;

#[test]
fn a_private_index_that_asks_for_credentials_serves_the_launcher_and_never_sees_them_printed() {
    let (linux, _) = wheels();
    let index = index_of(&[linux]);
    let port = support::rehearsal::free_port();
    let mut server = Command::new(python("3.11"))
        .args(["-c", PRIVATE_INDEX])
        .arg(index.path())
        .arg(port.to_string())
        .args(["deployer", "s3cret-token"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the index did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://deployer:s3cret-token@127.0.0.1:{port}/simple/");
    let r = Rehearsal::initialized_by(&example_files(), &|r: &Rehearsal| {
        r.kuduhook_with(&["init", "--launcher"], &[("PIP_INDEX_URL", url.as_str())])
            .assert_ok()
            .assert_lacks("s3cret-token");
    });
    // The app's own requirements come from the local wheels; kuduhook from the private index.
    let flask = root().join("target/tools/wheels/flask-app");
    r.settings(&[
        ("PIP_INDEX_URL", url.as_str()),
        ("PIP_FIND_LINKS", flask.to_str().unwrap()),
    ]);
    let pushed = r.push();
    let _ = server.kill();
    let _ = server.wait();
    pushed
        .assert_contains("checked and cached in")
        .assert_contains("Deployment successful")
        .assert_lacks("s3cret-token");
    assert!(serves(&r).starts_with("Hello from kuduhook!"));
}
