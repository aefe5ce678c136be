//! Publishing and resolving a pkarr record (signed DNS records on the DHT, as iroh's
//! node discovery uses them) with nothing but the `Dht` handle.
//!
//! A pkarr record is a BEP 44 mutable item: the key is the publisher's ed25519 key,
//! there is no salt, `seq` is the record's timestamp in microseconds since the Unix
//! epoch, and `v` is the DNS packet (wire format) as a bencoded byte string. Names in
//! the packet end with the zone: the public key in z-base-32 (`_hello.<zone>`, the apex
//! is `<zone>`). The signature is BEP 44's, so `MutableItem::sign` makes it.
//!
//! Run: `cargo run -p dht-node --example pkarr`. It starts a small network on loopback
//! (nothing leaves the machine), publishes `_hello TXT "world"` and an A record, and
//! resolves them through another node.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_node::dht_core::MutableItem;
use dht_node::{bencode_bytes, bencoded_string, Dht};
use simple_dns::rdata::{RData, A, TXT};
use simple_dns::{Name, Packet, ResourceRecord, CLASS};

/// A pkarr record's DNS packet: a response holding `records`.
pub fn dns_packet(records: Vec<ResourceRecord<'_>>) -> Vec<u8> {
    let mut packet = Packet::new_reply(0);
    packet.answers = records;
    packet
        .build_bytes_vec_compressed()
        .expect("a small DNS packet builds")
}

/// The BEP 44 item that carries `packet` as `key`'s pkarr record at `timestamp_us`.
pub fn pkarr_item(
    key: &ed25519_dalek::SigningKey,
    timestamp_us: i64,
    packet: &[u8],
) -> MutableItem {
    MutableItem::sign(key, b"", timestamp_us, &bencode_bytes(packet))
}

/// The zone of `public`'s records: its key in z-base-32, as pkarr names it.
pub fn zone(public: &[u8; 32]) -> String {
    base32::encode(base32::Alphabet::Z, public)
}

/// Microseconds since the Unix epoch: a pkarr record's `seq`.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A private network of four nodes on loopback.
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(
            Dht::builder()
                .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
                .republish(None)
                .spawn()?,
        );
    }
    let seed = nodes[0].local_addrs()[0];
    for n in &nodes[1..] {
        n.bootstrap(&[seed]).await?;
    }

    // Publish: a TXT and an A record under the key's zone.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let zone = zone(&key.verifying_key().to_bytes());
    let hello = format!("_hello.{zone}");
    let packet = dns_packet(vec![
        ResourceRecord::new(
            Name::new_unchecked(&hello),
            CLASS::IN,
            300,
            RData::TXT(TXT::new().with_string("world")?),
        ),
        ResourceRecord::new(
            Name::new_unchecked(&zone),
            CLASS::IN,
            300,
            RData::A(A::from(Ipv4Addr::new(192, 0, 2, 1))),
        ),
    ]);
    let item = pkarr_item(&key, now_us(), &packet);
    let put = nodes[1].put_mutable(item, None).await?;
    println!(
        "published under {} on {} nodes",
        put.value.target,
        put.value.stored_at.len()
    );

    // Resolve through another node: the newest item of the key, no salt.
    let public = key.verifying_key().to_bytes();
    let got = nodes[3].get_mutable(public, b"", None).await?;
    let item = got.value.ok_or("not found")?;
    let packet = bencoded_string(&item.value).ok_or("not a byte string")?;
    let parsed = Packet::parse(packet)?;
    println!("timestamp {} us", item.seq);
    for rr in &parsed.answers {
        println!("{} {:?}", rr.name, rr.rdata);
    }
    for n in &nodes {
        n.shutdown().await?;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
