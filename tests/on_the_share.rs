//! kuduhook on App Service Linux's own filesystem: `/home` is an Azure Files share over SMB,
//! played here by `tools/smbfs` (symlinks refused, no `renameat2` flags, mode bits ignored,
//! case-insensitive names, latency per metadata call). No setting is forced: kuduhook finds out
//! what the filesystem can do, and says so in the log.

mod support;

use std::path::Path;
use std::process::Command;

use support::smb_mount::SmbMount;

#[test]
fn the_share_behaves_like_app_services_home() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let share = SmbMount::at(&dir.path().join("home"), 0.0);
    let p = |name: &str| share.path.join(name);
    std::fs::write(p("App.py"), "one").unwrap();
    assert_eq!(
        std::fs::read_to_string(p("app.py")).unwrap(),
        "one",
        "case-insensitive"
    );
    std::fs::write(p("APP.PY"), "two").unwrap();
    let names: Vec<String> = std::fs::read_dir(&share.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["App.py"],
        "case-preserving: one file, its first name"
    );
    let refused = std::os::unix::fs::symlink("App.py", p("link")).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(95), "EOPNOTSUPP: {refused}");
    std::fs::set_permissions(p("App.py"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let mode = std::fs::metadata(p("App.py")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755, "mode bits are ignored");
    std::fs::create_dir(p("a")).unwrap();
    std::fs::create_dir(p("b")).unwrap();
    let exchange = rustix_free_exchange(&p("a"), &p("b"));
    assert_eq!(exchange, Some(22), "renameat2 flags fail with EINVAL");
}

/// `renameat2(RENAME_EXCHANGE)` through the raw syscall: the errno it fails with.
fn rustix_free_exchange(a: &Path, b: &Path) -> Option<i32> {
    let script = format!(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         r = libc.renameat2(-100, b'{}', -100, b'{}', 2)\nprint(ctypes.get_errno() if r else 0)",
        a.display(),
        b.display()
    );
    let out = Command::new(support::python("3.11"))
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
