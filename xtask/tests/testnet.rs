//! A tiny testnet end to end through the real binaries: five node processes, ten seconds of
//! workload, no churn. Ignored by default because it builds dht-node and dht-workload in
//! release mode and runs for about half a minute; run it with
//! `cargo test -p xtask --test testnet -- --ignored`.

use std::process::Command;

#[test]
#[ignore = "builds release binaries and runs node processes for ~30 s"]
fn tiny_testnet_passes_and_reports_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "testnet",
            "--nodes",
            "5",
            "--duration",
            "10",
            "--churn",
            "0",
        ])
        .args(["--ops-per-sec", "10", "--json"])
        .output()
        .expect("xtask runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xtask testnet failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("{\"success_rate\":"), "last line: {last}");
    assert!(last.ends_with('}'));
    assert!(last.contains("\"get_immutable\":{\"count\":"), "{last}");
}
