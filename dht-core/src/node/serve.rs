//! Serving the KRPC queries other nodes send us: ping, find_node, get_peers,
//! announce_peer, BEP 44 get and put, BEP 51 sample_infohashes, and the replies'
//! size rules (hard limits, trimming for strangers, the reply byte budget).
//!
//! A query reaches `on_query` only after the rate limiter and ban list let it
//! through (see `Node::handle_datagram`). Storage limits, global and per source (see
//! `quota.rs`), are enforced here, before the store is asked to keep anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use rand_chacha::rand_core::RngCore;

use crate::bep33::ScrapeFilter;
use crate::bep44::{self, Item};
use crate::defense::source_of;
use crate::id::{Id, NodeInfo};
use crate::krpc::codec::{encode_envelope, BodyRef, Envelope};
use crate::krpc::{self, code, Method, PutArgs, Query, Response, Want};
use crate::store::{Store, StoreError, StoredItem, StoredPeer};

use super::quota::{item_cost, Entry, Resource, PEER_COST};
use super::stats::{ErrorCode, RefusalReason};
use super::{Family, Node};

/// A refusal: what the query is answered with.
pub(super) type Refusal = (i64, &'static str);
/// The global caps are reached: nobody's new data fits.
pub(super) const STORAGE_FULL: Refusal = (code::SERVER, "storage full");
/// This source has used its share; others are still served.
pub(super) const SHARE_USED: Refusal = (code::SERVER, "storage share of this source used up");
/// A bad or expired write token.
const BAD_TOKEN: Refusal = (code::PROTOCOL, "bad token");

/// Most peers returned in one get_peers reply: 50 compact IPv4 peers fill 400 of the
/// 1024 bytes, leaving room for the token and nodes.
const MAX_VALUES_PER_REPLY: usize = 50;
/// Most info_hashes in one BEP 51 sample (20 x 20 bytes).
const MAX_SAMPLES: usize = 20;

/// The BEP 33 flags of a get_peers query.
#[derive(Clone, Copy, Debug)]
struct Bep33 {
    scrape: bool,
    noseed: bool,
}

impl<S: Store> Node<S> {
    pub(super) fn on_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        t: Vec<u8>,
        sender_ro: bool,
        q: Query,
    ) {
        self.stats.queries_answered += 1;
        let fam = Family::of(&from);
        if !sender_ro && q.id != self.id {
            let node = NodeInfo {
                id: q.id,
                addr: from,
            };
            if self.tables[fam.index()].on_query(node, now) {
                self.ping_node(now, node);
            }
        }
        let mut r = Response::new(self.id);
        let mut big = false;
        // Group commit: a write's reply goes out only once the write is durable.
        let write = matches!(q.method, Method::AnnouncePeer { .. } | Method::Put(_));
        let result: Result<(), Refusal> = match q.method {
            Method::Ping => Ok(()),
            Method::FindNode { target, want } => {
                self.fill_nodes(&mut r, &target, want, fam, now);
                Ok(())
            }
            Method::GetPeers {
                info_hash,
                want,
                scrape,
                noseed,
            } => {
                let bep33 = Bep33 { scrape, noseed };
                self.serve_get_peers(now, from, info_hash, want, bep33, &mut r)
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                token,
                implied_port,
                seed,
            } => {
                let port = (!implied_port).then_some(port);
                self.serve_announce(now, from, info_hash, port, seed, &token)
            }
            Method::Get { target, seq, want } => {
                big = true;
                self.serve_get(now, from, target, seq, want, &mut r)
            }
            Method::Put(args) => self.serve_put(now, from, args),
            Method::SampleInfohashes { target, want } => {
                self.serve_samples(now, target, want, fam, &mut r)
            }
            Method::Unknown { .. } => Err((code::METHOD_UNKNOWN, "method unknown")),
        };
        match result {
            Ok(()) => self.send_response(now, from, t, r, big, write),
            Err((c, m)) => self.send_error(now, from, t, c, m),
        }
    }

    fn fill_nodes(&mut self, r: &mut Response, target: &Id, want: Want, fam: Family, now: Instant) {
        let k = self.config.k;
        let (v4, v6) = if want.is_empty() {
            (fam == Family::V4, fam == Family::V6)
        } else {
            (want.v4, want.v6)
        };
        if v4 {
            r.nodes = self.tables[0].closest(target, k, now);
        }
        if v6 {
            r.nodes6 = self.tables[1].closest(target, k, now);
        }
    }

    pub(super) fn store_err(&mut self, _e: StoreError) -> Refusal {
        self.stats.store_errors += 1;
        (code::SERVER, "store error")
    }

    fn serve_get_peers(
        &mut self,
        now: Instant,
        from: SocketAddr,
        info_hash: Id,
        want: Want,
        bep33: Bep33,
        r: &mut Response,
    ) -> Result<(), Refusal> {
        r.token = Some(self.issue_token(now, from));
        let wall = self.wall(now);
        let stored: Vec<StoredPeer> = match self.store.get_peers(&info_hash) {
            Ok(p) => p.into_iter().filter(|p| p.expires_at > wall).collect(),
            Err(e) => return Err(self.store_err(e)),
        };
        if bep33.scrape && !stored.is_empty() {
            let (seeds, others) = swarm_filters(&stored);
            r.bf_seeds = Some(seeds);
            r.bf_peers = Some(others);
        }
        let fam = Family::of(&from);
        let mut peers: Vec<SocketAddr> = Vec::with_capacity(stored.len());
        if bep33.noseed {
            // Non-seeds first; seeds only fill what is left (a seed asks for peers
            // it can upload to).
            let (seeds, others): (Vec<&StoredPeer>, Vec<&StoredPeer>) =
                stored.iter().partition(|p| p.seed);
            peers.extend(others.iter().chain(seeds.iter()).map(|p| p.addr));
            peers.retain(|p| Family::of(p) == fam);
            peers.truncate(MAX_VALUES_PER_REPLY);
        } else {
            peers.extend(stored.iter().map(|p| p.addr));
            peers.retain(|p| Family::of(p) == fam);
        }
        if peers.len() > MAX_VALUES_PER_REPLY {
            // A random subset, so that every peer of a big swarm gets handed out.
            self.rng.with(|rng| {
                for i in 0..MAX_VALUES_PER_REPLY {
                    let j = i + (rng.next_u32() as usize) % (peers.len() - i);
                    peers.swap(i, j);
                }
            });
            peers.truncate(MAX_VALUES_PER_REPLY);
        }
        r.values = peers;
        self.fill_nodes(r, &info_hash, want, fam, now);
        Ok(())
    }

    fn serve_announce(
        &mut self,
        now: Instant,
        from: SocketAddr,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
        token: &[u8],
    ) -> Result<(), Refusal> {
        if !self.check_token(now, from, token) {
            return Err(BAD_TOKEN);
        }
        // `None`: implied_port, the UDP source port.
        let port = port.unwrap_or(from.port());
        if port == 0 {
            return Err((code::PROTOCOL, "invalid port"));
        }
        let addr = SocketAddr::new(from.ip(), port);
        let src = source_of(from.ip());
        let exempt = self.config.defense.is_exempt(from.ip());
        let wall = self.wall(now);
        let peers = match self.store.get_peers(&info_hash) {
            Ok(p) => p,
            Err(e) => return Err(self.store_err(e)),
        };
        let lim = self.config.limits;
        // BEP 33: <info_hash, IP> is unique, so one host cannot take a swarm over from
        // many ports; a later announce from the same IP moves its slot to the new port.
        // One IPv6 host holds a whole /64 (as tokens and shares count it), so its slot
        // is per /64, or it could take a swarm over from many addresses. Exempt sources
        // keep one slot per address: a loopback testnet shares 127.0.0.1.
        let previous = peers
            .iter()
            .find(|p| {
                if exempt {
                    p.addr == addr
                } else {
                    source_of(p.addr.ip()) == src
                }
            })
            .map(|p| p.addr);
        match previous {
            Some(prev) if prev != addr => {
                if let Err(e) = self.store.remove_peer(&info_hash, &prev) {
                    return Err(self.store_err(e));
                }
                self.ledger.release(&Entry::Peer(info_hash, prev));
            }
            Some(_) => {}
            None => {
                let entry = Entry::Peer(info_hash, addr);
                if !exempt {
                    self.check_shares(src, &entry, PEER_COST)?;
                }
                // `max(1)`: an empty swarm is never full (`Config::validate` refuses 0,
                // which took every announce past the info_hash and byte caps).
                if peers.len() >= lim.max_peers_per_swarm.max(1) {
                    // Full swarm: the soonest-expiring peer makes room (no net bytes). A
                    // newcomer from a network that already holds slots takes the place
                    // of one of its own network's: the soonest-expiring peers are the
                    // honest ones that announced first, and a network rotating through
                    // its addresses must not push them out.
                    let net = network_of(from.ip());
                    let own = peers
                        .iter()
                        .filter(|p| !exempt && network_of(p.addr.ip()) == net)
                        .min_by_key(|p| (p.expires_at, p.addr));
                    let victim =
                        own.or_else(|| peers.iter().min_by_key(|p| (p.expires_at, p.addr)));
                    if let Some(oldest) = victim {
                        if let Err(e) = self.store.remove_peer(&info_hash, &oldest.addr) {
                            return Err(self.store_err(e));
                        }
                        self.ledger.release(&Entry::Peer(info_hash, oldest.addr));
                    }
                } else {
                    if peers.is_empty() {
                        let full = |n: &Self| {
                            n.store
                                .counts()
                                .map(|c| c.info_hashes >= lim.max_info_hashes)
                        };
                        self.make_room(src, Resource::Swarms, 1, &entry, full)?;
                    }
                    let over = |n: &Self| Ok(n.ledger.total_bytes() + PEER_COST > lim.max_bytes);
                    self.make_room(src, Resource::Bytes, PEER_COST, &entry, over)?;
                }
            }
        }
        let peer = StoredPeer {
            addr,
            expires_at: wall + self.config.peer_ttl.as_millis() as u64,
            seed,
        };
        self.store
            .put_peer(&info_hash, peer)
            .map_err(|e| self.store_err(e))?;
        self.ledger.charge(
            Entry::Peer(info_hash, addr),
            (!exempt).then_some(src),
            PEER_COST,
            peer.expires_at,
        );
        Ok(())
    }

    /// Counts a refusal for lack of room and hands it back.
    pub(super) fn refuse(&mut self, r: Refusal, why: RefusalReason) -> Refusal {
        self.stats.storage_refused += 1;
        self.stats.storage_refused_by.bump(why);
        r
    }

    /// A write token for `from` (counted).
    fn issue_token(&mut self, now: Instant, from: SocketAddr) -> Vec<u8> {
        self.stats.tokens_issued += 1;
        self.tokens
            .issue(now, source_of(from.ip()), &mut self.rng)
            .to_vec()
    }

    /// Whether `token` is one we issued to `from`'s source and still honour; a
    /// refusal is counted.
    fn check_token(&mut self, now: Instant, from: SocketAddr, token: &[u8]) -> bool {
        let ok = self
            .tokens
            .check(now, source_of(from.ip()), token, &mut self.rng);
        if ok {
            // Only the source we issued the token to could read it: its address is real.
            self.limiter.prove(from.ip(), &self.config.defense);
        } else {
            self.stats.tokens_refused += 1;
        }
        ok
    }

    fn serve_get(
        &mut self,
        now: Instant,
        from: SocketAddr,
        target: Id,
        seq: Option<i64>,
        want: Want,
        r: &mut Response,
    ) -> Result<(), Refusal> {
        r.token = Some(self.issue_token(now, from));
        let wall = self.wall(now);
        let item = match self.store.get_item(&target) {
            Ok(i) => i.filter(|i| i.expires_at > wall),
            Err(e) => return Err(self.store_err(e)),
        };
        if let Some(stored) = item {
            match stored.item {
                Item::Immutable { value } => r.value = Some(value),
                Item::Mutable(m) => {
                    r.seq = Some(m.seq);
                    // BEP 44: with `seq` given and nothing newer, k, v and sig are omitted.
                    if seq.is_none_or(|s| m.seq > s) {
                        r.value = Some(m.value);
                        r.key = Some(m.key);
                        r.signature = Some(m.signature);
                    }
                }
            }
        }
        self.fill_nodes(r, &target, want, Family::of(&from), now);
        Ok(())
    }

    fn serve_put(&mut self, now: Instant, from: SocketAddr, args: PutArgs) -> Result<(), Refusal> {
        // Checked in this order: 205, 207, 203 (token), 206, 301, 302.
        if args.item.value().len() > krpc::MAX_VALUE_LEN {
            return Err((code::VALUE_TOO_BIG, "message (v field) too big"));
        }
        if let Item::Mutable(m) = &args.item {
            if m.salt.len() > krpc::MAX_SALT_LEN {
                return Err((code::SALT_TOO_BIG, "salt (salt field) too big"));
            }
        }
        if !self.check_token(now, from, &args.token) {
            return Err(BAD_TOKEN);
        }
        let wall = self.wall(now);
        let expires_at = wall + self.config.item_ttl.as_millis() as u64;
        let target = match &args.item {
            Item::Immutable { value } => bep44::immutable_target(value),
            Item::Mutable(m) => {
                if !m.verify() {
                    return Err((code::INVALID_SIGNATURE, "invalid signature"));
                }
                m.target()
            }
        };
        let existing = match self.store.get_item(&target) {
            Ok(i) => i.filter(|i| i.expires_at > wall),
            Err(e) => return Err(self.store_err(e)),
        };
        if let (Item::Mutable(m), Some(Item::Mutable(old))) =
            (&args.item, existing.as_ref().map(|e| &e.item))
        {
            if args.cas.is_some_and(|c| c != old.seq) {
                return Err((
                    code::CAS_MISMATCH,
                    "the CAS hash mismatched, re-read value and try again",
                ));
            }
            let same_value = old.value == m.value;
            if m.seq < old.seq || (m.seq == old.seq && !same_value) {
                return Err((code::SEQ_TOO_LOW, "sequence number less than current"));
            }
        }
        let lim = self.config.limits;
        let entry = Entry::Item(target);
        let cost = item_cost(&args.item);
        let src = source_of(from.ip());
        let exempt = self.config.defense.is_exempt(from.ip());
        // Shares first: a source (or network) past its share is refused before a
        // full cap evicts anything for it.
        if !exempt {
            self.check_shares(src, &entry, cost)?;
        }
        if existing.is_none() {
            let full = |n: &Self| n.store.counts().map(|c| c.items >= lim.max_items);
            self.make_room(src, Resource::Items, 1, &entry, full)?;
        }
        let freed = self.ledger.bytes_of(&entry);
        let over = |n: &Self| Ok(n.ledger.total_bytes() - freed + cost > lim.max_bytes);
        self.make_room(src, Resource::Bytes, cost, &entry, over)?;
        let item = StoredItem {
            target,
            item: args.item,
            expires_at,
        };
        self.store.put_item(item).map_err(|e| self.store_err(e))?;
        self.ledger
            .charge(entry, (!exempt).then_some(src), cost, expires_at);
        Ok(())
    }

    fn serve_samples(
        &mut self,
        now: Instant,
        target: Id,
        want: Want,
        fam: Family,
        r: &mut Response,
    ) -> Result<(), Refusal> {
        let start = Id::random(&mut self.rng);
        let samples = match self.store.info_hashes(&start, MAX_SAMPLES) {
            Ok(s) => s,
            Err(e) => return Err(self.store_err(e)),
        };
        let num = match self.store.counts() {
            Ok(c) => c.info_hashes as i64,
            Err(e) => return Err(self.store_err(e)),
        };
        r.samples = Some(samples);
        r.num = Some(num);
        r.interval = Some(self.config.sample_interval_secs);
        self.fill_nodes(r, &target, want, fam, now);
        Ok(())
    }

    /// True for a non-exempt address with no earlier exchange (not in our table).
    fn is_stranger(&self, to: &SocketAddr) -> bool {
        !self.config.defense.is_exempt(to.ip())
            && !self.tables[Family::of(to).index()].has_endpoint(to)
    }

    /// True when a reply of `len` bytes to `to` is over the global reply budget
    /// (nothing is taken: `push_reply` takes it).
    fn over_budget(&mut self, now: Instant, to: &SocketAddr, len: usize) -> bool {
        let d = &self.config.defense;
        match d.reply_bytes_per_sec {
            Some(rate) if !d.is_exempt(to.ip()) => !self.reply_budget.has(len, rate, now),
            _ => false,
        }
    }

    /// Replies to non-exempt addresses draw on the global reply budget. Once it is
    /// spent, only nodes in our routing table are still answered, and only within the
    /// stranger size (`send_response` trims their replies to it): they have answered
    /// our queries, so a flood from many spoofed sources that spends the budget cannot
    /// starve them, and a flood forged in their name reflects no more to them than to
    /// a stranger (untrimmed, a get_peers reply to one was up to 1,432 bytes, x14).
    /// `after_commit`: the reply to a write (see `Transmit::after_commit`).
    fn push_reply(&mut self, now: Instant, to: SocketAddr, buf: Vec<u8>, after_commit: bool) {
        let d = &self.config.defense;
        if let Some(rate) = d.reply_bytes_per_sec {
            if !d.is_exempt(to.ip())
                && !self.reply_budget.take(buf.len(), rate, now)
                && (d.stranger_reply_bytes.is_some_and(|s| buf.len() > s)
                    || !self.tables[Family::of(&to).index()].has_endpoint(&to))
            {
                self.stats.budget_dropped += 1;
                self.recycle(buf);
                return;
            }
        }
        self.push_transmit_after(to, buf, after_commit);
    }

    fn send_response(
        &mut self,
        now: Instant,
        to: SocketAddr,
        t: Vec<u8>,
        mut r: Response,
        carries_value: bool,
        after_commit: bool,
    ) {
        let limit = if carries_value && r.value.is_some() {
            krpc::MAX_SEND_BEP44
        } else {
            krpc::MAX_SEND
        };
        let mut buf = self.take_buf();
        // Looked up only for replies above the stranger limit (rare): None = not yet.
        let mut stranger: Option<bool> = None;
        let mut stranger_trimmed = false;
        loop {
            buf.clear();
            // Written from borrowed parts, not a `Message`: building one moved the whole
            // reply (over 700 bytes: two scrape filters, a key, a signature) and copied the
            // version into a new allocation, for every answered query.
            let reply = Envelope {
                transaction_id: &t,
                version: self.config.version.as_ref().map(|v| &v[..]),
                read_only: false,
                requester_ip: Some(to),
                body: BodyRef::Response(&r),
            };
            encode_envelope(&reply, &mut buf);
            let soft = self.config.defense.stranger_reply_bytes;
            // A stranger's reply, and anyone's once the reply budget is spent.
            let soft_over = soft.is_some_and(|s| buf.len() > s)
                && (*stranger.get_or_insert_with(|| self.is_stranger(&to))
                    || self.over_budget(now, &to, buf.len()));
            if buf.len() <= limit && !soft_over {
                break;
            }
            let hard_over = buf.len() > limit;
            let target = if hard_over {
                limit
            } else {
                soft.unwrap_or(limit)
            };
            let trimmed = trim_reply(&mut r, buf.len() - target);
            if trimmed && !hard_over && !stranger_trimmed {
                stranger_trimmed = true;
                self.stats.stranger_trimmed += 1;
            }
            if !trimmed {
                if hard_over {
                    // Nothing left to trim: it cannot be made to fit (should not happen
                    // with a value <= 1000 bytes); refuse rather than send oversize.
                    self.pool.push(buf);
                    return;
                }
                // A stranger's reply keeps its BEP 44 value: only lists are trimmed.
                break;
            }
        }
        self.push_reply(now, to, buf, after_commit);
    }

    pub(super) fn send_error(
        &mut self,
        now: Instant,
        to: SocketAddr,
        t: Vec<u8>,
        code: i64,
        message: &str,
    ) {
        self.stats.errors_sent += 1;
        self.stats.errors_sent_by_code.bump(ErrorCode::of(code));
        let mut buf = self.take_buf();
        let error = Envelope {
            transaction_id: &t,
            version: self.config.version.as_ref().map(|v| &v[..]),
            read_only: false,
            requester_ip: None,
            body: BodyRef::Error(code, message),
        };
        encode_envelope(&error, &mut buf);
        if buf.len() <= krpc::MAX_SEND {
            self.push_reply(now, to, buf, false);
        } else {
            // A peer's over-long transaction id must not make us send oversize.
            self.pool.push(buf);
        }
    }
}

