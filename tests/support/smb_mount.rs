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
        let calls = backing.path().with_extension("calls");
        let child = Command::new(smbfs())
            .arg(backing.path())
            .arg(path)
            .args(["--latency-ms", &latency_ms.to_string()])
            .arg("--count-calls")
            .arg(&calls)
            .stdin(Stdio::null())
            .spawn()
            .expect("start smbfs");
        let mount = SmbMount {
            path: path.to_path_buf(),
            local_state: Vec::new(),
            child,
            backing,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mount.is_mounted() {
            assert!(
                Instant::now() < deadline,
                "smbfs did not mount {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        mount
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

    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let wanted = self.path.to_string_lossy();
        mounts
            .lines()
            .any(|l| l.starts_with("smbfs ") && l.split(' ').nth(1) == Some(&wanted))
    }
}

impl Drop for SmbMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.backing.path().with_extension("calls"));
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
