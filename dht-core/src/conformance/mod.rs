//! The conformance suite every [`Store`] implementation runs.
//!
//! This is test code that ships in the library behind the `conformance` feature, so
//! that every store crate checks itself against the same contract: a violation panics
//! with a message naming the check and what differed. A store crate's
//! `tests/conformance.rs` is one call of [`crate::store_conformance_tests!`], which
//! gives every check its own `#[test]`; [`run_all`] runs everything in one go.
//!
//! The contract, beyond the doc comments on [`Store`]:
//! - Peers of an info_hash come back sorted by `SocketAddr`'s `Ord` (every IPv4 address
//!   before every IPv6 one, then address, then port).
//! - An info_hash whose last peer is removed or expires no longer counts: it leaves
//!   [`Store::info_hashes`] and [`StoreCounts::info_hashes`](crate::StoreCounts::info_hashes).
//! - [`Store::info_hashes`] includes `start` itself when it has peers.
//! - Re-putting an item or a peer replaces its deadline, earlier or later, and
//!   [`Store::expire`] honours the new one.
//! - A saved routing snapshot comes back equal, even when it is empty.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::bep44::{Item, MutableItem};
use crate::id::{Id, ID_LEN};
use crate::store::{Store, StoreError, StoredItem, StoredPeer, UnixMillis};

mod checks;
mod model;

pub use checks::*;
pub use model::check_random_model;

/// Seed of the randomized model check in [`run_all`]; a failure prints the seed it ran with.
pub const MODEL_SEED: u64 = 0x6468_7473_746f_7265;

/// Operations the randomized model check applies per run in [`run_all`].
pub const MODEL_STEPS: usize = 4000;

/// Runs every conformance check, each against a fresh, empty store made by `make`.
pub fn run_all<S: Store>(mut make: impl FnMut() -> S) {
    check_missing_item_is_none(&mut make());
    check_immutable_item_round_trip(&mut make());
    check_mutable_item_round_trip(&mut make());
    check_item_replace(&mut make());
    check_item_remove(&mut make());
    check_put_peer_inserts_and_updates(&mut make());
    check_get_peers_sorted_by_address(&mut make());
    check_ipv4_and_ipv6_peers(&mut make());
    check_remove_peer(&mut make());
    check_info_hashes_order_and_wrap(&mut make());
    check_item_targets_order(&mut make());
    check_counts_after_mixed_sequence(&mut make());
    check_expire_items(&mut make());
    check_expire_peers(&mut make());
    check_expire_follows_refreshed_deadlines(&mut make());
    check_routing_round_trip(&mut make());
    check_flush(&mut make());
    check_random_model(&mut make(), MODEL_SEED, MODEL_STEPS);
}

/// Every conformance check as its own `#[test]`, each on a fresh store made by the
/// expression given, plus the randomized model check over several seeds:
///
/// ```ignore
/// dht_core::store_conformance_tests!(dht_store_mem::MemStore::new());
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@checks $make;
            check_missing_item_is_none,
            check_immutable_item_round_trip,
            check_mutable_item_round_trip,
            check_item_replace,
            check_item_remove,
            check_put_peer_inserts_and_updates,
            check_get_peers_sorted_by_address,
            check_ipv4_and_ipv6_peers,
            check_remove_peer,
            check_info_hashes_order_and_wrap,
            check_item_targets_order,
            check_counts_after_mixed_sequence,
            check_expire_items,
            check_expire_peers,
            check_expire_follows_refreshed_deadlines,
            check_routing_round_trip,
            check_flush,
        );

        #[test]
        fn run_all() {
            $crate::conformance::run_all(|| $make);
        }

        /// More seeds than `run_all` uses, so the model check explores other interleavings.
        #[test]
        fn random_model_other_seeds() {
            for seed in 1..=$crate::conformance::MODEL_SEEDS {
                $crate::conformance::check_random_model(
                    &mut $make,
                    seed,
                    $crate::conformance::MODEL_STEPS_PER_SEED,
                );
            }
        }
    };
    (@checks $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$name(&mut $make);
            }
        )*
    };
}

/// Seeds of the extra model checks in [`crate::store_conformance_tests!`].
pub const MODEL_SEEDS: u64 = 8;

/// Steps per seed of those checks.
pub const MODEL_STEPS_PER_SEED: usize = 3000;

pub(super) fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("store conformance: {what} failed: {e}"),
    }
}

/// An id whose first byte is `b` and the rest zero, so that order is easy to read.
pub(super) fn id(b: u8) -> Id {
    let mut x = [0u8; ID_LEN];
    x[0] = b;
    Id(x)
}

pub(super) fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(a, b, c, d), port))
}

pub(super) fn v6(prefix: u16, last: u16, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::new(prefix, 0xdb8, 0, 0, 0, 0, 0, last), port))
}

/// A peer; its seed status follows from its deadline, so that re-puts with another
/// deadline also change it and every check covers the BEP 33 flag's round trip.
pub(super) fn peer(addr: SocketAddr, expires_at: UnixMillis) -> StoredPeer {
    StoredPeer {
        addr,
        expires_at,
        seed: expires_at % 3 == 0,
    }
}

pub(super) fn immutable(target: Id, value: &[u8], expires_at: UnixMillis) -> StoredItem {
    StoredItem {
        target,
        item: Item::Immutable {
            value: value.to_vec(),
        },
        expires_at,
    }
}

pub(super) fn mutable(
    target: Id,
    value: &[u8],
    fill: u8,
    seq: i64,
    salt: &[u8],
    expires_at: UnixMillis,
) -> StoredItem {
    let mut key = [fill; 32];
    key[0] = !fill;
    let mut signature = [fill.wrapping_add(1); 64];
    signature[63] = fill;
    StoredItem {
        target,
        item: Item::Mutable(MutableItem {
            key,
            signature,
            seq,
            salt: salt.to_vec(),
            value: value.to_vec(),
        }),
        expires_at,
    }
}
