//! What goes to stdout and to files: each one-shot result as bare text for shells
//! or, with `--json`, as one JSON object built with `serde_json::json!` (field
//! names are an interface: scripts read them, so they are only ever added to), and
//! the address and routing files that tests poll.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use dht_core::to_hex;
use dht_core::MutableItem;
use dht_core::{Id, NodeInfo, QueryStats};
use dht_node::{bencoded_string, Answer, Peers, Scrape, Stored};
use serde_json::{json, Value};

use super::Fail;

/// One line on stdout. A closed stdout (`| head -c0`) is not an error worth a panic,
/// as `println!` would make it: the result had nowhere to go, and the exit status says
/// how the operation went.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

pub(crate) fn stats_json(s: &QueryStats) -> Value {
    json!({
        "hops": s.hops,
        "requests": s.requests,
        "responses": s.responses,
        "timeouts": s.timeouts,
        "duration_ms": s.duration.as_millis() as u64,
    })
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
    Value::Array(
        nodes
            .iter()
            .map(|n| json!({ "id": n.id.to_hex(), "addr": n.addr.to_string() }))
            .collect(),
    )
}

pub(crate) fn stored_json(target: &Id, a: &Answer<Stored>) -> Value {
    json!({
        "target": target.to_hex(),
        "stored_at": a.value.stored_at.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "refused": a.value.refused.len(),
        "stats": stats_json(&a.stats),
    })
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

/// A put or an announce: the target; `extra` fields are added to the JSON object.
pub(crate) fn stored(json: bool, target: &Id, a: &Answer<Stored>, extra: &[(&str, Value)]) {
    if json {
        let mut v = stored_json(target, a);
        for (name, value) in extra {
            v[*name] = value.clone();
        }
        print_json(v);
    } else {
        say(format_args!("{target}"));
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
        print_json(json!({
            "info_hash": info_hash.to_hex(),
            "peers": a.value.peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "nodes": nodes_json(&a.value.closest),
            "stats": stats_json(&a.stats),
        }));
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
