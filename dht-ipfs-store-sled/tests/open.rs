//! Opening data directories: fresh ones are initialised; foreign, newer, locked and
//! damaged ones each give their own one-line error, never a panic, and keep their
//! files. What a store held comes back with its counts and per-source shares.

mod common;

use std::fs;
use std::path::Path;

use common::{filled, provider, record, roomy, HOUR, T0};
use dht_datadir::testing::{clear_tree, file_names, plant_torn_snapshot, truncate_log, write_raw};
use dht_ipfs::{Store, StoreCounts, StoreError, StoreLimits};
use dht_ipfs_store_sled::{OpenError, SledStore, FORMAT_VERSION, MARKER};

fn expect_corrupt(dir: &Path, what: &str) -> String {
    match SledStore::open(dir, roomy()) {
        Err(e @ OpenError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("corrupt"), "{what}: message {msg:?}");
            assert!(!msg.contains('\n'), "{what}: one line: {msg:?}");
            msg
        }
        Err(e) => panic!("{what}: expected Corrupt, got {e:?}"),
        Ok(s) => panic!("{what}: opened, counts {:?}", s.counts()),
    }
}

#[test]
fn missing_dir_is_created_and_empty_dir_initialised() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("a/b/data");
    let s = SledStore::open(&dir, roomy()).unwrap();
    assert_eq!(s.counts(), StoreCounts::default());
    drop(s);
    let marker = fs::read_to_string(dir.join(MARKER)).unwrap();
    assert!(
        marker.contains(&format!("format {FORMAT_VERSION}")),
        "{marker}"
    );
    assert!(marker.contains("kind ipfs-kad"), "{marker}");
    SledStore::open(&dir, roomy()).unwrap();
}

#[test]
fn foreign_dir_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("thesis.tex"), b"precious").unwrap();
    let e = SledStore::open(dir.path(), roomy()).unwrap_err();
    assert!(matches!(e, OpenError::NotADataDir { .. }), "{e:?}");
    assert!(!e.to_string().contains('\n'), "{e}");
    assert_eq!(
        file_names(dir.path()),
        ["thesis.tex"],
        "a refused dir must not be touched"
    );
}

#[test]
fn newer_format_is_refused_and_nothing_wiped() {
    let dir = filled();
    let marker = dir.path().join(MARKER);
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(
        &marker,
        text.replace(&format!("format {FORMAT_VERSION}"), "format 999"),
    )
    .unwrap();
    match SledStore::open(dir.path(), roomy()) {
        Err(e @ OpenError::NewerFormat { found: 999, .. }) => {
            assert!(e.to_string().contains("format 999"), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    fs::write(&marker, text).unwrap();
    assert_eq!(
        SledStore::open(dir.path(), roomy())
            .unwrap()
            .counts()
            .records,
        2000
    );
}

#[test]
fn locked_dir_is_refused_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path(), roomy()).unwrap();
    let e = SledStore::open(dir.path(), roomy()).unwrap_err();
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("in use by another process"), "{e}");
    drop(first);
    SledStore::open(dir.path(), roomy()).expect("the lock goes with the store");
}

#[test]
fn garbage_marker_is_corrupt() {
    let dir = filled();
    fs::write(dir.path().join(MARKER), b"\xff\xfe nonsense").unwrap();
    expect_corrupt(dir.path(), "garbage marker");
}

#[test]
fn truncated_log_is_corrupt() {
    for quarters in [0, 1, 2, 3] {
        let dir = filled();
        truncate_log(dir.path(), quarters);
        expect_corrupt(dir.path(), &format!("log truncated to {quarters}/4"));
        expect_corrupt(dir.path(), &format!("log truncated to {quarters}/4, again"));
    }
}

#[test]
fn undecodable_values_are_corrupt() {
    for (tree, key) in [
        ("records", b"/pk/00000003".to_vec()),
        ("providers", vec![0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]),
    ] {
        let dir = filled();
        write_raw(dir.path(), tree, &key, &[1u8, 0, 0]);
        let msg = expect_corrupt(dir.path(), tree);
        assert!(msg.contains("undecodable"), "{msg}");
    }
}

#[test]
fn torn_deadline_index_is_rebuilt() {
    let dir = filled();
    clear_tree(dir.path(), "deadlines");
    let mut s = SledStore::open(dir.path(), roomy()).unwrap();
    assert_eq!(s.expire(T0 + HOUR, usize::MAX).unwrap(), 2000);
    assert_eq!(s.counts().records, 0);
    assert_eq!(s.expire(T0 + 2 * HOUR, usize::MAX).unwrap(), 2000);
    assert_eq!(s.counts(), StoreCounts::default());
}

/// A process killed while sled wrote a snapshot leaves `snap.<lsn>.generating`, which
/// sled 0.34 would take for the newest snapshot; the store removes it first.
#[test]
fn a_torn_snapshot_file_does_not_make_the_dir_unopenable() {
    let dir = filled();
    let snap = plant_torn_snapshot(dir.path());
    let s = SledStore::open(dir.path(), roomy()).expect("opens past a torn snapshot");
    assert_eq!((s.counts().records, s.counts().providers), (2000, 2000));
    assert!(!snap.exists());
}

/// Counts and per-source shares are rebuilt at open from what the entries record.
#[test]
fn counts_and_shares_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let limits = StoreLimits {
        records_per_source: 2,
        providers_per_source: 1,
        ..roomy()
    };
    {
        let mut s = SledStore::open(dir.path(), limits).unwrap();
        for i in 0..2 {
            s.put_record(record(i, b"v", T0 + HOUR), Some(b"A"), T0)
                .unwrap();
        }
        s.add_provider(b"cid", provider(1, T0 + HOUR), Some(b"A"), T0)
            .unwrap();
        s.add_provider(b"cid", provider(2, T0 + HOUR), None, T0)
            .unwrap();
    }
    let mut s = SledStore::open(dir.path(), limits).unwrap();
    assert_eq!(
        s.counts(),
        StoreCounts {
            records: 2,
            provider_keys: 1,
            providers: 2
        }
    );
    assert_eq!(
        s.put_record(record(9, b"v", T0 + HOUR), Some(b"A"), T0),
        Err(StoreError::SourceShare)
    );
    assert_eq!(
        s.add_provider(b"other", provider(3, T0 + HOUR), Some(b"A"), T0),
        Err(StoreError::SourceShare)
    );
    s.put_record(record(9, b"v", T0 + HOUR), Some(b"B"), T0)
        .unwrap();
    // Expiry gives the shares back, and that holds across a reopen too.
    assert_eq!(s.expire(T0 + HOUR, usize::MAX).unwrap(), 5);
    drop(s);
    let mut s = SledStore::open(dir.path(), limits).unwrap();
    assert_eq!(s.counts(), StoreCounts::default());
    s.put_record(record(9, b"v", T0 + 2 * HOUR), Some(b"A"), T0)
        .unwrap();
}
