//! # dht-store-sled: a persistent [`Store`] for dht-core, on sled
//!
//! [`SledStore`] keeps BEP 44 items, announced peers, the routing-table snapshot and
//! the node id in a data directory, so that a node restarts warm. Like
//! `dht-store-mem` it only keeps what the core tells it: limits, expiry and eviction
//! are the core's, and deadlines are wall-clock milliseconds passed in by the core,
//! so they mean the same after a restart.
//!
//! A data directory opened, written, closed and opened again (what a node does across a
//! restart):
//!
//! ```
//! use dht_core::{Id, Store, StoredPeer};
//! use dht_store_sled::SledStore;
//!
//! let dir = tempfile::tempdir()?;
//! let info_hash = Id([7; 20]);
//! let addr = "127.0.0.1:6881".parse()?;
//! {
//!     let mut store = SledStore::open(dir.path())?;
//!     store.put_peer(&info_hash, StoredPeer { addr, expires_at: 1_000, seed: false })?;
//!     store.flush()?;
//! } // dropped: the directory's lock is released
//! let store = SledStore::open(dir.path())?;
//! assert_eq!(store.get_peers(&info_hash)?[0].addr, addr);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//! A removal or an expiry sweep takes one sled transaction, so a crash never leaves
//! it half done, and so does a put that flushes by itself. Under group commit a put
//! writes its record and then its deadline entry without one (a sled 0.34
//! transaction syncs a log buffer of its own, one sync per put); a crash between the
//! two leaves an index that [`SledStore::open`]'s check finds and rebuilds from the
//! records. Counts are kept in memory and rebuilt by the scan that
//! [`SledStore::open`] makes to check every record (O(n) at open).
//!
//! ## Durability
//! Until [`Store::commit`] is first called, [`Store::put_item`] and
//! [`Store::put_peer`] return only once the write is on disk (sled's flush), so what
//! was acknowledged survives a crash, and a write that cannot reach the disk is
//! refused instead of acknowledged and lost.
//!
//! Group commit, as `dht-node`'s runtime runs it: from the first [`Store::commit`]
//! on, a put returns once sled holds it in memory, and each `commit` hands out one
//! flush ([`Commit`]) for every write since the last, to run on a store thread while
//! the node task goes on serving; the runtime sends the replies to those writes only
//! once it returned `Ok`, and never if it failed. A failed flush is remembered as a
//! failed write is (puts refused until a flush succeeds), and writes that no commit
//! covered when the database had to be reopened make the next commit fail, so none
//! of them is acknowledged. A durable put costs 63 µs (`put_item`) and 99 µs
//! (`put_peer`) with a flush each and a transaction; 3.1 and 4.7 µs with 64 puts
//! to a commit and no transaction (the `*_group_64` benches, a loaded machine).
//!
//! Removals, expiry and the routing snapshot are made durable by the next commit or
//! by sled's flusher every [`DEFAULT_FLUSH_EVERY`] (500 ms). [`Store::flush`] makes
//! everything durable before it returns; what was flushed or committed is never
//! lost (tested by killing a writer with SIGKILL at random points, under both
//! modes, `tests/crash.rs`).
//!
//! ## A full disk
//! Once a write or flush fails, [`SledStore::write_failure`] says why and puts are
//! refused (the core answers 202) until writing works again. sled 0.34 fails every
//! write of a database once one failed, so a refused put now and then (at most every
//! second, and only with 1 MiB free) reopens the database; reads go on meanwhile.
//! [`SledStore::health`] is a handle on this for a runtime to log, through a
//! [`FailureLog`] (once when it starts, at most once a minute, once when it clears):
//! `dht-node` does. `tests/full_disk.rs` fills a tmpfs.

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

mod codec;
mod dir;
mod error;
mod health;
mod write;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dht_core::Id;
use dht_core::{
    Commit, RoutingSnapshot, Store, StoreCounts, StoreError, StoredItem, StoredPeer, UnixMillis,
};
use dht_datadir::db::{self, DbError};
use dht_datadir::reopen::{self, Retry};
use dht_datadir::PathError;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use codec::{KIND_ITEM, KIND_PEER};
pub use dht_datadir::{FLUSHED, LOCK};
pub use dir::{FORMAT_VERSION, MARKER};
pub use error::OpenError;
pub use health::{FailureLog, Report, WriteHealth, LOG_FAILURE_EVERY};

