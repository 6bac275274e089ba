//! The sync: copy a repository into the site with KuduSync's semantics, minus its defects.
//!
//! One implementation behind both the deploy pipeline's sync step and `kuduhook sync` (the
//! drop-in for `KUDU_SYNC_CMD`). It runs in two phases:
//! 1. [`plan`]: a parallel walk of source and target decides every change, and checks
//!    everything that could fail for a reason the user must fix, before anything is touched.
//! 2. [`apply`]: deletions, new folders, then copies in parallel (each written beside its
//!    destination and renamed over it), links, and last the full-compare names (`web.config`,
//!    whose change restarts the app, once everything else is in place).
//!
//! The rules:
//! - Changed = missing, or size or modification time differ; full-compare names and
//!   `--checksum` compare content. A copy keeps the source's mtime and mode.
//! - A target entry the source lacks is deleted only when a previous deployment put it there:
//!   the previous manifest lists it, or the ledger does (every path kuduhook synced into this
//!   target and has not yet confirmed gone, kept in [`crate::ground::paths::state_dir`], so files of a
//!   deployment that failed after its sync are still cleaned up). A folder goes only once empty,
//!   so files the app wrote itself survive. Protected names (the env) are never touched.
//! - Nothing outside the target is touched: target entries are found by listing the target,
//!   never by joining manifest lines; links in the target are never walked into; manifest lines
//!   that are absolute or climb out with `..` are refused. Links in the source that point outside
//!   it are skipped (or fail the sync); committed virtual environments are not synced.

mod apply;
mod checkout;
pub mod delta;
pub mod error;
mod gitfiles;
pub mod listing;
pub mod manifest;
pub mod patterns;
mod plan;
pub mod undo;

use manifest::Manifest;
use plan::{Plan, Planner};

use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use tracing::{Span, info, warn};

use crate::ground::error::DeployError;
use crate::ground::logging::{bytes, plural, seconds};
use crate::ground::paths;
use crate::settings::Platform;
use crate::settings::SettingsError;

pub use crate::settings::OutsideLinks;
pub use delta::DeltaInputs;
pub use patterns::{Patterns, split_list};

/// Always left out of the site: KuduSync's default ignore list, and the deployment tools
/// `kuduhook init` commits (they run from the repository, never from the site): the binary,
/// or the launcher (its wrappers and `launcher.py`), and uv.
pub const DEFAULT_SYNC_IGNORE: [&str; 10] = [
    ".git",
    ".hg",
    ".deployment",
    "deploy.cmd",
    "deploy/kuduhook",
    "deploy/kuduhook.exe",
    "deploy/kuduhook.cmd",
    "deploy/launcher.py",
    "deploy/uv",
    "deploy/uv.exe",
];

/// Names compared by content by default (KuduSync's list).
pub const DEFAULT_FULL_COMPARE: [&str; 1] = ["web.config"];

/// The ledger's file name in the target's state folder.
const LEDGER: &str = "synced";

/// A name at the target's root that kuduhook owns: the sync neither copies nor deletes it.
#[derive(Debug, Clone)]
pub struct Protected {
    pub name: String,
    /// The warning when the repository has an entry of that name.
    pub in_repository: String,
}

