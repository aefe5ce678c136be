//! `cargo xtask api`: each library crate's public API, one item a line with its signature,
//! in `api/CRATE.txt`; `--check` fails when an API changed and its file was not regenerated.
//!
//! Read from rustdoc's JSON output, which the stable toolchain gives with `RUSTC_BOOTSTRAP=1`,
//! parsed as plain `serde_json` values: no nightly toolchain (rustup cannot fetch one here),
//! no `rustdoc-types` or `cargo public-api` to build. `RUSTC_BOOTSTRAP` reaches rustdoc alone,
//! through a wrapper given as `RUSTDOC`: cargo tracks it for rustc, and set for all of
//! `cargo doc` it would check every dependency again instead of sharing clippy's artifacts.
//! The renderer reads one format version ([`FORMAT_VERSION`]); another stops with a message.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::testnet::{target_dir, workspace_root};
use crate::{out, Error, Options};

pub const USAGE: &str = "\
cargo xtask api: the public API of each library crate, one item a line, in api/CRATE.txt

USAGE:
    cargo xtask api [--check] [-p CRATE]...

Documents every library crate (all features) as rustdoc JSON (RUSTC_BOOTSTRAP=1 for
rustdoc alone) and writes each public item reachable from the crate root (modules,
re-exports, types, public fields and variants, functions and methods with signatures, trait
items and implementations, Send and Sync included, constants) as one sorted line to
api/CRATE.txt at the workspace root; #[doc(hidden)] items are left out. Commit the files
with the change: a diff of api/ is the API change.

OPTIONS:
    --check              Write nothing; exit 1 naming every crate whose API differs from
                         its api/CRATE.txt (and the lines that differ), or whose file is
                         missing or left over
    -p, --package CRATE  Only this crate (repeatable)        [default: every library crate]
    -h, --help           Print this help";

/// The rustdoc JSON format version this renderer reads (`format_version` in the output).
const FORMAT_VERSION: u64 = 57;

/// How many differing lines `--check` prints per crate.
const SHOWN_DIFFERENCES: usize = 20;

pub fn run(args: &[String]) -> Result<(), Error> {
    let mut options = Options::new(args, "api ");
    let mut check = false;
    let mut only = Vec::new();
    while let Some((name, inline)) = options.next_name() {
        match name {
            "-h" | "--help" => {
                out!("{USAGE}");
                return Ok(());
            }
            "--check" => check = true,
            "-p" | "--package" => only.push(options.value(name, inline)?.to_string()),
            other => return Err(options.usage(format!("unknown option `{other}`"))),
        }
    }
    let root = workspace_root();
    let target = target_dir(&root);
    let mut crates = library_crates(&root)?;
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|c| !crates.contains(c)) {
            return Err(options.usage(format!("`{unknown}` is not a library crate here")));
        }
        crates.retain(|c| only.contains(c));
    }
    document(&root, &target, &crates)?;
    let api_dir = root.join("api");
    let mut changed = Vec::new();
    for name in &crates {
        let text = render_file(&target.join(format!("doc/{}.json", name.replace('-', "_"))))?;
        let file = api_dir.join(format!("{name}.txt"));
        let old = fs::read_to_string(&file).ok();
        if old.as_deref() == Some(text.as_str()) {
            continue;
        }
        if check {
            eprintln!("{name}: the API differs from api/{name}.txt");
            print_difference(old.as_deref().unwrap_or(""), &text);
            changed.push(name.clone());
        } else {
            fs::create_dir_all(&api_dir)
                .and_then(|()| fs::write(&file, &text))
                .map_err(|e| failed("write", &file, e))?;
            out!("api: wrote api/{name}.txt ({} items)", text.lines().count());
        }
    }
    if only.is_empty() {
        for stale in left_over_files(&api_dir, &crates) {
            let file = api_dir.join(format!("{stale}.txt"));
            if check {
                eprintln!("{stale}: api/{stale}.txt names no library crate of the workspace");
                changed.push(stale);
            } else {
                fs::remove_file(&file).map_err(|e| failed("remove", &file, e))?;
            }
        }
    }
    if changed.is_empty() {
        out!("api: the API of {} crates is in api/", crates.len());
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the public API of {} changed without api/CRATE.txt: run `cargo xtask api` and \
             commit api/",
            changed.join(", ")
        )))
    }
}

