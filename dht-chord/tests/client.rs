//! A client that never joins (a node with gateways) puts and gets through ring
//! members, and the ring does not take it for a member.

mod common;

use std::time::Duration;

use common::{addr, Net};
use dht_chord::{ChordNode, Config, Outcome, Request};
use dht_core::Id;
use dht_store_mem::MemStore;

#[test]
fn a_client_puts_and_gets_through_members_without_joining() {
    let mut net = Net::new();
    for i in 0..6 {
        let n = net.add(Config::new(addr(i), i as u64 + 1));
        let bootstrap = if i == 0 { vec![] } else { vec![addr(0)] };
        let q = net.start(n, Request::Join { bootstrap });
        assert!(
            matches!(net.outcome(n, q), Outcome::Successors { successors } if !successors.is_empty())
        );
        net.run(Duration::from_millis(300));
    }
    net.run(Duration::from_secs(10));
    assert!(
        net.nodes.iter().all(|n| n.is_settled()),
        "the ring did not settle"
    );

    let mut put_client = Config::new(addr(10), 99);
    put_client.gateways = vec![addr(2)];
    let putter = net.add(put_client);
    let value = b"5:hello".to_vec();
    let q = net.start(
        putter,
        Request::Put {
            value: value.clone(),
        },
    );
    let Outcome::Stored { target, stored_at } = net.outcome(putter, q) else {
        panic!("not a put outcome");
    };
    assert_eq!(target, Id::sha1(&value));
    assert!(stored_at.is_some(), "no member took the value");

    let mut get_client = Config::new(addr(11), 98);
    get_client.gateways = vec![addr(4)];
    let getter = net.add(get_client);
    let q = net.start(getter, Request::Get { target });
    assert_eq!(
        net.outcome(getter, q),
        Outcome::Value { value: Some(value) }
    );

    // Neither client is anybody's neighbour: members route only to members.
    net.run(Duration::from_secs(5));
    for n in &net.nodes[..6] {
        for p in n.successor_list().iter().chain(n.predecessor().iter()) {
            assert!(p.addr.port() < 7010, "a client joined the ring: {p:?}");
        }
    }
    assert!(!net.nodes[putter].is_joined() && !net.nodes[getter].is_joined());
}

#[test]
fn a_node_without_gateways_or_ring_finds_nothing() {
    let mut net = Net::new();
    let lone = net.add(Config::new(addr(0), 1));
    let q = net.start(
        lone,
        Request::Get {
            target: Id([5; 20]),
        },
    );
    assert_eq!(net.outcome(lone, q), Outcome::Value { value: None });
}

#[test]
fn a_node_restarted_with_a_new_id_at_a_known_address_is_not_taken_for_the_old_one() {
    let mut net = Net::new();
    for i in 0..8 {
        let n = net.add(Config::new(addr(i), i as u64 + 1));
        let bootstrap = if i == 0 { vec![] } else { vec![addr(0)] };
        let q = net.start(n, Request::Join { bootstrap });
        net.outcome(n, q);
        net.run(Duration::from_millis(300));
    }
    net.run(Duration::from_secs(10));
    let mut targets = Vec::new();
    for j in 0..24u64 {
        let mut c = Config::new(addr(100 + j as usize), 500 + j);
        c.gateways = vec![addr(j as usize % 8)];
        let client = net.add(c);
        let value = format!("6:val{j:03}").into_bytes();
        let q = net.start(
            client,
            Request::Put {
                value: value.clone(),
            },
        );
        assert!(matches!(
            net.outcome(client, q),
            Outcome::Stored {
                stored_at: Some(_),
                ..
            }
        ));
        targets.push(value);
    }
    net.run(Duration::from_secs(2));
    // Node 3 crashes and a new node, with a new id and an empty store, takes its
    // address at once: the others still name the old id there.
    net.nodes[3] = ChordNode::new(Config::new(addr(3), 77), MemStore::new(), net.now);
    let q = net.start(
        3,
        Request::Join {
            bootstrap: vec![addr(5)],
        },
    );
    net.outcome(3, q);
    net.run(Duration::from_secs(1));
    for (j, value) in targets.iter().enumerate() {
        let mut c = Config::new(addr(200 + j), 900 + j as u64);
        c.gateways = vec![addr((j * 5 + 1) % 8)];
        let client = net.add(c);
        let q = net.start(
            client,
            Request::Get {
                target: Id::sha1(value),
            },
        );
        assert_eq!(
            net.outcome(client, q),
            Outcome::Value {
                value: Some(value.clone())
            },
            "value {j} lost after a restart at a known address"
        );
    }
    let replaced: u64 = net.nodes.iter().map(|n| n.stats().replaced).sum();
    assert!(
        replaced > 0,
        "no reply from a new id at a known address was seen"
    );
}

#[test]
fn a_ring_of_two_settles_whoever_created_it() {
    // The creator's fingers are all its successor: no lookup, and a fix_fingers pass
    // that never crosses finger 0 between calls; settled all the same.
    for seed in 0..40u64 {
        let mut net = Net::new();
        let a = net.add(Config::new(addr(0), seed * 2 + 1));
        let q = net.start(a, Request::Join { bootstrap: vec![] });
        net.outcome(a, q);
        assert!(net.nodes[a].is_settled(), "alone on its ring: settled");
        net.run(Duration::from_millis(300));
        let b = net.add(Config::new(addr(1), seed * 2 + 2));
        let q = net.start(
            b,
            Request::Join {
                bootstrap: vec![addr(0)],
            },
        );
        net.outcome(b, q);
        net.run(Duration::from_secs(10));
        assert!(
            net.nodes.iter().all(|n| n.is_settled()),
            "seed {seed}: {:?}",
            net.nodes
        );
    }
}
