//! What goes to stdout and to files: each one-shot result as bare text for shells
//! or, with `--json`, as one JSON object (field names are an interface: scripts read
//! them, so they are only ever added to), and the address and routing files that
//! tests poll. The answers with an HTTP twin are serde types used by both, so that
//! `put --json` and `POST /v1/immutable` cannot drift apart: [`StoredJson`] (puts and
//! announces) and [`PeersJson`] (`peers`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use base64::Engine;
use dht_core::to_hex;
use dht_core::MutableItem;
use dht_core::{Id, NodeInfo, QueryStats};
use dht_node::{bencoded_string, Answer, Peers, Scrape, Stored};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Fail;

/// One line on stdout. A closed stdout (`| head -c0`) is not an error worth a panic,
/// as `println!` would make it: the result had nowhere to go, and the exit status says
/// how the operation went.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A query's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatsJson {
    pub(crate) hops: u32,
    pub(crate) requests: u32,
    pub(crate) responses: u32,
    pub(crate) timeouts: u32,
    pub(crate) duration_ms: u64,
    /// The same, finer: loopback lookups take well under a millisecond.
    pub(crate) duration_us: u64,
}

impl StatsJson {
    pub(crate) fn of(s: &QueryStats) -> StatsJson {
        StatsJson {
            hops: s.hops,
            requests: s.requests,
            responses: s.responses,
            timeouts: s.timeouts,
            duration_ms: s.duration.as_millis() as u64,
            duration_us: s.duration.as_micros() as u64,
        }
    }
}

pub(crate) fn stats_json(s: &QueryStats) -> Value {
    json!(StatsJson::of(s))
}

/// The answer of a put or an announce: what `put --json` and `announce --json`
/// print and what `POST /v1/immutable`, `PUT /v1/mutable/KEY` and
/// `POST /v1/announce/INFO_HASH` answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoredJson {
    /// The target (a put) or the info_hash (an announce), in hex.
    pub(crate) target: String,
    /// The nodes that acknowledged the write.
    pub(crate) stored_at: Vec<String>,
    /// How many nodes refused it.
    pub(crate) refused: usize,
    pub(crate) stats: StatsJson,
    /// A mutable put: the seq written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<i64>,
    /// A mutable put: the public key, in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) public_key: Option<String>,
    /// An announce: the BitTorrent port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
    /// An announce: as a seed (BEP 33).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<bool>,
}

impl StoredJson {
    pub(crate) fn of(target: &Id, a: &Answer<Stored>) -> StoredJson {
        StoredJson {
            target: target.to_hex(),
            stored_at: a.value.stored_at.iter().map(|s| s.to_string()).collect(),
            refused: a.value.refused.len(),
            stats: StatsJson::of(&a.stats),
            seq: None,
            public_key: None,
            port: None,
            seed: None,
        }
    }
}

/// A node of a lookup's answer.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeJson {
    pub(crate) id: String,
    pub(crate) addr: String,
}

/// The answer of `peers --json` and `GET /v1/peers/INFO_HASH`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PeersJson {
    pub(crate) info_hash: String,
    /// ip:port of each peer.
    pub(crate) peers: Vec<String>,
    /// The closest nodes the lookup reached.
    pub(crate) nodes: Vec<NodeJson>,
    pub(crate) stats: StatsJson,
}

impl PeersJson {
    pub(crate) fn of(info_hash: &Id, a: &Answer<Peers>) -> PeersJson {
        PeersJson {
            info_hash: info_hash.to_hex(),
            peers: a.value.peers.iter().map(|p| p.to_string()).collect(),
            nodes: nodes_of(&a.value.closest),
            stats: StatsJson::of(&a.stats),
        }
    }
}

fn nodes_of(nodes: &[NodeInfo]) -> Vec<NodeJson> {
    nodes
        .iter()
        .map(|n| NodeJson {
            id: n.id.to_hex(),
            addr: n.addr.to_string(),
        })
        .collect()
}

fn print_json(v: Value) {
    say(format_args!("{v}"));
}

/// Prints a value for scripts: a bencoded string's bytes raw, anything else as bencode.
fn write_value(bencoded: &[u8]) {
    let raw = bencoded_string(bencoded).unwrap_or(bencoded);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(raw);
    let _ = out.write_all(b"\n");
}

/// A value for JSON: the string when it is UTF-8, and the bencode in hex always.
fn value_json(bencoded: &[u8]) -> (Value, String) {
    let raw = bencoded_string(bencoded).unwrap_or(bencoded);
    let text = std::str::from_utf8(raw)
        .map(|s| Value::String(s.to_string()))
        .unwrap_or(Value::Null);
    (text, to_hex(bencoded))
}

pub(crate) fn nodes_json(nodes: &[NodeInfo]) -> Value {
    json!(nodes_of(nodes))
}