/// The workspace members that have a library target, by package name, sorted.
fn library_crates(root: &Path) -> Result<Vec<String>, Error> {
    let output = Command::new(cargo())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .output();
    let metadata: Value = match output {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        other => return Err(Error::Failed(format!("cargo metadata: {other:?}"))),
    };
    let mut crates: Vec<String> = list(&metadata["packages"])
        .filter(|p| {
            list(&p["targets"]).any(|t| list(&t["kind"]).any(|k| k == "lib" || k == "proc-macro"))
        })
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    crates.sort();
    Ok(crates)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs rustdoc's JSON backend over `crates` into TARGET/doc/CRATE.json.
fn document(root: &Path, target: &Path, crates: &[String]) -> Result<(), Error> {
    let wrapper = write_rustdoc_wrapper(target)?;
    let mut command = Command::new(cargo());
    command
        .args(["doc", "--no-deps", "--all-features", "--lib"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTDOC", &wrapper)
        .env("RUSTDOCFLAGS", "-Z unstable-options --output-format json")
        .env_remove("RUSTC_BOOTSTRAP");
    for name in crates {
        command.args(["-p", name]);
    }
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        other => Err(Error::Failed(format!(
            "cargo doc (rustdoc JSON): {other:?}"
        ))),
    }
}

/// TARGET/api/rustdoc: runs the real rustdoc (RUSTDOC as the user set it, or the one on the
/// PATH) with RUSTC_BOOTSTRAP=1, so that only rustdoc sees it.
fn write_rustdoc_wrapper(target: &Path) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let real = std::env::var("RUSTDOC").unwrap_or_else(|_| "rustdoc".into());
    let dir = target.join("api");
    let wrapper = dir.join("rustdoc");
    let script = format!(
        "#!/bin/sh\n# Written by `cargo xtask api`: rustdoc's JSON output needs RUSTC_BOOTSTRAP.\n\
         RUSTC_BOOTSTRAP=1 exec '{}' \"$@\"\n",
        real.replace('\'', r"'\''")
    );
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&wrapper, script))
        .and_then(|()| fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)))
        .map_err(|e| failed("write", &wrapper, e))?;
    Ok(wrapper)
}

/// api/*.txt files whose crate is gone.
fn left_over_files(api_dir: &Path, crates: &[String]) -> Vec<String> {
    let files = fs::read_dir(api_dir).into_iter().flatten().flatten();
    let names = files.filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".txt")?.into()));
    let mut stale: Vec<String> = names.filter(|n| !crates.contains(n)).collect();
    stale.sort();
    stale
}

fn print_difference(old: &str, new: &str) {
    let old: BTreeSet<&str> = old.lines().collect();
    let new: BTreeSet<&str> = new.lines().collect();
    let removed = old.difference(&new).map(|l| format!("  - {l}"));
    let added = new.difference(&old).map(|l| format!("  + {l}"));
    let lines: Vec<String> = removed.chain(added).collect();
    for line in lines.iter().take(SHOWN_DIFFERENCES) {
        eprintln!("{line}");
    }
    if lines.len() > SHOWN_DIFFERENCES {
        eprintln!("  ... and {} more", lines.len() - SHOWN_DIFFERENCES);
    }
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Failed(format!("{what} {}: {e}", path.display()))
}

/// Reads one crate's rustdoc JSON and returns its api/CRATE.txt.
fn render_file(json: &Path) -> Result<String, Error> {
    let bytes = fs::read(json).map_err(|e| failed("read", json, e))?;
    let mut doc: Value = serde_json::from_slice(&bytes).map_err(|e| failed("parse", json, e))?;
    let version = doc["format_version"].as_u64().unwrap_or(0);
    if version != FORMAT_VERSION {
        return Err(Error::Failed(format!(
            "{}: rustdoc JSON format {version}, but xtask/src/api.rs reads format \
             {FORMAT_VERSION}: teach it the new format (and regenerate api/)",
            json.display()
        )));
    }
    let paths = doc["paths"].take();
    name_unnamed_paths(&mut doc["index"], &paths);
    let index = doc["index"]
        .as_object()
        .ok_or_else(|| Error::Failed(format!("{}: no index", json.display())))?;
    let api = Api {
        index,
        root: &doc["root"],
        lines: BTreeSet::new(),
        walked: HashSet::new(),
    };
    Ok(api.render()?.into_iter().map(|line| line + "\n").collect())
}

