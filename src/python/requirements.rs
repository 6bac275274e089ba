//! The app's requirements files read the way pip reads them (continuation lines, comments,
//! `${VAR}`, `-r`/`-c` includes, options, per-requirement options), reduced to what the env
//! must hold: its roots. A root is a project name with extras and markers, or a URL or path
//! that names its project only once installed (pip records it in `direct_url.json`).
//!
//! Exact reuse (the `closure` module) starts from these roots. Anything this reader does not
//! understand is returned as the reason reuse is unproven, so the deployment builds a fresh
//! env instead: never a wrong one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pep508_rs::{MarkerTree, PackageName, Requirement, VerbatimUrl};

/// One thing the requirements ask the env to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `flask[async] >= 3 ; python_version >= "3.9"`, `name @ https://…`, `-e …#egg=name`,
    /// `./dist/name-1.0-py3-none-any.whl`.
    Named(Requirement<VerbatimUrl>),
    /// `./libs/mine`, `https://host/pkg.tar.gz`, `git+https://…` without a name: the
    /// installed project whose recorded URL is this one.
    Unnamed { url: String },
}

/// The roots of `main` and every file it includes with `-r` (constraint files add none).
/// Relative paths of requirements are taken from `cwd`, where the installer runs; `-r` paths
/// from the including file's folder, as pip does. `var` gives the environment's variables.
/// `Err` says why reuse is unproven.
pub fn roots(
    main: &Path,
    cwd: &Path,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Root>, String> {
    let mut roots = Vec::new();
    let mut seen = BTreeSet::new();
    let mut files = vec![main.to_path_buf()];
    while let Some(file) = files.pop() {
        if !seen.insert(crate::ground::paths::normalize(&file)) {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("{} could not be read: {e}", file.display()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        for (number, line) in logical_lines(&text) {
            let line = expand_vars(&line, var);
            let at = || format!("{} line {number}", file.display());
            match parse_line(&line).map_err(|why| format!("{}: {why}", at()))? {
                Line::Include(path) => files.push(dir.join(path)),
                Line::Constraints(_) | Line::Option => {}
                Line::Requirement(text) => {
                    roots.push(root(&text, cwd).map_err(|why| format!("{}: {why}", at()))?)
                }
                Line::Editable(text) => roots.push(editable(&text, cwd)),
            }
        }
    }
    Ok(roots)
}

/// What one logical line of a requirements file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// `-r FILE`, `--requirement FILE`.
    Include(String),
    /// `-c FILE`, `--constraint FILE`.
    Constraints(String),
    /// `-e PATH-OR-URL`.
    Editable(String),
    /// An option for the whole install (`--index-url …`, `--pre`, …).
    Option,
    /// A requirement, its per-requirement options (`--hash=…`) removed.
    Requirement(String),
}

/// The file's logical lines with their first line numbers: continuation lines (`\` at the end)
/// joined, comments (`#` at the start or after whitespace) and blank lines removed.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (number, mut line) = match pending.take() {
            Some((number, joined)) => (number, joined + raw),
            None => (index + 1, raw.to_string()),
        };
        if let Some(stripped) = line.strip_suffix('\\') {
            pending = Some((number, stripped.to_string()));
            continue;
        }
        if let Some(at) = comment_start(&line) {
            line.truncate(at);
        }
        let line = line.trim();
        if !line.is_empty() {
            lines.push((number, line.to_string()));
        }
    }
    if let Some((number, line)) = pending {
        let line = line.trim().to_string();
        if !line.is_empty() {
            lines.push((number, line));
        }
    }
    lines
}

fn comment_start(line: &str) -> Option<usize> {
    if line.trim_start().starts_with('#') {
        return Some(0);
    }
    line.char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && line[..i].ends_with(char::is_whitespace))
        .map(|(i, _)| i)
}

