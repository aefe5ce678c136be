//! Every node's resident memory over the run: sampled from `/proc/PID/status` while the
//! workload runs, written as `rss.csv` and `rss.svg`, and summed up as the growth of each
//! node that lived through the run (the same process from the first sample to the last)
//! between the end of a warm-up and the run's end. A leak shows as steady growth after the
//! tables and stores have filled; a restarted node starts over, so only survivors count.
//! Beside each RSS sample, what the node's store held (its `/metrics`' `dht_stored_items`
//! and `dht_stored_peers`): growth that follows the stored data is told from growth beyond it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::plot::Chart;

/// One sample of one node process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Sample {
    /// Seconds since the workload started.
    pub(super) t_s: f64,
    pub(super) node: usize,
    pub(super) pid: u32,
    pub(super) rss_kb: u64,
    /// BEP 44 items and peers the node's store held; `None` when `/metrics` did not say.
    pub(super) stored: Option<Stored>,
}

/// What a node's store held at a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Stored {
    pub(super) items: u64,
    pub(super) peers: u64,
}

/// The samples of a run, taken every `every`.
#[derive(Debug)]
pub(super) struct RssLog {
    pub(super) every: Duration,
    /// Where growth is measured from: the first sample at or after it.
    pub(super) from: Duration,
    pub(super) samples: Vec<Sample>,
    next: Duration,
}

impl RssLog {
    /// Every `duration / 120` (1 to 60 s) and from `duration / 12` (at most 10 minutes):
    /// a two-hour soak samples every minute and measures from minute 10 to the end.
    pub(super) fn for_run(duration: Duration) -> RssLog {
        let every = (duration / 120).clamp(Duration::from_secs(1), Duration::from_secs(60));
        RssLog {
            every,
            from: (duration / 12).min(Duration::from_secs(600)),
            samples: Vec::new(),
            next: Duration::ZERO,
        }
    }

    /// Samples every process in `pids` (index = node) when a sample is due, or when `force`;
    /// its store's counts from its HTTP server `https[node]` when there is one.
    pub(super) fn sample(
        &mut self,
        elapsed: Duration,
        pids: &[Option<u32>],
        https: &[SocketAddr],
        force: bool,
    ) {
        if !force && elapsed < self.next {
            return;
        }
        while self.next <= elapsed {
            self.next += self.every;
        }
        for (node, pid) in pids.iter().enumerate() {
            let Some(pid) = *pid else { continue };
            if let Some(rss_kb) = vm_rss_kb(pid) {
                self.samples.push(Sample {
                    t_s: elapsed.as_secs_f64(),
                    node,
                    pid,
                    rss_kb,
                    stored: https.get(node).and_then(|&http| stored(http)),
                });
            }
        }
    }

    /// `rss.csv`: one line per sample.
    pub(super) fn to_csv(&self) -> String {
        let mut s = String::from("t_s,node,pid,rss_kb,items,peers\n");
        for x in &self.samples {
            let (items, peers) = match x.stored {
                Some(c) => (c.items.to_string(), c.peers.to_string()),
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                s,
                "{:.1},{},{},{},{items},{peers}",
                x.t_s, x.node, x.pid, x.rss_kb
            );
        }
        s
    }

    /// Growth of each node whose process lived from a sample at or before `from` to the
    /// last sample of the run.
    pub(super) fn growth(&self, limit_pct: Option<f64>) -> RssGrowth {
        let from_s = self.from.as_secs_f64();
        let end_s = self.samples.iter().map(|x| x.t_s).fold(0.0, f64::max);
        let nodes = self.samples.iter().map(|x| x.node + 1).max().unwrap_or(0);
        let mut grown = Vec::new();
        for node in 0..nodes {
            let mine: Vec<&Sample> = self.samples.iter().filter(|x| x.node == node).collect();
            let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
                continue;
            };
            // A survivor: one process throughout, sampled at the warm-up's end and the run's.
            let one_process = mine.iter().all(|x| x.pid == first.pid);
            let Some(at_from) = mine.iter().find(|x| x.t_s >= from_s) else {
                continue;
            };
            if !one_process || first.t_s > from_s || last.t_s < end_s {
                continue;
            }
            grown.push(NodeGrowth {
                node,
                from_kb: at_from.rss_kb,
                to_kb: last.rss_kb,
                growth_pct: round2(pct(at_from.rss_kb, last.rss_kb)),
                from_stored: at_from.stored,
                to_stored: last.stored,
            });
        }
        let mut pcts: Vec<f64> = grown.iter().map(|g| g.growth_pct).collect();
        pcts.sort_by(f64::total_cmp);
        let worst = grown
            .iter()
            .max_by(|a, b| a.growth_pct.total_cmp(&b.growth_pct))
            .cloned();
        let passed = match (limit_pct, &worst) {
            (Some(limit), Some(w)) => w.growth_pct < limit,
            // A limit with no survivor to judge is not met.
            (Some(_), None) => false,
            (None, _) => true,
        };
        RssGrowth {
            sample_every_s: self.every.as_secs_f64(),
            from_s: round2(from_s),
            to_s: round2(end_s),
            nodes_sampled: nodes,
            survivors: grown.len(),
            median_growth_pct: pcts.get(pcts.len() / 2).copied(),
            max_growth_pct: worst.as_ref().map(|w| w.growth_pct),
            limit_pct,
            passed,
            worst,
            per_node: grown,
        }
    }
}

