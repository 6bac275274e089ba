//! Releases: the one place that decides what the site serves.
//!
//! A deployment's data flows one way: the steps **prepare** a release (a new env built where
//! the site does not run it yet; the sync's files, with an undo log of what they replace),
//! then it **goes live** (the env switch and the platform's start file, once both the env is
//! complete and the files are synced), and at the end it is either **recorded** (kept, with
//! the release before it, for `kuduhook rollback`) or **rolled back**: the previous files put
//! back from the undo log and the previous env switched back in, so that a failed deployment
//! leaves the site as it was.
//!
//! - [`Release`]: the deployment in progress (what the pipeline's steps hand it).
//! - [`history`]: the releases a site keeps (`KUDUHOOK_KEEP_RELEASES`).
//! - [`rollback`]: `kuduhook rollback`, back to a kept release in one step.

pub mod error;
pub mod history;
pub mod record;
pub mod rollback;
pub mod space;

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::env::archive::SiteArchives;
use crate::env::files::remove_any;
use crate::env::record::now_unix;
use crate::env::store::StoreOptions;
use crate::env::store::{EnvStore, LiveEnv, Previous, Switched};
use crate::env::{PreparedEnv, env_python};
use crate::ground::error::{DeployError, site_state as state};
use crate::platform::linux_start;
use crate::settings::Platform;
use crate::settings::Setting;
use crate::sync::undo;

pub use history::{DEFAULT_KEEP, KeptEnv, ReleaseEntry, Releases};

/// What a release needs to know of the deployment: its own options, which `config` resolves
/// from the settings.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub target: PathBuf,
    pub platform: Platform,
    pub dry_run: bool,
    /// `IN_PLACE_DEPLOYMENT`: the repository is the site; no files are synced or kept.
    pub in_place: bool,
    pub commit_id: Option<String>,
    /// `KUDUHOOK_ENV_ARCHIVE`: `None` is auto (where the site is on a network filesystem).
    pub env_archive: Setting<Option<bool>>,
    /// `KUDUHOOK_KEEP_RELEASES`, the live one included.
    pub keep_releases: Setting<usize>,
    /// The site's envs.
    pub store: StoreOptions,
}

/// The release a deployment is preparing, and what going live changed (undone on failure).
pub struct Release<'a> {
    options: &'a ReleaseOptions,
    /// The site's envs, once validate-env has looked at them.
    pub store: Option<EnvStore>,
    /// A new env the site does not run yet.
    pub pending_env: Option<PathBuf>,
    /// Whether the app's files are in the target yet (the sync step has run, or there is none).
    pub synced: bool,
    /// Where the env is shipped as an archive too (decided once, with the store).
    pub archives: Option<SiteArchives>,
    /// An incremental install is changing (or changed) the live env in place.
    pub changed_in_place: bool,
    /// This deployment's sync ran: its undo log is in the pending folder.
    pub sync_ran: bool,
    /// The sync failed after it had started changing the target.
    pub sync_partial: bool,
    /// The switch to a new env, undone if the deployment fails.
    switched: Option<Switched>,
    /// The platform's start file this deployment changed (`oryx-manifest.toml`).
    start_file: Option<linux_start::ManifestChange>,
    /// The live env's archive as the manifest names it, where the env is shipped as one.
    live_archive: Option<String>,
    /// The env was changed in place at some point of the deployment.
    env_changed_in_place: bool,
}

