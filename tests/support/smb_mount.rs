//! App Service Linux's `/home`, an Azure Files share over SMB, played by `tools/smbfs` (a FUSE
//! filesystem: symlinks refused, no `renameat2` flags, mode bits ignored, case-insensitive and
//! case-preserving names, a round trip of latency per metadata call; see its doc comment).
//! These machines and CI run as root with `/dev/fuse`, so every test that needs it mounts one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The smbfs binary, built once per test binary (cargo skips it when up to date).
fn smbfs() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| super::cargo_build(&["-p", "smbfs"]).join("debug/smbfs"))
        .clone()
}

/// A mounted share, unmounted when dropped. Its files live in a backing folder on local disk.
pub struct SmbMount {
    pub path: PathBuf,
    /// What kuduhook keeps on local disk for a site on this share, removed with it.
    pub local_state: Vec<PathBuf>,
    child: Child,
    backing: tempfile::TempDir,
    latency_ms: f64,
}

/// A fault the share injects ([`SmbMount::fail_at`]), as `tools/smbfs --faults` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// ENOSPC at the k-th change and every later one that takes space: a full disk.
    Full,
    /// EIO at the k-th change only: the share failed once.
    Io,
    /// EACCES at the k-th change only: a refused write.
    Refused,
}

impl Fault {
    pub fn word(self) -> &'static str {
        match self {
            Fault::Full => "enospc",
            Fault::Io => "eio",
            Fault::Refused => "eacces",
        }
    }
}

impl SmbMount {
    /// Mounts a new, empty share at `path` (created if missing), with `latency_ms` per metadata
    /// call.
    pub fn at(path: &Path, latency_ms: f64) -> SmbMount {
        std::fs::create_dir_all(path).unwrap();
        let backing = tempfile::Builder::new()
            .prefix("smb-backing-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let child = SmbMount::spawn(backing.path(), path, latency_ms);
        let mount = SmbMount {
            path: path.to_path_buf(),
            local_state: Vec::new(),
            child,
            backing,
            latency_ms,
        };
        mount.wait_mounted();
        mount
    }

    fn spawn(backing: &Path, path: &Path, latency_ms: f64) -> Child {
        Command::new(smbfs())
            .arg(backing)
            .arg(path)
            .args(["--latency-ms", &latency_ms.to_string()])
            .arg("--count-calls")
            .arg(backing.with_extension("calls"))
            .arg("--faults")
            .arg(backing.with_extension("faults"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start smbfs")
    }

    fn wait_mounted(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_mounted() {
            assert!(
                Instant::now() < deadline,
                "smbfs did not mount {}",
                self.path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn unmount(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Copies the share's files, as they are, into `into` (a new folder).
    pub fn snapshot(&self, into: &Path) {
        copy_all(self.backing.path(), into);
    }

    /// Puts the share back as [`SmbMount::snapshot`] saw it: unmounted, its files replaced by
    /// the snapshot's, mounted again (no cache of the old files survives).
    pub fn restore(&mut self, from: &Path) {
        self.unmount();
        std::fs::remove_dir_all(self.backing.path()).unwrap();
        copy_all(from, self.backing.path());
        self.child = SmbMount::spawn(self.backing.path(), &self.path, self.latency_ms);
        self.wait_mounted();
    }

    /// The round trips the share has answered so far (metadata calls: lookups, attributes,
    /// creates, renames, listings...).
    pub fn calls(&self) -> u64 {
        let path = self.backing.path().with_extension("calls");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// From now on, the `k`-th change to the share (from 1) fails with `fault`; the count of
    /// changes starts over.
    pub fn fail_at(&self, fault: Fault, k: u64) {
        self.control(&format!("{} {k}\n", fault.word()));
    }

    /// No fault from now on; the count of changes starts over.
    pub fn no_faults(&self) {
        self.control("none\n");
    }

    fn control(&self, text: &str) {
        let path = self.backing.path().with_extension("faults");
        // A new file each time, so that smbfs sees it changed even within one clock tick.
        let staged = path.with_extension("faults-new");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        let stamp = std::time::SystemTime::now() + Duration::from_millis(1);
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(stamp));
    }

    /// The changes (creates, writes, mkdirs, renames, removes, links, times, truncates) the
    /// share was asked for since the fault was last set.
    pub fn changes(&self) -> u64 {
        let path = self.backing.path().with_extension("faults.changes");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let wanted = self.path.to_string_lossy();
        mounts
            .lines()
            .any(|l| l.starts_with("smbfs ") && l.split(' ').nth(1) == Some(&wanted))
    }
}

/// `cp -a from/. to`: every file with its times and modes (`to` made if missing).
pub fn copy_all(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

impl Drop for SmbMount {
    fn drop(&mut self) {
        self.unmount();
        for extension in ["calls", "faults", "faults.changes"] {
            let _ = std::fs::remove_file(self.backing.path().with_extension(extension));
        }
        for dir in &self.local_state {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `site` with its target moved onto a new share with `latency_ms` per call, holding App
/// Service's placeholder page. The share is the second value, so that it is unmounted before
/// the site's folders go.
pub fn site_on_share(mut site: super::Site, latency_ms: f64) -> (super::Site, SmbMount) {
    let home = site.target.parent().unwrap().join("home");
    let mut share = SmbMount::at(&home, latency_ms);
    site.target = home.join("site/wwwroot");
    share
        .local_state
        .push(kuduhook::ground::paths::local_state_dir(&site.target));
    std::fs::create_dir_all(&site.target).unwrap();
    std::fs::create_dir_all(site.wheels_dir_of_its_own()).unwrap();
    std::fs::write(site.target.join("hostingstart.html"), "placeholder").unwrap();
    (site, share)
}
