//! The seam between the HTTP API and whatever routes: the [`ContentRouting`] trait,
//! the [`PeerRecord`]s it answers with, and its [`RoutingError`]s.

use std::future::Future;

use bytes::Bytes;
use dht_ipfs::PeerId;
use futures_util::Stream;
use multiaddr::Multiaddr;

use crate::parse::Cid;
use crate::permit::Permit;

/// A peer as the spec's `peer` schema describes it: its PeerId, the addresses it is
/// known at and the transfer protocols it is known to speak (either may be empty:
/// unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer.
    pub id: PeerId,
    /// Its multiaddrs, if known.
    pub addrs: Vec<Multiaddr>,
    /// Its transfer protocols (`transport-bitswap`, …), if known.
    pub protocols: Vec<String>,
}

impl PeerRecord {
    /// `id` at `addrs`, protocols unknown (what a DHT provider record holds).
    pub fn new(id: PeerId, addrs: Vec<Multiaddr>) -> PeerRecord {
        PeerRecord {
            id,
            addrs,
            protocols: Vec::new(),
        }
    }
}

/// Why a routing operation failed (not "nothing found", which is `None` or an empty
/// stream).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// The router cannot work now (no peers, shutting down): 503.
    #[error("routing unavailable: {0}")]
    Unavailable(String),
    /// The router refused what was put (a record older than the one it holds): 400.
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else: 500.
    #[error("routing failed: {0}")]
    Failed(String),
}

/// What the routes ask: providers of content, a peer's addresses, IPNS records.
///
/// # Cancel safety
///
/// Every future these methods return, and every stream of providers, may be dropped
/// at any await point: when the client goes away, when the request's deadline passes,
/// or when a JSON answer has its 100 providers. Dropping must end the work or leave it
/// to finish on its own, never leave shared state half-updated: a `put_ipns` that has
/// started writing either completes in a task of its own or undoes nothing it cannot
/// redo. Work that runs on after its future is dropped (a DHT lookup the node cannot
/// cancel) keeps the [`Permit`] it was given, so that it stays counted against its
/// pool until it ends; work that stops when dropped can ignore it (the router holds
/// the permit for as long as the future or stream lives).
///
/// Names and PeerIds arrive parsed and valid; an IPNS record given to `put_ipns` has
/// been verified against its name at the current time. Records returned by
/// `get_ipns` are verified again before they are served (an expired one is a 404).
pub trait ContentRouting: Send + Sync + 'static {
    /// The providers of one CID, as the lookup finds them. The stream ends when the
    /// lookup does; it is dropped early when the client goes away or has enough.
    type Providers: Stream<Item = PeerRecord> + Send + 'static;

    /// Starts a lookup of the providers of `cid` (the DHT keys them by
    /// [`Cid::multihash`]).
    fn find_providers(
        &self,
        cid: Cid,
        permit: Permit,
    ) -> impl Future<Output = Result<Self::Providers, RoutingError>> + Send;

    /// The addresses of `peer`; `None` when it cannot be found.
    fn find_peer(
        &self,
        peer: PeerId,
        permit: Permit,
    ) -> impl Future<Output = Result<Option<PeerRecord>, RoutingError>> + Send;

    /// The best IPNS record of `name` (the `IpnsEntry` protobuf); `None` when there is
    /// none.
    fn get_ipns(
        &self,
        name: PeerId,
        permit: Permit,
    ) -> impl Future<Output = Result<Option<Bytes>, RoutingError>> + Send;

    /// Publishes `record`, verified as a record of `name`.
    fn put_ipns(
        &self,
        name: PeerId,
        record: Bytes,
        permit: Permit,
    ) -> impl Future<Output = Result<(), RoutingError>> + Send;
}
