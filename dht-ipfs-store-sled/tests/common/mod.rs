//! Helpers the tests of this crate share: records, providers and PeerIds, and a
//! data dir filled with flushed data.
#![allow(dead_code)] // each test binary uses a part

use dht_ipfs::{PeerId, Store, StoreLimits, StoredProvider, StoredRecord, UnixMillis};
use dht_ipfs_store_sled::SledStore;

/// A wall-clock time for the tests (Nov 2023).
pub const T0: UnixMillis = 1_700_000_000_000;
pub const HOUR: UnixMillis = 3_600_000;

pub fn record(i: u32, value: &[u8], expires_at: UnixMillis) -> StoredRecord {
    StoredRecord {
        key: format!("/pk/{i:08}").into_bytes(),
        value: value.to_vec(),
        publisher: i.is_multiple_of(2).then(|| peer_id(i).as_bytes().to_vec()),
        expires_at,
    }
}

/// An identity PeerId numbered `n`.
pub fn peer_id(n: u32) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend([0u8; 28]);
    b.extend(n.to_be_bytes());
    PeerId::from_bytes(&b).expect("an identity PeerId")
}

pub fn provider(n: u32, expires_at: UnixMillis) -> StoredProvider {
    StoredProvider {
        provider: peer_id(n),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 4000 + n % 1000)
            .parse()
            .expect("a multiaddr")],
        expires_at,
        addrs_expire_at: expires_at,
    }
}

/// Room for everything the tests write.
pub fn roomy() -> StoreLimits {
    StoreLimits {
        max_records: 1 << 20,
        max_provider_keys: 1 << 20,
        providers_per_key: 20,
        records_per_source: 1 << 20,
        providers_per_source: 1 << 20,
    }
}

/// A data dir holding 2000 records and 2000 providers (one per key), flushed.
pub fn filled() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(dir.path(), roomy()).unwrap();
    for i in 0..2000 {
        s.put_record(record(i, &[7; 100], T0 + HOUR), Some(b"src"), T0)
            .unwrap();
        s.add_provider(&i.to_be_bytes(), provider(i, T0 + 2 * HOUR), None, T0)
            .unwrap();
    }
    s.flush().unwrap();
    drop(s);
    dir
}
