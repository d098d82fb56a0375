//! Layers with no back edges: no module of a crate imports, through any chain of imports,
//! a module that imports it back (Elle keeps its namespaces so: `list_append` → `txn` →
//! `core` → `graph`, and nothing requires back).
//!
//! [`circles`] reads a crate's `src/` tree as text, builds the module graph from the paths
//! its code names (`use crate::a::b::{C, d}`, `crate::a::f(..)` in code, `super::X`,
//! `self::x::Y`), and returns every circle with the files in it and the names that tie
//! each file to the next. Declaring a child (`mod x;`) is not an import, and neither is a
//! folder's `mod.rs` naming its own children by their bare name (`pub use config::X`,
//! `html::render`): a `mod.rs` is the folder's face, whose children may use what it holds
//! (`super::X`). Comments and string literals are skipped. Each crate that is circle-free
//! is held to it below; a new circle fails with the files and names to untie.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file's place in its crate: which crate root it belongs to (`lib`, or `bin/NAME` for
/// a `src/bin/NAME.rs` binary) and its module path from that root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ModPath {
    root: String,
    path: Vec<String>,
}

/// Where a file sits, from its path under `src/`: `lib.rs`/`main.rs` are the root,
/// `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn mod_path(file: &str) -> ModPath {
    let parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    let (root, mut path) = match parts.as_slice() {
        [bin, name, rest @ ..] if bin == "bin" => (format!("bin/{name}"), rest.to_vec()),
        [bin, name] if bin == "bin" => (format!("bin/{name}"), Vec::new()),
        _ => ("lib".to_string(), parts.clone()),
    };
    if path.last().is_some_and(|l| l == "mod") || path == ["lib"] || path == ["main"] {
        path.pop();
    }
    ModPath { root, path }
}

/// `src` with comments and the insides of string and char literals blanked out, so only
/// code is left to read paths from.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && raw_start(&b, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string (`r"`, `br#"`), not ends a word (`for"`).
fn raw_start(b: &[char], i: usize) -> bool {
    let word = |k: usize| b[k].is_alphanumeric() || b[k] == '_';
    match i {
        0 => true,
        _ if !word(i - 1) => true,
        1 => b[0] == 'b',
        _ => b[i - 1] == 'b' && !word(i - 2),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<Tok> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            out.push(Tok::Ident(word.trim_start_matches("r#").to_string()));
            continue;
        }
        out.push(match c {
            ':' if b.get(i + 1) == Some(&':') => {
                i += 1;
                Tok::Path
            }
            '{' => Tok::Open,
            '}' => Tok::Close,
            ',' => Tok::Comma,
            ';' => Tok::Semi,
            '*' => Tok::Star,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Tok::Other,
        });
        i += 1;
    }
    out
}

/// The paths of a `use` tree starting at `toks[i]` (after `use`), expanded; returns them
/// and the index after the closing `;`.
fn use_paths(toks: &[Tok], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    let mut prefix: Vec<Vec<String>> = vec![Vec::new()];
    let mut current: Vec<String> = Vec::new();
    let mut skip_alias = false;
    let flush =
        |prefix: &Vec<Vec<String>>, current: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
            if !current.is_empty() {
                let mut p = prefix.last().cloned().unwrap_or_default();
                p.append(current);
                out.push(p);
            }
        };
    while i < toks.len() {
        match &toks[i] {
            Tok::Semi => {
                flush(&prefix, &mut current, &mut out);
                return (out, i + 1);
            }
            Tok::Ident(w) if w == "as" => skip_alias = true,
            Tok::Ident(_) if skip_alias => skip_alias = false,
            Tok::Ident(w) => current.push(w.clone()),
            Tok::Star => current.push("*".into()),
            Tok::Path => {}
            Tok::Open => {
                let mut p = prefix.last().cloned().unwrap_or_default();
                p.append(&mut current);
                prefix.push(p);
            }
            Tok::Comma => flush(&prefix, &mut current, &mut out),
            Tok::Close => {
                flush(&prefix, &mut current, &mut out);
                prefix.pop();
            }
            Tok::Other => {}
        }
        i += 1;
    }
    (out, i)
}

