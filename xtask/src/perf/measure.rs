//! Measuring one build: the KRPC rate its node sustains (and its echo's, and libtorrent's
//! node's beside them), pinned the way
//! `contrib/perf/serve_ab.sh` pins them; the instruction counts of its callgrind workloads;
//! the figures of one simulator run. Every process started here listens on 127.0.0.1 only
//! and is owned by a [`Running`] guard, so an error or Ctrl-C leaves nothing behind.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::build::Bins;
use crate::Error;
use dht_measure::krpc::{QueryKind, QueryTemplate};

/// The CPU the server under test runs on, and the CPU of the load generator and of `fill`.
const SERVER_CPU: &str = "0";
const LOAD_CPU: &str = "1";
/// How long a server may take to answer its first datagram.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A process of this run; killed and reaped when dropped.
#[derive(Debug)]
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What answers the load: the build's node, the build's bare echo (the ceiling), or
/// libtorrent's DHT node (`contrib/perf/libtorrent_node.py`, the same for both builds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Server {
    Node,
    Echo,
    Libtorrent,
}

/// The script that runs libtorrent's DHT node on one loopback address.
const LIBTORRENT_NODE: &str = "contrib/perf/libtorrent_node.py";

/// Debian's interpreter, where `apt-get install python3-libtorrent` puts the module (a
/// pyenv or venv `python3` first in PATH would not see it); `DHT_INTEROP_PYTHON` as for
/// `cargo xtask interop`.
fn python() -> String {
    std::env::var("DHT_INTEROP_PYTHON").unwrap_or_else(|_| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".to_string()
        } else {
            "python3".to_string()
        }
    })
}

/// `--libtorrent` needs python3-libtorrent: refused at once, not after the builds.
pub fn check_libtorrent() -> Result<(), Error> {
    let imported = Command::new(python())
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match imported {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Error::Failed(format!(
            "perf: --libtorrent: {} cannot import libtorrent \
             (apt-get install python3-libtorrent, or cargo xtask interop --install)",
            python()
        ))),
    }
}

/// `program` on one CPU only (`taskset -c CPU program`).
fn pinned(cpu: &str, program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(cpu).arg(program);
    cmd.stdin(Stdio::null());
    cmd
}

/// Pinning needs taskset and a second CPU for the load; a run without them would measure
/// the scheduler, so it is refused.
pub fn check_pinning() -> Result<(), Error> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return Err(Error::Failed(format!(
            "perf: needs 2 CPUs (the server on CPU 0, the load on CPU 1); this process may use {cpus}"
        )));
    }
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match taskset {
        Ok(s) if s.success() => Ok(()),
        _ => Err(Error::Failed(
            "perf: taskset (util-linux) is needed to pin the server and the load".into(),
        )),
    }
}

/// A free UDP port on loopback. The socket that found it is closed before the server binds,
/// so another program could take it meanwhile; the server would then not answer, and the
/// run says so.
fn free_port() -> Result<u16, Error> {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Failed(format!("perf: cannot find a free port: {e}")))
}

/// Waits until `addr` answers a KRPC ping (the echo sends it back, a node responds).
fn wait_answering(addr: SocketAddr, server: &mut Running) -> Result<(), Error> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .map(|()| s)
        })
        .map_err(|e| Error::Failed(format!("perf: cannot open a socket: {e}")))?;
    // Read-only (BEP 43), so that the node keeps this port out of its table.
    let ping = QueryTemplate::new(QueryKind::Ping, b"xtask-perf-readiness");
    let started = Instant::now();
    let mut buf = [0u8; 1500];
    while started.elapsed() < START_LIMIT {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(Error::Failed(format!(
                "perf: the server on {addr} exited at start ({status})"
            )));
        }
        // A send may fail until the server binds (ICMP port unreachable): try again.
        let _ = socket.send_to(ping.as_bytes(), addr);
        if socket.recv_from(&mut buf).is_ok() {
            return Ok(());
        }
    }
    Err(Error::Failed(format!(
        "perf: the server on {addr} did not answer within {} s",
        START_LIMIT.as_secs()
    )))
}

