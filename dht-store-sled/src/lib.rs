//! # dht-store-sled: a persistent [`Store`] for dht-core, on sled
//!
//! [`SledStore`] keeps BEP 44 items, announced peers, the routing-table snapshot and
//! the node id in a data directory, so that a node restarts warm. Like
//! `dht-store-mem` it only keeps what the core tells it: limits, expiry and eviction
//! are the core's, and deadlines are wall-clock milliseconds passed in by the core,
//! so they mean the same after a restart.
//!
//! ## The data directory
//! ```text
//! DIR/DHT-DATA-DIR   marker: says the directory is ours and its format version
//! DIR/LOCK           exclusive advisory lock (flock) held while the store is open
//! DIR/FLUSHED        generation of the last completed flush
//! DIR/db/            the sled database
//! ```
//! [`SledStore::open`] creates a missing directory and initialises an empty one. It
//! refuses, with an [`OpenError`] and without touching anything, a non-empty directory
//! without the marker, one of a newer format, one locked by another process, and one
//! whose database does not open or whose records do not decode.
//!
//! ## Layout
//! Four sled trees:
//! - `items`: target → item record;
//! - `peers`: info_hash ‖ address → peer record (its deadline); addresses are encoded
//!   so that byte order is `SocketAddr` order, so [`Store::get_peers`] is one prefix
//!   scan that needs no sort;
//! - `deadlines`: expires_at ‖ kind ‖ key → (), so [`Store::expire`] is a range scan
//!   from the start that stops at `now`: O(k log n) for k expired entries;
//! - `meta`: the routing snapshot and the node id.
//!
//! sled recovers a damaged log file silently, keeping the part before the damage as
//! if the rest had been torn by a crash. To tell that from a crash, every
//! [`Store::flush`] writes a generation number into the database and then into
//! `DIR/FLUSHED`; a database that comes back behind that file has lost flushed data,
//! and [`SledStore::open`] says so ([`OpenError::Corrupt`]) instead of running on
//! without it. Damage to what was written after the last flush cannot be told from a
//! crash, and is treated as one.
//!
//! A record and its deadline entry are always written in one sled transaction, so a
//! crash never leaves one without the other. Counts are kept in memory and rebuilt by
//! the scan that [`SledStore::open`] makes to check every record (O(n) at open).
//!
//! ## Durability
//! sled's flusher makes writes durable every [`DEFAULT_FLUSH_EVERY`] (500 ms), so an
//! acknowledged put or announce is on disk within 500 ms plus the time of one flush
//! (a few ms on an idle disk), under 1 s. [`Store::flush`] makes everything durable
//! before it returns; what was flushed is never lost (tested by killing a writer
//! with SIGKILL at random points, `tests/crash.rs`).
//!
//! ```
//! use dht_core::{Store, StoredPeer};
//! use dht_core::Id;
//! use dht_store_sled::SledStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let info_hash = Id([7; 20]);
//! let addr = "127.0.0.1:6881".parse().unwrap();
//! {
//!     let mut store = SledStore::open(dir.path()).unwrap();
//!     store.put_peer(&info_hash, StoredPeer { addr, expires_at: 1_000, seed: false }).unwrap();
//!     store.flush().unwrap();
//! }
//! let store = SledStore::open(dir.path()).unwrap();
//! assert_eq!(store.get_peers(&info_hash).unwrap().len(), 1);
//! ```

mod codec;
mod dir;

