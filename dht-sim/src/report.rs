//! What an experiment measured, and its two renderings: a readable table and one
//! line of JSON; and the rules every figure is computed by (nearest-rank percentile,
//! mean), shared by the experiments and the churn driver.

use std::fmt::Write as _;

use dht_core::QueryStats;

/// The `p`-th percentile (nearest rank) of sorted values, by the rule every tool of
/// the workspace shares (`dht_measure::quantile`); the default when there are none.
pub(crate) fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    dht_measure::quantile(sorted, p / 100.0).unwrap_or_default()
}

/// The mean of `v`; 0 when there is nothing.
pub(crate) fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (n, s) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// What the gets of every item found.
#[derive(Clone, Debug, Default)]
pub(crate) struct Gets {
    /// Fraction of the items whose get returned the value.
    pub(crate) success: f64,
    /// Requests sent plus replies received, per get.
    pub(crate) messages: f64,
    /// For each item, did its get return the value?
    pub(crate) found: Vec<bool>,
    /// Virtual ms from the command to the result of every finished get (found or
    /// not), ascending.
    pub(crate) latency_ms: Vec<f64>,
    /// For each item, the node its get was issued from (empty where not kept).
    pub(crate) sources: Vec<usize>,
}

/// A lookup phase's figures, gathered lookup by lookup; every overlay's experiment
/// judges its lookups its own way and reports them through this.
#[derive(Clone, Debug, Default)]
pub(crate) struct LookupFigures {
    found: Vec<f64>,
    success: Vec<f64>,
    hops: Vec<u32>,
    ideal: Vec<f64>,
    messages: Vec<f64>,
    timeouts: Vec<f64>,
    latency_ms: Vec<f64>,
    /// With handshakes counted, for stream overlays (empty otherwise).
    dial_latency_ms: Vec<f64>,
    unfinished: usize,
}

impl LookupFigures {
    /// A lookup that did not end within the phase: it found nothing.
    pub(crate) fn unfinished(&mut self) {
        self.unfinished += 1;
        self.found.push(0.0);
        self.success.push(0.0);
    }

    /// A finished lookup: the fraction of the true closest nodes it `found`, whether
    /// it found the node responsible (`success`), its `stats`, and the hops of the same
    /// lookup over ideal tables.
    pub(crate) fn finished(&mut self, found: f64, success: bool, stats: &QueryStats, ideal: f64) {
        self.found.push(found);
        self.success.push(f64::from(u8::from(success)));
        self.hops.push(stats.hops);
        self.ideal.push(ideal);
        self.messages
            .push((stats.requests + stats.responses) as f64);
        self.timeouts.push(stats.timeouts as f64);
        self.latency_ms.push(stats.duration.as_secs_f64() * 1000.0);
    }

    /// A finished lookup on a stream overlay, as [`LookupFigures::finished`], whose
    /// causal chain waited `dial_wait` for handshakes: its latency is counted without
    /// them, and with them apart.
    pub(crate) fn finished_dialing(
        &mut self,
        found: f64,
        success: bool,
        stats: &QueryStats,
        ideal: f64,
        dial_wait: std::time::Duration,
    ) {
        let mut rtts_only = *stats;
        rtts_only.duration = stats.duration.saturating_sub(dial_wait);
        self.finished(found, success, &rtts_only, ideal);
        self.dial_latency_ms
            .push(stats.duration.as_secs_f64() * 1000.0);
    }

