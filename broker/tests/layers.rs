//! The module layering of our crates, checked from their sources: no two
//! files of `broker/`, `storage/`, `raft/` or `protocol/` import each other
//! in a loop, and inside `broker/` a module imports only its own layer or
//! those below it (ARCHITECTURE.md). An import is any `crate::`, `super::`
//! or `self::` path outside a `#[cfg(test)]` module, and a parent's use of
//! a child module it declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `broker/`'s layers, bottom first: module path prefixes (a file's path
/// under `src/` without `.rs`, `mod.rs` named by its folder). The longest
/// matching prefix places a module.
const BROKER_LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["config", "data_dir", "error", "internal_records", "kafka_client", "topic_config"]),
    ("state", &["group", "replication/replica", "txn"]),
    ("runtime", &["runtime"]),
    ("broker", &["broker"]),
    ("services", &["broker_configs", "replication", "txn/coordinator", "txn/driver", "txn/markers"]),
    ("handlers", &["handlers"]),
    ("server", &["connection", "server"]),
    ("cli", &["cli"]),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src")
}

/// Every module of the library under `src` and its source (tests cut off).
/// `main.rs` and `bin/` are other crates and are left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
            let rel = path.strip_prefix(src).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                if rel != "bin" {
                    dirs.push(path);
                }
                continue;
            }
            let Some(stem) = rel.strip_suffix(".rs") else { continue };
            if stem == "main" {
                continue;
            }
            let module = match stem {
                "lib" => String::new(),
                s => s.strip_suffix("/mod").unwrap_or(s).to_string(),
            };
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            found.insert(module, without_tests_and_comments(&text));
        }
    }
    found
}

fn without_tests_and_comments(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        let inline_test_module = |next: &&str| next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{');
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(inline_test_module) {
            // Skip the module to its closing brace.
            let mut depth = 0i32;
            for inner in lines.by_ref() {
                depth += inner.matches('{').count() as i32 - inner.matches('}').count() as i32;
                if depth <= 0 && inner.contains('}') {
                    break;
                }
            }
            continue;
        }
        if !trimmed.starts_with("//") {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// The identifier-and-`::` path starting at byte `at`, e.g. `crate::a::B`.
fn path_at(text: &str, at: usize) -> Vec<&str> {
    let rest = &text[at..];
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
    rest[..end].split("::").filter(|s| !s.is_empty()).collect()
}

fn starts_word(text: &str, at: usize) -> bool {
    !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
}

/// The module a path names: its longest prefix that is a module.
fn resolve(module: &str, path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    let mut base: Vec<&str> = if module.is_empty() { Vec::new() } else { module.split('/').collect() };
    let mut rest = path;
    match rest.first() {
        Some(&"crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some(&"self") => rest = &rest[1..],
        Some(&"super") => {
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    let mut best = None;
    for taken in 0..=rest.len() {
        let candidate = base.iter().chain(&rest[..taken]).copied().collect::<Vec<_>>().join("/");
        if known.contains_key(&candidate) {
            best = Some(candidate);
        }
    }
    best
}

fn graph(src: &Path) -> Graph {
    let known = modules(src);
    let mut edges = Graph::new();
    for (module, text) in &known {
        let mut targets = BTreeSet::new();
        for prefix in ["crate::", "super::", "self::"] {
            for (at, _) in text.match_indices(prefix).filter(|(at, _)| starts_word(text, *at)) {
                let path = path_at(text, at);
                let mut names = vec![path.clone()];
                // `use crate::a::{b, c::D}` names `a::b` and `a::c::D`.
                if text[at..].starts_with(&(path.join("::") + "::{")) {
                    let group_start = at + path.join("::").len() + 3;
                    let group = &text[group_start..group_start + text[group_start..].find('}').unwrap_or(0)];
                    for item in group.split(',') {
                        let item: Vec<&str> = item.trim().split("::").map(str::trim).collect();
                        names.push(path.iter().chain(&item).copied().collect());
                    }
                }
                targets.extend(names.iter().filter_map(|p| resolve(module, p, &known)));
            }
        }
        // A parent using a child it declares (`mod child;` then `child::x`).
        for line in text.lines() {
            let decl = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            let Some(child) = decl.strip_prefix("mod ").and_then(|d| d.strip_suffix(';')) else { continue };
            let child_module = if module.is_empty() { child.to_string() } else { format!("{module}/{child}") };
            let used = text.match_indices(&format!("{child}::")).any(|(at, _)| starts_word(text, at));
            if used && known.contains_key(&child_module) {
                targets.insert(child_module);
            }
        }
        targets.remove(module);
        targets.remove("");
        edges.insert(module.clone(), targets);
    }
    edges
}

fn reachable(edges: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for next in edges.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

/// Groups of two or more modules that import each other, directly or not.
fn loops(edges: &Graph) -> Vec<BTreeSet<String>> {
    let reach: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reachable(edges, m))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for (m, from_m) in &reach {
        if groups.iter().any(|g| g.contains(*m)) {
            continue;
        }
        let group: BTreeSet<String> = from_m.iter().filter(|n| *n != *m && reach[n].contains(*m)).cloned().collect();
        if !group.is_empty() {
            groups.push(group.into_iter().chain([(*m).clone()]).collect());
        }
    }
    groups
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, usize, &str)> = None;
    for (index, (name, prefixes)) in BROKER_LAYERS.iter().enumerate() {
        for prefix in *prefixes {
            let matches = module == *prefix || module.starts_with(&format!("{prefix}/"));
            if matches && best.is_none_or(|(len, _, _)| prefix.len() > len) {
                best = Some((prefix.len(), index, name));
            }
        }
    }
    best.map(|(_, index, name)| (index, name))
}

#[test]
fn no_crate_has_an_import_loop() {
    for name in ["broker", "storage", "raft", "protocol"] {
        let found = loops(&graph(&crate_dir(name)));
        assert!(found.is_empty(), "{name}/src has modules that import each other in a loop: {found:?}");
    }
}

#[test]
fn broker_modules_import_only_their_layer_or_lower() {
    let edges = graph(&crate_dir("broker"));
    let mut wrong = Vec::new();
    for (module, targets) in &edges {
        if module.is_empty() {
            continue;
        }
        let Some((from, from_name)) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer (add it to BROKER_LAYERS and ARCHITECTURE.md)"));
            continue;
        };
        for target in targets {
            match layer_of(target) {
                Some((to, to_name)) if to > from => {
                    wrong.push(format!("{module} ({from_name}) imports {target} ({to_name}), a higher layer"))
                }
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_scan_sees_imports_and_loops() {
    let known: BTreeMap<String, String> =
        ["", "a", "a/b", "c"].iter().map(|m| (m.to_string(), String::new())).collect();
    assert_eq!(resolve("a/b", &["super", "X"], &known).as_deref(), Some("a"));
    assert_eq!(resolve("c", &["crate", "a", "b", "f"], &known).as_deref(), Some("a/b"));
    let edges: Graph = [("a", vec!["c"]), ("c", vec!["a/b"]), ("a/b", vec!["a"])]
        .into_iter()
        .map(|(m, t)| (m.to_string(), t.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(loops(&edges), vec![["a", "a/b", "c"].into_iter().map(String::from).collect::<BTreeSet<_>>()]);
}
