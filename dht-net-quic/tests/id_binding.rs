//! Real dht-core nodes over QUIC on loopback: ids bound to keys.
//!
//! Three honest nodes run with `IdPolicy::PublicKey`; an impostor runs a valid key
//! but claims an id not derived from it. The impostor must reach no routing table
//! and store nothing, its messages must be counted as key/id mismatches, and the
//! honest nodes must still put and get a 1000-byte BEP 44 value.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dht_core::{
    Config, Event, Family, Id, IdPolicy, Node, Outcome, QueryDone, QueryId, Request, Store,
};
use dht_core::{OutDatagram, RecvSlot, Transport};
use dht_net_quic::{generate_key, QuicConfig, QuicStats, QuicTransport};
use dht_store_mem::MemStore;
use tokio::sync::mpsc;

type Job = Box<dyn FnOnce(&mut Node<MemStore>, Instant) + Send>;

/// A node driven by its own task: received messages, timers and commands in, and
/// everything it wants sent drained to the transport after each input.
struct Driver {
    addr: SocketAddr,
    transport: Arc<QuicTransport>,
    jobs: mpsc::UnboundedSender<Job>,
    done: mpsc::UnboundedReceiver<QueryDone>,
    early: HashMap<QueryId, QueryDone>,
}

impl Driver {
    fn start(seed: u64, id_policy: Option<IdPolicy>) -> Driver {
        let transport = Arc::new(
            QuicTransport::bind(
                &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
                generate_key(),
                QuicConfig::default(),
            )
            .expect("bind"),
        );
        let mut cfg = Config::with_seed(seed);
        cfg.id_policy = id_policy.unwrap_or(IdPolicy::PublicKey(transport.public_key()));
        cfg.request_timeout = Duration::from_secs(1);
        let node = Node::new(cfg, MemStore::new(), Instant::now(), 1_800_000_000_000)
            .expect("valid config");
        let (jobs, jobs_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        tokio::spawn(run(node, transport.clone(), jobs_rx, done_tx));
        Driver {
            addr: transport.local_addrs()[0],
            transport,
            jobs,
            done,
            early: HashMap::new(),
        }
    }

    /// Runs `f` on the node inside its task and returns what it returns.
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node<MemStore>, Instant) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |node, now| {
            let _ = tx.send(f(node, now));
        });
        self.jobs.send(job).expect("driver alive");
        rx.await.expect("driver alive")
    }

    async fn wait(&mut self, qid: QueryId) -> QueryDone {
        if let Some(d) = self.early.remove(&qid) {
            return d;
        }
        loop {
            let d = tokio::time::timeout(Duration::from_secs(30), self.done.recv())
                .await
                .expect("query did not finish in 30 s")
                .expect("driver alive");
            if d.id == qid {
                return d;
            }
            self.early.insert(d.id, d);
        }
    }

    async fn run_query(
        &mut self,
        f: impl FnOnce(&mut Node<MemStore>, Instant) -> QueryId + Send + 'static,
    ) -> QueryDone {
        let qid = self.with(f).await;
        self.wait(qid).await
    }

    fn quic_stats(&self) -> QuicStats {
        self.transport.stats()
    }
}

