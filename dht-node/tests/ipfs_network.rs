//! `dht-node --overlay ipfs`: five server processes on loopback, and the one-shots run
//! against them as a user would (`keygen`, `peer-id`, `provide` and `providers` of one
//! content as CIDv0 and CIDv1, `closest`, `find-peer`, `put-record` and `get-record`
//! of a `/pk` record, `--json`, flags after the command), the node's `--provide` and
//! `--http`; and the errors a user meets: malformed CIDs, PeerIds and multiaddrs
//! (exit 2), nothing found (exit 1), data dirs of the other overlay (exit 3).
#![cfg(feature = "ipfs")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::ipfs::{hex_bytes, http_addr, ipfs, lines, until_ok};
use common::{describe, run, stdout, IpfsProc, Scratch};

/// One content (an empty dag-pb directory) as CIDv0 and as CIDv1 in base32.
const CID_V0: &str = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";
const CID_V1: &str = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";
/// Another content (CIDv1, raw codec, base32): the first node provides it (--provide).
const CID_BY_NODE: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
/// A CID nobody provides.
const CID_NOBODY: &str = "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba";

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect --http");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn five_servers_serve_the_one_shots() {
    let dir = Scratch::new("ipfs-net");
    let server = ["--mode", "server"];
    let first = IpfsProc::spawn(
        &dir.0,
        "ipfs0",
        &[
            &server[..],
            &[
                "--no-bootstrap",
                "--http",
                "127.0.0.1:0",
                "--provide",
                CID_BY_NODE,
            ][..],
        ]
        .concat(),
    );
    let seed = first.addrs[0].clone();
    let mut nodes = vec![first];
    for i in 1..5 {
        let name = format!("ipfs{i}");
        nodes.push(IpfsProc::spawn(
            &dir.0,
            &name,
            &[&server[..], &["--bootstrap", &seed][..]].concat(),
        ));
    }
    for n in &nodes {
        assert!(
            n.addrs[0].starts_with("/ip4/127.0.0.1/tcp/"),
            "{:?}",
            n.addrs
        );
        assert!(n.peer_id().starts_with("12D3Koo"), "{:?}", n.addrs);
        assert!(n.log_text().contains(&format!("peer_id={}", n.peer_id())));
    }
    let via = |i: usize| nodes[i].addrs[0].clone();

    // keygen and peer-id: one key file, one PeerId, with or without --overlay.
    let key = dir.0.join("provider.key");
    let key = key.to_str().expect("utf-8 path");
    let made = run(&["keygen", "--out", key]);
    assert!(made.status.success(), "{}", describe(&made));
    let public_hex = stdout(&made).trim().to_string();
    let id = run(&["peer-id", "--key", key]);
    assert!(id.status.success(), "{}", describe(&id));
    let provider = stdout(&id).trim().to_string();
    assert!(provider.starts_with("12D3Koo"), "{provider}");
    assert_eq!(lines(&id).len(), 1);
    assert_eq!(stdout(&ipfs(&["peer-id", "--key", key])).trim(), provider);

    // provide as CIDv0 with --key, flags after the command; found as CIDv1.
    let provided = until_ok(&[
        "provide",
        CID_V0,
        "--key",
        key,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        &via(1),
    ]);
    assert!(provided.status.success(), "{}", describe(&provided));
    assert_eq!(lines(&provided), vec![provider.clone()]);
    let found = until_ok(&["--bootstrap", &via(3), "providers", CID_V1]);
    assert!(found.status.success(), "{}", describe(&found));
    assert!(lines(&found).contains(&provider), "{}", describe(&found));
    let json = ipfs(&["--json", "providers", CID_V1, "--bootstrap", &via(4)]);
    assert!(json.status.success(), "{}", describe(&json));
    assert_eq!(
        lines(&json).len(),
        1,
        "one JSON object: {}",
        describe(&json)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    let p = v["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["peer_id"] == provider.as_str()))
        .expect("the provider in --json");
    assert!(
        p["addrs"].as_array().is_some_and(|a| a.iter().any(|a| a
            .as_str()
            .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")))),
        "the provider's address: {v}"
    );

    // The node's --provide, announced once it was joined... by the first node, which
    // joined nobody: it holds the record itself and serves it to a lookup.
    let by_node = until_ok(&["providers", CID_BY_NODE, "--bootstrap", &via(2)]);
    assert!(
        lines(&by_node).contains(&nodes[0].peer_id()),
        "{}",
        describe(&by_node)
    );

    // closest: node 2's own PeerId as the key puts node 2 first.
    let target = nodes[2].peer_id();
    let closest = until_ok(&["closest", &target, "--bootstrap", &via(4)]);
    assert!(closest.status.success(), "{}", describe(&closest));
    let peers = lines(&closest);
    assert_eq!(peers.first(), Some(&target), "{}", describe(&closest));
    assert!(peers.len() >= 4, "{}", describe(&closest));
    let hex = ipfs(&["closest", "0x0102", "--bootstrap", &via(1)]);
    assert!(hex.status.success(), "{}", describe(&hex));

    // find-peer: its listen address.
    let addr = nodes[3].addrs[0]
        .rsplit_once("/p2p/")
        .map(|(a, _)| a.to_string());
    let peer = until_ok(&["find-peer", &nodes[3].peer_id(), "--bootstrap", &via(0)]);
    assert!(peer.status.success(), "{}", describe(&peer));
    assert!(
        lines(&peer).contains(&addr.expect("address")),
        "{}",
        describe(&peer)
    );

    // put-record and get-record of the key's /pk record: its protobuf public key.
    let value_hex = format!("08011220{public_hex}");
    let value = hex_bytes(&value_hex);
    let file = dir.0.join("pk.bin");
    std::fs::write(&file, &value).expect("write the record");
    let file = file.to_str().expect("utf-8 path");
    let pk = format!("/pk/{provider}");
    let put = until_ok(&["put-record", &pk, file, "--bootstrap", &via(2)]);
    assert!(put.status.success(), "{}", describe(&put));
    let got = until_ok(&["get-record", &pk, "--bootstrap", &via(4)]);
    assert!(got.status.success(), "{}", describe(&got));
    assert_eq!(lines(&got).last(), Some(&value_hex), "{}", describe(&got));

    // An IPNS record of the same key, put under its name and got back by its CIDv1
    // (base36 libp2p-key) form: the entry's bytes in hex.
    let seed: [u8; 32] = hex_bytes(std::fs::read_to_string(key).expect("key").trim())
        .try_into()
        .expect("a 32-byte seed");
    let ipns_key = dht_ipfs::IpnsKeypair::from_secret(seed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64;
    let hour = Duration::from_secs(3600);
    let path = format!("/ipfs/{CID_V1}");
    let entry =
        dht_ipfs::IpnsRecord::create(&ipns_key, path.as_bytes(), 1, now + 3_600_000_000_000, hour)
            .expect("an IPNS record");
    let entry_file = dir.0.join("ipns.bin");
    std::fs::write(&entry_file, &entry).expect("write the entry");
    let name = libp2p::PeerId::from_bytes(ipns_key.name().as_bytes()).expect("a PeerId");
    assert_eq!(name.to_string(), provider, "the name is the key's PeerId");
    let base36 = multibase::encode(
        multibase::Base::Base36Lower,
        [&[1u8, 0x72][..], &name.to_bytes()].concat(),
    );
    let entry_file = entry_file.to_str().expect("utf-8 path");
    let put = until_ok(&[
        "put-record",
        &format!("/ipns/{name}"),
        entry_file,
        "--bootstrap",
        &via(3),
    ]);
    assert!(put.status.success(), "{}", describe(&put));
    let got = until_ok(&[
        "get-record",
        &format!("/ipns/{base36}"),
        "--bootstrap",
        &via(0),
    ]);
    assert!(got.status.success(), "{}", describe(&got));
    let entry_hex: String = entry.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(lines(&got).last(), Some(&entry_hex), "{}", describe(&got));

    // A /pk record under another PeerId is refused before anything is sent: exit 2.
    let wrong = ipfs(&[
        "put-record",
        &format!("/pk/{target}"),
        file,
        "--bootstrap",
        &via(2),
    ]);
    assert_eq!(wrong.status.code(), Some(2), "{}", describe(&wrong));

    // Nothing there: exit 1, nothing on stdout.
    let stranger = run(&[
        "keygen",
        "--out",
        dir.0.join("other.key").to_str().expect("path"),
    ]);
    assert!(stranger.status.success());
    let other = stdout(&run(&[
        "peer-id",
        "--key",
        dir.0.join("other.key").to_str().expect("path"),
    ]))
    .trim()
    .to_string();
    let other_pk = format!("/pk/{other}");
    let seed = via(1);
    for args in [
        ["get-record", other_pk.as_str()],
        ["find-peer", other.as_str()],
        ["providers", CID_NOBODY],
    ] {
        let o = ipfs(&[&args[..], &["--bootstrap", seed.as_str()][..]].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", describe(&o));
        assert!(stdout(&o).is_empty(), "{}", describe(&o));
    }

    // --http: healthz, readyz (fewer than k = 20 servers: 503, with the count), metrics.
    let http = http_addr(&nodes[0]);
    assert_eq!(http_get(http, "/healthz").0, 200);
    let (status, body) = http_get(http, "/readyz");
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert!(
        ready["good_nodes"].as_u64().is_some_and(|n| n >= 4),
        "{body}"
    );
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    for series in [
        "dht_ipfs_routing_table_servers",
        "dht_ipfs_connections",
        "dht_ipfs_server_mode 1",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = Scratch::new("ipfs-bad");
    let seed = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWLXexpG1fUudyrRt5ftRAXEW4WuuAK5YnxHs2oSsL4sxe";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["providers", "QmNotACid", "--bootstrap", seed],
            "not a CID",
        ),
        (vec!["provide", "bafy", "--bootstrap", seed], "not a CID"),
        (
            vec!["find-peer", "12D3KooWnope", "--bootstrap", seed],
            "not a PeerId",
        ),
        (vec!["closest", "0xzz", "--bootstrap", seed], "0x"),
        (vec!["get-record", "/v/x", "--bootstrap", seed], "/pk/"),
        (
            vec!["closest", "0x01", "--bootstrap", "/ip4/127.0.0.1/tcp/1"],
            "/p2p/",
        ),
        (
            vec!["closest", "0x01", "--bootstrap", "127.0.0.1:4001"],
            "multiaddr",
        ),
        (
            vec!["--listen", "/ip4/127.0.0.1/tcp", "--no-bootstrap"],
            "--listen",
        ),
        (vec!["closest", "0x01", "--no-bootstrap"], "--bootstrap"),
        (
            vec!["closest", "0x01", "--mode", "server", "--bootstrap", seed],
            "client mode",
        ),
        (vec!["peer-id"], "--key"),
    ];
    for (args, says) in cases {
        let o = ipfs(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?}: {}", describe(&o));
    }
    // A key file that is not one.
    let bad = dir.0.join("bad.key");
    std::fs::write(&bad, "not hex\n").expect("write");
    let o = run(&["peer-id", "--key", bad.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

/// A Mainline data dir given to `--overlay ipfs` is refused with exit 3 and one line
/// on stderr, and the reverse; an IPFS node keeps its key in its data dir.
#[cfg(feature = "sled")]
#[test]
fn data_dirs_of_the_other_overlay_are_refused() {
    let dir = Scratch::new("ipfs-dirs");
    let mainline = dir.0.join("mainline");
    let ipfs_dir = dir.0.join("ipfs");
    let (m, i) = (
        mainline.to_str().expect("path"),
        ipfs_dir.to_str().expect("path"),
    );

    // A Mainline sled data dir, written by a Mainline node.
    let mut node = common::NodeProc::spawn_args(
        &dir.0,
        "ml",
        "127.0.0.1:0",
        &[],
        &["--store", "sled", "--data-dir", m],
    );
    assert!(node.terminate().is_some_and(|s| s.success()));
    assert!(mainline.join("DHT-DATA-DIR").exists());
    for store in ["sled", "mem"] {
        let o = ipfs(&[
            "--store",
            store,
            "--data-dir",
            m,
            "--no-bootstrap",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "--store {store}: {}",
            describe(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("Mainline"), "{err}");
    }

    // An IPFS data dir keeps its PeerId across restarts; Mainline refuses it.
    let args = ["--store", "sled", "--data-dir", i, "--no-bootstrap"];
    let mut first = IpfsProc::spawn(&dir.0, "ipfs-a", &args);
    let id = first.peer_id();
    assert!(first.terminate().is_some_and(|s| s.success()));
    let mut again = IpfsProc::spawn(&dir.0, "ipfs-b", &args);
    assert_eq!(again.peer_id(), id, "the key kept in {i}/node.key");
    assert!(again.terminate().is_some_and(|s| s.success()));
    for store in ["sled", "mem"] {
        let o = run(&[
            "--store",
            store,
            "--data-dir",
            i,
            "--no-bootstrap",
            "--listen",
            "127.0.0.1:0",
        ]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "--store {store}: {}",
            describe(&o)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

/// `--config FILE` takes `--overlay ipfs`'s own flags as keys too.
#[test]
fn a_config_file_sets_ipfs_flags() {
    let dir = Scratch::new("ipfs-config");
    let file = dir.0.join("ipfs.toml");
    let text = format!(
        "overlay = \"ipfs\"\nmode = \"server\"\nno-bootstrap = true\nprovide = [\"{CID_V0}\"]\n"
    );
    std::fs::write(&file, text).expect("write the config");
    let node = IpfsProc::spawn(&dir.0, "cfg", &["--config", file.to_str().expect("path")]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.log_text().contains("providing") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = node.log_text();
    assert!(log.contains("server=true"), "{log}");
    assert!(log.contains("providing"), "{log}");
}
