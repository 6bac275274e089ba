//! Deployments that are killed or that race: `kill -9` at several points of a rebuild, over
//! and over; two and four deployments started at once on one site; a lock held past the wait.
//! After each, the site must run a whole env, and the next deployment must succeed and leave
//! nothing behind.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::smb_mount::site_on_share;
use support::{Site, build_wheel};

/// `kuduhook deploy` for `site`, in a process group of its own (Kudu kills the whole tree).
fn spawn_deploy(site: &Site, settings: &[(&str, &str)]) -> Child {
    site.deploy_command(&[], settings)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start kuduhook")
}

/// `kill -9` of the deployment and every process it started.
fn kill_tree(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-9", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
}

/// Where a deployment is killed: when a log line contains `marker` (and a pause after it
/// passes), or after `after`.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    Line(&'static str),
    LineThen(&'static str, Duration),
    After(Duration),
}

/// Starts a deployment and kills it at `at`. Returns the log up to the kill, and whether the
/// kill landed before the deployment ended by itself.
fn deploy_and_kill(site: &Site, settings: &[(&str, &str)], at: KillAt) -> (String, bool) {
    let mut child = spawn_deploy(site, settings);
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut log = String::new();
    loop {
        let wait = match at {
            KillAt::After(after) => after.saturating_sub(started.elapsed()),
            KillAt::Line(_) | KillAt::LineThen(..) => Duration::from_secs(60),
        };
        match lines.recv_timeout(wait) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                match at {
                    KillAt::Line(marker) if line.contains(marker) => break,
                    KillAt::LineThen(marker, pause) if line.contains(marker) => {
                        std::thread::sleep(pause);
                        break;
                    }
                    _ => {}
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            // The deployment ended before the kill point.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                child.wait().unwrap();
                return (log, false);
            }
        }
    }
    kill_tree(&mut child);
    (log, true)
}

/// Whether the env the site runs is whole: its python runs and imports the app's package at
/// one of the versions of the two deployments.
fn live_version(site: &Site) -> String {
    site.imported_version("kudupkg")
        .unwrap_or_else(|| panic!("the site has no working env after a kill"))
}

/// [`live_version`] right after a kill (`log`: what the killed deployment printed). Where
/// folders cannot be exchanged atomically (the share), the switch is two renames and the live
/// path is missing between them (said in the log, repaired by the next deployment): a kill
/// there leaves the previous env parked beside it, whole, and that is the version it serves
/// until then.
fn version_after_a_kill(site: &Site, log: &str) -> String {
    if let Some(version) = site.imported_version("kudupkg") {
        return version;
    }
    let parked = site.target.join("env.kuduhook-old");
    let parked_version = std::process::Command::new(parked.join("bin/python"))
        .args(["-c", "import kudupkg; print(kudupkg.__version__)"])
        .current_dir(&site.target)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    match parked_version {
        Some(version) if !site.env_dir().exists() => version,
        _ => panic!(
            "the site has no working env after a kill (in the site: {:?})\n{log}",
            support::names_in(&site.target)
        ),
    }
}

/// Where the site ships its env as an archive (on the share), the version of kudupkg in the
/// archive the manifest names: the env the platform's next start extracts. `None`: no archive.
fn archived_version(site: &Site) -> Option<String> {
    let manifest = std::fs::read_to_string(site.target.join("oryx-manifest.toml")).ok()?;
    let table: toml::Table = manifest.parse().unwrap();
    let archive = site
        .target
        .join(table.get("compressedVirtualEnvFile")?.as_str().unwrap());
    let init = kuduhook::env::archive::read_text(
        &archive,
        "lib/python3.11/site-packages/kudupkg/__init__.py",
    )
    .unwrap_or_else(|e| panic!("the manifest names {}: {e}", archive.display()))?;
    let version = init.lines().next()?.split('"').nth(1)?;
    Some(version.to_string())
}

#[test]
fn kill_9_at_any_point_of_a_rebuild_keeps_a_working_env_and_the_next_deploy_cleans_up() {
    kill_9_at_any_point(&Site::app("3.11"));
}

/// The same on App Service Linux's share (no links: the env is built beside the live one and
/// swapped in with two renames, a kill between them repaired by the next deployment).
#[test]
fn kill_9_at_any_point_of_a_rebuild_on_the_share_keeps_a_working_env() {
    let (site, _share) = site_on_share(Site::app("3.11"), 0.2);
    kill_9_at_any_point(&site);
    assert!(
        archived_version(&site).is_some(),
        "the env is shipped as an archive"
    );
}

