//! [`MainlineNode`]: dht-core's [`Node`] as the runtime hosts it, with what only
//! Mainline needs around it: republishing what the application put or announced
//! (items every 50 min, announces every 15 min, until the handle stops it), and the
//! answers to [`Dht`](crate::Dht)'s questions (routing info, metrics snapshots of the
//! tables and store with the transport's QUIC figures, an item held here).
//!
//! [`Mainline`] is the protocol a [`Dht`](crate::Dht) speaks with it, and
//! [`RoutingInfo`] one of its answers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::{
    Commit, Config, ConfigError, Event, Family, Id, Input, Node, NodeInfo, NodeStats, Outcome,
    Output, Overlay, QueryDone, QueryId, Request, RequestError, Store, Transport, UnixMillis,
};
use tokio::sync::oneshot;

use crate::metrics::{kind_of, record_query, record_republish, ConnectionStats, NodeMetrics};
use crate::overlay::{Hosted, Protocol};
use crate::Error;

/// How often items published through a [`Dht`](crate::Dht) are put again: well
/// inside the two hours after which BEP 44 lets nodes drop them.
pub const ITEM_REPUBLISH: Duration = Duration::from_secs(50 * 60);
/// How often announces made through a [`Dht`](crate::Dht) are repeated: peers expire
/// after 30 minutes.
pub const ANNOUNCE_REPUBLISH: Duration = Duration::from_secs(15 * 60);

/// A snapshot of the node's state.
///
/// `#[non_exhaustive]`, as every snapshot here: read the fields; a new one is not a
/// breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutingInfo {
    /// Our node id.
    pub id: Id,
    /// The addresses the transport is bound to.
    pub local_addrs: Vec<SocketAddr>,
    /// Nodes in the IPv4 routing table.
    pub nodes_v4: usize,
    /// Nodes in the IPv6 routing table.
    pub nodes_v6: usize,
    /// The contacts of both tables.
    pub nodes: Vec<NodeInfo>,
    /// Items and announces the handle keeps republishing.
    pub republishing: usize,
    /// Traffic counters.
    pub stats: NodeStats,
}

/// How often the handle republishes what the application published; `None` in
/// [`DhtBuilder::republish`](crate::DhtBuilder::republish) turns republishing off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepublishIntervals {
    /// BEP 44 items (default [`ITEM_REPUBLISH`]).
    pub items: Duration,
    /// Announces (default [`ANNOUNCE_REPUBLISH`]).
    pub announces: Duration,
}

impl Default for RepublishIntervals {
    fn default() -> Self {
        RepublishIntervals {
            items: ITEM_REPUBLISH,
            announces: ANNOUNCE_REPUBLISH,
        }
    }
}

/// The protocol of a [`Dht`](crate::Dht): dht-core's [`Request`] and [`Outcome`].
#[derive(Debug, Clone, Copy)]
pub enum Mainline {}

/// What a [`Dht`](crate::Dht) asks of its node's state.
#[derive(Debug)]
pub enum MainlineQuestion {
    /// Id, addresses, table sizes, counters.
    Info(oneshot::Sender<RoutingInfo>),
    /// The `/metrics` snapshot.
    Metrics(oneshot::Sender<NodeMetrics>),
    /// The item held here under a target.
    LocalItem(Id, oneshot::Sender<Option<dht_core::Item>>),
    /// Stop republishing a target; answers whether it was republished.
    StopRepublishing(Id, oneshot::Sender<bool>),
}

impl Protocol for Mainline {
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = RequestError;
    type Question = MainlineQuestion;

    fn label(request: &Request) -> &'static str {
        kind_of(request)
    }

    fn record(label: &'static str, done: &QueryDone) {
        record_query(label, done);
    }

    fn refused(e: RequestError) -> Error {
        Error::from(e)
    }
}

