//! The `/metrics` exposition: [`Exporter`] installs the process's `metrics` recorder
//! (`metrics-exporter-prometheus`) and renders a [`NodeMetrics`] snapshot, the lookup
//! figures recorded as queries end and the process figures from /proc, as Prometheus
//! text format 0.0.4 or, when the scraper asks for it ([`Format::negotiate`]), as
//! OpenMetrics 1.0.0 text.
//!
//! The exporter writes only 0.0.4; OpenMetrics differs from it in a few rules of
//! form, which [`to_openmetrics`] applies to the rendered text: a counter's family is
//! named without `_total` (its samples keep it), `"` is escaped in HELP, no blank
//! lines, and a final `# EOF`.

use std::collections::HashSet;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::NodeMetrics;

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Prometheus,
    /// OpenMetrics 1.0.0 text, only for a scraper whose `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// The format for an `Accept` header: OpenMetrics when it names
    /// `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) with a quality
    /// above 0 and at least that of any text/plain range it also accepts; otherwise
    /// (no header, `*/*`, `text/plain`, anything else) Prometheus 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for p in params {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version
                        .as_deref()
                        .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" | "text/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The process's metrics recorder and what renders it.
#[derive(Debug, Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the global `metrics` recorder; once per process (a second call fails,
    /// as does a call after another recorder was installed).
    pub fn install() -> Result<Exporter, String> {
        let seconds = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let counts = [
            1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0, 128.0,
        ];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("dht_lookup_hops".into()), &counts)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("dht_lookup_messages".into()), &counts)
            })
            .map_err(|e| format!("metrics: {e}"))?
            .install_recorder()
            .map_err(|e| format!("metrics: {e}"))?;
        describe();
        Ok(Exporter { handle })
    }

    /// Sets the node's and the process's figures from `m` and /proc, and renders
    /// everything recorded in `format`.
    pub fn render(&self, m: &NodeMetrics, format: Format) -> String {
        set_counters(m);
        set_gauges(m);
        self.render_recorded(format)
    }

    /// Sets the process's figures from /proc and renders everything recorded in
    /// `format`: for an overlay that sets its own figures through the `metrics`
    /// facade first (Chord's node).
    pub fn render_recorded(&self, format: Format) -> String {
        set_process();
        let text = self.handle.render();
        match format {
            Format::Prometheus => text,
            Format::OpenMetrics => to_openmetrics(&text),
        }
    }
}

/// Prometheus 0.0.4 text turned into OpenMetrics 1.0.0 text (see the module doc).
pub fn to_openmetrics(text: &str) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        if let Some((kind, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = match counters.contains(name) {
                true => name.strip_suffix("_total").unwrap_or(name),
                false => name,
            };
            let tail = match kind {
                "HELP" => tail.replace('"', "\\\""),
                _ => tail.to_string(),
            };
            out.push_str(&format!("# {kind} {family} {tail}\n"));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // A counter's samples end in _total in OpenMetrics.
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..end];
        out.push_str(name);
        if counters.contains(name) && !name.ends_with("_total") {
            out.push_str("_total");
        }
        out.push_str(&line[end..]);
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// HELP lines: promtool wants one per metric.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    for (name, help) in GAUGES {
        describe_gauge!(*name, *help);
    }
    describe_counter!(
        "dht_lookups_total",
        "Queries of this node that ended, by kind and outcome."
    );
    describe_counter!(
        "dht_republished_total",
        "Items and announces put again by the node."
    );
    describe_histogram!(
        "dht_lookup_duration_seconds",
        Unit::Seconds,
        "Duration of this node's queries, by kind."
    );
    describe_histogram!(
        "dht_lookup_hops",
        "Depth of the closest result of this node's queries, by kind."
    );
    describe_histogram!(
        "dht_lookup_messages",
        "Requests sent by each of this node's queries, by kind."
    );
}

