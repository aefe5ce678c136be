//! Ten `dht-node` processes on loopback over QUIC: the same put / get / announce /
//! peers scenarios as `cli_network.rs` over UDP, earlier puts surviving three kills,
//! and a killed peer noticed through timeouts and replaced in a survivor's routing
//! table. Also: the node key kept in the data dir, and QUIC and UDP as separate networks.

#![cfg(feature = "quic")]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{cli, describe, stdout, NodeProc, Scratch};

const NODES: usize = 10;

/// Flags of every node: QUIC, and housekeeping fast enough that a dead peer is pinged,
/// times out and leaves the table within seconds instead of BEP 5's 15 minutes.
/// Every process shares 127.0.0.1, so the per-address connection bound must allow them all.
const NODE_FLAGS: [&str; 10] = [
    "--transport",
    "quic",
    "--quic-max-conns-per-ip",
    "64",
    "--maintenance-ms",
    "300",
    "--questionable-after-ms",
    "1500",
    "--status-interval-ms",
    "200",
];

fn spawn(dir: &Path, name: &str, seeds: &[SocketAddr]) -> NodeProc {
    let routing = dir.join(format!("{name}.routing"));
    let routing = routing.to_str().expect("utf-8 path");
    let mut flags = NODE_FLAGS.to_vec();
    flags.extend(["--routing-file", routing]);
    NodeProc::spawn_args(dir, name, "127.0.0.1:0", seeds, &flags)
}

