//! `--netns`: one network namespace and address per node, joined by veth pairs to a bridge,
//! with routes for 198.18.0.0/15 only, so that nothing can leave the machine.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::{interrupted, TestnetConfig};
use crate::Error;

/// The port every node binds inside its own namespace (addresses differ, so ports need not).
pub(super) const NETNS_PORT: u16 = 6881;
/// The `--http` port of every node inside its namespace (readiness is read there).
pub(super) const NETNS_HTTP_PORT: u16 = 8080;
/// Prefix of every namespace and link `--netns` creates, so stale ones can be found.
const NETNS_PREFIX: &str = "dhttn-";
pub(super) const BRIDGE: &str = "dhttn-br";
/// `--netns` gives node i the /24 number i + 1 in 198.18.0.0/15; the workload has the first.
const NETNS_MAX_NODES: usize = 510;

/// Checks what `--netns` needs before anything is built.
pub fn check_netns(config: &TestnetConfig) -> Result<(), Error> {
    if !config.netns {
        return Ok(());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    if uid.as_deref() != Some("0") {
        return Err(Error::Usage(
            "--netns needs root (it creates network namespaces, veth pairs and a bridge): \
             run as root, or drop --netns"
                .into(),
            "testnet ",
        ));
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(ip, Ok(s) if s.success()) {
        return Err(Error::Usage(
            "--netns needs the `ip` command (iproute2), which was not found".into(),
            "testnet ",
        ));
    }
    if config.nodes > NETNS_MAX_NODES {
        return Err(Error::Usage(
            format!(
                "--netns supports at most {NETNS_MAX_NODES} nodes (one /24 each in 198.18.0.0/15)"
            ),
            "testnet ",
        ));
    }
    Ok(())
}

/// The namespaces, veth pairs and bridge of `--netns`. Node i lives in namespace
/// `dhttn-i` with address 198.18.(i+1).1/24 on its end of a veth pair whose other end is a
/// port of the bridge `dhttn-br`; the bridge holds 198.18.0.1/24, the workload's address.
/// Routes cover 198.18.0.0/15 only, as on-link routes over the bridge: there is no default
/// route in the namespaces and no forwarding, so no datagram can leave for another address.
#[derive(Debug)]
pub(super) struct Netns {
    pub(super) namespaces: Vec<String>,
    bridge: bool,
}

impl Netns {
    pub(super) fn create(nodes: usize) -> Result<Netns, Error> {
        remove_stale();
        let mut ns = Netns {
            namespaces: Vec::new(),
            bridge: false,
        };
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ns.bridge = true;
        ip(&["addr", "add", "198.18.0.1/24", "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        ip(&["route", "add", "198.18.0.0/15", "dev", BRIDGE])?;
        for i in 0..nodes {
            interrupted()?;
            let name = format!("{NETNS_PREFIX}{i}");
            let host_end = format!("{NETNS_PREFIX}h{i}");
            let node_end = format!("{NETNS_PREFIX}n{i}");
            ip(&["netns", "add", &name])?;
            ns.namespaces.push(name.clone());
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ])?;
            ip(&["link", "set", &node_end, "netns", &name])?;
            ip(&["link", "set", &host_end, "master", BRIDGE, "up"])?;
            let addr = format!("{}/24", ns.node_ip(i));
            ip(&["-n", &name, "addr", "add", &addr, "dev", &node_end])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            ip(&["-n", &name, "link", "set", &node_end, "up"])?;
            ip(&[
                "-n",
                &name,
                "route",
                "add",
                "198.18.0.0/15",
                "dev",
                &node_end,
            ])?;
        }
        Ok(ns)
    }

    pub(super) fn node_ip(&self, i: usize) -> Ipv4Addr {
        let subnet = i + 1;
        Ipv4Addr::new(198, 18 + (subnet / 256) as u8, (subnet % 256) as u8, 1)
    }

    pub(super) fn workload_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, 1)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the pair.
        for name in self.namespaces.drain(..) {
            let _ = ip(&["netns", "del", &name]);
        }
        if self.bridge {
            let _ = ip(&["link", "del", BRIDGE]);
        }
    }
}

/// Removes what a previous run killed with SIGKILL (no cleanup possible) left behind.
fn remove_stale() {
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in list.lines() {
        if let Some(name) = line.split_whitespace().next() {
            if name.starts_with(NETNS_PREFIX) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    let _ = Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(Stdio::null())
        .status();
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("testnet: cannot run ip: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "testnet: `ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
