//! The permits `--http` requests need to start DHT work, in three pools so that one
//! kind of request cannot starve another: reads (`GET` lookups, `--http-max-ops`,
//! each client at most `--http-max-reads-per-client` of them), writes (puts and
//! announces, `--http-max-writes`) and the lookups of watch pollers
//! (`--http-max-watch-lookups`).
//!
//! A permit ([`Held`]) moves into the task that awaits the DHT's answer and is
//! released only when the operation ends: the node cannot cancel a lookup it has
//! started, so a request whose client went away, or whose deadline passed, still
//! counts against its pool until its lookup is over. Without that, each closed
//! request freed its permit for a new lookup while the old one ran on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many of each pool's permits there are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSizes {
    pub(crate) reads: usize,
    pub(crate) reads_per_client: usize,
    pub(crate) writes: usize,
    pub(crate) watch_lookups: usize,
}

/// The pools.
#[derive(Debug)]
pub(crate) struct Permits {
    sizes: PoolSizes,
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
    watch_lookups: Arc<Semaphore>,
    /// Reads in flight per client.
    clients: Arc<Mutex<HashMap<Client, usize>>>,
}

/// Whom a read's share is counted against: an IPv4 address, or an IPv6 /64 (one
/// host commonly holds a whole /64, as the DHT's own defenses assume).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl Client {
    pub(crate) fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(_) => Client(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    Client(IpAddr::from(octets))
                }
            },
        }
    }
}

/// Why no permit was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Every permit of the pool is held.
    Pool,
    /// This client holds its whole share of the read pool.
    ClientShare,
}

/// A permit, held by the task that runs the operation until the operation ends.
#[derive(Debug)]
pub(crate) struct Held {
    _permit: OwnedSemaphorePermit,
    _share: Option<Share>,
}

/// One unit of a client's share; given back on drop.
#[derive(Debug)]
struct Share {
    clients: Arc<Mutex<HashMap<Client, usize>>>,
    client: Client,
}

impl Drop for Share {
    fn drop(&mut self) {
        // A poisoned lock means a holder panicked mid-update; the map is still usable.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = clients.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

impl Permits {
    pub(crate) fn new(sizes: PoolSizes) -> Permits {
        Permits {
            sizes,
            reads: Arc::new(Semaphore::new(sizes.reads)),
            writes: Arc::new(Semaphore::new(sizes.writes)),
            watch_lookups: Arc::new(Semaphore::new(sizes.watch_lookups)),
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A read permit for `client`, within its share.
    pub(crate) fn read(&self, client: Client) -> Result<Held, Busy> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let holding = clients.get(&client).copied().unwrap_or(0);
        if holding >= self.sizes.reads_per_client {
            return Err(Busy::ClientShare);
        }
        let permit = self
            .reads
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Pool)?;
        clients.insert(client, holding + 1);
        Ok(Held {
            _permit: permit,
            _share: Some(Share {
                clients: self.clients.clone(),
                client,
            }),
        })
    }

    pub(crate) fn write(&self) -> Result<Held, Busy> {
        let permit = self
            .writes
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Pool)?;
        Ok(Held {
            _permit: permit,
            _share: None,
        })
    }

    /// A permit for one lookup of a watch poller; `None` when all are held (the
    /// poller tries again at its next turn).
    pub(crate) fn watch_lookup(&self) -> Option<Held> {
        let permit = self.watch_lookups.clone().try_acquire_owned().ok()?;
        Some(Held {
            _permit: permit,
            _share: None,
        })
    }

    /// Operations running now, per pool: (reads, writes, watch lookups).
    pub(crate) fn in_flight(&self) -> (usize, usize, usize) {
        (
            self.sizes.reads - self.reads.available_permits(),
            self.sizes.writes - self.writes.available_permits(),
            self.sizes.watch_lookups - self.watch_lookups.available_permits(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits() -> Permits {
        Permits::new(PoolSizes {
            reads: 3,
            reads_per_client: 2,
            writes: 1,
            watch_lookups: 1,
        })
    }

    #[test]
    fn a_client_gets_its_share_and_no_more() {
        let p = permits();
        let a = Client::of("127.0.0.1".parse().unwrap());
        let b = Client::of("127.0.0.2".parse().unwrap());
        let a1 = p.read(a).unwrap();
        let _a2 = p.read(a).unwrap();
        assert_eq!(p.read(a).unwrap_err(), Busy::ClientShare);
        let _b1 = p.read(b).unwrap();
        assert_eq!(p.read(b).unwrap_err(), Busy::Pool);
        drop(a1);
        let _a3 = p.read(a).unwrap();
        assert_eq!(p.in_flight(), (3, 0, 0));
    }

    #[test]
    fn one_ipv6_slash_64_is_one_client() {
        let a = Client::of("2001:db8::1".parse().unwrap());
        let b = Client::of("2001:db8::ffff:1".parse().unwrap());
        let c = Client::of("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Client::of("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(mapped, Client::of("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn held_reads_leave_writes_and_watches_alone() {
        let p = permits();
        let a = Client::of("127.0.0.1".parse().unwrap());
        let b = Client::of("127.0.0.2".parse().unwrap());
        let _held = [p.read(a).unwrap(), p.read(a).unwrap(), p.read(b).unwrap()];
        assert!(p.write().is_ok());
        assert!(p.watch_lookup().is_some());
    }
}
