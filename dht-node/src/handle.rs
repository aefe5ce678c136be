//! The handles an application holds: [`Handle`], generic over the overlay's
//! [`Protocol`], and [`Dht`], the Mainline handle (a [`Handle`] of [`Mainline`]
//! with a method per kind of request).
//!
//! Every method sends one command to the node task ([`crate::Runtime`]) and awaits
//! its end; `answer.rs` turns the core's outcome into the typed answer.

use std::net::SocketAddr;
use std::sync::Arc;

use dht_core::{Id, MutableItem, NodeInfo, QueryDone, Request};
use tokio::sync::{mpsc, oneshot};

use crate::answer::{Answer, FromOutcome, Peers, Samples, Scrape, Stored};
use crate::mainline::{Mainline, MainlineQuestion, RoutingInfo};
use crate::metrics::NodeMetrics;
use crate::overlay::{Command, Protocol};
use crate::{DhtBuilder, Error};

/// A handle to a running node of any overlay. Cheap to clone; every clone talks to
/// the same node. Overlays wrap it in their own handle ([`Dht`], `ChordHandle`) with
/// a method per command.
#[derive(Debug, Clone)]
pub struct Handle<P: Protocol> {
    pub(crate) tx: mpsc::Sender<Command<P>>,
    pub(crate) id: Id,
    pub(crate) local_addrs: Arc<Vec<SocketAddr>>,
}

impl<P: Protocol> Handle<P> {
    /// Our node id.
    pub fn id(&self) -> Id {
        self.id
    }

    /// The addresses the node is bound to (ports chosen by the OS filled in).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Runs one command on the node task and waits for its end.
    pub async fn request(&self, request: P::Request) -> Result<QueryDone<P::Outcome>, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Query { request, reply })
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?.map_err(P::refused)
    }

    /// Asks the node task a question about its state; `question` wraps the channel
    /// the answer comes back on.
    pub async fn ask<R>(
        &self,
        question: impl FnOnce(oneshot::Sender<R>) -> P::Question,
    ) -> Result<R, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Ask(question(reply)))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Stops the node: commands in progress fail with [`Error::Shutdown`], what the
    /// overlay keeps is saved, and the sockets are closed. Waits until done.
    pub async fn shutdown(&self) -> Result<(), Error> {
        // The task drops its receiver when it ends, which closes the channel: waiting
        // for that tells us it is gone, whoever asked first.
        let _ = self.tx.send(Command::Shutdown).await;
        self.tx.closed().await;
        Ok(())
    }
}

/// A handle to a running node. Cheap to clone; every clone talks to the same node.
///
/// Each method sends one command to the node task and waits for its answer. Lookups
/// that find nothing return `Ok` with an empty or `None` value; writes that no node
/// accepted return an [`Error`].
///
/// ```no_run
/// # async fn demo() -> Result<(), dht_node::Error> {
/// use dht_node::Dht;
///
/// let dht = Dht::builder().read_only(true).spawn()?;
/// dht.bootstrap(&["127.0.0.1:6881".parse().unwrap()]).await?;
/// let info_hash = dht_node::dht_core::Id([7; 20]);
/// dht.announce_peer(info_hash, Some(51413)).await?;
/// for peer in dht.get_peers(info_hash).await?.value.peers {
///     println!("{peer}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Dht {
    pub(crate) inner: Handle<Mainline>,
}

impl Dht {
    /// A builder for a node.
    ///
    /// ```
    /// let builder = dht_node::Dht::builder().k(8).read_only(false);
    /// # let _ = builder;
    /// ```
    pub fn builder() -> DhtBuilder {
        DhtBuilder::default()
    }

    /// Our node id.
    pub fn id(&self) -> Id {
        self.inner.id()
    }

