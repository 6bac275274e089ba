//! When the start check can be skipped: nothing it depends on changed since the last check that
//! passed on this site.
//!
//! What the check depends on, each part of one key: the app's files (every file's path, size
//! and modification time; `.git` and the env left out; the sync's own listing of the source
//! when the pipeline took one, so that the files are stat'ed once for both), the env (its
//! folder, its id and its last install), the interpreter that runs it, the environment the
//! check's process sees (the app settings among it; Kudu's per-deployment variables left out:
//! the commit id, the temp folder, the manifests' paths), the check itself (its entry or
//! command and timeout) and kuduhook's version. The record of the last pass (its key and when it ran) is kept in the
//! site's local state. A file written within [`RACY`] of that check may have changed without
//! its time moving (a zip's entries keep 2-second times): then the check runs again. Never
//! wrong, only slower: anything unreadable runs the check.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DeployConfig;
use crate::env::PreparedEnv;
use crate::python::Interpreter;

/// How close to the last check a file's time may be before its content is not trusted.
pub const RACY: Duration = Duration::from_secs(2);

/// Kudu's variables that differ on every deployment and say nothing about the app.
const PER_DEPLOYMENT: [&str; 5] = [
    "DEPLOYMENT_TEMP",
    "NEXT_MANIFEST_PATH",
    "PREVIOUS_MANIFEST_PATH",
    "SCM_COMMIT_ID",
    "SCM_COMMIT_MESSAGE",
];

/// What the check depends on besides the app's files.
pub struct Inputs<'a> {
    /// The entry or command, and its timeout.
    pub check: String,
    /// The interpreter that runs the app: its path and version (an env's base interpreter).
    pub interpreter: String,
    /// The env's id and last install's fingerprint (not its folder: a new env is checked where
    /// it is built, and runs where it goes live); `None` without an env.
    pub env: Option<String>,
    /// The environment the check's process gets.
    pub vars: Vec<(&'a str, &'a str)>,
    /// Names left out of the app's files (the env's folder, when the app is the site).
    pub env_name: &'a str,
}

/// What the start check depends on in this deployment: `env` is the env it runs with (`None`:
/// the stack's interpreter `stack` alone), `check` its entry or command and timeout.
pub fn inputs<'a>(
    config: &'a DeployConfig,
    env: Option<&PreparedEnv>,
    stack: Option<&Interpreter>,
    check: String,
) -> Inputs<'a> {
    Inputs {
        check,
        interpreter: match (env, stack) {
            (Some(env), _) => format!("{} {}", env.record.interpreter.display(), env.record.python),
            (None, Some(stack)) => format!("{} {}", stack.path.display(), stack.version),
            (None, None) => String::new(),
        },
        env: env.map(|e| {
            let install = e.record.install.as_ref().map(|i| i.fingerprint.as_str());
            // An env without an id (an earlier kuduhook's) is told apart by its folder.
            let id = e
                .record
                .id
                .clone()
                .unwrap_or_else(|| e.dir.display().to_string());
            format!("{id} {}", install.unwrap_or("-"))
        }),
        vars: config
            .env
            .vars()
            .filter(|(k, _)| !crate::process::LEAKY_VARIABLES.contains(k))
            .collect(),
        env_name: &config.env_name.value,
    }
}

/// The log's line for a skipped check: why, and what the check that vouches for it did.
pub fn skipped(passed: &Passed, files: usize, what: &str) -> String {
    let then = (passed.started_unix_nanos / 1_000_000_000) as u64;
    format!(
        "nothing it depends on changed since the check that passed {} (the app's {files} files, \
         the env, the interpreter, the app settings, the check's own settings and kuduhook's \
         version are as they were): the app {what}",
        crate::ground::logging::ago(then, crate::env::record::now_unix())
    )
}

