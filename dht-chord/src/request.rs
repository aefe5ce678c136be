//! What an application asks of a Chord node and what it gets back: [`Request`] (every
//! command), [`Outcome`], [`BadValue`] (a refusal before anything is sent), and
//! dht-core's [`dht_core::QueryDone`] and [`dht_core::Event`] carrying the outcome.

use std::net::SocketAddr;

use dht_core::Id;

use crate::wire::{self, Peer};

/// Figures about one finished command: dht-core's type, so that both overlays report
/// alike. For Chord, `hops` counts the nodes that answered a `find_successor` step, up
/// to and including the one that knew the target's successor (the paper's path
/// length; 0 when this node knew).
pub use dht_core::QueryStats;

/// A finished Chord command.
pub type QueryDone = dht_core::QueryDone<Outcome>;

/// Something a Chord node tells the application.
pub type Event = dht_core::Event<Outcome>;

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

/// What a finished command found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `find_successor` and `join`: the target's successor first, then the nodes
    /// that follow it; empty if the lookup ran out of live nodes.
    Successors {
        /// Successor list of the node preceding the target.
        successors: Vec<Peer>,
    },
    /// `get`: the value, if a node of the key's successor list held it.
    Value {
        /// The bencoded value (its SHA-1 is the key).
        value: Option<Vec<u8>>,
    },
    /// `put`: the node that took the value (it replicates it to its successors).
    Stored {
        /// The key, SHA-1 of the value.
        target: Id,
        /// Who acknowledged; `None` if nobody did.
        stored_at: Option<Peer>,
    },
}

/// A `put` whose value is over [`wire::MAX_VALUE`] bytes or not one bencoded value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadValue;

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a value must be one bencoded value of at most {} bytes",
            wire::MAX_VALUE
        )
    }
}

impl std::error::Error for BadValue {}
