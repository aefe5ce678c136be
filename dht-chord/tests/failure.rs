//! Nodes fail at once, as in the simulator's `--fail` runs: the ring must repair in
//! the right direction, and gets must find the copies that survive.

mod common;

use std::time::Duration;

use common::{addr, Net};
use dht_chord::wire::{self, Body, Query};
use dht_chord::{ring, Config, Outcome, Request};
use dht_core::Id;

/// Nodes on a ring of `n` at ids i · 2^160 / n + 1 (n a power of two), r = 2, joined
/// one by one through node 0 and settled.
fn even_ring(n: usize) -> Net {
    let mut net = Net::new();
    for i in 0..n {
        let mut config = Config::new(addr(i), i as u64 + 1);
        config.successors = 2;
        let mut id = [0u8; 20];
        id[0] = (i * (256 / n)) as u8;
        id[19] = 1;
        let node = net.add_with_id(config, Id(id));
        let bootstrap = if i == 0 { vec![] } else { vec![addr(0)] };
        let q = net.start(node, Request::Join { bootstrap });
        net.outcome(node, q);
        net.run(Duration::from_millis(300));
    }
    net.run(Duration::from_secs(20));
    assert!(
        net.nodes.iter().all(|n| n.is_settled()),
        "the ring did not settle"
    );
    net
}

/// A bencoded value whose key lies in (node `a`, node `b`].
fn value_between(net: &Net, a: usize, b: usize) -> Vec<u8> {
    let (a, b) = (net.nodes[a].id(), net.nodes[b].id());
    (0..10_000)
        .map(|j| format!("8:value{j:03}").into_bytes())
        .find(|v| ring::in_half_open(&Id::sha1(v), &a, &b))
        .expect("one value in 16 falls in a sixteenth of the ring")
}

/// The live node that follows node `i` on the ring.
fn live_successor(net: &Net, i: usize) -> Id {
    let id = net.nodes[i].id();
    (0..net.nodes.len())
        .filter(|j| *j != i && !net.dead.contains(j))
        .map(|j| net.nodes[j].id())
        .min_by_key(|x| ring::sub(x, &id))
        .expect("another live node")
}

#[test]
fn a_node_whose_successors_all_fail_finds_the_next_live_node_ahead() {
    let mut net = even_ring(16);
    // Keys just past node 4's dead run: held by node 7 and node 8 (r = 2).
    let values: Vec<Vec<u8>> = [(4, 5), (5, 6), (6, 7), (7, 8)]
        .iter()
        .map(|&(a, b)| value_between(&net, a, b))
        .collect();
    for (j, v) in values.iter().enumerate() {
        let q = net.start(10 + j % 4, Request::Put { value: v.clone() });
        net.outcome(10 + j % 4, q);
    }
    net.run(Duration::from_secs(2));
    // Node 4 loses both of its r = 2 successors.
    net.kill(5);
    net.kill(6);
    // Gets from the far side of the ring while node 4 repairs, and after.
    for round in 0..6 {
        for (j, v) in values.iter().enumerate() {
            let from = 12 + (j + round) % 4;
            let q = net.start(
                from,
                Request::Get {
                    target: Id::sha1(v),
                },
            );
            let got = net.outcome(from, q);
            // A key in (4, 6] lost both copies (nodes 5 and 6); the others must be found.
            if j >= 2 {
                assert_eq!(
                    got,
                    Outcome::Value {
                        value: Some(v.clone())
                    },
                    "round {round}: the value past the dead run between node {} and node {} was not found",
                    4 + j,
                    5 + j
                );
            }
        }
    }
    net.run(Duration::from_secs(10));
    for i in (0..16).filter(|i| !net.dead.contains(i)) {
        assert_eq!(
            net.nodes[i].successor().id,
            live_successor(&net, i),
            "node {i}'s successor is not the next live node"
        );
    }
}

