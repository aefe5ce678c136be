//! The routing table of one address family (BEP 5), as prefix buckets.
//!
//! Bucket `i` (for `i < len - 1`) holds nodes whose id shares exactly `i` leading
//! bits with ours; the last bucket holds everything sharing at least `len - 1`
//! bits. Only the last bucket (the one containing our own id) splits, which is
//! the same structure as BEP 5's range-splitting table.
//!
//! Rules (BEP 5): a node is *good* if it answered us within `questionable_after`,
//! or answered us ever and queried us within that time; *questionable* after that
//! silence; *bad* after `max_failures` failed queries in a row. Only nodes that
//! answered one of our queries enter the main buckets; others wait in a bucket's
//! replacement cache. A full bucket of good nodes drops newcomers; questionable
//! nodes are pinged before they are replaced (the caller sends the pings this
//! table asks for).
//!
//! With extended buckets ([`RoutingTable::with_extended_buckets`], libtorrent's
//! extended routing table) the four buckets farthest from our id hold 16k, 8k, 4k
//! and 2k nodes (128, 64, 32, 16 for k = 8): they cover 15/16 of the id space, so a
//! lookup's first hop lands about four bits closer to any target there.
//!
//! The table is protocol-neutral: it holds any [`Contact`] (Mainline's [`NodeInfo`] by
//! default) keyed by any [`Key`] width, and asks an [`Admission`] policy (Mainline's
//! [`Defense`] by default: per-IP and per-prefix diversity, BEP 42) who may enter.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::contact::{Admission, Contact};
use crate::defense::Defense;
use crate::id::{Id, Key, NodeInfo};

mod buckets;
mod stamps;
use buckets::Buckets;
pub use stamps::{Rtt, Stamp};

/// A routing-table entry.
#[derive(Clone, Copy, Debug)]
pub struct Entry<C = NodeInfo> {
    /// The node.
    pub node: C,
    /// Last answer to one of our queries ([`RoutingTable::instant_of`] converts it).
    pub last_response: Stamp,
    /// Last query from it.
    pub last_query: Stamp,
    /// Failed queries in a row.
    pub failures: u8,
    /// Smoothed round trip of its answers.
    pub rtt: Rtt,
}

impl<C> Entry<C> {
    /// The same entry (stamps, failures, round trip) around another form of its
    /// contact (the node's compact IPv4 table widens its entries with it).
    pub(crate) fn map<D>(&self, f: impl FnOnce(&C) -> D) -> Entry<D> {
        Entry {
            node: f(&self.node),
            last_response: self.last_response,
            last_query: self.last_query,
            failures: self.failures,
            rtt: self.rtt,
        }
    }
}

/// Health of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Recently active.
    Good,
    /// Silent for a while: ping before trusting or replacing.
    Questionable,
    /// Failed repeatedly: replace.
    Bad,
}

/// What [`RoutingTable::on_response`] did with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert<C = NodeInfo> {
    /// Already present: refreshed.
    Updated,
    /// Added to a main bucket.
    Added,
    /// Put in the replacement cache (bucket full); the listed questionable node
    /// should be pinged so that it can be replaced if it is gone.
    Cached(Option<C>),
    /// Not added (our own id, or an address already in the table under another id).
    Rejected,
}

/// One address family's table of contacts `C`, admitted by policy `P`.
#[derive(Clone, Debug)]
pub struct RoutingTable<C: Contact = NodeInfo, P = Defense> {
    own: C::Key,
    k: usize,
    buckets: Buckets<Entry<C>>,
    questionable_after: Duration,
    max_failures: u8,
    policy: P,
    /// Larger far buckets (see the module doc).
    extended: bool,
    /// What [`Stamp`]s count from.
    epoch: Instant,
}

impl RoutingTable {
    /// An empty Mainline table for `own` with bucket size `k` and the default
    /// [`Defense`] (see [`RoutingTable::with_defense`]).
    pub fn new(
        own: Id,
        k: usize,
        questionable_after: Duration,
        max_failures: u8,
        now: Instant,
    ) -> Self {
        RoutingTable::with_policy(
            own,
            k,
            questionable_after,
            max_failures,
            now,
            Defense::default(),
        )
    }
}

