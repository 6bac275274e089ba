//! The sync without a walk: what git already knows.
//!
//! Kudu's repository is a git checkout, and the site holds what the last successful sync put
//! there. When both are proven, the files to copy and delete are exactly those that differ
//! between the commit last synced and this one (`git diff`): a code-only redeploy touches what
//! changed, with no listing of the target and no `stat` of its unchanged files (on App
//! Service's share each is a network round trip).
//!
//! What proves it, or else the full walk runs, and the log says why ([`WhyFull`]):
//! - a record of the last sync ([`STATE_FILE`], in kuduhook's state folder for the target): the
//!   commit it synced, a hash of the manifest it wrote, a fingerprint of the sync's options,
//!   and the target's top-level modification time when that deployment ended ("sealed");
//! - Kudu's previous manifest is the one that sync wrote (so that deployment succeeded), the
//!   options are the same, the target's top level is as that deployment left it;
//! - the checkout holds exactly its commit: no uncommitted, untracked or ignored files (the
//!   walk would copy those too), and it is at `SCM_COMMIT_ID` when Kudu names one;
//! - the change holds nothing this path does not decide the walk's way: links, submodules,
//!   committed virtual environments, case-only renames on a target that ignores case.
//!
//! Modes are not compared, by either path: the walk compares size and time, and git checks
//! out a mode-only change without touching either.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SyncOptions;
use super::checkout::IndexRead;
use super::gitfiles::Tracked;
use super::listing::{self, Listing};
use super::plan::{FileCopy, Kind, Plan, Removal};
use crate::sync::manifest;

/// The record of the last sync, in the target's state folder.
pub const STATE_FILE: &str = "sync-state.json";

/// The record's format: a record of another one is not trusted.
const FORMAT: u32 = 1;

/// What the last sync of a target was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub format: u32,
    /// The commit whose files the sync put there.
    pub commit: String,
    /// SHA-256 of the manifest it wrote.
    pub manifest_sha256: String,
    /// Of the options that decide what a sync does.
    pub options: String,
    /// The target's modification time when the deployment ended (nanoseconds since the
    /// epoch): `None` until the deployment succeeded.
    pub sealed: Option<u128>,
    /// Whether the target's names ignore case, as the sync's probe found (`None` in a state
    /// an older kuduhook wrote).
    #[serde(default)]
    pub folds_case: Option<bool>,
}

/// Why the sync walks the whole site this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyFull {
    /// `KUDUHOOK_SYNC_VERIFY=full`, a what-if, or a sync run by hand.
    Asked(String),
    /// A clean deployment (`IGNORE_MANIFEST`).
    IgnoreManifest,
    NoGit(String),
    /// Nothing was deployed here before (no previous manifest).
    FirstDeployment,
    /// No record of a previous sync (the first by this version).
    NoRecord,
    OtherFormat,
    OptionsChanged,
    /// The last deployment did not finish.
    NotSealed,
    /// Kudu's previous manifest is not the one the last sync wrote.
    ManifestChanged,
    /// The target's top level changed since the last deployment ended.
    TargetChanged,
    /// The checkout holds files its commit does not.
    Dirty(String),
    NotAtCommit {
        head: String,
        named: String,
    },
    /// `git diff` cannot compare the two commits.
    UnknownCommit(String),
    Unsupported(String),
}

