//! The IPFS one-shots: `closest`, `find-peer`, `provide`, `providers`, `get-record`,
//! `put-record` and `ipns publish|resolve` (`ipns.rs`). Arguments are parsed before
//! anything is bound (clap runs `keys.rs`'s parsers: a bad CID, PeerId or multiaddr
//! exits 2); then a client-mode
//! host joins through the seeds, runs one request, prints its result on stdout (plain
//! lines, or one JSON object with --json) and exits: 0 done, 1 nothing found, 3 no
//! server answered or took it.

use std::io::Write;
use std::time::{Duration, Instant};

use dht_core::to_hex;
use dht_ipfs::{PeerInfo, RequestError};
use dht_net_libp2p::{HostError, IpfsHandle};
use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use serde_json::{json, Value};

use super::flags::{IpfsCli, IpfsCommand, IpnsCommand, ModeArg};
use super::{host_config, read_keypair, seeds, spawn, write_addr_file, IpfsStore};
use crate::cli::Fail;

/// Largest record value `put-record` reads: more than any request may carry (16 KiB),
/// so the engine's own refusal names the limit.
const MAX_RECORD_FILE: usize = 64 * 1024;

/// One line on stdout; a closed stdout (`| head`) is not an error.
pub(super) fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

pub(super) async fn run(cli: &IpfsCli, command: &IpfsCommand) -> Result<(), Fail> {
    if matches!(cli.mode, Some(ModeArg::Server | ModeArg::Auto)) {
        return Err(Fail::usage(
            "one-shots run in client mode: --mode is a node's flag",
        ));
    }
    // Read before anything is bound: a missing file costs nothing.
    let value = match command {
        IpfsCommand::PutRecord { file, .. } => Some(
            dht_node::identity::read_bounded(file, MAX_RECORD_FILE)
                .map_err(|e| Fail::usage(format!("cannot read {}: {e}", file.display())))?,
        ),
        _ => None,
    };
    let seeds = seeds(cli);
    if seeds.is_empty() {
        return Err(Fail::usage(
            "a one-shot asks the network: give --bootstrap MULTIADDR (not --no-bootstrap)",
        ));
    }
    // `ipns`'s --key is the name's key, never the one-shot's identity: a node with
    // that key may be running.
    let keypair = match (&cli.key, command) {
        (Some(path), c) if !matches!(c, IpfsCommand::Ipns { .. }) => read_keypair(path)?,
        _ => Keypair::generate_ed25519(),
    };
    // Only `provide` needs an address of its own: servers drop a provider record
    // without one.
    let listen: Vec<Multiaddr> = match (command, cli.listen.is_empty()) {
        (_, false) => cli.listen.clone(),
        (IpfsCommand::Provide { .. }, true) if cli.announce.is_empty() => {
            "/ip4/0.0.0.0/tcp/0".parse().into_iter().collect()
        }
        _ => Vec::new(),
    };
    let config = host_config(cli, keypair, listen, ModeArg::Client)?;
    let limits = dht_ipfs::StoreLimits::default();
    let client = spawn(config, IpfsStore::Mem(dht_ipfs::MemStore::new(limits))).await?;
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, &client)?;
    }
    let joined = client.bootstrap(&seeds).await.map_err(host_fail)?;
    if joined.is_empty() {
        return Err(Fail::other("no bootstrap peer answered"));
    }
    tracing::debug!(servers = joined.len(), "joined");
    let started = Instant::now();
    let result = request(cli, &client, command, value, started).await;
    client.shutdown().await;
    result
}

