//! [`IpfsHost`]: the task that owns the libp2p `Swarm` and a `dht_ipfs::Node`, and
//! carries everything between them.
//!
//! One loop, one task: it waits for the first of a swarm event, a request read from
//! an inbound stream, a reply (or failure) of one of our requests, a command from a
//! handle, or the engine's timer; feeds it to the engine as an `Input` (or a command,
//! or `handle_timeout`); then drains the engine's outputs (opening streams, writing
//! replies, resetting streams) and events (finished queries, answered to the handle
//! that asked). Stream I/O never holds the loop: our requests run in tasks of their
//! own (`io.rs`), and each inbound stream is a future the loop polls among the others
//! (`serving`), which writes the engine's reply and reads the next request, so that a
//! request reaches the engine and its reply the stream without a task or a channel
//! hop, and a slow peer holds only its own future.
//!
//! The engine answers an inbound request at once, while it is fed: a request after
//! which no `Reply` or `Reset` names its stream has no reply (ADD_PROVIDER), and its
//! stream is read on.
//!
//! Addresses: we keep TCP addresses only (no QUIC, no relays), and `/dnsaddr` names
//! for a host built with DNS (`HostConfig::dns`: libp2p's DNS transport resolves
//! them when they are dialed). When we have a public address (listen or announce),
//! we stop handing out our own loopback and private ones (identify lists only the
//! public ones, to every peer, since rust-libp2p's identify sends one list on every
//! connection; our provider records carry only those) and keep only the public
//! addresses a peer that we reached at, or that reached us from, a public address
//! lists in identify, as go's Amino filters do; on a loopback or private network
//! everything is kept. The addresses of other peers, in the replies we send and in
//! those we read (lookups, provider records), are the engine's to filter by the same
//! rule (`dht_ipfs`'s `node/addrs.rs`). Addresses are classed by
//! `HostConfig::locality`, which the engine is given too.
//!
//! Auto mode (`HostConfig::auto_mode`) serves from the start with a public listen
//! address or any announce address, else once two peers observed us alike at a
//! public address (identify's `observedAddr`; libp2p dials from our listen port, so
//! a port-preserving NAT shows them one address).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dht_core::{Event, Input, Output, Overlay, QueryId, StreamId};
use dht_ipfs::{Mode, Node, Outcome, PeerId, PeerInfo, Store};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot};

use crate::addrs::{dialable, is_public, keep_address, Classify, Observed};
use crate::behaviour::{ip_of, KadEvent, KadStreams, Limits};
use crate::handle::{Command, HostConfig, HostError, IpfsHandle, Status};
use crate::io::{self, Answer, Inbound, Served};
use crate::providers::{Identified, Streaming};

/// Identify's protocol version string, as Kubo and rust-libp2p's examples send it.
const IDENTIFY_VERSION: &str = "ipfs/0.1.0";

/// The swarm's behaviours: our kad streams, identify and ping.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub(crate) struct Behaviour {
    kad: KadStreams,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Starts hosts: see the module doc and [`IpfsHandle`].
#[derive(Debug)]
pub struct IpfsHost;

