//! The transport seam: what a runtime needs from a datagram carrier.
//!
//! This module only *names* the interface (plain traits and types, no I/O); transport
//! crates (`dht-net-udp`, `dht-net-quic`) implement it and the `dht-node` runtime
//! drives a [`crate::Node`] through it. Methods are native `async fn`s returning `Send`
//! futures, so the per-datagram path is statically dispatched (no boxing).
//!
//! Batching: [`Transport::recv_batch`] fills as many [`RecvSlot`]s as are ready in
//! one call and [`Transport::send_batch`] takes many datagrams, so that an
//! implementation may use `recvmmsg` / `sendmmsg`-style system calls.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// Size of each receive buffer: BEP 32 asks to receive more than the 1024 bytes we send.
pub const RECV_BUF_LEN: usize = 2048;

/// One outgoing datagram.
#[derive(Debug, Clone, Copy)]
pub struct OutDatagram<'a> {
    /// Destination address.
    pub to: SocketAddr,
    /// The KRPC payload.
    pub payload: &'a [u8],
}

/// One receive buffer and, once filled, what arrived in it.
#[derive(Debug, Clone)]
pub struct RecvSlot {
    /// Backing storage, at least [`RECV_BUF_LEN`] bytes; reused across calls.
    pub buf: Box<[u8]>,
    /// Bytes of `buf` that hold the datagram.
    pub len: usize,
    /// Source address.
    pub from: SocketAddr,
    /// The sender's verified ed25519 public key, for transports that authenticate peers.
    pub peer_key: Option<[u8; 32]>,
}

impl RecvSlot {
    /// A fresh slot with a [`RECV_BUF_LEN`]-byte buffer.
    pub fn new() -> RecvSlot {
        RecvSlot {
            buf: vec![0u8; RECV_BUF_LEN].into_boxed_slice(),
            len: 0,
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            peer_key: None,
        }
    }

    /// The received payload.
    pub fn payload(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for RecvSlot {
    fn default() -> Self {
        RecvSlot::new()
    }
}

/// A datagram carrier for the DHT: UDP, QUIC, or a test double.
pub trait Transport: Send + Sync + 'static {
    /// The addresses this transport is bound to (one per address family in use).
    fn local_addrs(&self) -> Vec<SocketAddr>;

    /// Sends every datagram of `batch`. A datagram that cannot be sent (no route,
    /// wrong address family, ...) is dropped and logged by the implementation; the
    /// error return is for failures of the transport itself.
    fn send_batch(&self, batch: &[OutDatagram<'_>]) -> impl Future<Output = io::Result<()>> + Send;

    /// Waits until at least one datagram is ready, then fills up to `slots.len()`
    /// slots and returns how many were filled.
    fn recv_batch(&self, slots: &mut [RecvSlot]) -> impl Future<Output = io::Result<usize>> + Send;
}
