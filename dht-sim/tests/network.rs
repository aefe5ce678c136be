//! The simulated network is the overlay's to choose: a toy overlay whose peers are
//! plain numbers, not socket addresses, runs on [`dht_sim::Network`] through
//! [`dht_sim::SimOverlay`] alone, with the latency model, command tracking, replay and
//! streams: a request on a stream reaches the peer, its reply the asker, a dial to
//! nobody fails at once, a request nobody answers fails at its deadline, a new
//! connection waits for its handshake and an idle one closes.

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
    /// A request on a stream to that peer, answered `pong` on it (or reset, when the
    /// request is `reset`, or left unanswered when it is `mute`); done when the
    /// reply or the failure arrives, with 1 for a reply and 0 for a failure.
    Stream(u32, &'static [u8]),
}

/// Answers pings; its own pings end when the pong comes back, with the peer that sent it.
#[derive(Debug)]
struct Echo {
    id: Id,
    next: u64,
    waiting: VecDeque<(u32, QueryId, Instant)>,
    streams: VecDeque<(StreamId, QueryId, Instant)>,
    /// What each stream delivery looked like: (kind, from or stream).
    seen: Vec<String>,
    out: VecDeque<Output<u32>>,
    events: VecDeque<Event<u32>>,
}

impl Overlay for Echo {
    type Peer = u32;
    type Request = Ask;
    type Outcome = u32;
    type RequestError = Infallible;

