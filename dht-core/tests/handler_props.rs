//! The datagram handler under arbitrary and mutated input: a node in a live in-memory
//! network receives it, must not panic, must keep every reply within the size limits
//! (checked by `Net::flush`), and must keep serving afterwards.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{mutate, mutation, Net};
use dht_core::Id;
use dht_core::{Outcome, Request};
use proptest::prelude::*;

/// Real traffic from a small network: every query and reply kind the engine sends.
fn corpus() -> &'static Vec<Vec<u8>> {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut net = Net::new(8, 31, false, |_| {});
        net.log = Some(Vec::new());
        net.bootstrap_all();
        let q = net.nodes[1]
            .start(
                net.now,
                Request::PutImmutable {
                    value: b"5:hello".to_vec(),
                },
            )
            .expect("request");
        net.wait(1, q);
        let k = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let item = dht_core::MutableItem::sign(&k, b"s", 3, b"3:abc");
        let q = net.nodes[2]
            .start(net.now, Request::PutMutable { item, cas: None })
            .expect("request");
        net.wait(2, q);
        let q = net.nodes[3]
            .start(
                net.now,
                Request::AnnouncePeer {
                    info_hash: Id::sha1(b"t"),
                    port: Some(7000),
                },
            )
            .expect("request");
        net.wait(3, q);
        let q = net.nodes[4]
            .start(
                net.now,
                Request::GetPeers {
                    info_hash: Id::sha1(b"t"),
                },
            )
            .expect("request");
        net.wait(4, q);
        let q = net.nodes[5]
            .start(net.now, Request::SampleInfohashes { target: Id::ZERO })
            .expect("request");
        net.wait(5, q);
        let log = net.log.take().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        log.into_iter()
            .map(|(_, _, p)| p)
            .filter(|p| seen.insert(p.clone()))
            .collect()
    })
}

fn check(bytes: &[u8]) {
    let mut net = Net::new(4, 32, false, |_| {});
    net.bootstrap_all();
    let from = net.addrs[1];
    net.nodes[0].handle_datagram(net.now, from, None, bytes);
    net.run_for(Duration::from_secs(5));
    // Still serving: a fresh get of something stored works.
    let q = net.nodes[2]
        .start(
            net.now,
            Request::PutImmutable {
                value: b"i7e".to_vec(),
            },
        )
        .expect("request");
    net.wait(2, q);
    let q = net.nodes[3]
        .start(
            net.now,
            Request::GetImmutable {
                target: Id::sha1(b"i7e"),
            },
        )
        .expect("request");
    assert_eq!(
        net.wait(3, q).outcome,
        Outcome::Immutable {
            value: Some(b"i7e".to_vec())
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        check(&bytes);
    }

    #[test]
    fn mutated_real_traffic(which in any::<prop::sample::Index>(), ms in prop::collection::vec(mutation(), 1..6)) {
        let c = corpus();
        let mut bytes = which.get(c).clone();
        for m in &ms {
            mutate(&mut bytes, m);
        }
        check(&bytes);
    }
}

#[test]
fn corpus_covers_every_method() {
    let c = corpus();
    for m in [
        "ping",
        "find_node",
        "get_peers",
        "announce_peer",
        "get",
        "put",
        "sample_infohashes",
    ] {
        let needle = format!("1:q{}:{}", m.len(), m);
        assert!(
            c.iter()
                .any(|p| p.windows(needle.len()).any(|w| w == needle.as_bytes())),
            "no {m} in corpus"
        );
    }
}
