//! Where things live on each App Service platform.
//!
//! Windows App Service (`D:\home\python364x64\python.exe`, `env\Scripts\python.exe`) cannot run
//! here, so every layout decision is a plain function of a [`Platform`] value that returns
//! strings or path segments. Both layouts are unit-tested on any host; only the caller that
//! touches the disk uses the host's own platform.

pub mod entry;
pub mod linux_start;

use crate::settings::Platform;

/// Where Oryx installs a Python version on demand in Kudu's Linux container, unless
/// `DYNAMIC_INSTALL_ROOT_DIR` says otherwise.
pub const ORYX_INSTALL_ROOT: &str = "/tmp/oryx/platforms";

use crate::python::PythonVersion;

/// Where to look for an interpreter of `version`, best first.
///
/// `home` is the user's home folder and `system_drive` Windows' `%SYSTEMDRIVE%` (`D:` on
/// App Service). Each location is probed (run) before it is trusted: the patterns only say
/// where to look.
pub fn interpreter_locations(
    platform: Platform,
    version: &PythonVersion,
    home: Option<&str>,
    system_drive: Option<&str>,
    oryx_install_root: Option<&str>,
) -> Vec<SearchLocation> {
    let (major, minor) = (version.major, version.minor);
    let dotted = format!("{major}.{minor}");
    let mut out = Vec::new();
    match platform {
        Platform::Linux => {
            // App Service Linux (Oryx images): /opt/python/3.11.4/bin/python3.11
            out.push(SearchLocation::VersionDirs {
                parent: "/opt/python".into(),
                version_prefix: dotted.clone(),
                inside: vec!["bin".into(), format!("python{dotted}")],
                label: "App Service (/opt/python)",
            });
            // Kudu's Linux container installs other versions on demand (oryx prep):
            // $DYNAMIC_INSTALL_ROOT_DIR/python/3.12.1/bin/python3.12
            out.push(SearchLocation::VersionDirs {
                parent: platform.join(&[oryx_install_root.unwrap_or(ORYX_INSTALL_ROOT), "python"]),
                version_prefix: dotted.clone(),
                inside: vec!["bin".into(), format!("python{dotted}")],
                label: "Oryx's on-demand installs",
            });
            out.push(SearchLocation::OnPath {
                name: format!("python{dotted}"),
                label: "PATH",
            });
            if let Some(home) = home {
                out.push(SearchLocation::VersionDirs {
                    parent: platform.join(&[home, ".pyenv", "versions"]),
                    version_prefix: dotted.clone(),
                    inside: vec!["bin".into(), format!("python{dotted}")],
                    label: "pyenv (~/.pyenv/versions)",
                });
            }
        }
        Platform::Windows => {
            let drive = system_drive.unwrap_or("D:");
            // Site extensions: D:\home\python364x64\python.exe
            out.push(SearchLocation::VersionDirs {
                parent: platform.join(&[drive, "home"]),
                version_prefix: format!("python{major}{minor}"),
                inside: vec!["python.exe".into()],
                label: "App Service site extension (D:\\home\\python*)",
            });
            // Preinstalled runtimes: D:\Python34\python.exe
            out.push(SearchLocation::Exact {
                path: platform.join(&[drive, &format!("Python{major}{minor}"), "python.exe"]),
                label: "App Service runtime (%SYSTEMDRIVE%\\PythonXY)",
            });
            out.push(SearchLocation::OnPath {
                name: "python.exe".into(),
                label: "PATH",
            });
            if let Some(home) = home {
                out.push(SearchLocation::VersionDirs {
                    parent: platform.join(&[home, ".pyenv", "pyenv-win", "versions"]),
                    version_prefix: dotted,
                    inside: vec!["python.exe".into()],
                    label: "pyenv-win",
                });
            }
        }
    }
    out
}

