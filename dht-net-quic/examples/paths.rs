//! Measures the two ways a KRPC message can ride QUIC, on loopback: as a datagram
//! or on a unidirectional stream of its own. Prints figures; asserts nothing.
//!
//! `cargo run -p dht-net-quic --example paths [messages]`
//!
//! For each path: the median and 99th-percentile round trip of a 300-byte query
//! answered by a 300-byte reply (one at a time, the way a lookup's requests mostly
//! go), and the time for a burst of messages one way with how many arrived.
//! Also the cost of a first contact (one handshake) next to a round trip on a warm
//! connection.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_net_quic::{generate_key, QuicConfig, QuicTransport};

const WAIT: Duration = Duration::from_secs(5);

fn bind(force_streams: bool) -> Arc<QuicTransport> {
    let cfg = QuicConfig {
        force_streams,
        ..QuicConfig::default()
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    Arc::new(QuicTransport::bind(&[addr], generate_key(), cfg).expect("bind"))
}

/// Echoes every message back to its sender until the task is dropped.
fn spawn_echo(t: Arc<QuicTransport>) {
    tokio::spawn(async move {
        let mut slots: Vec<RecvSlot> = (0..64).map(|_| RecvSlot::new()).collect();
        while let Ok(n) = t.recv_batch(&mut slots).await {
            let batch: Vec<OutDatagram<'_>> = slots[..n]
                .iter()
                .map(|s| OutDatagram {
                    to: s.from,
                    payload: s.payload(),
                })
                .collect();
            let _ = t.send_batch(&batch).await;
        }
    });
}

async fn round_trip(a: &QuicTransport, to: SocketAddr, msg: &[u8]) -> Option<Duration> {
    let mut slots = [RecvSlot::new()];
    let start = Instant::now();
    a.send_batch(&[OutDatagram { to, payload: msg }])
        .await
        .ok()?;
    tokio::time::timeout(WAIT, a.recv_batch(&mut slots))
        .await
        .ok()?
        .ok()?;
    Some(start.elapsed())
}

/// The nearest-rank quantile every tool of the workspace uses (`dht_measure::quantile`).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    dht_measure::quantile(sorted, q).unwrap_or_default()
}

async fn measure(label: &str, force_streams: bool, n: usize) {
    let a = bind(force_streams);
    let b = bind(force_streams);
    let to = b.local_addrs()[0];
    spawn_echo(b.clone());
    let msg = vec![b'x'; 300];

    let first = round_trip(&a, to, &msg).await;
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(d) = round_trip(&a, to, &msg).await {
            rtts.push(d);
        }
    }
    rtts.sort();

    // Burst: n messages one way, then count what came back through the echo.
    let c = bind(force_streams);
    let sink = bind(force_streams);
    let sink_addr = sink.local_addrs()[0];
    // Warm the connection so the burst measures messages, not the handshake.
    let _ = round_trip_via(&c, &sink, sink_addr, &msg).await;
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let batch: Vec<OutDatagram<'_>> = chunk
            .iter()
            .map(|_| OutDatagram {
                to: sink_addr,
                payload: &msg,
            })
            .collect();
        let _ = c.send_batch(&batch).await;
    }
    let mut slots: Vec<RecvSlot> = (0..64).map(|_| RecvSlot::new()).collect();
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_millis(500), sink.recv_batch(&mut slots)).await {
            Ok(Ok(k)) => got += k,
            _ => break,
        }
    }
    let burst = start.elapsed();
    println!(
        "{label:9} first contact {:>8.1?}  rtt p50 {:>8.1?}  p99 {:>8.1?}  ({} of {n})  burst of {n}: {got} arrived in {:.1?}",
        first.unwrap_or_default(),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        rtts.len(),
        burst,
    );
}

/// One message c -> sink, received by sink: opens and warms the connection.
async fn round_trip_via(
    c: &QuicTransport,
    sink: &QuicTransport,
    to: SocketAddr,
    msg: &[u8],
) -> Option<()> {
    c.send_batch(&[OutDatagram { to, payload: msg }])
        .await
        .ok()?;
    let mut slots = [RecvSlot::new()];
    tokio::time::timeout(WAIT, sink.recv_batch(&mut slots))
        .await
        .ok()?
        .ok()?;
    Some(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!("KRPC over QUIC on loopback, 300-byte messages, {n} round trips and a burst of {n}");
    // Twice, alternating, so neither path always runs on a cold machine.
    for _ in 0..2 {
        measure("datagram", false, n).await;
        measure("stream", true, n).await;
    }
}
