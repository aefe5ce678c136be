//! Write failures and refused directories: a failed flush (as on a full disk) makes
//! the store refuse puts until a flush succeeds again, so nothing is acknowledged
//! that may not reach the disk; and open decides whether to refuse a directory
//! before it writes anything to it.

use std::fs;

use dht_core::{Id, Item, RoutingSnapshot, Store, StoredItem, StoredPeer};
use dht_store_sled::{OpenError, SledStore, FLUSHED};

fn item(i: u8) -> StoredItem {
    StoredItem {
        target: Id([i; 20]),
        item: Item::Immutable {
            value: b"3:abc".to_vec(),
        },
        expires_at: u64::MAX / 2,
    }
}

#[test]
fn after_a_failed_flush_puts_are_refused_until_a_flush_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(dir.path()).unwrap();
    s.put_item(item(1)).unwrap();
    s.flush().unwrap();
    assert_eq!(s.write_failure(), None);
    // A directory where the flush writes its record: the flush fails as on a full
    // disk (an error even for root, unlike permissions).
    let blocker = dir.path().join(format!("{FLUSHED}.tmp"));
    fs::create_dir(&blocker).unwrap();
    assert!(s.flush().is_err());
    assert!(s.write_failure().is_some());
    assert!(
        s.put_item(item(2)).is_err(),
        "a put acknowledged after a failed flush"
    );
    let peer = StoredPeer {
        addr: "192.0.2.1:6881".parse().unwrap(),
        expires_at: u64::MAX / 2,
        seed: false,
    };
    assert!(s.put_peer(&Id([3; 20]), peer).is_err());
    // Room again: the next flush succeeds and puts are accepted.
    fs::remove_dir(&blocker).unwrap();
    s.flush().unwrap();
    assert_eq!(s.write_failure(), None);
    s.put_item(item(2)).unwrap();
    s.put_peer(&Id([3; 20]), peer).unwrap();
}

#[test]
fn a_refused_directory_is_left_as_found() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = SledStore::open(dir.path()).unwrap();
        s.put_item(item(1)).unwrap();
        s.save_routing(&RoutingSnapshot::default()).unwrap();
        s.flush().unwrap();
    }
    let flushed_before = fs::read(dir.path().join(FLUSHED)).unwrap();
    // Damage two things: a deadline index that no longer matches (open would rebuild
    // it) and a routing record that does not decode (open must refuse).
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("deadlines").unwrap().clear().unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(b"routing", b"\xff\xff garbage".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(OpenError::Corrupt { .. }) => {}
        other => panic!("{other:?}"),
    }
    // Nothing was written: the index is still empty, the flush record unchanged.
    let db = sled::open(dir.path().join("db")).unwrap();
    assert_eq!(db.open_tree("deadlines").unwrap().len(), 0);
    drop(db);
    assert_eq!(fs::read(dir.path().join(FLUSHED)).unwrap(), flushed_before);
}
