//! The checks of the store contract, one function each.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::id::{Id, NodeInfo, ID_LEN};
use crate::store::{RoutingSnapshot, SnapshotNode, Store, StoreCounts, StoredPeer};

use super::{id, immutable, mutable, ok, peer, v4, v6};

/// `get_item` of a target never stored is `None`, also next to stored items.
pub fn check_missing_item_is_none<S: Store>(store: &mut S) {
    assert_eq!(
        ok(store.get_item(&id(1)), "get_item"),
        None,
        "empty store returned an item"
    );
    ok(store.put_item(immutable(id(2), b"1:x", 10)), "put_item");
    assert_eq!(
        ok(store.get_item(&id(1)), "get_item"),
        None,
        "get_item of a missing target returned an item"
    );
    assert!(
        !ok(store.remove_item(&id(1)), "remove_item"),
        "remove_item of a missing target returned true"
    );
}

/// An immutable item comes back exactly as put.
pub fn check_immutable_item_round_trip<S: Store>(store: &mut S) {
    let item = immutable(id(7), b"12:Hello World!", 1_700_000_000_000);
    ok(store.put_item(item.clone()), "put_item");
    assert_eq!(
        ok(store.get_item(&id(7)), "get_item"),
        Some(item),
        "immutable item changed in the store"
    );
}

/// A mutable item comes back with key, signature, seq and salt exactly as put,
/// including extreme seq values, a 64-byte salt and an empty salt.
pub fn check_mutable_item_round_trip<S: Store>(store: &mut S) {
    let cases = [
        mutable(id(1), b"4:test", 5, i64::MIN, b"", 100),
        mutable(id(2), b"i-7e", 6, i64::MAX, &[0xff; 64], u64::MAX),
        mutable(id(3), b"le", 7, 0, b"salt", 0),
        mutable(id(4), &[b'x'; 1000], 8, -1, &[0; 1], 1),
    ];
    for item in &cases {
        ok(store.put_item(item.clone()), "put_item");
    }
    for item in &cases {
        assert_eq!(
            ok(store.get_item(&item.target), "get_item").as_ref(),
            Some(item),
            "mutable item under {} changed in the store",
            item.target
        );
    }
}

/// Putting under an existing target replaces the whole item (value, mutable part and
/// deadline), including a switch between mutable and immutable.
pub fn check_item_replace<S: Store>(store: &mut S) {
    let t = id(9);
    let first = mutable(t, b"1:a", 1, 1, b"s", 100);
    let second = mutable(t, b"1:b", 2, 2, b"", 50);
    let third = immutable(t, b"1:c", 500);
    for item in [first, second.clone(), third, second] {
        ok(store.put_item(item.clone()), "put_item");
        assert_eq!(
            ok(store.get_item(&t), "get_item"),
            Some(item),
            "put_item did not replace the item"
        );
        assert_eq!(
            ok(store.counts(), "counts").items,
            1,
            "replacing an item changed the item count"
        );
    }
}

/// `remove_item` removes exactly the named item and reports whether it was there.
pub fn check_item_remove<S: Store>(store: &mut S) {
    ok(store.put_item(immutable(id(1), b"1:a", 10)), "put_item");
    ok(store.put_item(immutable(id(2), b"1:b", 10)), "put_item");
    assert!(
        ok(store.remove_item(&id(1)), "remove_item"),
        "remove_item of a stored item returned false"
    );
    assert!(
        !ok(store.remove_item(&id(1)), "remove_item"),
        "second remove_item returned true"
    );
    assert_eq!(
        ok(store.get_item(&id(1)), "get_item"),
        None,
        "removed item still there"
    );
    assert!(
        ok(store.get_item(&id(2)), "get_item").is_some(),
        "remove_item removed another item"
    );
    assert_eq!(
        ok(store.counts(), "counts").items,
        1,
        "item count after remove"
    );
}

