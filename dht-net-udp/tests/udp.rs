//! `UdpTransport` on loopback only: batches both ways on each family, routing by
//! family on a dual-stack transport, bursts, oversize datagrams and bad input.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use dht_core::{OutDatagram, RecvSlot, Transport, RECV_BUF_LEN};
use dht_net_udp::UdpTransport;

const WAIT: Duration = Duration::from_secs(5);

fn v4_any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn v6_any_port() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

/// Binds on `[::1]:0`, or prints why the IPv6 test is skipped.
fn bind_v6(test: &str) -> Option<UdpTransport> {
    match UdpTransport::bind(&[v6_any_port()]) {
        Ok(t) => Some(t),
        Err(e) => {
            println!("{test}: skipped, ::1 is not available here ({e})");
            None
        }
    }
}

fn only_addr(t: &UdpTransport) -> SocketAddr {
    let addrs = t.local_addrs();
    assert_eq!(addrs.len(), 1, "one family bound: {addrs:?}");
    assert_ne!(addrs[0].port(), 0, "port 0 must be resolved");
    addrs[0]
}

/// Receives until `n` datagrams have arrived (failing after `WAIT`); returns them in
/// arrival order and the largest number a single `recv_batch` call returned.
async fn recv_n(
    t: &UdpTransport,
    n: usize,
    slots: &mut [RecvSlot],
) -> (Vec<(SocketAddr, Vec<u8>)>, usize) {
    let mut got = Vec::new();
    let mut most = 0;
    while got.len() < n {
        let k = tokio::time::timeout(WAIT, t.recv_batch(slots))
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} datagrams", got.len()))
            .expect("recv_batch");
        assert!(k >= 1 && k <= slots.len(), "recv_batch returned {k}");
        most = most.max(k);
        got.extend(slots[..k].iter().map(|s| (s.from, s.payload().to_vec())));
    }
    assert_eq!(got.len(), n, "more datagrams than sent");
    (got, most)
}

fn slots(n: usize) -> Vec<RecvSlot> {
    (0..n).map(|_| RecvSlot::new()).collect()
}

async fn exchange_both_ways(a: UdpTransport, b: UdpTransport) {
    let (aa, ba) = (only_addr(&a), only_addr(&b));
    let mut slots = slots(8);

    let out: Vec<OutDatagram<'_>> = [&b"ping-1"[..], b"ping-2", b"ping-3"]
        .iter()
        .map(|p| OutDatagram { to: ba, payload: p })
        .collect();
    a.send_batch(&out).await.expect("send a -> b");
    let (got, _) = recv_n(&b, 3, &mut slots).await;
    let mut payloads: Vec<Vec<u8>> = got.iter().map(|(_, p)| p.clone()).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        vec![b"ping-1".to_vec(), b"ping-2".to_vec(), b"ping-3".to_vec()]
    );
    assert!(
        got.iter().all(|(from, _)| *from == aa),
        "source must be a's address: {got:?}"
    );

    let out = [
        OutDatagram {
            to: aa,
            payload: b"pong-1",
        },
        OutDatagram {
            to: aa,
            payload: b"pong-2",
        },
    ];
    b.send_batch(&out).await.expect("send b -> a");
    let (got, _) = recv_n(&a, 2, &mut slots).await;
    let set: BTreeSet<_> = got.into_iter().collect();
    assert_eq!(
        set,
        BTreeSet::from([(ba, b"pong-1".to_vec()), (ba, b"pong-2".to_vec())])
    );
}

#[tokio::test]
async fn ipv4_batches_both_ways() {
    let a = UdpTransport::bind(&[v4_any_port()]).expect("bind a");
    let b = UdpTransport::bind(&[v4_any_port()]).expect("bind b");
    exchange_both_ways(a, b).await;
}

#[tokio::test]
async fn ipv6_batches_both_ways() {
    let Some(a) = bind_v6("ipv6_batches_both_ways") else {
        return;
    };
    let Some(b) = bind_v6("ipv6_batches_both_ways") else {
        return;
    };
    exchange_both_ways(a, b).await;
}

