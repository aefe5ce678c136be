//! Our own requests answered with arbitrary contents: every query the node sends is
//! answered from the address it asked, under its live transaction id, with the next
//! chunk of the input as the raw value of `r`. A fuzzed datagram alone never matches
//! a request; this one always does, so `on_reply`, the lookups and the write phase
//! see hostile contents. Never panics, never sends more than 1452 bytes, and every
//! request ends.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use dht_core::krpc::{self, Body};
use dht_core::{Config, Id, Node, NodeInfo, Request};
use dht_core::{RoutingSnapshot, SnapshotNode, Store};
use dht_store_mem::MemStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seeds = (0..4u8)
        .map(|i| SnapshotNode {
            node: NodeInfo { id: Id([0x40 * i + 1; 20]), addr: SocketAddr::from(([198, 51, 100, i + 1], 6881)) },
            last_seen: 0,
        })
        .collect();
    let mut store = MemStore::new();
    store.save_routing(&RoutingSnapshot { node_id: None, nodes: seeds }).expect("memory store saves");
    let t0 = Instant::now();
    let mut node = Node::new(Config::with_seed(1), store, t0, 1_800_000_000_000).expect("valid config");
    let requests = [
        Request::GetPeers { info_hash: Id([0x40; 20]) },
        Request::GetImmutable { target: Id([0x80; 20]) },
        Request::PutImmutable { value: b"3:abc".to_vec() },
        Request::SampleInfohashes { target: Id::ZERO },
    ];
    let mut open = 0;
    for r in requests {
        node.start(t0, r).expect("valid request");
        open += 1;
    }
    // Chunks separated by 0xff 0xfe: one answer each, in turn.
    let chunks: Vec<&[u8]> = data.split(|b| *b == 0xff).collect();
    let mut next = 0;
    let mut now = t0;
    for _ in 0..2_000 {
        let mut sent = Vec::new();
        while let Some(t) = node.poll_transmit() {
            assert!(t.payload.len() <= 1452);
            sent.push(t);
        }
        for t in sent {
            let m = krpc::decode(&t.payload).expect("we send what we decode");
            if !matches!(m.body, Body::Query(_)) || chunks.is_empty() {
                continue;
            }
            let r = chunks[next % chunks.len()];
            next += 1;
            let mut b = b"d1:r".to_vec();
            b.extend_from_slice(r);
            b.extend_from_slice(format!("1:t{}:", m.transaction_id.len()).as_bytes());
            b.extend_from_slice(&m.transaction_id);
            b.extend_from_slice(b"1:y1:re");
            node.handle_datagram(now, t.to, None, &b);
        }
        while node.poll_event().is_some() {
            open -= 1;
        }
        if open == 0 {
            return;
        }
        if let Some(t) = node.poll_timeout() {
            now = now.max(t);
            node.handle_timeout(now);
        }
    }
    panic!("requests never finished");
});