/// The key of what the check depends on, with the app's file count and newest time; `None`
/// when a file cannot be read (the check then runs).
///
/// `looked`: the app's files as the sync looked at them (the files it deploys: its ignore list
/// applied), when the pipeline did so for both; else they are listed here.
pub fn key(
    app: &Path,
    inputs: &Inputs,
    looked: Option<&crate::sync::Looked>,
) -> Option<(String, usize, SystemTime)> {
    let mut hash = Sha256::new();
    hash.update(b"kuduhook-start-check-v1\0");
    let mut parts: Vec<String> = vec![
        env!("CARGO_PKG_VERSION").to_string(),
        inputs.check.clone(),
        inputs.interpreter.clone(),
        inputs.env.clone().unwrap_or_else(|| "no env".into()),
    ];
    let mut vars: Vec<_> = inputs
        .vars
        .iter()
        .filter(|(k, _)| !PER_DEPLOYMENT.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    parts.extend(vars);
    for part in &parts {
        hash.update(part.as_bytes());
        hash.update(b"\0");
    }
    let env_name = inputs.env_name;
    let leave_out = |name: &str| {
        name == ".git"
            || name == ".hg"
            || name == env_name
            || name.starts_with(&format!("{env_name}."))
    };
    let mut newest = UNIX_EPOCH;
    let mut count = 0;
    let mut stamp = |relative: &str, size: u64, modified: SystemTime| -> Option<()> {
        let since = modified.duration_since(UNIX_EPOCH).ok()?;
        hash.update(relative.as_bytes());
        hash.update(b"\0");
        hash.update(size.to_le_bytes());
        hash.update(since.as_nanos().to_le_bytes());
        newest = newest.max(modified);
        count += 1;
        Some(())
    };
    use crate::sync::Looked;
    match looked {
        // Content, not times: a file of the tree written just now changes nothing.
        Some(Looked::Git(git)) if let Some((tree, files)) = git.proven_tree() => {
            hash.update(b"git tree ");
            hash.update(tree.as_bytes());
            count = files;
        }
        Some(Looked::Files(listed)) => {
            for (relative, size, mtime) in listed.files() {
                stamp(
                    relative,
                    size,
                    UNIX_EPOCH + std::time::Duration::from_nanos(mtime),
                )?;
            }
        }
        _ => {
            // With the sync's workers: on App Service's share each stat is a round trip, and
            // the machine's few cores would take them two at a time.
            let files = crate::sync::thread_pool(app)
                .install(|| crate::ground::paths::files_under(app, &leave_out))?;
            for (relative, meta) in &files {
                stamp(relative, meta.len(), meta.modified().ok()?)?;
            }
        }
    }
    let hex = crate::ground::digest::hex(&hash.finalize());
    Some((hex, count, newest))
}

/// The last check that passed on a site.
#[derive(Debug, Serialize, Deserialize)]
pub struct Passed {
    pub key: String,
    /// When the check started, in nanoseconds since the Unix epoch.
    pub started_unix_nanos: u128,
    pub what: String,
    /// The commit Kudu named for it, if any: a deployment of another commit begins its check
    /// early, expecting it to run.
    #[serde(default)]
    pub commit: Option<String>,
}

/// Where the record is kept.
fn record_path(local_state: &Path) -> PathBuf {
    local_state.join("start-check-passed.json")
}

/// The record of the last pass, when there is one and it is readable.
pub fn read(local_state: &Path) -> Option<Passed> {
    let text = std::fs::read(record_path(local_state)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether a check that passed as `passed` vouches for now: the same key, and no file written
/// so close to that check that it could have changed unseen.
pub fn vouches(passed: &Passed, key: &str, newest: SystemTime) -> bool {
    let newest = newest
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(u128::MAX);
    passed.key == key && newest + RACY.as_nanos() < passed.started_unix_nanos
}

/// Records a pass (a record that cannot be written only means the next check runs).
pub fn record(local_state: &Path, passed: &Passed) {
    if let Ok(text) = serde_json::to_vec_pretty(passed) {
        let _ = std::fs::create_dir_all(local_state);
        let _ = crate::ground::paths::write_atomically(&record_path(local_state), &text);
    }
}

/// Forgets the last pass: a check that fails or times out vouches for nothing.
pub fn forget(local_state: &Path) {
    let _ = std::fs::remove_file(record_path(local_state));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(vars: Vec<(&'a str, &'a str)>) -> Inputs<'a> {
        Inputs {
            check: "imports app:app, timeout 60".into(),
            interpreter: "/usr/bin/python3.11 3.11.7".into(),
            env: Some("abc 123".into()),
            vars,
            env_name: "env",
        }
    }

    #[test]
    fn every_input_is_part_of_the_key_but_the_per_deployment_variables() {
        let app = tempfile::tempdir().unwrap();
        std::fs::write(app.path().join("app.py"), "app = 1").unwrap();
        std::fs::create_dir_all(app.path().join(".git")).unwrap();
        std::fs::write(app.path().join(".git/HEAD"), "x").unwrap();
        let base = || {
            key(
                app.path(),
                &inputs(vec![("A", "1"), ("SCM_COMMIT_ID", "c1")]),
                None,
            )
            .unwrap()
        };
        let (k, count, _) = base();
        assert_eq!(count, 1, "the .git folder is left out");
        let same = key(
            app.path(),
            &inputs(vec![("SCM_COMMIT_ID", "c2"), ("A", "1")]),
            None,
        );
        assert_eq!(
            same.unwrap().0,
            k,
            "a new commit id or another order changes nothing"
        );
        assert_ne!(
            key(app.path(), &inputs(vec![("A", "2")]), None).unwrap().0,
            k
        );
        let mut other = inputs(vec![("A", "1")]);
        other.interpreter = "/opt/python/3.11/bin/python3.11 3.11.7".into();
        assert_ne!(key(app.path(), &other, None).unwrap().0, k);
        let mut other = inputs(vec![("A", "1")]);
        other.env = Some("abc 456".into());
        assert_ne!(key(app.path(), &other, None).unwrap().0, k);
        let mut other = inputs(vec![("A", "1")]);
        other.check = "imports app:app, timeout 30".into();
        assert_ne!(key(app.path(), &other, None).unwrap().0, k);
        std::fs::write(app.path().join("app.py"), "app = 22").unwrap();
        assert_ne!(base().0, k, "a file's size");
        std::fs::write(app.path().join(".git/HEAD"), "changed").unwrap();
        let (k2, _, _) = base();
        std::fs::write(app.path().join("new.py"), "").unwrap();
        assert_ne!(base().0, k2, "a new file");
    }

    #[test]
    fn a_file_written_close_to_the_check_does_not_vouch() {
        let now = SystemTime::now();
        let at = now.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let passed = Passed {
            key: "k".into(),
            started_unix_nanos: at,
            what: String::new(),
            commit: None,
        };
        assert!(vouches(&passed, "k", now - Duration::from_secs(10)));
        assert!(!vouches(&passed, "other", now - Duration::from_secs(10)));
        assert!(!vouches(&passed, "k", now - Duration::from_secs(1)));
    }
}
