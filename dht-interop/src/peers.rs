//! The implementations under test, how to find and install them, and their peer
//! processes: started with the loopback seed, asked one line at a time under a
//! deadline, killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dht_interop::Command;

/// How long one command may take (a lookup plus a write, with retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer may take to print `ready`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// An implementation taking part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// `dht-node` (this workspace).
    Ours,
    /// The `mainline` crate.
    Mainline,
    /// libtorrent through python3-libtorrent.
    Libtorrent,
    /// bittorrent-dht from npm.
    BittorrentDht,
}

pub(crate) fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// Debian's interpreter, where `apt-get install python3-libtorrent` puts the module
/// (a pyenv or venv `python3` first in PATH would not see it).
fn python() -> String {
    std::env::var("DHT_INTEROP_PYTHON").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".to_string()
        } else {
            "python3".to_string()
        }
    })
}

pub(crate) fn succeeds(program: &str, args: &[&str]) -> bool {
    Process::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn run_loud(program: &str, args: &[&str], dir: Option<&PathBuf>) -> Result<(), String> {
    let mut cmd = Process::new(program);
    cmd.args(args)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{program} {}: {s}", args.join(" "))),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// `apt-get install -y PACKAGES`, through sudo when not root.
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = Process::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(packages);
    let apt = |args: &[&str]| {
        if root {
            run_loud("apt-get", args, None)
        } else {
            let mut sudo = vec!["-n", "apt-get"];
            sudo.extend_from_slice(args);
            run_loud("sudo", &sudo, None)
        }
    };
    // A fresh machine has no package lists yet: update once, then try again.
    apt(&args).or_else(|_| apt(&["update"]).and_then(|()| apt(&args)))
}

impl Impl {
    /// Every implementation, ours first (it provides the seed).
    pub fn all() -> Vec<Impl> {
        vec![
            Impl::Ours,
            Impl::Mainline,
            Impl::Libtorrent,
            Impl::BittorrentDht,
        ]
    }

    /// The name used in the matrix.
    pub fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Mainline => "mainline",
            Impl::Libtorrent => "libtorrent",
            Impl::BittorrentDht => "bittorrent-dht",
        }
    }

    /// `Err` says what is missing.
    pub fn available(self) -> Result<(), String> {
        match self {
            Impl::Ours | Impl::Mainline => Ok(()),
            Impl::Libtorrent => {
                if succeeds(&python(), &["-c", "import libtorrent"]) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} cannot import libtorrent (apt-get install python3-libtorrent)",
                        python()
                    ))
                }
            }
            Impl::BittorrentDht => {
                if !succeeds("node", &["--version"]) {
                    Err("node is not installed (apt-get install nodejs npm)".to_string())
                } else if !peers_dir().join("node_modules/bittorrent-dht").exists() {
                    Err(format!(
                        "bittorrent-dht is not installed (npm ci in {})",
                        peers_dir().display()
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Installs what [`Impl::available`] found missing, through the package managers.
    pub fn install(self) -> Result<(), String> {
        match self {
            Impl::Ours | Impl::Mainline => Ok(()),
            Impl::Libtorrent => apt_install(&["python3-libtorrent"]),
            Impl::BittorrentDht => {
                if !succeeds("npm", &["--version"]) {
                    apt_install(&["nodejs", "npm"])?;
                }
                // `npm ci` installs exactly what package-lock.json pins.
                run_loud(
                    "npm",
                    &["ci", "--no-audit", "--no-fund"],
                    Some(&peers_dir()),
                )
            }
        }
    }

    fn command(self) -> Process {
        match self {
            Impl::Ours | Impl::Mainline => {
                // The peers of the Rust implementations are modes of this binary.
                let exe = std::env::current_exe().unwrap_or_else(|_| "dht-interop".into());
                let mut p = Process::new(exe);
                p.arg(if self == Impl::Ours {
                    "peer-ours"
                } else {
                    "peer-mainline"
                });
                p
            }
            Impl::Libtorrent => {
                let mut p = Process::new(python());
                p.arg(peers_dir().join("libtorrent_peer.py"));
                p
            }
            Impl::BittorrentDht => {
                let mut p = Process::new("node");
                p.arg(peers_dir().join("bittorrent_dht_peer.js"));
                p
            }
        }
    }
}

/// A running peer process.
#[derive(Debug)]
pub struct Peer {
    /// The implementation's name.
    pub name: String,
    /// What it printed after `ready`: its nodes' addresses; the first runs the commands.
    pub ready: Vec<String>,
    /// The same as UDP addresses (Mainline peers; empty for IPFS peers).
    pub addrs: Vec<SocketAddr>,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    deadline: Instant,
}

impl Peer {
    /// Starts the peer of `imp` with `nodes` nodes and waits for its `ready` line.
    pub fn start(
        imp: &Impl,
        nodes: usize,
        seed: Option<SocketAddr>,
        deadline: Instant,
    ) -> Result<Peer, String> {
        let mut peer = Peer::spawn(
            imp.name(),
            imp.command(),
            nodes,
            seed.map(|s| s.to_string()),
            deadline,
        )?;
        peer.addrs = peer.ready.iter().filter_map(|a| a.parse().ok()).collect();
        if peer.addrs.len() != peer.ready.len() || peer.addrs.iter().any(|a| !a.ip().is_loopback())
        {
            return Err(format!("{}: bad ready line {:?}", imp.name(), peer.ready));
        }
        Ok(peer)
    }

    /// Starts `cmd` with `--nodes N [--bootstrap SEED]` and waits for its `ready` line
    /// (`START_TIMEOUT`); its words after `ready` are [`Peer::ready`].
    pub fn spawn(
        name: &str,
        mut cmd: Process,
        nodes: usize,
        seed: Option<String>,
        deadline: Instant,
    ) -> Result<Peer, String> {
        cmd.arg("--nodes").arg(nodes.to_string());
        if let Some(seed) = seed {
            cmd.arg("--bootstrap").arg(seed);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Peer {
            name: name.to_string(),
            ready: Vec::new(),
            addrs: Vec::new(),
            child,
            stdin,
            lines,
            deadline,
        };
        let ready = peer
            .lines
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| format!("{name}: no `ready` line"))?;
        peer.ready = ready
            .strip_prefix("ready ")
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        if peer.ready.is_empty() {
            return Err(format!("{name}: bad ready line {ready:?}"));
        }
        Ok(peer)
    }

    /// Sends one command and waits for its reply line; `err ...` on timeout.
    pub fn request(&mut self, cmd: &Command) -> String {
        self.request_line(&cmd.to_line())
    }

    /// Sends one line and waits for its reply line; `err ...` on timeout.
    pub fn request_line(&mut self, line: &str) -> String {
        let now = Instant::now();
        if now >= self.deadline {
            return "err the run's time budget is spent".to_string();
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return "err stdin closed".to_string();
        };
        if writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .is_err()
        {
            return "err the peer exited".to_string();
        }
        let wait = REQUEST_TIMEOUT.min(self.deadline - now);
        match self.lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(_) => {
                // A late reply would be taken for the next command's: stop asking.
                self.stdin = None;
                format!("err no reply within {} s", wait.as_secs())
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        // Give it a moment to exit cleanly, then kill it.
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