fn kill_9_at_any_point(site: &Site) {
    build_wheel(&site.wheels_dir_of_its_own(), "extrapkg", "1.0", &[]);
    site.deploy(&[]).assert_ok();
    // Each round changes the requirements: the new env is a copy of the live one (killed
    // during the copy, the install and the removal of what is no longer needed), or a fresh
    // one when forced (killed while it is made and filled).
    let marks = [
        (KillAt::Line("Copied the live env"), true),
        (
            KillAt::Line("Removing what the requirements no longer need"),
            true,
        ),
        (KillAt::Line("| Processing"), true),
        (KillAt::Line("Reused "), true),
        (KillAt::Line("Rebuilding env:"), true),
        (KillAt::Line("Creating env"), true),
        (KillAt::Line("| Installing collected packages"), false),
        (KillAt::Line("Packages:"), false),
        (KillAt::After(Duration::from_millis(150)), true),
        (KillAt::After(Duration::from_millis(1500)), false),
        (KillAt::After(Duration::from_millis(3000)), false),
        (KillAt::After(Duration::from_millis(4500)), false),
    ];
    let mut version = "1.0";
    let mut killed_mid_rebuild = 0;
    for (round, (at, strictly_before_switch)) in marks.into_iter().enumerate() {
        let next = if version == "1.0" { "2.0" } else { "1.0" };
        // Version 2.0 comes with a second package, which going back to 1.0 removes.
        let extra = if next == "2.0" { "extrapkg==1.0\n" } else { "" };
        site.write("requirements.txt", &format!("kudupkg=={next}\n{extra}"));
        // From the fifth round on, fresh envs (a new force-rebuild token each round).
        let token = format!("round-{round}");
        let force = [("APPSETTING_KUDUHOOK_FORCE_ENV_REBUILD", token.as_str())];
        let settings: &[(&str, &str)] = if round >= 4 { &force } else { &[] };
        let (log, killed) = deploy_and_kill(site, settings, at);
        let serving = version_after_a_kill(site, &log);
        if killed && strictly_before_switch {
            assert_eq!(
                serving, version,
                "round {round} ({at:?}): the previous env serves\n{log}"
            );
        } else {
            assert!(
                serving == version || serving == next,
                "round {round} ({at:?}): kudupkg {serving}\n{log}"
            );
        }
        if killed && (log.contains("Rebuilding env:") || log.contains("Copied the live env")) {
            killed_mid_rebuild += 1;
        }
        // A killed deployment never leaves the manifest naming an archive that is not there
        // (read_text fails on a missing or cut archive).
        let _ = archived_version(site);
        let run = site.deploy(&[]);
        run.assert_ok();
        if let Some(archived) = archived_version(site) {
            assert_eq!(
                archived, next,
                "round {round}: the archive is the live env's"
            );
        }
        // It holds the lock from before its first step until after it says "Deployed to".
        if killed && log.contains("==> [1/") && !log.contains("Deployed to ") {
            run.assert_contains("Took over the deploy lock from a deployment that ended");
        }
        assert_eq!(live_version(site), next, "round {round}: {}", run.log);
        assert_eq!(
            site.leftovers(),
            Vec::<String>::new(),
            "round {round}: {}",
            run.log
        );
        version = next;
    }
    assert!(
        killed_mid_rebuild >= 5,
        "only {killed_mid_rebuild} kills landed mid-rebuild"
    );
}

#[test]
fn kill_9_of_a_uv_rebuild_keeps_a_working_env() {
    let site = Site::app("3.11");
    let uv = support::uv().display().to_string();
    let settings = [("KUDUHOOK_INSTALLER", "uv"), ("KUDUHOOK_UV", uv.as_str())];
    site.deploy_with(&[], &settings).assert_ok();
    let mut version = "1.0";
    for marker in [
        "uv 0.13.9 venv",
        "| Using Python",
        "| Resolved",
        "Packages:",
    ] {
        let next = if version == "1.0" { "2.0" } else { "1.0" };
        site.write("requirements.txt", &format!("kudupkg=={next}\n"));
        let (log, _) = deploy_and_kill(&site, &settings, KillAt::Line(marker));
        let serving = version_after_a_kill(&site, &log);
        assert!(
            serving == version || serving == next,
            "{marker}: {serving}\n{log}"
        );
        site.deploy_with(&[], &settings).assert_ok();
        assert_eq!(live_version(&site), next);
        assert_eq!(site.leftovers(), Vec::<String>::new());
        version = next;
    }
}

