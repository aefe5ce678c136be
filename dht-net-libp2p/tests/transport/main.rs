//! dht-net-libp2p's integration tests, one binary: each test links libp2p, whose
//! generic swarm code every test binary compiled again at opt-level 2 (five binaries
//! took 152 s of a test build's CPU); as modules of one they share it.
//!
//! - `addrs`: which addresses a host keeps, and when auto mode makes it a server;
//! - `bounds`: the transport's limits, seen from a rust-libp2p peer;
//! - `interop`: rust-libp2p's Kademlia and ours, both ways;
//! - `providers`: identify's view of a peer and providers streamed through the handle;
//! - `streams`: inbound kad streams as go-libp2p-kad-dht uses them, from a raw client.

#[allow(dead_code)] // each test module uses part of the helper
mod rust_peer;

mod addrs;
mod bounds;
mod interop;
mod providers;
mod streams;
