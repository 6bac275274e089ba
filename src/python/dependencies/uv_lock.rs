//! uv.lock: the packages it pins for this interpreter, from the project's own entry (its
//! dependencies, the selected extras and dependency groups) through each package's
//! dependencies, markers evaluated; the project itself is not installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use pep508_rs::pep440_rs::VersionSpecifiers;
use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree, PackageName, Requirement, VerbatimUrl};

use super::Lines;
use super::pyproject::Project;
use crate::ground::error::DeployError;
use crate::python::PythonVersion;
use crate::python::error::PythonError;

/// One dependency edge of the lock.
struct Dep {
    name: PackageName,
    version: Option<String>,
    extras: Vec<ExtraName>,
    marker: MarkerTree,
}

/// One `[[package]]` of the lock.
struct Package {
    name: PackageName,
    version: String,
    source: toml::Table,
    dependencies: Vec<Dep>,
    optional: BTreeMap<String, Vec<Dep>>,
    dev: BTreeMap<String, Vec<Dep>>,
    hashes: Vec<String>,
    metadata: Option<toml::Table>,
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
    if let Some(requires) = doc.get("requires-python").and_then(|v| v.as_str()) {
        super::check_python(lock, requires, version)?;
    }
    let packages: Vec<Package> = doc
        .get("package")
        .and_then(|p| p.as_array())
        .map(|list| list.iter().map(package).collect::<Result<_, _>>())
        .transpose()
        .map_err(unreadable)?
        .unwrap_or_default();
    let is_root = |p: &Package| {
        ["virtual", "editable"]
            .iter()
            .any(|k| p.source.get(*k).and_then(|v| v.as_str()) == Some("."))
    };
    let root = packages.iter().find(|p| is_root(p)).ok_or_else(|| {
        unreadable("it has no entry for the project itself (source \".\")".into())
    })?;
    check_current(lock, root, project)?;
    let mut start: Vec<&Dep> = root.dependencies.iter().collect();
    for group in groups {
        match root.optional.get(group).or_else(|| root.dev.get(group)) {
            Some(more) => start.extend(more),
            None => return Err(project.unknown_group(group)),
        }
    }
    // Breadth of the graph: each package with the extras it is wanted with.
    let mut wanted: BTreeMap<(PackageName, String), BTreeSet<ExtraName>> = BTreeMap::new();
    let mut queue: Vec<(&Dep, &Package)> = start.into_iter().map(|d| (d, root)).collect();
    while let Some((dep, from)) = queue.pop() {
        if !dep.marker.evaluate(markers, &[]) {
            continue;
        }
        let candidates: Vec<&Package> = packages
            .iter()
            .filter(|p| p.name == dep.name && dep.version.as_ref().is_none_or(|v| v == &p.version))
            .collect();
        let package = match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(unreadable(format!(
                    "{} {} depends on {}, which it does not pin",
                    from.name, from.version, dep.name
                )));
            }
            _ => {
                return Err(unreadable(format!(
                    "it pins {} more than once without saying which {} {} needs",
                    dep.name, from.name, from.version
                )));
            }
        };
        let key = (package.name.clone(), package.version.clone());
        if !crate::python::closure::wants(&mut wanted, &key, dep.extras.iter().cloned()) {
            continue;
        }
        for edge in &package.dependencies {
            queue.push((edge, package));
        }
        for extra in &dep.extras {
            for edge in package.optional.get(extra.as_ref()).into_iter().flatten() {
                queue.push((edge, package));
            }
        }
    }
    let base = lock.parent().unwrap_or(Path::new("."));
    let mut lines = Vec::new();
    for (name, version) in wanted.keys() {
        let package = packages
            .iter()
            .find(|p| &p.name == name && &p.version == version)
            .expect("a wanted package is pinned");
        if is_root(package) || package.source.contains_key("virtual") {
            continue;
        }
        lines.push((
            requirement_line(package, base).map_err(unreadable)?,
            package.hashes.clone(),
        ));
    }
    Ok(super::pinned_lines(lines, "uv.lock"))
}

/// How pip names a locked package: by version from an index, else by where it is.
fn requirement_line(package: &Package, base: &Path) -> Result<String, String> {
    let source = &package.source;
    let get = |key: &str| source.get(key).and_then(|v| v.as_str());
    let local = |path: &str| {
        let absolute = crate::ground::paths::normalize(&base.join(path));
        format!("{} @ file://{}", package.name, absolute.display())
    };
    if get("registry").is_some() {
        return Ok(format!("{}=={}", package.name, package.version));
    }
    if let Some(path) = get("path")
        .or_else(|| get("directory"))
        .or_else(|| get("editable"))
    {
        return Ok(local(path));
    }
    if let Some(url) = get("url") {
        return Ok(format!("{} @ {url}", package.name));
    }
    if let Some(git) = get("git") {
        let (url, commit) = git.split_once('#').unwrap_or((git, ""));
        let url = url.split('?').next().unwrap_or(url);
        let at = if commit.is_empty() {
            String::new()
        } else {
            format!("@{commit}")
        };
        return Ok(format!("{} @ git+{url}{at}", package.name));
    }
    Err(format!(
        "{} {}: its source {source} is not one kuduhook can install",
        package.name, package.version
    ))
}