/// What to sync, and how.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub from: PathBuf,
    pub to: PathBuf,
    /// The last successful deployment's manifest. Given but missing: a first deployment (Kudu's
    /// stock manifest, `hostingstart.html`). Not given: nothing is known to be ours.
    pub previous_manifest: Option<PathBuf>,
    /// Where to write the manifest of this sync.
    pub next_manifest: Option<PathBuf>,
    pub ignore: Patterns,
    /// Names compared by content, not size and time.
    pub full_compare: Patterns,
    /// Compare every same-size file by content.
    pub checksum: bool,
    /// A clean deployment (`IGNORE_MANIFEST=1`, `-x`): delete whatever the source lacks.
    pub ignore_manifest: bool,
    /// Names at the target's root that are never synced nor deleted (the env, the platform's
    /// start file), each with what the log says when the repository has one.
    pub protected: Vec<Protected>,
    pub outside_links: OutsideLinks,
    /// Compute and report, change nothing.
    pub what_if: bool,
    /// How many changes to list one per line before summarizing (`usize::MAX`: all; 0: quiet,
    /// no notes either, only warnings).
    pub listed_changes: usize,
    /// How often a long sync says it is still working.
    pub progress_interval: Duration,
    pub platform: Platform,
    /// Whether and how to sync from git's diff instead of a walk ([`delta`]).
    pub delta: DeltaInputs,
    /// Where to keep what the sync overwrites or deletes, so that it can be undone
    /// ([`undo`]); `None`: nothing is kept.
    pub undo: Option<PathBuf>,
}

impl SyncOptions {
    /// What decides a sync's result besides the two trees: a record of a sync taken with
    /// other options is not trusted.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let protected: Vec<&str> = self.protected.iter().map(|p| p.name.as_str()).collect();
        let text = format!(
            "{}\n{}\n{:?}\n{:?}\n{}\n{:?}\n{:?}\n{:?}\n{}",
            self.from.display(),
            self.to.display(),
            self.ignore.shown(),
            self.full_compare.shown(),
            self.checksum,
            protected,
            self.outside_links,
            self.platform,
            env!("CARGO_PKG_VERSION"),
        );
        crate::ground::digest::hex(&Sha256::digest(text.as_bytes()))
    }

    /// Options with KuduSync's defaults for syncing `from` into `to`.
    pub fn new(from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> SyncOptions {
        SyncOptions {
            from: from.into(),
            to: to.into(),
            previous_manifest: None,
            next_manifest: None,
            ignore: Patterns::default(),
            full_compare: Patterns::new(&DEFAULT_FULL_COMPARE).expect("valid default patterns"),
            checksum: false,
            ignore_manifest: false,
            protected: Vec::new(),
            outside_links: OutsideLinks::Skip,
            what_if: false,
            listed_changes: usize::MAX,
            progress_interval: Duration::from_secs(20),
            platform: Platform::host(),
            delta: DeltaInputs::default(),
            undo: None,
        }
    }
}

/// What a sync did (or, in what-if mode, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub copied: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Entries absent from the source that no deployment put there: written by the app, kept.
    pub kept: usize,
    pub bytes_copied: u64,
    pub what_if: bool,
    /// Time spent walking and comparing, then changing the target.
    pub planning: Duration,
    pub applying: Duration,
    /// Planned without a walk, from what ("from git abc123..def456, 1 changed path", "from the
    /// record of the last sync, 1 changed path").
    pub planned_from: Option<String>,
    /// The repository was trusted as Kudu's `git checkout --force` wrote it: no stat per file.
    pub checkout_trusted: bool,
    /// Folders of the source not read: as the record of the last sync has them.
    pub folders_as_recorded: usize,
}

impl SyncReport {
    pub fn changed(&self) -> usize {
        self.copied + self.deleted
    }

    /// One line: what changed, what was kept, how long it took.
    pub fn summary(&self) -> String {
        // Planned without a walk, the unchanged files were not looked at, so not counted.
        let unchanged = match self.planned_from {
            Some(_) => String::new(),
            None => format!(", {} unchanged", self.unchanged),
        };
        let mut text = if self.changed() == 0 {
            match self.planned_from {
                Some(_) => "Nothing changed".to_string(),
                None => format!(
                    "Nothing changed: {} unchanged",
                    plural(self.unchanged, "file")
                ),
            }
        } else {
            let (copy, delete) = if self.what_if {
                ("Would copy", "would delete")
            } else {
                ("Copied", "deleted")
            };
            format!(
                "{copy} {} ({}), {delete} {}{unchanged}",
                plural(self.copied, "file"),
                bytes(self.bytes_copied),
                self.deleted,
            )
        };
        if self.kept > 0 {
            text.push_str(&format!(
                "; kept {} not from the repository (written by the app)",
                plural(self.kept, "entry")
            ));
        }
        text.push_str(&format!(" in {}", seconds(self.planning + self.applying)));
        if let Some(from) = &self.planned_from {
            text.push_str(&format!(" ({from}, without walking the site)"));
        }
        text
    }
}