/// One file's imports: (path as written, how many inline `mod x { }` enclose it).
fn file_paths(src: &str) -> Vec<(Vec<String>, usize)> {
    let toks = tokens(&code_only(src));
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            Tok::Ident(w) if w == "mod" && toks.get(i + 2) == Some(&Tok::Open) => {
                inline.push(depth);
            }
            Tok::Ident(w) if w == "use" => {
                let (paths, next) = use_paths(&toks, i + 1);
                out.extend(paths.into_iter().map(|p| (p, inline.len())));
                i = next;
                continue;
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1) == Some(&Tok::Path)
                    && (i == 0 || toks[i - 1] != Tok::Path) =>
            {
                let mut p = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Path) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(n)) => p.push(n.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                out.push((p, inline.len()));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A circle: its files, and per arrow inside it the names the first file takes.
#[derive(Debug)]
struct Circle {
    files: Vec<String>,
    ties: Vec<(String, String, Vec<String>)>,
}

impl std::fmt::Display for Circle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "circle of {}: {}",
            self.files.len(),
            self.files.join(", ")
        )?;
        for (from, to, names) in &self.ties {
            writeln!(f, "  {from} -> {to}: {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// Every import circle among the files of one crate, `files` being path under `src/`
/// (with `/`) to text.
fn circles(files: &BTreeMap<String, String>) -> Vec<Circle> {
    let by_mod: BTreeMap<ModPath, &str> = files.keys().map(|f| (mod_path(f), f.as_str())).collect();
    let mut arrows: BTreeMap<(&str, &str), BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let here = mod_path(file);
        let paths = file_paths(text);
        for (p, inline) in paths {
            let Some(first) = p.first() else { continue };
            let supers = p.iter().take_while(|s| *s == "super").count();
            let (mut base, rest) = match first.as_str() {
                "crate" => (Vec::new(), &p[1..]),
                "self" => (here.path.clone(), &p[1..]),
                "super" => {
                    let up = supers.saturating_sub(inline);
                    let keep = here.path.len().saturating_sub(up);
                    (here.path[..keep].to_vec(), &p[supers..])
                }
                _ => continue,
            };
            let mut name = None;
            for seg in rest {
                let mut deeper = base.clone();
                deeper.push(seg.clone());
                let known = ModPath {
                    root: here.root.clone(),
                    path: deeper.clone(),
                };
                if by_mod.contains_key(&known) {
                    base = deeper;
                } else {
                    name = Some(seg.clone());
                    break;
                }
            }
            let target = ModPath {
                root: here.root.clone(),
                path: base.clone(),
            };
            let Some(&to) = by_mod.get(&target) else {
                continue;
            };
            if to == file {
                continue;
            }
            let name = name
                .or_else(|| base.last().cloned())
                .unwrap_or_else(|| "crate".into());
            arrows.entry((file.as_str(), to)).or_default().insert(name);
        }
    }
    strongly_connected(files.keys().map(String::as_str).collect(), &arrows)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let set: BTreeSet<&str> = c.iter().copied().collect();
            let ties = arrows
                .iter()
                .filter(|((a, b), _)| set.contains(a) && set.contains(b))
                .map(|((a, b), n)| (a.to_string(), b.to_string(), n.iter().cloned().collect()))
                .collect();
            let mut files: Vec<String> = c.iter().map(|f| f.to_string()).collect();
            files.sort();
            Circle { files, ties }
        })
        .collect()
}

/// Tarjan's strongly connected components of the file graph.
fn strongly_connected<'a>(
    nodes: Vec<&'a str>,
    arrows: &BTreeMap<(&'a str, &'a str), BTreeSet<String>>,
) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in next.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in arrows.keys() {
        next.entry(a).or_default().push(b);
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(v, &next, &mut s);
        }
    }
    s.out
}

/// Every `.rs` file under `dir`, keyed by its path below it.
fn read_src(dir: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).expect("under src");
                let rel = rel.to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Fails naming every circle of the crate whose `src/` is `crate_dir/src`.
fn assert_layered(crate_dir: &str) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let files = read_src(&dir);
    assert!(files.len() > 1, "{}: no source files", dir.display());
    let found = circles(&files);
    let text: Vec<String> = found.iter().map(|c| c.to_string()).collect();
    assert!(
        found.is_empty(),
        "{crate_dir}/src has import circles; move what ties them into a module below both:\n{}",
        text.join("")
    );
}

#[test]
fn the_checker_has_no_import_circles() {
    assert_layered("checker");
}

#[test]
fn the_replica_has_no_import_circles() {
    assert_layered("replica");
}

#[test]
fn the_simulator_has_no_import_circles() {
    assert_layered("sim");
}

#[test]
fn the_harness_has_no_import_circles() {
    assert_layered("harness");
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_planted_circle_is_found_with_its_files_and_the_names_that_tie_it() {
    let files = tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        (
            "a.rs",
            "use crate::b::{Thing, other::X as Y};\npub struct Top;\n",
        ),
        (
            "b.rs",
            "pub struct Thing;\nfn f() { let _ = crate::c::helper(); }\n",
        ),
        ("c.rs", "use super::a::Top;\npub fn helper() {}\n"),
    ]);
    let found = circles(&files);
    assert_eq!(found.len(), 1, "{found:?}");
    let text = found[0].to_string();
    assert_eq!(found[0].files, ["a.rs", "b.rs", "c.rs"]);
    assert!(text.contains("a.rs -> b.rs: Thing, other"), "{text}");
    assert!(text.contains("b.rs -> c.rs: helper"), "{text}");
    assert!(text.contains("c.rs -> a.rs: Top"), "{text}");
}

#[test]
fn a_face_naming_its_children_is_no_circle_but_a_full_path_back_is() {
    let face = tree(&[
        ("lib.rs", "mod report;\n"),
        (
            "report/mod.rs",
            "pub mod html;\npub use html::render;\npub struct ChartOut;\nfn w() { html::render(); }\n",
        ),
        ("report/html.rs", "use super::ChartOut;\npub fn render() {}\n"),
    ]);
    assert!(circles(&face).is_empty(), "{:?}", circles(&face));
    let back = tree(&[
        ("lib.rs", "mod report;\n"),
        (
            "report/mod.rs",
            "pub mod html;\npub struct ChartOut;\nfn w() { self::html::render(); }\n",
        ),
        (
            "report/html.rs",
            "use super::ChartOut;\npub fn render() {}\n",
        ),
    ]);
    let found = circles(&back);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].files, ["report/html.rs", "report/mod.rs"]);
}

#[test]
fn comments_strings_and_unit_test_modules_own_super_are_not_arrows() {
    let files = tree(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "a.rs",
            "use crate::b::B;\n/// see [`crate::b`]\npub struct A;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        (
            "b.rs",
            "pub struct B;\n// crate::a::A\n/* crate::a::A */\nconst S: &str = \"crate::a::A\";\nconst R: &str = r#\"crate::a::A\"#;\nfn q() -> char { '\"' }\n",
        ),
    ]);
    assert!(circles(&files).is_empty(), "{:?}", circles(&files));
}