/// What to republish if `request` (a write) succeeds, and how often.
///
/// Every kind is named, so a new kind of request does not build until it says whether
/// and how it is republished.
fn republish_of(request: &Request, every: RepublishIntervals) -> Option<(Id, Request, Duration)> {
    let target = request.write_target()?;
    let (again, every) = match request {
        Request::AnnouncePeer { .. } => (request.clone(), every.announces),
        // A republish re-puts the same seq and value, which refreshes the item;
        // a cas would fail once the first put has landed.
        Request::PutMutable { item, .. } => (
            Request::PutMutable {
                item: item.clone(),
                cas: None,
            },
            every.items,
        ),
        Request::PutImmutable { .. } => (request.clone(), every.items),
        // Not writes: `write_target` is `None` for them, so they never get here.
        Request::Bootstrap { .. }
        | Request::Ping { .. }
        | Request::FindNode { .. }
        | Request::GetPeers { .. }
        | Request::Scrape { .. }
        | Request::GetImmutable { .. }
        | Request::GetMutable { .. }
        | Request::SampleInfohashes { .. } => return None,
    };
    Some((target, again, every))
}

/// Republishes started in one second at most (see `MainlineNode::republish_due`).
pub const REPUBLISH_PER_SECOND: usize = 16;

#[derive(Debug)]
struct Republish {
    request: Request,
    every: Duration,
    next: Instant,
}

/// A Mainline node as the runtime hosts it: the core [`Node`] and the republisher.
#[derive(Debug)]
pub struct MainlineNode<S: Store> {
    node: Node<S>,
    republish: Option<RepublishIntervals>,
    /// What the application wrote, by target, while it is being republished.
    republished: BTreeMap<Id, Republish>,
    /// The application's writes in flight: what to republish if they succeed.
    planned: HashMap<QueryId, (Id, Request, Duration)>,
    /// Republishes in flight, with their `kind` label: nobody waits for them.
    republishing: HashMap<QueryId, &'static str>,
    /// The latest `now` an input brought, when a finished write's republish is
    /// scheduled from.
    now: Instant,
    /// The current second of republishing and the republishes started in it.
    window: (Instant, usize),
}

impl<S: Store> MainlineNode<S> {
    /// A node (see [`Node::new`]); with `republish` `None`, nothing is republished.
    pub fn new(
        config: Config,
        store: S,
        now: Instant,
        wall: UnixMillis,
        republish: Option<RepublishIntervals>,
    ) -> Result<MainlineNode<S>, ConfigError> {
        Ok(MainlineNode {
            node: Node::new(config, store, now, wall)?,
            republish,
            republished: BTreeMap::new(),
            planned: HashMap::new(),
            republishing: HashMap::new(),
            now,
            window: (now, 0),
        })
    }

    /// The core node.
    pub fn node(&self) -> &Node<S> {
        &self.node
    }

    /// Starts the republishes that are due, at most [`REPUBLISH_PER_SECOND`] a second:
    /// writes made in one burst come due in one burst an interval later, and each
    /// republish is a lookup and k writes. What is due beyond the rate waits for the
    /// next second (its `next` moves there, so the node's timeout is never in the past).
    fn republish_due(&mut self, now: Instant) {
        if now >= self.window.0 + Duration::from_secs(1) {
            self.window = (now, 0);
        }
        let next_window = self.window.0 + Duration::from_secs(1);
        let due: Vec<Id> = self
            .republished
            .iter()
            .filter(|(_, r)| r.next <= now)
            .map(|(id, _)| *id)
            .collect();
        for target in due {
            let Some(r) = self.republished.get_mut(&target) else {
                continue;
            };
            if self.window.1 >= REPUBLISH_PER_SECOND {
                r.next = next_window;
                continue;
            }
            self.window.1 += 1;
            r.next = now + r.every;
            let request = r.request.clone();
            let kind = kind_of(&request);
            tracing::debug!(%target, "republishing");
            record_republish();
            // It was accepted when first put, so it cannot be refused now.
            if let Ok(qid) = self.node.start(now, request) {
                self.republishing.insert(qid, kind);
            }
        }
    }
}

