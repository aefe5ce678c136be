//! Helpers of the `--overlay ipfs` process tests: one-shots, js-ipns's fixture record,
//! IPNS names as CIDs, the `--http` address of a node.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{run, stdout, IpfsProc};

pub fn ipfs(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--overlay", "ipfs"];
    all.extend_from_slice(args);
    run(&all)
}

pub fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

/// Runs a one-shot until it exits 0 (the network may still be settling), up to 10 s.
pub fn until_ok(args: &[&str]) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = ipfs(args);
        if o.status.success() || Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// js-ipns's record of the fixtures (`validate v1v2`: EOL in 2126): (routing key,
/// record).
pub fn js_ipns_record() -> (Vec<u8>, Vec<u8>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dht-ipfs/tests/fixtures/ipns/records.txt"
    );
    let text = std::fs::read_to_string(path).expect("the js-ipns fixtures");
    let line = text
        .lines()
        .find(|l| l.starts_with("validate v1v2 ok valid "))
        .expect("the v1v2 case");
    let fields: Vec<&str> = line.split(' ').collect();
    (hex_bytes(fields[4]), hex_bytes(fields[5]))
}

/// An IPNS name (the multihash after `/ipns/`) as a CIDv1 libp2p-key in base32.
pub fn name_cid(key: &[u8]) -> String {
    let multihash = key.strip_prefix(b"/ipns/").expect("an /ipns/ key");
    let cid = [&[0x01, 0x72][..], multihash].concat();
    let b32 = base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &cid);
    format!("b{b32}")
}

pub fn http_addr(node: &IpfsProc) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(5);
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
