//! # dht-node: a running BitTorrent Mainline DHT node
//!
//! [`dht_core`] is a sans-IO state machine; this crate gives it a clock, a socket and
//! an application-facing handle. One [`Runtime`], generic over the [`Transport`] and
//! the overlay ([`Hosted`]: Mainline's [`MainlineNode`] over any [`Store`], or a Chord
//! node), owns the overlay and drives it from a single tokio task: datagrams and
//! timer expiries go in, what the overlay wants sent goes out in batches, and finished
//! queries complete the futures of the handle that asked for them ([`Dht`] for
//! Mainline, [`ChordHandle`] for Chord, both over the generic [`Handle`]).
//!
//! The handle keeps alive what the application publishes through it: immutable and
//! mutable items are put again every [`ITEM_REPUBLISH`] (nodes drop them after two
//! hours) and announces are repeated every [`ANNOUNCE_REPUBLISH`] (peers expire after
//! 30 minutes), until [`Dht::stop_republishing`] is called or the node shuts down.
//!
//! A long-running node also wants to keep its id across restarts ([`identity`]:
//! `DhtBuilder::keep_id_in` over UDP with a sled data dir, `identity::load_node_key`
//! over QUIC) and to join even if its network comes up after it
//! ([`Dht::bootstrap_until_joined`]).
//!
//! Features choose the backends compiled in: `udp` (`dht_net_udp::UdpTransport`) and
//! `mem` (`dht_store_mem::MemStore`) by default. With both, `DhtBuilder::spawn`
//! binds UDP sockets and starts a node in one call. The `quic` feature adds
//! `DhtBuilder::spawn_quic` (`dht_net_quic::QuicTransport`) and the `sled` feature
//! the persistent `dht_store_sled::SledStore`; a library user passes any transport
//! and store to [`DhtBuilder::spawn_with`].
//! The `ipfs` feature adds only the binary's `--overlay ipfs` (IPFS's Kademlia:
//! `dht_ipfs` on `dht_net_libp2p`, whose `IpfsHandle` a library user takes directly).
//!
//! Modules: `overlay` ([`Protocol`], [`Hosted`]), `runtime`, `mainline`
//! ([`MainlineNode`], republishing), `chord` ([`ChordHandle`]), `handle` (the
//! [`Handle`] and [`Dht`] handles and their answers), `metrics`
//! ([`NodeMetrics`] and the lookup figures recorded as queries end), [`exposition`]
//! (`/metrics` in Prometheus or OpenMetrics text), `builder`
//! ([`DhtBuilder`]), `error` ([`Error`] and
//! the KRPC error mapping), `bootstrap` (routers, resolving, retrying), [`identity`]
//! and `value` (bencoded byte strings).
//!
//! [`Transport`]: dht_core::Transport
//! [`Store`]: dht_core::Store
//!
//! The smallest program: three nodes on loopback, the first the others' bootstrap
//! router; one puts a value and announces itself as a peer of an info_hash, another
//! gets both back. (A node on the Internet bootstraps through [`PUBLIC_ROUTERS`]
//! instead, with [`Dht::bootstrap_until_joined`].)
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use dht_node::{bencode_bytes, dht_core::Id, Dht};
//!
//! let mut nodes = Vec::new();
//! for _ in 0..3 {
//!     nodes.push(Dht::builder().listen("127.0.0.1:0".parse()?).spawn()?);
//! }
//! let router = nodes[0].local_addrs()[0];
//! for node in &nodes[1..] {
//!     node.bootstrap(&[router]).await?;
//! }
//!
//! let put = nodes[1].put_immutable(bencode_bytes(b"hello")).await?;
//! let got = nodes[2].get_immutable(put.value.target).await?;
//! assert_eq!(got.value.as_deref(), Some(&b"5:hello"[..]));
//!
//! let info_hash = Id::sha1(b"a torrent's info dictionary");
//! nodes[1].announce_peer(info_hash, Some(6881)).await?;
//! let found = nodes[2].get_peers(info_hash).await?;
//! assert!(found.value.peers.iter().any(|p| p.port() == 6881));
//!
//! for node in &nodes {
//!     node.shutdown().await?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
#![warn(missing_docs)]

mod answer;
mod bootstrap;
mod builder;
mod chord;
mod delay;
mod error;
pub mod exposition;
mod handle;
pub mod identity;
mod mainline;
mod metrics;
mod overlay;
mod runtime;
mod value;

pub use dht_core;

pub use answer::{Answer, Peers, Samples, Scrape, Stored};
pub use bootstrap::{resolve, Backoff, PUBLIC_ROUTERS};
pub use builder::DhtBuilder;
pub use chord::{Chord, ChordHandle, ChordMetrics, ChordQuestion, ChordStored};
pub use error::Error;
pub use handle::{Dht, Handle};
pub use mainline::{
    Mainline, MainlineNode, MainlineQuestion, RepublishIntervals, RoutingInfo, ANNOUNCE_REPUBLISH,
    ITEM_REPUBLISH, REPUBLISH_PER_SECOND,
};
pub use metrics::{ConnectionStats, NodeMetrics, TableMetrics, READY_WITHIN};
pub use overlay::{Hosted, Protocol};
pub use runtime::Runtime;
pub use value::{bencode_bytes, bencoded_string};

/// Not part of the API: test tooling for this workspace's tests, testnets and tools.
///
/// [`EgressDelay`](testing::EgressDelay) holds every sent datagram for a fixed time,
/// netem's link delay for testnets on kernels without netem (`--egress-delay-ms`,
/// `cargo xtask testnet --delay`); nothing here belongs on a real network.
///
/// Hidden from the docs and from `api/dht-node.txt`, with no semver promise. A module
/// rather than a `testing` feature because the `dht-node` binary itself uses it for
/// testnets, and a binary cannot turn on a feature of its own package's library
/// (only `required-features`, which would make every build name the feature); feature
/// unification would turn it on in every workspace build anyway.
#[doc(hidden)]
pub mod testing {
    pub use crate::delay::EgressDelay;
}
