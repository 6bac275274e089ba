//! The crate's layers depend one way, bottom to top, as `docs/architecture.md` draws them: no
//! file reaches another that reaches it back (an import cycle), and no import climbs from a
//! lower layer to a higher one. Read from the source's text: every `crate::` and `super::` path
//! (`use` lines, paths in code, doc links), `{a, b::C}` groups flattened. A folder's `mod.rs`
//! and its own files are one unit (an edge between a module and its ancestor or descendant does
//! not count); `lib.rs` and `main.rs`, which name everything, and unit tests are left out.
//!
//! The layers are read from the drawing in `docs/architecture.md`, so the page and the code
//! cannot drift apart: a top-level module the drawing does not name fails the test too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path ("env::archive") -> its file.
type Modules = BTreeMap<String, PathBuf>;
/// Module -> module it reaches -> the names it reaches it by.
type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Every module of the crate under `src`, by its path.
fn modules(src: &Path) -> Modules {
    let mut found = Modules::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("lib" | "main") if parts.len() == 1 => continue,
                Some("tests") => continue, // a folder's unit tests in a file of their own
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            found.insert(parts.join("::"), path);
        }
    }
    found
}

/// `{a::B, c::{d::E, F}, self}` (without its braces) -> `a::B`, `c::d::E`, `c::F`, ``.
fn flatten(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in group.chars().chain([',']) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            let item = std::mem::take(&mut current);
            let item = item.trim();
            if let Some((head, rest)) = item.split_once('{') {
                let head = head.trim().trim_end_matches("::");
                let inner = rest.trim_end().strip_suffix('}').unwrap_or(rest);
                for tail in flatten(inner) {
                    items.push(join(head, &tail));
                }
            } else if item == "self" {
                items.push(String::new());
            } else if !item.is_empty() {
                items.push(item.split(" as ").next().unwrap().trim().to_string());
            }
        } else {
            current.push(c);
        }
    }
    items
}

fn join(head: &str, tail: &str) -> String {
    match (head.is_empty(), tail.is_empty()) {
        (true, _) => tail.to_string(),
        (_, true) => head.to_string(),
        _ => format!("{head}::{tail}"),
    }
}

/// The paths `text` names from the crate's root: each `crate::…` as it is, each `super::…`
/// resolved against `module`.
fn paths_named(module: &str, text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let starts_word = at == 0 || !is_word(bytes[at - 1]);
        let (prefix, mut end) = if starts_word && rest.starts_with(b"crate::") {
            (Vec::new(), at + "crate::".len())
        } else if starts_word && rest.starts_with(b"super::") {
            let mut parts: Vec<&str> = module.split("::").collect();
            let mut end = at;
            while bytes[end..].starts_with(b"super::") {
                parts.pop();
                end += "super::".len();
            }
            (parts, end)
        } else {
            at += 1;
            continue;
        };
        // The path's segments, then an optional `{…}` group (all ASCII: slicing is safe).
        let start = end;
        while end < bytes.len() && (is_word(bytes[end]) || bytes[end..].starts_with(b"::")) {
            end += if bytes[end] == b':' { 2 } else { 1 };
        }
        let base = join(&prefix.join("::"), text[start..end].trim_end_matches("::"));
        if bytes.get(end) == Some(&b'{') {
            let mut depth = 0;
            let mut close = end;
            for (i, &b) in bytes[end..].iter().enumerate() {
                match b {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    close = end + i;
                    break;
                }
            }
            for tail in flatten(&text[end + 1..close]) {
                paths.push(join(&base, &tail));
            }
            end = close + 1;
        } else {
            paths.push(base);
        }
        at = end.max(at + 1);
    }
    paths
}

/// The module a path lands in: the longest prefix of it that is a module.
fn resolve<'a>(modules: &'a Modules, path: &str) -> Option<&'a str> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        if let Some((key, _)) = modules.get_key_value(&parts.join("::")) {
            return Some(key);
        }
        parts.pop();
    }
    None
}

/// Whether `a` is `b` or either holds the other.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// Which module reaches which, and by which names.
fn edges(modules: &Modules) -> Edges {
    let mut edges = Edges::new();
    for (module, file) in modules {
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap();
        for path in paths_named(module, code) {
            let Some(target) = resolve(modules, &path) else {
                continue;
            };
            if !related(module, target) {
                let name = path.rsplit("::").next().unwrap_or_default().to_string();
                edges
                    .entry(module.clone())
                    .or_default()
                    .entry(target.to_string())
                    .or_default()
                    .insert(name);
            }
        }
    }
    edges
}

