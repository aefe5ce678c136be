//! IPNS from the command line and the node: `ipns publish` (create, sign and store a
//! record of `--key`'s name), `ipns resolve` (the path a name points at), and the
//! node's republishing of the names whose keys `--ipns-key` gives it.
//!
//! As Kubo: a record lives 48 h (`--lifetime`), resolvers may cache it 1 h (its TTL),
//! and a node republishes its names every 4 h, so that a record is put again a dozen
//! times before it would expire. Republishing keeps the value and the sequence number
//! (a later end of life ranks the record above its older copies) and re-signs only
//! when the record found would end sooner than a fresh lifetime.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dht_ipfs::{IpnsKeypair, IpnsRecord, PeerId, UnixNanos, IPNS_PREFIX};
use dht_ipfs_routing_http::{peer_id_base36_cid, peer_id_base58};
use dht_net_libp2p::IpfsHandle;
use serde_json::json;

use super::keys::parse_peer_id;
use super::oneshot::{host_fail, print, say, stats};
use super::routing::unix_millis_now;
use crate::cli::Fail;

/// How long a published record stays valid by default: Kubo's 48 h.
pub(crate) const LIFETIME: Duration = Duration::from_secs(48 * 3600);
/// How long resolvers may cache a record: Kubo's default TTL, 1 h.
const TTL: Duration = Duration::from_secs(3600);
/// How often a node republishes its names by default: Kubo's 4 h.
pub(crate) const REPUBLISH_EVERY: Duration = Duration::from_secs(4 * 3600);

/// A name as `ipns resolve` takes it: `/ipns/<name>` or `<name>`, a base58 PeerId or
/// a CIDv1 libp2p-key (`k51…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpnsName(pub(crate) PeerId);

pub(crate) fn parse_ipns_name(s: &str) -> Result<IpnsName, String> {
    let name = s.strip_prefix("/ipns/").unwrap_or(s);
    let id = parse_peer_id(name)?;
    PeerId::from_bytes(&id.to_bytes())
        .map(IpnsName)
        .map_err(|e| format!("{s:?}: {e}"))
}

/// `--lifetime`: a number and a unit, `s`, `m`, `h` or `d` (`48h`, `90m`).
pub(crate) fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let bad = || format!("a lifetime is a number and s, m, h or d (48h, 90m), not {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    match secs {
        Some(secs) if secs > 0 && secs <= 10 * 365 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(bad()),
    }
}

/// The name's signing key: `--key`'s file (64 hex characters, as `keygen` writes).
pub(crate) fn read_ipns_key(path: &Path) -> Result<IpnsKeypair, Fail> {
    let key = crate::cli::oneshot::read_key(path)?;
    Ok(IpnsKeypair::from_secret(key.to_bytes()))
}

/// A path as a record's value: `/ipfs/<cid>`, `/ipns/<name>`, or a bare CID (made
/// `/ipfs/<cid>`).
fn content_path(path: &str) -> String {
    match path.starts_with('/') {
        true => path.to_string(),
        false => format!("/ipfs/{path}"),
    }
}

fn now_nanos() -> UnixNanos {
    unix_millis_now().saturating_mul(1_000_000)
}

/// The best valid record of `key` the network holds.
async fn find(node: &IpfsHandle, key: &[u8]) -> Result<Option<(Vec<u8>, IpnsRecord)>, Fail> {
    let Some(found) = node.get_record(key.to_vec()).await.map_err(host_fail)? else {
        return Ok(None);
    };
    // The engine validated it; verified again for its fields.
    Ok(IpnsRecord::verify(key, &found.value, unix_millis_now())
        .ok()
        .map(|r| (found.value, r)))
}

/// `ipns publish --key FILE PATH [--seq N] [--lifetime D]` on a joined client.
pub(crate) async fn publish(
    client: &IpfsHandle,
    key_file: Option<&PathBuf>,
    path: &str,
    seq: Option<u64>,
    lifetime: Duration,
    json: bool,
    started: Instant,
) -> Result<(), Fail> {
    let key = read_ipns_key(key_file.ok_or_else(|| Fail::usage("ipns publish needs --key FILE"))?)?;
    let record_key = key.record_key();
    let seq = match seq {
        Some(seq) => seq,
        None => match find(client, &record_key).await? {
            Some((_, found)) => found
                .sequence()
                .checked_add(1)
                .ok_or_else(|| Fail::other("the name's sequence number is at its maximum"))?,
            None => 0,
        },
    };
    let value = content_path(path);
    let eol = now_nanos().saturating_add(u64::try_from(lifetime.as_nanos()).unwrap_or(u64::MAX));
    let entry = IpnsRecord::create(&key, value.as_bytes(), seq, eol, TTL)
        .map_err(|e| Fail::usage(format!("cannot create the record: {e}")))?;
    let (acks, sent) = client
        .put_record(record_key, entry)
        .await
        .map_err(host_fail)?;
    if acks == 0 {
        return Err(Fail::other(format!(
            "no server took the record (sent to {sent})"
        )));
    }
    let name = key.name();
    match json {
        true => print(json!({
            "name": peer_id_base36_cid(&name),
            "peer_id": peer_id_base58(&name),
            "value": value,
            "seq": seq,
            "acks": acks,
            "stats": stats(started.elapsed()),
        })),
        false => {
            say(&peer_id_base36_cid(&name));
            say(&format!("seq {seq}"));
        }
    }
    Ok(())
}

