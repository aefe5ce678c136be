//! The workload's report: reading its records back, and the figures per operation type
//! that become the table and `report.json`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use dht_measure::round;

use dht_measure::workload::{Line, OpKind, OpRecord};
use serde::{Serialize, Serializer};

use super::churn::ChurnLog;
use super::rss::RssGrowth;
use super::{Overlay, TestnetConfig};
use crate::Error;

#[derive(Debug, Default)]
pub(super) struct WorkloadReport {
    pub(super) ops: Vec<OpRecord>,
    pub(super) republish_s: Option<u64>,
    pub(super) skipped: u64,
}

/// Reads the workload's JSON Lines with the types it wrote them with. A line that does not
/// parse is an error: writer and reader share one type, so it means a broken file.
pub(super) fn read_report(path: &Path) -> Result<WorkloadReport, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Failed(format!("testnet: cannot read {}: {e}", path.display())))?;
    parse_report(&text).map_err(|e| Error::Failed(format!("testnet: {}: {e}", path.display())))
}

fn parse_report(text: &str) -> Result<WorkloadReport, String> {
    let mut report = WorkloadReport::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))? {
            Line::Op(op) => report.ops.push(op),
            Line::Meta(meta) => {
                report.republish_s = meta.republish_s;
                report.skipped = meta.skipped;
            }
        }
    }
    Ok(report)
}

#[derive(Debug, Clone)]
pub(super) struct Figures {
    name: String,
    count: usize,
    ok: usize,
    /// Latency of the successful operations, milliseconds.
    p50: f64,
    p95: f64,
    p99: f64,
    /// Means over the operations that got an answer (a query with figures).
    hops: f64,
    requests: f64,
    /// The most common reasons for failure, with counts.
    errors: Vec<(String, usize)>,
}

impl Figures {
    fn new(name: &str, ops: &[&OpRecord]) -> Figures {
        let mut latencies: Vec<u64> = ops.iter().filter(|o| o.ok).map(|o| o.latency_us).collect();
        latencies.sort_unstable();
        let answered: Vec<&&OpRecord> = ops.iter().filter(|o| o.requests > 0).collect();
        let mean = |f: fn(&OpRecord) -> u32| {
            if answered.is_empty() {
                0.0
            } else {
                answered.iter().map(|o| f(o) as f64).sum::<f64>() / answered.len() as f64
            }
        };
        let mut errors: Vec<(String, usize)> = Vec::new();
        for o in ops.iter().filter(|o| !o.ok) {
            match errors.iter_mut().find(|(e, _)| *e == o.error) {
                Some((_, n)) => *n += 1,
                None => errors.push((o.error.clone(), 1)),
            }
        }
        errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Figures {
            name: name.to_string(),
            count: ops.len(),
            ok: ops.iter().filter(|o| o.ok).count(),
            p50: quantile_ms(&latencies, 0.50),
            p95: quantile_ms(&latencies, 0.95),
            p99: quantile_ms(&latencies, 0.99),
            hops: mean(|o| o.hops),
            requests: mean(|o| o.requests),
            errors,
        }
    }

    fn success_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.ok as f64 / self.count as f64
        }
    }

    /// The object `report.json` shows for one operation type.
    fn to_json(&self) -> FiguresJson<'_> {
        FiguresJson {
            count: self.count,
            ok: self.ok,
            success_rate: round(self.success_rate(), 6),
            latency_ms: LatencyJson {
                p50: round(self.p50, 3),
                p95: round(self.p95, 3),
                p99: round(self.p99, 3),
            },
            hops: round(self.hops, 2),
            messages: round(self.requests, 2),
            errors: InOrder(&self.errors),
        }
    }
}

/// `report.json`'s figures of one operation type. Field names are published: add, never
/// rename.
#[derive(Debug, Serialize)]
struct FiguresJson<'a> {
    count: usize,
    ok: usize,
    success_rate: f64,
    latency_ms: LatencyJson,
    hops: f64,
    messages: f64,
    /// Reason → count, most common first.
    errors: InOrder<'a, usize>,
}

#[derive(Debug, Serialize)]
struct LatencyJson {
    p50: f64,
    p95: f64,
    p99: f64,
}

