//! What the development learner reads from a source file, behind a trait so that a second
//! language can follow Rust.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// How a name was imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// `use a::b::C;` (also inside a group `use a::{b::C, D};`).
    Plain,
    /// `use a::B as C;`: the file says `C`.
    Rename,
    /// `use a::b::*;`
    Glob,
}

/// One imported name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The name the file uses (`C` for `use a::B as C`; the module for `use a::b::{self}`).
    pub leaf: String,
    /// The full path, `::`-joined, without a leading `::` (`a::b::*` for a glob).
    pub path: String,
    /// Plain, renamed or glob.
    pub kind: ImportKind,
    /// Whether it sat in a group (`{…}`) with others.
    pub grouped: bool,
    /// Index of its `use` item in the file (imports of one item share it).
    pub item: usize,
}

impl Import {
    /// The path's first segment (`std`, `serde`, `crate`, `super`, `self`).
    pub fn root(&self) -> &str {
        self.path.split("::").next().unwrap_or("")
    }

    /// Whether it names something of this crate (`crate::`, `self::`, `super::`).
    pub fn is_local(&self) -> bool {
        matches!(self.root(), "crate" | "self" | "super")
    }
}

/// A kind of named item, for naming conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    /// `fn` (free, method or associated).
    Function,
    /// `struct`, `enum`, `union`, `type`.
    Type,
    /// `trait`.
    Trait,
    /// `const`, `static`.
    Constant,
    /// `mod`.
    Module,
    /// A local `let` binding or a parameter.
    Binding,
    /// An enum variant.
    Variant,
    /// A generic type parameter.
    TypeParam,
}

/// What was read from one file.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Its imports, in file order.
    pub imports: Vec<Import>,
    /// Every identifier outside `use` items (macro bodies included).
    pub used: BTreeSet<String>,
    /// First segments of qualified paths outside `use` items (`std` in `std::mem::swap`).
    pub roots: BTreeSet<String>,
    /// Names the file defines, by kind.
    pub defined: Vec<(ItemKind, String)>,
    /// Words of its attributes' string values and flags (`std` in `#[cfg(feature = "std")]`,
    /// `no_std` in `#![no_std]`): what the file is built for.
    pub attributes: BTreeSet<String>,
    /// Where each defined name is (for style checks), in file order.
    pub sites: Vec<NameSite>,
    /// The file's top-level `use` items, in order.
    pub use_items: Vec<UseItem>,
    /// `let name = …;` bindings with what they are bound to.
    pub bindings: Vec<BindingSite>,
    /// Naming lints the file turns off (`non_snake_case`, …): its names are its own business.
    pub allowed_lints: BTreeSet<String>,
    /// What the file makes public: `pub` items and `pub use` re-exports, each as the path of
    /// inline modules inside the file (empty at its top) and the public name.
    pub exports: Vec<(Vec<String>, String)>,
    /// Its top-level `mod` items, in file order.
    pub modules: Vec<ModuleDecl>,
}

/// A top-level `mod` item: how a file lays out its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDecl {
    /// The module's name.
    pub name: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
    /// `mod m { … }` rather than `mod m;` (a file of its own).
    pub inline: bool,
    /// Under `#[cfg(test)]`: the file's unit tests.
    pub cfg_test: bool,
    /// Placed with `#[path = "…"]`: where its file is, is its own business.
    pub path_attr: bool,
    /// The file's last item.
    pub last: bool,
}

/// A defined name and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameSite {
    /// What it names.
    pub kind: ItemKind,
    /// The name.
    pub name: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
}

/// Where a `use` path leads: the standard library, another crate, or this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UseClass {
    /// `std`, `core`, `alloc`.
    Std,
    /// Another crate.
    External,
    /// `crate::`, `self::`, `super::`.
    Local,
}