const COUNTERS: &[(&str, &str)] = &[
    ("dht_datagrams_received_total", "Datagrams received."),
    ("dht_datagrams_sent_total", "Datagrams sent."),
    ("dht_received_bytes_total", "Bytes received in datagrams."),
    ("dht_sent_bytes_total", "Bytes sent in datagrams."),
    (
        "dht_queries_answered_total",
        "Queries answered, errors included.",
    ),
    (
        "dht_queries_received_total",
        "Well-formed KRPC queries received, by method.",
    ),
    (
        "dht_queries_sent_total",
        "KRPC queries sent, retries included, by method.",
    ),
    ("dht_errors_sent_total", "KRPC error replies sent, by code."),
    (
        "dht_errors_received_total",
        "KRPC error replies received to our queries, by code.",
    ),
    (
        "dht_replies_trimmed_total",
        "Replies to nodes outside our table whose node, peer or sample lists were cut.",
    ),
    (
        "dht_tokens_issued_total",
        "Write tokens handed out in get_peers and get replies.",
    ),
    (
        "dht_tokens_refused_total",
        "Announces and puts refused for a bad or expired token.",
    ),
    (
        "dht_unexpected_replies_total",
        "Replies that matched no request in flight.",
    ),
    ("dht_store_errors_total", "Store operations that failed."),
    (
        "dht_dropped_total",
        "Datagrams or replies dropped, by reason.",
    ),
    (
        "dht_storage_refused_total",
        "Puts and announces refused with 202 for lack of room, by reason (a global cap or the source's share).",
    ),
    (
        "dht_contacts_dropped_total",
        "Contacts in replies dropped as unusable or more local than their teller.",
    ),
    (
        "dht_wall_clock_jumps_total",
        "Wall-clock jumps followed only in part.",
    ),
    (
        "dht_handovers_total",
        "Stored items handed to a newcomer closer to them, acknowledged.",
    ),
    (
        "dht_handovers_dropped_total",
        "Handovers not started because too many were waiting.",
    ),
    (
        "dht_quic_handshakes_total",
        "QUIC handshakes that completed, by direction.",
    ),
    (
        "dht_quic_handshake_failures_total",
        "QUIC handshakes that failed or timed out.",
    ),
    (
        "dht_quic_incoming_refused_total",
        "Incoming QUIC connection attempts refused by the flood bounds.",
    ),
    (
        "dht_quic_evicted_total",
        "QUIC connections closed to keep the connection cache within its bound.",
    ),
    (
        "dht_quic_replaced_total",
        "QUIC connections replaced by a newer handshake from the same peer address, closed after a grace.",
    ),
    (
        "dht_quic_messages_sent_total",
        "Messages sent over QUIC, by path (datagram, or a stream when too large for one).",
    ),
    (
        "dht_quic_messages_received_total",
        "Messages received over QUIC, both paths.",
    ),
    (
        "dht_quic_messages_dropped_total",
        "QUIC messages dropped, by direction: not sent (too large, no endpoint, a failed handshake or send) or not delivered (too large, a full receive queue).",
    ),
    (
        "dht_quic_peer_resets_total",
        "QUIC connections a peer closed with a stateless reset (it restarted).",
    ),
    (
        "dht_quic_silent_closed_total",
        "QUIC connections closed because the peer stayed silent while we sent (also in dht_quic_evicted_total).",
    ),
    (
        "dht_quic_resent_total",
        "Messages sent again on a new QUIC connection because the old one was lost before answering.",
    ),
    (
        "dht_storage_evicted_total",
        "Stored entries removed at a full global cap to make room for a write from a network holding far less.",
    ),
    (
        "process_cpu_seconds_total",
        "User and system CPU time of the process.",
    ),
];

const GAUGES: &[(&str, &str)] = &[
    (
        "dht_routing_nodes",
        "Nodes in the routing table, by family and state.",
    ),
    (
        "dht_routing_replacement_nodes",
        "Nodes in replacement caches, by family.",
    ),
    (
        "dht_routing_bucket_nodes",
        "Nodes in the bucket at this depth, by family.",
    ),
    (
        "dht_last_response_age_seconds",
        "Time since a node last answered one of our queries.",
    ),
    ("dht_stored_items", "BEP 44 items held."),
    (
        "dht_stored_info_hashes",
        "info_hashes with at least one announced peer.",
    ),
    ("dht_stored_peers", "Announced peers over all info_hashes."),
    (
        "dht_republishing",
        "Items and announces this node keeps republishing.",
    ),
    ("dht_ready", "1 when /readyz answers 200."),
    (
        "dht_quic_connections",
        "QUIC connections open (established or in handshake).",
    ),
    (
        "dht_quic_replaced_open",
        "Replaced QUIC connections still inside their grace.",
    ),
    (
        "dht_http_operations_in_flight",
        "DHT operations that HTTP requests and watch pollers run now, by permit pool (read, write, watch).",
    ),
    (
        "process_resident_memory_bytes",
        "Resident memory of the process.",
    ),
    ("process_open_fds", "Open file descriptors of the process."),
];

