//! `expire` handles at most `SledOptions::expire_per_call` deadlines per call, soonest
//! first, so a clock jump or a backlog never stalls the node in one call; repeated
//! calls remove everything that is due and nothing that is not, with counts kept.

use dht_core::{Id, Item, Store, StoreCounts, StoredItem, StoredPeer};
use dht_store_sled::{SledOptions, SledStore};

fn id(i: u32) -> Id {
    let mut x = [0u8; 20];
    x[..4].copy_from_slice(&i.to_be_bytes());
    Id(x)
}

fn item(i: u32, expires_at: u64) -> StoredItem {
    StoredItem {
        target: id(i),
        item: Item::Immutable {
            value: b"1:x".to_vec(),
        },
        expires_at,
    }
}

#[test]
fn expire_is_bounded_per_call_and_repeated_calls_remove_all_that_is_due() {
    const PER_CALL: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        expire_per_call: PER_CALL,
        ..SledOptions::default()
    };
    let mut s = SledStore::open_with(dir.path(), &options).unwrap();
    // 700 items and 300 peers (on 30 info_hashes) due at 1..=1000, and 50 items not due.
    for i in 0..700 {
        s.put_item(item(i, u64::from(i) + 1)).unwrap();
    }
    for i in 700..1000 {
        let peer = StoredPeer {
            addr: ([10, 0, (i >> 8) as u8, i as u8], 6881).into(),
            expires_at: u64::from(i) + 1,
            seed: false,
        };
        s.put_peer(&id(1_000_000 + i % 30), peer).unwrap();
    }
    for i in 2000..2050 {
        s.put_item(item(i, 1_000_000)).unwrap();
    }

    // A clock far ahead: everything but the 50 is due.
    let now = 999_999;
    let (items, peers) = s.expire(now).unwrap();
    assert_eq!(
        items + peers,
        PER_CALL,
        "one call handles at most {PER_CALL}"
    );
    // Soonest first: the 100 earliest deadlines are items 0..100.
    assert_eq!((items, peers), (100, 0));
    assert_eq!(s.get_item(&id(99)).unwrap(), None);
    assert!(s.get_item(&id(100)).unwrap().is_some());
    assert_eq!(s.counts().unwrap().items, 650);

    let mut calls = 1;
    let (mut all_items, mut all_peers) = (items, peers);
    loop {
        let (i, p) = s.expire(now).unwrap();
        assert!(i + p <= PER_CALL);
        if i + p == 0 {
            break;
        }
        calls += 1;
        all_items += i;
        all_peers += p;
    }
    assert_eq!((all_items, all_peers), (700, 300));
    assert_eq!(calls, 10);
    assert_eq!(
        s.counts().unwrap(),
        StoreCounts {
            items: 50,
            info_hashes: 0,
            peers: 0
        }
    );
    for i in 2000..2050 {
        assert!(s.get_item(&id(i)).unwrap().is_some(), "item {i} not due");
    }
    // What was left is still removed in full later.
    assert_eq!(s.expire(u64::MAX).unwrap(), (50, 0));
    assert_eq!(s.counts().unwrap(), StoreCounts::default());
}