/// `put_peer` inserts; a re-put of the same address only changes its deadline.
pub fn check_put_peer_inserts_and_updates<S: Store>(store: &mut S) {
    let ih = id(3);
    let a = v4(10, 0, 0, 1, 6881);
    ok(store.put_peer(&ih, peer(a, 100)), "put_peer");
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        vec![peer(a, 100)],
        "peer after first put"
    );
    ok(store.put_peer(&ih, peer(a, 900)), "put_peer");
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        vec![peer(a, 900)],
        "re-put of the same address must update expires_at without duplicating"
    );
    ok(store.put_peer(&ih, peer(a, 50)), "put_peer");
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        vec![peer(a, 50)],
        "re-put with an earlier deadline must update expires_at too"
    );
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts {
            items: 0,
            info_hashes: 1,
            peers: 1
        },
        "counts after re-puts of one peer"
    );
    assert_eq!(
        ok(store.get_peers(&id(4)), "get_peers"),
        vec![],
        "peers of an unknown info_hash"
    );
}

/// `get_peers` is sorted by address whatever the insertion order.
pub fn check_get_peers_sorted_by_address<S: Store>(store: &mut S) {
    let ih = id(5);
    let addrs = [
        v6(0x2001, 9, 80),
        v4(192, 168, 1, 2, 1),
        v4(10, 0, 0, 1, 7000),
        v4(10, 0, 0, 1, 80),
        v6(0x2001, 1, 443),
        v4(255, 255, 255, 255, 65535),
        v4(1, 2, 3, 4, 5),
    ];
    for (i, a) in addrs.iter().enumerate() {
        ok(store.put_peer(&ih, peer(*a, 1000 + i as u64)), "put_peer");
    }
    let got: Vec<SocketAddr> = ok(store.get_peers(&ih), "get_peers")
        .iter()
        .map(|p| p.addr)
        .collect();
    let mut want = addrs.to_vec();
    want.sort();
    assert_eq!(got, want, "get_peers must be sorted by address");
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        ok(store.get_peers(&ih), "get_peers"),
        "get_peers order not stable"
    );
}

/// IPv4 and IPv6 peers live side by side, also on the same port and under one info_hash.
pub fn check_ipv4_and_ipv6_peers<S: Store>(store: &mut S) {
    let ih = id(6);
    let a4 = v4(127, 0, 0, 1, 6881);
    let a6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 6881));
    let mapped = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped(), 6881));
    let scoped = SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
        1,
        0,
        0,
    ));
    for a in [a6, mapped, a4, scoped] {
        ok(store.put_peer(&ih, peer(a, 77)), "put_peer");
    }
    let got = ok(store.get_peers(&ih), "get_peers");
    let mut want: Vec<StoredPeer> = [a4, a6, mapped, scoped]
        .iter()
        .map(|a| peer(*a, 77))
        .collect();
    want.sort_by_key(|p| p.addr);
    assert_eq!(
        got, want,
        "IPv4 and IPv6 peers (loopback, v4-mapped, link-local)"
    );
    assert_eq!(
        ok(store.counts(), "counts").peers,
        4,
        "peer count with both families"
    );
}

/// `remove_peer` removes one address and reports whether it was there; removing the
/// last peer of an info_hash drops the info_hash from the counts.
pub fn check_remove_peer<S: Store>(store: &mut S) {
    let ih = id(8);
    let a = v4(10, 0, 0, 1, 1);
    let b = v4(10, 0, 0, 2, 1);
    ok(store.put_peer(&ih, peer(a, 10)), "put_peer");
    ok(store.put_peer(&ih, peer(b, 10)), "put_peer");
    assert!(
        !ok(store.remove_peer(&id(99), &a), "remove_peer"),
        "remove_peer under another info_hash returned true"
    );
    assert!(
        !ok(store.remove_peer(&ih, &v4(10, 0, 0, 3, 1)), "remove_peer"),
        "remove_peer of a missing address returned true"
    );
    assert!(
        ok(store.remove_peer(&ih, &a), "remove_peer"),
        "remove_peer of a stored peer returned false"
    );
    assert!(
        !ok(store.remove_peer(&ih, &a), "remove_peer"),
        "second remove_peer returned true"
    );
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        vec![peer(b, 10)],
        "peers after remove_peer"
    );
    assert!(
        ok(store.remove_peer(&ih, &b), "remove_peer"),
        "remove_peer of the last peer returned false"
    );
    assert_eq!(
        ok(store.get_peers(&ih), "get_peers"),
        vec![],
        "peers after removing all"
    );
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts::default(),
        "an info_hash without peers must not be counted"
    );
    assert_eq!(
        ok(store.info_hashes(&Id::ZERO, 10), "info_hashes"),
        vec![],
        "info_hash without peers listed"
    );
}

