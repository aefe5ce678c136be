//! [`EgressDelay`]: a transport wrapper that holds every outgoing datagram for a fixed
//! time, as netem's `delay` does on a link, for testnets on machines whose kernel has
//! no netem (`cargo xtask testnet --delay`).
//!
//! Each node delays what it sends by its own amount, so a round trip between two nodes
//! takes the sum of their delays, as with netem on each node's link. Receiving is
//! untouched. Nothing here is meant for a node on a real network.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{OutDatagram, RecvSlot, Transport};

/// Wraps a [`Transport`] so that every datagram leaves `delay` after it was handed over.
#[derive(Debug)]
pub struct EgressDelay<T> {
    inner: Arc<T>,
    delay: Duration,
}

impl<T: Transport> EgressDelay<T> {
    /// `inner`, with every send held for `delay`.
    pub fn new(inner: T, delay: Duration) -> EgressDelay<T> {
        EgressDelay {
            inner: Arc::new(inner),
            delay,
        }
    }
}

impl<T: Transport> Transport for EgressDelay<T> {
    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.local_addrs()
    }

    /// Returns at once; the batch is sent `delay` later by a task of its own (a send
    /// error then is only logged, as a datagram lost on the link would be silent).
    async fn send_batch(&self, batch: &[OutDatagram<'_>]) -> io::Result<()> {
        let owned: Vec<(SocketAddr, Vec<u8>)> =
            batch.iter().map(|d| (d.to, d.payload.to_vec())).collect();
        let inner = Arc::clone(&self.inner);
        let delay = self.delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let batch: Vec<OutDatagram<'_>> = owned
                .iter()
                .map(|(to, payload)| OutDatagram { to: *to, payload })
                .collect();
            if let Err(e) = inner.send_batch(&batch).await {
                tracing::debug!(error = %e, "delayed send failed");
            }
        });
        Ok(())
    }

    async fn recv_batch(&self, slots: &mut [RecvSlot]) -> io::Result<usize> {
        self.inner.recv_batch(slots).await
    }
}
