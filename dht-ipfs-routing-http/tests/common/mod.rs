//! What the tests share: a fake [`ContentRouting`] that tells when its lookups start
//! and are dropped, the router served on 127.0.0.1 over real TCP, an HTTP/1.1 client
//! (hyper's), and the js-ipns fixtures of dht-ipfs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dht_ipfs::PeerId;
use dht_ipfs_routing_http::{
    router, Cid, Config, ContentRouting, PeerRecord, Permit, Pool, RoutingError,
};
use futures_util::{stream, Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How the fake's provider lookups behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Answer what the fake holds, then end.
    Finish,
    /// Never answer.
    Hang,
    /// Stream what the fake holds, then never end.
    HangAfterResults,
    /// Never answer, and keep the permit beyond the lookup's future (as a node does
    /// whose lookups run on when their request is given up), until `kept` is cleared.
    HangKeepingPermit,
}

/// What the fake reports of its lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Started,
    Dropped,
}

/// Sends [`Event::Dropped`] when the lookup holding it is dropped.
struct Guard(UnboundedSender<Event>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.send(Event::Dropped);
    }
}

/// A router that answers from maps, and can hang.
pub struct Fake {
    pub providers: Mutex<HashMap<Vec<u8>, Vec<PeerRecord>>>,
    pub peers: Mutex<HashMap<PeerId, PeerRecord>>,
    pub ipns: Mutex<HashMap<PeerId, Bytes>>,
    pub lookup: Mutex<Lookup>,
    /// What IPNS gets and puts fail with, if set.
    pub fail: Mutex<Option<RoutingError>>,
    /// Permits kept by `Lookup::HangKeepingPermit`.
    pub kept: Mutex<Vec<Permit>>,
    events: UnboundedSender<Event>,
}

impl Fake {
    pub fn new() -> (Arc<Fake>, UnboundedReceiver<Event>) {
        let (tx, rx) = unbounded_channel();
        let fake = Fake {
            providers: Mutex::default(),
            peers: Mutex::default(),
            ipns: Mutex::default(),
            lookup: Mutex::new(Lookup::Finish),
            fail: Mutex::default(),
            kept: Mutex::default(),
            events: tx,
        };
        (Arc::new(fake), rx)
    }

    pub fn set_lookup(&self, l: Lookup) {
        *self.lookup.lock().unwrap() = l;
    }
}

type Providers = Pin<Box<dyn Stream<Item = PeerRecord> + Send>>;

impl ContentRouting for Fake {
    type Providers = Providers;

    async fn find_providers(&self, cid: Cid, permit: Permit) -> Result<Providers, RoutingError> {
        let found = self
            .providers
            .lock()
            .unwrap()
            .get(cid.multihash())
            .cloned()
            .unwrap_or_default();
        let mode = *self.lookup.lock().unwrap();
        match mode {
            Lookup::Finish => Ok(Box::pin(stream::iter(found))),
            Lookup::HangKeepingPermit => {
                self.kept.lock().unwrap().push(permit);
                let _guard = Guard(self.events.clone());
                let _ = self.events.send(Event::Started);
                match std::future::pending::<Infallible>().await {}
            }
            Lookup::Hang => {
                let _guard = Guard(self.events.clone());
                let _ = self.events.send(Event::Started);
                match std::future::pending::<Infallible>().await {}
            }
            Lookup::HangAfterResults => {
                let guard = Guard(self.events.clone());
                let _ = self.events.send(Event::Started);
                let endless = stream::iter(found).chain(stream::pending()).map(move |r| {
                    let _held = &guard;
                    r
                });
                Ok(Box::pin(endless))
            }
        }
    }

    async fn find_peer(&self, peer: PeerId, _: Permit) -> Result<Option<PeerRecord>, RoutingError> {
        Ok(self.peers.lock().unwrap().get(&peer).cloned())
    }

    async fn get_ipns(&self, name: PeerId, _: Permit) -> Result<Option<Bytes>, RoutingError> {
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(self.ipns.lock().unwrap().get(&name).cloned())
    }

    async fn put_ipns(&self, name: PeerId, record: Bytes, _: Permit) -> Result<(), RoutingError> {
        if let Some(e) = self.fail.lock().unwrap().clone() {
            return Err(e);
        }
        self.ipns.lock().unwrap().insert(name, record);
        Ok(())
    }
}

/// Serves the router over `routing` on 127.0.0.1, with the client's address in each
/// request.
pub async fn serve(routing: Arc<Fake>, pool: impl Pool, config: Config) -> SocketAddr {
    let app = router(routing, pool, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    addr
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One request on a new connection, within 10 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let run = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "x");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let response = send
            .send_request(r.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 10 s"))
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(addr, "GET", path, headers, Vec::new()).await
}

/// The next event of the fake, within 5 s.
pub async fn next_event(events: &mut UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("no event from the fake router within 5 s")
        .unwrap()
}

/// A PeerId of a SHA-256 multihash (`Qm…`) made of `n`.
pub fn peer(n: u8) -> PeerId {
    PeerId::from_bytes(&[&[0x12, 0x20][..], &[n; 32]].concat()).unwrap()
}

pub fn record(n: u8) -> PeerRecord {
    let addr = format!("/ip4/127.0.0.{n}/tcp/4001").parse().unwrap();
    PeerRecord {
        id: peer(n),
        addrs: vec![addr],
        protocols: vec!["transport-bitswap".into()],
    }
}

/// One js-ipns record of dht-ipfs's fixtures: its name and its bytes.
pub fn fixture(name: &str) -> (PeerId, Vec<u8>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dht-ipfs/tests/fixtures/ipns/records.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "validate" && f[1] == name {
            let key = hex(f[4]);
            let id = PeerId::from_bytes(key.strip_prefix(b"/ipns/").unwrap()).unwrap();
            return (id, hex(f[5]));
        }
    }
    panic!("no fixture {name}")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
