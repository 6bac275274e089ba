//! The sync against a model: random trees, random edits (add, change, delete, rename, case
//! change, file <-> folder swap), files the app writes itself, and deployments that fail after
//! their sync. After every sync the target must be exactly what the model predicts: the
//! repository's files, plus every file the app wrote, and no other folder than theirs.
//!
//! The same histories are then committed to git and synced two ways side by side: from git's
//! diff where the last sync is proven (no walk), and always walking. Mode changes, files that
//! `.gitignore` hides but the checkout holds, and uncommitted edits join the random edits;
//! after every step the two targets must be the same, and the model's.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kuduhook::sync::{DeltaInputs, Patterns, SyncOptions, sync};

/// A small deterministic generator (xorshift64*): each seed replays the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Names the repository uses; case variants make case-only renames likely.
const NAMES: [&str; 8] = ["a", "B", "b", "pkg", "Pkg", "app.py", "lib", "x.txt"];

struct World {
    rng: Rng,
    root: PathBuf,
    /// The repository's files (folders are implied by them).
    source: BTreeMap<String, Vec<u8>>,
    /// Files the app wrote into the site.
    app: BTreeMap<String, Vec<u8>>,
    clock: u64,
    uploads: usize,
    /// The last successful deployment's manifest.
    previous: PathBuf,
    deployments: usize,
    /// Git mode: the repository is a git checkout, synced both ways.
    git: bool,
    /// Files `.gitignore` hides that the checkout holds (the walk syncs them too).
    ignored: BTreeMap<String, Vec<u8>>,
    /// Zip mode: every deployment syncs from a fresh extraction of the repository (new files,
    /// times cut to a zip's 2 seconds), planned from the record of the last sync.
    zip: bool,
    /// Folder mode: every deployment syncs the same folder, not a git checkout (`kuduhook sync`
    /// from any folder), planned from the record of the last sync, which is made to look taken
    /// 10 s later (as if the next deployment came then): its folders vouch for their entries.
    folder: bool,
    /// Syncs that took some folder's entries from the record instead of reading the folder.
    vouched: usize,
    /// Syncs planned without a walk (from git's diff, or the record of the last sync).
    planned: usize,
    /// Kudu mode (a git world too): the repository above is the developer's; each deployment
    /// syncs Kudu's own repository, brought to the commit as Kudu does (`git fetch`, then
    /// `git checkout <id> --force`) after someone worked on the server there.
    kudu: bool,
    /// Files someone left in Kudu's repository that its commit does not have.
    left_on_server: usize,
    /// Syncs that trusted Kudu's checkout instead of a stat per file.
    trusted: usize,
    /// Where the targets are: the world's folder, or an SMB-like share mounted in it.
    site: PathBuf,
    /// The share, when the targets are on one: its names ignore case, so the two targets are
    /// compared as it compares names, and the model (which keeps case) is not asked.
    share: Option<support::smb_mount::SmbMount>,
}

impl World {
    fn new(seed: u64, root: &Path) -> World {
        fs::create_dir_all(root.join("src")).unwrap();
        World {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            root: root.to_path_buf(),
            source: BTreeMap::new(),
            app: BTreeMap::new(),
            clock: 1_600_000_000,
            uploads: 0,
            previous: root.join("deployments/none/manifest"),
            deployments: 0,
            git: false,
            ignored: BTreeMap::new(),
            zip: false,
            folder: false,
            vouched: 0,
            planned: 0,
            kudu: false,
            left_on_server: 0,
            trusted: 0,
            site: root.to_path_buf(),
            share: None,
        }
    }

    /// A git world whose targets are on an SMB-like share (no latency: the rules, not the time).
    fn with_git_on_share(seed: u64, root: &Path) -> World {
        let mut world = World::with_git(seed, root);
        let share = support::smb_mount::SmbMount::at(&root.join("share"), 0.0);
        world.site = share.path.clone();
        world.share = Some(share);
        fs::create_dir_all(world.dst()).unwrap();
        fs::create_dir_all(world.dst_walked()).unwrap();
        world
    }