impl WhyFull {
    pub fn describe(&self) -> String {
        match self {
            WhyFull::Asked(why) => why.clone(),
            WhyFull::IgnoreManifest => "a clean deployment (IGNORE_MANIFEST)".into(),
            WhyFull::NoGit(why) => format!("git cannot tell what changed ({why})"),
            WhyFull::FirstDeployment => {
                "a first deployment: there is nothing to compare with".into()
            }
            WhyFull::NoRecord => "no record of what the last sync copied (the first sync \
                 here by this version of kuduhook, or the last one walked a source it could not \
                 describe: a checkout that did not hold exactly its commit, a link, a committed \
                 virtual environment)"
                .into(),
            WhyFull::OtherFormat => "the record of the last sync is from another version".into(),
            WhyFull::OptionsChanged => "the sync's settings changed since the last sync".into(),
            WhyFull::NotSealed => "the last deployment did not finish".into(),
            WhyFull::ManifestChanged => {
                "the previous manifest is not the one the last sync wrote (that deployment \
                 failed, or the manifest came from elsewhere)"
                    .into()
            }
            WhyFull::TargetChanged => {
                "the site's top folder changed since the last deployment (the app, or \
                 someone, added or removed something there)"
                    .into()
            }
            WhyFull::Dirty(path) => format!(
                "the repository holds files its commit does not ({path}): the walk copies \
                 them too"
            ),
            WhyFull::NotAtCommit { head, named } => format!(
                "the repository is at {} but SCM_COMMIT_ID names {}",
                short(head),
                short(named)
            ),
            WhyFull::UnknownCommit(commit) => {
                format!(
                    "git cannot compare with the commit last synced ({})",
                    short(commit)
                )
            }
            WhyFull::Unsupported(what) => what.clone(),
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// What git (or the record of the files last synced) says about this sync.
#[derive(Default)]
pub(super) struct WithoutWalk {
    /// The plan, when the last sync is proven and the source is known exactly.
    pub planned: Option<DeltaPlan>,
    /// What a record of this sync may vouch for: the commit the checkout holds exactly, or the
    /// id of the source's listing.
    pub head: Option<String>,
    /// The source's listing, to record when the source is not a git checkout, and the one the
    /// last sync recorded.
    pub listing: Option<Listing>,
    pub recorded: Option<Listing>,
    /// The checkout was trusted as Kudu wrote it, not proven file by file.
    pub checkout_trusted: bool,
    /// The tree of the commit the checkout holds exactly, when git's index gave it: recorded
    /// with the sync, for the next one's diff.
    pub tracked: Option<Tracked>,
}

/// The look at the source under way: started before anything else the sync does, since on a
/// big repository it is the longest part.
pub(super) enum Checking {
    /// A git checkout: the commit and the check of the checkout (and, beside it, the read of
    /// the tree the last sync recorded), or why git cannot tell.
    Git(
        Result<(String, std::thread::JoinHandle<Result<Proven, WhyFull>>), WhyFull>,
        Recorded,
    ),
    /// Any other folder: its listing, and the one the last sync recorded.
    Files(std::thread::JoinHandle<Result<(Listing, Option<Listing>), WhyFull>>),
}

/// Starts asking what this sync must do: for a git checkout, the commit it is at and (in a
/// thread of its own) whether the checkout holds exactly it; for any other source, its
/// listing ([`listing`]). `looked`: what the pipeline already learned of the source
/// ([`super::look_at_source`]). `None`: the sync walks (a what-if, or the delta is off).
pub(super) fn start(options: &SyncOptions, looked: Option<super::Looked>) -> Option<Checking> {
    if options.what_if || !options.delta.enabled {
        return None;
    }
    let (stated, git) = match looked {
        Some(super::Looked::Files(stated)) => (Some(stated), None),
        Some(super::Looked::Git(git)) => (None, Some(git)),
        None => (None, None),
    };
    if plans_from_record(options) {
        let options = options.clone();
        return Some(Checking::Files(std::thread::spawn(move || {
            // The record first (unless the caller listed the source with it already): the
            // folders it vouches for are not read; then what it cannot vouch for is hashed.
            // The sync's workers, sized for the source's filesystem, started while it is read.
            let to = options.to.clone();
            let reading = stated
                .is_none()
                .then(|| std::thread::spawn(move || listing::read(&to)));
            let pool = super::thread_pool(&options.from);
            let stated = match (stated, reading) {
                (Some(stated), _) => Ok(stated),
                (None, reading) => {
                    let record = reading.and_then(|r| r.join().ok()).flatten();
                    pool.install(|| listing::stat(&options, record))
                }
            };
            stated
                .and_then(|mut stated| {
                    let previous = stated.take_record();
                    pool.install(|| listing::finish(&options, stated, previous.as_ref()))
                        .map(|now| (now, previous))
                })
                .map_err(WhyFull::Unsupported)
        })));
    }
    let checking = match git {
        // Proven before a process ran in the checkout: its folders are looked at again.
        Some(GitLook {
            head: Ok((head, tree)),
            clean: Some(Ok(proven)),
            process_ran: true,
            ..
        }) => Ok((head, spawn_check(options, tree, Some(proven.index)))),
        Some(GitLook {
            head: Ok((head, _)),
            clean: Some(clean),
            ..
        }) => Ok((head, std::thread::spawn(move || clean))),
        Some(GitLook { head: Err(why), .. }) => Err(why),
        _ => head(options, &options.delta).map(|(head, tree)| {
            let check = spawn_check(options, tree, None);
            (head, check)
        }),
    };
    // The last sync's tree (on a share, tens of ms for 100,000 files) read while the
    // checkout is checked.
    let recorded = match &checking {
        Ok(_) => {
            let to = options.to.clone();
            Some(std::thread::spawn(move || Tracked::read(&to)))
        }
        Err(_) => None,
    };
    Some(Checking::Git(checking, recorded))
}

/// The read of the tree the last sync recorded, under way.
pub(super) type Recorded = Option<std::thread::JoinHandle<Option<Tracked>>>;

/// This deployment's first check of the checkout, for a check again after a process ran in
/// it: git's index as that check read it (`None`: it did not).
type Again = Option<Arc<IndexRead>>;

/// [`check_clean`] in a thread of its own, in the step's span (its lines are the step's in the
/// log).
fn spawn_check(
    options: &SyncOptions,
    tree: String,
    again: Option<Again>,
) -> std::thread::JoinHandle<Result<Proven, WhyFull>> {
    let (options, span) = (options.clone(), tracing::Span::current());
    std::thread::spawn(move || {
        span.in_scope(|| {
            let mut checked = check_clean(&options, &tree, again);
            if let Ok(proven) = &mut checked {
                proven.tell(options.listed_changes == 0);
            }
            checked
        })
    })
}

/// What the sync learned of a git checkout before it ran: the commit and tree it is at, and
/// whether it holds exactly them.
pub struct GitLook {
    head: Result<(String, String), WhyFull>,
    /// The sync lists nothing (`kuduhook sync -q`): nothing to tell.
    quiet: bool,
    /// `None` when the commit is not known.
    clean: Option<Result<Proven, WhyFull>>,
    /// A process ran in the checkout since (the start check): its folders are read again.
    process_ran: bool,
}

impl GitLook {
    /// Looks at the checkout the sync will sync from, as the sync would.
    pub(super) fn take(options: &SyncOptions) -> GitLook {
        let head = head(options, &options.delta);
        let clean = head
            .as_ref()
            .ok()
            .map(|(_, tree)| check_clean(options, tree, None));
        GitLook {
            head,
            clean,
            quiet: options.listed_changes == 0,
            process_ran: false,
        }
    }

    /// Says in the log what the look found (once), where the caller's step is.
    pub fn tell(&mut self) {
        if let Some(Ok(proven)) = &mut self.clean {
            proven.tell(self.quiet);
        }
    }

    /// The tree the checkout holds exactly, and its file count, when that was proven from
    /// git's index.
    pub fn proven_tree(&self) -> Option<(&str, usize)> {
        match (&self.head, &self.clean) {
            (
                Ok((_, tree)),
                Some(Ok(Proven {
                    files: Some(files), ..
                })),
            ) => Some((tree.as_str(), *files)),
            _ => None,
        }
    }

    /// The same look after a process ran in the checkout.
    pub fn after_a_process_ran(self) -> GitLook {
        GitLook {
            process_ran: true,
            ..self
        }
    }
}

/// How a checkout was proven to hold exactly its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    /// Trusted as Kudu's checkout wrote it, with no stat per file.
    pub trusted: bool,
    /// The files git tracks, when git's index was read (not when `git status` answered).
    pub files: Option<usize>,
    /// Git's index as the check read it: the tracked files' paths, modes and blobs (the
    /// commit's tree, for the diff with the next commit), and a check again in this
    /// deployment.
    index: Option<Arc<IndexRead>>,
    /// What the log says of how it was proven, once (the caller says it where it belongs).
    said: Option<String>,
}

impl Proven {
    /// Says in the log how the checkout was proven (once; nothing when the sync is quiet).
    fn tell(&mut self, quiet: bool) {
        if let Some(line) = self.said.take()
            && !quiet
        {
            tracing::info!("{line}");
        }
    }
}

/// Whether the sync plans from its record of the files it copied (a source that is not a git
/// checkout), when it may plan without a walk at all.
pub(super) fn plans_from_record(options: &SyncOptions) -> bool {
    !options.what_if && options.delta.enabled && !options.from.join(".git").exists()
}

/// Says in the log why the sync walks the whole site (unless it is quiet).
fn say_walking(options: &SyncOptions, why: &WhyFull) {
    if options.listed_changes > 0 {
        tracing::info!("Walking the whole site: {}", why.describe());
    }
}

/// What git (or the record) says about this sync, from the look [`start`]ed, and says in the
/// log why it walks the whole site when neither can tell.
pub(super) fn without_walk(
    options: &SyncOptions,
    checking: Option<Checking>,
    previous_text: Option<&[u8]>,
    previous: &manifest::Lazy,
    folds_case: bool,
    state: Option<&SyncState>,
) -> WithoutWalk {
    let say = |why: &WhyFull| say_walking(options, why);
    let none = WithoutWalk::default();
    let checking = match checking {
        Some(Checking::Git(head, recorded)) => (head, recorded),
        Some(Checking::Files(listing)) => {
            let listed = listing
                .join()
                .unwrap_or_else(|_| Err(WhyFull::Unsupported("the listing panicked".into())));
            return from_files(options, listed, previous_text, previous, folds_case, state);
        }
        None => {
            if !options.what_if
                && let Some(why) = &options.delta.disabled_because
            {
                say(&WhyFull::Asked(why.clone()));
            }
            return none;
        }
    };
    let (checking, recorded) = checking;
    let (head, clean) = match checking {
        Ok(head_and_check) => head_and_check,
        // A first deployment walks whatever git says: that is the reason worth reading.
        Err(_) if previous_text.is_none() => {
            say(&WhyFull::FirstDeployment);
            return none;
        }
        Err(why) => {
            say(&why);
            return none;
        }
    };
    // The check first: its list of the tracked files, when git's index gave it, is what the
    // diff is computed from (on App Service's share, without a git process).
    let mut clean = clean
        .join()
        .unwrap_or_else(|_| Err(WhyFull::NoGit("git's check panicked".into())));
    let tracked = match &mut clean {
        Ok(proven) => proven.index.as_ref().map(|index| Tracked {
            commit: head.clone(),
            files: index.tracked_files(),
        }),
        Err(_) => None,
    };
    let recorded = recorded.and_then(|read| read.join().ok()).flatten();
    let planned = plan(
        options,
        &options.delta,
        (&head, tracked.as_ref(), recorded),
        previous_text,
        previous,
        folds_case,
        state,
    );
    match (planned, clean) {
        (Ok(planned), Ok(proven)) => WithoutWalk {
            planned: Some(planned),
            head: Some(head),
            checkout_trusted: proven.trusted,
            tracked,
            ..WithoutWalk::default()
        },
        (Err(why), clean) => {
            match &clean {
                // A checkout that held other files is also why the last sync left no record:
                // the reason to act on.
                Err(dirty) if why == WhyFull::NoRecord => say(dirty),
                _ => say(&why),
            }
            WithoutWalk {
                tracked,
                head: clean.ok().map(|_| head),
                ..WithoutWalk::default()
            }
        }
        (Ok(_), Err(why)) => {
            say(&why);
            none
        }
    }
}

/// What the record of the files last synced says about this sync, for a source that is not
/// a git checkout; says in the log why it walks the whole site when it cannot tell.
fn from_files(
    options: &SyncOptions,
    listed: Result<(Listing, Option<Listing>), WhyFull>,
    previous_text: Option<&[u8]>,
    previous: &manifest::Lazy,
    folds_case: bool,
    state: Option<&SyncState>,
) -> WithoutWalk {
    let (now, recorded) = match listed {
        Ok(listed) => listed,
        Err(why) => {
            say_walking(options, &why);
            return WithoutWalk::default();
        }
    };
    if let Some((read, all)) = now.folders_read()
        && read < all
        && options.listed_changes > 0
    {
        let (which, their) = match all {
            1 => ("The source's folder".to_string(), "its"),
            _ => (
                format!("{} of the source's {all} folders", all - read),
                "their",
            ),
        };
        tracing::info!(
            "{which} not read: {their} times and inode are as the record of the last sync \
             has them (no entry added, removed or renamed since); each file's size and times \
             still checked"
        );
    }
    let planned = proven(options, &options.delta, previous_text, state).and_then(|state| {
        let recorded = recorded
            .as_ref()
            .filter(|r| r.id() == state.commit)
            .ok_or(WhyFull::NoRecord)?;
        let changes = listing::differences(recorded, &now)
            .into_iter()
            .map(|d| Change {
                path: d.path,
                existed: d.existed,
                exists: d.exists,
                content: true,
                link: false,
                dir: d.dir,
            })
            .collect::<Vec<_>>();
        let count = changes.len();
        let plan = plan_changes(options, &changes, previous_text, previous, folds_case)?;
        Ok(DeltaPlan {
            plan,
            basis: Basis::Record,
            changed: count,
        })
    });
    if let Err(why) = &planned {
        say_walking(options, why);
    }
    WithoutWalk {
        planned: planned.ok(),
        head: Some(now.id().to_string()),
        listing: Some(now),
        recorded,
        checkout_trusted: false,
        tracked: None,
    }
}

/// A plan without a walk, and what it was computed from.
pub(super) struct DeltaPlan {
    pub plan: Plan,
    pub basis: Basis,
    /// The paths git (or the record) reported, before the sync's own rules.
    pub changed: usize,
}

/// What a plan without a walk compared.
pub(super) enum Basis {
    /// Git's diff between the commit last synced and this one.
    Git { from: String, to: String },
    /// The record of the files the last sync copied, with the source's listing.
    Record,
}

impl DeltaPlan {
    /// For the sync's summary: "from git 1a2b3c4d5e6f..7a8b9c0d1e2f, 1 changed path", or
    /// "from the record of the last sync, 1 changed path".
    pub fn describe(&self) -> String {
        let changed = crate::ground::logging::plural(self.changed, "changed path");
        match &self.basis {
            Basis::Record => format!("from the record of the last sync, {changed}"),
            Basis::Git { from, to } => {
                format!("from git {}..{}, {changed}", short(from), short(to))
            }
        }
    }
}

/// What the caller of the sync knows about this deployment.
#[derive(Debug, Clone, Default)]
pub struct DeltaInputs {
    /// Try the sync without a walk.
    pub enabled: bool,
    /// Why not, when not enabled (for the log).
    pub disabled_because: Option<String>,
    /// The commit Kudu deploys (`SCM_COMMIT_ID`).
    pub commit_id: Option<String>,
    /// The target's modification time when the deployment started, before any step could
    /// change it; `None`: taken when the sync starts.
    pub target_stamp_at_start: Option<u128>,
    /// The caller seals the record when the whole deployment succeeded ([`seal`]); else the
    /// sync seals it itself.
    pub sealed_by_caller: bool,
}

/// The target's modification time, in nanoseconds since the epoch.
pub fn target_stamp(target: &Path) -> Option<u128> {
    let modified = std::fs::metadata(target).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_nanos())
}

fn state_path(target: &Path) -> PathBuf {
    crate::ground::paths::state_dir(target).join(STATE_FILE)
}

/// Marks the last sync's record as belonging to a deployment that succeeded, with the
/// target's top-level time now. A failure only costs the next deployment a walk.
pub fn seal(target: &Path) {
    let path = state_path(target);
    let Some(mut state) = read_state(&path) else {
        return;
    };
    state.sealed = target_stamp(target);
    let _ = write_state(&path, &state);
}

fn read_state(path: &Path) -> Option<SyncState> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_state(path: &Path, state: &SyncState) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    crate::ground::paths::write_atomically_in_place(path, &json)
}