/// `info_hashes(start, max)` lists info_hashes with peers ascending from `start`
/// (inclusive), wrapping around, at most `max` of them.
pub fn check_info_hashes_order_and_wrap<S: Store>(store: &mut S) {
    let hashes = [id(0x10), id(0x80), id(0x40), id(0xf0), id(0x20)];
    for (i, ih) in hashes.iter().enumerate() {
        ok(
            store.put_peer(ih, peer(v4(10, 0, 0, i as u8, 1), 10)),
            "put_peer",
        );
    }
    let ih = |b: u8| id(b);
    let cases: [(Id, usize, Vec<Id>); 9] = [
        (
            Id::ZERO,
            10,
            vec![ih(0x10), ih(0x20), ih(0x40), ih(0x80), ih(0xf0)],
        ),
        (Id::ZERO, 3, vec![ih(0x10), ih(0x20), ih(0x40)]),
        (
            ih(0x40),
            10,
            vec![ih(0x40), ih(0x80), ih(0xf0), ih(0x10), ih(0x20)],
        ),
        (ih(0x41), 3, vec![ih(0x80), ih(0xf0), ih(0x10)]),
        (ih(0xf0), 2, vec![ih(0xf0), ih(0x10)]),
        (
            Id([0xff; ID_LEN]),
            10,
            vec![ih(0x10), ih(0x20), ih(0x40), ih(0x80), ih(0xf0)],
        ),
        (ih(0x20), 1, vec![ih(0x20)]),
        (ih(0x20), 0, vec![]),
        (
            ih(0x20),
            usize::MAX,
            vec![ih(0x20), ih(0x40), ih(0x80), ih(0xf0), ih(0x10)],
        ),
    ];
    for (start, max, want) in cases {
        assert_eq!(
            ok(store.info_hashes(&start, max), "info_hashes"),
            want,
            "info_hashes(start {start}, max {max})"
        );
    }
    // A second peer must not list its info_hash twice.
    ok(
        store.put_peer(&ih(0x40), peer(v4(10, 9, 9, 9, 1), 10)),
        "put_peer",
    );
    assert_eq!(
        ok(store.info_hashes(&Id::ZERO, 10), "info_hashes").len(),
        5,
        "info_hash listed once per peer"
    );
}

/// `item_targets` lists item targets in ascending order from `start` (included), at
/// most `max`, without wrapping around, and not a removed one.
pub fn check_item_targets_order<S: Store>(store: &mut S) {
    for (i, b) in [0x10u8, 0x80, 0x40, 0xf0, 0x20].into_iter().enumerate() {
        ok(
            store.put_item(immutable(id(b), format!("1:{i}").as_bytes(), 10)),
            "put_item",
        );
    }
    let t = |b: u8| id(b);
    let cases: [(Id, usize, Vec<Id>); 6] = [
        (
            Id::ZERO,
            10,
            vec![t(0x10), t(0x20), t(0x40), t(0x80), t(0xf0)],
        ),
        (Id::ZERO, 2, vec![t(0x10), t(0x20)]),
        (t(0x40), 10, vec![t(0x40), t(0x80), t(0xf0)]),
        (t(0x41), 1, vec![t(0x80)]),
        (t(0xf1), 10, vec![]),
        (t(0x20), 0, vec![]),
    ];
    for (start, max, want) in cases {
        assert_eq!(
            ok(store.item_targets(&start, max), "item_targets"),
            want,
            "item_targets(start {start}, max {max})"
        );
    }
    ok(store.remove_item(&t(0x40)), "remove_item");
    assert_eq!(
        ok(store.item_targets(&t(0x21), 10), "item_targets"),
        vec![t(0x80), t(0xf0)],
        "a removed item is not listed"
    );
}

