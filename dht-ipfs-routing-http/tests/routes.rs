//! Each route over real TCP on 127.0.0.1 against a fake router: success, nothing
//! found, malformed CIDs, PeerIds and names, content negotiation (JSON, NDJSON, IPNS
//! records), IPNS records that do not verify (dht-ipfs's js-ipns fixtures), CORS and
//! the caching headers.

mod common;

use common::{fixture, get, next_event, peer, record, request, serve, Event, Fake, Lookup};
use dht_ipfs_routing_http::{
    parse_peer_id, peer_id_base36_cid, peer_id_base58, Cid, Config, Pools, RoutingError,
};

const IPNS: &str = "application/vnd.ipfs.ipns-record";
/// A CIDv0, and a CIDv1 (dag-pb).
const CID_V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
const CID_V1: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const MALFORMED_CIDS: &[&str] = &[
    "notacid",
    "Qm123",
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqab",
    "zzzzzzzz",
    // A PeerId in base58 is a multihash, not a CID.
    "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
];
const MALFORMED_NAMES: &[&str] = &[
    "hello",
    "12D3KooWnotapeer",
    "QmYwAPJzv5CZsnA625s3Xf2n",
    // A CID of content (dag-pb), not of a libp2p-key.
    CID_V1,
    "k51qzi5uqu5dl",
];

fn multihash_of(cid: &str) -> Vec<u8> {
    Cid::parse(cid).unwrap().multihash().to_vec()
}

/// The CIDv1 (dag-pb, base32) of a CIDv0.
fn v1_of(v0: &str) -> String {
    let mut cid = vec![1, 0x70];
    cid.extend_from_slice(&multihash_of(v0));
    multibase::encode(multibase::Base::Base32Lower, cid)
}

#[tokio::test]
async fn providers_as_json_and_ndjson() {
    let (fake, _events) = Fake::new();
    let found = vec![record(1), record(2)];
    fake.providers
        .lock()
        .unwrap()
        .insert(multihash_of(CID_V0), found);
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;

    let v1 = v1_of(CID_V0);
    assert!(v1.starts_with("bafy"), "{v1}");
    for cid in [CID_V0, v1.as_str()] {
        let a = get(addr, &format!("/routing/v1/providers/{cid}"), &[]).await;
        assert_eq!(a.status, 200, "{cid}");
        assert_eq!(a.header("content-type"), "application/json");
        assert_eq!(a.header("vary"), "Accept");
        assert_eq!(
            a.header("cache-control"),
            "public, max-age=300, stale-while-revalidate=172800, stale-if-error=172800"
        );
        assert!(a.header("last-modified").ends_with(" GMT"));
        let expected = serde_json::json!({"Providers": [
            {"Schema": "peer", "ID": peer_id_base58(&peer(1)),
             "Addrs": ["/ip4/127.0.0.1/tcp/4001"], "Protocols": ["transport-bitswap"]},
            {"Schema": "peer", "ID": peer_id_base58(&peer(2)),
             "Addrs": ["/ip4/127.0.0.2/tcp/4001"], "Protocols": ["transport-bitswap"]},
        ]});
        assert_eq!(a.json(), expected);
    }

    let ndjson = [("accept", "application/x-ndjson")];
    let a = get(addr, &format!("/routing/v1/providers/{v1}"), &ndjson).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "application/x-ndjson");
    let text = std::str::from_utf8(&a.body).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["ID"], peer_id_base58(&peer(2)));
    assert_eq!(lines[0]["Schema"], "peer");
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn a_json_answer_has_at_most_100_providers_and_ndjson_has_all() {
    let (fake, mut events) = Fake::new();
    let many = (0..150).map(|n| record(n as u8)).collect();
    fake.providers
        .lock()
        .unwrap()
        .insert(multihash_of(CID_V1), many);
    let addr = serve(fake.clone(), Pools::new(8, 8), Config::default()).await;
    let path = format!("/routing/v1/providers/{CID_V1}");
    let a = get(addr, &path, &[("accept", "application/x-ndjson")]).await;
    assert_eq!(std::str::from_utf8(&a.body).unwrap().lines().count(), 150);
    // A lookup still running when 100 are found is answered with them, and ended.
    fake.set_lookup(Lookup::HangAfterResults);
    let a = get(addr, &path, &[("accept", "application/json")]).await;
    assert_eq!(a.json()["Providers"].as_array().unwrap().len(), 100);
    assert_eq!(next_event(&mut events).await, Event::Started);
    assert_eq!(next_event(&mut events).await, Event::Dropped);
}