/// `${NAME}` replaced by the variable's value, as pip does (names of capitals, digits, `_`).
fn expand_vars(line: &str, var: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        match var(name) {
            Some(value) if valid => out.push_str(&value),
            _ => out.push_str(&rest[start..start + 3 + len]),
        }
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// Options pip accepts for the whole install, with whether each takes a value.
const GLOBAL_OPTIONS: [(&str, bool); 14] = [
    ("-i", true),
    ("--index-url", true),
    ("--extra-index-url", true),
    ("-f", true),
    ("--find-links", true),
    ("--no-index", false),
    ("--pre", false),
    ("--prefer-binary", false),
    ("--only-binary", true),
    ("--no-binary", true),
    ("--trusted-host", true),
    ("--require-hashes", false),
    ("--use-feature", true),
    ("--config-settings", true),
];

/// Classifies one logical line.
pub fn parse_line(line: &str) -> Result<Line, String> {
    if !line.starts_with('-') {
        // Per-requirement options follow the requirement after whitespace.
        let end = line
            .match_indices(" --")
            .chain(line.match_indices("\t--"))
            .map(|(i, _)| i)
            .min()
            .unwrap_or(line.len());
        return Ok(Line::Requirement(line[..end].trim().to_string()));
    }
    let (option, value) = split_option(line);
    let value = || {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{option} needs a value"))
    };
    match option.as_str() {
        "-r" | "--requirement" => Ok(Line::Include(value()?)),
        "-c" | "--constraint" => Ok(Line::Constraints(value()?)),
        "-e" | "--editable" => Ok(Line::Editable(value()?)),
        _ => match GLOBAL_OPTIONS.iter().find(|(name, _)| *name == option) {
            Some(_) => Ok(Line::Option),
            None => Err(format!(
                "the option {option} is not one kuduhook can follow"
            )),
        },
    }
}

/// `--opt=value`, `--opt value`, `-rvalue`, `-r value` into the option and its value.
fn split_option(line: &str) -> (String, Option<String>) {
    if let Some((option, value)) = line
        .split_once('=')
        .filter(|(o, _)| o.starts_with("--") && !o.contains(' '))
    {
        return (option.to_string(), Some(value.trim().to_string()));
    }
    let (option, value) = match line.split_once(char::is_whitespace) {
        Some((option, value)) => (option, Some(value.trim().to_string())),
        None => (line, None),
    };
    if !option.starts_with("--") && option.len() > 2 {
        // `-rfile`
        return (option[..2].to_string(), Some(option[2..].to_string()));
    }
    (option.to_string(), value)
}

/// The root a requirement line asks for.
fn root(text: &str, cwd: &Path) -> Result<Root, String> {
    if let Ok(requirement) = Requirement::<VerbatimUrl>::parse(text, cwd) {
        return Ok(Root::Named(requirement));
    }
    if text.contains(';') {
        return Err(format!(
            "{text:?} is neither a requirement nor a plain URL or path"
        ));
    }
    Ok(unnamed(text, cwd))
}

/// The root of `-e PATH-OR-URL`.
fn editable(text: &str, cwd: &Path) -> Root {
    unnamed(text, cwd)
}

/// A URL or path: named by `#egg=` or its wheel's file name, else by what gets installed.
fn unnamed(text: &str, cwd: &Path) -> Root {
    let (location, fragment) = text.split_once('#').unwrap_or((text, ""));
    let egg = fragment
        .split('&')
        .find_map(|part| part.strip_prefix("egg="))
        .and_then(|egg| PackageName::from_str(egg).ok());
    let wheel = location
        .rsplit(['/', '\\'])
        .next()
        .and_then(|file| file.strip_suffix(".whl"))
        .and_then(|stem| stem.split('-').next())
        .and_then(|name| PackageName::from_str(name).ok());
    if let Some(name) = egg.or(wheel) {
        return Root::Named(Requirement {
            name,
            extras: Vec::new(),
            version_or_url: None,
            marker: MarkerTree::TRUE,
            origin: None,
        });
    }
    Root::Unnamed {
        url: canonical_url(location, cwd),
    }
}

/// A location as pip records it in `direct_url.json`: absolute `file://` URLs for paths, VCS
/// URLs without their `git+` prefix, no trailing slash.
pub fn canonical_url(location: &str, cwd: &Path) -> String {
    let location = location.trim_end_matches('/');
    if let Some((scheme, rest)) = location.split_once("://") {
        let vcs = scheme.contains('+');
        let scheme = scheme.rsplit('+').next().unwrap_or(scheme);
        let mut rest = rest;
        // A VCS URL's `@ref` (after the host) is recorded apart from its URL.
        if vcs
            && let Some(slash) = rest.find('/')
            && let Some(at) = rest[slash..].rfind('@')
        {
            rest = &rest[..slash + at];
        }
        return format!("{scheme}://{rest}");
    }
    let path = location.strip_prefix("file:").unwrap_or(location);
    let absolute: PathBuf = crate::ground::paths::normalize(&cwd.join(path));
    let absolute = absolute.canonicalize().unwrap_or(absolute);
    format!(
        "file://{}",
        absolute.to_string_lossy().trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_vars(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn joins_continuations_and_strips_comments() {
        let text = "# top\nflask \\\n  >=3.0  # web\n\nurl#frag\n  \nlast \\\n";
        assert_eq!(
            logical_lines(text),
            [
                (2, "flask   >=3.0".to_string()),
                (5, "url#frag".to_string()),
                (7, "last".to_string())
            ]
        );
    }

    #[test]
    fn classifies_options_like_pip() {
        assert_eq!(
            parse_line("-r base.txt"),
            Ok(Line::Include("base.txt".into()))
        );
        assert_eq!(
            parse_line("-rbase.txt"),
            Ok(Line::Include("base.txt".into()))
        );
        assert_eq!(
            parse_line("--requirement=b.txt"),
            Ok(Line::Include("b.txt".into()))
        );
        assert_eq!(
            parse_line("-c pins.txt"),
            Ok(Line::Constraints("pins.txt".into()))
        );
        assert_eq!(parse_line("--index-url https://x/simple"), Ok(Line::Option));
        assert_eq!(parse_line("--pre"), Ok(Line::Option));
        assert_eq!(parse_line("-e ./lib"), Ok(Line::Editable("./lib".into())));
        assert_eq!(
            parse_line("attrs==24.2.0 --hash=sha256:abc --hash=sha256:def"),
            Ok(Line::Requirement("attrs==24.2.0".into()))
        );
        assert!(
            parse_line("--frobnicate")
                .unwrap_err()
                .contains("--frobnicate")
        );
        assert!(parse_line("-r").is_err());
    }

    #[test]
    fn expands_only_pips_variable_form() {
        let var = |name: &str| (name == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            expand_vars("https://${TOKEN}@h/${lower}/$TOKEN", &var),
            "https://s3cret@h/${lower}/$TOKEN"
        );
    }

    #[test]
    #[cfg(unix)] // Unix paths; exact reuse is not offered on Windows
    fn names_roots_from_requirements_urls_and_wheels() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        std::fs::create_dir(app.join("req")).unwrap();
        std::fs::write(
            app.join("requirements.txt"),
            "Flask[async]>=3 ; python_version >= '3.8'\n-r req/more.txt\n-c req/pins.txt\n\
             -e git+https://github.com/o/r.git@v1#egg=Mine_Pkg\n./wheels/zest_x-1.0-py3-none-any.whl\n\
             ./libs/local\n",
        )
        .unwrap();
        std::fs::write(
            app.join("req/more.txt"),
            "requests @ https://h/requests-2.0.tar.gz\n-r ../requirements.txt\n",
        )
        .unwrap();
        std::fs::write(app.join("req/pins.txt"), "flask==3.0\n").unwrap();
        let roots = roots(&app.join("requirements.txt"), app, &no_vars).unwrap();
        let names: Vec<String> = roots
            .iter()
            .map(|r| match r {
                Root::Named(r) => format!("{}{:?}", r.name, r.extras),
                Root::Unnamed { url } => url.replace(
                    &app.canonicalize().unwrap().to_string_lossy().to_string(),
                    "APP",
                ),
            })
            .collect();
        assert_eq!(
            names,
            [
                "flask[ExtraName(\"async\")]",
                "mine-pkg[]",
                "zest-x[]",
                "file://APP/libs/local",
                "requests[]",
            ]
        );
    }

    #[test]
    fn an_unreadable_line_makes_reuse_unproven() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.txt"), "ok\n--weird-option x\n").unwrap();
        let why = roots(&dir.path().join("r.txt"), dir.path(), &no_vars).unwrap_err();
        assert!(
            why.ends_with("r.txt line 2: the option --weird-option is not one kuduhook can follow"),
            "{why}"
        );
    }

    #[test]
    #[cfg(unix)] // Unix paths; exact reuse is not offered on Windows
    fn vcs_and_paths_are_written_as_pip_records_them() {
        let cwd = Path::new("/app");
        assert_eq!(
            canonical_url("git+https://github.com/o/r.git@v1", cwd),
            "https://github.com/o/r.git"
        );
        assert_eq!(
            canonical_url("https://h/p.tar.gz", cwd),
            "https://h/p.tar.gz"
        );
        assert_eq!(canonical_url("./libs/x/", cwd), "file:///app/libs/x");
    }
}
