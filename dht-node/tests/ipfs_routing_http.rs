//! `dht-node --overlay ipfs --http`'s Delegated Routing V1 API (`/routing/v1/...`),
//! through real processes on loopback: a provider announced by a one-shot found as
//! JSON and as NDJSON, a peer found, an IPNS record (made by js-ipns) PUT on one node
//! and read from another, 404 for a CID nobody provides, 400 for a malformed one,
//! and `--http-token-file` guarding the IPNS PUT; the first NDJSON provider sent
//! before a lookup slowed by stalled peers ends; identify's protocols in a peer record.
#![cfg(feature = "ipfs")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::ipfs::{http_addr, js_ipns_record, name_cid};
use common::{describe, run, stdout, IpfsProc, Scratch};

/// Content a one-shot provides (CIDv1, raw, base32).
const CID: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
/// Content nobody provides.
const CID_NOBODY: &str = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba";
const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// One HTTP/1.0 exchange: (status, head, body).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect --http");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: x\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).expect("read");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let body = bytes.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer { status, head, body }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Asks until the status is `want` (the network may still be settling), up to 10 s.
fn until_status(want: u16, ask: impl Fn() -> Answer) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = ask();
        if a.status == want || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn delegated_routing_over_the_dht() {
    let dir = Scratch::new("ipfs-routing-http");
    let token = dir.0.join("token");
    std::fs::write(&token, "s3cret\n").expect("token file");
    let token = token.to_str().expect("utf-8 path");
    let first = IpfsProc::spawn(
        &dir.0,
        "r0",
        &[
            "--mode",
            "server",
            "--no-bootstrap",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let seed = first.addrs[0].clone();
    let mut nodes = vec![first];
    for (i, extra) in [
        &[][..],
        &["--http", "127.0.0.1:0", "--http-token-file", token],
    ]
    .iter()
    .enumerate()
    {
        let args = [&["--mode", "server", "--bootstrap", &seed][..], extra].concat();
        nodes.push(IpfsProc::spawn(&dir.0, &format!("r{}", i + 1), &args));
    }
    let open = http_addr(&nodes[0]);
    let guarded = http_addr(&nodes[2]);

    // A provider announced by a one-shot, found as JSON and as NDJSON.
    let key = dir.0.join("provider.key");
    let key = key.to_str().expect("utf-8 path");
    assert!(run(&["keygen", "--out", key]).status.success());
    let provider = stdout(&run(&["peer-id", "--key", key])).trim().to_string();
    let provided = run(&[
        "--overlay",
        "ipfs",
        "provide",
        CID,
        "--key",
        key,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        &nodes[1].addrs[0],
    ]);
    assert!(provided.status.success(), "{}", describe(&provided));
    let path = format!("/routing/v1/providers/{CID}");
    let json = until_status(200, || http(open, "GET", &path, &[], b""));
    assert_eq!(json.status, 200, "{json:?}");
    assert!(json.head.contains("application/json"), "{}", json.head);
    let v: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
    let found = v["Providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["ID"] == provider.as_str()))
        .unwrap_or_else(|| panic!("the provider in {v}"));
    assert_eq!(found["Schema"], "peer");
    assert!(
        found["Addrs"].as_array().is_some_and(|a| a.iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")))),
        "{v}"
    );
    let nd = http(open, "GET", &path, &["Accept: application/x-ndjson"], b"");
    assert_eq!(nd.status, 200, "{nd:?}");
    assert!(nd.head.contains("application/x-ndjson"), "{}", nd.head);
    let records: Vec<serde_json::Value> = nd
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record a line"))
        .collect();
    assert!(
        records.iter().any(|r| r["ID"] == provider.as_str()),
        "{}",
        nd.text()
    );

    // A peer: node 1, found by node 0 with its loopback address.
    let peer = nodes[1].peer_id();
    let found = until_status(200, || {
        http(open, "GET", &format!("/routing/v1/peers/{peer}"), &[], b"")
    });
    assert_eq!(found.status, 200, "{found:?}");
    let v: serde_json::Value = serde_json::from_slice(&found.body).expect("JSON");
    assert_eq!(v["Peers"][0]["ID"], peer.as_str(), "{v}");
    let listen = nodes[1].addrs[0].rsplit_once("/p2p/").expect("/p2p/").0;
    assert!(
        v["Peers"][0]["Addrs"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a == listen)),
        "{v}"
    );
    // Connected, so known from identify: the protocols node 1 listed.
    assert!(
        v["Peers"][0]["Protocols"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "/ipfs/kad/1.0.0")),
        "{v}"
    );

    // 404 for a CID nobody provides, 400 for a malformed one.
    let none = http(
        open,
        "GET",
        &format!("/routing/v1/providers/{CID_NOBODY}"),
        &[],
        b"",
    );
    assert_eq!(none.status, 404, "{none:?}");
    let bad = http(
        open,
        "GET",
        "/routing/v1/providers/bafkrei-not-a-cid",
        &[],
        b"",
    );
    assert_eq!(bad.status, 400, "{bad:?}");

    // IPNS: js-ipns's record PUT on node 2 (with its token: without, 401), read from
    // node 0 byte for byte.
    let (routing_key, record) = js_ipns_record();
    let name = format!("/routing/v1/ipns/{}", name_cid(&routing_key));
    let content = format!("Content-Type: {IPNS_RECORD}");
    let refused = http(guarded, "PUT", &name, &[&content], &record);
    assert_eq!(refused.status, 401, "{refused:?}");
    let put = http(
        guarded,
        "PUT",
        &name,
        &[&content, "Authorization: Bearer s3cret"],
        &record,
    );
    assert_eq!(put.status, 200, "{put:?}");
    let accept = format!("Accept: {IPNS_RECORD}");
    let got = until_status(200, || http(open, "GET", &name, &[&accept], b""));
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.head.contains(IPNS_RECORD), "{}", got.head);
    assert_eq!(got.body, record);
    // Without a token, node 0 takes the PUT as it is.
    let again = http(open, "PUT", &name, &[&content], &record);
    assert_eq!(again.status, 200, "{again:?}");
}

/// Sends a GET asking for NDJSON, and reads the answer as it comes: (the status line
/// and head, the body, when the first body line arrived, when the body ended), the
/// times counted from the request.
fn ndjson_timed(addr: SocketAddr, path: &str) -> (String, String, Duration, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect --http");
    s.set_read_timeout(Some(Duration::from_secs(40)))
        .expect("timeout");
    let asked = Instant::now();
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\nAccept: application/x-ndjson\r\n\r\n");
    s.write_all(request.as_bytes()).expect("write");
    let (mut bytes, mut first_line) = (Vec::new(), None);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        let body = bytes.windows(4).position(|w| w == b"\r\n\r\n");
        if first_line.is_none() && body.is_some_and(|b| bytes[b + 4..].contains(&b'\n')) {
            first_line = Some(asked.elapsed());
        }
    }
    let ended = asked.elapsed();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.to_string(),
        body.to_string(),
        first_line.unwrap_or(ended),
        ended,
    )
}