/// A failed sync, and whether it had started changing the target.
#[derive(Debug)]
pub struct SyncFailure {
    pub error: DeployError,
    /// False for every error found while planning: the target is as it was.
    pub target_changed: bool,
}

impl From<DeployError> for SyncFailure {
    fn from(error: DeployError) -> Self {
        SyncFailure {
            error,
            target_changed: false,
        }
    }
}

/// What the sync looks at first in its source, when the pipeline takes it before the sync
/// (for the start check's key) and hands it over: the source's files' stats (a source that
/// is not a git checkout, planned from the sync's record), or a git checkout's commit and
/// whether it holds exactly it. So the app's files are looked at once for both.
pub enum Looked {
    Files(listing::Stated),
    Git(delta::GitLook),
}

impl Looked {
    /// Says in the log what the look found, once: where the caller's step is, whichever thread
    /// took the look.
    pub fn tell(&mut self) {
        if let Looked::Git(git) = self {
            git.tell();
        }
    }

    /// The same look after a process ran in the source (the start check imported the app
    /// there): what it may have changed is looked at again, or all of it (`None`).
    pub fn after_a_process_ran(self) -> Option<Looked> {
        match self {
            Looked::Files(_) => None,
            Looked::Git(git) => Some(Looked::Git(git.after_a_process_ran())),
        }
    }
}

/// Looks at the source as the sync will ([`Looked`]); `None`: the sync will walk.
pub fn look_at_source(options: &SyncOptions) -> Option<Looked> {
    if options.what_if || !options.delta.enabled {
        return None;
    }
    if !delta::plans_from_record(options) {
        return Some(Looked::Git(delta::GitLook::take(options)));
    }
    // With the record of the last sync (kept with the listing for the sync): the folders it
    // vouches for are not read.
    let record = listing::read(&options.to);
    thread_pool(&options.from)
        .install(|| listing::stat(options, record))
        .ok()
        .map(Looked::Files)
}

/// Syncs `options.from` into `options.to`; see the module documentation for the rules. The
/// caller has checked the inputs (the source exists; see [`check_not_nested`]).
pub fn sync(options: &SyncOptions) -> Result<SyncReport, SyncFailure> {
    sync_looked(options, None)
}