    /// Writes the lookup figures into `report`; `rtt` is the mean round trip in ms.
    pub(crate) fn fill(mut self, report: &mut Report, rtt: f64) {
        self.hops.sort_unstable();
        self.latency_ms.sort_unstable_by(f64::total_cmp);
        if !self.dial_latency_ms.is_empty() {
            self.dial_latency_ms.sort_unstable_by(f64::total_cmp);
            let dial = &self.dial_latency_ms;
            report.latency_dial_rtt_p50 = Some(percentile(dial, 50.0) / rtt);
            report.latency_dial_rtt_p99 = Some(percentile(dial, 99.0) / rtt);
        }
        let (found, hops, latency) = (&self.found, &self.hops, &self.latency_ms);
        report.found_k_closest = mean(found.iter().copied());
        report.exact_k_closest = mean(found.iter().map(|&f| if f >= 1.0 { 1.0 } else { 0.0 }));
        report.lookup_success = Some(mean(self.success.iter().copied()));
        report.hops_mean = mean(hops.iter().map(|&h| h as f64));
        report.hops_p1 = percentile(hops, 1.0);
        report.hops_p50 = percentile(hops, 50.0);
        report.hops_p99 = percentile(hops, 99.0);
        report.hops_ideal_mean = mean(self.ideal.iter().copied());
        report.messages_per_lookup = mean(self.messages.iter().copied());
        report.timeouts_per_lookup = mean(self.timeouts.iter().copied());
        report.latency_ms_p50 = percentile(latency, 50.0);
        report.latency_ms_p99 = percentile(latency, 99.0);
        report.latency_rtt_p50 = percentile(latency, 50.0) / rtt;
        report.latency_rtt_p99 = percentile(latency, 99.0) / rtt;
        report.lookups_unfinished = self.unfinished;
    }
}

