//! `QuicTransport` on loopback only: both message paths in both directions with the
//! peer's key, IPv6, connection reuse, the LRU bound, size limits, and peers whose
//! certificates must be refused.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dht_core::{OutDatagram, RecvSlot, Transport, RECV_BUF_LEN};
use dht_net_quic::{generate_key, QuicConfig, QuicTransport, ALPN};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

const WAIT: Duration = Duration::from_secs(10);

fn v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn bind(addr: SocketAddr, cfg: QuicConfig) -> QuicTransport {
    QuicTransport::bind(&[addr], generate_key(), cfg).expect("bind")
}

fn addr_of(t: &QuicTransport) -> SocketAddr {
    let a = t.local_addrs();
    assert_eq!(a.len(), 1);
    assert_ne!(a[0].port(), 0);
    a[0]
}

/// Receives `n` messages: (from, key, payload).
async fn recv_n(t: &QuicTransport, n: usize) -> Vec<(SocketAddr, [u8; 32], Vec<u8>)> {
    let mut slots: Vec<RecvSlot> = (0..8).map(|_| RecvSlot::new()).collect();
    let mut got = Vec::new();
    while got.len() < n {
        let k = tokio::time::timeout(WAIT, t.recv_batch(&mut slots))
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} messages", got.len()))
            .expect("recv_batch");
        assert!(k >= 1);
        for s in &slots[..k] {
            let key = s.peer_key.expect("QUIC always reports the peer key");
            got.push((s.from, key, s.payload().to_vec()));
        }
    }
    got
}

async fn send(t: &QuicTransport, to: SocketAddr, payload: &[u8]) {
    t.send_batch(&[OutDatagram { to, payload }])
        .await
        .expect("send_batch");
}

/// Small messages and a 1300-byte one (over a datagram at MTU 1200) both ways.
async fn both_paths(a: QuicTransport, b: QuicTransport) {
    let (aa, ba) = (addr_of(&a), addr_of(&b));
    let big_a = vec![b'a'; 1300];
    let big_b = vec![b'b'; 1300];

    for i in 0..5u8 {
        send(&a, ba, &[b'q', i]).await;
    }
    let got = recv_n(&b, 5).await;
    for (from, key, _) in &got {
        assert_eq!(*from, aa);
        assert_eq!(*key, a.public_key());
    }
    let mut payloads: Vec<_> = got.into_iter().map(|g| g.2).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        (0..5u8).map(|i| vec![b'q', i]).collect::<Vec<_>>()
    );

    send(&b, aa, b"reply").await;
    send(&b, aa, &big_b).await;
    let got = recv_n(&a, 2).await;
    for (from, key, _) in &got {
        assert_eq!(*from, ba);
        assert_eq!(*key, b.public_key());
    }
    assert!(got.iter().any(|g| g.2 == b"reply"));
    assert!(got.iter().any(|g| g.2 == big_b));

    send(&a, ba, &big_a).await;
    let got = recv_n(&b, 1).await;
    assert_eq!(got[0].2, big_a);
    assert_eq!(got[0].1, a.public_key());

    let (sa, sb) = (a.stats(), b.stats());
    // One handshake for the pair: b answered over the connection a opened.
    assert_eq!(sa.handshakes_out + sb.handshakes_out, 1, "{sa:?} {sb:?}");
    assert_eq!(sa.handshakes_in + sb.handshakes_in, 1, "{sa:?} {sb:?}");
    assert_eq!(sa.datagrams_sent, 5);
    assert_eq!(sa.streams_sent, 1);
    assert_eq!(sb.datagrams_sent, 1);
    assert_eq!(sb.streams_sent, 1);
    assert_eq!(sa.send_dropped + sb.send_dropped, 0);
    assert_eq!(sa.received, 2);
    assert_eq!(sb.received, 6);
}

#[tokio::test]
async fn datagram_and_stream_paths_ipv4() {
    both_paths(
        bind(v4(), QuicConfig::default()),
        bind(v4(), QuicConfig::default()),
    )
    .await;
}

#[tokio::test]
async fn datagram_and_stream_paths_ipv6() {
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let Ok(a) = QuicTransport::bind(&[v6], generate_key(), QuicConfig::default()) else {
        println!("skipped: ::1 is not available here");
        return;
    };
    let b = bind(v6, QuicConfig::default());
    both_paths(a, b).await;
}

