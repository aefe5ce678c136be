//! The path of each command's lookup, printed to stderr when `DHT_CHORD_TRACE` is set:
//! a debugging aid for long lookups (which nodes were asked, which answered, what they
//! named), read against the simulator's true ring. Off, it costs one branch per step.
//!
//! One line per step, `chord-trace QUERIER OP WHAT`, ids as their first 10 hex digits:
//! `start QUERY get|put|find_successor TARGET`, `ask ID` (or an address), `reply ID
//! found=0|1 ID,ID,..`, `error`, `timeout`, `span ID` (the closest responder asked for
//! its successor list), `span-reply ID,..`, `span-failed`, `routed ID,..` (the list
//! routing ended with), `fetch ID`, `fetched Some(true)|Some(false)|None` (value held,
//! not held, error), `end ok|failed`. Finger fixes and self-checks are not traced.

use dht_core::Id;

use crate::lookup::OpId;
use crate::wire::Peer;

/// Is tracing asked for? Read once per node, when it is made.
pub(crate) fn enabled() -> bool {
    std::env::var_os("DHT_CHORD_TRACE").is_some()
}

/// The first 5 bytes of an id in hex: enough to place 10^6 nodes on a ring.
pub(crate) fn short(id: &Id) -> String {
    id.to_hex()[..10].to_string()
}

/// `a,b,c` of short ids.
pub(crate) fn list(peers: &[Peer]) -> String {
    peers
        .iter()
        .map(|p| short(&p.id))
        .collect::<Vec<_>>()
        .join(",")
}

/// One line: `chord-trace <querier> <op> <what>`.
pub(crate) fn line(querier: &Id, op: OpId, what: &str) {
    eprintln!("chord-trace {} {op} {what}", short(querier));
}