impl<S: Store> Overlay for MainlineNode<S> {
    type Peer = SocketAddr;
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = RequestError;

    #[inline]
    fn handle_input(&mut self, now: Instant, input: Input<'_, SocketAddr>) {
        self.now = now;
        self.node.handle_input(now, input);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.node.handle_timeout(now);
        self.republish_due(now);
    }

    fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, RequestError> {
        self.now = now;
        let plan = self
            .republish
            .and_then(|every| republish_of(&request, every));
        let qid = self.node.start(now, request)?;
        if let Some(plan) = plan {
            self.planned.insert(qid, plan);
        }
        Ok(qid)
    }

    #[inline]
    fn poll_output(&mut self) -> Option<Output<SocketAddr>> {
        self.node.poll_output()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let republish = self.republished.values().map(|r| r.next).min();
        match (self.node.poll_timeout(), republish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        loop {
            let Event::QueryDone(done) = self.node.poll_event()?;
            if let Some(kind) = self.republishing.remove(&done.id) {
                // Nobody waits for a republish; its outcome is only recorded and logged.
                record_query(kind, &done);
                tracing::debug!(outcome = ?done.outcome, "republish done");
                continue;
            }
            if let (Some((target, request, every)), Outcome::Stored { stored_at, .. }) =
                (self.planned.remove(&done.id), &done.outcome)
            {
                if !stored_at.is_empty() {
                    let next = self.now + every;
                    let r = Republish {
                        request,
                        every,
                        next,
                    };
                    self.republished.insert(target, r);
                }
            }
            return Some(Event::QueryDone(done));
        }
    }

    #[inline]
    fn recycle(&mut self, buf: Vec<u8>) {
        self.node.recycle(buf)
    }

    fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        self.node.handle_wall_clock(now, wall)
    }

    fn commit(&mut self) -> Option<Commit> {
        self.node.commit()
    }

    fn commit_failed(&mut self, reply: Vec<u8>) -> Option<Vec<u8>> {
        self.node.commit_failed(reply)
    }
}

impl<S: Store + Send + 'static> Hosted for MainlineNode<S> {
    type Protocol = Mainline;

    fn node_id(&self) -> Id {
        self.node.id()
    }

    fn answer<T: Transport>(
        &mut self,
        now: Instant,
        question: MainlineQuestion,
        transport: &T,
        connections: Option<fn(&T) -> ConnectionStats>,
    ) {
        match question {
            MainlineQuestion::Info(reply) => {
                let v4 = self.node.routing_table(Family::V4);
                let v6 = self.node.routing_table(Family::V6);
                let nodes = v4.entries().chain(v6.entries()).map(|e| e.node).collect();
                let _ = reply.send(RoutingInfo {
                    id: self.node.id(),
                    local_addrs: transport.local_addrs(),
                    nodes_v4: v4.len(),
                    nodes_v6: v6.len(),
                    nodes,
                    republishing: self.republished.len(),
                    stats: self.node.stats(),
                });
            }
            MainlineQuestion::Metrics(reply) => {
                let connections = connections.map(|of| of(transport));
                let m = NodeMetrics::of(&self.node, self.republished.len(), connections, now);
                let _ = reply.send(m);
            }
            MainlineQuestion::LocalItem(target, reply) => {
                let item = self.node.store().get_item(&target).ok().flatten();
                let _ = reply.send(item.map(|s| s.item));
            }
            MainlineQuestion::StopRepublishing(target, reply) => {
                let _ = reply.send(self.republished.remove(&target).is_some());
            }
        }
    }

    fn stop(&mut self, now: Instant) {
        self.node.save_routing(now);
        // A persistent store must hold the final snapshot and every acknowledged
        // write before the process exits, not whenever its background flush runs.
        if let Err(e) = self.node.store_mut().flush() {
            tracing::warn!(error = %e, "cannot flush the store at shutdown");
        }
    }
}