/// `kuduhook rollback` of `site`, which must succeed.
fn roll_back(site: &Site) -> support::Run {
    let mut cmd = Command::new(support::kuduhook());
    cmd.arg("rollback").arg("--target").arg(&site.target);
    let run = site.run(cmd, &[]);
    run.assert_ok();
    run
}

#[test]
fn kill_9_during_or_after_the_sync_keeps_the_releases_exact() {
    kill_9_around_the_sync(&Site::app("3.11"), 1500, 100);
}

#[test]
fn kill_9_during_or_after_the_sync_on_the_share_keeps_the_releases_exact() {
    let (site, _share) = site_on_share(Site::app("3.11"), 0.2);
    kill_9_around_the_sync(&site, 300, 1000);
}

/// Where the deployments are killed; `sync_ms`: about how long the sync's changes take there
/// (counted from the first change it lists, once its plan is made).
fn kill_around_the_sync_rounds(sync_ms: u64) -> Vec<KillAt> {
    let into = |percent: u64| {
        KillAt::LineThen(
            "ing file: '",
            Duration::from_millis(sync_ms * percent / 100),
        )
    };
    vec![
        KillAt::Line("] sync"),
        into(40),
        into(80),
        KillAt::Line("] slow"),
        into(20),
        into(60),
    ]
}

/// Deployments killed as their sync starts, in the middle of it and in a step after it (the
/// env switched): the next deployment, or a rollback, first puts the live release back from
/// the killed one's undo log, files and env; so a rollback afterwards brings back exactly the
/// release before, and every deployment after a kill leaves exactly the repository's files.
fn kill_9_around_the_sync(site: &Site, files: usize, sync_ms: u64) {
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(r#"{"run": "sleep 3", "name": "slow"}"#),
    );
    let write_round = |round: usize| {
        for i in 0..files {
            let path = format!("pages/p{i}.txt");
            match (i + round) % 5 {
                0 => {
                    let _ = std::fs::remove_file(site.repo.join(&path));
                }
                _ => site.write(&path, &format!("page {i}, release {round}\n")),
            }
        }
        let version = if round.is_multiple_of(2) {
            "1.0"
        } else {
            "2.0"
        };
        site.write("requirements.txt", &format!("kudupkg=={version}\n"));
    };
    let version_in = |files: &std::collections::BTreeMap<String, String>| {
        files["requirements.txt"]
            .trim()
            .trim_start_matches("kudupkg==")
            .to_string()
    };
    let deploy = |why: &str| {
        let run = site.deploy(&[]);
        assert_eq!(run.code, 0, "{why}:\n{}", run.log);
        assert_eq!(
            support::app_files(&site.target),
            support::app_files(&site.repo),
            "{why}"
        );
        support::app_files(&site.target)
    };
    write_round(0);
    // The releases the site keeps (two), as their files.
    let mut kept = vec![deploy("first deployment")];
    let mut killed_mid_sync = 0;
    let pending = site
        .target
        .parent()
        .unwrap()
        .join(".kuduhook/wwwroot/releases/pending/undo.json");
    for (round, at) in kill_around_the_sync_rounds(sync_ms).into_iter().enumerate() {
        let round = round + 1;
        write_round(round);
        let (log, killed) = deploy_and_kill(site, &[], at);
        assert!(
            killed,
            "round {round} ({at:?}) ended before the kill:\n{log}"
        );
        // The sync is the first step: killed after its undo log, before the next step.
        if pending.exists() && !log.contains("] detect-runtime") {
            killed_mid_sync += 1;
        }
        if round.is_multiple_of(2) && kept.len() == 2 {
            // Straight after the kill: back to the release before the live one.
            let run = roll_back(site);
            kept.pop();
            let back = kept.last().unwrap();
            assert_eq!(
                &support::app_files(&site.target),
                back,
                "round {round}: {}",
                run.log
            );
            assert_eq!(
                live_version(site),
                version_in(back),
                "round {round}: {}",
                run.log
            );
        }
        kept.push(deploy(&format!(
            "round {round}: the deployment after the kill"
        )));
        assert_eq!(live_version(site), version_in(kept.last().unwrap()));
        kept.drain(..kept.len().saturating_sub(2));
        assert_eq!(site.leftovers(), Vec::<String>::new(), "round {round}");
        if kept.len() == 2 {
            roll_back(site);
            kept.pop();
            assert_eq!(
                &support::app_files(&site.target),
                kept.last().unwrap(),
                "round {round}"
            );
            assert_eq!(live_version(site), version_in(kept.last().unwrap()));
            assert_eq!(site.leftovers(), Vec::<String>::new(), "round {round}");
            kept.push(deploy(&format!("round {round}: again after the rollback")));
        }
    }
    assert!(
        killed_mid_sync >= 1,
        "no kill landed in the middle of a sync"
    );
}