impl<C: Contact> RoutingTable<C, Defense> {
    /// Sets the diversity limits (per IP, per /24 or /64), their exemption and the
    /// BEP 42 mode.
    pub fn with_defense(mut self, defense: Defense) -> Self {
        self.policy = defense;
        self
    }
}

impl RoutingTable<NodeInfo, Defense> {
    /// A query to `id` at `addr` timed out (see [`RoutingTable::on_timeout_of`]).
    pub fn on_timeout(&mut self, id: &Id, addr: &SocketAddr, now: Instant) -> bool {
        self.on_timeout_of(
            &NodeInfo {
                id: *id,
                addr: *addr,
            },
            now,
        )
    }
}

impl<C: Contact, P: Admission<C>> RoutingTable<C, P> {
    /// An empty table for `own` with bucket size `k`, admitting contacts by `policy`.
    pub fn with_policy(
        own: C::Key,
        k: usize,
        questionable_after: Duration,
        max_failures: u8,
        now: Instant,
        policy: P,
    ) -> Self {
        RoutingTable {
            own,
            k: k.max(1),
            buckets: Buckets::new(now),
            questionable_after,
            max_failures: max_failures.max(1),
            policy,
            extended: false,
            epoch: now,
        }
    }

    /// Gives the four far buckets 16, 8, 4 and 2 times k places (libtorrent's
    /// extended routing table); bucket 4 onward keep k. An empty table only.
    pub fn with_extended_buckets(mut self, extended: bool) -> Self {
        self.extended = extended;
        self
    }

    /// How many nodes bucket `i` holds when full.
    pub fn bucket_capacity(&self, i: usize) -> usize {
        if self.extended && i < 4 {
            self.k << (4 - i)
        } else {
            self.k
        }
    }

    /// `now` as a [`Stamp`] of this table.
    pub fn stamp(&self, now: Instant) -> Stamp {
        let secs = now.saturating_duration_since(self.epoch).as_secs();
        Stamp::from_count(u32::try_from(secs).unwrap_or(u32::MAX - 1) + 1)
    }

    /// The instant a [`Stamp`] of this table stands for (to the second).
    pub fn instant_of(&self, s: Stamp) -> Option<Instant> {
        s.is_set()
            .then(|| self.epoch + Duration::from_secs(u64::from(s.count() - 1)))
    }

    /// The policy contacts are admitted by.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The same contacts around a new own id (after a BEP 42 id change).
    pub fn rebuilt(&self, own: C::Key, now: Instant) -> Self {
        let mut t = RoutingTable {
            own,
            k: self.k,
            buckets: Buckets::new(now),
            questionable_after: self.questionable_after,
            max_failures: self.max_failures,
            policy: self.policy.clone(),
            extended: self.extended,
            epoch: self.epoch,
        };
        for e in self.entries() {
            if *e.node.key() != own {
                t.insert(e.clone(), now);
            }
        }
        t
    }

    /// True when `node`'s key fits where it is reached (BEP 42 for Mainline: exempt
    /// addresses always fit).
    pub fn is_verified(&self, node: &C) -> bool {
        node.is_verified()
    }

    /// May the newcomer `node` enter bucket `bucket` under the policy?
    fn admitted(&self, node: &C, bucket: usize) -> bool {
        self.policy.admits(
            node,
            self.entries().map(|e| &e.node),
            self.buckets.nodes(bucket).iter().map(|e| &e.node),
        )
    }

