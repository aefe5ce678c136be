//! Peers that restart at their address: stateless resets that outlive the process, and
//! the messages a reset connection swallowed sent again on a new one.
//!
//! A node killed and started again at the same address (the same key file) has lost
//! every connection, but its peers have not: they keep sending on their cached
//! connection, and the new process drops those packets. Before this, a peer noticed
//! only after 1.5 s of sending into silence, and every request
//! it sent meanwhile timed out: in a 20-node testnet with churn, each operation in the
//! 1.5 s after a restart took one or two request timeouts (250 ms each).
//!
//! QUIC's answer is the stateless reset (RFC 9000, 10.3): an endpoint that receives a
//! packet for a connection it does not know answers with a token only the connection's
//! owner can compute, and the peer closes the connection at once. That works across a
//! restart only when the token key and the key that recognizes our own connection ids
//! outlive the process; quinn draws both at random per endpoint. Here both derive from
//! the node's ed25519 key, so the next process with the same key file resets its
//! predecessor's connections on their first packet. A reset connection is then known
//! to have delivered nothing since the peer went away, so the messages sent on it since
//! it last received anything are sent again, on a new connection (as are those of a
//! connection the peer closed or let idle out; one it cannot reset is found by its
//! silence, `silent.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use quinn::{Connection, ConnectionError, EndpointConfig};
use quinn_proto::HashedConnectionIdGenerator;
use ring::hmac;

use crate::{bump, Shared};

/// The endpoint config of a node with `key`: the stateless reset key and the key of the
/// connection-id generator (which decides whether a packet carries one of our ids, and
/// so deserves a reset) derived from `key` by HMAC-SHA256 under labels of their own.
/// Both are one-way functions of the private key: they reveal nothing about it, and a
/// reset token still cannot be computed without it (RFC 9000, 10.3.2: a static key that
/// persists across restarts is how a stateless reset is meant to be made).
pub(crate) fn endpoint_config(key: &SigningKey) -> EndpointConfig {
    let secret = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let derive = |label: &[u8]| hmac::sign(&secret, label);
    let reset = derive(b"dht-krpc/1 stateless reset key");
    let mut config =
        EndpointConfig::new(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, reset.as_ref())));
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&derive(b"dht-krpc/1 connection id key").as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    config.cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

impl Shared {
    /// Called when `conn` has closed and left the cache, with the messages sent on it
    /// since it last received anything. If the peer lost the connection (it reset it
    /// after a restart, closed it as silent or to make room, or its idle timer fired
    /// first), those messages were not delivered, or not answered, so they go again on
    /// a new connection: queries always, replies only to a peer that closed the
    /// connection itself (it is alive and waits for them; a restarted one never asked the
    /// new process). One the peer had received arrives twice, which KRPC tolerates as it
    /// tolerates a duplicated UDP datagram (a reply to a finished transaction is
    /// ignored, a put is idempotent). Nothing is sent again after our own close or a
    /// peer's shutdown.
    pub(crate) fn resend_if_lost(self: &Arc<Self>, conn: &Connection, unheard: Vec<Bytes>) {
        // (lost, and the peer is the same process, still waiting for our replies)
        let (lost, same_peer) = match conn.close_reason() {
            Some(ConnectionError::Reset) => {
                bump(&self.counters.peer_resets);
                (true, false)
            }
            Some(ConnectionError::TimedOut) => (true, false),
            Some(ConnectionError::ApplicationClosed(close)) => {
                (&close.reason[..] != b"shutdown", true)
            }
            _ => (false, false),
        };
        if self.trace {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let to = conn.remote_address();
            let why = conn.close_reason();
            eprintln!(
                "dht-net-quic: {unix_ms} {to} closed: {why:?}, {} unheard",
                unheard.len()
            );
        }
        if lost && !unheard.is_empty() {
            let to: SocketAddr = conn.remote_address();
            tracing::debug!(%to, resent = unheard.len(), "connection lost by the peer");
            self.resend(to, unheard, same_peer);
        }
    }
}