fn deploys_at_once(count: usize, site: &Site) {
    site.write("uploads/.keep", "");
    site.deploy(&[]).assert_ok();
    // A file the app wrote, which no deployment may lose.
    std::fs::write(site.target_file("uploads/photo.jpg"), "jpeg").unwrap();
    site.write("requirements.txt", "kudupkg==2.0\n");
    let app = "import kudupkg\nVERSION = 2\n\n\ndef app():\n    return VERSION\n";
    site.write("app.py", app);

    let children: Vec<Child> = (0..count).map(|_| spawn_deploy(site, &[])).collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "a concurrent deploy failed:\n{log}");
            log
        })
        .collect();
    let rebuilt = logs
        .iter()
        .filter(|l| l.contains("Copied the live env"))
        .count();
    let waited = logs
        .iter()
        // "(pid ...)" when the holder had written its name yet; on the share a waiter can look
        // in between taking the lock and writing it.
        .filter(|l| l.contains("Waiting for a deployment"))
        .count();
    let reused = logs
        .iter()
        .filter(|l| l.contains("skipped: requirements.txt unchanged"))
        .count();
    assert_eq!(
        rebuilt,
        1,
        "exactly one deployment built a new env:\n{}",
        logs.join("\n---\n")
    );
    assert_eq!(
        reused,
        count - 1,
        "the others found it done:\n{}",
        logs.join("\n---\n")
    );
    assert!(
        waited >= 1,
        "deployments waited for each other:\n{}",
        logs.join("\n---\n")
    );
    assert_eq!(live_version(site), "2.0");
    assert_eq!(
        std::fs::read_to_string(site.target_file("app.py")).unwrap(),
        app
    );
    assert_eq!(
        std::fs::read_to_string(site.target_file("uploads/photo.jpg")).unwrap(),
        "jpeg"
    );
    assert_eq!(site.leftovers(), Vec::<String>::new());
}

#[test]
fn two_deploys_at_once_take_turns() {
    deploys_at_once(2, &Site::app("3.11"));
}

#[test]
fn four_deploys_at_once_take_turns() {
    deploys_at_once(4, &Site::app("3.11"));
}

#[test]
fn three_deploys_at_once_on_the_share_take_turns() {
    let (site, _share) = site_on_share(Site::app("3.11"), 0.2);
    deploys_at_once(3, &site);
}

#[test]
fn a_deploy_that_cannot_get_the_lock_in_time_fails_clearly_and_changes_nothing() {
    let site = Site::app("3.11");
    site.write(
        "deploy/steps.json",
        &support::core_steps_then(r#"{"run": "touch slow-step && sleep 6", "name": "slow"}"#),
    );
    site.deploy(&[]).assert_ok();
    std::fs::remove_file(site.target_file("slow-step")).unwrap();
    let mut slow = spawn_deploy(&site, &[]);
    // Wait until the slow deployment holds the lock, and is past its sync (its run step makes
    // slow-step in the site): the change below is the second deployment's alone.
    let lock = site
        .target
        .parent()
        .unwrap()
        .join(".kuduhook/wwwroot/deploy.lock");
    let started = Instant::now();
    while std::fs::metadata(&lock).map(|m| m.len()).unwrap_or(0) == 0
        || !site.target_file("slow-step").is_file()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the deploy never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    site.write("app.py", "changed = True\n");
    let run = site.deploy_with(
        &[],
        &[
            ("KUDUHOOK_LOCK_WAIT", "3"),
            ("SCM_COMMAND_IDLE_TIMEOUT", "3"),
        ],
    );
    run.assert_failed()
        .assert_contains(&format!("Waiting for a deployment (pid {}", slow.id()))
        .assert_contains("still waiting for a deployment (pid")
        .assert_contains("error: another deployment of this site is still running after 3s")
        .assert_contains("fix: deploy again once it has finished")
        .assert_contains("Nothing in the target was changed");
    assert!(
        !std::fs::read_to_string(site.target_file("app.py"))
            .unwrap()
            .contains("changed")
    );
    assert!(slow.wait().unwrap().success());
}
