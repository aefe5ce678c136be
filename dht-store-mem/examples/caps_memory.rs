//! The memory of a node at its storage caps, printed (a measurement, not a test).
//!
//! A `dht_core::Node` on a `MemStore` with default `Limits` and every defense on
//! (loopback exemption off, so the 127.x.y.z sources count as public and their shares
//! apply) receives, from many sources, immutable puts of 1,000-byte values until the
//! item cap is full, then announces from distinct addresses over the info_hash cap
//! until the byte cap is full (1,000 writes refused or given room by evicting). Each write is preceded by the `get` or
//! `get_peers` that earns its token, as an honest writer's is. It prints the process's
//! resident memory before and after, and the store's counts.
//!
//! `cargo run --release -p dht-store-mem --example caps_memory`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::krpc::{self, Body, Message, Method, PutArgs};
use dht_core::{Config, Id, Item, Node, Store};
use dht_store_mem::MemStore;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Source `i` as a distinct 127.x.y.z address, consecutive sources in different /16s
/// (the networks above a source have shares of their own: x4 a source's per /24, x16
/// per /16), so that no network's share stops the fill before the caps.
fn source(i: u32) -> SocketAddr {
    let (net, host) = (i % 250, i / 250);
    SocketAddr::from(([127, 1 + net as u8, (host >> 8) as u8, host as u8], 6881))
}

struct Driver {
    node: Node<MemStore>,
    t0: Instant,
    /// Virtual milliseconds since `t0`: 2 ms a datagram keeps every source far below
    /// the per-source rate limit.
    ms: u64,
    t: u32,
    refused: u64,
}

impl Driver {
    /// Sends one query from `from` and returns the node's reply to it.
    fn ask(&mut self, from: SocketAddr, method: Method) -> Option<Message> {
        self.ms += 2;
        self.t = self.t.wrapping_add(1);
        let m = Message::query(
            self.t.to_be_bytes().to_vec(),
            Id::sha1(&from.to_string().into_bytes()),
            method,
        )
        .with_read_only(true);
        let now = self.t0 + Duration::from_millis(self.ms);
        self.node.handle_datagram(now, from, None, &m.to_bytes());
        if self.ms % 1000 == 0 {
            self.node.handle_timeout(now);
        }
        let mut reply = None;
        while let Some(out) = self.node.poll_transmit() {
            if out.to == from {
                reply = krpc::decode(&out.payload).ok();
            }
        }
        if let Some(Message {
            body: Body::Error(_),
            ..
        }) = &reply
        {
            self.refused += 1;
        }
        reply
    }

    fn token(&mut self, from: SocketAddr, info_hash: Id) -> Vec<u8> {
        let get_peers = Method::get_peers(info_hash);
        match self.ask(from, get_peers) {
            Some(Message {
                body: Body::Response(r),
                ..
            }) => r.token.unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

fn main() {
    let t0 = Instant::now();
    let mut cfg = Config::with_seed(1);
    cfg.defense.exempt_local = false;
    let limits = cfg.limits;
    let node = Node::new(cfg, MemStore::new(), t0, 1_800_000_000_000).expect("valid config");
    let mut d = Driver {
        node,
        t0,
        ms: 0,
        t: 0,
        refused: 0,
    };
    let before = rss_bytes();

    // Items: 64 per source (a quarter of a source's share), until the cap is full (a
    // full cap then makes room by evicting, so it no longer refuses them all).
    let mut puts = 0u64;
    'items: for s in 0.. {
        if d.node.store().counts().expect("counts").items >= limits.max_items {
            break;
        }
        let from = source(s);
        let token = d.token(from, Id::ZERO);
        for j in 0..64u32 {
            let mut v = b"996:".to_vec();
            v.extend_from_slice(&(s * 64 + j).to_be_bytes());
            v.resize(1000, b'v');
            let put = Method::Put(PutArgs::new(token.clone(), Item::Immutable { value: v }));
            puts += 1;
            if let Some(Message {
                body: Body::Error(_),
                ..
            }) = d.ask(from, put)
            {
                break 'items;
            }
        }
    }
    let after_items = rss_bytes();
    let items = d.node.store().counts().expect("counts");

    // Peers: sources in groups of 50, each announcing in turn (so each stays at a
    // tenth of its rate limit) to 200 swarms (its share is 256), spread so that every
    // info_hash up to the cap gets peers, until the byte cap has refused or made room
    // for 1,000 of them.
    let refused_before = d.refused;
    let evicted_before = d.node.stats().storage_evicted;
    let mut announces = 0u64;
    'peers: for group in 0u32.. {
        let sources: Vec<(u32, Vec<u8>)> = (0..50)
            .map(|k| {
                let s = 100_000 + group * 50 + k;
                (s, d.token(source(s), Id::ZERO))
            })
            .collect();
        for j in 0..200u32 {
            for (s, token) in &sources {
                let ih = Id::sha1(&((s * 37 + j) % limits.max_info_hashes as u32).to_be_bytes());
                let announce =
                    Method::announce_peer(ih, 6881, token.clone()).with_implied_port(true);
                announces += 1;
                d.ask(source(*s), announce);
                let evicted = d.node.stats().storage_evicted - evicted_before;
                if d.refused - refused_before + evicted > 1000 {
                    break 'peers;
                }
            }
        }
    }
    let after = rss_bytes();
    let counts = d.node.store().counts().expect("counts");
    let stats = d.node.stats();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "caps: {} items, {} info_hashes, {} peers per swarm, {:.0} MiB estimated bytes",
        limits.max_items,
        limits.max_info_hashes,
        limits.max_peers_per_swarm,
        mib(limits.max_bytes)
    );
    println!(
        "items: {puts} puts sent, {} held; RSS {:.1} -> {:.1} MiB (+{:.1} MiB, {:.0} bytes an item)",
        items.items,
        mib(before),
        mib(after_items),
        mib(after_items.saturating_sub(before)),
        after_items.saturating_sub(before) as f64 / items.items.max(1) as f64
    );
    println!(
        "peers: {announces} announces sent, {} info_hashes and {} peers held; RSS {:.1} -> {:.1} MiB (+{:.1} MiB, {:.0} bytes a peer)",
        counts.info_hashes,
        counts.peers,
        mib(after_items),
        mib(after),
        mib(after.saturating_sub(after_items)),
        after.saturating_sub(after_items) as f64 / counts.peers.max(1) as f64
    );
    println!(
        "at the caps: RSS {:.1} MiB in all (+{:.1} MiB for the store); {} writes refused with 202, {} rate limited",
        mib(after),
        mib(after.saturating_sub(before)),
        stats.storage_refused,
        stats.rate_limited
    );
}