#[tokio::test]
async fn dual_stack_routes_by_family() {
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let Ok(a) = QuicTransport::bind(&[v4(), v6], generate_key(), QuicConfig::default()) else {
        println!("skipped: ::1 is not available here");
        return;
    };
    let b4 = bind(v4(), QuicConfig::default());
    let b6 = bind(v6, QuicConfig::default());
    send(&a, addr_of(&b4), b"to v4").await;
    send(&a, addr_of(&b6), b"to v6").await;
    let g4 = recv_n(&b4, 1).await;
    let g6 = recv_n(&b6, 1).await;
    assert_eq!(g4[0].0, a.local_addrs()[0]);
    assert_eq!(g6[0].0, a.local_addrs()[1]);
    assert_eq!(g4[0].1, a.public_key());
    assert_eq!(g6[0].1, a.public_key());
}

#[tokio::test]
async fn forced_streams_carry_small_messages() {
    let cfg = QuicConfig {
        force_streams: true,
        ..QuicConfig::default()
    };
    let a = bind(v4(), cfg);
    let b = bind(v4(), QuicConfig::default());
    send(&a, addr_of(&b), b"small").await;
    assert_eq!(recv_n(&b, 1).await[0].2, b"small");
    assert_eq!(a.stats().streams_sent, 1);
    assert_eq!(a.stats().datagrams_sent, 0);
}

/// The same limits as UDP: a 1452-byte message (the largest the core sends) and a
/// 2047-byte one arrive; 2048 bytes (a full receive buffer) is dropped.
#[tokio::test]
async fn message_size_limits() {
    let a = bind(v4(), QuicConfig::default());
    let b = bind(v4(), QuicConfig::default());
    let ba = addr_of(&b);
    send(&a, ba, &[1u8; 1452]).await;
    send(&a, ba, &vec![2u8; RECV_BUF_LEN - 1]).await;
    send(&a, ba, &vec![3u8; RECV_BUF_LEN]).await;
    let got = recv_n(&b, 2).await;
    assert!(got.iter().any(|g| g.2.len() == 1452));
    assert!(got.iter().any(|g| g.2.len() == RECV_BUF_LEN - 1));
    assert_eq!(a.stats().send_dropped, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.stats().received, 2);
}

#[tokio::test]
async fn lru_bound_closes_least_recently_used() {
    let cfg = QuicConfig {
        max_connections: 2,
        ..QuicConfig::default()
    };
    let a = bind(v4(), cfg);
    let peers: Vec<QuicTransport> = (0..3).map(|_| bind(v4(), QuicConfig::default())).collect();
    for p in &peers {
        send(&a, addr_of(p), b"hello").await;
        assert_eq!(recv_n(p, 1).await[0].1, a.public_key());
    }
    let s = a.stats();
    assert!(s.connections <= 2, "{s:?}");
    assert_eq!(s.evicted, 1, "{s:?}");
    assert_eq!(s.handshakes_out, 3);
    // The evicted peer (the first) is reached again with a new handshake.
    send(&a, addr_of(&peers[0]), b"again").await;
    assert_eq!(recv_n(&peers[0], 1).await[0].2, b"again");
    assert_eq!(a.stats().handshakes_out, 4);
}

#[tokio::test]
async fn unreachable_peer_drops_queued_messages() {
    let cfg = QuicConfig {
        handshake_timeout: Duration::from_millis(300),
        ..QuicConfig::default()
    };
    let a = bind(v4(), cfg);
    // Nothing listens here (a bound but idle UDP socket never answers).
    let silent = std::net::UdpSocket::bind(v4()).unwrap();
    let to = silent.local_addr().unwrap();
    send(&a, to, b"one").await;
    send(&a, to, b"two").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = a.stats();
    assert_eq!(s.handshake_failures, 1, "{s:?}");
    assert_eq!(s.send_dropped, 2, "{s:?}");
    assert_eq!(s.connections, 0, "{s:?}");
}

// ---- peers that must be refused ----