/// Starts `server` of `bins` (or libtorrent's) on CPU 0, fills a node's table, loads it from CPU 1 with the
/// load generator `load` for `duration` seconds of `query`, and returns the answers per
/// second. The server is stopped before this returns.
pub fn serve_rate(
    bins: &Bins,
    server: Server,
    load: &Path,
    query: &str,
    duration: f64,
    fill_seconds: f64,
) -> Result<f64, Error> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
    let mut cmd = match server {
        Server::Node => {
            let mut c = pinned(SERVER_CPU, &bins.node);
            c.arg("--listen")
                .arg(addr.to_string())
                .arg("--no-bootstrap");
            c
        }
        Server::Echo => {
            let mut c = pinned(SERVER_CPU, &bins.xtask);
            c.arg("echo").arg("--listen").arg(addr.to_string());
            c
        }
        Server::Libtorrent => {
            // Its network thread and the interpreter both on the server's CPU.
            let mut c = pinned(SERVER_CPU, Path::new(&python()));
            c.arg(crate::testnet::workspace_root().join(LIBTORRENT_NODE))
                .arg(addr.to_string());
            c
        }
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Failed(format!("perf: cannot start the server: {e}")))?;
    let mut running = Running { child };
    wait_answering(addr, &mut running)?;
    if server != Server::Echo {
        let filled = pinned(LOAD_CPU, load)
            .args(["fill", "--target", &addr.to_string()])
            .arg("--seconds")
            .arg(fill_seconds.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // As serve_ab.sh: a node that filled badly still answers, with fewer contacts.
        if !matches!(filled, Ok(s) if s.success()) {
            eprintln!("perf: warning: `xtask fill` failed against {addr}");
        }
    }
    let out = pinned(LOAD_CPU, load)
        .args(["load", "--target", &addr.to_string(), "--query", query])
        .arg("--duration")
        .arg(duration.to_string())
        .args(["--quiet", "--json"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("perf: cannot run the load generator: {e}")))?;
    drop(running);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(last).map_err(|e| {
        Error::Failed(format!(
            "perf: `xtask load` against {addr} gave no JSON report ({e}; {})",
            out.status
        ))
    })?;
    report["answered_per_s"].as_f64().ok_or_else(|| {
        Error::Failed(format!(
            "perf: `xtask load` reported no answered_per_s: {last}"
        ))
    })
}

/// Whether valgrind can be run at all.
pub fn have_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Instructions executed by `workload` of the instructions example, as callgrind counts them.
pub fn instructions(example: &Path, workload: &str) -> Result<f64, Error> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(example)
        .arg(workload)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("perf: cannot run valgrind: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "perf: callgrind of `{} {workload}` failed ({}): {}",
            example.display(),
            out.status,
            stderr.lines().last().unwrap_or_default()
        )));
    }
    collected(&stderr).ok_or_else(|| {
        Error::Failed(format!(
            "perf: callgrind printed no `Collected` count for {workload}"
        ))
    })
}

/// Reads callgrind's summary line, `==PID== Collected : 123456789`.
fn collected(stderr: &str) -> Option<f64> {
    stderr.lines().find_map(|line| {
        let (_, count) = line.split_once("Collected :")?;
        count.trim().parse::<u64>().ok().map(|n| n as f64)
    })
}

/// The figures of one `dht-sim --json` run that the comparison reads.
#[derive(Clone, Debug, PartialEq)]
pub struct SimFigures {
    pub wall_seconds: f64,
    pub bytes_per_node: f64,
    pub hops_mean: f64,
    pub found_k_closest: f64,
    pub messages_per_lookup: f64,
    pub event_hash: String,
}

/// Runs `dht-sim --nodes NODES --lookups 1000 --seed 1 --json` and reads its last line.
pub fn simulate(sim: &Path, nodes: usize) -> Result<SimFigures, Error> {
    let out = Command::new(sim)
        .arg("--nodes")
        .arg(nodes.to_string())
        .args(["--lookups", "1000", "--seed", "1", "--json"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("perf: cannot run {}: {e}", sim.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    sim_figures(last).ok_or_else(|| {
        Error::Failed(format!(
            "perf: {} ({}) printed no report with the figures: `{last}`",
            sim.display(),
            out.status
        ))
    })
}

fn sim_figures(json: &str) -> Option<SimFigures> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let number = |key: &str| v[key].as_f64();
    Some(SimFigures {
        wall_seconds: number("wall_seconds")?,
        bytes_per_node: number("bytes_per_node")?,
        hops_mean: number("hops_mean")?,
        found_k_closest: number("found_k_closest")?,
        messages_per_lookup: number("messages_per_lookup")?,
        event_hash: v["event_hash"].as_str()?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrinds_count() {
        let stderr = "==41== Callgrind, a call-graph generating cache profiler\n\
                      ==41== Events    : Ir\n==41== Collected : 123456789\n==41==\n\
                      ==41== I   refs:      123,456,789\n";
        assert_eq!(collected(stderr), Some(123_456_789.0));
        assert_eq!(collected("==41== I   refs: 5\n"), None);
    }

    #[test]
    fn reads_the_simulators_report() {
        let line = r#"{"nodes":2000,"found_k_closest":0.99,"hops_mean":3.5,"messages_per_lookup":40.25,"bytes_per_node":5.6e4,"wall_seconds":12.5,"event_hash":"2fba1886908e","extra":null}"#;
        assert_eq!(
            sim_figures(line),
            Some(SimFigures {
                wall_seconds: 12.5,
                bytes_per_node: 56_000.0,
                hops_mean: 3.5,
                found_k_closest: 0.99,
                messages_per_lookup: 40.25,
                event_hash: "2fba1886908e".into(),
            })
        );
        assert_eq!(sim_figures(r#"{"nodes":2000}"#), None);
        assert_eq!(sim_figures("dht-sim: done"), None);
    }
}