/// Pairs written as one JSON object in their order (a serde_json map would sort the keys):
/// operation types in table order, failure reasons most common first.
#[derive(Debug)]
struct InOrder<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for InOrder<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The nearest-rank quantile of sorted microseconds (the rule every tool here reports
/// with), in milliseconds; 0 when empty.
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    dht_measure::quantile(sorted, q).map_or(0.0, |us| us as f64 / 1000.0)
}

#[derive(Debug)]
pub(super) struct Summary {
    pub(super) config: TestnetConfig,
    pub(super) ops: Vec<Figures>,
    pub(super) all: Figures,
    /// Gets of BEP 44 items the workload put earlier (immutable and mutable).
    pub(super) item_gets: Figures,
    pub(super) success_rate: f64,
    pub(super) churn_rounds: u32,
    pub(super) restarts: u32,
    pub(super) crashes: u32,
    pub(super) rejoined: (usize, usize),
    pub(super) ready_after: Duration,
    pub(super) republish_s: Option<u64>,
    pub(super) skipped: u64,
    pub(super) rss: RssGrowth,
}

/// What `--item-ttl`, `--peer-ttl` and `--working-set` changed, for the report's text.
fn steady_state(c: &TestnetConfig) -> String {
    let mut t = String::new();
    if let Some(s) = c.item_ttl {
        let _ = write!(t, "; nodes keep items {s} s");
    }
    if let Some(s) = c.peer_ttl {
        let _ = write!(t, "; nodes keep peers {s} s");
    }
    if let Some(n) = c.working_set {
        let _ = write!(t, "; the workload keeps its newest {n} items and announces");
    }
    t
}

impl Summary {
    pub(super) fn new(
        config: &TestnetConfig,
        report: &WorkloadReport,
        churn: &ChurnLog,
        rejoined: (usize, usize),
        ready_after: Duration,
        rss: RssGrowth,
    ) -> Summary {
        let of = |pred: &dyn Fn(&OpRecord) -> bool| -> Vec<&OpRecord> {
            report.ops.iter().filter(|o| pred(o)).collect()
        };
        let ops = OpKind::ALL
            .iter()
            .map(|&k| Figures::new(k.name(), &of(&|o: &OpRecord| o.op == k)))
            .filter(|f| f.count > 0)
            .collect();
        let all = Figures::new("all", &of(&|_| true));
        let item_gets = Figures::new(
            "gets of earlier puts",
            &of(&|o: &OpRecord| o.op.is_item_get()),
        );
        Summary {
            config: config.clone(),
            success_rate: all.success_rate(),
            ops,
            all,
            item_gets,
            churn_rounds: churn.rounds,
            restarts: churn.restarts,
            crashes: churn.crashes,
            rejoined,
            ready_after,
            republish_s: report.republish_s,
            skipped: report.skipped,
            rss,
        }
    }