/// [`sync`], with the source already looked at by [`look_at_source`] (`None`: looked at here).
pub fn sync_looked(
    options: &SyncOptions,
    looked: Option<Looked>,
) -> Result<SyncReport, SyncFailure> {
    let started = Instant::now();
    // Before anything here writes to it (the case probe changes the target's top folder).
    let mut options_stamped;
    let options = match options.delta.target_stamp_at_start {
        Some(_) => options,
        None => {
            options_stamped = options.clone();
            options_stamped.delta.target_stamp_at_start = delta::target_stamp(&options.to);
            &options_stamped
        }
    };
    // First, as it takes longest on a big repository: whether the checkout holds its commit
    // (or, for another source, its listing).
    let checking = delta::start(options, looked);
    let previous_text = match &options.previous_manifest {
        Some(path) => match fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(DeployError::io("read the previous manifest", path, e).into()),
        },
        None => None,
    };
    // Parsed where the plan needs the whole set: a walk, not a plan from git's diff.
    let previous = match &options.previous_manifest {
        Some(path) => {
            if previous_text.is_none() && options.listed_changes > 0 {
                info!(
                    "First deployment: no previous manifest at {}",
                    path.display()
                );
            }
            manifest::Lazy::new(previous_text.as_deref(), Manifest::first_deployment)
        }
        None => manifest::Lazy::new(None, Manifest::default),
    };
    let ledger_path = paths::state_dir(&options.to).join(LEDGER);

    let progress = Progress::default();
    let mut report = SyncReport {
        what_if: options.what_if,
        ..SyncReport::default()
    };
    let pool = thread_pool(&options.to);
    with_progress(
        &progress,
        options.progress_interval,
        || -> Result<(), SyncFailure> {
            // Asked once of the target, for both ways of planning (on a share it is round trips),
            // unless the last sync's state knows.
            let state = delta::SyncState::of(&options.to);
            let folds = state
                .as_ref()
                .and_then(|state| state.folds_case(options))
                .unwrap_or_else(|| plan::folds_case(&options.to, !options.what_if));
            let known = delta::without_walk(
                options,
                checking,
                previous_text.as_deref(),
                &previous,
                folds,
                state.as_ref(),
            );
            // After a proven sync the ledger is the previous manifest: read only for a walk. (A
            // proven sync's previous manifest is the one it wrote: nothing in it is refused.)
            let ledger_read;
            let ledger: &manifest::Lazy = match known.planned {
                Some(_) => &previous,
                None => {
                    warn_refused(
                        previous.get(),
                        "the previous manifest",
                        options.previous_manifest.as_deref(),
                    );
                    let read = read_ledger(&ledger_path);
                    warn_refused(&read, "the ledger", Some(&ledger_path));
                    ledger_read = manifest::Lazy::parsed(read);
                    &ledger_read
                }
            };
            let plan = match known.planned {
                Some(planned) => {
                    report.planned_from = Some(planned.describe());
                    planned.plan
                }
                None => {
                    let (previous, ledger) = (previous.get(), ledger.get());
                    pool.install(|| {
                        let planner = Planner::new(options, previous, ledger, &progress, folds);
                        match &known.listing {
                            Some(listing) => {
                                planner.with_listings(listing, known.recorded.as_ref())
                            }
                            None => planner,
                        }
                        .plan()
                    })?
                }
            };
            report.checkout_trusted = known.checkout_trusted;
            report.folders_as_recorded = known
                .listing
                .as_ref()
                .and_then(|l| l.folders_read())
                .map_or(0, |(read, all)| all - read);
            let (head, listing, tracked) = (known.head, known.listing, known.tracked);
            report.planning = started.elapsed();
            report_plan(&plan, &previous, ledger, options, &mut report);
            if options.what_if {
                return Ok(());
            }
            let started = Instant::now();
            let ledger = Ledger {
                path: &ledger_path,
                entries: ledger,
                platform: options.platform,
            };
            ledger.record_ahead(&plan.manifest, plan.manifest_grows);
            // Until this sync has finished, no record says what the target holds.
            let changes = [
                plan.copies.len(),
                plan.removals.len(),
                plan.folders.len(),
                plan.links.len(),
            ];
            let forgotten = changes.iter().any(|n| *n > 0);
            if forgotten {
                delta::forget(&options.to);
            }
            // The tree's record, written while the files are copied (on a share, tens of ms for
            // 100,000 files): it names its commit, and is read only where the sync's state
            // names that commit as synced, which only a sync that finished writes.
            let recording_tree = match (&head, &options.next_manifest, tracked) {
                (Some(_), Some(_), Some(tracked)) => {
                    let to = options.to.clone();
                    Some(std::thread::spawn(move || tracked.write(&to)))
                }
                _ => None,
            };
            progress.start_applying(plan.copies.len(), report.bytes_copied);
            let changed = |error| SyncFailure {
                error,
                target_changed: true,
            };
            pool.install(|| apply::apply(options, &plan, &progress))
                .map_err(changed)?;
            // A plan that leaves the manifest as it was keeps the previous one's text.
            let written: Cow<[u8]> = match (&previous_text, plan.manifest_grows) {
                (Some(text), Some((_, false))) => Cow::Borrowed(text),
                _ => Cow::Owned(manifest::render(&plan.manifest, options.platform).into_bytes()),
            };
            // KuduSync's drop-in is often given one manifest for both: unchanged, it is not
            // written again.
            let unchanged = options.previous_manifest == options.next_manifest
                && previous_text.as_deref() == Some(&written[..]);
            if let Some(next) = options.next_manifest.as_ref().filter(|_| !unchanged) {
                manifest::write_text(next, &written)
                    .map_err(|e| changed(DeployError::io("write the manifest", next, e)))?;
            }
            ledger.record_done(&plan.manifest, plan.manifest_grows);
            match (&head, &options.next_manifest) {
                (Some(head), Some(_)) => {
                    if let Some(listing) = &listing {
                        listing::write_if_new(&options.to, listing);
                    }
                    if let Some(recording) = recording_tree {
                        let _ = recording.join();
                    }
                    delta::record(
                        options,
                        (head, &written),
                        !options.delta.sealed_by_caller,
                        folds,
                        state.as_ref().filter(|_| !forgotten),
                    )
                }
                _ => delta::forget(&options.to),
            }
            report.applying = started.elapsed();
            Ok(())
        },
    )?;
    Ok(report)
}