    fn handle_input(&mut self, now: Instant, input: Input<'_, u32>) {
        let (stream, answered) = match input {
            Input::Datagram { .. } => (StreamId(0), false),
            Input::StreamRequest {
                from,
                stream,
                bytes,
            } => {
                self.seen.push(format!("request from {from} on {stream:?}"));
                match bytes {
                    b"ping" => self.out.push_back(Output::Reply {
                        stream,
                        payload: b"pong".to_vec(),
                    }),
                    b"reset" => self.out.push_back(Output::Reset { stream }),
                    _ => {}
                }
                return;
            }
            Input::StreamReply { stream, bytes } => {
                assert_eq!(bytes, b"pong");
                (stream, true)
            }
            Input::StreamFailed { stream } => (stream, false),
            Input::Connected { peer } => {
                self.seen.push(format!("connected {peer}"));
                return;
            }
            Input::Identified { peer, protocols } => {
                self.seen.push(format!("identified {peer} {protocols:?}"));
                return;
            }
            Input::Disconnected { peer } => {
                self.seen.push(format!("disconnected {peer}"));
                return;
            }
        };
        if stream != StreamId(0) {
            self.seen.push(format!("{stream:?} answered {answered}"));
            if let Some(p) = self.streams.iter().position(|w| w.0 == stream) {
                let (_, id, at) = self.streams.remove(p).expect("just found");
                let stats = QueryStats {
                    duration: now - at,
                    ..QueryStats::default()
                };
                let done = QueryDone {
                    id,
                    outcome: u32::from(answered),
                    stats,
                };
                self.events.push_back(Event::QueryDone(done));
            }
            return;
        }
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
            Ask::Stream(to, payload) => {
                let stream = StreamId(self.next);
                self.streams.push_back((stream, id, now));
                Output::Request {
                    to,
                    stream,
                    payload: payload.to_vec(),
                    deadline: now + Duration::from_secs(5),
                }
            }
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
    type Key = Id;
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
            streams: VecDeque::new(),
            seen: Vec::new(),
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
    fn protocols(&self) -> Vec<String> {
        vec!["/echo".to_string()]
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
fn streams_carry_requests_replies_resets_and_failures() {
    let mut cfg = SimConfig::new(3, 42);
    // Connections open at once here: the handshake has its own test.
    cfg.handshake_rtts = 0;
    let mut net = Network::<Echo>::new(cfg);
    net.join_all(|_| {});
    let start = net.now();
    let ping = net.start(0, Ask::Stream(1, b"ping")).expect("infallible");
    let reset = net.start(0, Ask::Stream(1, b"reset")).expect("infallible");
    let mute = net.start(2, Ask::Stream(1, b"mute")).expect("infallible");
    let nobody = net.start(0, Ask::Stream(7, b"ping")).expect("infallible");
    net.run_for(Duration::from_millis(1));
    let done = net
        .take_done(0, nobody)
        .expect("a dial to nobody fails at once");
    assert_eq!((done.outcome, done.stats.duration), (0, Duration::ZERO));
    assert!(net.run_until_idle(Duration::from_secs(10)), "seed 42");
    let done = net.take_done(0, ping).expect("answered");
    assert_eq!(done.outcome, 1, "seed 42: the reply reached the asker");
    assert!(done.stats.duration < Duration::from_millis(180), "{done:?}");
    assert_eq!(net.take_done(0, reset).expect("reset").outcome, 0);
    let done = net.take_done(2, mute).expect("failed at its deadline");
    assert_eq!(
        (done.outcome, done.stats.duration),
        (0, Duration::from_secs(5))
    );
    let stats = net.net_stats();
    assert_eq!(
        (
            stats.stream_requests,
            stats.stream_replies,
            stats.streams_failed
        ),
        (3, 1, 3),
        "seed 42: {stats:?}"
    );
    assert_eq!(stats.delivered, 0, "no datagram");
    assert!(net.now() >= start + Duration::from_secs(5));
    // Node 1 saw each connection open, identify from each asker, and the requests on
    // inbound streams the network numbered, from the askers' connections.
    let seen = &net.node(1).seen;
    assert!(seen.contains(&"connected 0".to_string()), "{seen:?}");
    assert!(seen.contains(&"connected 2".to_string()), "{seen:?}");
    assert!(
        seen.contains(&"identified 0 [\"/echo\"]".to_string()),
        "{seen:?}"
    );
    let requests: Vec<&String> = seen.iter().filter(|s| s.starts_with("request")).collect();
    assert_eq!(requests.len(), 3, "{seen:?}");
    assert!(
        requests.iter().any(|s| s.starts_with("request from 2 on")),
        "{seen:?}"
    );
    let asker = &net.node(0).seen;
    assert!(
        asker.contains(&"identified 1 [\"/echo\"]".to_string()),
        "{asker:?}"
    );
}

#[test]
fn a_lost_stream_request_fails_at_its_deadline() {
    let mut cfg = SimConfig::new(2, 43);
    cfg.loss = 1.0;
    let mut net = Network::<Echo>::new(cfg);
    net.join_all(|_| {});
    let q = net.start(0, Ask::Stream(1, b"ping")).expect("infallible");
    assert!(net.run_until_idle(Duration::from_secs(10)), "seed 43");
    let done = net.take_done(0, q).expect("failed at its deadline");
    assert_eq!(
        (done.outcome, done.stats.duration),
        (0, Duration::from_secs(5))
    );
    let stats = net.net_stats();
    assert_eq!(
        (stats.stream_lost, stats.lost, stats.stream_requests),
        (1, 1, 0)
    );
    // The connection opened all the same: the loss took the request only.
    assert!(net.node(1).seen.contains(&"connected 0".to_string()));
}

/// Pings `to` from node 0 on a stream; returns (its time, the handshake time it waited).
fn stream_ping(net: &mut Network<Echo>, to: u32) -> (Duration, Duration) {
    let q = net.start(0, Ask::Stream(to, b"ping")).expect("infallible");
    assert!(net.run_until_idle(Duration::from_secs(10)));
    let done = net.take_done(0, q).expect("answered");
    assert_eq!(done.outcome, 1, "answered");
    (done.stats.duration, net.take_dial_wait(0, q))
}

#[test]
fn a_new_connection_waits_for_its_handshake_and_an_idle_one_closes() {
    let seed = 44;
    let mut net = Network::<Echo>::new(SimConfig::new(2, seed));
    net.join_all(|_| {});
    // Mean one-way 50 ms: a link's base is 10 to 80 ms, plus up to 10 ms of jitter.
    let (first, waited) = stream_ping(&mut net, 1);
    let round_trip = Duration::from_millis(180);
    assert!(
        waited >= Duration::from_millis(60) && first - waited < round_trip,
        "seed {seed}: 3 round trips of handshake, then the request's: {first:?}, {waited:?}"
    );
    assert_eq!(net.connections(), 1);
    let (second, waited) = stream_ping(&mut net, 1);
    assert_eq!(
        waited,
        Duration::ZERO,
        "seed {seed}: the connection is open"
    );
    assert!(second < round_trip, "seed {seed}: {second:?}");

    // 60 s without a stream: the connection closes on both sides.
    net.run_for(Duration::from_secs(61));
    assert_eq!(net.connections(), 0, "seed {seed}");
    assert!(net.node(0).seen.contains(&"disconnected 1".to_string()));
    assert!(net.node(1).seen.contains(&"disconnected 0".to_string()));
    let (_, waited) = stream_ping(&mut net, 1);
    assert!(waited > Duration::ZERO, "seed {seed}: dialed again");
    let opened = net
        .node(1)
        .seen
        .iter()
        .filter(|s| *s == "connected 0")
        .count();
    assert_eq!(opened, 2, "seed {seed}: {:?}", net.node(1).seen);

    // No handshake: nothing to wait for.
    let mut cfg = SimConfig::new(2, seed);
    cfg.handshake_rtts = 0;
    let mut net = Network::<Echo>::new(cfg);
    net.join_all(|_| {});
    assert_eq!(stream_ping(&mut net, 1).1, Duration::ZERO);
}
