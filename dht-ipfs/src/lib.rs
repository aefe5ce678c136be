//! # dht-ipfs: a sans-IO node of IPFS's Kademlia DHT
//!
//! The Amino DHT's protocol (`/ipfs/kad/1.0.0`, libp2p's `specs/kad-dht`) on
//! `dht-core`'s protocol-neutral kernel: 256-bit keys (SHA-256 of a PeerId, a record
//! key or a content multihash), its routing table, lookups and request table.
//!
//! Like `dht-core`, this crate does no I/O, reads no clock and uses no global RNG. It
//! implements [`dht_core::Overlay`] with streams: a request arrives on a stream with
//! its sender's authenticated PeerId, the node answers on it or resets it, and asks
//! its own questions on streams it names; connections and identify results arrive as
//! inputs. Transports (libp2p over TCP + noise + yamux) and the simulator drive it.
//!
//! The API is this root: [`Node`] with its [`Config`], [`Request`] and [`Outcome`];
//! peers ([`PeerId`], [`PeerInfo`]); the [`Store`] trait and [`MemStore`]; the
//! [`Validator`] trait and the built-in [`Namespaces`] (`/pk` and `/ipns` records);
//! IPNS records made and read with [`IpnsRecord`] and [`IpnsKeypair`] (ed25519 names
//! only: names of RSA, secp256k1 and ECDSA keys are refused). [`wire`] is public as the
//! codec a transport and tools share; the store conformance suite ships behind the
//! `conformance` feature.
//!
//! ```
//! use std::time::Instant;
//! use dht_core::{Input, Output, Overlay};
//! use dht_ipfs::{Config, MemStore, Node, PeerId, PeerInfo, StoreLimits, KAD_PROTOCOL};
//!
//! let id = |n: u8| PeerId::from_bytes(&[&[0x12, 0x20][..], &[n; 32]].concat()).unwrap();
//! let addr = "/ip4/127.0.0.1/tcp/4001".parse()?;
//! let now = Instant::now();
//! let config = Config::new(7, id(1), vec![addr]);
//! let mut node = Node::new(config, MemStore::new(StoreLimits::default()), now, 1_700_000_000_000);
//! // Identify reports a server: the node asks it for the peers closest to its own key.
//! let server = PeerInfo::new(id(2), ["/ip4/127.0.0.2/tcp/4001".parse()?]);
//! let protocols = [KAD_PROTOCOL.to_string()];
//! node.handle_input(now, Input::Identified { peer: server.clone(), protocols: &protocols });
//! let Some(Output::Request { to, .. }) = node.poll_output() else { panic!() };
//! assert_eq!(to, server); // open a stream to it, write the payload, read the reply
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`wire`] frames a message as a varint length and the protobuf body. A transport
//! reads the prefix first and checks it against the direction's limit
//! ([`Config::max_request_bytes`] for requests) before it allocates the body, so that
//! a peer cannot make it buffer more than the limit:
//!
//! ```
//! use dht_ipfs::wire::{self, DecodeError, Message, MessageType};
//!
//! let request = Message::new(MessageType::FindNode, b"some key".to_vec());
//! let frame = wire::encode_frame(&request);
//! let max = 64 * 1024;
//! let Some((prefix, body)) = wire::frame_header(&frame, max)? else { unreachable!() };
//! assert_eq!(prefix + body, frame.len());
//! assert_eq!(wire::decode_frame(&frame, max)?, request);
//! // Over the limit: refused on the prefix alone, the body never read.
//! assert!(matches!(wire::frame_header(&frame, 4), Err(DecodeError::TooLarge { .. })));
//! # Ok::<(), DecodeError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod ipns;
mod mem;
mod node;
mod peer;
mod store;
mod validate;
pub mod wire;

pub use ipns::{
    select_ipns, validate_ipns, IpnsKeypair, IpnsRecord, UnixNanos, IPNS_PREFIX,
    MAX_IPNS_RECORD_LEN,
};
pub use mem::MemStore;
pub use node::{
    grind_preimage, is_public_addr, Config, Mode, Node, Outcome, Request, RequestError,
    KAD_PROTOCOL,
};
pub use peer::{
    ip_of, key_of, InvalidPeerId, Key, PeerId, PeerInfo, MAX_ADDRS, MAX_INLINE_KEY_LEN,
};
pub use store::{
    Store, StoreCounts, StoreError, StoreLimits, StoredProvider, StoredRecord, UnixMillis,
};
pub use validate::{
    validate_pk, Namespaces, RecordError, RecordPolicy, Validator, MAX_PUBLIC_KEY_LEN,
    PERMISSIVE_MAX_VALUE, PK_PREFIX,
};
