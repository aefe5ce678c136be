//! The KRPC codec through the public API: round trips, captured vectors, malformed input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dht_core::bencode::{self, Kind, Value};
use dht_core::from_hex;
use dht_core::krpc::{
    self, code, Body, DecodeError, ErrorBody, Message, Method, PutArgs, Query, Response, Want,
};
use dht_core::{Id, Item, MutableItem, NodeInfo, ScrapeFilter, SCRAPE_FILTER_LEN};
use proptest::prelude::*;

mod common;
use common::{mutate, mutation};

fn hex(s: &str) -> Vec<u8> {
    from_hex(s).expect("test hex")
}

fn id(b: u8) -> Id {
    Id([b; 20])
}

fn v4(a: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, a)), port)
}

fn v6(a: u16, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, a)),
        port,
    )
}

fn msg(body: Body) -> Message {
    Message::new(b"tx01".to_vec(), body)
}

fn query(method: Method) -> Message {
    msg(Body::Query(Query::new(id(1), method)))
}

fn response(r: Response) -> Message {
    msg(Body::Response(r))
}

fn nodes4(n: u8) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| NodeInfo {
            id: id(0x10 + i),
            addr: v4(i, 6881 + u16::from(i)),
        })
        .collect()
}

fn nodes6(n: u8) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| NodeInfo {
            id: id(0x40 + i),
            addr: v6(u16::from(i), 7000 + u16::from(i)),
        })
        .collect()
}

/// One message of every kind, with every optional field exercised somewhere.
fn corpus() -> Vec<Message> {
    let both = Want { v4: true, v6: true };
    let mutable = MutableItem {
        key: [7; 32],
        signature: [8; 64],
        seq: 42,
        salt: b"salt".to_vec(),
        value: b"d1:ai1e1:bl1:xee".to_vec(),
    };
    let mut out = vec![
        query(Method::Ping),
        query(Method::find_node(id(2)).with_want(both)),
        query(Method::find_node(id(2))),
        query(
            Method::get_peers(id(3))
                .with_want(Want {
                    v4: false,
                    v6: true,
                })
                .with_scrape(true)
                .with_noseed(true),
        ),
        query(Method::announce_peer(id(3), 6881, b"tok".to_vec()).with_seed(true)),
        query(Method::announce_peer(id(3), 0, vec![0; 20]).with_implied_port(true)),
        query(Method::get(id(4)).with_seq(Some(5)).with_want(Want {
            v4: true,
            v6: false,
        })),
        query(Method::get(id(4))),
        query(Method::Put(PutArgs::new(
            b"tok".to_vec(),
            Item::Immutable {
                value: b"12:Hello World!".to_vec(),
            },
        ))),
        query(Method::Put(
            PutArgs::new(b"tok".to_vec(), Item::Mutable(mutable.clone())).with_cas(Some(41)),
        )),
        query(Method::Put(PutArgs::new(
            b"tok".to_vec(),
            Item::Mutable(MutableItem {
                salt: Vec::new(),
                seq: 0,
                value: b"i-3e".to_vec(),
                ..mutable.clone()
            }),
        ))),
        query(Method::sample_infohashes(id(5)).with_want(both)),
        query(Method::Unknown {
            name: b"vote".to_vec(),
        }),
        response(Response::new(id(9))),
        // BEP 33 scrape reply: both filters (keys sorted before `id`).
        response(
            Response::new(id(9))
                .with_token(Some(b"tk".to_vec()))
                .with_bf_seeds(Some(ScrapeFilter::from_bytes([0x5a; SCRAPE_FILTER_LEN])))
                .with_bf_peers(Some(ScrapeFilter::from_bytes([0xa5; SCRAPE_FILTER_LEN]))),
        ),
        response(Response::new(id(9)).with_nodes(nodes4(8))),
        response(
            Response::new(id(9))
                .with_nodes(nodes4(3))
                .with_nodes6(nodes6(4)),
        ),
        response(
            Response::new(id(9))
                .with_token(Some(b"token".to_vec()))
                .with_values(vec![v4(1, 1), v6(2, 2), v4(3, 65535)]),
        ),
        response(
            Response::new(id(9))
                .with_nodes(nodes4(8))
                .with_token(Some(b"token".to_vec())),
        ),
        response(
            Response::new(id(9))
                .with_nodes(nodes4(2))
                .with_nodes6(nodes6(2))
                .with_token(Some(b"token".to_vec()))
                .with_value(Some(b"l4:spami-1ee".to_vec()))
                .with_key(Some([7; 32]))
                .with_signature(Some([8; 64]))
                .with_seq(Some(i64::MAX)),
        ),
        response(
            Response::new(id(9))
                .with_nodes(nodes4(8))
                .with_samples(Some(vec![id(20), id(21), id(22)]))
                .with_interval(Some(21600))
                .with_num(Some(1234)),
        ),
        response(
            Response::new(id(9))
                .with_samples(Some(Vec::new()))
                .with_interval(Some(0))
                .with_num(Some(0)),
        ),
        msg(Body::Error(ErrorBody::new(code::PROTOCOL, "bad token"))),
        msg(Body::Error(ErrorBody::new(
            code::SEQ_TOO_LOW,
            "séquence ≤ stockée",
        ))),
        msg(Body::Error(ErrorBody::new(-1, String::new()))),
    ];
    // The envelope's optional fields, on a query, a response and an error.
    let mut with_envelope = out.clone();
    for (i, m) in with_envelope.iter_mut().enumerate() {
        m.transaction_id = vec![i as u8; i % 7];
        m.version = Some(b"DC\x00\x01".to_vec());
        m.read_only = i % 2 == 0;
        m.requester_ip = Some(if i % 3 == 0 { v6(9, 9) } else { v4(9, 9) });
    }
    out.extend(with_envelope);
    out
}

