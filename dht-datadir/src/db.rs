//! The sled database of a data dir (`DIR/db/`), opened the way both stores open it, at
//! start and again to recover from a failed write: unfinished snapshots removed first,
//! a panic in sled's recovery turned into an error, and sled's own lock waited for
//! while an instance of this process still lets go of it.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{discard_unfinished_snapshots, PathError};

/// Name of the sled database directory inside the data dir.
pub const DB: &str = "db";

/// Where sled keeps its files in the data dir `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB)
}

/// Why [`open`] or [`tree`] gave no database: each store turns this into its own
/// open error.
#[derive(Debug)]
pub enum DbError {
    /// The file system refused an operation (sled's own I/O errors name `DIR/db`).
    Io(PathError),
    /// sled refused the files, or panicked reading them: what it said, prefixed
    /// `sled: `, `sled panicked: ` or `sled tree NAME: `.
    Corrupt(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Io(e) => e.fmt(f),
            DbError::Corrupt(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Io(e) => Some(e),
            DbError::Corrupt(_) => None,
        }
    }
}

/// How often and how long [`open`] asks again for sled's lock on its files.
const SLED_LOCK_RETRY: Duration = Duration::from_millis(20);
const SLED_LOCK_ATTEMPTS: u32 = 100;

/// Opens the sled database of the data dir `dir` (whose lock the caller holds) with a
/// page cache of `cache_capacity` bytes and a background flush every `flush_every`
/// (rounded to whole milliseconds, at least 1), after removing sled's unfinished
/// snapshot files ([`discard_unfinished_snapshots`]).
pub fn open(dir: &Path, cache_capacity: u64, flush_every: Duration) -> Result<sled::Db, DbError> {
    let path = db_path(dir);
    discard_unfinished_snapshots(&path).map_err(DbError::Io)?;
    let flush_ms = u64::try_from(flush_every.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let config = sled::Config::new()
        .path(&path)
        .cache_capacity(cache_capacity)
        .flush_every_ms(Some(flush_ms));
    // sled 0.34 reports most damage as an error, but some damaged files make it
    // panic during recovery; a damaged directory must give an error, not a crash.
    // Our own lock on the directory is held, so sled's lock on its log can only be
    // held by a sled instance of this process that is still shutting down (its
    // flusher thread lets go of the files a moment after the last handle drops):
    // wait for it, up to 2 s, instead of failing a reopen right after a close.
    let mut attempt = 0;
    let opened = loop {
        let result = catch_unwind(AssertUnwindSafe(|| config.open()));
        match &result {
            Ok(Err(sled::Error::Io(e)))
                if attempt < SLED_LOCK_ATTEMPTS
                    && e.to_string().contains("could not acquire lock") =>
            {
                attempt += 1;
                std::thread::sleep(SLED_LOCK_RETRY);
            }
            _ => break result,
        }
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(source))) => Err(DbError::Io(PathError { path, source })),
        Ok(Err(e)) => Err(DbError::Corrupt(format!("sled: {e}"))),
        Err(panic) => Err(DbError::Corrupt(format!(
            "sled panicked: {}",
            panic_text(&panic)
        ))),
    }
}

/// The tree `name` of `db`, created if missing.
pub fn tree(db: &sled::Db, name: &str) -> Result<sled::Tree, DbError> {
    db.open_tree(name)
        .map_err(|e| DbError::Corrupt(format!("sled tree {name}: {e}")))
}

fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
