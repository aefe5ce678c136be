//! The protocol-neutral Kademlia kernel every overlay of this workspace is built on:
//! keys of any width ([`Key`], implemented by [`Id<N>`](crate::Id)), contacts
//! ([`Contact`]), the routing table and the policy that admits contacts to it
//! ([`RoutingTable`], [`Admission`]), iterative lookups over disjoint paths
//! ([`Candidates`], [`Paths`]) and the table of requests in flight with its round-trip
//! estimate ([`RequestTable`]).
//!
//! The Mainline node is this kernel plus KRPC, with [`NodeInfo`](crate::NodeInfo) as
//! its contact and [`Defense`](crate::Defense) as its admission policy; the default type
//! parameters make `RoutingTable` and `Candidates` mean exactly those.

pub use crate::contact::{Admission, Contact};
pub use crate::disjoint::Paths;
pub use crate::id::Key;
pub use crate::lookup::{Candidate, CandidateState, Candidates, Diversity, MAX_ATTEMPTS};
pub use crate::requests::{Pending, RequestTable, TransactionId};
pub use crate::routing::{Entry, Health, Insert, RoutingTable, Rtt, Stamp};
