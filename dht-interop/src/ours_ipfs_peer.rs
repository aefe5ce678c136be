//! Our IPFS node (`dht_net_libp2p::IpfsHost`, servers) as a peer of the IPFS matrix:
//! `--nodes N` hosts on 127.0.0.1, driven by the line protocol of [`dht_interop::ipfs`].
//! Started without `--bootstrap`, its first node is the seed of the whole network.
//!
//! Each host's store is a [`MemStore`] shared with this peer, so that `holds_record`
//! and `holds_provider` read what the host stored without asking the network.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use dht_interop::hex;
use dht_interop::ipfs::{holders_reply, ids_reply, IpfsCommand, IpfsPeerArgs};
use dht_ipfs::{
    MemStore, PeerInfo, Store, StoreCounts, StoreError, StoreLimits, StoredProvider, StoredRecord,
    UnixMillis,
};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost};
use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A [`MemStore`] the host and this peer share.
#[derive(Debug, Clone)]
struct SharedStore(Arc<Mutex<MemStore>>);

impl SharedStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemStore> {
        // A panic while holding the lock leaves a store that is still consistent
        // enough to read for a test: take it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for SharedStore {
    fn record(&self, key: &[u8], now: UnixMillis) -> Result<Option<StoredRecord>, StoreError> {
        self.lock().record(key, now)
    }

    fn put_record(
        &mut self,
        record: StoredRecord,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.lock().put_record(record, source, now)
    }

    fn remove_record(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.lock().remove_record(key)
    }

    fn add_provider(
        &mut self,
        key: &[u8],
        provider: StoredProvider,
        source: Option<&[u8]>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.lock().add_provider(key, provider, source, now)
    }

    fn providers(&self, key: &[u8], now: UnixMillis) -> Result<Vec<StoredProvider>, StoreError> {
        self.lock().providers(key, now)
    }

    fn expire(&mut self, now: UnixMillis, max: usize) -> Result<usize, StoreError> {
        self.lock().expire(now, max)
    }

    fn counts(&self) -> StoreCounts {
        self.lock().counts()
    }
}

fn wall_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs the peer until stdin closes or says `quit`.
pub fn main(args: IpfsPeerArgs) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(args));
}

struct Ours {
    hosts: Vec<(IpfsHandle, SharedStore)>,
    seeds: Vec<Multiaddr>,
}

async fn serve(args: IpfsPeerArgs) {
    let mut hosts = Vec::new();
    for i in 0..args.nodes {
        let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")];
        let mut config = HostConfig::new(Keypair::generate_ed25519(), listen);
        config.seed = i as u64 + 1;
        let store = SharedStore(Arc::new(Mutex::new(MemStore::new(StoreLimits::default()))));
        match IpfsHost::spawn(config, store.clone()).await {
            Ok(host) => hosts.push((host, store)),
            Err(e) => {
                eprintln!("our IPFS node: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut seeds: Vec<Multiaddr> = Vec::new();
    if let Some(b) = &args.bootstrap {
        match b.parse() {
            Ok(addr) => seeds.push(addr),
            Err(e) => {
                eprintln!("--bootstrap {b}: {e}");
                std::process::exit(2);
            }
        }
    }
    seeds.extend(hosts[0].0.dial_addrs());
    let ours = Ours { hosts, seeds };
    ours.refresh().await;
    let ready: Vec<String> = ours
        .hosts
        .iter()
        .filter_map(|(h, _)| h.dial_addrs().first().map(Multiaddr::to_string))
        .collect();
    println!("ready {}", ready.join(" "));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match IpfsCommand::parse(&line) {
            Ok(IpfsCommand::Quit) => break,
            Ok(cmd) => ours.run(cmd).await,
            Err(e) => format!("err {e}"),
        };
        let written = out.write_all(format!("{reply}\n").as_bytes()).await;
        if written.is_err() || out.flush().await.is_err() {
            break;
        }
    }
    for (host, _) in &ours.hosts {
        host.shutdown().await;
    }
}

fn base58(peers: &[PeerInfo]) -> Vec<String> {
    peers
        .iter()
        .filter_map(|p| libp2p::PeerId::from_bytes(p.id().as_bytes()).ok())
        .map(|p| p.to_base58())
        .collect()
}

impl Ours {
    /// Every host joins through the seeds (the network's seed and our first host).
    async fn refresh(&self) {
        let joins = self.hosts.iter().map(|(h, _)| {
            let own = h.dial_addrs();
            let seeds: Vec<Multiaddr> = self
                .seeds
                .iter()
                .filter(|s| !own.contains(s))
                .cloned()
                .collect();
            async move {
                if !seeds.is_empty() {
                    // A seed that knows nobody yet is fine: peers find this host later.
                    let _ = h.bootstrap(&seeds).await;
                }
            }
        });
        futures::future::join_all(joins).await;
    }

    async fn run(&self, cmd: IpfsCommand) -> String {
        let host = &self.hosts[0].0;
        match cmd {
            IpfsCommand::Refresh => {
                self.refresh().await;
                "ok".to_string()
            }
            IpfsCommand::Closest(key) => match host.closest_peers(key).await {
                Ok(peers) => ids_reply(&base58(&peers)),
                Err(e) => format!("err {e}"),
            },
            IpfsCommand::PutRecord { key, value } => match host.put_record(key, value).await {
                Ok((acks, _)) if acks > 0 => format!("ok {acks}"),
                Ok((_, sent)) => format!("err none of {sent} servers acknowledged"),
                Err(e) => format!("err {e}"),
            },
            IpfsCommand::GetRecord(key) => match host.get_record(key).await {
                Ok(Some(record)) => format!("ok {}", hex(&record.value)),
                Ok(None) => "none".to_string(),
                Err(e) => format!("err {e}"),
            },
            IpfsCommand::Provide(key) => match host.provide(key).await {
                Ok(sent) if sent > 0 => format!("ok {sent}"),
                Ok(_) => "err sent to no server".to_string(),
                Err(e) => format!("err {e}"),
            },
            IpfsCommand::Providers(key) => match host.providers(key).await {
                Ok(found) => ids_reply(&base58(&found)),
                Err(e) => format!("err {e}"),
            },
            IpfsCommand::HoldsRecord(key) => {
                let now = wall_millis();
                let holds = self.hosts.iter();
                holders_reply(holds.map(|(_, s)| s.record(&key, now).is_ok_and(|r| r.is_some())))
            }
            IpfsCommand::HoldsProvider(key, id) => {
                let now = wall_millis();
                let holds = self.hosts.iter().map(|(_, s)| {
                    s.providers(&key, now).is_ok_and(|ps| {
                        ps.iter().any(|p| {
                            libp2p::PeerId::from_bytes(p.provider.as_bytes())
                                .is_ok_and(|p| p.to_base58() == id)
                        })
                    })
                });
                holders_reply(holds)
            }
            IpfsCommand::Quit => String::new(),
        }
    }
}
