//! The bounds, over real TCP on 127.0.0.1: a lookup without a free permit is refused
//! 503 (reads and writes from pools of their own), a client that goes away drops its
//! lookup (and its permit), a lookup past its deadline ends, and a PUT body is read
//! no further than 10 KiB.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fixture, get, next_event, record, request, serve, Event, Fake, Lookup};
use dht_ipfs_routing_http::{peer_id_base36_cid, Busy, Cid, Config, Permit, Pool, Pools, Work};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IPNS: &str = "application/vnd.ipfs.ipns-record";
const CID: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

/// A connection that has sent `head` (and whatever body follows it).
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    tcp
}

/// Reads until `until` has arrived, within 5 s; returns what was read.
async fn read_until(tcp: &mut TcpStream, until: &str) -> String {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(until) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {until:?}: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("{until:?} did not arrive within 5 s"))
}

fn get_head(path: &str, accept: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn without_a_free_permit_a_lookup_is_503_and_writes_have_their_own_pool() {
    let (fake, mut events) = Fake::new();
    fake.set_lookup(Lookup::Hang);
    let addr = serve(fake.clone(), Pools::new(1, 1), Config::default()).await;
    let path = format!("/routing/v1/providers/{CID}");
    let held = send_raw(addr, &get_head(&path, "application/json")).await;
    assert_eq!(next_event(&mut events).await, Event::Started);

    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 503);
    assert!(a.json()["error"].as_str().unwrap().contains("too many"));
    assert_eq!(a.header("access-control-allow-origin"), "*");
    let (name, record) = fixture("v1v2");
    let ipns = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let a = get(addr, &ipns, &[("accept", IPNS)]).await;
    assert_eq!(a.status, 503, "the IPNS GET draws on the read pool too");
    let a = request(addr, "PUT", &ipns, &[("content-type", IPNS)], record).await;
    assert_eq!(a.status, 200, "a held read refuses no write");

    // The held lookup's client leaves: its permit is free again.
    drop(held);
    assert_eq!(next_event(&mut events).await, Event::Dropped);
    fake.set_lookup(Lookup::Finish);
    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn a_client_that_goes_away_drops_its_lookup() {
    let (fake, mut events) = Fake::new();
    fake.set_lookup(Lookup::Hang);
    let addr = serve(fake.clone(), Pools::new(1, 1), Config::default()).await;
    let path = format!("/routing/v1/providers/{CID}");
    let tcp = send_raw(addr, &get_head(&path, "application/json")).await;
    assert_eq!(next_event(&mut events).await, Event::Started);
    drop(tcp);
    assert_eq!(next_event(&mut events).await, Event::Dropped);

    // A client reading an NDJSON stream goes away after the first record: the stream
    // of providers, still looking, is dropped.
    let key = Cid::parse(CID).unwrap().multihash().to_vec();
    fake.providers.lock().unwrap().insert(key, vec![record(1)]);
    fake.set_lookup(Lookup::HangAfterResults);
    let mut tcp = send_raw(addr, &get_head(&path, "application/x-ndjson")).await;
    assert_eq!(next_event(&mut events).await, Event::Started);
    let head = read_until(&mut tcp, "\"Schema\":\"peer\"").await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    drop(tcp);
    assert_eq!(next_event(&mut events).await, Event::Dropped);

    // The one read permit is back.
    fake.set_lookup(Lookup::Finish);
    assert_eq!(get(addr, &path, &[]).await.status, 200);
}

#[tokio::test]
async fn a_lookup_past_its_deadline_ends() {
    let (fake, mut events) = Fake::new();
    fake.set_lookup(Lookup::Hang);
    let mut config = Config::default();
    config.deadline = Duration::from_millis(300);
    let addr = serve(fake.clone(), Pools::new(1, 1), config).await;
    let path = format!("/routing/v1/providers/{CID}");
    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 504);
    assert_eq!(next_event(&mut events).await, Event::Started);
    assert_eq!(next_event(&mut events).await, Event::Dropped);

    // A stream that would never end ends at the deadline, with what it found.
    let key = Cid::parse(CID).unwrap().multihash().to_vec();
    fake.providers
        .lock()
        .unwrap()
        .insert(key, vec![record(1), record(2)]);
    fake.set_lookup(Lookup::HangAfterResults);
    let a = get(addr, &path, &[("accept", "application/x-ndjson")]).await;
    assert_eq!(a.status, 200);
    assert_eq!(std::str::from_utf8(&a.body).unwrap().lines().count(), 2);
    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["Providers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_put_body_is_read_no_further_than_10_kib() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake.clone(), Pools::new(1, 1), Config::default()).await;
    let headers = [("content-type", IPNS)];

    let (name, at_limit) = fixture("at-10-kib");
    assert_eq!(at_limit.len(), 10 * 1024);
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let a = request(addr, "PUT", &path, &headers, at_limit).await;
    assert_eq!(a.status, 200);

    let (name, over) = fixture("over-10-kib");
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let a = request(addr, "PUT", &path, &headers, over).await;
    assert_eq!(a.status, 413);

    // A declared length over the bound is refused before any of the body is sent.
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {IPNS}\r\nContent-Length: 1000000\r\n\r\n"
    );
    let mut tcp = send_raw(addr, head.as_bytes()).await;
    let answer = read_until(&mut tcp, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A chunked body is read up to the bound, and refused there.
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {IPNS}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut tcp = send_raw(addr, head.as_bytes()).await;
    let chunk = vec![b'a'; 11 * 1024];
    tcp.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await
        .unwrap();
    tcp.write_all(&chunk).await.unwrap();
    tcp.write_all(b"\r\n").await.unwrap();
    let answer = read_until(&mut tcp, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(fake.ipns.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_implementation_that_keeps_its_permit_keeps_its_work_counted() {
    let (fake, mut events) = Fake::new();
    fake.set_lookup(Lookup::HangKeepingPermit);
    let addr = serve(fake.clone(), Pools::new(1, 1), Config::default()).await;
    let path = format!("/routing/v1/providers/{CID}");
    let tcp = send_raw(addr, &get_head(&path, "application/json")).await;
    assert_eq!(next_event(&mut events).await, Event::Started);
    drop(tcp);
    assert_eq!(next_event(&mut events).await, Event::Dropped);
    // The request is gone, but the work it started (here: the kept permit) is not.
    fake.set_lookup(Lookup::Finish);
    assert_eq!(get(addr, &path, &[]).await.status, 503);
    fake.kept.lock().unwrap().clear();
    assert_eq!(get(addr, &path, &[]).await.status, 404);
}

/// What a pool was asked for, by whom.
type Asked = Arc<Mutex<Vec<(Work, Option<IpAddr>)>>>;

/// Pools that write down who asked for what.
struct Recording {
    pools: Pools,
    asked: Asked,
}

impl Pool for Recording {
    fn try_acquire(&self, work: Work, client: Option<IpAddr>) -> Result<Permit, Busy> {
        self.asked.lock().unwrap().push((work, client));
        self.pools.try_acquire(work, client)
    }
}

#[tokio::test]
async fn the_pool_is_told_the_work_and_the_client() {
    let (fake, _events) = Fake::new();
    let asked: Asked = Arc::default();
    let pool = Recording {
        pools: Pools::new(4, 4),
        asked: asked.clone(),
    };
    let addr = serve(fake, pool, Config::default()).await;
    get(addr, &format!("/routing/v1/providers/{CID}"), &[]).await;
    let (name, good) = fixture("v1v2");
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let a = request(addr, "PUT", &path, &[("content-type", IPNS)], good).await;
    assert_eq!(a.status, 200);
    // A refused request takes no permit.
    get(addr, "/routing/v1/providers/notacid", &[]).await;
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        *asked.lock().unwrap(),
        [(Work::Read, Some(loopback)), (Work::Write, Some(loopback))]
    );
}
