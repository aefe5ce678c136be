//! The two builds `cargo xtask perf` compares: the working tree, built into the target dir
//! cargo uses, and REF, checked out in a git worktree under `TARGET/perf/SHA/` (kept and
//! reused by later runs) and built into that worktree's own `target/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

/// Where REF's copy of the callgrind workloads is read from when REF predates them.
const INSTRUCTIONS_EXAMPLE: &str = "dht-core/examples/instructions.rs";

/// The release binaries of one build.
#[derive(Clone, Debug)]
pub struct Bins {
    pub node: PathBuf,
    pub xtask: PathBuf,
    pub sim: PathBuf,
    pub instructions: PathBuf,
}

/// REF, resolved and checked out.
#[derive(Debug)]
pub struct Reference {
    /// The full commit id.
    pub sha: String,
    pub worktree: PathBuf,
    /// REF has no `examples/instructions.rs`: the working tree's was copied into its worktree.
    pub copied_instructions: bool,
}

fn git(root: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("perf: cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "perf: git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Resolves `reference` to a commit and checks it out, detached, in `TARGET/perf/SHA12/`
/// (an existing checkout of the same commit is reused, with its build).
pub fn check_out(root: &Path, target: &Path, reference: &str) -> Result<Reference, Error> {
    let sha = git(
        root,
        &["rev-parse", "--verify", &format!("{reference}^{{commit}}")],
    )
    .map_err(|_| {
        Error::Failed(format!(
            "perf: `{reference}` is not a commit of this repository"
        ))
    })?;
    let worktree = target.join("perf").join(&sha[..12.min(sha.len())]);
    if worktree.exists() {
        let head = git(&worktree, &["rev-parse", "HEAD"]).unwrap_or_default();
        if head != sha {
            return Err(Error::Failed(format!(
                "perf: {} exists but is not a checkout of {sha}; remove it (`git worktree remove --force {}`)",
                worktree.display(),
                worktree.display()
            )));
        }
        eprintln!(
            "perf: reusing the worktree of {reference} at {}",
            worktree.display()
        );
    } else {
        // A worktree directory deleted by hand leaves its registration behind, which would
        // refuse the add.
        git(root, &["worktree", "prune"])?;
        let path = worktree.to_string_lossy();
        git(root, &["worktree", "add", "--detach", &path, &sha])?;
        eprintln!("perf: checked out {reference} at {}", worktree.display());
    }
    let in_ref = Command::new("git")
        .current_dir(root)
        .args(["cat-file", "-e", &format!("{sha}:{INSTRUCTIONS_EXAMPLE}")])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::Failed(format!("perf: cannot run git: {e}")))?
        .success();
    if !in_ref {
        // The workloads use only API that older builds have (the file says so), so the
        // working tree's copy measures REF's engine.
        let to = worktree.join(INSTRUCTIONS_EXAMPLE);
        let ours = std::fs::read_to_string(root.join(INSTRUCTIONS_EXAMPLE));
        let copied = ours.and_then(|text| {
            let text = for_older_api(&text, &worktree.join("dht-core/src/lib.rs"));
            to.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&to, text))
        });
        copied.map_err(|e| {
            Error::Failed(format!(
                "perf: cannot copy {INSTRUCTIONS_EXAMPLE} into {}: {e}",
                worktree.display()
            ))
        })?;
    }
    Ok(Reference {
        sha,
        worktree,
        copied_instructions: !in_ref,
    })
}

/// The routing table moved from the crate's root to `dht_core::kernel` when the kernel
/// became generic; a REF from before that (it has no `kernel` module) gets the
/// workloads' one import of it rewritten to the old path. Nothing else they use moved.
fn for_older_api(text: &str, ref_lib: &Path) -> String {
    let has_kernel = std::fs::read_to_string(ref_lib)
        .map(|lib| lib.contains("pub mod kernel"))
        .unwrap_or(true);
    if has_kernel {
        return text.to_string();
    }
    text.replace(
        "use dht_core::kernel::RoutingTable;",
        "use dht_core::RoutingTable;",
    )
}

/// Builds, in release mode, what a comparison runs from the workspace at `root` into
/// `target`: dht-node, xtask, dht-sim and dht-core's `instructions` example.
pub fn build(label: &str, root: &Path, target: &Path) -> Result<Bins, Error> {
    eprintln!(
        "perf: building {label}: dht-node, xtask, dht-sim and the instructions example (release) into {}",
        target.display()
    );
    let packages: &[&[&str]] = &[
        &["-p", "dht-node", "-p", "xtask", "-p", "dht-sim"],
        &["-p", "dht-core", "--example", "instructions"],
    ];
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for selection in packages {
        // Cargo's progress and errors go straight to our stderr.
        let status = Command::new(&cargo)
            .current_dir(root)
            .args(["build", "--release", "--quiet"])
            .args(*selection)
            .env("CARGO_TARGET_DIR", target)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| Error::Failed(format!("perf: cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(Error::Failed(format!(
                "perf: building {label} failed (cargo build {} above)",
                selection.join(" ")
            )));
        }
    }
    let release = target.join("release");
    let exe = |name: &str| release.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    Ok(Bins {
        node: exe("dht-node"),
        xtask: exe("xtask"),
        sim: exe("dht-sim"),
        instructions: release
            .join("examples")
            .join(format!("instructions{}", std::env::consts::EXE_SUFFIX)),
    })
}
