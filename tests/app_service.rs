//! End to end, the way a user works: `kuduhook init` in an app's repository, `kuduhook
//! rehearse` for a local App Service, `git push`, then the deployed app started with the
//! deployed env's interpreter on a loopback port and asked for a page. Also Kudu's side of the
//! contract as the local App Service plays it: settings, variables, manifests, no TTY, the idle
//! kill.

mod support;

use std::path::Path;
use std::process::Command;

use support::rehearsal::{FAILED, Rehearsal, SUCCEEDED, example, git_in, kuduhook_in};
use support::{shared_wheels, static_kuduhook};

/// The README's flow on the bundled Flask example: init, rehearse, push, and Flask serves the
/// page from the deployed env.
#[test]
fn the_flask_example_deploys_and_serves_its_page() {
    let flask_wheels = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/wheels/flask-app");
    assert!(
        flask_wheels.is_dir(),
        "run bash tests/setup.sh first (it downloads the example's wheels)"
    );
    let r = Rehearsal::new(&[
        ("app.py", &example("app.py")),
        ("requirements.txt", &example("requirements.txt")),
        ("runtime.txt", &example("runtime.txt")),
        (".deployment", &example(".deployment")),
    ]);
    assert_eq!(
        std::fs::read_to_string(r.app.join(".deployment")).unwrap(),
        example(".deployment"),
        "the example's .deployment is what init writes"
    );
    assert!(r.wwwroot().join("hostingstart.html").is_file());
    r.settings(&[
        ("PIP_NO_INDEX", "1"),
        ("PIP_FIND_LINKS", flask_wheels.to_str().unwrap()),
    ]);
    r.push()
        .assert_contains("==> [3/7] pip-install")
        .assert_contains("added blinker")
        .assert_contains(SUCCEEDED);
    assert!(
        !r.wwwroot().join("hostingstart.html").exists(),
        "the first deployment removes the placeholder page"
    );
    assert!(r.wwwroot().join("deploy/steps.json").is_file());
    assert!(
        !r.wwwroot().join("deploy/kuduhook").exists(),
        "the deployment tool stays out of the site"
    );

    let server = r.serve(&["-m", "flask", "--app", "app", "run", "--port", "PORT"]);
    let (status, body) = server.get("/");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.starts_with("Hello from kuduhook! Python 3.11."),
        "{body}"
    );

    r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_ok()
        .assert_contains("Python 3.11.")
        .assert_contains(&format!("commit {}", &r.head()[..12]))
        .assert_contains("succeeded")
        .assert_contains("flask 3.1.3")
        .assert_contains("with pip, fingerprint");
}

const WSGI_APP: &str = r#"import os, sys
import kudupkg

VERSION = "v1"


