//! The data directory: its marker file, its format version and its lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::OpenError;

/// Name of the marker file that makes a directory ours.
pub const MARKER: &str = "DHT-DATA-DIR";
/// Name of the file that holds the advisory lock.
pub const LOCK: &str = "LOCK";
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

/// Takes the exclusive advisory lock on `dir/LOCK`. It is a `flock`, so the kernel
/// drops it when the process dies, however it dies: no stale lock after a crash.
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    // A flock belongs to the open file, and a child process forked by another thread of
    // this process holds a copy of every descriptor until it execs (close-on-exec acts
    // only then): a store closed at that moment keeps its lock for a few milliseconds
    // more, and a reopen right after it saw `Locked` (tests that spawn node processes
    // beside one that reopens a store). So a held lock is asked again for up to 1 s
    // before it counts as another owner's.
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
            Err(fs::TryLockError::Error(e)) => return Err(OpenError::Io { path, source: e }),
        }
    }
}

/// Writes the marker durably: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_marker(dir: &Path) -> Result<(), OpenError> {
    let tmp = dir.join(MARKER_TMP);
    let text = format!(
        "This directory holds the persistent state of a dht node (dht-store-sled).\n\
         format {FORMAT_VERSION}\n"
    );
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    let marker = dir.join(MARKER);
    fs::rename(&tmp, &marker).map_err(io_err(&marker))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), OpenError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Name of the file that records the last flush generation (see `SledStore::flush`).
pub const FLUSHED: &str = "FLUSHED";
const FLUSHED_TMP: &str = "FLUSHED.tmp";

/// The generation recorded by the last completed flush; 0 before the first.
pub(crate) fn read_flushed(dir: &Path) -> Result<u64, OpenError> {
    let path = dir.join(FLUSHED);
    match fs::read(&path) {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().strip_prefix("generation "))
            .and_then(|g| g.trim().parse().ok())
            .ok_or_else(|| OpenError::Corrupt {
                dir: dir.to_path_buf(),
                reason: format!("{} does not name a generation", path.display()),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(OpenError::Io { path, source }),
    }
}

/// Records `generation` durably, the same way as the marker.
pub(crate) fn write_flushed(dir: &Path, generation: u64) -> io::Result<()> {
    let tmp = dir.join(FLUSHED_TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(format!("generation {generation}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(FLUSHED))?;
    File::open(dir)?.sync_all()
}

/// Where sled keeps its files.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB)
}

/// Removes sled's unfinished snapshot files (`snap.<lsn>.generating`).
///
/// sled 0.34 writes a snapshot to `snap.<lsn>.generating`, fsyncs it and renames it to
/// `snap.<lsn>`; only then does it delete older snapshots. A process killed before the
/// rename leaves the `.generating` file, and sled's recovery wrongly takes it for the
/// newest snapshot (it filters only `.in___motion` files) and fails with "Read corrupted
/// data" when it is incomplete: a SIGKILL at the wrong moment made a healthy directory
/// unopenable (seen in `tests/crash.rs`). Such a file is never the committed state: the
/// previous snapshot and the log still are, so removing it loses nothing.
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
        assert_eq!(parse_marker(b"hello\nformat 1\n"), Some(1));
        assert_eq!(parse_marker(b"format 999"), Some(999));
        assert_eq!(parse_marker(b"format x"), None);
        assert_eq!(parse_marker(&[0xff, 0xfe]), None);
    }
}
