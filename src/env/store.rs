//! Where the site's envs live, and how the site is switched from one env to the next in one
//! atomic step, so that the web server's `env/bin/python` always runs a complete env.
//!
//! A virtual environment is not relocatable: console scripts and `activate` hold the absolute
//! path it was made at. So a new env is built at the path it will keep, and never moved:
//!
//! - **link** (the default): envs live outside the served files, in
//!   `<site>/.kuduhook/<target>/envs/<name>-<stamp>`, and `<target>/env` is a link to the one
//!   in use (a junction on Windows). Going live renames a new link over the old one. A live
//!   env that is a plain folder (made by deploy.cmd) is swapped for the link with
//!   `renameat2(RENAME_EXCHANGE)`.
//! - **move**, for filesystems that refuse links (App Service Linux's SMB share without
//!   `mfsymlinks`): the env is built beside the live one as `env.kuduhook-new`, its scripts
//!   are rewritten for the live path, and the two folders are exchanged. Where the store found
//!   the links refused itself, the env is built and filled on local disk first ([`EnvStore::
//!   staging`]: every file pip writes would cost round trips on the share) and copied beside
//!   the live one by many workers at once, so that latency, not one call at a time, is the
//!   limit; the old env is removed the same way.
//!
//! Until it goes live a new env is invisible to the site; after, the previous one is kept
//! until the deployment succeeds, so a failure switches back. Whatever a killed deployment
//! left is removed by the next one ([`EnvStore::clean_leftovers`]).

use std::io;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::env::files::{
    CopyAs, copy_tree, is_junction, links_work, make_link, remove_any, remove_fast,
};
use crate::ground::error::DeployError;
use crate::ground::paths;
use crate::settings::Platform;

/// How the site is switched to a new env.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchMode {
    /// Envs are built in the state folder; the live path is a link to one of them.
    Link,
    /// The env is built beside the live one, relocated, and exchanged with it.
    Move,
}

impl SwitchMode {
    pub fn name(self) -> &'static str {
        match self {
            SwitchMode::Link => "link",
            SwitchMode::Move => "move",
        }
    }
}

/// What the live path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEnv {
    Missing,
    /// A plain folder: an env made in place (by deploy.cmd, or in move mode).
    Folder,
    /// A link, and the folder it leads to (absolute).
    Link(PathBuf),
}

/// What the live path held before a switch, and where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    Nothing,
    /// The previous live link led here.
    Link(PathBuf),
    /// The previous live folder was moved here, beside the live path.
    Folder(PathBuf),
}

/// A switch that happened: what is live now, and what was before.
#[derive(Debug, Clone)]
pub struct Switched {
    pub built: PathBuf,
    pub previous: Previous,
    /// The filesystem could not swap folders atomically: two renames were used instead.
    pub not_atomic: bool,
}

/// The names beside the live env that belong to kuduhook: a link or folder being swapped in,
/// a displaced folder, and (from older versions) a folder set aside.
pub const SIDE_SUFFIXES: [&str; 4] = [
    "kuduhook-link",
    "kuduhook-new",
    "kuduhook-old",
    "kuduhook-previous",
];

/// The site's envs: the live path and where new ones are built.
#[derive(Debug, Clone)]
pub struct EnvStore {
    /// `<target>/env`: what the web server runs.
    pub live: PathBuf,
    /// Where link-mode envs are built and kept.
    pub envs_dir: PathBuf,
    pub platform: Platform,
    pub mode: SwitchMode,
    /// Where envs are built on local disk before they are copied onto the site's filesystem
    /// (set where that filesystem refuses links: a network share).
    pub staging: Option<PathBuf>,
}

impl EnvStore {
    pub fn new(target: &Path, env_name: &str, platform: Platform, mode: SwitchMode) -> EnvStore {
        EnvStore {
            live: target.join(env_name),
            envs_dir: paths::state_dir(target).join("envs"),
            platform,
            mode,
            staging: None,
        }
    }

    /// The same store, building envs in `staging` on local disk.
    pub fn staged_in(mut self, staging: PathBuf) -> EnvStore {
        self.staging = Some(staging);
        self
    }

    fn is_staged(&self, built: &Path) -> bool {
        self.staging.as_ref().is_some_and(|s| built.starts_with(s))
    }