fn pct(from: u64, to: u64) -> f64 {
    if from == 0 {
        return 0.0;
    }
    (to as f64 - from as f64) / from as f64 * 100.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `VmRSS` of a process, in kB; `None` when it is gone.
fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the store of the node serving HTTP at `http` holds, from its `/metrics`.
fn stored(http: SocketAddr) -> Option<Stored> {
    let (status, body) = super::ready::get(http, "/metrics")?;
    if status != 200 {
        return None;
    }
    Some(Stored {
        items: gauge(&body, "dht_stored_items")?,
        peers: gauge(&body, "dht_stored_peers")?,
    })
}

/// The value of an unlabelled gauge in Prometheus' text format.
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        let v: f64 = value.trim().parse().ok()?;
        (v >= 0.0 && v.is_finite()).then_some(v as u64)
    })
}

/// One survivor's growth.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct NodeGrowth {
    pub(super) node: usize,
    pub(super) from_kb: u64,
    pub(super) to_kb: u64,
    pub(super) growth_pct: f64,
    /// What its store held at both ends (`None`: not known).
    pub(super) from_stored: Option<Stored>,
    pub(super) to_stored: Option<Stored>,
}

/// `report.json`'s `rss`. Field names are published: add, never rename.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RssGrowth {
    pub(super) sample_every_s: f64,
    pub(super) from_s: f64,
    pub(super) to_s: f64,
    pub(super) nodes_sampled: usize,
    /// Nodes whose process lived through the run.
    pub(super) survivors: usize,
    pub(super) median_growth_pct: Option<f64>,
    pub(super) max_growth_pct: Option<f64>,
    /// `--max-rss-growth`.
    pub(super) limit_pct: Option<f64>,
    pub(super) passed: bool,
    pub(super) worst: Option<NodeGrowth>,
    pub(super) per_node: Vec<NodeGrowth>,
}

impl RssGrowth {
    pub(super) fn to_text(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        let mut t = format!(
            "rss: sampled every {} s; {} of {} nodes lived through the run",
            self.sample_every_s, self.survivors, self.nodes_sampled
        );
        if let (Some(median), Some(w)) = (self.median_growth_pct, &self.worst) {
            let _ = write!(
                t,
                "; growth from {:.0} s to {:.0} s: median {median:+.2} %, max {:+.2} % (node {}: {:.1} -> {:.1} MB)",
                self.from_s,
                self.to_s,
                w.growth_pct,
                w.node,
                mb(w.from_kb),
                mb(w.to_kb)
            );
            if let (Some(a), Some(b)) = (w.from_stored, w.to_stored) {
                let _ = write!(
                    t,
                    ", its store {} -> {} items and {} -> {} peers",
                    a.items, b.items, a.peers, b.peers
                );
            }
        }
        if let Some(limit) = self.limit_pct {
            let _ = write!(
                t,
                "; limit {limit} %: {}",
                if self.passed { "PASS" } else { "FAIL" }
            );
        }
        t
    }
}

