//! How the network finds a node from a peer ([`AddressBook`]), and the address plan
//! of the overlays addressed by `SocketAddr`: which IPv4 address each simulated node
//! and Sybil has.
//!
//! Where a node sits decides which of dht-core's per-address defenses apply to it:
//! sources on private addresses are exempt from rate limits, per-IP and per-/24
//! routing-table caps and lookup diversity when the node listens on a private address
//! itself (`Defense::local_listen`), as on a LAN. The private plan (the simulator's
//! first) put every node in 10/8 and every Sybil in 172.16/12, so no defense that
//! counts addresses ever ran. The public plan gives each node a random public /24 of
//! its own and turns `local_listen` off, as the runtime does on a public address, so
//! the defenses apply as on the Internet and the Sybils cannot win or lose by where
//! they happen to sit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::rng::mix64;

/// The simulated network's directory: which peer each node and played peer (`SYBIL_BIT
/// | s`) is, and the way back. An overlay names its own [`AddressBook::Peer`], so the
/// network assumes nothing of how peers are addressed.
pub trait AddressBook {
    /// How the overlay addresses a peer.
    type Peer;
    /// Hands out the peer of the next node (its index is the number of nodes so far).
    fn add_node(&mut self) -> Self::Peer;
    /// The peer of event-queue index `i` (a node's index, or `SYBIL_BIT | s`).
    fn peer(&self, i: u32) -> Self::Peer;
    /// The event-queue index of `peer`, if a node or a played peer has it.
    fn index_of(&self, peer: &Self::Peer) -> Option<u32>;
    /// How node `i` appears to a peer on a connection it opened (the `from` of
    /// [`dht_core::Input::StreamRequest`]): by default its peer, but a connection's
    /// source port is not the listen port, and a stream overlay must not take it for one.
    fn source(&self, i: u32) -> Self::Peer {
        self.peer(i)
    }
}

/// The UDP port every simulated node listens on.
pub const PORT: u16 = 6881;

/// 10.0.0.1: in the private plan node `i` lives at `FIRST_ADDR + i`.
const FIRST_ADDR: u32 = 0x0A00_0001;

/// 172.16.0.1: in the private plan Sybil `s` lives at `SYBIL_FIRST_ADDR + s`, another
/// private block, so a Sybil address never collides with an honest one.
const SYBIL_FIRST_ADDR: u32 = 0xAC10_0001;

/// Most Sybils: the addresses of 172.16.0.0/12 after 172.16.0.1 (private plan), far
/// more than a simulation holds (public plan).
pub const MAX_SYBILS: usize = (1 << 20) - 2;

/// Sybil `s` is `SYBIL_BIT | s` in the event queue; honest indices stay below 2^24. The
/// network delivers what reaches such an index to the peers the simulator plays itself
/// ([`crate::SimOverlay::deliver_to_played`]).
pub const SYBIL_BIT: u32 = 1 << 31;

/// Most /24s the public plan hands out (nodes and Sybils together): about 14.4
/// million /24s are public, and drawing at random stays cheap while most are free.
pub const MAX_PUBLIC_PREFIXES: usize = 1 << 22;

/// Hosts a /24 offers in the public plan (.1 to .254: .0 and .255 are the network and
/// broadcast addresses of a /24 subnet, which no host has).
pub const HOSTS_PER_PREFIX: usize = 254;

/// Where the simulated nodes sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressPlan {
    /// Node `i` at 10.0.0.1 + i, Sybil `s` at 172.16.0.1 + s: a LAN, where every
    /// per-address defense is off (the simulator's plan before the public one; it
    /// replays the runs recorded before).
    Private,
    /// Every honest node on a random public /24 of its own. Sybils on their own
    /// random public /24s too, or, with `sybil_prefixes`, spread round-robin over
    /// that many random public /24s (an adversary with few networks).
    Public {
        /// /24s shared by all Sybils; `None`: one each.
        sybil_prefixes: Option<usize>,
    },
}

impl AddressPlan {
    /// The name used on the command line and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            AddressPlan::Private => "private",
            AddressPlan::Public { .. } => "public",
        }
    }

    /// Most Sybils the plan can place.
    pub fn max_sybils(self) -> usize {
        match self {
            AddressPlan::Public {
                sybil_prefixes: Some(p),
            } => p.saturating_mul(HOSTS_PER_PREFIX).min(MAX_SYBILS),
            _ => MAX_SYBILS,
        }
    }
}

/// The addresses one eclipse attacker (the attackers of one key) may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EclipseBudget {
    /// One /24 (254 hosts).
    Slash24,
    /// One /16 (256 /24s).
    Slash16,
    /// This many /24s, each in a /16 of its own.
    Slash24s(usize),
}

