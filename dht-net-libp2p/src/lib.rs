//! # dht-net-libp2p: the libp2p edge of `dht-ipfs`
//!
//! `dht-ipfs` is a sans-IO node of IPFS's Kademlia; this crate puts it on rust-libp2p's
//! `Swarm`: TCP + noise + yamux, identify (`/ipfs/id/1.0.0`, listing
//! `/ipfs/kad/1.0.0` only in server mode), libp2p ping (js-libp2p routes only to peers
//! that answer it), and the engine's requests and replies on `/ipfs/kad/1.0.0`
//! streams. Our identity is ed25519; peers' RSA identities are accepted (libp2p's
//! `rsa` feature, on ring). No QUIC: libp2p-quic would compile C crypto (aws-lc).
//! `/dns*` and `/dnsaddr` addresses are dialed through libp2p's DNS transport
//! (hickory, on ring) when [`HostConfig::dns`] asks for it: Kubo's bootstrap peers
//! are `/dnsaddr` names.
//!
//! The API: [`IpfsHost::spawn`] with a [`HostConfig`] and a `dht_ipfs::Store` returns
//! an [`IpfsHandle`], whose async methods run the engine's requests (bootstrap,
//! closest peers, find peer, provide, providers, get and put record), stream the
//! providers a lookup finds as it finds them ([`ProviderStream`]), tell what a
//! connected peer listed in identify ([`Identified`]: its addresses and protocols),
//! and report its [`Status`]. [`Limits`] holds the bounds.
//!
//! Two hosts on loopback: one joins through the other, then looks up the servers
//! closest to a key. A seed is named by its address and its PeerId
//! (`/ip4/…/tcp/…/p2p/…`): the engine knows peers by PeerId, and noise checks that
//! the peer reached holds that key.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), dht_net_libp2p::HostError> {
//! use dht_ipfs::{MemStore, StoreLimits};
//! use dht_net_libp2p::{HostConfig, IpfsHost};
//! use libp2p::multiaddr::Protocol;
//!
//! let start = || async {
//!     let key = libp2p::identity::Keypair::generate_ed25519();
//!     let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")];
//!     let store = MemStore::new(StoreLimits::default());
//!     IpfsHost::spawn(HostConfig::new(key, listen), store).await
//! };
//! let (seed, host) = (start().await?, start().await?);
//! let seed_addr = seed.listen_addrs()[0].clone().with(Protocol::P2p(seed.peer_id()));
//! host.bootstrap(&[seed_addr]).await?;
//! let closest = host.closest_peers(b"some key".to_vec()).await?;
//! assert!(closest.iter().any(|p| p.id().as_bytes() == seed.peer_id().to_bytes()));
//! host.shutdown().await;
//! seed.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Why our own connection handler, not libp2p-stream
//! libp2p-stream (0.4.0-alpha, the "just give me streams" crate) would do, but: its
//! latest release is built on the previous libp2p-swarm (0.47, not 0.57's 0.48), it
//! negotiates one outbound stream at a time per connection, and it drops inbound
//! streams whenever its zero-capacity channel is momentarily full. Our handler
//! (`handler.rs`, about 150 lines) opens up to 16 outbound streams at once per
//! connection, counts inbound streams per connection (the bound rust-libp2p has), and
//! turns the protocol off in client mode so that identify stops listing it.
//!
//! ## Streams, as the implementations expect them
//! One outbound stream per request: write it, close the write half, read one reply,
//! all before the request's deadline (10 s). At most [`MAX_OUTBOUND_STREAMS`] open at
//! once per connection; more wait for a free one. Inbound streams are read in a loop
//! until the peer closes them (go sends request after request on one), with an idle
//! timeout of 60 s ([`INBOUND_IDLE`], `Limits::inbound_idle`), and
//! reset on a malformed or oversized message.
//!
//! ## Bounds ([`Limits`])
//! Connections in total and per IP (loopback and private sources exempt unless
//! `exempt_local` is off), inbound streams per connection, and bytes per message
//! (checked on the length prefix, before the body is read).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod addrs;
mod behaviour;
mod handle;
mod handler;
mod host;
mod io;
mod providers;

pub use behaviour::Limits;
pub use handle::{seed_peer, HostConfig, HostError, IpfsHandle, Status};
pub use handler::MAX_OUTBOUND_STREAMS;
pub use host::IpfsHost;
pub use io::INBOUND_IDLE;
pub use providers::{Identified, ProviderStream};

/// `/ipfs/kad/1.0.0`, as the stream protocol the swarm negotiates.
const KAD: libp2p::StreamProtocol = libp2p::StreamProtocol::new(dht_ipfs::KAD_PROTOCOL);