/// The groups of modules that reach each other (Tarjan's strongly connected components of
/// more than one module), each with the edges that tie it.
fn cycles(modules: &Modules, edges: &Edges) -> Vec<String> {
    struct Walk<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flat_map(|m| m.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|m| *m == v).unwrap();
                let group = self.stack.split_off(at);
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in modules.keys() {
        if !walk.index.contains_key(module.as_str()) {
            walk.visit(module);
        }
    }
    walk.found
        .iter()
        .map(|group| {
            let mut group = group.clone();
            group.sort();
            let mut lines = vec![format!("cycle: {}", group.join(", "))];
            for a in &group {
                for (b, names) in &edges[*a] {
                    if group.contains(&b.as_str()) {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        lines.push(format!("  {a} -> {b}: {}", names.join(", ")));
                    }
                }
            }
            lines.join("\n")
        })
        .collect()
}

/// The layers `docs/architecture.md` draws, top first: each line of the drawing under "## The
/// layers" names its modules (`cli.rs`, `commands/`) before its description.
fn layers(architecture: &str) -> Vec<Vec<String>> {
    let section = architecture
        .split("## The layers")
        .nth(1)
        .expect("docs/architecture.md has a section \"The layers\"");
    let drawing = section
        .split("```")
        .nth(1)
        .expect("its drawing, in a code block");
    drawing
        .lines()
        .map(|line| {
            line.split_whitespace()
                .take_while(|word| word.ends_with(".rs") || word.ends_with('/'))
                .map(|word| {
                    word.trim_end_matches(".rs")
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect::<Vec<String>>()
        })
        .filter(|names| !names.is_empty())
        .collect()
}

/// Every import from a module to one in a higher layer, and every top-level module the
/// drawing does not place.
fn climbs(modules: &Modules, edges: &Edges, layers: &[Vec<String>]) -> Vec<String> {
    let layer_of = |module: &str| {
        let top = module.split("::").next().unwrap();
        layers
            .iter()
            .position(|layer| layer.iter().any(|m| m == top))
    };
    let mut problems: Vec<String> = modules
        .keys()
        .filter(|m| layer_of(m).is_none())
        .map(|m| format!("{m} is in no layer of the drawing"))
        .collect();
    for (from, targets) in edges {
        for (to, names) in targets {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && b < a
            {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                problems.push(format!(
                    "{from} (layer {a}) imports {to} (layer {b}, above it): {}",
                    names.join(", ")
                ));
            }
        }
    }
    problems
}

/// What is wrong with the crate under `src` against `architecture`'s drawing.
fn check(src: &Path, architecture: &str) -> Vec<String> {
    let modules = modules(src);
    let edges = edges(&modules);
    let mut problems = cycles(&modules, &edges);
    problems.extend(climbs(&modules, &edges, &layers(architecture)));
    problems
}

#[test]
fn no_import_cycle_and_no_import_climbs_the_layers_docs_architecture_draws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let drawn = layers(&architecture);
    assert!(drawn.len() >= 10, "the drawing's layers: {drawn:?}");
    let modules = modules(&root.join("src"));
    assert!(modules.len() > 50, "{} modules", modules.len());
    let edges = edges(&modules);
    assert!(
        edges["pipeline"].contains_key("steps::env")
            && edges["env::archive"].contains_key("python::closure"),
        "the check reads the crate's imports: {:?}",
        edges["pipeline"].keys()
    );
    let problems = check(&root.join("src"), &architecture);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A crate of four files with both faults: `low` reaches `high` (a climb) and `high` reaches
/// `low` (a cycle), and two files of one folder reach each other through `super::`.
#[test]
fn the_check_finds_a_cycle_and_an_import_that_climbs() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let file = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    file("lib.rs", "pub mod high;\npub mod low;\n");
    file(
        "high/mod.rs",
        "pub mod a;\npub mod b;\npub struct Top;\nuse crate::{low::{Thing, self}};\n",
    );
    file(
        "high/a.rs",
        "use super::b::B;\n/// [`crate::high`] holds it: no edge.\npub struct A;\n",
    );
    file("high/b.rs", "pub struct B(super::a::A);\n");
    file(
        "low.rs",
        "pub struct Thing;\npub fn f() -> crate::high::Top { todo!() }\n\
         #[cfg(test)]\nmod tests {\n    use crate::high::b::B;\n}\n",
    );
    let drawing = "## The layers\n\n```\n high/   the top\n   │\n low.rs  below\n```\n";
    let mut problems = check(&src, drawing);
    problems.sort();
    assert_eq!(
        problems,
        [
            "cycle: high, low\n  high -> low: Thing, low\n  low -> high: Top",
            "cycle: high::a, high::b\n  high::a -> high::b: B\n  high::b -> high::a: A",
            "low (layer 1) imports high (layer 0, above it): Top",
        ]
    );
    // Put right, the same crate passes: `low` no longer reaches up, `b` no longer back.
    file("low.rs", "pub struct Thing;\n");
    file("high/b.rs", "pub struct B;\n");
    assert_eq!(check(&src, drawing), Vec::<String>::new());
}
