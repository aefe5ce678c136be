//! One-shot commands (`put`, `get`, `announce`, `peers`, `ping`, `find-node`,
//! `keygen`): arguments checked before any network activity, a read-only node on a
//! free port, one operation, its result printed, and the exit status it maps to.

use std::net::SocketAddr;
use std::path::Path;

use dht_core::MutableItem;
use dht_core::{from_hex, to_hex};
use dht_core::{Id, QueryStats};
use dht_node::{bencode_bytes, resolve, Dht, Error};

use super::backend::{builder, spawn_node, Net, NodeStore};
use super::output::{self, write_addr_file, StoredJson};
use super::{Cli, Command, Fail};

pub(crate) fn keygen(json: bool, out: &Path) -> Result<(), Fail> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let text = format!("{}\n", to_hex(key.as_bytes()));
    dht_node::identity::write_new_secret(out, text.as_bytes())
        .map_err(|e| Fail::other(format!("cannot create {}: {e}", out.display())))?;
    let public = to_hex(key.verifying_key().as_bytes());
    output::keygen(json, &public, out);
    Ok(())
}

/// `sign`: the body of `PUT /v1/mutable/PUBKEY?salt=S`, signed here so that the
/// server never holds the secret key.
pub(crate) fn sign(
    value: &str,
    key: &Path,
    salt: Option<&str>,
    seq: i64,
    cas: Option<i64>,
) -> Result<(), Fail> {
    let salt = salt.unwrap_or("").as_bytes();
    if salt.len() > dht_core::krpc::MAX_SALT_LEN {
        return Err(Fail::usage(format!(
            "salt too big: {} bytes, at most {}",
            salt.len(),
            dht_core::krpc::MAX_SALT_LEN
        )));
    }
    let bencoded = bencode_bytes(value.as_bytes());
    if bencoded.len() > dht_core::krpc::MAX_VALUE_LEN {
        return Err(Fail::usage(format!(
            "value too big: {} bytes bencoded, at most {}",
            bencoded.len(),
            dht_core::krpc::MAX_VALUE_LEN
        )));
    }
    let key = read_key(key)?;
    let item = MutableItem::sign(&key, salt, seq, &bencoded);
    let mut body = super::output::MutableBody::of(&item);
    body.cas = cas;
    let v = serde_json::to_value(body).map_err(|e| Fail::other(e.to_string()))?;
    output::json_line(&v);
    Ok(())
}

/// A secret key file: 64 hex characters and white space, so a few hundred bytes at most.
const KEY_FILE_MAX: usize = 1024;

pub(crate) fn read_key(path: &Path) -> Result<ed25519_dalek::SigningKey, Fail> {
    let bytes = dht_node::identity::read_bounded(path, KEY_FILE_MAX)
        .map_err(|e| Fail::other(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    let bytes = from_hex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            Fail::usage(format!(
                "{}: expected 64 hex characters (an ed25519 seed)",
                path.display()
            ))
        })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

pub(crate) fn parse_id(what: &str, s: &str) -> Result<Id, Fail> {
    Id::from_hex(s)
        .ok_or_else(|| Fail::usage(format!("{what}: expected 40 hex characters, got {s:?}")))
}

fn parse_key(s: &str) -> Result<[u8; 32], Fail> {
    from_hex(s)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Fail::usage(format!("public key: expected 64 hex characters, got {s:?}")))
}

/// One checked one-shot operation.
enum Task {
    PutImmutable(Vec<u8>),
    PutMutable {
        key: Box<ed25519_dalek::SigningKey>,
        value: Vec<u8>,
        salt: Vec<u8>,
        seq: Option<i64>,
        cas: Option<i64>,
    },
    GetImmutable(Id),
    GetMutable([u8; 32], Vec<u8>),
    Announce(Id, u16, bool),
    Scrape(Id),
    Peers(Id),
    Ping(String),
    FindNode(Id),
}