async fn run(
    mut node: Node<MemStore>,
    transport: Arc<QuicTransport>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<QueryDone>,
) {
    let mut slots: Vec<RecvSlot> = (0..32).map(|_| RecvSlot::new()).collect();
    loop {
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        if !out.is_empty() {
            let batch: Vec<OutDatagram<'_>> = out
                .iter()
                .map(|t| OutDatagram {
                    to: t.to,
                    payload: &t.payload,
                })
                .collect();
            transport.send_batch(&batch).await.expect("send_batch");
        }
        while let Some(Event::QueryDone(d)) = node.poll_event() {
            let _ = done.send(d);
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let deadline = tokio::time::Instant::from_std(node.poll_timeout().unwrap_or(far));
        tokio::select! {
            r = transport.recv_batch(&mut slots) => {
                let n = r.expect("recv_batch");
                let now = Instant::now();
                for s in &slots[..n] {
                    node.handle_datagram(now, s.from, s.peer_key.as_ref(), s.payload());
                }
            }
            _ = tokio::time::sleep_until(deadline) => node.handle_timeout(Instant::now()),
            job = jobs.recv() => match job {
                Some(job) => job(&mut node, Instant::now()),
                None => return,
            },
        }
    }
}

async fn table_ids(d: &Driver) -> Vec<Id> {
    d.with(|n, _| {
        n.routing_table(Family::V4)
            .entries()
            .map(|e| e.node.id)
            .collect()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_not_derived_from_the_key_is_dropped_counted_and_stores_nothing() {
    let mut honest: Vec<Driver> = (0..3).map(|i| Driver::start(i, None)).collect();
    let impostor_id = Id::sha1(b"someone else's id");
    let mut impostor = Driver::start(99, Some(IdPolicy::Fixed(impostor_id)));
    let seed = honest[0].addr;

    for d in honest.iter_mut().skip(1) {
        d.run_query(move |n, now| {
            n.start(
                now,
                Request::Bootstrap {
                    seeds: [seed].to_vec(),
                },
            )
            .expect("request")
        })
        .await;
    }
    // Each honest node's id is the one bound to its key, and they found each other.
    for d in &honest {
        let id = d.with(|n, _| n.id()).await;
        assert_eq!(id, d.transport.node_id());
        assert!(
            !table_ids(d).await.is_empty(),
            "an honest node has an empty table"
        );
    }

    // The impostor bootstraps and puts; nobody answers it.
    let done = impostor
        .run_query(move |n, now| {
            n.start(
                now,
                Request::Bootstrap {
                    seeds: [seed].to_vec(),
                },
            )
            .expect("request")
        })
        .await;
    match done.outcome {
        Outcome::Nodes { closest } => assert!(closest.is_empty(), "{closest:?}"),
        other => panic!("unexpected {other:?}"),
    }
    let bogus = b"12:impostor put".to_vec();
    let bogus_target = Id::sha1(&bogus);
    let done = impostor
        .run_query(move |n, now| {
            n.start(now, Request::PutImmutable { value: bogus })
                .expect("request")
        })
        .await;
    match done.outcome {
        Outcome::Stored { stored_at, .. } => assert!(stored_at.is_empty(), "{stored_at:?}"),
        other => panic!("unexpected {other:?}"),
    }

    // An honest put of a 1000-byte value (bencoded) and a get from another node.
    let mut value = b"996:".to_vec();
    value.extend(std::iter::repeat_n(b'v', 996));
    assert_eq!(value.len(), 1000);
    let target = Id::sha1(&value);
    let v = value.clone();
    let done = honest[1]
        .run_query(move |n, now| {
            n.start(now, Request::PutImmutable { value: v })
                .expect("request")
        })
        .await;
    match done.outcome {
        Outcome::Stored { stored_at, .. } => {
            assert!(!stored_at.is_empty(), "honest put stored nowhere")
        }
        other => panic!("unexpected {other:?}"),
    }
    // A node that joins after the put holds no copy, so the value reaches it in a
    // reply (value, token and nodes: over a datagram at MTU 1200, so on a stream).
    let mut late = Driver::start(3, None);
    late.run_query(move |n, now| {
        n.start(
            now,
            Request::Bootstrap {
                seeds: [seed].to_vec(),
            },
        )
        .expect("request")
    })
    .await;
    let done = late
        .run_query(move |n, now| {
            n.start(now, Request::GetImmutable { target })
                .expect("request")
        })
        .await;
    match done.outcome {
        Outcome::Immutable { value: got } => assert_eq!(got.as_deref(), Some(&value[..])),
        other => panic!("unexpected {other:?}"),
    }

    let mut mismatches = 0;
    for d in &honest {
        let ids = table_ids(d).await;
        assert!(!ids.contains(&impostor_id), "impostor in a routing table");
        let (stats, stored) = d
            .with(move |n, _| (n.stats(), n.store().get_item(&bogus_target)))
            .await;
        assert!(matches!(stored, Ok(None)), "impostor's put stored");
        mismatches += stats.key_id_mismatch;
    }
    assert!(mismatches > 0, "no key/id mismatch counted");
    let seed_mismatches = honest[0].with(|n, _| n.stats().key_id_mismatch).await;
    assert!(seed_mismatches > 0, "the impostor's seed counted nothing");

    // The 1000-byte value cannot ride a datagram at MTU 1200 in every message that
    // carries it: the stream path was used.
    let streams: u64 = honest.iter().map(|d| d.quic_stats().streams_sent).sum();
    assert!(late.quic_stats().received > 0);
    assert!(streams > 0, "no message went on a stream");
    let _ = impostor.quic_stats();
}
