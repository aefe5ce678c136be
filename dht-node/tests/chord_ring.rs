//! `dht-node --overlay chord`: a ring of eight processes on loopback, a put through one
//! member and a get through another by the CLI one-shots (clients that never join), and
//! the errors a user meets.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{cli, describe, stdout, NodeProc, Scratch};

const CHORD: [&str; 2] = ["--overlay", "chord"];

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn a_ring_of_eight_processes_serves_a_put_and_a_get_through_different_members() {
    let dir = Scratch::new("chord-ring");
    let mut ring: Vec<NodeProc> = Vec::new();
    for i in 0..8 {
        // Each joins through the node started before it: no member knows them all.
        let bootstrap: Vec<_> = ring.last().map(|n| n.addr).into_iter().collect();
        ring.push(NodeProc::spawn_args(
            &dir.0,
            &format!("chord{i}"),
            "127.0.0.1:0",
            &bootstrap,
            &CHORD,
        ));
        if i < 7 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let last_start = Instant::now();

    let value = "a Chord value, exactly as put: ünïcödé";
    let deadline = last_start + Duration::from_secs(5);
    let (mut key, mut got) = (None, None);
    while Instant::now() < deadline && got.is_none() {
        // Put again until the get finds it: a put through a ring still converging may
        // land where the settled ring's gets do not look (the same key each time).
        let put = cli(&[CHORD[0], CHORD[1], "put", value], &[ring[2].addr]);
        if put.status.success() {
            key = Some(last_line(&stdout(&put)).to_string());
        }
        if let Some(k) = &key {
            let get = cli(&[CHORD[0], CHORD[1], "get", k], &[ring[6].addr]);
            if get.status.success() {
                got = Some(last_line(&stdout(&get)).to_string());
            }
        }
        if got.is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let key = key.expect("the put did not succeed within 5 s of the last start");
    assert_eq!(key.len(), 40, "a 160-bit key in hex: {key}");
    assert!(
        key.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "lowercase hex: {key}"
    );
    assert_eq!(
        got.as_deref(),
        Some(value),
        "the get did not return the value within 5 s of the last start"
    );

    // A key nobody put: the ring answers, the value is not there, exit 1.
    let absent = cli(
        &[CHORD[0], CHORD[1], "get", &"0".repeat(40)],
        &[ring[4].addr],
    );
    assert_eq!(absent.status.code(), Some(1), "{}", describe(&absent));
    assert!(stdout(&absent).is_empty(), "{}", describe(&absent));
    for n in &mut ring {
        n.kill();
    }
}

#[test]
fn chord_needs_a_member_or_a_new_ring_and_refuses_mainline_flags() {
    let node = std::process::Command::new(common::BIN)
        .args(["--overlay", "chord", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run dht-node");
    assert_eq!(node.status.code(), Some(2), "{}", describe(&node));
    let err = String::from_utf8_lossy(&node.stderr);
    assert!(
        err.contains("--bootstrap") && err.contains("--no-bootstrap"),
        "{err}"
    );

    let put = cli(&[CHORD[0], CHORD[1], "put", "v"], &[]);
    assert_eq!(put.status.code(), Some(2), "{}", describe(&put));
    assert!(String::from_utf8_lossy(&put.stderr).contains("--bootstrap"));

    for flags in [
        &["--transport", "quic"][..],
        &["--store", "sled"],
        &["--read-only"],
    ] {
        let mut args = vec![
            CHORD[0],
            CHORD[1],
            "--listen",
            "127.0.0.1:0",
            "--no-bootstrap",
        ];
        args.extend_from_slice(flags);
        let o = std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .expect("run dht-node");
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", describe(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Mainline's"),
            "{flags:?}: {}",
            describe(&o)
        );
    }
    let announce = cli(
        &[
            CHORD[0],
            CHORD[1],
            "announce",
            &"1".repeat(40),
            "--port",
            "1",
        ],
        &["127.0.0.1:9".parse().unwrap()],
    );
    assert_eq!(announce.status.code(), Some(2), "{}", describe(&announce));
}

/// One HTTP/1.0 GET: the status and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to --http");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The `--http` address from the "dht-node http=..." line of a node's log.
fn http_addr(node: &NodeProc) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = node
            .log_text()
            .lines()
            .find_map(|l| l.strip_prefix("dht-node http=")?.trim().parse().ok());
        if let Some(a) = found {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "no http= line:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `/readyz` answers 200, within 10 s.
fn wait_ready(http: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(http, "/readyz");
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "not ready: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_chord_node_serves_health_readiness_and_its_counters() {
    let dir = Scratch::new("chord-http");
    let http = ["--overlay", "chord", "--http", "127.0.0.1:0"];
    let first = NodeProc::spawn_args(&dir.0, "first", "127.0.0.1:0", &[], &http);
    let first_http = http_addr(&first);
    assert_eq!(http_get(first_http, "/healthz").0, 200);
    // Alone on the ring it created: settled at once.
    let body = wait_ready(first_http);
    assert!(body.contains("\"settled\":true"), "{body}");

    let second = NodeProc::spawn_args(&dir.0, "second", "127.0.0.1:0", &[first.addr], &http);
    let second_http = http_addr(&second);
    wait_ready(second_http);
    wait_ready(first_http);
    let (status, metrics) = http_get(second_http, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "dht_datagrams_received_total",
        "dht_queries_answered_total",
        "chord_successors 1",
        "chord_predecessor_known 1",
        "dht_ready 1",
        "dht_lookups_total{kind=\"join\",outcome=\"found\"} 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}
