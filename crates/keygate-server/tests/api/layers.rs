//! The server's imports point down (docs/architecture.md, "Where things go"): a module may use
//! its own layer and the layers below, never one above, and no two top-level modules import
//! each other round a cycle. Read from the source text (every `crate::…` path outside
//! comments), so a new upward import fails here with the file and the path that names it.
//! Needs no server; std only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom. Every top-level module of `src/` appears once; a new one must be placed.
const LAYERS: &[(&str, &[&str])] = &[
    ("wiring and serving", &["lib", "server", "connections"]),
    ("HTTP front ends", &["routes", "dashboard", "gateway"]),
    ("what the front ends share", &["state", "extract", "views"]),
    ("rules", &["service"]),
    (
        "components",
        &["auth", "limits", "ratelimit", "throttle", "address_allowance", "cluster", "usage", "plans", "password"],
    ),
    ("leaves", &["error", "config", "metrics", "request_id"]),
];

/// Items defined at the crate root that are not modules, with the layer they belong to.
const ROOT_ITEMS: &[(&str, &str)] = &[
    // A type alias for a hasher; it imports nothing, the root only gives it a short path.
    ("FastHash", "error"),
    // Re-exports for the binary: `crate::Settings` is `config::Settings`.
    ("Settings", "config"),
];

/// Upward imports that are known and waiting: (importing file under src/, imported module,
/// why and how it goes). Each is fixed inside files that issue 16's limits/auth refactor owns;
/// remove the entry when that lands (the test fails while an entry is no longer needed).
const ALLOWED: &[(&str, &str, &str)] = &[
    // The state holds the compiled gateway, defined in gateway/mod.rs; it goes below the state
    // (or the state holds only the route table and the pool).
    ("state.rs", "gateway", "AppState holds gateway::Gateway"),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

/// Every `.rs` file under `dir`, relative paths with `/`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("src/ is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `lib` for lib.rs, `config` for config.rs and
/// config/routes.rs.
fn module_of(relative: &str) -> String {
    let first = relative.split('/').next().unwrap_or(relative);
    first.trim_end_matches(".rs").to_owned()
}

/// The text without `//` comments (doc comments included): prose may name any module.
fn code_of(text: &str) -> String {
    text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The first segment after each `crate::` (each item's, for `crate::{a::X, b::Y}`).
fn imported(code: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `keygate_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        out.push(ident(&group[i..]));
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn imports_point_down_and_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "found the sources under {}", src.display());

    let mut problems = Vec::new();
    let mut allowed_used = BTreeSet::new();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src/").to_string_lossy().replace('\\', "/");
        let from = module_of(&relative);
        let Some(from_layer) = layer_of(&from) else {
            problems
                .push(format!("src/{relative}: module `{from}` has no layer: add it to LAYERS in tests/api/layers.rs"));
            continue;
        };
        let text = std::fs::read_to_string(path).expect("a readable source");
        for name in imported(&code_of(&text)) {
            let to = match ROOT_ITEMS.iter().find(|(item, _)| *item == name) {
                Some((_, module)) => (*module).to_owned(),
                None if layer_of(&name).is_some() => name.clone(),
                None => "lib".to_owned(), // anything else at the root is the wiring's
            };
            if to == from {
                continue;
            }
            if let Some(entry) = ALLOWED.iter().find(|(file, module, _)| *file == relative && *module == to) {
                allowed_used.insert(entry.0.to_owned() + " -> " + entry.1);
                continue;
            }
            let to_layer = layer_of(&to).expect("every target has a layer");
            if to_layer < from_layer {
                problems.push(format!(
                    "src/{relative}: `crate::{name}` imports `{to}` ({}) from `{from}` ({}), a layer above",
                    LAYERS[to_layer].0, LAYERS[from_layer].0
                ));
            }
            // A cycle through layers has an upward step, reported above; what is left to find
            // are cycles inside one layer. The root declares every module and re-exports a few
            // (`Listeners`): that is not a dependency, so its edges stay out.
            if to_layer == from_layer && from != "lib" {
                edges.entry(from.clone()).or_default().entry(to).or_insert_with(|| format!("src/{relative}"));
            }
        }
    }
    for (file, module, why) in ALLOWED {
        if !allowed_used.contains(&format!("{file} -> {module}")) {
            problems.push(format!("ALLOWED entry `{file}` -> `{module}` ({why}) is no longer needed: remove it"));
        }
    }
    problems.extend(cycles(&edges));
    assert!(problems.is_empty(), "imports that point the wrong way:\n{}", problems.join("\n"));
}

/// Each cycle between top-level modules, found by depth-first search, as `a -> b -> a` with
/// the file that makes each step.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut steps = Vec::new();
            for pair in stack[at..].iter().chain([&node.to_owned()]).collect::<Vec<_>>().windows(2) {
                let via = &edges[pair[0].as_str()][pair[1].as_str()];
                steps.push(format!("{} -> {} ({via})", pair[0], pair[1]));
            }
            found.push(format!("cycle: {}", steps.join(", ")));
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flat_map(|m| m.keys()) {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_reader_sees_grouped_and_inline_paths() {
    let code = code_of("use crate::{a::X, b::{Y, Z}};\nlet x = crate::c::f(); // crate::d\nuse keygate_crate::e;");
    assert_eq!(imported(&code), ["a", "b", "c"]);
    assert_eq!(module_of("config/routes.rs"), "config");
    assert_eq!(module_of("lib.rs"), "lib");
}
