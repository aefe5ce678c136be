//! `dht-interop ipfs`: the IPFS matrix. Our IPFS nodes, rust-libp2p's and js-libp2p's
//! in one loopback network (TCP + noise + yamux on 127.0.0.1, everyone joined through
//! our first node), every implementation in every role against every other:
//!
//! - `closest`: each implementation looks up the k = 20 closest peers of a few keys;
//!   row A, column B passes when, for every key, the peers of B that A's lookup
//!   returned are exactly B's peers among the true 20 closest of all the network's
//!   peers (the asking node excluded: no node returns itself). A lookup that differs
//!   is run once more and the second one counts (both are logged on stderr): a peer
//!   that answers after the asker's timeout drops out of one lookup, and on a loaded
//!   machine the js process, whose ten nodes share one thread, is now and then late.
//! - `/pk` records: each implementation puts the `/pk` record of an identity nobody
//!   ever connected with (so that no peer can answer from what it learned on a
//!   connection: js-libp2p answers `/pk/<id>` from its peer store); `stored_pk` says
//!   which implementations' nodes stored it (each peer reads its own stores; on the
//!   diagonal the putting node itself does not count, since it keeps what it put), and
//!   `get_pk` that every other implementation's lookup found it.
//! - providers: each implementation provides a sha2-256 multihash; `stored_provider`
//!   and `find_providers` the same way.
//!
//! Exit status: 0 every cell passed; 1 a cell failed, a peer of ours or rust-libp2p's
//! did not start, or js-libp2p is missing although node and npm are present; 2
//! js-libp2p is missing and node or npm is not installed (`--install` installs them
//! through apt, then the packages with `npm ci`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use dht_interop::hex;
use dht_interop::ipfs::{is_loopback_multiaddr, IpfsCommand};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::peers::{apt_install, peers_dir, run_loud, succeeds, Peer};
use crate::report::{self, Cell, Outcome};

/// The whole run, start to end: well within the 5 minutes CI allows it.
const RUN_BUDGET: Duration = Duration::from_secs(240);
/// Kademlia's k: lookups return the 20 closest.
const K: usize = 20;
/// Keys of the `closest` checks.
const CLOSEST_KEYS: usize = 4;

/// An IPFS Kademlia implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpfsImpl {
    /// `dht-net-libp2p`'s `IpfsHost` (this workspace).
    Ours,
    /// rust-libp2p 0.57's `kad`.
    RustLibp2p,
    /// js-libp2p with `@libp2p/kad-dht`, from npm.
    JsLibp2p,
}

const ALL: [IpfsImpl; 3] = [IpfsImpl::Ours, IpfsImpl::RustLibp2p, IpfsImpl::JsLibp2p];

