//! The data directory: its marker (kind and format version), the marker of the other
//! kind it refuses, its lock and its flush generation file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
/// Name of the file that holds the advisory lock.
pub const LOCK: &str = "LOCK";
/// Name of the file that records the generation of the last completed flush.
pub const FLUSHED: &str = "FLUSHED";
/// Name of the sled database directory inside the data dir.
pub const DB: &str = "db";
/// The data format this build writes and reads: 1, the first (see the crate doc for
/// what a later build does with it).
pub const FORMAT_VERSION: u32 = 1;

/// Written first and renamed into place, so a crash mid-write leaves no half marker.
const MARKER_TMP: &str = "DHT-IPFS-DATA-DIR.tmp";
const FLUSHED_TMP: &str = "FLUSHED.tmp";

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

/// Takes the exclusive advisory lock on `dir/LOCK`, a `flock`: the kernel drops it
/// when the process dies, however it dies, so a crash leaves no stale lock.
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    // A child forked by another thread holds a copy of the descriptor until it execs,
    // so a lock just released may still look held for a moment (dht-store-sled saw it
    // in tests that spawn processes): ask again for up to 1 s before calling it taken.
    let mut attempt = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if attempt < 50 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(fs::TryLockError::Error(source)) => return Err(OpenError::Io { path, source }),
        }
    }
}

/// Writes `text` to `dir/name` durably: a temporary file, fsync, rename, fsync of the
/// directory, so that a crash leaves the old file or the new one, never half of one.
fn write_durably(dir: &Path, tmp: &str, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Writes the marker of this build's kind and format.
pub(crate) fn write_marker(dir: &Path) -> Result<(), OpenError> {
    let text = format!(
        "This directory holds the records and providers of an IPFS Kademlia DHT node \
         (dht-ipfs-store-sled).\nkind {KIND}\nformat {FORMAT_VERSION}\n"
    );
    write_durably(dir, MARKER_TMP, MARKER, &text).map_err(io_err(&dir.join(MARKER)))
}

/// The generation recorded by the last completed flush; 0 before the first.
pub(crate) fn read_flushed(dir: &Path) -> Result<u64, OpenError> {
    let path = dir.join(FLUSHED);
    match fs::read(&path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().strip_prefix("generation "))
            .and_then(|g| g.trim().parse().ok())
            .ok_or_else(|| {
                corrupt(
                    dir,
                    format!("{} does not name a generation", path.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(OpenError::Io { path, source }),
    }
}

/// Records `generation` durably, the same way as the marker.
pub(crate) fn write_flushed(dir: &Path, generation: u64) -> io::Result<()> {
    write_durably(
        dir,
        FLUSHED_TMP,
        FLUSHED,
        &format!("generation {generation}\n"),
    )
}

/// Where sled keeps its files.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB)
}

/// Removes sled's unfinished snapshot files (`snap.<lsn>.generating`): sled 0.34's
/// recovery takes a torn one for the newest snapshot and refuses a healthy database
/// (dht-store-sled's crash test found it). Such a file is never the committed state
/// (the previous snapshot and the log are), so removing it loses nothing.
pub(crate) fn discard_unfinished_snapshots(dir: &Path) -> Result<(), OpenError> {
    let db = db_path(dir);
    let Ok(entries) = fs::read_dir(&db) else {
        return Ok(()); // no database yet
    };
    for entry in entries {
        let entry = entry.map_err(io_err(&db))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
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
