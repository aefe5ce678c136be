//! Ten `dht-node` processes on loopback; the CLI puts on one side and gets on the other,
//! and earlier puts survive three nodes being killed. Once over IPv4, once over IPv6.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{cli, describe, stdout, NodeProc, Scratch};

const NODES: usize = 10;

fn network(dir: &std::path::Path, listen: &str) -> Vec<NodeProc> {
    let mut nodes: Vec<NodeProc> = Vec::new();
    nodes.push(NodeProc::spawn(dir, "n0", listen, &[]));
    for i in 1..NODES {
        // Two seeds each, so that the network stays connected whichever node dies.
        let mut seeds = vec![nodes[0].addr];
        if i > 1 {
            seeds.push(nodes[i - 1].addr);
        }
        nodes.push(NodeProc::spawn(dir, &format!("n{i}"), listen, &seeds));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the last bootstraps finish.
    std::thread::sleep(Duration::from_millis(800));
    nodes
}

fn put(value: &str, via: &[SocketAddr]) -> String {
    let o = cli(&["put", value], via);
    assert!(o.status.success(), "put {value}: {}", describe(&o));
    let target = stdout(&o).trim().to_string();
    assert_eq!(target.len(), 40, "put printed {target:?}");
    assert!(target.bytes().all(|b| b.is_ascii_hexdigit()));
    target
}

fn get(target: &str, via: &[SocketAddr]) -> String {
    let o = cli(&["get", target], via);
    assert!(o.status.success(), "get {target}: {}", describe(&o));
    stdout(&o).trim_end_matches('\n').to_string()
}

fn put_get_survives_kills(family: &str, listen: &str) {
    let dir = Scratch::new(family);
    let mut nodes = network(&dir.0, listen);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

    // Put through the first nodes, get through the last ones.
    let values: Vec<String> = (0..3).map(|i| format!("{family} value {i}")).collect();
    let targets: Vec<String> = values.iter().map(|v| put(v, &addrs[..2])).collect();
    for (v, t) in values.iter().zip(&targets) {
        assert_eq!(&get(t, &addrs[NODES - 2..]), v);
    }

    // JSON output carries the value and the query's figures.
    let o = cli(&["get", &targets[0], "--json"], &addrs[NODES - 1..]);
    assert!(o.status.success(), "{}", describe(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["value"], values[0].as_str());
    assert!(j["stats"]["requests"].as_u64().unwrap_or(0) >= 1, "{j}");
    assert!(j["stats"]["duration_ms"].is_u64(), "{j}");

    // Kill three nodes (never the ones the gets bootstrap from).
    for n in &mut nodes[2..5] {
        n.kill();
    }
    for (v, t) in values.iter().zip(&targets) {
        assert_eq!(&get(t, &addrs[NODES - 2..]), v, "after 3 kills");
    }

    // A target nobody stored: exit 1 and one line on stderr.
    let o = cli(&["get", &"ab".repeat(20)], &addrs[NODES - 2..]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(o.stdout.is_empty());
    assert!(!o.stderr.is_empty());

    // Announce and peers between the two sides.
    let ih = "cd".repeat(20);
    let o = cli(&["announce", &ih, "--port", "6999"], &addrs[..2]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = cli(&["peers", &ih], &addrs[NODES - 2..]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "{}", describe(&o));
    assert!(stdout(&o).trim().ends_with(":6999"), "{}", describe(&o));

    // SIGTERM shuts a node down cleanly.
    let status = nodes[NODES - 1].terminate().expect("node exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn ten_nodes_ipv4() {
    put_get_survives_kills("ipv4", "127.0.0.1:0");
}

#[test]
fn ten_nodes_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback on this host");
        return;
    }
    put_get_survives_kills("ipv6", "[::1]:0");
}

#[test]
fn mutable_put_get_and_keygen() {
    let dir = Scratch::new("mutable");
    let nodes = network(&dir.0, "127.0.0.1:0");
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let key = dir.0.join("key");
    let key_s = key.to_str().expect("utf-8 path");

    let o = cli(&["keygen", "--out", key_s], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let public = stdout(&o).trim().to_string();
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // keygen never overwrites a key.
    let o = cli(&["keygen", "--out", key_s], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));

    let o = cli(
        &["put", "--mutable", "--key", key_s, "--salt", "s", "first"],
        &addrs[..2],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let target = stdout(&o).trim().to_string();
    assert_eq!(target.len(), 40);

    let o = cli(
        &["get", "--mutable", &public, "--salt", "s"],
        &addrs[NODES - 2..],
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(stdout(&o), "first\n1\n");

    // Without --seq the next put takes the highest seen + 1.
    let o = cli(
        &["put", "--mutable", "--key", key_s, "--salt", "s", "second"],
        &addrs[3..5],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let o = cli(
        &["get", "--mutable", &public, "--salt", "s", "--json"],
        &addrs[NODES - 1..],
    );
    assert!(o.status.success(), "{}", describe(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["value"], "second");
    assert_eq!(j["seq"], 2);
    assert_eq!(j["target"], target.as_str());

    // A stale seq is refused by every node: a typed error, exit 3.
    let o = cli(
        &[
            "put",
            "--mutable",
            "--key",
            key_s,
            "--salt",
            "s",
            "--seq",
            "1",
            "old",
        ],
        &addrs[..2],
    );
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("302"), "{err}");

    // A CAS that does not match.
    let o = cli(
        &[
            "put",
            "--mutable",
            "--key",
            key_s,
            "--salt",
            "s",
            "--seq",
            "9",
            "--cas",
            "7",
            "x",
        ],
        &addrs[..2],
    );
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("301"),
        "{}",
        describe(&o)
    );
}

#[test]
fn usage_errors_exit_2_and_failures_exit_3() {
    for args in [
        &["get", "nothex"][..],
        &["--bogus-flag"][..],
        &["peers", "abcd"][..],
        &["put", "--salt", "x", "v"][..],
        &["--k", "0"][..],
        &["announce", &"ab".repeat(20), "--port", "0"][..],
    ] {
        let o = cli(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    // Nobody listens at the bootstrap address: exit 3.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let o = cli(&["get", &"ab".repeat(20)], &[addr]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        describe(&o)
    );
}
