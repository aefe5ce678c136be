//! Opening data directories: fresh ones are initialised; foreign, newer, locked and
//! damaged ones each give their own clear error, never a panic, and keep their files.

use std::fs;
use std::path::Path;

use dht_core::Id;
use dht_core::{Item, Store, StoredItem, StoredPeer};
use dht_datadir::testing::{
    clear_tree, file_names, log_path, plant_torn_snapshot, truncate_log, write_raw,
};
use dht_store_sled::{OpenError, SledStore, FORMAT_VERSION, MARKER};

fn id(i: u32) -> Id {
    let mut t = [0u8; 20];
    t[..4].copy_from_slice(&i.to_be_bytes());
    Id(t)
}

/// A data dir holding enough flushed data to span a good part of sled's log.
fn filled() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(dir.path()).unwrap();
    for i in 0..2000 {
        s.put_item(StoredItem {
            target: id(i),
            item: Item::Immutable {
                value: vec![7; 100],
            },
            expires_at: 5,
        })
        .unwrap();
        s.put_peer(
            &id(i),
            StoredPeer {
                addr: "1.2.3.4:5".parse().unwrap(),
                expires_at: 9,
                seed: false,
            },
        )
        .unwrap();
    }
    s.flush().unwrap();
    drop(s);
    dir
}

fn expect_corrupt(dir: &Path, what: &str) {
    match SledStore::open(dir) {
        Err(e @ OpenError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("corrupt"), "{what}: message {msg:?}");
        }
        Err(e) => panic!("{what}: expected Corrupt, got {e:?}"),
        Ok(s) => panic!("{what}: opened, counts {:?}", s.counts()),
    }
}

#[test]
fn missing_dir_is_created() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("a/b/data");
    let mut s = SledStore::open(&dir).unwrap();
    assert_eq!(s.node_id().unwrap(), None);
    s.set_node_id(id(42)).unwrap();
    drop(s);
    assert!(dir.join(MARKER).is_file());
    assert_eq!(
        SledStore::open(&dir).unwrap().node_id().unwrap(),
        Some(id(42))
    );
}

#[test]
fn empty_dir_is_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.counts().unwrap(), Default::default());
    assert_eq!(s.load_routing().unwrap(), None);
    let marker = fs::read_to_string(dir.path().join(MARKER)).unwrap();
    assert!(
        marker.contains(&format!("format {FORMAT_VERSION}")),
        "{marker}"
    );
}

#[test]
fn foreign_dir_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("thesis.tex"), b"precious").unwrap();
    let e = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, OpenError::NotADataDir { .. }), "{e:?}");
    assert!(e.to_string().contains("not a dht data directory"), "{e}");
    assert_eq!(
        file_names(dir.path()),
        ["thesis.tex"],
        "a refused dir must not be touched"
    );
}

#[test]
fn newer_format_is_refused() {
    let dir = filled();
    fs::write(dir.path().join(MARKER), b"format 999\n").unwrap();
    match SledStore::open(dir.path()) {
        Err(e @ OpenError::NewerFormat { .. }) => {
            assert!(
                matches!(e, OpenError::NewerFormat { found: 999, supported, .. } if supported == FORMAT_VERSION)
            );
            assert!(e.to_string().contains("format 999"), "{e}");
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    // Nothing was wiped: back to our version, everything is there.
    fs::write(
        dir.path().join(MARKER),
        format!("format {FORMAT_VERSION}\n"),
    )
    .unwrap();
    assert_eq!(
        SledStore::open(dir.path()).unwrap().counts().unwrap().items,
        2000
    );
}

#[test]
fn locked_dir_is_refused_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let first = SledStore::open(dir.path()).unwrap();
    let e = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(e, OpenError::Locked { .. }), "{e:?}");
    assert!(e.to_string().contains("in use by another process"), "{e}");
    drop(first);
    SledStore::open(dir.path()).expect("the lock goes with the store");
}

#[test]
fn garbage_marker_is_corrupt() {
    let dir = filled();
    fs::write(dir.path().join(MARKER), b"\xff\xfe nonsense").unwrap();
    expect_corrupt(dir.path(), "garbage marker");
}

