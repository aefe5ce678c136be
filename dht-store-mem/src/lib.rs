//! # dht-store-mem: an in-memory [`Store`] for dht-core
//!
//! [`MemStore`] keeps BEP 44 items, announced peers and the routing-table snapshot in
//! ordered maps. Nothing survives the process: use it for tests, simulations and nodes
//! that restart cold. It never fails (every method returns `Ok`).
//!
//! A node sees it only through dht-core's [`Store`] trait, so code written against the
//! trait runs on this store, on `dht-store-sled`'s, or on one of your own:
//!
//! ```
//! use dht_core::{Id, Store, StoreError, StoredPeer};
//! use dht_store_mem::MemStore;
//!
//! /// What `get_peers` for `info_hash` would answer, once expired announces are gone.
//! fn live_peers<S: Store>(store: &mut S, info_hash: &Id, now: u64) -> Result<usize, StoreError> {
//!     store.expire(now)?;
//!     Ok(store.get_peers(info_hash)?.len())
//! }
//!
//! let mut store = MemStore::new();
//! let info_hash = Id([7; 20]);
//! for (port, expires_at) in [(6881, 1_000), (6882, 5_000)] {
//!     let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
//!     store.put_peer(&info_hash, StoredPeer { addr, expires_at, seed: false })?;
//! }
//! assert_eq!(live_peers(&mut store, &info_hash, 0)?, 2);
//! // At 1,000 ms the first announce has expired; the second stays until 5,000 ms.
//! assert_eq!(live_peers(&mut store, &info_hash, 1_000)?, 1);
//! # Ok::<(), StoreError>(())
//! ```
//!
//! Everything is a `BTreeMap` or `BTreeSet`, never a `HashMap` with a random hasher, so
//! iteration order (which reaches [`Store::get_peers`] and [`Store::info_hashes`]) is the
//! same in every run, and a seeded simulation replays exactly.
//!
//! ## Cost
//! Besides the items and peers themselves, the store keeps a deadline index per kind:
//! a `BTreeSet` of `(expires_at, key)`. [`Store::expire`] walks that index from its
//! earliest entry and stops at the first deadline after `now`, so one call costs
//! O((k + 1) log n) for k expired entries out of n, not O(n). It also stops after
//! [`EXPIRIES_PER_CALL`] entries of each kind: after a forward jump of the clock (or a
//! node at its caps whose entries all fall due together) the rest goes on the next
//! calls, one per engine tick, instead of in one long stall. A put or remove keeps the
//! index in step at O(log n).

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use dht_core::Id;
use dht_core::{
    RoutingSnapshot, Store, StoreCounts, StoreError, StoredItem, StoredPeer, UnixMillis,
};

/// Most items, and most peers, one [`Store::expire`] call removes (8,192 of each: about
/// a millisecond of work). At the default caps (16,384 items, ~110,000 peers) a backlog
/// clears in 14 calls; an entry removed a few ticks late is only kept a little longer.
pub const EXPIRIES_PER_CALL: usize = 8_192;

/// A [`Store`] held in memory, with deterministic iteration order and
/// deadline-indexed expiry (see the crate docs).
///
/// Its maps are made at the first write: a store never written to is 8 bytes, not
/// 152 (a simulation of a million nodes, most of which store nothing, holds one per
/// node).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    contents: Option<Box<Contents>>,
}

#[derive(Debug, Default, Clone)]
struct Contents {
    items: BTreeMap<Id, StoredItem>,
    /// `(expires_at, target)` for every item; kept equal to `items`' deadlines.
    item_deadlines: BTreeSet<(UnixMillis, Id)>,
    /// Invariant: no info_hash maps to an empty set of peers, so `peers.len()` is the
    /// number of info_hashes with peers and `info_hashes` needs no filtering.
    peers: BTreeMap<Id, BTreeMap<SocketAddr, (UnixMillis, bool)>>,
    /// `(expires_at, info_hash, addr)` for every peer.
    peer_deadlines: BTreeSet<(UnixMillis, Id, SocketAddr)>,
    /// Kept so that `counts` does not walk every info_hash.
    peer_count: usize,
    routing: Option<RoutingSnapshot>,
}

/// What an empty store reads as.
static EMPTY: Contents = Contents {
    items: BTreeMap::new(),
    item_deadlines: BTreeSet::new(),
    peers: BTreeMap::new(),
    peer_deadlines: BTreeSet::new(),
    peer_count: 0,
    routing: None,
};

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// What is stored, to read.
    fn contents(&self) -> &Contents {
        self.contents.as_deref().unwrap_or(&EMPTY)
    }

    /// What is stored, to change: made at the first write.
    fn contents_mut(&mut self) -> &mut Contents {
        self.contents.get_or_insert_with(Box::default)
    }
}

impl Contents {
    fn remove_peer_entry(&mut self, info_hash: &Id, addr: &SocketAddr) -> Option<UnixMillis> {
        let peers = self.peers.get_mut(info_hash)?;
        let (expires_at, _) = peers.remove(addr)?;
        if peers.is_empty() {
            self.peers.remove(info_hash);
        }
        self.peer_count -= 1;
        Some(expires_at)
    }
}

impl Store for MemStore {
    fn get_item(&self, target: &Id) -> Result<Option<StoredItem>, StoreError> {
        let c = self.contents();
        Ok(c.items.get(target).cloned())
    }

    fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError> {
        let c = self.contents_mut();
        let target = item.target;
        let expires_at = item.expires_at;
        if let Some(old) = c.items.insert(target, item) {
            c.item_deadlines.remove(&(old.expires_at, target));
        }
        c.item_deadlines.insert((expires_at, target));
        Ok(())
    }