/// Adds `paths` to the ledger of `target`: files put back in the site (by an undo or a
/// rollback) that a later sync must be able to delete.
pub fn ledger_add<'p>(target: &Path, paths: impl Iterator<Item = &'p str>, platform: Platform) {
    let path = paths::state_dir(target).join(LEDGER);
    let ledger = read_ledger(&path);
    let mut entries: Vec<String> = ledger.entries().map(String::from).collect();
    let before = entries.len();
    entries.extend(paths.filter(|p| !ledger.contains(p)).map(String::from));
    if entries.len() != before
        && let Err(e) = manifest::write(&path, &entries, platform)
    {
        warn!(
            "could not write {} ({e}): files put back may stay after a later deployment removes \
             them",
            path.display()
        );
    }
}

/// The ledger beside the target (empty when there is none, or it cannot be read).
fn read_ledger(path: &Path) -> Manifest {
    match Manifest::read(path) {
        Ok(ledger) => ledger.unwrap_or_default(),
        Err(e) => {
            warn!(
                "could not read {} ({e}): files of failed deployments may be left behind",
                path.display()
            );
            Manifest::default()
        }
    }
}

/// Logs the plan's warnings and changes, and counts them into `report`.
fn report_plan(
    plan: &Plan,
    previous: &manifest::Lazy,
    ledger: &manifest::Lazy,
    options: &SyncOptions,
    report: &mut SyncReport,
) {
    for warning in &plan.warnings {
        warn!("{warning}");
    }
    for (entry, link) in plan.through_links(previous, ledger) {
        warn!(
            "a manifest lists {entry}, inside {link}, which is a link in the target: refused, \
             links in the target are never followed"
        );
    }
    plan.log_changes(options.listed_changes);
    report.copied = plan.copies.len() + plan.links.len();
    report.deleted = plan.removals.len();
    report.unchanged = plan.unchanged;
    report.kept = plan.kept;
    report.bytes_copied = plan.copies.iter().map(|c| c.len).sum();
}

/// Every path kuduhook synced into a target and has not yet seen confirmed gone.
struct Ledger<'a> {
    path: &'a Path,
    entries: &'a manifest::Lazy<'a>,
    platform: Platform,
}

