//! A peer killed and started again at its address with its key (a crash, then the same
//! key file), on loopback: what is sent to it while it is down and right after it is
//! back arrives, at once, without waiting for the dead connection to be given up.
//!
//! Each transport runs on a runtime of its own, so that a crash can be what SIGKILL is:
//! the runtime stops with every task unpolled (no CONNECTION_CLOSE leaves), and only
//! then is the transport dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_net_quic::{generate_key, QuicConfig, QuicTransport};
use ed25519_dalek::SigningKey;
use tokio::runtime::Runtime;

/// A KRPC query (ping): a live peer answers it at once.
fn ping(t: &[u8; 2]) -> Vec<u8> {
    let mut q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:".to_vec();
    q.extend_from_slice(t);
    q.extend_from_slice(b"1:y1:qe");
    q
}

struct Peer {
    rt: Runtime,
    t: QuicTransport,
}

impl Peer {
    fn start(addr: SocketAddr, key: SigningKey) -> Peer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let t = {
            let _in = rt.enter();
            QuicTransport::bind(&[addr], key, QuicConfig::default()).expect("bind")
        };
        Peer { rt, t }
    }

    fn addr(&self) -> SocketAddr {
        self.t.local_addrs()[0]
    }

    fn send(&self, to: SocketAddr, payload: &[u8]) {
        self.rt
            .block_on(self.t.send_batch(&[OutDatagram { to, payload }]))
            .expect("send_batch");
    }

    /// The messages received within `within`, until `n` have arrived.
    fn recv(&self, n: usize, within: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + within;
        let mut slots: Vec<RecvSlot> = (0..8).map(|_| RecvSlot::new()).collect();
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = self.rt.block_on(async {
                tokio::time::timeout(left, self.t.recv_batch(&mut slots)).await
            });
            match batch {
                Ok(k) => got.extend(
                    slots[..k.expect("recv_batch")]
                        .iter()
                        .map(|s| s.payload().to_vec()),
                ),
                Err(_) => break,
            }
        }
        got
    }

    /// Ends as SIGKILL would: nothing more is sent, and the port is free again.
    fn crash(self) {
        let Peer { rt, t } = self;
        drop(rt);
        drop(t);
    }
}

/// Without stateless resets that outlive the process, the sender keeps its dead
/// connection until 1.5 s of sending into silence, and loses what it sends meanwhile;
/// without sending again what a reset connection swallowed, the message that drew the
/// reset (and any sent while the peer was down) is lost.
#[test]
fn messages_to_a_peer_restarted_with_its_key_arrive_at_once() {
    let key = generate_key();
    let b = Peer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), key.clone());
    let at = b.addr();
    let a = Peer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), generate_key());
    a.send(at, b"before the crash");
    assert_eq!(
        b.recv(1, Duration::from_secs(10)),
        vec![b"before the crash".to_vec()]
    );
    // Everything acknowledged: the connection is idle, as a cached one between requests.
    std::thread::sleep(Duration::from_millis(100));

    b.crash();
    // Queries: sent again on the new connection (a reply would be useless to the new
    // process, which never asked).
    a.send(at, &ping(b"dd"));
    std::thread::sleep(Duration::from_millis(20));
    let b = Peer::start(at, key);
    let sent = Instant::now();
    a.send(at, &ping(b"rr"));
    let mut got = b.recv(2, Duration::from_secs(1));
    let took = sent.elapsed();
    got.sort();
    assert_eq!(
        got,
        vec![ping(b"dd"), ping(b"rr")],
        "after {took:?}: {:?}",
        a.t.stats()
    );
    // The connection the restarted peer reset was replaced, and serves both ways.
    a.send(at, b"later");
    assert_eq!(b.recv(1, Duration::from_secs(1)), vec![b"later".to_vec()]);
    b.send(a.addr(), b"back");
    assert_eq!(a.recv(1, Duration::from_secs(1)), vec![b"back".to_vec()]);
    let s = a.t.stats();
    // The ping sent while it was down, and the one that drew the reset unless a probe
    // of quinn's drew it first.
    assert_eq!(s.peer_resets, 1, "{s:?}");
    assert!((1..=2).contains(&s.resent), "{s:?}");
    assert_eq!(s.handshakes_out, 2, "{s:?}");
}

/// A peer restarted with a new key (no data dir) cannot reset its predecessor's
/// connections: the sender finds it by its silence after a query, within a bound that
/// follows the round trip (about 100 ms on loopback), without sending anything more,
/// and sends what the silence swallowed on a new connection. Before, silence was
/// judged only when the next message went out, and only after 1.5 s.
#[test]
fn a_message_to_a_peer_restarted_with_a_new_key_arrives_within_its_silence_bound() {
    let b = Peer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), generate_key());
    let at = b.addr();
    let a = Peer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), generate_key());
    // Not a query: a peer slow to acknowledge it is no reason to close the connection.
    a.send(at, b"before the crash");
    assert_eq!(
        b.recv(1, Duration::from_secs(10)),
        vec![b"before the crash".to_vec()]
    );
    std::thread::sleep(Duration::from_millis(100));

    b.crash();
    let b = Peer::start(at, generate_key());
    let sent = Instant::now();
    a.send(at, &ping(b"bb"));
    let got = b.recv(1, Duration::from_secs(1));
    let took = sent.elapsed();
    assert_eq!(got, vec![ping(b"bb")], "after {took:?}: {:?}", a.t.stats());
    let s = a.t.stats();
    assert_eq!(
        (s.peer_resets, s.silent_closed, s.resent, s.handshakes_out),
        (0, 1, 1, 2),
        "{s:?}"
    );
    eprintln!("delivered {took:?} after the send");
}