pub(crate) async fn one_shot(cli: &Cli, cmd: &Command) -> Result<(), Fail> {
    // Arguments are checked before any network activity, so that a typo costs nothing.
    let op = match cmd {
        Command::Put {
            value,
            mutable,
            key,
            salt,
            seq,
            cas,
        } => {
            let bencoded = bencode_bytes(value.as_bytes());
            if bencoded.len() > dht_core::krpc::MAX_VALUE_LEN {
                return Err(Fail::usage(format!(
                    "value too big: {} bytes bencoded, at most {}",
                    bencoded.len(),
                    dht_core::krpc::MAX_VALUE_LEN
                )));
            }
            let salt = salt.clone().unwrap_or_default().into_bytes();
            if salt.len() > dht_core::krpc::MAX_SALT_LEN {
                return Err(Fail::usage(format!(
                    "salt too big: {} bytes, at most {}",
                    salt.len(),
                    dht_core::krpc::MAX_SALT_LEN
                )));
            }
            match (mutable, key) {
                (true, Some(path)) => Task::PutMutable {
                    key: Box::new(read_key(path)?),
                    value: bencoded,
                    salt,
                    seq: *seq,
                    cas: *cas,
                },
                (false, Some(_)) => return Err(Fail::usage("--key needs --mutable")),
                _ => Task::PutImmutable(bencoded),
            }
        }
        Command::Get {
            target,
            mutable,
            salt,
        } => {
            if *mutable {
                Task::GetMutable(
                    parse_key(target)?,
                    salt.clone().unwrap_or_default().into_bytes(),
                )
            } else {
                Task::GetImmutable(parse_id("target", target)?)
            }
        }
        Command::Announce {
            info_hash,
            port,
            seed,
        } => {
            if *port == 0 {
                return Err(Fail::usage("--port must be between 1 and 65535"));
            }
            Task::Announce(parse_id("info_hash", info_hash)?, *port, *seed)
        }
        Command::Scrape { info_hash } => Task::Scrape(parse_id("info_hash", info_hash)?),
        Command::Peers { info_hash } => Task::Peers(parse_id("info_hash", info_hash)?),
        Command::Ping { addr } => Task::Ping(addr.clone()),
        Command::FindNode { id } => Task::FindNode(parse_id("id", id)?),
        Command::Keygen { out } => return keygen(cli.json, out),
        Command::Sign { .. } | Command::Config { .. } | Command::PeerId { .. } => {
            return Err(Fail::usage("not a network command"))
        }
    };

    let (seeds, ping_addr) = match &op {
        Task::Ping(addr) => {
            let resolved = resolve(std::slice::from_ref(addr)).await;
            let Some(a) = resolved.first().copied() else {
                return Err(Fail::usage(format!(
                    "cannot resolve {addr:?} (expected HOST:PORT)"
                )));
            };
            (vec![a], Some(a))
        }
        _ if cli.no_bootstrap => (Vec::new(), None),
        _ => {
            let names = cli.bootstrap_names();
            let seeds = resolve(&names).await;
            if seeds.is_empty() {
                return Err(Fail::other(format!(
                    "cannot resolve any bootstrap node of {names:?}"
                )));
            }
            (seeds, None)
        }
    };

    let b = builder(cli).read_only(true).republish(None);
    let mut listen = cli.listen.clone();
    if listen.is_empty() {
        // A free port in each family we need to reach.
        if seeds.iter().any(|a| a.is_ipv4()) || seeds.is_empty() {
            listen.push(([0, 0, 0, 0], 0).into());
        }
        if seeds.iter().any(|a| a.is_ipv6()) {
            listen.push((std::net::Ipv6Addr::UNSPECIFIED, 0).into());
        }
    }
    // A one-shot client keeps nothing: a fresh key (a fresh id) and a memory store.
    let net = Net::new(cli, None);
    let store = NodeStore::Mem(dht_store_mem::MemStore::new());
    let dht = spawn_node(b, &net, &listen, &mut Some(store))
        .map_err(|e| Fail::other(format!("cannot bind: {e}")))?;
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, dht.local_addrs())?;
    }
    let result = run_op(cli, &dht, op, &seeds, ping_addr).await;
    let _ = dht.shutdown().await;
    result
}

