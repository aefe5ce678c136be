//! `--http`'s Delegated Routing V1 API (`/routing/v1/...`, `dht-ipfs-routing-http`)
//! over the node: [`NodeRouting`] answers its routes with the node's lookups, and
//! [`NodePool`] gives their permits from the same pools, sizes and per-client shares
//! as the Mainline node's `/v1/` API (`permits.rs`).
//!
//! Providers stream: [`IpfsHandle::provider_stream`] yields each provider as the
//! lookup learns it, so NDJSON sends the first line as soon as a provider is known,
//! and dropping the stream (a client gone away, the deadline, a full JSON answer)
//! cancels the lookup; the stream holds the request's permit until then. A peer we
//! are connected to and that has identified is answered at once from identify, as
//! go-libp2p's `FindPeer` answers a connected peer; any other is looked up. Records
//! carry the protocols the peer listed in identify when we are connected to it
//! (unknown, and left out, otherwise).
//!
//! The other lookups (a peer, an IPNS record) and the IPNS put run in a task of their
//! own that holds the request's permit until they end: a client that goes away ends
//! its request at once (the router drops the future), and its lookup stays counted
//! against the pool until it finishes, as `/v1/`'s do.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dht_ipfs::{IpnsRecord, PeerId, UnixMillis, IPNS_PREFIX};
use dht_ipfs_routing_http::{
    Busy, Cid, ContentRouting, PeerRecord, Permit, Pool, RoutingError, Work,
};
use dht_net_libp2p::{HostError, IpfsHandle};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use crate::cli::permits::{self, Client, PoolSizes};

/// The routes' routing: the node's own lookups.
#[derive(Debug)]
pub(super) struct NodeRouting {
    pub(super) node: IpfsHandle,
}

/// The routes' permits: the `/v1/` API's pools, at its default sizes.
#[derive(Debug)]
pub(super) struct NodePool(permits::Permits);

impl NodePool {
    pub(super) fn new() -> NodePool {
        use crate::cli::state::{
            MAX_DHT_OPS, MAX_DHT_WRITES, MAX_READS_PER_CLIENT, MAX_WATCH_LOOKUPS,
        };
        NodePool(permits::Permits::new(PoolSizes {
            reads: MAX_DHT_OPS,
            reads_per_client: MAX_READS_PER_CLIENT,
            writes: MAX_DHT_WRITES,
            watch_lookups: MAX_WATCH_LOOKUPS,
        }))
    }
}

impl Pool for NodePool {
    fn try_acquire(&self, work: Work, client: Option<IpAddr>) -> Result<Permit, Busy> {
        let held = match work {
            // `conn.rs` puts every request's address in; without one (never, here),
            // all unknown clients share one share.
            Work::Read => self.0.read(Client::of(
                client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            )),
            _ => self.0.write(),
        };
        match held {
            Ok(h) => Ok(Permit::new(h)),
            Err(permits::Busy::Pool) => Err(Busy::new(
                "too many DHT operations in flight from HTTP; retry later",
            )),
            Err(permits::Busy::ClientShare) => Err(Busy::new(
                "too many DHT operations in flight from this client; retry later",
            )),
        }
    }
}

/// Runs `work` in a task of its own holding `permit` until it ends; dropping the
/// returned future leaves the task running (the engine's lookup runs on anyway).
async fn detached<T: Send + 'static>(
    permit: Permit,
    work: impl Future<Output = Result<T, HostError>> + Send + 'static,
) -> Result<T, RoutingError> {
    let task = tokio::spawn(async move {
        let answer = work.await;
        drop(permit);
        answer
    });
    match task.await {
        Ok(answer) => answer.map_err(routing_error),
        Err(e) => Err(RoutingError::Failed(format!("the lookup's task: {e}"))),
    }
}

fn routing_error(e: HostError) -> RoutingError {
    match e {
        HostError::Stopped => RoutingError::Unavailable("the node is stopping".into()),
        HostError::Refused(e) => RoutingError::Refused(e.to_string()),
        e => RoutingError::Failed(e.to_string()),
    }
}

/// The protocols `peer` listed in identify, if we are connected to it; else none
/// (unknown).
async fn protocols_of(node: &IpfsHandle, peer: &PeerId) -> Vec<String> {
    let Ok(id) = libp2p::PeerId::from_bytes(peer.as_bytes()) else {
        return Vec::new();
    };
    match node.identified(&id).await {
        Ok(Some(known)) => known.protocols,
        _ => Vec::new(),
    }
}

/// The wall-clock time records are verified against.
pub(super) fn unix_millis_now() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as UnixMillis)
}

impl ContentRouting for NodeRouting {
    type Providers = BoxStream<'static, PeerRecord>;