/// Forgets the last sync (a sync that cannot be described by a commit).
pub fn forget(target: &Path) {
    let _ = std::fs::remove_file(state_path(target));
}

impl SyncState {
    /// The state the last sync of `target` recorded, if any and readable: read once per sync.
    pub(super) fn of(target: &Path) -> Option<SyncState> {
        read_state(&state_path(target))
    }

    /// Whether the target's names ignore case, as the last sync found, when nothing has changed
    /// the target's top folder since its deployment succeeded (the same folder: no new probe,
    /// whose file would change the folder's time, and so the state, at every sync).
    pub(super) fn folds_case(&self, options: &SyncOptions) -> Option<bool> {
        let at_start = options.delta.target_stamp_at_start?;
        (self.format == FORMAT && self.sealed == Some(at_start)).then_some(self.folds_case)?
    }
}

/// Records the sync that just wrote `manifest_text` from `commit`, to a target whose names
/// ignore case or not (`folds_case`); `on_disk` is the state the target has now, if known.
pub(super) fn record(
    options: &SyncOptions,
    (commit, manifest_text): (&str, &[u8]),
    sealed: bool,
    folds_case: bool,
    on_disk: Option<&SyncState>,
) {
    let state = SyncState {
        format: FORMAT,
        commit: commit.to_string(),
        manifest_sha256: sha256(manifest_text),
        options: options.fingerprint(),
        sealed: sealed.then(|| target_stamp(&options.to)).flatten(),
        folds_case: Some(folds_case),
    };
    // An unchanged redeploy's state is the one recorded: not written again.
    if on_disk != Some(&state) {
        let _ = write_state(&state_path(&options.to), &state);
    }
}

