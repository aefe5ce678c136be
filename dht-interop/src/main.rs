//! `dht-interop`: the runner behind `cargo xtask interop` (see the crate doc in
//! `lib.rs` for the peers and their line protocol).
//!
//! ```text
//! dht-interop [--json] [--install] [--nodes N] [--only IMPL,IMPL]
//! dht-interop peer-ours|peer-mainline [--nodes N] [--bootstrap 127.0.0.1:PORT]
//! dht-interop ipfs [--json] [--install] [--nodes N] [--only IMPL,IMPL]
//! dht-interop peer-ours-ipfs|peer-rust-libp2p [--nodes N] [--bootstrap MULTIADDR]
//! ```
//!
//! Exit codes: 0 every cell passed, 1 a cell failed (or a peer did not start), 2 an
//! implementation is missing (named on stderr; `--install` installs it). The IPFS
//! matrix (`ipfs`, in `ipfs_run.rs`) exits 1 too when js-libp2p is missing although
//! node and npm are present.

mod ipfs_run;
mod mainline_peer;
mod ours_ipfs_peer;
mod ours_peer;
mod peers;
mod probe;
mod report;
mod rust_libp2p_peer;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_interop::ipfs::IpfsPeerArgs;
use dht_interop::{hex, Command, PeerArgs};
use peers::{Impl, Peer};
use report::{Cell, Outcome};

/// The whole scenario must end well within the 5 minutes the issue allows.
const RUN_BUDGET: Duration = Duration::from_secs(200);

