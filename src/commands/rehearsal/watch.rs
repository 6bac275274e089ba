//! Runs the deployment command the way Kudu does: no TTY and no stdin, each output line passed
//! on as it comes, and killed (with everything it started) once it has printed nothing and
//! used no CPU for the idle timeout (`SCM_COMMAND_IDLE_TIMEOUT`).

use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a watched command ended.
#[derive(Debug)]
pub struct Watched {
    pub status: ExitStatus,
    /// It was killed for printing nothing and using no CPU for the whole idle timeout.
    pub idle_killed: bool,
}

/// Runs `cmd` in a process group of its own, calling `on_line` with each line of its stdout
/// and stderr, and kills the group after `idle` without output or CPU time.
pub fn run(
    cmd: &mut Command,
    idle: Duration,
    mut on_line: impl FnMut(&str),
) -> std::io::Result<Watched> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so that the idle kill reaches everything it started.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn()?;
    let group = child.id();
    let (lines, readers) = crate::process::read_lines(&mut child);

    let tick = Duration::from_millis(250).min(idle);
    let mut active_at = Instant::now();
    let mut cpu = group_cpu_ticks(group);
    let mut idle_killed = false;
    loop {
        match lines.recv_timeout(tick) {
            Ok(line) => {
                on_line(&line);
                active_at = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now_cpu = group_cpu_ticks(group);
                if now_cpu != cpu {
                    cpu = now_cpu;
                    active_at = Instant::now();
                }
                if !idle_killed && active_at.elapsed() >= idle {
                    idle_killed = true;
                    crate::process::kill_group(&mut child);
                }
            }
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait()?;
    Ok(Watched {
        status,
        idle_killed,
    })
}

/// The CPU time (clock ticks) used so far by the processes of `group`, including children they
/// have already reaped: it changes while any of them works. Read from Linux's `/proc`; where
/// there is none, only output counts as activity.
fn group_cpu_ticks(group: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| cpu_of_group_member(&stat, group))
        .sum()
}

/// From a `/proc/<pid>/stat` line: utime + stime + cutime + cstime, if the process is in `group`.
fn cpu_of_group_member(stat: &str, group: u32) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields after it start past
    // the last ')'. Then: state, ppid, pgrp, ... utime is field 14 of the line.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    if fields.get(2)?.parse::<u32>().ok()? != group {
        return None;
    }
    fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_from_members_of_the_group_only() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(cpu_of_group_member(stat, 42), Some(13));
        assert_eq!(cpu_of_group_member(stat, 43), None);
    }

    #[test]
    #[cfg(unix)] // the local App Service is a Linux one
    fn a_silent_idle_command_is_killed_and_a_busy_one_is_not() {
        let mut lines = Vec::new();
        let watched = run(
            Command::new("sh").args(["-c", "echo started; sleep 30"]),
            Duration::from_secs(1),
            |l| lines.push(l.to_string()),
        )
        .unwrap();
        assert!(watched.idle_killed);
        assert!(!watched.status.success());
        assert_eq!(lines, ["started"]);

        // Silent for 3 idle timeouts, but computing all along: CPU activity keeps it alive.
        let watched = run(
            Command::new("sh").args([
                "-c",
                "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done; echo done",
            ]),
            Duration::from_secs(1),
            |_| {},
        )
        .unwrap();
        assert!(!watched.idle_killed);
        assert!(watched.status.success());
    }
}
