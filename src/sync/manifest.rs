//! KuduSync's deployment manifest: the files and folders a deployment put into the target.
//!
//! Plain text, one path per line, relative to the source root, files and folders alike. Node
//! KuduSync writes `/`-separated lines on Linux with no final newline and trims each line when
//! reading; KuduSync.NET writes `\`-separated lines on Windows and compares them ignoring case.
//! We read either (both separators, trimmed, case-insensitive) and write the platform's form.
//!
//! A manifest decides what a sync may delete, so a hostile or corrupt one must not reach outside
//! the target: lines that are absolute, climb out with `..`, or hold a NUL are refused (kept in
//! [`Manifest::refused`] for the log) and never match anything.

use std::collections::HashSet;
use std::path::Path;

use crate::settings::Platform;

/// Kudu's placeholder page, listed by the stock manifest of a site's first deployment.
pub const HOSTING_START: &str = "hostingstart.html";

/// The set of paths a previous deployment wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Lower-cased, `/`-separated, relative.
    entries: HashSet<String>,
    /// Lines that could reach outside the target, with why: never matched.
    pub refused: Vec<Refused>,
}

/// A manifest line that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub entry: String,
    pub reason: &'static str,
}

impl Manifest {
    /// Parses manifest text written by KuduSync (either flavour) or by kuduhook.
    pub fn parse(text: &str) -> Manifest {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut manifest = Manifest::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match key(line) {
                Ok(key) if !key.is_empty() => {
                    manifest.entries.insert(key);
                }
                Ok(_) => {}
                Err(reason) => manifest.refused.push(Refused {
                    line: index + 1,
                    // Control characters shown escaped; a Windows path's backslashes as they are.
                    entry: line
                        .chars()
                        .map(|c| match c.is_control() {
                            true => c.escape_debug().to_string(),
                            false => c.to_string(),
                        })
                        .collect(),
                    reason,
                }),
            }
        }
        manifest
    }

    /// Reads a manifest; `Ok(None)` when there is none (a first deployment).
    pub fn read(path: &Path) -> std::io::Result<Option<Manifest>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(Manifest::parse(&String::from_utf8_lossy(&bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stock manifest Kudu gives a site's first deployment: just the placeholder page.
    pub fn first_deployment() -> Manifest {
        Manifest::parse(HOSTING_START)
    }

    /// Whether a `/`-separated relative path is listed (ignoring case, as KuduSync does).
    pub fn contains(&self, relative: &str) -> bool {
        key(relative).is_ok_and(|k| self.entries.contains(&k))
    }

    /// The listed paths (lower-cased, `/`-separated), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A manifest read as text and parsed the first time the whole set is asked for: a sync
/// planned from git's diff asks only about the paths that changed, in the text, and a
/// manifest of 100,000 lines takes tens of milliseconds to parse.
#[derive(Debug)]
pub struct Lazy<'a> {
    text: Option<&'a [u8]>,
    /// What it is without text.
    absent: fn() -> Manifest,
    parsed: std::cell::OnceCell<Manifest>,
}

impl<'a> Lazy<'a> {
    /// The manifest `text`, or `absent()` when there is none.
    pub fn new(text: Option<&'a [u8]>, absent: fn() -> Manifest) -> Lazy<'a> {
        Lazy {
            text,
            absent,
            parsed: Default::default(),
        }
    }

    /// A manifest parsed already.
    pub fn parsed(manifest: Manifest) -> Lazy<'a> {
        Lazy {
            text: None,
            absent: Manifest::default,
            parsed: manifest.into(),
        }
    }

    /// The manifest, parsed.
    pub fn get(&self) -> &Manifest {
        self.parsed.get_or_init(|| match self.text {
            Some(text) => Manifest::parse(&String::from_utf8_lossy(text)),
            None => (self.absent)(),
        })
    }
}

/// The comparable form of a relative path, or why it is refused.
fn key(path: &str) -> Result<String, &'static str> {
    if path.contains('\0') {
        return Err("it contains a NUL character");
    }
    let bytes = path.as_bytes();
    let has_drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if path.starts_with(['/', '\\']) || has_drive {
        return Err("it is an absolute path");
    }
    // The common line (ASCII, `/`-separated, no empty, `.` or `..` parts) needs only
    // lower-casing: a manifest can hold 100,000 of them.
    let plain = path.is_ascii()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    if plain {
        return Ok(path.to_ascii_lowercase());
    }
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err("it climbs out of the target with '..'"),
            part => parts.push(part.to_lowercase()),
        }
    }
    Ok(parts.join("/"))
}