fn main() {
    let mut argv = std::env::args().skip(1);
    let first = argv.next();
    match first.as_deref() {
        Some("peer-ours") => return ours_peer::main(PeerArgs::parse(argv)),
        Some("peer-mainline") => return mainline_peer::main(PeerArgs::parse(argv)),
        Some("peer-ours-ipfs") => return ours_ipfs_peer::main(IpfsPeerArgs::parse(argv)),
        Some("peer-rust-libp2p") => return rust_libp2p_peer::main(IpfsPeerArgs::parse(argv)),
        Some("ipfs") => ipfs_run::main(argv),
        _ => {}
    }
    let mut json = false;
    let mut install = false;
    let mut nodes = 2usize;
    let mut only: Option<Vec<String>> = None;
    let mut args = first.into_iter().chain(argv);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--install" => install = true,
            "--nodes" => nodes = args.next().and_then(|v| v.parse().ok()).unwrap_or(2),
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').map(String::from).collect())
            }
            "-h" | "--help" => {
                println!("usage: dht-interop [--json] [--install] [--nodes N] [--only ours,mainline,libtorrent,bittorrent-dht]");
                println!("       dht-interop ipfs --help (the IPFS matrix: ours, rust-libp2p, js-libp2p)");
                return;
            }
            other => {
                eprintln!("unknown argument {other} (try --help)");
                std::process::exit(2);
            }
        }
    }
    let mut impls = Impl::all();
    if let Some(only) = &only {
        impls.retain(|i| i.name() == "ours" || only.iter().any(|o| o == i.name()));
    }
    let mut missing: Vec<String> = Vec::new();
    for i in &impls {
        if let Err(why) = i.available() {
            if install {
                eprintln!("installing {}: {why}", i.name());
                if let Err(e) = i.install() {
                    eprintln!("could not install {}: {e}", i.name());
                }
            }
            if let Err(why) = i.available() {
                missing.push(i.name().to_string());
                eprintln!("missing: {} ({why})", i.name());
            }
        }
    }
    if !missing.is_empty() {
        eprintln!("run with --install to install what is missing");
        if json {
            println!("{}", report::json_line(&[], &missing, &[]));
        }
        std::process::exit(2);
    }
    let names: Vec<String> = impls.iter().map(|i| i.name().to_string()).collect();
    let cells = match run(&impls, nodes.max(1)) {
        Ok(cells) => cells,
        Err(e) => {
            eprintln!("interop run failed: {e}");
            std::process::exit(1);
        }
    };
    if json {
        println!("{}", report::json_line(&names, &[], &cells));
    } else {
        report::print_matrix(&names, &cells);
    }
    let failed = report::failed(&cells);
    if !json {
        println!("\n{} cells, {failed} failed", cells.len());
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Starts every peer (ours first: its first node is the seed), runs the scenario and
/// returns the cells. The peers are killed when this returns, whatever happened.
fn run(impls: &[Impl], nodes: usize) -> Result<Vec<Cell>, String> {
    let deadline = Instant::now() + RUN_BUDGET;
    let mut peers: Vec<Peer> = Vec::new();
    let mut seed: Option<SocketAddr> = None;
    for i in impls {
        let peer = Peer::start(i, nodes, seed, deadline)?;
        eprintln!("{} nodes: {:?}", i.name(), peer.addrs);
        seed = seed.or(peer.addrs.first().copied());
        peers.push(peer);
    }
    // Let every implementation's joins and table refreshes settle.
    std::thread::sleep(Duration::from_secs(3));

    let mut cells = Vec::new();
    let names: Vec<String> = peers.iter().map(|p| p.name.clone()).collect();
    let everyone: Vec<(String, Vec<SocketAddr>)> = peers
        .iter()
        .map(|p| (p.name.clone(), p.addrs.clone()))
        .collect();
    for (pi, putter) in names.iter().enumerate() {
        let tag = format!("interop item put by {putter}");
        let seed_key = key_seed(putter);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed_key)
            .verifying_key()
            .to_bytes();
        let salt = b"interop".to_vec();
        let info_hash = info_hash_of(putter);
        let port = 40000 + pi as u16;

        // The writes.
        let imm = peers[pi].request(&Command::PutImmutable(tag.as_bytes().to_vec()));
        let target = dht_core::immutable_target(&dht_node::bencode_bytes(tag.as_bytes()));
        cells.push(write_cell(putter, "put_immutable", &imm));
        let mvalue = format!("mutable {tag}").into_bytes();
        let mutable = peers[pi].request(&Command::PutMutable {
            seed: seed_key,
            salt: salt.clone(),
            seq: 1,
            value: mvalue.clone(),
        });
        cells.push(write_cell(putter, "put_mutable", &mutable));
        let ann = peers[pi].request(&Command::Announce(info_hash, port));
        cells.push(write_cell(putter, "announce", &ann));
        // libtorrent can only announce its listen port, and says which.
        let port: u16 = ann
            .strip_prefix("ok ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(port);
        let mtarget = dht_core::mutable_target(&public, &salt);

        // Who stored what, asked of every node directly.
        for (storer, addrs) in &everyone {
            let holds = probe::holdings(addrs, target.0, mtarget.0, info_hash, port);
            for (check, held) in [
                ("stored_immutable", holds.immutable),
                ("stored_mutable", holds.mutable),
                ("stored_peer", holds.peer),
                ("scrape", holds.scrape),
            ] {
                let outcome = if held > 0 {
                    Outcome::Pass
                } else {
                    expected_quirk(putter, storer)
                        .or_else(|| (check == "scrape").then(|| no_bep33(storer)).flatten())
                        .map_or_else(
                            || Outcome::Fail(format!("none of {} nodes holds it", addrs.len())),
                            Outcome::Quirk,
                        )
                };
                cells.push(Cell {
                    putter: putter.clone(),
                    getter: storer.clone(),
                    check: check.to_string(),
                    outcome,
                });
            }
        }

        // Every other implementation looks it up.
        for (gi, getter) in names.iter().enumerate() {
            if gi == pi {
                continue;
            }
            let got = peers[gi].request(&Command::GetImmutable(target.0));
            let want = format!("ok {}", hex(tag.as_bytes()));
            cells.push(get_cell(putter, getter, "get_immutable", &got, |r| {
                r == want
            }));
            let got = peers[gi].request(&Command::GetMutable {
                key: public,
                salt: salt.clone(),
            });
            let want = hex(&mvalue);
            cells.push(get_cell(putter, getter, "get_mutable", &got, |r| {
                r.starts_with("ok ") && r.ends_with(&format!(" {want}"))
            }));
            let got = peers[gi].request(&Command::GetPeers(info_hash));
            cells.push(get_cell(putter, getter, "get_peers", &got, |r| {
                r.strip_prefix("ok ")
                    .is_some_and(|ports| ports.split(',').any(|p| p == port.to_string()))
            }));
        }
    }
    drop(peers);
    Ok(cells)
}

/// Implementations that do not serve BEP 33 scrapes: their scrape cell is a quirk.
fn no_bep33(storer: &str) -> Option<String> {
    ["mainline", "bittorrent-dht"]
        .contains(&storer)
        .then(|| format!("{storer} does not implement BEP 33 (no BFsd / BFpe)"))
}

/// A cell that failed because of a documented quirk of another implementation.
fn expected_quirk(putter: &str, storer: &str) -> Option<String> {
    let two_byte_tids = ["libtorrent", "bittorrent-dht"];
    (storer == "mainline" && two_byte_tids.contains(&putter)).then(|| {
        format!("mainline drops queries whose transaction id is not 4 bytes; {putter} sends 2")
    })
}

fn write_cell(putter: &str, check: &str, reply: &str) -> Cell {
    Cell {
        putter: putter.to_string(),
        getter: putter.to_string(),
        check: check.to_string(),
        outcome: if reply.starts_with("ok") {
            Outcome::Pass
        } else {
            Outcome::Fail(reply.to_string())
        },
    }
}

fn get_cell(
    putter: &str,
    getter: &str,
    check: &str,
    reply: &str,
    ok: impl Fn(&str) -> bool,
) -> Cell {
    Cell {
        putter: putter.to_string(),
        getter: getter.to_string(),
        check: check.to_string(),
        outcome: if ok(reply) {
            Outcome::Pass
        } else {
            Outcome::Fail(format!("got {reply:?}"))
        },
    }
}

/// A fixed ed25519 seed per putter, so runs are comparable.
fn key_seed(name: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    seed[31] ^= 0x5a;
    seed
}

fn info_hash_of(name: &str) -> [u8; 20] {
    dht_core::immutable_target(format!("info_hash of {name}").as_bytes()).0
}
