//! What an operator watches: [`NodeMetrics`], a snapshot of the node's counters,
//! routing tables and store taken on the node task ([`crate::Dht::metrics`]), and
//! the lookup figures the runtime records through the `metrics` facade as each
//! query ends (a no-op unless the application installs a recorder, as the binary's
//! `--http` does).
//!
//! Label values come from fixed sets (the core's request kinds, and the three
//! outcomes below), so a peer cannot grow the number of series.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dht_core::kernel::Health;
use dht_core::{Family, NodeStats, NodeTable, QueryDone, Request, StoreCounts};

/// A ready node has had an answer from some node within this long.
pub const READY_WITHIN: Duration = Duration::from_secs(5 * 60);

/// One address family's routing table, by health and by bucket.
///
/// `#[non_exhaustive]`, as every snapshot here: read the fields; a new one is not a
/// breaking change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableMetrics {
    /// Nodes that answered recently.
    pub good: usize,
    /// Nodes silent for a while (pinged before being trusted or replaced).
    pub questionable: usize,
    /// Nodes that failed repeatedly.
    pub bad: usize,
    /// Nodes waiting in replacement caches.
    pub replacements: usize,
    /// Nodes per bucket, the bucket sharing the fewest id bits with ours first.
    pub buckets: Vec<usize>,
    /// Bucket size.
    pub k: usize,
    /// How long ago the node of this table that answered last did so.
    pub last_response_ago: Option<Duration>,
}

impl TableMetrics {
    fn of(table: &NodeTable, now: Instant) -> TableMetrics {
        let mut m = TableMetrics {
            replacements: table.replacement_len(),
            buckets: (0..table.bucket_count())
                .map(|i| table.bucket_len(i))
                .collect(),
            k: table.k(),
            ..TableMetrics::default()
        };
        for e in table.entries() {
            match table.health(&e, now) {
                Health::Good => m.good += 1,
                Health::Questionable => m.questionable += 1,
                Health::Bad => m.bad += 1,
            }
            if let Some(t) = table.instant_of(e.last_response) {
                let ago = now.saturating_duration_since(t);
                m.last_response_ago = Some(m.last_response_ago.map_or(ago, |a| a.min(ago)));
            }
        }
        m
    }
}

/// Connection figures of a connection-oriented transport (QUIC), since bind.
///
/// `#[non_exhaustive]`: a transport reports through [`Runtime::with_connection_stats`](crate::Runtime::with_connection_stats)
/// by starting from `Default` and setting the fields it counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections open now (established or in handshake).
    pub connections: u64,
    /// Incoming handshakes that completed.
    pub handshakes_in: u64,
    /// Handshakes we initiated that completed.
    pub handshakes_out: u64,
    /// Handshakes (either direction) that failed or timed out.
    pub handshake_failures: u64,
    /// Incoming connection attempts refused by the flood bounds.
    pub incoming_refused: u64,
    /// Connections closed to keep the connection cache within its bound.
    pub evicted: u64,
    /// Connections replaced by a newer handshake from the same peer address (and
    /// closed after a grace).
    pub replaced: u64,
    /// Replaced connections still inside their grace now.
    pub replaced_open: u64,
    /// Messages sent as QUIC datagrams.
    pub datagrams_sent: u64,
    /// Messages sent on streams (too large for a datagram).
    pub streams_sent: u64,
    /// Messages received, both paths.
    pub received: u64,
    /// Messages not sent: too large, no endpoint for the family, a full queue behind a
    /// handshake, a failed handshake or a failed send.
    pub send_dropped: u64,
    /// Received messages dropped: too large, or the receive queue was full.
    pub recv_dropped: u64,
    /// Connections a peer closed with a stateless reset (it restarted).
    pub peer_resets: u64,
    /// Connections closed because their peer stayed silent while we sent (also
    /// counted in `evicted`).
    pub silent_closed: u64,
    /// Messages sent again on a new connection because the old one was lost before
    /// it received anything.
    pub resent: u64,
}

