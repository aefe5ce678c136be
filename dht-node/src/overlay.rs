//! What the runtime asks of an overlay beyond [`dht_core::Overlay`], and what a
//! handle and its node task exchange.
//!
//! [`Protocol`] is the handle's side: the overlay's command, outcome and refusal,
//! its [`Protocol::Question`]s (what a handle asks of the node's state without any
//! network traffic: routing info, metrics) and the metric labels of its commands. It
//! names no store, so one handle type serves a node on any store.
//!
//! [`Hosted`] is the node task's side: a [`dht_core::Overlay`] over socket addresses
//! that can answer its protocol's questions and save what must survive a stop. What
//! only one overlay does lives behind it: Mainline's republishing, routing and store
//! snapshots and QUIC figures are [`crate::MainlineNode`]'s; Chord's counters and
//! ring pointers are `dht_chord::ChordNode`'s.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Id, Overlay, QueryDone, Transport};
use tokio::sync::oneshot;

use crate::{ConnectionStats, Error};

/// What a handle and its node task exchange, for one overlay.
pub trait Protocol: Debug + Clone + Send + Sync + 'static {
    /// A command the application starts.
    type Request: Debug + Send + 'static;
    /// What a finished command found.
    type Outcome: Debug + Send + 'static;
    /// Why a command was refused before anything was sent.
    type RequestError: Debug + Send + 'static;
    /// A question about the node's state, with the channel its answer goes back on.
    type Question: Debug + Send + 'static;

    /// The `kind` label of a command, for the lookup metrics (a fixed set).
    fn label(request: &Self::Request) -> &'static str;
    /// Records a finished command through the `metrics` facade.
    fn record(label: &'static str, done: &QueryDone<Self::Outcome>);
    /// The handle's error for a refusal.
    fn refused(e: Self::RequestError) -> Error;
}

/// An overlay the runtime can host: datagrams to socket addresses, questions
/// answered from its state, and a clean stop.
pub trait Hosted: Overlay<Peer = SocketAddr> + Send + 'static {
    /// What its handles speak: its own request, outcome and refusal types.
    type Protocol: Protocol<
        Request = Self::Request,
        Outcome = Self::Outcome,
        RequestError = Self::RequestError,
    >;

    /// The node's id, handed to its handles.
    fn node_id(&self) -> Id;

    /// Answers a question at `now`. `transport` and `connections` (the transport's
    /// connection figures, for a connection-oriented one) are there for questions
    /// about addresses and traffic.
    fn answer<T: Transport>(
        &mut self,
        now: Instant,
        question: <Self::Protocol as Protocol>::Question,
        transport: &T,
        connections: Option<fn(&T) -> ConnectionStats>,
    );

    /// The node task is stopping: save what must survive (a routing snapshot, the
    /// store's pending writes).
    fn stop(&mut self, now: Instant) {
        let _ = now;
    }
}

/// The answer channel of a command.
pub(crate) type Reply<P> =
    oneshot::Sender<Result<QueryDone<<P as Protocol>::Outcome>, <P as Protocol>::RequestError>>;

/// What a handle sends its node task.
#[derive(Debug)]
pub(crate) enum Command<P: Protocol> {
    /// Start a command; its end goes back on `reply`.
    Query {
        request: P::Request,
        reply: Reply<P>,
    },
    /// A question answered from the node's state.
    Ask(P::Question),
    Shutdown,
}
