//! Every write may fail, and nothing is lost: a site on the SMB-like share (`tools/smbfs`), one
//! deployment that changes the code and a requirement (the live env copied and installed into,
//! the env's archive packed, the manifest written, the release recorded: 4,809 changes on the
//! share), run again and again with the share failing its k-th change, k spread over every
//! change that deployment makes (the first and last 20 included), with each fault: a full disk
//! (ENOSPC at the k-th change and every later one that takes space), one I/O error (EIO), one
//! refused write (EACCES). After each failed deployment the site is exactly the previous
//! release (every file, the env, the platform's manifest, the archive as the platform extracts
//! it, the app importing from it), `kuduhook status` says it serves the previous deployment,
//! the error names the fault, and nothing the deployment built is left beside the site; a
//! deployment that reports success serves the new release exactly (a record that cannot be
//! written after going live is a warning). Then the same deployment without the fault lands
//! exactly.
//!
//! `KUDUHOOK_FAULT_POINTS` sets how many values of k each fault gets (default 60: the first and
//! last 20 and 20 spread between, about 8 minutes on two cores; 300 is the full sweep, about 40
//! minutes); `KUDUHOOK_FAULT_AT=K` runs change K alone with each fault and prints the logs. Two
//! sites, each on a share of its own, take the cases in turn, one per core.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use support::smb_mount::{Fault, SmbMount, copy_all, site_on_share};
use support::{Run, Site, python, walk};

/// The two releases the sweep goes between: the code and one requirement differ.
fn release(site: &Site, version: &str) {
    site.write(
        "app.py",
        &format!("import kudupkg\n\nRELEASE = '{version}'\n\ndef app():\n    return RELEASE\n"),
    );
    site.write("requirements.txt", &format!("kudupkg=={version}\n"));
}

/// What the site serves, for comparing: every file of wwwroot (the env's by size, the rest by
/// content; the env's own record, which holds times, left out), `oryx-manifest.toml` with the
/// archive's name (made of the env's record) set aside, the archive's entries as the platform
/// extracts them, and what the app returns imported from the extracted env.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Served {
    files: BTreeMap<String, String>,
    archive: BTreeMap<String, String>,
    app: String,
}

fn served(site: &Site) -> Served {
    let mut files = BTreeMap::new();
    let mut archive_path = None;
    for (path, is_dir) in walk(&site.target) {
        if is_dir || path.ends_with(".kuduhook-env.json") {
            continue;
        }
        let full = site.target.join(&path);
        let value = match path.starts_with("env/") {
            // Bytecode holds the path it was compiled at (each env's own): there, not its size.
            true if path.ends_with(".pyc") => "bytecode".to_string(),
            true => std::fs::metadata(&full)
                .map(|m| m.len().to_string())
                .unwrap_or_default(),
            false => {
                let bytes = std::fs::read(&full).unwrap_or_default();
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                if path == "oryx-manifest.toml" {
                    for line in text.clone().lines() {
                        if let Some(name) = line
                            .strip_prefix("compressedVirtualEnvFile = \"")
                            .and_then(|l| l.strip_suffix('"'))
                        {
                            archive_path = Some(site.target.join(name));
                            text = text.replace(name, "ARCHIVE");
                        }
                    }
                }
                kuduhook::ground::digest::hex(&sha2::Sha256::digest(text.as_bytes()))
            }
        };
        files.insert(path, value);
    }
    let extracted = tempfile::tempdir().unwrap();
    let mut archive = BTreeMap::new();
    let mut app = "no archive".to_string();
    if let Some(path) = archive_path {
        let untar = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(extracted.path())
            .output()
            .unwrap();
        if untar.status.success() {
            for (entry, is_dir) in walk(extracted.path()) {
                if !is_dir && !entry.ends_with(".kuduhook-env.json") {
                    let len = match entry.ends_with(".pyc") {
                        true => "bytecode".to_string(),
                        false => std::fs::metadata(extracted.path().join(&entry))
                            .map(|m| m.len().to_string())
                            .unwrap_or_default(),
                    };
                    archive.insert(entry, len);
                }
            }
            let run = Command::new(python("3.11"))
                .args(["-c", "import app; print(app.app())"])
                .env(
                    "PYTHONPATH",
                    extracted.path().join("lib/python3.11/site-packages"),
                )
                .current_dir(&site.target)
                .output()
                .unwrap();
            app = format!(
                "{}{}",
                String::from_utf8_lossy(&run.stdout).trim(),
                if run.status.success() {
                    ""
                } else {
                    " (import failed)"
                }
            );
        } else {
            app = format!("the archive {} does not extract", path.display());
        }
    }
    Served {
        files,
        archive,
        app,
    }
}