/// Fills in the name of a path that rustdoc left empty (`<C as Contact>::Key` in derived
/// impls comes with an empty trait path) from the crate's table of paths.
fn name_unnamed_paths(value: &mut Value, paths: &Value) {
    match value {
        Value::Object(o) => {
            if o.get("path").is_some_and(|p| p == "") {
                let id = o.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let known = list(&paths[id.to_string()]["path"]).last().cloned();
                o.insert("path".into(), known.unwrap_or_else(|| "?".into()));
            }
            o.values_mut().for_each(|v| name_unnamed_paths(v, paths));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| name_unnamed_paths(v, paths)),
        _ => {}
    }
}

/// One crate's rustdoc JSON being walked from its root module.
struct Api<'a> {
    index: &'a serde_json::Map<String, Value>,
    root: &'a Value,
    lines: BTreeSet<String>,
    /// (item id, path) pairs already walked: a glob re-export can lead back to a module.
    walked: HashSet<(u64, String)>,
}

impl<'a> Api<'a> {
    fn render(mut self) -> Result<BTreeSet<String>, Error> {
        let root = self
            .item(self.root)
            .ok_or_else(|| Error::Failed("rustdoc JSON without its root module".into()))?;
        let name = root["name"].as_str().unwrap_or("crate").to_string();
        self.lines.insert(format!("pub mod {name}"));
        self.module(root, &name);
        Ok(self.lines)
    }

