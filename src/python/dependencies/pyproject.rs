//! What pyproject.toml declares: `[project]` dependencies, optional dependencies (extras),
//! `[dependency-groups]` (PEP 735), `requires-python`, and Poetry's own tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ground::error::DeployError;
use crate::python::PythonVersion;
use crate::python::dependencies::Lines;
use crate::python::error::PythonError;

/// pyproject.toml, as far as dependencies go.
#[derive(Debug, Default)]
pub struct Project {
    pub path: PathBuf,
    /// It has a `[project]` table (PEP 621).
    pub has_project_table: bool,
    /// It has a `[tool.poetry]` table.
    pub is_poetry: bool,
    pub dependencies: Vec<String>,
    pub optional: BTreeMap<String, Vec<String>>,
    /// `[dependency-groups]`: each group's requirement strings (included groups expanded).
    pub groups: BTreeMap<String, Vec<String>>,
    pub requires_python: Option<String>,
    /// `[tool.poetry.dependencies]` without `python`, and each `[tool.poetry.group.X]`'s.
    pub poetry_dependencies: BTreeMap<String, toml::Value>,
    pub poetry_groups: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

/// Reads pyproject.toml at `path`.
pub fn read(path: &Path) -> Result<Project, DeployError> {
    let unreadable = super::unreadable(path);
    let doc = super::read_toml(path)?;
    let strings = |value: Option<&toml::Value>, what: &str| -> Result<Vec<String>, DeployError> {
        match value {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        unreadable(format!("{what} holds {i}, not a requirement string"))
                    })
                })
                .collect(),
            Some(other) => Err(unreadable(format!("{what} is {other}, not a list"))),
        }
    };
    let mut project = Project {
        path: path.to_path_buf(),
        ..Project::default()
    };
    if let Some(table) = doc.get("project").and_then(|p| p.as_table()) {
        project.has_project_table = true;
        project.dependencies = strings(table.get("dependencies"), "[project] dependencies")?;
        project.requires_python = table
            .get("requires-python")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(optional) = table
            .get("optional-dependencies")
            .and_then(|v| v.as_table())
        {
            for (extra, list) in optional {
                let what = format!("[project.optional-dependencies] {extra}");
                project
                    .optional
                    .insert(extra.clone(), strings(Some(list), &what)?);
            }
        }
    }
    if let Some(groups) = doc.get("dependency-groups").and_then(|v| v.as_table()) {
        for name in groups.keys() {
            let mut seen = Vec::new();
            let expanded = expand_group(groups, name, &mut seen).map_err(unreadable)?;
            project.groups.insert(name.clone(), expanded);
        }
    }
    if let Some(poetry) = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.as_table())
    {
        project.is_poetry = true;
        if let Some(deps) = poetry.get("dependencies").and_then(|d| d.as_table()) {
            for (name, spec) in deps {
                if name != "python" {
                    project
                        .poetry_dependencies
                        .insert(name.clone(), spec.clone());
                }
            }
        }
        if let Some(groups) = poetry.get("group").and_then(|g| g.as_table()) {
            for (group, table) in groups {
                let deps = table
                    .get("dependencies")
                    .and_then(|d| d.as_table())
                    .cloned()
                    .unwrap_or_default();
                project
                    .poetry_groups
                    .insert(group.clone(), deps.into_iter().collect());
            }
        }
    }
    Ok(project)
}

/// A dependency group's requirements, `{include-group = "…"}` entries expanded.
fn expand_group(
    groups: &toml::Table,
    name: &str,
    seen: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    if seen.iter().any(|s| s == name) {
        return Err(format!("[dependency-groups] {name} includes itself"));
    }
    seen.push(name.to_string());
    let items = groups
        .get(name)
        .and_then(|g| g.as_array())
        .ok_or_else(|| format!("[dependency-groups] has no group {name}"))?;
    let mut out = Vec::new();
    for item in items {
        match item {
            toml::Value::String(requirement) => out.push(requirement.clone()),
            toml::Value::Table(table) => {
                match table.get("include-group").and_then(|g| g.as_str()) {
                    Some(included) => out.extend(expand_group(groups, included, seen)?),
                    None => return Err(format!("[dependency-groups] {name} holds {item}")),
                }
            }
            other => return Err(format!("[dependency-groups] {name} holds {other}")),
        }
    }
    seen.pop();
    Ok(out)
}