    /// `env.<suffix>`, beside the live env.
    pub fn beside(&self, suffix: &str) -> PathBuf {
        let name = self.live.file_name().unwrap_or_default().to_string_lossy();
        self.live.with_file_name(format!("{name}.{suffix}"))
    }

    /// What the live path holds now.
    pub fn live_env(&self) -> LiveEnv {
        match std::fs::symlink_metadata(&self.live) {
            Err(_) => LiveEnv::Missing,
            Ok(meta) if meta.file_type().is_symlink() || is_junction(&meta) => {
                let to = std::fs::read_link(&self.live).unwrap_or_default();
                let parent = self.live.parent().unwrap_or(Path::new(""));
                LiveEnv::Link(paths::normalize(&parent.join(to)))
            }
            Ok(_) => LiveEnv::Folder,
        }
    }

    /// The path a new env is built at, and keeps: a fresh folder in link mode, the side folder
    /// in move mode. Whatever was there is removed first.
    pub fn build_path(&self, stamp: &str) -> Result<PathBuf, DeployError> {
        let name = self.live.file_name().unwrap_or_default().to_string_lossy();
        let path = match (self.mode, &self.staging) {
            (SwitchMode::Link, _) => self.envs_dir.join(format!("{name}-{stamp}")),
            (SwitchMode::Move, Some(staging)) => staging.join(format!("{name}-{stamp}")),
            (SwitchMode::Move, None) => self.beside("kuduhook-new"),
        };
        remove_any(&path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| DeployError::io("create the folder for envs", parent, e))?;
        }
        Ok(path)
    }

    /// Makes the env at `built` the one the site runs, in one step.
    pub fn go_live(&self, built: &Path) -> Result<Switched, DeployError> {
        let none = None::<fn(&Path) -> Result<(), DeployError>>;
        self.go_live_with(built, none).map(|(switched, _)| switched)
    }

    /// Like [`EnvStore::go_live`]; where the env was built on local disk, `alongside` runs on
    /// it (packing its archive) while it is copied onto the site's filesystem, before it goes.
    /// Returns what `alongside` made, when it ran.
    pub fn go_live_with<F, T>(
        &self,
        built: &Path,
        alongside: Option<F>,
    ) -> Result<(Switched, Option<T>), DeployError>
    where
        F: FnOnce(&Path) -> Result<T, DeployError> + Send,
        T: Send,
    {
        let mut made = None;
        let before = self.live_env();
        let incoming = match self.mode {
            SwitchMode::Link => {
                let link = self.beside("kuduhook-link");
                remove_any(&link)?;
                make_link(self.platform, &link, built)
                    .map_err(|e| DeployError::io("make the link to the new env", &link, e))?;
                link
            }
            SwitchMode::Move if self.is_staged(built) => {
                let side = self.beside("kuduhook-new");
                remove_fast(&side)?;
                let started = std::time::Instant::now();
                let files = std::thread::scope(|scope| {
                    let alongside = alongside.map(|job| scope.spawn(move || job(built)));
                    let copied = copy_tree(built, &side, CopyAs::Files);
                    if let Some(job) = alongside {
                        made = Some(job.join().expect("the job beside the env copy panicked")?);
                    }
                    copied
                })?;
                tracing::info!(
                    "Copied the env built on local disk ({files} files) to {} in {}",
                    side.display(),
                    crate::ground::logging::seconds(started.elapsed())
                );
                relocate_from(&side, built, &self.live, self.platform)?;
                remove_any(built)?;
                if let Some(staging) = &self.staging {
                    let _ = std::fs::remove_dir(staging); // only when nothing else is in it
                }
                side
            }
            SwitchMode::Move => {
                relocate(built, &self.live, self.platform)?;
                built.to_path_buf()
            }
        };
        let (displaced, not_atomic) = self.swap_in(&incoming)?;
        let previous = match (before, displaced) {
            (LiveEnv::Link(to), displaced) => {
                if let Some(link) = displaced {
                    remove_any(&link)?;
                }
                Previous::Link(to)
            }
            (LiveEnv::Folder, Some(folder)) => Previous::Folder(folder),
            _ => Previous::Nothing,
        };
        let switched = Switched {
            // What a rollback removes: the link's env, or the folder that came in.
            built: match self.mode {
                SwitchMode::Link => built.to_path_buf(),
                SwitchMode::Move => incoming,
            },
            previous,
            not_atomic,
        };
        Ok((switched, made))
    }

    /// Switches the site back to the env it ran before `switched`, and removes the new one (by
    /// many workers at once: on a share each call is a round trip).
    pub fn roll_back(&self, switched: &Switched) -> Result<(), DeployError> {
        match &switched.previous {
            Previous::Nothing => remove_fast(&self.live)?,
            Previous::Link(to) => {
                let link = self.beside("kuduhook-link");
                remove_any(&link)?;
                make_link(self.platform, &link, to)
                    .map_err(|e| DeployError::io("make the link to the previous env", &link, e))?;
                if let (Some(displaced), _) = self.swap_in(&link)? {
                    remove_fast(&displaced)?;
                }
            }
            Previous::Folder(folder) => {
                if let (Some(displaced), _) = self.swap_in(folder)? {
                    remove_fast(&displaced)?;
                }
            }
        }
        remove_fast(&switched.built)
    }

    /// The env the site ran before `switched`, when kuduhook made it (its to keep for a
    /// rollback, or remove): a link that led somewhere else keeps its folder.
    pub fn previous_ours(&self, switched: &Switched) -> Option<Previous> {
        match &switched.previous {
            Previous::Nothing => None,
            Previous::Link(to) if !to.starts_with(&self.envs_dir) => None,
            other => Some(other.clone()),
        }
    }

    /// Removes what interrupted deployments left: envs the site does not run (but those in
    /// `spare`, kept for rollbacks), half-made links, displaced folders. A displaced folder is
    /// put back first if the live path is empty (a deployment killed between two renames).
    /// Returns what it did, for the log.
    pub fn clean_leftovers(&self, spare: &[PathBuf]) -> Result<Vec<String>, DeployError> {
        let mut done = Vec::new();
        for suffix in ["kuduhook-old", "kuduhook-previous"] {
            let side = self.beside(suffix);
            if side.is_dir() && self.live_env() == LiveEnv::Missing {
                std::fs::rename(&side, &self.live)
                    .map_err(|e| DeployError::io("put back the previous env from", &side, e))?;
                done.push(format!(
                    "Put back the env {} left aside by an interrupted deployment",
                    side.display()
                ));
            }
        }
        if let Some(staging) = &self.staging
            && std::fs::read_dir(staging).is_ok_and(|mut r| r.next().is_some())
        {
            remove_any(staging)?;
            done.push(format!(
                "Removed {}, envs left on local disk by an interrupted deployment",
                staging.display()
            ));
        }
        for suffix in SIDE_SUFFIXES {
            let side = self.beside(suffix);
            if std::fs::symlink_metadata(&side).is_ok() {
                remove_fast(&side)?;
                done.push(format!(
                    "Removed {}, left by an interrupted deployment",
                    side.display()
                ));
            }
        }
        let live_to = match self.live_env() {
            LiveEnv::Link(to) => Some(to),
            _ => None,
        };
        if let Ok(entries) = std::fs::read_dir(&self.envs_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if Some(&path) != live_to.as_ref() && !spare.contains(&path) {
                    remove_any(&path)?;
                    done.push(format!(
                        "Removed the env {}, unused (left by an interrupted or failed deployment)",
                        path.display()
                    ));
                }
            }
        }
        Ok(done)
    }

    /// Puts `incoming` (a link or folder beside the live path) at the live path in one step.
    /// Returns where the entry it replaced went (a path beside the live one), and whether the
    /// filesystem forced two renames instead of one atomic exchange.
    fn swap_in(&self, incoming: &Path) -> Result<(Option<PathBuf>, bool), DeployError> {
        let live = &self.live;
        let rename = |from: &Path, to: &Path| {
            std::fs::rename(from, to).map_err(|e| DeployError::io("switch the env at", to, e))
        };
        let live_meta = std::fs::symlink_metadata(live).ok();
        let incoming_is_link = std::fs::symlink_metadata(incoming)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        match live_meta {
            None => {
                rename(incoming, live)?;
                return Ok((None, false));
            }
            // A link replaces a link with one rename (on Windows a junction is a folder).
            Some(meta) if meta.file_type().is_symlink() && incoming_is_link => {
                rename(incoming, live)?;
                return Ok((None, false));
            }
            Some(_) => {}
        }
        // The displaced entry goes to `env.kuduhook-old`, unless that is what comes in.
        let park = match self.beside("kuduhook-old") {
            old if old == incoming => self.beside("kuduhook-link"),
            old => old,
        };
        remove_any(&park)?;
        match exchange(incoming, live) {
            Ok(()) => {
                rename(incoming, &park)?;
                Ok((Some(park), false))
            }
            Err(_) => {
                // No atomic exchange here: the live path is missing between these two
                // renames; a deployment killed there is repaired by clean_leftovers.
                rename(live, &park)?;
                rename(incoming, live)?;
                Ok((Some(park), true))
            }
        }
    }
}

