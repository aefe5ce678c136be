//! [`OpenError`]: why a data directory was refused or could not be opened. Each
//! message is one line naming the directory, so that a CLI prints it as it is and
//! exits (dht-node exits 3 on a refused data dir).

use std::path::PathBuf;

use crate::{LOCK, MARKER};

/// Why a data directory could not be opened. This crate removes and overwrites
/// nothing in a directory it refuses.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory is a data directory of another kind: a Mainline one (it has
    /// `DHT-DATA-DIR`, dht-store-sled's marker), or one whose marker names another kind.
    #[error(
        "{} is {kind}, not an IPFS data directory: refusing to use it, left untouched \
         (give the IPFS node a directory of its own)",
        dir.display()
    )]
    OtherKind {
        /// The directory.
        dir: PathBuf,
        /// What it is, in words.
        kind: String,
    },
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
        "{} holds IPFS data format {found}, but this build reads format {supported} at \
         most; use a newer build or another data directory",
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
    /// The marker, the database or a value does not read, or data that was flushed
    /// is missing.
    #[error("the data in {} is corrupt: {reason}", dir.display())]
    Corrupt {
        /// The directory.
        dir: PathBuf,
        /// What failed, with the underlying message, on one line.
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

/// `text` with line breaks turned into spaces: an error that reaches a terminal is
/// one line (sled's and the marker's texts are not ours to trust).
pub(crate) fn one_line(text: &str) -> String {
    text.split(['\n', '\r']).collect::<Vec<_>>().join(" ")
}
