//! What `--http` writes have the node republish, bounded (`--http-max-republished`).
//!
//! The `Dht` handle republishes every put and announce that succeeded until it is
//! told to stop ([`dht_node::Dht::stop_republishing`]); without a bound, a client
//! could grow that set by thousands of entries a second, each a lookup and its puts
//! again every 15 or 50 minutes. A write whose target is new takes a slot
//! ([`Republished::reserve`]) before it starts and is refused when none is left; the
//! slot is kept when the write succeeds (the handle then republishes it) and given
//! back when it fails or never runs. `DELETE /v1/republishing/{target}` stops one
//! and frees its slot.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use dht_core::Id;

/// The targets HTTP writes have the node republish.
#[derive(Debug)]
pub(crate) struct Republished {
    max: usize,
    targets: Arc<Mutex<HashSet<Id>>>,
}

/// Every slot is taken: the write is refused before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    pub(crate) max: usize,
}

/// A write's claim on a slot, until [`Slot::keep`]; dropped unkept, a slot taken for
/// it is given back.
#[derive(Debug)]
pub(crate) struct Slot {
    targets: Arc<Mutex<HashSet<Id>>>,
    target: Id,
    /// The target was not republished before this write: the slot is its own.
    new: bool,
    kept: bool,
}

impl Slot {
    /// The write succeeded: the handle republishes `target` from now on.
    pub(crate) fn keep(mut self) {
        self.kept = true;
        // Inserted again: a failed write to the same target may have given back the
        // slot in the meantime, and this one's success is what the handle follows.
        lock(&self.targets).insert(self.target);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.new && !self.kept {
            lock(&self.targets).remove(&self.target);
        }
    }
}

/// A poisoned lock means a holder panicked mid-update; the set is still usable.
fn lock(targets: &Mutex<HashSet<Id>>) -> std::sync::MutexGuard<'_, HashSet<Id>> {
    targets.lock().unwrap_or_else(|p| p.into_inner())
}

impl Republished {
    pub(crate) fn new(max: usize) -> Republished {
        Republished {
            max,
            targets: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// A slot for a write to `target`: a target already republished takes none (a
    /// write to it replaces what is republished).
    pub(crate) fn reserve(&self, target: Id) -> Result<Slot, Full> {
        let mut targets = lock(&self.targets);
        let new = !targets.contains(&target);
        if new {
            if targets.len() >= self.max {
                return Err(Full { max: self.max });
            }
            targets.insert(target);
        }
        Ok(Slot {
            targets: self.targets.clone(),
            target,
            new,
            kept: false,
        })
    }

    /// Forgets `target` (its republishing was stopped); whether it was held.
    pub(crate) fn remove(&self, target: Id) -> bool {
        lock(&self.targets).remove(&target)
    }

    /// Targets held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.targets).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id([b; 20])
    }

    #[test]
    fn a_full_set_refuses_new_targets_but_not_known_ones() {
        let r = Republished::new(2);
        r.reserve(id(1)).unwrap().keep();
        r.reserve(id(2)).unwrap().keep();
        assert_eq!(r.reserve(id(3)).unwrap_err(), Full { max: 2 });
        r.reserve(id(1)).unwrap().keep();
        assert_eq!(r.len(), 2);
        assert!(r.remove(id(2)));
        r.reserve(id(3)).unwrap().keep();
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_failed_or_unrun_write_gives_its_slot_back() {
        let r = Republished::new(1);
        drop(r.reserve(id(1)).unwrap());
        assert_eq!(r.len(), 0);
        r.reserve(id(1)).unwrap().keep();
        // A failed write to a target already republished leaves it republished.
        drop(r.reserve(id(1)).unwrap());
        assert_eq!(r.len(), 1);
    }
}