impl<'a> Release<'a> {
    /// A release for this deployment. Before anything else changes the site, what an
    /// interrupted deployment left half-done is undone: its sync's files go back (so that the
    /// releases kept stay a chain of exact undos).
    pub fn prepare(config: &'a ReleaseOptions, synced: bool) -> Result<Release<'a>, DeployError> {
        if !config.dry_run && !config.in_place {
            let store = || Some(crate::env::store::open(&config.store));
            repair_interrupted(&config.target, config.platform, store)?;
        }
        Ok(Release {
            options: config,
            store: None,
            pending_env: None,
            synced,
            archives: None,
            changed_in_place: false,
            sync_ran: false,
            sync_partial: false,
            switched: None,
            start_file: None,
            live_archive: None,
            env_changed_in_place: false,
        })
    }

    /// Where the sync keeps what it replaces (none in a dry run).
    pub fn undo_dir(config: &ReleaseOptions) -> Option<PathBuf> {
        (!config.dry_run && !config.in_place).then(|| history::pending(&config.target))
    }

    /// The envs the site keeps for rollbacks (spared when leftovers are cleaned).
    pub fn kept_envs(config: &ReleaseOptions) -> Vec<PathBuf> {
        Releases::read(&config.target).kept_envs()
    }

    /// What the site's deployments take on its disk ([`space::SpaceReport`]): the envs walked
    /// only off a network share, or with `walk_anyway` (after a failure, for `status`).
    pub fn space_report(&self, walk_anyway: bool) -> space::SpaceReport {
        let target = &self.options.target;
        let live = self
            .store
            .as_ref()
            .map(|s| s.live.clone())
            .unwrap_or_else(|| target.join("env"));
        // The archive the site starts from: this deployment's once it went live, else the one
        // the platform's manifest names.
        let archive = self
            .live_archive
            .clone()
            .or_else(|| linux_start::platform_env(target).compressed)
            .map(|a| target.join(a));
        let walk = walk_anyway || crate::env::files::network_filesystem(target).is_none();
        space::SpaceReport::measure(target, &live, archive.as_deref(), walk)
    }

    /// Marks the live env as changed in place (an incremental install is about to run).
    pub fn changing_in_place(&mut self, yes: bool) {
        self.changed_in_place = yes;
        self.env_changed_in_place |= yes;
    }

    /// Decides whether the env is also shipped as one archive for the platform's start: a
    /// Linux site on a network filesystem (App Service's `/home`, an SMB share), where a start
    /// that imports from the env folder would cross the network for every file it looks up.
    /// `KUDUHOOK_ENV_ARCHIVE` turns it on or off.
    pub fn decide_archives(&mut self, minor: &str) {
        let staged = self.store.as_ref().map(|store| store.staging.is_some());
        self.archives = staged.and_then(|staged| archives(self.options, minor, staged));
    }

    /// The archive of the live env as the start check would run it now, before validate-env
    /// opened the site's envs (a share that refuses links but is not known as a network
    /// filesystem is not told apart here: the check's own command then differs, and it runs
    /// anew).
    pub fn current_archive(config: &ReleaseOptions, minor: &str) -> Option<PathBuf> {
        let live = config.target.join(&config.store.env_name);
        archives(config, minor, false)?.current_for(&live)
    }

    /// Switches the site to the new env, if one is waiting: from here on the steps run it
    /// from the live path (`env` is updated). It happens once both the env is complete and
    /// the files are synced, so the new files and the new env start serving together.
    pub fn go_live(&mut self, env: Option<&mut PreparedEnv>) -> Result<(), DeployError> {
        let (Some(built), Some(store)) = (self.pending_env.take(), &self.store) else {
            return Ok(());
        };
        let archives = self.archives.as_ref();
        let pack = archives.map(|archives| |built: &Path| archives.pack_built(built));
        let (switched, packed) = match store.go_live_with(&built, pack) {
            Ok(done) => done,
            Err(error) => {
                let _ = remove_any(&built);
                return Err(error);
            }
        };
        if let (Some(archives), Some(packed)) = (archives, packed) {
            archives.went_live(&store.live);
            info!(
                "Packed the new env for the platform's start while it was copied ({}): {}; \
                 App Service extracts it to /{} on local disk at each start, so imports do not \
                 cross the network",
                packed.describe(),
                archives.why,
                self.options.store.env_name
            );
            if let Some(line) = packed.setuptools_line() {
                info!("{line}");
            }
        }
        info!(
            "The site now runs the new env: {} -> {} ({} switch{})",
            store.live.display(),
            built.display(),
            store.mode.name(),
            if switched.not_atomic {
                ""
            } else {
                ", one atomic rename"
            }
        );
        if switched.not_atomic {
            warn!(
                "this filesystem cannot exchange folders atomically: {} was missing for an \
                 instant between two renames",
                store.live.display()
            );
        }
        if let Some(env) = env {
            env.dir = store.live.clone();
            env.python = env_python(&store.live, self.options.platform);
        }
        self.switched = Some(switched);
        self.publish_start_file()
    }

    /// On a Linux site, makes `oryx-manifest.toml` name the live env, so that the platform's
    /// next start uses it. Written right after the env switch (and, when the env was reused,
    /// at the end): no start between two deployments sees a manifest and an env that disagree.
    pub fn publish_start_file(&mut self) -> Result<(), DeployError> {
        let c = self.options;
        if c.platform != Platform::Linux || c.dry_run || self.store.is_none() || !self.synced {
            return Ok(());
        }
        let keep = crate::ground::paths::state_dir(&c.target);
        let archive = match (&self.archives, &self.store) {
            (Some(archives), Some(store)) if store.live.join("pyvenv.cfg").is_file() => {
                let mut named_as = vec![store.live.clone()];
                if let LiveEnv::Link(to) = store.live_env() {
                    named_as.push(to);
                }
                let live = archives.for_live(&store.live, &named_as)?;
                if let Some((packed, why)) = &live.packed {
                    info!(
                        "Packed the env into {} for the platform's start ({}): {why} \
                         (it is shipped as an archive because {})",
                        live.relative,
                        packed.describe(),
                        archives.why
                    );
                    if let Some(line) = packed.setuptools_line() {
                        info!("{line}");
                    }
                }
                Some(live.relative)
            }
            _ => None,
        };
        let published =
            linux_start::publish(&c.target, &c.store.env_name, archive.as_deref(), &keep)?;
        self.live_archive = archive;
        if let Some(change) = published {
            match change.replaced_foreign {
                true => warn!("{}", change.said),
                false => info!("{}", change.said),
            }
            self.start_file.get_or_insert(change);
        }
        Ok(())
    }

    /// After the last step: a new env still waiting goes live, and the release is recorded:
    /// kept with what it takes to go back to the release before it, older ones removed.
    pub fn finish(&mut self, env: Option<&mut PreparedEnv>) -> Result<(), DeployError> {
        self.go_live(env)?;
        self.publish_start_file()?;
        if self.options.dry_run {
            return Ok(());
        }
        let removing = self.record();
        if self.sync_ran {
            // Last: nothing after this changes the site's top folder.
            crate::sync::delta::seal(&self.options.target);
        }
        for said in removing.join().unwrap_or_default() {
            info!("{said}");
        }
        Ok(())
    }

    /// Records this deployment as the site's live release, keeps the env it replaced, and
    /// removes what is no longer kept (releases, envs, env archives). Writing the record is
    /// the commit point: a kill before it leaves the undo log pending (the next deployment
    /// puts the previous release back), a kill after it is finished by the next one. What is
    /// no longer kept is removed in a thread (on a share, one round trip per file) while the
    /// rest is recorded: it says what it removed when joined.
    fn record(&mut self) -> std::thread::JoinHandle<Vec<String>> {
        let c = self.options;
        let target = &c.target;
        let mut releases = Releases::read(target);
        let id = releases.next_id();
        let folder = history::release_dir(target, id);
        let _ = crate::env::files::remove_fast(&folder);
        let pending = history::pending(target);
        let files_undo = self.sync_ran && undo::has_record(&pending);
        let previous_env = self.keep_previous_env(&folder);
        let env_id = self
            .store
            .as_ref()
            .and_then(|s| crate::env::record::EnvRecord::read(&s.live))
            .and_then(|r| r.id);
        releases.releases.push(ReleaseEntry {
            id,
            commit: c.commit_id.clone(),
            deployed_unix: now_unix(),
            files_undo,
            previous_env,
            env_changed_in_place: self.env_changed_in_place,
            archive: self.live_archive.clone(),
            env_id,
        });
        // The site serves a new release: no longer the one a rollback brought back.
        releases.last_rollback = None;
        let dropped = releases.prune(target, c.keep_releases.value);
        if let Err(e) = releases.write(target) {
            warn!(
                "{} (the deployment succeeded; `kuduhook rollback` will not offer it)",
                e.explain().what
            );
        }
        if files_undo {
            finish_recording(target, id);
        }
        // Once no record names them, and this release's undo log is in its folder (which is
        // among them when this release is the oldest kept).
        let removing = std::thread::spawn(move || history::remove_dropped(&dropped));
        match (&self.archives, &self.live_archive) {
            (Some(archives), Some(live)) => {
                let mut keep = releases.kept_archives();
                keep.push(live.clone());
                let removed = archives.remove_others(&keep);
                if removed > 0 {
                    info!("Removed {removed} archive(s) of envs no longer kept");
                }
            }
            (None, _) if self.store.is_some() && SiteArchives::remove_all(target) => {
                info!("Removed the env's archives: the env is no longer shipped as one");
            }
            _ => {}
        }
        if c.keep_releases.value > 1 && releases.releases.len() > 1 {
            let previous = &releases.releases[releases.releases.len() - 2];
            info!(
                "Kept the previous release{} for `kuduhook rollback` ({} release(s) kept, {})",
                previous
                    .commit
                    .as_deref()
                    .map(|c| format!(" (commit {})", crate::ground::logging::short_commit(c)))
                    .unwrap_or_default(),
                releases.releases.len(),
                crate::settings::name::KUDUHOOK_KEEP_RELEASES
            );
        }
        removing
    }

    /// The env the site ran before this deployment's switch, kept beside the release (a
    /// folder moves into the release's folder; an env in the envs folder stays there).
    fn keep_previous_env(&mut self, folder: &Path) -> Option<KeptEnv> {
        let switched = self.switched.take()?;
        let store = self.store.as_ref()?;
        match store.previous_ours(&switched)? {
            Previous::Nothing => None, // previous_ours never answers it
            Previous::Link(to) => Some(KeptEnv::Link(to)),
            Previous::Folder(parked) => {
                let kept = folder.join("env");
                let moved =
                    std::fs::create_dir_all(folder).and_then(|()| std::fs::rename(&parked, &kept));
                match moved {
                    Ok(()) => Some(KeptEnv::Folder(kept)),
                    Err(e) => {
                        warn!("could not keep the previous env for a rollback ({e}): removing it");
                        let _ = crate::env::files::remove_fast(&parked);
                        None
                    }
                }
            }
        }
    }

    /// Puts the site back as it was: the previous files from the sync's undo log, the
    /// previous env switched back in (or a new one it never ran dropped), the start file
    /// restored. Returns what the site serves now.
    pub fn fail(&mut self) -> &'static str {
        if let Some(built) = self.pending_env.take() {
            let _ = remove_any(&built);
        }
        let rolled_back = match (self.switched.take(), &self.store) {
            (Some(switched), Some(store)) => {
                let result = store.roll_back(&switched);
                match &result {
                    Ok(()) => info!("Switched the site back to the previous env"),
                    Err(e) => warn!("could not switch back: {}", e.explain().what),
                }
                Some(result.is_ok())
            }
            _ => None,
        };
        // What this deployment built and the site does not run (a half-copied env beside the
        // live one, an env on local disk) goes now, not at the next deployment: on a full disk
        // it is the space the user needs back. Only once the live env is the previous one.
        if rolled_back != Some(false)
            && let Some(store) = &self.store
        {
            match store.clean_leftovers(&Release::kept_envs(self.options)) {
                Ok(removed) if !removed.is_empty() => info!(
                    "Removed what this deployment had built for the env ({} {})",
                    removed.len(),
                    if removed.len() == 1 {
                        "folder"
                    } else {
                        "folders"
                    }
                ),
                Ok(_) => {}
                Err(e) => warn!(
                    "could not remove what this deployment built for the env: {} (the next \
                     deployment removes it)",
                    e.explain().what
                ),
            }
        }
        if let Some(change) = self.start_file.take() {
            match linux_start::restore(&self.options.target, &change) {
                Ok(()) => info!("Put back the previous {}", linux_start::MANIFEST),
                Err(e) => warn!(
                    "could not put back {}: {}",
                    linux_start::MANIFEST,
                    e.explain().what
                ),
            }
        }
        // An archive this deployment packed (whole or in part) and no release starts from.
        if rolled_back != Some(false)
            && let Some(archives) = &self.archives
        {
            let mut keep = Releases::read(&self.options.target).kept_archives();
            keep.extend(linux_start::platform_env(&self.options.target).compressed);
            let removed = archives.remove_others(&keep);
            if removed > 0 {
                info!("Removed the env archive this deployment had packed");
            }
        }
        let files_back = match self.sync_ran || self.sync_partial {
            true => self.undo_files(),
            false => None,
        };
        match (rolled_back, files_back) {
            _ if self.changed_in_place => state::ENV_CHANGED_IN_PLACE,
            (Some(false), _) => state::ENV_NOT_RESTORED,
            (_, Some(false)) => state::FILES_NOT_RESTORED,
            (Some(true), Some(true)) => state::FILES_AND_ENV_RESTORED,
            (None, Some(true)) => state::FILES_RESTORED,
            (Some(true), None) => state::ENV_RESTORED,
            // The sync keeps its undo log before it changes anything: without one, nothing
            // in the target changed.
            (None, None) => state::UNTOUCHED,
        }
    }