impl Project {
    /// Fails when `requires-python` excludes `version`.
    pub fn check_python(&self, version: &PythonVersion) -> Result<(), DeployError> {
        let Some(requires) = &self.requires_python else {
            return Ok(());
        };
        super::check_python(&self.path, requires, version)
    }

    /// The requirement lines of `[project] dependencies` plus the selected extras and
    /// dependency groups.
    pub fn requirements(&self, selected: &[String]) -> Result<Lines, DeployError> {
        let mut lines = self.dependencies.clone();
        for name in selected {
            let wanted = self.optional.get(name).or_else(|| self.groups.get(name));
            match wanted {
                Some(more) => lines.extend(more.iter().cloned()),
                None => return Err(self.unknown_group(name)),
            }
        }
        let selected_text = match selected.is_empty() {
            true => String::new(),
            false => format!(" with {}", selected.join(", ")),
        };
        Ok(Lines {
            summary: format!(
                "{} from pyproject.toml's [project] dependencies{selected_text}, resolved by the \
                 installer",
                crate::ground::logging::plural(lines.len(), "requirement")
            ),
            lines,
        })
    }

    /// The error for a group or extra the project does not declare.
    pub fn unknown_group(&self, name: &str) -> DeployError {
        let mut available: Vec<String> = self
            .optional
            .keys()
            .chain(self.groups.keys())
            .chain(self.poetry_groups.keys())
            .cloned()
            .collect();
        available.sort();
        available.dedup();
        PythonError::UnknownDependencyGroup {
            group: name.to_string(),
            file: self.path.display().to_string(),
            available,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pyproject.toml");
        std::fs::write(&path, text).unwrap();
        read(&path).unwrap()
    }

    #[test]
    fn reads_dependencies_extras_and_groups() {
        let p = project(
            "[project]\nname = \"app\"\nrequires-python = \">=3.10\"\ndependencies = [\"flask>=3\"]\n\
             [project.optional-dependencies]\nfast = [\"ujson\"]\n\
             [dependency-groups]\ntest = [\"pytest\"]\ndev = [{include-group = \"test\"}, \"ruff\"]\n",
        );
        assert_eq!(p.requirements(&[]).unwrap().lines, ["flask>=3"]);
        assert_eq!(
            p.requirements(&["fast".into(), "dev".into()])
                .unwrap()
                .lines,
            ["flask>=3", "ujson", "pytest", "ruff"]
        );
        let unknown = p.requirements(&["docs".into()]).unwrap_err().explain();
        assert!(unknown.what.contains("docs"), "{}", unknown.what);
        assert!(unknown.fix.contains("dev, fast, test"), "{}", unknown.fix);
    }

    #[test]
    fn requires_python_is_checked_against_the_interpreter() {
        let p = project("[project]\nname = \"app\"\nrequires-python = \">=3.12\"\n");
        let old = PythonVersion::parse("3.11.7").unwrap();
        let why = p.check_python(&old).unwrap_err().explain();
        assert!(
            why.what.contains(">=3.12") && why.what.contains("3.11.7"),
            "{}",
            why.what
        );
        assert!(
            p.check_python(&PythonVersion::parse("3.12.1").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn knows_a_poetry_project() {
        let p = project(
            "[tool.poetry]\nname = \"app\"\n[tool.poetry.dependencies]\npython = \"^3.11\"\nflask = \"^3.0\"\n[tool.poetry.group.dev.dependencies]\npytest = \"*\"\n",
        );
        assert!(p.is_poetry && !p.has_project_table);
        assert_eq!(p.poetry_dependencies.keys().collect::<Vec<_>>(), ["flask"]);
        assert!(p.poetry_groups.contains_key("dev"));
    }
}