/// Every dictionary in `v`, at any depth, has its keys strictly sorted.
fn assert_canonical(v: Value<'_>) {
    match v.kind() {
        Kind::Dict(d) => {
            let keys: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "unsorted keys {keys:?}"
            );
            d.iter().for_each(|(_, v)| assert_canonical(v));
        }
        Kind::List(l) => l.iter().for_each(assert_canonical),
        Kind::Int(_) | Kind::Bytes(_) => {}
    }
}

#[test]
fn every_message_round_trips() {
    for m in corpus() {
        let bytes = m.to_bytes();
        assert_canonical(bencode::decode(&bytes).expect("valid bencode"));
        assert_eq!(
            krpc::decode(&bytes).as_ref(),
            Ok(&m),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        // Appending to a non-empty buffer leaves what was there.
        let mut out = b"xyz".to_vec();
        m.encode(&mut out);
        assert_eq!(&out[3..], &bytes[..]);
    }
}

#[test]
fn encoded_forms_are_the_documented_ones() {
    let bytes =
        query(Method::find_node(id(b'T')).with_want(Want { v4: true, v6: true })).to_bytes();
    let expect = format!(
        "d1:ad2:id20:{}6:target20:{}4:wantl2:n42:n6ee1:q9:find_node1:t4:tx011:y1:qe",
        "\x01".repeat(20),
        "T".repeat(20)
    );
    assert_eq!(bytes, expect.as_bytes());

    let bytes = msg(Body::Error(ErrorBody::new(201, "A Generic Error Ocurred"))).to_bytes();
    assert_eq!(
        bytes,
        b"d1:eli201e23:A Generic Error Ocurrede1:t4:tx011:y1:ee"
    );

    let mut m = response(Response::new(id(b'R')).with_values(vec![v4(1, 0x1ae1)]));
    m.read_only = true;
    m.requester_ip = Some(v4(2, 0x0102));
    let expect = [
        &b"d2:ip6:\xcb\x00\x71\x02\x01\x021:rd2:id20:"[..],
        &[b'R'; 20],
        b"6:valuesl6:\xcb\x00\x71\x01\x1a\xe1ee2:roi1e1:t4:tx011:y1:re",
    ]
    .concat();
    assert_eq!(m.to_bytes(), expect);
}

const REQ_T2: &str = "64313a6164323a696432303a6162636465666768696a3031323334353637383965313a71343a70696e67313a74323a6161313a79313a7165";
const REQ_T4: &str = "64313a6164323a696432303a6162636465666768696a3031323334353637383965313a71343a70696e67313a74343a61616161313a79313a7165";
const RESPONSES: [(&str, &str); 6] = [
    ("bittorrent_dht", "64313a7264323a696432303ac390f75ef01588f65eec94dde89ebf7d653a0ea465313a74323a6161313a79313a7265"),
    ("libtorrent_2_0_8", "64323a6970363a7f0000018097313a7264323a696432303a8d2f8bf39fe36ea09a8651419127429221f1148b313a706933323931396565313a74323a6161313a76343a4c540208313a79313a7265"),
    ("libtorrent_2_1_1", "64323a6970363a7f000001e095313a7264323a696432303afdc41e0f21181eb271347403bf0310d402df8c11313a706935373439336565313a74323a6161313a76343a4c540211313a79313a7265"),
    ("mainline_8_0_1", "64323a6970363a7f00000189c9313a7264323a696432303aa9e0eff0541993ed27a99906031719cbe67bb19b65323a726f693065313a74343a61616161313a76343a52530005313a79313a7265"),
    ("btdht_0_3_3", "64313a7264323a696432303a1f55eb0e50252c8ac841ee2bacc419a99021ded665313a74323a6161313a79313a7265"),
    ("aio_btdht_0_0_9", "64313a7264323a696432303aabdb2a905d9a35d1608d96bbbb924ce2b2f7eec165313a74323a6161313a76373a61696f2d646874313a79313a7265"),
];

#[test]
fn captured_ping_requests() {
    for (hex_str, t) in [(REQ_T2, &b"aa"[..]), (REQ_T4, b"aaaa")] {
        let bytes = hex(hex_str);
        let m = krpc::decode(&bytes).expect("captured request decodes");
        let expect = Message::query(t.to_vec(), Id(*b"abcdefghij0123456789"), Method::Ping);
        assert_eq!(m, expect);
        assert_eq!(expect.to_bytes(), bytes, "our ping encodes byte for byte");
    }
}

#[test]
fn captured_ping_responses() {
    for (name, hex_str) in RESPONSES {
        let bytes = hex(hex_str);
        let m = krpc::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Body::Response(r) = &m.body else {
            panic!("{name}: not a response");
        };
        assert_eq!(r, &Response::new(r.id), "{name}");
        assert!(!m.read_only, "{name}: ro = 0 is not read-only");
        let t: &[u8] = if name.starts_with("mainline") {
            b"aaaa"
        } else {
            b"aa"
        };
        assert_eq!(m.transaction_id, t, "{name}");
        if name.starts_with("libtorrent") || name.starts_with("mainline") {
            assert_eq!(
                m.requester_ip.map(|a| a.ip()),
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            );
        }
        assert_eq!(krpc::decode(&m.to_bytes()), Ok(m));
    }
    let lt = krpc::decode(&hex(RESPONSES[1].1)).expect("libtorrent response");
    assert_eq!(lt.version.as_deref(), Some(&b"LT\x02\x08"[..]));
    assert_eq!(
        lt.requester_ip,
        Some("127.0.0.1:32919".parse().expect("addr"))
    );
}

fn is_dropped(r: Result<Message, DecodeError>) -> bool {
    matches!(
        r,
        Err(DecodeError {
            query_transaction_id: None,
            ..
        })
    )
}

fn answered_with_203(r: Result<Message, DecodeError>, t: &[u8]) -> bool {
    matches!(r, Err(DecodeError { query_transaction_id: Some(ref x), .. }) if x == t)
}

#[test]
fn malformed_input_is_dropped() {
    let huge = b"d1:t4294967296:aa1:y1:qe".to_vec();
    let huge2 = b"d1:t99999999999999999999999999999:aae".to_vec();
    let deep = [b"l".repeat(10_000), b"e".repeat(10_000)].concat();
    let deep_dict = [b"d1:x".repeat(10_000), b"e".repeat(10_000)].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"\xff\x00garbage\x13".to_vec()),
        ("huge string length", huge),
        ("overflowing string length", huge2),
        ("deep list", deep),
        ("deep dict", deep_dict),
        ("list top level", b"l1:t2:aae".to_vec()),
        ("int top level", b"i1e".to_vec()),
        ("string top level", b"4:ping".to_vec()),
        (
            "missing t",
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe".to_vec(),
        ),
        (
            "int t",
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:ti1e1:y1:qe".to_vec(),
        ),
        ("missing y", b"d1:t2:aae".to_vec()),
        ("unknown y", b"d1:t2:aa1:y1:xe".to_vec()),
        ("trailing bytes", [hex(REQ_T2), b"x".to_vec()].concat()),
        ("leading zero int", b"d1:t2:aa1:y1:q2:roi01ee".to_vec()),
        ("negative zero", b"d1:t2:aa1:y1:q2:roi-0ee".to_vec()),
        ("leading zero length", b"d1:t02:aa1:y1:qe".to_vec()),
        (
            "response without id",
            b"d1:rd5:nodes0:e1:t2:aa1:y1:re".to_vec(),
        ),
        (
            "response with short id",
            b"d1:rd2:id3:abce1:t2:aa1:y1:re".to_vec(),
        ),
        ("response without r", b"d1:t2:aa1:y1:re".to_vec()),
        ("nodes not a string", {
            let mut r = b"d1:rd2:id20:abcdefghij01234567895:nodesi1ee".to_vec();
            r.extend_from_slice(b"1:t2:aa1:y1:re");
            r
        }),
        (
            "k too short",
            b"d1:rd2:id20:abcdefghij01234567891:k3:abce1:t2:aa1:y1:re".to_vec(),
        ),
        ("error without code", b"d1:el3:bade1:t2:aa1:y1:ee".to_vec()),
        ("error not a list", b"d1:e3:bad1:t2:aa1:y1:ee".to_vec()),
    ];
    for (name, bytes) in cases {
        assert!(is_dropped(krpc::decode(&bytes)), "{name}");
    }
    // Every truncation of every valid message.
    for m in corpus() {
        let bytes = m.to_bytes();
        for cut in 0..bytes.len() {
            assert!(
                is_dropped(krpc::decode(&bytes[..cut])),
                "{m:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn malformed_queries_get_their_transaction_id_back() {
    let id = "2:id20:abcdefghij0123456789";
    let k = "1:k32:".to_string() + &"k".repeat(32);
    let sig = "3:sig64:".to_string() + &"s".repeat(64);
    let cases = [
        ("missing id", "d1:ad6:target20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe".to_string()),
        ("short id", "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe".into()),
        ("missing a", "d1:q4:ping1:t2:aa1:y1:qe".into()),
        ("a not a dict", "d1:ali1ee1:q4:ping1:t2:aa1:y1:qe".into()),
        ("missing q", format!("d1:ad{id}e1:t2:aa1:y1:qe")),
        ("missing target", format!("d1:ad{id}e1:q9:find_node1:t2:aa1:y1:qe")),
        ("long target", format!("d1:ad{id}6:target21:abcdefghij0123456789xe1:q9:find_node1:t2:aa1:y1:qe")),
        ("missing info_hash", format!("d1:ad{id}e1:q9:get_peers1:t2:aa1:y1:qe")),
        ("missing token", format!("d1:ad{id}9:info_hash20:abcdefghij01234567894:porti1ee1:q13:announce_peer1:t2:aa1:y1:qe")),
        ("port out of range", format!("d1:ad{id}9:info_hash20:abcdefghij01234567894:porti65536e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe")),
        ("negative port", format!("d1:ad{id}9:info_hash20:abcdefghij01234567894:porti-1e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe")),
        ("missing port", format!("d1:ad{id}9:info_hash20:abcdefghij01234567895:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe")),
        ("seq not an int", format!("d1:ad{id}3:seq1:16:target20:abcdefghij0123456789e1:q3:get1:t2:aa1:y1:qe")),
        ("put missing v", format!("d1:ad{id}5:token1:xe1:q3:put1:t2:aa1:y1:qe")),
        ("put missing token", format!("d1:ad{id}1:v1:xe1:q3:put1:t2:aa1:y1:qe")),
        ("short k", format!("d1:ad{id}1:k31:{}3:seqi1e{sig}5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe", "k".repeat(31))),
        ("long sig", format!("d1:ad{id}{k}3:seqi1e3:sig65:{}5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe", "s".repeat(65))),
        ("missing sig", format!("d1:ad{id}{k}3:seqi1e5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe")),
        ("missing seq", format!("d1:ad{id}{k}{sig}5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe")),
        ("cas not an int", format!("d1:ad3:cas1:1{id}{k}3:seqi1e{sig}5:token1:x1:v1:xe1:q3:put1:t2:aa1:y1:qe")),
    ];
    for (name, text) in cases {
        let r = krpc::decode(text.as_bytes());
        assert!(answered_with_203(r.clone(), b"aa"), "{name}: {r:?}");
    }
}

#[test]
fn oversized_bep44_fields_are_left_to_the_engine() {
    let value = bencode_bytes(&vec![b'x'; 1500]);
    let salt = vec![b's'; 100];
    let m = query(Method::Put(PutArgs::new(
        b"tok".to_vec(),
        Item::Mutable(MutableItem {
            key: [1; 32],
            signature: [2; 64],
            seq: -7,
            salt: salt.clone(),
            value: value.clone(),
        }),
    )));
    let decoded = krpc::decode(&m.to_bytes()).expect("oversized put decodes");
    let Body::Query(Query {
        method: Method::Put(put),
        ..
    }) = decoded.body
    else {
        panic!("not a put");
    };
    assert_eq!(put.item.value(), &value[..]);
    assert_eq!(put.item.as_mutable().map(|m| m.salt.clone()), Some(salt));
}

fn bencode_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bencode::write_bytes(&mut out, b);
    out
}

#[test]
fn lenient_where_documented() {
    // A trailing partial node entry is ignored; whole entries are kept.
    let mut r = b"d1:rd2:id20:abcdefghij01234567895:nodes30:".to_vec();
    r.extend_from_slice(&[b'N'; 20]);
    r.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    r.extend_from_slice(b"xxxx");
    r.extend_from_slice(b"6:valuesl6:\x7f\x00\x00\x01\x00\x015:shorti1eee1:t2:aa1:y1:re");
    let m = krpc::decode(&r).expect("decodes");
    let Body::Response(resp) = m.body else {
        panic!("not a response")
    };
    assert_eq!(
        resp.nodes,
        vec![NodeInfo {
            id: Id([b'N'; 20]),
            addr: "127.0.0.1:6881".parse().expect("addr"),
        }]
    );
    assert_eq!(resp.values, vec!["127.0.0.1:1".parse().expect("addr")]);

    // Unknown keys, odd versions and malformed advisory fields do not sink a message.
    let q = b"d1:ad2:id20:abcdefghij01234567895:extrald1:xleee4:wanti1ee\
              2:ip3:abc1:q4:ping2:ro3:yes1:t2:aa1:vi7e1:y1:q3:zzzi0ee";
    let m = krpc::decode(q).expect("decodes");
    assert_eq!(m.version, None);
    assert_eq!(m.requester_ip, None);
    assert!(!m.read_only);
    assert!(matches!(
        m.body,
        Body::Query(Query {
            method: Method::Ping,
            ..
        })
    ));

    // implied_port without a port.
    let q = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:abcdefghij0123456789\
              5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    let m = krpc::decode(q).expect("decodes");
    assert!(matches!(
        m.body,
        Body::Query(Query {
            method: Method::AnnouncePeer {
                port: 0,
                implied_port: true,
                ..
            },
            ..
        })
    ));

    // An unknown method is a query the engine answers with 204.
    let q = b"d1:ad2:id20:abcdefghij0123456789e1:q5:vote!1:t2:aa1:y1:qe";
    let m = krpc::decode(q).expect("decodes");
    assert!(matches!(
        m.body,
        Body::Query(Query { method: Method::Unknown { ref name }, .. }) if name == b"vote!"
    ));

    // An error whose message is missing.
    let m = krpc::decode(b"d1:eli204ee1:t2:aa1:y1:ee").expect("decodes");
    assert_eq!(m.body, Body::Error(ErrorBody::new(204, String::new())));
}

/// Every byte string accepted by the decoder re-encodes to one that decodes the same.
fn check_round_trip(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = krpc::decode(bytes) {
        let again = m.to_bytes();
        prop_assert_eq!(krpc::decode(&again), Ok(m));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_round_trip(&bytes)?;
    }

    #[test]
    fn mutated_messages_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let mut bytes = which.get(&corpus).to_bytes();
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check_round_trip(&bytes)?;
    }

    #[test]
    fn captured_vectors_mutated(
        which in 0usize..8,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = match which {
            0 => hex(REQ_T2),
            1 => hex(REQ_T4),
            n => hex(RESPONSES[n - 2].1),
        };
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check_round_trip(&bytes)?;
    }
}