fn sha256(bytes: &[u8]) -> String {
    crate::ground::digest::hex(&Sha256::digest(bytes))
}

/// Runs git in the source: its output, or why it failed.
pub(super) fn git(source: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(source)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .map_err(|e| format!("git could not be run: {e}"))?;
    match out.status.success() {
        true => Ok(out.stdout),
        false => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("git failed")
            .to_string()),
    }
}

/// The commit the checkout is at (and Kudu deploys, when it names one), and its tree.
fn head(options: &SyncOptions, inputs: &DeltaInputs) -> Result<(String, String), WhyFull> {
    let source = &options.from;
    // From git's files where they answer (on the share a git process costs ~75 ms), else one
    // git for both: the commit, and its tree (what the checkout check compares git's index
    // with).
    let (head, tree) = match super::gitfiles::head(source) {
        Some(found) => found,
        None => rev_parse_head(source)?,
    };
    if let Some(named) = &inputs.commit_id
        && !named.is_empty()
        && !head.starts_with(named.as_str())
    {
        return Err(WhyFull::NotAtCommit {
            head,
            named: named.clone(),
        });
    }
    Ok((head, tree))
}

/// `git rev-parse HEAD HEAD^{tree}`.
fn rev_parse_head(source: &Path) -> Result<(String, String), WhyFull> {
    if !source.join(".git").exists() {
        return Err(WhyFull::NoGit(
            "the repository is not a git checkout".into(),
        ));
    }
    let out = git(source, &["rev-parse", "HEAD", "HEAD^{tree}"]).map_err(WhyFull::NoGit)?;
    let out = String::from_utf8_lossy(&out);
    let mut lines = out.lines().map(str::trim);
    let (Some(head), Some(tree)) = (lines.next(), lines.next()) else {
        return Err(WhyFull::NoGit(format!(
            "unexpected git rev-parse output: {out}"
        )));
    };
    Ok((head.to_string(), tree.to_string()))
}

