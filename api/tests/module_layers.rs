//! The layers of `sori-api`, read from its sources, so a cycle or an upward
//! import fails here instead of creeping back in.
//!
//! Every `crate::…` and `super::…` path in `api/src/**/*.rs` (outside
//! comments, strings and `#[cfg(test)]` modules) is an edge from the file's
//! module to the module the path names. Each module belongs to a layer:
//!
//! | layer     | modules                                   | may import            |
//! |-----------|-------------------------------------------|-----------------------|
//! | core      | `core::*`: state, errors, extractors, …   | core                  |
//! | model     | `model::*`: shared read models and rules  | core, model           |
//! | effects   | `effects::*`: cross-resource side effects | core, model, effects  |
//! | resources | every other top-level module              | the above, itself     |
//! | root      | `lib.rs`: the router assembly             | everything            |
//!
//! and the checks are: (a) no import cycle among modules, (b) imports go to
//! the same or a lower layer, (c) a resource imports no other resource.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Core,
    Model,
    Effects,
    Resource,
    Root,
}

/// A module's path below the crate root: `["core", "state"]`; empty for `lib.rs`.
type ModPath = Vec<String>;

fn layer_of(module: &[String]) -> Layer {
    match module.first().map(String::as_str) {
        None => Layer::Root,
        Some("core") => Layer::Core,
        Some("model") => Layer::Model,
        Some("effects") => Layer::Effects,
        Some(_) => Layer::Resource,
    }
}

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// `core/state.rs` → `core::state`, `core/realtime/mod.rs` → `core::realtime`, `lib.rs` → root.
fn module_of(file: &str) -> ModPath {
    let file = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: ModPath = file.split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The source with comments, string and character literals blanked out, so
/// only code is searched for paths.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
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
        } else if c == 'r'
            && (i == 0 || !ident(chars[i - 1]) || chars[i - 1] == 'b')
            && matches!(next, Some('"' | '#'))
        {
            // A raw string r"…" or r#"…"# (a lone `r#ident` is left alone).
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closes =
                |k: usize| chars[k] == '"' && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#'));
            while j < chars.len() && !closes(j) {
                j += 1;
            }
            i = j + 1 + hashes;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push(' ');
        } else {
            // Code, including a lifetime's quote.
            out.push(c);
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// The paths of the use tree (or expression path) starting at `tokens[at]`,
/// right after `crate::` or `super::`: `{a::B, c::{self, D}}` gives `a::B`,
/// `c`, `c::D`. Returns them and the position after the tree.
fn use_tree(tokens: &[Token], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut path = Vec::new();
    loop {
        match tokens.get(at) {
            Some(Token::Ident(name)) => {
                if name != "self" {
                    path.push(name.clone());
                }
                at += 1;
                if tokens.get(at) == Some(&Token::PathSep) {
                    at += 1;
                    continue;
                }
                return (vec![path], at);
            }
            Some(Token::Punct('{')) => {
                at += 1;
                let mut paths = Vec::new();
                loop {
                    match tokens.get(at) {
                        None => return (paths, at),
                        Some(Token::Punct('}')) => return (paths, at + 1),
                        Some(Token::Punct(',')) => at += 1,
                        _ => {
                            let (inner, after) = use_tree(tokens, at);
                            paths.extend(inner.into_iter().map(|p| [path.clone(), p].concat()));
                            // Skip what follows a path in a group (`as Name`).
                            at = after;
                            while !matches!(tokens.get(at), None | Some(Token::Punct(',' | '}'))) {
                                at += 1;
                            }
                        }
                    }
                }
            }
            _ => return (vec![path], at),
        }
    }
}

/// The module paths a file names through `crate::` and `super::`, resolved
/// against `module` (the file's own); inline `mod x { … }` blocks count as
/// their module for `super`, and `#[cfg(test)]` ones are skipped.
fn imports(module: &[String], source: &str) -> Vec<Vec<String>> {
    let tokens = tokens(&code_only(source));
    let mut found = Vec::new();
    // Inline modules open around the current token: (name, brace depth inside, test-only).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    let test_only = cfg_test_before(&tokens, i);
                    depth += 1;
                    inline.push((name.clone(), depth, test_only));
                    i += 3;
                    continue;
                }
            }
            Token::Ident(kw) if (kw == "crate" || kw == "super") => {
                let after_dollar = i > 0 && tokens[i - 1] == Token::Punct('$');
                let is_path = tokens.get(i + 1) == Some(&Token::PathSep);
                let in_test = inline.iter().any(|(_, _, test)| *test);
                if is_path && !after_dollar && !in_test {
                    let mut base: Vec<String> = if kw == "crate" {
                        Vec::new()
                    } else {
                        let mut here = module.to_vec();
                        here.extend(inline.iter().map(|(name, _, _)| name.clone()));
                        here.pop();
                        here
                    };
                    let mut at = i + 2;
                    // `super::super::…`
                    while tokens.get(at) == Some(&Token::Ident("super".to_owned()))
                        && tokens.get(at + 1) == Some(&Token::PathSep)
                    {
                        base.pop();
                        at += 2;
                    }
                    let (paths, after) = use_tree(&tokens, at);
                    found.extend(paths.into_iter().map(|p| [base.clone(), p].concat()));
                    i = after;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Whether the `mod` at `tokens[at]` (after an optional `pub`) carries `#[cfg(test)]`.
fn cfg_test_before(tokens: &[Token], at: usize) -> bool {
    let mut end = at;
    if end > 0 && tokens[end - 1] == Token::Ident("pub".to_owned()) {
        end -= 1;
    }
    let attribute = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".to_owned()),
        Token::Punct('('),
        Token::Ident("test".to_owned()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    end >= attribute.len() && tokens[end - attribute.len()..end] == attribute
}

/// The import graph of the crate's files (`(path below src, source)`):
/// module → the modules it names (never itself).
fn graph(files: &[(String, String)]) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules: BTreeSet<ModPath> = files.iter().map(|(f, _)| module_of(f)).collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (file, source) in files {
        let from = module_of(file);
        let targets = edges.entry(from.clone()).or_default();
        for path in imports(&from, source) {
            // The longest prefix naming a module: `core::state::AppState` → `core::state`.
            let to = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            if to != from {
                targets.insert(to);
            }
        }
    }
    edges
}

/// The import cycles: strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, m: &'a ModPath) {
            let n = self.index.len();
            self.index.insert(m, n);
            self.low.insert(m, n);
            self.stack.push(m);
            self.on_stack.insert(m);
            for to in self.edges.get(m).into_iter().flatten() {
                if !self.index.contains_key(to) {
                    self.visit(to);
                    let low = self.low[m].min(self.low[to]);
                    self.low.insert(m, low);
                } else if self.on_stack.contains(to) {
                    let low = self.low[m].min(self.index[to]);
                    self.low.insert(m, low);
                }
            }
            if self.low[m] == self.index[m] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == m {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for m in edges.keys() {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    walk.found
}

/// Every broken rule, one line each; empty when the layering holds.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let edges = graph(files);
    let mut found = Vec::new();
    for component in cycles(&edges) {
        let names: Vec<String> = component.iter().map(|m| show(m)).collect();
        found.push(format!("import cycle among {}", names.join(", ")));
    }
    for (from, targets) in &edges {
        for to in targets {
            let (a, b) = (layer_of(from), layer_of(to));
            if b > a {
                found.push(format!(
                    "upward import: {} ({a:?}) imports {} ({b:?})",
                    show(from),
                    show(to)
                ));
            } else if a == Layer::Resource && b == Layer::Resource && from[0] != to[0] {
                found.push(format!(
                    "resource {} imports resource {}",
                    show(from),
                    show(to)
                ));
            }
        }
    }
    found
}

/// Every `.rs` file below `dir`, as (path relative to `dir` with `/`, source).
fn sources(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).unwrap();
                let name: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((name.join("/"), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_api_crate_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.len() > 30, "read only {} files", files.len());
    let found = violations(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

fn synthetic(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, s)| ((*f).to_owned(), (*s).to_owned()))
        .collect()
}

/// The checker on a small made-up crate: it finds a cycle, an upward import
/// and a resource importing another, and accepts the same crate fixed.
#[test]
fn the_checker_finds_cycles_upward_imports_and_resource_links() {
    let broken = synthetic(&[
        (
            "lib.rs",
            "pub mod core; pub mod model; pub mod chat; pub mod social;",
        ),
        ("core/mod.rs", "pub mod a; pub mod b; pub mod c;"),
        ("core/a.rs", "use crate::core::b::B;\npub struct A;"),
        ("core/b.rs", "use crate::{core::{a::A, c}, model};"),
        (
            "core/c.rs",
            "pub fn c() { let _ = crate::model::rules::visible(); }",
        ),
        ("model/mod.rs", "pub mod rules;"),
        (
            "model/rules.rs",
            "pub fn visible() -> String { String::new() }",
        ),
        ("chat/mod.rs", "use super::social::not_blocked;"),
        ("social/mod.rs", "pub fn not_blocked() {}"),
    ]);
    let found = violations(&broken);
    let expected = [
        "import cycle among core::a, core::b",
        "resource chat imports resource social",
        "upward import: core::b (Core) imports model (Model)",
        "upward import: core::c (Core) imports model::rules (Model)",
    ];
    assert_eq!(found, expected);

    let fixed = synthetic(&[
        (
            "lib.rs",
            "pub mod core; pub mod model; pub mod chat; use crate::chat::router;",
        ),
        ("core/mod.rs", "pub mod a; pub mod b;"),
        // Comments, strings and test modules are not imports.
        (
            "core/a.rs",
            "//! See [`crate::chat`].\nconst S: &str = \"crate::model\";\n\
             #[cfg(test)]\nmod tests { use super::*; use crate::chat::router; }",
        ),
        (
            "core/b.rs",
            "use crate::core::a;\nmod inner { use super::a; }",
        ),
        ("model/mod.rs", "use crate::core::{a, b::{self}};"),
        (
            "chat/mod.rs",
            "mod rooms;\nuse crate::model;\npub fn router() {}",
        ),
        (
            "chat/rooms.rs",
            "use super::router;\nuse crate::chat::router as r;",
        ),
    ]);
    assert_eq!(violations(&fixed), Vec::<String>::new());
    let edges = graph(&fixed);
    let b: ModPath = vec!["core".into(), "b".into()];
    let a: ModPath = vec!["core".into(), "a".into()];
    assert_eq!(edges[&b], BTreeSet::from([a]));
}
