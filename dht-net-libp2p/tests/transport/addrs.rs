//! Which addresses a host keeps, and when auto mode turns it into a server, on
//! loopback: a test that needs "public" addresses gives the host a classification
//! (`HostConfig::locality`) under which some loopback addresses count as public, so
//! nothing outside this machine is ever dialed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dht_core::Locality;
use dht_ipfs::{MemStore, Mode, PeerInfo, StoreLimits};
use dht_net_libp2p::{HostConfig, IpfsHandle, IpfsHost};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// 127.0.0.1 plays the Internet (what peers see of a host that dials from it).
fn internet_at_127_0_0_1(ip: IpAddr) -> Locality {
    match ip {
        IpAddr::V4(a) if a.octets() == [127, 0, 0, 1] => Locality::Public,
        ip => dht_core::locality(ip),
    }
}

fn addrs(list: &[&str]) -> Vec<Multiaddr> {
    list.iter().map(|a| a.parse().expect("multiaddr")).collect()
}

async fn host(config: HostConfig) -> IpfsHandle {
    IpfsHost::spawn(config, MemStore::new(StoreLimits::default()))
        .await
        .expect("host starts")
}

async fn server(listen: &[&str], locality: fn(IpAddr) -> Locality) -> IpfsHandle {
    let mut config = HostConfig::new(Keypair::generate_ed25519(), addrs(listen));
    config.locality = locality;
    host(config).await
}

/// `peer`'s first listen address, dialable.
fn dial(peer: &IpfsHandle) -> Multiaddr {
    peer.listen_addrs()[0]
        .clone()
        .with(Protocol::P2p(peer.peer_id()))
}

/// `node`'s table entry for `peer`, once it has one (up to 5 s).
async fn entry(node: &IpfsHandle, peer: &IpfsHandle) -> PeerInfo {
    let id = peer.peer_id().to_bytes();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let table = node.table_peers().await.expect("table");
        if let Some(p) = table.into_iter().find(|p| p.id().as_bytes() == id) {
            return p;
        }
        assert!(Instant::now() < deadline, "peer never entered the table");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn is_server(node: &IpfsHandle) -> bool {
    node.status().await.expect("status").server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_host_keeps_only_the_public_addresses_of_a_public_peer() {
    // Under this classification 127.0.0.1 is public and 127.0.0.7 loopback. The peer
    // (on loopback to itself, so it lists both in identify) dials from 127.0.0.1.
    let peer = server(
        &["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.7/tcp/0"],
        dht_core::locality,
    )
    .await;
    let mut listed = peer.listen_addrs().to_vec();
    listed.sort();
    let public_one: Vec<Multiaddr> = listed
        .iter()
        .filter(|a| a.to_string().starts_with("/ip4/127.0.0.1/"))
        .cloned()
        .collect();
    // A public host, and one on loopback; the peer joins through each, so that each
    // learns of it from identify alone (a requester does not enter a table).
    let public = server(&["/ip4/127.0.0.1/tcp/0"], internet_at_127_0_0_1).await;
    let local = server(&["/ip4/127.0.0.5/tcp/0"], internet_at_127_0_0_1).await;
    for node in [&public, &local] {
        peer.bootstrap(&[dial(node)]).await.expect("bootstrap");
    }
    let mut kept_local = entry(&local, &peer).await.addrs().to_vec();
    kept_local.sort();
    assert_eq!(kept_local, listed, "identify's list, whole");
    let kept_public = entry(&public, &peer).await;
    assert_eq!(
        kept_public.addrs(),
        &public_one[..],
        "no loopback address of a public peer at a public host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_serves_with_an_announce_address() {
    let auto = |announce: &[&str]| {
        let mut config = HostConfig::new(
            Keypair::generate_ed25519(),
            addrs(&["/ip4/127.0.0.1/tcp/0"]),
        );
        (config.mode, config.auto_mode) = (Mode::Client, true);
        config.announce = addrs(announce);
        config
    };
    // A loopback announce address: the operator says it reaches us.
    let announced = host(auto(&["/ip4/127.0.0.1/tcp/4999"])).await;
    assert!(is_server(&announced).await);
    let plain = host(auto(&[])).await;
    assert!(!is_server(&plain).await, "loopback alone stays a client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_serves_once_two_peers_observed_one_public_address() {
    // The host listens at 127.0.0.5 (loopback to it) and dials from 127.0.0.1 with its
    // listen port (libp2p reuses it), which it takes for a public address.
    let mut config = HostConfig::new(
        Keypair::generate_ed25519(),
        addrs(&["/ip4/127.0.0.5/tcp/0"]),
    );
    (config.mode, config.auto_mode) = (Mode::Client, true);
    config.locality = internet_at_127_0_0_1;
    let node = host(config).await;
    assert!(!is_server(&node).await);
    let first = server(&["/ip4/127.0.0.1/tcp/0"], dht_core::locality).await;
    let second = server(&["/ip4/127.0.0.1/tcp/0"], dht_core::locality).await;
    node.bootstrap(&[dial(&first)]).await.expect("bootstrap");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!is_server(&node).await, "one observer is not enough");
    node.bootstrap(&[dial(&second)]).await.expect("bootstrap");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_server(&node).await {
        assert!(
            Instant::now() < deadline,
            "two observers agreed, still a client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A DNS server on loopback that answers every query with one TXT record, `txt`.
fn txt_server(txt: String) -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("local address");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if let Some(reply) = txt_reply(&buf[..n], txt.as_bytes()) {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
    addr
}

/// The answer to DNS query `query` (RFC 1035 4.1): its id and question, and one TXT
/// record holding `txt` for the question's name.
fn txt_reply(query: &[u8], txt: &[u8]) -> Option<Vec<u8>> {
    // The question's name is labels from byte 12 to a zero length; type, class follow.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question = query.get(12..end + 5)?;
    let len = u8::try_from(txt.len()).ok()?;
    let mut r = query.get(..2)?.to_vec();
    // A response, recursion available, no error; one question, one answer.
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(question);
    // The question's name (a pointer to byte 12), TXT, IN, 60 s.
    r.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
    r.extend_from_slice(&(u16::from(len) + 1).to_be_bytes());
    r.push(len);
    r.extend_from_slice(txt);
    Some(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnsaddr_seed_is_dialed_through_its_txt_record() {
    let seed = server(&["/ip4/127.0.0.1/tcp/0"], dht_core::locality).await;
    let dns = txt_server(format!("dnsaddr={}", dial(&seed)));
    let name: Multiaddr = format!("/dnsaddr/bootstrap.test/p2p/{}", seed.peer_id())
        .parse()
        .expect("multiaddr");
    let node = |dns_on: bool| {
        let mut config = HostConfig::new(
            Keypair::generate_ed25519(),
            addrs(&["/ip4/127.0.0.1/tcp/0"]),
        );
        config.dns = dns_on;
        config.dns_servers = vec![dns];
        host(config)
    };
    let resolving = node(true).await;
    resolving
        .bootstrap(std::slice::from_ref(&name))
        .await
        .expect("bootstrap");
    entry(&resolving, &seed).await;
    // Without DNS the name is not dialed: nobody joins.
    let blind = node(false).await;
    let _ = blind.bootstrap(std::slice::from_ref(&name)).await;
    let table = blind.table_peers().await.expect("table");
    assert!(table.is_empty(), "{table:?}");
}