/// What an experiment measured. See the crate docs for what each figure means.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The overlay: `kademlia` or `chord`.
    pub overlay: &'static str,
    /// Nodes.
    pub nodes: usize,
    /// Lookups run.
    pub lookups: usize,
    /// Seed.
    pub seed: u64,
    /// Bucket size.
    pub k: usize,
    /// Lookup parallelism.
    pub alpha: usize,
    /// Mean one-way latency (ms).
    pub latency_ms: f64,
    /// Loss probability per datagram.
    pub loss: f64,
    /// Fraction of nodes killed, if any.
    pub fail: Option<f64>,
    /// Mean fraction of the true K closest live nodes that a lookup returned.
    pub found_k_closest: f64,
    /// Fraction of lookups that returned all of the true K closest.
    pub exact_k_closest: f64,
    /// Fraction of lookups that found the node responsible for the target: Chord's
    /// key successor; for Kademlia the closest live node other than the source.
    pub lookup_success: Option<f64>,
    /// Mean hops of the lookups.
    pub hops_mean: f64,
    /// 1st percentile of hops (nearest rank).
    pub hops_p1: u32,
    /// Median hops.
    pub hops_p50: u32,
    /// 99th percentile of hops.
    pub hops_p99: u32,
    /// Mean hops of the same lookups over ideal routing tables.
    pub hops_ideal_mean: f64,
    /// Requests sent plus replies received, per lookup.
    pub messages_per_lookup: f64,
    /// Requests that timed out, per lookup.
    pub timeouts_per_lookup: f64,
    /// Median lookup latency (virtual ms).
    pub latency_ms_p50: f64,
    /// 99th percentile of lookup latency (virtual ms).
    pub latency_ms_p99: f64,
    /// Median latency in mean round trips (2 x `latency_ms`).
    pub latency_rtt_p50: f64,
    /// 99th percentile latency in mean round trips.
    pub latency_rtt_p99: f64,
    /// Lookups that had not finished within the phase limit.
    pub lookups_unfinished: usize,
    /// Mean routing-table entries (main buckets) of the live nodes after the lookups.
    pub table_entries_mean: f64,
    /// Mean entries of the ideal tables built for `hops_ideal_mean`.
    pub ideal_table_entries_mean: f64,
    /// Growth of the resident set size while the network was built, per node (bytes).
    pub bytes_per_node: f64,
    /// Peak resident set size of the process (bytes).
    pub peak_rss_bytes: u64,
    /// Virtual time the join took (arrivals plus settling), seconds.
    pub join_seconds: f64,
    /// Virtual time of the whole run, seconds.
    pub sim_seconds: f64,
    /// Real time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Datagrams delivered.
    pub datagrams: u64,
    /// Datagrams dropped by the loss model.
    pub datagrams_lost: u64,
    /// Datagrams over the MTU (dropped; should be 0).
    pub datagrams_oversize: u64,
    /// Fingerprint of every delivered datagram (hex SHA-1).
    pub event_hash: String,
    /// With `fail`: fraction of puts that at least one node acknowledged.
    pub put_success: Option<f64>,
    /// With `fail` or `sybil`: fraction of the items found by a get from a surviving
    /// (honest) node.
    pub get_success: Option<f64>,
    /// `Config::disjoint_paths` of every node (1: plain lookups).
    pub disjoint: usize,
    /// Fraction of Sybil nodes, if any.
    pub sybil: Option<f64>,
    /// With an eclipse (`--eclipse N`): attackers per item target.
    pub eclipse: Option<usize>,
    /// Sybil placement, with `sybil` or `eclipse`.
    pub sybil_placement: Option<&'static str>,
    /// Sybil nodes in the network (at the gets).
    pub sybil_nodes: usize,
    /// With `sybil`: fraction of the items some honest node stored when the gets
    /// began (a get cannot succeed otherwise).
    pub stored_honest: Option<f64>,
    /// With `sybil`: fraction of the items some honest node stored whose get
    /// succeeded (the gets' own success, apart from puts lost to Sybils).
    pub get_success_stored: Option<f64>,
    /// With `sybil`: fraction of the honest nodes' routing-table entries that are
    /// Sybils, when the gets began.
    pub sybil_in_tables: Option<f64>,
    /// With an eclipse: the addresses each key's attackers share (`24`, `16`,
    /// `64x24`; `None`: a /24 of their own each).
    pub eclipse_budget: Option<String>,
    /// With an eclipse: did the attackers arrive before the puts?
    pub eclipse_before_puts: Option<bool>,
    /// With an eclipse: fraction of the honest nodes that hold an attacker of a key
    /// in their tables when the gets begin, mean over the keys.
    pub attackers_known_by: Option<f64>,
    /// With an eclipse: fraction of the gets that an attacker of their key answered.
    pub gets_meeting_attackers: Option<f64>,
    /// BEP 42 on: ids from addresses, others' ids checked (`SimConfig::bep42`).
    pub bep42: bool,
    /// With a get phase: requests sent plus replies received, per get.
    pub messages_per_get: Option<f64>,
    /// With a get phase: median virtual time of the immutable gets (found or not), in
    /// mean round trips (2 x `latency_ms`), as `latency_rtt_p50` is for lookups.
    pub get_latency_rtt_p50: Option<f64>,
    /// With a get phase: 99th percentile of the gets' time, in mean round trips.
    pub get_latency_rtt_p99: Option<f64>,
    /// Where the nodes sit: `public` or `private` (see [`crate::AddressPlan`]).
    pub address_plan: &'static str,
    /// With Sybils on the public plan: the /24s they share (`None`: one each).
    pub sybil_prefixes: Option<usize>,
    /// Stream overlays: round trips of a new connection's handshake.
    pub handshake_rtts: Option<u32>,
    /// Stream overlays: median lookup latency in mean round trips with the handshakes
    /// on its causal chain counted (`latency_rtt_p50` leaves them out).
    pub latency_dial_rtt_p50: Option<f64>,
    /// Stream overlays: the 99th percentile of the same.
    pub latency_dial_rtt_p99: Option<f64>,
    /// With `fail`, IPFS: fraction of the provider keys announced before the failures
    /// whose GET_PROVIDERS from a survivor found their provider.
    pub providers_success: Option<f64>,
}

impl Report {
    /// Takes the figures of a get phase; `rtt` is the mean round trip in ms.
    pub(crate) fn set_gets(&mut self, gets: &Gets, rtt: f64) {
        self.get_success = Some(gets.success);
        self.messages_per_get = Some(gets.messages);
        // Nearest rank over the finished gets; none finished: no figure.
        let q = |p: f64| dht_measure::quantile(&gets.latency_ms, p).map(|ms| ms / rtt);
        self.get_latency_rtt_p50 = q(0.5);
        self.get_latency_rtt_p99 = q(0.99);
    }