    pub(super) fn to_text(&self) -> String {
        let c = &self.config;
        let mut t = String::new();
        let (every, why) = c.churn_every();
        let _ = writeln!(
            t,
            "testnet: {} {} nodes, {} / {}, {}, {} s at {} ops/s, seed {}",
            c.nodes,
            c.overlay.name(),
            c.transport_name(),
            c.store.name(),
            if c.netns {
                "one network namespace per node (198.18.0.0/15)"
            } else {
                "loopback"
            },
            c.duration.as_secs_f64(),
            c.ops_per_sec,
            c.seed
        );
        let _ = writeln!(
            t,
            "churn: {} node(s) killed and restarted every {} s ({why}): {} round(s), {} restarts, \
             {} of {} restarted nodes joined again; {} crash(es){}",
            c.churn_count(),
            every.as_secs_f64(),
            self.churn_rounds,
            self.restarts,
            self.rejoined.0,
            self.rejoined.1,
            self.crashes,
            match c.long_lived_count() {
                0 => String::new(),
                n => format!("; nodes 0-{} are never killed (--long-lived {n})", n - 1),
            }
        );
        let _ = writeln!(
            t,
            "nodes ready after {:.1} s; {}{}{}",
            self.ready_after.as_secs_f64(),
            match (c.overlay, self.republish_s) {
                // Chord keeps values without lifetimes: nothing to republish.
                (Overlay::Chord, _) => "the workload does not republish".to_string(),
                // One-shot clients: records and providers live 48 h, past any run.
                (Overlay::Ipfs, _) => "the workload does not republish".to_string(),
                (Overlay::Mainline, None) => "workload republishes every (default)".to_string(),
                (Overlay::Mainline, Some(s)) => format!("workload republishes every {s} s"),
            },
            steady_state(c),
            if self.skipped > 0 {
                format!("; {} operations skipped (too many in flight)", self.skipped)
            } else {
                String::new()
            }
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<22} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9}",
            "operation", "count", "success", "p50 ms", "p95 ms", "p99 ms", "hops", "messages"
        );
        for f in self.ops.iter().chain([&self.item_gets, &self.all]) {
            let _ = writeln!(
                t,
                "{:<22} {:>7} {:>8.2}% {:>9.1} {:>9.1} {:>9.1} {:>6.2} {:>9.1}",
                f.name,
                f.count,
                100.0 * f.success_rate(),
                f.p50,
                f.p95,
                f.p99,
                f.hops,
                f.requests
            );
        }
        if !self.all.errors.is_empty() {
            let errors: Vec<String> = self
                .all
                .errors
                .iter()
                .map(|(e, n)| format!("{e} {n}"))
                .collect();
            let _ = writeln!(t, "\nfailures: {}", errors.join(", "));
        }
        let _ = writeln!(t, "\n{}", self.rss.to_text());
        let _ = write!(
            t,
            "success rate {:.4} (threshold {}): {}",
            self.success_rate,
            c.threshold,
            if self.success_rate >= c.threshold && self.all.count > 0 {
                "PASS"
            } else {
                "FAIL"
            }
        );
        t
    }

    /// `report.json`, one line.
    pub(super) fn to_json(&self) -> String {
        let c = &self.config;
        let ops: Vec<(String, FiguresJson<'_>)> = self
            .ops
            .iter()
            .map(|f| (f.name.clone(), f.to_json()))
            .collect();
        let json = SummaryJson {
            success_rate: round(self.success_rate, 6),
            threshold: c.threshold,
            passed: self.success_rate >= c.threshold && self.all.count > 0,
            nodes: c.nodes,
            overlay: c.overlay.name(),
            transport: c.transport_name(),
            store: c.store.name(),
            netns: c.netns,
            delay_ms: c.delay_ms,
            duration_s: c.duration.as_secs_f64(),
            ops_per_sec: c.ops_per_sec,
            seed: c.seed,
            churn: ChurnJson {
                fraction: c.churn,
                per_round: c.churn_count(),
                every_s: c.churn_every().0.as_secs_f64(),
                rounds: self.churn_rounds,
                restarts: self.restarts,
                rejoined: self.rejoined.0,
                crashes: self.crashes,
                long_lived: c.long_lived_count(),
            },
            republish_s: self.republish_s,
            item_ttl_s: c.item_ttl,
            peer_ttl_s: c.peer_ttl,
            working_set: c.working_set,
            ready_s: round(self.ready_after.as_secs_f64(), 2),
            skipped: self.skipped,
            ops: InOrder(&ops),
            gets_of_earlier_puts: self.item_gets.to_json(),
            all: self.all.to_json(),
            rss: &self.rss,
        };
        // Plain fields and numbers (a non-finite one becomes null): this cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }
}

/// `report.json`. Field names are published: add, never rename.
#[derive(Debug, Serialize)]
struct SummaryJson<'a> {
    success_rate: f64,
    threshold: f64,
    passed: bool,
    nodes: usize,
    /// `mainline` or `chord`.
    overlay: &'static str,
    transport: &'static str,
    store: &'static str,
    netns: bool,
    /// `--delay`: mean one-way netem delay per link, ms.
    delay_ms: Option<f64>,
    duration_s: f64,
    ops_per_sec: f64,
    seed: u64,
    churn: ChurnJson,
    republish_s: Option<u64>,
    /// `--item-ttl` and `--peer-ttl` (`None`: the nodes' defaults, 7200 and 1800 s).
    item_ttl_s: Option<u64>,
    peer_ttl_s: Option<u64>,
    /// `--working-set` (`None`: the workload reads and republishes all it wrote).
    working_set: Option<usize>,
    ready_s: f64,
    skipped: u64,
    ops: InOrder<'a, FiguresJson<'a>>,
    gets_of_earlier_puts: FiguresJson<'a>,
    all: FiguresJson<'a>,
    rss: &'a RssGrowth,
}