/// What kuduhook keeps beside the site that a deployment could leave growing: everything in
/// its folder but the records each deployment rewrites, and what it keeps on local disk but
/// its caches.
fn kept(site: &Site) -> Vec<String> {
    const REWRITTEN: [&str; 6] = [
        "deploy.lock",
        "last-deployment.json",
        "releases.json",
        "sync-state.json",
        "synced",
        "synced-files",
    ];
    let mut kept: Vec<String> = walk(&site.target.parent().unwrap().join(".kuduhook/wwwroot"))
        .into_iter()
        .filter(|(path, _)| !REWRITTEN.iter().any(|r| path.ends_with(r)))
        .filter(|(path, _)| !path.starts_with("cache"))
        .map(|(path, _)| path)
        .collect();
    let local = kuduhook::ground::paths::local_state_dir(&site.target);
    kept.extend(
        walk(&local)
            .into_iter()
            .filter(|(path, _)| path.starts_with("staging/"))
            .map(|(path, _)| format!("local: {path}")),
    );
    kept
}

/// A site on the share at release A (deployed after an earlier release, so that one env is
/// kept for rollback), with a snapshot to put it back to.
struct World {
    site: Site,
    share: SmbMount,
    snapshot: tempfile::TempDir,
    /// What kuduhook keeps beside the site at release A ([`kept`]).
    kept_a: Vec<String>,
    /// What the site serves at release A, and at B (each site's own: scripts hold its path).
    a: Served,
    b: Served,
    /// The changes a clean A -> B makes on the share.
    changes: u64,
}

impl World {
    fn new() -> World {
        let (site, share) = site_on_share(Site::app("3.11"), 0.0);
        release(&site, "1.0");
        site.deploy(&[]).assert_ok();
        let snapshot = tempfile::tempdir().unwrap();
        let mut world = World {
            kept_a: kept(&site),
            a: served(&site),
            b: served(&site),
            changes: 0,
            site,
            share,
            snapshot,
        };
        assert_eq!(world.a.app, "1.0", "release A serves");
        world.share.snapshot(&world.snapshot.path().join("share"));
        copy_all(&world.local(), &world.snapshot.path().join("local"));
        std::fs::copy(&world.site.manifest, world.snapshot.path().join("manifest")).unwrap();
        // A clean A -> B: how many changes it makes, and what B serves.
        world.share.no_faults();
        world
            .deploy_b()
            .assert_ok()
            .assert_contains("Space: about ")
            .assert_contains("(a copy of the live env ")
            .assert_contains(", its archive, as large as the last one ");
        world.changes = world.share.changes();
        world.b = served(&world.site);
        assert_eq!(world.b.app, "2.0", "release B serves");
        world.restore();
        world
    }

    fn local(&self) -> PathBuf {
        kuduhook::ground::paths::local_state_dir(&self.site.target)
    }

    /// Back to release A, as the snapshot has it.
    fn restore(&mut self) {
        self.share.restore(&self.snapshot.path().join("share"));
        std::fs::remove_dir_all(self.local()).unwrap();
        copy_all(&self.snapshot.path().join("local"), &self.local());
        std::fs::copy(self.snapshot.path().join("manifest"), &self.site.manifest).unwrap();
        release(&self.site, "1.0");
    }

    /// The deployment under test: A -> B.
    fn deploy_b(&self) -> Run {
        release(&self.site, "2.0");
        self.site.deploy(&[])
    }
}

/// The values of k for `points` faults over `changes`: the first and last 20, and the rest
/// spread evenly between.
fn points(changes: u64, points: u64) -> Vec<u64> {
    let mut ks: Vec<u64> = (1..=20.min(changes)).collect();
    ks.extend(changes.saturating_sub(19).max(1)..=changes);
    let between = points.saturating_sub(40);
    for i in 1..=between {
        ks.push(20 + i * changes.saturating_sub(40) / (between + 1));
    }
    ks.sort();
    ks.dedup();
    ks
}

/// How the error of a deployment refused for `fault` must name it.
fn names(fault: Fault) -> &'static str {
    match fault {
        Fault::Full => "the disk is full",
        Fault::Io => "(an I/O error)",
        Fault::Refused => "permission denied",
    }
}

/// What one faulted deployment and the clean one after it showed.
#[derive(Default)]
struct Tally {
    refused: usize,
    intact: usize,
    succeeded: usize,
    recovered: usize,
    problems: Vec<String>,
}

