//! `load`: a closed-loop FIND_NODE load generator for one server.
//!
//! CONNECTIONS clients (each a swarm of its own identity: TCP + noise + yamux,
//! identify, ping, and kad as a client, so the server never takes them into its
//! table) each keep WINDOW requests in flight on their one connection, every request
//! on a new stream (multistream-select, then one FIND_NODE for a random PeerId's key,
//! then the reply), as rust-libp2p's and go-libp2p-kad-dht's clients open them. After
//! WARMUP seconds it counts the replies that arrive during DURATION seconds and reads
//! the CPU time the server (`--server-pid`) and itself used in that window from
//! /proc, then prints one line:
//!
//! `result answered=N failed=N secs=S server_cpu=S load_cpu=S closer=MEAN empty=N`
//!
//! (`closer`: the mean number of peers a reply names; `empty`: replies naming none).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;

use crate::table;
use crate::wire::{self, KadCodec};

/// The load's settings.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub target: Multiaddr,
    pub connections: usize,
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    pub seed: u64,
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Client {
    kad: request_response::Behaviour<KadCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

#[derive(Debug, Default)]
struct Counts {
    answered: AtomicU64,
    failed: AtomicU64,
    closer: AtomicU64,
    empty: AtomicU64,
}

/// A FIND_NODE for the key of a random PeerId (an identity multihash of 32 bytes).
fn find_node(rng: &mut u64) -> Vec<u8> {
    let mut key = vec![0x00, 0x20];
    for _ in 0..4 {
        // splitmix64: the keys only need to be spread, not secret.
        *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        key.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    wire::message(wire::FIND_NODE, &key, &[])
}

pub async fn run(args: LoadArgs) -> Result<(), String> {
    let (server, dial) = match args.target.clone().pop() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => {
            let mut dial = args.target.clone();
            dial.pop();
            (id, dial)
        }
        _ => {
            return Err(format!(
                "{}: not a multiaddr ending in /p2p/ID",
                args.target
            ))
        }
    };
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let counts = Arc::new(Counts::default());
    let (ready_tx, mut ready) = mpsc::channel(args.connections);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let key = table::keypair("dht-ipfs-bench load", args.seed, c as u64);
        let swarm = table::swarm(
            key,
            |k| Client {
                kad: request_response::Behaviour::new(
                    [(wire::KAD, ProtocolSupport::Outbound)],
                    request_response::Config::default(),
                ),
                identify: table::identify(k),
                ping: ping::Behaviour::default(),
            },
            Duration::from_secs(60),
        )?;
        let client = ClientTask {
            swarm,
            server,
            dial: dial.clone(),
            window: args.window,
            rng: args.seed ^ (c as u64) << 32,
            phase: Arc::clone(&phase),
            counts: Arc::clone(&counts),
        };
        tasks.push(tokio::spawn(client.run(ready_tx.clone())));
    }
    drop(ready_tx);
    for _ in 0..args.connections {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(e),
            None => return Err("a client stopped before it connected".into()),
        }
    }
    tokio::time::sleep(args.warmup).await;
    let server_cpu = |pid: Option<u32>| pid.and_then(dht_measure::proc::cpu_time);
    let (s0, l0) = (
        server_cpu(args.server_pid),
        dht_measure::proc::process_cpu_time(),
    );
    let t0 = Instant::now();
    phase.store(MEASURE, Ordering::SeqCst);
    tokio::time::sleep(args.duration).await;
    phase.store(STOP, Ordering::SeqCst);
    let secs = t0.elapsed().as_secs_f64();
    let (s1, l1) = (
        server_cpu(args.server_pid),
        dht_measure::proc::process_cpu_time(),
    );
    let cpu = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.3}", b.saturating_sub(a).as_secs_f64()),
        _ => "-".to_string(),
    };
    for t in tasks {
        t.abort();
    }
    let answered = counts.answered.load(Ordering::SeqCst);
    let closer = counts.closer.load(Ordering::SeqCst) as f64 / answered.max(1) as f64;
    println!(
        "result answered={answered} failed={} secs={secs:.3} server_cpu={} load_cpu={} closer={closer:.1} empty={}",
        counts.failed.load(Ordering::SeqCst),
        cpu(s0, s1),
        cpu(l0, l1),
        counts.empty.load(Ordering::SeqCst),
    );
    Ok(())
}

struct ClientTask {
    swarm: Swarm<Client>,
    server: PeerId,
    dial: Multiaddr,
    window: usize,
    rng: u64,
    phase: Arc<AtomicU8>,
    counts: Arc<Counts>,
}

impl ClientTask {
    async fn run(mut self, ready: mpsc::Sender<Result<(), String>>) {
        if let Err(e) = self.swarm.dial(self.dial.clone()) {
            let _ = ready.send(Err(format!("dial {}: {e}", self.dial))).await;
            return;
        }
        loop {
            match self.swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == self.server => {
                    break
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    let _ = ready
                        .send(Err(format!("dial {}: {error}", self.dial)))
                        .await;
                    return;
                }
                _ => {}
            }
        }
        let _ = ready.send(Ok(())).await;
        for _ in 0..self.window {
            self.send();
        }
        loop {
            let event = self.swarm.select_next_some().await;
            let SwarmEvent::Behaviour(ClientEvent::Kad(e)) = event else {
                continue;
            };
            let measuring = self.phase.load(Ordering::Relaxed) == MEASURE;
            match e {
                request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                } => {
                    if measuring {
                        let closer = wire::scan(&response).map_or(0, |s| s.closer);
                        self.counts.answered.fetch_add(1, Ordering::Relaxed);
                        self.counts
                            .closer
                            .fetch_add(closer as u64, Ordering::Relaxed);
                        if closer == 0 {
                            self.counts.empty.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                request_response::Event::OutboundFailure { .. } => {
                    if measuring {
                        self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => continue,
            }
            if self.phase.load(Ordering::Relaxed) != STOP {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let request = find_node(&mut self.rng);
        self.swarm
            .behaviour_mut()
            .kad
            .send_request(&self.server, request);
    }
}
