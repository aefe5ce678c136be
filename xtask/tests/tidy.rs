//! Tidy checks (rust-analyzer style): the workspace's documentation and layout rules,
//! run by `cargo test`, so that drift fails the day it happens.
//!
//! - every `.rs` file under a crate's `src/` opens with a `//!` doc;
//! - no file under a crate's `src/` is longer than 800 lines;
//! - every path that ARCHITECTURE.md's codemap names exists;
//! - the codemap names every source file (each `.rs` under a crate's `src/` and
//!   `fuzz/fuzz_targets/`), so a file added without its line fails here.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest file allowed under any `src/`: a file longer than this holds more than one
/// concern (STYLE.md, "one room per concern").
const MAX_LINES: usize = 800;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// Every crate directory: the workspace members plus `fuzz/` (outside the workspace).
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .expect("read the workspace root")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "found only {} crates", dirs.len());
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for c in crate_dirs(root) {
        rust_files(&c.join("src"), &mut files);
    }
    rust_files(&root.join("fuzz/fuzz_targets"), &mut files);
    files.sort();
    files
}

/// The first line that is not blank and not an inner attribute (`#![...]`).
fn first_meaningful_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("#!["))
}

#[test]
fn tidy_every_source_file_has_a_module_doc() {
    let root = workspace_root();
    let missing: Vec<String> = src_files(&root)
        .into_iter()
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            !first_meaningful_line(&text).is_some_and(|l| l.starts_with("//!"))
        })
        .map(|p| p.strip_prefix(&root).unwrap_or(&p).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` doc saying what they are for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn tidy_no_source_file_is_too_long() {
    let root = workspace_root();
    let long: Vec<String> = src_files(&root)
        .into_iter()
        .filter_map(|p| {
            let n = fs::read_to_string(&p).unwrap_or_default().lines().count();
            (n > MAX_LINES).then(|| {
                let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
                format!("{rel}: {n} lines")
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them by concern):\n  {}",
        long.join("\n  ")
    );
}

/// Backticked words in `line` that look like file or directory paths.
fn path_like(line: &str) -> Vec<String> {
    const EXTS: [&str; 8] = [
        ".rs", ".toml", ".md", ".json", ".svg", ".py", ".js", ".service",
    ];
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(|w| w.trim_end_matches(':').to_string())
        .filter(|w| {
            !w.contains(' ')
                && !w.contains("::")
                && !w.contains('*')
                && (EXTS.iter().any(|e| w.ends_with(e)) || (w.contains('/') && !w.starts_with('-')))
        })
        .collect()
}

/// Where a name in the codemap may be found: the root, the section's folder (a
/// heading like ``### `dht-core/src` ``), the bullet's crate (a bullet opening with
/// `` - `crate-name`: ``) or a sub-folder the bullet opened (`` - `node/`: ``).
///
/// `Some(paths)`: the files of the repository the name stands for (empty for what
/// programs write at run time and HTTP routes); `None`: nothing by that name.
fn resolve(root: &Path, bases: &[PathBuf], name: &str) -> Option<Vec<PathBuf>> {
    let name = name.trim_start_matches("./");
    // What programs write at run time, and HTTP routes: not files of the repository.
    if name.starts_with("DIR/") || name.starts_with("target/") || name.starts_with('/') {
        return Some(Vec::new());
    }
    let mut found: Vec<PathBuf> = Vec::new();
    if root.join(name).exists() {
        found.push(PathBuf::from(name));
    }
    for b in bases {
        for p in [b.join(name), b.join("src").join(name)] {
            if root.join(&p).exists() && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

/// What the codemap names: how many names were read, those that resolve to nothing,
/// and every file of the repository some name resolves to.
struct Codemap {
    checked: usize,
    missing: Vec<String>,
    covered: std::collections::BTreeSet<PathBuf>,
}

fn read_codemap(root: &Path) -> Codemap {
    let text = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text.find("## Codemap").expect("a Codemap section");
    let end = text[start + 1..]
        .find("\n## ")
        .map_or(text.len(), |i| start + 1 + i);
    let mut section: Option<PathBuf> = None;
    let mut bullet: Option<PathBuf> = None;
    let mut sub: Option<PathBuf> = None;
    // Folders a bullet names (`src/cli/`): later names of the bullet may be in them.
    let mut named: Vec<PathBuf> = Vec::new();
    let mut missing = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    let mut checked = 0;
    for line in text[start..end].lines() {
        if let Some(h) = line.strip_prefix("### ") {
            section = path_like(h).first().map(PathBuf::from);
            bullet = None;
            sub = None;
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("- `") {
            let first = rest.split('`').next().unwrap_or("");
            let indented = line.len() - trimmed.len() > 0;
            if !indented {
                bullet = (!first.contains('.') && root.join(first).is_dir())
                    .then(|| PathBuf::from(first));
                sub = None;
                named.clear();
            }
            if first.ends_with('/') {
                let base = section.clone().or(bullet.clone()).unwrap_or_default();
                sub = Some(base.join(first));
            }
        }
        let mut bases: Vec<PathBuf> = Vec::new();
        bases.extend(section.clone());
        bases.extend(bullet.clone());
        bases.extend(sub.clone());
        for name in path_like(line) {
            checked += 1;
            let all: Vec<PathBuf> = bases.iter().chain(named.iter()).cloned().collect();
            let Some(files) = resolve(root, &all, &name) else {
                missing.push(format!("{name} (in: {})", line.trim()));
                continue;
            };
            covered.extend(files);
            if name.ends_with('/') {
                for b in &bases {
                    if root.join(b).join(&name).is_dir() {
                        named.push(b.join(&name));
                    }
                }
                if root.join(&name).is_dir() {
                    named.push(PathBuf::from(&name));
                }
            }
        }
    }
    Codemap {
        checked,
        missing,
        covered,
    }
}

#[test]
fn tidy_codemap_names_only_paths_that_exist() {
    let root = workspace_root();
    let Codemap {
        checked, missing, ..
    } = read_codemap(&root);
    assert!(
        checked > 30,
        "the codemap names only {checked} paths: parsing broke"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's codemap names paths that do not exist:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn tidy_codemap_names_every_source_file() {
    let root = workspace_root();
    let covered = read_codemap(&root).covered;
    let unnamed: Vec<String> = src_files(&root)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).unwrap_or(&p).to_path_buf();
            (!covered.contains(&rel)).then(|| rel.display().to_string())
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md's codemap does not name these source files (add a line saying \
         what each is for):\n  {}",
        unnamed.join("\n  ")
    );
}

#[test]
fn tidy_every_crate_has_a_crate_doc() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for c in crate_dirs(&root) {
        for top in ["src/lib.rs", "src/main.rs"] {
            let p = c.join(top);
            if let Ok(text) = fs::read_to_string(&p) {
                if !first_meaningful_line(&text).is_some_and(|l| l.starts_with("//!")) {
                    missing.push(p.strip_prefix(&root).unwrap_or(&p).display().to_string());
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "crates without a crate doc: {missing:?}"
    );
}
