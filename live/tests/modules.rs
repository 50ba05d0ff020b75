//! The kit's shape: its modules point one way (no import circles), none grows past ~500
//! lines without saying why at its top, no two share a file name unless they say why, no file
//! imports from the crate root, and in `registry/` (with `registry/latest/`), `serve/` and
//! `testing/` no file imports from its folder's `mod.rs`.
//!
//! Reads `src/` as text: every `crate::…` path in a module (comments aside) is an edge to the
//! top-level module it names. Run with `--nocapture` to see the graph.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const LONG_MODULE_LINES: usize = 500;
/// What a long module's first lines must say.
const LONG_ON_PURPOSE: &str = "Long on purpose:";
/// What two modules of one name must both say.
const TWO_SIDES: &str = "One of two sides";

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, files: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`registry/outbox.rs` → `registry`); `None` for the
/// crate root.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib").then_some(name)
}

/// The text without `//` comments (doc comments mention modules in prose).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first name of every entry of each `crate::` path: `crate::a::b` → `a`,
/// `crate::{a::b, C, d::{e, f}}` → `a`, `C`, `d`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut entry_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => entry_start = true,
                    c if entry_start && (c.is_alphanumeric() || c == '_') => {
                        names.insert(identifier(&group[i..]));
                        entry_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(identifier(rest));
        }
    }
    names.remove("");
    names.remove("self");
    names
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules of the kit (`registry`, `serve`, …), by their files.
fn modules(files: &[(PathBuf, String)]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|(path, _)| module_of(path))
        .collect()
}

/// Which top-level module imports which. (Every `crate::` path names a module:
/// `no_import_runs_back_up_into_the_crate_root` holds it so.)
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules = modules(&files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let Some(from) = module_of(path) else {
            continue;
        };
        let edges = graph.entry(from.clone()).or_default();
        for name in crate_paths(&code(text)) {
            if modules.contains(&name) && name != from {
                edges.insert(name);
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_parser_reads_paths_and_groups() {
    let names = crate_paths("use crate::{a::b, Live, d::{e, f}};\nlet x = crate::g::h();");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["Live", "a", "d", "g"]
    );
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(
        circle(&graph),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

#[test]
fn the_modules_point_one_way() {
    let graph = graph();
    for (module, imports) in &graph {
        let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
        eprintln!("{module} → {}", imports.join(", "));
    }
    assert!(graph.len() > 10, "the modules were not found: {graph:?}");
    assert_eq!(circle(&graph), None, "an import circle");
}

/// Inside the kit, a file takes a name from the module that defines it (`crate::state::Live`),
/// never from the crate root (`crate::Live`): the root is the app author's prelude, and an
/// import of it from below would run back up to the file that declares every module.
#[test]
fn no_import_runs_back_up_into_the_crate_root() {
    let files = sources();
    let modules = modules(&files);
    assert!(modules.contains("registry"), "the modules were not found");
    for (path, text) in &files {
        if module_of(path).is_none() {
            continue; // the root itself
        }
        for name in crate_paths(&code(text)) {
            assert!(
                modules.contains(&name),
                "{} takes `crate::{name}` from the crate root: take it from the module that \
                 defines it",
                path.display()
            );
        }
    }
}

#[test]
fn no_module_is_long_without_saying_why() {
    for (path, text) in sources() {
        if path.ends_with("tests.rs") {
            continue; // a module's tests, in a file of their own
        }
        // A module's own tests, at its end, do not count.
        let body = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let lines = body.lines().count();
        let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
        assert!(
            lines <= LONG_MODULE_LINES || head.contains(LONG_ON_PURPOSE),
            "{} has {lines} lines: split it, or say why at its top (\"{LONG_ON_PURPOSE} …\")",
            path.display()
        );
    }
}

/// One name per thing: two files of the kit share a name only when they are one concept seen
/// from two sides (`registry/relay.rs` and `redis/relay.rs`), and then both say so at their top.
#[test]
fn no_two_modules_share_a_name_unless_they_say_why() {
    let mut by_name: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for (path, text) in sources() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "mod.rs" || name == "tests.rs" {
            continue; // a folder's face, a module's tests
        }
        by_name.entry(name).or_default().push((path, text));
    }
    assert!(by_name.len() > 20, "the modules were not found");
    for (name, files) in by_name.iter().filter(|(_, files)| files.len() > 1) {
        for (path, text) in files {
            let head: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
            assert!(
                head.contains(TWO_SIDES),
                "{} shares the name {name} with another module: rename one, or say at its top \
                 that they are one thing seen from two sides (\"{TWO_SIDES} …\")",
                path.display()
            );
        }
    }
}

/// The first names of what `code` takes from `prefix` (`super::`, `super::{a::{B, C}, d}` →
/// `a`, `d`).
fn taken_from(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.insert(identifier(rest));
            continue;
        };
        // The group's entries at its own depth: the first name of each.
        let (mut depth, mut entry_start) = (0, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => entry_start = true,
                c if entry_start && !c.is_whitespace() => {
                    names.insert(identifier(&group[i..]));
                    entry_start = false;
                }
                _ => {}
            }
        }
    }
    names.remove("");
    names
}

/// Inside `registry/` (and its `latest/`), `serve/` and `testing/`, no import runs back up: a
/// file takes what it needs from the files beside it (`super::shared::Registry`), never from
/// the folder's `mod.rs`, which only declares the files and hands their names on (neither as
/// `super::Registry` nor as `crate::registry::Registry`).
#[test]
fn no_import_runs_back_up_into_a_folders_face() {
    for folder in ["registry", "registry/latest", "serve", "testing"] {
        let dir = src().join(folder);
        let siblings: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                name.trim_end_matches(".rs").to_owned()
            })
            .collect();
        let by_path = format!("crate::{}::", folder.replace('/', "::"));
        for (path, text) in sources() {
            let name = path.file_name().unwrap().to_string_lossy();
            if !path.starts_with(&dir) || path == dir.join("mod.rs") || name == "tests.rs" {
                continue;
            }
            // `super::` names the folder's face from the files beside `mod.rs`, and from the
            // `mod.rs` of a folder inside it (`testing/browser/mod.rs`).
            let in_folder = path.parent() == Some(dir.as_path()) && name != "mod.rs";
            let in_subfolder_face =
                path.parent().and_then(Path::parent) == Some(dir.as_path()) && name == "mod.rs";
            // A module's own tests (`use super::*` there is the file itself) do not count.
            let body = code(text.split("#[cfg(test)]").next().unwrap());
            let mut taken: Vec<(String, &str)> = taken_from(&body, &by_path)
                .into_iter()
                .map(|name| (name, by_path.as_str()))
                .collect();
            if in_folder || in_subfolder_face {
                taken.extend(
                    taken_from(&body, "super::")
                        .into_iter()
                        .map(|n| (n, "super::")),
                );
            }
            for (taken, how) in taken {
                assert!(
                    siblings.contains(&taken),
                    "{} takes `{how}{taken}`, from {folder}/mod.rs: take it from the file that \
                     defines it",
                    path.display()
                );
            }
        }
    }
}