impl Ledger<'_> {
    /// Write-ahead: whatever a sync may create is recorded before it exists.
    fn record_ahead(&self, next: &[String], known: Option<(bool, bool)>) {
        let grows = match known {
            Some((grows, _)) => grows,
            None => next.iter().any(|entry| !self.entries.get().contains(entry)),
        };
        if grows {
            let mut ahead: Vec<String> = self.entries.get().entries().map(String::from).collect();
            ahead.extend(next.iter().cloned());
            self.write(&ahead);
        }
    }

    /// After a sync: exactly what it synced.
    fn record_done(&self, next: &[String], known: Option<(bool, bool)>) {
        let current = match known {
            Some((_, changed)) => !changed,
            None => {
                let entries = self.entries.get();
                entries.len() == next.len() && next.iter().all(|entry| entries.contains(entry))
            }
        };
        if !current {
            self.write(next);
        }
    }

    fn write(&self, entries: &[String]) {
        if let Err(e) = manifest::write(self.path, entries, self.platform) {
            warn!(
                "could not write {} ({e}): if this deployment fails later, files it added may \
                 be left behind",
                self.path.display()
            );
        }
    }
}

/// The workers that walk and copy in the folder `target` (or check the checkout in the
/// repository: [`checkout`]): more than the cores, because each mostly waits on a
/// metadata call or a copy (on App Service, over a network share). Measured on 2 cores, an
/// unchanged 10,000-file re-sync walks in 85 ms with 2 threads and 60 ms with 8.
/// On a network filesystem every call is a round trip: 32 workers, so that latency, not one
/// call at a time, is the limit. One pool of each kind per process, started when first asked
/// for: a deployment asks several times (the start check's key, the listing, the checkout
/// check, the sync).
pub fn thread_pool(target: &Path) -> &'static rayon::ThreadPool {
    static LOCAL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    static NETWORK: OnceLock<rayon::ThreadPool> = OnceLock::new();
    let network = crate::env::files::network_filesystem(target).is_some();
    let (pool, threads) = match network {
        true => (&NETWORK, 32),
        false => {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (&LOCAL, (cores * 4).clamp(4, 32))
        }
    };
    pool.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("start the sync's worker threads")
    })
}

