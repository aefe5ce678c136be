//! Our implementation (`dht_node::Dht`) as an interop peer: `--nodes N` nodes on
//! 127.0.0.1, driven by the line protocol of [`dht_interop`]. Started without
//! `--bootstrap`, its first node is the seed of the whole interop network.

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::Id;
use dht_core::MutableItem;
use dht_interop::{hex, Command, PeerArgs};
use dht_node::{bencode_bytes, bencoded_string, Dht};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Runs the peer until stdin closes or says `quit`.
pub fn main(args: PeerArgs) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(args));
}

async fn serve(args: PeerArgs) {
    let mut nodes: Vec<Dht> = Vec::new();
    for _ in 0..args.nodes {
        let node = Dht::builder()
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .request_timeout(Duration::from_millis(500))
            .republish(None)
            .spawn();
        match node {
            Ok(node) => nodes.push(node),
            Err(e) => {
                eprintln!("our node: {e}");
                std::process::exit(1);
            }
        }
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addrs()[0]).collect();
    // Every node but the seed joins through the seed (and our first node).
    let mut boot: Vec<SocketAddr> = args.bootstrap.into_iter().collect();
    boot.push(addrs[0]);
    for (i, node) in nodes.iter().enumerate() {
        let seeds: Vec<SocketAddr> = boot.iter().copied().filter(|a| *a != addrs[i]).collect();
        if !seeds.is_empty() {
            // A seed that answers nobody yet is fine: the node waits for queriers.
            let _ = node.bootstrap(&seeds).await;
        }
    }
    let line: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    println!("ready {}", line.join(" "));

    let dht = nodes[0].clone();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match Command::parse(&line) {
            Ok(Command::Quit) => break,
            Ok(cmd) => run(&dht, &boot, cmd).await,
            Err(e) => format!("err {e}"),
        };
        let written = out.write_all(format!("{reply}\n").as_bytes()).await;
        if written.is_err() || out.flush().await.is_err() {
            break;
        }
    }
    for node in nodes {
        let _ = node.shutdown().await;
    }
}

async fn run(dht: &Dht, boot: &[SocketAddr], cmd: Command) -> String {
    // Refresh the table first: nodes of other implementations joined after we did.
    let _ = dht.bootstrap(boot).await;
    match cmd {
        Command::PutImmutable(v) => match dht.put_immutable(bencode_bytes(&v)).await {
            Ok(put) => format!("ok {}", hex(&put.value.target.0)),
            Err(e) => format!("err {e}"),
        },
        Command::GetImmutable(t) => match dht.get_immutable(Id(t)).await {
            Ok(got) => match got.value.as_deref().and_then(bencoded_string) {
                Some(v) => format!("ok {}", hex(v)),
                None if got.value.is_some() => "err value is not a byte string".to_string(),
                None => "none".to_string(),
            },
            Err(e) => format!("err {e}"),
        },
        Command::PutMutable {
            seed,
            salt,
            seq,
            value,
        } => {
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let item = MutableItem::sign(&key, &salt, seq, &bencode_bytes(&value));
            match dht.put_mutable(item, None).await {
                Ok(_) => format!("ok {seq}"),
                Err(e) => format!("err {e}"),
            }
        }
        Command::GetMutable { key, salt } => match dht.get_mutable(key, &salt, None).await {
            Ok(got) => match got.value {
                Some(item) => match bencoded_string(&item.value) {
                    Some(v) => format!("ok {} {}", item.seq, hex(v)),
                    None => "err value is not a byte string".to_string(),
                },
                None => "none".to_string(),
            },
            Err(e) => format!("err {e}"),
        },
        Command::Announce(ih, port) => match dht.announce_peer(Id(ih), Some(port)).await {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("err {e}"),
        },
        Command::GetPeers(ih) => match dht.get_peers(Id(ih)).await {
            Ok(found) => {
                let mut ports: Vec<u16> = found.value.peers.iter().map(|p| p.port()).collect();
                ports.sort_unstable();
                ports.dedup();
                if ports.is_empty() {
                    "none".to_string()
                } else {
                    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                    format!("ok {}", ports.join(","))
                }
            }
            Err(e) => format!("err {e}"),
        },
        Command::Quit => String::new(),
    }
}