impl UseClass {
    /// Its name in findings and patterns.
    pub fn as_str(self) -> &'static str {
        match self {
            UseClass::Std => "std",
            UseClass::External => "external",
            UseClass::Local => "local",
        }
    }

    /// The class of a path's first segment.
    pub fn of_root(root: &str) -> Self {
        match root {
            "std" | "core" | "alloc" => UseClass::Std,
            "crate" | "self" | "super" => UseClass::Local,
            _ => UseClass::External,
        }
    }
}

/// One top-level `use` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseItem {
    /// Where its path leads.
    pub class: UseClass,
    /// `pub use` (a re-export: placed by what it exports, not by habit).
    pub public: bool,
    /// First and last line (1-based).
    pub lines: (usize, usize),
}

/// A `let` binding of a single name, with what its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingSite {
    /// The name.
    pub name: String,
    /// What the value is: `call:File::open`, `method:iter`, `struct:Config`, `macro:vec`.
    pub context: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// Line of the error (1-based).
    pub line: usize,
    /// Column (1-based).
    pub column: usize,
    /// What the parser said.
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// A programming language the learner reads.
pub trait Language: Send + Sync {
    /// Its name (`rust`).
    fn name(&self) -> &'static str;
    /// Reads one file.
    fn extract(&self, source: &str) -> Result<Extracted, SourceError>;
}

/// Rust, through `syn`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rust;

impl Language for Rust {
    fn name(&self) -> &'static str {
        "rust"
    }

    fn extract(&self, source: &str) -> Result<Extracted, SourceError> {
        // syn recurses once per level of nesting: bounded before it runs, or a crafted file
        // would exhaust the thread's stack.
        if let Some((line, column)) = too_deep(source) {
            return Err(SourceError {
                line,
                column,
                message: format!("nested more than {MAX_NESTING} levels deep"),
            });
        }
        let file = syn::parse_file(source).map_err(|e| {
            let start = e.span().start();
            SourceError {
                line: start.line,
                column: start.column + 1,
                message: e.to_string(),
            }
        })?;
        let mut out = Extracted::default();
        collect_exports(&file.items, &mut Vec::new(), &mut out.exports);
        let mut item = 0;
        for (index, i) in file.items.iter().enumerate() {
            if let syn::Item::Mod(m) = i {
                let start = m.ident.span().start();
                out.modules.push(ModuleDecl {
                    name: m.ident.to_string(),
                    line: start.line,
                    column: start.column + 1,
                    inline: m.content.is_some(),
                    cfg_test: m.attrs.iter().any(cfg_test),
                    path_attr: m.attrs.iter().any(|a| a.path().is_ident("path")),
                    last: index + 1 == file.items.len(),
                });
            }
            collect_uses(i, &mut out.imports, &mut item);
            if let syn::Item::Use(u) = i {
                let root = match &u.tree {
                    syn::UseTree::Path(p) => p.ident.to_string(),
                    syn::UseTree::Name(n) => n.ident.to_string(),
                    syn::UseTree::Rename(r) => r.ident.to_string(),
                    _ => String::new(),
                };
                out.use_items.push(UseItem {
                    class: UseClass::of_root(&root),
                    public: !matches!(u.vis, syn::Visibility::Inherited),
                    lines: (
                        u.use_token.span.start().line,
                        u.semi_token.span.start().line,
                    ),
                });
            }
        }
        let mut v = Walker { out: &mut out };
        v.visit_file(&file);
        // `use shapes::Polygon` beside `mod shapes;` names this crate's module (2018 paths):
        // spelled `self::` so that it is not taken for a crate called `shapes`.
        let modules: BTreeSet<String> = out
            .defined
            .iter()
            .filter(|(k, _)| *k == ItemKind::Module)
            .map(|(_, n)| n.clone())
            .collect();
        for i in &mut out.imports {
            if modules.contains(i.root()) {
                i.path = format!("self::{}", i.path);
            }
        }
        Ok(out)
    }
}

