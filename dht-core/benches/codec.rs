//! Encode and decode time of every KRPC message kind.
//!
//! `cargo bench -p dht-core --bench codec -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion};
use dht_core::krpc::{self, Body, ErrorBody, Message, Method, PutArgs, Query, Response, Want};
use dht_core::{Id, Item, MutableItem, NodeInfo};

fn id(b: u8) -> Id {
    Id([b; 20])
}

fn msg(body: Body) -> Message {
    Message::new(b"tx01".to_vec(), body).with_version(Some(b"DC\x00\x01".to_vec()))
}

fn query(method: Method) -> Message {
    msg(Body::Query(Query::new(id(1), method)))
}

fn nodes(n: u8) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| NodeInfo {
            id: id(0x10 + i),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)), 6881),
        })
        .collect()
}

fn messages() -> Vec<(&'static str, Message)> {
    let mut value = Vec::new();
    dht_core::bencode::write_bytes(&mut value, &[b'x'; 996]); // 1000 bytes bencoded
    let peers: Vec<SocketAddr> = (0..20)
        .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 6881))
        .chain((0..5).map(|i| {
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
                6881,
            )
        }))
        .collect();
    vec![
        ("ping_query", query(Method::Ping)),
        (
            "ping_response",
            msg(Body::Response(Response::new(id(9))))
                .with_requester_ip(Some("192.0.2.7:6881".parse().expect("addr"))),
        ),
        (
            "find_node_query",
            query(Method::find_node(id(2)).with_want(Want { v4: true, v6: true })),
        ),
        (
            "find_node_response_8_nodes",
            msg(Body::Response(Response::new(id(9)).with_nodes(nodes(8)))),
        ),
        (
            "get_peers_response_values",
            msg(Body::Response(
                Response::new(id(9))
                    .with_token(Some(vec![7; 20]))
                    .with_values(peers),
            )),
        ),
        (
            "get_peers_response_nodes",
            msg(Body::Response(
                Response::new(id(9))
                    .with_nodes(nodes(8))
                    .with_token(Some(vec![7; 20])),
            )),
        ),
        (
            "announce_peer_query",
            query(Method::announce_peer(id(3), 6881, vec![7; 20]).with_implied_port(true)),
        ),
        (
            "get_mutable_response_1000",
            msg(Body::Response(
                Response::new(id(9))
                    .with_token(Some(vec![7; 20]))
                    .with_value(Some(value.clone()))
                    .with_key(Some([5; 32]))
                    .with_signature(Some([6; 64]))
                    .with_seq(Some(12345)),
            )),
        ),
        (
            "put_mutable_query_1000",
            query(Method::Put(
                PutArgs::new(
                    vec![7; 20],
                    Item::Mutable(MutableItem {
                        key: [5; 32],
                        signature: [6; 64],
                        seq: 12345,
                        salt: b"salt".to_vec(),
                        value,
                    }),
                )
                .with_cas(Some(12344)),
            )),
        ),
        (
            "error",
            msg(Body::Error(ErrorBody::new(203, "Protocol Error"))),
        ),
        (
            "sample_infohashes_response_20",
            msg(Body::Response(
                Response::new(id(9))
                    .with_nodes(nodes(8))
                    .with_samples(Some((0..20).map(id).collect()))
                    .with_interval(Some(21600))
                    .with_num(Some(5000)),
            )),
        ),
    ]
}

fn codec(c: &mut Criterion) {
    for (name, m) in messages() {
        let bytes = m.to_bytes();
        assert_eq!(krpc::decode(&bytes).as_ref(), Ok(&m));
        c.bench_function(&format!("bencode_validate/{name}"), |b| {
            b.iter(|| dht_core::bencode::validate(black_box(&bytes)))
        });
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| krpc::decode(black_box(&bytes)))
        });
        let mut out = Vec::with_capacity(2048);
        c.bench_function(&format!("encode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&m).encode(&mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