/// One place an interpreter may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchLocation {
    /// Exactly this file.
    Exact { path: String, label: &'static str },
    /// Every sub-folder of `parent` named `version_prefix` or `version_prefix` followed by more
    /// (`3.11`, `3.11.4`, `python311x64`), then `inside` it. Newest name first.
    VersionDirs {
        parent: String,
        version_prefix: String,
        inside: Vec<String>,
        label: &'static str,
    },
    /// A program of this name in one of `PATH`'s folders.
    OnPath { name: String, label: &'static str },
}

impl SearchLocation {
    /// Where this location came from, for the log.
    pub fn label(&self) -> &'static str {
        match self {
            SearchLocation::Exact { label, .. }
            | SearchLocation::VersionDirs { label, .. }
            | SearchLocation::OnPath { label, .. } => label,
        }
    }

    /// The location as a user would write it, for "searched: …" lists.
    pub fn describe(&self, platform: Platform) -> String {
        match self {
            SearchLocation::Exact { path, .. } => path.clone(),
            SearchLocation::VersionDirs {
                parent,
                version_prefix,
                inside,
                ..
            } => {
                let dir = format!("{version_prefix}*");
                let mut segments = vec![parent.as_str(), dir.as_str()];
                segments.extend(inside.iter().map(String::as_str));
                platform.join(&segments)
            }
            SearchLocation::OnPath { name, .. } => format!("{name} on PATH"),
        }
    }
}

/// Whether a folder name belongs to a version prefix: `3.11` matches `3.11` and `3.11.4` but not
/// `3.1`'s neighbour `3.110`; `python311` matches `python311x64` and `python3114x64`.
pub fn version_dir_matches(name: &str, prefix: &str) -> bool {
    match name.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => {
            let first = rest.chars().next().unwrap_or('.');
            // A dotted prefix must continue with a dot or a non-digit (3.11.4, 3.11-dev);
            // an undotted Windows prefix (python311) may continue with the patch digits.
            if prefix.contains('.') {
                !first.is_ascii_digit()
            } else {
                true
            }
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> PythonVersion {
        PythonVersion {
            major,
            minor,
            patch: None,
        }
    }

    #[test]
    fn env_interpreter_paths_match_each_platform() {
        assert_eq!(
            Platform::Linux.join(&Platform::Linux.env_python()),
            "bin/python"
        );
        assert_eq!(
            Platform::Windows.join(&Platform::Windows.env_python()),
            "Scripts\\python.exe"
        );
        assert_eq!(Platform::Windows.env_bin_dir(), "Scripts");
        assert_eq!(Platform::Windows.path_list_separator(), ';');
        assert_eq!(Platform::Windows.shell(), ["cmd", "/c"]);
    }

    #[test]
    fn windows_search_covers_site_extensions_and_system_drive() {
        let found: Vec<String> = interpreter_locations(
            Platform::Windows,
            &v(3, 6),
            Some("C:\\Users\\me"),
            Some("D:"),
            None,
        )
        .iter()
        .map(|l| l.describe(Platform::Windows))
        .collect();
        assert_eq!(
            found,
            vec![
                "D:\\home\\python36*\\python.exe",
                "D:\\Python36\\python.exe",
                "python.exe on PATH",
                "C:\\Users\\me\\.pyenv\\pyenv-win\\versions\\3.6*\\python.exe",
            ]
        );
    }

    #[test]
    fn linux_search_covers_app_service_path_and_pyenv() {
        let found: Vec<String> =
            interpreter_locations(Platform::Linux, &v(3, 12), Some("/root"), None, None)
                .iter()
                .map(|l| l.describe(Platform::Linux))
                .collect();
        assert_eq!(
            found,
            vec![
                "/opt/python/3.12*/bin/python3.12",
                "/tmp/oryx/platforms/python/3.12*/bin/python3.12",
                "python3.12 on PATH",
                "/root/.pyenv/versions/3.12*/bin/python3.12",
            ]
        );
    }

    #[test]
    fn version_folders_match_their_version_only() {
        assert!(version_dir_matches("3.11", "3.11"));
        assert!(version_dir_matches("3.11.4", "3.11"));
        assert!(!version_dir_matches("3.110", "3.11"));
        assert!(!version_dir_matches("3.1", "3.11"));
        assert!(version_dir_matches("python364x64", "python36"));
        assert!(!version_dir_matches("python27", "python36"));
    }
}