/// Where a site's envs are and how a new one is switched in: the store's own options, which
/// `config` resolves from the settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub target: PathBuf,
    pub env_name: String,
    pub platform: Platform,
    /// `KUDUHOOK_ENV_SWITCH`: `None` is auto (a link where the filesystem allows it).
    pub switch: Option<SwitchMode>,
    pub dry_run: bool,
}

/// Where the site's envs are, switched the way the settings (or the filesystem) allow.
pub fn open(options: &StoreOptions) -> EnvStore {
    let target = &options.target;
    let mode = match options.switch {
        Some(mode) => mode,
        None if options.dry_run => SwitchMode::Link,
        None if std::fs::create_dir_all(target).is_ok() && links_work(target) => SwitchMode::Link,
        None => {
            let staging = crate::ground::paths::local_state_dir(target).join("staging");
            info!(
                "Links are refused in {} (an SMB share without mfsymlinks?): new envs are built \
                 on local disk ({}), copied beside the live one and swapped in with a rename",
                target.display(),
                staging.display()
            );
            let store = EnvStore::new(
                target,
                &options.env_name,
                options.platform,
                SwitchMode::Move,
            );
            return store.staged_in(staging);
        }
    };
    EnvStore::new(target, &options.env_name, options.platform, mode)
}

