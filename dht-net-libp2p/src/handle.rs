//! What a node binary holds: [`HostConfig`] to start an [`crate::IpfsHost`], and the
//! cloneable [`IpfsHandle`] whose async methods start the engine's requests and wait for
//! their outcomes.

use std::time::Duration;

use dht_ipfs::{Mode, Outcome, PeerId, PeerInfo, Request, RequestError};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::Limits;
use crate::providers::{Identified, ProviderStream, Streaming};

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Our identity: ed25519 ([`Keypair::generate_ed25519`], or
    /// [`Keypair::ed25519_from_bytes`] on a stored secret).
    pub keypair: Keypair,
    /// Where to listen, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Addresses to advertise besides the listen ones (a NAT's forwarded port).
    pub announce: Vec<Multiaddr>,
    /// Server (answers, listed in identify) or client; with `auto_mode`, the mode to
    /// start in.
    pub mode: Mode,
    /// Switch to server once we have a public address: a public listen address or
    /// any `announce` address at the start, or one that two peers observed alike
    /// (identify's `observedAddr`), which is then announced too. Off by default.
    pub auto_mode: bool,
    /// Dial `/dns*` and `/dnsaddr` addresses through libp2p's DNS transport (the
    /// system's resolver configuration; `/dnsaddr` takes a TXT lookup). Off by
    /// default: only Kubo's default bootstrap peers need it, and a host without it
    /// never resolves a name.
    pub dns: bool,
    /// With `dns`, the name servers to ask (UDP) instead of the system's: empty by
    /// default; a test points it at one of its own on loopback.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// How IPs are classed (loopback, private, public): `dht_core::locality`. The
    /// host and its engine filter addresses by it (see `IpfsHost`); a test on
    /// loopback classes some loopback addresses as public to play the Internet.
    pub locality: fn(std::net::IpAddr) -> dht_core::Locality,
    /// Seeds the engine's RNG (`dht_ipfs::Config::seed`): one seed, one sequence of its
    /// random choices.
    pub seed: u64,
    /// Connection, stream and message bounds.
    pub limits: Limits,
    /// How long an idle connection stays open: 60 s.
    pub idle_connection_timeout: Duration,
    /// Changes to the engine's defaults (k, timeouts, ...), applied last.
    pub engine: fn(&mut dht_ipfs::Config),
}

impl HostConfig {
    /// A server with `keypair` listening on `listen`, with the default bounds.
    pub fn new(keypair: Keypair, listen: Vec<Multiaddr>) -> HostConfig {
        HostConfig {
            keypair,
            listen,
            announce: Vec::new(),
            mode: Mode::Server,
            auto_mode: false,
            dns: false,
            dns_servers: Vec::new(),
            locality: dht_core::locality,
            seed: 0,
            limits: Limits::default(),
            idle_connection_timeout: Duration::from_secs(60),
            engine: |_| {},
        }
    }
}

/// Why a host or one of its commands failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The engine refused the request before anything left.
    #[error("refused: {0}")]
    Refused(#[from] RequestError),
    /// A listen address could not be bound.
    #[error("listen on {0}: {1}")]
    Listen(Multiaddr, String),
    /// A seed address is not `.../p2p/<PeerId>`.
    #[error("not a multiaddr ending in /p2p/<PeerId>: {0}")]
    BadSeed(Multiaddr),
    /// The transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// The host has stopped.
    #[error("host stopped")]
    Stopped,
    /// The engine ended a request with an outcome of another kind (a bug).
    #[error("unexpected outcome")]
    Unexpected,
}

/// A host's state, for `/readyz` and metrics.
#[derive(Debug, Clone)]
pub struct Status {
    /// Servers in the routing table.
    pub table_size: usize,
    /// Open connections.
    pub connections: usize,
    /// Our requests in flight.
    pub requests_in_flight: usize,
    /// Whether we serve the DHT.
    pub server: bool,
}

pub(crate) enum Command {
    Start(Request, oneshot::Sender<Result<Outcome, HostError>>),
    /// A GetProviders query whose providers go to `Streaming` as they are found.
    StreamProviders(Vec<u8>, Streaming, oneshot::Sender<Result<(), HostError>>),
    Identified(libp2p::PeerId, oneshot::Sender<Option<Identified>>),
    /// Nothing but a turn of the host's loop (a dropped `ProviderStream` asks for it).
    Wake,
    Status(oneshot::Sender<Status>),
    Table(oneshot::Sender<Vec<PeerInfo>>),
    SetMode(Mode),
    Shutdown,
}

/// A cloneable handle on a running [`crate::IpfsHost`]. Every method waits for the
/// engine's answer; a lookup ends within a few request timeouts (10 s each). The host
/// stops when [`IpfsHandle::shutdown`] is called or the last handle is dropped.
#[derive(Debug, Clone)]
pub struct IpfsHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) peer_id: libp2p::PeerId,
    pub(crate) listen_addrs: Vec<Multiaddr>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// A seed address `.../p2p/<PeerId>` as the engine's peer.