/// Release A, the deployment to B with `fault` at the `k`-th change, the checks, and the
/// same deployment without it.
fn case(world: &mut World, fault: Fault, k: u64, verbose: bool, tally: &mut Tally) {
    world.restore();
    world.share.fail_at(fault, k);
    let run = world.deploy_b();
    world.share.no_faults();
    if verbose {
        eprintln!("=== {} at {k}:\n{}", fault.word(), run.log);
    }
    let now = served(&world.site);
    let case = format!("{} at change {k} of {}", fault.word(), world.changes);
    if run.code == 0 {
        // It went live and only a record failed: it serves B, and said so.
        tally.succeeded += 1;
        if now != world.b {
            tally.problems.push(format!(
                "{case}: reported success, but does not serve B: {}",
                diff(&world.b, &now)
            ));
        }
    } else {
        tally.refused += 1;
        if now == world.a {
            tally.intact += 1;
        } else {
            tally.problems.push(format!(
                "{case}: refused, and the site is not release A: {}",
                diff(&world.a, &now)
            ));
        }
        if !run.log.contains(names(fault)) {
            let error = run
                .log
                .lines()
                .find(|l| l.starts_with("error: "))
                .unwrap_or("(no error line)")
                .to_string();
            tally.problems.push(format!(
                "{case}: the error does not name the fault: {error}"
            ));
        }
        let mut status = Command::new(support::kuduhook());
        status.arg("status").arg("--target").arg(&world.site.target);
        let status = Run::of(status);
        // Where the failed deployment's own record could not be written (a full disk),
        // status shows the last one that was: the previous, successful one.
        let says = match run.log.contains("could not write the deployment record") {
            true => status.log.contains("succeeded"),
            false => status.log.contains("serves the previous deployment"),
        };
        if !says {
            tally.problems.push(format!(
                "{case}: kuduhook status does not say the previous deployment serves"
            ));
        }
        let left: Vec<String> = kept(&world.site)
            .into_iter()
            .filter(|p| !world.kept_a.contains(p))
            .collect();
        if !left.is_empty() {
            tally
                .problems
                .push(format!("{case}: left beside the site: {left:?}"));
        }
    }
    let again = world.deploy_b();
    let after = served(&world.site);
    if again.code == 0 && after == world.b {
        tally.recovered += 1;
    } else {
        tally.problems.push(format!(
            "{case}: the next deployment did not land B exactly (exit {}): {}",
            again.code,
            diff(&world.b, &after)
        ));
    }
}

#[test]
fn a_deployment_whose_every_write_may_fail_leaves_the_previous_release_or_the_new_one_whole() {
    // Two sites, each on a share of its own, take the cases in turn: one per core.
    let worlds = [World::new(), World::new()];
    let changes = worlds[0].changes;
    assert!(changes > 1000, "{changes} changes");
    assert_eq!(
        worlds[1].changes, changes,
        "both sites' deployments make the same changes"
    );

    let wanted: u64 = std::env::var("KUDUHOOK_FAULT_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    // `KUDUHOOK_FAULT_AT=K` runs that change alone, with each fault, and prints the logs.
    let only: Option<u64> = std::env::var("KUDUHOOK_FAULT_AT")
        .ok()
        .and_then(|v| v.parse().ok());
    let ks = match only {
        Some(k) => vec![k],
        None => points(changes, wanted),
    };
    let cases: Vec<(Fault, u64)> = [Fault::Full, Fault::Io, Fault::Refused]
        .into_iter()
        .flat_map(|fault| ks.iter().map(move |k| (fault, *k)))
        .collect();
    let verbose = only.is_some();
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = worlds
            .into_iter()
            .enumerate()
            .map(|(index, mut world)| {
                let cases = &cases;
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for (fault, k) in cases.iter().skip(index).step_by(2) {
                        case(&mut world, *fault, *k, verbose, &mut tally);
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all = Tally::default();
    for t in tallies {
        all.refused += t.refused;
        all.intact += t.intact;
        all.succeeded += t.succeeded;
        all.recovered += t.recovered;
        all.problems.extend(t.problems);
    }
    let total = cases.len();
    eprintln!(
        "{changes} changes per deployment; {total} faults injected ({} values of k for each of \
         3 faults); {} deployments refused, previous release intact {} of {}; {} reported \
         success serving the new release; next deployment recovered {} of {total}",
        ks.len(),
        all.refused,
        all.intact,
        all.refused,
        all.succeeded,
        all.recovered
    );
    assert!(
        all.problems.is_empty(),
        "{} problems:\n{}",
        all.problems.len(),
        all.problems.join("\n")
    );
}

/// What differs between two views of the site, briefly.
fn diff(want: &Served, got: &Served) -> String {
    let mut out = Vec::new();
    if want.app != got.app {
        out.push(format!("app returns {:?}, not {:?}", got.app, want.app));
    }
    for (path, value) in &want.files {
        match got.files.get(path) {
            None => out.push(format!("{path} missing")),
            Some(v) if v != value => out.push(format!("{path} differs")),
            _ => {}
        }
    }
    for path in got.files.keys().filter(|p| !want.files.contains_key(*p)) {
        out.push(format!("{path} is extra"));
    }
    if want.archive != got.archive {
        out.push(format!(
            "the archive differs ({} entries, not {})",
            got.archive.len(),
            want.archive.len()
        ));
    }
    out.truncate(8);
    out.join("; ")
}

#[test]
fn the_sweep_takes_the_first_and_last_changes_and_spreads_the_rest() {
    let ks = points(4809, 300);
    assert_eq!(ks.len(), 300);
    assert_eq!(&ks[..3], [1, 2, 3]);
    assert_eq!(ks[ks.len() - 1], 4809);
    assert!(ks.contains(&20) && ks.contains(&4790));
    assert_eq!(points(30, 300), (1..=30).collect::<Vec<_>>());
    let _ = Path::new("");
}
