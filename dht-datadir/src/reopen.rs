//! Reopening after a failed write: sled 0.34 fails every write of a database once one
//! failed (a full disk, most likely), so a store refuses writes and now and then
//! closes and reopens its database ([`db::open`](crate::db::open)) to notice that the
//! disk has room again. [`Retry`] says when a refused write may try, and
//! [`room_to_reopen`] whether the file system has the room that reopening needs.

use std::path::Path;
use std::time::{Duration, Instant};

/// How often a refused write may try to recover: recovering reopens the database and
/// reads it through, and a full disk should not cost that per refused request.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Free bytes needed before the database is reopened after a failed write: two of
/// sled's 512 KiB log segments, so that opening and the next writes have room.
pub const RECOVER_FREE: u64 = 1024 * 1024;

/// When a refused write last tried to recover: at most one try every [`RETRY_EVERY`].
#[derive(Debug, Default)]
pub struct Retry {
    last: Option<Instant>,
}

impl Retry {
    /// True, and the try counted from now, when the last try is [`RETRY_EVERY`] ago
    /// or there was none.
    pub fn due(&mut self) -> bool {
        if self.last.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
            self.last = Some(Instant::now());
            return true;
        }
        false
    }
}

/// Ok when the file system of the data dir `dir` has [`RECOVER_FREE`] bytes free:
/// closing the database stops reads too until it is open again, and opening needs
/// room, so not while the disk is still (nearly) full. The error says why not.
pub fn room_to_reopen(dir: &Path) -> Result<(), String> {
    let free = fs2::available_space(dir).map_err(|e| e.to_string())?;
    if free < RECOVER_FREE {
        return Err(format!(
            "{free} bytes free on the data dir's file system; waiting for {RECOVER_FREE}"
        ));
    }
    Ok(())
}
