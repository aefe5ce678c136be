//! Asks nodes directly, with raw KRPC, what they store: a `get` of an immutable and
//! a mutable target and a `get_peers` of an info_hash, to each node. Transaction ids
//! are 4 bytes (the `mainline` crate answers no other length).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dht_core::bencode;

/// How many of the asked nodes hold each thing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Holdings {
    /// Nodes whose `get` reply carries `v` for the immutable target.
    pub immutable: usize,
    /// Nodes whose `get` reply carries `v` for the mutable target.
    pub mutable: usize,
    /// Nodes whose `get_peers` reply lists the announced port.
    pub peer: usize,
    /// Nodes whose `get_peers` reply to `scrape` = 1 carries BEP 33 bloom filters that
    /// count at least one IP.
    pub scrape: usize,
}

const WAIT: Duration = Duration::from_millis(800);

/// Probes each of `nodes`.
pub fn holdings(
    nodes: &[SocketAddr],
    immutable: [u8; 20],
    mutable: [u8; 20],
    info_hash: [u8; 20],
    port: u16,
) -> Holdings {
    let mut h = Holdings::default();
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return h;
    };
    for node in nodes {
        if let Some(r) = ask(&socket, *node, &query(b"get", b"target", &immutable, 1)) {
            h.immutable += usize::from(has_key(&r, b"v"));
        }
        if let Some(r) = ask(&socket, *node, &query(b"get", b"target", &mutable, 2)) {
            h.mutable += usize::from(has_key(&r, b"v"));
        }
        if let Some(r) = ask(
            &socket,
            *node,
            &query(b"get_peers", b"info_hash", &info_hash, 3),
        ) {
            h.peer += usize::from(lists_port(&r, port));
        }
        if let Some(r) = ask(&socket, *node, &scrape_query(&info_hash, 4)) {
            h.scrape += usize::from(scrape_counts_someone(&r));
        }
    }
    h
}

fn query(method: &[u8], key: &[u8], target: &[u8; 20], tid: u8) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(b"d1:ad2:id20:");
    q.extend_from_slice(b"interop-probe-node-0");
    q.extend_from_slice(format!("{}:", key.len()).as_bytes());
    q.extend_from_slice(key);
    q.extend_from_slice(b"20:");
    q.extend_from_slice(target);
    q.extend_from_slice(format!("e1:q{}:", method.len()).as_bytes());
    q.extend_from_slice(method);
    q.extend_from_slice(b"1:t4:prb");
    q.push(tid);
    q.extend_from_slice(b"1:y1:qe");
    q
}

/// `get_peers` with BEP 33's `scrape` = 1 (keys in sorted order).
fn scrape_query(info_hash: &[u8; 20], tid: u8) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(b"d1:ad2:id20:interop-probe-node-09:info_hash20:");
    q.extend_from_slice(info_hash);
    q.extend_from_slice(b"6:scrapei1ee1:q9:get_peers1:t4:prb");
    q.push(tid);
    q.extend_from_slice(b"1:y1:qe");
    q
}

/// True when the reply's `BFsd` and `BFpe` together count at least one IP.
fn scrape_counts_someone(bytes: &[u8]) -> bool {
    let Ok(msg) = dht_core::krpc::decode(bytes) else {
        return false;
    };
    let dht_core::krpc::Body::Response(r) = msg.body else {
        return false;
    };
    let mut all = dht_core::ScrapeFilter::new();
    for f in [r.bf_seeds, r.bf_peers].into_iter().flatten() {
        all.union(&f);
    }
    all.estimate() >= 0.5
}

/// Sends `q` and returns the first reply from `node` carrying our transaction id.
fn ask(socket: &UdpSocket, node: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    socket.send_to(q, node).ok()?;
    let until = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        let tid = &q[q.len() - 11..q.len() - 7];
        if from == node && is_reply_to(&buf[..n], tid) {
            return Some(buf[..n].to_vec());
        }
    }
}

fn is_reply_to(bytes: &[u8], tid: &[u8]) -> bool {
    let Ok(msg) = bencode::decode(bytes) else {
        return false;
    };
    msg.as_dict()
        .and_then(|d| d.get(b"t"))
        .and_then(|t| t.as_bytes())
        == Some(tid)
}

fn r_dict_get(bytes: &[u8], key: &[u8], f: impl Fn(bencode::Value<'_>) -> bool) -> bool {
    let Ok(msg) = bencode::decode(bytes) else {
        return false;
    };
    msg.as_dict()
        .and_then(|d| d.get(b"r"))
        .and_then(|r| r.as_dict())
        .and_then(|r| r.get(key))
        .is_some_and(f)
}

fn has_key(bytes: &[u8], key: &[u8]) -> bool {
    r_dict_get(bytes, key, |_| true)
}

fn lists_port(bytes: &[u8], port: u16) -> bool {
    r_dict_get(bytes, b"values", |values| {
        values.as_list().is_some_and(|l| {
            l.iter().any(|p| {
                p.as_bytes()
                    .is_some_and(|p| p.len() == 6 && p[4..6] == port.to_be_bytes())
            })
        })
    })
}