#[test]
fn a_get_whose_only_candidate_is_dead_ends_at_the_querier_own_successors() {
    let mut net = even_ring(16);
    // Held by nodes 2 and 3; node 0 knows no node but node 1 in (node 0, key).
    let v = value_between(&net, 1, 2);
    let q = net.start(8, Request::Put { value: v.clone() });
    net.outcome(8, q);
    net.run(Duration::from_secs(2));
    net.kill(1);
    let q = net.start(
        0,
        Request::Get {
            target: Id::sha1(&v),
        },
    );
    assert_eq!(net.outcome(0, q), Outcome::Value { value: Some(v) });
}

/// Asks node `i` one `find_successor` step for `target` from a stranger's address;
/// returns (found, the nodes named).
fn ask_find_successor(net: &mut Net, i: usize, target: Id) -> (bool, Vec<Id>) {
    let mut q = Vec::new();
    wire::encode_query(
        &mut q,
        b"tt",
        &Id([0xee; 20]),
        &Query::FindSuccessor { target },
    );
    let now = net.now;
    net.nodes[i].handle_datagram(now, addr(999), None, &q);
    while let Some(t) = net.nodes[i].poll_transmit() {
        if t.to == addr(999) {
            let m = wire::decode(&t.payload).expect("a reply of ours decodes");
            let Body::Reply(r) = m.body else {
                panic!("not a reply: {m:?}");
            };
            return (r.found, r.nodes.iter().map(|p| p.id).collect());
        }
    }
    panic!("node {i} did not answer");
}

#[test]
fn a_node_repairing_past_a_dead_run_claims_no_key_until_its_successor_confirms_it() {
    let mut net = even_ring(16);
    // Node 4 loses both successors (r = 2) and its finger at node 8: the nearest
    // node it still knows ahead is its finger at node 12, and nodes 7, 9, 10 and 11
    // lie alive between.
    for i in [5, 6, 8] {
        net.kill(i);
    }
    let ahead: Vec<Id> = (9..=12).map(|i| net.nodes[i].id()).collect();
    let mut steps = 0;
    while !ahead.contains(&net.nodes[4].successor().id) {
        net.run(Duration::from_millis(10));
        steps += 1;
        assert!(steps < 1000, "node 4 never took a node past the dead run");
    }
    // Between node 4 and that successor lies node 7, which node 4 does not know of
    // yet: a key just before node 7 is not node 4's to place.
    let target = ring::sub(&net.nodes[7].id(), &ring::pow2(0));
    let (found, _) = ask_find_successor(&mut net, 4, target);
    assert!(
        !found,
        "node 4 claimed a key while its successor was unconfirmed"
    );
    // Once repaired, it answers again, with the true successor.
    net.run(Duration::from_secs(10));
    let (found, nodes) = ask_find_successor(&mut net, 4, target);
    assert!(found, "node 4 does not answer after its repair");
    assert_eq!(nodes.first(), Some(&net.nodes[7].id()));
}

#[test]
fn a_node_whose_own_gets_find_its_successors_dead_claims_no_key() {
    let mut net = even_ring(16);
    let v = value_between(&net, 5, 6);
    let q = net.start(8, Request::Put { value: v.clone() });
    net.outcome(8, q);
    net.run(Duration::from_secs(2));
    net.kill(5);
    net.kill(6);
    // Node 4's own gets meet both dead successors, stabilize perhaps not yet.
    let self_id = net.nodes[4].id();
    let probe = ring::add(&self_id, &ring::pow2(100));
    for step in 0..300 {
        if step % 20 == 0 {
            let _ = net.start(
                4,
                Request::Get {
                    target: Id::sha1(&v),
                },
            );
        }
        let (found, nodes) = ask_find_successor(&mut net, 4, probe);
        assert!(
            !(found && nodes.first() == Some(&self_id)),
            "step {step}: node 4 named itself the successor of a key past its dead successors"
        );
        net.run(Duration::from_millis(10));
    }
}