/// Refuses a source and target where one contains the other (the same folder is allowed: an
/// in-place deployment, which the caller skips).
pub fn check_not_nested(source: &Path, target: &Path) -> Result<(), DeployError> {
    let real = |p: &Path| {
        p.canonicalize()
            .unwrap_or_else(|_| paths::normalize(&std::path::absolute(p).unwrap_or(p.into())))
    };
    let (s, t) = (real(source), real(target));
    if s != t && (t.starts_with(&s) || s.starts_with(&t)) {
        return Err(SettingsError::Nested {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

fn warn_refused(manifest: &Manifest, what: &str, path: Option<&Path>) {
    let shown = path.map(|p| p.display().to_string()).unwrap_or_default();
    for refused in &manifest.refused {
        warn!(
            "{what} {shown} line {}: \"{}\" refused, {}; nothing outside the target is touched",
            refused.line, refused.entry, refused.reason
        );
    }
}

/// Counters a long sync reports while it works.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    examined: AtomicUsize,
    copied: AtomicUsize,
    bytes: AtomicU64,
    /// Set once the apply phase starts: (files, bytes) to copy.
    to_copy: AtomicUsize,
    bytes_to_copy: AtomicU64,
    applying: AtomicBool,
}

impl Progress {
    pub(crate) fn examined(&self) {
        self.examined.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn copied(&self, len: u64) {
        self.copied.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(len, Ordering::Relaxed);
    }

    fn start_applying(&self, files: usize, bytes: u64) {
        self.to_copy.store(files, Ordering::Relaxed);
        self.bytes_to_copy.store(bytes, Ordering::Relaxed);
        self.applying.store(true, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        if self.applying.load(Ordering::Relaxed) {
            format!(
                "Copied {} of {} files ({} of {})...",
                self.copied.load(Ordering::Relaxed),
                self.to_copy.load(Ordering::Relaxed),
                bytes(self.bytes.load(Ordering::Relaxed)),
                bytes(self.bytes_to_copy.load(Ordering::Relaxed))
            )
        } else {
            format!(
                "Processed {} files...",
                self.examined.load(Ordering::Relaxed)
            )
        }
    }
}

/// Runs `work` while a second thread prints a progress line every `interval`, so a long sync
/// is never mistaken for a hung one (Kudu kills a command silent for its idle timeout).
fn with_progress<T>(progress: &Progress, interval: Duration, work: impl FnOnce() -> T) -> T {
    let (done, wait) = mpsc::channel::<()>();
    let span = Span::current();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _entered = span.enter();
            while let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(interval) {
                info!("{}", progress.line());
            }
        });
        let result = work();
        drop(done);
        result
    })
}

/// A link target that stays inside the source, rewritten to point at the same place from the
/// link's position in the target; `None` when it leads outside.
fn link_inside(from: &Path, relative: &str, link: &Path) -> Option<PathBuf> {
    let parent = Path::new(relative).parent().unwrap_or(Path::new(""));
    let resolved = if link.is_absolute() {
        paths::normalize(link)
    } else {
        paths::normalize(&from.join(parent).join(link))
    };
    let inside = resolved.strip_prefix(from).ok()?;
    if link.is_relative() {
        return Some(link.to_path_buf());
    }
    // An absolute link into the source would point back at the repository from the site.
    let mut relative_link = PathBuf::new();
    for _ in parent.components() {
        relative_link.push("..");
    }
    relative_link.push(inside);
    if relative_link.as_os_str().is_empty() {
        relative_link.push(".");
    }
    Some(relative_link)
}

/// Whether `name` is a temporary file an interrupted sync left behind.
fn is_leftover_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

const TEMP_SUFFIX: &str = ".kuduhook-tmp";

/// Where a copy of `dst` is written before it is renamed over it.
fn temp_beside(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    dst.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
}

/// Whether two files hold the same bytes (read in blocks; stops at the first difference).
fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }

    fn read_full(file: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_probe_a_killed_sync_left_is_a_leftover_the_next_one_removes() {
        assert!(is_leftover_temp(&plan::case_probe_name("123-456")));
    }

    #[test]
    #[cfg(unix)] // Unix absolute paths
    fn links_must_stay_inside_the_source() {
        let from = Path::new("/repo");
        let inside = |rel: &str, link: &str| link_inside(from, rel, Path::new(link));
        assert_eq!(inside("a/link", "../b"), Some(PathBuf::from("../b")));
        assert_eq!(inside("link", "../etc"), None);
        assert_eq!(inside("link", "/etc/passwd"), None);
        assert_eq!(inside("a/link", "../../../.."), None);
        // An absolute link into the repository is made relative, so the site's copy points
        // into the site, not back at the repository.
        assert_eq!(
            inside("a/b/link", "/repo/x/y"),
            Some(PathBuf::from("../../x/y"))
        );
        assert_eq!(inside("link", "/repo/x"), Some(PathBuf::from("x")));
    }

    #[test]
    fn nested_folders_are_refused_but_siblings_pass() {
        let base = Path::new("/tmp/kuduhook-nested");
        assert!(check_not_nested(&base.join("repo"), &base.join("repo/www")).is_err());
        assert!(check_not_nested(&base.join("repo/www"), &base.join("repo")).is_err());
        assert!(check_not_nested(&base.join("repo"), &base.join("repo2")).is_ok());
        assert!(check_not_nested(&base.join("repo"), &base.join("repo/../repo/x")).is_err());
    }

    #[test]
    fn leftover_temps_are_recognized() {
        let temp = temp_beside(Path::new("/site/app.py"));
        assert_eq!(temp, PathBuf::from("/site/.app.py.kuduhook-tmp"));
        assert!(is_leftover_temp(".app.py.kuduhook-tmp"));
        assert!(!is_leftover_temp("app.py"));
    }
}
