//! Defenses against hostile peers that live in the core: per-IP query rate limits with
//! temporary bans, a global budget for reply bytes, and the address exemption.
//!
//! Both limiters are token buckets refilled from the `now` passed in, so they replay
//! exactly in a simulation. Memory is bounded: at most `max_tracked` sources are
//! remembered, and every new source looks at a few tracked sources after a rotating
//! cursor and forgets the idle ones among them (an idle source answers as an absent
//! one), so the table holds about the recently active sources; when it is full and
//! none of those is idle, the newcomer shares one overflow bucket (so a flood from many spoofed addresses is
//! limited as a whole instead of growing memory; that bucket drops, never bans). Either way one datagram costs one
//! map lookup plus a bounded sweep, never a pass over the whole table.
//!
//! A source is an IPv4 address or an IPv6 /64 ([`source_of`]): a host is usually
//! given a whole /64, so keying by full IPv6 address would give one host 2^64 sources.
//!
//! Over-rate queries from any source are dropped, but only a source that proved its
//! address is banned: one that answered a query of ours or presented a valid write
//! token ([`RateLimiter::prove`]). A UDP source address is trivially forged, so
//! banning on drops alone would let anyone get a victim banned by flooding in its
//! name. Proven sources are a bounded record too ([`PROVEN_MAX`], oldest out).

mod proven;
mod sources;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// How BEP 42 secure ids are used when judging other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bep42Mode {
    /// Ignore BEP 42.
    Off,
    /// Verified nodes win over unverified ones for a place in a full bucket.
    Prefer,
    /// Nodes whose id does not fit their (non-exempt) IP never enter the table.
    Enforce,
}

/// Settings of the defenses (see [`crate::Config::defense`]).
///
/// `#[non_exhaustive]`: start from `Default` and set the fields you change.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Defense {
    /// Loopback sources (and private, link-local and unique-local ones when
    /// [`Defense::local_listen`] is set) are exempt from rate limits, bans, the send
    /// budget, per-source storage quotas, one-slot-per-IP swarms, lookup diversity
    /// and per-IP or per-prefix caps, so loopback testnets and benchmarks work, where
    /// every node shares 127.0.0.1. Turn off to apply every defense to such addresses
    /// (tests then use distinct 127.x.y.z sources).
    pub exempt_local: bool,
    /// The node itself listens on a private (or link-local, unique-local) address, so
    /// its peers are its LAN and private sources are exempt like loopback. A node on a
    /// public address, or behind a NAT or in a container that forwards a public port,
    /// must have this off: there, strangers can arrive from private addresses (the
    /// NAT's, the bridge's). The runtime sets it from the address it binds. True by
    /// default so that in-memory networks on private addresses (the simulator, tests)
    /// behave as before; a runtime on a public or unspecified address sets false.
    pub local_listen: bool,
    /// Most candidates of one lookup that share an IP, an IPv6 /64 counting as one IP
    /// (non-exempt addresses), as libtorrent's `restrict_search_ips`: one host
    /// answering from many ports, or from the many addresses of its /64, cannot be all
    /// of the k closest and receive every put and announce. `None`: no limit.
    pub lookup_max_per_ip: Option<usize>,
    /// Most candidates of one lookup from one IPv4 /24 (non-exempt addresses): one
    /// network cannot be all of the k closest either. 2, as
    /// [`Defense::max_per_prefix_in_bucket`]. `None`: no limit.
    pub lookup_max_per_prefix: Option<usize>,
    /// Most candidates of one lookup from one IPv4 /16 (non-exempt addresses): an
    /// attacker with a whole /16 could be all of the k closest two per /24, and a
    /// targeted eclipse from one /16 then receives every put of its key. 4, half of
    /// k = 8, so that the k closest span at least two /16s. `None`: no limit.
    pub lookup_max_per_v4_16: Option<usize>,
    /// Queries per second allowed from one IP, sustained. A busy honest client sends
    /// a few per second; 50 leaves a wide margin.
    pub queries_per_sec: f64,
    /// Queries one IP may send in a burst above the sustained rate.
    pub query_burst: f64,
    /// Dropped queries after which a source is banned.
    pub ban_after_drops: u32,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// Most sources tracked at once (memory bound).
    pub max_tracked: usize,
    /// Reply bytes per second for all non-exempt destinations together; `None` = no cap.
    /// 8 MiB/s is far above what a node on the public DHT sends (tens of KB/s) and
    /// bounds what a reflection flood can get out of us.
    pub reply_bytes_per_sec: Option<u64>,
    /// Most nodes with the same IP in a routing table (1: one endpoint per host, as
    /// libtorrent does by default; a Sybil host cannot fill buckets with many ports).
    pub max_per_ip: usize,
    /// Most nodes from the same /24 (IPv6: /64) in one bucket.
    pub max_per_prefix_in_bucket: usize,
    /// Most nodes from the same /24 (IPv6: /64) in a whole table.
    pub max_per_prefix_in_table: usize,
    /// Replies to an address with no earlier exchange (not in our routing table) are
    /// trimmed to this many bytes: nodes, peers and samples go first, so a spoofed
    /// query reflects at most about 512 bytes (×5 a typical query). A BEP 44 value is
    /// never trimmed: gets reach holders from nodes they never met, by design, so a get
    /// of a 1000-byte item still reflects about ×16. `None`: no limit but the sizes.
    pub stranger_reply_bytes: Option<usize>,
    /// BEP 42 for others' ids. `Prefer` by default: most of the live DHT does not use
    /// secure ids yet, so enforcing would shrink tables for little gain.
    pub bep42: Bep42Mode,
}