/// Providers stream as the lookup learns them: with one fast server holding the record
/// and two stalled peers (stopped with SIGSTOP: their sockets accept, nothing answers)
/// among the closest, the lookup runs until their requests time out (10 s), and the
/// first NDJSON line comes long before that.
#[test]
fn ndjson_sends_the_first_provider_before_the_lookup_ends() {
    let dir = Scratch::new("ipfs-routing-ndjson");
    let seed = IpfsProc::spawn(&dir.0, "s0", &["--mode", "server", "--no-bootstrap"]);
    let joined = |name: &str, extra: &[&str]| {
        let args = [&["--bootstrap", &seed.addrs[0]][..], extra].concat();
        IpfsProc::spawn(&dir.0, name, &args)
    };
    let holder = joined("holder", &["--mode", "server"]);
    let stalled: Vec<IpfsProc> = (0..2)
        .map(|i| joined(&format!("stalled{i}"), &["--mode", "server"]))
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // The provider record goes to every server (fewer than k), the stalled ones too.
    let key = dir.0.join("provider.key");
    let key = key.to_str().expect("utf-8 path");
    assert!(run(&["keygen", "--out", key]).status.success());
    let provider = stdout(&run(&["peer-id", "--key", key])).trim().to_string();
    let provided = run(&[
        "--overlay",
        "ipfs",
        "provide",
        CID,
        "--key",
        key,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        &holder.addrs[0],
    ]);
    assert!(provided.status.success(), "{}", describe(&provided));

    // A client (it holds no records) that knows every server, the stalled ones too.
    let client = joined("client", &["--mode", "client", "--http", "127.0.0.1:0"]);
    let http_at = http_addr(&client);
    for node in stalled.iter().chain([&holder]) {
        let path = format!("/routing/v1/peers/{}", node.peer_id());
        let found = until_status(200, || http(http_at, "GET", &path, &[], b""));
        assert_eq!(found.status, 200, "{found:?}");
    }
    for node in &stalled {
        let stop = std::process::Command::new("kill")
            .args(["-STOP", &node.pid().to_string()])
            .status()
            .expect("kill -STOP");
        assert!(stop.success());
    }

    let path = format!("/routing/v1/providers/{CID}");
    let (head, body, first_line, ended) = ndjson_timed(http_at, &path);
    for node in &stalled {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &node.pid().to_string()])
            .status();
    }
    assert!(head.starts_with("HTTP/1.0 200"), "{head}\n{body}");
    let first: serde_json::Value =
        serde_json::from_str(body.lines().next().unwrap_or_default()).expect("a JSON line");
    assert_eq!(first["ID"], provider.as_str(), "{body}");
    assert_eq!(body.lines().count(), 1, "each provider once: {body}");
    // The lookup waited for the stalled peers' requests to time out...
    assert!(ended >= Duration::from_secs(5), "ended after {ended:?}");
    // ... and the first line did not.
    assert!(
        first_line < Duration::from_secs(3),
        "first line after {first_line:?}, the body ended after {ended:?}"
    );
}
