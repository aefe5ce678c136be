//! `MemStore` against the shared store conformance suite: once whole, and check by
//! check so that a failure names the broken part of the contract.

use dht_core::conformance as c;
use dht_store_mem::MemStore;

#[test]
fn run_all() {
    c::run_all(MemStore::new);
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                c::$name(&mut MemStore::new());
            }
        )*
    };
}

checks!(
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
    check_counts_after_mixed_sequence,
    check_expire_items,
    check_expire_peers,
    check_expire_follows_refreshed_deadlines,
    check_routing_round_trip,
    check_flush,
);

/// More seeds than `run_all` uses, so the model check explores other interleavings.
#[test]
fn random_model_other_seeds() {
    for seed in 1..=8 {
        c::check_random_model(&mut MemStore::new(), seed, 3000);
    }
}