fn arb_id() -> impl Strategy<Value = Id> {
    any::<[u8; 20]>().prop_map(Id)
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
    ]
}

fn arb_nodes(v6: bool) -> impl Strategy<Value = Vec<NodeInfo>> {
    let addr = if v6 {
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p))
            .boxed()
    } else {
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p))
            .boxed()
    };
    prop::collection::vec(
        (arb_id(), addr).prop_map(|(id, addr)| NodeInfo { id, addr }),
        0..10,
    )
}

fn arb_want() -> impl Strategy<Value = Want> {
    (any::<bool>(), any::<bool>()).prop_map(|(v4, v6)| Want { v4, v6 })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// A valid bencoded value of a few shapes (a BEP 44 `v`).
fn arb_bencoded() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(50).prop_map(|b| bencode_bytes(&b)),
        any::<i64>().prop_map(|i| {
            let mut out = Vec::new();
            bencode::write_int(&mut out, i);
            out
        }),
        prop::collection::vec(bytes(10), 0..5).prop_map(|items| {
            let mut out = b"l".to_vec();
            items.iter().for_each(|i| bencode::write_bytes(&mut out, i));
            out.push(b'e');
            out
        }),
    ]
}

fn arb_method() -> impl Strategy<Value = Method> {
    let mutable = (
        any::<[u8; 32]>(),
        any::<u8>(),
        any::<i64>(),
        bytes(80),
        any::<Option<i64>>(),
    )
        .prop_map(|(key, sig, seq, salt, cas)| ((key, sig, seq, salt), cas));
    prop_oneof![
        Just(Method::Ping),
        (arb_id(), arb_want()).prop_map(|(target, want)| Method::find_node(target).with_want(want)),
        (arb_id(), arb_want(), any::<bool>(), any::<bool>()).prop_map(
            |(info_hash, want, scrape, noseed)| Method::get_peers(info_hash)
                .with_want(want)
                .with_scrape(scrape)
                .with_noseed(noseed)
        ),
        (
            arb_id(),
            any::<u16>(),
            bytes(30),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(info_hash, port, token, implied_port, seed)| {
                Method::announce_peer(info_hash, port, token)
                    .with_implied_port(implied_port)
                    .with_seed(seed)
            }),
        (arb_id(), any::<Option<i64>>(), arb_want()).prop_map(|(target, seq, want)| Method::get(
            target
        )
        .with_seq(seq)
        .with_want(want)),
        (bytes(30), arb_bencoded(), prop::option::of(mutable)).prop_map(
            |(token, value, mutable)| {
                let (item, cas) = match mutable {
                    None => (Item::Immutable { value }, None),
                    Some(((key, sig, seq, salt), cas)) => (
                        Item::Mutable(MutableItem {
                            key,
                            signature: [sig; 64],
                            seq,
                            salt,
                            value,
                        }),
                        cas,
                    ),
                };
                Method::Put(PutArgs::new(token, item).with_cas(cas))
            }
        ),
        (arb_id(), arb_want())
            .prop_map(|(target, want)| Method::sample_infohashes(target).with_want(want)),
        "[a-z_]{0,20}"
            .prop_filter("known method", |n| {
                ![
                    "ping",
                    "find_node",
                    "get_peers",
                    "announce_peer",
                    "get",
                    "put",
                    "sample_infohashes",
                ]
                .contains(&n.as_str())
            })
            .prop_map(|n| Method::Unknown {
                name: n.into_bytes()
            }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    (
        (
            arb_id(),
            arb_nodes(false),
            arb_nodes(true),
            prop::option::of(bytes(30)),
        ),
        (
            prop::collection::vec(arb_addr(), 0..10),
            prop::option::of(arb_bencoded()),
            any::<Option<[u8; 32]>>(),
            any::<Option<u8>>(),
        ),
        (
            any::<Option<i64>>(),
            prop::option::of(prop::collection::vec(arb_id(), 0..5)),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
        ),
        (any::<Option<u8>>(), any::<Option<u8>>()),
    )
        .prop_map(
            |(
                (id, nodes, nodes6, token),
                (values, value, key, sig),
                (seq, samples, interval, num),
                (bf_seeds, bf_peers),
            )| {
                Response::new(id)
                    .with_nodes(nodes)
                    .with_nodes6(nodes6)
                    .with_token(token)
                    .with_values(values)
                    .with_value(value)
                    .with_key(key)
                    .with_signature(sig.map(|b| [b; 64]))
                    .with_seq(seq)
                    .with_samples(samples)
                    .with_interval(interval)
                    .with_num(num)
                    .with_bf_seeds(
                        bf_seeds.map(|b| ScrapeFilter::from_bytes([b; SCRAPE_FILTER_LEN])),
                    )
                    .with_bf_peers(
                        bf_peers.map(|b| ScrapeFilter::from_bytes([b; SCRAPE_FILTER_LEN])),
                    )
            },
        )
}

fn arb_message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        (arb_id(), arb_method()).prop_map(|(id, method)| Body::Query(Query::new(id, method))),
        arb_response().prop_map(Body::Response),
        (any::<i64>(), ".{0,30}")
            .prop_map(|(code, message)| Body::Error(ErrorBody::new(code, message))),
    ];
    (
        bytes(8),
        prop::option::of(bytes(6)),
        any::<bool>(),
        prop::option::of(arb_addr()),
        body,
    )
        .prop_map(|(transaction_id, version, read_only, requester_ip, body)| {
            Message::new(transaction_id, body)
                .with_version(version)
                .with_read_only(read_only)
                .with_requester_ip(requester_ip)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_round_trip(m in arb_message()) {
        let bytes = m.to_bytes();
        assert_canonical(bencode::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?);
        prop_assert_eq!(krpc::decode(&bytes), Ok(m));
    }
}