fn set_counters(m: &NodeMetrics) {
    use metrics::counter;
    let s = &m.stats;
    counter!("dht_datagrams_received_total").absolute(s.datagrams_in);
    counter!("dht_datagrams_sent_total").absolute(s.datagrams_out);
    counter!("dht_received_bytes_total").absolute(s.bytes_in);
    counter!("dht_sent_bytes_total").absolute(s.bytes_out);
    counter!("dht_queries_answered_total").absolute(s.queries_answered);
    for (method, n) in s.queries_received.iter() {
        counter!("dht_queries_received_total", "method" => method.as_str()).absolute(n);
    }
    for (method, n) in s.queries_sent.iter() {
        counter!("dht_queries_sent_total", "method" => method.as_str()).absolute(n);
    }
    for (code, n) in s.errors_sent_by_code.iter() {
        counter!("dht_errors_sent_total", "code" => code.as_str()).absolute(n);
    }
    for (code, n) in s.errors_received.iter() {
        counter!("dht_errors_received_total", "code" => code.as_str()).absolute(n);
    }
    for (reason, n) in s.storage_refused_by.iter() {
        counter!("dht_storage_refused_total", "reason" => reason.as_str()).absolute(n);
    }
    counter!("dht_replies_trimmed_total").absolute(s.stranger_trimmed);
    if let Some(c) = &m.connections {
        counter!("dht_quic_handshakes_total", "direction" => "in").absolute(c.handshakes_in);
        counter!("dht_quic_handshakes_total", "direction" => "out").absolute(c.handshakes_out);
        counter!("dht_quic_handshake_failures_total").absolute(c.handshake_failures);
        counter!("dht_quic_incoming_refused_total").absolute(c.incoming_refused);
        counter!("dht_quic_evicted_total").absolute(c.evicted);
        counter!("dht_quic_replaced_total").absolute(c.replaced);
        counter!("dht_quic_messages_sent_total", "path" => "datagram").absolute(c.datagrams_sent);
        counter!("dht_quic_messages_sent_total", "path" => "stream").absolute(c.streams_sent);
        counter!("dht_quic_messages_received_total").absolute(c.received);
        counter!("dht_quic_messages_dropped_total", "direction" => "send").absolute(c.send_dropped);
        counter!("dht_quic_messages_dropped_total", "direction" => "recv").absolute(c.recv_dropped);
        counter!("dht_quic_peer_resets_total").absolute(c.peer_resets);
        counter!("dht_quic_silent_closed_total").absolute(c.silent_closed);
        counter!("dht_quic_resent_total").absolute(c.resent);
        metrics::gauge!("dht_quic_connections").set(c.connections as f64);
        metrics::gauge!("dht_quic_replaced_open").set(c.replaced_open as f64);
    }
    counter!("dht_tokens_issued_total").absolute(s.tokens_issued);
    counter!("dht_tokens_refused_total").absolute(s.tokens_refused);
    counter!("dht_unexpected_replies_total").absolute(s.unexpected_replies);
    counter!("dht_store_errors_total").absolute(s.store_errors);
    counter!("dht_contacts_dropped_total").absolute(s.contacts_dropped);
    counter!("dht_storage_evicted_total").absolute(s.storage_evicted);
    counter!("dht_wall_clock_jumps_total").absolute(s.wall_clock_jumps);
    counter!("dht_handovers_total").absolute(s.handovers);
    counter!("dht_handovers_dropped_total").absolute(s.handovers_dropped);
    for (reason, n) in [
        ("malformed", s.malformed),
        ("rate_limit", s.rate_limited),
        ("ban", s.banned),
        ("reply_budget", s.budget_dropped),
        ("key_id_mismatch", s.key_id_mismatch),
    ] {
        counter!("dht_dropped_total", "reason" => reason).absolute(n);
    }
}

fn set_gauges(m: &NodeMetrics) {
    use metrics::gauge;
    for (family, t) in [("ipv4", &m.v4), ("ipv6", &m.v6)] {
        for (state, n) in [
            ("good", t.good),
            ("questionable", t.questionable),
            ("bad", t.bad),
        ] {
            gauge!("dht_routing_nodes", "family" => family, "state" => state).set(n as f64);
        }
        gauge!("dht_routing_replacement_nodes", "family" => family).set(t.replacements as f64);
        // Depths are bounded by the id length (160): a fixed set of label values.
        for (depth, n) in t.buckets.iter().enumerate() {
            gauge!("dht_routing_bucket_nodes", "family" => family, "depth" => depth.to_string())
                .set(*n as f64);
        }
    }
    if let Some(ago) = m.last_response_ago() {
        gauge!("dht_last_response_age_seconds").set(ago.as_secs_f64());
    }
    if let Some(c) = &m.store {
        gauge!("dht_stored_items").set(c.items as f64);
        gauge!("dht_stored_info_hashes").set(c.info_hashes as f64);
        gauge!("dht_stored_peers").set(c.peers as f64);
    }
    gauge!("dht_republishing").set(m.republishing as f64);
    gauge!("dht_ready").set(if m.not_ready().is_none() { 1.0 } else { 0.0 });
}

fn set_process() {
    use metrics::{counter, gauge};
    if let Some(cpu) = dht_measure::proc::process_cpu_time() {
        counter!("process_cpu_seconds_total").absolute(cpu.as_secs());
    }
    if let Ok(rss) = dht_measure::proc::rss_bytes(std::process::id()) {
        gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        use Format::*;
        for (accept, want) in [
            (None, Prometheus),
            (Some("*/*"), Prometheus),
            (Some("text/plain"), Prometheus),
            (Some("application/json"), Prometheus),
            // What Prometheus 2.x sends by default.
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (Some("Application/OpenMetrics-Text; version=1.0.0"), OpenMetrics),
            (Some("application/openmetrics-text;q=0"), Prometheus),
            (Some("application/openmetrics-text;version=2.0.0"), Prometheus),
            (Some("text/plain;q=1,application/openmetrics-text;q=0.5"), Prometheus),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn openmetrics_form() {
        let text = "# HELP a_total A \"quoted\" counter.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\n# TYPE b counter\nb 1\n\n# HELP g A gauge.\n# TYPE g gauge\ng 2\n\n";
        assert_eq!(
            to_openmetrics(text),
            "# HELP a A \\\"quoted\\\" counter.\n# TYPE a counter\na_total{x=\"1\"} 3\n# TYPE b counter\nb_total 1\n# HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n"
        );
    }
}
