//! Chord as the runtime hosts it: [`Chord`] (the protocol its handles speak),
//! [`ChordHandle`] (a [`Handle`] with a method per command) and [`ChordMetrics`]
//! (what `/metrics` and `/readyz` report), for `dht_chord::ChordNode` on the one
//! [`crate::Runtime`] that Mainline runs on.
//!
//! Chord is for research and comparison on a network of its own (see the
//! dht-chord crate doc); it never meets the Mainline DHT.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use dht_chord::{BadValue, ChordNode, Config, NodeStats, Outcome, Peer, Request};
use dht_core::{Id, QueryDone, RequestError, Store, Transport};
use tokio::sync::oneshot;

use crate::overlay::{Hosted, Protocol};
use crate::runtime::Runtime;
use crate::{Answer, ConnectionStats, Error, Handle};

/// The protocol of a [`ChordHandle`]: dht-chord's [`Request`] and [`Outcome`].
#[derive(Debug, Clone, Copy)]
pub enum Chord {}

/// What a [`ChordHandle`] asks of its node's state.
#[derive(Debug)]
pub enum ChordQuestion {
    /// Counters and ring pointers.
    Metrics(oneshot::Sender<ChordMetrics>),
}

/// A snapshot of a Chord node: what `/metrics` and `/readyz` report.
///
/// `#[non_exhaustive]`, as every snapshot here: read the fields; a new one is not a
/// breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChordMetrics {
    /// The node's id.
    pub id: Id,
    /// Traffic counters.
    pub stats: NodeStats,
    /// On a ring (joined or created), not left.
    pub joined: bool,
    /// Settled on the ring (`ChordNode::is_settled`): what `/readyz` waits for.
    pub settled: bool,
    /// Nodes in the successor list.
    pub successors: usize,
    /// The predecessor, if known.
    pub predecessor: Option<Peer>,
    /// Keys held, as owner or replica.
    pub keys: usize,
    /// Commands and internal lookups in progress.
    pub ops: usize,
}

impl ChordMetrics {
    /// Why the node is not ready (`/readyz`), or `None` once it is settled on its
    /// ring: a put made through a ring that is still converging may land where later
    /// gets do not look.
    pub fn not_ready(&self) -> Option<String> {
        match (self.joined, self.settled) {
            (false, _) => Some("not on a ring yet".into()),
            (true, false) => Some(
                "on a ring, not settled yet (predecessor, full successor list, a finger pass)"
                    .into(),
            ),
            (true, true) => None,
        }
    }

    /// Sets these figures through the `metrics` facade, for
    /// [`crate::exposition::Exporter::render_recorded`].
    pub fn record(&self) {
        use metrics::{counter, gauge};
        let s = &self.stats;
        counter!("dht_datagrams_received_total").absolute(s.datagrams_in);
        counter!("dht_datagrams_sent_total").absolute(s.datagrams_out);
        counter!("dht_queries_answered_total").absolute(s.queries_answered);
        counter!("dht_unexpected_replies_total").absolute(s.unexpected_replies);
        counter!("chord_malformed_total").absolute(s.malformed);
        counter!("chord_request_timeouts_total").absolute(s.timeouts);
        counter!("chord_replaced_total").absolute(s.replaced);
        gauge!("chord_successors").set(self.successors as f64);
        gauge!("chord_predecessor_known").set(f64::from(u8::from(self.predecessor.is_some())));
        gauge!("chord_keys").set(self.keys as f64);
        gauge!("chord_ops_in_progress").set(self.ops as f64);
        gauge!("dht_ready").set(f64::from(u8::from(self.not_ready().is_none())));
    }

    /// HELP lines for the Chord figures.
    pub fn describe() {
        use metrics::{describe_counter, describe_gauge};
        describe_counter!("dht_datagrams_received_total", "Datagrams received.");
        describe_counter!("dht_datagrams_sent_total", "Datagrams sent.");
        describe_counter!(
            "dht_queries_answered_total",
            "Queries answered, errors included."
        );
        describe_counter!(
            "dht_unexpected_replies_total",
            "Replies that matched no request in flight."
        );
        describe_counter!("chord_malformed_total", "Datagrams that did not decode.");
        describe_counter!(
            "chord_request_timeouts_total",
            "Requests that got no reply in time."
        );
        describe_counter!(
            "chord_replaced_total",
            "Replies from another id than the one asked at that address (a restarted node)."
        );
        describe_gauge!("chord_successors", "Nodes in the successor list.");
        describe_gauge!(
            "chord_predecessor_known",
            "1 when the predecessor is known."
        );
        describe_gauge!("chord_keys", "Keys held, as owner or replica.");
        describe_gauge!(
            "chord_ops_in_progress",
            "Commands and internal lookups in progress."
        );
        describe_gauge!("dht_ready", "1 when /readyz answers 200.");
    }
}

impl Protocol for Chord {
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = BadValue;
    type Question = ChordQuestion;

