//! What `contrib/` ships, checked with the tools operators use: the systemd unit with
//! `systemd-analyze verify` (on a copy whose ExecStart is the built binary: verify
//! fails when the binary is absent), the alert rules with `promtool check rules`, the
//! sample config by the binary. A missing tool skips its check with the reason printed.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dht-node");

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib")
}

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        eprintln!(
            "skipping: {name} is not installed (apt-get install -y {})",
            match name {
                "promtool" => "prometheus",
                _ => "systemd",
            }
        );
    }
    found
}

#[test]
fn systemd_unit_verifies() {
    if !tool("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(contrib().join("systemd/dht-node.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/dht-node "));
    let dir = std::env::temp_dir().join(format!("dht-node-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("dht-node.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/dht-node", BIN)).unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn alert_rules_check() {
    if !tool("promtool") {
        return;
    }
    let o = Command::new("promtool")
        .args(["check", "rules"])
        .arg(contrib().join("prometheus/dht-node.rules.yml"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn sample_config_is_accepted() {
    let o = Command::new(BIN)
        .arg("--config")
        .arg(contrib().join("dht-node.toml"))
        .args(["config", "--print-default"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