/// `counts` is exact after a mixed sequence of puts, re-puts and removals.
pub fn check_counts_after_mixed_sequence<S: Store>(store: &mut S) {
    for i in 0..10u8 {
        ok(
            store.put_item(immutable(id(i), &[b'v', i], 100)),
            "put_item",
        );
    }
    ok(
        store.put_item(mutable(id(3), b"1:m", 1, 4, b"", 100)),
        "put_item",
    );
    ok(store.remove_item(&id(0)).map(|_| ()), "remove_item");
    ok(store.remove_item(&id(200)).map(|_| ()), "remove_item");
    for h in 0..4u8 {
        for p in 0..=h {
            ok(
                store.put_peer(&id(h), peer(v4(10, 0, h, p, 1), 100)),
                "put_peer",
            );
        }
    }
    ok(
        store.put_peer(&id(3), peer(v4(10, 0, 3, 0, 1), 200)),
        "put_peer",
    );
    ok(
        store.remove_peer(&id(0), &v4(10, 0, 0, 0, 1)).map(|_| ()),
        "remove_peer",
    );
    ok(
        store.remove_peer(&id(2), &v4(10, 0, 2, 1, 1)).map(|_| ()),
        "remove_peer",
    );
    ok(store.put_peer(&id(9), peer(v6(1, 2, 3), 100)), "put_peer");
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts {
            items: 9,
            info_hashes: 4,
            peers: 2 + 2 + 4 + 1
        },
        "counts after a mixed sequence"
    );
}

/// `expire(now)` removes exactly the items whose deadline is at or before `now`.
pub fn check_expire_items<S: Store>(store: &mut S) {
    let deadlines = [0u64, 99, 100, 101, 5000, u64::MAX];
    for (i, d) in deadlines.iter().enumerate() {
        ok(
            store.put_item(immutable(id(i as u8), b"1:x", *d)),
            "put_item",
        );
    }
    assert_eq!(
        ok(store.expire(100), "expire"),
        (3, 0),
        "expire(100) counts"
    );
    for (i, d) in deadlines.iter().enumerate() {
        let there = ok(store.get_item(&id(i as u8)), "get_item").is_some();
        assert_eq!(
            there,
            *d > 100,
            "item with expires_at {d} after expire(100)"
        );
    }
    assert_eq!(
        ok(store.expire(100), "expire"),
        (0, 0),
        "a repeated expire must remove nothing"
    );
    assert_eq!(
        ok(store.expire(0), "expire"),
        (0, 0),
        "an earlier expire must remove nothing"
    );
    assert_eq!(
        ok(store.counts(), "counts").items,
        3,
        "item count after expire"
    );
    assert_eq!(
        ok(store.expire(u64::MAX), "expire"),
        (3, 0),
        "expire(u64::MAX) removes the rest"
    );
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts::default(),
        "counts after expiring everything"
    );
}

/// `expire(now)` removes exactly the peers whose deadline is at or before `now`, and
/// info_hashes left without peers disappear from `info_hashes` and `counts`.
pub fn check_expire_peers<S: Store>(store: &mut S) {
    let a = v4(10, 0, 0, 1, 1);
    let b = v6(0x2001, 1, 1);
    ok(store.put_peer(&id(1), peer(a, 50)), "put_peer");
    ok(store.put_peer(&id(1), peer(b, 51)), "put_peer");
    ok(store.put_peer(&id(2), peer(a, 10)), "put_peer");
    ok(store.put_peer(&id(2), peer(b, 50)), "put_peer");
    ok(store.put_peer(&id(3), peer(a, 1000)), "put_peer");
    ok(store.put_item(immutable(id(1), b"1:x", 50)), "put_item");
    assert_eq!(ok(store.expire(50), "expire"), (1, 3), "expire(50) counts");
    assert_eq!(
        ok(store.get_peers(&id(1)), "get_peers"),
        vec![peer(b, 51)],
        "peers of id(1) after expire"
    );
    assert_eq!(
        ok(store.get_peers(&id(2)), "get_peers"),
        vec![],
        "peers of id(2) after expire"
    );
    assert_eq!(
        ok(store.info_hashes(&Id::ZERO, 10), "info_hashes"),
        vec![id(1), id(3)],
        "an info_hash whose peers all expired must leave info_hashes"
    );
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts {
            items: 0,
            info_hashes: 2,
            peers: 2
        },
        "counts after expire"
    );
}

