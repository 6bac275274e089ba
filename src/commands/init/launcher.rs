//! `kuduhook init --launcher` and `kuduhook upgrade`: a repository that holds no binary. It
//! commits `deploy/launcher.py` (kuduhook's version, its wheel for the site's platform and that
//! wheel's SHA-256) and a wrapper Kudu runs (`deploy/kuduhook`, a shell script, on Linux;
//! `deploy/kuduhook.cmd` on Windows). At each deployment the launcher runs the pinned kuduhook
//! from a cache beside the site, downloading and checking it the first time (launcher.py says
//! how). Pinning asks pip for the wheel the same way, from the developer's own index settings.

use std::path::Path;
use std::process::Command;

use crate::commands::error::CommandError;
use crate::ground::error::DeployError;
use crate::settings::Platform;

const LAUNCHER_PY: &str = include_str!("launcher.py");
const LAUNCHER_SH: &str = include_str!("launcher.sh");
const LAUNCHER_CMD: &str = include_str!("launcher.cmd");

/// Where the pin lives in the repository.
pub const PIN_FILE: &str = "deploy/launcher.py";

/// The kuduhook a launcher runs: a version, its wheel for the site's platform, the wheel's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub version: String,
    pub wheel: String,
    pub sha256: String,
    pub platform: Platform,
}

/// The wrapper Kudu runs, by platform.
pub fn wrapper_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => "deploy/kuduhook",
        Platform::Windows => "deploy/kuduhook.cmd",
    }
}

fn platform_word(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => "linux",
        Platform::Windows => "windows",
    }
}

/// The launcher's files: `(path, content, executable)`.
pub fn files(pin: &Pin) -> Vec<(String, Vec<u8>, bool)> {
    let py = LAUNCHER_PY
        .replace("@VERSION@", &pin.version)
        .replace("@WHEEL@", &pin.wheel)
        .replace("@SHA256@", &pin.sha256)
        .replace("@PLATFORM@", platform_word(pin.platform));
    let wrapper = match pin.platform {
        Platform::Linux => LAUNCHER_SH,
        Platform::Windows => LAUNCHER_CMD,
    };
    vec![
        (PIN_FILE.to_string(), py.into_bytes(), false),
        (
            wrapper_name(pin.platform).to_string(),
            wrapper.as_bytes().to_vec(),
            true,
        ),
    ]
}

/// The pin in a repository's `deploy/launcher.py`, if it has one.
pub fn read_pin(app: &Path) -> Option<Pin> {
    let text = std::fs::read_to_string(app.join(PIN_FILE)).ok()?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = \"")))
            .and_then(|rest| rest.strip_suffix('"'))
            .map(str::to_string)
    };
    Some(Pin {
        version: value("VERSION")?,
        wheel: value("WHEEL")?,
        sha256: value("SHA256")?,
        platform: match value("PLATFORM")?.as_str() {
            "windows" => Platform::Windows,
            _ => Platform::Linux,
        },
    })
}

/// The Python that asks pip for the wheel: `KUDUHOOK_LAUNCHER_PYTHON`, else `python3`, else
/// `python`.
fn python() -> String {
    std::env::var("KUDUHOOK_LAUNCHER_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            let found = |name: &str| {
                Command::new(name)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if found("python3") {
                "python3"
            } else {
                "python"
            }
            .to_string()
        })
}

/// Asks pip (through the launcher's own code) which wheel of kuduhook `version` the package
/// index serves for `platform`, downloads it and hashes it: what init and upgrade pin.
pub fn resolve(version: &str, platform: Platform) -> Result<Pin, DeployError> {
    let requirement = format!("kuduhook=={version}");
    let failed = |output: String| CommandError::LauncherPinFailed {
        requirement: requirement.clone(),
        platform,
        output,
    };
    let script = tempfile::Builder::new()
        .prefix("kuduhook-launcher-")
        .suffix(".py")
        .tempfile()
        .map_err(|e| DeployError::io("create", Path::new("a temporary file"), e))?;
    std::fs::write(script.path(), LAUNCHER_PY)
        .map_err(|e| DeployError::io("write", script.path(), e))?;
    let python = python();
    let out = Command::new(&python)
        .arg(script.path())
        .args(["--resolve", &requirement, platform_word(platform)])
        .output()
        .map_err(|e| failed(format!("{python} could not be started: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    match (out.status.success(), fields.as_slice()) {
        (true, [version, wheel, sha256]) => Ok(Pin {
            version: version.to_string(),
            wheel: wheel.to_string(),
            sha256: sha256.to_string(),
            platform,
        }),
        _ => Err(failed(format!("{}{}", String::from_utf8_lossy(&out.stderr), text)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_written_is_the_pin_read() {
        let dir = tempfile::tempdir().unwrap();
        for platform in [Platform::Linux, Platform::Windows] {
            let pin = Pin {
                version: "1.2.3".into(),
                wheel: "kuduhook-1.2.3-py3-none-win_amd64.whl".into(),
                sha256: "ab".repeat(32),
                platform,
            };
            for (path, content, _) in files(&pin) {
                let path = dir.path().join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, content).unwrap();
            }
            assert_eq!(read_pin(dir.path()), Some(pin));
        }
        assert!(
            dir.path().join("deploy/kuduhook.cmd").is_file()
                && dir.path().join("deploy/kuduhook").is_file()
        );
    }
}
