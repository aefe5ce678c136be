//! Data dirs of the two kinds refuse each other: an IPFS store does not open a
//! Mainline (dht-store-sled) data dir, and dht-store-sled does not open an IPFS one;
//! each refusal is one line, and the refused dir keeps everything.

mod common;

use std::fs;
use std::path::Path;

use common::{record, roomy, HOUR, T0};
use dht_core::{Id, Item, Store as _, StoredItem};
use dht_ipfs::Store;
use dht_ipfs_store_sled::{OpenError, SledStore, KIND, MAINLINE_MARKER, MARKER};

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn mainline_item() -> StoredItem {
    StoredItem {
        target: Id([3; 20]),
        item: Item::Immutable {
            value: b"5:hello".to_vec(),
        },
        expires_at: u64::MAX / 2,
    }
}

#[test]
fn the_mainline_marker_is_dht_store_sleds() {
    assert_eq!(MAINLINE_MARKER, dht_store_sled::MARKER);
    assert_ne!(MARKER, dht_store_sled::MARKER);
}

#[test]
fn a_mainline_dir_is_refused_naming_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut mainline = dht_store_sled::SledStore::open(dir.path()).unwrap();
        mainline.put_item(mainline_item()).unwrap();
    }
    let before = names(dir.path());
    let e = SledStore::open(dir.path(), roomy()).unwrap_err();
    assert!(matches!(e, OpenError::OtherKind { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("Mainline"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg:?}");
    assert_eq!(
        names(dir.path()),
        before,
        "a refused dir must not be touched"
    );
    let mainline = dht_store_sled::SledStore::open(dir.path()).unwrap();
    assert_eq!(
        mainline.get_item(&mainline_item().target).unwrap(),
        Some(mainline_item())
    );
}

#[test]
fn an_ipfs_dir_is_refused_by_the_mainline_store() {
    let dir = tempfile::tempdir().unwrap();
    let r = record(1, b"v", T0 + HOUR);
    {
        let mut ipfs = SledStore::open(dir.path(), roomy()).unwrap();
        ipfs.put_record(r.clone(), None, T0).unwrap();
    }
    let before = names(dir.path());
    let marker = fs::read_to_string(dir.path().join(MARKER)).unwrap();
    assert!(marker.contains(&format!("kind {KIND}")), "{marker}");
    match dht_store_sled::SledStore::open(dir.path()) {
        Err(e @ dht_store_sled::OpenError::NotADataDir { .. }) => {
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        Err(e) => panic!("expected NotADataDir, got {e:?}"),
        Ok(_) => panic!("dht-store-sled opened an IPFS data dir"),
    }
    assert_eq!(
        names(dir.path()),
        before,
        "a refused dir must not be touched"
    );
    let ipfs = SledStore::open(dir.path(), roomy()).unwrap();
    assert_eq!(ipfs.record(&r.key, T0).unwrap(), Some(r));
}

#[test]
fn a_marker_of_another_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(MARKER), "kind chord\nformat 1\n").unwrap();
    fs::write(dir.path().join("data"), b"theirs").unwrap();
    let e = SledStore::open(dir.path(), roomy()).unwrap_err();
    assert!(matches!(e, OpenError::OtherKind { .. }), "{e:?}");
    assert!(e.to_string().contains("\"chord\""), "{e}");
    assert_eq!(names(dir.path()), ["DHT-IPFS-DATA-DIR", "data"]);
}
