//! The per-source bound on incoming connections: an IPv4 address or an IPv6 /64 holds
//! at most `QuicConfig::max_connections_per_ip` connections at once (local sources
//! exempt when configured), counted by a guard that lives as long as the connection.

use std::net::IpAddr;
use std::sync::Arc;

use crate::Shared;

/// One incoming connection counted against its source's bound while it lives.
#[derive(Debug)]
pub(crate) struct SourceGuard {
    shared: Arc<Shared>,
    source: IpAddr,
}

impl SourceGuard {
    pub(crate) fn acquire(shared: &Arc<Shared>, ip: IpAddr) -> Option<SourceGuard> {
        let source = source_of(ip);
        let mut map = shared.per_source.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(source).or_insert(0);
        let exempt = shared.cfg.exempt_local && dht_core::is_local(ip);
        if *n >= shared.cfg.max_connections_per_ip && !exempt {
            return None;
        }
        *n += 1;
        Some(SourceGuard {
            shared: shared.clone(),
            source,
        })
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_source
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// The unit a flood bound counts: an IPv4 address, or an IPv6 /64 (one host
/// usually owns a whole /64, so counting addresses would not bound it).
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}