def application(environ, start_response):
    body = "code %s; kudupkg %s; python %d.%d; env %s\n" % (
        VERSION, kudupkg.__version__, sys.version_info[0], sys.version_info[1],
        os.path.realpath(sys.prefix),
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


# What App Service's gunicorn serves from app.py.
app = application
"#;

const SERVE: &str = r#"import sys
from wsgiref.simple_server import make_server
from app import application

make_server("127.0.0.1", int(sys.argv[1]), application).serve_forever()
"#;

/// The page of a freshly started copy of the deployed app: what the site serves now.
fn page(r: &Rehearsal) -> String {
    r.serve(&["serve.py", "PORT"]).get("/").1
}

fn env_of(page: &str) -> &str {
    page.split("; env ").nth(1).unwrap_or("").trim()
}

/// Every kind of change a user pushes shows in the running app; a broken push leaves the
/// previous deployment serving.
#[test]
fn each_pushed_change_shows_in_the_running_app_and_a_broken_one_changes_nothing() {
    let r = Rehearsal::new(&[
        ("app.py", WSGI_APP),
        ("serve.py", SERVE),
        ("requirements.txt", "kudupkg==1.0\n"),
        ("runtime.txt", "python-3.11\n"),
    ]);
    let wheels = shared_wheels().to_str().unwrap().to_string();
    let offline = [("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", wheels.as_str())];
    r.settings(&offline);
    r.push().assert_contains(SUCCEEDED);
    let first = page(&r);
    assert!(
        first.starts_with("code v1; kudupkg 1.0; python 3.11;"),
        "{first}"
    );

    // New code: the env is kept.
    r.write("app.py", &WSGI_APP.replace("\"v1\"", "\"v2\""));
    r.commit("new code");
    r.push()
        .assert_contains("Reusing env")
        .assert_contains(SUCCEEDED);
    let second = page(&r);
    assert!(second.starts_with("code v2; kudupkg 1.0;"), "{second}");
    assert_eq!(env_of(&second), env_of(&first));

    // A bumped requirement.
    r.write("requirements.txt", "kudupkg==2.0\n");
    r.commit("bump kudupkg");
    r.push()
        .assert_contains("changed kudupkg 1.0 -> 2.0")
        .assert_contains(SUCCEEDED);
    assert!(page(&r).starts_with("code v2; kudupkg 2.0; python 3.11;"));

    // A new runtime.txt.
    r.write("runtime.txt", "python-3.12\n");
    r.commit("python 3.12");
    r.push()
        .assert_contains("Python changed 3.11")
        .assert_contains(SUCCEEDED);
    let on_312 = page(&r);
    assert!(
        on_312.starts_with("code v2; kudupkg 2.0; python 3.12;"),
        "{on_312}"
    );

    // The force-rebuild app setting, and a redeploy of the same code.
    let mut forced = offline.to_vec();
    forced.push(("KUDUHOOK_FORCE_ENV_REBUILD", "2026-11-23"));
    r.settings(&forced);
    r.commit("redeploy");
    r.push()
        .assert_contains("KUDUHOOK_FORCE_ENV_REBUILD")
        .assert_contains(SUCCEEDED);
    let rebuilt = page(&r);
    assert!(rebuilt.starts_with("code v2; kudupkg 2.0; python 3.12;"));
    assert_ne!(env_of(&rebuilt), env_of(&on_312), "a new env was built");
    let good = r.head();

    // A broken requirement, while the app runs: the push lands, the deployment fails, and
    // both the running app and a fresh start serve the previous deployment.
    let running = r.serve(&["serve.py", "PORT"]);
    r.write("requirements.txt", "kudupkg==9.9\n");
    r.write("app.py", &WSGI_APP.replace("\"v1\"", "\"v3\""));
    r.commit("broken requirement");
    r.push()
        .assert_contains("kudupkg==9.9")
        .assert_contains(
            "Nothing in the target was changed: the site still serves the previous deployment.",
        )
        .assert_contains(FAILED);
    assert_eq!(running.get("/").1, rebuilt);
    let after = page(&r);
    assert!(
        after.starts_with("code v2; kudupkg 2.0; python 3.12;"),
        "{after}"
    );
    assert_eq!(env_of(&after), env_of(&rebuilt));
    assert_eq!(
        std::fs::read_to_string(r.service.join("site/deployments/active")).unwrap(),
        good,
        "a failed deployment never becomes the active one"
    );
    r.kuduhook(&["status", "--target", r.wwwroot().to_str().unwrap()])
        .assert_ok()
        .assert_contains("FAILED")
        .assert_contains("pip-install")
        .assert_contains("Python 3.12.");
}

/// Kudu's side of the contract, observed from inside a deployment command.
#[test]
fn the_local_app_service_runs_the_command_as_kudu_does() {
    let script = r#"echo "pwd=$(pwd)"
for v in DEPLOYMENT_SOURCE DEPLOYMENT_TARGET SCM_COMMIT_ID FROM_FILE SHARED APPSETTING_SHARED PORTAL APPSETTING_PORTAL APPSETTING_FROM_FILE SCM_COMMAND_IDLE_TIMEOUT PREVIOUS_MANIFEST_PATH NEXT_MANIFEST_PATH; do
  echo "$v=${!v-unset}"
done
echo "temp=$DEPLOYMENT_TEMP"
[ -d "$DEPLOYMENT_TEMP" ] && echo "temp exists"
[ -t 0 ] && echo "stdin: tty" || echo "stdin: no tty"
[ -t 1 ] && echo "stdout: tty" || echo "stdout: no tty"
read -r line && echo "read: $line" || echo "stdin: at end"
echo "previous manifest: $(cat "$PREVIOUS_MANIFEST_PATH")"
echo "a warning on stderr" >&2
echo app.py > "$NEXT_MANIFEST_PATH"
exit "$(cat exit-code)"
"#;
    let r = Rehearsal::new(&[
        ("show.sh", script),
        ("other.sh", "echo other command ran\n"),
        ("exit-code", "0\n"),
    ]);
    // init wrote .deployment; the app's own keys go beside kuduhook's command.
    r.write(
        ".deployment",
        "[config]\ncommand = bash show.sh\nFROM_FILE = file\nSHARED = from-file\n",
    );
    r.commit("show the environment");
    r.settings(&[("SHARED", "from-portal"), ("PORTAL", "yes")]);
    let site = r.service.join("site");
    let first_commit = r.head();
    let out = r.push();
    out.assert_contains(&format!("pwd={}", site.join("repository").display()))
        .assert_contains(&format!(
            "DEPLOYMENT_SOURCE={}",
            site.join("repository").display()
        ))
        .assert_contains(&format!(
            "DEPLOYMENT_TARGET={}",
            site.join("wwwroot").display()
        ))
        .assert_contains(&format!("SCM_COMMIT_ID={first_commit}"))
        .assert_contains("FROM_FILE=file")
        .assert_contains("APPSETTING_FROM_FILE=unset")
        .assert_contains("SHARED=from-portal")
        .assert_contains("APPSETTING_SHARED=from-portal")
        .assert_contains("PORTAL=yes")
        .assert_contains("APPSETTING_PORTAL=yes")
        .assert_contains("SCM_COMMAND_IDLE_TIMEOUT=60")
        .assert_contains(&format!(
            "PREVIOUS_MANIFEST_PATH={}",
            site.join("deployments/firstDeploymentManifest").display()
        ))
        .assert_contains(&format!(
            "NEXT_MANIFEST_PATH={}",
            site.join(format!("deployments/{first_commit}/manifest"))
                .display()
        ))
        .assert_contains("temp exists")
        .assert_contains("stdin: no tty")
        .assert_contains("stdout: no tty")
        .assert_contains("stdin: at end")
        .assert_contains("previous manifest: hostingstart.html")
        .assert_contains("a warning on stderr")
        .assert_contains(SUCCEEDED);
    let temp = out
        .log
        .lines()
        .find_map(|l| l.split("temp=").nth(1))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !Path::new(&temp).exists(),
        "DEPLOYMENT_TEMP is removed after"
    );
    let log = site.join(format!("deployments/{first_commit}/log.log"));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("FROM_FILE=file")
    );

    // A non-zero exit fails the deployment; the push itself landed.
    r.write("exit-code", "3\n");
    r.commit("fail");
    r.push()
        .assert_contains("exited with code 3")
        .assert_contains(FAILED);
    let remote_head = Command::new("git")
        .args([
            "--git-dir",
            r.service.join("repository.git").to_str().unwrap(),
        ])
        .args(["rev-parse", "master"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&remote_head.stdout).trim(),
        r.head()
    );

    // The failed deployment's manifest never becomes previous.
    r.write("exit-code", "0\n");
    r.commit("fixed");
    r.push()
        .assert_contains(&format!(
            "PREVIOUS_MANIFEST_PATH={}",
            site.join(format!("deployments/{first_commit}/manifest"))
                .display()
        ))
        .assert_contains(SUCCEEDED);

    // The COMMAND app setting overrides .deployment's command.
    r.settings(&[("COMMAND", "bash other.sh")]);
    r.commit("other");
    r.push()
        .assert_contains("other command ran")
        .assert_lacks("pwd=")
        .assert_contains(SUCCEEDED);

    // Only the deployment branch deploys.
    r.git(&["push", "--quiet", "rehearsal", "HEAD:feature"])
        .assert_contains("not the deployment branch (master): nothing was deployed")
        .assert_lacks(SUCCEEDED);
}

