//! The workload's report: reading its records back, and the figures per operation type
//! that become the table and `report.json`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::churn::ChurnLog;
use super::TestnetConfig;
use crate::Error;

/// One operation of the workload's report.
#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) kind: String,
    pub(super) ok: bool,
    pub(super) latency_us: u64,
    pub(super) hops: u64,
    pub(super) requests: u64,
    pub(super) error: String,
}

#[derive(Debug, Default)]
pub(super) struct WorkloadReport {
    pub(super) ops: Vec<Op>,
    pub(super) republish_s: Option<u64>,
    pub(super) skipped: u64,
}

/// The value of `key` in one flat JSON object as the workload writes it (see its crate doc:
/// no nesting, no commas or quotes inside strings), so no JSON parser is needed.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

pub(super) fn read_report(path: &Path) -> Result<WorkloadReport, Error> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::Failed(format!("testnet: cannot read {}: {e}", path.display())))?;
    let mut report = WorkloadReport::default();
    for line in text.lines() {
        let num = |key| field(line, key).and_then(|v| v.parse::<u64>().ok());
        match field(line, "kind") {
            Some("op") => report.ops.push(Op {
                kind: field(line, "op").unwrap_or("?").to_string(),
                ok: field(line, "ok") == Some("true"),
                latency_us: num("latency_us").unwrap_or(0),
                hops: num("hops").unwrap_or(0),
                requests: num("requests").unwrap_or(0),
                error: field(line, "error").unwrap_or("").to_string(),
            }),
            Some("meta") => {
                report.republish_s = num("republish_s");
                report.skipped = num("skipped").unwrap_or(0);
            }
            _ => {}
        }
    }
    Ok(report)
}

/// The operation types in the order the table shows them.
pub(super) const KINDS: [&str; 6] = [
    "put_immutable",
    "get_immutable",
    "put_mutable",
    "get_mutable",
    "announce",
    "get_peers",
];

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
    fn new(name: &str, ops: &[&Op]) -> Figures {
        let mut latencies: Vec<u64> = ops.iter().filter(|o| o.ok).map(|o| o.latency_us).collect();
        latencies.sort_unstable();
        let answered: Vec<&&Op> = ops.iter().filter(|o| o.requests > 0).collect();
        let mean = |f: fn(&Op) -> u64| {
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

    fn to_json(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(e, n)| format!("\"{}\":{n}", json_escape(e)))
            .collect();
        format!(
            "{{\"count\":{},\"ok\":{},\"success_rate\":{:.6},\"latency_ms\":{{\"p50\":{:.3},\
             \"p95\":{:.3},\"p99\":{:.3}}},\"hops\":{:.2},\"messages\":{:.2},\"errors\":{{{}}}}}",
            self.count,
            self.ok,
            self.success_rate(),
            self.p50,
            self.p95,
            self.p99,
            self.hops,
            self.requests,
            errors.join(",")
        )
    }
}

/// Nearest-rank quantile of sorted microseconds, in milliseconds (0 when empty).
fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => vec![' '],
            c => vec![c],
        })
        .collect()
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
}

impl Summary {
    pub(super) fn new(
        config: &TestnetConfig,
        report: &WorkloadReport,
        churn: &ChurnLog,
        rejoined: (usize, usize),
        ready_after: Duration,
    ) -> Summary {
        let of = |pred: &dyn Fn(&Op) -> bool| -> Vec<&Op> {
            report.ops.iter().filter(|o| pred(o)).collect()
        };
        let ops = KINDS
            .iter()
            .map(|k| Figures::new(k, &of(&|o: &Op| o.kind == *k)))
            .filter(|f| f.count > 0)
            .collect();
        let all = Figures::new("all", &of(&|_| true));
        let item_gets = Figures::new(
            "gets of earlier puts",
            &of(&|o: &Op| o.kind == "get_immutable" || o.kind == "get_mutable"),
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
        }
    }

