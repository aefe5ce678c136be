//! [`Runtime`]: the node task. It owns the core and the transport, selects over
//! received datagrams, the core's next timeout and the commands of [`Dht`] handles,
//! drains what the core wants sent and what finished after every input, and
//! republishes what the application put or announced.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_core::{Config, Event, Family, Id, Node, Outcome, QueryDone, QueryId, Store};
use dht_core::{OutDatagram, RecvSlot, Request, RequestError, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;

use crate::metrics::{kind_of, record_query, record_republish, ConnectionStatsOf, NodeMetrics};
use crate::{Dht, RoutingInfo};

/// How often items published through a [`Dht`] are put again: well inside the two
/// hours after which BEP 44 lets nodes drop them.
pub const ITEM_REPUBLISH: Duration = Duration::from_secs(50 * 60);
/// How often announces made through a [`Dht`] are repeated: peers expire after 30 minutes.
pub const ANNOUNCE_REPUBLISH: Duration = Duration::from_secs(15 * 60);
/// How often the core's wall-clock anchor is refreshed, so that store deadlines
/// follow the system clock even if the monotonic clock drifts from it.
const WALL_CLOCK_EVERY: Duration = Duration::from_secs(60);
/// Datagrams read per wake-up.
const RECV_BATCH: usize = 32;
/// Commands that may wait for the node task before callers are slowed down.
const COMMAND_QUEUE: usize = 256;

/// What to republish if `request` (a write) succeeds, and how often.
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
        _ => (request.clone(), every.items),
    };
    Some((target, again, every))
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

#[derive(Debug)]
pub(crate) enum Command {
    Query {
        request: Request,
        reply: oneshot::Sender<Result<QueryDone, RequestError>>,
    },
    Info(oneshot::Sender<RoutingInfo>),
    Metrics(oneshot::Sender<NodeMetrics>),
    LocalItem(Id, oneshot::Sender<Option<dht_core::Item>>),
    StopRepublishing(Id, oneshot::Sender<bool>),
    Shutdown,
}

#[derive(Debug)]
struct Waiter {
    kind: &'static str,
    reply: Option<oneshot::Sender<Result<QueryDone, RequestError>>>,
    republish: Option<(Id, Request, Duration)>,
}

#[derive(Debug)]
struct Republish {
    request: Request,
    every: Duration,
    next: std::time::Instant,
}

