//! Python versions and interpreters: parsing the ways a repository declares its version
//! (`runtime.txt`, `.python-version`, the `PYTHON_VERSION` setting) and asking a real
//! interpreter what it is.

pub mod closure;
pub mod dependencies;
pub mod error;
pub mod metadata;
pub mod packages;
pub mod requirements;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The oldest Python kuduhook builds envs for: `venv` with `ensurepip` works from here on, and
/// App Service once shipped it.
pub const MIN_SUPPORTED: (u32, u32) = (3, 6);

/// A Python version, `X.Y` or `X.Y.Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PythonVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "{}.{}.{}", self.major, self.minor, patch),
            None => write!(f, "{}.{}", self.major, self.minor),
        }
    }
}

impl PythonVersion {
    /// Parses `X.Y` or `X.Y.Z` (digits only).
    pub fn parse(text: &str) -> Option<PythonVersion> {
        let parts: Vec<&str> = text.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        Some(PythonVersion {
            major: number(parts[0])?,
            minor: number(parts[1])?,
            patch: match parts.get(2) {
                Some(p) => Some(number(p)?),
                None => None,
            },
        })
    }

    /// `X.Y`, without the patch.
    pub fn minor_version(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// Whether kuduhook can build an env for this version.
    pub fn is_supported(&self) -> bool {
        self.major == MIN_SUPPORTED.0 && self.minor >= MIN_SUPPORTED.1
    }

    /// Whether an interpreter of version `actual` satisfies this request: same `X.Y`, and the
    /// same patch when one was asked for.
    pub fn is_satisfied_by(&self, actual: &PythonVersion) -> bool {
        self.major == actual.major
            && self.minor == actual.minor
            && self.patch.is_none_or(|p| Some(p) == actual.patch)
    }
}

/// A version declaration that could not be read: which line, what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarationError {
    pub line: usize,
    pub value: String,
}

/// A version read from a file, with the line it was on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub version: PythonVersion,
    pub line: usize,
}

/// Reads `runtime.txt`: one line `python-X.Y` or `python-X.Y.Z`. Unlike Kudu's own selector it
/// tolerates a UTF-8 BOM, surrounding whitespace, CRLF and blank lines.
pub fn parse_runtime_txt(bytes: &[u8]) -> Result<Declared, DeclarationError> {
    parse_declaration(bytes, false, |value| {
        value.strip_prefix("python-").and_then(PythonVersion::parse)
    })
}

/// Reads `.python-version`: one `X.Y` or `X.Y.Z`; `#` comments and blank lines are allowed.
pub fn parse_python_version_file(bytes: &[u8]) -> Result<Declared, DeclarationError> {
    parse_declaration(bytes, true, PythonVersion::parse)
}

/// A version file's single entry, read with `parse`: a BOM, blank lines and surrounding
/// whitespace are ignored (and `#` comments, when `comments`); exactly one entry may remain.
fn parse_declaration(
    bytes: &[u8],
    comments: bool,
    parse: impl Fn(&str) -> Option<PythonVersion>,
) -> Result<Declared, DeclarationError> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut entries = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if comments {
                l.split('#').next().unwrap_or("")
            } else {
                l
            };
            (i + 1, l.trim())
        })
        .filter(|(_, l)| !l.is_empty());
    let error = |line: usize, value: &str| DeclarationError {
        line,
        value: value.to_string(),
    };
    let Some((line, value)) = entries.next() else {
        return Err(error(1, ""));
    };
    // A second entry is an error: which one did the user mean?
    if let Some((extra_line, extra)) = entries.next() {
        return Err(error(extra_line, extra));
    }
    parse(value)
        .map(|version| Declared { version, line })
        .ok_or_else(|| error(line, value))
}

/// Reads a `PYTHON_VERSION` setting or `--python` value: `X.Y[.Z]`, or runtime.txt's
/// `python-X.Y[.Z]` form.
pub fn parse_setting(value: &str) -> Option<PythonVersion> {
    let value = value.trim();
    PythonVersion::parse(value.strip_prefix("python-").unwrap_or(value))
}

/// An interpreter that was run and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// What it reports as `sys.executable`: the real binary, even when found through a shim.
    pub path: PathBuf,
    pub version: PythonVersion,
}

