//! The first request to a new peer, in round trips of a path that has some.
//!
//! On loopback a round trip is some 60 µs while a handshake's cryptography (x25519, an
//! ed25519 signature and verification at each end, certificate parsing) takes about
//! ten times that, so `dht-quic-load` reports the first request as ~10 "round trips":
//! CPU, not the protocol. This example puts a relay that delays every datagram by
//! RTT/2 each way between the load generator and the target, then runs the connect
//! phase through it: the first request in round trips then counts the protocol's
//! flights (plus the same CPU, now a small fraction of a round trip).
//!
//! ```text
//! cargo run --release -p dht-quic-load --example first_request_rtt -- \
//!     --target 127.0.0.1:7100 --rtt-ms 20 --connections 20
//! ```
//! The target must accept that many connections from 127.0.0.1 (dht-node
//! --quic-max-conns-per-ip). Loopback only: the relay binds 127.0.0.1.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dht_quic_load::{run, LoadConfig, LoadError};
use tokio::net::UdpSocket;

fn usage(message: &str) -> ExitCode {
    eprintln!(
        "error: {message}\nusage: first_request_rtt --target HOST:PORT [--rtt-ms MS] [--connections N]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut target, mut rtt_ms, mut connections) = (None, 20u64, 20usize);
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let Some(value) = it.next() else {
            return usage(&format!("{name} needs a value"));
        };
        match name.as_str() {
            "--target" => match value.parse::<SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => target = Some(a),
                _ => return usage("--target: expected a loopback IP:PORT"),
            },
            "--rtt-ms" => match value.parse() {
                Ok(v) if (1..=10_000).contains(&v) => rtt_ms = v,
                _ => return usage("--rtt-ms: expected 1 to 10000"),
            },
            "--connections" => match value.parse() {
                Ok(v) if (1..=1000).contains(&v) => connections = v,
                _ => return usage("--connections: expected 1 to 1000"),
            },
            other => return usage(&format!("unknown option {other}")),
        }
    }
    let Some(target) = target else {
        return usage("--target is required");
    };
    let one_way = Duration::from_micros(rtt_ms * 500);

    // The relay runs on a thread and runtime of its own: `run` builds its own.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            match UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await {
                Ok(s) => {
                    let s = Arc::new(s);
                    let _ = tx.send(s.local_addr());
                    relay(s, target, one_way).await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    let relay_addr = match rx.recv() {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            eprintln!("error: cannot start the relay: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("error: the relay thread ended");
            return ExitCode::FAILURE;
        }
    };

    let config = LoadConfig {
        connections,
        duration: Duration::ZERO,
        // A request through the relay takes at least one RTT.
        timeout: Duration::from_millis(rtt_ms * 4 + 1000),
        progress: false,
        ..LoadConfig::new(relay_addr)
    };
    match run(&config) {
        Ok(report) => {
            let q = |h: &dht_quic_load::Histogram, q| h.quantile(q).unwrap_or(0);
            println!(
                "added RTT {rtt_ms} ms: idle round trip p50 {} µs; first request (handshake \
                 included) p50 {} µs, max {} µs; first request in round trips {:.2} \
                 ({} of {} connections)",
                q(&report.idle_rtt_us, 0.5),
                q(&report.first_request_us, 0.5),
                q(&report.first_request_us, 1.0),
                report.first_request_rtts().unwrap_or(f64::NAN),
                report.established,
                report.connections,
            );
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(m)) => usage(&m),
        Err(LoadError::Failed(m)) => {
            eprintln!("error: {m}");
            ExitCode::FAILURE
        }
    }
}

/// Forwards datagrams between clients and `target`, each delayed by `one_way`. Every
/// client gets an upstream socket of its own, so the target sees one source per
/// client (as without the relay) and its replies find their way back.
async fn relay(front: Arc<UdpSocket>, target: SocketAddr, one_way: Duration) {
    let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let up = match upstream.get(&client) {
            Some(up) => up.clone(),
            None => {
                let Ok(up) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await else {
                    continue;
                };
                if up.connect(target).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                upstream.insert(client, up.clone());
                tokio::spawn(back(up.clone(), front.clone(), client, one_way));
                up
            }
        };
        let packet = buf[..n].to_vec();
        tokio::spawn(async move {
            tokio::time::sleep(one_way).await;
            let _ = up.send(&packet).await;
        });
    }
}

/// Carries the target's datagrams for one client back to it, delayed.
async fn back(up: Arc<UdpSocket>, front: Arc<UdpSocket>, client: SocketAddr, one_way: Duration) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = up.recv(&mut buf).await {
        let packet = buf[..n].to_vec();
        let front = front.clone();
        tokio::spawn(async move {
            tokio::time::sleep(one_way).await;
            let _ = front.send_to(&packet, client).await;
        });
    }
}