impl Default for Defense {
    fn default() -> Self {
        Defense {
            exempt_local: true,
            local_listen: true,
            lookup_max_per_ip: Some(1),
            lookup_max_per_prefix: Some(2),
            lookup_max_per_v4_16: Some(4),
            queries_per_sec: 50.0,
            query_burst: 100.0,
            ban_after_drops: 200,
            ban_duration: Duration::from_secs(600),
            max_tracked: 65_536,
            reply_bytes_per_sec: Some(8 << 20),
            max_per_ip: 1,
            max_per_prefix_in_bucket: 2,
            max_per_prefix_in_table: 8,
            stranger_reply_bytes: Some(512),
            bep42: Bep42Mode::Prefer,
        }
    }
}

impl Defense {
    /// The bounds a lookup puts on candidates at `ip` ([`Defense::lookup_max_per_ip`],
    /// [`Defense::lookup_max_per_prefix`]); none for an exempt address.
    pub fn lookup_diversity(&self, ip: IpAddr) -> crate::lookup::Diversity {
        if self.is_exempt(ip) {
            return crate::lookup::Diversity::default();
        }
        crate::lookup::Diversity {
            per_host: self.lookup_max_per_ip,
            per_v4_prefix: self.lookup_max_per_prefix,
            per_v4_16: self.lookup_max_per_v4_16,
        }
    }

    /// True when `ip` is exempt under these settings: loopback always (unless
    /// `exempt_local` is off), private, link-local and unique-local only when the node
    /// listens on such an address itself.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt_local
            && match locality(ip) {
                Locality::Loopback => true,
                Locality::Private => self.local_listen,
                Locality::Public => false,
            }
    }
}

/// How far an address reaches, from most local to least: a contact learned from a
/// peer may not be more local than that peer (a public node has no business sending
/// us to our own loopback or LAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Locality {
    /// 127/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10.
    Private,
    /// Everything else.
    Public,
}

/// The [`Locality`] of `ip` (IPv4-mapped IPv6 addresses as their IPv4 address).
pub fn locality(ip: IpAddr) -> Locality {
    match ip {
        IpAddr::V4(a) if a.is_loopback() => Locality::Loopback,
        IpAddr::V4(a) if a.is_private() || a.is_link_local() => Locality::Private,
        IpAddr::V4(_) => Locality::Public,
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return locality(IpAddr::V4(v4));
            }
            let s = a.segments()[0];
            if a.is_loopback() {
                Locality::Loopback
            } else if (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80 {
                Locality::Private
            } else {
                Locality::Public
            }
        }
    }
}