    fn label(request: &Request) -> &'static str {
        match request {
            Request::Join { .. } => "join",
            Request::FindSuccessor { .. } => "find_successor",
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
        }
    }

    fn record(label: &'static str, done: &QueryDone<Outcome>) {
        let found = match &done.outcome {
            Outcome::Successors { successors } => !successors.is_empty(),
            Outcome::Value { value } => value.is_some(),
            Outcome::Stored { stored_at, .. } => stored_at.is_some(),
        };
        let outcome = match (found, done.stats.responses) {
            (true, _) => "found",
            (false, 0) => "no_response",
            (false, _) => "not_found",
        };
        metrics::counter!("dht_lookups_total", "kind" => label, "outcome" => outcome).increment(1);
        metrics::histogram!("dht_lookup_duration_seconds", "kind" => label)
            .record(done.stats.duration.as_secs_f64());
        metrics::histogram!("dht_lookup_hops", "kind" => label).record(f64::from(done.stats.hops));
        metrics::histogram!("dht_lookup_messages", "kind" => label)
            .record(f64::from(done.stats.requests));
    }

    /// Over [`dht_chord::wire::MAX_VALUE`] is caught before (see [`ChordHandle::put`]),
    /// so a refusal is a value that is not one bencoded value.
    fn refused(_: BadValue) -> Error {
        Error::Invalid(RequestError::NotBencode)
    }
}

impl<S: Store + Send + 'static> Hosted for ChordNode<S> {
    type Protocol = Chord;

    fn node_id(&self) -> Id {
        self.id()
    }

    fn answer<T: Transport>(
        &mut self,
        _now: Instant,
        question: ChordQuestion,
        _transport: &T,
        _connections: Option<fn(&T) -> ConnectionStats>,
    ) {
        match question {
            ChordQuestion::Metrics(reply) => {
                let _ = reply.send(ChordMetrics {
                    id: self.id(),
                    stats: self.stats(),
                    joined: self.is_joined(),
                    settled: self.is_settled(),
                    successors: self.successor_list().len(),
                    predecessor: self.predecessor(),
                    keys: self.keys().len(),
                    ops: self.ops_in_progress(),
                });
            }
        }
    }

    /// A member leaves as the paper's voluntary departure: its keys go to its
    /// successor, and its neighbours learn of each other at once.
    fn stop(&mut self, now: Instant) {
        if self.is_joined() {
            self.leave(now);
        }
    }
}

/// Where a Chord put landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordStored {
    /// The key: SHA-1 of the bencoded value.
    pub target: Id,
    /// The key's successor, which took the value and copies it to its successors.
    pub stored_at: Peer,
}

/// A handle to a running Chord node (a ring member, or a client that never joins:
/// [`Config::gateways`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChordHandle {
    inner: Handle<Chord>,
}

impl ChordHandle {
    /// Starts a Chord node over `transport` and `store` on the current tokio runtime.
    /// `config.addr` must be the address others reach it at (a client's is unused).
    pub fn spawn_with<T, S>(transport: T, store: S, config: Config) -> io::Result<ChordHandle>
    where
        T: Transport,
        S: Store + Send + 'static,
    {
        let node = ChordNode::new(config, store, crate::runtime::now());
        let (runtime, inner) = Runtime::hosting(transport, node);
        tokio::spawn(runtime.run());
        Ok(ChordHandle { inner })
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.inner.id()
    }

    /// The addresses the node is bound to.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.inner.local_addrs()
    }

    /// Joins the ring through any of `members`; with none, creates a new ring.
    /// Returns the new successor list; [`Error::NoResponse`] if no member answered.
    pub async fn join(&self, members: &[SocketAddr]) -> Result<Answer<Vec<Peer>>, Error> {
        let done = self
            .inner
            .request(Request::Join {
                bootstrap: members.to_vec(),
            })
            .await?;
        match done.outcome {
            Outcome::Successors { successors } if !successors.is_empty() => Ok(Answer {
                value: successors,
                stats: done.stats,
            }),
            _ => Err(Error::NoResponse),
        }
    }

    /// The bencoded value stored under `target`, or `None`.
    pub async fn get(&self, target: Id) -> Result<Answer<Option<Vec<u8>>>, Error> {
        let done = self.inner.request(Request::Get { target }).await?;
        match done.outcome {
            Outcome::Value { value } => Ok(Answer {
                value,
                stats: done.stats,
            }),
            Outcome::Successors { .. } | Outcome::Stored { .. } => Err(Error::NoResponse),
        }
    }

    /// Stores a bencoded value (see [`crate::bencode_bytes`]) under its SHA-1 at the
    /// key's successor. [`Error::ValueTooBig`] over 1000 bytes, [`Error::NoResponse`]
    /// when no node took it.
    pub async fn put(&self, bencoded_value: Vec<u8>) -> Result<Answer<ChordStored>, Error> {
        if bencoded_value.len() > dht_chord::wire::MAX_VALUE {
            return Err(Error::ValueTooBig);
        }
        let value = bencoded_value;
        let done = self.inner.request(Request::Put { value }).await?;
        match done.outcome {
            Outcome::Stored {
                target,
                stored_at: Some(stored_at),
            } => Ok(Answer {
                value: ChordStored { target, stored_at },
                stats: done.stats,
            }),
            Outcome::Stored { .. } | Outcome::Successors { .. } | Outcome::Value { .. } => {
                Err(Error::NoResponse)
            }
        }
    }

    /// The successor of `target` and the nodes that follow it.
    pub async fn find_successor(&self, target: Id) -> Result<Answer<Vec<Peer>>, Error> {
        let done = self
            .inner
            .request(Request::FindSuccessor { target })
            .await?;
        match done.outcome {
            Outcome::Successors { successors } => Ok(Answer {
                value: successors,
                stats: done.stats,
            }),
            Outcome::Value { .. } | Outcome::Stored { .. } => Err(Error::NoResponse),
        }
    }

    /// Counters and ring pointers.
    pub async fn metrics(&self) -> Result<ChordMetrics, Error> {
        self.inner.ask(ChordQuestion::Metrics).await
    }

    /// Stops the node and waits until it has: a member leaves the ring first (its
    /// keys go to its successor, its neighbours are told).
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.shutdown().await
    }
}
