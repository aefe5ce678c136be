//! Each kind of request as the lookup driver sees it: its parameters together with
//! what it has found so far, and the few steps in which kinds differ (the query a
//! lookup sends, what a reply adds, what the write phase sends, the outcome).
//!
//! Everything else about a lookup (candidates, paths, timeouts, the write phase) is the
//! same for every kind and lives in `query.rs`. A new kind adds a variant here and an
//! arm to `Kind::of` and to each of the nine methods below (11 sites; no method has a
//! wildcard arm, so the build fails until each has one). The rest of what a new kind
//! touches is listed in `request.rs` and ARCHITECTURE.md.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::bep33::ScrapeFilter;
use crate::bep44::{self, Item, MutableItem};
use crate::config::Config;
use crate::id::{Id, NodeInfo};
use crate::krpc::{self, ErrorBody, Method, PutArgs, Response};
use crate::store::{Store, StoredPeer, UnixMillis};

use super::request::{Outcome, QueryStats, Request};
use super::serve::swarm_filters;
use super::Family;

/// Writes of a put or an announce: where they landed.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// Nodes that acknowledged.
    pub stored_at: Vec<SocketAddr>,
    /// Nodes that refused, with their error.
    pub errors: Vec<(SocketAddr, ErrorBody)>,
}

/// A request kind with its results so far (one variant per kind, no flat optional fields).
#[derive(Debug)]
pub(super) enum Kind {
    Ping {
        answer: Option<NodeInfo>,
    },
    FindNode,
    GetPeers {
        peers: BTreeSet<SocketAddr>,
    },
    Announce {
        port: Option<u16>,
        seed: bool,
        writes: Writes,
    },
    Scrape {
        /// The union of the `BFsd` filters.
        seeds: ScrapeFilter,
        /// The union of the `BFpe` filters (and of the IPs of legacy `values`).
        peers: ScrapeFilter,
        responders: u32,
    },
    GetImmutable {
        /// The value and the depth it was found at.
        value: Option<(Vec<u8>, u32)>,
    },
    GetMutable {
        key: [u8; 32],
        salt: Vec<u8>,
        min_seq: Option<i64>,
        /// The best valid item and the depth it was found at.
        best: Option<(MutableItem, u32)>,
    },
    PutImmutable {
        value: Vec<u8>,
        writes: Writes,
    },
    PutMutable {
        item: MutableItem,
        cas: Option<i64>,
        writes: Writes,
    },
    Samples {
        samples: BTreeSet<Id>,
        num_max: i64,
    },
}

impl Kind {
    /// The kind of a lookup request and its target; `None` for bootstrap and ping,
    /// which the node starts itself.
    pub fn of(request: Request) -> Option<(Kind, Id)> {
        Some(match request {
            Request::Bootstrap { .. } | Request::Ping { .. } => return None,
            Request::FindNode { target } => (Kind::FindNode, target),
            Request::GetPeers { info_hash } => (
                Kind::GetPeers {
                    peers: BTreeSet::new(),
                },
                info_hash,
            ),
            Request::AnnouncePeer {
                info_hash,
                port,
                seed,
            } => (
                Kind::Announce {
                    port,
                    seed,
                    writes: Writes::default(),
                },
                info_hash,
            ),
            Request::Scrape { info_hash } => (
                Kind::Scrape {
                    seeds: ScrapeFilter::new(),
                    peers: ScrapeFilter::new(),
                    responders: 0,
                },
                info_hash,
            ),
            Request::GetImmutable { target } => (Kind::GetImmutable { value: None }, target),
            Request::GetMutable { key, salt, min_seq } => {
                let target = bep44::mutable_target(&key, &salt);
                (
                    Kind::GetMutable {
                        key,
                        salt,
                        min_seq,
                        best: None,
                    },
                    target,
                )
            }
            Request::PutImmutable { value } => {
                let target = bep44::immutable_target(&value);
                (
                    Kind::PutImmutable {
                        value,
                        writes: Writes::default(),
                    },
                    target,
                )
            }
            Request::PutMutable { item, cas } => {
                let target = item.target();
                (
                    Kind::PutMutable {
                        item,
                        cas,
                        writes: Writes::default(),
                    },
                    target,
                )
            }
            Request::SampleInfohashes { target } => (
                Kind::Samples {
                    samples: BTreeSet::new(),
                    num_max: 0,
                },
                target,
            ),
        })
    }

