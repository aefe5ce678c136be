//! `EgressDelay` holds what a transport sends for its delay and never less, keeps the
//! order of a batch, and leaves receiving alone: the stand-in for netem in testnets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_net_udp::UdpTransport;
use dht_node::testing::EgressDelay;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn datagrams_leave_after_the_delay_in_order() {
    let delay = Duration::from_millis(300);
    let sender = EgressDelay::new(UdpTransport::bind(&[loopback()]).expect("bind"), delay);
    let receiver = UdpTransport::bind(&[loopback()]).expect("bind");
    let to = receiver.local_addrs()[0];
    let started = Instant::now();
    sender
        .send_batch(&[
            OutDatagram {
                to,
                payload: b"one",
            },
            OutDatagram {
                to,
                payload: b"two",
            },
        ])
        .await
        .expect("send");
    // send_batch returned at once; nothing may arrive before the delay is over.
    let mut slots: Vec<RecvSlot> = (0..4).map(|_| RecvSlot::new()).collect();
    let early = tokio::time::timeout(delay / 2, receiver.recv_batch(&mut slots)).await;
    assert!(early.is_err(), "a datagram arrived before its delay");
    let mut got = Vec::new();
    while got.len() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(10), receiver.recv_batch(&mut slots))
            .await
            .expect("the delayed datagrams arrive")
            .expect("recv");
        got.extend(slots[..n].iter().map(|s| s.payload().to_vec()));
    }
    assert!(
        started.elapsed() >= delay,
        "arrived after {:?}",
        started.elapsed()
    );
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    // Receiving through the wrapper is not delayed.
    let back = UdpTransport::bind(&[loopback()]).expect("bind");
    back.send_batch(&[OutDatagram {
        to: sender.local_addrs()[0],
        payload: b"back",
    }])
    .await
    .expect("send");
    let n = tokio::time::timeout(delay / 2, sender.recv_batch(&mut slots))
        .await
        .expect("receiving is not delayed")
        .expect("recv");
    assert_eq!(slots[..n][0].payload(), b"back");
}
