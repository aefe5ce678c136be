//! # dht-ipfs-store-sled: a persistent [`Store`] for dht-ipfs, on sled
//!
//! [`SledStore`] keeps an IPFS Kademlia node's records and provider records in a data
//! directory, so that a node restarts with what it was asked to keep. It is
//! `dht-store-sled`'s approach applied to `dht_ipfs::Store`, and enforces the same
//! bounds as [`dht_ipfs::MemStore`] ([`StoreLimits`]: caps on records and provider
//! keys, 20 providers a key, per-source shares); the sources entries are charged to
//! are kept with them, so shares hold across a restart. Deadlines are wall-clock
//! milliseconds passed in by the node, so they mean the same after a restart.
//!
//! A data directory opened, written, closed and opened again:
//!
//! ```
//! use dht_ipfs::{Store, StoreLimits, StoredRecord};
//! use dht_ipfs_store_sled::SledStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let record = StoredRecord {
//!     key: b"/pk/x".to_vec(),
//!     value: b"v".to_vec(),
//!     publisher: None,
//!     expires_at: 2_000,
//! };
//! {
//!     let mut store = SledStore::open(dir.path(), StoreLimits::default()).unwrap();
//!     store.put_record(record.clone(), None, 1_000).unwrap(); // on disk when Ok
//! }
//! let store = SledStore::open(dir.path(), StoreLimits::default()).unwrap();
//! assert_eq!(store.record(b"/pk/x", 1_000).unwrap(), Some(record));
//! ```
//!
//! ## The data directory
//! ```text
//! DIR/DHT-IPFS-DATA-DIR  marker: the kind (ipfs-kad) and the format version
//! DIR/LOCK               exclusive advisory lock (flock) held while the store is open
//! DIR/FLUSHED            generation of the last completed flush
//! DIR/db/                the sled database
//! ```
//! [`SledStore::open`] creates a missing directory and initialises an empty one. It
//! refuses, with an [`OpenError`] and without touching anything:
//! - a Mainline data dir (it has `DHT-DATA-DIR`, the marker of `dht-store-sled`) or a
//!   marker of another kind: [`OpenError::OtherKind`], whose message names what the
//!   directory is;
//! - a non-empty directory without a marker ([`OpenError::NotADataDir`]);
//! - one of a newer format ([`OpenError::NewerFormat`]);
//! - one locked by another process ([`OpenError::Locked`]);
//! - one whose database does not open, whose values do not decode, or whose database
//!   ends before the last flush ([`OpenError::Corrupt`]).
//!
//! The reverse holds too: `dht_store_sled::SledStore::open` refuses an IPFS data dir
//! (it is not empty and has no `DHT-DATA-DIR`), which is why the marker has a name of
//! its own rather than Mainline's with a kind inside. Every [`OpenError`] is one line
//! naming the directory: a CLI prints it and exits (dht-node exits 3 on a refused data
//! dir).
//!
//! ## Format versions
//! The marker's `format` is [`FORMAT_VERSION`], 1: this is the first format, so no
//! older directory exists to read yet. A build refuses a directory of a newer format
//! ([`OpenError::NewerFormat`]) rather than misread it. Each value also starts with a
//! version byte, and the bytes of format 1 are pinned by tests (`src/codec.rs`), so
//! that a change to the encoding cannot slip in without a new version. When a format
//! 2 comes, the build that writes it either reads a format 1 directory as it is and
//! rewrites the marker once it checked out (as `dht-store-sled` did for its format
//! 1), or refuses it with an error that says how to migrate; whichever it does, it
//! comes with a test that opens a directory written by format 1.
//!
//! ## Layout
//! Four sled trees:
//! - `records`: record key → expiry, the source it is charged to, publisher, value;
//! - `providers`: length ‖ provider key ‖ PeerId → expiry, address expiry, source,
//!   multiaddrs; the length prefix makes one key's providers exactly one prefix scan;
//! - `deadlines`: expires_at ‖ kind ‖ tree key → (), so [`Store::expire`] is a range
//!   scan from the start that stops at `now` or after `max` entries (the node's bound
//!   per call, `expire_per_run`), in transactions of at most 512;
//! - `meta`: the flush generation.
//!
//! An entry and its deadline are always written in one sled transaction, and an
//! `add_provider` that also drops the key's expired providers does so in the same
//! transaction, so a crash never leaves half an operation. Counts and per-source
//! shares are kept in memory and rebuilt by the scan that [`SledStore::open`] makes to
//! check every value (O(n) at open).
//!
//! ## Durability
//! `dht_ipfs::Store` says nothing of durability (it has no flush), so this store
//! decides as `dht-store-sled` does: [`Store::put_record`] and [`Store::add_provider`]
//! return `Ok` only once the write is on disk (sled's flush), so what the node
//! acknowledged survives a crash, and a write that cannot reach the disk is refused
//! instead of acknowledged and lost. Removals and expiry are made durable by sled's
//! background flush every [`DEFAULT_FLUSH_EVERY`] (500 ms), or at once by
//! [`SledStore::flush`], a full barrier that also records a generation number in the
//! database and in `DIR/FLUSHED`. sled recovers a damaged log silently as the prefix
//! before the damage; a database that comes back behind `DIR/FLUSHED` has lost flushed
//! data, and [`SledStore::open`] refuses it ([`OpenError::Corrupt`]) rather than run on
//! without it. Dropping the store flushes. `tests/crash.rs` kills a writer with
//! SIGKILL in a loop and checks that nothing acknowledged is lost and no operation is
//! half applied, and that removals are durable within 1 s without a flush.
//!
//! ## Errors and a full disk
//! Reads and writes fail with [`StoreError::Backend`]; refusals by the bounds are
//! [`StoreError::Full`], [`StoreError::KeyFull`] and [`StoreError::SourceShare`], as
//! in every store. Once a write or flush fails (a full disk, most likely),
//! [`SledStore::write_failure`] says why and writes are refused until writing works
//! again: sled 0.34 fails every write of a database once one failed, so a refused
//! write now and then (at most every second, and only with 1 MiB free) reopens the
//! database; reads go on meanwhile. `tests/full_disk.rs` fills a tmpfs.
//!
//! ## Why sled
//! The Mainline store is on sled 0.34 already: an embedded, ordered key-value store
//! in pure Rust with multi-tree transactions, crash-tested, with known limits (its
//! format changes at 1.0, space amplification, silent recovery of a damaged log)
//! that `dht-store-sled` found and works around, here the same way. One engine for
//! both overlays means one set of failure modes to know.

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

