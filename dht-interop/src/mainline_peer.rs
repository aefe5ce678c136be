//! The `mainline` crate as an interop peer: `--nodes N` server nodes on 127.0.0.1,
//! bootstrapped through the loopback seed only (never mainline's default public
//! routers), driven by the line protocol of [`dht_interop`].

// mainline 8 deprecates its blocking API in favour of the async one; a peer that
// answers one line at a time is simplest blocking.
#![allow(deprecated)]

use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

use dht_interop::{hex, Command, PeerArgs};

/// Runs the peer until stdin closes or says `quit`.
pub fn main(args: PeerArgs) {
    let seed = args.bootstrap.map(|b| b.to_string());
    let mut nodes: Vec<mainline::Dht> = Vec::new();
    for _ in 0..args.nodes {
        // The first node bootstraps through the seed, the others through it as well
        // as the seed, so the process's nodes know each other.
        let mut boot: Vec<String> = seed.iter().cloned().collect();
        if let Some(first) = nodes.first() {
            boot.push(first.info().local_addr().to_string());
        }
        let mut b = mainline::Dht::builder();
        b.server_mode()
            .bind_address(Ipv4Addr::LOCALHOST)
            .request_timeout(Duration::from_millis(500));
        if boot.is_empty() {
            b.no_bootstrap();
        } else {
            b.bootstrap(&boot);
        }
        match b.build() {
            Ok(node) => nodes.push(node),
            Err(e) => {
                eprintln!("mainline node: {e}");
                std::process::exit(1);
            }
        }
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.info().local_addr().to_string())
        .collect();
    println!("ready {}", addrs.join(" "));
    let dht = nodes[0].clone();

    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let reply = match Command::parse(&line) {
            Ok(Command::Quit) => break,
            Ok(cmd) => run(&dht, cmd),
            Err(e) => format!("err {e}"),
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}

fn id(bytes: [u8; 20]) -> mainline::Id {
    // Any 20 bytes are a valid id.
    mainline::Id::from_bytes(bytes).expect("20 bytes")
}

fn run(dht: &mainline::Dht, cmd: Command) -> String {
    match cmd {
        Command::PutImmutable(v) => match dht.put_immutable(&v) {
            Ok(target) => format!("ok {}", hex(target.as_bytes())),
            Err(e) => format!("err {e}"),
        },
        Command::GetImmutable(t) => match dht.get_immutable(id(t)) {
            Some(v) => format!("ok {}", hex(&v)),
            None => "none".to_string(),
        },
        Command::PutMutable {
            seed,
            salt,
            seq,
            value,
        } => {
            let key = mainline::SigningKey::from_bytes(&seed);
            let salt = (!salt.is_empty()).then_some(&salt[..]);
            let item = mainline::MutableItem::new(key, &value, seq, salt);
            match dht.put_mutable(item, None) {
                Ok(_) => format!("ok {seq}"),
                Err(e) => format!("err {e}"),
            }
        }
        Command::GetMutable { key, salt } => {
            let salt = (!salt.is_empty()).then_some(&salt[..]);
            match dht.get_mutable_most_recent(&key, salt) {
                Some(item) => format!("ok {} {}", item.seq(), hex(item.value())),
                None => "none".to_string(),
            }
        }
        Command::Announce(ih, port) => match dht.announce_peer(id(ih), Some(port)) {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("err {e}"),
        },
        Command::GetPeers(ih) => {
            let mut ports: Vec<u16> = dht.get_peers(id(ih)).flatten().map(|p| p.port()).collect();
            ports.sort_unstable();
            ports.dedup();
            if ports.is_empty() {
                "none".to_string()
            } else {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!("ok {}", ports.join(","))
            }
        }
        Command::Quit => String::new(),
    }
}
