//! Inbound `/ipfs/kad/1.0.0` streams as go-libp2p-kad-dht uses them, seen from a raw
//! libp2p client (a minimal connection handler that opens bare kad streams): several
//! requests on one stream, each answered; a malformed message resets the stream; a
//! silent stream is closed after the idle timeout.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use dht_ipfs::wire::{self, Message, MessageType};
use dht_ipfs::{MemStore, Mode, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost, Limits};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::{mpsc, oneshot};

const KAD: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");

/// Opens one bare kad stream per request and hands it back.
struct RawHandler {
    queue: VecDeque<oneshot::Sender<Stream>>,
    waiting: VecDeque<oneshot::Sender<Stream>>,
}

impl ConnectionHandler for RawHandler {
    type FromBehaviour = oneshot::Sender<Stream>;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        true
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<ReadyUpgrade<StreamProtocol>, (), Infallible>> {
        match self.queue.pop_front() {
            Some(tx) => {
                self.waiting.push_back(tx);
                Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                    protocol: SubstreamProtocol::new(ReadyUpgrade::new(KAD), ()),
                })
            }
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, tx: oneshot::Sender<Stream>) {
        self.queue.push_back(tx);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, DeniedUpgrade, ReadyUpgrade<StreamProtocol>>,
    ) {
        if let ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
            protocol, ..
        }) = event
        {
            if let Some(tx) = self.waiting.pop_front() {
                let _ = tx.send(protocol);
            }
        }
    }
}

#[derive(Default)]
struct Raw {
    connected: Option<(PeerId, ConnectionId)>,
    asks: VecDeque<oneshot::Sender<Stream>>,
}

impl NetworkBehaviour for Raw {
    type ConnectionHandler = RawHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(RawHandler {
            queue: VecDeque::new(),
            waiting: VecDeque::new(),
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(RawHandler {
            queue: VecDeque::new(),
            waiting: VecDeque::new(),
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        if let FromSwarm::ConnectionEstablished(c) = event {
            self.connected = Some((c.peer_id, c.connection_id));
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        if let Some((peer_id, conn)) = self.connected {
            if let Some(tx) = self.asks.pop_front() {
                return Poll::Ready(ToSwarm::NotifyHandler {
                    peer_id,
                    handler: NotifyHandler::One(conn),
                    event: tx,
                });
            }
        }
        Poll::Pending
    }
}

/// A raw client connected to `to`: each receive on the returned channel's answer is a
/// new bare kad stream.
async fn raw_client(to: &IpfsHandle) -> mpsc::Sender<oneshot::Sender<Stream>> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("transport")
        .with_behaviour(|_| Raw::default())
        .expect("behaviour")
        .build();
    swarm.dial(to.dial_addrs()[0].clone()).expect("dial");
    let (tx, mut rx) = mpsc::channel::<oneshot::Sender<Stream>>(8);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ask = rx.recv() => match ask {
                    Some(ask) => swarm.behaviour_mut().asks.push_back(ask),
                    None => return,
                },
                _ = swarm.select_next_some() => {}
            }
        }
    });
    tx
}

async fn open(client: &mpsc::Sender<oneshot::Sender<Stream>>) -> Stream {
    let (tx, rx) = oneshot::channel();
    client.send(tx).await.expect("client runs");
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("stream opens in time")
        .expect("stream opens")
}

/// Reads one reply frame; `None` on EOF or reset.
async fn read_reply(s: &mut Stream) -> Option<Message> {
    let mut frame = Vec::new();
    loop {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.ok()? == 0 {
            return None;
        }
        frame.push(b[0]);
        if let Some((_, len)) = wire::frame_header(&frame, 1 << 20).ok()? {
            let head = frame.len();
            frame.resize(head + len, 0);
            s.read_exact(&mut frame[head..]).await.ok()?;
            return wire::decode_frame(&frame, 1 << 20).ok();
        }
    }
}

async fn server(limits: Limits) -> IpfsHandle {
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    let mut config = HostConfig::new(libp2p::identity::Keypair::generate_ed25519(), listen);
    config.mode = Mode::Server;
    config.limits = limits;
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

fn find_node(key: &[u8]) -> Vec<u8> {
    wire::encode_frame(&Message::new(MessageType::FindNode, key.to_vec()))
}

/// go keeps a stream open and sends request after request on it: each is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_requests_on_one_stream() {
    let host = server(Limits::default()).await;
    let client = raw_client(&host).await;
    let mut s = open(&client).await;
    for i in 0..3u8 {
        s.write_all(&find_node(&[i; 8])).await.expect("write");
        s.flush().await.expect("flush");
        let reply = read_reply(&mut s).await.expect("a reply");
        assert_eq!(reply.kind(), Some(MessageType::FindNode));
    }
    s.close().await.expect("close");
    assert!(
        read_reply(&mut s).await.is_none(),
        "we close after the peer"
    );
}

/// A malformed message resets the stream; the connection serves a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_resets_the_stream() {
    let host = server(Limits::default()).await;
    let client = raw_client(&host).await;
    let mut s = open(&client).await;
    // A length of 3, then a protobuf group start (wire type 3), which kad never has.
    s.write_all(&[3, 0x0b, 0x00, 0x00]).await.expect("write");
    s.flush().await.expect("flush");
    let reset = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut s)).await;
    assert!(
        matches!(reset, Ok(None)),
        "a malformed message left its stream open"
    );
    // A length prefix that is no varint (more than 9 bytes) resets it too.
    let mut s = open(&client).await;
    s.write_all(&[0xff; 12]).await.expect("write");
    s.flush().await.expect("flush");
    let reset = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut s)).await;
    assert!(
        matches!(reset, Ok(None)),
        "a malformed prefix left its stream open"
    );
    let mut again = open(&client).await;
    again.write_all(&find_node(b"again")).await.expect("write");
    assert!(read_reply(&mut again).await.is_some());
}

/// A stream silent for the idle timeout is closed by us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_is_closed() {
    let limits = Limits {
        inbound_idle: Duration::from_millis(300),
        ..Limits::default()
    };
    let host = server(limits).await;
    let client = raw_client(&host).await;
    let mut s = open(&client).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut s)).await;
    assert!(
        matches!(closed, Ok(None)),
        "an idle stream stayed open past the idle timeout"
    );
}