/// Trims a reply by about `over` bytes: nodes6, then nodes, then peers, then samples, a
/// few at a time. False when none of them is left to trim.
fn trim_reply(r: &mut Response, over: usize) -> bool {
    if !r.nodes6.is_empty() {
        let n = over.div_ceil(38).min(r.nodes6.len());
        r.nodes6.truncate(r.nodes6.len() - n);
    } else if !r.nodes.is_empty() {
        let n = over.div_ceil(26).min(r.nodes.len());
        r.nodes.truncate(r.nodes.len() - n);
    } else if !r.values.is_empty() {
        // Each peer by its own size: counting an IPv6 peer (21 bytes) as an IPv4 one
        // (8) cut about 2.6 times too many, every peer once a swarm held ~31.
        let mut freed = 0;
        while freed < over {
            let Some(peer) = r.values.pop() else {
                break;
            };
            freed += value_len(&peer);
        }
    } else if let Some(s) = r.samples.as_mut().filter(|s| !s.is_empty()) {
        let n = over.div_ceil(20).min(s.len());
        s.truncate(s.len() - n);
    } else {
        return false;
    }
    true
}

/// The network a swarm's full-swarm rule groups peers by: an IPv4 /24, an IPv6 /48
/// (a site's usual allocation: 65,536 /64s), an IPv4-mapped address as its IPv4 /24.
fn network_of(ip: IpAddr) -> IpAddr {
    match source_of(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// Bytes one peer takes in `values`: a bencoded string of its compact form,
/// `6:` and 6 bytes (IPv4) or `18:` and 18 bytes (IPv6).
fn value_len(peer: &SocketAddr) -> usize {
    match peer {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 21,
    }
}

/// BEP 33's filters of a swarm (`BFsd`, `BFpe`): every stored IP of both families,
/// seeds in the first, the others in the second (as libtorrent fills them, so unions
/// across implementations agree). A scrape reply carries them, and a scrape's own
/// lookup counts them for the swarm this node holds.
pub(super) fn swarm_filters(stored: &[StoredPeer]) -> (ScrapeFilter, ScrapeFilter) {
    let (mut seeds, mut others) = (ScrapeFilter::new(), ScrapeFilter::new());
    for p in stored {
        let f = if p.seed { &mut seeds } else { &mut others };
        f.insert(p.addr.ip());
    }
    (seeds, others)
}
