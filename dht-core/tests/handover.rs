//! Kademlia's handover through the public API: nodes exchanging real KRPC datagrams in
//! memory. An item put on the 8 nodes closest to it reaches a newcomer closer to it, and
//! so outlives every node that first stored it.

mod common;

use std::time::Duration;

use common::Net;
use dht_core::Store;
use dht_core::{Config, Id, IdPolicy, Outcome, Request};

const NODES: usize = 24;
const VALUE: &[u8] = b"11:handed over";

/// What became of the item.
#[derive(Debug)]
struct Run {
    /// Nodes that held it after the put.
    holders: usize,
    /// The newcomer held it before the holders died.
    newcomer_holds: bool,
    /// Handovers acknowledged, over every node, from the newcomer's arrival on.
    handovers: u64,
    /// What a get from a node that never held it found once every holder had died.
    found: Option<Vec<u8>>,
}

/// `NODES` nodes; node 1 puts an item; a newcomer with id `newcomer(target)` joins and
/// a minute passes; then every node that held the item dies and node `getter` asks.
fn run(handover: bool, newcomer: impl Fn(Id) -> Id) -> Run {
    let mut net = Net::new(NODES, 11, false, |c| c.handover = handover);
    net.bootstrap_all();
    let q = net.nodes[1]
        .start(
            net.now,
            Request::PutImmutable {
                value: VALUE.to_vec(),
            },
        )
        .expect("put");
    let target = match net.wait(1, q).outcome {
        Outcome::Stored {
            target, stored_at, ..
        } => {
            assert!(stored_at.len() >= 6, "the put reached {}", stored_at.len());
            target
        }
        other => panic!("expected Stored, got {other:?}"),
    };
    let holds = |net: &Net, i: usize| {
        net.nodes[i]
            .store()
            .get_item(&target)
            .expect("store")
            .is_some()
    };
    let holders: Vec<usize> = (0..NODES).filter(|&i| holds(&net, i)).collect();
    let handed = |net: &Net| -> u64 { net.nodes.iter().map(|node| node.stats().handovers).sum() };
    let before = handed(&net);

    let mut config = Config::with_seed(4242);
    config.id_policy = IdPolicy::Fixed(newcomer(target));
    config.handover = handover;
    let n = net.add_node(config, false);
    let q = net.nodes[n]
        .start(
            net.now,
            Request::Bootstrap {
                seeds: vec![net.addrs[0]],
            },
        )
        .expect("bootstrap");
    net.wait(n, q);
    // The nodes it queried ping it back, it enters their tables, the holders act.
    net.run_for(Duration::from_secs(60));
    let newcomer_holds = holds(&net, n);
    let handovers = handed(&net) - before;

    for &i in &holders {
        net.alive[i] = false;
    }
    let getter = (0..NODES)
        .find(|i| !holders.contains(i))
        .expect("a node that never held the item");
    let q = net.nodes[getter]
        .start(net.now, Request::GetImmutable { target })
        .expect("get");
    let found = match net.wait(getter, q).outcome {
        Outcome::Immutable { value } => value,
        other => panic!("expected Immutable, got {other:?}"),
    };
    Run {
        holders: holders.len(),
        newcomer_holds,
        handovers,
        found,
    }
}

/// The id next to `target`: closer to it than any other node can be.
fn next_to(target: Id) -> Id {
    let mut b = target.0;
    b[19] ^= 1;
    Id(b)
}

/// The id farthest from `target`.
fn opposite(target: Id) -> Id {
    let mut b = target.0;
    for x in b.iter_mut() {
        *x = !*x;
    }
    Id(b)
}

#[test]
fn an_item_outlives_its_first_holders() {
    let r = run(true, next_to);
    assert!(r.newcomer_holds, "{r:?}");
    // Every holder is behind the newcomer; the one just behind puts the item, the
    // others (staggered) find it there and put nothing (two puts if one was still
    // on its way when the next holder asked).
    assert!((1..=2).contains(&r.handovers), "{r:?}");
    assert_eq!(r.found.as_deref(), Some(VALUE), "{r:?}");
}

#[test]
fn without_handover_the_item_dies_with_its_holders() {
    let r = run(false, next_to);
    assert!(r.holders >= 6, "{r:?}");
    assert!(!r.newcomer_holds, "{r:?}");
    assert_eq!(r.handovers, 0, "{r:?}");
    assert_eq!(r.found, None, "{r:?}");
}

#[test]
fn a_newcomer_farther_than_every_holder_is_given_nothing() {
    let r = run(true, opposite);
    assert!(!r.newcomer_holds, "{r:?}");
    assert_eq!(r.handovers, 0, "{r:?}");
}