    fn item(&self, id: &Value) -> Option<&'a Value> {
        lookup(self.index, id)
    }

    fn module(&mut self, module: &'a Value, path: &str) {
        let Some(id) = module["id"].as_u64() else {
            return;
        };
        if !self.walked.insert((id, path.to_string())) {
            return;
        }
        for child in list(&module["inner"]["module"]["items"]) {
            if let Some(child) = self.item(child) {
                self.public_item(child, path, None);
            }
        }
    }

    /// One item reachable at `parent::name` (`name` is the re-export's, if renamed).
    fn public_item(&mut self, item: &'a Value, parent: &str, rename: Option<&str>) {
        let name = rename.or(item["name"].as_str()).unwrap_or("_");
        let path = format!("{parent}::{name}");
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else {
            return;
        };
        let line = match kind.as_str() {
            "module" => {
                self.lines.insert(format!("pub mod {path}"));
                self.module(item, &path);
                return;
            }
            "use" => return self.reexport(inner, parent),
            "struct" | "union" => return self.structure(item, inner, &path, kind),
            "enum" => return self.enumeration(item, inner, &path),
            "trait" => return self.trait_(inner, &path),
            "function" => format!("pub {}", function(inner, &path)),
            "constant" => {
                // A literal's value is part of the API; an expression is shown by its type.
                let expr = &inner["const"]["expr"];
                let value = if inner["const"]["is_literal"] == true {
                    text(expr)
                } else {
                    String::new()
                };
                let value = opt(" = ", value);
                format!("pub const {path}: {}{value}", ty(&inner["type"]))
            }
            "static" => {
                let mutable = flag(&inner["is_mutable"], "mut ");
                format!("pub static {mutable}{path}: {}", ty(&inner["type"]))
            }
            "type_alias" => {
                let g = &inner["generics"];
                let (params, bounds) = (params(g), where_clause(g));
                format!("pub type {path}{params} = {}{bounds}", ty(&inner["type"]))
            }
            "macro" => format!("pub macro_rules! {path}"),
            "proc_macro" => format!("pub proc_macro({}) {path}", text(&inner["kind"])),
            "trait_alias" => format!("pub trait alias {path}"),
            "extern_crate" => format!("pub extern crate {path}"),
            other => format!("pub {other} {path}"),
        };
        self.lines.insert(line);
    }

    fn reexport(&mut self, inner: &'a Value, parent: &str) {
        let source = text(&inner["source"]);
        let name = text(&inner["name"]);
        let target = self.item(&inner["id"]);
        if inner["is_glob"] == true {
            match target {
                Some(module) if module["inner"].get("module").is_some() => {
                    self.module(module, parent)
                }
                _ => {
                    self.lines
                        .insert(format!("pub use {parent}::* = {source}::*"));
                }
            }
        } else if let Some(target) = target {
            self.public_item(target, parent, Some(&name));
        } else {
            self.lines
                .insert(format!("pub use {parent}::{name} = {source}"));
        }
    }

    /// A struct (its public fields a line each, tuple fields in its own line) or a union.
    fn structure(&mut self, item: &'a Value, inner: &'a Value, path: &str, keyword: &str) {
        let g = &inner["generics"];
        let kind = &inner["kind"];
        let attrs = attributes(item);
        let shape = if let Some(fields) = kind["tuple"].as_array() {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| match self.item(f) {
                    Some(field) => format!("pub {}", ty(&field["inner"]["struct_field"])),
                    None => "_".into(),
                })
                .collect();
            format!("({})", fields.join(", "))
        } else {
            String::new()
        };
        let head = format!("{attrs}pub {keyword} {path}{}{shape}", params(g));
        self.lines.insert(format!("{head}{}", where_clause(g)));
        let named = kind
            .get("plain")
            .map_or(&inner["fields"], |plain| &plain["fields"]);
        let index = self.index;
        for field in list(named).filter_map(|f| lookup(index, f)) {
            let (name, field_ty) = (text(&field["name"]), ty(&field["inner"]["struct_field"]));
            self.lines.insert(format!("pub {path}::{name}: {field_ty}"));
        }
        self.impls(&inner["impls"], path);
    }

    fn enumeration(&mut self, item: &'a Value, inner: &'a Value, path: &str) {
        let g = &inner["generics"];
        let attrs = attributes(item);
        let (params, bounds) = (params(g), where_clause(g));
        self.lines
            .insert(format!("{attrs}pub enum {path}{params}{bounds}"));
        for variant in list(&inner["variants"]) {
            let Some(variant) = self.item(variant) else {
                continue;
            };
            let v = &variant["inner"]["variant"];
            let field = |id: &Value| -> Option<(String, String)> {
                let f = self.item(id)?;
                Some((text(&f["name"]), ty(&f["inner"]["struct_field"])))
            };
            let shape = if let Some(fields) = v["kind"]["tuple"].as_array() {
                let types: Vec<String> = fields
                    .iter()
                    .map(|f| field(f).map_or("_".into(), |(_, t)| t))
                    .collect();
                format!("({})", types.join(", "))
            } else if let Some(fields) = v["kind"]["struct"]["fields"].as_array() {
                let named: Vec<String> = fields
                    .iter()
                    .filter_map(field)
                    .map(|(n, t)| format!("{n}: {t}"))
                    .collect();
                format!(" {{ {} }}", named.join(", "))
            } else {
                String::new()
            };
            let discriminant = opt(" = ", text(&v["discriminant"]["expr"]));
            let (attrs, name) = (attributes(variant), text(&variant["name"]));
            self.lines
                .insert(format!("{attrs}pub {path}::{name}{shape}{discriminant}"));
        }
        self.impls(&inner["impls"], path);
    }

    fn trait_(&mut self, inner: &'a Value, path: &str) {
        let g = &inner["generics"];
        let unsafety = flag(&inner["is_unsafe"], "unsafe ");
        let auto = flag(&inner["is_auto"], "auto ");
        let supertraits = opt(": ", bounds(&inner["bounds"]));
        let (params, bounds) = (params(g), where_clause(g));
        self.lines.insert(format!(
            "pub {unsafety}{auto}trait {path}{params}{supertraits}{bounds}"
        ));
        let index = self.index;
        for member in list(&inner["items"]).filter_map(|m| lookup(index, m)) {
            self.lines.insert(associated(member, path, true));
        }
    }

    /// A type's inherent methods and the traits it implements (blanket impls left out: they
    /// follow from the traits, not from the type).
    fn impls(&mut self, impls: &Value, path: &str) {
        for id in list(impls) {
            let Some(imp) = self.item(id) else {
                continue;
            };
            let imp = &imp["inner"]["impl"];
            // Blanket impls, and the auto traits that are not stable Rust (`Freeze`,
            // `UnsafeUnpin`, `StructuralPartialEq`): not something a user can rely on.
            let unstable = ["Freeze", "UnsafeUnpin", "StructuralPartialEq"];
            let trait_name = text(&imp["trait"]["path"]);
            if !imp["blanket_impl"].is_null() || unstable.contains(&trait_name.as_str()) {
                continue;
            }
            let members: Vec<&Value> = list(&imp["items"]).filter_map(|m| self.item(m)).collect();
            if imp["trait"].is_null() {
                for member in members {
                    if member["visibility"] == "public" {
                        self.lines.insert(associated(member, path, false));
                    }
                }
                continue;
            }
            let g = &imp["generics"];
            let unsafety = flag(&imp["is_unsafe"], "unsafe ");
            let negative = flag(&imp["is_negative"], "!");
            let for_args = generic_args(&imp["for"]["resolved_path"]["args"]);
            let assoc_types: Vec<String> = members
                .iter()
                .filter_map(|m| {
                    let t = m["inner"].get("assoc_type")?;
                    Some(format!("type {} = {};", text(&m["name"]), ty(&t["type"])))
                })
                .collect();
            let body = wrapped(" { ", &assoc_types, " ", " }");
            self.lines.insert(format!(
                "{unsafety}impl{} {negative}{} for {path}{for_args}{}{body}",
                params(g),
                path_ty(&imp["trait"]),
                where_clause(g)
            ));
        }
    }
}

