//! What the conformance suite's model check wrote is also what comes back from disk
//! after the store is closed and opened again.

use dht_core::conformance as c;
use dht_core::Store;
use dht_store_sled::SledStore;

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
