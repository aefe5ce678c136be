//! The storage seam: one narrow, synchronous, fallible trait.
//!
//! The core decides *what* is stored, for how long, and what is evicted (limits,
//! expiry and eviction policy live in the core); a [`Store`] only keeps what it is
//! told and gives it back. Deadlines are wall-clock milliseconds since the Unix
//! epoch, passed in by the core (which is handed wall time with its inputs), so
//! they mean the same after a restart. A store error never panics the node: the
//! query that hit it is answered with KRPC error 202.

use std::net::SocketAddr;

use crate::bep44::Item;
use crate::id::{Id, NodeInfo};

/// The work that makes a group of writes durable (a flush of the disk), handed out by
/// [`Store::commit`] so that the caller runs it where blocking is harmless: a store
/// thread, never the task that answers datagrams.
pub struct Commit(Box<dyn FnOnce() -> Result<(), StoreError> + Send>);

impl Commit {
    /// Work that makes the writes it covers durable, or says why it could not.
    pub fn new(work: impl FnOnce() -> Result<(), StoreError> + Send + 'static) -> Commit {
        Commit(Box::new(work))
    }

    /// Runs it (blocking): `Ok` once every write it covers is durable.
    pub fn run(self) -> Result<(), StoreError> {
        (self.0)()
    }
}

impl std::fmt::Debug for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commit")
    }
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub type UnixMillis = u64;

/// A failure inside a store (I/O, corruption, ...), as text for logs and 202 replies.
///
/// The text is private (built by [`StoreError::new`], read by
/// [`StoreError::message`]) so that the error can carry more one day without a
/// breaking change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(String);

impl StoreError {
    /// Wraps any displayable error.
    pub fn new(e: impl std::fmt::Display) -> StoreError {
        StoreError(e.to_string())
    }

    /// What went wrong, without the `store error: ` that `Display` puts before it.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// A BEP 44 item as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredItem {
    /// The item's target (SHA-1 of v, or of k || salt): the store's key.
    pub target: Id,
    /// The item itself.
    pub item: Item,
    /// When the item expires unless refreshed.
    pub expires_at: UnixMillis,
}

/// A peer announced for an info_hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredPeer {
    /// Where the peer accepts BitTorrent connections.
    pub addr: SocketAddr,
    /// When the announcement expires unless renewed.
    pub expires_at: UnixMillis,
    /// BEP 33: the peer announced itself as a seed.
    pub seed: bool,
}

/// One routing-table entry as persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The node.
    pub node: NodeInfo,
    /// Last time it answered one of our queries (wall clock), if known.
    pub last_seen: UnixMillis,
}

/// What a node needs to restart warm: its id and the contacts of its routing tables.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoutingSnapshot {
    /// The node id in use when the snapshot was taken.
    pub node_id: Option<Id>,
    /// Contacts from every table (both address families).
    pub nodes: Vec<SnapshotNode>,
}

/// Counts of what a store holds (for limits and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Items held.
    pub items: usize,
    /// info_hashes with at least one peer.
    pub info_hashes: usize,
    /// Peers over all info_hashes.
    pub peers: usize,
}

/// Storage for items, peers and the routing-table snapshot.
///
/// Every implementation must pass [`crate::conformance::run_all`].
pub trait Store {
    /// The item stored under `target`, expired or not (the core checks deadlines).
    fn get_item(&self, target: &Id) -> Result<Option<StoredItem>, StoreError>;
    /// Inserts or replaces the item under `item.target`.
    fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError>;
    /// Removes the item under `target`; true if one was there.
    fn remove_item(&mut self, target: &Id) -> Result<bool, StoreError>;

    /// Inserts the peer for `info_hash`, or updates its deadline if the address is there.
    fn put_peer(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError>;
    /// Every peer stored for `info_hash`, in a stable order (by address).
    fn get_peers(&self, info_hash: &Id) -> Result<Vec<StoredPeer>, StoreError>;
    /// Removes one peer; true if it was there.
    fn remove_peer(&mut self, info_hash: &Id, addr: &SocketAddr) -> Result<bool, StoreError>;
    /// Up to `max` info_hashes that have peers, in ascending order starting at `start`
    /// (wrapping around), for BEP 51 samples.
    fn info_hashes(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError>;

    /// Up to `max` targets of stored items (expired or not), in ascending order from
    /// `start` (included), without wrapping around: the engine reads the range of
    /// targets a newcomer is closer to ([`crate::Config::handover`]). The default lists
    /// none, so a store that does not implement it hands nothing over.
    fn item_targets(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        let _ = (start, max);
        Ok(Vec::new())
    }

    /// How much is held.
    fn counts(&self) -> Result<StoreCounts, StoreError>;
    /// Removes items and peers whose deadline is at or before `now`, soonest first;
    /// returns how many items and peers were removed. A store may stop after a bounded
    /// number and leave the rest to later calls (the engine calls this every tick), so
    /// that a jump of the clock or a backlog never stalls the node in one call. Reads
    /// do not depend on it: the engine checks deadlines on every read.
    fn expire(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError>;

    /// Replaces the persisted routing-table snapshot.
    fn save_routing(&mut self, snapshot: &RoutingSnapshot) -> Result<(), StoreError>;
    /// The last snapshot saved, if any.
    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError>;

    /// Makes everything written so far durable (a no-op for memory stores).
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Group commit: the work that makes every write so far durable, to run off the
    /// caller's task, or `None` when there is nothing to wait for (nothing written
    /// since the last commit, or a store that keeps nothing on disk). The default,
    /// for memory stores, is `None` at no cost.
    ///
    /// A store that makes each put durable before it returns (sled) switches to
    /// group commit at the first call: from then on a put returns before it is on
    /// disk, and is durable once the [`Commit`] of a later call has run with `Ok`.
    /// So whoever calls this once must call it after every group of writes (the
    /// runtime: after each receive batch) and hold every acknowledgement of a write
    /// until the commit that covers it completes, and must not acknowledge the
    /// writes of a commit that failed. A store that never sees this call keeps
    /// making each put durable before it returns.
    fn commit(&mut self) -> Option<Commit> {
        None
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn get_item(&self, target: &Id) -> Result<Option<StoredItem>, StoreError> {
        (**self).get_item(target)
    }
    fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError> {
        (**self).put_item(item)
    }
    fn remove_item(&mut self, target: &Id) -> Result<bool, StoreError> {
        (**self).remove_item(target)
    }
    fn put_peer(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError> {
        (**self).put_peer(info_hash, peer)
    }
    fn get_peers(&self, info_hash: &Id) -> Result<Vec<StoredPeer>, StoreError> {
        (**self).get_peers(info_hash)
    }
    fn remove_peer(&mut self, info_hash: &Id, addr: &SocketAddr) -> Result<bool, StoreError> {
        (**self).remove_peer(info_hash, addr)
    }
    fn info_hashes(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        (**self).info_hashes(start, max)
    }
    fn item_targets(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        (**self).item_targets(start, max)
    }
    fn counts(&self) -> Result<StoreCounts, StoreError> {
        (**self).counts()
    }
    fn expire(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError> {
        (**self).expire(now)
    }
    fn save_routing(&mut self, snapshot: &RoutingSnapshot) -> Result<(), StoreError> {
        (**self).save_routing(snapshot)
    }
    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> {
        (**self).load_routing()
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        (**self).flush()
    }
    fn commit(&mut self) -> Option<Commit> {
        (**self).commit()
    }
}