/// Runs `path` and asks for its version and real location.
///
/// `-E -s` keep `PYTHON*` variables and the user's site folder out, and are understood by every
/// Python from 2.7 on, so even an unsupported interpreter can be named in an error. It runs in
/// the interpreter's own folder: a pyenv shim picks its version from the `.python-version` of
/// the current folder, and the repository's own must not decide what a shim runs.
/// The PEP 508 marker values of the interpreter at `path` (what dependencies' markers are
/// evaluated against), asked of it once and kept in `cache` under a name made of its path,
/// size and modification time (an interpreter replaced in place is asked again): a lock app's
/// unchanged redeploy, or the pruning of a reused env, then runs no Python for them.
pub fn marker_environment(
    path: &Path,
    cache: &Path,
) -> Result<pep508_rs::MarkerEnvironment, String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    let mut key = Sha256::new();
    key.update(path.to_string_lossy().as_bytes());
    key.update(meta.len().to_le_bytes());
    key.update(modified.map(|d| d.as_nanos()).unwrap_or(0).to_le_bytes());
    let key = crate::ground::digest::hex(&key.finalize()[..8]);
    let cached = cache.join(format!("markers-{key}.json"));
    if let Ok(text) = std::fs::read_to_string(&cached)
        && let Ok(markers) = crate::python::closure::parse_marker_environment(&text)
    {
        return Ok(markers);
    }
    let neutral = path
        .parent()
        .filter(|p| p.is_dir())
        .unwrap_or(Path::new("/"));
    let output = Command::new(path)
        .current_dir(neutral)
        .args([
            "-E",
            "-s",
            "-c",
            crate::python::closure::MARKER_ENVIRONMENT_SCRIPT,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} could not be run: {e}", path.display()))?;
    if !output.status.success() {
        return Err(format!("{} exited with {}", path.display(), output.status));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    let markers = crate::python::closure::parse_marker_environment(&json)?;
    if std::fs::create_dir_all(cache).is_ok() {
        let _ = crate::ground::paths::write_atomically(&cached, json.trim().as_bytes());
    }
    Ok(markers)
}

/// Runs the interpreter at `path` and asks its version and `sys.executable`: that it runs at
/// all (the binary, its standard library, a venv's `pyvenv.cfg`) is what callers check.
///
/// Without `site` (`-S`): importing it lists site-packages and reads every `.pth` file there,
/// which for an env on App Service's share is a round trip each (measured on the test share at
/// 1 ms: 50 ms with `site`, 17 ms without); neither the version nor whether the interpreter
/// runs depends on it.
pub fn probe(path: &Path) -> Result<Interpreter, String> {
    let neutral = path
        .parent()
        .filter(|p| p.is_dir())
        .unwrap_or(Path::new("/"));
    let output = Command::new(path)
        .current_dir(neutral)
        .args([
            "-E",
            "-s",
            "-S",
            "-c",
            "import sys; print('%d.%d.%d' % tuple(sys.version_info[:3])); print(sys.executable)",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("exited with {}: {}", output.status, first.trim()));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let version = lines
        .next()
        .and_then(PythonVersion::parse)
        .ok_or_else(|| format!("answered {:?} instead of its version", stdout.trim()))?;
    let executable = lines.next().map(str::trim).filter(|s| !s.is_empty());
    Ok(Interpreter {
        path: executable.map_or_else(|| path.to_path_buf(), PathBuf::from),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> PythonVersion {
        PythonVersion::parse(text).unwrap()
    }

    #[test]
    fn runtime_txt_tolerates_bom_whitespace_and_crlf() {
        for text in [
            "python-3.12",
            "\u{feff}python-3.12\r\n",
            "  python-3.12  \n\n",
            "\n\npython-3.12",
        ] {
            let declared = parse_runtime_txt(text.as_bytes()).unwrap();
            assert_eq!(declared.version, v("3.12"), "{text:?}");
        }
        assert_eq!(
            parse_runtime_txt(b"\n\npython-3.11.7\n").unwrap(),
            Declared {
                version: v("3.11.7"),
                line: 3
            }
        );
    }

    #[test]
    fn runtime_txt_rejects_other_syntax_naming_the_line() {
        for (text, line, value) in [
            ("python3.12", 1, "python3.12"),
            ("3.12", 1, "3.12"),
            ("python-3", 1, "python-3"),
            ("python-3.12.1.4", 1, "python-3.12.1.4"),
            ("python-3.x", 1, "python-3.x"),
            ("python-3.12\npython-3.11", 2, "python-3.11"),
            ("", 1, ""),
        ] {
            assert_eq!(
                parse_runtime_txt(text.as_bytes()),
                Err(DeclarationError {
                    line,
                    value: value.into()
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn python_version_file_allows_comments() {
        let declared = parse_python_version_file(b"# pinned for prod\n\n3.11  # lts\n").unwrap();
        assert_eq!(declared.version, v("3.11"));
        assert_eq!(declared.line, 3);
        assert!(parse_python_version_file(b"3.11\n3.12\n").is_err());
        assert!(parse_python_version_file(b"pypy3.10\n").is_err());
        assert!(parse_python_version_file(b"system\n").is_err());
    }

    #[test]
    fn settings_accept_both_forms() {
        assert_eq!(parse_setting(" 3.12 "), Some(v("3.12")));
        assert_eq!(parse_setting("python-3.12.1"), Some(v("3.12.1")));
        assert_eq!(parse_setting("latest"), None);
    }

    #[test]
    fn support_and_satisfaction() {
        assert!(v("3.6").is_supported());
        assert!(v("3.13").is_supported());
        assert!(!v("2.7").is_supported());
        assert!(!v("3.5").is_supported());
        assert!(!v("4.0").is_supported());
        assert!(v("3.12").is_satisfied_by(&v("3.12.1")));
        assert!(v("3.12.1").is_satisfied_by(&v("3.12.1")));
        assert!(!v("3.12.2").is_satisfied_by(&v("3.12.1")));
        assert!(!v("3.12").is_satisfied_by(&v("3.11.7")));
    }
}