    pub(super) fn to_text(&self) -> String {
        let c = &self.config;
        let mut t = String::new();
        let (every, why) = c.churn_every();
        let _ = writeln!(
            t,
            "testnet: {} nodes, {} / {}, {}, {} s at {} ops/s, seed {}",
            c.nodes,
            c.transport.name(),
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
             {} of {} restarted nodes joined again; {} crash(es)",
            c.churn_count(),
            every.as_secs_f64(),
            self.churn_rounds,
            self.restarts,
            self.rejoined.0,
            self.rejoined.1,
            self.crashes
        );
        let _ = writeln!(
            t,
            "nodes ready after {:.1} s; workload republishes every {}{}",
            self.ready_after.as_secs_f64(),
            self.republish_s
                .map_or("(default)".to_string(), |s| format!("{s} s")),
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
        let _ = write!(
            t,
            "\nsuccess rate {:.4} (threshold {}): {}",
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

    pub(super) fn to_json(&self) -> String {
        let c = &self.config;
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|f| format!("\"{}\":{}", f.name, f.to_json()))
            .collect();
        format!(
            "{{\"success_rate\":{:.6},\"threshold\":{},\"passed\":{},\"nodes\":{},\
             \"transport\":\"{}\",\"store\":\"{}\",\"netns\":{},\"duration_s\":{},\
             \"ops_per_sec\":{},\"seed\":{},\"churn\":{{\"fraction\":{},\"per_round\":{},\
             \"every_s\":{},\"rounds\":{},\"restarts\":{},\"rejoined\":{},\"crashes\":{}}},\
             \"republish_s\":{},\"ready_s\":{:.2},\"skipped\":{},\"ops\":{{{}}},\
             \"gets_of_earlier_puts\":{},\"all\":{}}}",
            self.success_rate,
            c.threshold,
            self.success_rate >= c.threshold && self.all.count > 0,
            c.nodes,
            c.transport.name(),
            c.store.name(),
            c.netns,
            c.duration.as_secs_f64(),
            c.ops_per_sec,
            c.seed,
            c.churn,
            c.churn_count(),
            c.churn_every().0.as_secs_f64(),
            self.churn_rounds,
            self.restarts,
            self.rejoined.0,
            self.crashes,
            self.republish_s
                .map_or("null".to_string(), |s| s.to_string()),
            self.ready_after.as_secs_f64(),
            self.skipped,
            ops.join(","),
            self.item_gets.to_json(),
            self.all.to_json()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::plot::latency_svg;

    #[test]
    fn fields_of_a_flat_object() {
        let line = "{\"age_ms\":12,\"error\":\"\",\"hops\":2,\"kind\":\"op\",\"latency_us\":345,\
                    \"ok\":true,\"op\":\"get_mutable\",\"requests\":9,\"t_ms\":5}";
        assert_eq!(field(line, "kind"), Some("op"));
        assert_eq!(field(line, "op"), Some("get_mutable"));
        assert_eq!(field(line, "ok"), Some("true"));
        assert_eq!(field(line, "latency_us"), Some("345"));
        assert_eq!(field(line, "error"), Some(""));
        assert_eq!(field(line, "t_ms"), Some("5"));
        assert_eq!(field(line, "missing"), None);
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
        let op = |kind: &str, ok: bool, us: u64| Op {
            kind: kind.into(),
            ok,
            latency_us: us,
            hops: 2,
            requests: 10,
            error: if ok {
                String::new()
            } else {
                "not_found".into()
            },
        };
        let report = WorkloadReport {
            ops: vec![
                op("put_immutable", true, 3000),
                op("get_immutable", true, 1500),
                op("get_immutable", false, 9000),
                op("get_peers", true, 700),
            ],
            republish_s: Some(3000),
            skipped: 0,
        };
        let config = TestnetConfig::default();
        let s = Summary::new(
            &config,
            &report,
            &ChurnLog::default(),
            (0, 0),
            Duration::ZERO,
        );
        assert_eq!(s.success_rate, 0.75);
        assert_eq!(s.item_gets.count, 2);
        let json = s.to_json();
        assert!(json.starts_with("{\"success_rate\":0.750000,"), "{json}");
        assert!(
            json.contains("\"get_immutable\":{\"count\":2,\"ok\":1,"),
            "{json}"
        );
        assert!(!json.contains('\n'));
        assert!(s.to_text().contains("FAIL"));
        let svg = latency_svg(&config, &report.ops);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
    }
}
