//! Our queries: iterative lookups on the kernel's [`Paths`] and [`Candidates`] (k = 20,
//! alpha = 3; once the closest live candidate has answered, so that a round brought
//! nothing closer, every one of the k closest not yet asked is asked at once, the
//! Kademlia paper's rule, as rust-libp2p does), and the writes that follow them.
//!
//! Every kind of query is one lookup toward the SHA-256 of its key: FIND_NODE for
//! closest peers, puts and provider announcements, GET_VALUE for records (done at the
//! first valid record), GET_PROVIDERS for providers. A put then sends PUT_VALUE to the
//! k closest servers and counts their echoes; an announcement sends ADD_PROVIDER,
//! which has no reply.

use std::collections::BTreeMap;
use std::time::Instant;

use dht_core::kernel::{Candidates, Contact, Paths};
use dht_core::{Event, QueryDone, QueryId, QueryStats};

use super::serve::MAX_PROVIDER_KEY;
use super::{Node, Outcome, Purpose, Request, RequestError};
use crate::peer::{key_of, Key, PeerId, PeerInfo};
use crate::store::{Store, StoredProvider, StoredRecord};
use crate::validate::Validator;
use crate::wire::{self, Message, MessageType, Record};

/// Most providers one GetProviders query collects: every reply may name 256, and a
/// lookup hears from up to `max_candidates` servers.
const MAX_PROVIDERS_FOUND: usize = 256;

/// What differs between kinds of query, with what each has found so far.
#[derive(Debug)]
pub(super) enum Kind {
    Bootstrap,
    FindNode,
    /// A bucket refresh or a republish lookup: ends without an event.
    Refresh,
    PutRecord {
        record: Record,
    },
    GetRecord {
        found: Vec<Record>,
    },
    StartProviding,
    GetProviders {
        found: BTreeMap<PeerId, PeerInfo>,
    },
}

/// A put's write phase: PUT_VALUEs sent, answers pending, echoes received.
#[derive(Debug, Default)]
struct Write {
    sent: usize,
    pending: usize,
    acks: usize,
}

/// One query in progress.
#[derive(Debug)]
pub(super) struct Query {
    kind: Kind,
    /// The key's preimage, as the wire carries it.
    key: Vec<u8>,
    paths: Paths<PeerInfo>,
    started: Instant,
    stats: QueryStats,
    write: Option<Write>,
    /// Started by the node itself (refresh, republish): no event at the end.
    silent: bool,
}

impl Query {
    /// The request a lookup step sends.
    fn step_message(&self) -> Message {
        let kind = match self.kind {
            Kind::GetRecord { .. } => MessageType::GetValue,
            Kind::GetProviders { .. } => MessageType::GetProviders,
            _ => MessageType::FindNode,
        };
        Message::new(kind, self.key.clone())
    }
}

impl<S: Store, V: Validator> Node<S, V> {
    /// The providers GetProviders query `id` has found so far (those the store held
    /// when it started, then those the replies named), one per PeerId; `None` once the
    /// query has ended or when `id` is another kind of query. A transport streams them
    /// to its application as they come, before [`Outcome::Providers`] ends the query.
    pub fn providers_found(&self, id: QueryId) -> Option<impl ExactSizeIterator<Item = &PeerInfo>> {
        match &self.queries.get(&id)?.kind {
            Kind::GetProviders { found } => Some(found.values()),
            _ => None,
        }
    }

    /// Ends query `id` now, without an event: its requests in flight are forgotten
    /// (late replies are then unexpected, as after any query's end). For an
    /// application that no longer wants the answer (a client gone away). False when
    /// no such query runs.
    pub fn cancel(&mut self, now: Instant, id: QueryId) -> bool {
        let Some(q) = self.queries.get_mut(&id) else {
            return false;
        };
        q.silent = true;
        self.finish(
            now,
            id,
            Outcome::Peers {
                closest: Vec::new(),
            },
        );
        true
    }

