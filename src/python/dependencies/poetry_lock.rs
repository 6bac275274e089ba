//! poetry.lock: the packages reached from pyproject.toml's Poetry dependencies (or its
//! `[project]` ones, Poetry 2) and the selected groups and extras, through each locked
//! package's dependencies whose markers hold for this interpreter, pinned as locked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use pep508_rs::{MarkerEnvironment, MarkerTree, PackageName, Requirement, VerbatimUrl};

use super::Lines;
use super::pyproject::Project;
use crate::ground::error::DeployError;
use crate::python::PythonVersion;
use crate::python::error::PythonError;

/// One edge: a dependency's name, the extras asked of it, and whether its markers hold.
struct Edge {
    name: PackageName,
    extras: Vec<String>,
    applies: bool,
    optional: bool,
    /// The version constraint in Poetry's syntax, where one is given.
    constraint: Option<String>,
}

/// The requirement lines pinning what `lock` installs here.
pub fn pinned(
    lock: &Path,
    project: &Project,
    markers: &MarkerEnvironment,
    version: &PythonVersion,
    groups: &[String],
) -> Result<Lines, DeployError> {
    let unreadable = super::unreadable(lock);
    let doc = super::read_toml(lock)?;
    let python = doc
        .get("metadata")
        .and_then(|m| m.get("python-versions"))
        .and_then(|v| v.as_str());
    if let Some(constraint) = python
        && allows(constraint, version) == Some(false)
    {
        return Err(PythonError::PythonNotAllowed {
            file: lock.display().to_string(),
            requires: constraint.to_string(),
            version: version.to_string(),
        }
        .into());
    }
    let packages: Vec<&toml::Table> = doc
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_table())
        .collect();
    let name_of = |p: &toml::Table| {
        PackageName::from_str(p.get("name").and_then(|n| n.as_str()).unwrap_or_default()).ok()
    };
    // The project's own requirements: Poetry's tables, else [project] (Poetry 2).
    let mut roots: Vec<Edge> = Vec::new();
    let mut push_poetry = |deps: &BTreeMap<String, toml::Value>| -> Result<(), DeployError> {
        for (name, spec) in deps {
            for edge in edges(name, spec, markers).map_err(unreadable)? {
                if !edge.optional {
                    roots.push(edge);
                }
            }
        }
        Ok(())
    };
    push_poetry(&project.poetry_dependencies)?;
    for group in groups {
        match project.poetry_groups.get(group) {
            Some(deps) => push_poetry(deps)?,
            None if project.optional.contains_key(group) => {}
            None => return Err(project.unknown_group(group)),
        }
    }
    let mut pep621: Vec<&String> = project.dependencies.iter().collect();
    for group in groups {
        pep621.extend(project.optional.get(group).into_iter().flatten());
    }
    for text in pep621 {
        let requirement = Requirement::<VerbatimUrl>::from_str(text)
            .map_err(|e| unreadable(format!("pyproject.toml's {text:?}: {e}")))?;
        let constraint = match &requirement.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => Some(s.to_string()),
            _ => None,
        };
        roots.push(Edge {
            applies: requirement.marker.evaluate(markers, &[]),
            name: requirement.name,
            extras: requirement.extras.iter().map(|e| e.to_string()).collect(),
            optional: false,
            constraint,
        });
    }
    let outdated = || {
        PythonError::LockOutdated {
            lock: lock.display().to_string(),
            project: project.path.display().to_string(),
            command: "poetry lock".into(),
        }
        .into()
    };
    // What the project asks for must be what the lock pins: every dependency locked, at a
    // version its constraint allows.
    for root in &roots {
        let package = packages
            .iter()
            .find(|p| name_of(p).as_ref() == Some(&root.name))
            .ok_or_else(outdated)?;
        let locked = package
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        if let Some(constraint) = &root.constraint
            && satisfies(constraint, locked) == Some(false)
        {
            return Err(outdated());
        }
    }
    let mut wanted: BTreeMap<PackageName, BTreeSet<String>> = BTreeMap::new();
    let mut queue: Vec<Edge> = roots;
    while let Some(edge) = queue.pop() {
        if !edge.applies {
            continue;
        }
        let package = packages
            .iter()
            .find(|p| name_of(p).as_ref() == Some(&edge.name))
            .ok_or_else(outdated)?;
        if !crate::python::closure::wants(&mut wanted, &edge.name, edge.extras.iter().cloned()) {
            continue;
        }
        let asked: BTreeSet<PackageName> = edge
            .extras
            .iter()
            .filter_map(|extra| {
                package
                    .get("extras")
                    .and_then(|e| e.get(extra))
                    .and_then(|l| l.as_array())
            })
            .flatten()
            .filter_map(|item| item.as_str())
            .filter_map(|item| {
                PackageName::from_str(item.split([' ', '(', '[', ';']).next().unwrap_or(item)).ok()
            })
            .collect();
        if let Some(deps) = package.get("dependencies").and_then(|d| d.as_table()) {
            for (name, spec) in deps {
                for dep in edges(name, spec, markers).map_err(unreadable)? {
                    if !dep.optional || asked.contains(&dep.name) {
                        queue.push(dep);
                    }
                }
            }
        }
    }
    let base = lock.parent().unwrap_or(Path::new("."));
    let mut lines = Vec::new();
    for name in wanted.keys() {
        let package = packages
            .iter()
            .find(|p| name_of(p).as_ref() == Some(name))
            .expect("a wanted package is locked");
        let version = package
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let source = package.get("source").and_then(|s| s.as_table());
        let kind = source
            .and_then(|s| s.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        let url = source
            .and_then(|s| s.get("url"))
            .and_then(|u| u.as_str())
            .unwrap_or("");
        let line = match kind {
            "directory" | "file" => {
                let absolute = crate::ground::paths::normalize(&base.join(url));
                format!("{name} @ file://{}", absolute.display())
            }
            "git" => {
                let commit = source
                    .and_then(|s| s.get("resolved_reference").or_else(|| s.get("reference")))
                    .and_then(|r| r.as_str())
                    .map(|r| format!("@{r}"))
                    .unwrap_or_default();
                format!("{name} @ git+{url}{commit}")
            }
            "url" => format!("{name} @ {url}"),
            _ => format!("{name}=={version}"),
        };
        let hashes = package
            .get("files")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("hash").and_then(|h| h.as_str()).map(str::to_string))
            .collect();
        lines.push((line, hashes));
    }
    Ok(super::pinned_lines(lines, "poetry.lock"))
}

