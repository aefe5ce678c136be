//! Building the two programs a testnet runs, `dht-node` and `dht-workload`, with the
//! features the chosen transport and store need, into the target dir cargo uses.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Overlay, Store, TestnetConfig, Transport};
use crate::Error;

pub(crate) fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where cargo puts its output for users of this workspace: CARGO_TARGET_DIR if set
/// (relative to where we were started, as cargo reads it), else `target/` in the workspace.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::env::current_dir().unwrap_or_default().join(dir)
            }
        }
        _ => root.join("target"),
    }
}

#[derive(Debug)]
pub(super) struct Bins {
    pub(super) node: PathBuf,
    pub(super) workload: PathBuf,
}

/// Builds dht-node (with the features the transport and store need) and dht-workload.
pub(super) fn build(config: &TestnetConfig, root: &Path, target_dir: &Path) -> Result<Bins, Error> {
    let mut features = Vec::new();
    if config.all_features {
        // One build for every flavour: CI runs five testnets, and each feature set
        // is a build of its own (the ipfs one alone compiles libp2p for minutes).
        features.extend([
            "dht-node/quic",
            "dht-workload/quic",
            "dht-node/sled",
            "dht-node/ipfs",
        ]);
    } else if config.transport == Transport::Quic {
        features.push("dht-node/quic");
        features.push("dht-workload/quic");
    }
    if config.store == Store::Sled && !config.all_features {
        features.push("dht-node/sled");
    }
    if config.overlay == Overlay::Ipfs && !config.all_features {
        features.push("dht-node/ipfs");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "dht-node", "-p", "dht-workload"])
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    eprintln!(
        "testnet: building dht-node{} and dht-workload (release)",
        if features.is_empty() {
            String::new()
        } else {
            format!(" with {}", features.join(", "))
        }
    );
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Failed(format!("testnet: cannot run cargo: {e}")))?;
    // Cargo's own progress goes on to our stderr; its lines are kept to explain a failure.
    let mut lines = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            lines.push(line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::Failed(format!("testnet: cargo: {e}")))?;
    if !status.success() {
        let missing: Vec<String> = features
            .iter()
            .map(|f| f.trim_start_matches("dht-node/"))
            .filter(|name| {
                lines
                    .iter()
                    .any(|l| l.contains("feature") && l.contains(name))
            })
            .map(|name| format!("`{name}`"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Failed(format!(
                "testnet: dht-node has no {} feature in this checkout yet, so --transport {} \
                 --store {} cannot be built",
                missing.join(" / "),
                config.transport.name(),
                config.store.name()
            )));
        }
        return Err(Error::Failed(
            "testnet: building dht-node and dht-workload failed (cargo's output is above)".into(),
        ));
    }
    let release = target_dir.join("release");
    let exe = std::env::consts::EXE_SUFFIX;
    Ok(Bins {
        node: release.join(format!("dht-node{exe}")),
        workload: release.join(format!("dht-workload{exe}")),
    })
}
