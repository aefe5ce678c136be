//! The simulated network is the overlay's to choose: a toy overlay whose peers are
//! plain numbers, not socket addresses, runs on [`dht_sim::Network`] through
//! [`dht_sim::SimOverlay`] alone, with the latency model, command tracking, replay and
//! the count of stream outputs the network does not carry.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use dht_core::{Event, Id, Input, Output, Overlay, QueryDone, QueryId, QueryStats, StreamId};
use dht_sim::{AddressBook, Network, SimConfig, SimOverlay};

/// Peers numbered 0, 1, 2, ... in the order they arrive.
#[derive(Debug, Default)]
struct Numbers(u32);

impl AddressBook for Numbers {
    type Peer = u32;
    fn add_node(&mut self) -> u32 {
        self.0 += 1;
        self.0 - 1
    }
    fn peer(&self, i: u32) -> u32 {
        i
    }
    fn index_of(&self, peer: &u32) -> Option<u32> {
        (*peer < self.0).then_some(*peer)
    }
}

enum Ask {
    /// A datagram `ping`, answered `pong`; done when the pong is back.
    Ping(u32),
    /// A request on a stream, which the network does not carry.
    Stream(u32),
}

/// Answers pings; its own pings end when the pong comes back, with the peer that sent it.
#[derive(Debug)]
struct Echo {
    id: Id,
    next: u64,
    waiting: VecDeque<(u32, QueryId, Instant)>,
    out: VecDeque<Output<u32>>,
    events: VecDeque<Event<u32>>,
}

impl Overlay for Echo {
    type Peer = u32;
    type Request = Ask;
    type Outcome = u32;
    type RequestError = Infallible;

    fn handle_input(&mut self, now: Instant, input: Input<'_, u32>) {
        let Input::Datagram { from, bytes, .. } = input else {
            return;
        };
        if bytes == b"ping" {
            let payload = b"pong".to_vec();
            self.out.push_back(Output::Datagram { to: from, payload });
        } else if let Some(p) = self.waiting.iter().position(|w| w.0 == from) {
            let (_, id, at) = self.waiting.remove(p).expect("just found");
            let stats = QueryStats {
                duration: now - at,
                ..QueryStats::default()
            };
            let done = QueryDone {
                id,
                outcome: from,
                stats,
            };
            self.events.push_back(Event::QueryDone(done));
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn start(&mut self, now: Instant, request: Ask) -> Result<QueryId, Infallible> {
        self.next += 1;
        let id = QueryId(self.next);
        self.out.push_back(match request {
            Ask::Ping(to) => {
                self.waiting.push_back((to, id, now));
                Output::Datagram {
                    to,
                    payload: b"ping".to_vec(),
                }
            }
            Ask::Stream(to) => Output::Request {
                to,
                stream: StreamId(1),
                payload: Vec::new(),
                deadline: now,
            },
        });
        Ok(id)
    }
    fn poll_output(&mut self) -> Option<Output<u32>> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<Event<u32>> {
        self.events.pop_front()
    }
}

impl SimOverlay for Echo {
    const NAME: &'static str = "echo";
    type Book = Numbers;
    type World = ();
    fn book(_: &SimConfig) -> Numbers {
        Numbers::default()
    }
    fn create(_: &SimConfig, _: u32, seed: u64, _: Instant, _: u64) -> Echo {
        let mut id = Id([0; 20]);
        id.0[..8].copy_from_slice(&seed.to_be_bytes());
        Echo {
            id,
            next: 0,
            waiting: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
    fn id(&self) -> Id {
        self.id
    }
    fn join_request(via: Vec<u32>) -> Ask {
        Ask::Ping(via.first().copied().unwrap_or(0))
    }
    fn lookup_request(_: Id) -> Ask {
        Ask::Ping(0)
    }
    fn lookup_result(_: &u32) -> Vec<Id> {
        Vec::new()
    }
    fn judge_lookup(_: &Network<Echo>, _: usize, _: &Id, _: &[Id]) -> bool {
        true
    }
    fn join_all(net: &mut Network<Echo>, progress: &mut dyn FnMut(usize)) {
        for _ in 0..net.config().nodes {
            net.add_node();
        }
        progress(net.len());
    }
}

/// Ten pings from random nodes to random nodes: their round trips, and the run's hash.
fn pings(seed: u64) -> (Vec<Duration>, String) {
    let mut net = Network::<Echo>::new(SimConfig::new(20, seed));
    net.join_all(|_| {});
    let mut asked = Vec::new();
    for _ in 0..10 {
        let (a, b) = (dht_sim::below(net.rng(), 20), dht_sim::below(net.rng(), 20));
        let q = net.start(a, Ask::Ping(b as u32)).expect("infallible");
        asked.push((a, b, q));
    }
    assert!(net.run_until_idle(Duration::from_secs(10)), "seed {seed}");
    let rtts = asked
        .into_iter()
        .map(|(a, b, q)| {
            let done = net.take_done(a, q).expect("finished");
            assert_eq!(done.outcome, b as u32, "seed {seed}: the pong's sender");
            done.stats.duration
        })
        .collect();
    (rtts, net.event_hash())
}

#[test]
fn an_overlay_with_its_own_peers_runs_on_the_network() {
    let seed = 41;
    let (rtts, hash) = pings(seed);
    // Mean one-way 50 ms: each way is 10 to 80 ms of base plus up to 10 ms of jitter.
    for rtt in &rtts {
        assert!(
            (Duration::from_millis(20)..Duration::from_millis(180)).contains(rtt),
            "seed {seed}: round trip {rtt:?}"
        );
    }
    assert_eq!(pings(seed).1, hash, "seed {seed} replayed differently");
    assert_ne!(
        pings(seed + 1).1,
        hash,
        "seeds {seed} and {} gave one run",
        seed + 1
    );
}

#[test]
fn stream_outputs_are_counted_and_dropped() {
    let mut net = Network::<Echo>::new(SimConfig::new(2, 42));
    net.join_all(|_| {});
    let q = net.start(0, Ask::Stream(1)).expect("infallible");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.net_stats().streams_dropped, 1, "seed 42");
    assert_eq!(net.net_stats().delivered, 0, "seed 42");
    assert!(net.take_done(0, q).is_none(), "seed 42: nothing answered");
}
