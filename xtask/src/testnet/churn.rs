//! The workload's run: the `dht-workload` process, and meanwhile churn rounds that kill and
//! restart nodes, and restarts of nodes that died on their own.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::chord::ChordWorkload;
use super::ipfs::IpfsWorkload;
use super::process::{last_lines, log_since, NodeProc, Testnet, SEEDS};
use super::{interrupted, Overlay, Transport, POLL};
use crate::Error;

/// Nodes the workload bootstraps through.
const WORKLOAD_SEEDS: usize = 8;

/// What churn did during the run.
#[derive(Debug, Default)]
pub(super) struct ChurnLog {
    pub(super) rounds: u32,
    pub(super) restarts: u32,
    pub(super) crashes: u32,
}

impl Testnet {
    pub(super) fn run_workload(&mut self, report: &Path) -> Result<ChurnLog, Error> {
        let config = self.config.clone();
        let mut seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        self.shuffle(&mut seeds);
        seeds.truncate(WORKLOAD_SEEDS);
        let seeds: Vec<String> = seeds.iter().map(|a| a.to_string()).collect();
        let listen = match &self.netns {
            Some(ns) => SocketAddr::from((ns.workload_ip(), 0)),
            None => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        };
        let started = Instant::now();
        // Chord's and IPFS's workloads are threads of xtask's driving one-shot clients.
        let mut chord = match config.overlay {
            Overlay::Chord => Some(
                ChordWorkload {
                    node_bin: self.bins.node.clone(),
                    members: self.nodes.iter().map(|n| n.addr).collect(),
                    duration: config.duration,
                    ops_per_sec: config.ops_per_sec,
                    seed: config.seed,
                    egress_delay_ms: self.delays.last().map(|d| d.round().max(1.0) as u64),
                    report: report.to_path_buf(),
                }
                .spawn(),
            ),
            Overlay::Ipfs => Some(
                IpfsWorkload {
                    node_bin: self.bins.node.clone(),
                    members: self.nodes.iter().map(NodeProc::dial).collect(),
                    duration: config.duration,
                    ops_per_sec: config.ops_per_sec,
                    seed: config.seed,
                    report: report.to_path_buf(),
                    dir: self.out.clone(),
                }
                .spawn()?,
            ),
            Overlay::Mainline => {
                self.spawn_workload(report, &seeds, listen)?;
                None
            }
        };

        let (every, _) = config.churn_every();
        let per_round = config.churn_count();
        let mut next_churn = every;
        let mut log = ChurnLog::default();
        // The workload drains its operations for up to a minute after --duration.
        let limit = config.duration + Duration::from_secs(120);
        loop {
            interrupted()?;
            if chord.as_ref().is_some_and(|h| h.is_finished()) {
                match chord.take().map(|h| h.join()) {
                    Some(Ok(result)) => result?,
                    _ => return Err(Error::Failed("testnet: the workload thread failed".into())),
                }
                break;
            }
            let status = self
                .workload
                .as_mut()
                .and_then(|w| w.try_wait().ok().flatten());
            if let Some(status) = status {
                self.workload = None;
                if !status.success() {
                    return Err(Error::Failed(format!(
                        "testnet: the workload failed ({status}); its error is above"
                    )));
                }
                break;
            }
            if started.elapsed() > limit {
                return Err(Error::Failed(format!(
                    "testnet: the workload did not finish within {} s",
                    limit.as_secs()
                )));
            }
            let https = self.https();
            self.rss
                .sample(started.elapsed(), &self.pids(), &https, false);
            self.restart_crashed()?;
            if per_round > 0 && started.elapsed() >= next_churn && next_churn < config.duration {
                next_churn += every;
                log.rounds += 1;
                log.restarts += self.churn_round(per_round, log.rounds)? as u32;
            }
            std::thread::sleep(POLL);
        }
        // The last sample: the nodes as the workload ended.
        let https = self.https();
        self.rss
            .sample(started.elapsed(), &self.pids(), &https, true);
        log.crashes = self.crashes;
        Ok(log)
    }

    /// Each node's process id (index = node), `None` while it is down.
    fn pids(&self) -> Vec<Option<u32>> {
        self.nodes
            .iter()
            .map(|n| n.child.as_ref().map(|c| c.id()))
            .collect()
    }

