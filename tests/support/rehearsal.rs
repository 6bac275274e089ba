//! A user's repository and the local App Service it pushes to (`kuduhook init`, `kuduhook
//! rehearse`, `git push`), and a deployed app started on a loopback port and asked for a page.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::smb_mount::SmbMount;
use super::{Run, kuduhook, static_kuduhook};

pub const SUCCEEDED: &str = "Deployment successful.";
pub const FAILED: &str =
    "Error - Changes committed to remote repository but deployment to website failed.";

/// An app's git repository and the local App Service it pushes to, in one temporary folder.
pub struct Rehearsal {
    /// The share `site/` is on, when it is (unmounted before the folders go).
    _share: Option<SmbMount>,
    _root: tempfile::TempDir,
    pub app: PathBuf,
    pub service: PathBuf,
}

impl Rehearsal {
    /// A repository holding `files`, set up with `kuduhook init` and `kuduhook rehearse`.
    pub fn new(files: &[(&str, impl AsRef<str>)]) -> Rehearsal {
        Rehearsal::set_up(files, None, &Rehearsal::init_with_this_build)
    }

    /// Like [`Rehearsal::new`], with the repository set up for kuduhook by `init` (given the
    /// rehearsal, its files written, before the first commit) instead of this build's
    /// `kuduhook init --binary`.
    pub fn initialized_by(
        files: &[(&str, impl AsRef<str>)],
        init: &dyn Fn(&Rehearsal),
    ) -> Rehearsal {
        Rehearsal::set_up(files, None, init)
    }

    /// Like [`Rehearsal::new`], with the local App Service's `site/` (the repository checkout,
    /// wwwroot, the deployments) on an SMB-like share, as App Service Linux's `/home/site` is,
    /// with `latency_ms` per metadata call.
    pub fn on_share(files: &[(&str, impl AsRef<str>)], latency_ms: f64) -> Rehearsal {
        Rehearsal::set_up(files, Some(latency_ms), &Rehearsal::init_with_this_build)
    }

    /// `kuduhook init --binary <this build, static>`: what most tests commit.
    fn init_with_this_build(&self) {
        let binary = static_kuduhook();
        self.kuduhook(&["init", "--binary", binary.to_str().unwrap()])
            .assert_ok();
    }

    fn set_up(
        files: &[(&str, impl AsRef<str>)],
        share: Option<f64>,
        init: &dyn Fn(&Rehearsal),
    ) -> Rehearsal {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-e2e-")
            .tempdir()
            .unwrap();
        let app = root.path().join("app");
        std::fs::create_dir_all(&app).unwrap();
        let service = root.path().join("appservice");
        let share = share.map(|latency| {
            let mut share = SmbMount::at(&service.join("site"), latency);
            let wwwroot = service.join("site/wwwroot");
            share
                .local_state
                .push(kuduhook::ground::paths::local_state_dir(&wwwroot));
            share
        });
        let r = Rehearsal {
            service,
            app,
            _share: share,
            _root: root,
        };
        for (path, text) in files {
            r.write(path, text.as_ref());
        }
        r.git(&["init", "--quiet", "--initial-branch=main"]);
        r.git(&["config", "user.email", "dev@example.com"]);
        r.git(&["config", "user.name", "Dev"]);
        init(&r);
        r.commit("first");
        r.kuduhook(&["rehearse", "--site", r.service.to_str().unwrap()])
            .assert_ok()
            .assert_contains("git push rehearsal HEAD:master")
            .assert_contains(&format!(
                "kuduhook rehearse --serve --site {}",
                r.service.display()
            ));
        r
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.app.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn git(&self, args: &[&str]) -> Run {
        git_in(&self.app, args)
    }

    pub fn kuduhook(&self, args: &[&str]) -> Run {
        kuduhook_in(&self.app, args)
    }

    /// `kuduhook ARGS` in the app's folder with `env` added to this process's environment.
    pub fn kuduhook_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(kuduhook());
        cmd.args(args)
            .envs(env.iter().copied())
            .current_dir(&self.app)
            .stdin(Stdio::null());
        Run::of(cmd)
    }

    pub fn commit(&self, message: &str) {
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
    }

    /// `git push rehearsal HEAD:master`: the output is what the pusher sees.
    pub fn push(&self) -> Run {
        self.git(&["push", "--quiet", "rehearsal", "HEAD:master"])
    }

    /// Replaces the local App Service's app settings (the portal's).
    pub fn settings(&self, settings: &[(&str, &str)]) {
        let text: String = settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(self.service.join("appsettings"), text).unwrap();
    }

    pub fn wwwroot(&self) -> PathBuf {
        self.service.join("site/wwwroot")
    }

    /// A zip deployment of `zip` (a zip file, or a folder zipped as a tool on Windows zips
    /// it), as `az webapp deploy` makes one: `kuduhook rehearse --zip`, plus `args`.
    pub fn zip_deploy(&self, zip: &Path, args: &[&str]) -> Run {
        let mut all = vec![
            "rehearse",
            "--site",
            self.service.to_str().unwrap(),
            "--zip",
            zip.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.kuduhook(&all)
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).log.trim().to_string()
    }

    /// Starts the deployed app with the deployed env's python: `python <args> PORT`.
    pub fn serve(&self, args: &[&str]) -> Server {
        Server::start(&self.wwwroot(), args)
    }
}

/// `git ARGS` in `dir`, which must succeed; its output is what a user sees (a push's includes
/// the remote's `remote:` lines).
pub fn git_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    let run = Run::of(cmd);
    assert_eq!(run.code, 0, "git {args:?} failed:\n{}", run.log);
    run
}

/// `kuduhook ARGS` run in `dir`, as a user types it.
pub fn kuduhook_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(kuduhook());
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    Run::of(cmd)
}

/// A deployed app running on a loopback port, stopped when dropped.
pub struct Server {
    child: Child,
    port: u16,
    output: tempfile::NamedTempFile,
    /// Removed once the server is stopped (the folder a container runs in).
    keep: Option<tempfile::TempDir>,
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts the deployed app with the deployed env's python: `python <args>`, with `PORT` in
    /// them replaced by a free port.
    pub fn start(wwwroot: &Path, args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = Command::new(wwwroot.join("env/bin/python"));
        cmd.args(args.iter().map(|a| a.replace("PORT", &port.to_string())))
            .current_dir(wwwroot)
            .env_remove("PYTHONPATH");
        Server::spawn(cmd, port)
    }

    /// Runs `cmd`, a server that will listen on `port`, and waits until it does. What it prints
    /// is kept for the panic message if it never listens or fails a request.
    pub fn spawn(mut cmd: Command, port: u16) -> Server {
        let output = tempfile::NamedTempFile::new().unwrap();
        let child = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
            .stdin(Stdio::null())
            .stdout(output.reopen().unwrap())
            .stderr(output.reopen().unwrap())
            .spawn()
            .expect("start the deployed app");
        let mut server = Server {
            child,
            port,
            output,
            keep: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = server.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the app never listened on {port} ({exited:?}):\n{}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The same server, removing `dir` once it is stopped.
    pub fn keeping(mut self, dir: tempfile::TempDir) -> Server {
        self.keep = Some(dir);
        self
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// GET `path`: the status line and the body.
    pub fn get(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (
            head.lines().next().unwrap_or("").to_string(),
            body.to_string(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopped as a supervisor stops it, all of its process group: gunicorn's master stops
        // its workers on SIGTERM (killed at once, they would linger until their heartbeat).
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.keep.take());
    }
}

pub fn example(file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/flask-app")
            .join(file),
    )
    .unwrap()
}
