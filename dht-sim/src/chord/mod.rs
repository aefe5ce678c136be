//! Chord on the simulator: `dht-sim --overlay chord`.
//!
//! [`ChordSim`] is [`crate::Sim`]'s network with [`dht_chord::ChordNode`]s on it;
//! [`run`] is [`crate::run`]'s experiment (join, lookups, and with `--fail` puts, a
//! simultaneous failure and gets) reported in the same [`crate::Report`]; [`Ring`] is
//! the global view that judges it. What the figures mean for Chord:
//! - `hops_*`: nodes the source queried until one answered with the key's successor
//!   (the paper's path length; 0 when the source's own successor is it), timeouts
//!   excluded; `hops_ideal_mean`: the same count over perfect finger tables and
//!   successor lists (and predecessors) on the same ids, by the same
//!   `closest_preceding` rule.
//! - `lookup_success`: fraction of lookups whose answer begins with the key's true
//!   successor among the live nodes.
//! - `found_k_closest` / `exact_k_closest`: mean fraction of the key's true r first
//!   successors in the answer, and the fraction of answers holding all r.
//! - `table_entries_mean`: distinct nodes in a node's fingers, successor list and
//!   predecessor;
//!   `ideal_table_entries_mean`: the same for perfect tables.

mod experiment;
mod ring;
mod sim;

pub use experiment::run;
pub use ring::Ring;
pub use sim::ChordSim;