    /// A world deployed by zip: each deployment syncs a fresh extraction of the repository.
    fn with_zip(seed: u64, root: &Path) -> World {
        let mut world = World::new(seed, root);
        world.zip = true;
        world
    }

    /// A world deploying the same folder every time, planned from the record of the last sync.
    fn with_folder(seed: u64, root: &Path) -> World {
        let mut world = World::new(seed, root);
        world.folder = true;
        world
    }

    /// Makes the record of the last sync look taken 10 s later than it was, as if this
    /// deployment came then: the folders not changed since vouch for their entries.
    fn age_the_record(&self) {
        let path =
            kuduhook::ground::paths::state_dir(&self.dst()).join(kuduhook::sync::listing::FILE);
        let Ok(text) = fs::read_to_string(&path) else {
            return;
        };
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        let taken: u64 = lines[1].parse().unwrap();
        lines[1] = (taken + 10_000_000_000).to_string();
        fs::write(&path, lines.join("\n")).unwrap();
    }

    /// A zip world whose targets are on an SMB-like share, synced from the record and by a
    /// walk side by side.
    fn with_zip_on_share(seed: u64, root: &Path) -> World {
        let mut world = World::with_zip(seed, root);
        let share = support::smb_mount::SmbMount::at(&root.join("share"), 0.0);
        world.site = share.path.clone();
        world.share = Some(share);
        fs::create_dir_all(world.dst()).unwrap();
        fs::create_dir_all(world.dst_walked()).unwrap();
        world
    }

    /// A world deployed as Kudu deploys a push: from its own repository (on the share with the
    /// site when `on_share`), at the commit Kudu names.
    fn with_kudu(seed: u64, root: &Path, on_share: bool) -> World {
        let mut world = match on_share {
            true => World::with_git_on_share(seed, root),
            false => World::with_git(seed, root),
        };
        world.kudu = true;
        fs::create_dir_all(world.kudu_repository()).unwrap();
        git(&world.kudu_repository(), &["init", "-q"]);
        world
    }

    /// Kudu's repository (`site/repository`).
    fn kudu_repository(&self) -> PathBuf {
        self.site.join("repository")
    }

    /// Someone on the server works in Kudu's repository: leaves a file there (tracked by no
    /// commit, or one `.gitignore` hides), cleans those up, edits a tracked file (Kudu's
    /// checkout puts it back), or does nothing.
    fn work_on_server(&mut self) {
        let repository = self.kudu_repository();
        let folders: Vec<String> = support::walk(&repository)
            .into_iter()
            .filter(|(path, is_dir)| *is_dir && !path.starts_with(".git"))
            .map(|(path, _)| path)
            .collect();
        let in_some_folder = |world: &mut World, name: String| match folders.is_empty() {
            true => name,
            false => format!("{}/{name}", world.rng.pick(&folders)),
        };
        match self.rng.below(8) {
            0 => {
                self.left_on_server += 1;
                let path = in_some_folder(self, format!("left-{}.dat", self.left_on_server));
                fs::write(repository.join(path), b"left").unwrap();
            }
            1 => {
                self.left_on_server += 1;
                let path = in_some_folder(self, format!("left-{}.log", self.left_on_server));
                fs::write(repository.join(path), b"ignored").unwrap();
            }
            2 => {
                for (path, is_dir) in support::walk(&repository) {
                    if !is_dir && path.rsplit('/').next().unwrap().starts_with("left-") {
                        fs::remove_file(repository.join(path)).unwrap();
                    }
                }
            }
            3 => {
                let tracked: Vec<String> = support::walk(&repository)
                    .into_iter()
                    .filter(|(p, d)| !d && !p.starts_with(".git") && !p.contains("left-"))
                    .map(|(p, _)| p)
                    .collect();
                if !tracked.is_empty() {
                    let path = self.rng.pick(&tracked).clone();
                    fs::write(repository.join(path), b"edited on the server").unwrap();
                }
            }
            _ => {}
        }
    }

    /// What Kudu does with a push before it runs the deployment command: fetches the commit
    /// into its repository and checks it out by id, `--force`. The id.
    fn kudu_checkout(&self) -> String {
        support::kudu_checkout(&self.kudu_repository(), &self.src())
    }

