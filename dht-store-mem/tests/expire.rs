//! `expire` is bounded per call: a backlog (a jump of the clock, or every entry falling due
//! at once) is removed over several calls, soonest first, and nothing due is left behind.

use std::net::SocketAddr;

use dht_core::{Id, Item, Store, StoredItem, StoredPeer};
use dht_store_mem::{MemStore, EXPIRIES_PER_CALL};

fn item(i: u32, expires_at: u64) -> StoredItem {
    let value = format!("{}:{i}", i.to_string().len()).into_bytes();
    StoredItem {
        target: Id::sha1(&i.to_be_bytes()),
        item: Item::Immutable { value },
        expires_at,
    }
}

#[test]
fn a_backlog_of_expired_entries_goes_over_several_calls_soonest_first() {
    let mut store = MemStore::new();
    let n = EXPIRIES_PER_CALL * 2 + 100;
    for i in 0..n as u32 {
        store.put_item(item(i, 1_000 + u64::from(i))).unwrap();
        let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881));
        let peer = StoredPeer {
            addr,
            expires_at: 1_000 + u64::from(i),
            seed: false,
        };
        store.put_peer(&Id([1; 20]), peer).unwrap();
    }
    // One entry not yet due stays through everything.
    store.put_item(item(u32::MAX, 10_000_000)).unwrap();

    // The clock jumps far past every deadline but one.
    let now = 1_000_000;
    assert_eq!(
        store.expire(now).unwrap(),
        (EXPIRIES_PER_CALL, EXPIRIES_PER_CALL)
    );
    // Soonest first: the earliest deadlines went, the latest due ones are still there.
    assert!(store
        .get_item(&Id::sha1(&0u32.to_be_bytes()))
        .unwrap()
        .is_none());
    let last = n as u32 - 1;
    assert!(store
        .get_item(&Id::sha1(&last.to_be_bytes()))
        .unwrap()
        .is_some());
    assert_eq!(
        store.expire(now).unwrap(),
        (EXPIRIES_PER_CALL, EXPIRIES_PER_CALL)
    );
    assert_eq!(store.expire(now).unwrap(), (100, 100));
    assert_eq!(store.expire(now).unwrap(), (0, 0));
    let counts = store.counts().unwrap();
    assert_eq!((counts.items, counts.info_hashes, counts.peers), (1, 0, 0));
}