/// Accepts any server certificate: the rogue client only needs to reach the
/// server's check of *its* certificate.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents a fixed (cert, signing key) pair, matching or not.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A raw quinn client endpoint on 127.0.0.1 presenting `cert` and signing with `key`.
fn raw_client(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signer = provider
        .key_provider
        .load_private_key(key)
        .expect("load key");
    let certified = Arc::new(CertifiedKey::new(vec![cert], signer));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_cert_resolver(Arc::new(Fixed(certified)));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client(v4()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

/// Connects to `server` with a raw quinn client presenting `cert` and signing with
/// `key`; returns whether the handshake and a first exchange succeeded.
async fn rogue_connect(
    server: SocketAddr,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> bool {
    let endpoint = raw_client(cert, key);
    let attempt = async {
        let conn = endpoint.connect(server, "dht-node").ok()?.await.ok()?;
        // In TLS 1.3 the client may finish before the server has checked its
        // certificate; a refusal then closes the connection right after.
        conn.send_datagram(bytes::Bytes::from_static(b"hi")).ok()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.close_reason().is_none().then_some(())
    };
    tokio::time::timeout(WAIT, attempt)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// `n` connections to `server` from one client address, one after another, each
/// delivering one datagram (so the server has filed it before the next starts).
async fn reconnect_n(server: &QuicTransport, n: usize) -> Vec<quinn::Connection> {
    let key = generate_key();
    let endpoint = raw_client(
        ed25519_cert(&key),
        PrivateKeyDer::Pkcs8(ed25519_pkcs8(&key)),
    );
    let mut conns = Vec::new();
    for i in 0..n {
        let conn =
            tokio::time::timeout(WAIT, endpoint.connect(addr_of(server), "dht-node").unwrap())
                .await
                .expect("handshake in time")
                .expect("handshake");
        conn.send_datagram(bytes::Bytes::from(format!("hello {i}")))
            .unwrap();
        let got = recv_n(server, 1).await;
        assert_eq!(got[0].2, format!("hello {i}").into_bytes());
        conns.push(conn);
    }
    conns
}

async fn wait_closed(conn: &quinn::Connection, within: Duration) -> bool {
    tokio::time::timeout(within, conn.closed()).await.is_ok()
}

#[tokio::test]
async fn a_replaced_connection_is_closed_after_its_grace() {
    let cfg = QuicConfig {
        replaced_grace: Duration::from_millis(300),
        // Far beyond the test: only the grace can close the replaced connection.
        idle_timeout: Duration::from_secs(60),
        ..QuicConfig::default()
    };
    let server = bind(v4(), cfg);
    let conns = reconnect_n(&server, 2).await;
    assert!(
        wait_closed(&conns[0], Duration::from_secs(5)).await,
        "the replaced connection stayed open"
    );
    // The newest stays open and carries messages.
    assert!(conns[1].close_reason().is_none());
    conns[1]
        .send_datagram(bytes::Bytes::from_static(b"still here"))
        .unwrap();
    assert_eq!(recv_n(&server, 1).await[0].2, b"still here");
    let s = server.stats();
    assert_eq!(
        (s.replaced, s.replaced_open, s.connections),
        (1, 0, 1),
        "{s:?}"
    );
}

#[tokio::test]
async fn a_replaced_connection_its_peer_still_sends_on_stays_open() {
    // Both ends opened at once and the peer's cache kept the older connection: it
    // keeps sending there, so closing it would lose those messages.
    let cfg = QuicConfig {
        replaced_grace: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..QuicConfig::default()
    };
    let server = bind(v4(), cfg);
    let conns = reconnect_n(&server, 2).await;
    for i in 0..10 {
        conns[0]
            .send_datagram(bytes::Bytes::from(format!("old {i}")))
            .expect("the older connection is open");
        assert_eq!(
            recv_n(&server, 1).await[0].2,
            format!("old {i}").into_bytes()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        conns[0].close_reason().is_none(),
        "{:?}",
        conns[0].close_reason()
    );
    // Once the peer stops using it, it is closed after a quiet grace.
    assert!(
        wait_closed(&conns[0], Duration::from_secs(5)).await,
        "the replaced connection stayed open after its peer fell silent"
    );
}

#[tokio::test]
async fn replaced_connections_inside_their_grace_are_bounded() {
    let cfg = QuicConfig {
        replaced_grace: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        max_replaced: 2,
        ..QuicConfig::default()
    };
    let server = bind(v4(), cfg);
    // Five connections: one current, two waiting out their grace, two closed at once.
    let conns = reconnect_n(&server, 5).await;
    for c in &conns[..2] {
        assert!(
            wait_closed(c, Duration::from_secs(5)).await,
            "an oldest replaced connection stayed open"
        );
    }
    for c in &conns[2..] {
        assert!(c.close_reason().is_none(), "{:?}", c.close_reason());
    }
    let s = server.stats();
    assert_eq!(
        (s.replaced, s.replaced_open, s.connections),
        (4, 2, 1),
        "{s:?}"
    );
}

fn ed25519_pkcs8(key: &ed25519_dalek::SigningKey) -> PrivatePkcs8KeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.to_pkcs8_der().unwrap().as_bytes().to_vec())
}

fn ed25519_cert(key: &ed25519_dalek::SigningKey) -> CertificateDer<'static> {
    let kp =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&ed25519_pkcs8(key), &rcgen::PKCS_ED25519)
            .unwrap();
    rcgen::CertificateParams::new(vec!["x".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap()
        .der()
        .clone()
}

#[tokio::test]
async fn an_honest_raw_client_is_accepted() {
    // Control for the refusals below: the rogue client code works with a good key.
    let server = bind(v4(), QuicConfig::default());
    let key = generate_key();
    let ok = rogue_connect(
        addr_of(&server),
        ed25519_cert(&key),
        PrivateKeyDer::Pkcs8(ed25519_pkcs8(&key)),
    )
    .await;
    assert!(ok);
    let got = recv_n(&server, 1).await;
    assert_eq!(got[0].1, key.verifying_key().to_bytes());
}

#[tokio::test]
async fn a_non_ed25519_certificate_is_refused() {
    let server = bind(v4(), QuicConfig::default());
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap()
        .der()
        .clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
    assert!(!rogue_connect(addr_of(&server), cert, key).await);
    let s = server.stats();
    assert_eq!(s.handshakes_in, 0, "{s:?}");
    assert_eq!(s.received, 0, "{s:?}");
}

#[tokio::test]
async fn a_certificate_for_another_key_is_refused() {
    let server = bind(v4(), QuicConfig::default());
    let claimed = generate_key();
    let actual = generate_key();
    let ok = rogue_connect(
        addr_of(&server),
        ed25519_cert(&claimed),
        PrivateKeyDer::Pkcs8(ed25519_pkcs8(&actual)),
    )
    .await;
    assert!(!ok);
    let s = server.stats();
    assert_eq!(s.handshakes_in, 0, "{s:?}");
    assert_eq!(s.received, 0, "{s:?}");
}

#[tokio::test]
async fn a_server_without_an_ed25519_key_is_refused() {
    // A rogue server with a P-256 certificate: our client side refuses it.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["dht-node".to_string()])
        .unwrap()
        .self_signed(&kp)
        .unwrap()
        .der()
        .clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(kp.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let rogue =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(quic)), v4()).unwrap();
    let rogue_addr = rogue.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(i) = rogue.accept().await {
            let _ = i.accept();
        }
    });

    let a = bind(v4(), QuicConfig::default());
    send(&a, rogue_addr, b"hello").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.stats().handshake_failures == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", a.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = a.stats();
    assert_eq!(s.handshakes_out, 0, "{s:?}");
    assert_eq!(s.send_dropped, 1, "{s:?}");
}