impl EclipseBudget {
    /// The name used on the command line and in the JSON report: `24`, `16`, `64x24`.
    pub fn name(self) -> String {
        match self {
            EclipseBudget::Slash24 => "24".to_string(),
            EclipseBudget::Slash16 => "16".to_string(),
            EclipseBudget::Slash24s(n) => format!("{n}x24"),
        }
    }

    /// Parses [`EclipseBudget::name`]'s forms.
    pub fn parse(s: &str) -> Option<EclipseBudget> {
        match s {
            "24" => Some(EclipseBudget::Slash24),
            "16" => Some(EclipseBudget::Slash16),
            _ => {
                let n: usize = s.strip_suffix("x24")?.parse().ok()?;
                (1..=4096)
                    .contains(&n)
                    .then_some(EclipseBudget::Slash24s(n))
            }
        }
    }
}

/// True for a /24 (its first 24 bits, `prefix`) inside a block that is not public
/// unicast: IANA's special-purpose registry (this network, private, shared NAT space,
/// loopback, link-local, IETF protocol assignments, documentation, benchmarking, 6to4
/// relay, AS112), multicast and the reserved 240/4 with the broadcast address.
pub fn is_reserved_prefix(prefix: u32) -> bool {
    const BLOCKS: [([u8; 3], u32); 18] = [
        ([0, 0, 0], 8),       // 0.0.0.0/8 this network
        ([10, 0, 0], 8),      // 10.0.0.0/8 private
        ([100, 64, 0], 10),   // 100.64.0.0/10 shared address space (carrier NAT)
        ([127, 0, 0], 8),     // 127.0.0.0/8 loopback
        ([169, 254, 0], 16),  // 169.254.0.0/16 link-local
        ([172, 16, 0], 12),   // 172.16.0.0/12 private
        ([192, 0, 0], 24),    // 192.0.0.0/24 IETF protocol assignments
        ([192, 0, 2], 24),    // 192.0.2.0/24 documentation (TEST-NET-1)
        ([192, 31, 196], 24), // 192.31.196.0/24 AS112-v4
        ([192, 52, 193], 24), // 192.52.193.0/24 AMT
        ([192, 88, 99], 24),  // 192.88.99.0/24 6to4 relay anycast (deprecated)
        ([192, 168, 0], 16),  // 192.168.0.0/16 private
        ([192, 175, 48], 24), // 192.175.48.0/24 direct delegation AS112
        ([198, 18, 0], 15),   // 198.18.0.0/15 benchmarking
        ([198, 51, 100], 24), // 198.51.100.0/24 documentation (TEST-NET-2)
        ([203, 0, 113], 24),  // 203.0.113.0/24 documentation (TEST-NET-3)
        ([224, 0, 0], 4),     // 224.0.0.0/4 multicast
        ([240, 0, 0], 4),     // 240.0.0.0/4 reserved, and 255.255.255.255
    ];
    BLOCKS.iter().any(|&([a, b, c], bits)| {
        let block = u32::from_be_bytes([0, a, b, c]);
        let shift = 24 - bits;
        prefix >> shift == block >> shift
    })
}

/// The addresses handed out so far, and the way back from an address to its owner: the
/// [`AddressBook`] of Kademlia (on its plan) and Chord (on the private plan).
#[derive(Debug)]
pub struct Addresses {
    plan: AddressPlan,
    /// Draws the public plan's /24s and hosts: its own generator, so the private plan
    /// draws nothing and replays the runs recorded before the public plan existed.
    rng: ChaCha8Rng,
    /// /24s given out (public plan), so no two owners share one by chance.
    used: BTreeSet<u32>,
    /// The /24s the Sybils share (public plan with `sybil_prefixes`), drawn on first use.
    sybil_prefixes: Vec<u32>,
    honest: Vec<Ipv4Addr>,
    sybils: Vec<Ipv4Addr>,
    /// Public plan: address -> event-queue index (honest `i`, or `SYBIL_BIT | s`).
    owner: BTreeMap<u32, u32>,
}

impl Addresses {
    pub(crate) fn new(plan: AddressPlan, seed: u64) -> Addresses {
        Addresses {
            plan,
            rng: ChaCha8Rng::seed_from_u64(mix64(seed ^ 0xadd2_e55e_5000_0001)),
            used: BTreeSet::new(),
            sybil_prefixes: Vec::new(),
            honest: Vec::new(),
            sybils: Vec::new(),
            owner: BTreeMap::new(),
        }
    }