use std::fs::File;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dht_core::Id;
use dht_core::{
    RoutingSnapshot, Store, StoreCounts, StoreError, StoredItem, StoredPeer, UnixMillis,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use codec::{Deadline, KIND_ITEM, KIND_PEER};
pub use dir::{FLUSHED, FORMAT_VERSION, LOCK, MARKER};

/// How often sled's background flusher makes writes durable by default.
///
/// 500 ms bounds what a crash can lose of acknowledged puts and announces to about
/// half a second, which publishers and peers repair on their next refresh anyway,
/// while costing at most two fsyncs a second, whatever the write rate.
pub const DEFAULT_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Tunables of a [`SledStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledOptions {
    /// Interval of the background flush: the bound on how long an acknowledged write
    /// may stay volatile (plus one flush). Rounded up to whole milliseconds, at least 1.
    pub flush_every: Duration,
    /// Bytes of sled's page cache. sled's own default (1 GiB) is far more than a
    /// node's store needs.
    pub cache_capacity: u64,
}

impl Default for SledOptions {
    fn default() -> SledOptions {
        SledOptions {
            flush_every: DEFAULT_FLUSH_EVERY,
            cache_capacity: 64 * 1024 * 1024,
        }
    }
}

/// Why a data directory could not be opened. This crate removes and overwrites
/// nothing in a directory it refuses.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory holds other files and no marker: it is not ours to touch.
    #[error(
        "{} is not a dht data directory: it is not empty and has no {MARKER} file; \
         refusing to use it (pick an empty or new directory)",
        dir.display()
    )]
    NotADataDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory was written by a newer version of this software.
    #[error(
        "{} holds data format {found}, but this build reads format {supported} at most; \
         use a newer build or another data directory",
        dir.display()
    )]
    NewerFormat {
        /// The directory.
        dir: PathBuf,
        /// The version in its marker.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Another process (or another store in this process) has the directory open.
    #[error("{} is in use by another process (it holds the lock on {LOCK})", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The database does not open, a record does not decode, or data that was
    /// flushed is missing.
    #[error("the data in {} is corrupt: {reason}", dir.display())]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// What failed, with the underlying message.
        reason: String,
    },
    /// The file system refused an operation.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A [`Store`] in a data directory on disk, on sled (see the crate docs).
///
/// Dropping it flushes and releases the directory's lock.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    items: sled::Tree,
    peers: sled::Tree,
    deadlines: sled::Tree,
    meta: sled::Tree,
    counts: StoreCounts,
    /// Generation of the last completed [`Store::flush`] (see there).
    generation: u64,
    /// False until `open` has checked everything: a store that failed to open must
    /// not flush on drop, or it would write a new generation over the evidence.
    opened: bool,
    /// Why the last write or flush failed (a full disk, most likely), until a flush
    /// succeeds again. Meanwhile puts are refused, so nothing is acknowledged that
    /// may not reach the disk (the core answers them with 202).
    write_failure: Option<String>,
    /// When a refused put last tried a flush to see whether the disk has room again.
    last_retry: Option<Instant>,
    dir: PathBuf,
    // Declared after the database so that it is dropped after the database is closed.
    _lock: File,
    /// For [`SledStore::open_temporary`]: removed after everything above is dropped.
    _temporary: Option<tempfile::TempDir>,
}

const META_ROUTING: &[u8] = b"routing";
const META_NODE_ID: &[u8] = b"node_id";
const META_GENERATION: &[u8] = b"flush_generation";

/// How often a refused put may retry a flush while writes are failing: a flush is an
/// fsync, and a full disk should not cost one per refused datagram.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How many expired entries one `expire` transaction removes: bounds the memory and
/// the size of one atomic write however many entries are due.
const EXPIRE_CHUNK: usize = 512;

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => store_err(e),
    }
}

fn abort(e: impl std::fmt::Display) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(store_err(e))
}

impl SledStore {
    /// Opens the data directory `dir` with [`SledOptions::default`], creating and
    /// initialising it if it is missing or empty.
    pub fn open(dir: &Path) -> Result<SledStore, OpenError> {
        SledStore::open_with(dir, &SledOptions::default())
    }

    /// A store in a new temporary data directory, removed when the store is dropped:
    /// for tests and benchmarks (the conformance suite runs on it).
    pub fn open_temporary() -> Result<SledStore, OpenError> {
        let temp = tempfile::tempdir().map_err(|source| OpenError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let mut store = SledStore::open(temp.path())?;
        store._temporary = Some(temp);
        Ok(store)
    }

    /// Opens the data directory `dir` with `options`.
    pub fn open_with(dir: &Path, options: &SledOptions) -> Result<SledStore, OpenError> {
        let state = dir::inspect(dir)?;
        let lock = dir::lock(dir)?;
        if let dir::State::Fresh = &state {
            dir::write_marker(dir)?;
        }
        let corrupt = |reason: String| OpenError::Corrupt {
            dir: dir.to_path_buf(),
            reason,
        };
        let flush_ms = u64::try_from(options.flush_every.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        dir::discard_unfinished_snapshots(dir)?;
        let config = sled::Config::new()
            .path(dir::db_path(dir))
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(Some(flush_ms));
        // sled 0.34 reports most damage as an error, but some damaged files make it
        // panic during recovery; a damaged directory must give an error, not a crash.
        let db = match catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Io(source))) => {
                return Err(OpenError::Io {
                    path: dir::db_path(dir),
                    source,
                })
            }
            Ok(Err(e)) => return Err(corrupt(format!("sled: {e}"))),
            Err(panic) => return Err(corrupt(format!("sled panicked: {}", panic_text(&panic)))),
        };
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| corrupt(format!("sled tree {name}: {e}")))
        };
        let mut store = SledStore {
            items: tree("items")?,
            peers: tree("peers")?,
            deadlines: tree("deadlines")?,
            meta: tree("meta")?,
            db,
            counts: StoreCounts::default(),
            generation: 0,
            opened: false,
            write_failure: None,
            last_retry: None,
            dir: dir.to_path_buf(),
            _lock: lock,
            _temporary: None,
        };
        // sled recovers a damaged log silently, as the prefix before the damage, as if
        // the tail had been torn by a crash. If that prefix ends before the last
        // completed flush, flushed data is gone: say so rather than run on without it.
        let flushed = dir::read_flushed(dir)?;
        store.generation = match store.meta.get(META_GENERATION) {
            Ok(None) => 0,
            Ok(Some(b)) => codec::decode_generation(&b).map_err(|e| corrupt(e.to_string()))?,
            Err(e) => return Err(corrupt(format!("sled: {e}"))),
        };
        if store.generation < flushed {
            return Err(corrupt(format!(
                "the database ends before the last flush (generation {} of {flushed}): \
                 flushed data is missing, the db files were damaged or truncated",
                store.generation
            )));
        }
        store.check().map_err(|e| corrupt(e.0))?;
        if let dir::State::Older = state {
            // Everything of an older format reads as the current one (see
            // FORMAT_VERSION): once the directory checked out, only the marker changes.
            dir::write_marker(dir)?;
        }
        if let dir::State::Fresh = state {
            // Generation 1 from the start, so that even a database lost before the
            // first write is told from a new one.
            store.flush().map_err(|e| corrupt(e.0))?;
        }
        store.opened = true;
        Ok(store)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node id kept by [`SledStore::set_node_id`], if any.
    pub fn node_id(&self) -> Result<Option<Id>, StoreError> {
        match self.meta.get(META_NODE_ID).map_err(store_err)? {
            None => Ok(None),
            Some(b) => codec::decode_node_id(&b).map(Some).map_err(store_err),
        }
    }

    /// Keeps `id` as the node's id, durably: it is flushed before this returns, since
    /// a node that forgets its id after a crash rejoins as a stranger.
    pub fn set_node_id(&mut self, id: Id) -> Result<(), StoreError> {
        self.meta
            .insert(META_NODE_ID, codec::encode_node_id(&id))
            .map_err(store_err)?;
        self.flush()
    }

    /// Why writes are failing (a full disk, most likely), or `None` when the last
    /// write and flush succeeded. Runtimes log it; puts are refused meanwhile.
    pub fn write_failure(&self) -> Option<&str> {
        self.write_failure.as_deref()
    }

    /// Refuses a write while an earlier one failed, retrying a flush now and then
    /// (at most every [`RETRY_EVERY`]) to notice that the disk has room again.
    fn writable(&mut self) -> Result<(), StoreError> {
        let Some(why) = self.write_failure.clone() else {
            return Ok(());
        };
        if self.last_retry.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
            self.last_retry = Some(Instant::now());
            if self.flush().is_ok() {
                return Ok(());
            }
        }
        Err(StoreError(format!(
            "writes refused until a flush succeeds again: {why}"
        )))
    }

    /// Remembers a failed write or flush (see [`SledStore::write_failure`]).
    fn note<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            self.write_failure = Some(e.0.clone());
        }
        r
    }

    /// Checks every record and the deadline index, and rebuilds the counts. A
    /// record that does not decode is corruption; a deadline index that does not
    /// match the records exactly (it cannot, short of damage, since both are written
    /// in one transaction) is rebuilt from them, as it holds nothing else.
    fn check(&mut self) -> Result<(), StoreError> {
        let mut counts = StoreCounts::default();
        let mut index_ok = true;
        for kv in self.items.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let target = Id::from_slice(&k)
                .ok_or_else(|| StoreError("item key of the wrong length".into()))?;
            let item = codec::decode_item(target, &v).map_err(store_err)?;
            counts.items += 1;
            index_ok = index_ok
                && self
                    .deadlines
                    .contains_key(codec::deadline_key(item.expires_at, KIND_ITEM, &k))
                    .map_err(store_err)?;
        }
        let mut last_ih = None;
        for kv in self.peers.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let (ih, _) = codec::decode_peer_key(&k).map_err(store_err)?;
            let (at, _) = codec::decode_peer(&v).map_err(store_err)?;
            counts.peers += 1;
            if last_ih != Some(ih) {
                counts.info_hashes += 1;
                last_ih = Some(ih);
            }
            index_ok = index_ok
                && self
                    .deadlines
                    .contains_key(codec::deadline_key(at, KIND_PEER, &k))
                    .map_err(store_err)?;
        }
        if let Some(b) = self.meta.get(META_ROUTING).map_err(store_err)? {
            codec::decode_routing(&b).map_err(store_err)?;
        }
        self.node_id()?;
        // Only now, with every record read and nothing found to refuse the directory
        // for, may the check write: a refused directory is left exactly as found.
        // Every record has its entry; equal sizes then mean there is nothing else.
        if !index_ok || self.deadlines.len() != counts.items + counts.peers {
            self.rebuild_index()?;
        }
        self.counts = counts;
        Ok(())
    }

    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        self.deadlines.clear().map_err(store_err)?;
        for kv in self.items.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let at = codec::item_deadline(&v).map_err(store_err)?;
            self.deadlines
                .insert(codec::deadline_key(at, KIND_ITEM, &k), &[])
                .map_err(store_err)?;
        }
        for kv in self.peers.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let (at, _) = codec::decode_peer(&v).map_err(store_err)?;
            self.deadlines
                .insert(codec::deadline_key(at, KIND_PEER, &k), &[])
                .map_err(store_err)?;
        }
        self.flush()
    }

    fn has_peers(&self, info_hash: &Id) -> Result<bool, StoreError> {
        Ok(self
            .peers
            .scan_prefix(info_hash.0)
            .next()
            .transpose()
            .map_err(store_err)?
            .is_some())
    }

    /// Appends the distinct info_hashes with peers in `from..to` (keys), up to `out`
    /// holding `max`, seeking past each info_hash's peers rather than reading them.
    fn collect_info_hashes(
        &self,
        mut from: Vec<u8>,
        to: Option<&[u8]>,
        max: usize,
        out: &mut Vec<Id>,
    ) -> Result<(), StoreError> {
        while out.len() < max {
            let next = match to {
                Some(to) => self.peers.range(from.as_slice()..to).next(),
                None => self.peers.range(from.as_slice()..).next(),
            };
            let Some(kv) = next else { break };
            let (k, _) = kv.map_err(store_err)?;
            let (ih, _) = codec::decode_peer_key(&k).map_err(store_err)?;
            out.push(ih);
            match codec::prefix_successor(&ih.0) {
                Some(s) => from = s,
                None => break,
            }
        }
        Ok(())
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: an error here has nowhere to go, and what was acknowledged is
        // already bounded by the background flush.
        if self.opened {
            let _ = Store::flush(self);
        }
    }
}

impl SledStore {
    fn put_item_unchecked(&mut self, item: StoredItem) -> Result<(), StoreError> {
        let value = codec::encode_item(&item);
        let new_deadline = codec::deadline_key(item.expires_at, KIND_ITEM, &item.target.0);
        let replaced = (&self.items, &self.deadlines)
            .transaction(|(items, deadlines)| {
                let old = items.insert(&item.target.0, value.as_slice())?;
                if let Some(old) = &old {
                    let at = codec::item_deadline(old).map_err(abort)?;
                    deadlines.remove(codec::deadline_key(at, KIND_ITEM, &item.target.0))?;
                }
                deadlines.insert(new_deadline.as_slice(), &[])?;
                Ok(old.is_some())
            })
            .map_err(tx_err)?;
        if !replaced {
            self.counts.items += 1;
        }
        Ok(())
    }

    fn put_peer_unchecked(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError> {
        // Read outside the transaction (sled's cannot scan): the store has one writer,
        // `&mut self`, so nothing changes in between.
        let had_peers = self.has_peers(info_hash)?;
        let key = codec::peer_key(info_hash, &peer.addr);
        let value = codec::encode_peer(peer.expires_at, peer.seed);
        let new_deadline = codec::deadline_key(peer.expires_at, KIND_PEER, &key);
        let replaced = (&self.peers, &self.deadlines)
            .transaction(|(peers, deadlines)| {
                let old = peers.insert(key.as_slice(), value.as_slice())?;
                if let Some(old) = &old {
                    let (at, _) = codec::decode_peer(old).map_err(abort)?;
                    deadlines.remove(codec::deadline_key(at, KIND_PEER, &key))?;
                }
                deadlines.insert(new_deadline.as_slice(), &[])?;
                Ok(old.is_some())
            })
            .map_err(tx_err)?;
        if !replaced {
            self.counts.peers += 1;
            if !had_peers {
                self.counts.info_hashes += 1;
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn get_item(&self, target: &Id) -> Result<Option<StoredItem>, StoreError> {
        match self.items.get(target.0).map_err(store_err)? {
            None => Ok(None),
            Some(b) => codec::decode_item(*target, &b).map(Some).map_err(store_err),
        }
    }

    fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError> {
        self.writable()?;
        let r = self.put_item_unchecked(item);
        self.note(r)
    }

    fn put_peer(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError> {
        self.writable()?;
        let r = self.put_peer_unchecked(info_hash, peer);
        self.note(r)
    }
    fn remove_item(&mut self, target: &Id) -> Result<bool, StoreError> {
        let removed = (&self.items, &self.deadlines)
            .transaction(|(items, deadlines)| {
                let Some(old) = items.remove(&target.0)? else {
                    return Ok(false);
                };
                let at = codec::item_deadline(&old).map_err(abort)?;
                deadlines.remove(codec::deadline_key(at, KIND_ITEM, &target.0))?;
                Ok(true)
            })
            .map_err(tx_err)?;
        if removed {
            self.counts.items = self.counts.items.saturating_sub(1);
        }
        Ok(removed)
    }

    fn get_peers(&self, info_hash: &Id) -> Result<Vec<StoredPeer>, StoreError> {
        self.peers
            .scan_prefix(info_hash.0)
            .map(|kv| {
                let (k, v) = kv.map_err(store_err)?;
                let (_, addr) = codec::decode_peer_key(&k).map_err(store_err)?;
                let (expires_at, seed) = codec::decode_peer(&v).map_err(store_err)?;
                Ok(StoredPeer {
                    addr,
                    expires_at,
                    seed,
                })
            })
            .collect()
    }

    fn remove_peer(&mut self, info_hash: &Id, addr: &SocketAddr) -> Result<bool, StoreError> {
        let key = codec::peer_key(info_hash, addr);
        let removed = (&self.peers, &self.deadlines)
            .transaction(|(peers, deadlines)| {
                let Some(old) = peers.remove(key.as_slice())? else {
                    return Ok(false);
                };
                let (at, _) = codec::decode_peer(&old).map_err(abort)?;
                deadlines.remove(codec::deadline_key(at, KIND_PEER, &key))?;
                Ok(true)
            })
            .map_err(tx_err)?;
        if removed {
            self.counts.peers = self.counts.peers.saturating_sub(1);
            if !self.has_peers(info_hash)? {
                self.counts.info_hashes = self.counts.info_hashes.saturating_sub(1);
            }
        }
        Ok(removed)
    }

    fn info_hashes(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        let max = max.min(self.counts.info_hashes);
        let mut out = Vec::with_capacity(max);
        self.collect_info_hashes(start.0.to_vec(), None, max, &mut out)?;
        self.collect_info_hashes(Vec::new(), Some(&start.0), max, &mut out)?;
        Ok(out)
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        Ok(self.counts)
    }

    fn expire(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError> {
        let (mut items, mut peers) = (0, 0);
        loop {
            let due = match now.checked_add(1) {
                Some(end) => self.deadlines.range(..end.to_be_bytes()),
                None => self.deadlines.iter(),
            };
            let mut chunk = Vec::new();
            for kv in due.take(EXPIRE_CHUNK) {
                let (k, _) = kv.map_err(store_err)?;
                let (_, what) = codec::decode_deadline_key(&k).map_err(store_err)?;
                chunk.push((k, what));
            }
            if chunk.is_empty() {
                return Ok((items, peers));
            }
            let removed = (&self.items, &self.peers, &self.deadlines)
                .transaction(|(it, pe, dl)| {
                    let mut removed = Vec::with_capacity(chunk.len());
                    for (k, what) in &chunk {
                        dl.remove(k)?;
                        let gone = match what {
                            Deadline::Item(target) => it.remove(&target.0)?.is_some(),
                            Deadline::Peer(_, key) => pe.remove(key.as_slice())?.is_some(),
                        };
                        removed.push(gone);
                    }
                    Ok(removed)
                })
                .map_err(tx_err)?;
            let mut emptied: Vec<Id> = Vec::new();
            for ((_, what), gone) in chunk.iter().zip(removed) {
                if !gone {
                    continue;
                }
                match what {
                    Deadline::Item(_) => {
                        items += 1;
                        self.counts.items = self.counts.items.saturating_sub(1);
                    }
                    Deadline::Peer(ih, _) => {
                        peers += 1;
                        self.counts.peers = self.counts.peers.saturating_sub(1);
                        emptied.push(*ih);
                    }
                }
            }
            emptied.sort();
            emptied.dedup();
            // Each lost a peer in this chunk, so each was counted before it.
            for ih in emptied {
                if !self.has_peers(&ih)? {
                    self.counts.info_hashes = self.counts.info_hashes.saturating_sub(1);
                }
            }
        }
    }

    fn save_routing(&mut self, snapshot: &RoutingSnapshot) -> Result<(), StoreError> {
        self.meta
            .insert(META_ROUTING, codec::encode_routing(snapshot))
            .map_err(store_err)?;
        Ok(())
    }

    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> {
        match self.meta.get(META_ROUTING).map_err(store_err)? {
            None => Ok(None),
            Some(b) => codec::decode_routing(&b).map(Some).map_err(store_err),
        }
    }

    /// Makes everything written so far durable, and records that it did, twice: a
    /// generation number in the database and the same number in `DIR/FLUSHED`. On
    /// open, a database whose generation is behind the file has lost flushed data
    /// (see [`SledStore::open`]).
    ///
    /// A failed flush is remembered: puts are refused until a flush succeeds again.
    fn flush(&mut self) -> Result<(), StoreError> {
        let next = self.generation + 1;
        let r = (|| {
            self.meta
                .insert(META_GENERATION, &codec::encode_generation(next))
                .map_err(store_err)?;
            self.db.flush().map_err(store_err)?;
            dir::write_flushed(&self.dir, next).map_err(store_err)
        })();
        self.note(r)?;
        self.generation = next;
        self.write_failure = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The node moves its store into the task that drives it.
    #[test]
    fn store_is_send() {
        fn send<T: Send>() {}
        send::<super::SledStore>();
    }
}
