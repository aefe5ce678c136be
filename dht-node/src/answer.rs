//! The answers a [`crate::Dht`] call returns, and the one place where the core's
//! [`Outcome`] of each kind of request becomes one: [`FromOutcome`].
//!
//! A new kind of request adds its answer type here (or reuses one) and one
//! `FromOutcome` impl; the handle's method is then a one-line `run`.

use std::net::SocketAddr;

use dht_core::krpc::ErrorBody;
use dht_core::{Id, MutableItem, NodeInfo, Outcome, QueryStats};

use crate::error::most_common_refusal;
use crate::Error;

/// A result and the figures of the query that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// What was found or done.
    pub value: T,
    /// Hops, requests, timeouts and duration of the query.
    pub stats: QueryStats,
}

/// Where a put or an announce landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The item target or info_hash.
    pub target: Id,
    /// Nodes that acknowledged the write (never empty in a successful answer).
    pub stored_at: Vec<SocketAddr>,
    /// Nodes that refused it, with their KRPC error.
    pub refused: Vec<(SocketAddr, ErrorBody)>,
}

/// What a `get_peers` lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// Peers announced for the info_hash.
    pub peers: Vec<SocketAddr>,
    /// The closest nodes that answered, closest first.
    pub closest: Vec<NodeInfo>,
}

/// What a BEP 51 sampling found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// Distinct info_hashes sampled.
    pub samples: Vec<Id>,
    /// The largest number of info_hashes one node said it holds.
    pub num_max: i64,
}

/// What a BEP 33 scrape estimated: distinct IPs of the swarm at the nodes near the
/// info_hash, from the union of their bloom filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scrape {
    /// Seeds.
    pub seeds: u32,
    /// Peers that are not seeds.
    pub peers: u32,
    /// Nodes that sent filters (or, without them, values counted as peers).
    pub responders: u32,
}

/// An answer type built from the outcome of the request that asked for it.
pub(crate) trait FromOutcome: Sized {
    /// The answer, or the error the outcome means (no node answered, every node refused).
    fn from_outcome(outcome: Outcome) -> Result<Self, Error>;
}

impl FromOutcome for Vec<NodeInfo> {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Nodes { closest } => Ok(closest),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for Peers {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Peers { peers, closest } => Ok(Peers { peers, closest }),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for Option<Vec<u8>> {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Immutable { value } => Ok(value),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for Option<MutableItem> {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Mutable { item } => Ok(item),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for Samples {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Samples { samples, num_max } => Ok(Samples { samples, num_max }),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for Scrape {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Scrape {
                seeds,
                peers,
                responders,
            } => Ok(Scrape {
                seeds,
                peers,
                responders,
            }),
            _ => Err(Error::NoResponse),
        }
    }
}

impl FromOutcome for NodeInfo {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Ping { node: Some(node) } => Ok(node),
            _ => Err(Error::NoResponse),
        }
    }
}

/// A write succeeded when at least one node stored it; otherwise the refusal most
/// nodes agreed on is the error.
impl FromOutcome for Stored {
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        let Outcome::Stored {
            target,
            stored_at,
            errors,
        } = outcome
        else {
            return Err(Error::NoResponse);
        };
        if !stored_at.is_empty() {
            return Ok(Stored {
                target,
                stored_at,
                refused: errors,
            });
        }
        Err(most_common_refusal(&errors)
            .map(Error::from_krpc)
            .unwrap_or(Error::NoResponse))
    }
}
