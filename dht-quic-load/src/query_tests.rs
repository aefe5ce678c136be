//! The shared query templates (`dht_measure::krpc`) checked against dht-core's own decoder:
//! over QUIC the target decodes them with it and checks the id, so they must be real,
//! well-formed read-only queries carrying the connection's id.

use dht_core::krpc::Body;
use dht_core::Id;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::{envelope, MessageKind, QueryKind, QueryTemplate};

#[test]
fn every_query_decodes_as_a_read_only_query_with_our_tid() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let id = Id([9; 20]);
    for kind in QueryKind::ALL {
        let mut q = QueryTemplate::new(kind, &id.0);
        q.set_transaction_id(&[1, 2, 3, 4]);
        let mut key = [0; 20];
        rng.fill_bytes(&mut key);
        q.set_key(&key);
        let out = q.as_bytes();
        let m = dht_core::krpc::decode(out).expect("our own query decodes");
        assert_eq!(m.transaction_id, [1, 2, 3, 4]);
        assert!(m.read_only);
        let Body::Query(query) = m.body else {
            panic!("not a query: {kind}")
        };
        assert_eq!(query.id, id);
        assert_eq!(query.method.name(), kind.method().as_bytes());
        assert_eq!(envelope(out), Some(([1, 2, 3, 4], MessageKind::Query)));
        assert_eq!(QueryKind::parse(kind.method()), Some(kind));
    }
}

#[test]
fn envelopes_that_are_not_ours_are_refused() {
    assert_eq!(
        envelope(b"d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t4:abcd1:y1:re"),
        Some((*b"abcd", MessageKind::Response))
    );
    for bad in [
        &b""[..],
        b"le",
        b"d1:t2:ab1:y1:re",
        b"d1:t4:abcd1:y1:xe",
        b"d1:t4:abcde",
        b"d1:t4:abcd1:y1:r",
    ] {
        assert_eq!(envelope(bad), None, "{bad:?}");
    }
}
