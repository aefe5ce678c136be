//! Connections replaced in the cache by a newer handshake from the same peer address:
//! closed once a grace passes with nothing received on them, and bounded in number.

use quinn::{Connection, VarInt};

use crate::{bump, Shared};

impl Shared {
    /// Closes a replaced connection once its grace is over, keeping at most
    /// [`crate::QuicConfig::max_replaced`] of them open (the oldest closes first).
    pub(crate) fn retire(&self, old: Connection) {
        bump(&self.counters.replaced);
        let mut waiting = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|c| c.close_reason().is_none());
        waiting.push_back(old.clone());
        while waiting.len() > self.cfg.max_replaced {
            if let Some(c) = waiting.pop_front() {
                c.close(VarInt::from_u32(0), b"replaced");
            }
        }
        drop(waiting);
        let grace = self.cfg.replaced_grace;
        // Closed once a whole grace passes with nothing received on it: a peer whose
        // cache kept this connection (both ends opened at once and each kept the other
        // one) still sends on it, and closing it under that peer would lose its next
        // messages. The bound above still holds however such peers behave.
        tokio::spawn(async move {
            loop {
                let heard = old.stats().udp_rx.datagrams;
                tokio::time::sleep(grace).await;
                if old.close_reason().is_some() {
                    break;
                }
                if old.stats().udp_rx.datagrams == heard {
                    old.close(VarInt::from_u32(0), b"replaced");
                    break;
                }
            }
        });
    }

    /// Replaced connections still inside their grace.
    pub(crate) fn replaced_open(&self) -> usize {
        let mut waiting = self.replaced.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|c| c.close_reason().is_none());
        waiting.len()
    }
}