    /// Whether a second target is synced by a walk beside the one synced without: on the share
    /// (where the model, which keeps case, is not asked), and for git (whose walk also syncs
    /// the files git ignores).
    fn side_by_side(&self) -> bool {
        self.git || (self.zip && self.share.is_some())
    }

    /// What the deployments sync from: the repository, its latest extraction, or Kudu's.
    fn sync_source(&self) -> PathBuf {
        match (self.zip, self.kudu) {
            (true, _) => self.root.join("extracted"),
            (_, true) => self.kudu_repository(),
            _ => self.src(),
        }
    }

    /// Extracts the repository as Kudu extracts a zip: a fresh folder, every file written
    /// anew, its time the zip entry's (cut to 2 seconds), no modes.
    fn extract(&self) {
        use std::os::unix::fs::PermissionsExt;
        let to = self.sync_source();
        if to.exists() {
            fs::remove_dir_all(&to).unwrap();
        }
        for (path, is_dir) in support::walk(&self.src()) {
            let (from, dst) = (self.src().join(&path), to.join(&path));
            if is_dir {
                fs::create_dir_all(&dst).unwrap();
                continue;
            }
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::write(&dst, fs::read(&from).unwrap()).unwrap();
            let secs = fs::metadata(&from)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let file = fs::File::options().write(true).open(&dst).unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs / 2 * 2))
                .unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::create_dir_all(&to).unwrap();
    }

    /// A world whose repository is a git checkout, synced from git's diff and by a walk.
    fn with_git(seed: u64, root: &Path) -> World {
        let mut world = World::new(seed, root);
        world.git = true;
        git(&world.src(), &["init", "-q"]);
        fs::write(world.src().join(".gitignore"), "*.log\n").unwrap();
        world
            .source
            .insert(".gitignore".into(), b"*.log\n".to_vec());
        world
    }

    /// The target the walk syncs, beside the one synced from git's diff.
    fn dst_walked(&self) -> PathBuf {
        self.site.join("walked/wwwroot")
    }

    fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    fn dst(&self) -> PathBuf {
        self.site.join("wwwroot")
    }

    fn random_path(&mut self) -> String {
        let depth = 1 + self.rng.below(3);
        (0..depth)
            .map(|_| *self.rng.pick(&NAMES))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn content(&mut self) -> Vec<u8> {
        let len = self.rng.below(64);
        (0..len).map(|_| b'a' + self.rng.below(26) as u8).collect()
    }

    /// Writes a repository file, making room for it: a file where a folder must go, or a
    /// folder where the file goes, is removed (the swaps). Returns false when the app keeps
    /// files in the way (a real conflict, tested on its own elsewhere).
    fn put(&mut self, path: &str, content: Vec<u8>, mtime: Option<SystemTime>) -> bool {
        let prefix = format!("{path}/");
        if self.app.keys().any(|a| a.starts_with(&prefix)) {
            return false;
        }
        let ancestors: Vec<String> = ancestors(path);
        if ancestors.iter().any(|a| self.app.contains_key(a)) {
            return false;
        }
        for ancestor in &ancestors {
            if self.source.remove(ancestor).is_some() {
                fs::remove_file(self.src().join(ancestor)).unwrap();
            }
        }
        let under: Vec<String> = self
            .source
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        for key in under {
            self.source.remove(&key);
        }
        let full = self.src().join(path);
        if full.is_dir() {
            fs::remove_dir_all(&full).unwrap();
        }
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, &content).unwrap();
        self.clock += 1;
        let time = mtime.unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock));
        fs::File::options()
            .write(true)
            .open(&full)
            .unwrap()
            .set_modified(time)
            .unwrap();
        self.source.insert(path.to_string(), content);
        true
    }

    fn remove(&mut self, path: &str) {
        self.source.remove(path);
        fs::remove_file(self.src().join(path)).unwrap();
        self.prune_empty_folders(path);
    }

    /// Git has no empty folders: those above a removed file go.
    fn prune_empty_folders(&self, path: &str) {
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            let full = self.src().join(d);
            if fs::read_dir(&full).unwrap().next().is_some() {
                break;
            }
            fs::remove_dir(&full).unwrap();
            dir = d.parent();
        }
    }

    /// One random edit of the repository, or the app writing a file.
    fn edit(&mut self) {
        let files: Vec<String> = self.source.keys().cloned().collect();
        match self.rng.below(7) {
            0 | 1 => {
                let path = self.random_path();
                let content = self.content();
                self.put(&path, content, None);
            }
            2 if !files.is_empty() => {
                // Change a file. Half the time its mtime stays pinned: the new size must tell.
                let path = self.rng.pick(&files).clone();
                let mut content = self.source[&path].clone();
                let pinned = self.rng.below(2) == 0;
                // A zip deployment checked against the model: half the pinned changes keep the
                // size too (only the content can tell; a walk would miss it, the record may not).
                let same_size = (self.zip || self.folder)
                    && !self.side_by_side()
                    && pinned
                    && self.rng.below(2) == 0;
                match content.last_mut() {
                    Some(last) if same_size => *last = if *last == b'!' { b'?' } else { b'!' },
                    _ => content.push(b'!'),
                }
                let mtime = pinned.then(|| {
                    fs::metadata(self.src().join(&path))
                        .unwrap()
                        .modified()
                        .unwrap()
                });
                self.put(&path, content, mtime);
            }
            3 if !files.is_empty() => {
                let path = self.rng.pick(&files).clone();
                self.remove(&path);
            }
            4 if !files.is_empty() => {
                // Rename, often to a case variant of the same name.
                let from = self.rng.pick(&files).clone();
                let to = if self.rng.below(2) == 0 {
                    swap_case_of_last(&from)
                } else {
                    self.random_path()
                };
                if to != from {
                    let content = self.source[&from].clone();
                    self.remove(&from);
                    self.put(&to, content, None);
                }
            }
            5 if !files.is_empty() => {
                // A file becomes a folder holding a file.
                let path = self.rng.pick(&files).clone();
                let content = self.content();
                self.put(&format!("{path}/inner.txt"), content, None);
            }
            _ => {
                // The app writes a file: at the root, or in a folder the site has.
                let dirs: Vec<String> = self
                    .source
                    .keys()
                    .flat_map(|k| ancestors(k))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                self.uploads += 1;
                let name = format!("upload-{}.bin", self.uploads);
                let path = if !dirs.is_empty() && self.rng.below(2) == 0 {
                    format!("{}/{name}", self.rng.pick(&dirs))
                } else {
                    name
                };
                let content = self.content();
                let full = self.dst().join(&path);
                if full.parent().unwrap().is_dir() {
                    fs::write(full, &content).unwrap();
                    if self.side_by_side() {
                        fs::write(self.dst_walked().join(&path), &content).unwrap();
                    }
                    self.app.insert(path, content);
                }
            }
        }
    }

    /// An edit only a git history has: a mode change, a file `.gitignore` hides (kept in the
    /// checkout, or removed again), or nothing.
    fn git_edit(&mut self) {
        let files: Vec<String> = self.source.keys().cloned().collect();
        match self.rng.below(4) {
            0 if !files.is_empty() => {
                use std::os::unix::fs::PermissionsExt;
                let path = self.rng.pick(&files).clone();
                let full = self.src().join(&path);
                let mode = fs::metadata(&full).unwrap().permissions().mode();
                fs::set_permissions(&full, fs::Permissions::from_mode(mode ^ 0o111)).unwrap();
            }
            1 => {
                let dirs: Vec<String> = files.iter().flat_map(|k| ancestors(k)).collect();
                let name = format!("debug-{}.log", self.rng.below(3));
                let path = match dirs.is_empty() {
                    true => name,
                    false => format!("{}/{name}", self.rng.pick(&dirs)),
                };
                let content = self.content();
                fs::write(self.src().join(&path), &content).unwrap();
                self.ignored.insert(path, content);
            }
            2 => {
                for path in std::mem::take(&mut self.ignored).into_keys() {
                    if fs::remove_file(self.src().join(&path)).is_ok() {
                        self.prune_empty_folders(&path);
                    }
                }
            }
            _ => {}
        }
        // A file where an ignored one was, or its folder gone: the model follows the disk.
        self.ignored
            .retain(|path, _| self.root.join("src").join(path).is_file());
    }

    /// On a share two names that differ only in case are one: the repository may not hold
    /// both (that is refused, tested on its own), so the later one goes.
    fn drop_case_collisions(&mut self) {
        if self.share.is_none() {
            return;
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let paths: Vec<String> = self
            .source
            .keys()
            .chain(self.ignored.keys())
            .cloned()
            .collect();
        for path in paths {
            let mut prefixes = ancestors(&path);
            prefixes.push(path.clone());
            let collides = prefixes
                .iter()
                .any(|p| seen.get(&p.to_lowercase()).is_some_and(|first| first != p));
            if collides {
                if self.source.contains_key(&path) {
                    self.remove(&path);
                } else if self.ignored.remove(&path).is_some() {
                    fs::remove_file(self.src().join(&path)).unwrap();
                    self.prune_empty_folders(&path);
                }
                continue;
            }
            for p in prefixes {
                seen.entry(p.to_lowercase()).or_insert(p);
            }
        }
    }

    /// Commits the checkout (most of the time: an uncommitted edit is left now and then).
    fn commit(&mut self) {
        self.drop_case_collisions();
        // (A push is a commit: Kudu's world always commits.)
        if !self.kudu && self.rng.below(6) == 0 {
            return;
        }
        git(&self.src(), &["add", "-A"]);
        git(
            &self.src(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "step",
            ],
        );
    }

    /// What a deployment starts from besides the edits: git's own (modes, ignored files) and a
    /// commit; on a share, no two names that differ only in case.
    fn before_deploy(&mut self) {
        if self.git {
            self.git_edit();
            self.commit();
        } else {
            self.drop_case_collisions();
        }
    }

    /// Syncs as Kudu would; a deployment that "fails later" never becomes previous.
    fn deploy(&mut self, fails_later: bool) {
        self.deployments += 1;
        let next = self
            .root
            .join(format!("deployments/{}/manifest", self.deployments));
        if self.zip {
            self.extract();
        }
        let named = match self.kudu {
            true => {
                self.work_on_server();
                Some(self.kudu_checkout())
            }
            false => None,
        };
        let mut options = SyncOptions::new(self.sync_source(), self.dst());
        options.previous_manifest = Some(self.previous.clone());
        options.next_manifest = Some(next.clone());
        options.listed_changes = 0;
        if self.git || self.zip || self.folder {
            options.ignore = Patterns::new(&[".git"]).unwrap();
            // As the pipeline does: the top folder's time when the deployment starts, and the
            // record sealed only when the deployment succeeds.
            options.delta = DeltaInputs {
                enabled: true,
                target_stamp_at_start: kuduhook::sync::delta::target_stamp(&self.dst()),
                sealed_by_caller: true,
                commit_id: named,
                ..DeltaInputs::default()
            };
        }
        match sync(&options) {
            Err(e) => panic!(
                "sync failed: {}\nsource {:?}\ntarget {:?}",
                e.error,
                support::walk(&self.src()),
                support::walk(&self.dst())
            ),
            Ok(report) => {
                self.planned += usize::from(report.planned_from.is_some());
                self.vouched += usize::from(report.folders_as_recorded > 0);
                self.trusted += usize::from(report.checkout_trusted);
            }
        }
        if self.side_by_side() {
            let walked = self
                .root
                .join(format!("walked/{}/manifest", self.deployments));
            let mut options = SyncOptions::new(self.sync_source(), self.dst_walked());
            options.previous_manifest = Some(self.previous_walked());
            options.next_manifest = Some(walked);
            options.listed_changes = 0;
            options.ignore = Patterns::new(&[".git"]).unwrap();
            if let Err(e) = sync(&options) {
                panic!("the walking sync failed: {}", e.error);
            }
        }
        if (self.git || self.zip || self.folder) && !fails_later {
            kuduhook::sync::delta::seal(&self.dst());
        }
        if self.folder {
            self.age_the_record();
        }
        if !fails_later {
            self.previous = next;
        }
    }

    /// The walked target's previous manifest: the one of the same deployment.
    fn previous_walked(&self) -> PathBuf {
        match self.previous.parent().and_then(|d| d.file_name()) {
            Some(n) if n != "none" => self
                .root
                .join(format!("walked/{}/manifest", n.to_string_lossy())),
            _ => self.root.join("walked/none/manifest"),
        }
    }

    /// The target holds exactly the repository's files and the app's, with their contents,
    /// and only their folders.
    fn check(&self, seed: u64, step: usize) {
        if self.kudu && self.share.is_none() {
            // What someone left in Kudu's repository is deployed too: the walk is the model.
            assert_eq!(
                read_tree(&self.dst_walked()),
                read_tree(&self.dst()),
                "the walked target differs from the one synced from Kudu's checkout (seed \
                 {seed}, step {step})"
            );
            return;
        }
        if self.share.is_some() {
            let folded = |(files, dirs): (BTreeMap<String, Vec<u8>>, BTreeSet<String>)| {
                let files: BTreeMap<String, Vec<u8>> = files
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect();
                let dirs: BTreeSet<String> = dirs.iter().map(|d| d.to_lowercase()).collect();
                (files, dirs)
            };
            assert_eq!(
                folded(read_tree(&self.dst_walked())),
                folded(read_tree(&self.dst())),
                "on the share, the walked target differs from the one synced from git (seed \
                 {seed}, step {step})"
            );
            return;
        }
        let mut expected_files = self.source.clone();
        expected_files.extend(self.app.clone());
        expected_files.extend(self.ignored.clone());
        let expected_dirs: BTreeSet<String> =
            expected_files.keys().flat_map(|k| ancestors(k)).collect();
        let (files, dirs) = read_tree(&self.dst());
        let context = format!("seed {seed}, step {step}");
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            expected_files.keys().collect::<Vec<_>>(),
            "files differ ({context})"
        );
        for (path, content) in &expected_files {
            assert_eq!(&files[path], content, "content of {path} ({context})");
        }
        assert_eq!(dirs, expected_dirs, "folders differ ({context})");
        if self.side_by_side() {
            assert_eq!(
                read_tree(&self.dst_walked()),
                (files, dirs),
                "the walked target differs from the one synced from git ({context})"
            );
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn swap_case_of_last(path: &str) -> String {
    let (head, last) = match path.rsplit_once('/') {
        Some((h, l)) => (format!("{h}/"), l),
        None => (String::new(), path),
    };
    let mut chars = last.chars();
    let first = chars.next().unwrap();
    let swapped = if first.is_uppercase() {
        first.to_lowercase().collect::<String>()
    } else {
        first.to_uppercase().collect::<String>()
    };
    format!("{head}{swapped}{}", chars.as_str())
}

fn read_tree(dir: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
    let (mut files, mut dirs) = (BTreeMap::new(), BTreeSet::new());
    for (path, is_dir) in support::walk(dir) {
        if is_dir {
            dirs.insert(path);
        } else {
            files.insert(path.clone(), fs::read(dir.join(&path)).unwrap());
        }
    }
    (files, dirs)
}

#[test]
fn random_histories_match_the_model() {
    histories(40, 12, World::new);
}

/// Runs random histories of `steps` steps for `seeds`, each in a world made by `world_at`,
/// checking the target (and the walked one beside it) after every step. How many syncs were
/// planned without a walk, and how many of those trusted Kudu's checkout.
fn histories(seeds: u64, steps: usize, world_at: impl Fn(u64, &Path) -> World) -> (usize, usize) {
    let (mut planned, mut trusted) = (0, 0);
    histories_with(seeds, steps, world_at, |world| {
        planned += world.planned;
        trusted += world.trusted;
    });
    eprintln!(
        "{planned} of {} syncs planned without a walk, {trusted} trusting Kudu's checkout",
        seeds as usize * steps
    );
    (planned, trusted)
}

/// [`histories`], handing each world to `done` when its history ends.
fn histories_with(
    seeds: u64,
    steps: usize,
    world_at: impl Fn(u64, &Path) -> World,
    mut done: impl FnMut(&World),
) {
    for seed in 1..=seeds {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-model-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let mut world = world_at(seed, root.path());
        for step in 0..steps {
            for _ in 0..1 + world.rng.below(4) {
                world.edit();
            }
            world.before_deploy();
            let fails_later = world.rng.below(5) == 0;
            world.deploy(fails_later);
            world.check(seed, step);
        }
        done(&world);
    }
}

/// Zip deployments: every sync from a fresh extraction (2-second times, no modes), planned
/// from the record of the last sync; the target is the model's after every step, also when a
/// file changed within the same 2-second time and size.
#[test]
fn zip_histories_match_the_model() {
    let (planned, _) = histories(30, 12, World::with_zip);
    assert!(
        planned >= 120,
        "only {planned} of 360 zip syncs were planned from the record"
    );
}

/// The same folder deployed again and again (not a git checkout): planned from the record of
/// the last sync, whose folders, when their times and inode are as recorded, are not read
/// again (their files are still stat'ed: one rewritten in place, even with the same size and
/// time, is found). The target is the model's after every step.
#[test]
fn folder_histories_taking_unchanged_folders_from_the_record_match_the_model() {
    let (mut planned, mut vouched) = (0, 0);
    histories_with(30, 12, World::with_folder, |world| {
        planned += world.planned;
        vouched += world.vouched;
    });
    eprintln!("of 360 syncs, {planned} planned from the record, {vouched} took folders from it");
    assert!(
        planned >= 120 && vouched >= 60,
        "of 360 syncs, {planned} were planned from the record, {vouched} took folders from it"
    );
}

/// The same on the share, beside a walk of the same extractions (names ignore case there).
#[test]
fn zip_histories_on_the_share_sync_the_same_from_the_record_as_by_a_walk() {
    let (planned, _) = histories(8, 10, World::with_zip_on_share);
    assert!(
        planned >= 20,
        "only {planned} of 80 zip syncs were planned from the record"
    );
}

/// The same histories in git, synced from git's diff and by a walk, side by side: the two
/// targets are the same after every step, and the model's.
#[test]
fn git_histories_sync_the_same_from_the_diff_as_by_a_walk() {
    let (from_git, _) = histories(30, 12, World::with_git);
    assert!(
        from_git >= 60,
        "only {from_git} of 360 syncs were planned from git"
    );
}

/// The same on the share, where names ignore case (a case-only rename is one file there).
#[test]
fn git_histories_on_the_share_sync_the_same_from_the_diff_as_by_a_walk() {
    let (from_git, _) = histories(8, 10, World::with_git_on_share);
    assert!(
        from_git >= 12,
        "only {from_git} of 80 syncs were planned from git"
    );
}

/// Pushes deployed as Kudu deploys them: its repository brought to the commit by `git checkout
/// <id> --force`, after someone left files there, cleaned them up or edited tracked ones. The
/// checkout trusted as Kudu wrote it (no stat per file, the folders' times for what is not
/// tracked) syncs the same as a walk after every step.
#[test]
fn kudu_histories_trusting_its_checkout_sync_the_same_as_a_walk() {
    // The others walk: files left on the server, a failed deployment before, a first one.
    kudu_histories(24, 12, false, 35);
}

/// The same with Kudu's repository and the site on the SMB-like share, App Service's layout.
#[test]
fn kudu_histories_on_the_share_trusting_its_checkout_sync_the_same_as_a_walk() {
    kudu_histories(8, 10, true, 10);
}

/// Runs Kudu's histories ([`World::with_kudu`]): at least `planned_at_least` syncs planned from
/// git, and nine in ten of those trusting Kudu's checkout.
fn kudu_histories(seeds: u64, steps: usize, on_share: bool, planned_at_least: usize) {
    let (planned, trusted) = histories(seeds, steps, |seed, root| {
        World::with_kudu(seed, root, on_share)
    });
    let all = seeds as usize * steps;
    assert!(
        planned >= planned_at_least,
        "only {planned} of {all} syncs were planned from git"
    );
    assert!(
        trusted * 10 >= planned * 9,
        "only {trusted} of {planned} trusted Kudu's checkout"
    );
}