/// One JSON object on a line, whatever --json says (`sign`).
pub(crate) fn json_line(v: &Value) {
    print_json(v.clone());
}

/// `keygen`: the public key in hex.
pub(crate) fn keygen(json: bool, public: &str, key_file: &Path) {
    if json {
        print_json(json!({ "public_key": public, "key_file": key_file.display().to_string() }));
    } else {
        say(format_args!("{public}"));
    }
}

/// `ping`: the id of the node that answered.
pub(crate) fn ping(json: bool, a: &Answer<NodeInfo>) {
    if json {
        print_json(json!({
            "id": a.value.id.to_hex(),
            "addr": a.value.addr.to_string(),
            "stats": stats_json(&a.stats),
        }));
    } else {
        say(format_args!("{}", a.value.id));
    }
}

/// A put or an announce: the target, or with --json the whole answer.
pub(crate) fn stored(json: bool, answer: &StoredJson) {
    if json {
        print_json(json!(answer));
    } else {
        say(format_args!("{}", answer.target));
    }
}

/// `get` of an immutable item: the value.
pub(crate) fn immutable(json: bool, target: &Id, value: &[u8], stats: &QueryStats) {
    if json {
        let (text, hex) = value_json(value);
        print_json(json!({
            "target": target.to_hex(),
            "value": text,
            "value_bencoded_hex": hex,
            "stats": stats_json(stats),
        }));
    } else {
        write_value(value);
    }
}

/// `get --mutable`: the value, then the seq on a line of its own.
pub(crate) fn mutable(
    json: bool,
    target: &Id,
    key: &[u8; 32],
    item: &MutableItem,
    stats: &QueryStats,
) {
    if json {
        let (text, hex) = value_json(&item.value);
        print_json(json!({
            "target": target.to_hex(),
            "public_key": to_hex(key),
            "value": text,
            "value_bencoded_hex": hex,
            "seq": item.seq,
            "stats": stats_json(stats),
        }));
    } else {
        write_value(&item.value);
        say(format_args!("{}", item.seq));
    }
}

/// `peers`: one ip:port a line.
pub(crate) fn peers(json: bool, info_hash: &Id, a: &Answer<Peers>) {
    if json {
        print_json(json!(PeersJson::of(info_hash, a)));
    } else {
        let mut out = std::io::stdout().lock();
        for p in &a.value.peers {
            let _ = writeln!(out, "{p}");
        }
    }
}

/// `scrape`: "seeds N" and "peers N".
pub(crate) fn scrape(json: bool, info_hash: &Id, a: &Answer<Scrape>) {
    if json {
        print_json(json!({
            "info_hash": info_hash.to_hex(),
            "seeds": a.value.seeds,
            "peers": a.value.peers,
            "responders": a.value.responders,
            "stats": stats_json(&a.stats),
        }));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "seeds {}\npeers {}", a.value.seeds, a.value.peers);
    }
}

/// `find-node`: "id ip:port" a line.
pub(crate) fn nodes(json: bool, target: &Id, a: &Answer<Vec<NodeInfo>>) {
    if json {
        print_json(json!({
            "target": target.to_hex(),
            "nodes": nodes_json(&a.value),
            "stats": stats_json(&a.stats),
        }));
    } else {
        let mut out = std::io::stdout().lock();
        for n in &a.value {
            let _ = writeln!(out, "{} {}", n.id, n.addr);
        }
    }
}

/// Writes `text` whole, then renames it into place: a test polling the file never
/// reads half of it.
pub(crate) fn write_file_atomically(path: &Path, text: &str) -> Result<(), Fail> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Fail::other(format!("cannot write {}: {e}", path.display())))
}

/// The bound addresses, one a line (--addr-file).
pub(crate) fn write_addr_file(path: &Path, addrs: &[SocketAddr]) -> Result<(), Fail> {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    write_file_atomically(path, &text)
}

/// The JSON of a mutable item: the body of a PUT and the answer of a GET.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MutableBody {
    /// The bencoded value, base64 (standard alphabet, padded).
    pub(crate) value_base64: String,
    pub(crate) seq: i64,
    /// 128 hex characters.
    pub(crate) signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cas: Option<i64>,
}

impl MutableBody {
    pub(crate) fn of(item: &MutableItem) -> MutableBody {
        MutableBody {
            value_base64: base64::engine::general_purpose::STANDARD.encode(&item.value),
            seq: item.seq,
            signature: to_hex(&item.signature),
            cas: None,
        }
    }
}

pub(crate) fn mutable_json(item: &MutableItem, stats: Option<&dht_core::QueryStats>) -> Value {
    let mut v = serde_json::to_value(MutableBody::of(item)).unwrap_or_default();
    if let Some(s) = stats {
        v["stats"] = stats_json(s);
    }
    v
}