/// A command silent and idle for SCM_COMMAND_IDLE_TIMEOUT is killed, as Kudu kills it.
#[test]
fn a_silent_idle_command_is_killed_after_the_idle_timeout() {
    let r = Rehearsal::new(&[("wait.sh", "echo waiting\nsleep 60\necho never printed\n")]);
    r.write(".deployment", "[config]\ncommand = bash wait.sh\n");
    r.commit("wait");
    r.settings(&[("SCM_COMMAND_IDLE_TIMEOUT", "2")]);
    r.push()
        .assert_contains("waiting")
        .assert_contains("aborted due to no output nor CPU activity for 2 seconds")
        .assert_lacks("never printed")
        .assert_contains(FAILED);
}

/// A push with kuduhook: its own failure (a bad steps.json) reaches the pusher with what, why
/// and fix, and the site keeps serving.
#[test]
fn a_kuduhook_failure_reaches_the_pusher_with_its_fix() {
    let r = Rehearsal::new(&[("app.py", "print('hi')\n"), ("requirements.txt", "")]);
    r.write(
        "deploy/steps.json",
        "{\"steps\": [ {\"step\": \"sink\"} ]}\n",
    );
    r.commit("typo");
    r.push()
        .assert_contains("deploy/steps.json line 1")
        .assert_contains("fix:")
        .assert_contains("Nothing in the target was changed")
        .assert_contains(FAILED);
    assert!(r.wwwroot().join("hostingstart.html").is_file());

    // `kuduhook status --json` tells a script the same: failed before any step, no env.
    let status = r.kuduhook(&[
        "status",
        "--json",
        "--target",
        r.wwwroot().to_str().unwrap(),
    ]);
    status.assert_ok();
    let json: serde_json::Value = serde_json::from_str(&status.log).expect("status --json is JSON");
    let last = &json["last_deployment"];
    assert_eq!(last["succeeded"], false);
    assert_eq!(last["commit"], r.head());
    assert_eq!(
        last["source"],
        r.service.join("site/repository").to_str().unwrap()
    );
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("deploy/steps.json line 1")
    );
    assert_eq!(last["steps"].as_array().unwrap().len(), 0);
    assert_eq!(json["env"]["exists"], false);

    // Fixed, it deploys, and the record lists every step with its outcome.
    r.write(
        "deploy/steps.json",
        "{\"steps\": [ {\"step\": \"sync\"} ]}\n",
    );
    r.commit("fixed");
    r.push().assert_contains(SUCCEEDED);
    let status = r.kuduhook(&[
        "status",
        "--json",
        "--target",
        r.wwwroot().to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&status.log).unwrap();
    let steps = json["last_deployment"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["name"], "sync");
    assert_eq!(steps[0]["outcome"], "done");
    assert!(steps[0]["seconds"].as_f64().unwrap() >= 0.0);
    assert!(steps[0]["detail"].as_str().unwrap().starts_with("Copied"));
}