#[derive(Debug, Serialize)]
struct ChurnJson {
    fraction: f64,
    per_round: usize,
    every_s: f64,
    rounds: u32,
    restarts: u32,
    rejoined: usize,
    crashes: u32,
    /// Nodes churn never killed.
    long_lived: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::plot::latency_svg;
    use crate::testnet::rss::RssLog;

    #[test]
    fn reads_the_lines_the_workload_writes() {
        // An op line as the workload wrote it with json! (keys sorted), then a meta line.
        let text = "{\"age_ms\":12,\"error\":\"\",\"hops\":2,\"kind\":\"op\",\"latency_us\":345,\
                    \"ok\":true,\"op\":\"get_mutable\",\"requests\":9,\"t_ms\":5}\n\
                    {\"kind\":\"meta\",\"seed\":1,\"duration_s\":10.0,\"elapsed_ms\":10100,\
                    \"ops_per_sec\":20.0,\"republish_s\":3000,\"bootstrap_ms\":40,\
                    \"skipped\":3,\"ops\":1}\n";
        let report = parse_report(text).unwrap();
        assert_eq!(report.ops.len(), 1);
        let op = &report.ops[0];
        assert_eq!(op.op, OpKind::GetMutable);
        assert!(op.ok);
        assert_eq!(
            (op.latency_us, op.hops, op.requests, op.t_ms),
            (345, 2, 9, 5)
        );
        assert_eq!(op.error, "");
        assert_eq!((report.republish_s, report.skipped), (Some(3000), 3));
        let bad = parse_report("{\"kind\":\"op\",\"op\":\"no_such_op\"}").unwrap_err();
        assert!(bad.starts_with("line 1:"), "{bad}");
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 50.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn summary_and_svg_from_a_report() {
        let op = |op: OpKind, ok: bool, us: u64| OpRecord {
            op,
            t_ms: 0,
            ok,
            latency_us: us,
            hops: 2,
            requests: 10,
            error: if ok {
                String::new()
            } else {
                "not_found".into()
            },
            age_ms: None,
        };
        let report = WorkloadReport {
            ops: vec![
                op(OpKind::PutImmutable, true, 3000),
                op(OpKind::GetImmutable, true, 1500),
                op(OpKind::GetImmutable, false, 9000),
                op(OpKind::GetPeers, true, 700),
            ],
            republish_s: Some(3000),
            skipped: 0,
        };
        let config = TestnetConfig {
            item_ttl: Some(300),
            working_set: Some(500),
            ..TestnetConfig::default()
        };
        let s = Summary::new(
            &config,
            &report,
            &ChurnLog::default(),
            (0, 0),
            Duration::ZERO,
            RssLog::for_run(config.duration).growth(None),
        );
        assert_eq!(s.success_rate, 0.75);
        assert_eq!(s.item_gets.count, 2);
        let json = s.to_json();
        // serde_json writes the shortest form of a number: 0.75, where format! wrote 0.750000.
        assert!(json.starts_with("{\"success_rate\":0.75,"), "{json}");
        assert!(
            json.contains("\"get_immutable\":{\"count\":2,\"ok\":1,"),
            "{json}"
        );
        assert!(!json.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["ops"]["get_immutable"]["errors"]["not_found"], 1);
        assert_eq!(value["all"]["latency_ms"]["p50"], 1.5);
        assert_eq!(value["passed"], false);
        assert_eq!(value["churn"]["per_round"], 2);
        assert_eq!(
            (
                &value["item_ttl_s"],
                &value["peer_ttl_s"],
                &value["working_set"]
            ),
            (
                &serde_json::json!(300),
                &serde_json::Value::Null,
                &serde_json::json!(500)
            )
        );
        assert!(
            s.to_text()
                .contains("; nodes keep items 300 s; the workload keeps its newest 500 items"),
            "{}",
            s.to_text()
        );
        // Operation types in table order, as before (a serde_json map would sort them).
        let order: Vec<usize> = ["put_immutable", "get_immutable", "get_peers"]
            .iter()
            .map(|k| json.find(&format!("\"{k}\":{{")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(s.to_text().contains("FAIL"));
        let svg = latency_svg(&config, &report.ops);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
    }
}