    /// A public /24 nobody has yet. Panics beyond [`MAX_PUBLIC_PREFIXES`] (the binary
    /// refuses such runs before they start).
    fn fresh_prefix(&mut self) -> u32 {
        assert!(
            self.used.len() < MAX_PUBLIC_PREFIXES,
            "the public address plan has no more /24s to give"
        );
        loop {
            let p = self.rng.next_u32() >> 8;
            if !is_reserved_prefix(p) && self.used.insert(p) {
                return p;
            }
        }
    }

    /// A host of /24 `prefix` drawn at random.
    fn random_host(&mut self, prefix: u32) -> u32 {
        let host = 1 + ((self.rng.next_u32() as u64 * HOSTS_PER_PREFIX as u64) >> 32) as u32;
        (prefix << 8) | host
    }

    /// The address of the next honest node (its index is the number given out so far).
    pub(crate) fn add_honest(&mut self) -> Ipv4Addr {
        let i = self.honest.len() as u32;
        let ip = match self.plan {
            AddressPlan::Private => FIRST_ADDR + i,
            AddressPlan::Public { .. } => {
                let p = self.fresh_prefix();
                let ip = self.random_host(p);
                self.owner.insert(ip, i);
                ip
            }
        };
        self.honest.push(Ipv4Addr::from(ip));
        Ipv4Addr::from(ip)
    }

    /// The address of the next Sybil. Panics beyond [`AddressPlan::max_sybils`] (the
    /// binary refuses such runs before they start).
    pub(crate) fn add_sybil(&mut self) -> Ipv4Addr {
        let s = self.sybils.len();
        assert!(
            s < self.plan.max_sybils(),
            "too many Sybils for the address plan"
        );
        let ip = match self.plan {
            AddressPlan::Private => SYBIL_FIRST_ADDR + s as u32,
            AddressPlan::Public { sybil_prefixes } => {
                let ip = match sybil_prefixes {
                    None => {
                        let p = self.fresh_prefix();
                        self.random_host(p)
                    }
                    Some(n) => {
                        // Round-robin over the shared /24s, hosts .1, .2, ... in turn.
                        if self.sybil_prefixes.len() < n {
                            let p = self.fresh_prefix();
                            self.sybil_prefixes.push(p);
                        }
                        (self.sybil_prefixes[s % n] << 8) | (1 + (s / n) as u32)
                    }
                };
                self.owner.insert(ip, SYBIL_BIT | s as u32);
                ip
            }
        };
        self.sybils.push(Ipv4Addr::from(ip));
        Ipv4Addr::from(ip)
    }

    /// The address of the next Sybil, `ip` (public plan; an attacker's budget chose
    /// it from [`Addresses::attacker_prefixes`]). Panics if someone has it already.
    pub(crate) fn add_sybil_at(&mut self, ip: Ipv4Addr) -> Ipv4Addr {
        let s = self.sybils.len() as u32;
        let prev = self.owner.insert(u32::from(ip), SYBIL_BIT | s);
        assert!(prev.is_none(), "{ip} is taken");
        self.sybils.push(ip);
        ip
    }

    /// The /24s (first 24 bits) of one attacker's address budget, none of them
    /// anyone's yet: one /24; the 256 /24s of one /16; or `n` /24s in `n` different
    /// /16s. Public plan only.
    pub(crate) fn attacker_prefixes(&mut self, budget: EclipseBudget) -> Vec<u32> {
        match budget {
            EclipseBudget::Slash24 => vec![self.fresh_prefix()],
            EclipseBudget::Slash16 => loop {
                let p16 = self.rng.next_u32() >> 16;
                let all: Vec<u32> = (0..256).map(|x| (p16 << 8) | x).collect();
                if all
                    .iter()
                    .all(|&p| !is_reserved_prefix(p) && !self.used.contains(&p))
                {
                    self.used.extend(all.iter().copied());
                    break all;
                }
            },
            EclipseBudget::Slash24s(n) => {
                let mut out: Vec<u32> = Vec::with_capacity(n);
                while out.len() < n {
                    let p = self.fresh_prefix();
                    if out.iter().all(|q| q >> 8 != p >> 8) {
                        out.push(p);
                    }
                }
                out
            }
        }
    }