/// The edges one Poetry dependency entry stands for: `"^1.0"`, `{version, markers, extras,
/// optional}`, or a list of such tables (constraints for different markers).
fn edges(name: &str, spec: &toml::Value, markers: &MarkerEnvironment) -> Result<Vec<Edge>, String> {
    let package = PackageName::from_str(name).map_err(|e| format!("{name}: {e}"))?;
    let one = |table: Option<&toml::Table>| -> Result<Edge, String> {
        let applies = match table
            .and_then(|t| t.get("markers"))
            .and_then(|m| m.as_str())
        {
            Some(text) => MarkerTree::from_str(text)
                .map_err(|e| format!("{name}: markers {text:?}: {e}"))?
                .evaluate(markers, &[]),
            None => true,
        };
        let constraint = match table {
            Some(t) => t
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            None => spec.as_str().map(str::to_string),
        };
        Ok(Edge {
            name: package.clone(),
            constraint,
            extras: table
                .and_then(|t| t.get("extras"))
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            applies,
            optional: table
                .and_then(|t| t.get("optional"))
                .and_then(|o| o.as_bool())
                == Some(true),
        })
    };
    match spec {
        toml::Value::Table(table) => Ok(vec![one(Some(table))?]),
        toml::Value::Array(items) => items.iter().map(|i| one(i.as_table())).collect(),
        _ => Ok(vec![one(None)?]),
    }
}

/// Whether Poetry's version constraint `constraint` (`^3.11`, `~3.11`, `>=3.9,<4.0`,
/// `3.11.*`, `*`, alternatives joined by `||`) allows `version`; `None` where it cannot be
/// read (the check is then left to the installer).
pub fn allows(constraint: &str, version: &PythonVersion) -> Option<bool> {
    satisfies(constraint, &version.to_string())
}

/// Whether Poetry's constraint `constraint` allows the version `version`; `None` where either
/// cannot be read.
fn satisfies(constraint: &str, version: &str) -> Option<bool> {
    use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
    let full = Version::from_str(version).ok()?;
    let mut any = false;
    for alternative in constraint.split("||") {
        let mut specifiers = Vec::new();
        for term in alternative
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            specifiers.extend(pep440_terms(term)?);
        }
        let joined = VersionSpecifiers::from_str(&specifiers.join(",")).ok()?;
        any |= joined.contains(&full);
    }
    Some(any)
}

/// One Poetry term as PEP 440 specifiers.
fn pep440_terms(term: &str) -> Option<Vec<String>> {
    let numbers =
        |text: &str| -> Option<Vec<u64>> { text.split('.').map(|n| n.parse().ok()).collect() };
    if term == "*" {
        return Some(Vec::new());
    }
    if let Some(rest) = term.strip_prefix('^') {
        let parts = numbers(rest)?;
        let upper = match parts.as_slice() {
            [major, ..] if *major > 0 || parts.len() == 1 => format!("{}", major + 1),
            [0, minor, ..] if *minor > 0 || parts.len() == 2 => format!("0.{}", minor + 1),
            [0, 0, patch, ..] => format!("0.0.{}", patch + 1),
            _ => return None,
        };
        return Some(vec![format!(">={rest}"), format!("<{upper}")]);
    }
    if let Some(rest) = term.strip_prefix('~').filter(|r| !r.starts_with('=')) {
        let parts = numbers(rest)?;
        let upper = match parts.as_slice() {
            [major] => format!("{}", major + 1),
            [major, minor, ..] => format!("{major}.{}", minor + 1),
            _ => return None,
        };
        return Some(vec![format!(">={rest}"), format!("<{upper}")]);
    }
    if term.starts_with(|c: char| c.is_ascii_digit()) {
        // A bare version: that release series.
        let series = term.trim_end_matches(".*");
        return Some(vec![format!("=={series}.*")]);
    }
    Some(vec![term.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_poetrys_python_constraints() {
        let v = |s| PythonVersion::parse(s).unwrap();
        assert_eq!(allows("^3.11", &v("3.11.7")), Some(true));
        assert_eq!(allows("^3.11", &v("3.10.13")), Some(false));
        assert_eq!(allows("^3.12", &v("3.11.7")), Some(false));
        assert_eq!(allows("~3.11", &v("3.12.1")), Some(false));
        assert_eq!(allows(">=3.9,<4.0", &v("3.11.7")), Some(true));
        assert_eq!(allows(">=3.8 <3.11", &v("3.11.7")), Some(false));
        assert_eq!(allows("3.11.*", &v("3.11.7")), Some(true));
        assert_eq!(allows("^3.8 || ^4.0", &v("3.11.7")), Some(true));
        assert_eq!(allows("*", &v("3.6.15")), Some(true));
        assert_eq!(allows("^three", &v("3.11.7")), None);
        assert_eq!(satisfies("^2.0", "2.3"), Some(true));
        assert_eq!(satisfies("^3.0", "2.3"), Some(false));
        assert_eq!(satisfies(">=2,<3", "2.0"), Some(true));
    }
}
