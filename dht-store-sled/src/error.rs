//! [`OpenError`]: why a data directory was refused or could not be opened.

use std::path::PathBuf;

use crate::{LOCK, MARKER};

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
