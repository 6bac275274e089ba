//! What is installed in an env, read from its `*.dist-info` folders (no interpreter needed),
//! and what an install changed: added, upgraded (or downgraded) and removed packages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::settings::Platform;

/// Installed packages by normalized name (`typing-extensions`), with their versions.
pub type Packages = BTreeMap<String, String>;

/// The site-packages folders of the env at `env_dir`.
pub fn site_packages(env_dir: &Path, platform: Platform) -> Vec<PathBuf> {
    match platform {
        Platform::Windows => vec![env_dir.join("Lib").join("site-packages")],
        Platform::Linux => std::fs::read_dir(env_dir.join("lib"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
                    .map(|e| e.path().join("site-packages"))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The packages installed in the env at `env_dir`; empty when there is none.
pub fn installed(env_dir: &Path, platform: Platform) -> Packages {
    let mut packages = Packages::new();
    for dir in site_packages(env_dir, platform) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((package, version)) = parse_dist_info(&name) {
                packages.insert(package, version);
            }
        }
    }
    packages
}

/// `Flask_Login-0.6.3.dist-info` is `("flask-login", "0.6.3")`.
fn parse_dist_info(folder: &str) -> Option<(String, String)> {
    let stem = folder.strip_suffix(".dist-info")?;
    let (name, version) = stem.rsplit_once('-')?;
    let name = name.to_ascii_lowercase().replace(['_', '.'], "-");
    Some((name, version.to_string()))
}

/// What an install changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<(String, String)>,
    /// Name, from, to.
    pub changed: Vec<(String, String, String)>,
    pub removed: Vec<(String, String)>,
    pub total: usize,
}

/// The difference from `before` to `after`.
pub fn changes(before: &Packages, after: &Packages) -> Changes {
    let mut out = Changes {
        total: after.len(),
        ..Changes::default()
    };
    for (name, version) in after {
        match before.get(name) {
            None => out.added.push((name.clone(), version.clone())),
            Some(old) if old != version => {
                out.changed
                    .push((name.clone(), old.clone(), version.clone()))
            }
            Some(_) => {}
        }
    }
    for (name, version) in before {
        if !after.contains_key(name) {
            out.removed.push((name.clone(), version.clone()));
        }
    }
    out
}

/// How many packages of a list the log names before "and N more".
const LISTED: usize = 15;

impl Changes {
    /// What changed, one part each: "added a 1.0, b 2.0", "changed c 1.0 -> 2.0", "removed d
    /// 0.1"; empty when nothing did.
    pub fn parts(&self) -> Vec<String> {
        use crate::ground::logging::list;
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!(
                "added {}",
                list(&self.added, LISTED, |(n, v)| format!("{n} {v}"))
            ));
        }
        if !self.changed.is_empty() {
            parts.push(format!(
                "changed {}",
                list(&self.changed, LISTED, |(n, a, b)| format!("{n} {a} -> {b}"))
            ));
        }
        if !self.removed.is_empty() {
            parts.push(format!(
                "removed {}",
                list(&self.removed, LISTED, |(n, v)| format!("{n} {v}"))
            ));
        }
        parts
    }

    /// One line for the log: "Packages: added a 1.0, b 2.0; upgraded c 1.0 -> 2.0; removed d
    /// 0.1 (12 installed)".
    pub fn summary(&self) -> String {
        let parts = self.parts();
        if parts.is_empty() {
            return format!("Packages: no change ({} installed)", self.total);
        }
        format!("Packages: {} ({} installed)", parts.join("; "), self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_like_pip_normalizes_them() {
        assert_eq!(
            parse_dist_info("Flask_Login-0.6.3.dist-info"),
            Some(("flask-login".into(), "0.6.3".into()))
        );
        assert_eq!(parse_dist_info("flask_login"), None);
    }

    #[test]
    fn changes_name_each_package_once() {
        let before: Packages = [("a", "1"), ("b", "1"), ("gone", "0.1")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .into();
        let after: Packages = [("a", "1"), ("b", "2"), ("new", "3")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .into();
        assert_eq!(
            changes(&before, &after).summary(),
            "Packages: added new 3; changed b 1 -> 2; removed gone 0.1 (3 installed)"
        );
        assert_eq!(
            changes(&after, &after).summary(),
            "Packages: no change (3 installed)"
        );
    }

    #[test]
    fn finds_site_packages_on_both_platforms() {
        let dir = tempfile::tempdir().unwrap();
        let linux = dir
            .path()
            .join("env/lib/python3.12/site-packages/kudupkg-2.0.dist-info");
        std::fs::create_dir_all(linux).unwrap();
        let windows = dir
            .path()
            .join("win/Lib/site-packages/Django-4.2.dist-info");
        std::fs::create_dir_all(windows).unwrap();
        assert_eq!(
            installed(&dir.path().join("env"), Platform::Linux),
            Packages::from([("kudupkg".to_string(), "2.0".to_string())])
        );
        assert_eq!(
            installed(&dir.path().join("win"), Platform::Windows),
            Packages::from([("django".to_string(), "4.2".to_string())])
        );
    }
}
