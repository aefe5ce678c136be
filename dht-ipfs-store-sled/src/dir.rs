//! The data directory: its marker (kind and format version), the marker of the other
//! kind it refuses. The lock, the flush generation file and sled's snapshot cleanup are
//! `dht-datadir`'s, shared with dht-store-sled.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use dht_datadir::{FlushedError, LockError, LOCK};

use crate::error::one_line;
use crate::OpenError;

/// Name of the marker file that makes a directory an IPFS data dir. A name of its
/// own, not Mainline's `DHT-DATA-DIR` with another kind inside: builds of
/// `dht-store-sled` that predate this crate read any `DHT-DATA-DIR` that names a
/// format as theirs, while a directory without one they refuse.
pub const MARKER: &str = "DHT-IPFS-DATA-DIR";
/// The kind this crate's marker names.
pub const KIND: &str = "ipfs-kad";
/// The marker of a Mainline data dir (`dht_store_sled::MARKER`, named here so that
/// this crate does not depend on the Mainline store to recognise its directories).
pub const MAINLINE_MARKER: &str = "DHT-DATA-DIR";
/// Name of the sled database directory inside the data dir.
pub const DB: &str = "db";
/// The data format this build writes and reads: 1, the first (see the crate doc for
/// what a later build does with it).
pub const FORMAT_VERSION: u32 = 1;

/// Written first and renamed into place, so a crash mid-write leaves no half marker.
const MARKER_TMP: &str = "DHT-IPFS-DATA-DIR.tmp";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(dir: &Path, reason: String) -> OpenError {
    OpenError::Corrupt {
        dir: dir.to_path_buf(),
        reason: one_line(&reason),
    }
}

/// What the directory holds before we lock it.
pub(crate) enum State {
    /// Our marker with the current version.
    Ours,
    /// Empty (or holding only our own leftovers): to be initialised.
    Fresh,
}

/// Creates `dir` if missing and decides whether it is ours, fresh, or neither.
/// Touches nothing inside a directory that is not ours.
pub(crate) fn inspect(dir: &Path) -> Result<State, OpenError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    // Mainline's marker first: never write into a directory a Mainline build takes
    // for its own, whatever else it holds.
    let mainline = dir.join(MAINLINE_MARKER);
    match fs::symlink_metadata(&mainline) {
        Ok(_) => {
            return Err(OpenError::OtherKind {
                dir: dir.to_path_buf(),
                kind: format!(
                    "a Mainline (BitTorrent) DHT data directory of dht-store-sled \
                     (it has {MAINLINE_MARKER})"
                ),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(OpenError::Io {
                path: mainline,
                source,
            })
        }
    }
    let marker = dir.join(MARKER);
    match fs::read(&marker) {
        Ok(bytes) => {
            let (kind, found) = parse_marker(&bytes).ok_or_else(|| {
                corrupt(
                    dir,
                    format!("{} does not name a kind and a format", marker.display()),
                )
            })?;
            if kind != KIND {
                return Err(OpenError::OtherKind {
                    dir: dir.to_path_buf(),
                    kind: format!("a data directory of kind {:?}", one_line(&kind)),
                });
            }
            if found > FORMAT_VERSION {
                return Err(OpenError::NewerFormat {
                    dir: dir.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            if found == 0 {
                return Err(corrupt(dir, "format version 0 was never written".into()));
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
        Err(source) => Err(OpenError::Io {
            path: marker,
            source,
        }),
    }
}

/// Reads `kind K` and `format N` lines (anywhere, so that the marker can also explain
/// itself to a reader); both are required.
fn parse_marker(bytes: &[u8]) -> Option<(String, u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let kind = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("kind "))?
        .trim()
        .to_string();
    let format = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("format "))?
        .trim()
        .parse()
        .ok()?;
    Some((kind, format))
}

/// Takes the exclusive advisory lock on `dir/LOCK` ([`dht_datadir::lock`]).
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    dht_datadir::lock(dir).map_err(|e| match e {
        LockError::Locked => OpenError::Locked { dir: dir.into() },
        LockError::Io(source) => io_err(&dir.join(LOCK))(source),
    })
}

/// Writes the marker of this build's kind and format, durably
/// ([`dht_datadir::write_durably`]).
pub(crate) fn write_marker(dir: &Path) -> Result<(), OpenError> {
    let text = format!(
        "This directory holds the records and providers of an IPFS Kademlia DHT node \
         (dht-ipfs-store-sled).\nkind {KIND}\nformat {FORMAT_VERSION}\n"
    );
    dht_datadir::write_durably(dir, MARKER, &text).map_err(|e| io_err(&dir.join(MARKER))(e.source))
}

/// The generation recorded by the last completed flush; 0 before the first.
pub(crate) fn read_flushed(dir: &Path) -> Result<u64, OpenError> {
    dht_datadir::read_flushed(dir).map_err(|e| match e {
        FlushedError::NotAGeneration(_) => corrupt(dir, e.to_string()),
        FlushedError::Io(e) => OpenError::Io {
            path: e.path,
            source: e.source,
        },
    })
}

pub(crate) use dht_datadir::write_flushed;

/// Where sled keeps its files.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB)
}

/// Removes sled's unfinished snapshot files ([`dht_datadir::discard_unfinished_snapshots`]).
pub(crate) fn discard_unfinished_snapshots(dir: &Path) -> Result<(), OpenError> {
    dht_datadir::discard_unfinished_snapshots(&db_path(dir)).map_err(|e| OpenError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_marker;

    #[test]
    fn marker_parsing() {
        assert_eq!(
            parse_marker(b"hello\nkind ipfs-kad\nformat 1\n"),
            Some(("ipfs-kad".into(), 1))
        );
        assert_eq!(parse_marker(b"format 1\n"), None, "no kind");
        assert_eq!(parse_marker(b"kind x\nformat y\n"), None);
        assert_eq!(parse_marker(&[0xff, 0xfe]), None);
    }
}
