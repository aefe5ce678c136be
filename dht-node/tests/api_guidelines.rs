//! The Rust API guidelines' promises that the compiler can check (docs/api-review.md):
//! the handles an application clones into its tasks are `Send` and `Sync`, the node a
//! runtime spawns is `Send`, every error type is a `std::error::Error` that another
//! thread can hold, and the public types are `Debug`. A type that loses one of these
//! fails to compile here, before a user finds out.

use std::error::Error;
use std::fmt::Debug;

use dht_net_udp::UdpTransport;
use dht_node::identity::IdentityError;
use dht_node::{
    Answer, ChordHandle, ChordMetrics, Dht, DhtBuilder, Handle, Mainline, MainlineNode,
    NodeMetrics, Peers, RoutingInfo, Runtime, Stored,
};
use dht_store_mem::MemStore;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send + 'static>() {}
fn error<E: Error + Send + Sync + 'static>() {}
fn debug<T: Debug>() {}

#[test]
fn handles_are_shared_between_tasks() {
    send_sync::<Dht>();
    send_sync::<Handle<Mainline>>();
    send_sync::<ChordHandle>();
    send_sync::<DhtBuilder>();
}

#[test]
fn a_runtime_and_its_node_move_into_a_task() {
    // `tokio::spawn(runtime.run())` needs the runtime, and so the node, to be Send.
    send::<Runtime<UdpTransport, MainlineNode<MemStore>>>();
    send::<MainlineNode<MemStore>>();
}

#[test]
fn answers_and_snapshots_cross_threads() {
    send_sync::<Answer<Stored>>();
    send_sync::<Answer<Peers>>();
    send_sync::<NodeMetrics>();
    send_sync::<RoutingInfo>();
    send_sync::<ChordMetrics>();
}

#[test]
fn every_error_type_is_a_thread_safe_std_error() {
    error::<dht_node::Error>();
    error::<IdentityError>();
    let boxed: Box<dyn Error + Send + Sync> = Box::new(dht_node::Error::Shutdown);
    assert!(!boxed.to_string().is_empty());
}

#[test]
fn public_types_are_debug() {
    debug::<Dht>();
    debug::<Handle<Mainline>>();
    debug::<ChordHandle>();
    debug::<DhtBuilder>();
    debug::<MainlineNode<MemStore>>();
    debug::<Runtime<UdpTransport, MainlineNode<MemStore>>>();
    debug::<NodeMetrics>();
}
