//! The Rust API guidelines' promises that the compiler can check (docs/api-review.md):
//! the node and what a user keeps or sends across threads are `Send` (and `Sync` where
//! shared), every error type is a `std::error::Error` that another thread can hold,
//! and the public types are `Debug`. A type that loses one of these fails to compile
//! here, before a user finds out.

use std::error::Error;
use std::fmt::Debug;

use dht_core::kernel::RoutingTable;
use dht_core::{bencode, krpc};
use dht_core::{
    Config, ConfigError, Defense, Event, Id, Limits, MutableItem, Node, NodeInfo, NodeStats,
    Outcome, ParseIdError, QueryId, Request, RequestError, RoutingSnapshot, StoreError, StoredItem,
    Transmit,
};
use dht_store_mem::MemStore;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn error<E: Error + Send + Sync + 'static>() {}
fn debug<T: Debug>() {}

#[test]
fn a_node_over_a_thread_safe_store_moves_to_and_is_shared_between_threads() {
    // A runtime moves the node into its task; a store that is Send and Sync makes it so.
    send_sync::<Node<MemStore>>();
    send_sync::<RoutingTable>();
    send_sync::<dht_core::NodeTable>();
}

#[test]
fn what_crosses_between_a_runtime_and_its_users_is_send_and_sync() {
    send_sync::<Config>();
    send_sync::<Request>();
    send_sync::<Event>();
    send_sync::<Outcome>();
    send_sync::<Transmit>();
    send_sync::<QueryId>();
    send_sync::<NodeStats>();
    send_sync::<Id>();
    send_sync::<NodeInfo>();
    send_sync::<MutableItem>();
    send_sync::<StoredItem>();
    send_sync::<RoutingSnapshot>();
    // A group commit runs on another thread: Send, not Sync (it is run once, by value).
    send::<dht_core::Commit>();
}

#[test]
fn every_error_type_is_a_thread_safe_std_error() {
    error::<ConfigError>();
    error::<RequestError>();
    error::<StoreError>();
    error::<ParseIdError>();
    error::<bencode::Error>();
    error::<krpc::DecodeError>();
    // Boxed into the usual `Box<dyn Error + Send + Sync>`.
    let boxed: Box<dyn Error + Send + Sync> = Box::new(StoreError::new("disk full"));
    assert_eq!(boxed.to_string(), "store error: disk full");
}

#[test]
fn public_types_are_debug() {
    debug::<Node<MemStore>>();
    debug::<Config>();
    debug::<Defense>();
    debug::<Limits>();
    debug::<RoutingTable>();
    debug::<dht_core::Commit>();
    debug::<krpc::Message>();
}