async fn run_op(
    cli: &Cli,
    dht: &Dht,
    task: Task,
    seeds: &[SocketAddr],
    ping_addr: Option<SocketAddr>,
) -> Result<(), Fail> {
    if let (Task::Ping(_), Some(addr)) = (&task, ping_addr) {
        let a = dht
            .ping(addr)
            .await
            .map_err(|e| Fail::other(format!("{addr} did not answer: {e}")))?;
        output::ping(cli.json, &a);
        return Ok(());
    }
    if !seeds.is_empty() {
        dht.bootstrap(seeds).await.map_err(|e| match e {
            Error::NoResponse => Fail::other(format!(
                "no bootstrap node answered ({} tried)",
                seeds.len()
            )),
            e => e.into(),
        })?;
    }
    match task {
        Task::PutImmutable(value) => {
            let a = dht.put_immutable(value).await.map_err(put_failure)?;
            output::stored(cli.json, &StoredJson::of(&a.value.target, &a));
        }
        Task::PutMutable {
            key,
            value,
            salt,
            seq,
            cas,
        } => {
            let public = key.verifying_key().to_bytes();
            let seq = match seq {
                Some(s) => s,
                None => {
                    let found = dht.get_mutable(public, &salt, None).await?;
                    match found.value {
                        Some(item) => item.seq.checked_add(1).ok_or_else(|| {
                            Fail::other("the stored seq is already the largest possible")
                        })?,
                        None => 1,
                    }
                }
            };
            let item = MutableItem::sign(&key, &salt, seq, &value);
            let a = dht.put_mutable(item, cas).await.map_err(put_failure)?;
            let answer = StoredJson {
                seq: Some(seq),
                public_key: Some(to_hex(&public)),
                ..StoredJson::of(&a.value.target, &a)
            };
            output::stored(cli.json, &answer);
        }
        Task::GetImmutable(target) => {
            let a = dht.get_immutable(target).await?;
            let Some(value) = a.value else {
                return Err(not_found(&a.stats, format!("no value found for {target}")));
            };
            output::immutable(cli.json, &target, &value, &a.stats);
        }
        Task::GetMutable(key, salt) => {
            let a = dht.get_mutable(key, &salt, None).await?;
            let target = dht_core::mutable_target(&key, &salt);
            let Some(item) = a.value else {
                return Err(not_found(&a.stats, format!("no value found for {target}")));
            };
            output::mutable(cli.json, &target, &key, &item, &a.stats);
        }
        Task::Announce(info_hash, port, seed) => {
            let a = if seed {
                dht.announce_seed(info_hash, Some(port)).await
            } else {
                dht.announce_peer(info_hash, Some(port)).await
            }
            .map_err(put_failure)?;
            let answer = StoredJson {
                port: Some(port),
                seed: Some(seed),
                ..StoredJson::of(&info_hash, &a)
            };
            output::stored(cli.json, &answer);
        }
        Task::Scrape(info_hash) => {
            let a = dht.scrape(info_hash).await?;
            if a.value.responders == 0 {
                return Err(not_found(
                    &a.stats,
                    format!("no node holds peers of {info_hash}"),
                ));
            }
            output::scrape(cli.json, &info_hash, &a);
        }
        Task::Peers(info_hash) => {
            let a = dht.get_peers(info_hash).await?;
            if a.value.peers.is_empty() {
                return Err(not_found(
                    &a.stats,
                    format!("no peers found for {info_hash}"),
                ));
            }
            output::peers(cli.json, &info_hash, &a);
        }
        Task::FindNode(id) => {
            let a = dht.find_node(id).await?;
            if a.value.is_empty() {
                return Err(Fail::other("no node answered"));
            }
            output::nodes(cli.json, &id, &a);
        }
        Task::Ping(addr) => return Err(Fail::usage(format!("cannot resolve {addr:?}"))),
    }
    Ok(())
}

/// "Not found" only when some node was asked and answered; silence is a failure.
pub(crate) fn not_found(stats: &QueryStats, message: String) -> Fail {
    if stats.responses == 0 {
        Fail::other("no node answered")
    } else {
        Fail::not_found(message)
    }
}

fn put_failure(e: Error) -> Fail {
    match e {
        Error::NoResponse => Fail::other("no node stored it (none answered)"),
        e => Fail::other(format!("no node stored it: {e}")),
    }
}
