//! Which addresses we keep, dial and announce: TCP only (no QUIC, no relays), and
//! `/dnsaddr` names (resolved by libp2p's DNS transport when the host has it); public
//! against loopback and private (see `host.rs`'s module doc for the rules); and, for
//! auto mode, the public address two peers observed us at.

use std::collections::HashMap;
use std::net::IpAddr;

use dht_core::Locality;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// How the host classes IPs: `dht_core::locality`, or a test's own.
pub(crate) type Classify = fn(IpAddr) -> Locality;

/// A public address under `locality` (the engine's rule: `dht_ipfs::is_public_addr`).
pub(crate) fn is_public(locality: Classify, addr: &Multiaddr) -> bool {
    dht_ipfs::is_public_addr(addr, locality)
}

/// Whether to keep `addr`, one of a peer's listen addresses: one we can dial, and,
/// when both we and the peer (the address it reached us from) are public, a public one.
pub(crate) fn keep_address(
    locality: Classify,
    we_public: bool,
    peer_public: bool,
    addr: &Multiaddr,
) -> bool {
    dialable(addr) && (!(we_public && peer_public) || is_public(locality, addr))
}

/// An address we can dial: IP (or DNS) and TCP, nothing relayed, no other transport;
/// or a `/dnsaddr` name, whose TXT records the DNS transport resolves into such
/// addresses (Kubo's bootstrap peers are given so).
pub(crate) fn dialable(addr: &Multiaddr) -> bool {
    let mut tcp = false;
    for (i, p) in addr.iter().enumerate() {
        match p {
            Protocol::Tcp(_) => tcp = true,
            Protocol::Dnsaddr(_) if i == 0 => tcp = true,
            Protocol::Ip4(_) | Protocol::Ip6(_) | Protocol::P2p(_) => {}
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) => {}
            _ => return false,
        }
    }
    tcp
}

/// Public addresses peers observed us at (identify's `observedAddr`), for auto mode:
/// one that two peers report alike is ours.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Each address with the peers that reported it (a few, bounded).
    seen: HashMap<Multiaddr, Vec<libp2p::PeerId>>,
}

/// Most distinct observed addresses remembered: a peer lying about them cannot grow
/// the map.
const MAX_OBSERVED: usize = 64;

impl Observed {
    /// `peer` observed us at `addr`: returns it once a second peer agrees.
    pub(crate) fn note(
        &mut self,
        locality: Classify,
        peer: libp2p::PeerId,
        addr: Multiaddr,
    ) -> Option<Multiaddr> {
        if !is_public(locality, &addr) || !dialable(&addr) {
            return None;
        }
        if !self.seen.contains_key(&addr) && self.seen.len() >= MAX_OBSERVED {
            return None;
        }
        let peers = self.seen.entry(addr.clone()).or_default();
        if !peers.contains(&peer) {
            peers.push(peer);
        }
        (peers.len() >= 2).then_some(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::{dialable, keep_address};
    use dht_core::locality;

    #[test]
    fn an_address_two_peers_observed_alike_is_ours() {
        let mut seen = super::Observed::default();
        let (a, b) = (libp2p::PeerId::random(), libp2p::PeerId::random());
        let public: libp2p::Multiaddr = "/ip4/8.8.8.8/tcp/4001".parse().expect("multiaddr");
        let private: libp2p::Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().expect("multiaddr");
        assert_eq!(seen.note(locality, a, public.clone()), None);
        assert_eq!(
            seen.note(locality, a, public.clone()),
            None,
            "one peer twice is one peer"
        );
        assert_eq!(seen.note(locality, b, public.clone()), Some(public));
        assert_eq!(seen.note(locality, a, private.clone()), None);
        assert_eq!(
            seen.note(locality, b, private),
            None,
            "private addresses never count"
        );
    }

    #[test]
    fn private_addresses_kept_unless_both_sides_are_public() {
        let private = "/ip4/192.168.1.2/tcp/4001".parse().expect("multiaddr");
        let loopback = "/ip4/127.0.0.1/tcp/4001".parse().expect("multiaddr");
        let public = "/ip4/8.8.8.8/tcp/4001".parse().expect("multiaddr");
        let quic = "/ip4/8.8.8.8/udp/4001/quic-v1".parse().expect("multiaddr");
        // A loopback or private network keeps everything it can dial.
        for (we, peer) in [(false, false), (false, true), (true, false)] {
            assert!(keep_address(locality, we, peer, &private));
            assert!(keep_address(locality, we, peer, &loopback));
            assert!(keep_address(locality, we, peer, &public));
        }
        // A public node keeps only public addresses of a public peer.
        assert!(!keep_address(locality, true, true, &private));
        assert!(!keep_address(locality, true, true, &loopback));
        assert!(keep_address(locality, true, true, &public));
        // Nothing but TCP.
        assert!(!keep_address(locality, false, false, &quic));
    }

    #[test]
    fn dnsaddr_names_are_dialed_through_dns_other_transports_never() {
        let ok = [
            "/dnsaddr/bootstrap.libp2p.io",
            "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
            "/dns4/example.org/tcp/4001",
            "/ip6/::1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
        ];
        for a in ok {
            assert!(dialable(&a.parse().expect("multiaddr")), "{a}");
        }
        let no = [
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/dns4/example.org/udp/4001/quic-v1",
            "/ip4/127.0.0.1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN/p2p-circuit",
            "/ip4/127.0.0.1/tcp/4001/dnsaddr/x",
        ];
        for a in no {
            assert!(!dialable(&a.parse().expect("multiaddr")), "{a}");
        }
    }
}