impl IpfsHost {
    /// Builds the swarm, listens on every `config.listen` address (waiting for the
    /// ports), starts the engine with `store`, and spawns the loop on the current tokio
    /// runtime.
    pub async fn spawn<S>(config: HostConfig, store: S) -> Result<IpfsHandle, HostError>
    where
        S: Store + Send + 'static,
    {
        let local = config.keypair.public().to_peer_id();
        let id = PeerId::from_bytes(&local.to_bytes())
            .map_err(|e| HostError::Transport(e.to_string()))?;
        let mut swarm = match build_swarm(&config, config.dns) {
            Ok(swarm) => swarm,
            // A machine without a resolver configuration still runs a node: it
            // dials what has an IP address.
            Err(e) if config.dns => {
                tracing::warn!(error = %e, "no DNS: /dns and /dnsaddr addresses are not dialed");
                build_swarm(&config, false)?
            }
            Err(e) => return Err(e),
        };
        let mut pending = Vec::new();
        for addr in &config.listen {
            let listener = swarm
                .listen_on(addr.clone())
                .map_err(|e| HostError::Listen(addr.clone(), e.to_string()))?;
            pending.push((listener, addr.clone()));
        }
        let mut listen_addrs = Vec::new();
        while !pending.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    pending.retain(|(l, _)| *l != listener_id);
                    listen_addrs.push(address);
                }
                SwarmEvent::ListenerError { listener_id, error }
                | SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(error),
                    ..
                } => {
                    let addr = pending
                        .iter()
                        .find(|(l, _)| *l == listener_id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_else(Multiaddr::empty);
                    return Err(HostError::Listen(addr, error.to_string()));
                }
                _ => {}
            }
        }
        // A listener on an unspecified address (0.0.0.0) reports one address per
        // interface, in a burst: take the rest of it too.
        let unspecified = config
            .listen
            .iter()
            .any(|a| ip_of(a).is_some_and(|ip| ip.is_unspecified()));
        let wait = std::time::Duration::from_millis(50);
        if unspecified {
            loop {
                match tokio::time::timeout(wait, swarm.next()).await {
                    Ok(Some(SwarmEvent::NewListenAddr { address, .. })) => {
                        listen_addrs.push(address)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let locality = config.locality;
        let public = listen_addrs
            .iter()
            .chain(&config.announce)
            .any(|a| is_public(locality, a));
        let mut advertised: Vec<Multiaddr> = Vec::new();
        for a in listen_addrs.iter().chain(&config.announce) {
            if (!public || is_public(locality, a)) && !advertised.contains(a) {
                advertised.push(a.clone());
            }
        }
        for a in &advertised {
            swarm.add_external_address(a.clone());
        }
        let mut engine = dht_ipfs::Config::new(config.seed, id, advertised.clone());
        engine.mode = config.mode;
        // Auto mode serves at once with a public address, or with an address the
        // operator says reaches us (`--announce`: a forwarded port).
        let reachable = public || !config.announce.is_empty();
        if config.auto_mode && reachable {
            engine.mode = Mode::Server;
        }
        engine.defense.exempt_local = config.limits.exempt_local;
        engine.locality = locality;
        (config.engine)(&mut engine);
        let now = Instant::now();
        let node = Node::new(engine, store, now, wall_millis());
        let (commands, command_rx) = mpsc::channel(64);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        if node.is_server() {
            swarm.behaviour_mut().kad.set_server(true);
        }
        let host = Host {
            swarm,
            node,
            local,
            public,
            locality,
            limits: config.limits,
            commands: command_rx,
            serving: FuturesUnordered::new(),
            answering: None,
            done_tx,
            done_rx,
            outbound: HashMap::new(),
            remotes: HashMap::new(),
            next_inbound: 0,
            queries: HashMap::new(),
            observed: (config.auto_mode && !reachable).then(Observed::default),
            advertised,
            unanswered: HashMap::new(),
            provides: HashMap::new(),
            streaming: HashMap::new(),
            identified: HashMap::new(),
        };
        tokio::spawn(host.run());
        Ok(IpfsHandle {
            commands,
            peer_id: local,
            listen_addrs,
        })
    }
}

/// The swarm, with libp2p's DNS transport around TCP when `dns`.
fn build_swarm(config: &HostConfig, dns: bool) -> Result<Swarm<Behaviour>, HostError> {
    let err = |e: &dyn std::fmt::Display| HostError::Transport(e.to_string());
    let server = config.mode == Mode::Server;
    let limits = config.limits;
    let idle = config.idle_connection_timeout;
    let tcp = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| err(&e))?;
    let behaviour = |key: &libp2p::identity::Keypair| behaviour(key, server, limits);
    let swarm = if dns && !config.dns_servers.is_empty() {
        tcp.with_dns_config(name_servers(&config.dns_servers), Default::default())
            .with_behaviour(behaviour)
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    } else if dns {
        tcp.with_dns()
            .map_err(|e| HostError::Transport(format!("the system's DNS configuration: {e}")))?
            .with_behaviour(behaviour)
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    } else {
        tcp.with_behaviour(behaviour)
            .map_err(|e| err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build()
    };
    Ok(swarm)
}

/// A resolver configuration asking `servers` over UDP.
fn name_servers(servers: &[std::net::SocketAddr]) -> libp2p::dns::ResolverConfig {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig};
    let servers = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp])
        })
        .collect();
    libp2p::dns::ResolverConfig::from_name_servers(servers)
}

fn behaviour(key: &libp2p::identity::Keypair, server: bool, limits: Limits) -> Behaviour {
    Behaviour {
        kad: KadStreams::new(server, limits),
        identify: identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.to_string(), key.public())
                .with_agent_version(format!("dht-net-libp2p/{}", env!("CARGO_PKG_VERSION")))
                // Identify lists the addresses we advertise (external ones, set
                // once the ports are known), never all listen addresses: see the
                // module doc on public and private addresses.
                .with_hide_listen_addrs(true),
        ),
        ping: ping::Behaviour::default(),
    }
}

fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Host<S: Store> {
    swarm: Swarm<Behaviour>,
    node: Node<S>,
    local: libp2p::PeerId,
    /// We have a public address: see the module doc.
    public: bool,
    /// How IPs are classed (`HostConfig::locality`).
    locality: Classify,
    limits: Limits,
    commands: mpsc::Receiver<Command>,
    /// One future per inbound stream: it writes our last reply, then reads the next
    /// request (`io::next_request`).
    serving: FuturesUnordered<BoxFuture<'static, Served>>,
    /// The inbound request being fed to the engine, and its answer once given.
    answering: Option<(StreamId, Option<Answer>)>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    /// Our requests waiting for their stream to open: payload and deadline.
    outbound: HashMap<StreamId, (Vec<u8>, Instant)>,
    /// The remote address of a connection to each connected peer.
    remotes: HashMap<libp2p::PeerId, Multiaddr>,
    next_inbound: u64,
    queries: HashMap<QueryId, oneshot::Sender<Result<Outcome, HostError>>>,
    /// In auto mode until we are a server: the addresses peers observed us at.
    observed: Option<Observed>,
    /// The addresses we announce.
    advertised: Vec<Multiaddr>,
    /// ADD_PROVIDER streams of a `StartProviding` the handle waits on, by query.
    unanswered: HashMap<StreamId, QueryId>,
    /// `StartProviding` queries whose ADD_PROVIDERs are still being written.
    provides: HashMap<QueryId, Providing>,
    /// GetProviders queries whose providers are streamed as they are found.
    streaming: HashMap<QueryId, Streaming>,
    /// What each connected peer listed in identify (as many as connections).
    identified: HashMap<libp2p::PeerId, Identified>,
}

/// One of our requests ended: whether it was written in full, and its reply.
#[derive(Debug)]
struct Done {
    stream: StreamId,
    written: bool,
    reply: Option<Vec<u8>>,
}

/// A `StartProviding` whose handle waits until every ADD_PROVIDER (a message without
/// reply) was written in full or failed: a one-shot may exit only then.
struct Providing {
    key: Vec<u8>,
    pending: usize,
    written: usize,
    reply: oneshot::Sender<Result<Outcome, HostError>>,
}

/// Whether `payload` (a frame of ours) is an ADD_PROVIDER.
fn is_add_provider(payload: &[u8]) -> bool {
    dht_ipfs::wire::decode_frame(payload, usize::MAX)
        .is_ok_and(|m| m.kind() == Some(dht_ipfs::wire::MessageType::AddProvider))
}

