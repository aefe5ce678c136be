//! The store conformance suite (feature `conformance`): one function per rule of the
//! [`Store`] contract, and [`run_all`], which a store crate's test calls with a
//! constructor. Every store passes the same suite, so the node can rely on the rules.

use multiaddr::Multiaddr;

use crate::peer::PeerId;
use crate::store::{Store, StoreError, StoreLimits, StoredProvider, StoredRecord, UnixMillis};

const T0: UnixMillis = 1_700_000_000_000;
const HOUR: UnixMillis = 3_600_000;

fn record(key: &str, value: &str, expires_at: UnixMillis) -> StoredRecord {
    StoredRecord {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        publisher: None,
        expires_at,
    }
}

fn peer_id(n: u16) -> PeerId {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend([0u8; 30]);
    b.extend(n.to_be_bytes());
    PeerId::from_bytes(&b).expect("an identity PeerId")
}

fn provider(n: u16, expires_at: UnixMillis, addrs_expire_at: UnixMillis) -> StoredProvider {
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", 4000 + n)
        .parse()
        .expect("a multiaddr");
    StoredProvider {
        provider: peer_id(n),
        addrs: vec![addr],
        expires_at,
        addrs_expire_at,
    }
}

fn limits() -> StoreLimits {
    StoreLimits {
        max_records: 8,
        max_provider_keys: 4,
        providers_per_key: 20,
        records_per_source: 3,
        providers_per_source: 25,
    }
}

/// Records are stored, read, replaced and removed.
pub fn records_round_trip<S: Store>(mut s: S) {
    assert_eq!(s.record(b"/pk/a", T0).unwrap(), None);
    s.put_record(record("/pk/a", "one", T0 + HOUR), Some(b"src"), T0)
        .unwrap();
    assert_eq!(
        s.record(b"/pk/a", T0).unwrap(),
        Some(record("/pk/a", "one", T0 + HOUR))
    );
    s.put_record(record("/pk/a", "two", T0 + 2 * HOUR), Some(b"other"), T0)
        .unwrap();
    assert_eq!(s.record(b"/pk/a", T0).unwrap().unwrap().value, b"two");
    assert_eq!(s.counts().records, 1);
    assert!(s.remove_record(b"/pk/a").unwrap());
    assert!(!s.remove_record(b"/pk/a").unwrap());
    assert_eq!(s.counts().records, 0);
}

/// An expired record is not read, even before `expire` removes it; `expire` removes
/// at most `max` entries a call, records and providers alike, soonest first.
pub fn expiry_is_hidden_at_once_and_bounded_per_call<S: Store>(mut s: S) {
    for i in 0..7 {
        s.put_record(record(&format!("/k/{i}"), "v", T0 + HOUR + i), None, T0)
            .unwrap();
    }
    s.add_provider(b"cid", provider(1, T0 + HOUR, T0 + HOUR), None, T0)
        .unwrap();
    s.put_record(record("/k/late", "v", T0 + 10 * HOUR), None, T0)
        .unwrap();
    let later = T0 + 2 * HOUR;
    assert_eq!(s.record(b"/k/0", later).unwrap(), None);
    assert!(s.providers(b"cid", later).unwrap().is_empty());
    assert_eq!(s.counts().records, 8, "nothing removed before expire");
    assert_eq!(s.expire(later, 3).unwrap(), 3);
    assert_eq!(s.expire(later, 3).unwrap(), 3);
    assert_eq!(s.expire(later, 3).unwrap(), 2);
    assert_eq!(s.expire(later, 3).unwrap(), 0);
    assert_eq!(s.counts().records, 1);
    assert_eq!(s.counts().providers, 0);
    assert!(s.record(b"/k/late", later).unwrap().is_some());
}

/// A source cannot store more than its share of records; others still can, exempt
/// sources have no share, replacing one's own record costs nothing, and a record
/// that expires gives its share back.
pub fn records_per_source_share<S: Store>(mut s: S) {
    for i in 0..3 {
        s.put_record(record(&format!("/a/{i}"), "v", T0 + HOUR), Some(b"A"), T0)
            .unwrap();
    }
    assert_eq!(
        s.put_record(record("/a/3", "v", T0 + HOUR), Some(b"A"), T0),
        Err(StoreError::SourceShare)
    );
    s.put_record(record("/a/0", "again", T0 + 5 * HOUR), Some(b"A"), T0)
        .unwrap();
    s.put_record(record("/b/0", "v", T0 + HOUR), Some(b"B"), T0)
        .unwrap();
    for i in 0..3 {
        s.put_record(record(&format!("/x/{i}"), "v", T0 + HOUR), None, T0)
            .unwrap();
    }
    // /a/1 and /a/2 expire; once removed, A may store again.
    let later = T0 + 2 * HOUR;
    while s.expire(later, 100).unwrap() > 0 {}
    s.put_record(record("/a/3", "v", later + HOUR), Some(b"A"), later)
        .unwrap();
}

