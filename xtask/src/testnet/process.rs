//! The guard that owns every process of a run, and the node processes: starting them,
//! waiting until they have joined, and reading their logs.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::binaries::Bins;
use super::ipfs::{identity, Identity};
use super::netns::{Netns, NETNS_HTTP_PORT, NETNS_PORT};
use super::rss::RssLog;
use super::{interrupted, Overlay, Store, TestnetConfig, Transport, POLL};
use crate::rng::SplitMix64;
use crate::Error;

/// Nodes each node bootstraps through (at start and after a restart).
pub(super) const SEEDS: usize = 3;

#[derive(Debug)]
pub(super) struct NodeProc {
    pub(super) addr: SocketAddr,
    /// The node's `--http` address, where its readiness is read (`/readyz`).
    pub(super) http: SocketAddr,
    /// `ip netns exec` target, with `--netns`.
    pub(super) namespace: Option<String>,
    pub(super) child: Option<Child>,
    pub(super) log: PathBuf,
    /// Where the log of the current incarnation starts: readiness is read from there.
    pub(super) log_from: u64,
    pub(super) data_dir: PathBuf,
    pub(super) restarts: u32,
    /// `--overlay ipfs`: the node's key file and PeerId, kept across restarts.
    pub(super) identity: Option<Identity>,
}

impl NodeProc {
    /// How others dial it: `IP:PORT`, or for IPFS `/ip4/IP/tcp/PORT/p2p/PEERID`.
    pub(super) fn dial(&self) -> String {
        match &self.identity {
            Some(id) => format!("{}/p2p/{}", tcp_multiaddr(self.addr), id.peer_id),
            None => self.addr.to_string(),
        }
    }
}

/// `/ip4/IP/tcp/PORT` (or `/ip6/...`).
fn tcp_multiaddr(addr: SocketAddr) -> String {
    let family = if addr.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{family}/{}/tcp/{}", addr.ip(), addr.port())
}