/// The shape of a KuduScript deploy.cmd, with lines a user added.
const DEPLOY_CMD: &str = include_str!("fixtures/kuduscript-deploy.cmd");

/// `kuduhook init` on a repository with a deploy.cmd: the user's line becomes a run step that
/// really runs on the next push; what it cannot translate is listed.
#[test]
fn init_translates_a_deploy_cmd_and_the_translation_runs() {
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("app");
    std::fs::create_dir_all(app.join("tools")).unwrap();
    std::fs::write(app.join("deploy.cmd"), DEPLOY_CMD.replace('\n', "\r\n")).unwrap();
    std::fs::write(
        app.join(".deployment"),
        "[config]\ncommand = deploy.cmd\nproject = .\n",
    )
    .unwrap();
    std::fs::write(app.join("requirements.txt"), "").unwrap();
    std::fs::write(
        app.join("tools/seed.py"),
        "import os, sys\nprint('seeded with', *sys.argv[1:], 'from', os.path.basename(os.environ['VIRTUAL_ENV']))\n",
    )
    .unwrap();
    // From outside the app, naming it: `kuduhook init [OPTIONS] APP_DIR`.
    let app_dir = app.to_str().unwrap();
    let binary = static_kuduhook();
    let binary = ["--binary", binary.to_str().unwrap()];
    let init = |args: &[&str]| {
        kuduhook_in(
            root.path(),
            &[&["init"][..], &binary, args, &[app_dir]].concat(),
        )
    };
    init(&[])
        .assert_failed()
        .assert_contains("Install packages")
        .assert_contains("-> the pip-install step")
        .assert_contains(
            "line 32: call :ExecuteCmd env\\scripts\\python.exe tools\\seed.py %SEED_MODE%",
        )
        .assert_contains("-> after sync: python tools/seed.py $SEED_MODE")
        .assert_contains("line 33: SET DJANGO_SETTINGS_MODULE=mysite.prod")
        .assert_contains("Warm up")
        .assert_contains("-> your own section")
        .assert_contains("-> after collectstatic: python tools/seed.py warm $SEED_MODE")
        .assert_contains("make it an app setting")
        .assert_contains("already has .deployment")
        .assert_contains("--force");
    assert_eq!(
        std::fs::read_to_string(app.join(".deployment")).unwrap(),
        "[config]\ncommand = deploy.cmd\nproject = .\n",
        "nothing is written without --force"
    );
    assert!(!app.join("deploy").exists());

    init(&["--force"])
        .assert_ok()
        .assert_contains("replaced        .deployment");
    assert_eq!(
        std::fs::read_to_string(app.join(".deployment")).unwrap(),
        "[config]\ncommand = ./deploy/kuduhook\nproject = .\n"
    );
    assert!(
        std::fs::read_to_string(app.join("deploy/steps.json"))
            .unwrap()
            .contains("\"run\": \"python tools/seed.py $SEED_MODE\"")
    );
    let copied = Command::new(app.join("deploy/kuduhook"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&copied.stdout).starts_with("kuduhook "));

    // The translated step runs on a push, with the env activated and the app setting.
    let git = |args: &[&str]| git_in(&app, args).log;
    git(&["init", "--quiet"]);
    git(&[
        "-c",
        "user.email=d@e.f",
        "-c",
        "user.name=D",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "x",
    ]);
    git(&["add", "--all"]);
    git(&[
        "-c",
        "user.email=d@e.f",
        "-c",
        "user.name=D",
        "commit",
        "--quiet",
        "-m",
        "kuduhook",
    ]);
    let service = root.path().join("appservice");
    kuduhook_in(&app, &["rehearse", "--site", service.to_str().unwrap()]).assert_ok();
    std::fs::write(service.join("appsettings"), "SEED_MODE=demo\n").unwrap();
    let pushed = git(&["push", "--quiet", "rehearsal", "HEAD:master"]);
    assert!(pushed.contains("seeded with demo from env"), "{pushed}");
    assert!(
        pushed.contains("seeded with warm demo from env"),
        "{pushed}"
    );
    assert!(pushed.contains(SUCCEEDED), "{pushed}");
}