    /// Our id.
    pub fn own_id(&self) -> C::Key {
        self.own
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of buckets (grows as the bucket holding our id splits).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Nodes in bucket `i` (0 when there is no such bucket).
    pub fn bucket_len(&self, i: usize) -> usize {
        if i < self.buckets.len() {
            self.buckets.nodes(i).len()
        } else {
            0
        }
    }

    /// Nodes whose ids share exactly `b` leading bits with ours (bucket `b`'s
    /// range, whether or not the table has split that far).
    pub fn prefix_len(&self, b: usize) -> usize {
        let last = self.buckets.len() - 1;
        if b < last {
            return self.buckets.nodes(b).len();
        }
        self.buckets
            .nodes(last)
            .iter()
            .filter(|e| self.own.common_prefix_len(e.node.key()) == b)
            .count()
    }

    /// Nodes in the main buckets.
    pub fn len(&self) -> usize {
        self.buckets.node_count()
    }

    /// True when no node is in the main buckets.
    pub fn is_empty(&self) -> bool {
        self.buckets.node_count() == 0
    }

    /// Nodes in replacement caches.
    pub fn replacement_len(&self) -> usize {
        self.buckets.replacement_count()
    }

    fn bucket_index(&self, id: &C::Key) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Health of `e` at `now`.
    pub fn health(&self, e: &Entry<C>, now: Instant) -> Health {
        self.health_of(e, now)
    }

    /// [`RoutingTable::health`] of an entry in any form of the contact: health reads
    /// only the stamps and the failures.
    pub(crate) fn health_of<D>(&self, e: &Entry<D>, now: Instant) -> Health {
        self.health_at(e, self.stamp(now))
    }

    /// [`RoutingTable::health`] at a stamp computed once for a walk over many entries.
    fn health_at<D>(&self, e: &Entry<D>, now: Stamp) -> Health {
        if e.failures >= self.max_failures {
            return Health::Bad;
        }
        let recent = |t: Stamp| {
            t.is_set()
                && u64::from(now.count().saturating_sub(t.count()))
                    < self.questionable_after.as_secs()
        };
        if recent(e.last_response) || (e.last_response.is_set() && recent(e.last_query)) {
            Health::Good
        } else {
            Health::Questionable
        }
    }

    /// Records a round trip measured to `node` (an entry of the main buckets at that
    /// address): smoothed as 3/4 of the old value and 1/4 of the new one.
    pub fn note_rtt(&mut self, node: &C, rtt: Duration) {
        let idx = self.bucket_index(node.key());
        let ms = u32::try_from(rtt.as_millis())
            .unwrap_or(u32::MAX)
            .clamp(1, 65_535);
        if let Some(e) = self
            .buckets
            .nodes_mut(idx)
            .iter_mut()
            .find(|e| e.node.key() == node.key() && e.node.same_endpoint(node))
        {
            let old = u32::from(e.rtt.ms());
            let new = if old == 0 { ms } else { (3 * old + ms) / 4 };
            e.rtt = Rtt::from_ms(new.clamp(1, 65_535) as u16);
        }
    }

    /// The smoothed round trip to `node`, if it is in a main bucket at that address
    /// and has answered.
    pub fn rtt_of(&self, node: &C) -> Option<Duration> {
        let idx = self.bucket_index(node.key());
        self.buckets
            .nodes(idx)
            .iter()
            .find(|e| e.node.key() == node.key() && e.node.same_endpoint(node))
            .and_then(|e| e.rtt.get())
    }

    /// Looks a node up by key.
    pub fn get(&self, id: &C::Key) -> Option<&Entry<C>> {
        self.buckets
            .nodes(self.bucket_index(id))
            .iter()
            .find(|e| e.node.key() == id)
    }

    fn endpoint_taken_by_other(&self, node: &C) -> bool {
        // Endpoints are unique in the table: one endpoint cannot hold two ids.
        self.buckets
            .all_nodes()
            .any(|e| e.node.same_endpoint(node) && e.node.key() != node.key())
    }

    /// `node` answered one of our queries.
    pub fn on_response(&mut self, node: C, now: Instant) -> Insert<C> {
        if *node.key() == self.own {
            return Insert::Rejected;
        }
        let idx = self.bucket_index(node.key());
        let stamp = self.stamp(now);
        if let Some(e) = self
            .buckets
            .nodes_mut(idx)
            .iter_mut()
            .find(|e| e.node.key() == node.key())
        {
            // Same id at a new endpoint: the contact's rule decides (Mainline keeps
            // the one on record until it fails).
            if !e.node.same_endpoint(&node) && !e.node.readdress(&node) {
                return Insert::Rejected;
            }
            e.last_response = stamp;
            e.failures = 0;
            return Insert::Updated;
        }
        if self.endpoint_taken_by_other(&node) || !self.admitted(&node, idx) {
            return Insert::Rejected;
        }
        let entry = Entry {
            node,
            last_response: stamp,
            last_query: Stamp::NEVER,
            failures: 0,
            rtt: Rtt::NONE,
        };
        self.insert(entry, now)
    }

    fn insert(&mut self, entry: Entry<C>, now: Instant) -> Insert<C> {
        loop {
            let idx = self.bucket_index(entry.node.key());
            let last = self.buckets.len() - 1;
            let k = self.k;
            let capacity = self.bucket_capacity(idx);
            self.buckets
                .retain_replacements(idx, |r| r.node.key() != entry.node.key());
            if self.buckets.nodes(idx).len() < capacity {
                self.buckets.push_node(idx, entry);
                self.buckets.set_last_changed(idx, now);
                return Insert::Added;
            }
            if idx == last && self.buckets.len() < C::Key::BITS {
                self.split_last();
                continue;
            }
            // Full bucket that may not split: replace a bad node, else cache and
            // ask for the stalest questionable node to be pinged.
            let mut bad = None;
            let mut questionable: Option<(usize, Stamp)> = None;
            let stamp = self.stamp(now);
            for (i, e) in self.buckets.nodes(idx).iter().enumerate() {
                match self.health_at(e, stamp) {
                    Health::Bad => {
                        bad = Some(i);
                        break;
                    }
                    Health::Questionable => {
                        if questionable.is_none_or(|(_, t)| e.last_response < t) {
                            questionable = Some((i, e.last_response));
                        }
                    }
                    Health::Good => {}
                }
            }
            // BEP 42 (prefer): a verified newcomer takes the place of an unverified node,
            // which waits in the replacement cache instead.
            let unverified = if bad.is_none() && self.policy.may_displace(&entry.node) {
                self.buckets
                    .nodes(idx)
                    .iter()
                    .position(|e| self.policy.yields(&e.node))
            } else {
                None
            };
            if let Some(i) = bad {
                self.buckets.nodes_mut(idx)[i] = entry;
                self.buckets.set_last_changed(idx, now);
                return Insert::Added;
            }
            if let Some(i) = unverified {
                let old = std::mem::replace(&mut self.buckets.nodes_mut(idx)[i], entry);
                push_replacement(&mut self.buckets, idx, old, k);
                self.buckets.set_last_changed(idx, now);
                return Insert::Added;
            }
            push_replacement(&mut self.buckets, idx, entry, k);
            let ping = questionable.map(|(i, _)| self.buckets.nodes(idx)[i].node.clone());
            return Insert::Cached(ping);
        }
    }

    /// Splits the bucket holding our id; its entries keep their order in each half.
    fn split_last(&mut self) {
        let depth = self.buckets.len() - 1;
        let own = &self.own;
        self.buckets
            .split_last(|e| own.common_prefix_len(e.node.key()) > depth);
    }

    /// `node` sent us a query. Known nodes get `last_query` updated; unknown ones
    /// go to the replacement cache (they have not answered us yet). Returns true
    /// when the node is unknown and its bucket has room, so the caller should ping
    /// it to let it in.
    pub fn on_query(&mut self, node: C, now: Instant) -> bool {
        if *node.key() == self.own {
            return false;
        }
        let idx = self.bucket_index(node.key());
        let last = self.buckets.len() - 1;
        let k = self.k;
        let capacity = self.bucket_capacity(idx);
        let stamp = self.stamp(now);
        if let Some(e) = self
            .buckets
            .nodes_mut(idx)
            .iter_mut()
            .find(|e| e.node.key() == node.key())
        {
            if e.node.same_endpoint(&node) {
                e.last_query = stamp;
            }
            return false;
        }
        let room = self.buckets.nodes(idx).len() < capacity || idx == last;
        let known = self
            .buckets
            .replacements(idx)
            .iter()
            .any(|r| r.node.key() == node.key());
        let entry = Entry {
            node,
            last_response: Stamp::NEVER,
            last_query: stamp,
            failures: 0,
            rtt: Rtt::NONE,
        };
        if !known {
            push_absent_replacement(&mut self.buckets, idx, entry, k);
        }
        room
    }

    /// A query to `node` (its key at its endpoint) timed out. Returns true if the node
    /// became bad and was replaced from the cache or removed.
    pub fn on_timeout_of(&mut self, node: &C, now: Instant) -> bool {
        let idx = self.bucket_index(node.key());
        let max_failures = self.max_failures;
        let Some(pos) = self
            .buckets
            .nodes(idx)
            .iter()
            .position(|e| e.node.key() == node.key() && e.node.same_endpoint(node))
        else {
            self.buckets.retain_replacements(idx, |r| {
                !(r.node.key() == node.key() && r.node.same_endpoint(node))
            });
            return false;
        };
        let entry = &mut self.buckets.nodes_mut(idx)[pos];
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < max_failures {
            return false;
        }
        // Prefer a replacement that has answered us, newest first.
        let answered = self
            .buckets
            .replacements(idx)
            .iter()
            .rposition(|r| r.last_response.is_set());
        match answered {
            Some(r) => {
                let rep = self.buckets.remove_replacement(idx, r);
                self.buckets.nodes_mut(idx)[pos] = rep;
            }
            None => {
                self.buckets.remove_node(idx, pos);
            }
        }
        self.buckets.set_last_changed(idx, now);
        true
    }

    /// Nodes in the replacement caches that have never answered and whose bucket
    /// has room: candidates to ping so they can enter.
    pub fn unverified_with_room(&self, max: usize) -> Vec<C> {
        let mut out = Vec::new();
        for i in 0..self.buckets.len() {
            if self.buckets.nodes(i).len() < self.bucket_capacity(i) {
                for r in self.buckets.replacements(i).iter().rev() {
                    if out.len() >= max {
                        return out;
                    }
                    out.push(r.node.clone());
                }
            }
        }
        out
    }

    /// Removes a node (e.g. it answered with another id).
    pub fn remove(&mut self, id: &C::Key) -> bool {
        let idx = self.bucket_index(id);
        let before = self.buckets.nodes(idx).len();
        self.buckets.retain_nodes(idx, |e| e.node.key() != id);
        before != self.buckets.nodes(idx).len()
    }

    /// Up to `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, target: &C::Key, n: usize, now: Instant) -> Vec<C> {
        self.closest_with(target, n, now, C::clone)
    }