#[tokio::test]
async fn nothing_found_is_404() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let path = format!("/routing/v1/providers/{CID_V1}");
    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), serde_json::json!({"Providers": []}));
    assert_eq!(
        a.header("cache-control"),
        "public, max-age=15, stale-while-revalidate=172800, stale-if-error=172800"
    );
    let a = get(addr, &path, &[("accept", "application/x-ndjson")]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("content-type"), "application/x-ndjson");
    assert!(a.body.is_empty());

    let path = format!("/routing/v1/peers/{}", peer_id_base58(&peer(9)));
    let a = get(addr, &path, &[]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), serde_json::json!({"Peers": []}));

    let a = get(
        addr,
        &format!("/routing/v1/ipns/{}", peer_id_base58(&peer(9))),
        &[("accept", IPNS)],
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(a.header("cache-control").contains("max-age=15"));
}

#[tokio::test]
async fn malformed_cids_peer_ids_and_names_are_400() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake.clone(), Pools::new(8, 8), Config::default()).await;
    let long = "b".repeat(1000);
    for cid in MALFORMED_CIDS.iter().copied().chain([long.as_str()]) {
        let a = get(addr, &format!("/routing/v1/providers/{cid}"), &[]).await;
        assert_eq!(a.status, 400, "{cid}");
        assert!(a.json()["error"]
            .as_str()
            .unwrap()
            .contains("malformed CID"));
    }
    let (_, good) = fixture("v1v2");
    for name in MALFORMED_NAMES.iter().copied().chain([long.as_str()]) {
        let a = get(addr, &format!("/routing/v1/peers/{name}"), &[]).await;
        assert_eq!(a.status, 400, "peers {name}");
        let path = format!("/routing/v1/ipns/{name}");
        let a = get(addr, &path, &[("accept", IPNS)]).await;
        assert_eq!(a.status, 400, "ipns GET {name}");
        let a = request(addr, "PUT", &path, &[("content-type", IPNS)], good.clone()).await;
        assert_eq!(a.status, 400, "ipns PUT {name}");
    }
    assert!(fake.ipns.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_peer_by_base58_and_by_cid() {
    let (fake, _events) = Fake::new();
    let (ed25519, _) = fixture("v1v2");
    let mut found = record(3);
    found.id = ed25519.clone();
    fake.peers.lock().unwrap().insert(ed25519.clone(), found);
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let base58 = peer_id_base58(&ed25519);
    assert!(base58.starts_with("12D3Koo"), "{base58}");
    let k51 = peer_id_base36_cid(&ed25519);
    assert!(k51.starts_with("k51"), "{k51}");
    // The same CID in base32: `bafz…`.
    let mut cid = vec![1, 0x72];
    cid.extend_from_slice(ed25519.as_bytes());
    let bafz = multibase::encode(multibase::Base::Base32Lower, cid);
    assert!(bafz.starts_with("bafz"), "{bafz}");
    for id in [&base58, &k51, &bafz] {
        assert_eq!(parse_peer_id(id).as_ref(), Some(&ed25519));
        let a = get(addr, &format!("/routing/v1/peers/{id}"), &[]).await;
        assert_eq!(a.status, 200, "{id}");
        let peers = a.json()["Peers"].clone();
        assert_eq!(peers[0]["ID"], base58.as_str());
        assert_eq!(peers[0]["Addrs"][0], "/ip4/127.0.0.3/tcp/4001");
        assert!(a.header("cache-control").contains("max-age=300"));
    }
    let a = get(
        addr,
        &format!("/routing/v1/peers/{k51}"),
        &[("accept", "application/x-ndjson")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "application/x-ndjson");
    let line: serde_json::Value =
        serde_json::from_str(std::str::from_utf8(&a.body).unwrap().trim_end()).unwrap();
    assert_eq!(line["Schema"], "peer");
    // QmRSA-style PeerIds (SHA-256 multihashes) are PeerIds too.
    let a = get(
        addr,
        &format!("/routing/v1/peers/{}", peer_id_base58(&peer(4))),
        &[],
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn ipns_put_then_get_by_either_form_of_the_name() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake.clone(), Pools::new(8, 8), Config::default()).await;
    let (name, record) = fixture("v1v2");
    let put = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let headers = [("content-type", IPNS)];
    let a = request(addr, "PUT", &put, &headers, record.clone()).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(fake.ipns.lock().unwrap()[&name], record);

    for path in [
        put.clone(),
        format!("/routing/v1/ipns/{}", peer_id_base58(&name)),
    ] {
        let a = get(addr, &path, &[("accept", IPNS)]).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body, record);
        assert_eq!(a.header("content-type"), IPNS);
        assert_eq!(a.header("vary"), "Accept");
        // The record's TTL is 5 minutes; it is valid until 2126.
        let cache = a.header("cache-control");
        assert!(
            cache.starts_with("public, max-age=300, stale-while-revalidate="),
            "{cache}"
        );
        assert_eq!(a.header("expires"), "Tue, 01 Jan 2126 00:00:00 GMT");
        assert!(a.header("etag").starts_with('"'));
        assert!(a.header("content-disposition").contains(".ipns-record"));
    }
}

#[tokio::test]
async fn ipns_without_its_media_type_is_406() {
    let (fake, _events) = Fake::new();
    let (name, record) = fixture("v1v2");
    fake.ipns
        .lock()
        .unwrap()
        .insert(name.clone(), record.clone().into());
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    for accept in [None, Some("application/json"), Some("*/*")] {
        let headers: Vec<_> = accept.map(|a| ("accept", a)).into_iter().collect();
        let a = get(addr, &path, &headers).await;
        assert_eq!(a.status, 406, "{accept:?}");
        assert!(a.json()["error"].as_str().unwrap().contains(IPNS));
    }
    let a = request(
        addr,
        "PUT",
        &path,
        &[("content-type", "application/json")],
        record,
    )
    .await;
    assert_eq!(a.status, 406);
    // A JSON route asked for something else entirely.
    let a = get(
        addr,
        &format!("/routing/v1/providers/{CID_V1}"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(a.status, 406);
}

#[tokio::test]
async fn ipns_records_that_do_not_verify_are_refused_with_400() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake.clone(), Pools::new(8, 8), Config::default()).await;
    let headers = [("content-type", IPNS)];
    for bad in [
        "bad-signature-v2",
        "signed-by-another-key",
        "expired-v1v2",
        "pubkey-of-another",
        "v1-value-differs",
        "v1-only",
        "rsa-name",
        "not-a-protobuf",
        "validity-not-rfc3339",
    ] {
        let (name, record) = fixture(bad);
        let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
        let a = request(addr, "PUT", &path, &headers, record).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.json()["error"]
            .as_str()
            .unwrap()
            .contains("not a valid IPNS record"));
    }
    // A good record, under another name than its own.
    let (_, record) = fixture("v1v2");
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&peer(1)));
    let a = request(addr, "PUT", &path, &headers, record).await;
    assert_eq!(a.status, 400);
    assert!(fake.ipns.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_record_that_no_longer_verifies_is_not_served() {
    let (fake, _events) = Fake::new();
    let (name, expired) = fixture("expired-v1v2");
    fake.ipns
        .lock()
        .unwrap()
        .insert(name.clone(), expired.into());
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let path = format!("/routing/v1/ipns/{}", peer_id_base58(&name));
    let a = get(addr, &path, &[("accept", IPNS)]).await;
    assert_eq!(a.status, 404);
    assert!(a.json()["error"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let (name, _) = fixture("v1v2");
    let ipns = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    let preflight = [
        ("origin", "https://example.org"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ];
    let a = request(addr, "OPTIONS", &ipns, &preflight, Vec::new()).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.header("access-control-allow-origin"), "*");
    assert_eq!(
        a.header("access-control-allow-methods"),
        "GET, PUT, OPTIONS"
    );
    assert!(a
        .header("access-control-allow-headers")
        .contains("Content-Type"));
    let providers = format!("/routing/v1/providers/{CID_V1}");
    let a = request(addr, "OPTIONS", &providers, &preflight[..1], Vec::new()).await;
    assert_eq!(a.status, 204);
    assert_eq!(a.header("access-control-allow-methods"), "GET, OPTIONS");
    assert!(a.header("access-control-allow-headers").contains("Accept"));

    // Every answer, errors too, lifts the browser's limits.
    let origin = [("origin", "https://example.org")];
    for (path, status) in [
        (providers.clone(), 404),
        ("/routing/v1/providers/notacid".to_string(), 400),
        (ipns.clone(), 406),
        (format!("/routing/v1/peers/{}", peer_id_base58(&name)), 404),
    ] {
        let a = get(addr, &path, &origin).await;
        assert_eq!(a.status, status, "{path}");
        assert_eq!(a.header("access-control-allow-origin"), "*", "{path}");
        assert!(a.header("access-control-allow-methods").starts_with("GET"));
    }
    let a = get(addr, &ipns, &[("accept", IPNS)]).await;
    assert_eq!(
        a.header("access-control-allow-methods"),
        "GET, PUT, OPTIONS"
    );
    assert!(a.header("access-control-expose-headers").contains("Etag"));
}

#[tokio::test]
async fn other_methods_are_501_and_unknown_paths_400() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let a = request(
        addr,
        "PUT",
        &format!("/routing/v1/providers/{CID_V1}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(a.status, 501);
    let a = request(addr, "PUT", "/routing/v1/providers", &[], b"{}".to_vec()).await;
    assert_eq!(a.status, 501);
    let a = request(addr, "DELETE", "/routing/v1/ipns/k51x", &[], vec![]).await;
    assert_eq!(a.status, 501);
    for path in [
        "/routing/v1/nothing",
        "/routing/v1/providers/",
        "/routing/v1/ipns/a/b",
    ] {
        let a = get(addr, path, &[]).await;
        assert_eq!(a.status, 400, "{path}");
        assert_eq!(a.header("access-control-allow-origin"), "*");
    }
}

#[tokio::test]
async fn ipip_484_filters_of_addresses_and_protocols() {
    let (fake, _events) = Fake::new();
    let mut quic = record(1);
    quic.addrs = vec!["/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap()];
    let mut unknown = record(2);
    unknown.protocols.clear();
    let found = vec![quic, unknown, record(3)];
    fake.providers
        .lock()
        .unwrap()
        .insert(multihash_of(CID_V1), found);
    let addr = serve(fake, Pools::new(8, 8), Config::default()).await;
    let ids = |query: &str| {
        let path = format!("/routing/v1/providers/{CID_V1}?{query}");
        async move {
            let a = get(addr, &path, &[]).await;
            let list = a.json()["Providers"].as_array().unwrap().clone();
            let ids: Vec<String> = list
                .iter()
                .map(|r| r["ID"].as_str().unwrap().into())
                .collect();
            (a.status.as_u16(), ids)
        }
    };
    let id = |n| peer_id_base58(&peer(n));
    assert_eq!(ids("filter-addrs=quic-v1").await, (200, vec![id(1)]));
    assert_eq!(ids("filter-addrs=!udp").await, (200, vec![id(2), id(3)]));
    let bitswap = "filter-protocols=transport-bitswap";
    assert_eq!(ids(bitswap).await, (200, vec![id(1), id(3)]));
    let with_unknown = "filter-protocols=unknown%2Ctransport-bitswap&filter-addrs=tcp";
    assert_eq!(ids(with_unknown).await, (200, vec![id(2), id(3)]));
    assert_eq!(ids("filter-addrs=webtransport").await, (404, vec![]));

    // Protocols unknown: the field is left out, as boxo's server leaves it.
    let a = get(addr, &format!("/routing/v1/providers/{CID_V1}"), &[]).await;
    let list = a.json()["Providers"].as_array().unwrap().clone();
    let of = |n| {
        list.iter()
            .find(|r| r["ID"] == id(n).as_str())
            .unwrap()
            .clone()
    };
    assert!(of(2).get("Protocols").is_none(), "{list:?}");
    assert_eq!(of(3)["Protocols"], serde_json::json!(["transport-bitswap"]));
}

#[tokio::test]
async fn routing_errors_have_their_statuses() {
    let (fake, _events) = Fake::new();
    let addr = serve(fake.clone(), Pools::new(8, 8), Config::default()).await;
    let (name, record) = fixture("v1v2");
    let path = format!("/routing/v1/ipns/{}", peer_id_base36_cid(&name));
    for (e, status) in [
        (RoutingError::Unavailable("no peers".into()), 503),
        (
            RoutingError::Refused("older than the record held".into()),
            400,
        ),
        (RoutingError::Failed("disk".into()), 500),
    ] {
        *fake.fail.lock().unwrap() = Some(e.clone());
        let a = request(
            addr,
            "PUT",
            &path,
            &[("content-type", IPNS)],
            record.clone(),
        )
        .await;
        assert_eq!(a.status, status, "{e}");
        assert_eq!(a.json()["error"], e.to_string());
        let a = get(addr, &path, &[("accept", IPNS)]).await;
        assert_eq!(a.status, status, "{e}");
    }
}
