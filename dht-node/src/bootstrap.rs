//! Joining the DHT: the public routers, resolving `host:port` names, and
//! [`Dht::bootstrap_until_joined`], which keeps trying until some node answers.

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::NodeInfo;

use crate::{Answer, Dht, Error};

/// The public Mainline bootstrap routers, as real clients use them.
pub const PUBLIC_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Resolves `host:port` names (DNS through tokio); names that fail are logged and skipped.
pub async fn resolve(names: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => {
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Err(e) => tracing::warn!(name = %name, error = %e, "cannot resolve bootstrap node"),
        }
    }
    out
}

/// How long [`Dht::bootstrap_until_joined`] waits between attempts: `first`, doubled
/// after every failure up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failed attempt (default 5 s).
    pub first: Duration,
    /// The longest wait (default 5 minutes).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Dht {
    /// Bootstraps through `names` (`host:port`, resolved again at every attempt, so
    /// a router whose address changes is still found) until some node answers,
    /// waiting as `backoff` says between attempts: a node started before its
    /// network, or offline for a while, joins once it can. Returns the first
    /// successful [`Dht::bootstrap`]'s answer, or [`Error::Shutdown`] if the node
    /// stops first; no other error ends it.
    ///
    /// ```no_run
    /// # async fn demo(dht: dht_node::Dht) -> Result<(), dht_node::Error> {
    /// use dht_node::{Backoff, PUBLIC_ROUTERS};
    ///
    /// let names: Vec<String> = PUBLIC_ROUTERS.iter().map(|s| s.to_string()).collect();
    /// let joined = dht.bootstrap_until_joined(&names, Backoff::default()).await?;
    /// println!("joined through {} nodes", joined.value.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bootstrap_until_joined(
        &self,
        names: &[String],
        backoff: Backoff,
    ) -> Result<Answer<Vec<NodeInfo>>, Error> {
        let mut delay = backoff.first;
        loop {
            // A node stopped while names did not resolve would otherwise keep us here.
            if self.inner.tx.is_closed() {
                return Err(Error::Shutdown);
            }
            let addrs = resolve(names).await;
            if !addrs.is_empty() {
                match self.bootstrap(&addrs).await {
                    Ok(a) => return Ok(a),
                    Err(Error::Shutdown) => return Err(Error::Shutdown),
                    Err(_) => {}
                }
            }
            tracing::warn!(
                "no bootstrap node answered; retrying in {}s",
                delay.as_secs()
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.max);
        }
    }
}