    pub(super) fn start_query(
        &mut self,
        now: Instant,
        request: Request,
    ) -> Result<QueryId, RequestError> {
        match request {
            Request::Bootstrap { seeds } => {
                let key = self.config.peer_id.as_bytes().to_vec();
                Ok(self.new_query(now, Kind::Bootstrap, key, seeds, false))
            }
            Request::FindNode { key } => {
                self.check_size(&Message::new(MessageType::FindNode, key.clone()))?;
                Ok(self.new_query(now, Kind::FindNode, key, vec![], false))
            }
            Request::PutRecord { key, value } => self.put_record(now, key, value, false),
            Request::GetRecord { key } => {
                self.check_size(&Message::new(MessageType::GetValue, key.clone()))?;
                let wall = self.wall(now);
                let local = self
                    .store
                    .record(&key, wall)
                    .ok()
                    .flatten()
                    .filter(|r| self.validator.validate(&r.key, &r.value, wall).is_ok());
                if let Some(r) = local {
                    // Held here: the node is part of the DHT (depth 0).
                    let id = self.next_query_id();
                    let record = Record {
                        key: r.key,
                        value: r.value,
                        publisher: r.publisher.unwrap_or_default(),
                        ..Record::default()
                    };
                    self.events.push_back(Event::QueryDone(QueryDone {
                        id,
                        outcome: Outcome::Record {
                            record: Some(record),
                        },
                        stats: QueryStats::default(),
                    }));
                    return Ok(id);
                }
                let kind = Kind::GetRecord { found: Vec::new() };
                Ok(self.new_query(now, kind, key, vec![], false))
            }
            Request::StartProviding { key } => self.start_providing(now, key, false),
            Request::GetProviders { key } => {
                if key.is_empty() || key.len() > MAX_PROVIDER_KEY {
                    return Err(RequestError::BadKey);
                }
                let found = self
                    .store
                    .providers(&key, self.wall(now))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p.provider.clone(), PeerInfo::new(p.provider, p.addrs)))
                    .collect();
                Ok(self.new_query(now, Kind::GetProviders { found }, key, vec![], false))
            }
        }
    }

    /// Validates and stores a record of ours, keeps it for republishing, and starts
    /// the lookup whose end sends it to the k closest servers.
    pub(super) fn put_record(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        value: Vec<u8>,
        silent: bool,
    ) -> Result<QueryId, RequestError> {
        self.validator
            .validate(&key, &value, self.wall(now))
            .map_err(RequestError::InvalidRecord)?;
        let record = Record {
            key: key.clone(),
            value: value.clone(),
            publisher: self.config.peer_id.as_bytes().to_vec(),
            ..Record::default()
        };
        let mut put = Message::new(MessageType::PutValue, key.clone());
        put.record = Some(record.clone());
        self.check_size(&put)?;
        let wall = self.wall(now);
        let stored = StoredRecord {
            key: key.clone(),
            value: value.clone(),
            publisher: Some(record.publisher.clone()),
            expires_at: wall.saturating_add(super::serve::millis(self.config.record_ttl)),
        };
        self.store
            .put_record(stored, None, wall)
            .map_err(RequestError::Store)?;
        self.maintenance
            .published(now, &self.config, key.clone(), value);
        Ok(self.new_query(now, Kind::PutRecord { record }, key, vec![], silent))
    }

    /// Records this node as a provider of `key` (here and for republishing) and
    /// starts the lookup whose end announces it to the k closest servers.
    pub(super) fn start_providing(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        silent: bool,
    ) -> Result<QueryId, RequestError> {
        if key.is_empty() || key.len() > MAX_PROVIDER_KEY {
            return Err(RequestError::BadKey);
        }
        let wall = self.wall(now);
        let me = StoredProvider {
            provider: self.config.peer_id.clone(),
            addrs: self.config.listen_addrs.clone(),
            expires_at: wall.saturating_add(super::serve::millis(self.config.provider_ttl)),
            addrs_expire_at: wall
                .saturating_add(super::serve::millis(self.config.provider_addrs_ttl)),
        };
        self.store
            .add_provider(&key, me, None, wall)
            .map_err(RequestError::Store)?;
        self.maintenance.provided(now, &self.config, key.clone());
        Ok(self.new_query(now, Kind::StartProviding, key, vec![], silent))
    }

    /// Refuses a command whose message would exceed what we send (16 KiB).
    fn check_size(&self, msg: &Message) -> Result<(), RequestError> {
        if wire::frame_len(msg) > self.config.max_send_bytes {
            return Err(RequestError::TooLarge);
        }
        Ok(())
    }

    /// Starts a lookup toward SHA-256(`key`) from the table's closest and `seeds`.
    pub(super) fn new_query(
        &mut self,
        now: Instant,
        kind: Kind,
        key: Vec<u8>,
        seeds: Vec<PeerInfo>,
        silent: bool,
    ) -> QueryId {
        let id = self.next_query_id();
        let target = key_of(&key);
        let (k, alpha) = (self.config.k, self.config.alpha);
        // Paths are numbered by a byte on the requests in flight.
        let paths = self.config.disjoint_paths.clamp(1, usize::from(u8::MAX));
        let mut lookup = Paths::new(
            (0..paths)
                .map(|_| Candidates::toward(target, k, alpha, self.config.max_candidates))
                .collect(),
        );
        // A lookup into a bucket's range does what its refresh would (go-libp2p-kad-dht
        // counts every query as a refresh of its bucket).
        let last = self.table.bucket_count().saturating_sub(1);
        self.table
            .touch_bucket(self.own.common_prefix_len(&target).min(last), now);
        let known = self.table.closest(&target, k, now);
        let own = self.own;
        for (i, p) in known.into_iter().chain(seeds).enumerate() {
            if *p.key() != own && !p.addrs().is_empty() {
                lookup[i % paths].add(p, 1);
            }
        }
        self.queries.insert(
            id,
            Query {
                kind,
                key,
                paths: lookup,
                started: now,
                stats: QueryStats::default(),
                write: None,
                silent,
            },
        );
        self.drive(now, id);
        id
    }

    /// Sends what query `id` may send now, or ends it.
    fn drive(&mut self, now: Instant, id: QueryId) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        if let Some(w) = &q.write {
            if w.pending == 0 {
                let outcome = Outcome::Stored {
                    key: q.key.clone(),
                    acks: w.acks,
                    sent: w.sent,
                };
                self.finish(now, id, outcome);
            }
            return;
        }
        let next = q.paths.next_to_query(|_| false);
        if next.is_empty() {
            if q.paths.all_done() {
                self.end_lookup(now, id);
            }
            return;
        }
        let msg = q.step_message();
        q.stats.requests += next.len() as u32;
        for (path, peer) in next {
            self.send_request(now, peer, &msg, Purpose::Lookup { query: id, path });
        }
    }

    /// Peers a reply of `teller` names that a lookup may ask: PeerIds, not us, with an
    /// address we may keep (`addrs.rs`), none more local than the teller (a public
    /// peer has no business sending us to our own host or LAN).
    fn learned(&self, teller: &PeerInfo, peers: &[wire::Peer]) -> Vec<PeerInfo> {
        let locality = self.config.locality;
        let teller_locality = teller.ip().map(locality);
        let public_only = self.public_only_with(teller);
        peers
            .iter()
            .filter_map(PeerInfo::from_wire)
            .map(|p| self.scoped(p, public_only))
            .filter(|p| *p.key() != self.own && !p.addrs().is_empty())
            .filter(|p| match (p.ip().map(locality), teller_locality) {
                (Some(l), Some(t)) => l >= t,
                _ => true,
            })
            .collect()
    }

    /// The answer to a lookup step of query `id` on `path` from `peer`.
    pub(super) fn on_lookup_answer(
        &mut self,
        now: Instant,
        id: QueryId,
        path: u8,
        peer: &PeerInfo,
        reply: Option<Message>,
    ) {
        let learned = reply
            .as_ref()
            .map(|m| self.learned(peer, &m.closer_peers))
            .unwrap_or_default();
        self.admit_learned(now, &learned);
        let limits: Vec<Option<usize>> = learned
            .iter()
            .map(|p| match p.ip() {
                Some(ip) if !self.config.defense.is_exempt(ip) => {
                    self.config.defense.lookup_max_per_ip
                }
                _ => None,
            })
            .collect();
        let public_only = self.public_only_with(peer);
        let providers: Vec<PeerInfo> = reply
            .iter()
            .flat_map(|m| m.provider_peers.iter().filter_map(PeerInfo::from_wire))
            .map(|p| self.scoped(p, public_only))
            .collect();
        let wall = self.wall(now);
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        let Some(c) = q.paths.get_mut(usize::from(path)) else {
            return;
        };
        let Some(msg) = reply else {
            c.on_failure(peer.key());
            q.stats.timeouts += 1;
            self.drive(now, id);
            return;
        };
        q.stats.responses += 1;
        let Some(depth) = c.on_response(peer.key(), None) else {
            self.drive(now, id);
            return;
        };
        for (p, limit) in learned.into_iter().zip(limits) {
            c.add_limited(p, depth + 1, limit);
        }
        let mut done = false;
        match &mut q.kind {
            Kind::GetRecord { found } => {
                if let Some(r) = msg.record.filter(|r| r.key == q.key) {
                    if self.validator.validate(&r.key, &r.value, wall).is_ok() {
                        found.push(r);
                        done = true;
                    }
                }
            }
            Kind::GetProviders { found } => {
                for p in providers {
                    if found.len() >= MAX_PROVIDERS_FOUND && !found.contains_key(p.id()) {
                        break;
                    }
                    let known = found.entry(p.id().clone()).or_insert_with(|| p.clone());
                    if known.addrs().is_empty() {
                        *known = p;
                    }
                }
            }
            _ => {}
        }
        if done {
            self.end_lookup(now, id);
        } else {
            self.drive(now, id);
        }
    }

    /// The lookup of query `id` is over: finish it, or start its write phase.
    fn end_lookup(&mut self, now: Instant, id: QueryId) {
        let Some(q) = self.queries.get_mut(&id) else {
            return;
        };
        let closest = q.paths.merged_closest(self.config.k);
        q.stats.hops = closest.first().map_or(0, |c| c.1);
        let closest: Vec<PeerInfo> = closest.into_iter().map(|c| c.0).collect();
        let kind = std::mem::replace(&mut q.kind, Kind::Refresh);
        let key = q.key.clone();
        let outcome = match kind {
            Kind::Bootstrap => {
                self.refresh_after_bootstrap(now, &closest);
                Outcome::Peers { closest }
            }
            Kind::FindNode | Kind::Refresh => Outcome::Peers { closest },
            Kind::GetRecord { found } => {
                let values: Vec<&[u8]> = found.iter().map(|r| r.value.as_slice()).collect();
                let best = self.validator.select(&key, &values).ok();
                Outcome::Record {
                    record: best.and_then(|i| found.get(i).cloned()),
                }
            }
            Kind::GetProviders { found } => Outcome::Providers {
                key,
                providers: found.into_values().collect(),
            },
            Kind::StartProviding => {
                let mut msg = Message::new(MessageType::AddProvider, key.clone());
                msg.provider_peers =
                    vec![self.local_peer().to_wire(wire::ConnectionType::Connected)];
                let sent = closest.len();
                for p in closest {
                    self.send_unanswered(now, p, &msg);
                }
                Outcome::Provided { key, sent }
            }
            Kind::PutRecord { record } => {
                let mut msg = Message::new(MessageType::PutValue, key);
                msg.record = Some(record);
                q.write = Some(Write {
                    sent: closest.len(),
                    pending: closest.len(),
                    acks: 0,
                });
                for p in closest {
                    self.send_request(now, p, &msg, Purpose::Put { query: id });
                }
                self.drive(now, id);
                return;
            }
        };
        self.finish(now, id, outcome);
    }

    /// A PUT_VALUE of query `id` was answered (`reply`) or failed.
    pub(super) fn on_put_answer(&mut self, now: Instant, id: QueryId, reply: Option<Message>) {
        let Some(w) = self.queries.get_mut(&id).and_then(|q| q.write.as_mut()) else {
            return;
        };
        w.pending = w.pending.saturating_sub(1);
        if reply.is_some_and(|m| m.record.is_some()) {
            w.acks += 1;
        }
        self.drive(now, id);
    }

    /// Ends query `id` with `outcome`: its requests in flight are forgotten (late
    /// replies are then unexpected) and, unless silent, the application is told.
    fn finish(&mut self, now: Instant, id: QueryId, outcome: Outcome) {
        let Some(mut q) = self.queries.remove(&id) else {
            return;
        };
        self.requests.forget(|a| match a.purpose {
            Purpose::Lookup { query, .. } | Purpose::Put { query } => query == id,
            Purpose::Admit => false,
        });
        if q.silent {
            return;
        }
        q.stats.duration = now.saturating_duration_since(q.started);
        self.events.push_back(Event::QueryDone(QueryDone {
            id,
            outcome,
            stats: q.stats,
        }));
    }

    /// Target keys already in use by a query (a refresh need not start twice).
    pub(super) fn lookup_targets(&self) -> Vec<Key> {
        self.queries.values().map(|q| key_of(&q.key)).collect()
    }
}
