//! The top-level modules (files and folders under `src/`) of the manager and of the engine
//! import each other without a circle, so each concern can be read, tested and replaced from
//! the bottom up (docs/architecture.md has the layers). Read from the sources: every
//! `crate::<module>` path, including those inside nested `use crate::{...}` groups and doc
//! links; test code is left out. The engine's sources are read from here so that one test
//! covers both crates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The manager's sources.
fn manager_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The engine's sources (a sibling crate of the manager).
fn engine_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src` belongs to (`run/observe.rs` -> `run`).
fn module_of(src: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap();
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// The top-level modules named by `crate::` paths in `code`, nested `use` groups included.
fn imported(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b::{Y, Z}, c}`: the first path segment of each top-level item.
            let mut depth = 0usize;
            let mut item_start = true;
            let mut word = String::new();
            for c in group.chars() {
                if c.is_alphanumeric() || c == '_' {
                    if depth == 0 && item_start {
                        word.push(c);
                    }
                    continue;
                }
                if !word.is_empty() {
                    found.insert(std::mem::take(&mut word));
                    item_start = false;
                }
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    _ => {}
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|m| modules.contains(m));
    found
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(src, &file);
        if module == "main" || module == "lib" || file.ends_with("tests.rs") {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        // Inline test modules are left out (`#[cfg(test)] mod tests;` files are skipped above).
        let code = code.split("mod tests {").next().unwrap_or_default();
        let deps = imported(code, &modules);
        edges
            .entry(module.clone())
            .or_default()
            .extend(deps.into_iter().filter(|d| *d != module));
    }
    edges
}

/// A circle through `start`, if any (depth-first).
fn circle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in edges.get(path.last()?).into_iter().flatten() {
        if next == start {
            let mut circle = path.clone();
            circle.push(next.clone());
            return Some(circle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(circle) = circle_from(edges, start, path) {
                return Some(circle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn the_import_parser_sees_nested_groups() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let code = "use crate::{a::{X, Y}, b, c::Z};\nfn f() { crate::d::g(); }";
    assert_eq!(imported(code, &modules), modules);
}

/// Panics with the first import circle among the top-level modules of `src`.
fn assert_no_circle(src: &Path, known_edge: (&str, &str)) {
    let edges = graph(src);
    assert!(
        edges
            .get(known_edge.0)
            .is_some_and(|d| d.contains(known_edge.1)),
        "the parser found no imports in {}: {edges:?}",
        src.display()
    );
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if let Some(circle) = circle_from(&edges, start, &mut path) {
            panic!(
                "import circle in {}: {}",
                src.display(),
                circle.join(" -> ")
            );
        }
    }
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    assert_no_circle(&manager_src(), ("run", "context"));
}

#[test]
fn no_engine_module_imports_another_that_imports_it_back() {
    assert_no_circle(&engine_src(), ("compile", "build"));
}
