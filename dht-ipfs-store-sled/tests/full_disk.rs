//! A store on a file system that fills up (a 3 MB tmpfs this test mounts, as
//! dht-store-sled's test does; skipped with a message where it cannot, e.g. not
//! root): every write it acknowledged is there after the disk has room again and the
//! store is reopened, the ones it could not write are refused, and it takes writes
//! again once there is room, without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{peer_id, provider, roomy};
use dht_datadir::tmpfs::Tmpfs;
use dht_ipfs::{Store, StoredRecord};
use dht_ipfs_store_sled::SledStore;

const FAR: u64 = u64::MAX / 2;

fn record(i: u32) -> StoredRecord {
    StoredRecord {
        key: format!("/pk/{i:08}").into_bytes(),
        // 500 bytes, different for each record.
        value: format!("{i:0>500}").into_bytes(),
        publisher: None,
        expires_at: FAR,
    }
}

#[test]
fn a_full_disk_refuses_writes_and_loses_none_it_acknowledged() {
    let scratch = tempfile::tempdir().unwrap();
    let mnt = scratch.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, "3m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!(
                "SKIPPED a_full_disk_refuses_writes_and_loses_none_it_acknowledged: \
                 cannot mount a tmpfs (needs root): {e}"
            );
            return;
        }
    };
    let data = mnt.join("data");
    let mut store = SledStore::open(&data, roomy()).unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..20_000 {
        match store.put_record(record(i), Some(b"src"), 0) {
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
    assert!(store.refused_writes() > 0);
    let first_refused = accepted.len();
    assert!(
        accepted.iter().enumerate().all(|(n, i)| *i == n as u32),
        "a put accepted after one was refused"
    );

    // Provider records are refused too.
    assert!(store
        .add_provider(b"cid", provider(1, FAR), None, 0)
        .is_err());
    assert_eq!(store.counts().providers, 0);

    // Reads go on while the disk is full.
    for i in &accepted {
        let got = store.record(&record(*i).key, 0);
        assert_eq!(
            got.as_ref().ok(),
            Some(&Some(record(*i))),
            "record {i} while full: {got:?}"
        );
    }

    // Room again: writes are taken again (after at most the retry interval), with no
    // restart, and the failure clears.
    fs.resize("64m");
    let again = record(1_000_000);
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.put_record(again.clone(), Some(b"src"), 0).is_err() {
        assert!(
            Instant::now() < deadline,
            "still refused with room: {:?}",
            store.write_failure()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(store.write_failure(), None);
    store
        .add_provider(b"cid", provider(1, FAR), None, 0)
        .unwrap();
    assert_eq!(store.counts().records, first_refused + 1);
    drop(store);

    let store = SledStore::open(&data, roomy()).unwrap();
    for i in &accepted {
        let got = store.record(&record(*i).key, 0).unwrap();
        assert_eq!(got, Some(record(*i)), "accepted record {i} lost");
    }
    assert_eq!(store.record(&again.key, 0).unwrap(), Some(again));
    assert_eq!(store.counts().records, first_refused + 1);
    assert_eq!(store.providers(b"cid", 0).unwrap()[0].provider, peer_id(1));
    drop(store);
    drop(fs);
}
