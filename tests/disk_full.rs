//! A full disk under a deployment, on a real small filesystem (a tmpfs of a few MB, mounted by
//! the test as root, as CI runs): the installer's "No space left on device" is named as a full
//! disk, with the filesystem's numbers and what to free, never as a requirement to fix; the
//! site keeps serving the previous release; nothing the failed deployment built is left
//! behind; with space again, the same deployment lands.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::Site;

/// A tmpfs of `mb` MB, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn new(mb: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("fs");
        std::fs::create_dir_all(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&mount)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the tests mount a tmpfs (as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { _dir: dir, mount }
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.mount)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Fills the filesystem until `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.mount.join("filler");
        let size = self.free().saturating_sub(leave);
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 1 << 20];
        let mut written = 0;
        while written < size {
            let n = block.len().min((size - written) as usize);
            file.write_all(&block[..n]).unwrap();
            written += n as u64;
        }
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        // What kuduhook kept on local disk for the site there.
        let _ = std::fs::remove_dir_all(kuduhook::ground::paths::local_state_dir(
            &self.mount.join("site/wwwroot"),
        ));
    }
}

/// A wheel `name` 1.0 holding `mb` MB of data that does not compress.
fn big_wheel(dir: &Path, name: &str, mb: usize) {
    let path = dir.join(format!("{name}-1.0-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..mb << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let info = format!("{name}-1.0.dist-info");
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            format!("{name}/__init__.py"),
            b"__version__ = '1.0'\n".to_vec(),
        ),
        (format!("{name}/blob.bin"), data),
        (
            format!("{info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n").into_bytes(),
        ),
        (
            format!("{info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
    ];
    let mut record = String::new();
    for (file, bytes) in &files {
        zip.start_file(file, stored).unwrap();
        zip.write_all(bytes).unwrap();
        record.push_str(&format!("{file},,\n"));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    zip.start_file(format!("{info}/RECORD"), stored).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
}

#[test]
fn an_install_that_fills_the_disk_says_the_disk_is_full_and_the_previous_release_serves() {
    let fs = Tmpfs::new(96);
    let mut site = Site::app("3.11");
    site.target = fs.mount.join("site/wwwroot");
    // The wheels stay off the small filesystem: the shared ones, and a big one.
    let wheels = tempfile::tempdir().unwrap();
    for wheel in std::fs::read_dir(&site.wheels).unwrap() {
        let wheel = wheel.unwrap().path();
        std::fs::copy(&wheel, wheels.path().join(wheel.file_name().unwrap())).unwrap();
    }
    big_wheel(wheels.path(), "bigpkg", 8);
    site.wheels = wheels.path().to_path_buf();
    site.deploy(&[]).assert_ok();
    assert_eq!(site.imported_version("kudupkg").as_deref(), Some("1.0"));

    let filler = fs.fill(3 << 20);
    site.write("requirements.txt", "kudupkg==1.0\nbigpkg==1.0\n");
    let failed = site.deploy(&[]);
    failed
        .assert_failed()
        .assert_contains("failed (exited with code 1): the disk is full")
        .assert_contains(&format!("the filesystem holding {}", fs.mount.display()))
        .assert_contains("free of")
        .assert_contains("KUDUHOOK_KEEP_RELEASES=1")
        .assert_lacks("fix that requirement");
    assert_eq!(
        site.imported_version("kudupkg").as_deref(),
        Some("1.0"),
        "the previous release serves"
    );
    assert_eq!(site.imported_version("bigpkg"), None);
    assert_eq!(
        site.leftovers(),
        Vec::<String>::new(),
        "nothing the failed deployment built is left:\n{}",
        failed.log
    );

    std::fs::remove_file(filler).unwrap();
    site.deploy(&[]).assert_ok();
    assert_eq!(site.imported_version("bigpkg").as_deref(), Some("1.0"));
}

#[test]
fn a_rebuild_that_cannot_fit_is_refused_before_it_writes_with_the_numbers() {
    let fs = Tmpfs::new(96);
    let mut site = Site::app("3.11");
    site.target = fs.mount.join("site/wwwroot");
    // The env shipped as an archive too, as on App Service's share: a new env needs a new one.
    const ARCHIVE: (&str, &str) = ("APPSETTING_KUDUHOOK_ENV_ARCHIVE", "true");
    const REBUILD: (&str, &str) = ("APPSETTING_KUDUHOOK_FORCE_ENV_REBUILD", "2026-12-08");
    let first = site.deploy_with(&[], &[ARCHIVE]);
    first
        .assert_ok()
        .assert_contains("Space: env ")
        .assert_contains(", its archive ");
    let envs_before = support::names_in(&site.envs_dir());

    let filler = fs.fill(2 << 20);
    site.write("app.py", "import kudupkg\n\ndef app():\n    return 'v2'\n");
    let refused = site.deploy_with(&[], &[ARCHIVE, REBUILD]);
    refused
        .assert_failed()
        .assert_contains("error: not enough space to build the env: it needs about ")
        .assert_contains("(a new env the size of the live one ")
        .assert_contains(", its archive, as large as the last one ")
        .assert_contains(&format!(
            "and the filesystem holding {}",
            fs.mount.join("site").display()
        ))
        .assert_contains("Nothing kuduhook keeps beside the site could go: no env is kept")
        .assert_contains("Nothing in the target was changed");
    assert_eq!(
        support::names_in(&site.envs_dir()),
        envs_before,
        "no env was started"
    );
    assert!(
        std::fs::read_to_string(site.target_file("app.py"))
            .unwrap()
            .contains("kudupkg.__version__"),
        "the previous release's files"
    );

    std::fs::remove_file(filler).unwrap();
    site.deploy_with(&[], &[ARCHIVE, REBUILD])
        .assert_ok()
        .assert_contains("Space: about ")
        .assert_contains("; kuduhook keeps ")
        .assert_contains("(1 env kept for rollbacks ");

    // `kuduhook status` says the same, and warns once the filesystem is over 80% used, naming
    // what could go.
    let status = |site: &Site| {
        let mut cmd = Command::new(support::kuduhook());
        cmd.arg("status").arg("--target").arg(&site.target);
        support::Run::of(cmd)
    };
    status(&site)
        .assert_ok()
        .assert_contains("Space: env ")
        .assert_lacks("warning: the filesystem");
    let _filler = fs.fill(8 << 20);
    status(&site)
        .assert_ok()
        .assert_contains(&format!(
            "warning: the filesystem holding {} is 9",
            site.target.display()
        ))
        .assert_contains("What kuduhook keeps beside the site that could go: ")
        .assert_contains("of envs kept for rolling back 1 release (KUDUHOOK_KEEP_RELEASES=1");
}
