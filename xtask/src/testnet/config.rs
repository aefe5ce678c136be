//! What a testnet run is asked to do: the settings `cargo xtask testnet` parses, and the
//! churn schedule derived from them.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Mainline,
    Chord,
}

impl Overlay {
    pub fn name(self) -> &'static str {
        match self {
            Overlay::Mainline => "mainline",
            Overlay::Chord => "chord",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Quic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Mem,
    Sled,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        }
    }
}

impl Store {
    pub fn name(self) -> &'static str {
        match self {
            Store::Mem => "mem",
            Store::Sled => "sled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TestnetConfig {
    pub nodes: usize,
    /// `--overlay`: Mainline nodes with `dht-workload`, or a Chord ring with one-shot clients.
    pub overlay: Overlay,
    pub transport: Transport,
    pub store: Store,
    pub duration: Duration,
    pub ops_per_sec: f64,
    pub churn: f64,
    pub netns: bool,
    /// `--delay`: the mean one-way delay in ms each process adds to what it sends.
    pub delay_ms: Option<f64>,
    pub json: bool,
    pub threshold: f64,
    pub seed: u64,
    /// Seconds between republishes of the workload's items; `None`: the handle's default.
    pub republish: Option<u64>,
}

impl Default for TestnetConfig {
    fn default() -> Self {
        TestnetConfig {
            nodes: 20,
            overlay: Overlay::Mainline,
            transport: Transport::Udp,
            store: Store::Mem,
            duration: Duration::from_secs(60),
            ops_per_sec: 20.0,
            churn: 0.1,
            netns: false,
            delay_ms: None,
            json: false,
            threshold: 0.99,
            seed: 1,
            republish: None,
        }
    }
}

impl TestnetConfig {
    /// Nodes restarted per churn round.
    pub fn churn_count(&self) -> usize {
        ((self.churn * self.nodes as f64).ceil() as usize).min(self.nodes)
    }

    /// Time between churn rounds, and how it was chosen. A minute, as the issue asks; a
    /// short run would see at most one round, so it churns every half of it (at most 30 s).
    pub fn churn_every(&self) -> (Duration, &'static str) {
        if self.duration >= Duration::from_secs(120) {
            (Duration::from_secs(60), "every minute")
        } else {
            (
                (self.duration / 2).min(Duration::from_secs(30)),
                "half the duration, at most 30 s: a short run",
            )
        }
    }
}

/// Whether the run met the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    BelowThreshold,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_schedule() {
        let mut c = TestnetConfig::default();
        assert_eq!(c.churn_count(), 2);
        assert_eq!(c.churn_every().0, Duration::from_secs(30));
        c.duration = Duration::from_secs(20);
        assert_eq!(c.churn_every().0, Duration::from_secs(10));
        c.duration = Duration::from_secs(600);
        c.nodes = 50;
        assert_eq!(
            (c.churn_count(), c.churn_every().0),
            (5, Duration::from_secs(60))
        );
        c.churn = 0.0;
        assert_eq!(c.churn_count(), 0);
    }
}