/// Whether an attribute is `#[cfg(test)]`.
fn cfg_test(a: &syn::Attribute) -> bool {
    a.path().is_ident("cfg")
        && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string().trim() == "test")
}

/// Nesting of brackets beyond which a file is refused.
pub const MAX_NESTING: usize = 128;

/// Where `source` first nests `(`, `[` or `{` deeper than [`MAX_NESTING`] (line and column,
/// 1-based), counting outside string literals and comments.
fn too_deep(source: &str) -> Option<(usize, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let (mut in_str, mut in_line_comment, mut block) = (false, false, 0usize);
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        i += 1;
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            in_line_comment = false;
            continue;
        }
        if in_line_comment {
            continue;
        }
        if block > 0 {
            if c == '*' && next == Some('/') {
                i += 1;
                block -= 1;
            } else if c == '/' && next == Some('*') {
                i += 1;
                block += 1;
            }
            continue;
        }
        if in_str {
            match c {
                '\\' => i += 1,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if next == Some('/') => in_line_comment = true,
            '/' if next == Some('*') => {
                i += 1;
                block = 1;
            }
            // A character literal: `'('`, `'\\''`.
            '\'' if next == Some('\\') => i += 3,
            '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((line, column));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn collect_uses(item: &syn::Item, out: &mut Vec<Import>, index: &mut usize) {
    match item {
        syn::Item::Use(u) => {
            let grouped = matches!(u.tree, syn::UseTree::Group(_))
                || matches!(&u.tree, syn::UseTree::Path(p) if has_group(&p.tree));
            use_tree(&u.tree, &mut Vec::new(), grouped, *index, out);
            *index += 1;
        }
        // `use` inside inline modules and functions counts too.
        syn::Item::Mod(m) => {
            for i in m.content.iter().flat_map(|(_, items)| items) {
                collect_uses(i, out, index);
            }
        }
        syn::Item::Fn(f) => {
            for s in &f.block.stmts {
                if let syn::Stmt::Item(i) = s {
                    collect_uses(i, out, index);
                }
            }
        }
        _ => {}
    }
}

/// The public names of `items` (inside the inline modules `prefix`).
fn collect_exports(
    items: &[syn::Item],
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    let public = |v: &syn::Visibility| matches!(v, syn::Visibility::Public(_));
    for item in items {
        let named = match item {
            syn::Item::Fn(f) if public(&f.vis) => Some(&f.sig.ident),
            syn::Item::Struct(s) if public(&s.vis) => Some(&s.ident),
            syn::Item::Enum(e) if public(&e.vis) => Some(&e.ident),
            syn::Item::Union(u) if public(&u.vis) => Some(&u.ident),
            syn::Item::Trait(t) if public(&t.vis) => Some(&t.ident),
            syn::Item::Type(t) if public(&t.vis) => Some(&t.ident),
            syn::Item::Const(c) if public(&c.vis) => Some(&c.ident),
            syn::Item::Static(s) if public(&s.vis) => Some(&s.ident),
            syn::Item::Mod(m) if public(&m.vis) => {
                if let Some((_, inner)) = &m.content {
                    prefix.push(m.ident.to_string());
                    collect_exports(inner, prefix, out);
                    prefix.pop();
                }
                Some(&m.ident)
            }
            syn::Item::Use(u) if public(&u.vis) => {
                let mut imports = Vec::new();
                use_tree(&u.tree, &mut Vec::new(), false, 0, &mut imports);
                for i in imports {
                    if i.kind != ImportKind::Glob && i.leaf != "self" {
                        out.push((prefix.clone(), i.leaf));
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(ident) = named {
            out.push((prefix.clone(), ident.to_string()));
        }
    }
}

fn has_group(t: &syn::UseTree) -> bool {
    match t {
        syn::UseTree::Group(_) => true,
        syn::UseTree::Path(p) => has_group(&p.tree),
        _ => false,
    }
}

fn use_tree(
    t: &syn::UseTree,
    prefix: &mut Vec<String>,
    grouped: bool,
    item: usize,
    out: &mut Vec<Import>,
) {
    let join = |prefix: &[String], last: &str| {
        let mut p = prefix.join("::");
        if !p.is_empty() {
            p.push_str("::");
        }
        p.push_str(last);
        p
    };
    match t {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_tree(&p.tree, prefix, grouped, item, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push(Import {
                        leaf: last.clone(),
                        path: prefix.join("::"),
                        kind: ImportKind::Plain,
                        grouped,
                        item,
                    });
                }
            } else {
                out.push(Import {
                    leaf: name.clone(),
                    path: join(prefix, &name),
                    kind: ImportKind::Plain,
                    grouped,
                    item,
                });
            }
        }
        syn::UseTree::Rename(r) => {
            let original = r.ident.to_string();
            let path = if original == "self" {
                prefix.join("::")
            } else {
                join(prefix, &original)
            };
            out.push(Import {
                leaf: r.rename.to_string(),
                path,
                kind: ImportKind::Rename,
                grouped,
                item,
            });
        }
        syn::UseTree::Glob(_) => out.push(Import {
            leaf: "*".to_string(),
            path: join(prefix, "*"),
            kind: ImportKind::Glob,
            grouped,
            item,
        }),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_tree(t, prefix, true, item, out);
            }
        }
    }
}

/// What a bound value comes from, as a binding-name context: the function or method called,
/// the struct built, the macro expanded.
fn value_context(e: &syn::Expr) -> Option<String> {
    let last_two = |p: &syn::Path| {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        segs[segs.len().saturating_sub(2)..].join("::")
    };
    match e {
        syn::Expr::Call(c) => match &*c.func {
            syn::Expr::Path(p) => Some(format!("call:{}", last_two(&p.path))),
            _ => None,
        },
        syn::Expr::MethodCall(m) => Some(format!("method:{}", m.method)),
        syn::Expr::Struct(s) => s
            .path
            .segments
            .last()
            .map(|l| format!("struct:{}", l.ident)),
        syn::Expr::Macro(m) => m
            .mac
            .path
            .segments
            .last()
            .map(|l| format!("macro:{}", l.ident)),
        syn::Expr::Try(t) => value_context(&t.expr),
        syn::Expr::Await(a) => value_context(&a.base),
        syn::Expr::Reference(r) => value_context(&r.expr),
        syn::Expr::Paren(p) => value_context(&p.expr),
        _ => None,
    }
}

/// String literals of an attribute's arguments (`"std"` of `feature = "std"`).
fn attribute_words(ts: &TokenStream, out: &mut BTreeSet<String>) {
    for tt in ts.clone() {
        match tt {
            TokenTree::Literal(l) => {
                let s = l.to_string();
                if let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
                    && inner.len() <= 32
                {
                    out.insert(inner.to_string());
                }
            }
            TokenTree::Group(g) => attribute_words(&g.stream(), out),
            _ => {}
        }
    }
}

struct Walker<'a> {
    out: &'a mut Extracted,
}