/// The item with id `id` (an integer) in the crate's index.
fn lookup<'a>(index: &'a serde_json::Map<String, Value>, id: &Value) -> Option<&'a Value> {
    index.get(&id.as_u64()?.to_string())
}

/// A method, associated constant or associated type of a trait or an inherent impl.
fn associated(member: &Value, owner: &str, in_trait: bool) -> String {
    let path = format!("{owner}::{}", text(&member["name"]));
    let inner = &member["inner"];
    if let Some(f) = inner.get("function") {
        let provided = flag(&Value::Bool(in_trait && f["has_body"] == true), " { .. }");
        format!("pub {}{provided}", function(f, &path))
    } else if let Some(c) = inner.get("assoc_const") {
        format!("pub const {path}: {}", ty(&c["type"]))
    } else if let Some(t) = inner.get("assoc_type") {
        let b = opt(": ", bounds(&t["bounds"]));
        let default = opt(" = ", ty(&t["type"]));
        format!("pub type {path}{}{b}{default}", params(&t["generics"]))
    } else {
        let kind = inner.as_object().and_then(|o| o.keys().next().cloned());
        format!("pub {} {path}", kind.unwrap_or_default())
    }
}

/// `#[non_exhaustive] `, the one attribute that changes what users may write.
fn attributes(item: &Value) -> &'static str {
    let non_exhaustive = list(&item["attrs"]).any(|a| a.to_string().contains("non_exhaustive"));
    flag(&Value::Bool(non_exhaustive), "#[non_exhaustive] ")
}

/// The elements of a JSON array (none for anything else).
fn list(value: &Value) -> std::slice::Iter<'_, Value> {
    value.as_array().map(|a| a.iter()).unwrap_or_default()
}

/// `word` when `value` is JSON `true`.
fn flag(value: &Value, word: &'static str) -> &'static str {
    if *value == true {
        word
    } else {
        ""
    }
}

/// `items` joined by `separator` between `open` and `close`, or nothing when there are none.
fn wrapped(open: &str, items: &[String], separator: &str, close: &str) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!("{open}{}{close}", items.join(separator))
    }
}

