//! The state of one lookup: what it is for, the candidates it may ask next and the
//! phase it is in. `ops.rs` drives it; the node keeps every op in progress.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Id, QueryId, QueryStats};

use crate::ring;
use crate::wire::Peer;

/// Handle of an op (a command or an internal lookup such as a finger fix).
pub(crate) type OpId = u64;

/// Most candidates a lookup keeps; the farthest from the target go first.
pub(crate) const MAX_CANDIDATES: usize = 32;

/// What an op is for.
#[derive(Clone, Debug)]
pub(crate) enum Purpose {
    FindSuccessor,
    Join,
    Get,
    Put(Vec<u8>),
    /// `fix_fingers` for finger `i`.
    Finger(usize),
    /// The self-check that ends a finger pass: a lookup of this node's own id from
    /// its farthest fingers.
    SelfCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Fresh,
    Asked,
}

/// The nodes a lookup may ask next, by clockwise distance to the target.
#[derive(Debug)]
pub(crate) struct Candidates {
    /// Only nodes strictly between `from` and the target bring a lookup closer: the
    /// querier's own id on a ring member, the id just after the target on a client
    /// (which is on no ring, so any node but the target may be closer).
    pub(crate) from: Id,
    pub(crate) target: Id,
    pub(crate) by_distance: BTreeMap<Id, (Peer, State)>,
    /// Addresses to ask first, whose ids are unknown (a join's bootstrap nodes).
    pub(crate) bootstrap: Vec<SocketAddr>,
}

impl Candidates {
    pub(crate) fn add(&mut self, p: Peer) {
        // Only nodes strictly between the querier and the target bring it closer.
        if !ring::in_open(&p.id, &self.from, &self.target) {
            return;
        }
        let d = ring::sub(&self.target, &p.id);
        self.by_distance.entry(d).or_insert((p, State::Fresh));
        while self.by_distance.len() > MAX_CANDIDATES {
            self.by_distance.pop_last();
        }
    }

    /// The next node to ask: a bootstrap address, else the closest fresh candidate.
    pub(crate) fn next(&mut self) -> Option<(SocketAddr, Option<Id>)> {
        if let Some(a) = self.bootstrap.pop() {
            return Some((a, None));
        }
        let (_, (p, state)) = self
            .by_distance
            .iter_mut()
            .find(|(_, (_, s))| *s == State::Fresh)?;
        *state = State::Asked;
        Some((p.addr, Some(p.id)))
    }
}

#[derive(Debug)]
pub(crate) enum Phase {
    /// `find_successor` steps.
    Routing,
    /// Getting or putting at the key's successor list, its `index`-th node now.
    AtSuccessors { list: Vec<Peer>, index: usize },
}

/// A command or an internal lookup in progress.
#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) query: Option<QueryId>,
    pub(crate) purpose: Purpose,
    pub(crate) target: Id,
    pub(crate) candidates: Candidates,
    pub(crate) phase: Phase,
    pub(crate) stats: QueryStats,
    pub(crate) started: Instant,
    /// The responder closest to the target so far, and whether its successor list
    /// was already asked for (see [`ChordNode::span_fallback`]).
    pub(crate) closest_responder: Option<Peer>,
    pub(crate) span_asked: bool,
}