impl<S: Store> Host<S> {
    async fn run(mut self) {
        // One timer, moved when the engine's deadline moves: a new one each turn
        // would enter and leave the timer wheel on every request served.
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let wake = self.node.poll_timeout();
            if wake != armed {
                if let Some(at) = wake {
                    sleep.as_mut().reset(at.into());
                }
                armed = wake;
            }
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                Some(served) = self.serving.next(), if !self.serving.is_empty() => self.on_served(served),
                Some(Done { stream, written, reply }) = self.done_rx.recv() => {
                    let now = Instant::now();
                    self.settle(stream, written);
                    match reply {
                        Some(bytes) => self.node.handle_input(now, Input::StreamReply { stream, bytes: &bytes }),
                        None => self.node.handle_input(now, Input::StreamFailed { stream }),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => return,
                    Some(c) => self.on_command(c),
                },
                () = &mut sleep, if armed.is_some() => self.node.handle_timeout(Instant::now()),
            }
            let now = Instant::now();
            self.swarm.behaviour_mut().kad.expire(now);
            // A connection that broke with opens still queued says nothing of them;
            // the engine has timed them out by their deadline, so their payloads go.
            let expired: Vec<StreamId> = self
                .outbound
                .iter()
                .filter(|(_, (_, deadline))| *deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                self.outbound.remove(&id);
                self.settle(id, false);
            }
            self.drain(now);
            self.stream_providers(now);
        }
    }

    /// Sends streamed queries' new providers, and cancels the queries whose stream
    /// was dropped.
    fn stream_providers(&mut self, now: Instant) {
        let node = &mut self.node;
        self.streaming.retain(|id, s| {
            if s.abandoned() {
                node.cancel(now, *id);
                return false;
            }
            if let Some(found) = node.providers_found(*id) {
                s.send_new(found);
            }
            true
        });
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Start(request, reply) => match self.node.start(now, request) {
                Ok(id) => {
                    self.queries.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(HostError::Refused(e)));
                }
            },
            Command::StreamProviders(key, streaming, reply) => {
                match self
                    .node
                    .start(now, dht_ipfs::Request::GetProviders { key })
                {
                    Ok(id) => {
                        self.streaming.insert(id, streaming);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(HostError::Refused(e)));
                    }
                }
            }
            Command::Identified(peer, reply) => {
                let _ = reply.send(self.identified.get(&peer).cloned());
            }
            // `stream_providers`, after this turn, finds the dropped stream.
            Command::Wake => {}
            Command::Status(reply) => {
                let _ = reply.send(Status {
                    table_size: self.node.table().len(),
                    connections: self.swarm.behaviour().kad.connection_count(),
                    requests_in_flight: self.node.requests_in_flight(),
                    server: self.node.is_server(),
                });
            }
            Command::Table(reply) => {
                let peers = self.node.table().entries().map(|e| e.node.clone());
                let _ = reply.send(peers.collect());
            }
            Command::SetMode(mode) => {
                self.node.set_mode(mode);
                self.swarm
                    .behaviour_mut()
                    .kad
                    .set_server(mode == Mode::Server);
            }
            Command::Shutdown => {}
        }
    }

    /// What an inbound stream's future found: a request, which the engine answers now
    /// (a reply, a reset) or never (the stream is read on), or the stream's end.
    fn on_served(&mut self, served: Served) {
        let Served::Request(inbound, frame) = served else {
            return;
        };
        self.next_inbound += 1;
        let stream = StreamId(self.next_inbound);
        self.answering = Some((stream, None));
        let now = Instant::now();
        self.node.handle_input(
            now,
            Input::StreamRequest {
                from: inbound.from.clone(),
                stream,
                bytes: &frame,
            },
        );
        self.drain(now);
        let reply = match self.answering.take().and_then(|(_, answer)| answer) {
            Some(Answer::Reply(bytes)) => Some(bytes),
            None => None,
            // Dropping the stream resets it.
            Some(Answer::Reset) => return,
        };
        self.serve(inbound, reply);
    }

    /// Writes `reply` on `inbound` (if any) and waits for its next request.
    fn serve(&mut self, inbound: Inbound, reply: Option<Vec<u8>>) {
        let (max, idle) = (self.limits.max_message_bytes, self.limits.inbound_idle);
        self.serving
            .push(io::next_request(inbound, reply, max, idle).boxed());
    }

    /// The engine's answer to inbound stream `stream`: the first one counts.
    fn answer(&mut self, stream: StreamId, answer: Answer) {
        if let Some((s, slot @ None)) = &mut self.answering {
            if *s == stream {
                *slot = Some(answer);
            }
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.on_kad(now, e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let Ok(id) = PeerId::from_bytes(&peer_id.to_bytes()) else {
                    return;
                };
                let locality = self.locality;
                let from_public = self
                    .remotes
                    .get(&peer_id)
                    .is_some_and(|a| is_public(locality, a));
                let public = self.public;
                let addrs = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| keep_address(locality, public, from_public, a));
                let peer = PeerInfo::new(id, addrs);
                let observed = self
                    .observed
                    .as_mut()
                    .and_then(|o| o.note(locality, peer_id, info.observed_addr.clone()));
                if let Some(addr) = observed {
                    self.become_server(addr);
                }
                let protocols: Vec<String> = info.protocols.iter().map(|p| p.to_string()).collect();
                let identified = Identified {
                    peer: peer.clone(),
                    protocols: protocols.clone(),
                };
                self.identified.insert(peer_id, identified);
                self.node.handle_input(
                    now,
                    Input::Identified {
                        peer,
                        protocols: &protocols,
                    },
                );
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.remotes
                    .insert(peer_id, endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    if let Ok(id) = PeerId::from_bytes(&peer_id.to_bytes()) {
                        let peer = PeerInfo::new(id, [endpoint.get_remote_address().clone()]);
                        self.node.handle_input(now, Input::Connected { peer });
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.identified.remove(&peer_id);
                if let Some(remote) = self.remotes.remove(&peer_id) {
                    if let Ok(id) = PeerId::from_bytes(&peer_id.to_bytes()) {
                        let peer = PeerInfo::new(id, [remote]);
                        self.node.handle_input(now, Input::Disconnected { peer });
                    }
                }
            }
            _ => {}
        }
    }

    fn on_kad(&mut self, now: Instant, event: KadEvent) {
        let max = self.limits.max_message_bytes;
        match event {
            KadEvent::Inbound {
                from,
                stream,
                guard,
            } => {
                let inbound = Inbound {
                    stream,
                    from,
                    _guard: guard,
                };
                self.serve(inbound, None);
            }
            KadEvent::Outbound(id, stream, guard) => {
                let Some((payload, deadline)) = self.outbound.remove(&id) else {
                    return;
                };
                let done = self.done_tx.clone();
                tokio::spawn(async move {
                    let (written, reply) = io::request(stream, payload, max, deadline).await;
                    drop(guard);
                    let _ = done.send(Done {
                        stream: id,
                        written,
                        reply,
                    });
                });
            }
            KadEvent::OutboundFailed(id) => {
                self.settle(id, false);
                if self.outbound.remove(&id).is_some() {
                    self.node
                        .handle_input(now, Input::StreamFailed { stream: id });
                }
            }
        }
    }

    /// Carries the engine's outputs, then its events.
    fn drain(&mut self, now: Instant) {
        // ADD_PROVIDERs sent in this drain: a `Provided` event in the same drain
        // (the engine sends them as it ends the query) waits for them.
        let mut add_providers = Vec::new();
        loop {
            let mut failed = Vec::new();
            while let Some(output) = self.node.poll_output() {
                match output {
                    Output::Request {
                        to,
                        stream,
                        payload,
                        deadline,
                    } => match libp2p::PeerId::from_bytes(to.id().as_bytes()) {
                        Ok(peer) if peer != self.local => {
                            let addrs: Vec<Multiaddr> =
                                to.addrs().iter().filter(|a| dialable(a)).cloned().collect();
                            if is_add_provider(&payload) {
                                add_providers.push(stream);
                            }
                            self.outbound.insert(stream, (payload, deadline));
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .open(peer, addrs, stream, deadline);
                        }
                        _ => failed.push(stream),
                    },
                    Output::Reply { stream, payload } => {
                        self.answer(stream, Answer::Reply(payload))
                    }
                    Output::Reset { stream } => self.answer(stream, Answer::Reset),
                    // The IPFS engine speaks on streams only.
                    Output::Datagram { .. } | Output::DatagramAfterCommit { .. } => {}
                }
            }
            if failed.is_empty() {
                break;
            }
            for stream in failed {
                self.node.handle_input(now, Input::StreamFailed { stream });
            }
        }
        while let Some(event) = self.node.poll_event() {
            let Event::QueryDone(done) = event;
            if let Some(mut streaming) = self.streaming.remove(&done.id) {
                // Those found at the very end; the stream ends as `streaming` drops.
                if let Outcome::Providers { providers, .. } = &done.outcome {
                    streaming.send_new(providers.iter());
                }
                continue;
            }
            let Some(reply) = self.queries.remove(&done.id) else {
                continue;
            };
            match done.outcome {
                Outcome::Provided { key, .. } if !add_providers.is_empty() => {
                    for s in add_providers.drain(..) {
                        self.unanswered.insert(s, done.id);
                    }
                    let pending = self.unanswered.values().filter(|q| **q == done.id).count();
                    let providing = Providing {
                        key,
                        pending,
                        written: 0,
                        reply,
                    };
                    self.provides.insert(done.id, providing);
                }
                outcome => {
                    let _ = reply.send(Ok(outcome));
                }
            }
        }
    }

    /// Auto mode: two peers observed us at public `addr`. Announce it (our own private
    /// addresses go, as for any public node) and serve.
    fn become_server(&mut self, addr: Multiaddr) {
        self.observed = None;
        self.public = true;
        let locality = self.locality;
        let mut addrs: Vec<Multiaddr> = self
            .advertised
            .iter()
            .filter(|a| is_public(locality, a))
            .cloned()
            .collect();
        addrs.push(addr.clone());
        for a in &self.advertised {
            if !is_public(locality, a) {
                self.swarm.remove_external_address(a);
            }
        }
        self.swarm.add_external_address(addr);
        self.advertised = addrs.clone();
        self.node.set_listen_addrs(addrs);
        self.node.set_mode(Mode::Server);
        self.swarm.behaviour_mut().kad.set_server(true);
    }

    /// Our stream `stream` ended, `written` in full or not: if it carried an
    /// ADD_PROVIDER a handle waits on, count it, and answer once all have ended.
    fn settle(&mut self, stream: StreamId, written: bool) {
        let Some(query) = self.unanswered.remove(&stream) else {
            return;
        };
        let Some(p) = self.provides.get_mut(&query) else {
            return;
        };
        p.pending = p.pending.saturating_sub(1);
        p.written += usize::from(written);
        if p.pending == 0 {
            if let Some(p) = self.provides.remove(&query) {
                let outcome = Outcome::Provided {
                    key: p.key,
                    sent: p.written,
                };
                let _ = p.reply.send(Ok(outcome));
            }
        }
    }
}
