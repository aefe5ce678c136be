//! What every sans-IO overlay offers to whatever drives it: the runtime in `dht-node`,
//! the simulator in `dht-sim`, a test. One trait, so that one runtime and one simulated
//! network run Mainline, Chord and any overlay after them.
//!
//! The shape is quinn-proto's and str0m's: inputs stamped with the caller's `now`,
//! outputs drained until empty. Messages are addressed to a *peer* (the overlay's
//! [`Overlay::Peer`]), not only to a socket address, and come in two families:
//!
//! - **Datagrams** ([`Input::Datagram`], [`Output::Datagram`]): a whole message to or
//!   from a peer, no connection, no reply matching by the transport. KRPC over UDP and
//!   over QUIC datagrams, Chord over UDP. `Peer` is a `SocketAddr`.
//! - **Streams** ([`Output::Request`], [`Input::StreamReply`], [`Input::StreamFailed`],
//!   [`Input::StreamRequest`], [`Output::Reply`], [`Output::Reset`]): one request on a
//!   stream the transport opens, one reply read back on it (libp2p's Kademlia). The
//!   overlay names each stream with a [`StreamId`] so the transport need not
//!   understand the messages; connections opening and closing and what a handshake
//!   told us of a peer ([`Input::Connected`], [`Input::Disconnected`],
//!   [`Input::Identified`]) arrive as inputs too.
//!
//! A datagram overlay never emits a stream output and may ignore the stream inputs;
//! a driver that carries only datagrams never feeds them. Nothing in the trait is
//! Mainline's: requests, outcomes and refusals are associated types.

use std::fmt::Debug;
use std::time::Instant;

use crate::node::{Event, QueryId};
use crate::store::{Commit, UnixMillis};

/// One of the streams an overlay asked a transport to open, or one the transport
/// accepted. Numbered by whoever opened it: the overlay numbers outbound streams in
/// [`Output::Request`], the transport inbound ones in [`Input::StreamRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u64);

/// Something that reaches an overlay from the network.
#[derive(Debug)]
pub enum Input<'a, P> {
    /// A whole message from `from`. `key` is the sender's ed25519 key when the
    /// transport authenticated it (QUIC), else `None`.
    Datagram {
        /// The sender.
        from: P,
        /// The sender's verified key, on authenticated transports.
        key: Option<&'a [u8; 32]>,
        /// The message.
        bytes: &'a [u8],
    },
    /// A request read from inbound stream `stream`, opened by `from`. The answer is an
    /// [`Output::Reply`] or [`Output::Reset`] on the same stream, or nothing.
    StreamRequest {
        /// The authenticated sender.
        from: P,
        /// The inbound stream, numbered by the transport.
        stream: StreamId,
        /// The request.
        bytes: &'a [u8],
    },
    /// The reply read on our outbound stream `stream` (see [`Output::Request`]).
    StreamReply {
        /// The stream the request went out on.
        stream: StreamId,
        /// The reply.
        bytes: &'a [u8],
    },
    /// Our outbound stream `stream` ended without a reply: the dial failed, the peer
    /// reset or closed it, or its deadline passed.
    StreamFailed {
        /// The stream the request went out on.
        stream: StreamId,
    },
    /// A connection to `peer` opened.
    Connected {
        /// The peer.
        peer: P,
    },
    /// The last connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: P,
    },
    /// A handshake (libp2p's identify) told us which protocols `peer` speaks; its
    /// listen addresses travel in `peer`.
    Identified {
        /// The peer, with the addresses it listens on.
        peer: P,
        /// The protocols it speaks.
        protocols: &'a [String],
    },
}