async fn request(
    cli: &IpfsCli,
    client: &IpfsHandle,
    command: &IpfsCommand,
    value: Option<Vec<u8>>,
    started: Instant,
) -> Result<(), Fail> {
    let json = cli.json;
    match command {
        IpfsCommand::Closest { target } => {
            let peers = client
                .closest_peers(target.0.clone())
                .await
                .map_err(host_fail)?;
            if peers.is_empty() {
                return Err(Fail::not_found("no server answered the lookup"));
            }
            match json {
                true => print(json!({
                    "key": to_hex(&target.0),
                    "peers": peers_json(&peers),
                    "stats": stats(started.elapsed()),
                })),
                false => peers.iter().for_each(|p| say(&peer_id(p))),
            }
        }
        IpfsCommand::FindPeer { peer } => {
            let Some(found) = client.find_peer(peer).await.map_err(host_fail)? else {
                return Err(Fail::not_found(format!("{peer} was not found")));
            };
            match json {
                true => print(json!({
                    "peer_id": peer.to_string(),
                    "addrs": addrs(&found),
                    "stats": stats(started.elapsed()),
                })),
                false => found.addrs().iter().for_each(|a| say(&a.to_string())),
            }
        }
        IpfsCommand::Provide { cid } => {
            let sent = client
                .provide(cid.multihash.clone())
                .await
                .map_err(host_fail)?;
            if sent == 0 {
                return Err(Fail::other(
                    "no ADD_PROVIDER reached a server (none of the closest could be written to)",
                ));
            }
            let provider = client.peer_id().to_string();
            match json {
                true => print(json!({
                    "cid": cid.text,
                    "key": to_hex(&cid.multihash),
                    "provider": provider,
                    "sent": sent,
                    "stats": stats(started.elapsed()),
                })),
                false => say(&provider),
            }
        }
        IpfsCommand::Providers { cid } => {
            let found = client
                .providers(cid.multihash.clone())
                .await
                .map_err(host_fail)?;
            if found.is_empty() {
                return Err(Fail::not_found(format!("no provider of {}", cid.text)));
            }
            match json {
                true => print(json!({
                    "cid": cid.text,
                    "key": to_hex(&cid.multihash),
                    "providers": peers_json(&found),
                    "stats": stats(started.elapsed()),
                })),
                false => found.iter().for_each(|p| say(&peer_id(p))),
            }
        }
        IpfsCommand::GetRecord { record: key } => {
            let Some(record) = client
                .get_record(key.bytes.clone())
                .await
                .map_err(host_fail)?
            else {
                return Err(Fail::not_found(format!(
                    "no valid record under {}",
                    key.text
                )));
            };
            match json {
                true => print(json!({
                    "key": key.text,
                    "value": to_hex(&record.value),
                    "stats": stats(started.elapsed()),
                })),
                false => say(&to_hex(&record.value)),
            }
        }
        IpfsCommand::PutRecord { record: key, .. } => {
            let value = value.unwrap_or_default();
            let (acks, sent) = client
                .put_record(key.bytes.clone(), value)
                .await
                .map_err(host_fail)?;
            if acks == 0 {
                return Err(Fail::other(format!(
                    "no server took the record (sent to {sent})"
                )));
            }
            match json {
                true => print(json!({
                    "key": key.text,
                    "acks": acks,
                    "sent": sent,
                    "stats": stats(started.elapsed()),
                })),
                false => say(&key.text),
            }
        }
        IpfsCommand::Ipns {
            command:
                IpnsCommand::Publish {
                    path,
                    seq,
                    lifetime,
                },
        } => {
            let key = cli.key.as_ref();
            super::ipns::publish(client, key, path, *seq, *lifetime, json, started).await?
        }
        IpfsCommand::Ipns {
            command: IpnsCommand::Resolve { name },
        } => super::ipns::resolve(client, name, json, started).await?,
        // Run before a host is started (`super::run`).
        IpfsCommand::Keygen { .. } | IpfsCommand::PeerId => {}
    }
    Ok(())
}

/// A refusal of the request is the user's input (exit 2); anything else, exit 3.
pub(super) fn host_fail(e: HostError) -> Fail {
    match e {
        HostError::Refused(RequestError::Store(e)) => Fail::other(format!("local store: {e}")),
        HostError::Refused(e) => Fail::usage(format!("refused: {e}")),
        e => Fail::other(e.to_string()),
    }
}

pub(super) fn print(v: Value) {
    crate::cli::output::json_line(&v);
}

pub(super) fn stats(elapsed: Duration) -> Value {
    json!({
        "duration_us": elapsed.as_micros() as u64,
        "duration_ms": elapsed.as_millis() as u64,
    })
}

/// A peer's base58 PeerId (the engine's bytes, which libp2p parsed on the way in).
fn peer_id(p: &PeerInfo) -> String {
    libp2p::PeerId::from_bytes(p.id().as_bytes())
        .map(|id| id.to_string())
        .unwrap_or_else(|_| to_hex(p.id().as_bytes()))
}

fn addrs(p: &PeerInfo) -> Vec<String> {
    p.addrs().iter().map(|a| a.to_string()).collect()
}

fn peers_json(peers: &[PeerInfo]) -> Value {
    peers
        .iter()
        .map(|p| json!({ "peer_id": peer_id(p), "addrs": addrs(p) }))
        .collect()
}