/// init never overwrites without --force, keeps identical files, and refuses a binary built for
/// another platform than the site's.
#[test]
fn init_writes_its_files_once_and_checks_the_binary_platform() {
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    // The kuduhook running init is this machine's dynamically linked build: refused for a Linux
    // site, before anything is written, with the command that builds the static one.
    kuduhook_in(&app, &["init"])
        .assert_failed()
        .assert_contains("is dynamically linked")
        .assert_contains("GLIBC_2.34 not found")
        .assert_contains("cargo build --release --target x86_64-unknown-linux-musl");
    assert!(
        std::fs::read_dir(&app).unwrap().next().is_none(),
        "nothing written"
    );

    let binary = static_kuduhook();
    let init = |args: &[&str]| {
        kuduhook_in(
            &app,
            &[&["init", "--binary", binary.to_str().unwrap()], args].concat(),
        )
    };
    init(&[])
        .assert_ok()
        .assert_contains("wrote           deploy/kuduhook")
        .assert_contains("wrote           deploy/README.md");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.join("deploy/kuduhook"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "the binary is executable");
    init(&[])
        .assert_ok()
        .assert_contains("unchanged       deploy/steps.json");

    std::fs::write(app.join("deploy/steps.json"), "{\"steps\": []}").unwrap();
    init(&[])
        .assert_failed()
        .assert_contains("already has deploy/steps.json");
    assert_eq!(
        std::fs::read_to_string(app.join("deploy/steps.json")).unwrap(),
        "{\"steps\": []}"
    );

    init(&["--platform", "windows", "--force"])
        .assert_failed()
        .assert_contains("is a Linux binary, and the site runs Windows")
        .assert_contains("--binary");
    let exe = root.path().join("kuduhook.exe");
    std::fs::write(&exe, b"MZ\x90\x00 a Windows build").unwrap();
    kuduhook_in(
        &app,
        &[
            "init",
            "--platform",
            "windows",
            "--force",
            "--binary",
            exe.to_str().unwrap(),
        ],
    )
    .assert_ok()
    .assert_contains("wrote           deploy/kuduhook.exe");
    assert_eq!(
        std::fs::read_to_string(app.join(".deployment")).unwrap(),
        "[config]\ncommand = deploy\\kuduhook.exe\n"
    );
}