/// At the cap, new keys are refused and existing ones may still be replaced.
pub fn record_cap_refuses_new_keys<S: Store>(mut s: S) {
    for i in 0..8 {
        s.put_record(record(&format!("/k/{i}"), "v", T0 + HOUR), None, T0)
            .unwrap();
    }
    assert_eq!(
        s.put_record(record("/k/8", "v", T0 + HOUR), None, T0),
        Err(StoreError::Full)
    );
    s.put_record(record("/k/0", "new", T0 + HOUR), None, T0)
        .unwrap();
    assert_eq!(s.record(b"/k/0", T0).unwrap().unwrap().value, b"new");
}

/// Providers are added, listed and refreshed (one entry per PeerId); their addresses
/// stop being handed out at `addrs_expire_at`, the provider at `expires_at`.
pub fn providers_round_trip_and_address_expiry<S: Store>(mut s: S) {
    s.add_provider(
        b"cid",
        provider(1, T0 + 48 * HOUR, T0 + 24 * HOUR),
        None,
        T0,
    )
    .unwrap();
    s.add_provider(
        b"cid",
        provider(2, T0 + 48 * HOUR, T0 + 24 * HOUR),
        None,
        T0,
    )
    .unwrap();
    let mut refreshed = provider(1, T0 + 50 * HOUR, T0 + 26 * HOUR);
    refreshed.addrs = vec!["/ip4/127.0.0.2/tcp/1".parse().expect("a multiaddr")];
    s.add_provider(b"cid", refreshed.clone(), None, T0 + 2 * HOUR)
        .unwrap();
    let got = s.providers(b"cid", T0 + 2 * HOUR).unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&refreshed));
    assert_eq!(s.counts().providers, 2);
    assert_eq!(s.counts().provider_keys, 1);
    let at_25h = s.providers(b"cid", T0 + 25 * HOUR).unwrap();
    let two = at_25h
        .iter()
        .find(|p| p.provider == peer_id(2))
        .expect("provider 2 still listed");
    assert!(two.addrs.is_empty(), "its addresses expired at 24 h");
    let one = at_25h
        .iter()
        .find(|p| p.provider == peer_id(1))
        .expect("provider 1 listed");
    assert_eq!(one.addrs.len(), 1, "refreshed addresses last to 26 h");
    let at_49h = s.providers(b"cid", T0 + 49 * HOUR).unwrap();
    assert_eq!(
        at_49h
            .iter()
            .map(|p| p.provider.clone())
            .collect::<Vec<_>>(),
        vec![peer_id(1)]
    );
    assert!(s.providers(b"other", T0).unwrap().is_empty());
}

/// A key holds at most 20 providers: newcomers are refused while 20 are unexpired
/// (a listed one may still refresh), and accepted once one has expired, even before
/// `expire` runs.
pub fn twenty_providers_per_key<S: Store>(mut s: S) {
    for n in 0..20 {
        let expires = T0 + HOUR + UnixMillis::from(n);
        s.add_provider(b"cid", provider(n, expires, expires), None, T0)
            .unwrap();
    }
    assert_eq!(
        s.add_provider(b"cid", provider(20, T0 + HOUR, T0 + HOUR), None, T0),
        Err(StoreError::KeyFull)
    );
    s.add_provider(b"cid", provider(5, T0 + 3 * HOUR, T0 + 3 * HOUR), None, T0)
        .unwrap();
    assert_eq!(s.providers(b"cid", T0).unwrap().len(), 20);
    let later = T0 + HOUR;
    s.add_provider(
        b"cid",
        provider(20, later + HOUR, later + HOUR),
        None,
        later,
    )
    .unwrap();
    let listed = s.providers(b"cid", later).unwrap();
    assert!(listed.iter().any(|p| p.provider == peer_id(20)));
    assert!(listed.len() <= 20);
}

/// A source cannot hold more than its share of provider entries; the cap on keys
/// refuses new keys.
pub fn providers_per_source_share_and_key_cap<S: Store>(mut s: S) {
    let mut added = 0;
    for key in 0..4u8 {
        for n in 0..10 {
            let r = s.add_provider(
                &[key],
                provider(n + 100 * u16::from(key), T0 + HOUR, T0 + HOUR),
                Some(b"A"),
                T0,
            );
            if r.is_ok() {
                added += 1;
            } else {
                assert_eq!(r, Err(StoreError::SourceShare));
            }
        }
    }
    assert_eq!(added, 25, "source A holds exactly its share");
    s.add_provider(&[3], provider(999, T0 + HOUR, T0 + HOUR), Some(b"B"), T0)
        .unwrap();
    assert_eq!(
        s.add_provider(&[4], provider(998, T0 + HOUR, T0 + HOUR), Some(b"B"), T0),
        Err(StoreError::Full),
        "four keys at most"
    );
}

/// Every check, each on a fresh store from `make` with the suite's small limits.
pub fn run_all<S: Store>(make: impl Fn(StoreLimits) -> S) {
    records_round_trip(make(limits()));
    expiry_is_hidden_at_once_and_bounded_per_call(make(limits()));
    records_per_source_share(make(limits()));
    record_cap_refuses_new_keys(make(limits()));
    providers_round_trip_and_address_expiry(make(limits()));
    twenty_providers_per_key(make(limits()));
    providers_per_source_share_and_key_cap(make(limits()));
}
