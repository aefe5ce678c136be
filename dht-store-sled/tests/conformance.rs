//! `SledStore` against the shared store conformance suite: once whole, check by check,
//! and once more across a reopen, so that what the suite wrote is also what comes back
//! from disk.

use dht_core::conformance as c;
use dht_core::store::Store;
use dht_store_sled::SledStore;
use tempfile::TempDir;

/// A store in its own temporary directory; the directory lives as long as the store.
struct Fresh {
    store: SledStore,
    _dir: TempDir,
}

fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("open a fresh data dir");
    Fresh { store, _dir: dir }
}

#[test]
fn run_all() {
    // run_all drops each store before making the next, so directories pile up only
    // in `dirs`, which is cleaned at the end.
    let mut dirs = Vec::new();
    c::run_all(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path()).expect("open a fresh data dir");
        dirs.push(dir);
        store
    });
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                c::$name(&mut fresh().store);
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
    for seed in 1..=4 {
        c::check_random_model(&mut fresh().store, seed, 2000);
    }
}

/// After the model check, a reopened store holds exactly what the open one held.
#[test]
fn reopen_gives_back_the_same_contents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = SledStore::open(dir.path()).expect("open");
    c::check_random_model(&mut store, 99, 1500);
    let counts = store.counts().unwrap();
    let all = store.info_hashes(&dht_core::Id::ZERO, usize::MAX).unwrap();
    let peers: Vec<_> = all.iter().map(|ih| store.get_peers(ih).unwrap()).collect();
    let routing = store.load_routing().unwrap();
    drop(store);
    let mut store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.counts().unwrap(), counts);
    assert_eq!(
        store.info_hashes(&dht_core::Id::ZERO, usize::MAX).unwrap(),
        all
    );
    let again: Vec<_> = all.iter().map(|ih| store.get_peers(ih).unwrap()).collect();
    assert_eq!(again, peers);
    assert_eq!(store.load_routing().unwrap(), routing);
    // The reopened store keeps working, and expiry follows the persisted deadlines.
    let (items, peers_gone) = store.expire(u64::MAX).unwrap();
    assert_eq!((items, peers_gone), (counts.items, counts.peers));
    assert_eq!(store.counts().unwrap(), Default::default());
}