#[tokio::test]
async fn dual_stack_routes_each_datagram_by_family() {
    let Some(p6) = bind_v6("dual_stack_routes_each_datagram_by_family") else {
        return;
    };
    let dual = UdpTransport::bind(&[v4_any_port(), v6_any_port()]).expect("bind dual");
    let p4 = UdpTransport::bind(&[v4_any_port()]).expect("bind p4");
    let locals = dual.local_addrs();
    assert_eq!(locals.len(), 2, "{locals:?}");
    assert!(
        locals[0].is_ipv4() && locals[1].is_ipv6(),
        "IPv4 first: {locals:?}"
    );
    assert!(locals.iter().all(|a| a.port() != 0), "{locals:?}");
    let (d4, d6) = (locals[0], locals[1]);
    let (a4, a6) = (only_addr(&p4), only_addr(&p6));

    let out = [
        OutDatagram {
            to: a4,
            payload: b"four-a",
        },
        OutDatagram {
            to: a6,
            payload: b"six-a",
        },
        OutDatagram {
            to: a4,
            payload: b"four-b",
        },
        OutDatagram {
            to: a6,
            payload: b"six-b",
        },
    ];
    dual.send_batch(&out).await.expect("dual send");
    let mut slots = slots(8);
    let (got4, _) = recv_n(&p4, 2, &mut slots).await;
    let (got6, _) = recv_n(&p6, 2, &mut slots).await;
    assert_eq!(
        got4.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([(d4, b"four-a".to_vec()), (d4, b"four-b".to_vec())])
    );
    assert_eq!(
        got6.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([(d6, b"six-a".to_vec()), (d6, b"six-b".to_vec())])
    );

    p4.send_batch(&[OutDatagram {
        to: d4,
        payload: b"to-dual-4",
    }])
    .await
    .expect("p4 send");
    p6.send_batch(&[OutDatagram {
        to: d6,
        payload: b"to-dual-6",
    }])
    .await
    .expect("p6 send");
    let (got, _) = recv_n(&dual, 2, &mut slots).await;
    assert_eq!(
        got.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([(a4, b"to-dual-4".to_vec()), (a6, b"to-dual-6".to_vec())])
    );

    // A family without a socket drops the datagram and keeps going.
    p4.send_batch(&[
        OutDatagram {
            to: a6,
            payload: b"nowhere",
        },
        OutDatagram {
            to: d4,
            payload: b"after",
        },
    ])
    .await
    .expect("a datagram for a missing family is not an error");
    let (got, _) = recv_n(&dual, 1, &mut slots).await;
    assert_eq!(got, vec![(a4, b"after".to_vec())]);
}