/// Everything the run started; dropping it stops the processes, then (through `netns`'s own
/// `Drop`) removes the namespaces.
#[derive(Debug)]
pub(super) struct Testnet {
    pub(super) config: TestnetConfig,
    pub(super) bins: Bins,
    pub(super) out: PathBuf,
    pub(super) nodes: Vec<NodeProc>,
    pub(super) workload: Option<Child>,
    pub(super) rng: SplitMix64,
    pub(super) crashes: u32,
    pub(super) netns: Option<Netns>,
    /// `--delay`: each node's egress delay in ms (index = node), then the workload's.
    pub(super) delays: Vec<f64>,
    /// Every node's resident memory, sampled while the workload runs.
    pub(super) rss: RssLog,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if let Some(mut w) = self.workload.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Testnet {
    /// Draws each node's (and last, the workload's) egress delay uniform in
    /// [0.2, 1.8] x `mean_ms`, once: a restarted node keeps its delay, as a link would.
    /// A datagram from a to b waits a's delay, so a round trip takes d(a) + d(b),
    /// 2 x `mean_ms` on average, as dht-sim's pairs with `--latency-ms mean_ms`.
    pub(super) fn draw_delays(&mut self, mean_ms: f64) {
        self.delays = (0..=self.config.nodes)
            .map(|_| mean_ms * (0.2 + 1.6 * self.rng.below(1_000_001) as f64 / 1e6))
            .collect();
    }

    pub(super) fn start_nodes(&mut self) -> Result<(), Error> {
        let n = self.config.nodes;
        let ipfs = self.config.overlay == Overlay::Ipfs;
        // IPFS listens on TCP: its ports and the HTTP ones come from one draw, distinct.
        let tcp = match ipfs {
            true => free_tcp_ports(2 * n)?,
            false => Vec::new(),
        };
        let addrs: Vec<SocketAddr> = match &self.netns {
            _ if ipfs => tcp[..n]
                .iter()
                .map(|&p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
                .collect(),
            Some(ns) => (0..n)
                .map(|i| SocketAddr::from((ns.node_ip(i), NETNS_PORT)))
                .collect(),
            None => free_ports(n)?
                .into_iter()
                .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
                .collect(),
        };
        let https: Vec<SocketAddr> = match &self.netns {
            _ if ipfs => tcp[n..]
                .iter()
                .map(|&p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
                .collect(),
            Some(ns) => (0..n)
                .map(|i| SocketAddr::from((ns.node_ip(i), NETNS_HTTP_PORT)))
                .collect(),
            None => free_tcp_ports(n)?
                .into_iter()
                .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
                .collect(),
        };
        let keys = self.out.join("keys");
        if ipfs {
            fs::create_dir_all(&keys)
                .map_err(|e| Error::Failed(format!("testnet: {}: {e}", keys.display())))?;
        }
        for (i, addr) in addrs.iter().enumerate() {
            let identity = match ipfs {
                true => Some(identity(&self.bins.node, &keys, &format!("node-{i}"))?),
                false => None,
            };
            self.nodes.push(NodeProc {
                identity,
                addr: *addr,
                http: https[i],
                namespace: self.netns.as_ref().map(|ns| ns.namespaces[i].clone()),
                child: None,
                log: self.out.join("logs").join(format!("node-{i}.log")),
                log_from: 0,
                data_dir: self.out.join("data").join(format!("node-{i}")),
                restarts: 0,
            });
        }
        for i in 0..n {
            // The first nodes join through each other, the others through node 0, their
            // predecessor and one earlier node: the network is connected from the start and
            // node 0 is not the only way in. Node 0's seeds come up after it: it retries.
            let mut seeds = vec![];
            if i == 0 && self.config.overlay == Overlay::Chord {
                // Chord has no routers: node 0 starts the ring the others join.
            } else if i == 0 {
                seeds.extend((1..n.min(SEEDS)).map(|j| addrs[j]));
            } else {
                seeds.push(addrs[0]);
                if i > 1 {
                    seeds.push(addrs[i - 1]);
                    seeds.push(addrs[self.rng.below(i)]);
                }
            }
            seeds.dedup();
            self.spawn_node(i, &seeds)?;
            interrupted()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    pub(super) fn spawn_node(&mut self, i: usize, seeds: &[SocketAddr]) -> Result<(), Error> {
        let config = &self.config;
        let seeds: Vec<String> = seeds
            .iter()
            .map(|s| {
                let dial = self.nodes.iter().find(|n| n.addr == *s).map(NodeProc::dial);
                dial.unwrap_or_else(|| s.to_string())
            })
            .collect();
        let node = &mut self.nodes[i];
        let mut cmd = match &node.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bins.node);
                c
            }
            None => Command::new(&self.bins.node),
        };
        if config.overlay != Overlay::Mainline {
            cmd.args(["--overlay", config.overlay.name()]);
        }
        match &node.identity {
            Some(id) => {
                cmd.arg("--listen").arg(tcp_multiaddr(node.addr));
                cmd.arg("--key").arg(&id.key);
                // Loopback is no public address: auto mode would stay a client.
                cmd.args(["--mode", "server"]);
            }
            None => {
                cmd.arg("--listen").arg(node.addr.to_string());
            }
        }
        cmd.arg("--http").arg(node.http.to_string());
        if let Some(secs) = config.item_ttl {
            cmd.arg("--item-ttl-ms").arg((secs * 1000).to_string());
        }
        if let Some(secs) = config.peer_ttl {
            cmd.arg("--peer-ttl-ms").arg((secs * 1000).to_string());
        }
        if let Some(d) = self.delays.get(i) {
            cmd.arg("--egress-delay-ms")
                .arg(format!("{}", d.round().max(1.0)));
        }
        if seeds.is_empty() {
            cmd.arg("--no-bootstrap");
        }
        for s in &seeds {
            cmd.arg("--bootstrap").arg(s);
        }
        if config.transport != Transport::Udp {
            cmd.args(["--transport", config.transport.name()]);
        }
        if config.store != Store::Mem {
            cmd.args(["--store", config.store.name()]);
            cmd.arg("--data-dir").arg(&node.data_dir);
            fs::create_dir_all(&node.data_dir).map_err(|e| {
                Error::Failed(format!(
                    "testnet: cannot create {}: {e}",
                    node.data_dir.display()
                ))
            })?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| Error::Failed(format!("testnet: {}: {e}", node.log.display())))?;
        node.log_from = log.metadata().map(|m| m.len()).unwrap_or(0);
        // The rejoin count after churn reads the node's "bootstrapped" line, an info-level
        // log: a RUST_LOG of the user's must not hide it.
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().map_err(|e| {
            Error::Failed(format!(
                "testnet: cannot start {}: {e}",
                self.bins.node.display()
            ))
        })?;
        node.child = Some(child);
        Ok(())
    }

    /// Waits until every node is ready by its own signal: `/readyz` answers 200 (k good
    /// nodes in its table and a recent answer; see `ready.rs` for networks under k + 1).
    pub(super) fn wait_ready(&mut self, started: Instant) -> Result<(), Error> {
        let limit = Duration::from_secs(30) + Duration::from_millis(500) * self.config.nodes as u32;
        let mut ready = vec![false; self.nodes.len()];
        let mut last_report = Instant::now();
        let n = self.nodes.len();
        loop {
            interrupted()?;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if let Some(status) = node
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    return Err(Error::Failed(format!(
                        "testnet: node {i} ({}) exited at start ({status}): {}",
                        node.addr,
                        last_lines(&node.log, 3)
                    )));
                }
                if !ready[i] {
                    ready[i] = super::ready::is_ready(node.http, n, self.config.overlay);
                }
            }
            let count = ready.iter().filter(|r| **r).count();
            if count == ready.len() {
                break;
            }
            if started.elapsed() > limit {
                let missing: Vec<String> = (0..ready.len())
                    .filter(|&i| !ready[i])
                    .map(|i| i.to_string())
                    .collect();
                return Err(Error::Failed(format!(
                    "testnet: nodes {} not ready (/readyz) within {} s (logs in {})",
                    missing.join(", "),
                    limit.as_secs(),
                    self.out.join("logs").display()
                )));
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                eprintln!("testnet: {count} of {} nodes ready", ready.len());
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

/// `n` distinct free TCP ports on loopback, for the nodes' `--http` (the same caveat as
/// [`free_ports`]: closed just before the nodes bind).
fn free_tcp_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Failed(format!("testnet: cannot find free TCP ports: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Failed(format!("testnet: cannot find free TCP ports: {e}")))
}

/// `n` distinct free UDP ports on loopback. The sockets that found them are closed just
/// before the nodes bind, so another program could take one meanwhile; the node would then
/// fail to bind and the run would say so.
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Failed(format!("testnet: cannot find free ports: {e}")))?;
    sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Failed(format!("testnet: cannot find free ports: {e}")))
}

pub(super) fn log_since(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut text);
        }
    }
    text
}

pub(super) fn last_lines(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join(" | ");
    if tail.is_empty() {
        format!("no output (log {})", path.display())
    } else {
        tail
    }
}