/// `ipns resolve NAME`: the path alone on the last line.
pub(crate) async fn resolve(
    client: &IpfsHandle,
    name: &IpnsName,
    json: bool,
    started: Instant,
) -> Result<(), Fail> {
    let key = [IPNS_PREFIX, name.0.as_bytes()].concat();
    let Some((_, record)) = find(client, &key).await? else {
        return Err(Fail::not_found(format!(
            "no valid IPNS record of {}",
            peer_id_base36_cid(&name.0)
        )));
    };
    let value = String::from_utf8_lossy(record.value()).to_string();
    match json {
        true => print(json!({
            "name": peer_id_base36_cid(&name.0),
            "value": value,
            "seq": record.sequence(),
            "stats": stats(started.elapsed()),
        })),
        false => say(&value),
    }
    Ok(())
}

/// The node's names (`--ipns-key`), republished every `every`.
pub(crate) struct Republisher {
    keys: Vec<IpnsKeypair>,
    every: Duration,
    next: Option<tokio::time::Instant>,
}

impl Republisher {
    pub(crate) fn new(keys: Vec<IpnsKeypair>, every: Duration) -> Republisher {
        Republisher {
            keys,
            every,
            next: None,
        }
    }

    /// The republishing period.
    pub(crate) fn every(&self) -> Duration {
        self.every
    }

    /// Republishes every name if its time has come (the first time, at once).
    pub(crate) async fn tick(&mut self, node: &IpfsHandle) {
        let now = tokio::time::Instant::now();
        if self.keys.is_empty() || self.next.is_some_and(|next| now < next) {
            return;
        }
        self.next = Some(now + self.every);
        for key in &self.keys {
            let name = peer_id_base36_cid(&key.name());
            match republish(node, key).await {
                Ok(Some((seq, acks))) => tracing::info!(%name, seq, acks, "IPNS name republished"),
                Ok(None) => {
                    tracing::warn!(%name, "IPNS name not republished: no valid record found")
                }
                Err(e) => tracing::warn!(%name, error = %e.message, "IPNS name not republished"),
            }
        }
    }
}

/// Puts the name's best record again, with a fresh lifetime when it would end
/// sooner: (its sequence number, servers that took it).
async fn republish(node: &IpfsHandle, key: &IpnsKeypair) -> Result<Option<(u64, usize)>, Fail> {
    let record_key = key.record_key();
    let Some((entry, found)) = find(node, &record_key).await? else {
        return Ok(None);
    };
    let eol = now_nanos().saturating_add(LIFETIME.as_nanos() as u64);
    let entry = match found.eol() >= i128::from(eol) {
        true => entry,
        false => IpnsRecord::create(key, found.value(), found.sequence(), eol, TTL)
            .map_err(|e| Fail::other(format!("cannot re-sign: {e}")))?,
    };
    let (acks, _) = node
        .put_record(record_key, entry)
        .await
        .map_err(host_fail)?;
    Ok(Some((found.sequence(), acks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_and_names_parse() {
        assert_eq!(parse_lifetime("48h"), Ok(LIFETIME));
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "h", "10", "0s", "5w", "-1h", "99999999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
        let id = "12D3KooWLXexpG1fUudyrRt5ftRAXEW4WuuAK5YnxHs2oSsL4sxe";
        let a = parse_ipns_name(id).expect("base58");
        let b = parse_ipns_name(&format!("/ipns/{id}")).expect("/ipns/");
        let c = parse_ipns_name(&peer_id_base36_cid(&a.0)).expect("k51");
        assert_eq!((&a, &b), (&c, &c));
        assert!(peer_id_base36_cid(&a.0).starts_with("k51"));
        assert!(parse_ipns_name("/ipns/nope").is_err());
    }
}
