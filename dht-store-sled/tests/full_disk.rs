//! A store on a file system that fills up (a 3 MB tmpfs this test mounts; skipped
//! with a message where it cannot, e.g. not root): every put it accepted is there
//! after the disk has room again and the store is reopened, the ones it could not
//! write are refused, and it takes puts again once there is room, without a restart.
//! Under group commit, every put whose commit returned `Ok` is there too.

use dht_core::{Id, Item, Store, StoredItem, StoredPeer};
use dht_datadir::tmpfs::Tmpfs;
use dht_store_sled::SledStore;

fn item(i: u32) -> StoredItem {
    let mut target = [0u8; 20];
    target[..4].copy_from_slice(&i.to_be_bytes());
    // A 500-byte bencoded string, different for each item.
    let mut value = format!("500:{i:0>500}").into_bytes();
    value.truncate(504);
    StoredItem {
        target: Id(target),
        item: Item::Immutable { value },
        expires_at: u64::MAX / 2,
    }
}

#[test]
fn a_full_disk_refuses_puts_and_loses_none_it_accepted() {
    let scratch = tempfile::tempdir().unwrap();
    let mnt = scratch.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "3m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("SKIPPED a_full_disk_refuses_puts_and_loses_none_it_accepted: cannot mount a tmpfs (needs root): {e}");
            return;
        }
    };
    let data = mnt.join("data");
    let mut store = SledStore::open(&data).unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..20_000 {
        match store.put_item(item(i)) {
            Ok(()) => accepted.push(i),
            Err(_) => {
                refused += 1;
                // A few more after the first refusal: all refused while the disk is full.
                if refused == 20 {
                    break;
                }
            }
        }
    }
    assert!(refused > 0, "3 MB never filled");
    assert!(
        accepted.len() > 100,
        "only {} puts accepted",
        accepted.len()
    );
    assert!(store.write_failure().is_some());
    let first_refused = accepted.len();
    assert!(
        accepted.iter().enumerate().all(|(n, i)| *i == n as u32),
        "a put accepted after one was refused"
    );

    // Announces are refused too.
    let peer = StoredPeer {
        addr: "192.0.2.1:6881".parse().unwrap(),
        expires_at: u64::MAX / 2,
        seed: false,
    };
    assert!(store.put_peer(&Id([9; 20]), peer).is_err());
    assert_eq!(store.counts().unwrap().peers, 0);

    // Reads go on while the disk is full.
    for i in &accepted {
        let got = store.get_item(&item(*i).target);
        assert_eq!(
            got.as_ref().ok(),
            Some(&Some(item(*i))),
            "item {i} while full: {got:?}"
        );
    }

    // Room again: puts are taken again (after at most the retry interval), with no
    // restart, and the failure clears.
    fs.resize("64m");
    let again = item(1_000_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.put_item(again.clone()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "still refused with room: {:?}",
            store.write_failure()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(store.write_failure(), None);
    assert_eq!(store.counts().unwrap().items, first_refused + 1);
    drop(store);

    let store = SledStore::open(&data).unwrap();
    for i in &accepted {
        let got = store.get_item(&item(*i).target).unwrap();
        assert_eq!(got, Some(item(*i)), "accepted item {i} lost");
    }
    assert_eq!(store.get_item(&again.target).unwrap(), Some(again));
    assert_eq!(store.counts().unwrap().items, first_refused + 1);
    drop(store);
    drop(fs);
}

/// The same under group commit, as a node runs it: puts in groups of 16, each group
/// acknowledged only once its commit returned `Ok`. Every acknowledged put is there
/// after the disk has room again and the store is reopened.
#[test]
fn a_full_disk_under_group_commit_loses_none_it_acknowledged() {
    let scratch = tempfile::tempdir().unwrap();
    let mnt = scratch.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "3m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("SKIPPED a_full_disk_under_group_commit_loses_none_it_acknowledged: cannot mount a tmpfs (needs root): {e}");
            return;
        }
    };
    let data = mnt.join("data");
    let mut store = SledStore::open(&data).unwrap();
    // The first commit switches the store to group commit.
    if let Some(c) = store.commit() {
        c.run().unwrap();
    }
    let mut acknowledged = Vec::new();
    let mut failed_groups = 0;
    let mut i = 0;
    while failed_groups < 20 && i < 20_000 {
        let group: Vec<u32> = (i..i + 16)
            .filter(|&i| store.put_item(item(i)).is_ok())
            .collect();
        i += 16;
        let committed = match store.commit() {
            Some(c) => c.run().is_ok(),
            None => true,
        };
        if !committed || group.len() < 16 {
            failed_groups += 1;
        }
        if committed {
            acknowledged.extend(group);
        }
    }
    assert!(failed_groups > 0, "3 MB never filled");
    assert!(
        acknowledged.len() > 100,
        "only {} puts acknowledged",
        acknowledged.len()
    );
    fs.resize("64m");
    drop(store);

    let store = SledStore::open(&data).unwrap();
    for i in &acknowledged {
        let got = store.get_item(&item(*i).target).unwrap();
        assert_eq!(got, Some(item(*i)), "acknowledged item {i} lost");
    }
    drop(store);
    drop(fs);
}