#[tokio::test]
async fn incoming_connections_per_source_are_bounded() {
    let cfg = QuicConfig {
        max_connections_per_ip: 2,
        // The clients are on 127.0.0.1, exempt by default.
        exempt_local: false,
        ..QuicConfig::default()
    };
    let server = bind(v4(), cfg);
    let to = addr_of(&server);
    // Four clients on 127.0.0.1: the first two are let in, the rest refused.
    let clients: Vec<QuicTransport> = (0..4).map(|_| bind(v4(), QuicConfig::default())).collect();
    for c in &clients {
        send(c, to, b"hi").await;
    }
    let got = recv_n(&server, 2).await;
    assert_eq!(got.len(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = server.stats();
    assert_eq!(s.handshakes_in, 2, "{s:?}");
    assert_eq!(s.incoming_refused, 2, "{s:?}");
    assert_eq!(s.received, 2, "{s:?}");
}

/// The other half of `--no-local-exemption`: with the exemption on (the default), sources
/// on loopback are not held to the per-source bound, so a testnet on 127.0.0.1 works.
#[tokio::test]
async fn local_sources_are_exempt_from_the_per_source_bound_when_configured() {
    let cfg = QuicConfig {
        max_connections_per_ip: 2,
        exempt_local: true,
        ..QuicConfig::default()
    };
    let server = bind(v4(), cfg);
    let to = addr_of(&server);
    let clients: Vec<QuicTransport> = (0..4).map(|_| bind(v4(), QuicConfig::default())).collect();
    for c in &clients {
        send(c, to, b"hi").await;
    }
    let got = recv_n(&server, 4).await;
    assert_eq!(got.len(), 4);
    let s = server.stats();
    assert_eq!(s.handshakes_in, 4, "{s:?}");
    assert_eq!(s.incoming_refused, 0, "{s:?}");
}