/// The node task: owns the core and the transport and serves a [`Dht`]'s commands.
///
/// Usually started by [`DhtBuilder::spawn_with`](crate::DhtBuilder::spawn_with); build one with [`Runtime::new`] to
/// run it on an executor of your choosing.
#[derive(Debug)]
pub struct Runtime<T: Transport, S: Store> {
    node: Node<S>,
    transport: T,
    rx: mpsc::Receiver<Command>,
    waiters: HashMap<QueryId, Waiter>,
    republished: BTreeMap<Id, Republish>,
    republish: Option<RepublishIntervals>,
    slots: Vec<RecvSlot>,
    next_wall_clock: std::time::Instant,
    connection_stats: Option<ConnectionStatsOf<T>>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl<T: Transport, S: Store> Runtime<T, S> {
    /// A runtime over `transport` and `store` and the handle that drives it.
    /// `config.seed` is used as given: seed it from the OS ([`os_seed`](crate::os_seed)).
    /// With `republish` `None`, nothing is republished.
    pub fn new(
        transport: T,
        store: S,
        config: Config,
        republish: Option<RepublishIntervals>,
    ) -> io::Result<(Runtime<T, S>, Dht)> {
        let t = now();
        let node = Node::new(config, store, t, unix_ms())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let dht = Dht {
            tx,
            id: node.id(),
            local_addrs: Arc::new(transport.local_addrs()),
        };
        let runtime = Runtime {
            node,
            transport,
            rx,
            waiters: HashMap::new(),
            republished: BTreeMap::new(),
            republish,
            slots: (0..RECV_BATCH).map(|_| RecvSlot::new()).collect(),
            next_wall_clock: t + WALL_CLOCK_EVERY,
            connection_stats: None,
        };
        Ok((runtime, dht))
    }

    /// Reads the transport's connection figures into [`Dht::metrics`] with `of`
    /// (a connection-oriented transport such as QUIC).
    pub fn with_connection_stats(mut self, of: ConnectionStatsOf<T>) -> Self {
        self.connection_stats = Some(of);
        self
    }

    /// Runs until [`Dht::shutdown`] or until every handle is dropped.
    pub async fn run(mut self) {
        enum Wake {
            Command(Option<Command>),
            Received(io::Result<usize>),
            Timer,
        }
        tracing::debug!(id = %self.node.id(), addrs = ?self.transport.local_addrs(), "node started");
        loop {
            self.flush().await;
            let deadline = self.next_deadline();
            // Due timers before anything else: with a biased select a flood keeps the
            // socket ready and the timer branch never wins (a 2 s request timeout once
            // fired after 19 s). Receives are bounded per turn (one batch of
            // RECV_BATCH), so a timer waits at most one batch behind a flood.
            if now() >= deadline {
                self.on_timer();
                // Commands still get their turn under a flood of expiring timers.
                if let Ok(c) = self.rx.try_recv() {
                    if matches!(c, Command::Shutdown) {
                        break;
                    }
                    self.on_command(c);
                }
                continue;
            }
            let wake = tokio::select! {
                // Commands first: a shutdown must not wait behind a flood of datagrams.
                biased;
                c = self.rx.recv() => Wake::Command(c),
                r = self.transport.recv_batch(&mut self.slots) => Wake::Received(r),
                _ = tokio::time::sleep_until(TokioInstant::from_std(deadline)) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) | Wake::Command(Some(Command::Shutdown)) => break,
                Wake::Command(Some(c)) => self.on_command(c),
                Wake::Received(Ok(n)) => {
                    let t = now();
                    for slot in &self.slots[..n] {
                        self.node.handle_datagram(
                            t,
                            slot.from,
                            slot.peer_key.as_ref(),
                            slot.payload(),
                        );
                    }
                }
                Wake::Received(Err(e)) => {
                    // A broken socket would spin this loop: back off a little.
                    tracing::warn!(error = %e, "receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Wake::Timer => self.on_timer(),
            }
        }
        self.node.save_routing(now());
        // A persistent store must hold the final snapshot and every acknowledged
        // write before the process exits, not whenever its background flush runs.
        if let Err(e) = self.node.store_mut().flush() {
            tracing::warn!(error = %e, "cannot flush the store at shutdown");
        }
        self.flush().await;
        // Closed only now: `Dht::shutdown` returns when it is, and by then what the
        // node kept must be saved.
        self.rx.close();
        tracing::debug!("node stopped");
    }

    fn next_deadline(&self) -> std::time::Instant {
        let mut d = self.next_wall_clock;
        if let Some(t) = self.node.poll_timeout() {
            d = d.min(t);
        }
        if let Some(r) = self.republished.values().map(|r| r.next).min() {
            d = d.min(r);
        }
        d
    }

    fn on_timer(&mut self) {
        let t = now();
        if t >= self.next_wall_clock {
            self.next_wall_clock = t + WALL_CLOCK_EVERY;
            self.node.handle_wall_clock(t, unix_ms());
        }
        self.node.handle_timeout(t);
        let due: Vec<Id> = self
            .republished
            .iter()
            .filter(|(_, r)| r.next <= t)
            .map(|(id, _)| *id)
            .collect();
        for target in due {
            let Some(r) = self.republished.get_mut(&target) else {
                continue;
            };
            r.next = t + r.every;
            let request = r.request.clone();
            let kind = kind_of(&request);
            tracing::debug!(%target, "republishing");
            record_republish();
            let Ok(qid) = self.node.start(t, request) else {
                // It was accepted when first put, so it cannot be refused now.
                continue;
            };
            // Nobody waits for a republish; its outcome is only logged.
            self.waiters.insert(
                qid,
                Waiter {
                    kind,
                    reply: None,
                    republish: None,
                },
            );
        }
    }

    fn on_command(&mut self, c: Command) {
        let t = now();
        match c {
            Command::Query { request, reply } => {
                let republish = self
                    .republish
                    .and_then(|every| republish_of(&request, every));
                let kind = kind_of(&request);
                let qid = match self.node.start(t, request) {
                    Ok(qid) => qid,
                    Err(refused) => {
                        let _ = reply.send(Err(refused));
                        return;
                    }
                };
                self.waiters.insert(
                    qid,
                    Waiter {
                        kind,
                        reply: Some(reply),
                        republish,
                    },
                );
            }
            Command::Info(reply) => {
                let v4 = self.node.routing_table(Family::V4);
                let v6 = self.node.routing_table(Family::V6);
                let nodes = v4.entries().chain(v6.entries()).map(|e| e.node).collect();
                let _ = reply.send(RoutingInfo {
                    id: self.node.id(),
                    local_addrs: self.transport.local_addrs(),
                    nodes_v4: v4.len(),
                    nodes_v6: v6.len(),
                    nodes,
                    republishing: self.republished.len(),
                    stats: self.node.stats(),
                });
            }
            Command::LocalItem(target, reply) => {
                let item = self.node.store().get_item(&target).ok().flatten();
                let _ = reply.send(item.map(|s| s.item));
            }
            Command::Metrics(reply) => {
                let connections = self.connection_stats.map(|of| of(&self.transport));
                let m = NodeMetrics::of(&self.node, self.republished.len(), connections, t);
                let _ = reply.send(m);
            }
            Command::StopRepublishing(target, reply) => {
                let _ = reply.send(self.republished.remove(&target).is_some());
            }
            // Handled by the loop.
            Command::Shutdown => {}
        }
    }

    /// Sends what the core queued and delivers finished queries.
    async fn flush(&mut self) {
        let mut out = Vec::new();
        while let Some(tx) = self.node.poll_transmit() {
            out.push(tx);
        }
        if !out.is_empty() {
            let batch: Vec<OutDatagram<'_>> = out
                .iter()
                .map(|t| OutDatagram {
                    to: t.to,
                    payload: &t.payload,
                })
                .collect();
            if let Err(e) = self.transport.send_batch(&batch).await {
                tracing::warn!(error = %e, "send failed");
            }
            drop(batch);
            for t in out {
                self.node.recycle(t.payload);
            }
        }
        while let Some(Event::QueryDone(done)) = self.node.poll_event() {
            let Some(waiter) = self.waiters.remove(&done.id) else {
                continue;
            };
            record_query(waiter.kind, &done);
            if let (Some((target, request, every)), Outcome::Stored { stored_at, .. }) =
                (waiter.republish, &done.outcome)
            {
                if !stored_at.is_empty() {
                    self.republished.insert(
                        target,
                        Republish {
                            request,
                            every,
                            next: now() + every,
                        },
                    );
                }
            }
            match waiter.reply {
                Some(reply) => {
                    let _ = reply.send(Ok(done));
                }
                None => tracing::debug!(outcome = ?done.outcome, "republish done"),
            }
        }
    }
}
