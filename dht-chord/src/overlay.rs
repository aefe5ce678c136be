//! [`ChordNode`] as a [`dht_core::Overlay`]: the commands as one [`Request`] enum, so
//! that the runtime and the simulator drive Chord as they drive Mainline.

use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Id, Input, Output, Overlay, Store};

use crate::node::{BadValue, ChordNode, Event, Outcome, QueryId};

/// Every command a Chord node takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Join the ring through any of these members; none creates a new ring.
    Join {
        /// Members to ask (their ids need not be known).
        bootstrap: Vec<SocketAddr>,
    },
    /// Look up the successor of `target`.
    FindSuccessor {
        /// The key.
        target: Id,
    },
    /// Get the value stored under `target`.
    Get {
        /// The key (SHA-1 of the value).
        target: Id,
    },
    /// Store a bencoded value under its SHA-1.
    Put {
        /// The bencoded value, at most [`crate::wire::MAX_VALUE`] bytes.
        value: Vec<u8>,
    },
}

impl<S: Store> ChordNode<S> {
    /// Starts any command; only a bad value for `put` is refused.
    pub fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, BadValue> {
        Ok(match request {
            Request::Join { bootstrap } => self.join(now, &bootstrap),
            Request::FindSuccessor { target } => self.find_successor(now, target),
            Request::Get { target } => self.get(now, target),
            Request::Put { value } => self.put(now, value)?,
        })
    }
}

impl<S: Store> Overlay for ChordNode<S> {
    type Peer = SocketAddr;
    type Request = Request;
    type Outcome = Outcome;
    type RequestError = BadValue;

    fn handle_input(&mut self, now: Instant, input: Input<'_, SocketAddr>) {
        match input {
            Input::Datagram { from, key, bytes } => self.handle_datagram(now, from, key, bytes),
            // Chord is datagrams only.
            Input::StreamRequest { .. }
            | Input::StreamReply { .. }
            | Input::StreamFailed { .. }
            | Input::Connected { .. }
            | Input::Disconnected { .. }
            | Input::Identified { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        ChordNode::handle_timeout(self, now)
    }

    fn start(&mut self, now: Instant, request: Request) -> Result<dht_core::QueryId, BadValue> {
        ChordNode::start(self, now, request).map(|q| dht_core::QueryId(q.0))
    }

    fn poll_output(&mut self) -> Option<Output<SocketAddr>> {
        self.poll_transmit().map(|t| Output::Datagram {
            to: t.to,
            payload: t.payload,
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        ChordNode::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<dht_core::Event<Outcome>> {
        ChordNode::poll_event(self).map(|Event::QueryDone(d)| {
            dht_core::Event::QueryDone(dht_core::QueryDone {
                id: dht_core::QueryId(d.id.0),
                outcome: d.outcome,
                stats: d.stats,
            })
        })
    }
}