/// Whether the checkout holds exactly its commit (whose tree is `head_tree`): nothing
/// modified, untracked or ignored. Proven from git's index where it can be
/// ([`super::checkout`]: Kudu's checkout trusted, with the record of the repository's folders
/// the last check left beside the target's sync record, or every tracked file's stat), else
/// asked of `git status`. `again`: this deployment proved it already, then ran a process there
/// (the record is that proof's: only the folders are looked at again, and git's index is not
/// read again while its file is the same).
fn check_clean(
    options: &SyncOptions,
    head_tree: &str,
    again: Option<Again>,
) -> Result<Proven, WhyFull> {
    use super::checkout::{FOLDERS_FILE, Folders, Trust, Verdict};
    let source = &options.from;
    let record = crate::ground::paths::state_dir(&options.to).join(FOLDERS_FILE);
    // `head` checked that a commit Kudu names is HEAD.
    let named_by_kudu = options
        .delta
        .commit_id
        .as_deref()
        .is_some_and(|c| !c.is_empty());
    let trust = Trust {
        named_by_kudu,
        previous: Folders::read(&record),
        proven_in_this_deployment: again.is_some(),
        index: again.flatten(),
    };
    let again = trust.proven_in_this_deployment;
    let verdict = super::checkout::check(source, head_tree, &trust);
    // The tracked files listed now, in the look the pipeline takes beside the Python steps:
    // the sync's diff needs them (once per read of the index).
    if let Verdict::Trusted { index, .. } | Verdict::Clean { index, .. } = &verdict {
        index.tracked_files();
    }
    match verdict {
        Verdict::Trusted {
            files,
            relisted,
            folders,
            index,
        } => {
            let folders_read = folders_read_again(relisted, folders.times.len());
            let said = Some(match again {
                true => format!(
                    "The repository after the start check: {folders_read}, nothing untracked"
                ),
                false => format!(
                    "The repository is Kudu's checkout of its commit (git's index written since \
                     the last deployment): its {files} files trusted without a stat each; \
                     {folders_read}, nothing untracked"
                ),
            });
            folders.write(&record);
            Ok(Proven {
                trusted: true,
                files: Some(files),
                index: Some(index),
                said,
            })
        }
        Verdict::Clean {
            files,
            folders,
            not_trusted,
            index,
            ..
        } => {
            let said = named_by_kudu.then(|| {
                format!(
                    "The repository's {files} files checked one by one against git's index, \
                     not trusted to Kudu's checkout: {not_trusted}"
                )
            });
            folders.write(&record);
            Ok(Proven {
                trusted: false,
                files: Some(files),
                index: Some(index),
                said,
            })
        }
        Verdict::Listed { why, folders } => {
            git_status_clean(source)?;
            // Taken before git looked: they vouch for the next check.
            folders.write(&record);
            Ok(Proven {
                trusted: false,
                files: None,
                index: None,
                said: Some(format!(
                    "git status found the checkout clean, where git's index alone could not \
                     prove it ({why})"
                )),
            })
        }
        Verdict::Unsure(why) => {
            git_status_clean(source)?;
            Ok(Proven {
                trusted: false,
                files: None,
                index: None,
                said: Some(format!(
                    "git status found the checkout clean, where git's index alone could not \
                     prove it ({why})"
                )),
            })
        }
    }
}

