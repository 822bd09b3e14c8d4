//! No import circle between the modules of a crate of this workspace (issue 13.4).
//!
//! Each module (a file, or an inline `mod`) is a node; every path it names that leads into
//! its own crate (`crate::`, `super::`, `self::`, a child module, or a name one of its `use`
//! items brought in) is an edge to the module that defines the item, re-exports followed.
//! `pub use` items of a facade are names only, not edges; `#[cfg(test)]` items are left out,
//! and so are paths inside macro invocations (their tokens are not parsed). A strongly
//! connected component of more than one module is a circle, and fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Module path from the crate root (`["roma", "client"]`); the root is `[]`.
type ModPath = Vec<String>;

#[derive(Default)]
struct Module {
    children: BTreeSet<String>,
    /// Name brought in by a `use` -> (its path as written, relative to this module).
    uses: HashMap<String, Vec<String>>,
    /// Paths named by this module's own code and private `use` items, as written.
    refs: Vec<Vec<String>>,
}

#[derive(Default)]
struct Crate {
    modules: BTreeMap<ModPath, Module>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let tokens = a.meta.require_list().map(|l| l.tokens.to_string());
            tokens.is_ok_and(|t| t.split(|c: char| !c.is_alphanumeric()).any(|w| w == "test"))
        }
    })
}

fn is_pub(vis: &syn::Visibility) -> bool {
    !matches!(vis, syn::Visibility::Inherited)
}

/// Every path a piece of code names (types, expressions, patterns, trait bounds).
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl<'ast> Visit<'ast> for Paths {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.0
            .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    // `pub(super)`, `pub(in crate::x)`: who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut flat = Vec::new();
        flatten_use(&item.tree, &mut Vec::new(), &mut flat);
        self.0.extend(flat.into_iter().map(|(_, full)| full));
    }
}

fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            out.push((prefix.last().cloned().unwrap_or_default(), prefix.clone()));
        }
        syn::UseTree::Name(n) => {
            let mut full = prefix.clone();
            full.push(n.ident.to_string());
            out.push((n.ident.to_string(), full));
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.clone();
            full.push(r.ident.to_string());
            out.push((r.rename.to_string(), full));
        }
        // A glob names no item: an edge to the module it empties.
        syn::UseTree::Glob(_) => out.push((String::new(), prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

impl Crate {
    fn load(root_file: &Path) -> Self {
        let mut krate = Crate::default();
        let dir = root_file
            .parent()
            .expect("crate root has a folder")
            .to_path_buf();
        krate.load_file(root_file, &dir, Vec::new());
        krate
    }

    fn load_file(&mut self, file: &Path, dir: &Path, path: ModPath) {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        self.load_items(&ast.items, dir, path);
    }

    /// `dir`: where the files of this module's `mod x;` children live.
    fn load_items(&mut self, items: &[syn::Item], dir: &Path, path: ModPath) {
        let mut module = Module::default();
        let mut nested = Vec::new();
        for item in items {
            match item {
                syn::Item::Mod(m) if is_cfg_test(&m.attrs) => {}
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    module.children.insert(name.clone());
                    let mut child = path.clone();
                    child.push(name.clone());
                    nested.push((m, child, dir.join(&name)));
                }
                syn::Item::Use(u) if is_cfg_test(&u.attrs) => {}
                syn::Item::Use(u) => {
                    let mut flat = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut flat);
                    for (name, full) in flat {
                        if !is_pub(&u.vis) {
                            module.refs.push(full.clone());
                        }
                        if !name.is_empty() {
                            module.uses.insert(name, full);
                        }
                    }
                }
                other => {
                    let attrs: &[syn::Attribute] = match other {
                        syn::Item::Fn(f) => &f.attrs,
                        syn::Item::Impl(i) => &i.attrs,
                        syn::Item::Struct(s) => &s.attrs,
                        syn::Item::Enum(e) => &e.attrs,
                        syn::Item::Const(c) => &c.attrs,
                        syn::Item::Static(s) => &s.attrs,
                        syn::Item::Trait(t) => &t.attrs,
                        syn::Item::Type(t) => &t.attrs,
                        _ => &[],
                    };
                    if !is_cfg_test(attrs) {
                        let mut paths = Paths::default();
                        paths.visit_item(other);
                        module.refs.extend(paths.0);
                    }
                }
            }
        }
        self.modules.insert(path, module);
        for (m, child, child_dir) in nested {
            match &m.content {
                Some((_, items)) => self.load_items(items, &child_dir, child),
                None => {
                    let flat = dir.join(format!("{}.rs", m.ident));
                    let file = if flat.exists() {
                        flat
                    } else {
                        child_dir.join("mod.rs")
                    };
                    self.load_file(&file, &child_dir, child);
                }
            }
        }
    }

    /// `segments`, as written in module `at`, as a path from the crate root; `None` when it
    /// leads out of the crate (std, another crate, a local name).
    fn absolute(&self, at: &[String], segments: &[String], depth: usize) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        if depth > 32 {
            return None;
        }
        let module = self.modules.get(at)?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some([at, rest].concat()),
            "super" => {
                let parent = &at[..at.len().checked_sub(1)?];
                if rest.first().is_some_and(|s| s == "super") {
                    self.absolute(parent, rest, depth + 1)
                } else {
                    Some([parent, rest].concat())
                }
            }
            name if module.children.contains(name) => Some([at, segments].concat()),
            name => {
                let used = module.uses.get(name)?;
                // `use x::y` where x is itself a name of this module: the path as written.
                let written = [used.as_slice(), rest].concat();
                if used.first().is_some_and(|s| s == name) && used.len() == 1 {
                    return None;
                }
                self.absolute(at, &written, depth + 1)
            }
        }
    }

    /// The module that defines what `abs` names, following re-exports.
    fn target(&self, abs: &[String], depth: usize) -> Option<ModPath> {
        let mut current: ModPath = Vec::new();
        for (i, segment) in abs.iter().enumerate() {
            let module = self.modules.get(&current)?;
            if module.children.contains(segment) {
                current.push(segment.clone());
                continue;
            }
            if depth < 32 && module.uses.contains_key(segment) {
                let onward = [std::slice::from_ref(segment), &abs[i + 1..]].concat();
                if let Some(next) = self.absolute(&current, &onward, depth + 1) {
                    return self.target(&next, depth + 1);
                }
            }
            return Some(current);
        }
        Some(current)
    }

    /// Edges between distinct modules, each with one path that makes it.
    fn edges(&self) -> BTreeMap<ModPath, BTreeMap<ModPath, String>> {
        let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
        for (at, module) in &self.modules {
            for written in &module.refs {
                let Some(abs) = self.absolute(at, written, 0) else {
                    continue;
                };
                let Some(to) = self.target(&abs, 0) else {
                    continue;
                };
                if &to != at {
                    edges
                        .entry(at.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| written.join("::"));
                }
            }
        }
        edges
    }

    /// The import circles: strongly connected components of more than one module, each with
    /// the edges inside it.
    fn circles(&self) -> Vec<Vec<String>> {
        let edges = self.edges();
        let nodes: Vec<&ModPath> = self.modules.keys().collect();
        let reach = |from: &ModPath| -> BTreeSet<ModPath> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(n) = todo.pop() {
                for next in edges.get(&n).into_iter().flat_map(|m| m.keys()) {
                    if seen.insert(next.clone()) {
                        todo.push(next.clone());
                    }
                }
            }
            seen
        };
        let reachable: HashMap<&ModPath, BTreeSet<ModPath>> =
            nodes.iter().map(|n| (*n, reach(n))).collect();
        let mut done = BTreeSet::new();
        let mut circles = Vec::new();
        for n in &nodes {
            if done.contains(*n) || !reachable[n].contains(*n) {
                continue;
            }
            let component: BTreeSet<&ModPath> = nodes
                .iter()
                .copied()
                .filter(|m| reachable[n].contains(*m) && reachable[m].contains(*n))
                .collect();
            let mut lines = Vec::new();
            for from in &component {
                done.insert((*from).clone());
                for (to, via) in edges.get(*from).into_iter().flatten() {
                    if component.contains(to) {
                        lines.push(format!("{} -> {} (via {via})", name(from), name(to)));
                    }
                }
            }
            circles.push(lines);
        }
        circles
    }
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `at_least`: modules the crate has, so that a reader that finds none fails.
fn assert_no_circle(root_file: &str, at_least: usize) {
    let krate = Crate::load(&workspace().join(root_file));
    assert!(
        krate.modules.len() >= at_least,
        "{root_file}: only {} modules found",
        krate.modules.len()
    );
    let circles = krate.circles();
    assert!(
        circles.is_empty(),
        "{root_file}: import circles between modules:\n{}",
        circles
            .iter()
            .map(|c| c.join("\n"))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn the_controller_has_no_import_circle() {
    assert_no_circle("src/lib.rs", 30);
}

#[test]
fn the_simulators_have_no_import_circle() {
    assert_no_circle("simulators/src/lib.rs", 25);
}

#[test]
fn the_signer_has_no_import_circle() {
    assert_no_circle("signer/src/lib.rs", 1);
}

/// The check itself finds circles through `super::`, `crate::`, a child module, a re-export
/// and a path in a function body, and no circle where a facade only re-exports.
#[test]
fn the_check_finds_a_circle_and_only_a_circle() {
    let dir = std::env::temp_dir().join(format!("module-cycles-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write(
        "lib.rs",
        "mod a; pub mod b; pub use b::Thing;\n#[cfg(test)] mod tests { use crate::a::X; }",
    );
    write(
        "a.rs",
        "pub struct X; pub fn f() -> crate::Thing { crate::b::Thing }",
    );
    write("b/mod.rs", "mod c; pub use c::Thing;");
    write(
        "b/c.rs",
        "pub struct Thing; fn g() { let _ = super::super::a::f; }",
    );
    let krate = Crate::load(&dir.join("lib.rs"));
    let circles = krate.circles();
    assert_eq!(circles.len(), 1, "{circles:#?}");
    assert_eq!(
        circles[0],
        vec![
            "a -> b::c (via crate::Thing)".to_owned(),
            "b::c -> a (via super::super::a::f)".to_owned(),
        ]
    );

    // Break it: `c` no longer calls back into `a`.
    write("b/c.rs", "pub struct Thing; fn g() { let _ = 1; }");
    let krate = Crate::load(&dir.join("lib.rs"));
    assert!(krate.circles().is_empty(), "{:#?}", krate.circles());
    assert!(
        krate.edges()[&vec!["a".to_owned()]].contains_key(&vec!["b".to_owned(), "c".to_owned()])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
