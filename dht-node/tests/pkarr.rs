//! pkarr (signed DNS records on BEP 44, the format iroh's node discovery uses) against
//! our nodes, both ways, on loopback: the `pkarr` crate's client, with no relays and
//! our nodes as its only bootstrap, publishes and our `Dht` resolves and decodes the
//! record; our `Dht` publishes a record in pkarr's format and pkarr resolves it.

use std::net::SocketAddr;
use std::time::Duration;

use dht_node::dht_core::MutableItem;
use dht_node::{bencode_bytes, bencoded_string, Dht};
use pkarr::{Client, Keypair, PublicKey, ResolvePolicy, SignedPacket};

const WAIT: Duration = Duration::from_secs(30);

async fn network(n: usize) -> Vec<Dht> {
    let mut nodes: Vec<Dht> = Vec::new();
    for _ in 0..n {
        let node = Dht::builder()
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .republish(None)
            .spawn()
            .expect("spawn a node on loopback");
        nodes.push(node);
    }
    let seed = nodes[0].local_addrs()[0];
    for node in &nodes[1..] {
        node.bootstrap(&[seed]).await.expect("join");
    }
    nodes
}

fn pkarr_client(nodes: &[Dht]) -> Client {
    let boot: Vec<String> = nodes
        .iter()
        .map(|n| n.local_addrs()[0].to_string())
        .collect();
    Client::builder()
        .no_relays()
        .bootstrap(&boot)
        .dht_request_timeout(Duration::from_secs(5))
        .build()
        .expect("a pkarr client with our nodes as its only bootstrap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkarr_publishes_and_our_dht_resolves() {
    let nodes = network(8).await;
    let client = pkarr_client(&nodes);
    let keypair = Keypair::random();
    let packet = SignedPacket::builder()
        .txt(
            "_hello".try_into().unwrap(),
            "world".try_into().unwrap(),
            300,
        )
        .sign(&keypair)
        .expect("a signed packet");
    tokio::time::timeout(WAIT, client.publish(&packet))
        .await
        .expect("pkarr publish within 30 s")
        .expect("pkarr publish stored on our nodes");

    let public = *keypair.public_key().as_bytes();
    let got = nodes[7]
        .get_mutable(public, b"", None)
        .await
        .expect("get answered");
    let item = got.value.expect("our Dht finds pkarr's record");
    // The record's timestamp is the item's seq; its DNS packet is the value.
    assert_eq!(item.seq as u64, packet.timestamp().as_u64());
    let dns = bencoded_string(&item.value).expect("a byte string");
    assert_eq!(dns, &packet.encoded_packet()[..]);
    let mut payload = item.signature.to_vec();
    payload.extend_from_slice(&item.seq.to_be_bytes());
    payload.extend_from_slice(dns);
    let decoded = SignedPacket::from_relay_payload(&keypair.public_key(), &payload.into())
        .expect("our bytes are a valid pkarr packet");
    assert_eq!(decoded.as_bytes(), packet.as_bytes());
    let txt = decoded.resource_records("_hello").count();
    assert_eq!(txt, 1, "the TXT record decodes");
    for n in &nodes {
        n.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_dht_publishes_and_pkarr_resolves() {
    let nodes = network(8).await;
    // The record as examples/pkarr.rs builds it: a DNS packet signed as a BEP 44 item.
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let zone = base32::encode(base32::Alphabet::Z, &key.verifying_key().to_bytes());
    let hello = format!("_hello.{zone}");
    let mut dns = simple_dns::Packet::new_reply(0);
    dns.answers.push(simple_dns::ResourceRecord::new(
        simple_dns::Name::new_unchecked(&hello),
        simple_dns::CLASS::IN,
        300,
        simple_dns::rdata::RData::TXT(
            simple_dns::rdata::TXT::new()
                .with_string("from dht-rs")
                .unwrap(),
        ),
    ));
    let bytes = dns
        .build_bytes_vec_compressed()
        .expect("build the DNS packet");
    let timestamp_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let item = MutableItem::sign(&key, b"", timestamp_us, &bencode_bytes(&bytes));
    let put = nodes[1].put_mutable(item, None).await.expect("our put");
    assert!(!put.value.stored_at.is_empty());

    let client = pkarr_client(&nodes);
    let public = PublicKey::try_from(&key.verifying_key().to_bytes()).expect("a public key");
    let resolved = tokio::time::timeout(WAIT, client.resolve(&public, ResolvePolicy::NetworkOnly))
        .await
        .expect("pkarr resolve within 30 s")
        .expect("pkarr finds our record");
    assert_eq!(resolved.timestamp().as_u64(), timestamp_us as u64);
    assert_eq!(&resolved.encoded_packet()[..], &bytes[..]);
    assert_eq!(resolved.resource_records("_hello").count(), 1);
    for n in &nodes {
        n.shutdown().await.expect("shutdown");
    }
}
