//! # dht-sim: thousands of dht-core nodes on one virtual network
//!
//! A deterministic discrete-event simulator. Every node is a real [`dht_core::Node`]
//! over a [`dht_store_mem::MemStore`], exchanging real KRPC datagrams; only the network
//! and the clock are simulated. Virtual time jumps from one event to the next, so a
//! minute of a 10,000-node DHT costs what its messages cost to encode and decode.
//! Events are ordered by (virtual time, sequence number) and every random choice comes
//! from ChaCha8 generators derived from one seed: one seed gives one run, datagram for
//! datagram, and [`Network::event_hash`] proves it.
//!
//! The network is written once, generic over the overlay: a [`Network`] runs any
//! [`dht_core::Overlay`] whose simulator glue implements [`SimOverlay`] (how its
//! nodes are made, addressed through an [`AddressBook`] and joined, and how a lookup is
//! judged). [`Sim`] is the network of Kademlia nodes, [`chord::ChordSim`] that of
//! Chord nodes, [`ipfs::IpfsSim`] that of IPFS's Kademlia (dht-ipfs) nodes, whose
//! requests travel on streams the network opens, with connections and identify.
//!
//! ## The network
//! - Addresses (`--address-plan`, [`AddressPlan`]), port 6881 for all, virtual (never
//!   used on a real network):
//!   - `public` (the default): every node on a random public /24 of its own (never
//!     in a reserved, private, shared, loopback, link-local, documentation,
//!     benchmarking, multicast or 240/4 block: [`is_reserved_prefix`]), a random host
//!     of it, drawn from the seed; every node's `Defense::local_listen` is off, as the
//!     runtime sets it on a public address. Nothing is exempt, so rate limits, the
//!     per-IP and per-/24 routing-table caps, lookup diversity and the trimming of
//!     replies to strangers apply as on the Internet. Ids stay random (BEP 42 in its
//!     default `Prefer` mode sees every id, honest or Sybil, as unverified).
//!   - `private`: node `i` at 10.0.0.1 + i, Sybil `s` at 172.16.0.1 + s: a LAN, every
//!     per-address defense exempt. The plan of every run recorded before the public
//!     one existed; it replays them (same `event_hash`).
//!
//!   Public is the default for every run, not only Sybil runs: a figure should
//!   describe the engine as deployed, with its defenses on. Without Sybils the two
//!   plans give the same figures (seeds 1 to 3 at 2,000 nodes), only the addresses
//!   in the datagrams, and so `event_hash`, differ. `dht-sim/results/sybil.md` has
//!   both plans side by side.
//! - Latency, for a mean one-way latency M (`--latency-ms`, default 50): each pair of
//!   nodes has a base latency drawn once, uniform in [0.2 M, 1.6 M], the same both ways;
//!   each datagram adds jitter uniform in [0, 0.2 M). Mean one-way M, mean round trip 2 M.
//! - Loss (`--loss P`): each datagram is dropped independently with probability P.
//! - Datagrams over 1452 bytes are dropped and counted (`datagrams_oversize`).
//! - Joining is the protocol's own: 4 seed nodes start together and bootstrap from each
//!   other, then one node arrives every millisecond and bootstraps from the seeds
//!   (a `find_node` of its own id), then the network runs `--settle SECS` (default 60)
//!   so housekeeping can verify new contacts. That virtual time is reported as
//!   `join_seconds`. dht-core refreshes a bucket only after 15 minutes without change,
//!   so a 60 s network is young: its tables hold about a third of what an ideal table
//!   holds. `--settle 1200` lets one round of bucket refreshes run (a network in steady
//!   state); `table entries: real / ideal` in the report shows how full tables are.
//!
//! ## Running an experiment
//! ```text
//! cargo run --release -p dht-sim -- --nodes 10000 --lookups 10000 --seed 1
//! cargo run --release -p dht-sim -- --nodes 1000 --lookups 1000 --seed 1 --loss 0.01 --json
//! cargo run --release -p dht-sim -- --nodes 1000 --lookups 500 --seed 1 --fail 0.3
//! cargo run --release -p dht-sim -- --nodes 10000 --lookups 1000 --sybil 0.2 --disjoint 4
//! ```
//! Options: `--latency-ms MS` (mean one-way latency), `--loss P`, `--fail F`, `--settle SECS`, `--k K`
//! (bucket size, default 8), `--alpha A` (requests in flight per lookup, default dht-core's `Config::default().alpha`, 2),
//! `--disjoint D` (`Config::disjoint_paths` of every node: S/Kademlia disjoint paths for
//! get and get_peers, default 1 = the plain lookup), `--sybil F` and
//! `--sybil-placement random|adjacent`, `--sybil-prefixes P` (below), `--address-plan
//! public|private` (above), `--gets G` (below),
//! `--json` (one JSON object as the last line of stdout; progress goes to stderr).
//!
//! After the join, the driver issues one `find_node` every 5 ms, from a random node to
//! a random target, and waits for all of them. With `--fail F` it then puts as many
//! immutable items (one every 5 ms, from random nodes), kills a fraction F of the nodes
//! at once, and gets every item from a random survivor. With `--gets G` (and no
//! `--fail`) it puts G items after the lookups and gets each from a random node.
//!
//! ## Sybil attacks
//! `--sybil F` makes `round(F N)` of the N nodes adversarial. A Sybil is played by the
//! simulator, not by dht-core ([`Sim::add_sybil`]): it lives on a public /24 of its own
//! (`--sybil-prefixes P`: all Sybils share P random public /24s, up to 254 each, an
//! adversary with few networks; the private plan: at 172.16.0.1 + s), answers
//! pings normally (so honest nodes keep it), answers find_node, get_peers and get with
//! the K Sybils closest to the target (the adversary's global view) and a write token,
//! never with a value, and acknowledges put and announce_peer while storing nothing: the
//! realistic attack, in which honest writes go to it and vanish. It joins as a newcomer
//! does, by an iterative find_node of its own id from the seed nodes, so honest nodes
//! near its id ping it and take it in; later they also learn Sybils from Sybil replies.
//! - `random` (S/Kademlia's setting): Sybils at random ids take random arrival slots
//!   among the honest nodes during the join.
//! - `adjacent`: the honest nodes join alone; after the puts, the Sybils arrive one per
//!   millisecond with ids sharing the first 128 bits of an item's target (dealt
//!   round-robin over the targets, so `F N / L` per target: choose L = F N / K for K per
//!   target), and the network runs 30 s more.
//! - `--eclipse N` (instead of `--sybil`): a targeted eclipse, issue 26's: the honest
//!   `--nodes` join alone, put L items, and then N attackers per item arrive as the
//!   adjacent Sybils do, at ids closer to its target than any honest node (N L
//!   attackers on top of the honest nodes), answering with each other only and storing
//!   nothing. The report names `eclipse` (N); the get figures are as with `--sybil`.
//!   Not yet modelled: the attacker's address budget and BEP 42 enforcement.
//!
//! With `--sybil` the find_node phase and `--fail` are skipped: the run puts L items
//! from honest nodes (one every 5 ms), then gets each from a random honest node.
//! Puts take the same `--disjoint` paths as gets (a put over one path that meets a
//! Sybil can end among Sybils only, which ack it and store nothing): `stored_honest`
//! tells how many items reached an honest node, and `get_success_stored` judges the
//! gets on those alone.
//!
//! ## What the figures mean
//! - `found_k_closest`: for each lookup, the fraction of the true K closest live nodes
//!   other than its source (from the simulator's global view) that the lookup's
//!   `closest` list holds and that answered the lookup, as seen on the wire
//!   ([`Sim::answered`]: a response carrying the transaction id of the source's query
//!   for that target); the mean over lookups. A lookup that ends before the K closest
//!   answered does not score on those it only heard of. `exact_k_closest`: the
//!   fraction of lookups that found all K so. `lookup_success`: the fraction that found
//!   the closest one so.
//! - `hops_mean`, `hops_p1`, `hops_p50`, `hops_p99`: hops as dht-core counts them (the depth of the
//!   closest responder: 1 for a contact from the node's own table, d + 1 for a node
//!   learned from a depth-d node). `hops_ideal_mean`: the same lookups (same source,
//!   same target, same algorithm: [`dht_core::kernel::Candidates`] with the same K and
//!   alpha) over ideal routing tables built from the global view, every bucket holding K
//!   nodes drawn at random from its range (or all there are), answers instantaneous.
//! - `messages_per_lookup`: requests the lookup sent plus replies it received.
//!   `timeouts_per_lookup`: its requests that timed out.
//! - `latency_ms_p50`, `latency_ms_p99`: virtual time from the command to its result;
//!   `latency_rtt_*` is the same divided by the mean round trip (2 M).
//! - `get_latency_rtt_p50`, `get_latency_rtt_p99` (with a get phase: `--gets`,
//!   `--fail` or `--sybil`): the same for the immutable gets, every finished get
//!   counted, found or not.
//! - `bytes_per_node`: growth of the process's resident set size (VmRSS in
//!   /proc/self/status) from before the first node is created to after the join,
//!   divided by N. It covers the nodes, their stores and tables, and the simulator's
//!   own per-node state and queues; `peak_rss_bytes` is VmHWM at the end.
//! - `table_entries_mean`, `ideal_table_entries_mean`: main-bucket entries of the live
//!   nodes' tables after the lookups, and of the ideal tables built for the hops figure.
//! - `join_seconds`, `sim_seconds`: virtual time of the join and of the whole run.
//! - `wall_seconds`: real time of the whole run (join, lookups, judging, failure phase).
//! - `event_hash`: hex SHA-1 over (time, source, destination, length, payload) of every
//!   delivered datagram.
//! - `put_success`, `get_success` (with `--fail` or `--sybil`): the fraction of puts
//!   acknowledged by at least one node (a Sybil's acknowledgement counts: the
//!   publisher cannot tell), and of items whose get from a survivor (an honest node)
//!   returned the value. `messages_per_get`: requests sent plus replies received per get.
//!   With `--gets`: `put_success` and `get_success` as here, over all live nodes.
//! - `address_plan`: `public` or `private`; `sybil_prefixes`: P of `--sybil-prefixes`.
//! - With `--sybil`: `sybil` (F), `sybil_placement`, `sybil_nodes`, `disjoint` (D);
//!   `stored_honest`: fraction of the items some honest node held when the gets began
//!   (from the stores, a global view); `get_success_stored`: fraction of those whose get
//!   succeeded; `sybil_in_tables`: fraction of the honest tables' entries that are Sybils.
//!
//! ## Chord and churn
//! `--overlay chord` runs [`chord::ChordSim`] (dht-chord nodes on the same network)
//! through the same experiment and report; [`churn`] runs any overlay under continuous
//! joins and failures. `cargo run --release -p dht-sim --example chord_figures -- path-length |
//! load | failure | churn` writes the comparison under `dht-sim/results/`.
//!
//! ## Items under churn
//! [`retention`] puts items, churns with nobody republishing, and gets them back, with
//! dht-core's handover (`Config::handover`, [`SimConfig::handover`]) and without.
//! `cargo run --release -p dht-sim --example retention -- 1000 1800` writes
//! `results/retention.md`.
//!
//! ## Scale
//! `cargo run --release -p dht-sim --example n_sweep -- run 1000,10000,100000` runs
//! `dht-sim` once per N and writes `results/n-sweep.md` and `.svg` (hops, latency and
//! messages against the ideal-table model, bytes per node, peak RSS, wall time);
//! `results/scale.md` says where a simulated node's time and bytes go.
//!
//! ## IPFS's Kademlia
//! `--overlay ipfs` runs [`ipfs::run`]: dht-ipfs nodes (k = 20 unless `--k`, alpha 3
//! per lookup path, `--alpha`) on 127.x multiaddrs, one arriving every 100 ms
//! (`--join-interval-ms`) and bootstrapping through node 0, their requests on streams.
//! A request to a peer with no open connection first waits for the handshake,
//! `--handshake-rtts R` round trips of the link (3: TCP, noise, yamux, each agreed by
//! multistream-select); a connection idle for 60 s closes. `latency_rtt_*` is a
//! lookup's time less the handshakes on the chain of replies that ended it,
//! `latency_dial_rtt_*` its whole time. With `--fail F`, L `/pk` records are put and
//! L provider keys announced before the failure; `get_success` and
//! `providers_success` are the fractions found from survivors after it. See
//! `dht-sim/results/ipfs.md`.
//!
//! ## From code
//! ```
//! use dht_core::Request;
//! use dht_sim::{Sim, SimConfig};
//! let mut sim = Sim::new(SimConfig::new(50, 7));
//! sim.join_all(|_| {});
//! let target = dht_core::Id([0x42; 20]);
//! let q = sim.command(3, |node, now| node.start(now, Request::FindNode { target }).expect("request"));
//! assert!(sim.run_until_idle(std::time::Duration::from_secs(60)));
//! assert!(sim.take_done(3, q).is_some());
//! ```
// serde_json::json! of the report's ~45 fields nests deeper than the default 128.
#![warn(missing_docs)]
#![recursion_limit = "256"]

mod address;
pub mod chord;
pub mod churn;
mod closest;
mod experiment;
pub mod figures;
mod global;
pub mod ipfs;
mod net;
mod report;
pub mod retention;
mod rng;
mod sim;

pub use address::{
    is_reserved_prefix, AddressBook, AddressPlan, Addresses, EclipseBudget, HOSTS_PER_PREFIX,
    MAX_PUBLIC_PREFIXES, MAX_SYBILS, PORT, SYBIL_BIT,
};
pub use experiment::{item_value, rss_bytes, run, Experiment, SybilAttack, SybilPlacement};
pub use global::GlobalView;
pub use net::{NetStats, Network, SimConfig, SimOverlay, MTU, WALL0};
pub use report::Report;
pub use rng::{below, mix64};
pub use sim::{KademliaWorld, Sim};
