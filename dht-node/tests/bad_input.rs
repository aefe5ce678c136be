//! Bad input through a real UDP socket: the node answers with the right KRPC error or
//! stays silent, and keeps serving.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dht_core::krpc::{self, Body, Message, Method, PutArgs, Query};
use dht_core::MutableItem;
use dht_core::{Id, RECV_BUF_LEN};
use dht_node::{bencode_bytes, Dht};

struct Client {
    sock: UdpSocket,
    node: SocketAddr,
    id: Id,
}

impl Client {
    fn new(node: SocketAddr) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(400)))
            .expect("timeout");
        Client {
            sock,
            node,
            id: Id([0x42; 20]),
        }
    }

    fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, self.node).expect("send");
    }

    /// The next reply, or `None` after the read timeout. The node's own queries
    /// (it pings contacts it has just learned, us included) are skipped.
    fn recv(&self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            let m = krpc::decode(&buf[..n]).expect("the node sends well-formed KRPC");
            if !matches!(m.body, Body::Query(_)) {
                return Some(m);
            }
        }
    }

    fn query(&self, t: &[u8], method: Method) -> Option<Message> {
        let msg = Message::query(t.to_vec(), self.id, method);
        self.send(&msg.to_bytes());
        self.recv()
    }

    fn token_for(&self, target: Id) -> Vec<u8> {
        let reply = self
            .query(b"gt", Method::get(target))
            .expect("get answered");
        match reply.body {
            Body::Response(r) => r.token.expect("a get reply carries a token"),
            other => panic!("get answered with {other:?}"),
        }
    }

    fn put(&self, item: &MutableItem) -> Message {
        let token = self.token_for(item.target());
        self.query(
            b"pt",
            Method::Put(PutArgs::new(token, dht_core::Item::Mutable(item.clone()))),
        )
        .expect("put answered")
    }
}

fn error_code(m: &Message) -> Option<i64> {
    match &m.body {
        Body::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_errors_or_silence_and_the_node_keeps_serving() {
    let dht = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn()
        .expect("node");
    let node = dht.local_addrs()[0];

    tokio::task::spawn_blocking(move || {
        let c = Client::new(node);

        // Garbage without a transaction id: silence.
        c.send(b"hello, world");
        assert!(c.recv().is_none(), "garbage was answered");
        c.send(&[0xff; 64]);
        assert!(c.recv().is_none(), "binary garbage was answered");

        // Truncated bencode: silence (no complete `t` to answer under).
        c.send(b"d1:ad2:id20:aaaa");
        assert!(c.recv().is_none(), "truncated bencode was answered");

        // A query with a `t` but a malformed argument (a 3-byte id): 203 under that `t`.
        c.send(b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
        let reply = c.recv().expect("a malformed query with t is answered");
        assert_eq!(reply.transaction_id, b"xy");
        assert_eq!(error_code(&reply), Some(krpc::code::PROTOCOL));

        // An oversized datagram: dropped, never read as the complete message its first
        // RECV_BUF_LEN bytes would make. Its prefix is a whole valid ping (padded to
        // exactly the receive buffer with an unknown argument), so a transport that
        // let the OS cut it short would answer it.
        let oversized = oversized_ping(b"zz");
        assert!(oversized.len() > RECV_BUF_LEN);
        let prefix = &oversized[..RECV_BUF_LEN];
        assert!(
            matches!(
                krpc::decode(prefix).map(|m| m.body),
                Ok(Body::Query(Query {
                    method: Method::Ping,
                    ..
                }))
            ),
            "the prefix must be a complete ping for this check to mean anything"
        );
        c.send(&oversized);
        assert!(c.recv().is_none(), "an oversized datagram was answered");
        // The same ping one byte shorter than the buffer is a valid message and answered,
        // so the silence above is the size check and nothing else.
        let largest = ping_of_len(b"zy", RECV_BUF_LEN - 1);
        c.send(&largest);
        let reply = c
            .recv()
            .expect("a ping just under the receive buffer is answered");
        assert_eq!(reply.transaction_id, b"zy");

        // A mutable put with a bad signature: 206.
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let mut forged = MutableItem::sign(&key, b"", 1, &bencode_bytes(b"v"));
        forged.signature[0] ^= 1;
        assert_eq!(
            error_code(&c.put(&forged)),
            Some(krpc::code::INVALID_SIGNATURE)
        );

        // A stale seq: 302 once a newer item is stored.
        let newer = MutableItem::sign(&key, b"", 5, &bencode_bytes(b"five"));
        let ok = c.put(&newer);
        assert!(
            matches!(ok.body, Body::Response(_)),
            "valid put refused: {ok:?}"
        );
        let older = MutableItem::sign(&key, b"", 3, &bencode_bytes(b"three"));
        assert_eq!(error_code(&c.put(&older)), Some(krpc::code::SEQ_TOO_LOW));

        // An unknown method: 204.
        c.send(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:fuzz1:t2:uu1:y1:qe");
        let reply = c.recv().expect("unknown method answered");
        assert_eq!(error_code(&reply), Some(krpc::code::METHOD_UNKNOWN));

        // An error or a response sent to the node is never answered.
        c.send(b"d1:eli201e4:oopse1:t2:ee1:y1:ee");
        assert!(c.recv().is_none(), "an error was answered");

        // After all that, the node still serves.
        let pong = c.query(b"pi", Method::Ping).expect("ping answered");
        assert!(matches!(pong.body, Body::Response(_)), "{pong:?}");
        assert_eq!(pong.transaction_id, b"pi");
    })
    .await
    .expect("client thread");

    // And the runtime is still healthy through the handle.
    let info = dht.routing_table().await.expect("node alive");
    assert!(info.stats.malformed >= 3, "{:?}", info.stats);
    dht.shutdown().await.expect("shutdown");
}

/// A ping of exactly `len` bytes: `a` carries an unknown key whose string pads it.
fn ping_of_len(t: &[u8; 2], len: usize) -> Vec<u8> {
    let build = |pad: usize| {
        let mut m = b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaa3:pad".to_vec();
        m.extend_from_slice(format!("{pad}:").as_bytes());
        m.extend(std::iter::repeat_n(b'p', pad));
        m.extend_from_slice(b"e1:q4:ping1:t2:");
        m.extend_from_slice(t);
        m.extend_from_slice(b"1:y1:qe");
        m
    };
    // The length prefix's digits change with the pad; search the pad that fits.
    let pad = (0..len)
        .find(|&p| build(p).len() == len)
        .expect("a pad reaches every length this test uses");
    build(pad)
}

/// A complete ping exactly as long as the receive buffer, followed by more bytes: a
/// datagram that a receiver cutting at RECV_BUF_LEN would misread as that ping.
fn oversized_ping(t: &[u8; 2]) -> Vec<u8> {
    let mut m = ping_of_len(t, RECV_BUF_LEN);
    m.extend(std::iter::repeat_n(b'x', 3000));
    m
}
