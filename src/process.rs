//! Running child processes the way a deployment needs: output streamed line by line into the
//! log as it comes, a heartbeat while a child is silent (so Kudu's idle timer never kills the
//! deployment), and none of the host variables that would make pip install into the wrong place.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::ground::error::DeployError;
use crate::ground::error::SystemError;
use crate::ground::logging::CHILD_OUTPUT;
use crate::settings::kudu::KuduEnv;

/// Host variables that silently redirect an install or an interpreter: a child must never see
/// them (docs/platform.md §4).
pub const LEAKY_VARIABLES: [&str; 13] = [
    "VIRTUAL_ENV",
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONUSERBASE",
    "PIP_TARGET",
    "PIP_PREFIX",
    "PIP_USER",
    "PIP_ROOT",
    "PIP_REQUIRE_VIRTUALENV",
    "CONDA_PREFIX",
    "UV_SYSTEM_PYTHON",
    "UV_PYTHON",
    "__PYVENV_LAUNCHER__",
];

/// The leaky variables set in `env`, for the log.
pub fn leaky_variables_present(env: &KuduEnv) -> Vec<&'static str> {
    LEAKY_VARIABLES
        .into_iter()
        .filter(|name| env.get(name).is_some())
        .collect()
}

/// A command whose environment is the deployment's, less the leaky variables.
pub fn command(program: impl AsRef<OsStr>, env: &KuduEnv) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for (key, value) in env.vars() {
        if !LEAKY_VARIABLES.contains(&key) {
            cmd.env(key, value);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Makes and runs the deployment's child processes: sanitized environment, streamed output,
/// heartbeat.
#[derive(Debug, Clone, Copy)]
pub struct Runner<'a> {
    pub env: &'a KuduEnv,
    pub heartbeat: Duration,
}

impl Runner<'_> {
    /// A command with the deployment's environment, less the leaky variables.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command(program, self.env)
    }

    /// Runs `cmd` with its output streamed into the log; see [`run_streamed`].
    pub fn run(&self, cmd: &mut Command, what: &str) -> Result<Finished, DeployError> {
        run_streamed(cmd, what, self.heartbeat)
    }
}

/// How a child ended, with its last lines of output for error messages.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub tail: Vec<String>,
}

impl Finished {
    /// The last non-empty output line, or the exit status.
    pub fn detail(&self) -> String {
        match self.tail.iter().rev().find(|l| !l.trim().is_empty()) {
            Some(line) => format!("{} ({})", line.trim(), describe_status(&self.status)),
            None => describe_status(&self.status),
        }
    }
}

/// Kills `child` and every process of its group (started with `process_group(0)`).
pub fn kill_group(child: &mut std::process::Child) {
    #[cfg(target_os = "linux")]
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

/// "exited with code 1", "was killed by signal 9".
pub fn describe_status(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    format!("ended with {status}")
}

/// How many lines of a child's output are kept for error messages.
const TAIL_LINES: usize = 20;

/// Runs `cmd`, logging each output line (stdout and stderr, in arrival order) as it comes.
///
/// While the child prints nothing, a line `still running <what> (<n>s)` is logged every
/// `heartbeat`, so that Kudu never sees a silent deployment.
pub fn run_streamed(
    cmd: &mut Command,
    what: &str,
    heartbeat: Duration,
) -> Result<Finished, DeployError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| SystemError::SpawnFailed {
            program: program.clone(),
            error,
        })?;
    let (lines, readers) = read_lines(&mut child);

    let started = Instant::now();
    let mut tail: Vec<String> = Vec::new();
    loop {
        match lines.recv_timeout(heartbeat) {
            Ok(line) => {
                info!(target: CHILD_OUTPUT, "{line}");
                if tail.len() == TAIL_LINES {
                    tail.remove(0);
                }
                tail.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                info!("still running {what} ({}s)", started.elapsed().as_secs());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child
        .wait()
        .map_err(|error| SystemError::SpawnFailed { program, error })?;
    Ok(Finished { status, tail })
}

/// The output lines of a spawned child with piped stdout and stderr, in arrival order, and the
/// threads reading them (the channel disconnects when both pipes close).
pub(crate) fn read_lines(
    child: &mut std::process::Child,
) -> (mpsc::Receiver<String>, Vec<std::thread::JoinHandle<()>>) {
    let (sender, lines) = mpsc::channel::<String>();
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let sender = sender.clone();
        std::thread::spawn(move || forward_lines(stream, &sender))
    })
    .collect();
    (lines, readers)
}

/// Sends each line read from `stream` (a carriage-return redraw keeps its last state) until
/// the stream ends or nobody listens.
fn forward_lines(stream: Box<dyn Read + Send>, sender: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                // A carriage return redraws a progress line: keep its last state only.
                let line = text.trim_end_matches(['\n', '\r']);
                let line = line.rsplit('\r').next().unwrap_or(line);
                if sender.send(line.to_string()).is_err() {
                    return;
                }
            }
        }
    }
}

/// The heartbeat interval for Kudu's idle timeout: a third of it, at most 20 seconds (KuduSync's
/// own interval), at least one second.
pub fn heartbeat_for(idle_timeout: Duration) -> Duration {
    (idle_timeout / 3).clamp(Duration::from_secs(1), Duration::from_secs(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)] // sh; Windows' cmd /c runs in tests/windows.rs
    fn leaky_variables_do_not_reach_children() {
        let env = KuduEnv::from_pairs([
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("VIRTUAL_ENV", "/somewhere/else".to_string()),
            ("PIP_TARGET", "/tmp/wrong".to_string()),
            ("KEEP_ME", "yes".to_string()),
        ]);
        let output = command("sh", &env)
            .args([
                "-c",
                "echo ${VIRTUAL_ENV:-unset} ${PIP_TARGET:-unset} $KEEP_ME",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "unset unset yes"
        );
        assert_eq!(leaky_variables_present(&env), ["VIRTUAL_ENV", "PIP_TARGET"]);
    }

    #[test]
    #[cfg(unix)] // sh; Windows' cmd /c runs in tests/windows.rs
    fn output_tail_and_status_are_kept() {
        let env = KuduEnv::from_pairs([("PATH", std::env::var("PATH").unwrap_or_default())]);
        let mut cmd = command("sh", &env);
        cmd.args(["-c", "echo one; echo two >&2; printf 'a\\rb\\n'; exit 3"]);
        let finished = run_streamed(&mut cmd, "test", Duration::from_secs(5)).unwrap();
        assert_eq!(finished.status.code(), Some(3));
        let mut tail = finished.tail.clone();
        tail.sort();
        assert_eq!(tail, ["b", "one", "two"]);
        assert!(finished.detail().ends_with("(exited with code 3)"));
    }

    #[test]
    fn heartbeat_is_well_inside_the_idle_timeout() {
        assert_eq!(
            heartbeat_for(Duration::from_secs(60)),
            Duration::from_secs(20)
        );
        assert_eq!(
            heartbeat_for(Duration::from_secs(6)),
            Duration::from_secs(2)
        );
        assert_eq!(
            heartbeat_for(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