/// A snapshot of everything `/metrics` and `/readyz` report about the node.
///
/// `#[non_exhaustive]`, as every snapshot here: read the fields; a new one is not a
/// breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeMetrics {
    /// Traffic and drop counters of the core.
    pub stats: NodeStats,
    /// The IPv4 table.
    pub v4: TableMetrics,
    /// The IPv6 table.
    pub v6: TableMetrics,
    /// Items, info_hashes and peers held; `None` when the store could not count.
    pub store: Option<StoreCounts>,
    /// Our public IP as peers told us, once enough agree.
    pub external_ip: Option<IpAddr>,
    /// Items and announces being republished.
    pub republishing: usize,
    /// The transport's connections; `None` over a connectionless transport (UDP).
    pub connections: Option<ConnectionStats>,
}

impl NodeMetrics {
    pub(crate) fn of<S: dht_core::Store>(
        node: &dht_core::Node<S>,
        republishing: usize,
        connections: Option<ConnectionStats>,
        now: Instant,
    ) -> NodeMetrics {
        NodeMetrics {
            stats: node.stats(),
            v4: TableMetrics::of(node.routing_table(Family::V4), now),
            v6: TableMetrics::of(node.routing_table(Family::V6), now),
            store: node.store().counts().ok(),
            external_ip: node.external_ip(),
            republishing,
            connections,
        }
    }

    /// Good nodes over both tables.
    pub fn good_nodes(&self) -> usize {
        self.v4.good + self.v6.good
    }

    /// The condition that keeps the node from being ready (`/readyz`), or `None`
    /// when it is: at least k good nodes, and some node answered within
    /// [`READY_WITHIN`].
    pub fn not_ready(&self) -> Option<String> {
        let k = self.v4.k.max(self.v6.k);
        let good = self.good_nodes();
        if good < k {
            return Some(format!(
                "{good} good nodes in the routing table, fewer than k = {k}"
            ));
        }
        match self.last_response_ago() {
            Some(ago) if ago <= READY_WITHIN => None,
            Some(ago) => Some(format!(
                "no node answered for {} s (more than {} s)",
                ago.as_secs(),
                READY_WITHIN.as_secs()
            )),
            None => Some("no node has answered yet".into()),
        }
    }

    /// How long ago any node answered one of our queries.
    pub fn last_response_ago(&self) -> Option<Duration> {
        [self.v4.last_response_ago, self.v6.last_response_ago]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The `kind` label of a request.
pub(crate) fn kind_of(request: &Request) -> &'static str {
    request.kind_name()
}

/// The `outcome` label: `found` (a value, peers, nodes, a write acknowledged:
/// [`dht_core::Outcome::found`]), `not_found` (the lookup ended without one), `no_response`
/// (no node answered; what the node's own store held does not make it `found`).
fn outcome_of(done: &QueryDone) -> &'static str {
    if done.stats.responses == 0 {
        "no_response"
    } else if done.outcome.found() {
        "found"
    } else {
        "not_found"
    }
}

/// Records a finished query: `dht_lookups_total{kind,outcome}` and the duration,
/// hops and messages histograms by kind.
pub(crate) fn record_query(kind: &'static str, done: &QueryDone) {
    let outcome = outcome_of(done);
    metrics::counter!("dht_lookups_total", "kind" => kind, "outcome" => outcome).increment(1);
    metrics::histogram!("dht_lookup_duration_seconds", "kind" => kind)
        .record(done.stats.duration.as_secs_f64());
    metrics::histogram!("dht_lookup_hops", "kind" => kind).record(f64::from(done.stats.hops));
    metrics::histogram!("dht_lookup_messages", "kind" => kind)
        .record(f64::from(done.stats.requests));
}

/// Counts one item or announce put again by the runtime.
pub(crate) fn record_republish() {
    metrics::counter!("dht_republished_total").increment(1);
}
