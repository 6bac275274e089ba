//! Pipfile.lock (pipenv): the packages of its `default` section (plus `develop` or another
//! category when selected) whose markers hold for this interpreter, pinned as locked.

use std::path::Path;
use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerTree};

use super::Lines;
use crate::ground::error::DeployError;
use crate::python::PythonVersion;
use crate::python::error::PythonError;

/// The requirement lines pinning what `lock` installs here.
pub fn pinned(
    lock: &Path,
    markers: &MarkerEnvironment,
    version: &PythonVersion,
    groups: &[String],
) -> Result<Lines, DeployError> {
    let unreadable = super::unreadable(lock);
    let bytes = std::fs::read(lock).map_err(|e| unreadable(e.to_string()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    let requires = doc
        .pointer("/_meta/requires/python_version")
        .and_then(|v| v.as_str());
    if let Some(wanted) = requires
        && wanted != version.minor_version()
    {
        return Err(PythonError::PythonNotAllowed {
            file: lock.display().to_string(),
            requires: format!("python_version {wanted}"),
            version: version.to_string(),
        }
        .into());
    }
    let mut sections = vec!["default".to_string()];
    for group in groups {
        let section = if group == "dev" {
            "develop"
        } else {
            group.as_str()
        };
        if section == "_meta" || doc.get(section).and_then(|s| s.as_object()).is_none() {
            let mut available: Vec<String> = doc
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .filter(|k| k != "_meta" && k != "default")
                .collect();
            available.sort();
            return Err(PythonError::UnknownDependencyGroup {
                group: group.clone(),
                file: lock.display().to_string(),
                available,
            }
            .into());
        }
        sections.push(section.to_string());
    }
    let base = lock.parent().unwrap_or(Path::new("."));
    let mut lines = Vec::new();
    for section in &sections {
        let Some(entries) = doc.get(section).and_then(|s| s.as_object()) else {
            continue;
        };
        for (name, entry) in entries {
            let text = |key: &str| entry.get(key).and_then(|v| v.as_str());
            if let Some(marker) = text("markers") {
                let tree = MarkerTree::from_str(marker)
                    .map_err(|e| unreadable(format!("{name}: markers {marker:?}: {e}")))?;
                if !tree.evaluate(markers, &[]) {
                    continue;
                }
            }
            let extras: Vec<&str> = entry
                .get("extras")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            let with_extras = match extras.is_empty() {
                true => name.clone(),
                false => format!("{name}[{}]", extras.join(",")),
            };
            let line = if let Some(pinned) = text("version") {
                format!("{with_extras}{pinned}")
            } else if let Some(path) = text("path").or_else(|| text("file")) {
                let absolute = crate::ground::paths::normalize(&base.join(path));
                format!("{with_extras} @ file://{}", absolute.display())
            } else if let Some(git) = text("git") {
                let at = text("ref").map(|r| format!("@{r}")).unwrap_or_default();
                format!("{with_extras} @ git+{git}{at}")
            } else {
                return Err(unreadable(format!(
                    "{name} has no version, path or git source"
                )));
            };
            let hashes = entry
                .get("hashes")
                .and_then(|h| h.as_array())
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect();
            lines.push((line, hashes));
        }
    }
    Ok(super::pinned_lines(lines, "Pipfile.lock"))
}
