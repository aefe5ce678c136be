//! Lookups spend no request twice: one lookup asks each node once, and a mutable
//! get asked for any valid item stops at the first (issue 16). The nodes run on the
//! in-memory network of `common`, and the datagrams delivered are read back from
//! its log.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Net;
use dht_core::krpc::{self, Body};
use dht_core::{Id, MutableItem, Outcome, Request};
use ed25519_dalek::SigningKey;

/// The queries `from` sent to `to` among the datagrams delivered, by method name.
fn queries(net: &Net, from: SocketAddr, to: SocketAddr, method: &[u8]) -> usize {
    net.log
        .as_ref()
        .expect("logging")
        .iter()
        .filter(|(f, t, _)| *f == from && *t == to)
        .filter_map(|(_, _, p)| krpc::decode(p).ok())
        .filter(|m| matches!(&m.body, Body::Query(q) if q.method.name() == method))
        .count()
}

#[test]
fn a_put_through_a_lone_seed_asks_it_once() {
    let mut net = Net::new(2, 4, false, |_| {});
    let seed = net.addrs[0];
    let q = net.nodes[1]
        .start(net.now, Request::Bootstrap { seeds: vec![seed] })
        .expect("bootstrap");
    net.wait(1, q);
    net.run_for(Duration::from_secs(60));
    // The seed is now both in the table (it answered) and a bootstrap address.
    net.log = Some(Vec::new());
    let q = net.nodes[1]
        .start(
            net.now,
            Request::PutImmutable {
                value: b"5:hello".to_vec(),
            },
        )
        .expect("put");
    let done = net.wait(1, q);
    assert!(
        matches!(&done.outcome, Outcome::Stored { stored_at, .. } if stored_at == &vec![seed]),
        "{:?}",
        done.outcome
    );
    assert_eq!(queries(&net, net.addrs[1], seed, b"get"), 1);
    assert_eq!(queries(&net, net.addrs[1], seed, b"put"), 1);
    assert_eq!(done.stats.requests, 2, "one get, one put");
}

#[test]
fn a_seed_learned_from_another_seed_is_not_asked_again() {
    let mut net = Net::new(3, 5, false, |_| {});
    // Nodes 0 and 1 know each other; node 2 knows nobody and has both as seeds.
    let q = net.nodes[1]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: vec![net.addrs[0]],
            },
        )
        .expect("bootstrap");
    net.wait(1, q);
    net.run_for(Duration::from_secs(60));
    net.log = Some(Vec::new());
    let seeds = vec![net.addrs[0], net.addrs[1]];
    let q = net.nodes[2]
        .start(net.now, Request::Bootstrap { seeds })
        .expect("bootstrap");
    let done = net.wait(2, q);
    assert!(matches!(&done.outcome, Outcome::Nodes { closest } if closest.len() == 2));
    for s in [0, 1] {
        assert_eq!(
            queries(&net, net.addrs[2], net.addrs[s], b"find_node"),
            1,
            "seed {s}"
        );
    }
    assert_eq!(done.stats.requests, 2);

    // A lookup of another target through the same two: each asked once again.
    net.log = Some(Vec::new());
    let q = net.nodes[2]
        .start(
            net.now,
            Request::FindNode {
                target: Id([0x77; 20]),
            },
        )
        .expect("find_node");
    let done = net.wait(2, q);
    assert_eq!(done.stats.requests, 2);
}

/// A mutable get from a node that does not hold the item: its outcome and
/// figures, in a 64-node network where `first_valid` is the getters' setting.
///
/// Without the early last round (`Config::early_last_round`): in a network this
/// small every table already holds the k closest, so that round would ask all of
/// them at once and a get ending at its first item would save answers, not requests.
fn mutable_get(first_valid: bool) -> dht_core::QueryDone {
    let mut net = Net::new(64, 6, false, |c| {
        c.mutable_get_first_valid = first_valid;
        c.early_last_round = false;
    });
    net.bootstrap_all();
    let key = SigningKey::from_bytes(&[3; 32]);
    let item = MutableItem::sign(&key, b"", 4, b"5:value");
    let q = net.nodes[5]
        .start(
            net.now,
            Request::PutMutable {
                item: item.clone(),
                cas: None,
            },
        )
        .expect("put");
    net.wait(5, q);
    let g = (0..64)
        .find(|&i| {
            dht_core::Store::get_item(net.nodes[i].store(), &item.target())
                .unwrap()
                .is_none()
        })
        .unwrap();
    let q = net.nodes[g]
        .start(
            net.now,
            Request::GetMutable {
                key: item.key,
                salt: Vec::new(),
                min_seq: None,
            },
        )
        .expect("get");
    let done = net.wait(g, q);
    assert_eq!(done.outcome, Outcome::Mutable { item: Some(item) });
    done
}

#[test]
fn a_mutable_get_asked_for_any_valid_item_ends_at_the_first() {
    let highest = mutable_get(false);
    let first = mutable_get(true);
    assert!(
        first.stats.requests < highest.stats.requests,
        "first valid: {:?}; highest seq: {:?}",
        first.stats,
        highest.stats
    );
    assert!(first.stats.duration < highest.stats.duration);
}