fn package(value: &toml::Value) -> Result<Package, String> {
    let table = value.as_table().ok_or("a [[package]] is not a table")?;
    let text = |key: &str| {
        table
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let name = PackageName::from_str(&text("name")).map_err(|e| format!("a package name: {e}"))?;
    let deps = |value: Option<&toml::Value>| -> Result<Vec<Dep>, String> {
        value
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(dep)
            .collect()
    };
    let named_lists = |key: &str| -> Result<BTreeMap<String, Vec<Dep>>, String> {
        let mut out = BTreeMap::new();
        if let Some(lists) = table.get(key).and_then(|v| v.as_table()) {
            for (list, items) in lists {
                out.insert(list.clone(), deps(Some(items))?);
            }
        }
        Ok(out)
    };
    let mut hashes = Vec::new();
    for artifact in table
        .get("wheels")
        .and_then(|w| w.as_array())
        .into_iter()
        .flatten()
        .chain(table.get("sdist"))
    {
        if let Some(hash) = artifact.get("hash").and_then(|h| h.as_str()) {
            hashes.push(hash.to_string());
        }
    }
    Ok(Package {
        version: text("version"),
        source: table
            .get("source")
            .and_then(|s| s.as_table())
            .cloned()
            .unwrap_or_default(),
        dependencies: deps(table.get("dependencies"))?,
        optional: named_lists("optional-dependencies")?,
        dev: named_lists("dev-dependencies")?,
        hashes,
        metadata: table.get("metadata").and_then(|m| m.as_table()).cloned(),
        name,
    })
}

fn dep(value: &toml::Value) -> Result<Dep, String> {
    let table = value.as_table().ok_or("a dependency is not a table")?;
    let name = table
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let marker = match table.get("marker").and_then(|v| v.as_str()) {
        Some(text) => MarkerTree::from_str(text).map_err(|e| format!("marker {text:?}: {e}"))?,
        None => MarkerTree::TRUE,
    };
    Ok(Dep {
        name: PackageName::from_str(name).map_err(|e| format!("a dependency name: {e}"))?,
        version: table
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        extras: table
            .get("extra")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().and_then(|e| ExtraName::from_str(e).ok()))
            .collect(),
        marker,
    })
}

/// Fails when the lock was made for other requirements than pyproject.toml's now: the names,
/// extras and version specifiers of what the project asks for must be those the lock recorded.
fn check_current(lock: &Path, root: &Package, project: &Project) -> Result<(), DeployError> {
    let outdated = || {
        PythonError::LockOutdated {
            lock: lock.display().to_string(),
            project: project.path.display().to_string(),
            command: "uv lock".into(),
        }
        .into()
    };
    let Some(metadata) = &root.metadata else {
        return Ok(());
    };
    let mut recorded: Vec<String> = metadata
        .get("requires-dist")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.as_table())
        .map(|t| {
            let name = t.get("name").and_then(|v| v.as_str()).unwrap_or_default();
            let extras: Vec<&str> = t
                .get("extras")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            let specifier = t
                .get("specifier")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            key(name, &extras, specifier)
        })
        .collect();
    let mut declared: Vec<String> = Vec::new();
    for text in project
        .dependencies
        .iter()
        .chain(project.optional.values().flatten())
    {
        let requirement = Requirement::<VerbatimUrl>::from_str(text).map_err(|_| outdated())?;
        let extras: Vec<String> = requirement.extras.iter().map(|e| e.to_string()).collect();
        let extras: Vec<&str> = extras.iter().map(String::as_str).collect();
        let specifier = match &requirement.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => s.to_string(),
            _ => String::new(),
        };
        declared.push(key(requirement.name.as_ref(), &extras, &specifier));
    }
    recorded.sort();
    declared.sort();
    match recorded == declared {
        true => Ok(()),
        false => Err(outdated()),
    }
}

/// One requirement as names, extras and specifiers, comparable across spellings.
fn key(name: &str, extras: &[&str], specifier: &str) -> String {
    let name = PackageName::from_str(name)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| name.to_string());
    let mut extras: Vec<String> = extras.iter().map(|e| e.to_ascii_lowercase()).collect();
    extras.sort();
    let mut specifiers: Vec<String> = VersionSpecifiers::from_str(specifier)
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_else(|_| vec![specifier.replace(' ', "")]);
    specifiers.sort();
    format!("{name}[{}]{}", extras.join(","), specifiers.join(","))
}
