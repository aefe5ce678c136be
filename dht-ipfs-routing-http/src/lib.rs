//! # dht-ipfs-routing-http: the IPFS Delegated Routing V1 HTTP API
//!
//! The routes of `specs.ipfs.tech/routing/http-routing-v1`, as an axum [`Router`] over
//! any [`ContentRouting`]: browsers and IPFS tools (Helia, Kubo's delegated routing
//! client) use a node that serves them as their router.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /routing/v1/providers/{cid}` | `{"Providers": [peer records]}`, at most 100, or NDJSON |
//! | `GET /routing/v1/peers/{peer-id}` | `{"Peers": [the peer's record]}`, or NDJSON |
//! | `GET /routing/v1/ipns/{name}` | the `IpnsEntry` (`application/vnd.ipfs.ipns-record`) |
//! | `PUT /routing/v1/ipns/{name}` | 200 once published |
//!
//! A record is the spec's `peer` schema: `{"Schema": "peer", "ID": "12D3Koo…",
//! "Addrs": ["/ip4/…"], "Protocols": […]}`, `Protocols` left out when unknown (as
//! boxo's server does; the spec reads missing and empty alike). NDJSON, one record per line, streamed as
//! the lookup finds them, is sent only to an `Accept: application/x-ndjson`. The
//! providers and peers routes take IPIP-484's `?filter-addrs=` and `?filter-protocols=`.
//! A CID is a CIDv0 (`Qm…`) or a multibase CIDv1; a PeerId or an IPNS name is a bare
//! base58btc multihash (`12D3Koo…`, `Qm…`) or a CIDv1 of codec `libp2p-key`
//! (`k51…`, `bafz…`), in the peers and IPNS routes alike.
//!
//! **Statuses** (the spec's, and boxo's reference server's where the spec leaves a
//! choice): 404 when nothing is found; 400 for a malformed CID, PeerId or name, for
//! an IPNS record that does not verify against its name now (with dht-ipfs's
//! validator), and for an unknown path under `/routing/v1/`; 406 for an IPNS GET
//! whose `Accept` does not name `application/vnd.ipfs.ipns-record`, an IPNS PUT of
//! another `Content-Type`, or a JSON route asked for neither JSON nor NDJSON; 413
//! for a PUT body over 10 KiB (the largest IPNS record); 501 for another method on a
//! route; 503 when no [`Permit`] is free; 504 when the lookup finds nothing within
//! [`Config::deadline`] (an NDJSON stream just ends there). Errors are
//! `{"error": message}`.
//!
//! **Headers**, as the spec suggests: records found are cached for 5 minutes, nothing
//! found for 15 seconds, either served stale for up to 48 hours (the provider record
//! lifetime); an IPNS record for its TTL (60 s without one), stale while it stays
//! valid, with `Expires` at its end of life and an `Etag`; every answer has `Vary:
//! Accept`. CORS: every answer allows any origin and `GET, OPTIONS` (`GET, PUT,
//! OPTIONS` under `/routing/v1/ipns/`), and a preflight is answered 204.
//!
//! **Bounds.** Each request's routing call holds a [`Permit`] of the [`Pool`] the
//! caller passes in ([`Pools`]: two tokio semaphores; or the node's own pools) and is
//! refused 503 at once when none is free. The call is awaited in the request's own
//! future, so a client that goes away drops it: see [`ContentRouting`]'s cancel
//! safety. Per-client shares need the client's address: serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`, or put axum's
//! `ConnectInfo<SocketAddr>` in each request's extensions.
//!
//! The router has its state applied: it merges into an application once that one has
//! its own (`app.with_state(state).merge(router(routing, pool, config))`), and reads
//! its PUT bodies with its own bound, whatever body limit the application sets.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use bytes::Bytes;
//! use dht_ipfs::PeerId;
//! use dht_ipfs_routing_http::{
//!     router, Cid, Config, ContentRouting, PeerRecord, Permit, Pools, RoutingError,
//! };
//! use futures_util::stream::{self, Iter};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! /// Knows one provider, of everything.
//! struct Toy(PeerRecord);
//!
//! impl ContentRouting for Toy {
//!     type Providers = Iter<std::vec::IntoIter<PeerRecord>>;
//!     async fn find_providers(&self, _: Cid, _: Permit) -> Result<Self::Providers, RoutingError> {
//!         Ok(stream::iter(vec![self.0.clone()]))
//!     }
//!     async fn find_peer(&self, peer: PeerId, _: Permit) -> Result<Option<PeerRecord>, RoutingError> {
//!         Ok((peer == self.0.id).then(|| self.0.clone()))
//!     }
//!     async fn get_ipns(&self, _: PeerId, _: Permit) -> Result<Option<Bytes>, RoutingError> {
//!         Ok(None)
//!     }
//!     async fn put_ipns(&self, _: PeerId, _: Bytes, _: Permit) -> Result<(), RoutingError> {
//!         Err(RoutingError::Refused("this toy keeps no names".into()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = PeerId::from_bytes(&[&[0x12, 0x20][..], &[7; 32]].concat())?;
//! let toy = Toy(PeerRecord::new(id, vec!["/ip4/127.0.0.1/tcp/4001".parse()?]));
//! let app = router(Arc::new(toy), Pools::new(64, 16), Config::default());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let service = app.into_make_service_with_connect_info::<SocketAddr>();
//! tokio::spawn(async move { axum::serve(listener, service).await });
//!
//! let mut conn = tokio::net::TcpStream::connect(addr).await?;
//! let cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
//! let request = format!("GET /routing/v1/providers/{cid} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
//! conn.write_all(request.as_bytes()).await?;
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
//! assert!(answer.contains(r#"{"Providers":[{"Schema":"peer","ID":"Qm"#), "{answer}");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod filter;
mod headers;
mod parse;
mod permit;
mod routing;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{any, get};
use axum::Router;