/// True for an address no contact can have: unspecified, multicast or broadcast.
pub fn is_unusable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => is_unusable(IpAddr::V4(v4)),
            None => a.is_unspecified() || a.is_multicast(),
        },
    }
}

/// The source an address counts as for rate limits, bans, tokens and storage quotas:
/// an IPv4 address as itself, an IPv6 address as its /64 (the rest zeroed), an
/// IPv4-mapped IPv6 address as its IPv4 address.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = a.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Loopback, private, link-local, unique-local and unspecified addresses.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified()
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let s = a.segments()[0];
            a.is_loopback()
                || a.is_unspecified()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80
        }
    }
}

/// The /24 (IPv4) or /64 (IPv6) an address belongs to, as a comparable key.
pub fn prefix_of(ip: IpAddr) -> [u8; 8] {
    let mut k = [0u8; 8];
    match ip {
        IpAddr::V4(a) => {
            k[0] = 4;
            k[1..4].copy_from_slice(&a.octets()[..3]);
        }
        IpAddr::V6(a) => k.copy_from_slice(&a.octets()[..8]),
    }
    k
}

/// One source's token bucket. Times are nanoseconds since the limiter's first query
/// ([`RateLimiter::clock`]): 32 bytes instead of 48 with two `Instant`s, for every
/// source tracked by every node of a large simulation; differences of them are the
/// same durations the instants would give.
#[derive(Clone, Copy, Debug)]
struct Source {
    tokens: f64,
    last: u64,
    /// Banned until this time plus one; 0: not banned.
    banned_until: u64,
    drops: u32,
}

/// What the limiter says about one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// Drop it silently (over the rate).
    Drop,
    /// Drop it: the source is banned.
    Banned,
}

/// Tracked sources a new source looks at, when the table is full, for an idle one
/// whose place it can take. A constant, so a datagram's cost does not grow with the
/// table.
const SWEEP: usize = 8;

/// Most proven sources remembered; past it those proven longest ago are forgotten,
/// half of the record at a time (they can prove themselves again), so a flood of
/// replies cannot grow memory. A source proven among the last `PROVEN_MAX / 2`
/// distinct proofs is always remembered.
pub const PROVEN_MAX: usize = 65_536;

/// Per-source token buckets with bans (sources as [`source_of`] gives them).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    sources: sources::SourceMap<Source>,
    overflow: Option<Source>,
    /// Where the next sweep for idle sources starts (a clock hand over the keys).
    cursor: Option<IpAddr>,
    /// Sources that proved their address; only these are ever banned.
    proven: proven::ProvenSources,
    /// What [`Source`] times count from: the first query's instant.
    epoch: Option<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

impl RateLimiter {
    /// No sources tracked yet.
    pub fn new() -> RateLimiter {
        RateLimiter {
            sources: sources::SourceMap::default(),
            overflow: None,
            cursor: None,
            proven: proven::ProvenSources::default(),
            epoch: None,
        }
    }

    /// `now` in nanoseconds since the first query (which sets the epoch).
    fn clock(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        nanos_since(epoch, now)
    }

    /// Records that `ip`'s source proved its address (it answered a query of ours, or
    /// presented a write token we issued to it): from now on, flooding gets it banned.
    pub fn prove(&mut self, ip: IpAddr, d: &Defense) {
        if d.is_exempt(ip) {
            return;
        }
        self.proven.insert(source_of(ip));
    }

