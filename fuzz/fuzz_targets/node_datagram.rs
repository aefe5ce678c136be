//! A node's datagram handler on arbitrary bytes from 256 sources: never panics, never
//! sends more than 1452 bytes, never answers a non-query.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::{Config, Node};
use dht_store_mem::MemStore as Mem;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static NODE: RefCell<(Node<Mem>, Instant)> = {
        let now = Instant::now();
        RefCell::new((Node::new(Config::with_seed(1), Mem::default(), now, 1_800_000_000_000)
.expect("valid config"), now))
    };
}

fuzz_target!(|data: &[u8]| {
    NODE.with(|n| {
        let (node, now) = &mut *n.borrow_mut();
        *now += Duration::from_millis(10);
        // The byte sum picks one of 256 public sources of either family: with two
        // sources (or one chosen by the first byte, always `d` in bencode) the node,
        // kept across inputs, soon banned them for their rate, and most inputs then
        // stopped at the ban check. Repeated inputs still reach the limiter and bans.
        let b = data.iter().fold(0u8, |a, x| a.wrapping_add(*x));
        let from = if b & 1 == 1 {
            SocketAddr::from(([198, 51, 100, b], 6881))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::new(0x2001, 0xdb8, u16::from(b), 0, 0, 0, 0, 1), 6881))
        };
        node.handle_datagram(*now, from, None, data);
        node.handle_timeout(*now);
        let incoming_is_query = matches!(dht_core::krpc::decode(data), Ok(m) if matches!(m.body, dht_core::krpc::Body::Query(_)));
        while let Some(t) = node.poll_transmit() {
            assert!(t.payload.len() <= 1452);
            let out = dht_core::krpc::decode(&t.payload).expect("we send what we decode");
            if t.to == from && !matches!(out.body, dht_core::krpc::Body::Query(_)) {
                assert!(incoming_is_query || dht_core::krpc::decode(data).is_err(), "answered a non-query");
            }
        }
        while node.poll_event().is_some() {}
    });
});