/// Re-putting replaces the deadline that `expire` honours, in both directions.
pub fn check_expire_follows_refreshed_deadlines<S: Store>(store: &mut S) {
    let a = v4(10, 0, 0, 1, 1);
    ok(store.put_item(immutable(id(1), b"1:x", 100)), "put_item");
    ok(store.put_item(immutable(id(1), b"1:x", 1000)), "put_item");
    ok(store.put_item(immutable(id(2), b"1:y", 1000)), "put_item");
    ok(store.put_item(immutable(id(2), b"1:y", 100)), "put_item");
    ok(store.put_peer(&id(1), peer(a, 100)), "put_peer");
    ok(store.put_peer(&id(1), peer(a, 1000)), "put_peer");
    ok(store.put_peer(&id(2), peer(a, 1000)), "put_peer");
    ok(store.put_peer(&id(2), peer(a, 100)), "put_peer");
    assert_eq!(
        ok(store.expire(500), "expire"),
        (1, 1),
        "expire(500) after refreshes"
    );
    assert!(
        ok(store.get_item(&id(1)), "get_item").is_some(),
        "item refreshed to a later deadline expired early"
    );
    assert_eq!(
        ok(store.get_item(&id(2)), "get_item"),
        None,
        "item moved to an earlier deadline survived"
    );
    assert_eq!(
        ok(store.get_peers(&id(1)), "get_peers"),
        vec![peer(a, 1000)],
        "refreshed peer"
    );
    assert_eq!(
        ok(store.get_peers(&id(2)), "get_peers"),
        vec![],
        "peer moved to an earlier deadline survived"
    );
    // A removed entry must not be expired (counted) later.
    ok(store.remove_item(&id(1)).map(|_| ()), "remove_item");
    ok(store.remove_peer(&id(1), &a).map(|_| ()), "remove_peer");
    assert_eq!(
        ok(store.expire(u64::MAX), "expire"),
        (0, 0),
        "expire counted removed entries"
    );
}

/// `load_routing` is `None` before any save, returns exactly what was saved, and a
/// second save replaces the first.
pub fn check_routing_round_trip<S: Store>(store: &mut S) {
    assert_eq!(
        ok(store.load_routing(), "load_routing"),
        None,
        "routing snapshot before any save"
    );
    let first = RoutingSnapshot {
        node_id: Some(id(0xaa)),
        nodes: vec![
            SnapshotNode {
                node: NodeInfo {
                    id: id(1),
                    addr: v4(127, 0, 0, 1, 6881),
                },
                last_seen: 1_700_000_000_000,
            },
            SnapshotNode {
                node: NodeInfo {
                    id: id(2),
                    addr: v6(0x2001, 5, 6882),
                },
                last_seen: 0,
            },
            SnapshotNode {
                node: NodeInfo {
                    id: Id([0xff; ID_LEN]),
                    addr: v4(8, 8, 8, 8, 1),
                },
                last_seen: u64::MAX,
            },
        ],
    };
    ok(store.save_routing(&first), "save_routing");
    assert_eq!(
        ok(store.load_routing(), "load_routing"),
        Some(first.clone()),
        "routing snapshot round trip"
    );
    let second = RoutingSnapshot {
        node_id: Some(id(0xbb)),
        nodes: vec![SnapshotNode {
            node: NodeInfo {
                id: id(3),
                addr: v4(10, 1, 1, 1, 2),
            },
            last_seen: 5,
        }],
    };
    ok(store.save_routing(&second), "save_routing");
    assert_eq!(
        ok(store.load_routing(), "load_routing"),
        Some(second),
        "a second save must replace the first"
    );
    let empty = RoutingSnapshot::default();
    ok(store.save_routing(&empty), "save_routing");
    assert_eq!(
        ok(store.load_routing(), "load_routing"),
        Some(empty),
        "an empty snapshot is still a snapshot"
    );
    ok(store.flush(), "flush");
    assert_eq!(
        ok(store.load_routing(), "load_routing"),
        Some(RoutingSnapshot::default()),
        "snapshot after flush"
    );
}

/// `flush` succeeds on an empty store and after writes, and changes nothing.
pub fn check_flush<S: Store>(store: &mut S) {
    ok(store.flush(), "flush of an empty store");
    ok(store.put_item(immutable(id(1), b"1:x", 10)), "put_item");
    ok(
        store.put_peer(&id(1), peer(v4(10, 0, 0, 1, 1), 10)),
        "put_peer",
    );
    ok(store.flush(), "flush");
    ok(store.flush(), "second flush");
    assert_eq!(
        ok(store.counts(), "counts"),
        StoreCounts {
            items: 1,
            info_hashes: 1,
            peers: 1
        },
        "flush changed the contents"
    );
}
