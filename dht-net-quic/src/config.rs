//! [`QuicConfig`], the transport's tunables, and how they become quinn and rustls
//! configurations and a bound endpoint (ring only, TLS 1.3 only, key-only verifiers).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, VarInt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{identity, ALPN, MAX_MESSAGE_LEN, SOCKET_BUF_LEN};

/// Tunables of a [`QuicTransport`](crate::QuicTransport), with the reasons for their defaults.
#[derive(Clone, Debug)]
pub struct QuicConfig {
    /// Most cached connections; inserting one more closes the least recently used.
    /// 1024: about the routing table of a busy node (160 buckets are never all full)
    /// plus the peers of lookups in flight, at tens of kB of state each.
    pub max_connections: usize,
    /// A connection that has heard nothing from its peer for this long is closed (and
    /// re-handshaken on the next message). 10 s covers a lookup and its follow-up
    /// writes; it is also how long a connection to a peer that died (or restarted at
    /// the same address without contacting us) swallows messages: in a testnet under
    /// churn 30 s cost every lookup near a restarted node two timeouts for half a
    /// minute. Routing-table pings every 15 minutes would not keep connections alive
    /// anyway, so a new handshake (one round trip) is the usual price either way.
    pub idle_timeout: Duration,
    /// Give up on a handshake (either direction) after this long. 5 s: the core's
    /// request timeout is 2 s, so a slower handshake is useless anyway.
    pub handshake_timeout: Duration,
    /// Most incoming handshakes in progress at once (64). Over it, a source whose
    /// address is not validated gets a stateless retry, a validated one is refused.
    pub max_handshakes: usize,
    /// Most incoming connections (in handshake or established) from one IPv4
    /// address or one IPv6 /64 (8: a few nodes behind one NAT, not a flood).
    pub max_connections_per_ip: usize,
    /// Loopback, private and link-local sources are exempt from
    /// `max_connections_per_ip` (true), as they are from the core's per-IP defenses
    /// (`dht_core::Defense::exempt_local`): a testnet on 127.0.0.1 runs every
    /// node from one address.
    pub exempt_local: bool,
    /// Most messages to a peer queued behind its handshake (16); more are dropped.
    pub pending_per_peer: usize,
    /// Received messages waiting for [`dht_core::Transport::recv_batch`] (4096); more are
    /// dropped and counted, as a full UDP socket buffer drops datagrams.
    pub recv_queue: usize,
    /// Unidirectional streams a peer may have open at once per connection (16).
    pub max_streams_per_connection: u32,
    /// QUIC's initial path MTU (1200, the QUIC minimum, which every path carries).
    pub initial_mtu: u16,
    /// Probe for a larger MTU. Off by default: KRPC messages are small, the few that
    /// exceed a datagram at 1200 bytes go on a stream, and off keeps message limits
    /// the same on every path instead of depending on what probing found.
    pub mtu_discovery: bool,
    /// A connection replaced by a newer handshake with the same peer address is closed
    /// once this long (2 s) passes with nothing received on it. The newest handshake
    /// wins the cache (a peer that restarted is only reachable on it), but when both
    /// ends opened at once the replaced one is alive, may carry replies in flight, and
    /// may be the one the peer's cache kept: then the peer keeps sending on it and it
    /// stays open (within [`QuicConfig::max_replaced`]).
    pub replaced_grace: Duration,
    /// Most replaced connections waiting out their grace at once (64); more close the
    /// oldest at once. With the cache's bound this bounds every connection we hold,
    /// however often peers reconnect.
    pub max_replaced: usize,
    /// Send every message on a stream, never as a datagram. For measurements and
    /// tests of the stream path; off in production (see ARCHITECTURE.md).
    pub force_streams: bool,
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 64,
            max_connections_per_ip: 8,
            exempt_local: true,
            pending_per_peer: 16,
            recv_queue: 4096,
            max_streams_per_connection: 16,
            initial_mtu: 1200,
            mtu_discovery: false,
            force_streams: false,
            replaced_grace: Duration::from_secs(2),
            max_replaced: 64,
        }
    }
}

pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// The client and server configs every endpoint shares: ring only, TLS 1.3 only,
/// our certificate, the key-only verifier, our ALPN and transport limits.
pub(crate) fn quinn_configs(
    key: &SigningKey,
    cfg: &QuicConfig,
) -> io::Result<(quinn::ClientConfig, quinn::ServerConfig)> {
    let provider = identity::provider();
    let verifier = Arc::new(identity::KeyVerifier::new(&provider));
    let (cert, private) = identity::certificate(key)?;
    let tls = |e: rustls::Error| io::Error::other(format!("TLS configuration: {e}"));

    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(vec![cert.clone()], private.clone_key())
        .map_err(tls)?;
    client.alpn_protocols = vec![ALPN.to_vec()];

    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], private)
        .map_err(tls)?;
    server.alpn_protocols = vec![ALPN.to_vec()];

    let transport = Arc::new(transport_config(cfg)?);
    let quic_client = QuicClientConfig::try_from(client).map_err(io::Error::other)?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
    client.transport_config(transport.clone());
    let quic_server = QuicServerConfig::try_from(server).map_err(io::Error::other)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
    server.transport_config(transport);
    // Connection attempts not yet accepted or refused: the accept loop decides fast,
    // so a backlog this deep is already a flood.
    server.max_incoming(cfg.max_handshakes.saturating_mul(4).max(1));
    Ok((client, server))
}

fn transport_config(cfg: &QuicConfig) -> io::Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(cfg.idle_timeout)
        .map_err(|_| invalid("QuicConfig::idle_timeout is too long"))?;
    t.max_idle_timeout(Some(idle));
    t.initial_mtu(cfg.initial_mtu);
    if !cfg.mtu_discovery {
        t.mtu_discovery_config(None);
    }
    // KRPC is one message per datagram or uni stream: no bidirectional streams, and
    // windows sized for a few messages of at most MAX_MESSAGE_LEN, so a thousand
    // connections cost little memory.
    let per_stream = (2 * MAX_MESSAGE_LEN) as u32;
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(cfg.max_streams_per_connection));
    t.stream_receive_window(VarInt::from_u32(per_stream));
    t.receive_window(VarInt::from_u32(
        per_stream.saturating_mul(cfg.max_streams_per_connection.max(1)),
    ));
    t.send_window(64 * 1024);
    // Datagram buffers are queues, filled only under load: 256 KiB holds some 800
    // typical messages for one peer, far above the few a DHT peer has in flight,
    // while a burst beyond it loses the oldest, as a full UDP socket buffer would.
    t.datagram_receive_buffer_size(Some(256 * 1024));
    t.datagram_send_buffer_size(256 * 1024);
    Ok(t)
}

pub(crate) fn bind_endpoint(
    addr: SocketAddr,
    server: quinn::ServerConfig,
    endpoint: quinn::EndpointConfig,
) -> io::Result<Endpoint> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not enlarge the receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not enlarge the send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Endpoint::new(
        endpoint,
        Some(server),
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
}
