//! Spawning `dht-node` processes for tests, and killing them when the test ends.

#![allow(dead_code)]

#[cfg(feature = "ipfs")]
pub mod ipfs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dht-node");
/// Short reply timeouts: loopback answers in microseconds, and killed nodes should
/// cost the lookups little.
pub const TIMEOUT_MS: &str = "400";

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("dht-node-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running node process; killed on drop so that a failing test leaves nothing behind.
pub struct NodeProc {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl NodeProc {
    /// Starts `dht-node` on `listen` (port 0), bootstrapping from `bootstrap` (none: `--no-bootstrap`).
    pub fn spawn(dir: &Path, name: &str, listen: &str, bootstrap: &[SocketAddr]) -> NodeProc {
        NodeProc::spawn_args(dir, name, listen, bootstrap, &[])
    }

    /// As [`NodeProc::spawn`], with more flags (`--transport quic`, ...).
    pub fn spawn_args(
        dir: &Path,
        name: &str,
        listen: &str,
        bootstrap: &[SocketAddr],
        extra: &[&str],
    ) -> NodeProc {
        let addr_file = dir.join(format!("{name}.addr"));
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", listen, "--addr-file"])
            .arg(&addr_file)
            .args(extra);
        // Tests that need long reply timeouts give their own.
        if !extra.contains(&"--request-timeout-ms") {
            cmd.args(["--request-timeout-ms", TIMEOUT_MS]);
        }
        if bootstrap.is_empty() {
            cmd.arg("--no-bootstrap");
        }
        for b in bootstrap {
            cmd.args(["--bootstrap", &b.to_string()]);
        }
        cmd.env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        let child = cmd.spawn().expect("spawn dht-node");
        let mut node = NodeProc {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                if let Some(a) = text.lines().next().and_then(|l| l.parse().ok()) {
                    node.addr = a;
                    return node;
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "dht-node exited early ({status}); log:\n{}",
                    node.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dht-node did not write its address file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node id from the "dht-node listening id=..." line of the log.
    pub fn id(&self) -> String {
        self.log_text()
            .lines()
            .find_map(|l| l.strip_prefix("dht-node listening id="))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        complete_lines(std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGSTOP: the process keeps its socket but answers nothing until
    /// [`NodeProc::resume`] (a node that went silent).
    pub fn pause(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Sends SIGCONT.
    pub fn resume(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Sends SIGTERM and waits for a clean exit (up to 10 s).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a one-shot subcommand with the given bootstrap nodes.
pub fn cli(args: &[&str], bootstrap: &[SocketAddr]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(["--request-timeout-ms", TIMEOUT_MS]);
    for b in bootstrap {
        cmd.args(["--bootstrap", &b.to_string()]);
    }
    // The "one line on stderr" checks assume the default log level.
    cmd.env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run dht-node")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running `dht-node --overlay ipfs` process; killed on drop.
pub struct IpfsProc {
    child: Child,
    /// Its dial addresses (`.../p2p/<PeerId>`), from --addr-file.
    pub addrs: Vec<String>,
    pub log: PathBuf,
}

impl IpfsProc {
    /// Starts an IPFS node on loopback with `extra` flags (--no-bootstrap or
    /// --bootstrap, --mode, ...), and waits for its address file.
    pub fn spawn(dir: &Path, name: &str, extra: &[&str]) -> IpfsProc {
        let addr_file = dir.join(format!("{name}.addr"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["--overlay", "ipfs", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("spawn dht-node");
        let mut node = IpfsProc {
            child,
            addrs: Vec::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                node.addrs = text.lines().map(str::to_string).collect();
                if !node.addrs.is_empty() {
                    return node;
                }
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!(
                    "dht-node exited early ({status}); log:\n{}",
                    node.log_text()
                );
            }
            assert!(Instant::now() < deadline, "no address file");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its PeerId: what follows the last /p2p/ of its first address.
    pub fn peer_id(&self) -> String {
        self.addrs[0]
            .rsplit("/p2p/")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Its process id (to stop it with SIGSTOP: a peer that accepts and never answers).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        complete_lines(std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Sends SIGTERM and waits for a clean exit (up to 10 s).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for IpfsProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `dht-node` with `args` as they are (no flags added), logs at the default level.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run dht-node")
}

/// `text` up to its last newline: a log read while the node writes a line ends in half a
/// line (`dht-node http=127.0.0.1:4` of `...:41235`), which must not be parsed yet.
fn complete_lines(mut text: String) -> String {
    text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    text
}