pub use parse::{parse_peer_id, peer_id_base36_cid, peer_id_base58, Cid, MAX_ID_LEN};
pub use permit::{Busy, Permit, Pool, Pools, Work};
pub use routing::{ContentRouting, PeerRecord, RoutingError};

/// What the router may spend per request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Most records in a JSON answer (the spec's SHOULD: 100). The lookup is dropped
    /// once it has found them; NDJSON streams every record found before the deadline.
    pub json_records: usize,
    /// How long one request's routing may take: past it, 504 if nothing was found,
    /// and an NDJSON stream ends. 30 s, like dht-node's `/v1/` API and boxo's server.
    pub deadline: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            json_records: 100,
            deadline: Duration::from_secs(30),
        }
    }
}

/// The Delegated Routing V1 routes over `routing`, each lookup under a permit of
/// `pool`, with CORS on every answer.
pub fn router<R: ContentRouting, P: Pool>(routing: Arc<R>, pool: P, config: Config) -> Router {
    use serve::{not_implemented, unknown_path};
    let api = Arc::new(serve::Api {
        routing,
        pool,
        config,
    });
    let providers = get(serve::providers::<R, P>);
    let peers = get(serve::peers::<R, P>);
    let ipns = get(serve::get_ipns::<R, P>).put(serve::put_ipns::<R, P>);
    Router::new()
        .route(
            "/routing/v1/providers/{cid}",
            providers
                .options(headers::preflight)
                .fallback(not_implemented),
        )
        .route(
            "/routing/v1/peers/{peer_id}",
            peers.options(headers::preflight).fallback(not_implemented),
        )
        .route(
            "/routing/v1/ipns/{name}",
            ipns.options(headers::preflight).fallback(not_implemented),
        )
        // Provide (IPIP-378) is not served.
        .route("/routing/v1/providers", any(not_implemented))
        .route("/routing/v1/{*path}", any(unknown_path))
        .layer(axum::middleware::from_fn(headers::cors))
        .with_state(api)
}
