//! The docs stand alone: every relative link in the repository's Markdown files (the README,
//! `docs/`, the example's and `deploy/`'s pages) lands on a file or folder inside the
//! repository, and each `#anchor` on a heading of the page it names. A clone anywhere has no
//! dead link.

use std::path::{Path, PathBuf};

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    folders.push(path);
                }
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The targets of `[text](target)` links in `text`, outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Code spans hold examples, not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's anchor for a heading: lower case, spaces to '-', punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A page's anchors: its headings', and each `<a id="…">`.
fn anchors(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let mut found: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    for piece in text.split("<a id=\"").skip(1) {
        found.extend(piece.split('"').next().map(str::to_string));
    }
    found
}

#[test]
fn every_relative_link_in_the_docs_lands_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let pages = markdown_files(&root);
    assert!(pages.len() >= 10, "{pages:?}");
    let mut dead = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match link.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let relative = page.strip_prefix(&root).unwrap().display();
            let Ok(target) = target.canonicalize() else {
                dead.push(format!("{relative}: {link} (no such file)"));
                continue;
            };
            if !target.starts_with(&root) {
                dead.push(format!("{relative}: {link} (outside the repository)"));
            } else if let Some(fragment) = fragment
                && target.is_file()
                && !anchors(&target).iter().any(|a| a == fragment)
            {
                dead.push(format!("{relative}: {link} (no such heading)"));
            }
        }
    }
    assert!(checked > 30, "only {checked} links checked");
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}