/// Swaps two paths in one step (`renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Rewrites the env built at `built` for the path it will be run from: every script in its
/// bin folder (console-script shebangs, `activate*`) and `pyvenv.cfg` that names `built`.
pub fn relocate(built: &Path, live: &Path, platform: Platform) -> Result<usize, DeployError> {
    relocate_from(built, built, live, platform)
}

/// Like [`relocate`], for an env now at `dir` that was built at `built`.
pub fn relocate_from(
    dir: &Path,
    built: &Path,
    live: &Path,
    platform: Platform,
) -> Result<usize, DeployError> {
    let from = built.to_string_lossy().into_owned();
    let to = live.to_string_lossy().into_owned();
    let mut files: Vec<PathBuf> = vec![dir.join("pyvenv.cfg")];
    if let Ok(entries) = std::fs::read_dir(dir.join(platform.env_bin_dir())) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    let mut rewritten = 0;
    for file in files {
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            continue;
        };
        if !meta.is_file() || meta.len() > 1 << 20 {
            continue;
        }
        let bytes = std::fs::read(&file).map_err(|e| DeployError::io("read", &file, e))?;
        let Ok(text) = String::from_utf8(bytes) else {
            continue; // a binary: nothing to rewrite
        };
        if !text.contains(&from) {
            continue;
        }
        let mut temp = paths::shared_temp_file(file.parent().unwrap_or(dir))
            .map_err(|e| DeployError::io("rewrite", &file, e))?;
        io::Write::write_all(&mut temp, text.replace(&from, &to).as_bytes())
            .map_err(|e| DeployError::io("rewrite", &file, e))?;
        std::fs::set_permissions(temp.path(), meta.permissions())
            .map_err(|e| DeployError::io("rewrite", &file, e))?;
        temp.persist(&file)
            .map_err(|e| DeployError::io("rewrite", &file, e.error))?;
        rewritten += 1;
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::files::link_text;

    fn store(root: &Path, mode: SwitchMode) -> EnvStore {
        let target = root.join("wwwroot");
        std::fs::create_dir_all(&target).unwrap();
        EnvStore::new(&target, "env", Platform::Linux, mode)
    }

    fn fake_env(dir: &Path, marker: &str) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
        std::fs::write(
            dir.join("bin/tool"),
            format!("#!{}/bin/python\nprint()\n", dir.display()),
        )
        .unwrap();
    }

    fn live_marker(store: &EnvStore) -> String {
        std::fs::read_to_string(store.live.join("marker")).unwrap()
    }

    #[test]
    fn layout_on_both_platforms() {
        let s = EnvStore::new(
            Path::new("/home/site/wwwroot"),
            "env",
            Platform::Linux,
            SwitchMode::Link,
        );
        assert_eq!(
            s.envs_dir,
            PathBuf::from("/home/site/.kuduhook/wwwroot/envs")
        );
        assert_eq!(
            s.beside("kuduhook-new"),
            PathBuf::from("/home/site/wwwroot/env.kuduhook-new")
        );
        assert_eq!(
            link_text(Platform::Linux, &s.live, &s.envs_dir.join("env-1")),
            PathBuf::from("../.kuduhook/wwwroot/envs/env-1")
        );
        let windows = Path::new(r"D:\home\site\.kuduhook\wwwroot\envs\env-1");
        assert_eq!(
            link_text(
                Platform::Windows,
                Path::new(r"D:\home\site\wwwroot\env"),
                windows
            ),
            windows
        );
    }

    #[test]
    #[cfg(unix)] // Wine 8's mklink /J cannot make the junction
    fn link_mode_switches_from_a_folder_to_links_and_back() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path(), SwitchMode::Link);
        fake_env(&s.live, "deploy.cmd's");
        let first = s.build_path("1").unwrap();
        fake_env(&first, "first");
        let switched = s.go_live(&first).unwrap();
        assert_eq!(live_marker(&s), "first");
        assert_eq!(s.live_env(), LiveEnv::Link(first.clone()));
        assert!(matches!(switched.previous, Previous::Folder(_)));
        assert!(!switched.not_atomic, "ext4 and tmpfs exchange atomically");

        let second = s.build_path("2").unwrap();
        fake_env(&second, "second");
        let next = s.go_live(&second).unwrap();
        assert_eq!(live_marker(&s), "second");
        s.roll_back(&next).unwrap();
        assert_eq!(live_marker(&s), "first");
        assert!(!second.exists());

        s.roll_back(&switched).unwrap();
        assert_eq!(s.live_env(), LiveEnv::Folder);
        assert_eq!(live_marker(&s), "deploy.cmd's");
    }

    #[test]
    fn move_mode_relocates_scripts_and_exchanges_folders() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path(), SwitchMode::Move);
        fake_env(&s.live, "old");
        let built = s.build_path("x").unwrap();
        fake_env(&built, "new");
        let switched = s.go_live(&built).unwrap();
        assert_eq!(live_marker(&s), "new");
        let tool = std::fs::read_to_string(s.live.join("bin/tool")).unwrap();
        assert_eq!(
            tool,
            format!("#!{}/bin/python\nprint()\n", s.live.display())
        );
        assert_eq!(
            s.previous_ours(&switched),
            Some(Previous::Folder(s.beside("kuduhook-old")))
        );
        assert_eq!(
            std::fs::read_to_string(s.beside("kuduhook-old").join("marker")).unwrap(),
            "old"
        );
    }

    #[test]
    #[cfg(unix)] // makes a half-made link by hand
    fn leftovers_go_and_a_displaced_env_comes_back() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path(), SwitchMode::Link);
        let live = s.build_path("1").unwrap();
        fake_env(&live, "live");
        s.go_live(&live).unwrap();
        let orphan = s.build_path("2").unwrap();
        fake_env(&orphan, "half-built");
        std::os::unix::fs::symlink(&orphan, s.beside("kuduhook-link")).unwrap();
        let done = s.clean_leftovers(&[]).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(!orphan.exists());
        assert_eq!(live_marker(&s), "live");

        // Killed between the two renames of a non-atomic switch: the live path is empty.
        std::fs::rename(&s.live, s.beside("kuduhook-old")).unwrap();
        s.clean_leftovers(&[]).unwrap();
        assert_eq!(live_marker(&s), "live");
    }

    #[test]
    #[cfg(unix)] // links the live env to a user's folder by hand
    fn only_envs_kuduhook_made_are_its_to_keep_or_remove() {
        let root = tempfile::tempdir().unwrap();
        let s = store(root.path(), SwitchMode::Link);
        let elsewhere = root.path().join("users-own-env");
        fake_env(&elsewhere, "theirs");
        std::os::unix::fs::symlink(&elsewhere, &s.live).unwrap();
        let built = s.build_path("1").unwrap();
        fake_env(&built, "ours");
        let switched = s.go_live(&built).unwrap();
        assert_eq!(s.previous_ours(&switched), None);
        assert!(elsewhere.join("marker").exists());
    }
}
