//! The load report: the figures both load generators print, computed one way.
//!
//! `cargo xtask load` (UDP) and `dht-quic-load` (QUIC) each add a few figures of their own
//! (sockets; connections, handshakes, memory), but what they share (rate, answers, losses,
//! latency, the tool's own CPU) lives here once: the same counters, the same histogram, the
//! same text lines and the same `--json` field names, so a UDP and a QUIC run compare.

use std::time::Duration;

use crate::Histogram;

/// Counters of one load phase. Every request sent ends in exactly one of `responses`,
/// `errors`, `echoed` or `timeouts`.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Length of the sending phase.
    pub elapsed: Duration,
    /// Threads that sent (the QUIC tool runs on one).
    pub threads: usize,
    /// Requests in flight, over all sockets or connections.
    pub concurrency: usize,
    /// Requests sent during the sending phase.
    pub sent: u64,
    /// KRPC responses (`y` = `r`) received in time.
    pub responses: u64,
    /// KRPC errors: answers still.
    pub errors: u64,
    /// Our own queries sent back (`cargo xtask echo`): answers still.
    pub echoed: u64,
    /// Requests unanswered within the timeout.
    pub timeouts: u64,
    /// Answers after their request timed out, or duplicates.
    pub late: u64,
    /// Datagrams that were not KRPC, carried a transaction id we never sent, or came from
    /// another address than the target.
    pub malformed: u64,
    /// Sends that failed (UDP) or messages the transport dropped on the way out (QUIC).
    pub send_errors: u64,
    /// Receives that failed (UDP) or messages the transport dropped on the way in (QUIC).
    pub receive_errors: u64,
    /// Answers received before the sending phase ended; the rate is computed from these
    /// so that waiting for the last window does not dilute it.
    pub answered_in_window: u64,
    /// Send to receive of each answered request (µs).
    pub latency_us: Histogram,
    /// CPU time this process used during the sending phase, if the OS tells.
    pub load_cpu: Option<Duration>,
}

impl LoadReport {
    /// Responses, errors and echoes: every request that got an answer in time.
    pub fn answered(&self) -> u64 {
        self.responses + self.errors + self.echoed
    }

    /// Answers received before the sending phase ended, per second of it: the tool's rate.
    pub fn answered_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.answered_in_window as f64 / secs
        } else {
            0.0
        }
    }

    /// The share of sent requests that timed out (0 when nothing was sent).
    pub fn unanswered_fraction(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.timeouts as f64 / self.sent as f64
        }
    }

    /// The share of the CPU time available to the sending threads that they used. Near 1,
    /// the load generator itself was the bottleneck and the target may sustain more.
    pub fn load_cpu_utilisation(&self) -> Option<f64> {
        let usable = self.elapsed.as_secs_f64() * self.threads.clamp(1, cpus()) as f64;
        self.load_cpu
            .filter(|_| usable > 0.0)
            .map(|cpu| cpu.as_secs_f64() / usable)
    }

    /// Adds the counters and latencies of `other` (one thread's or one connection's share);
    /// the run's settings (`elapsed`, `threads`, `concurrency`, `load_cpu`) stay.
    pub fn merge(&mut self, other: &LoadReport) {
        self.sent += other.sent;
        self.responses += other.responses;
        self.errors += other.errors;
        self.echoed += other.echoed;
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.malformed += other.malformed;
        self.send_errors += other.send_errors;
        self.receive_errors += other.receive_errors;
        self.answered_in_window += other.answered_in_window;
        self.latency_us.merge(&other.latency_us);
    }

    /// The lines both tools print under their own first line: rate, counts, latency.
    pub fn text_lines(&self) -> String {
        let p = |q| {
            self.latency_us
                .quantile(q)
                .map_or_else(|| "-".to_string(), |v| v.to_string())
        };
        format!(
            "answered/s  {:.0}\n\
             sent        {}\n\
             answered    {} (responses {}, errors {}, echoed {})\n\
             unanswered  {} ({:.4} of sent)\n\
             late        {}   malformed {}   send errors {}   receive errors {}\n\
             latency µs  p50 {}   p99 {}",
            self.answered_per_second(),
            self.sent,
            self.answered(),
            self.responses,
            self.errors,
            self.echoed,
            self.timeouts,
            self.unanswered_fraction(),
            self.late,
            self.malformed,
            self.send_errors,
            self.receive_errors,
            p(0.5),
            p(0.99),
        )
    }

    /// The `load cpu` line: how busy the load generator itself was.
    pub fn load_cpu_line(&self) -> String {
        let figures = match (self.load_cpu, self.load_cpu_utilisation()) {
            (Some(cpu), Some(share)) => format!(
                "{:.2} s, {:.0} % of what {} thread(s) could use, {:.0} answered per CPU s{}",
                cpu.as_secs_f64(),
                share * 100.0,
                self.threads,
                self.answered_in_window as f64 / cpu.as_secs_f64().max(0.01),
                if share > 0.9 {
                    ": the load generator was busy all along, the target may sustain more"
                } else {
                    ""
                }
            ),
            _ => "unknown".to_string(),
        };
        format!("load cpu    {figures}")
    }

    /// The shared `--json` figures, rounded as the text is (a reader wants 0.123 s, not
    /// 0.12300000000000001).
    pub fn summary(&self) -> LoadSummary {
        LoadSummary {
            threads: self.threads,
            concurrency: self.concurrency,
            duration_s: round(self.elapsed.as_secs_f64(), 3),
            answered_per_s: round(self.answered_per_second(), 1),
            sent: self.sent,
            answered: self.answered(),
            responses: self.responses,
            errors: self.errors,
            echoed: self.echoed,
            unanswered: self.timeouts,
            unanswered_fraction: round(self.unanswered_fraction(), 6),
            late: self.late,
            malformed: self.malformed,
            send_errors: self.send_errors,
            receive_errors: self.receive_errors,
            latency_p50_us: self.latency_us.quantile(0.5),
            latency_p99_us: self.latency_us.quantile(0.99),
            load_cpu_s: self.load_cpu.map(|c| round(c.as_secs_f64(), 2)),
            load_cpu_utilisation: self.load_cpu_utilisation().map(|u| round(u, 3)),
        }
    }
}

