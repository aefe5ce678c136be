//! # dht-datadir: the data-directory mechanics both sled stores share
//!
//! `dht-store-sled` (Mainline) and `dht-ipfs-store-sled` (IPFS Kademlia) each keep their
//! state in a data directory of their own kind, with their own marker, format and
//! errors. Under those, the mechanics are the same and live here, so that a fix to one
//! store's directory reaches the other's: the exclusive lock ([`lock`]), small files
//! replaced durably ([`write_durably`]), the flush generation that tells a database
//! sled recovered silently from one that lost flushed data ([`read_flushed`],
//! [`write_flushed`]), and the removal of the snapshot files sled leaves unfinished when
//! killed ([`discard_unfinished_snapshots`]); and the bounds-checked [`codec::Reader`]
//! both decode their records with.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let held = dht_datadir::lock(dir.path())?;
//! // A second open of the directory (here or in another process) is refused.
//! assert!(matches!(dht_datadir::lock(dir.path()), Err(dht_datadir::LockError::Locked)));
//! drop(held);
//!
//! assert_eq!(dht_datadir::read_flushed(dir.path())?, 0); // nothing flushed yet
//! dht_datadir::write_flushed(dir.path(), 7)?;
//! assert_eq!(dht_datadir::read_flushed(dir.path())?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod codec;
#[cfg(feature = "testing")]
pub mod tmpfs;

/// Name of the lock file: held with an exclusive `flock` while a store is open.
pub const LOCK: &str = "LOCK";

/// Name of the file that records the generation of the last completed flush.
pub const FLUSHED: &str = "FLUSHED";

/// How long a held lock is asked again before it counts as another owner's (see [`lock`]).
const LOCK_PATIENCE: Duration = Duration::from_secs(1);
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Why [`lock`] did not take the directory's lock.
#[derive(Debug)]
pub enum LockError {
    /// Another process (or another store in this process) holds it.
    Locked,
    /// The lock file could not be opened or locked.
    Io(io::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Locked => write!(f, "{LOCK} is held by another process"),
            LockError::Io(e) => write!(f, "cannot lock {LOCK}: {e}"),
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Locked => None,
            LockError::Io(e) => Some(e),
        }
    }
}

/// Takes the exclusive advisory lock on `dir/LOCK` (created if missing) and returns the
/// file that holds it: the lock lasts as long as the file is open. It is a `flock`, so
/// the kernel drops it when the process dies, however it dies: no stale lock after a
/// crash.
pub fn lock(dir: &Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK))
        .map_err(LockError::Io)?;
    // A flock belongs to the open file, and a child process forked by another thread of
    // this process holds a copy of every descriptor until it execs (close-on-exec acts
    // only then): a store closed at that moment keeps its lock for a few milliseconds
    // more, and a reopen right after it saw `Locked` (tests that spawn node processes
    // beside one that reopens a store). So a held lock is asked again for up to 1 s
    // before it counts as another owner's.
    let mut waited = Duration::ZERO;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if waited < LOCK_PATIENCE => {
                waited += LOCK_RETRY;
                std::thread::sleep(LOCK_RETRY);
            }
            Err(fs::TryLockError::WouldBlock) => return Err(LockError::Locked),
            Err(fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}

/// An I/O error with the file or directory it happened on.
#[derive(Debug)]
pub struct PathError {
    /// The file or directory.
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I/O error on {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> PathError + '_ {
    move |source| PathError {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to `dir/name` durably: `dir/name.tmp` written and fsynced, renamed over
/// `dir/name`, then the directory fsynced, so that a crash leaves the old file or the
/// new one, never half of one. The error names the temporary file, the file or the
/// directory, whichever failed.
pub fn write_durably(dir: &Path, name: &str, text: &str) -> Result<(), PathError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(at(&tmp))?;
    f.write_all(text.as_bytes()).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    let file = dir.join(name);
    fs::rename(&tmp, &file).map_err(at(&file))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Why [`read_flushed`] could not tell the last flush generation.
#[derive(Debug)]
pub enum FlushedError {
    /// `FLUSHED` exists but does not read `generation N`: the directory is damaged.
    NotAGeneration(PathBuf),
    /// `FLUSHED` could not be read.
    Io(PathError),
}

impl fmt::Display for FlushedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushedError::NotAGeneration(path) => {
                write!(f, "{} does not name a generation", path.display())
            }
            FlushedError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FlushedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlushedError::NotAGeneration(_) => None,
            FlushedError::Io(e) => Some(e),
        }
    }
}

/// The generation recorded by the last completed flush in `dir`; 0 before the first.
///
/// A store writes the generation into its database and then, once the database is on
/// disk, into `FLUSHED`: a database that opens behind this file has lost flushed data
/// (sled recovers a damaged log silently, as if the rest had been torn by a crash).
pub fn read_flushed(dir: &Path) -> Result<u64, FlushedError> {
    let path = dir.join(FLUSHED);
    match fs::read(&path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().strip_prefix("generation "))
            .and_then(|g| g.trim().parse().ok())
            .ok_or(FlushedError::NotAGeneration(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(FlushedError::Io(PathError { path, source })),
    }
}

/// Records `generation` in `dir/FLUSHED` durably ([`write_durably`]).
pub fn write_flushed(dir: &Path, generation: u64) -> io::Result<()> {
    write_durably(dir, FLUSHED, &format!("generation {generation}\n")).map_err(|e| e.source)
}

/// Removes sled's unfinished snapshot files (`snap.<lsn>.generating`) from the database
/// directory `db` (nothing when it does not exist yet).
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, fsyncs it and renames it to
/// `snap.<lsn>`; only then does it delete older snapshots. A process killed before the
/// rename leaves the `.generating` file, and sled's recovery wrongly takes it for the
/// newest snapshot (it filters only `.in___motion` files) and fails with "Read corrupted
/// data" when it is incomplete: a SIGKILL at the wrong moment made a healthy directory
/// unopenable (seen in `dht-store-sled`'s `tests/crash.rs`). Such a file is never the
/// committed state: the previous snapshot and the log still are, so removing it loses
/// nothing.
pub fn discard_unfinished_snapshots(db: &Path) -> Result<(), PathError> {
    let Ok(entries) = fs::read_dir(db) else {
        return Ok(()); // no database yet
    };
    for entry in entries {
        let entry = entry.map_err(at(db))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            fs::remove_file(&path).map_err(at(&path))?;
        }
    }
    Ok(())
}