    /// Puts back the files this deployment's sync replaced. `None` when it kept none (it
    /// changed nothing); `Some(false)` when they could not all be put back.
    fn undo_files(&mut self) -> Option<bool> {
        let c = self.options;
        let pending = history::pending(&c.target);
        match undo::put_back(&pending, &c.target, c.platform, self.sync_partial) {
            Ok(None) => {
                let _ = crate::env::files::remove_fast(&pending);
                None
            }
            Ok(Some(undone)) => {
                if undone.restored + undone.removed > 0 {
                    info!(
                        "Put the previous files back: {} (from the sync's undo log)",
                        undone.describe()
                    );
                }
                let _ = crate::env::files::remove_fast(&pending);
                Some(true)
            }
            Err(e) => {
                warn!(
                    "could not put every previous file back: {} (the undo log stays in {}; the \
                     next deployment finishes putting them back)",
                    e.explain().what,
                    pending.display()
                );
                Some(false)
            }
        }
    }
}

/// The env's archives, when the site ships its env as one (why, for the log); `staged`: the
/// site's filesystem refuses links.
fn archives(c: &ReleaseOptions, minor: &str, staged: bool) -> Option<SiteArchives> {
    if c.platform != Platform::Linux || c.dry_run {
        return None;
    }
    let why = match c.env_archive.value {
        Some(false) => return None,
        Some(true) => format!("{} is on", crate::settings::name::KUDUHOOK_ENV_ARCHIVE),
        None => match crate::env::files::network_filesystem(&c.target) {
            Some(kind) => format!("the site is on a network filesystem ({kind})"),
            None if staged => "the site's filesystem refuses links (a network share)".into(),
            None => return None,
        },
    };
    Some(SiteArchives::new(&c.target, &c.store.env_name, minor, why))
}