/// "of its 102 folders, 1 changed and was read again" (or "none changed").
fn folders_read_again(relisted: usize, folders: usize) -> String {
    let of = crate::ground::logging::plural(folders, "folder");
    match relisted {
        0 => format!("of its {of}, none changed"),
        1 => format!("of its {of}, 1 changed and was read again"),
        n => format!("of its {of}, {n} changed and were read again"),
    }
}

/// `git status`'s answer: nothing modified, untracked or ignored.
fn git_status_clean(source: &Path) -> Result<(), WhyFull> {
    let status = git(
        source,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=matching",
            "--no-renames",
        ],
    )
    .map_err(WhyFull::NoGit)?;
    match status.split(|b| *b == 0).find(|e| e.len() > 3) {
        Some(first) => Err(WhyFull::Dirty(
            String::from_utf8_lossy(&first[3..]).into_owned(),
        )),
        None => Ok(()),
    }
}

/// One change git reports (or the record of the files last synced).
struct Change {
    path: String,
    existed: bool,
    exists: bool,
    /// The content changed (not only the mode).
    content: bool,
    /// A link or a submodule, before or after.
    link: bool,
    /// A folder (only the record of the files lists folders: git's are implied by its files).
    dir: bool,
}

/// `git diff --raw` between two commits.
fn diff(source: &Path, from: &str, to: &str) -> Result<Vec<Change>, WhyFull> {
    let out = git(
        source,
        &[
            "diff",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            from,
            to,
        ],
    )
    .map_err(|_| WhyFull::UnknownCommit(from.to_string()))?;
    let mut fields = out.split(|b| *b == 0);
    let mut changes = Vec::new();
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let meta = String::from_utf8_lossy(meta);
        let path = fields
            .next()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        if parts.len() < 5 {
            return Err(WhyFull::NoGit(format!(
                "unexpected git diff output: {meta}"
            )));
        }
        let is_link = |mode: &str| mode == "120000" || mode == "160000";
        changes.push(Change {
            path,
            existed: parts[0] != "000000",
            exists: parts[1] != "000000",
            content: parts[2] != parts[3],
            link: is_link(parts[0]) || is_link(parts[1]),
            dir: false,
        });
    }
    Ok(changes)
}

/// The previous manifest's lines as written (original case), `/`-separated.
fn manifest_lines(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .trim_start_matches('\u{feff}')
        .lines()
        .map(|l| match l.trim() {
            l if l.contains('\\') => l.replace('\\', "/"),
            l => l.to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// Which of `asked` the previous manifest (`lines`, as `text` was parsed into `previous`)
/// lists: as written, and as a target that ignores case compares them (`folds_case`; as
/// [`manifest::Manifest::contains`], in the lines themselves where every name is ASCII, the
/// whole manifest parsed otherwise).
fn listed_of<'a>(
    asked: &'a [String],
    lines: &[String],
    text: &[u8],
    previous: &manifest::Lazy,
    folds_case: bool,
) -> (HashSet<&'a str>, HashSet<&'a str>) {
    let mut by_len: HashMap<usize, Vec<&str>> = HashMap::new();
    for path in asked {
        by_len.entry(path.len()).or_default().push(path);
    }
    let ascii = text.is_ascii() && asked.iter().all(|p| p.is_ascii());
    let (mut exact, mut folded) = (HashSet::new(), HashSet::new());
    for line in lines {
        for &path in by_len.get(&line.len()).into_iter().flatten() {
            if path == line {
                exact.insert(path);
            }
            if folds_case && ascii && path.eq_ignore_ascii_case(line) {
                folded.insert(path);
            }
        }
    }
    if folds_case && !ascii {
        let previous = previous.get();
        folded = asked
            .iter()
            .map(String::as_str)
            .filter(|p| previous.contains(p))
            .collect();
    }
    (exact, folded)
}

/// The folders above `path`, outermost first.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(slash) = path[at..].find('/') {
        out.push(path[..at + slash].to_string());
        at += slash + 1;
    }
    out
}

fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Plans the sync from git, or says why it cannot. `previous_text` is the previous manifest as
/// read (`None`: there was none), `previous` the same parsed.
fn plan(
    options: &SyncOptions,
    inputs: &DeltaInputs,
    (head, tracked, recorded): (&str, Option<&Tracked>, Option<Tracked>),
    previous_text: Option<&[u8]>,
    previous: &manifest::Lazy,
    folds_case: bool,
    state: Option<&SyncState>,
) -> Result<DeltaPlan, WhyFull> {
    let state = proven(options, inputs, previous_text, state)?;
    // The two trees' lists, when the last sync recorded its own: git's diff without git.
    let recorded = recorded.filter(|recorded| tracked.is_some() && recorded.commit == state.commit);
    let changes = match (tracked, recorded) {
        (Some(now), Some(before)) => now
            .differences_from(&before)
            .into_iter()
            .map(|d| Change {
                path: d.path,
                existed: d.existed,
                exists: d.exists,
                content: d.content,
                link: d.link,
                dir: false,
            })
            .collect(),
        _ => diff(&options.from, &state.commit, head)?,
    };
    let plan = plan_changes(options, &changes, previous_text, previous, folds_case)?;
    Ok(DeltaPlan {
        plan,
        basis: Basis::Git {
            from: state.commit.clone(),
            to: head.to_string(),
        },
        changed: changes.len(),
    })
}

/// The state of the last sync (`state`, as read when this one started), when it is proven to
/// say what the target holds: that sync's deployment finished, wrote the previous manifest,
/// with the same options, and nothing changed the target's top folder since.
fn proven<'s>(
    options: &SyncOptions,
    inputs: &DeltaInputs,
    previous_text: Option<&[u8]>,
    state: Option<&'s SyncState>,
) -> Result<&'s SyncState, WhyFull> {
    if options.ignore_manifest {
        return Err(WhyFull::IgnoreManifest);
    }
    let previous_text = previous_text.ok_or(WhyFull::FirstDeployment)?;
    let state = state.ok_or(WhyFull::NoRecord)?;
    if state.format != FORMAT {
        return Err(WhyFull::OtherFormat);
    }
    if state.options != options.fingerprint() {
        return Err(WhyFull::OptionsChanged);
    }
    let Some(sealed) = state.sealed else {
        return Err(WhyFull::NotSealed);
    };
    if sha256(previous_text) != state.manifest_sha256 {
        return Err(WhyFull::ManifestChanged);
    }
    let now = inputs
        .target_stamp_at_start
        .or_else(|| target_stamp(&options.to));
    if now != Some(sealed) {
        return Err(WhyFull::TargetChanged);
    }
    Ok(state)
}

