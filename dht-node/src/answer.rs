//! The answers a [`crate::Dht`] call returns, and the one place where the core's
//! [`Outcome`] of each kind of request becomes one: [`FromOutcome`].
//!
//! A new kind of outcome adds its method to [`FromOutcome`] (the build fails until it
//! does) and an answer type here (or reuses one) that overrides it; the handle's
//! method is then a one-line `run`.

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
///
/// One method per kind of [`Outcome`], as serde's `Visitor` has one per data type:
/// [`FromOutcome::from_outcome`] is the one `match` over outcomes in this crate, so a
/// new kind of outcome does not build until it has its method here. An answer type
/// overrides the methods of the outcomes it is made from; every other method keeps
/// its default, [`mis_wired`].
pub(crate) trait FromOutcome: Sized {
    /// The answer, or the error the outcome means (no node answered, every node refused).
    fn from_outcome(outcome: Outcome) -> Result<Self, Error> {
        match outcome {
            Outcome::Ping { node } => Self::ping(node),
            Outcome::Nodes { closest } => Self::nodes(closest),
            Outcome::Peers { peers, closest } => Self::peers(peers, closest),
            Outcome::Stored {
                target,
                stored_at,
                errors,
            } => Self::stored(target, stored_at, errors),
            Outcome::Immutable { value } => Self::immutable(value),
            Outcome::Mutable { item } => Self::mutable(item),
            Outcome::Scrape {
                seeds,
                peers,
                responders,
            } => Self::scrape(Scrape {
                seeds,
                peers,
                responders,
            }),
            Outcome::Samples { samples, num_max } => Self::samples(Samples { samples, num_max }),
        }
    }

    /// From [`Outcome::Ping`].
    fn ping(_node: Option<NodeInfo>) -> Result<Self, Error> {
        mis_wired::<Self>("Ping")
    }

    /// From [`Outcome::Nodes`].
    fn nodes(_closest: Vec<NodeInfo>) -> Result<Self, Error> {
        mis_wired::<Self>("Nodes")
    }

    /// From [`Outcome::Peers`].
    fn peers(_peers: Vec<SocketAddr>, _closest: Vec<NodeInfo>) -> Result<Self, Error> {
        mis_wired::<Self>("Peers")
    }

    /// From [`Outcome::Stored`].
    fn stored(
        _target: Id,
        _stored_at: Vec<SocketAddr>,
        _errors: Vec<(SocketAddr, ErrorBody)>,
    ) -> Result<Self, Error> {
        mis_wired::<Self>("Stored")
    }

    /// From [`Outcome::Immutable`].
    fn immutable(_value: Option<Vec<u8>>) -> Result<Self, Error> {
        mis_wired::<Self>("Immutable")
    }

    /// From [`Outcome::Mutable`].
    fn mutable(_item: Option<MutableItem>) -> Result<Self, Error> {
        mis_wired::<Self>("Mutable")
    }

    /// From [`Outcome::Scrape`].
    fn scrape(_scrape: Scrape) -> Result<Self, Error> {
        mis_wired::<Self>("Scrape")
    }

    /// From [`Outcome::Samples`].
    fn samples(_samples: Samples) -> Result<Self, Error> {
        mis_wired::<Self>("Samples")
    }
}

/// An outcome that no method of this answer type takes: the `Dht` method sent a
/// request whose outcome is not its answer's. That is a bug in this crate, which the
/// first test of the method finds, never something the network did, so it is not
/// reported as [`Error::NoResponse`].
fn mis_wired<T>(outcome: &str) -> ! {
    panic!(
        "dht-node bug: a Dht method is mis-wired: an Outcome::{outcome} cannot become a {}",
        std::any::type_name::<T>()
    )
}

impl FromOutcome for Vec<NodeInfo> {
    fn nodes(closest: Vec<NodeInfo>) -> Result<Self, Error> {
        Ok(closest)
    }
}

impl FromOutcome for Peers {
    fn peers(peers: Vec<SocketAddr>, closest: Vec<NodeInfo>) -> Result<Self, Error> {
        Ok(Peers { peers, closest })
    }
}

impl FromOutcome for Option<Vec<u8>> {
    fn immutable(value: Option<Vec<u8>>) -> Result<Self, Error> {
        Ok(value)
    }
}

impl FromOutcome for Option<MutableItem> {
    fn mutable(item: Option<MutableItem>) -> Result<Self, Error> {
        Ok(item)
    }
}

impl FromOutcome for Samples {
    fn samples(samples: Samples) -> Result<Self, Error> {
        Ok(samples)
    }
}

impl FromOutcome for Scrape {
    fn scrape(scrape: Scrape) -> Result<Self, Error> {
        Ok(scrape)
    }
}

/// A ping that nobody answered is no response.
impl FromOutcome for NodeInfo {
    fn ping(node: Option<NodeInfo>) -> Result<Self, Error> {
        node.ok_or(Error::NoResponse)
    }
}

/// A write succeeded when at least one node stored it; otherwise the refusal most
/// nodes agreed on is the error.
impl FromOutcome for Stored {
    fn stored(
        target: Id,
        stored_at: Vec<SocketAddr>,
        errors: Vec<(SocketAddr, ErrorBody)>,
    ) -> Result<Self, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_ping_is_no_response() {
        let r = NodeInfo::from_outcome(Outcome::Ping { node: None });
        assert!(matches!(r, Err(Error::NoResponse)), "{r:?}");
    }

    #[test]
    #[should_panic(
        expected = "mis-wired: an Outcome::Nodes cannot become a dht_node::answer::Peers"
    )]
    fn a_mis_wired_method_is_a_bug_not_a_network_failure() {
        let _ = Peers::from_outcome(Outcome::Nodes {
            closest: Vec::new(),
        });
    }
}