/// Something an overlay wants the transport to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P> {
    /// Send a whole message to `to`.
    Datagram {
        /// The destination.
        to: P,
        /// The message.
        payload: Vec<u8>,
    },
    /// Send a whole message to `to`, but only once the writes it acknowledges are
    /// durable: the reply to a write (announce_peer, put). It waits for the
    /// [`Overlay::commit`] that the driver makes after draining it to complete, and
    /// is never sent if that commit fails; when `commit` returns `None` (a memory
    /// store) it goes at once, like [`Output::Datagram`].
    DatagramAfterCommit {
        /// The destination.
        to: P,
        /// The message.
        payload: Vec<u8>,
    },
    /// Open stream `stream` to `to` (dialing it if needed), write `payload`, close the
    /// write half and read one reply before `deadline`: it comes back as
    /// [`Input::StreamReply`] or [`Input::StreamFailed`].
    Request {
        /// The peer to ask.
        to: P,
        /// The overlay's name for this stream.
        stream: StreamId,
        /// The request.
        payload: Vec<u8>,
        /// When to give up on the reply.
        deadline: Instant,
    },
    /// Write `payload` on inbound stream `stream` as the answer to its request.
    Reply {
        /// The inbound stream.
        stream: StreamId,
        /// The reply.
        payload: Vec<u8>,
    },
    /// Reset inbound stream `stream` (a malformed or refused request).
    Reset {
        /// The inbound stream.
        stream: StreamId,
    },
}

/// A sans-IO overlay: a state machine fed with messages, commands and time.
///
/// The driver loop is the same for every overlay: feed an input
/// ([`Overlay::handle_input`], [`Overlay::handle_timeout`] or [`Overlay::start`]), then
/// drain [`Overlay::poll_output`] until empty, read [`Overlay::poll_timeout`], and drain
/// [`Overlay::poll_event`]. Where the overlay's store keeps writes on disk, the driver
/// also calls [`Overlay::commit`] after draining outputs and holds each
/// [`Output::DatagramAfterCommit`] until the commit that covers it completes (group
/// commit: one flush for every write of a receive batch, off the serving task).
pub trait Overlay {
    /// How the overlay addresses a peer: a `SocketAddr` for datagram overlays.
    type Peer: Clone + Debug + PartialEq;
    /// A command an application starts ([`crate::Request`] for Mainline).
    type Request;
    /// What a finished command found ([`crate::Outcome`] for Mainline).
    type Outcome;
    /// Why a command was refused before anything left.
    type RequestError: std::error::Error + Send + Sync + 'static;

    /// Something arrived from the network.
    fn handle_input(&mut self, now: Instant, input: Input<'_, Self::Peer>);
    /// Timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// Starts a command; it ends with an [`Event::QueryDone`] carrying the returned id.
    fn start(
        &mut self,
        now: Instant,
        request: Self::Request,
    ) -> Result<QueryId, Self::RequestError>;
    /// The next thing to send.
    fn poll_output(&mut self) -> Option<Output<Self::Peer>>;
    /// When [`Overlay::handle_timeout`] should next be called.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next event for the application.
    fn poll_event(&mut self) -> Option<Event<Self::Outcome>>;
    /// Gives a sent payload's buffer back for reuse; dropping it is always correct.
    fn recycle(&mut self, buf: Vec<u8>) {
        drop(buf);
    }
    /// Re-anchors wall-clock time, for overlays whose records carry Unix times.
    fn handle_wall_clock(&mut self, now: Instant, wall: UnixMillis) {
        let _ = (now, wall);
    }
    /// Starts making every write so far durable ([`crate::Store::commit`]): the work to
    /// run off the serving task, or `None` when nothing needs to wait. Every
    /// [`Output::DatagramAfterCommit`] drained before this call is covered by the
    /// commit it returns; with `None` they may all go now.
    fn commit(&mut self) -> Option<Commit> {
        None
    }
    /// What to send in place of `reply`, an [`Output::DatagramAfterCommit`] whose
    /// commit failed: its write may not be on disk, so it must not be acknowledged.
    /// For KRPC, error 202 under the same transaction id, what a refused write gets,
    /// so that the writer learns at once that this node did not keep it. `None`:
    /// nothing is sent.
    fn commit_failed(&mut self, reply: Vec<u8>) -> Option<Vec<u8>> {
        drop(reply);
        None
    }
}