/// The plan for `changes` to the source since the last (proven) sync.
fn plan_changes(
    options: &SyncOptions,
    changes: &[Change],
    previous_text: Option<&[u8]>,
    previous: &manifest::Lazy,
    folds_case: bool,
) -> Result<Plan, WhyFull> {
    let previous_text = previous_text.ok_or(WhyFull::FirstDeployment)?;
    if changes.is_empty() {
        // Nothing changed since the proven sync: nothing to do, the manifest as it was.
        return Ok(Plan {
            manifest_grows: Some((false, false)),
            ..Plan::default()
        });
    }
    // After a proven sync the ledger is exactly the previous manifest.
    let is_ours = |relative: &str| previous.get().contains(relative);
    let skipped = |relative: &str| -> bool {
        let mut prefixes = ancestors(relative);
        prefixes.push(relative.to_string());
        prefixes
            .iter()
            .any(|p| options.ignore.matches(p, name_of(p)))
            || options
                .protected
                .iter()
                .any(|p| p.name.eq_ignore_ascii_case(relative))
    };

    let mut lines = manifest_lines(previous_text);
    // Names as the target compares them: ignoring case where it does.
    let key = |path: &str| match folds_case {
        true => path.to_lowercase(),
        false => path.to_string(),
    };
    let mut plan = Plan::default();
    // As the target compares names: what leaves the manifest, and what comes into it.
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut added: Vec<String> = Vec::new();
    let mut gone_dirs: BTreeSet<String> = BTreeSet::new();
    // Where names ignore case, a name that left and came back in another case.
    let mut deleted_case: BTreeMap<String, String> = BTreeMap::new();
    let mut created_case: BTreeMap<String, String> = BTreeMap::new();
    for change in changes {
        if change.link {
            return Err(WhyFull::Unsupported(format!(
                "a link or submodule changed ({})",
                change.path
            )));
        }
        if name_of(&change.path).eq_ignore_ascii_case("pyvenv.cfg") {
            return Err(WhyFull::Unsupported(format!(
                "a virtual environment's pyvenv.cfg changed ({})",
                change.path
            )));
        }
        if skipped(&change.path) {
            continue;
        }
        if ancestors(&change.path)
            .iter()
            .any(|a| options.from.join(a).join("pyvenv.cfg").is_file())
        {
            continue; // inside a committed virtual environment: never synced
        }
        let (existed, exists) = (change.existed, change.exists);
        if existed && exists && !change.content {
            continue; // a mode change alone: the walk does not see it either
        }
        if change.dir {
            // A folder of its own (the record's): gone once empty, or new with its parents.
            if existed && !exists {
                deleted_case.insert(change.path.to_lowercase(), change.path.clone());
                gone_dirs.extend(ancestors(&change.path));
                gone_dirs.insert(change.path.clone());
            } else if !existed && exists {
                created_case.insert(change.path.to_lowercase(), change.path.clone());
                added.extend(ancestors(&change.path));
                added.push(change.path.clone());
            }
            continue;
        }
        if existed && !exists {
            if is_ours(&change.path) {
                plan.removals.push(Removal {
                    relative: change.path.clone(),
                    kind: Kind::File,
                });
            }
            removed.insert(key(&change.path));
            deleted_case.insert(change.path.to_lowercase(), change.path.clone());
            gone_dirs.extend(ancestors(&change.path));
            continue;
        }
        if !existed {
            created_case.insert(change.path.to_lowercase(), change.path.clone());
        }
        let source = options.from.join(&change.path);
        let meta = std::fs::symlink_metadata(&source)
            .map_err(|e| WhyFull::Dirty(format!("{}: {e}", change.path)))?;
        added.extend(ancestors(&change.path));
        added.push(change.path.clone());
        plan.copies.push(FileCopy {
            relative: change.path.clone(),
            len: meta.len(),
            modified: meta.modified().ok(),
            permissions: meta.permissions(),
            last: options
                .full_compare
                .matches(&change.path, name_of(&change.path)),
            replaces: existed.then(|| change.path.clone()),
        });
    }
    // Whether the last sync put each added path there, as is and as the target compares names
    // (a manifest can hold 100,000 lines, and only the changed paths are asked about).
    let (exact, folded) = listed_of(&added, &lines, previous_text, previous, folds_case);
    let listed = |path: &str| match folds_case {
        true => folded.contains(path),
        false => exact.contains(path),
    };
    // A folder that becomes a file: the site's folder may hold files the app wrote, which the
    // walk refuses to replace before it changes anything.
    let gone: BTreeSet<&str> = deleted_case
        .values()
        .chain(&gone_dirs)
        .map(String::as_str)
        .collect();
    for copy in &plan.copies {
        let inside = format!("{}/", copy.relative);
        if gone
            .range::<str, _>((
                std::ops::Bound::Included(inside.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|first| first.starts_with(&inside))
        {
            return Err(WhyFull::Unsupported(format!(
                "a folder becomes a file ({})",
                copy.relative
            )));
        }
    }
    if folds_case {
        for (key, created) in &created_case {
            if deleted_case
                .get(key)
                .is_some_and(|deleted| deleted != created)
            {
                return Err(WhyFull::Unsupported(format!(
                    "a case-only rename ({created}) on a site that ignores case"
                )));
            }
        }
    }
    // Folders the source no longer has go, deepest first, once empty (files the app wrote in
    // one keep it).
    let mut dirs: Vec<String> = gone_dirs
        .into_iter()
        .filter(|d| !options.from.join(d).is_dir() && is_ours(d))
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for dir in dirs {
        removed.insert(key(&dir));
        plan.removals.push(Removal {
            relative: dir,
            kind: Kind::Dir,
        });
    }
    if folds_case {
        // A new name that the site already has in another case: the walk decides that one
        // (one file there, or two names that collide).
        for path in &added {
            let k = key(path);
            let same_case = exact.contains(path.as_str());
            if listed(path) && !removed.contains(&k) && !same_case {
                return Err(WhyFull::Unsupported(format!(
                    "{path} differs only in case from a name on the site, which ignores case"
                )));
            }
        }
    }
    // New folders: those the target does not have as a folder now, parents first.
    let copied: std::collections::HashSet<&str> =
        plan.copies.iter().map(|c| c.relative.as_str()).collect();
    let mut folders: Vec<String> = Vec::new();
    let mut planned_folders: std::collections::HashSet<&str> = Default::default();
    for path in &added {
        if !copied.contains(path.as_str())
            && (!listed(path) || removed.contains(&key(path)))
            && planned_folders.insert(path.as_str())
        {
            folders.push(path.clone());
        }
    }
    drop(copied);
    plan.folders = folders;
    let mut new_lines: Vec<String> = Vec::new();
    let mut new_keys: BTreeSet<String> = BTreeSet::new();
    for path in &added {
        let k = key(path);
        let already = listed(path) && !removed.contains(&k);
        if !already && new_keys.insert(k) {
            new_lines.push(path.clone());
        }
    }
    plan.manifest_grows = Some((
        !new_lines.is_empty(),
        !new_lines.is_empty() || !removed.is_empty(),
    ));
    if !removed.is_empty() {
        lines.retain(|l| !removed.contains(&key(l)));
    }
    lines.extend(new_lines);
    // The other files are not counted: that would take the walk this sync does without.
    plan.unchanged = 0;
    plan.manifest = lines;
    Ok(plan)
}
