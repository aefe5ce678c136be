//! `dht-node --store sled`: what a node acknowledged survives SIGKILL, a restarted
//! node keeps its id and rejoins through its saved table with `--no-bootstrap`, and
//! data dirs it must not use are refused through the CLI with one clear line.

#![cfg(feature = "sled")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{cli, describe, stdout, NodeProc, Scratch, BIN};

/// The durability bound `dht-node --help` documents for acknowledged writes.
const T: Duration = Duration::from_secs(1);

fn sled_node(dir: &Path, name: &str, data: &Path, seeds: &[SocketAddr]) -> NodeProc {
    let data = data.to_str().expect("utf-8 path");
    let routing = dir.join(format!("{name}.routing"));
    let routing = routing.to_str().expect("utf-8 path");
    let flags = [
        "--store",
        "sled",
        "--data-dir",
        data,
        "--status-interval-ms",
        "200",
        "--routing-file",
        routing,
    ];
    NodeProc::spawn_args(dir, name, "127.0.0.1:0", seeds, &flags)
}

fn routing_addrs(dir: &Path, name: &str) -> Vec<SocketAddr> {
    std::fs::read_to_string(dir.join(format!("{name}.routing")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// A node on `data` that must fail to start: its exit status and stderr.
fn refused(data: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args([
            "--store",
            "sled",
            "--listen",
            "127.0.0.1:0",
            "--no-bootstrap",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run dht-node")
}

fn assert_refused(o: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{what}: {}", describe(o));
    assert!(o.stdout.is_empty(), "{what}: {}", describe(o));
    assert_eq!(err.lines().count(), 1, "{what}: {}", describe(o));
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn acknowledged_put_survives_sigkill() {
    let dir = Scratch::new("sled-kill");
    let data = dir.0.join("data");
    let mut node = sled_node(&dir.0, "a", &data, &[]);
    let id = node.id();
    assert_eq!(id.len(), 40, "{}", node.log_text());

    // The node alone holds what it acknowledges.
    let o = cli(&["put", "kept across SIGKILL", "--json"], &[node.addr]);
    assert!(o.status.success(), "{}", describe(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["stored_at"][0], node.addr.to_string().as_str(), "{j}");
    let target = j["target"].as_str().expect("target").to_string();
    let ih = "cd".repeat(20);
    let o = cli(&["announce", &ih, "--port", "6999"], &[node.addr]);
    assert!(o.status.success(), "{}", describe(&o));

    std::thread::sleep(T + Duration::from_millis(500));
    node.kill();

    let again = sled_node(&dir.0, "b", &data, &[]);
    assert_eq!(again.id(), id, "the node id is kept in the data dir");
    let o = cli(&["get", &target], &[again.addr]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(stdout(&o), "kept across SIGKILL\n");
    let o = cli(&["peers", &ih], &[again.addr]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(stdout(&o).trim().ends_with(":6999"), "{}", describe(&o));
}

#[test]
fn restart_rejoins_from_saved_table_without_bootstrap() {
    let dir = Scratch::new("sled-rejoin");
    let data = dir.0.join("data");
    let b = NodeProc::spawn(&dir.0, "b", "127.0.0.1:0", &[]);
    let c = NodeProc::spawn(&dir.0, "c", "127.0.0.1:0", &[b.addr]);
    let mut a = sled_node(&dir.0, "a", &data, &[b.addr, c.addr]);
    let id = a.id();
    assert!(
        wait_for(10, || routing_addrs(&dir.0, "a").len() >= 2),
        "a did not join: {:?}",
        routing_addrs(&dir.0, "a")
    );
    // A clean stop saves the routing table.
    assert!(a.terminate().expect("exits on SIGTERM").success());

    let mut a = sled_node(&dir.0, "a2", &data, &[]);
    assert_eq!(a.id(), id);
    assert!(
        wait_for(10, || {
            let t = routing_addrs(&dir.0, "a2");
            t.contains(&b.addr) && t.contains(&c.addr)
        }),
        "a did not rejoin through its saved table: {:?}\n{}",
        routing_addrs(&dir.0, "a2"),
        a.log_text()
    );
    // It answers under its old id.
    let o = cli(&["ping", &a.addr.to_string()], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(stdout(&o).trim(), id, "{}", describe(&o));
    assert!(a.terminate().expect("exits on SIGTERM").success());
}

#[test]
fn unusable_data_dirs_are_refused() {
    let dir = Scratch::new("sled-refused");

    // Someone else's directory.
    let foreign = dir.0.join("foreign");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), b"mine").expect("write");
    assert_refused(
        &refused(&foreign, &[]),
        "foreign",
        "not a dht data directory",
    );
    assert_eq!(
        std::fs::read(foreign.join("notes.txt")).expect("kept"),
        b"mine"
    );
    assert_eq!(std::fs::read_dir(&foreign).expect("dir").count(), 1);

    // A data dir of a format from the future.
    let newer = dir.0.join("newer");
    std::fs::create_dir_all(&newer).expect("mkdir");
    std::fs::write(newer.join(dht_store_sled::MARKER), b"format 99\n").expect("write");
    assert_refused(&refused(&newer, &[]), "newer", "format 99");

    // In use by a running node.
    let busy = dir.0.join("busy");
    let holder = sled_node(&dir.0, "holder", &busy, &[]);
    assert_refused(&refused(&busy, &[]), "locked", "in use by another process");
    drop(holder);

    // Corrupt: the database is behind what was flushed (damaged or truncated files).
    let damaged = dir.0.join("damaged");
    let mut node = sled_node(&dir.0, "damaged", &damaged, &[]);
    assert!(node.terminate().expect("exits on SIGTERM").success());
    std::fs::write(
        damaged.join(dht_store_sled::FLUSHED),
        b"generation 999999\n",
    )
    .expect("write");
    assert_refused(&refused(&damaged, &[]), "corrupt", "corrupt");

    // Corrupt: a marker that names no version.
    let garbled = dir.0.join("garbled");
    std::fs::create_dir_all(&garbled).expect("mkdir");
    std::fs::write(garbled.join(dht_store_sled::MARKER), b"\xff\xfe").expect("write");
    assert_refused(&refused(&garbled, &[]), "garbled", "corrupt");

    // sled without a data dir is a usage error.
    let o = Command::new(BIN)
        .args(["--store", "sled", "--no-bootstrap"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run dht-node");
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

/// The library API the binary uses: the UDP node id kept in a sled data dir is
/// the same after the store is closed and reopened.
#[test]
fn library_keeps_the_node_id_in_the_data_dir() {
    let scratch = Scratch::new("sled-keep-id");
    let data = scratch.0.join("data");
    let first = {
        let mut store = dht_store_sled::SledStore::open(&data).expect("open");
        dht_node::identity::kept_node_id(&mut store).expect("kept id")
    };
    let mut store = dht_store_sled::SledStore::open(&data).expect("reopen");
    assert_eq!(store.node_id().expect("read"), Some(first));
    assert_eq!(
        dht_node::identity::kept_node_id(&mut store).expect("kept id"),
        first
    );
}