    /// Sources currently tracked.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// True when `ip`'s source is banned at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let (Some(epoch), Some(s)) = (self.epoch, self.sources.get(&source_of(ip))) else {
            return false;
        };
        s.banned_until != 0 && nanos_since(epoch, now) < s.banned_until - 1
    }

    /// Accounts one query from `ip` (its source) at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant, d: &Defense) -> Verdict {
        if d.is_exempt(ip) {
            return Verdict::Allow;
        }
        let ip = source_of(ip);
        let proven = self.proven.contains(ip);
        let now = self.clock(now);
        // Every new source sweeps a few tracked ones for idle buckets, full table or
        // not: an idle source (bucket full again, no ban) answers exactly as an absent
        // one, so forgetting it changes no verdict, and the table holds the sources
        // active in the last `query_burst / queries_per_sec` seconds instead of every
        // source seen until `max_tracked` (a simulated node kept ~130, 12 KB).
        if !self.sources.contains_key(&ip) {
            self.prune(now, d);
        }
        let fresh = Source {
            tokens: d.query_burst,
            last: now,
            banned_until: 0,
            drops: 0,
        };
        let shared = self.sources.len() >= d.max_tracked && !self.sources.contains_key(&ip);
        let src = if shared {
            self.overflow.get_or_insert(fresh)
        } else {
            self.sources.get_or_insert(ip, fresh)
        };
        if src.banned_until != 0 {
            if now < src.banned_until - 1 {
                return Verdict::Banned;
            }
            src.banned_until = 0;
            src.drops = 0;
            src.tokens = d.query_burst;
        }
        let elapsed = Duration::from_nanos(now.saturating_sub(src.last)).as_secs_f64();
        src.last = now;
        src.tokens = (src.tokens + elapsed * d.queries_per_sec).min(d.query_burst);
        if src.tokens >= 1.0 {
            src.tokens -= 1.0;
            if src.tokens >= d.query_burst - 1.0 {
                src.drops = 0;
            }
            return Verdict::Allow;
        }
        src.drops = src.drops.saturating_add(1);
        // An unproven source may be a victim whose address a flooder forges: its
        // excess is dropped, never turned into a ban. The overflow bucket is never
        // banned either: every newcomer shares it while the table is full, so a ban
        // earned by one flooder would shut out every newcomer.
        if proven && !shared && src.drops >= d.ban_after_drops {
            let ban = u64::try_from(d.ban_duration.as_nanos()).unwrap_or(u64::MAX);
            src.banned_until = now.saturating_add(ban).saturating_add(1);
            return Verdict::Banned;
        }
        Verdict::Drop
    }

    /// Forgets the idle sources (bucket full again, not banned) among the next
    /// [`SWEEP`] after the cursor, wrapping around: bounded work whatever the table
    /// holds, and over successive calls every tracked source is looked at.
    fn prune(&mut self, now: u64, d: &Defense) {
        let full_after = Duration::from_secs_f64(d.query_burst / d.queries_per_sec.max(1e-9));
        let idle = |s: &Source| {
            (s.banned_until == 0 || now >= s.banned_until - 1)
                && Duration::from_nanos(now.saturating_sub(s.last)) >= full_after
        };
        if self.sources.is_empty() {
            return;
        }
        // On the stack: this runs for every new source.
        let mut seen = [(IpAddr::from([0u8; 4]), false); SWEEP];
        let mut n = 0;
        self.sources.sweep(self.cursor, SWEEP, |ip, s| {
            seen[n] = (*ip, idle(s));
            n += 1;
        });
        self.cursor = seen[..n].last().map(|(ip, _)| *ip);
        for &(ip, is_idle) in &seen[..n] {
            if is_idle {
                self.sources.remove(&ip);
            }
        }
    }
}

