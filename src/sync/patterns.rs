//! Path patterns as KuduSync's `-i` reads them: `;`-separated globs, case-insensitive.
//!
//! A pattern without `/` matches an entry's name at any depth (`.git`, `*.pyc`); one with `/`
//! matches the path from the root (`static/cache`, `docs/**/*.md`). This is node KuduSync's
//! `minimatch(path, pattern, {matchBase: true, nocase: true})`. Used for the ignore list and the
//! full-compare list.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled list of patterns.
#[derive(Debug, Clone)]
pub struct Patterns {
    names: GlobSet,
    paths: GlobSet,
    /// The patterns as given, for the log.
    shown: Vec<String>,
}

impl Default for Patterns {
    fn default() -> Self {
        Patterns {
            names: GlobSet::empty(),
            paths: GlobSet::empty(),
            shown: Vec::new(),
        }
    }
}

impl Patterns {
    /// Compiles `entries`; a pattern that is not a valid glob is returned as the error.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Patterns, String> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let mut shown = Vec::new();
        for entry in entries {
            let raw = entry.as_ref().trim();
            let pattern = raw.replace('\\', "/");
            let pattern = pattern.trim_matches('/');
            if pattern.is_empty() {
                continue;
            }
            let glob = glob(pattern).map_err(|_| raw.to_string())?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
            shown.push(raw.to_string());
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| e.to_string());
        Ok(Patterns {
            names: build(names)?,
            paths: build(paths)?,
            shown,
        })
    }

    /// Whether the entry `name` at `relative` (`/`-separated, from the root) matches.
    pub fn matches(&self, relative: &str, name: &str) -> bool {
        (!self.names.is_empty() && self.names.is_match(name))
            || (!self.paths.is_empty() && self.paths.is_match(relative))
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// The patterns as given.
    pub fn shown(&self) -> &[String] {
        &self.shown
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
}

/// KuduSync's `-i` syntax: entries separated by `;`, blanks dropped.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_kudusync() {
        let list = Patterns::new(&[".git", "*.PYC", "static/cache", "docs/**/*.md", " "]).unwrap();
        assert!(list.matches(".git", ".git"));
        assert!(list.matches("sub/.GIT", ".GIT"));
        assert!(list.matches("pkg/mod.pyc", "mod.pyc"));
        assert!(list.matches("static/cache", "cache"));
        assert!(!list.matches("other/cache", "cache"));
        assert!(list.matches("docs/a/b/readme.MD", "readme.MD"));
        assert!(!list.matches("app.py", "app.py"));
        assert_eq!(list.shown().len(), 4);
    }

    #[test]
    fn a_bad_glob_is_named() {
        assert_eq!(Patterns::new(&["ok", "[oops"]).unwrap_err(), "[oops");
    }

    #[test]
    fn lists_split_on_semicolons() {
        assert_eq!(split_list(" a; ;*.pyc;"), vec!["a", "*.pyc"]);
    }
}