/// How often sled's background flusher makes writes durable by default.
///
/// Puts and announces are durable when they return (or, under group commit, when
/// their commit completes, before they are acknowledged); this bounds what a crash can
/// undo of removals, expiry and the routing snapshot to about half a second, which
/// costs at most two fsyncs a second.
pub const DEFAULT_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Tunables of a [`SledStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledOptions {
    /// Interval of the background flush: the bound on how long a removal, an expiry
    /// or the routing snapshot may stay volatile (puts are durable when acknowledged).
    /// Rounded up to whole milliseconds, at least 1.
    pub flush_every: Duration,
    /// Bytes of sled's page cache. sled's own default (1 GiB) is far more than a
    /// node's store needs.
    pub cache_capacity: u64,
    /// Most deadlines one [`Store::expire`] call handles (default
    /// [`DEFAULT_EXPIRE_PER_CALL`]); the rest wait for the next call.
    pub expire_per_call: usize,
}

/// Most deadlines one [`Store::expire`] call handles by default: a clock jump or a
/// backlog expires over several housekeeping ticks instead of stalling the node for
/// one long sweep. The same as the core's ledger releases per tick, so the two keep
/// pace. At about 22 µs an entry (the `expire` bench on a loaded machine) a full
/// call takes about 1.5 s.
pub const DEFAULT_EXPIRE_PER_CALL: usize = 65_536;

impl Default for SledOptions {
    fn default() -> SledOptions {
        SledOptions {
            flush_every: DEFAULT_FLUSH_EVERY,
            cache_capacity: 64 * 1024 * 1024,
            expire_per_call: DEFAULT_EXPIRE_PER_CALL,
        }
    }
}

/// A [`Store`] in a data directory on disk, on sled (see the crate docs).
///
/// Dropping it flushes and releases the directory's lock.
#[derive(Debug)]
pub struct SledStore {
    /// `None` only between closing the database after a failed write and opening it
    /// again (see [`SledStore::recover`]).
    db: Option<Db>,
    options: SledOptions,
    counts: StoreCounts,
    /// Generation of the last completed [`Store::flush`] (see there).
    generation: u64,
    /// False until `open` has checked everything: a store that failed to open must
    /// not flush on drop, or it would write a new generation over the evidence.
    opened: bool,
    /// Why the last write or flush failed (a full disk, most likely), until a flush
    /// succeeds again. Meanwhile puts are refused (the core answers them with 202).
    health: WriteHealth,
    /// When a refused put last tried to recover, to see whether the disk has room again.
    retry: Retry,
    /// Group commit ([`Store::commit`] was called): puts return before they are on
    /// disk, and the caller holds their acknowledgements until a commit covers them.
    pub(crate) group: bool,
    /// Something was written since the last [`Store::commit`] or completed flush.
    dirty: bool,
    /// Why writes made since the last commit are gone (the database was reopened
    /// after a failed write before a commit covered them): the next commit fails,
    /// so that none of them is acknowledged.
    lost: Option<String>,
    dir: PathBuf,
    // Declared after the database so that it is dropped after the database is closed.
    _lock: File,
    /// For [`SledStore::open_temporary`]: removed after everything above is dropped.
    _temporary: Option<tempfile::TempDir>,
}

/// The database and its trees: closed and opened again to recover from a failed
/// write, since sled 0.34 fails every later write of a database once one failed.
#[derive(Debug)]
struct Db {
    db: sled::Db,
    items: sled::Tree,
    peers: sled::Tree,
    deadlines: sled::Tree,
    meta: sled::Tree,
}

impl Db {
    /// Opens the database of the data dir `dir` ([`dht_datadir::db::open`]).
    fn open(dir: &Path, options: &SledOptions) -> Result<Db, OpenError> {
        let opened = |e| match e {
            DbError::Io(PathError { path, source }) => OpenError::Io { path, source },
            DbError::Corrupt(reason) => OpenError::Corrupt {
                dir: dir.to_path_buf(),
                reason,
            },
        };
        let db = db::open(dir, options.cache_capacity, options.flush_every).map_err(opened)?;
        let tree = |name: &str| db::tree(&db, name).map_err(opened);
        Ok(Db {
            items: tree("items")?,
            peers: tree("peers")?,
            deadlines: tree("deadlines")?,
            meta: tree("meta")?,
            db,
        })
    }

    /// The generation of the last flush the database holds.
    fn generation(&self) -> Result<u64, StoreError> {
        match self.meta.get(META_GENERATION).map_err(store_err)? {
            None => Ok(0),
            Some(b) => codec::decode_generation(&b).map_err(store_err),
        }
    }
}

const META_ROUTING: &[u8] = b"routing";
const META_NODE_ID: &[u8] = b"node_id";
const META_GENERATION: &[u8] = b"flush_generation";

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
        let mut store = SledStore {
            db: Some(Db::open(dir, options)?),
            options: options.clone(),
            counts: StoreCounts::default(),
            generation: 0,
            opened: false,
            health: WriteHealth::default(),
            retry: Retry::default(),
            group: false,
            dirty: false,
            lost: None,
            dir: dir.to_path_buf(),
            _lock: lock,
            _temporary: None,
        };
        let flushed = dir::read_flushed(dir)?;
        store
            .check_generation(flushed)
            .map_err(|e| corrupt(e.message().to_owned()))?;
        store.check().map_err(|e| corrupt(e.message().to_owned()))?;
        if let dir::State::Older = state {
            // Everything of an older format reads as the current one (see
            // FORMAT_VERSION): once the directory checked out, only the marker changes.
            dir::write_marker(dir)?;
        }
        if let dir::State::Fresh = state {
            // Generation 1 from the start, so that even a database lost before the
            // first write is told from a new one.
            store.flush().map_err(|e| corrupt(e.message().to_owned()))?;
        }
        store.opened = true;
        Ok(store)
    }

    /// Sets the generation from the database; an error if it is behind `flushed`,
    /// the generation in `DIR/FLUSHED`.
    fn check_generation(&mut self, flushed: u64) -> Result<(), StoreError> {
        self.generation = self.db()?.generation()?;
        dht_datadir::check_generation(self.generation, flushed).map_err(StoreError::new)
    }

    fn db(&self) -> Result<&Db, StoreError> {
        self.db.as_ref().ok_or_else(|| {
            StoreError::new(format!(
                "the database is closed after a failed write: {}",
                self.health.failure().unwrap_or_default()
            ))
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node id kept by [`SledStore::set_node_id`], if any.
    pub fn node_id(&self) -> Result<Option<Id>, StoreError> {
        match self.db()?.meta.get(META_NODE_ID).map_err(store_err)? {
            None => Ok(None),
            Some(b) => codec::decode_node_id(&b).map(Some).map_err(store_err),
        }
    }

    /// Keeps `id` as the node's id, durably: it is flushed before this returns, since
    /// a node that forgets its id after a crash rejoins as a stranger.
    pub fn set_node_id(&mut self, id: Id) -> Result<(), StoreError> {
        self.db()?
            .meta
            .insert(META_NODE_ID, codec::encode_node_id(&id))
            .map_err(store_err)?;
        self.flush()
    }

    /// Why writes are failing (a full disk, most likely), or `None` when the last
    /// write and flush succeeded. Puts are refused meanwhile.
    pub fn write_failure(&self) -> Option<String> {
        self.health.failure()
    }

    /// A handle on [`SledStore::write_failure`] that stays valid once the store has
    /// moved into a node task: a runtime logs it through a [`FailureLog`].
    pub fn health(&self) -> WriteHealth {
        self.health.clone()
    }

    /// Refuses a write while an earlier one failed, trying to recover now and then
    /// (at most every [`RETRY_EVERY`](reopen::RETRY_EVERY)) to notice that the disk has room again.
    fn writable(&mut self) -> Result<(), StoreError> {
        let Some(why) = self.health.failure() else {
            return Ok(());
        };
        if self.retry.due() && self.recover().is_ok() {
            return Ok(());
        }
        self.health.refuse();
        Err(StoreError::new(format!(
            "writes refused until a flush succeeds again: {why}"
        )))
    }

    /// Tries to leave the failed state: once a write of sled 0.34 failed, every later
    /// one fails too, so the database is closed and opened again (checked as at
    /// open), then flushed. Opening drops what sled held in memory and had not
    /// written; no put among it was acknowledged, since a put returns only once it
    /// is on disk, or under group commit, once a commit covered it: the writes no
    /// commit covered yet are gone, so the next commit fails (`lost`).
    fn recover(&mut self) -> Result<(), StoreError> {
        if self.db.is_some() && self.flush().is_ok() {
            // Only our own record failed (sled's database did not).
            return Ok(());
        }
        reopen::room_to_reopen(&self.dir).map_err(StoreError::new)?;
        // sled releases its file lock only once its last handle is dropped.
        self.db = None;
        if std::mem::take(&mut self.dirty) && self.group {
            self.lost = Some(
                "the database was reopened after a failed write before these writes \
                 were committed"
                    .into(),
            );
        }
        let db = Db::open(&self.dir, &self.options).map_err(store_err)?;
        self.db = Some(db);
        let flushed = dir::read_flushed(&self.dir).map_err(store_err)?;
        self.check_generation(flushed)?;
        self.check()?;
        self.flush()
    }

    /// Remembers a write (for the next commit) and a failed write or flush (see
    /// [`SledStore::write_failure`]).
    fn note<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.dirty = true;
        if let Err(e) = &r {
            self.health.fail(e.message());
        }
        r
    }

    /// Makes what sled holds durable (without a new generation) before a put
    /// returns, so that what a node acknowledged survives a crash, and a write that
    /// cannot reach the disk (a full disk) is refused, not acknowledged and lost.
    /// Under group commit the commit does this instead, once for many puts.
    fn sync(&self) -> Result<(), StoreError> {
        if self.group {
            return Ok(());
        }
        self.db()?.db.flush().map_err(store_err)?;
        Ok(())
    }

    /// Checks every record and the deadline index, and rebuilds the counts. A
    /// record that does not decode is corruption; a deadline index that does not
    /// match the records exactly (it cannot, short of damage, since both are written
    /// in one transaction) is rebuilt from them, as it holds nothing else.
    fn check(&mut self) -> Result<(), StoreError> {
        let mut counts = StoreCounts::default();
        let mut index_ok = true;
        for kv in self.db()?.items.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let target = Id::from_slice(&k)
                .ok_or_else(|| StoreError::new("item key of the wrong length"))?;
            let item = codec::decode_item(target, &v).map_err(store_err)?;
            counts.items += 1;
            index_ok = index_ok
                && self
                    .db()?
                    .deadlines
                    .contains_key(codec::deadline_key(item.expires_at, KIND_ITEM, &k))
                    .map_err(store_err)?;
        }
        let mut last_ih = None;
        for kv in self.db()?.peers.iter() {
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
                    .db()?
                    .deadlines
                    .contains_key(codec::deadline_key(at, KIND_PEER, &k))
                    .map_err(store_err)?;
        }
        if let Some(b) = self.db()?.meta.get(META_ROUTING).map_err(store_err)? {
            codec::decode_routing(&b).map_err(store_err)?;
        }
        self.node_id()?;
        // Only now, with every record read and nothing found to refuse the directory
        // for, may the check write: a refused directory is left exactly as found.
        // Every record has its entry; equal sizes then mean there is nothing else.
        if !index_ok || self.db()?.deadlines.len() != counts.items + counts.peers {
            self.rebuild_index()?;
        }
        self.counts = counts;
        Ok(())
    }

    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        self.db()?.deadlines.clear().map_err(store_err)?;
        for kv in self.db()?.items.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let at = codec::item_deadline(&v).map_err(store_err)?;
            self.db()?
                .deadlines
                .insert(codec::deadline_key(at, KIND_ITEM, &k), &[])
                .map_err(store_err)?;
        }
        for kv in self.db()?.peers.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let (at, _) = codec::decode_peer(&v).map_err(store_err)?;
            self.db()?
                .deadlines
                .insert(codec::deadline_key(at, KIND_PEER, &k), &[])
                .map_err(store_err)?;
        }
        self.flush()
    }

    fn has_peers(&self, info_hash: &Id) -> Result<bool, StoreError> {
        Ok(self
            .db()?
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
                Some(to) => self.db()?.peers.range(from.as_slice()..to).next(),
                None => self.db()?.peers.range(from.as_slice()..).next(),
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

impl Drop for SledStore {
    fn drop(&mut self) {
        // Best effort: an error here has nowhere to go, and what was acknowledged is
        // already bounded by the background flush.
        if self.opened {
            let _ = Store::flush(self);
        }
    }
}

impl Store for SledStore {
    fn get_item(&self, target: &Id) -> Result<Option<StoredItem>, StoreError> {
        match self.db()?.items.get(target.0).map_err(store_err)? {
            None => Ok(None),
            Some(b) => codec::decode_item(*target, &b).map(Some).map_err(store_err),
        }
    }

    /// Returns once the item is on disk (sled flushed), or refuses it; under group
    /// commit, at once, and the item is on disk once a commit covered it.
    fn put_item(&mut self, item: StoredItem) -> Result<(), StoreError> {
        self.writable()?;
        let r = self.put_item_unchecked(item).and_then(|()| self.sync());
        self.note(r)
    }

    fn remove_item(&mut self, target: &Id) -> Result<bool, StoreError> {
        let r = self.remove_item_unnoted(target);
        self.note(r)
    }

    /// Returns once the peer is on disk (sled flushed), or refuses it; under group
    /// commit, at once, and the peer is on disk once a commit covered it.
    fn put_peer(&mut self, info_hash: &Id, peer: StoredPeer) -> Result<(), StoreError> {
        self.writable()?;
        let r = self
            .put_peer_unchecked(info_hash, peer)
            .and_then(|()| self.sync());
        self.note(r)
    }

    fn get_peers(&self, info_hash: &Id) -> Result<Vec<StoredPeer>, StoreError> {
        self.db()?
            .peers
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
        let r = self.remove_peer_unnoted(info_hash, addr);
        self.note(r)
    }

    fn item_targets(&self, start: &Id, max: usize) -> Result<Vec<Id>, StoreError> {
        let mut out = Vec::with_capacity(max.min(self.counts.items));
        for kv in self
            .db()?
            .items
            .range(start.0.as_slice()..)
            .keys()
            .take(max)
        {
            let key = kv.map_err(store_err)?;
            out.push(Id::from_slice(&key).ok_or_else(|| store_err("an item key is not 20 bytes"))?);
        }
        Ok(out)
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

    /// Removes what is due, but handles at most [`SledOptions::expire_per_call`]
    /// deadlines per call (soonest first): a clock jump or a backlog is worked off
    /// over the next calls rather than in one long stall. What is left over is
    /// expired: the core checks deadlines on every read, so nobody is served it.
    fn expire(&mut self, now: UnixMillis) -> Result<(usize, usize), StoreError> {
        let r = self.expire_unnoted(now);
        self.note(r)
    }

    fn save_routing(&mut self, snapshot: &RoutingSnapshot) -> Result<(), StoreError> {
        let r = self
            .db()
            .and_then(|db| {
                db.meta
                    .insert(META_ROUTING, codec::encode_routing(snapshot))
                    .map_err(store_err)
            })
            .map(drop);
        self.note(r)
    }

    fn load_routing(&self) -> Result<Option<RoutingSnapshot>, StoreError> {
        match self.db()?.meta.get(META_ROUTING).map_err(store_err)? {
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
            let db = self.db()?;
            db.meta
                .insert(META_GENERATION, &codec::encode_generation(next))
                .map_err(store_err)?;
            db.db.flush().map_err(store_err)?;
            dir::write_flushed(&self.dir, next).map_err(store_err)
        })();
        if let Err(e) = &r {
            self.health.fail(e.message());
        }
        r?;
        self.generation = next;
        self.health.clear();
        // Everything written so far is on disk: no commit needs to wait for it.
        self.dirty = false;
        Ok(())
    }

    /// Group commit: one sled flush for every write since the last commit, to run
    /// on a store thread while the node task goes on serving (sled takes writes
    /// while it flushes; the ones that land meanwhile are covered by the next
    /// commit). `None` when nothing was written. The first call switches the store
    /// to group commit (see [`Store::commit`]). A failed flush is remembered as a
    /// failed write is: puts are refused until a flush succeeds again.
    fn commit(&mut self) -> Option<Commit> {
        self.group = true;
        if let Some(why) = self.lost.take() {
            return Some(Commit::new(move || Err(StoreError::new(why))));
        }
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let db = match self.db() {
            Ok(db) => db.db.clone(),
            Err(e) => return Some(Commit::new(move || Err(e))),
        };
        let health = self.health.clone();
        Some(Commit::new(move || {
            db.flush().map(drop).map_err(|e| {
                let e = store_err(e);
                health.fail(e.message());
                e
            })
        }))
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