/// Nanoseconds from `epoch` to `now` (0 before it; u64 nanoseconds span 584 years).
fn nanos_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// A token bucket of bytes per second.
#[derive(Clone, Copy, Debug)]
pub struct ByteBudget {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for ByteBudget {
    fn default() -> Self {
        ByteBudget {
            tokens: 0.0,
            last: None,
        }
    }
}

impl ByteBudget {
    /// Takes `bytes` from a budget of `rate` bytes/s (burst: one second's worth);
    /// false when there is not enough.
    pub fn take(&mut self, bytes: usize, rate: u64, now: Instant) -> bool {
        if self.has(bytes, rate, now) {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

impl ByteBudget {
    /// Whether `bytes` could be taken now (the budget refilled, nothing taken).
    pub fn has(&mut self, bytes: usize, rate: u64, now: Instant) -> bool {
        let burst = rate as f64;
        let elapsed = match self.last {
            Some(l) => now.saturating_duration_since(l).as_secs_f64(),
            None => f64::INFINITY,
        };
        self.last = Some(now);
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst);
        self.tokens >= bytes as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Defense {
        Defense {
            exempt_local: false,
            queries_per_sec: 10.0,
            query_burst: 20.0,
            ban_after_drops: 5,
            ban_duration: Duration::from_secs(60),
            max_tracked: 4,
            ..Defense::default()
        }
    }

    #[test]
    fn burst_then_rate_then_ban() {
        let d = strict();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        rl.prove(ip, &d);
        for _ in 0..20 {
            assert_eq!(rl.check(ip, t0, &d), Verdict::Allow);
        }
        for _ in 0..4 {
            assert_eq!(rl.check(ip, t0, &d), Verdict::Drop);
        }
        assert_eq!(rl.check(ip, t0, &d), Verdict::Banned);
        assert!(rl.is_banned(ip, t0 + Duration::from_secs(59)));
        assert_eq!(
            rl.check(ip, t0 + Duration::from_secs(30), &d),
            Verdict::Banned
        );
        assert_eq!(
            rl.check(ip, t0 + Duration::from_secs(61), &d),
            Verdict::Allow
        );
        // Another source is unaffected.
        assert_eq!(
            rl.check("127.0.0.10".parse().unwrap(), t0, &d),
            Verdict::Allow
        );
    }

    #[test]
    fn an_unproven_source_is_dropped_but_never_banned() {
        let d = strict();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..20 {
            assert_eq!(rl.check(ip, t0, &d), Verdict::Allow);
        }
        for _ in 0..1000 {
            assert_eq!(rl.check(ip, t0, &d), Verdict::Drop);
        }
        assert!(!rl.is_banned(ip, t0));
        assert_eq!(
            rl.check(ip, t0 + Duration::from_secs(1), &d),
            Verdict::Allow
        );
        // Once proven, its next excess is banned.
        rl.prove(ip, &d);
        for _ in 0..100 {
            rl.check(ip, t0 + Duration::from_secs(1), &d);
        }
        assert!(rl.is_banned(ip, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn exempt_by_default() {
        let d = Defense::default();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(
                rl.check("127.0.0.1".parse().unwrap(), t0, &d),
                Verdict::Allow
            );
        }
        assert_eq!(rl.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_under_spoofed_floods() {
        let d = strict();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let mut allowed = 0;
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            if rl.check(ip, t0, &d) == Verdict::Allow {
                allowed += 1;
            }
        }
        assert!(rl.tracked() <= d.max_tracked);
        // 4 tracked sources with a burst of 20 each, plus one shared overflow bucket.
        assert!(allowed <= 5 * 20, "{allowed}");
    }

    #[test]
    fn private_sources_are_exempt_only_when_we_listen_on_a_private_address() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "192.168.1.7".parse().unwrap();
        let ula: IpAddr = "fd00::7".parse().unwrap();
        let public: IpAddr = "198.51.100.1".parse().unwrap();
        let public_node = Defense {
            local_listen: false,
            ..Defense::default()
        };
        assert!(public_node.is_exempt(lo));
        assert!(!public_node.is_exempt(lan) && !public_node.is_exempt(ula));
        let lan_node = Defense::default();
        assert!(lan_node.is_exempt(lan) && lan_node.is_exempt(ula));
        assert!(!lan_node.is_exempt(public));
        let none = Defense {
            exempt_local: false,
            ..Defense::default()
        };
        assert!(!none.is_exempt(lo) && !none.is_exempt(lan));
        // A private source behind a public node's NAT is limited like any other.
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let limited = (0..1000)
            .filter(|_| rl.check(lan, t0, &public_node) != Verdict::Allow)
            .count();
        assert!(limited > 0);
    }

    #[test]
    fn the_shared_overflow_bucket_is_never_banned() {
        let d = strict();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let busy = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        // The table is kept full by four busy sources (never idle at t0).
        for i in 0..4 {
            rl.check(busy(i), t0, &d);
        }
        // A proven newcomer floods through the overflow bucket: dropped, not banned.
        let flooder: IpAddr = "198.51.100.1".parse().unwrap();
        rl.prove(flooder, &d);
        let verdicts: Vec<Verdict> = (0..1000).map(|_| rl.check(flooder, t0, &d)).collect();
        assert!(verdicts.contains(&Verdict::Drop));
        assert!(!verdicts.contains(&Verdict::Banned));
        // A later newcomer shares the bucket's rate, but no ban: once the bucket has
        // refilled it is served.
        for i in 0..4 {
            rl.check(busy(i), t0 + Duration::from_secs(1), &d);
        }
        let newcomer: IpAddr = "198.51.100.2".parse().unwrap();
        assert_eq!(
            rl.check(newcomer, t0 + Duration::from_secs(1), &d),
            Verdict::Allow
        );
    }

    #[test]
    fn a_full_table_takes_new_sources_in_place_of_idle_ones() {
        let d = strict();
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        for i in 0..4u32 {
            rl.check(
                IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                t0,
                &d,
            );
        }
        // Three seconds later every tracked bucket is full again (idle): a newcomer
        // gets its own bucket, and the table does not grow.
        let later = t0 + Duration::from_secs(3);
        let new: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(rl.check(new, later, &d), Verdict::Allow);
        assert!(rl.sources.contains_key(&new));
        assert!(rl.tracked() <= d.max_tracked);
    }

    #[test]
    fn idle_sources_are_forgotten_before_the_table_fills() {
        // The default table holds 65,536 sources; 100 that went idle must not stay in
        // it until it fills. (Without the sweep on every new source: 200 tracked.)
        let d = Defense {
            exempt_local: false,
            ..Defense::default()
        };
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + i));
        for i in 0..100 {
            assert_eq!(rl.check(ip(i), t0, &d), Verdict::Allow);
        }
        assert_eq!(rl.tracked(), 100);
        // Two seconds on (query_burst / queries_per_sec) every bucket is full again.
        let later = t0 + Duration::from_secs(2);
        for i in 100..200 {
            assert_eq!(rl.check(ip(i), later, &d), Verdict::Allow);
        }
        assert_eq!(rl.tracked(), 100);
        // A source still busy is kept, with what it spent: 100 queries at `later`
        // empty its bucket, and a newcomer's sweep does not refill it.
        let busy = ip(150);
        for _ in 0..99 {
            rl.check(busy, later, &d);
        }
        for i in 200..300 {
            rl.check(ip(i), later, &d);
        }
        assert_eq!(rl.check(busy, later, &d), Verdict::Drop);
    }

    #[test]
    fn sources_are_addresses_and_64s() {
        assert_eq!(
            source_of("2001:db8:1:2:aaaa::1".parse().unwrap()),
            source_of("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            source_of("2001:db8:1:2::1".parse().unwrap()),
            source_of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            source_of("::ffff:198.51.100.1".parse().unwrap()),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert!(is_unusable("0.0.0.0".parse().unwrap()));
        assert!(is_unusable("ff02::1".parse().unwrap()));
        assert!(!is_unusable("198.51.100.1".parse().unwrap()));
        assert!(locality("::1".parse().unwrap()) < locality("fe80::1".parse().unwrap()));
    }

    #[test]
    fn byte_budget() {
        let mut b = ByteBudget::default();
        let t0 = Instant::now();
        assert!(b.take(600, 1000, t0));
        assert!(!b.take(600, 1000, t0));
        assert!(b.take(600, 1000, t0 + Duration::from_millis(300)));
    }

    #[test]
    fn locality_and_prefixes() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
        ] {
            assert!(is_local(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "2001:db8::1", "198.18.0.1"] {
            assert!(!is_local(a.parse().unwrap()), "{a}");
        }
        assert_eq!(
            prefix_of("1.2.3.4".parse().unwrap()),
            prefix_of("1.2.3.200".parse().unwrap())
        );
        assert_ne!(
            prefix_of("1.2.3.4".parse().unwrap()),
            prefix_of("1.2.4.4".parse().unwrap())
        );
    }
}