    /// One JSON object on one line (non-finite figures as `null`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "nodes": self.nodes,
            "lookups": self.lookups,
            "seed": self.seed,
            "k": self.k,
            "alpha": self.alpha,
            "latency_ms": self.latency_ms,
            "loss": self.loss,
            "fail": self.fail,
            "found_k_closest": self.found_k_closest,
            "exact_k_closest": self.exact_k_closest,
            "hops_mean": self.hops_mean,
            "hops_p50": self.hops_p50,
            "hops_p99": self.hops_p99,
            "hops_ideal_mean": self.hops_ideal_mean,
            "messages_per_lookup": self.messages_per_lookup,
            "timeouts_per_lookup": self.timeouts_per_lookup,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p99": self.latency_ms_p99,
            "latency_rtt_p50": self.latency_rtt_p50,
            "latency_rtt_p99": self.latency_rtt_p99,
            "lookups_unfinished": self.lookups_unfinished,
            "table_entries_mean": self.table_entries_mean,
            "ideal_table_entries_mean": self.ideal_table_entries_mean,
            "bytes_per_node": self.bytes_per_node,
            "peak_rss_bytes": self.peak_rss_bytes,
            "join_seconds": self.join_seconds,
            "sim_seconds": self.sim_seconds,
            "wall_seconds": self.wall_seconds,
            "datagrams": self.datagrams,
            "datagrams_lost": self.datagrams_lost,
            "datagrams_oversize": self.datagrams_oversize,
            "event_hash": self.event_hash,
            "put_success": self.put_success,
            "get_success": self.get_success,
            "disjoint": self.disjoint,
            "sybil": self.sybil,
            "sybil_placement": self.sybil_placement,
            "eclipse": self.eclipse,
            "sybil_nodes": self.sybil_nodes,
            "stored_honest": self.stored_honest,
            "get_success_stored": self.get_success_stored,
            "sybil_in_tables": self.sybil_in_tables,
            "eclipse_budget": self.eclipse_budget,
            "eclipse_before_puts": self.eclipse_before_puts,
            "attackers_known_by": self.attackers_known_by,
            "gets_meeting_attackers": self.gets_meeting_attackers,
            "bep42": self.bep42,
            "messages_per_get": self.messages_per_get,
            "overlay": self.overlay,
            "lookup_success": self.lookup_success,
            "hops_p1": self.hops_p1,
            "get_latency_rtt_p50": self.get_latency_rtt_p50,
            "get_latency_rtt_p99": self.get_latency_rtt_p99,
            "address_plan": self.address_plan,
            "sybil_prefixes": self.sybil_prefixes,
            "handshake_rtts": self.handshake_rtts,
            "latency_dial_rtt_p50": self.latency_dial_rtt_p50,
            "latency_dial_rtt_p99": self.latency_dial_rtt_p99,
            "providers_success": self.providers_success,
        })
        .to_string()
    }

    /// A readable two-column table.
    pub fn to_table(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let mut rows: Vec<(&str, String)> = vec![
            ("overlay", self.overlay.to_string()),
            ("nodes", self.nodes.to_string()),
            ("lookups", self.lookups.to_string()),
            ("seed", self.seed.to_string()),
            ("k / alpha", format!("{} / {}", self.k, self.alpha)),
            ("latency_ms (mean one-way)", format!("{}", self.latency_ms)),
            ("loss", format!("{}", self.loss)),
            ("fail", opt(self.fail)),
            ("found_k_closest", format!("{:.4}", self.found_k_closest)),
            ("exact_k_closest", format!("{:.4}", self.exact_k_closest)),
            ("lookup_success", opt(self.lookup_success)),
            ("hops_mean", format!("{:.3}", self.hops_mean)),
            (
                "hops_p50 / p99",
                format!("{} / {}", self.hops_p50, self.hops_p99),
            ),
            ("hops_p1", self.hops_p1.to_string()),
            ("hops_ideal_mean", format!("{:.3}", self.hops_ideal_mean)),
            (
                "messages_per_lookup",
                format!("{:.1}", self.messages_per_lookup),
            ),
            (
                "timeouts_per_lookup",
                format!("{:.3}", self.timeouts_per_lookup),
            ),
            (
                "latency_ms p50 / p99",
                format!("{:.0} / {:.0}", self.latency_ms_p50, self.latency_ms_p99),
            ),
            (
                "latency in RTTs p50 / p99",
                format!("{:.2} / {:.2}", self.latency_rtt_p50, self.latency_rtt_p99),
            ),
            ("lookups_unfinished", self.lookups_unfinished.to_string()),
            (
                "table entries: real / ideal",
                format!(
                    "{:.1} / {:.1}",
                    self.table_entries_mean, self.ideal_table_entries_mean
                ),
            ),
            ("bytes_per_node", format!("{:.0}", self.bytes_per_node)),
            ("peak_rss_bytes", self.peak_rss_bytes.to_string()),
            (
                "join_seconds (virtual)",
                format!("{:.1}", self.join_seconds),
            ),
            ("sim_seconds (virtual)", format!("{:.1}", self.sim_seconds)),
            ("wall_seconds", format!("{:.2}", self.wall_seconds)),
            (
                "datagrams delivered / lost / oversize",
                format!(
                    "{} / {} / {}",
                    self.datagrams, self.datagrams_lost, self.datagrams_oversize
                ),
            ),
            ("address_plan", self.address_plan.to_string()),
            ("put_success", opt(self.put_success)),
            ("get_success", opt(self.get_success)),
            ("disjoint", self.disjoint.to_string()),
            (
                "sybil / placement / nodes",
                format!(
                    "{} / {} / {}",
                    opt(self.sybil),
                    self.sybil_placement.unwrap_or("-"),
                    self.sybil_nodes
                ),
            ),
            (
                "eclipse",
                self.eclipse
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
            ),
            ("stored_honest", opt(self.stored_honest)),
            ("get_success_stored", opt(self.get_success_stored)),
            ("sybil_in_tables", opt(self.sybil_in_tables)),
            (
                "eclipse budget / before puts",
                format!(
                    "{} / {}",
                    self.eclipse_budget.as_deref().unwrap_or("-"),
                    self.eclipse_before_puts
                        .map_or_else(|| "-".to_string(), |b| b.to_string())
                ),
            ),
            ("attackers_known_by", opt(self.attackers_known_by)),
            ("gets_meeting_attackers", opt(self.gets_meeting_attackers)),
            ("bep42", self.bep42.to_string()),
            (
                "messages_per_get",
                self.messages_per_get
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
            ),
            (
                "get latency in RTTs p50 / p99",
                format!(
                    "{} / {}",
                    opt(self.get_latency_rtt_p50),
                    opt(self.get_latency_rtt_p99)
                ),
            ),
            (
                "sybil_prefixes (/24s shared)",
                self.sybil_prefixes
                    .map_or_else(|| "-".to_string(), |v| v.to_string()),
            ),
        ];
        // Stream overlays' rows only: the other overlays' tables stay as they were.
        if let Some(h) = self.handshake_rtts {
            rows.push(("handshake (RTTs)", h.to_string()));
            rows.push((
                "latency with handshakes in RTTs p50 / p99",
                format!(
                    "{} / {}",
                    opt(self.latency_dial_rtt_p50),
                    opt(self.latency_dial_rtt_p99)
                ),
            ));
        }
        if self.providers_success.is_some() {
            rows.push(("providers_success", opt(self.providers_success)));
        }
        rows.push(("event_hash", self.event_hash.clone()));
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (name, value) in rows {
            let _ = writeln!(s, "{name:<w$}  {value}");
        }
        s
    }
}