impl IpfsImpl {
    fn name(self) -> &'static str {
        match self {
            IpfsImpl::Ours => "ours",
            IpfsImpl::RustLibp2p => "rust-libp2p",
            IpfsImpl::JsLibp2p => "js-libp2p",
        }
    }

    /// `Err` says what is missing.
    fn available(self) -> Result<(), String> {
        match self {
            IpfsImpl::Ours | IpfsImpl::RustLibp2p => Ok(()),
            IpfsImpl::JsLibp2p => {
                let modules = peers_dir().join("node_modules");
                if !succeeds("node", &["--version"]) {
                    Err("node is not installed (apt-get install nodejs npm)".to_string())
                } else if !["libp2p", "@libp2p/kad-dht"]
                    .iter()
                    .all(|m| modules.join(m).join("package.json").exists())
                {
                    Err(format!(
                        "libp2p and @libp2p/kad-dht are not installed (npm ci in {})",
                        peers_dir().display()
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Installs what [`IpfsImpl::available`] found missing.
    fn install(self) -> Result<(), String> {
        match self {
            IpfsImpl::Ours | IpfsImpl::RustLibp2p => Ok(()),
            IpfsImpl::JsLibp2p => {
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
            IpfsImpl::Ours | IpfsImpl::RustLibp2p => {
                let exe = std::env::current_exe().unwrap_or_else(|_| "dht-interop".into());
                let mut p = Process::new(exe);
                p.arg(if self == IpfsImpl::Ours {
                    "peer-ours-ipfs"
                } else {
                    "peer-rust-libp2p"
                });
                p
            }
            IpfsImpl::JsLibp2p => {
                let mut p = Process::new("node");
                p.arg(peers_dir().join("js_libp2p_peer.mjs"));
                p
            }
        }
    }
}

/// A started peer and its nodes' PeerIds (the first runs the commands).
struct Running {
    peer: Peer,
    ids: Vec<PeerId>,
}

/// Options of `dht-interop ipfs`.
#[derive(Debug)]
struct Options {
    json: bool,
    install: bool,
    nodes: usize,
    only: Option<Vec<String>>,
}

const USAGE: &str =
    "usage: dht-interop ipfs [--json] [--install] [--nodes N] [--only rust-libp2p,js-libp2p]";

/// Runs the IPFS matrix and exits with its status.
pub fn main(argv: impl Iterator<Item = String>) -> ! {
    let mut o = Options {
        json: false,
        install: false,
        nodes: 10,
        only: None,
    };
    let mut args = argv;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--install" => o.install = true,
            "--nodes" => o.nodes = args.next().and_then(|v| v.parse().ok()).unwrap_or(10),
            "--only" => {
                o.only = args
                    .next()
                    .map(|v| v.split(',').map(String::from).collect())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let impls: Vec<IpfsImpl> = ALL
        .into_iter()
        .filter(|i| {
            *i == IpfsImpl::Ours
                || o.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|n| n == i.name()))
        })
        .collect();
    let mut missing: BTreeMap<&'static str, String> = BTreeMap::new();
    for i in &impls {
        if let Err(why) = i.available() {
            if o.install {
                eprintln!("installing {}: {why}", i.name());
                if let Err(e) = i.install() {
                    eprintln!("could not install {}: {e}", i.name());
                }
            }
            if let Err(why) = i.available() {
                eprintln!("missing: {} ({why})", i.name());
                missing.insert(i.name(), why);
            }
        }
    }
    let names: Vec<String> = impls.iter().map(|i| i.name().to_string()).collect();
    let cells = match run(&impls, o.nodes.max(1), &mut missing) {
        Ok(cells) => cells,
        Err(e) => {
            eprintln!("IPFS interop run failed: {e}");
            std::process::exit(1);
        }
    };
    let failed = report::failed(&cells);
    let missing_names: Vec<String> = missing.keys().map(|n| n.to_string()).collect();
    if o.json {
        println!("{}", report::json_line(&names, &missing_names, &cells));
    } else {
        report::print_matrix_with(&names, &cells, legend);
        println!("\n{} cells, {failed} failed", cells.len());
    }
    let tools = succeeds("node", &["--version"]) && succeeds("npm", &["--version"]);
    if !missing.is_empty() && tools {
        eprintln!("node and npm are installed, yet js-libp2p is missing: the run fails");
    }
    // With node and npm present, js-libp2p can only be missing for a reason to fix.
    let code = if failed > 0 || (!missing.is_empty() && tools) {
        1
    } else if !missing.is_empty() {
        2
    } else {
        0
    };
    std::process::exit(code)
}

fn legend(check: &str) -> &'static str {
    match check {
        "closest" => "rows: who looked up, columns: whose peers among the true 20 closest",
        "stored_pk" | "stored_provider" => "rows: putter, columns: whose nodes stored it",
        _ => "rows: putter, columns: getter",
    }
}

/// Starts the peers (ours first: its first node is the seed), runs every check and
/// returns the cells; a peer that could not start is added to `missing` when it is
/// js-libp2p, and ends the run otherwise. Peers are killed when this returns.
fn run(
    impls: &[IpfsImpl],
    nodes: usize,
    missing: &mut BTreeMap<&'static str, String>,
) -> Result<Vec<Cell>, String> {
    let deadline = Instant::now() + RUN_BUDGET;
    let mut running: Vec<Running> = Vec::new();
    let mut seed: Option<String> = None;
    for i in impls {
        if missing.contains_key(i.name()) {
            continue;
        }
        let started =
            Peer::spawn(i.name(), i.command(), nodes, seed.clone(), deadline).and_then(|peer| {
                let ids = peer
                    .ready
                    .iter()
                    .map(|a| peer_id_of(a).ok_or_else(|| format!("{}: bad address {a}", i.name())))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Running { peer, ids })
            });
        match started {
            Ok(r) => {
                eprintln!(
                    "{}: {} nodes, first {}",
                    i.name(),
                    r.ids.len(),
                    r.peer.ready[0]
                );
                seed = seed.or_else(|| r.peer.ready.first().cloned());
                running.push(r);
            }
            Err(e) if *i == IpfsImpl::JsLibp2p => {
                eprintln!("missing: {e}");
                missing.insert(i.name(), e);
            }
            Err(e) => return Err(e),
        }
    }
    // Early joiners learn of later ones by looking themselves up again.
    for r in &mut running {
        let t = Instant::now();
        let reply = r.peer.request_line(&IpfsCommand::Refresh.to_line());
        let secs = t.elapsed().as_secs_f64();
        eprintln!("{}: refresh: {reply} in {secs:.1} s", r.peer.name);
    }
    std::thread::sleep(Duration::from_secs(2));

    let mut cells = Vec::new();
    closest_cells(&mut running, &mut cells);
    for pi in 0..running.len() {
        record_cells(&mut running, pi, &mut cells);
        provider_cells(&mut running, pi, &mut cells);
    }
    // A missing implementation's row and column: never a pass.
    for (name, why) in missing.iter() {
        for check in [
            "closest",
            "put_pk",
            "stored_pk",
            "get_pk",
            "provide",
            "stored_provider",
            "find_providers",
        ] {
            for other in impls {
                let mut pairs = vec![(*name, other.name())];
                if other.name() != *name {
                    pairs.push((other.name(), *name));
                }
                for (putter, getter) in pairs {
                    let why = why
                        .strip_prefix(&format!("{name}: "))
                        .unwrap_or(why.as_str());
                    let why = Outcome::Missing(format!("{name}: {why}"));
                    cells.push(cell(putter, getter, check, why));
                }
            }
        }
    }
    Ok(cells)
}

fn cell(putter: &str, getter: &str, check: &str, outcome: Outcome) -> Cell {
    Cell {
        putter: putter.to_string(),
        getter: getter.to_string(),
        check: check.to_string(),
        outcome,
    }
}

fn pass_if(ok: bool, why: impl FnOnce() -> String) -> Outcome {
    if ok {
        Outcome::Pass
    } else {
        Outcome::Fail(why())
    }
}

/// The PeerId at the end of `/ip4/127.0.0.1/tcp/PORT/p2p/ID`.
fn peer_id_of(addr: &str) -> Option<PeerId> {
    if !is_loopback_multiaddr(addr) {
        return None;
    }
    match addr.parse::<Multiaddr>().ok()?.pop()? {
        Protocol::P2p(id) => Some(id),
        _ => None,
    }
}

/// PeerIds of an `ok ID,ID,...` reply (`none`: no id).
fn ids_in(reply: &str) -> Option<BTreeSet<PeerId>> {
    if reply == "none" {
        return Some(BTreeSet::new());
    }
    let list = reply.strip_prefix("ok ")?;
    Some(list.split(',').filter_map(|s| s.parse().ok()).collect())
}

/// The `K` of `ids` closest to SHA-256(`key`), by the XOR of SHA-256(PeerId).
fn truth(ids: &[PeerId], key: &[u8]) -> BTreeSet<PeerId> {
    let target = dht_ipfs::key_of(key);
    let mut by_distance: Vec<(Vec<u8>, PeerId)> = ids
        .iter()
        .map(|p| {
            let k = dht_ipfs::key_of(&p.to_bytes());
            let d =
                k.0.iter()
                    .zip(target.0.iter())
                    .map(|(a, b)| a ^ b)
                    .collect();
            (d, *p)
        })
        .collect();
    by_distance.sort();
    by_distance.into_iter().take(K).map(|(_, p)| p).collect()
}

/// Per column (implementation), what a `closest` reply got wrong against `want`;
/// empty when the reply is exactly the truth.
fn closest_errors(
    reply: &str,
    want: &BTreeSet<PeerId>,
    owners: &[(String, BTreeSet<PeerId>)],
) -> BTreeMap<String, String> {
    let Some(got) = ids_in(reply) else {
        return owners
            .iter()
            .map(|(name, _)| (name.clone(), reply.to_string()))
            .collect();
    };
    let mut errors = BTreeMap::new();
    for (name, theirs) in owners {
        let got: BTreeSet<_> = got.intersection(theirs).collect();
        let want: BTreeSet<_> = want.intersection(theirs).collect();
        if got != want {
            let lost: Vec<String> = want.difference(&got).map(|p| short(p)).collect();
            let extra: Vec<String> = got.difference(&want).map(|p| short(p)).collect();
            let why = format!(
                "{} of its {} among the closest missing [{}], {} not among them [{}]",
                lost.len(),
                want.len(),
                lost.join(" "),
                extra.len(),
                extra.join(" ")
            );
            errors.insert(name.clone(), why);
        }
    }
    errors
}

/// The last characters of a PeerId, enough to tell peers apart in a message.
fn short(id: &PeerId) -> String {
    let s = id.to_base58();
    s[s.len().saturating_sub(6)..].to_string()
}

fn closest_cells(running: &mut [Running], cells: &mut Vec<Cell>) {
    let all: Vec<PeerId> = running.iter().flat_map(|r| r.ids.clone()).collect();
    let owners: Vec<(String, BTreeSet<PeerId>)> = running
        .iter()
        .map(|r| (r.peer.name.clone(), r.ids.iter().copied().collect()))
        .collect();
    for r in running.iter_mut() {
        let asker = r.ids[0];
        let others: Vec<PeerId> = all.iter().copied().filter(|p| *p != asker).collect();
        // Per column: the first key whose result differs from the truth there.
        let mut wrong: BTreeMap<String, String> = BTreeMap::new();
        let mut exact = 0;
        let mut retried = 0;
        for k in 0..CLOSEST_KEYS {
            let key = format!("ipfs interop key {k}").into_bytes();
            let want = truth(&others, &key);
            let ask = IpfsCommand::Closest(key).to_line();
            let mut errors = closest_errors(&r.peer.request_line(&ask), &want, &owners);
            if !errors.is_empty() {
                // A peer that answered too late for the asker's timeout drops out of
                // one lookup: on a loaded machine a process hosting ten nodes in one
                // thread (js) is that peer now and then. The second lookup decides;
                // an implementation that cannot read another fails both.
                eprintln!("{}: key {k} looked up again: {errors:?}", r.peer.name);
                retried += 1;
                errors = closest_errors(&r.peer.request_line(&ask), &want, &owners);
            }
            exact += usize::from(errors.is_empty());
            for (name, why) in errors {
                wrong
                    .entry(name)
                    .or_insert_with(|| format!("key {k}: {why}"));
            }
        }
        eprintln!(
            "{}: {exact}/{CLOSEST_KEYS} lookups exactly the true {K} closest \
             ({retried} of them looked up a second time after a first answer differed)",
            r.peer.name
        );
        for (name, _) in &owners {
            let outcome = match wrong.remove(name) {
                None => Outcome::Pass,
                Some(why) => Outcome::Fail(why),
            };
            cells.push(cell(&r.peer.name, name, "closest", outcome));
        }
    }
}

/// The `/pk` record of an identity derived from the putter's name, which nobody has
/// ever connected with: (key, value).
fn pk_record(putter: &str) -> (Vec<u8>, Vec<u8>) {
    let seed = dht_ipfs::key_of(format!("/pk identity of {putter}").as_bytes()).0;
    // 32 bytes are always a valid ed25519 secret.
    let key = Keypair::ed25519_from_bytes(seed).expect("32 bytes");
    let id = key.public().to_peer_id();
    let record_key = [b"/pk/".as_slice(), &id.to_bytes()].concat();
    (record_key, key.public().encode_protobuf())
}

/// A sha2-256 multihash of something the putter provides.
fn provider_key(putter: &str) -> Vec<u8> {
    let digest = dht_ipfs::key_of(format!("content provided by {putter}").as_bytes()).0;
    [&[0x12u8, 0x20][..], &digest].concat()
}

/// Whether a `holds_*` reply names a node; `own`: the putter's own process asked,
/// whose first node (the putter) keeps what it wrote without any network, so it does
/// not count.
fn held(reply: &str, own: bool) -> bool {
    reply.strip_prefix("ok ").is_some_and(|list| {
        list.split(',')
            .filter_map(|i| i.parse::<usize>().ok())
            .any(|i| !own || i > 0)
    })
}

fn record_cells(running: &mut [Running], pi: usize, cells: &mut Vec<Cell>) {
    let putter = running[pi].peer.name.clone();
    let (key, value) = pk_record(&putter);
    let put = IpfsCommand::PutRecord {
        key: key.clone(),
        value: value.clone(),
    };
    let reply = running[pi].peer.request_line(&put.to_line());
    eprintln!("{putter}: put_record /pk: {reply}");
    cells.push(cell(
        &putter,
        &putter,
        "put_pk",
        pass_if(reply.starts_with("ok"), || reply.clone()),
    ));
    // Let the last PUT_VALUEs land (a quorum of one may end a put before the rest).
    std::thread::sleep(Duration::from_millis(500));
    for (si, r) in running.iter_mut().enumerate() {
        let reply = r
            .peer
            .request_line(&IpfsCommand::HoldsRecord(key.clone()).to_line());
        let outcome = pass_if(held(&reply, si == pi), || {
            format!("none of its nodes holds it ({reply})")
        });
        cells.push(cell(&putter, &r.peer.name, "stored_pk", outcome));
    }
    let want = format!("ok {}", hex(&value));
    for (gi, r) in running.iter_mut().enumerate() {
        if gi == pi {
            continue;
        }
        let reply = r
            .peer
            .request_line(&IpfsCommand::GetRecord(key.clone()).to_line());
        let outcome = pass_if(reply == want, || format!("got {reply:?}"));
        cells.push(cell(&putter, &r.peer.name, "get_pk", outcome));
    }
}

fn provider_cells(running: &mut [Running], pi: usize, cells: &mut Vec<Cell>) {
    let putter = running[pi].peer.name.clone();
    let provider = running[pi].ids[0];
    let key = provider_key(&putter);
    let reply = running[pi]
        .peer
        .request_line(&IpfsCommand::Provide(key.clone()).to_line());
    eprintln!("{putter}: provide: {reply}");
    cells.push(cell(
        &putter,
        &putter,
        "provide",
        pass_if(reply.starts_with("ok"), || reply.clone()),
    ));
    std::thread::sleep(Duration::from_millis(500));
    for (si, r) in running.iter_mut().enumerate() {
        let ask = IpfsCommand::HoldsProvider(key.clone(), provider.to_base58());
        let reply = r.peer.request_line(&ask.to_line());
        let outcome = pass_if(held(&reply, si == pi), || {
            format!("none of its nodes holds it ({reply})")
        });
        cells.push(cell(&putter, &r.peer.name, "stored_provider", outcome));
    }
    for (gi, r) in running.iter_mut().enumerate() {
        if gi == pi {
            continue;
        }
        let reply = r
            .peer
            .request_line(&IpfsCommand::Providers(key.clone()).to_line());
        let found = ids_in(&reply).is_some_and(|ids| ids.contains(&provider));
        let outcome = pass_if(found, || format!("got {reply:?}"));
        cells.push(cell(&putter, &r.peer.name, "find_providers", outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_id() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    #[test]
    fn the_putting_node_never_counts_as_a_storer_of_its_own_write() {
        assert!(held("ok 0,3", false));
        assert!(held("ok 0,3", true));
        assert!(held("ok 0", false));
        assert!(!held("ok 0", true));
        assert!(!held("none", false));
        assert!(!held("err timeout", false));
    }

    #[test]
    fn truth_is_the_k_closest_by_xor_of_sha256() {
        let ids: Vec<PeerId> = (0..30).map(|_| random_id()).collect();
        let key = b"some key";
        let want = truth(&ids, key);
        assert_eq!(want.len(), K);
        let target = dht_ipfs::key_of(key).0;
        let distance = |p: &PeerId| -> Vec<u8> {
            let k = dht_ipfs::key_of(&p.to_bytes()).0;
            k.iter().zip(target.iter()).map(|(a, b)| a ^ b).collect()
        };
        let farthest_in = want.iter().map(distance).max();
        let closest_out = ids.iter().filter(|p| !want.contains(p)).map(distance).min();
        assert!(farthest_in < closest_out);
    }

    #[test]
    fn replies_and_addresses_parse() {
        let id = random_id();
        assert_eq!(
            peer_id_of(&format!("/ip4/127.0.0.1/tcp/1/p2p/{id}")),
            Some(id)
        );
        assert_eq!(peer_id_of(&format!("/ip4/10.0.0.1/tcp/1/p2p/{id}")), None);
        assert_eq!(peer_id_of("/ip4/127.0.0.1/tcp/1"), None);
        assert_eq!(ids_in(&format!("ok {id}")), Some(BTreeSet::from([id])));
        assert_eq!(ids_in("none"), Some(BTreeSet::new()));
        assert_eq!(ids_in("err x"), None);
    }
}