    fn remove_item(&mut self, target: &Id) -> Result<bool, StoreError> {
        let Some(c) = self.contents.as_deref_mut() else {
            return Ok(false);
        };
        match c.items.remove(target) {
            Some(old) => {
                c.item_deadlines.remove(&(old.expires_at, *target));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put_peer(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError> {
        let c = self.contents_mut();
        let peers = c.peers.entry(*info_hash).or_default();
        match peers.insert(peer.addr, (peer.expires_at, peer.seed)) {
            Some((old, _)) => {
                c.peer_deadlines.remove(&(old, *info_hash, peer.addr));
            }
            None => c.peer_count += 1,
        }
        c.peer_deadlines
            .insert((peer.expires_at, *info_hash, peer.addr));
        Ok(())
    }

    fn get_peers(&self, info_hash: &Id) -> Result<Vec<StoredPeer>, StoreError> {
        let c = self.contents();
        Ok(c.peers
            .get(info_hash)
            .map(|peers| {
                peers
                    .iter()
                    .map(|(addr, (expires_at, seed))| StoredPeer {
                        addr: *addr,
                        expires_at: *expires_at,
                        seed: *seed,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    fn remove_peer(&mut self, info_hash: &Id, addr: &SocketAddr) -> Result<bool, StoreError> {
        let Some(c) = self.contents.as_deref_mut() else {
            return Ok(false);
        };
        match c.remove_peer_entry(info_hash, addr) {
            Some(expires_at) => {
                c.peer_deadlines.remove(&(expires_at, *info_hash, *addr));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn item_targets(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        let c = self.contents();
        Ok(c.items.range(start..).take(max).map(|(t, _)| *t).collect())
    }

    fn info_hashes(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        let c = self.contents();
        // Capacity from what exists, not from `max`, which may be usize::MAX.
        let mut out = Vec::with_capacity(max.min(c.peers.len()));
        out.extend(
            c.peers
                .range(start..)
                .chain(c.peers.range(..start))
                .map(|(info_hash, _)| *info_hash)
                .take(max),
        );
        Ok(out)
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        let c = self.contents();
        Ok(StoreCounts {
            items: c.items.len(),
            info_hashes: c.peers.len(),
            peers: c.peer_count,
        })
    }

    fn expire(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError> {
        // Nothing to expire in a store never written to, and nothing made for it.
        let Some(c) = self.contents.as_deref_mut() else {
            return Ok((0, 0));
        };
        let mut items = 0;
        while items < EXPIRIES_PER_CALL {
            let Some(&(expires_at, target)) = c.item_deadlines.first() else {
                break;
            };
            if expires_at > now {
                break;
            }
            c.item_deadlines.pop_first();
            c.items.remove(&target);
            items += 1;
        }
        let mut peers = 0;
        while peers < EXPIRIES_PER_CALL {
            let Some(&(expires_at, info_hash, addr)) = c.peer_deadlines.first() else {
                break;
            };
            if expires_at > now {
                break;
            }
            c.peer_deadlines.pop_first();
            c.remove_peer_entry(&info_hash, &addr);
            peers += 1;
        }
        Ok((items, peers))
    }

    fn save_routing(&mut self, snapshot: &RoutingSnapshot) -> Result<(), StoreError> {
        let c = self.contents_mut();
        c.routing = Some(snapshot.clone());
        Ok(())
    }

    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> {
        let c = self.contents();
        Ok(c.routing.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deadline indexes must hold exactly one entry per item and peer, or expiry
    /// would double-count or leak memory.
    #[test]
    fn deadline_indexes_track_contents() {
        let mut s = MemStore::new();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        for d in [5, 50, 500] {
            s.put_item(StoredItem {
                target: Id([1; 20]),
                item: dht_core::Item::Immutable {
                    value: b"1:x".to_vec(),
                },
                expires_at: d,
            })
            .unwrap();
            s.put_peer(
                &Id([2; 20]),
                StoredPeer {
                    addr: a,
                    expires_at: d,
                    seed: false,
                },
            )
            .unwrap();
        }
        assert_eq!(s.contents().item_deadlines.len(), 1);
        assert_eq!(s.contents().peer_deadlines.len(), 1);
        s.remove_item(&Id([1; 20])).unwrap();
        s.remove_peer(&Id([2; 20]), &a).unwrap();
        let c = s.contents();
        assert!(c.item_deadlines.is_empty());
        assert!(c.peer_deadlines.is_empty());
        assert!(c.peers.is_empty());
        assert_eq!(c.peer_count, 0);
    }

    /// What a node does to a store it never writes to (reads, expiry, removals) makes
    /// nothing: the store stays one pointer.
    #[test]
    fn a_store_never_written_to_stays_a_pointer() {
        assert_eq!(std::mem::size_of::<MemStore>(), 8);
        let mut s = MemStore::new();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(s.get_item(&Id([1; 20])).unwrap(), None);
        assert!(s.get_peers(&Id([1; 20])).unwrap().is_empty());
        assert_eq!(s.expire(u64::MAX).unwrap(), (0, 0));
        assert!(!s.remove_item(&Id([1; 20])).unwrap());
        assert!(!s.remove_peer(&Id([1; 20]), &a).unwrap());
        assert_eq!(s.counts().unwrap(), StoreCounts::default());
        assert!(s.load_routing().unwrap().is_none());
        assert!(s.contents.is_none());
        s.put_peer(
            &Id([1; 20]),
            StoredPeer {
                addr: a,
                expires_at: 9,
                seed: false,
            },
        )
        .unwrap();
        assert!(s.contents.is_some());
        assert_eq!(s.get_peers(&Id([1; 20])).unwrap().len(), 1);
    }
}