/// Moves the undo log of the release `id`, just recorded, into the release's folder.
fn finish_recording(target: &Path, id: u64) {
    let undo_dir = history::undo_dir(target, id);
    let moved = std::fs::create_dir_all(history::release_dir(target, id))
        .and_then(|()| std::fs::rename(history::pending(target), &undo_dir));
    if let Err(e) = moved {
        warn!("could not keep the undo log of this deployment ({e}): it cannot be rolled back");
    }
}

/// Puts the site back to its live release where a deployment was interrupted after its sync
/// began (its undo log is still pending): the files from that log, then the live release's
/// env, found among the envs the deployment left by the id in its record. So the releases
/// kept stay a chain of exact undos. `store` is the site's env store (`None`: no env to put
/// back). A deployment killed right after it was recorded is finished instead.
pub fn repair_interrupted(
    target: &Path,
    platform: Platform,
    store: impl FnOnce() -> Option<EnvStore>,
) -> Result<(), DeployError> {
    let pending = history::pending(target);
    if !pending.exists() {
        return Ok(());
    }
    let releases = Releases::read(target);
    if let Some(live) = releases.current()
        && live.files_undo
        && !history::undo_dir(target, live.id).exists()
    {
        finish_recording(target, live.id);
        return Ok(());
    }
    if let Some(undone) = undo::put_back(&pending, target, platform, true)? {
        info!(
            "An interrupted deployment had changed the site's files: {} (from its undo log)",
            undone.describe()
        );
    }
    if let (Some(wanted), Some(store)) =
        (releases.current().and_then(|r| r.env_id.clone()), store())
        && let Some(found) = put_back_env(&store, &wanted, &history::dir(target))?
    {
        info!(
            "An interrupted deployment had switched the env: switched back to the live \
             release's env ({})",
            found.display()
        );
    }
    crate::env::files::remove_fast(&pending)
}