mod codec;
mod dir;
mod error;
mod write;

use std::collections::BTreeMap;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dht_ipfs::{
    Store, StoreCounts, StoreError, StoreLimits, StoredProvider, StoredRecord, UnixMillis,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use dht_datadir::{FLUSHED, LOCK};
pub use dir::{FORMAT_VERSION, KIND, MAINLINE_MARKER, MARKER};
pub use error::OpenError;

/// How often sled's background flusher makes removals and expiry durable by default
/// (writes are durable when they return): at most two fsyncs a second.
pub const DEFAULT_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Tunables of a [`SledStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SledOptions {
    /// Interval of the background flush: the bound on how long a removal or an expiry
    /// may stay volatile. Rounded up to whole milliseconds, at least 1.
    pub flush_every: Duration,
    /// Bytes of sled's page cache (sled's own default, 1 GiB, is far more than a
    /// node's store needs).
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

/// How much one source has stored.
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    records: usize,
    providers: usize,
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
    limits: StoreLimits,
    counts: StoreCounts,
    shares: BTreeMap<Vec<u8>, Share>,
    /// Generation of the last completed [`SledStore::flush`].
    generation: u64,
    /// False until `open` has checked everything: a store that failed to open must
    /// not flush on drop, or it would write a new generation over the evidence.
    opened: bool,
    /// Why the last write or flush failed, until a flush succeeds again.
    failure: Option<String>,
    /// Writes refused because of `failure` since the store was opened.
    refused: u64,
    /// When a refused write last tried to recover.
    last_retry: Option<Instant>,
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
    records: sled::Tree,
    providers: sled::Tree,
    deadlines: sled::Tree,
    meta: sled::Tree,
}

impl Db {
    fn open(dir: &Path, options: &SledOptions) -> Result<Db, OpenError> {
        let corrupt = |reason: String| OpenError::Corrupt {
            dir: dir.to_path_buf(),
            reason: error::one_line(&reason),
        };
        let flush_ms = u64::try_from(options.flush_every.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        dir::discard_unfinished_snapshots(dir)?;
        let config = sled::Config::new()
            .path(dir::db_path(dir))
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(Some(flush_ms));
        // Some damaged files make sled 0.34 panic during recovery: a damaged directory
        // must give an error, not a crash. Our lock on the directory is held, so sled's
        // own lock can only be held by an instance of this process still shutting down
        // (its flusher lets go a moment after the last handle drops): wait up to 2 s.
        let mut attempt = 0;
        let opened = loop {
            let result = catch_unwind(AssertUnwindSafe(|| config.open()));
            match &result {
                Ok(Err(sled::Error::Io(e)))
                    if attempt < 100 && e.to_string().contains("could not acquire lock") =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => break result,
            }
        };
        let db = match opened {
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
        Ok(Db {
            records: tree("records")?,
            providers: tree("providers")?,
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

const META_GENERATION: &[u8] = b"flush_generation";

/// How often a refused write may try to recover: recovering reopens the database and
/// reads it through, and a full disk should not cost that per refused request.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Free bytes needed before the database is reopened after a failed write: two of
/// sled's 512 KiB log segments, so that opening and the next writes have room.
const RECOVER_FREE: u64 = 1024 * 1024;

/// How many expired entries one `expire` transaction removes: bounds the memory and
/// the size of one atomic write however large the caller's `max`.
const EXPIRE_CHUNK: usize = 512;

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
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
    /// initialising it if it is missing or empty; `limits` are the bounds it enforces.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<SledStore, OpenError> {
        SledStore::open_with(dir, limits, &SledOptions::default())
    }

    /// A store in a new temporary data directory, removed when the store is dropped:
    /// for tests (the conformance suite runs on it).
    pub fn open_temporary(limits: StoreLimits) -> Result<SledStore, OpenError> {
        let temp = tempfile::tempdir().map_err(|source| OpenError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let mut store = SledStore::open(temp.path(), limits)?;
        store._temporary = Some(temp);
        Ok(store)
    }

    /// Opens the data directory `dir` with `options`.
    pub fn open_with(
        dir: &Path,
        limits: StoreLimits,
        options: &SledOptions,
    ) -> Result<SledStore, OpenError> {
        let state = dir::inspect(dir)?;
        let lock = dir::lock(dir)?;
        if let dir::State::Fresh = &state {
            dir::write_marker(dir)?;
        }
        let corrupt = |reason: String| OpenError::Corrupt {
            dir: dir.to_path_buf(),
            reason: error::one_line(&reason),
        };
        let mut store = SledStore {
            db: Some(Db::open(dir, options)?),
            options: options.clone(),
            limits,
            counts: StoreCounts::default(),
            shares: BTreeMap::new(),
            generation: 0,
            opened: false,
            failure: None,
            refused: 0,
            last_retry: None,
            dir: dir.to_path_buf(),
            _lock: lock,
            _temporary: None,
        };
        let flushed = dir::read_flushed(dir)?;
        store
            .check_generation(flushed)
            .map_err(|e| corrupt(e.to_string()))?;
        store.check().map_err(|e| corrupt(e.to_string()))?;
        if let dir::State::Fresh = state {
            // Generation 1 from the start, so that even a database lost before the
            // first write is told from a new one.
            store.flush().map_err(|e| corrupt(e.to_string()))?;
        }
        store.opened = true;
        Ok(store)
    }

    /// Sets the generation from the database; an error if it is behind `flushed`,
    /// the generation in `DIR/FLUSHED`.
    fn check_generation(&mut self, flushed: u64) -> Result<(), StoreError> {
        self.generation = self.db()?.generation()?;
        if self.generation < flushed {
            return Err(StoreError::Backend(format!(
                "the database ends before the last flush (generation {} of {flushed}): \
                 flushed data is missing, the db files were damaged or truncated",
                self.generation
            )));
        }
        Ok(())
    }

    fn db(&self) -> Result<&Db, StoreError> {
        self.db.as_ref().ok_or_else(|| {
            StoreError::Backend(format!(
                "the database is closed after a failed write: {}",
                self.failure.as_deref().unwrap_or_default()
            ))
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bounds this store enforces.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Why writes are failing (a full disk, most likely), or `None` when the last
    /// write and flush succeeded. Writes are refused meanwhile.
    pub fn write_failure(&self) -> Option<String> {
        self.failure.clone()
    }

    /// Writes refused since the store was opened because an earlier one failed.
    pub fn refused_writes(&self) -> u64 {
        self.refused
    }

    /// Makes everything written so far durable, and records that it did, twice: a
    /// generation number in the database and the same number in `DIR/FLUSHED`. On
    /// open, a database whose generation is behind the file has lost flushed data.
    /// A runtime calls it now and then (as dht-node does the Mainline store's on its
    /// housekeeping tick) and before it stops; dropping the store calls it too.
    ///
    /// A failed flush is remembered: writes are refused until a flush succeeds again.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let next = self.generation + 1;
        let r = (|| {
            let db = self.db()?;
            db.meta
                .insert(META_GENERATION, &codec::encode_generation(next))
                .map_err(store_err)?;
            db.db.flush().map_err(store_err)?;
            dir::write_flushed(&self.dir, next).map_err(store_err)
        })();
        self.note(r)?;
        self.generation = next;
        self.failure = None;
        Ok(())
    }

    /// Refuses a write while an earlier one failed, trying to recover now and then
    /// (at most every [`RETRY_EVERY`]) to notice that the disk has room again.
    fn writable(&mut self) -> Result<(), StoreError> {
        let Some(why) = self.failure.clone() else {
            return Ok(());
        };
        if self.last_retry.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
            self.last_retry = Some(Instant::now());
            if self.recover().is_ok() {
                return Ok(());
            }
        }
        self.refused += 1;
        Err(StoreError::Backend(format!(
            "writes refused until a flush succeeds again: {why}"
        )))
    }

    /// Tries to leave the failed state: the database is closed and opened again
    /// (checked as at open), then flushed. Opening drops what sled held in memory and
    /// had not written; no write among it was acknowledged, since a write returns
    /// only once it is on disk.
    fn recover(&mut self) -> Result<(), StoreError> {
        if self.db.is_some() && self.flush().is_ok() {
            return Ok(());
        }
        let free = fs2::available_space(&self.dir).map_err(store_err)?;
        if free < RECOVER_FREE {
            return Err(StoreError::Backend(format!(
                "{free} bytes free on the data dir's file system; waiting for {RECOVER_FREE}"
            )));
        }
        // sled releases its file lock only once its last handle is dropped.
        self.db = None;
        self.db = Some(Db::open(&self.dir, &self.options).map_err(store_err)?);
        let flushed = dir::read_flushed(&self.dir).map_err(store_err)?;
        self.check_generation(flushed)?;
        self.check()?;
        self.flush()
    }

    /// Remembers a failed write or flush (see [`SledStore::write_failure`]).
    fn note<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Backend(why)) = &r {
            self.failure = Some(why.clone());
        }
        r
    }

    /// Makes what sled holds durable (without a new generation): a write returns only
    /// after this.
    fn sync(&self) -> Result<(), StoreError> {
        self.db()?.db.flush().map_err(store_err)?;
        Ok(())
    }

    /// Checks every value and the deadline index, and rebuilds the counts and the
    /// shares. A value that does not decode is corruption; a deadline index that does
    /// not match the entries exactly (it cannot, short of damage, since both are
    /// written in one transaction) is rebuilt from them, as it holds nothing else.
    fn check(&mut self) -> Result<(), StoreError> {
        let mut counts = StoreCounts::default();
        let mut shares: BTreeMap<Vec<u8>, Share> = BTreeMap::new();
        let mut index_ok = true;
        let db = self.db()?;
        for kv in db.records.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let (record, source) = codec::decode_record(&k, &v).map_err(store_err)?;
            counts.records += 1;
            if let Some(s) = source {
                shares.entry(s).or_default().records += 1;
            }
            index_ok = index_ok
                && db
                    .deadlines
                    .contains_key(codec::deadline_key(
                        record.expires_at,
                        codec::KIND_RECORD,
                        &k,
                    ))
                    .map_err(store_err)?;
        }
        let mut last_key: Option<Vec<u8>> = None;
        for kv in db.providers.iter() {
            let (k, v) = kv.map_err(store_err)?;
            let (key, id) = codec::decode_provider_key(&k).map_err(store_err)?;
            let (p, source) = codec::decode_provider(id, &v).map_err(store_err)?;
            counts.providers += 1;
            if last_key.as_deref() != Some(key) {
                counts.provider_keys += 1;
                last_key = Some(key.to_vec());
            }
            if let Some(s) = source {
                shares.entry(s).or_default().providers += 1;
            }
            index_ok = index_ok
                && db
                    .deadlines
                    .contains_key(codec::deadline_key(p.expires_at, codec::KIND_PROVIDER, &k))
                    .map_err(store_err)?;
        }
        db.generation()?;
        // Only now, with every value read and nothing found to refuse the directory
        // for, may the check write: a refused directory is left exactly as found.
        // Every entry has its deadline; equal sizes then mean there is nothing else.
        if !index_ok || db.deadlines.len() != counts.records + counts.providers {
            self.rebuild_index()?;
        }
        self.counts = counts;
        self.shares = shares;
        Ok(())
    }

    fn rebuild_index(&mut self) -> Result<(), StoreError> {
        let db = self.db()?;
        db.deadlines.clear().map_err(store_err)?;
        for (tree, kind) in [
            (&db.records, codec::KIND_RECORD),
            (&db.providers, codec::KIND_PROVIDER),
        ] {
            for kv in tree.iter() {
                let (k, v) = kv.map_err(store_err)?;
                let (at, _) = codec::deadline_and_source(kind, &v).map_err(store_err)?;
                db.deadlines
                    .insert(codec::deadline_key(at, kind, &k), &[])
                    .map_err(store_err)?;
            }
        }
        self.flush()
    }

    fn charge(&mut self, source: Option<&[u8]>, record: bool) {
        let Some(s) = source else { return };
        let share = self.shares.entry(s.to_vec()).or_default();
        if record {
            share.records += 1;
        } else {
            share.providers += 1;
        }
    }

    fn release(&mut self, source: Option<&[u8]>, record: bool) {
        let Some(s) = source else { return };
        if let Some(share) = self.shares.get_mut(s) {
            if record {
                share.records = share.records.saturating_sub(1);
            } else {
                share.providers = share.providers.saturating_sub(1);
            }
            if share.records == 0 && share.providers == 0 {
                self.shares.remove(s);
            }
        }
    }

    fn share_of(&self, source: Option<&[u8]>) -> Share {
        source
            .and_then(|s| self.shares.get(s).copied())
            .unwrap_or_default()
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
        // Best effort: an error here has nowhere to go, and every acknowledged write
        // is on disk already.
        if self.opened {
            let _ = self.flush();
        }
    }
}

impl Store for SledStore {
    fn record(&self, key: &[u8], now: UnixMillis) -> Result<Option<StoredRecord>, StoreError> {
        let Some(b) = self.db()?.records.get(key).map_err(store_err)? else {
            return Ok(None);
        };
        let (record, _) = codec::decode_record(key, &b).map_err(store_err)?;
        Ok((record.expires_at > now).then_some(record))
    }

    /// Returns `Ok` once the record is on disk (sled flushed), or refuses it.
    fn put_record(
        &mut self,
        record: StoredRecord,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let _ = now; // deadlines are the record's own; nothing here depends on now
        self.writable()?;
        let r = self
            .put_record_unnoted(record, source)
            .and_then(|()| self.sync());
        self.note(r)
    }

    fn remove_record(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        let r = self.remove_record_unnoted(key);
        self.note(r)
    }

    /// Returns `Ok` once the provider is on disk (sled flushed), or refuses it.
    fn add_provider(
        &mut self,
        key: &[u8],
        provider: StoredProvider,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let r = self
            .add_provider_unnoted(key, provider, source, now)
            .and_then(|()| self.sync());
        self.note(r)
    }

    fn providers(&self, key: &[u8], now: UnixMillis) -> Result<Vec<StoredProvider>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .db()?
            .providers
            .scan_prefix(codec::provider_prefix(key))
        {
            let (k, v) = kv.map_err(store_err)?;
            let (_, id) = codec::decode_provider_key(&k).map_err(store_err)?;
            let (mut p, _) = codec::decode_provider(id, &v).map_err(store_err)?;
            if p.expires_at <= now {
                continue;
            }
            if p.addrs_expire_at <= now {
                p.addrs.clear();
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Removes at most `max` due entries, soonest first, in transactions of at most
    /// 512; what is left waits for the next call (readers never see it meanwhile).
    fn expire(&mut self, now: UnixMillis, max: usize) -> Result<usize, StoreError> {
        let r = self.expire_unnoted(now, max);
        self.note(r)
    }

    fn counts(&self) -> StoreCounts {
        self.counts
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