    /// Disjoint paths for this kind: every lookup that reads or writes data takes
    /// them, since a put whose single path runs into Sybils would write only to them
    /// (found in dht-sim).
    pub fn paths(&self, config: &Config) -> usize {
        match self {
            Kind::GetPeers { .. }
            | Kind::Scrape { .. }
            | Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::Announce { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => config.disjoint_paths.clamp(1, 16),
            Kind::Ping { .. } | Kind::FindNode | Kind::Samples { .. } => 1,
        }
    }

    /// The query each lookup step sends.
    pub fn lookup_method(&self, target: Id) -> Option<Method> {
        Some(match self {
            Kind::Ping { .. } => return None,
            Kind::FindNode => Method::find_node(target),
            Kind::GetPeers { .. } | Kind::Announce { .. } => Method::get_peers(target),
            Kind::Scrape { .. } => Method::get_peers(target).with_scrape(true),
            Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => Method::get(target),
            Kind::Samples { .. } => Method::sample_infohashes(target),
        })
    }

    /// True when the write phase follows the lookup.
    pub fn writes(&self) -> bool {
        self.writes_ref().is_some()
    }

    fn writes_ref(&self) -> Option<&Writes> {
        match self {
            Kind::Announce { writes, .. }
            | Kind::PutImmutable { writes, .. }
            | Kind::PutMutable { writes, .. } => Some(writes),
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::GetPeers { .. }
            | Kind::Scrape { .. }
            | Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::Samples { .. } => None,
        }
    }

    /// Where the answers to the write phase go.
    pub fn writes_mut(&mut self) -> Option<&mut Writes> {
        match self {
            Kind::Announce { writes, .. }
            | Kind::PutImmutable { writes, .. }
            | Kind::PutMutable { writes, .. } => Some(writes),
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::GetPeers { .. }
            | Kind::Scrape { .. }
            | Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::Samples { .. } => None,
        }
    }

    /// True when the lookup may end now: an immutable value is self-certifying, so
    /// the first one found ends the get; a mutable one ends at its first valid item
    /// when the config says any will do.
    pub fn is_satisfied(&self, config: &Config) -> bool {
        match self {
            Kind::GetImmutable { value } => value.is_some(),
            Kind::GetMutable { best, .. } => config.mutable_get_first_valid && best.is_some(),
            // A write's lookup runs to the end: it needs the closest nodes' tokens.
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::GetPeers { .. }
            | Kind::Announce { .. }
            | Kind::Scrape { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. }
            | Kind::Samples { .. } => false,
        }
    }

    /// This node is part of the DHT too: what it stores itself counts as found (depth 0).
    pub fn seed_from_store<S: Store>(
        &mut self,
        store: &S,
        target: &Id,
        family: Family,
        wall: UnixMillis,
        config: &Config,
    ) {
        match self {
            Kind::GetPeers { peers } => {
                if let Ok(found) = store.get_peers(target) {
                    peers.extend(
                        found
                            .iter()
                            .filter(|p| p.expires_at > wall && Family::of(&p.addr) == family)
                            .map(|p| p.addr)
                            .take(config.max_lookup_peers),
                    );
                }
            }
            Kind::GetImmutable { value } => {
                if let Ok(Some(stored)) = store.get_item(target) {
                    if let (true, Item::Immutable { value: v }) =
                        (stored.expires_at > wall, stored.item)
                    {
                        *value = Some((v, 0));
                    }
                }
            }
            Kind::GetMutable {
                key,
                salt,
                min_seq,
                best,
            } => {
                if let Ok(Some(stored)) = store.get_item(target) {
                    if let (true, Item::Mutable(it)) = (stored.expires_at > wall, stored.item) {
                        if it.key == *key && it.salt == *salt && min_seq.is_none_or(|s| it.seq > s)
                        {
                            *best = Some((it, 0));
                        }
                    }
                }
            }
            Kind::Scrape {
                seeds,
                peers,
                responders,
            } => {
                if let Ok(found) = store.get_peers(target) {
                    let live: Vec<StoredPeer> =
                        found.into_iter().filter(|p| p.expires_at > wall).collect();
                    // Counted as this node would answer a scrape of it.
                    if !live.is_empty() {
                        let (s, p) = swarm_filters(&live);
                        seeds.union(&s);
                        peers.union(&p);
                        *responders += 1;
                    }
                }
            }
            // A write's lookup only collects tokens; a sampling reports what the nodes it
            // asks hold (BEP 51), not this node's store.
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::Announce { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. }
            | Kind::Samples { .. } => {}
        }
    }

    /// Takes in what a lookup reply found, at `depth`.
    pub fn absorb(&mut self, target: &Id, resp: &mut Response, depth: u32, config: &Config) {
        match self {
            Kind::GetPeers { peers } => {
                for v in &resp.values {
                    if peers.len() >= config.max_lookup_peers {
                        break;
                    }
                    if v.port() != 0 {
                        peers.insert(*v);
                    }
                }
            }
            Kind::GetImmutable { value } => {
                if let Some(v) = resp.value.take() {
                    if bep44::immutable_target(&v) == *target && value.is_none() {
                        *value = Some((v, depth));
                    }
                }
            }
            Kind::GetMutable {
                key,
                salt,
                min_seq,
                best,
            } => {
                if let (Some(v), Some(k), Some(sig), Some(seq)) =
                    (resp.value.take(), resp.key, resp.signature, resp.seq)
                {
                    let item = MutableItem {
                        key: k,
                        signature: sig,
                        seq,
                        salt: salt.clone(),
                        value: v,
                    };
                    let better = best.as_ref().is_none_or(|(b, _)| seq > b.seq);
                    let fresh_enough = min_seq.is_none_or(|m| seq > m);
                    if k == *key
                        && better
                        && fresh_enough
                        && item.value.len() <= krpc::MAX_VALUE_LEN
                        && item.verify()
                    {
                        *best = Some((item, depth));
                    }
                }
            }
            Kind::Scrape {
                seeds,
                peers,
                responders,
            } => {
                if resp.bf_seeds.is_some() || resp.bf_peers.is_some() {
                    if let Some(f) = &resp.bf_seeds {
                        seeds.union(f);
                    }
                    if let Some(f) = &resp.bf_peers {
                        peers.union(f);
                    }
                    *responders += 1;
                } else if !resp.values.is_empty() {
                    // BEP 33's legacy rule: a node that sent values without filters
                    // counts its peers as peers.
                    for v in &resp.values {
                        peers.insert(v.ip());
                    }
                    *responders += 1;
                }
            }
            Kind::Samples { samples, num_max } => {
                if let Some(s) = &resp.samples {
                    samples.extend(s.iter().copied());
                }
                if let Some(n) = resp.num {
                    *num_max = (*num_max).max(n);
                }
            }
            // Their lookups only bring nodes and tokens.
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::Announce { .. }
            | Kind::PutImmutable { .. }
            | Kind::PutMutable { .. } => {}
        }
    }

    /// The write sent to one of the closest nodes with its `token`.
    pub fn write_method(&self, target: Id, token: Vec<u8>) -> Option<Method> {
        Some(match self {
            Kind::Announce { port, seed, .. } => {
                Method::announce_peer(target, port.unwrap_or(0), token)
                    .with_implied_port(port.is_none())
                    .with_seed(*seed)
            }
            Kind::PutImmutable { value, .. } => Method::Put(PutArgs::new(
                token,
                Item::Immutable {
                    value: value.clone(),
                },
            )),
            Kind::PutMutable { item, cas, .. } => {
                Method::Put(PutArgs::new(token, Item::Mutable(item.clone())).with_cas(*cas))
            }
            Kind::Ping { .. }
            | Kind::FindNode
            | Kind::GetPeers { .. }
            | Kind::Scrape { .. }
            | Kind::GetImmutable { .. }
            | Kind::GetMutable { .. }
            | Kind::Samples { .. } => return None,
        })
    }

    /// The outcome, given the closest responders; a get reports the depth of its value.
    pub fn into_outcome(
        self,
        target: Id,
        closest: Vec<NodeInfo>,
        stats: &mut QueryStats,
    ) -> Outcome {
        match self {
            Kind::Ping { answer } => Outcome::Ping { node: answer },
            Kind::FindNode => Outcome::Nodes { closest },
            Kind::GetPeers { peers } => Outcome::Peers {
                peers: peers.into_iter().collect(),
                closest,
            },
            Kind::Announce { writes, .. }
            | Kind::PutImmutable { writes, .. }
            | Kind::PutMutable { writes, .. } => Outcome::Stored {
                target,
                stored_at: writes.stored_at,
                errors: writes.errors,
            },
            Kind::GetImmutable { value } => {
                if let Some((_, d)) = &value {
                    stats.hops = *d;
                }
                Outcome::Immutable {
                    value: value.map(|v| v.0),
                }
            }
            Kind::GetMutable { best, .. } => {
                if let Some((_, d)) = &best {
                    stats.hops = *d;
                }
                Outcome::Mutable {
                    item: best.map(|b| b.0),
                }
            }
            Kind::Scrape {
                seeds,
                peers,
                responders,
            } => Outcome::Scrape {
                seeds: seeds.estimate().round() as u32,
                peers: peers.estimate().round() as u32,
                responders,
            },
            Kind::Samples { samples, num_max } => Outcome::Samples {
                samples: samples.into_iter().collect(),
                num_max,
            },
        }
    }
}