    /// Honest node `i`'s address.
    pub(crate) fn honest(&self, i: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.honest[i], PORT))
    }

    /// Sybil `s`'s address.
    pub(crate) fn sybil(&self, s: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.sybils[s], PORT))
    }

    /// The address of event-queue index `i` (honest or Sybil).
    pub(crate) fn of_index(&self, i: u32) -> SocketAddr {
        if i & SYBIL_BIT != 0 {
            self.sybil((i & !SYBIL_BIT) as usize)
        } else {
            self.honest(i as usize)
        }
    }

    /// Event-queue index of `addr`: an honest node's index, or `SYBIL_BIT | s`.
    pub(crate) fn index_of(&self, addr: &SocketAddr) -> Option<u32> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        if v4.port() != PORT {
            return None;
        }
        let ip = u32::from(*v4.ip());
        match self.plan {
            AddressPlan::Private => {
                if let Some(s) = ip.checked_sub(SYBIL_FIRST_ADDR) {
                    if (s as usize) < self.sybils.len() {
                        return Some(SYBIL_BIT | s);
                    }
                }
                let i = ip.checked_sub(FIRST_ADDR)?;
                ((i as usize) < self.honest.len()).then_some(i)
            }
            AddressPlan::Public { .. } => self.owner.get(&ip).copied(),
        }
    }
}

impl AddressBook for Addresses {
    type Peer = SocketAddr;

    fn add_node(&mut self) -> SocketAddr {
        self.add_honest();
        self.honest(self.honest.len() - 1)
    }

    fn peer(&self, i: u32) -> SocketAddr {
        self.of_index(i)
    }

    fn index_of(&self, peer: &SocketAddr) -> Option<u32> {
        Addresses::index_of(self, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn reserved_blocks_are_recognised() {
        for a in [
            "0.1.2.3",
            "10.9.9.9",
            "100.64.0.1",
            "100.127.255.1",
            "127.0.0.1",
            "169.254.3.3",
            "172.16.0.1",
            "172.31.255.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            let ip: Ipv4Addr = a.parse().unwrap();
            assert!(is_reserved_prefix(u32::from(ip) >> 8), "{a}");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.1",
            "100.128.0.1",
            "172.15.255.1",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.1",
            "198.20.0.1",
            "223.255.255.1",
        ] {
            let ip: Ipv4Addr = a.parse().unwrap();
            assert!(!is_reserved_prefix(u32::from(ip) >> 8), "{a}");
        }
    }

    #[test]
    fn public_plan_gives_public_distinct_prefixes_and_finds_owners() {
        let mut a = Addresses::new(
            AddressPlan::Public {
                sybil_prefixes: None,
            },
            5,
        );
        let mut prefixes = BTreeSet::new();
        for i in 0..5000 {
            let ip = a.add_honest();
            assert_eq!(
                dht_core::locality(IpAddr::V4(ip)),
                dht_core::Locality::Public
            );
            assert!(!dht_core::is_unusable(IpAddr::V4(ip)), "{ip}");
            assert!(!dht_core::is_bep42_exempt(IpAddr::V4(ip)), "{ip}");
            let host = ip.octets()[3];
            assert!((1..=254).contains(&host), "{ip}");
            assert!(prefixes.insert(u32::from(ip) >> 8), "{ip}: /24 given twice");
            assert_eq!(a.index_of(&a.honest(i)), Some(i as u32));
        }
        for s in 0..1000 {
            let ip = a.add_sybil();
            assert!(prefixes.insert(u32::from(ip) >> 8), "{ip}: /24 given twice");
            assert_eq!(a.index_of(&a.sybil(s)), Some(SYBIL_BIT | s as u32));
        }
        let stranger = SocketAddr::from(([1, 2, 3, 4], PORT));
        assert_eq!(a.index_of(&stranger), None);
    }

    #[test]
    fn shared_sybil_prefixes() {
        let plan = AddressPlan::Public {
            sybil_prefixes: Some(4),
        };
        assert_eq!(plan.max_sybils(), 4 * 254);
        let mut a = Addresses::new(plan, 6);
        a.add_honest();
        let ips: Vec<Ipv4Addr> = (0..plan.max_sybils()).map(|_| a.add_sybil()).collect();
        let prefixes: BTreeSet<u32> = ips.iter().map(|ip| u32::from(*ip) >> 8).collect();
        assert_eq!(prefixes.len(), 4);
        let distinct: BTreeSet<&Ipv4Addr> = ips.iter().collect();
        assert_eq!(distinct.len(), ips.len(), "every Sybil has its own address");
        assert!(!prefixes.contains(&(u32::from(a.honest[0]) >> 8)));
    }

    #[test]
    fn private_plan_is_the_old_one() {
        let mut a = Addresses::new(AddressPlan::Private, 1);
        assert_eq!(a.add_honest(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a.add_honest(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(a.add_sybil(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(a.index_of(&a.honest(1)), Some(1));
        assert_eq!(a.index_of(&a.sybil(0)), Some(SYBIL_BIT));
    }
}