/// Renders `/`-separated paths as manifest text for `platform`.
pub fn render(paths: &[String], platform: Platform) -> String {
    let mut text = String::new();
    for path in paths {
        match platform {
            Platform::Linux => text.push_str(path),
            Platform::Windows => text.push_str(&path.replace('/', "\\")),
        }
        text.push('\n');
    }
    text
}

/// Writes a manifest atomically: a reader sees the old one or the new one, never half. Not
/// fsynced: after a power cut a manifest can at worst be empty, and an empty previous manifest
/// only means nothing is deleted (the safe side).
pub fn write(path: &Path, paths: &[String], platform: Platform) -> std::io::Result<()> {
    write_text(path, render(paths, platform).as_bytes())
}

/// Writes manifest text made by [`render`], atomically, as [`write`] does.
pub fn write_text(path: &Path, text: &[u8]) -> std::io::Result<()> {
    crate::ground::paths::write_atomically_in_place(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_kudusync_flavours() {
        // Node kudusync on Linux: `/`, no final newline.
        let node = Manifest::parse("app.py\nstatic\nstatic/site.css");
        // KuduSync.NET on Windows: `\`, CRLF.
        let net = Manifest::parse("App.py\r\nstatic\r\nstatic\\Site.css\r\n");
        for m in [&node, &net] {
            assert!(m.contains("app.py"));
            assert!(m.contains("static/site.css"));
            assert!(m.contains("STATIC"));
            assert!(!m.contains("static/other.css"));
        }
        assert_eq!(node, net);
        // Names beyond ASCII are compared ignoring case too.
        assert!(Manifest::parse("Über/Straße.PY").contains("über/straße.py"));
    }

    #[test]
    fn lines_that_could_leave_the_target_are_refused() {
        let m = Manifest::parse(
            "ok.py\n/etc/passwd\n..\\outside\na/../../b\nC:\\x\nnul\0x\n./sub//c.py\n",
        );
        assert!(m.contains("ok.py"));
        assert!(m.contains("sub/c.py"));
        assert_eq!(m.len(), 2);
        let lines: Vec<(usize, &str)> = m.refused.iter().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            lines,
            vec![
                (2, "it is an absolute path"),
                (3, "it climbs out of the target with '..'"),
                (4, "it climbs out of the target with '..'"),
                (5, "it is an absolute path"),
                (6, "it contains a NUL character"),
            ]
        );
        assert!(!m.contains("etc/passwd"));
        assert_eq!(m.refused[4].entry, "nul\\0x");
    }

    #[test]
    fn writes_the_platform_form() {
        let paths = vec!["static".to_string(), "static/site.css".to_string()];
        assert_eq!(render(&paths, Platform::Linux), "static\nstatic/site.css\n");
        assert_eq!(
            render(&paths, Platform::Windows),
            "static\nstatic\\site.css\n"
        );
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployments/abc/manifest");
        write(
            &path,
            &["a.py".into(), "pkg".into(), "pkg/b.py".into()],
            Platform::Linux,
        )
        .unwrap();
        let read = Manifest::read(&path).unwrap().unwrap();
        assert_eq!(read.len(), 3);
        assert!(read.contains("pkg/b.py"));
        assert_eq!(Manifest::read(&dir.path().join("none")).unwrap(), None);
    }
}