    async fn find_providers(
        &self,
        cid: Cid,
        permit: Permit,
    ) -> Result<Self::Providers, RoutingError> {
        let key = cid.multihash().to_vec();
        let found = self
            .node
            .provider_stream(key)
            .await
            .map_err(routing_error)?;
        let node = self.node.clone();
        let records = found.then(move |p| {
            // Held as long as the stream, whose drop cancels the lookup.
            let _held = &permit;
            let node = node.clone();
            async move {
                let protocols = protocols_of(&node, p.id()).await;
                PeerRecord {
                    protocols,
                    ..PeerRecord::new(p.id().clone(), p.addrs().to_vec())
                }
            }
        });
        Ok(records.boxed())
    }

    async fn find_peer(
        &self,
        peer: PeerId,
        permit: Permit,
    ) -> Result<Option<PeerRecord>, RoutingError> {
        let Ok(id) = libp2p::PeerId::from_bytes(peer.as_bytes()) else {
            // A multihash libp2p does not take as a PeerId names no reachable peer.
            return Ok(None);
        };
        if let Ok(Some(known)) = self.node.identified(&id).await {
            if !known.peer.addrs().is_empty() {
                return Ok(Some(PeerRecord {
                    protocols: known.protocols,
                    ..PeerRecord::new(peer, known.peer.addrs().to_vec())
                }));
            }
        }
        let node = self.node.clone();
        let found = detached(permit, async move { node.find_peer(&id).await }).await?;
        let Some(found) = found else {
            return Ok(None);
        };
        // The lookup may have reached the peer itself, which then identified.
        let protocols = protocols_of(&self.node, found.id()).await;
        Ok(Some(PeerRecord {
            protocols,
            ..PeerRecord::new(peer, found.addrs().to_vec())
        }))
    }

    async fn get_ipns(&self, name: PeerId, permit: Permit) -> Result<Option<Bytes>, RoutingError> {
        let node = self.node.clone();
        let key = [IPNS_PREFIX, name.as_bytes()].concat();
        // The engine returns the best record that validates now.
        let found = detached(permit, async move { node.get_record(key).await }).await?;
        Ok(found.map(|r| Bytes::from(r.value)))
    }

    async fn put_ipns(
        &self,
        name: PeerId,
        record: Bytes,
        permit: Permit,
    ) -> Result<(), RoutingError> {
        let key = [IPNS_PREFIX, name.as_bytes()].concat();
        // The router verified it already; checked again here, where the key is built.
        IpnsRecord::verify(&key, &record, unix_millis_now())
            .map_err(|e| RoutingError::Refused(format!("the IPNS record: {e}")))?;
        let node = self.node.clone();
        let value = record.to_vec();
        let (acks, sent) =
            detached(permit, async move { node.put_record(key, value).await }).await?;
        if acks == 0 {
            return Err(RoutingError::Unavailable(format!(
                "no server took the record (sent to {sent})"
            )));
        }
        Ok(())
    }
}

/// `--http-token-file` guards the one write of `/routing/v1/` (an IPNS PUT) as it
/// guards the Mainline node's `/v1/` writes: `Authorization: Bearer TOKEN`, else 401.
pub(super) async fn guard_writes(
    token: Option<Arc<str>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if let Some(token) = token {
        let writes = request.method() == Method::PUT;
        if writes && !crate::cli::api::bearer_matches(&token, request.headers()) {
            let body = serde_json::json!({
                "error": "this write needs Authorization: Bearer <token>"
            });
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(body),
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dht_ipfs_routing_http::Pools;

    use super::*;

    /// The routes draw from the `/v1/` API's pools: a client's share of the reads,
    /// then 503; writes from their own pool.
    #[test]
    fn reads_are_shared_per_client() {
        let pool = NodePool::new();
        let a = Some("127.0.0.1".parse().expect("ip"));
        let b = Some("127.0.0.2".parse().expect("ip"));
        let held: Vec<Permit> = (0..crate::cli::state::MAX_READS_PER_CLIENT)
            .map(|_| pool.try_acquire(Work::Read, a).expect("within the share"))
            .collect();
        assert!(pool.try_acquire(Work::Read, a).is_err());
        assert!(pool.try_acquire(Work::Read, b).is_ok());
        assert!(pool.try_acquire(Work::Write, a).is_ok());
        drop(held);
        assert!(pool.try_acquire(Work::Read, a).is_ok());
    }

    /// A request given up (its future dropped) ends at once, and its lookup keeps the
    /// permit until the lookup itself ends.
    #[tokio::test]
    async fn a_dropped_request_keeps_its_lookup_counted() {
        let pools = Pools::new(1, 1);
        let permit = pools.try_acquire(Work::Read, None).expect("a permit");
        let lookup = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, HostError>(())
        };
        let request = detached(permit, lookup);
        // The client goes away after 50 ms.
        assert!(tokio::time::timeout(Duration::from_millis(50), request)
            .await
            .is_err());
        assert!(
            pools.try_acquire(Work::Read, None).is_err(),
            "still counted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            pools.try_acquire(Work::Read, None).is_ok(),
            "freed at its end"
        );
    }
}