#[tokio::test]
async fn burst_of_1000_arrives_several_per_call() {
    let tx = UdpTransport::bind(&[v4_any_port()]).expect("bind tx");
    let rx = UdpTransport::bind(&[v4_any_port()]).expect("bind rx");
    let (txa, rxa) = (only_addr(&tx), only_addr(&rx));
    let payloads: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            // Realistic KRPC-reply sizes, so the kernel buffer is exercised too.
            let mut p = vec![b'x'; 200 + (i as usize % 300)];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        })
        .collect();
    let mut slots = slots(64);
    let mut seen = BTreeSet::new();
    let mut most = 0;
    // Chunks of 100 stay well inside even an uncapped default receive buffer, so
    // nothing is dropped by the kernel and the test does not depend on sysctls.
    for chunk in payloads.chunks(100) {
        let out: Vec<OutDatagram<'_>> = chunk
            .iter()
            .map(|p| OutDatagram {
                to: rxa,
                payload: p,
            })
            .collect();
        tx.send_batch(&out).await.expect("send burst");
        let (got, m) = recv_n(&rx, chunk.len(), &mut slots).await;
        most = most.max(m);
        for (from, p) in got {
            assert_eq!(from, txa);
            let i = u32::from_be_bytes(p[..4].try_into().expect("4 bytes"));
            assert_eq!(p, payloads[i as usize], "datagram {i} changed");
            assert!(seen.insert(i), "datagram {i} twice");
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(most > 1, "recv_batch never returned more than one datagram");
}

#[tokio::test]
async fn datagrams_that_may_be_truncated_are_dropped() {
    let tx = UdpTransport::bind(&[v4_any_port()]).expect("bind tx");
    let rx = UdpTransport::bind(&[v4_any_port()]).expect("bind rx");
    let rxa = only_addr(&rx);
    let big = vec![b'b'; 4000];
    let exact = vec![b'e'; RECV_BUF_LEN];
    let largest_ok = vec![b'k'; RECV_BUF_LEN - 1];
    tx.send_batch(&[
        OutDatagram {
            to: rxa,
            payload: &big,
        },
        OutDatagram {
            to: rxa,
            payload: &exact,
        },
        OutDatagram {
            to: rxa,
            payload: &largest_ok,
        },
        OutDatagram {
            to: rxa,
            payload: b"small",
        },
    ])
    .await
    .expect("send");
    let mut slots = slots(4);
    let (got, _) = recv_n(&rx, 2, &mut slots).await;
    let payloads: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    assert_eq!(payloads, vec![largest_ok, b"small".to_vec()]);
}

#[tokio::test]
async fn unreachable_destinations_do_not_fail_the_batch() {
    let a = UdpTransport::bind(&[v4_any_port()]).expect("bind a");
    let b = UdpTransport::bind(&[v4_any_port()]).expect("bind b");
    let (aa, ba) = (only_addr(&a), only_addr(&b));
    // A loopback port with nobody on it: its ICMP port-unreachable may come back to `a`.
    let closed = {
        let s = std::net::UdpSocket::bind(v4_any_port()).expect("bind probe");
        s.local_addr().expect("probe addr")
    };
    let port_zero = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    a.send_batch(&[
        OutDatagram {
            to: closed,
            payload: b"x",
        },
        OutDatagram {
            to: port_zero,
            payload: b"y",
        },
        OutDatagram {
            to: ba,
            payload: b"z",
        },
    ])
    .await
    .expect("per-datagram failures are skipped");
    let mut slots = slots(4);
    let (got, _) = recv_n(&b, 1, &mut slots).await;
    assert_eq!(got, vec![(aa, b"z".to_vec())]);
    b.send_batch(&[OutDatagram {
        to: aa,
        payload: b"back",
    }])
    .await
    .expect("send back");
    let (got, _) = recv_n(&a, 1, &mut slots).await;
    assert_eq!(got, vec![(ba, b"back".to_vec())]);
}

#[tokio::test]
async fn recv_into_no_slots_returns_zero() {
    let a = UdpTransport::bind(&[v4_any_port()]).expect("bind");
    let n = tokio::time::timeout(WAIT, a.recv_batch(&mut []))
        .await
        .expect("no wait")
        .expect("recv");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn bind_rejects_bad_address_lists() {
    let err = UdpTransport::bind(&[]).expect_err("empty list");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = UdpTransport::bind(&[v4_any_port(), v4_any_port()]).expect_err("two IPv4 addresses");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn bind_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(UdpTransport::bind(&[v4_any_port()]).is_err());
}

/// BEP 32 keeps the families apart: the IPv6 socket must be IPv6-only, or it would
/// also hold the IPv4 port and a second bind of that port for IPv4 would fail.
/// (Wildcard binds, but nothing is sent.)
#[tokio::test]
async fn ipv6_socket_is_ipv6_only() {
    let wild6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let t6 = match UdpTransport::bind(&[wild6]) {
        Ok(t) => t,
        Err(e) => {
            println!("ipv6_socket_is_ipv6_only: skipped, no IPv6 here ({e})");
            return;
        }
    };
    let port = only_addr(&t6).port();
    let t4 = UdpTransport::bind(&[SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))]);
    assert!(
        t4.is_ok(),
        "IPv4 bind of the IPv6 socket's port failed: {:?}",
        t4.err()
    );
}