/// The figures of a [`LoadReport`] as `--json` prints them; each tool flattens it into its
/// own object next to its own fields. The names are the tools' published field names:
/// add, never rename.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LoadSummary {
    /// [`LoadReport::threads`].
    pub threads: usize,
    /// [`LoadReport::concurrency`].
    pub concurrency: usize,
    /// The sending phase, in seconds.
    pub duration_s: f64,
    /// [`LoadReport::answered_per_second`]: the rate the target sustained.
    pub answered_per_s: f64,
    /// [`LoadReport::sent`].
    pub sent: u64,
    /// [`LoadReport::answered`]: responses, KRPC errors and echoes in time.
    pub answered: u64,
    /// [`LoadReport::responses`].
    pub responses: u64,
    /// [`LoadReport::errors`].
    pub errors: u64,
    /// [`LoadReport::echoed`].
    pub echoed: u64,
    /// Requests that timed out ([`LoadReport::timeouts`]).
    pub unanswered: u64,
    /// [`LoadReport::unanswered_fraction`].
    pub unanswered_fraction: f64,
    /// [`LoadReport::late`].
    pub late: u64,
    /// [`LoadReport::malformed`].
    pub malformed: u64,
    /// [`LoadReport::send_errors`].
    pub send_errors: u64,
    /// [`LoadReport::receive_errors`].
    pub receive_errors: u64,
    /// Median latency of answered requests in µs; `null` when nothing was answered.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile latency of answered requests in µs; `null` when nothing was
    /// answered.
    pub latency_p99_us: Option<u64>,
    /// CPU seconds the tool used while sending; `null` when the OS does not tell.
    pub load_cpu_s: Option<f64>,
    /// [`LoadReport::load_cpu_utilisation`]: near 1, the tool itself was the bottleneck.
    pub load_cpu_utilisation: Option<f64>,
}

/// `v` rounded to `digits` decimals; a value that is not finite stays as it is (serde_json
/// writes it as `null`).
pub fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    let r = (v * scale).round() / scale;
    if r.is_finite() {
        r
    } else {
        v
    }
}

/// CPUs this process may run on. Honours the affinity mask, so under `taskset -c 1` it is 1.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LoadReport {
        let mut r = LoadReport {
            elapsed: Duration::from_secs(2),
            threads: 1,
            concurrency: 4,
            sent: 10,
            responses: 6,
            errors: 1,
            echoed: 1,
            timeouts: 2,
            answered_in_window: 8,
            load_cpu: Some(Duration::from_millis(500)),
            ..LoadReport::default()
        };
        for v in [100, 200, 300, 400, 500, 600, 700, 800] {
            r.latency_us.record(v);
        }
        r
    }

    #[test]
    fn figures_add_up() {
        let r = sample();
        assert_eq!(r.answered(), 8);
        assert_eq!(r.answered_per_second(), 4.0);
        assert_eq!(r.unanswered_fraction(), 0.2);
        assert_eq!(r.load_cpu_utilisation(), Some(0.25));
        assert_eq!(LoadReport::default().answered_per_second(), 0.0);
        assert_eq!(LoadReport::default().unanswered_fraction(), 0.0);
        assert_eq!(LoadReport::default().load_cpu_utilisation(), None);
    }

    #[test]
    fn merge_sums_counters_and_latencies() {
        let mut a = sample();
        a.merge(&sample());
        assert_eq!((a.sent, a.answered(), a.timeouts), (20, 16, 4));
        assert_eq!(a.latency_us.len(), 16);
        assert_eq!(a.elapsed, Duration::from_secs(2));
    }

    #[test]
    fn summary_is_rounded_and_text_has_every_line() {
        let s = sample().summary();
        assert_eq!(s.unanswered, 2);
        // 400 lies in the 4-wide bucket 400..404, reported by its middle.
        assert_eq!(s.latency_p50_us, Some(402));
        assert_eq!(s.load_cpu_s, Some(0.5));
        assert_eq!(round(1.0 / 3.0, 3), 0.333);
        assert!(round(f64::NAN, 2).is_nan());
        let text = sample().text_lines();
        for line in [
            "answered/s  4",
            "unanswered  2 (0.2000 of sent)",
            "latency µs  p50 402",
        ] {
            assert!(text.contains(line), "{text}");
        }
        assert!(sample()
            .load_cpu_line()
            .starts_with("load cpu    0.50 s, 25 %"));
        assert_eq!(LoadReport::default().summary().latency_p99_us, None);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn summary_keeps_the_published_field_names() {
        let json = serde_json::to_value(sample().summary()).unwrap();
        for name in [
            "threads",
            "concurrency",
            "duration_s",
            "answered_per_s",
            "sent",
            "answered",
            "responses",
            "errors",
            "echoed",
            "unanswered",
            "unanswered_fraction",
            "late",
            "malformed",
            "send_errors",
            "receive_errors",
            "latency_p50_us",
            "latency_p99_us",
            "load_cpu_s",
            "load_cpu_utilisation",
        ] {
            assert!(json.get(name).is_some(), "{name} missing from {json}");
        }
        let empty = serde_json::to_value(LoadReport::default().summary()).unwrap();
        assert!(empty["latency_p50_us"].is_null() && empty["load_cpu_s"].is_null());
    }
}