pub fn seed_peer(addr: &Multiaddr) -> Result<PeerInfo, HostError> {
    let mut dial = addr.clone();
    let Some(Protocol::P2p(id)) = dial.pop() else {
        return Err(HostError::BadSeed(addr.clone()));
    };
    let id = PeerId::from_bytes(&id.to_bytes()).map_err(|_| HostError::BadSeed(addr.clone()))?;
    Ok(PeerInfo::new(id, [dial]))
}

impl IpfsHandle {
    /// Our PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.peer_id
    }

    /// The addresses we listen on (ports resolved).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The listen addresses with `/p2p/<PeerId>`: what `--bootstrap` takes.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs
            .iter()
            .map(|a| a.clone().with(Protocol::P2p(self.peer_id)))
            .collect()
    }

    /// Runs any engine request to its outcome.
    pub async fn run(&self, request: Request) -> Result<Outcome, HostError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Start(request, tx))
            .await
            .map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)?
    }

    /// Joins through `seeds` (each `.../p2p/<PeerId>`): the closest servers to our key.
    pub async fn bootstrap(&self, seeds: &[Multiaddr]) -> Result<Vec<PeerInfo>, HostError> {
        let seeds = seeds.iter().map(seed_peer).collect::<Result<_, _>>()?;
        peers(self.run(Request::Bootstrap { seeds }).await?)
    }

    /// The k closest servers to `key` (any bytes; the lookup goes toward SHA-256(key)),
    /// closest first.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<Vec<PeerInfo>, HostError> {
        peers(self.run(Request::FindNode { key }).await?)
    }

    /// `peer` with its addresses, if a lookup of its PeerId reached it.
    pub async fn find_peer(&self, peer: &libp2p::PeerId) -> Result<Option<PeerInfo>, HostError> {
        let closest = self.closest_peers(peer.to_bytes()).await?;
        let bytes = peer.to_bytes();
        Ok(closest.into_iter().find(|p| p.id().as_bytes() == bytes))
    }

    /// Announces us as a provider of `key` to the k closest servers (and again every
    /// 22 h, while the host runs). Returns once every ADD_PROVIDER was written in full
    /// or failed: how many were written in full (the protocol has no reply), so a
    /// one-shot may exit then. [`IpfsHandle::run`] returns the same count as
    /// `Outcome::Provided::sent`.
    pub async fn provide(&self, key: Vec<u8>) -> Result<usize, HostError> {
        match self.run(Request::StartProviding { key }).await? {
            Outcome::Provided { sent, .. } => Ok(sent),
            _ => Err(HostError::Unexpected),
        }
    }

    /// The providers of `key` a lookup found.
    pub async fn providers(&self, key: Vec<u8>) -> Result<Vec<PeerInfo>, HostError> {
        match self.run(Request::GetProviders { key }).await? {
            Outcome::Providers { providers, .. } => Ok(providers),
            _ => Err(HostError::Unexpected),
        }
    }

    /// The providers of `key`, each as soon as the lookup learns it (those this host
    /// stores first), each PeerId once; the stream ends when the lookup does, within
    /// the same bounds as [`IpfsHandle::providers`]. Dropping the stream cancels the
    /// lookup.
    pub async fn provider_stream(&self, key: Vec<u8>) -> Result<ProviderStream, HostError> {
        let (streaming, stream) = Streaming::new(self.commands.clone());
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::StreamProviders(key, streaming, tx))
            .await
            .map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)??;
        Ok(stream)
    }

    /// What `peer` listed in identify (its listen addresses and protocols), while we
    /// are connected to it; `None` when we are not, or it has not identified yet.
    pub async fn identified(&self, peer: &libp2p::PeerId) -> Result<Option<Identified>, HostError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Identified(*peer, tx))
            .await
            .map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)
    }

    /// The best valid record under `key`.
    pub async fn get_record(
        &self,
        key: Vec<u8>,
    ) -> Result<Option<dht_ipfs::wire::Record>, HostError> {
        match self.run(Request::GetRecord { key }).await? {
            Outcome::Record { record } => Ok(record),
            _ => Err(HostError::Unexpected),
        }
    }

    /// Stores a record at the k closest servers: (acknowledged, sent).
    pub async fn put_record(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(usize, usize), HostError> {
        match self.run(Request::PutRecord { key, value }).await? {
            Outcome::Stored { acks, sent, .. } => Ok((acks, sent)),
            _ => Err(HostError::Unexpected),
        }
    }

    /// The host's state.
    pub async fn status(&self) -> Result<Status, HostError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .await
            .map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)
    }

    /// The servers in the routing table, with their addresses.
    pub async fn table_peers(&self) -> Result<Vec<PeerInfo>, HostError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Table(tx))
            .await
            .map_err(|_| HostError::Stopped)?;
        rx.await.map_err(|_| HostError::Stopped)
    }

    /// Switches between server and client (identify tells peers at its next push).
    pub async fn set_mode(&self, mode: Mode) -> Result<(), HostError> {
        self.commands
            .send(Command::SetMode(mode))
            .await
            .map_err(|_| HostError::Stopped)
    }

    /// Stops the host; its connections close.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}

fn peers(outcome: Outcome) -> Result<Vec<PeerInfo>, HostError> {
    match outcome {
        Outcome::Peers { closest } => Ok(closest),
        _ => Err(HostError::Unexpected),
    }
}