impl Walker<'_> {
    fn define(&mut self, kind: ItemKind, ident: &proc_macro2::Ident) {
        let name = ident.to_string();
        let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
        let at = ident.span().start();
        self.out.sites.push(NameSite {
            kind,
            name: name.clone(),
            line: at.line,
            column: at.column + 1,
        });
        self.out.defined.push((kind, name));
    }

    fn tokens(&mut self, ts: &TokenStream) {
        let mut prev_colons = 0u8;
        let mut last_ident: Option<String> = None;
        for tt in ts.clone() {
            match tt {
                TokenTree::Ident(i) => {
                    let s = i.to_string();
                    self.out.used.insert(s.clone());
                    last_ident = Some(s);
                    prev_colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' => {
                    prev_colons += 1;
                    if prev_colons == 2
                        && let Some(root) = &last_ident
                    {
                        self.out.roots.insert(root.clone());
                    }
                }
                TokenTree::Group(g) => {
                    self.tokens(&g.stream());
                    last_ident = None;
                    prev_colons = 0;
                }
                _ => {
                    last_ident = None;
                    prev_colons = 0;
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if let Some(id) = a.path().get_ident() {
            let name = id.to_string();
            if name == "no_std" {
                self.out.attributes.insert(name.clone());
            }
            if matches!(name.as_str(), "allow" | "expect")
                && let syn::Meta::List(l) = &a.meta
            {
                for tt in l.tokens.clone() {
                    if let TokenTree::Ident(i) = tt {
                        let lint = i.to_string();
                        if lint.starts_with("non_") || lint == "nonstandard_style" {
                            self.out.allowed_lints.insert(lint);
                        }
                    }
                }
            }
        }
        if let syn::Meta::List(l) = &a.meta {
            attribute_words(&l.tokens, &mut self.out.attributes);
        }
        syn::visit::visit_attribute(self, a);
    }

    fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
        self.out.used.insert(i.to_string());
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.segments.len() > 1
            && let Some(first) = p.segments.first()
        {
            self.out.roots.insert(first.ident.to_string());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(&m.tokens);
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        let ident = match &l.pat {
            syn::Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
            syn::Pat::Type(t) => match &*t.pat {
                syn::Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
                _ => None,
            },
            _ => None,
        };
        if let (Some(ident), Some(init)) = (ident, &l.init)
            && let Some(context) = value_context(&init.expr)
        {
            let at = ident.span().start();
            self.out.bindings.push(BindingSite {
                name: ident.to_string(),
                context,
                line: at.line,
                column: at.column + 1,
            });
        }
        syn::visit::visit_local(self, l);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.define(ItemKind::Function, &f.sig.ident);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.define(ItemKind::Function, &f.sig.ident);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        self.define(ItemKind::Type, &s.ident);
        syn::visit::visit_item_struct(self, s);
    }

    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        self.define(ItemKind::Type, &e.ident);
        for v in &e.variants {
            self.define(ItemKind::Variant, &v.ident);
        }
        syn::visit::visit_item_enum(self, e);
    }

    fn visit_item_type(&mut self, t: &'ast syn::ItemType) {
        self.define(ItemKind::Type, &t.ident);
        syn::visit::visit_item_type(self, t);
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.define(ItemKind::Trait, &t.ident);
        syn::visit::visit_item_trait(self, t);
    }

    fn visit_item_const(&mut self, c: &'ast syn::ItemConst) {
        self.define(ItemKind::Constant, &c.ident);
        syn::visit::visit_item_const(self, c);
    }

    fn visit_item_static(&mut self, s: &'ast syn::ItemStatic) {
        self.define(ItemKind::Constant, &s.ident);
        syn::visit::visit_item_static(self, s);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.define(ItemKind::Module, &m.ident);
        syn::visit::visit_item_mod(self, m);
    }

    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        // `None` or `MAX` in a pattern names a variant or a constant, not a new binding.
        if !p.ident.to_string().starts_with(|c: char| c.is_uppercase()) {
            self.define(ItemKind::Binding, &p.ident);
        }
        syn::visit::visit_pat_ident(self, p);
    }

    fn visit_type_param(&mut self, t: &'ast syn::TypeParam) {
        self.define(ItemKind::TypeParam, &t.ident);
        syn::visit::visit_type_param(self, t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(src: &str) -> Vec<(String, String, ImportKind, bool)> {
        Rust.extract(src)
            .unwrap()
            .imports
            .into_iter()
            .map(|i| (i.leaf, i.path, i.kind, i.grouped))
            .collect()
    }

    #[test]
    fn every_import_form() {
        let got = paths(
            "use std::collections::HashMap;\n\
             use std::io::{self, Read as R, Write};\n\
             use ::serde::{de::{Deserialize, Visitor}, *};\n\
             use crate::store::Store;\n\
             use super::Thing;\n\
             pub use self::inner::Exported;\n\
             mod m { use core::fmt; }\n\
             fn f() { use std::mem::swap; }\n",
        );
        let want = [
            (
                "HashMap",
                "std::collections::HashMap",
                ImportKind::Plain,
                false,
            ),
            ("io", "std::io", ImportKind::Plain, true),
            ("R", "std::io::Read", ImportKind::Rename, true),
            ("Write", "std::io::Write", ImportKind::Plain, true),
            (
                "Deserialize",
                "serde::de::Deserialize",
                ImportKind::Plain,
                true,
            ),
            ("Visitor", "serde::de::Visitor", ImportKind::Plain, true),
            ("*", "serde::*", ImportKind::Glob, true),
            ("Store", "crate::store::Store", ImportKind::Plain, false),
            ("Thing", "super::Thing", ImportKind::Plain, false),
            (
                "Exported",
                "self::inner::Exported",
                ImportKind::Plain,
                false,
            ),
            ("fmt", "core::fmt", ImportKind::Plain, false),
            ("swap", "std::mem::swap", ImportKind::Plain, false),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b, k, g)| (a.to_string(), b.to_string(), *k, *g))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn used_names_include_macro_bodies_and_exclude_use_lines() {
        let e = Rust
            .extract(
                "use std::sync::Arc;\n\
                 fn f() { let m = HashMap::new(); println!(\"{}\", Ordering::SeqCst as u8); \
                 std::mem::drop(m); }\n",
            )
            .unwrap();
        assert!(e.used.contains("HashMap") && e.used.contains("Ordering"));
        assert!(!e.used.contains("Arc"), "{:?}", e.used);
        assert!(e.roots.contains("std") && e.roots.contains("HashMap"));
        assert!(e.defined.contains(&(ItemKind::Binding, "m".into())));
        assert!(e.defined.contains(&(ItemKind::Function, "f".into())));
    }

    #[test]
    fn top_level_modules_say_how_the_file_is_laid_out() {
        let e = Rust
            .extract(
                "mod a;\n#[path = \"x/b.rs\"]\nmod b;\npub mod c { fn f() {} }\n\
                 #[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n",
            )
            .unwrap();
        let got: Vec<(&str, usize, bool, bool, bool, bool)> = e
            .modules
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.line,
                    m.inline,
                    m.cfg_test,
                    m.path_attr,
                    m.last,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", 1, false, false, false, false),
                ("b", 3, false, false, true, false),
                ("c", 4, true, false, false, false),
                ("tests", 6, true, true, false, true),
            ]
        );
        // `cfg(not(test))` is not the unit tests.
        let e = Rust
            .extract("#[cfg(not(test))]\nmod m {}\nfn f() {}\n")
            .unwrap();
        assert!(!e.modules[0].cfg_test && !e.modules[0].last);
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_runs() {
        let deep = format!(
            "fn f() {{ let x = {}1{}; }}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let e = Rust.extract(&deep).unwrap_err();
        assert!(e.message.contains("nested more than"), "{e}");
        let ok = format!(
            "fn f() {{ let x = {}1{}; }}",
            "(".repeat(100),
            ")".repeat(100)
        );
        Rust.extract(&ok).unwrap();
        // Brackets in strings, comments and character literals do not count.
        let chars = format!(
            "fn f(c: char) -> bool {{ {} false }}",
            "c == '(' || c == '[' || ".repeat(300)
        );
        Rust.extract(&chars).unwrap();
        let s = format!(
            "fn f() {{ let s = \"{}\"; /* {} */ }}",
            "(".repeat(500),
            "[".repeat(500)
        );
        Rust.extract(&s).unwrap();
    }

    #[test]
    fn a_file_that_does_not_parse_says_where() {
        let e = Rust.extract("fn f( {\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(!e.message.is_empty());
    }
}
