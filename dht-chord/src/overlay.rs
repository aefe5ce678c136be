//! [`ChordNode`] as a [`dht_core::Overlay`], so that the runtime and the simulator
//! drive Chord as they drive Mainline.

use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Event, Input, Output, Overlay, QueryId, Store};

use crate::node::ChordNode;
use crate::request::{BadValue, Outcome, Request};

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

    fn start(&mut self, now: Instant, request: Request) -> Result<QueryId, BadValue> {
        ChordNode::start(self, now, request)
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

    fn poll_event(&mut self) -> Option<Event<Outcome>> {
        ChordNode::poll_event(self)
    }
}