    /// [`RoutingTable::closest`], each chosen contact turned into a `D` by `f` as it is
    /// collected (the node's compact IPv4 table widens them into [`NodeInfo`]s so).
    pub(crate) fn closest_with<D>(
        &self,
        target: &C::Key,
        n: usize,
        now: Instant,
        f: impl Fn(&C) -> D,
    ) -> Vec<D> {
        // Whether an entry is bad does not depend on the time (see below).
        let _ = now;
        if n == 0 {
            return Vec::new();
        }
        let c = self.bucket_index(target);
        // Room for the whole first group (an extended bucket holds up to 16k): growing
        // the vector through it cost a few reallocations per find_node served.
        let room = n.max(self.buckets.nodes(c).len()).min(self.len());
        // Distances with where the entry is (bucket, position), not copies of the
        // contacts: a far bucket of 128 is sorted through 28-byte items instead of
        // 72-byte ones, and only the n chosen are cloned. Distances are distinct (so
        // are ids in a table), so the order does not depend on what rides along.
        let mut found: Vec<(<C::Key as Key>::Distance, u32, u32)> = Vec::with_capacity(room);
        // Buckets ordered by how close their nodes are to the target (see module doc):
        // bucket c holds the closest; buckets above c come next (they share exactly c
        // bits with the target, as does the remainder of the last bucket), then c-1, c-2, ...
        // Each group is wholly closer than the next, so only the last group taken
        // needs a partial selection.
        let take = |range: std::ops::Range<usize>,
                    found: &mut Vec<(<C::Key as Key>::Distance, u32, u32)>| {
            let start = found.len();
            for i in range {
                for (j, e) in self.buckets.nodes(i).iter().enumerate() {
                    // Bad is a count of failures, not a matter of time: no clock
                    // arithmetic per entry on the path that answers every find_node.
                    if e.failures < self.max_failures {
                        // At most Key::BITS buckets; a bucket of 2^32 entries of
                        // over 50 bytes each cannot be held in memory: both fit.
                        found.push((e.node.key().distance(target), i as u32, j as u32));
                    }
                }
            }
            let group = &mut found[start..];
            let room = n.saturating_sub(start);
            if group.len() > room && room > 0 {
                group.select_nth_unstable_by_key(room - 1, |x| x.0);
            }
            found.truncate(n.max(start));
            found[start..].sort_unstable_by_key(|x| x.0);
        };
        take(c..c + 1, &mut found);
        if found.len() < n {
            take(c + 1..self.buckets.len(), &mut found);
        }
        let mut i = c;
        while found.len() < n && i > 0 {
            i -= 1;
            take(i..i + 1, &mut found);
        }
        found
            .into_iter()
            .map(|(_, b, j)| f(&self.buckets.nodes(b as usize)[j as usize].node))
            .collect()
    }

