//! The sync against a model: random trees, random edits (add, change, delete, rename, case
//! change, file <-> folder swap), files the app writes itself, and deployments that fail after
//! their sync. After every sync the target must be exactly what the model predicts: the
//! repository's files, plus every file the app wrote, and no other folder than theirs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kuduhook::sync::{SyncOptions, sync};

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
        }
    }

    fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    fn dst(&self) -> PathBuf {
        self.root.join("wwwroot")
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
        // Git has no empty folders: prune them.
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
                content.push(b'!');
                let pinned = self.rng.below(2) == 0;
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
                    self.app.insert(path, content);
                }
            }
        }
    }

    /// Syncs as Kudu would; a deployment that "fails later" never becomes previous.
    fn deploy(&mut self, fails_later: bool) {
        self.deployments += 1;
        let next = self
            .root
            .join(format!("deployments/{}/manifest", self.deployments));
        let mut options = SyncOptions::new(self.src(), self.dst());
        options.previous_manifest = Some(self.previous.clone());
        options.next_manifest = Some(next.clone());
        options.listed_changes = 0;
        if let Err(e) = sync(&options) {
            panic!("sync failed: {}", e.error);
        }
        if !fails_later {
            self.previous = next;
        }
    }

    /// The target holds exactly the repository's files and the app's, with their contents,
    /// and only their folders.
    fn check(&self, seed: u64, step: usize) {
        let mut expected_files = self.source.clone();
        expected_files.extend(self.app.clone());
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
    }
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
    for seed in 1..=40u64 {
        let root = tempfile::Builder::new()
            .prefix("kuduhook-model-")
            .tempdir()
            .unwrap();
        let mut world = World::new(seed, root.path());
        for step in 0..12 {
            for _ in 0..1 + world.rng.below(4) {
                world.edit();
            }
            let fails_later = world.rng.below(5) == 0;
            world.deploy(fails_later);
            world.check(seed, step);
        }
    }
}