    /// Each node's `--http` address (index = node), where its store's counts are read.
    fn https(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.http).collect()
    }

    /// Starts the `dht-workload` process (Mainline).
    fn spawn_workload(
        &mut self,
        report: &Path,
        seeds: &[String],
        listen: SocketAddr,
    ) -> Result<(), Error> {
        let mut cmd = Command::new(&self.bins.workload);
        if self.config.transport == Transport::Quic {
            cmd.arg("--transport").arg("quic");
        }
        cmd.arg("--bootstrap")
            .arg(seeds.join(","))
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--duration")
            .arg(self.config.duration.as_secs_f64().to_string())
            .arg("--ops-per-sec")
            .arg(self.config.ops_per_sec.to_string())
            .arg("--seed")
            .arg(self.config.seed.to_string())
            .arg("--report")
            .arg(report)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(r) = self.config.republish {
            cmd.arg("--republish").arg(r.to_string());
        }
        if let Some(n) = self.config.working_set {
            cmd.arg("--working-set").arg(n.to_string());
        }
        if let Some(d) = self.delays.last() {
            cmd.arg("--egress-delay-ms")
                .arg(format!("{}", d.round().max(1.0)));
        }
        self.workload = Some(cmd.spawn().map_err(|e| {
            Error::Failed(format!(
                "testnet: cannot start {}: {e}",
                self.bins.workload.display()
            ))
        })?);
        Ok(())
    }

    /// Kills `count` random nodes (SIGKILL: no goodbye, as a crash or a pulled cable) and
    /// starts them again on the same address (and data dir), joining through living nodes.
    fn churn_round(&mut self, count: usize, round: u32) -> Result<usize, Error> {
        let long_lived = self.config.long_lived_count();
        let mut order: Vec<usize> = (long_lived..self.nodes.len()).collect();
        self.shuffle(&mut order);
        let (victims, rest) = order.split_at(count.min(order.len()));
        let living: Vec<usize> = rest.iter().copied().chain(0..long_lived).collect();
        let mut victims = victims.to_vec();
        victims.sort_unstable();
        for &i in &victims {
            if let Some(mut c) = self.nodes[i].child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for &i in &victims {
            let mut seeds: Vec<SocketAddr> = living
                .iter()
                .take(SEEDS)
                .map(|&j| self.nodes[j].addr)
                .collect();
            if seeds.is_empty() {
                // Every node was restarted: they find each other as they come back.
                seeds = victims
                    .iter()
                    .filter(|&&j| j != i)
                    .take(SEEDS)
                    .map(|&j| self.nodes[j].addr)
                    .collect();
            }
            self.nodes[i].restarts += 1;
            self.spawn_node(i, &seeds)?;
        }
        let list: Vec<String> = victims.iter().map(|i| i.to_string()).collect();
        eprintln!(
            "testnet: churn round {round}: killed and restarted node{} {}",
            if victims.len() == 1 { "" } else { "s" },
            list.join(", ")
        );
        Ok(victims.len())
    }

    /// A node that died on its own is a finding: it is counted, and started again so that
    /// the run goes on.
    fn restart_crashed(&mut self) -> Result<(), Error> {
        for i in 0..self.nodes.len() {
            let exited = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.crashes += 1;
                eprintln!(
                    "testnet: node {i} exited on its own ({status}): {}; restarting it",
                    last_lines(&self.nodes[i].log, 2)
                );
                let seeds: Vec<SocketAddr> = (0..self.nodes.len())
                    .filter(|&j| j != i)
                    .take(SEEDS)
                    .map(|j| self.nodes[j].addr)
                    .collect();
                self.spawn_node(i, &seeds)?;
            }
        }
        Ok(())
    }

    /// Restarted nodes that joined again, and restarted nodes.
    pub(super) fn rejoined(&self) -> (usize, usize) {
        let restarted: Vec<&NodeProc> = self.nodes.iter().filter(|n| n.restarts > 0).collect();
        let joined = restarted
            .iter()
            .filter(|n| log_since(&n.log, n.log_from).contains(" bootstrapped"))
            .count();
        (joined, restarted.len())
    }

    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.rng.below(i + 1));
        }
    }
}