#[test]
fn scribbled_sled_config_is_corrupt() {
    let dir = filled();
    fs::write(dir.path().join("db/conf"), b"garbage\x00\xff").unwrap();
    expect_corrupt(dir.path(), "scribbled db/conf");
}

#[test]
fn truncated_log_is_corrupt() {
    for quarters in [0, 1, 2, 3] {
        let dir = filled();
        truncate_log(dir.path(), quarters);
        expect_corrupt(dir.path(), &format!("log truncated to {quarters}/4"));
        // The error is stable: a second attempt does not "heal" the directory.
        expect_corrupt(dir.path(), &format!("log truncated to {quarters}/4, again"));
    }
}

/// Scribbling over the log either hits live data, which must give Corrupt, or
/// space sled no longer uses, which must leave every record intact: never a store
/// that opens with part of the flushed data silently missing.
#[test]
fn scribbled_log_is_corrupt_or_harmless() {
    let mut corrupt = 0;
    let len = {
        let dir = filled();
        fs::metadata(log_path(dir.path())).unwrap().len() as usize
    };
    for at in (0..len).step_by(len / 16) {
        let dir = filled();
        let log = log_path(dir.path());
        let mut bytes = fs::read(&log).unwrap();
        for b in bytes.iter_mut().skip(at).take(512) {
            *b = 0x5a;
        }
        fs::write(&log, bytes).unwrap();
        match SledStore::open(dir.path()) {
            Err(OpenError::Corrupt { .. }) => corrupt += 1,
            Err(e) => panic!("log scribbled at {at}: expected Corrupt, got {e:?}"),
            Ok(s) => {
                for i in 0..2000 {
                    assert!(
                        s.get_item(&id(i)).unwrap().is_some()
                            && s.get_peers(&id(i)).unwrap().len() == 1,
                        "log scribbled at {at}: opened without record {i}"
                    );
                }
            }
        }
    }
    assert!(corrupt > 0, "no scribble was detected");
}

#[test]
fn deleted_log_is_corrupt() {
    let dir = filled();
    fs::remove_file(log_path(dir.path())).unwrap();
    expect_corrupt(dir.path(), "log deleted");
}

#[test]
fn undecodable_record_is_corrupt() {
    let dir = filled();
    write_raw(dir.path(), "items", &id(3).0, &[1u8, 0, 0]);
    match SledStore::open(dir.path()) {
        Err(OpenError::Corrupt { reason, .. }) => {
            assert!(reason.contains("item record"), "{reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn torn_deadline_index_is_rebuilt() {
    let dir = filled();
    clear_tree(dir.path(), "deadlines");
    let mut s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.expire(5).unwrap(), (2000, 0));
    assert_eq!(s.expire(9).unwrap(), (0, 2000));
}

/// A process killed while sled wrote a snapshot leaves `snap.<lsn>.generating`; sled
/// 0.34 would take the torn file for the newest snapshot and refuse the directory.
/// The store removes it before opening: every flushed record comes back.
#[test]
fn a_torn_snapshot_file_does_not_make_the_dir_unopenable() {
    let dir = filled();
    let snap = plant_torn_snapshot(dir.path());
    let s = SledStore::open(dir.path()).expect("opens past a torn snapshot");
    let counts = s.counts().unwrap();
    assert_eq!((counts.items, counts.peers), (2000, 2000));
    assert!(!snap.exists());
}

/// The format 1 marker (before BEP 33 seed flags) is read and migrated, not refused.
#[test]
fn a_format_1_dir_is_migrated() {
    let dir = filled();
    let marker = dir.path().join(MARKER);
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(
        &marker,
        text.replace(&format!("format {FORMAT_VERSION}"), "format 1"),
    )
    .unwrap();
    let s = SledStore::open(dir.path()).expect("a format 1 dir opens");
    assert_eq!(s.counts().unwrap().items, 2000);
    drop(s);
    let text = fs::read_to_string(&marker).unwrap();
    assert!(text.contains(&format!("format {FORMAT_VERSION}")), "{text}");
}
