//! A node's datagram handler on arbitrary bytes from two sources: never panics, never
//! sends more than 1452 bytes, never answers a non-query.
#![no_main]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::Id;
use dht_core::{RoutingSnapshot, Store, StoreCounts, StoreError, StoredItem, StoredPeer, UnixMillis};
use dht_core::{Config, Node};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Mem {
    items: BTreeMap<Id, StoredItem>,
    peers: BTreeMap<Id, BTreeMap<SocketAddr, UnixMillis>>,
}

impl Store for Mem {
    fn get_item(&self, t: &Id) -> Result<Option<StoredItem>, StoreError> {
        Ok(self.items.get(t).cloned())
    }
    fn put_item(&mut self, i: StoredItem) -> Result<(), StoreError> {
        self.items.insert(i.target, i);
        Ok(())
    }
    fn remove_item(&mut self, t: &Id) -> Result<bool, StoreError> {
        Ok(self.items.remove(t).is_some())
    }
    fn put_peer(&mut self, h: &Id, p: StoredPeer) -> Result<(), StoreError> {
        self.peers.entry(*h).or_default().insert(p.addr, p.expires_at);
        Ok(())
    }
    fn get_peers(&self, h: &Id) -> Result<Vec<StoredPeer>, StoreError> {
        Ok(self.peers.get(h).map(|m| m.iter().map(|(a, e)| StoredPeer { addr: *a, expires_at: *e }).collect()).unwrap_or_default())
    }
    fn remove_peer(&mut self, h: &Id, a: &SocketAddr) -> Result<bool, StoreError> {
        Ok(self.peers.get_mut(h).is_some_and(|m| m.remove(a).is_some()))
    }
    fn info_hashes(&self, _: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        Ok(self.peers.keys().take(max).copied().collect())
    }
    fn counts(&self) -> Result<StoreCounts, StoreError> {
        Ok(StoreCounts { items: self.items.len(), info_hashes: self.peers.len(), peers: 0 })
    }
    fn expire(&mut self, _: UnixMillis) -> Result<(usize, usize), StoreError> {
        Ok((0, 0))
    }
    fn save_routing(&mut self, _: &RoutingSnapshot) -> Result<(), StoreError> {
        Ok(())
    }
    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> {
        Ok(None)
    }
}

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
        let from: SocketAddr = if data.first().is_some_and(|b| b & 1 == 1) { "10.0.0.1:6881" } else { "[fd00::1]:6881" }.parse().unwrap();
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