/// `rss.svg`: every node process's RSS over time, survivors in colour, restarted or
/// replaced processes in grey.
pub(super) fn rss_svg(log: &RssLog, growth: &RssGrowth, title: &str) -> String {
    let t_max = log.samples.iter().map(|x| x.t_s).fold(1.0, f64::max);
    let mb_max = log
        .samples
        .iter()
        .map(|x| x.rss_kb as f64 / 1024.0)
        .fold(1.0, f64::max);
    // A round top: the next multiple of a power of ten's half.
    let step = 10f64.powf((mb_max / 4.0).log10().floor()).max(0.5);
    let top = (mb_max / step).ceil() * step;
    let chart = Chart::new(70.0, 30.0);
    let (left, pw, ph) = (chart.left, chart.pw, chart.ph);
    let x = |t: f64| left + t / t_max * pw;
    let y = |mb: f64| chart.top + (1.0 - mb / top) * ph;
    let mut s = String::new();
    chart.open(&mut s, &format!("RSS per node process: {title}"));
    let mut v = 0.0;
    while v <= top + 1e-9 {
        chart.y_tick(&mut s, y(v), &v.to_string());
        v += step;
    }
    let minutes = t_max >= 300.0;
    let (unit, scale) = if minutes { ("min", 60.0) } else { ("s", 1.0) };
    for i in 0..=6 {
        let t = t_max * i as f64 / 6.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>",
            x(t),
            chart.top + ph + 18.0,
            t / scale
        );
    }
    chart.frame(
        &mut s,
        &format!("time since the workload started, {unit}"),
        "VmRSS, MB",
    );
    let survivors: Vec<usize> = growth.per_node.iter().map(|g| g.node).collect();
    // One line per process: (node, pid) in order of first appearance.
    let mut lines: Vec<(usize, u32)> = Vec::new();
    for x in &log.samples {
        if !lines.contains(&(x.node, x.pid)) {
            lines.push((x.node, x.pid));
        }
    }
    for (node, pid) in lines {
        let survivor = survivors.contains(&node);
        let colour = if survivor { "#1f77b4" } else { "#bbb" };
        let points: Vec<String> = log
            .samples
            .iter()
            .filter(|p| p.node == node && p.pid == pid)
            .map(|p| format!("{:.1},{:.1}", x(p.t_s), y(p.rss_kb as f64 / 1024.0)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(samples: &[(f64, usize, u32, u64)]) -> RssLog {
        let mut log = RssLog::for_run(Duration::from_secs(7200));
        log.samples = samples
            .iter()
            .map(|&(t_s, node, pid, rss_kb)| Sample {
                t_s,
                node,
                pid,
                rss_kb,
                stored: (node == 0).then_some(Stored {
                    items: rss_kb / 100,
                    peers: 7,
                }),
            })
            .collect();
        log
    }

    #[test]
    fn a_two_hour_soak_samples_every_minute_from_minute_ten() {
        let l = RssLog::for_run(Duration::from_secs(7200));
        assert_eq!(
            (l.every, l.from),
            (Duration::from_secs(60), Duration::from_secs(600))
        );
        let short = RssLog::for_run(Duration::from_secs(60));
        assert_eq!(
            (short.every, short.from),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
    }

    #[test]
    fn only_processes_that_lived_through_the_run_count() {
        let l = log(&[
            // Node 0 lives throughout: 10,000 kB at minute 10, 10,400 at the end (+4 %).
            (0.0, 0, 100, 8_000),
            (600.0, 0, 100, 10_000),
            (7200.0, 0, 100, 10_400),
            // Node 1 was restarted (a new pid): it starts over and does not count.
            (0.0, 1, 101, 8_000),
            (600.0, 1, 101, 9_000),
            (7200.0, 1, 201, 20_000),
            // Node 2 grew 10 % before minute 10 and not after.
            (0.0, 2, 102, 9_000),
            (660.0, 2, 102, 10_000),
            (7200.0, 2, 102, 10_000),
            // Node 3 died before the end.
            (0.0, 3, 103, 9_000),
            (600.0, 3, 103, 9_000),
        ]);
        let g = l.growth(Some(5.0));
        assert_eq!((g.nodes_sampled, g.survivors), (4, 2));
        assert_eq!(g.max_growth_pct, Some(4.0));
        assert_eq!(g.worst.as_ref().map(|w| w.node), Some(0));
        assert!(g.passed, "{}", g.to_text());
        let strict = l.growth(Some(3.0));
        assert!(!strict.passed);
        assert!(strict.to_text().ends_with("FAIL"), "{}", strict.to_text());
        assert!(l.growth(None).passed);
        // With no survivor, a limit cannot be judged met.
        assert!(
            !log(&[(0.0, 0, 1, 5), (7200.0, 0, 2, 5)])
                .growth(Some(5.0))
                .passed
        );
        let svg = rss_svg(&l, &g, "test");
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(l.to_csv().starts_with(
            "t_s,node,pid,rss_kb,items,peers\n0.0,0,100,8000,80,7\n600.0,0,100,10000,100,7\n"
        ));
        assert!(
            g.to_text()
                .contains("its store 100 -> 104 items and 7 -> 7 peers"),
            "{}",
            g.to_text()
        );
    }

    #[test]
    fn reads_gauges_from_prometheus_text() {
        let text = "# HELP dht_stored_items BEP 44 items held.\n# TYPE dht_stored_items gauge\n\
                    dht_stored_items_total 9\ndht_stored_items 42\ndht_stored_peers 3\n";
        assert_eq!(gauge(text, "dht_stored_items"), Some(42));
        assert_eq!(gauge(text, "dht_stored_peers"), Some(3));
        assert_eq!(gauge(text, "dht_stored_info_hashes"), None);
    }

    #[test]
    fn reads_its_own_resident_memory() {
        let kb = vm_rss_kb(std::process::id()).expect("VmRSS of this process");
        assert!(kb > 100, "{kb}");
        let mut l = RssLog::for_run(Duration::from_secs(60));
        l.sample(
            Duration::ZERO,
            &[Some(std::process::id()), None],
            &[],
            false,
        );
        // Not due yet: nothing added.
        l.sample(
            Duration::from_millis(10),
            &[Some(std::process::id())],
            &[],
            false,
        );
        assert_eq!(l.samples.len(), 1);
        l.sample(
            Duration::from_millis(20),
            &[Some(std::process::id())],
            &[],
            true,
        );
        assert_eq!(l.samples.len(), 2);
        assert_eq!(l.samples[1].stored, None);
    }
}
