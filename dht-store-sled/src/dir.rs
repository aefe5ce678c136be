//! The data directory: its marker file and its format version. The lock, the flush
//! generation file and sled's snapshot cleanup are `dht-datadir`'s, shared with
//! dht-ipfs-store-sled.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use dht_datadir::{FlushedError, LockError, PathError, LOCK};

use crate::OpenError;

/// Name of the marker file that makes a directory ours.
pub const MARKER: &str = "DHT-DATA-DIR";
/// Name of the sled database directory inside the data dir.
pub const DB: &str = "db";
/// The data format this build writes and reads. 2: peer records may carry a flags
/// byte (BEP 33 seed status). Format 1 dirs are read as they are (their records are
/// format 2 records without flags) and their marker is rewritten on open, so that an
/// older build refuses the directory instead of misreading a seed's record.
pub const FORMAT_VERSION: u32 = 2;

/// Written first and renamed into place, so a crash mid-write leaves no half marker.
const MARKER_TMP: &str = "DHT-DATA-DIR.tmp";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `dht-datadir`'s I/O error as ours (a private conversion: no `From` in our API).
fn path_err(PathError { path, source }: PathError) -> OpenError {
    OpenError::Io { path, source }
}

/// What the directory holds before we lock it.
pub(crate) enum State {
    /// Our marker with the current version.
    Ours,
    /// Our marker with an older version this build migrates (by rewriting the marker).
    Older,
    /// Empty (or holding only our own leftovers): to be initialised.
    Fresh,
}

/// Creates `dir` if missing and decides whether it is ours, fresh, or neither.
/// Touches nothing inside a directory that is not ours.
pub(crate) fn inspect(dir: &Path) -> Result<State, OpenError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let marker = dir.join(MARKER);
    match fs::read(&marker) {
        Ok(bytes) => {
            let found = parse_marker(&bytes).ok_or_else(|| OpenError::Corrupt {
                dir: dir.to_path_buf(),
                reason: format!("{} does not name a format version", marker.display()),
            })?;
            if found > FORMAT_VERSION {
                return Err(OpenError::NewerFormat {
                    dir: dir.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            if found == 0 {
                return Err(OpenError::Corrupt {
                    dir: dir.to_path_buf(),
                    reason: "format version 0 was never written".into(),
                });
            }
            if found < FORMAT_VERSION {
                return Ok(State::Older);
            }
            Ok(State::Ours)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // LOCK and the marker's temporary file are what a run that died before the
            // marker landed leaves behind; anything else belongs to someone else.
            for entry in fs::read_dir(dir).map_err(io_err(dir))? {
                let entry = entry.map_err(io_err(dir))?;
                let name = entry.file_name();
                if name != LOCK && name != MARKER_TMP {
                    return Err(OpenError::NotADataDir {
                        dir: dir.to_path_buf(),
                    });
                }
            }
            Ok(State::Fresh)
        }
        Err(e) => Err(OpenError::Io {
            path: marker,
            source: e,
        }),
    }
}

/// Accepts `format N` on any line, so the marker can also explain itself to a reader.
fn parse_marker(bytes: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("format "))
        .and_then(|v| v.trim().parse().ok())
}

/// Takes the exclusive advisory lock on `dir/LOCK` ([`dht_datadir::lock`]).
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    dht_datadir::lock(dir).map_err(|e| match e {
        LockError::Locked => OpenError::Locked { dir: dir.into() },
        LockError::Io(source) => io_err(&dir.join(LOCK))(source),
    })
}

/// Writes the marker durably: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_marker(dir: &Path) -> Result<(), OpenError> {
    let text = format!(
        "This directory holds the persistent state of a dht node (dht-store-sled).\n\
         format {FORMAT_VERSION}\n"
    );
    dht_datadir::write_durably(dir, MARKER, &text).map_err(path_err)
}

/// The generation recorded by the last completed flush; 0 before the first.
pub(crate) fn read_flushed(dir: &Path) -> Result<u64, OpenError> {
    dht_datadir::read_flushed(dir).map_err(|e| match e {
        FlushedError::NotAGeneration(_) => OpenError::Corrupt {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        },
        FlushedError::Io(e) => path_err(e),
    })
}

pub(crate) use dht_datadir::write_flushed;

/// Where sled keeps its files.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB)
}

/// Removes sled's unfinished snapshot files ([`dht_datadir::discard_unfinished_snapshots`]).
pub(crate) fn discard_unfinished_snapshots(dir: &Path) -> Result<(), OpenError> {
    dht_datadir::discard_unfinished_snapshots(&db_path(dir)).map_err(path_err)
}

#[cfg(test)]
mod tests {
    use super::parse_marker;

    #[test]
    fn marker_parsing() {
        assert_eq!(parse_marker(b"hello\nformat 1\n"), Some(1));
        assert_eq!(parse_marker(b"format 999"), Some(999));
        assert_eq!(parse_marker(b"format x"), None);
        assert_eq!(parse_marker(&[0xff, 0xfe]), None);
    }
}