/// The addresses in a node's routing table, as it last wrote them.
fn routing_addrs(dir: &Path, name: &str) -> BTreeSet<SocketAddr> {
    std::fs::read_to_string(dir.join(format!("{name}.routing")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Polls `cond` every 100 ms for up to `secs` seconds.
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

fn network(dir: &Path) -> Vec<NodeProc> {
    let mut nodes: Vec<NodeProc> = Vec::new();
    nodes.push(spawn(dir, "n0", &[]));
    for i in 1..NODES {
        // Two seeds each, so that the network stays connected whichever node dies.
        let mut seeds = vec![nodes[0].addr];
        if i > 1 {
            seeds.push(nodes[i - 1].addr);
        }
        nodes.push(spawn(dir, &format!("n{i}"), &seeds));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the last bootstraps (and their handshakes) finish.
    std::thread::sleep(Duration::from_millis(1000));
    nodes
}

/// A one-shot command over QUIC.
fn quic(args: &[&str], via: &[SocketAddr]) -> std::process::Output {
    let mut all = vec!["--transport", "quic"];
    all.extend_from_slice(args);
    cli(&all, via)
}

fn put(value: &str, via: &[SocketAddr]) -> String {
    let o = quic(&["put", value], via);
    assert!(o.status.success(), "put {value}: {}", describe(&o));
    let target = stdout(&o).trim().to_string();
    assert_eq!(target.len(), 40, "put printed {target:?}");
    assert!(target.bytes().all(|b| b.is_ascii_hexdigit()));
    target
}

fn get(target: &str, via: &[SocketAddr]) -> String {
    let o = quic(&["get", target], via);
    assert!(o.status.success(), "get {target}: {}", describe(&o));
    stdout(&o).trim_end_matches('\n').to_string()
}

#[test]
fn ten_nodes_quic() {
    let dir = Scratch::new("quic");
    let mut nodes = network(&dir.0);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

    // Put through the first nodes, get through the last ones.
    let values: Vec<String> = (0..3).map(|i| format!("quic value {i}")).collect();
    let targets: Vec<String> = values.iter().map(|v| put(v, &addrs[..2])).collect();
    for (v, t) in values.iter().zip(&targets) {
        assert_eq!(&get(t, &addrs[NODES - 2..]), v);
    }

    // JSON output carries the value and the query's figures.
    let o = quic(&["get", &targets[0], "--json"], &addrs[NODES - 1..]);
    assert!(o.status.success(), "{}", describe(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["value"], values[0].as_str());
    assert!(j["stats"]["requests"].as_u64().unwrap_or(0) >= 1, "{j}");

    // A UDP client does not reach a QUIC network.
    let o = cli(&["get", &targets[0]], &addrs[NODES - 1..]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));

    // Announce and peers between the two sides.
    let ih = "cd".repeat(20);
    let o = quic(&["announce", &ih, "--port", "6999"], &addrs[..2]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = quic(&["peers", &ih], &addrs[NODES - 2..]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "{}", describe(&o));
    assert!(stdout(&o).trim().ends_with(":6999"), "{}", describe(&o));

    // The observer must know the nodes about to die, or their leaving proves nothing.
    let observer = format!("n{}", NODES - 1);
    let doomed: BTreeSet<SocketAddr> = addrs[2..5].iter().copied().collect();
    assert!(
        wait_for(20, || routing_addrs(&dir.0, &observer)
            .intersection(&doomed)
            .count()
            > 0),
        "{observer} never had n2..n4 in its table: {:?}",
        routing_addrs(&dir.0, &observer)
    );

    // Kill three nodes (never the ones the gets bootstrap from).
    for n in &mut nodes[2..5] {
        n.kill();
    }
    for (v, t) in values.iter().zip(&targets) {
        assert_eq!(&get(t, &addrs[NODES - 2..]), v, "after 3 kills");
    }
    let o = quic(&["peers", &ih], &addrs[NODES - 2..]);
    assert!(o.status.success(), "peers after 3 kills: {}", describe(&o));

    // Three newcomers join; the observer's pings to the dead time out, the dead
    // leave its table and newcomers take their places.
    let newcomers: Vec<NodeProc> = (0..3)
        .map(|i| spawn(&dir.0, &format!("new{i}"), &[addrs[0], addrs[NODES - 1]]))
        .collect();
    let fresh: BTreeSet<SocketAddr> = newcomers.iter().map(|n| n.addr).collect();
    let replaced = wait_for(30, || {
        let table = routing_addrs(&dir.0, &observer);
        table.is_disjoint(&doomed) && !table.is_disjoint(&fresh)
    });
    assert!(
        replaced,
        "dead peers not replaced in {observer}'s table: {:?} (dead {doomed:?}, new {fresh:?})",
        routing_addrs(&dir.0, &observer)
    );

    // A target nobody stored: exit 1 and one line on stderr.
    let o = quic(&["get", &"ab".repeat(20)], &addrs[NODES - 2..]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);

    // SIGTERM shuts a node down cleanly.
    let status = nodes[NODES - 1].terminate().expect("node exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn node_key_kept_in_data_dir() {
    let dir = Scratch::new("quic-key");
    let data = dir.0.join("data");
    let data_s = data.to_str().expect("utf-8 path");
    let flags = ["--transport", "quic", "--data-dir", data_s];

    let mut first = NodeProc::spawn_args(&dir.0, "a", "127.0.0.1:0", &[], &flags);
    let id = first.id();
    assert_eq!(id.len(), 40, "{}", first.log_text());
    assert!(first.terminate().expect("exits on SIGTERM").success());
    let key = std::fs::read(data.join("node.key")).expect("node.key written");
    assert_eq!(key.len(), 32);

    let mut again = NodeProc::spawn_args(&dir.0, "b", "127.0.0.1:0", &[], &flags);
    assert_eq!(again.id(), id, "same key, same id");
    assert!(again.terminate().expect("exits on SIGTERM").success());

    // Without a data dir, every start is a new identity.
    let mut fresh = NodeProc::spawn_args(&dir.0, "c", "127.0.0.1:0", &[], &flags[..2]);
    assert_ne!(fresh.id(), id);
    fresh.kill();

    // A damaged key is an error, never silently replaced (that would change the id).
    std::fs::write(data.join("node.key"), b"short").expect("write");
    let o = std::process::Command::new(common::BIN)
        .args(flags)
        .args(["--listen", "127.0.0.1:0", "--no-bootstrap"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run dht-node");
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("node.key"), "{err}");
    assert_eq!(
        std::fs::read(data.join("node.key")).expect("kept"),
        b"short"
    );
}

/// The library API the binary uses: the key in DIR/node.key is created once
/// (and DIR with it) and loaded the same afterwards.
#[test]
fn library_keeps_the_node_key_in_the_data_dir() {
    let dir = Scratch::new("quic-key-lib");
    let data = dir.0.join("data");
    let created = dht_node::identity::load_node_key(&data).expect("created");
    let loaded = dht_node::identity::load_node_key(&data).expect("loaded");
    assert_eq!(created.to_bytes(), loaded.to_bytes());
    assert!(data.join(dht_node::identity::NODE_KEY_FILE).is_file());
}

/// `/metrics` of a QUIC node counts its connections and handshakes (a UDP node's
/// exposition has no `dht_quic_` series).
#[test]
fn metrics_count_quic_connections() {
    use std::io::{Read, Write};
    let dir = Scratch::new("quic-metrics");
    let mut flags = NODE_FLAGS.to_vec();
    flags.extend(["--http", "127.0.0.1:0"]);
    let a = NodeProc::spawn_args(&dir.0, "a", "127.0.0.1:0", &[], &flags);
    let http: SocketAddr = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = a.log_text();
            if let Some(h) = log.lines().find_map(|l| l.strip_prefix("dht-node http=")) {
                break h.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "no http= line:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let scrape = || {
        let mut s = std::net::TcpStream::connect(http).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(value(&scrape(), "dht_quic_handshakes_total"), 0.0);
    let _b = spawn(&dir.0, "b", &[a.addr]);
    let ok = wait_for(10, || {
        let text = scrape();
        value(&text, "dht_quic_handshakes_total{direction=\"in\"}") >= 1.0
            && value(&text, "dht_quic_connections ") >= 1.0
    });
    assert!(ok, "no QUIC handshake or connection counted:\n{}", scrape());
}

/// `--no-local-exemption` reaches QUIC's per-address connection bound (issue 27): four
/// clients on 127.0.0.1 against `--quic-max-conns-per-ip 2` get two answers, not four.
/// Without the flag, loopback is exempt and all four would be answered (a testnet on
/// one address relies on that).
#[test]
fn no_local_exemption_holds_loopback_to_the_quic_connection_bound() {
    use dht_core::{OutDatagram, RecvSlot, Transport};
    use dht_net_quic::{generate_key, QuicConfig, QuicTransport};

    let dir = Scratch::new("quic-no-exemption");
    let flags = [
        "--transport",
        "quic",
        "--quic-max-conns-per-ip",
        "2",
        "--no-local-exemption",
    ];
    let node = NodeProc::spawn_args(&dir.0, "capped", "127.0.0.1:0", &[], &flags);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let answered = runtime.block_on(async {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut clients = Vec::new();
        for _ in 0..4 {
            let key = generate_key();
            // Over QUIC a query's id must be the one derived from the sender's key.
            let id = dht_core::key_derived_id(&key.verifying_key().to_bytes());
            let mut ping = b"d1:ad2:id20:".to_vec();
            ping.extend_from_slice(&id.0);
            ping.extend_from_slice(b"e1:q4:ping1:t2:aa1:y1:qe");
            let t = QuicTransport::bind(&[loopback], key, QuicConfig::default()).expect("bind");
            clients.push((t, ping));
        }
        for (c, ping) in &clients {
            c.send_batch(&[OutDatagram {
                to: node.addr,
                payload: ping,
            }])
            .await
            .expect("send");
            // One at a time, so that the first two connections are the ones let in.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut answered = 0;
        for (c, _) in &clients {
            let mut slots = vec![RecvSlot::new()];
            let got = tokio::time::timeout(Duration::from_secs(3), c.recv_batch(&mut slots)).await;
            if matches!(got, Ok(Ok(n)) if n > 0) {
                answered += 1;
            }
        }
        answered
    });
    assert_eq!(
        answered,
        2,
        "two of four loopback clients answered under --no-local-exemption; log:\n{}",
        std::fs::read_to_string(&node.log).unwrap_or_default()
    );
}
