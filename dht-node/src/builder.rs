//! [`DhtBuilder`]: how a node is set up before it starts, and starting it on a
//! transport and a store.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use dht_core::Transport;
use dht_core::{Config, IdPolicy, Store};

use crate::delay::EgressDelay;
use crate::identity::os_seed;
use crate::runtime::Runtime;
use crate::RepublishIntervals;
use crate::{ConnectionStats, Dht};

/// How a node is set up before it starts.
#[derive(Debug, Clone)]
pub struct DhtBuilder {
    config: Config,
    listen: Vec<SocketAddr>,
    republish: Option<RepublishIntervals>,
    egress_delay: Option<Duration>,
}

impl Default for DhtBuilder {
    fn default() -> Self {
        DhtBuilder {
            config: Config::default(),
            listen: Vec::new(),
            republish: Some(RepublishIntervals::default()),
            egress_delay: None,
        }
    }
}

impl DhtBuilder {
    /// Replaces the core configuration. Its `seed` is ignored: [`DhtBuilder::spawn_with`]
    /// always seeds the node from the operating system.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds an address to bind (at most one IPv4 and one IPv6). Without any,
    /// [`DhtBuilder::spawn`] binds `0.0.0.0:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push(addr);
        self
    }

    /// How the node id is chosen (default random). A node on a data dir keeps its
    /// id with [`IdPolicy::Fixed`]; over QUIC it must be [`IdPolicy::PublicKey`] of
    /// the transport's key, or peers drop its messages.
    pub fn id_policy(mut self, policy: IdPolicy) -> Self {
        self.config.id_policy = policy;
        self
    }

    /// Bucket size K (default 8).
    pub fn k(mut self, k: usize) -> Self {
        self.config.k = k.max(1);
        self
    }

    /// BEP 43: a read-only node answers no queries; for clients behind NAT and one-shot tools.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.config.read_only = read_only;
        self
    }

    /// How long to wait for each reply (default 2 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How often successful puts and announces are republished (default:
    /// [`RepublishIntervals::default`]); `None` never republishes, as one-shot tools want.
    pub fn republish(mut self, republish: Option<RepublishIntervals>) -> Self {
        self.republish = republish;
        self
    }

    /// Holds every datagram the node sends for `delay` (`testing::EgressDelay`): a
    /// stand-in for netem's link delay in testnets (`cargo xtask testnet --delay`), on
    /// kernels without netem. Not for QUIC ([`DhtBuilder::spawn_quic`] refuses it) and
    /// never for a node on a real network.
    pub fn egress_delay(mut self, delay: Option<Duration>) -> Self {
        self.egress_delay = delay;
        self
    }

    /// Starts a node over any transport and store on the current tokio runtime.
    pub fn spawn_with<T, S>(self, transport: T, store: S) -> io::Result<Dht>
    where
        T: Transport,
        S: Store + Send + 'static,
    {
        match self.egress_delay {
            Some(delay) => self.spawn_runtime(EgressDelay::new(transport, delay), store, None),
            None => self.spawn_runtime(transport, store, None),
        }
    }

    fn spawn_runtime<T, S>(
        self,
        transport: T,
        store: S,
        connection_stats: Option<fn(&T) -> ConnectionStats>,
    ) -> io::Result<Dht>
    where
        T: Transport,
        S: Store + Send + 'static,
    {
        let mut config = self.config;
        // Tokens and transaction ids must be unpredictable: always from the OS.
        config.seed = Some(os_seed()?);
        // Private sources are exempt from the defenses only on a private network: a
        // public node (or one on every address) behind a NAT or in a container sees
        // strangers arrive from private addresses.
        config.defense.local_listen = listens_only_locally(&transport.local_addrs());
        let (mut runtime, dht) = Runtime::new(transport, store, config, self.republish)?;
        if let Some(of) = connection_stats {
            runtime = runtime.with_connection_stats(of);
        }
        tokio::spawn(runtime.run());
        Ok(dht)
    }

    /// Binds UDP sockets on the listen addresses and starts a node with an in-memory
    /// store. Must be called inside a tokio runtime.
    #[cfg(all(feature = "udp", feature = "mem"))]
    pub fn spawn(self) -> io::Result<Dht> {
        let listen = if self.listen.is_empty() {
            vec![SocketAddr::from(([0, 0, 0, 0], 0))]
        } else {
            self.listen.clone()
        };
        let transport = dht_net_udp::UdpTransport::bind(&listen)?;
        self.spawn_with(transport, dht_store_mem::MemStore::new())
    }

    /// Keeps the node id in a sled data dir across restarts: the id saved there (or
    /// a fresh one, saved durably before this returns) with [`IdPolicy::Fixed`].
    /// See [`crate::identity::kept_node_id`]. Not for QUIC, where the key decides the id.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut store = dht_store_sled::SledStore::open("dht-data".as_ref())?;
    /// let builder = dht_node::Dht::builder().keep_id_in(&mut store)?;
    /// # let _ = builder;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "sled")]
    pub fn keep_id_in(
        self,
        store: &mut dht_store_sled::SledStore,
    ) -> Result<Self, crate::identity::IdentityError> {
        let id = crate::identity::kept_node_id(store)?;
        Ok(self.id_policy(IdPolicy::Fixed(id)))
    }

    /// Starts a node over QUIC: the id is the one derived from the transport's key
    /// ([`IdPolicy::PublicKey`]), since peers drop messages whose id is not derived
    /// from the key the handshake proved. Keep the key across restarts with
    /// [`crate::identity::load_node_key`].
    #[cfg(feature = "quic")]
    pub fn spawn_quic<S>(self, transport: dht_net_quic::QuicTransport, store: S) -> io::Result<Dht>
    where
        S: Store + Send + 'static,
    {
        if self.egress_delay.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an egress delay is for UDP testnets; QUIC does not take one",
            ));
        }
        let b = self.id_policy(IdPolicy::PublicKey(transport.public_key()));
        b.spawn_runtime(transport, store, Some(quic_connection_stats))
    }
}

/// QUIC's connection figures for `/metrics`.
#[cfg(feature = "quic")]
fn quic_connection_stats(t: &dht_net_quic::QuicTransport) -> crate::ConnectionStats {
    let s = t.stats();
    crate::ConnectionStats {
        connections: s.connections,
        handshakes_in: s.handshakes_in,
        handshakes_out: s.handshakes_out,
        handshake_failures: s.handshake_failures,
        incoming_refused: s.incoming_refused,
        evicted: s.evicted,
        replaced: s.replaced,
        replaced_open: s.replaced_open,
        datagrams_sent: s.datagrams_sent,
        streams_sent: s.streams_sent,
        received: s.received,
        send_dropped: s.send_dropped,
        recv_dropped: s.recv_dropped,
        peer_resets: s.peer_resets,
        silent_closed: s.silent_closed,
        resent: s.resent,
    }
}

/// True when every bound address is loopback or private (a node on an unspecified
/// address listens on public interfaces too).
fn listens_only_locally(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty()
        && addrs.iter().all(|a| {
            !a.ip().is_unspecified() && dht_core::locality(a.ip()) != dht_core::Locality::Public
        })
}
