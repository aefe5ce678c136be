//! Which addresses of other peers we hand out and keep, as go-libp2p-kad-dht's Amino
//! (WAN) filters do: on a loopback or private network, every address; a node with a
//! public address of its own (in [`Config::listen_addrs`](super::Config)) neither sends
//! loopback and private addresses to a peer on a public address nor keeps those a
//! public peer sends it. A public node that hands a LAN address to a stranger sends it
//! to dial someone else's LAN; one that stores it from a stranger dials it later.
//!
//! Both ends are classed by [`Config::locality`](super::Config::locality): the peer
//! by the address it reached us from (a request) or we reached it at (a reply).

use std::net::IpAddr;

use dht_core::kernel::Contact;
use dht_core::Locality;
use multiaddr::{Multiaddr, Protocol};

use super::Node;
use crate::peer::PeerInfo;
use crate::store::Store;
use crate::validate::Validator;

/// Whether `addr` is public under `locality`: its IP classed public, or a DNS name
/// other than `localhost`'s and `.local`'s. The transport classes its own and its
/// peers' addresses with this too, so that both halves draw one line.
pub fn is_public_addr(addr: &Multiaddr, locality: fn(IpAddr) -> Locality) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => locality(ip.into()) == Locality::Public,
        Some(Protocol::Ip6(ip)) => locality(ip.into()) == Locality::Public,
        Some(Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) | Protocol::Dnsaddr(n)) => {
            let n = n.trim_end_matches('.');
            n != "localhost" && !n.ends_with(".localhost") && !n.ends_with(".local")
        }
        _ => false,
    }
}

impl<S: Store, V: Validator> Node<S, V> {
    /// A public address (see [`is_public_addr`]).
    fn is_public_addr(&self, addr: &Multiaddr) -> bool {
        is_public_addr(addr, self.config.locality)
    }

    /// Whether loopback and private addresses stay out of what we exchange with
    /// `peer`: we have a public address and `peer` is at one.
    pub(super) fn public_only_with(&self, peer: &PeerInfo) -> bool {
        let peer_public = peer
            .ip()
            .is_some_and(|ip| (self.config.locality)(ip) == Locality::Public);
        peer_public
            && self
                .config
                .listen_addrs
                .iter()
                .any(|a| self.is_public_addr(a))
    }

    /// `peer` as we may exchange it with someone to whom `public_only` applies: with
    /// its public addresses alone (none may be left).
    pub(super) fn scoped(&self, peer: PeerInfo, public_only: bool) -> PeerInfo {
        if !public_only || peer.addrs().iter().all(|a| self.is_public_addr(a)) {
            return peer;
        }
        let public: Vec<Multiaddr> = peer
            .addrs()
            .iter()
            .filter(|a| self.is_public_addr(a))
            .cloned()
            .collect();
        peer.with_addrs(public)
    }
}
