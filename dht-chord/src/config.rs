//! Every tunable of a Chord node, with its default and why.

use std::net::SocketAddr;
use std::time::Duration;

/// How a [`crate::ChordNode`] runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Seed of the node's ChaCha8 RNG (its id, transaction ids, timer jitter):
    /// one seed, one run.
    pub seed: u64,
    /// The address other nodes reach this node at. Chord's lists name nodes by
    /// address, and a node must be able to name itself (a ring of one is its own
    /// successor), which a sans-IO state machine cannot learn by itself.
    pub addr: SocketAddr,
    /// Length r of the successor list; keys are kept by their successor and its
    /// first r - 1 successors (r copies), so they survive r - 1 consecutive failures.
    /// The paper suggests r = Θ(log N); 8 covers rings up to about 2^16 nodes at the
    /// failure rates of its experiments.
    pub successors: usize,
    /// Mean period of `stabilize` (ask the successor for its predecessor and list,
    /// then `notify` it). Each period is drawn uniformly in [0.5, 1.5] times this, as
    /// the paper's simulator does, so that nodes do not stabilize in lockstep.
    pub stabilize_interval: Duration,
    /// Mean period of `fix_fingers` once the node is settled, which refreshes the
    /// next finger with one lookup (a whole table, a *pass*, takes about log2 N
    /// periods; one lookup sets every finger with the same successor).
    pub fix_fingers_interval: Duration,
    /// Mean period of `fix_fingers` while the node is young, during its first
    /// [`Config::young_passes`] passes: a newcomer routes through its successor
    /// alone until its fingers are set, so it fills them fast, then slows down to
    /// [`Config::fix_fingers_interval`], which costs a quarter of the traffic.
    pub young_fix_fingers_interval: Duration,
    /// Finger passes run at the young pace ([`Config::young_fix_fingers_interval`])
    /// before [`Config::fix_fingers_interval`] takes over.
    pub young_passes: u32,
    /// Mean period of `check_predecessor` (a ping of the predecessor). A predecessor
    /// that does not answer is cleared: `notify` adopts only a node between the
    /// predecessor and this node, so a dead one would keep the live node before it
    /// out, and this node would not take over the dead node's keys.
    pub check_predecessor_interval: Duration,
    /// The wait for a reply before its node is taken for dead. Fixed, not adaptive:
    /// Chord's lookups go one node at a time, and a node that does not answer within
    /// 2.5 mean round trips of the simulator's network is gone far more often than late.
    pub request_timeout: Duration,
    /// Nodes returned by a `find_successor` step that is not the last: the closest
    /// preceding node and runners-up, so that a lookup meeting a dead node backs up
    /// one step instead of failing (the paper's fault-tolerant lookup).
    pub fallbacks: usize,
    /// Ring members a node that has not joined sends its lookups through: a client
    /// (the `dht-node --overlay chord` one-shots) gets and puts without joining, so
    /// that its exit costs the ring nothing. Empty on a member: a node that has not
    /// joined and has no gateway knows only itself.
    pub gateways: Vec<SocketAddr>,
}

impl Config {
    /// Defaults for a node at `addr` seeded with `seed`: r = 8, stabilize every 1 s,
    /// fix_fingers every 0.25 s for the first 2 passes and every 2 s after,
    /// check_predecessor every 2 s, 500 ms timeout, 4 nodes per lookup step, no
    /// gateways.
    pub fn new(addr: SocketAddr, seed: u64) -> Config {
        Config {
            seed,
            addr,
            successors: 8,
            stabilize_interval: Duration::from_secs(1),
            fix_fingers_interval: Duration::from_secs(2),
            young_fix_fingers_interval: Duration::from_millis(250),
            young_passes: 2,
            check_predecessor_interval: Duration::from_secs(2),
            request_timeout: Duration::from_millis(500),
            fallbacks: 4,
            gateways: Vec::new(),
        }
    }
}