/// `prefix` and `s`, or nothing when `s` is empty.
fn opt(prefix: &str, s: String) -> String {
    if s.is_empty() {
        s
    } else {
        format!("{prefix}{s}")
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `const async unsafe fn path<G>(args) -> out where ..`
fn function(f: &Value, path: &str) -> String {
    let header = &f["header"];
    let words = [
        ("is_const", "const "),
        ("is_async", "async "),
        ("is_unsafe", "unsafe "),
    ];
    let mut qualifiers: String = words.iter().map(|(k, w)| flag(&header[k], w)).collect();
    if header["abi"] != "Rust" && !header["abi"].is_null() {
        qualifiers.push_str(&format!("extern {} ", text(&header["abi"])));
    }
    let sig = &f["sig"];
    let inputs: Vec<String> = list(&sig["inputs"])
        .map(|input| {
            let name = text(&input[0]);
            let t = &input[1];
            if name == "self" {
                match ty(t).as_str() {
                    "Self" => "self".into(),
                    "&Self" => "&self".into(),
                    "&mut Self" => "&mut self".into(),
                    other => format!("self: {other}"),
                }
            } else {
                format!("{name}: {}", ty(t))
            }
        })
        .collect();
    let output = returns(&sig["output"]);
    let g = &f["generics"];
    format!(
        "{qualifiers}fn {path}{}({}){output}{}",
        params(g),
        inputs.join(", "),
        where_clause(g)
    )
}

/// `<'a, T: Bound, const N: usize>` (impl-Trait argument types, which rustdoc lists as
/// synthetic parameters, are left out: they show in the arguments).
fn params(generics: &Value) -> String {
    let params: Vec<String> = list(&generics["params"])
        .filter_map(|p| {
            let name = text(&p["name"]);
            let kind = &p["kind"];
            if let Some(l) = kind.get("lifetime") {
                Some(name + &opt(": ", strings(&l["outlives"]).join(" + ")))
            } else if let Some(t) = kind.get("type") {
                if t["is_synthetic"] == true {
                    return None;
                }
                let default = opt(" = ", ty(&t["default"]));
                Some(name + &opt(": ", bounds(&t["bounds"])) + &default)
            } else {
                let c = &kind["const"];
                Some(format!("const {name}: {}", ty(&c["type"])))
            }
        })
        .collect();
    wrapped("<", &params, ", ", ">")
}

fn where_clause(generics: &Value) -> String {
    let predicates: Vec<String> = list(&generics["where_predicates"])
        .map(|p| {
            if let Some(b) = p.get("bound_predicate") {
                let hrtb = higher_ranked(&b["generic_params"]);
                format!("{hrtb}{}: {}", ty(&b["type"]), bounds(&b["bounds"]))
            } else if let Some(l) = p.get("lifetime_predicate") {
                let outlives = strings(&l["outlives"]).join(" + ");
                format!("{}: {outlives}", text(&l["lifetime"]))
            } else {
                let e = &p["eq_predicate"];
                format!("{} == {}", ty(&e["lhs"]), term(&e["rhs"]))
            }
        })
        .collect();
    wrapped(" where ", &predicates, ", ", "")
}

fn strings(values: &Value) -> Vec<String> {
    list(values).map(text).collect()
}

/// `for<'a> ` of a higher-ranked bound.
fn higher_ranked(generic_params: &Value) -> String {
    let names: Vec<String> = list(generic_params).map(|p| text(&p["name"])).collect();
    wrapped("for<", &names, ", ", "> ")
}

fn bounds(bounds: &Value) -> String {
    let bounds: Vec<String> = list(bounds).map(bound).collect();
    bounds.join(" + ")
}

fn bound(bound: &Value) -> String {
    if let Some(t) = bound.get("trait_bound") {
        let modifier = match t["modifier"].as_str() {
            Some("maybe") => "?",
            Some("maybe_const") => "~const ",
            _ => "",
        };
        let hrtb = higher_ranked(&t["generic_params"]);
        format!("{hrtb}{modifier}{}", path_ty(&t["trait"]))
    } else if let Some(l) = bound.get("outlives") {
        text(l)
    } else if let Some(captures) = bound.get("use").and_then(Value::as_array) {
        let capture = |c: &Value| {
            c.as_object()
                .and_then(|o| o.values().next())
                .map_or(text(c), text)
        };
        let names: Vec<String> = captures.iter().map(capture).collect();
        format!("use<{}>", names.join(", "))
    } else {
        text(bound)
    }
}

/// A path as a type or trait: its last segment (what the reader sees in the docs; how the
/// source spells it, `io::Result` or `Result`, is not API) and its generic arguments.
fn path_ty(path: &Value) -> String {
    let name = text(&path["path"]);
    let name = name.rsplit("::").next().unwrap_or(&name).to_string();
    format!("{name}{}", generic_args(&path["args"]))
}

fn generic_args(args: &Value) -> String {
    if let Some(a) = args.get("angle_bracketed") {
        // An argument is a type, a lifetime, a const ({expr}) or `infer`, as is a type.
        let arg = |a: &Value| match a.get("const") {
            Some(c) => text(&c["expr"]),
            None => a
                .get("lifetime")
                .map_or_else(|| ty(a.get("type").unwrap_or(a)), text),
        };
        let mut items: Vec<String> = list(&a["args"]).map(arg).collect();
        for c in list(&a["constraints"]) {
            let name = format!("{}{}", text(&c["name"]), generic_args(&c["args"]));
            items.push(match c["binding"].get("equality") {
                Some(t) => format!("{name} = {}", term(t)),
                None => format!("{name}: {}", bounds(&c["binding"]["constraint"])),
            });
        }
        wrapped("<", &items, ", ", ">")
    } else if let Some(p) = args.get("parenthesized") {
        let inputs: Vec<String> = list(&p["inputs"]).map(ty).collect();
        format!("({}){}", inputs.join(", "), returns(&p["output"]))
    } else if args.is_null() {
        String::new()
    } else {
        "(..)".into()
    }
}

/// ` -> T`, or nothing for `()`.
fn returns(output: &Value) -> String {
    match output {
        Value::Null => String::new(),
        t => format!(" -> {}", ty(t)),
    }
}

fn term(term: &Value) -> String {
    match term.get("type") {
        Some(t) => ty(t),
        None => text(&term["constant"]["expr"]),
    }
}

fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return match t.as_str() {
            Some("infer") => "_".into(),
            _ => text(t),
        };
    };
    match kind.as_str() {
        "resolved_path" => path_ty(v),
        "dyn_trait" => {
            let hrtb = |p: &Value| higher_ranked(&p["generic_params"]) + &path_ty(&p["trait"]);
            let mut parts: Vec<String> = list(&v["traits"]).map(hrtb).collect();
            parts.extend(v["lifetime"].as_str().map(str::to_string));
            format!("dyn {}", parts.join(" + "))
        }
        "generic" | "primitive" => text(v),
        "tuple" => {
            let items: Vec<String> = list(v).map(ty).collect();
            match items.len() {
                1 => format!("({},)", items[0]),
                _ => format!("({})", items.join(", ")),
            }
        }
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), text(&v["len"])),
        "pat" => ty(&v["type"]),
        "impl_trait" => format!("impl {}", bounds(v)),
        "raw_pointer" => {
            let m = ["const", "mut"][usize::from(v["is_mutable"] == true)];
            format!("*{m} {}", ty(&v["type"]))
        }
        "borrowed_ref" => {
            let lifetime = v["lifetime"]
                .as_str()
                .map_or(String::new(), |l| format!("{l} "));
            let m = flag(&v["is_mutable"], "mut ");
            format!("&{lifetime}{m}{}", ty(&v["type"]))
        }
        "qualified_path" => {
            let name = format!("{}{}", text(&v["name"]), generic_args(&v["args"]));
            match &v["trait"] {
                Value::Null => format!("{}::{name}", ty(&v["self_type"])),
                tr => format!("<{} as {}>::{name}", ty(&v["self_type"]), path_ty(tr)),
            }
        }
        "function_pointer" => {
            let f = serde_json::json!({
                "sig": v["sig"],
                "header": v["header"],
                "generics": {"params": [], "where_predicates": []},
            });
            let hrtb = higher_ranked(&v["generic_params"]);
            format!("{hrtb}{}", function(&f, "").replacen("fn ", "fn", 1))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_render_as_written() {
        let t = serde_json::json!({"borrowed_ref": {"lifetime": "'a", "is_mutable": true,
            "type": {"slice": {"primitive": "u8"}}}});
        assert_eq!(ty(&t), "&'a mut [u8]");
        let t = serde_json::json!({"resolved_path": {"path": "std::io::Result", "id": 1,
            "args": {"angle_bracketed": {"args": [{"type": {"tuple": []}}], "constraints": []}}}});
        assert_eq!(ty(&t), "Result<()>");
    }
}
