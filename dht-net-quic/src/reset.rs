//! Peers that restart at their address: stateless resets that outlive the process, and
//! the messages a reset connection swallowed sent again on a new one.
//!
//! A node killed and started again at the same address (the same key file) has lost
//! every connection, but its peers have not: they keep sending on their cached
//! connection, and the new process drops those packets. Before this, a peer noticed
//! only after `DEAD_AFTER` (1.5 s) of sending into silence, and every request
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
//! it last received anything are sent again, on a new connection.

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

/// Keeps `payload` among the messages sent on a connection since it last received
/// anything: at most `max`, the oldest dropped first (a peer that stays silent that
/// long is dead, and `DEAD_AFTER` replaces its connection).
pub(crate) fn remember(unheard: &mut Vec<Bytes>, payload: Bytes, max: usize) {
    if unheard.len() >= max.max(1) {
        unheard.remove(0);
    }
    unheard.push(payload);
}

impl Shared {
    /// Called when `conn` has closed and left the cache, with the messages sent on it
    /// since it last received anything: if the peer reset it (it restarted and lost the
    /// connection), none of them was delivered to the process now at that address, so
    /// they go again on a new connection. A message the old process had received but
    /// not yet acknowledged arrives twice, which KRPC tolerates as it tolerates a
    /// duplicated UDP datagram (a reply to a finished transaction is ignored, a put is
    /// idempotent).
    pub(crate) fn resend_if_reset(self: &Arc<Self>, conn: &Connection, unheard: Vec<Bytes>) {
        if !matches!(conn.close_reason(), Some(ConnectionError::Reset)) {
            return;
        }
        bump(&self.counters.peer_resets);
        let to: SocketAddr = conn.remote_address();
        tracing::debug!(%to, resent = unheard.len(), "peer reset the connection (restarted)");
        for payload in unheard {
            bump(&self.counters.resent);
            self.send(to, &payload);
        }
    }
}