/// Makes the env whose record has the id `wanted` the live one, if it is not: looked for beside
/// the live path, in the envs folder and in the releases' folders. Returns where it was found
/// when it was switched in.
fn put_back_env(
    store: &EnvStore,
    wanted: &str,
    releases_dir: &Path,
) -> Result<Option<PathBuf>, DeployError> {
    let id_of = |dir: &Path| crate::env::record::EnvRecord::read(dir).and_then(|r| r.id);
    if id_of(&store.live).as_deref() == Some(wanted) {
        return Ok(None);
    }
    let listed = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let mut candidates: Vec<PathBuf> = crate::env::store::SIDE_SUFFIXES
        .iter()
        .map(|suffix| store.beside(suffix))
        .collect();
    candidates.extend(listed(&store.envs_dir));
    candidates.extend(listed(releases_dir).into_iter().map(|d| d.join("env")));
    let Some(found) = candidates
        .into_iter()
        .find(|c| c.is_dir() && id_of(c).as_deref() == Some(wanted))
    else {
        warn!(
            "the live release's env is gone (an interrupted deployment replaced it): this \
             deployment builds the env again"
        );
        return Ok(None);
    };
    let previous = match found.starts_with(&store.envs_dir) {
        true => Previous::Link(found.clone()),
        false => Previous::Folder(found.clone()),
    };
    let built = match store.live_env() {
        LiveEnv::Link(to) => to,
        _ => store.beside("kuduhook-new"),
    };
    store.roll_back(&Switched {
        built,
        previous,
        not_atomic: false,
    })?;
    Ok(Some(found))
}
