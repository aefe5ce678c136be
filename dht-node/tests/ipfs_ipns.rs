//! `dht-node --overlay ipfs ipns publish|resolve` and the node's `--ipns-key`
//! republishing, through real processes on loopback: a name published through one
//! node and resolved through another (by PeerId, by `k51…`, as `/ipns/…`), sequence
//! numbers that count up, a record made by js-ipns stored with `put-record` and
//! resolved by us, nothing found (exit 1), and a short-lived record kept alive by the
//! node that holds its key.
#![cfg(feature = "ipfs")]

mod common;

use std::time::Duration;

use common::ipfs::{ipfs, js_ipns_record, lines, name_cid, until_ok};
use common::{describe, run, stdout, IpfsProc, Scratch};

const PATH_A: &str = "/ipfs/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
const PATH_B: &str = "/ipfs/bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba";
/// What js-ipns's fixture record points at.
const JS_PATH: &str = "/ipfs/bafkqaddwgevxmmraojswg33smq";

fn keygen(dir: &Scratch, name: &str) -> (String, String) {
    let path = dir.0.join(name);
    let path = path.to_str().expect("utf-8 path").to_string();
    let made = run(&["keygen", "--out", &path]);
    assert!(made.status.success(), "{}", describe(&made));
    let id = stdout(&run(&["peer-id", "--key", &path]))
        .trim()
        .to_string();
    (path, id)
}

#[test]
fn names_publish_resolve_and_stay_alive() {
    let dir = Scratch::new("ipfs-ipns");
    let (kept, kept_id) = keygen(&dir, "kept.key");
    let first = IpfsProc::spawn(&dir.0, "n0", &["--mode", "server", "--no-bootstrap"]);
    let seed = first.addrs[0].clone();
    let mut nodes = vec![first];
    let server = ["--mode", "server", "--bootstrap", &seed];
    nodes.push(IpfsProc::spawn(&dir.0, "n1", &server));
    let keeper = [
        &server[..],
        &["--ipns-key", &kept, "--ipns-republish-ms", "300"],
    ]
    .concat();
    nodes.push(IpfsProc::spawn(&dir.0, "n2", &keeper));
    let via = |i: usize| nodes[i].addrs[0].clone();

    // publish through node 1, resolve through node 2: by PeerId, then k51 and /ipns/.
    let (name_key, peer_id) = keygen(&dir, "name.key");
    let first = until_ok(&[
        "ipns",
        "publish",
        "--key",
        &name_key,
        PATH_A,
        "--bootstrap",
        &via(1),
    ]);
    assert!(first.status.success(), "{}", describe(&first));
    let out = lines(&first);
    assert_eq!(out.len(), 2, "{}", describe(&first));
    let k51 = out[0].clone();
    assert!(k51.starts_with("k51"), "{k51}");
    assert_eq!(out[1], "seq 0");
    let got = until_ok(&["ipns", "resolve", &peer_id, "--bootstrap", &via(2)]);
    assert!(got.status.success(), "{}", describe(&got));
    assert_eq!(lines(&got).last().map(String::as_str), Some(PATH_A));

    // Without --seq, one more than the highest found; --seq as given.
    let second = ipfs(&[
        "ipns",
        "publish",
        "--key",
        &name_key,
        PATH_B,
        "--bootstrap",
        &via(0),
    ]);
    assert!(second.status.success(), "{}", describe(&second));
    assert_eq!(lines(&second), vec![k51.clone(), "seq 1".to_string()]);
    let got = ipfs(&["ipns", "resolve", &k51, "--bootstrap", &via(2)]);
    assert_eq!(
        lines(&got).last().map(String::as_str),
        Some(PATH_B),
        "{}",
        describe(&got)
    );
    let seventh = ["ipns", "publish", "--key", &name_key, PATH_A, "--seq", "7"];
    let seventh = ipfs(&[&seventh[..], &["--bootstrap", &via(1)]].concat());
    assert_eq!(lines(&seventh).last().map(String::as_str), Some("seq 7"));
    let json = ipfs(&[
        "--json",
        "ipns",
        "resolve",
        &format!("/ipns/{k51}"),
        "--bootstrap",
        &via(0),
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(
        (v["value"].as_str(), v["seq"].as_u64()),
        (Some(PATH_A), Some(7)),
        "{v}"
    );
    // A name nobody published: exit 1.
    let (_, nobody) = keygen(&dir, "nobody.key");
    let none = ipfs(&["ipns", "resolve", &nobody, "--bootstrap", &via(1)]);
    assert_eq!(none.status.code(), Some(1), "{}", describe(&none));

    // js-ipns's record, stored with put-record, resolved by us.
    let (routing_key, record) = js_ipns_record();
    let file = dir.0.join("js.ipns");
    std::fs::write(&file, &record).expect("record file");
    let key = format!("/ipns/{}", name_cid(&routing_key));
    let put = ipfs(&[
        "put-record",
        &key,
        file.to_str().expect("utf-8"),
        "--bootstrap",
        &via(0),
    ]);
    assert!(put.status.success(), "{}", describe(&put));
    let got = ipfs(&["ipns", "resolve", &key, "--bootstrap", &via(1)]);
    assert_eq!(
        lines(&got).last().map(String::as_str),
        Some(JS_PATH),
        "{}",
        describe(&got)
    );

    // A record that lives 2 s, of the name node 2 holds the key of: node 2 republishes
    // it with a fresh lifetime, so it still resolves after it would have ended.
    let short = [
        "ipns",
        "publish",
        "--key",
        &kept,
        PATH_B,
        "--lifetime",
        "2s",
    ];
    let short = ipfs(&[&short[..], &["--bootstrap", &via(0)]].concat());
    assert!(short.status.success(), "{}", describe(&short));
    std::thread::sleep(Duration::from_secs(3));
    let alive = ipfs(&["ipns", "resolve", &kept_id, "--bootstrap", &via(1)]);
    assert_eq!(
        lines(&alive).last().map(String::as_str),
        Some(PATH_B),
        "{}",
        describe(&alive)
    );
    assert!(nodes[2].log_text().contains("IPNS name republished"));
}