    /// The addresses the node is bound to (ports chosen by the OS filled in).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.inner.local_addrs()
    }

    /// The generic handle underneath, for code written for any overlay.
    pub fn handle(&self) -> &Handle<Mainline> {
        &self.inner
    }

    /// Runs one request on the node task and converts its outcome to the answer type
    /// the caller expects ([`FromOutcome`], the one place outcomes are converted).
    async fn run<T: FromOutcome>(&self, request: Request) -> Result<Answer<T>, Error> {
        let done = self.inner.request(request).await?;
        Ok(Answer {
            value: T::from_outcome(done.outcome)?,
            stats: done.stats,
        })
    }

    /// Joins the DHT through `addrs` (routers or known nodes) by looking up our own id.
    /// Returns the closest nodes that answered; [`Error::NoResponse`] if none did.
    /// The addresses are also kept as seeds for when the routing table empties.
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> Result<Answer<Vec<NodeInfo>>, Error> {
        let seeds = addrs.to_vec();
        let joined: Answer<Vec<NodeInfo>> = self.run(Request::Bootstrap { seeds }).await?;
        if joined.value.is_empty() {
            return Err(Error::NoResponse);
        }
        Ok(joined)
    }

    /// Iterative `find_node`: the closest nodes to `target` that answered.
    pub async fn find_node(&self, target: Id) -> Result<Answer<Vec<NodeInfo>>, Error> {
        self.run(Request::FindNode { target }).await
    }

    /// Iterative `get_peers`: peers announced for `info_hash`.
    pub async fn get_peers(&self, info_hash: Id) -> Result<Answer<Peers>, Error> {
        self.run(Request::GetPeers { info_hash }).await
    }

    /// Announces that we accept BitTorrent connections for `info_hash` on `port`
    /// (`None`: the UDP source port, BEP 5's `implied_port`). Repeated every
    /// [`ANNOUNCE_REPUBLISH`](crate::ANNOUNCE_REPUBLISH) until [`Dht::stop_republishing`].
    pub async fn announce_peer(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<Answer<Stored>, Error> {
        let seed = false;
        self.run(Request::AnnouncePeer {
            info_hash,
            port,
            seed,
        })
        .await
    }

    /// [`Dht::announce_peer`] as a seed (BEP 33 `seed` = 1: we have the whole torrent),
    /// so that scrapes count us among the seeds. Republished the same way.
    pub async fn announce_seed(
        &self,
        info_hash: Id,
        port: Option<u16>,
    ) -> Result<Answer<Stored>, Error> {
        let seed = true;
        self.run(Request::AnnouncePeer {
            info_hash,
            port,
            seed,
        })
        .await
    }

    /// BEP 33 scrape: the estimated number of seeds and peers announced for
    /// `info_hash`, from the bloom filters of the nodes closest to it. Nodes that do not
    /// implement BEP 33 (the `mainline` crate, bittorrent-dht) contribute the peers they
    /// return, counted as non-seeds.
    pub async fn scrape(&self, info_hash: Id) -> Result<Answer<Scrape>, Error> {
        self.run(Request::Scrape { info_hash }).await
    }

    /// BEP 44 immutable get: the bencoded value stored under `target`, checked
    /// against it, or `None`.
    pub async fn get_immutable(&self, target: Id) -> Result<Answer<Option<Vec<u8>>>, Error> {
        self.run(Request::GetImmutable { target }).await
    }

    /// BEP 44 immutable put of a bencoded value (see [`crate::bencode_bytes`]); the target is
    /// its SHA-1. Republished every [`ITEM_REPUBLISH`](crate::ITEM_REPUBLISH) until [`Dht::stop_republishing`].
    /// A value that is too big or not bencode is refused before anything is sent.
    pub async fn put_immutable(&self, bencoded_value: Vec<u8>) -> Result<Answer<Stored>, Error> {
        let value = bencoded_value;
        self.run(Request::PutImmutable { value }).await
    }

    /// BEP 44 mutable get: the valid item of `key` and `salt` with the highest seq
    /// (above `min_seq` if given), or `None`. Signatures are checked.
    pub async fn get_mutable(
        &self,
        key: [u8; 32],
        salt: &[u8],
        min_seq: Option<i64>,
    ) -> Result<Answer<Option<MutableItem>>, Error> {
        let salt = salt.to_vec();
        self.run(Request::GetMutable { key, salt, min_seq }).await
    }

    /// BEP 44 mutable put of a signed item (see [`MutableItem::sign`]). With `cas`,
    /// nodes only accept it if their stored seq equals it. Refusals come back typed
    /// ([`Error::CasMismatch`], [`Error::SeqTooLow`], ...) when every node that
    /// answered refused. Republished like immutable items.
    ///
    /// ```no_run
    /// # async fn demo(dht: dht_node::Dht) -> Result<(), dht_node::Error> {
    /// use dht_node::dht_core::MutableItem;
    ///
    /// let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    /// let item = MutableItem::sign(&key, b"salt", 1, &dht_node::bencode_bytes(b"v1"));
    /// let put = dht.put_mutable(item, None).await?;
    /// println!("stored under {}", put.value.target);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_mutable(
        &self,
        item: MutableItem,
        cas: Option<i64>,
    ) -> Result<Answer<Stored>, Error> {
        self.run(Request::PutMutable { item, cas }).await
    }

    /// BEP 51: info_hash samples from nodes near `target`.
    pub async fn sample_infohashes(&self, target: Id) -> Result<Answer<Samples>, Error> {
        self.run(Request::SampleInfohashes { target }).await
    }

    /// Pings `addr`: the node that answered, or [`Error::NoResponse`].
    pub async fn ping(&self, addr: SocketAddr) -> Result<Answer<NodeInfo>, Error> {
        self.run(Request::Ping { addr }).await
    }

    /// The node's id, addresses, routing-table sizes and counters.
    pub async fn routing_table(&self) -> Result<RoutingInfo, Error> {
        self.inner.ask(MainlineQuestion::Info).await
    }

    /// Counters, routing tables by health and bucket, and store counts: what
    /// `/metrics` and `/readyz` report.
    pub async fn metrics(&self) -> Result<NodeMetrics, Error> {
        self.inner.ask(MainlineQuestion::Metrics).await
    }

    /// The item this node itself holds under `target` (put here by a peer or by
    /// us), without any network traffic; `None` if it holds none.
    pub async fn local_item(&self, target: Id) -> Result<Option<dht_core::Item>, Error> {
        self.inner
            .ask(|reply| MainlineQuestion::LocalItem(target, reply))
            .await
    }

    /// Stops republishing the item or announce under `target` (an item target or an
    /// info_hash). Returns whether it was being republished.
    pub async fn stop_republishing(&self, target: Id) -> Result<bool, Error> {
        self.inner
            .ask(|reply| MainlineQuestion::StopRepublishing(target, reply))
            .await
    }

    /// Stops the node: queries in progress fail with [`Error::Shutdown`], the routing
    /// table is saved to the store, and the sockets are closed. Waits until done.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.shutdown().await
    }
}