    /// The same table (buckets, entries in order, stamps, caches, policy, epoch) with
    /// every contact turned into a `D` by `f`: the node's compact IPv4 table becomes
    /// a table of [`NodeInfo`] this way when it must hold an address it cannot pack.
    pub(crate) fn map_contacts<D>(&self, f: impl Fn(&C) -> D) -> RoutingTable<D, P>
    where
        D: Contact<Key = C::Key>,
    {
        RoutingTable {
            own: self.own,
            k: self.k,
            buckets: self.buckets.map(|e| e.map(&f)),
            questionable_after: self.questionable_after,
            max_failures: self.max_failures,
            policy: self.policy.clone(),
            extended: self.extended,
            epoch: self.epoch,
        }
    }

    /// Every entry in the main buckets.
    pub fn entries(&self) -> impl Iterator<Item = &Entry<C>> + '_ {
        self.buckets.all_nodes()
    }

    /// Buckets not changed since `now - refresh`, as (bucket index, random target in range).
    pub fn stale_buckets(&self, now: Instant, refresh: Duration) -> Vec<usize> {
        (0..self.buckets.len())
            .filter(|&i| now.saturating_duration_since(self.buckets.last_changed(i)) >= refresh)
            .collect()
    }

    /// Marks a bucket as refreshed (a lookup into its range was started).
    pub fn touch_bucket(&mut self, idx: usize, now: Instant) {
        if idx < self.buckets.len() {
            self.buckets.set_last_changed(idx, now);
        }
    }

    /// Questionable nodes to ping (stalest first within each bucket), at most `max`.
    pub fn questionable(&self, now: Instant, max: usize) -> Vec<C> {
        let mut out = Vec::new();
        let now = self.stamp(now);
        for e in self.buckets.all_nodes() {
            if out.len() >= max {
                return out;
            }
            if self.health_at(e, now) == Health::Questionable {
                out.push(e.node.clone());
            }
        }
        out
    }
}

/// Appends `entry` to bucket `b`'s replacement cache, where the same key appears at
/// most once and at most `k` wait: past that the oldest goes (the newest contacts are
/// the likeliest to be alive).
fn push_replacement<C: Contact>(
    buckets: &mut Buckets<Entry<C>>,
    b: usize,
    entry: Entry<C>,
    k: usize,
) {
    buckets.retain_replacements(b, |r| r.node.key() != entry.node.key());
    push_absent_replacement(buckets, b, entry, k);
}

/// [`push_replacement`] of an entry whose key the cache is known not to hold.
fn push_absent_replacement<C: Contact>(
    buckets: &mut Buckets<Entry<C>>,
    b: usize,
    entry: Entry<C>,
    k: usize,
) {
    let held = buckets.replacements(b).len();
    if held >= k && held > 0 {
        buckets.replace_oldest_replacement(b, entry);
    } else {
        buckets.push_replacement(b, entry);
    }
}

#[cfg(test)]
mod tests;