/// `kuduhook rehearse` never changes a remote of yours, and running it again keeps the site
/// and its settings.
#[test]
fn rehearse_keeps_your_remotes_and_settings() {
    let root = tempfile::tempdir().unwrap();
    let app = root.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let git = |args: &[&str]| git_in(&app, args).log;
    git(&["init", "--quiet"]);
    git(&["remote", "add", "rehearsal", "/somewhere/else.git"]);
    let service = root.path().join("appservice");
    let site = service.to_str().unwrap();
    let rehearse =
        |extra: &[&str]| kuduhook_in(&app, &[&["rehearse", "--site", site], extra].concat());
    rehearse(&[])
        .assert_failed()
        .assert_contains("the git remote rehearsal already points at /somewhere/else.git")
        .assert_contains("--remote");
    assert!(
        !service.exists(),
        "nothing is created when the remote is taken"
    );
    assert_eq!(
        git(&["remote", "get-url", "rehearsal"]).trim(),
        "/somewhere/else.git"
    );

    rehearse(&["--remote", "local"])
        .assert_ok()
        .assert_contains("created")
        .assert_contains("git push local HEAD:master");
    assert_eq!(
        git(&["remote", "get-url", "local"]).trim(),
        service.join("repository.git").to_str().unwrap()
    );
    std::fs::write(service.join("appsettings"), "PYTHON_VERSION=3.12\n").unwrap();
    rehearse(&["--remote", "local"])
        .assert_ok()
        .assert_contains("refreshed");
    assert_eq!(
        std::fs::read_to_string(service.join("appsettings")).unwrap(),
        "PYTHON_VERSION=3.12\n"
    );
    assert!(service.join("site/wwwroot/hostingstart.html").is_file());
}
