//! Readiness from the node's own signal: `GET /readyz` on each node's `--http` port.
//!
//! 200 means the node holds at least k good nodes and some node answered it lately. A
//! testnet smaller than k + 1 nodes can never reach k, so there the body's counts are read
//! instead: ready once every other node is good in its table. The request is one HTTP/1.0
//! GET over a `TcpStream` (the server closes after the body, so no chunking and no
//! keep-alive to handle): an HTTP client crate would be most of xtask's build for this.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Deserialize;

use super::Overlay;

/// What `/readyz` says in its JSON body (200 and 503 alike).
#[derive(Debug, Deserialize)]
struct Readyz {
    good_nodes: usize,
    k: usize,
    last_response_ago_s: Option<u64>,
}

/// Whether the node whose HTTP server is at `http` is ready in a network of `nodes`
/// nodes; `false` while it is not yet serving or cannot be asked. An IPFS node's
/// `good_nodes` are the servers in its table, each admitted only once it answered: no
/// `last_response_ago_s` to read there.
pub(super) fn is_ready(http: SocketAddr, nodes: usize, overlay: Overlay) -> bool {
    let Some((status, body)) = get(http, "/readyz") else {
        return false;
    };
    if status == 200 {
        return true;
    }
    match serde_json::from_str::<Readyz>(&body) {
        Ok(r) => {
            let reachable = nodes.saturating_sub(1);
            let answered = r.last_response_ago_s.is_some() || overlay == Overlay::Ipfs;
            reachable < r.k && r.good_nodes >= reachable && answered
        }
        Err(_) => false,
    }
}

/// One GET: the status code and the body.
pub(super) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let timeout = Duration::from_millis(500);
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
