//! The `/ipns/` validator and selector on records made by an independent
//! implementation (js-ipns: `tests/fixtures/ipns/gen.mjs` wrote `records.txt`, the
//! verdict the spec gives each record and js-ipns's own), and on records we create.

use std::time::Duration;

use dht_ipfs::{
    IpnsKeypair, IpnsRecord, Namespaces, RecordError, UnixMillis, Validator, IPNS_PREFIX,
    MAX_IPNS_RECORD_LEN,
};

/// The wall-clock time the fixtures are judged at (2027-01-15): records with EOLs in
/// 2020 are expired, those in 2100 and 2126 are not.
const NOW: UnixMillis = 1_800_000_000_000;

const RECORDS: &str = include_str!("fixtures/ipns/records.txt");

/// Records on which js-ipns and the spec (so we) disagree, and why.
const DIVERGENCES: &[&str] = &[
    // js verifies RSA and secp256k1 names; we verify ed25519 names only.
    "rsa-name",
    "secp256k1-name",
    // js reads a missing Sequence as none and accepts; Go and we require it.
    "no-sequence",
];

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

struct Case<'a> {
    kind: &'a str,
    name: &'a str,
    ours: &'a str,
    js: &'a str,
    key: Vec<u8>,
    records: Vec<Vec<u8>>,
}

fn cases() -> Vec<Case<'static>> {
    RECORDS
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 6, "{line}");
            Case {
                kind: f[0],
                name: f[1],
                ours: f[2],
                js: f[3],
                key: hex(f[4]),
                records: f[5].split(',').map(hex).collect(),
            }
        })
        .collect()
}

fn verdict(label: &str) -> Result<(), RecordError> {
    match label {
        "ok" => Ok(()),
        "too-large" => Err(RecordError::TooLarge),
        "bad-value" => Err(RecordError::BadValue),
        "bad-key" => Err(RecordError::BadKey),
        "unsupported-key" => Err(RecordError::UnsupportedKey),
        "mismatch" => Err(RecordError::Mismatch),
        "bad-signature" => Err(RecordError::BadSignature),
        "inconsistent" => Err(RecordError::Inconsistent),
        "expired" => Err(RecordError::Expired),
        other => panic!("unknown verdict {other}"),
    }
}

#[test]
fn every_js_ipns_record_gets_the_spec_s_verdict() {
    let v = Namespaces::default();
    let mut n = 0;
    for c in cases().iter().filter(|c| c.kind != "select") {
        let got = v.validate(&c.key, &c.records[0], NOW);
        assert_eq!(got, verdict(c.ours), "case {}", c.name);
        n += 1;
    }
    assert!(n >= 25, "only {n} cases");
}

#[test]
fn js_ipns_agrees_except_where_documented() {
    for c in cases().iter().filter(|c| c.kind != "select") {
        let js_accepts = c.js == "valid";
        let we_accept = c.ours == "ok";
        assert_eq!(
            js_accepts != we_accept,
            DIVERGENCES.contains(&c.name),
            "case {}: js said {}, we say {}",
            c.name,
            c.js,
            c.ours
        );
    }
}

#[test]
fn the_sizes_around_10_kib_are_the_ones_judged() {
    let size = |name: &str| {
        cases()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.records[0].len())
    };
    assert_eq!(size("at-10-kib"), Some(MAX_IPNS_RECORD_LEN));
    assert_eq!(size("over-10-kib"), Some(MAX_IPNS_RECORD_LEN + 1));
}

#[test]
fn the_selector_picks_what_js_ipns_picks() {
    let v = Namespaces::default();
    let mut n = 0;
    for c in cases().iter().filter(|c| c.kind == "select") {
        let values: Vec<&[u8]> = c.records.iter().map(Vec::as_slice).collect();
        let best = v.select(&c.key, &values).expect("a choice");
        assert_eq!(best.to_string(), c.ours, "case {}", c.name);
        assert_eq!(best.to_string(), c.js, "case {}: js-ipns", c.name);
        n += 1;
    }
    assert_eq!(n, 5);
}

/// `2126-06-15T12:34:56.123456789Z`, the EOL gen.mjs gave js-ipns.
const CREATED_EOL: u64 = 4_937_200_496_123_456_789;

#[test]
fn our_created_record_is_js_ipns_s_byte_for_byte() {
    let c = cases()
        .into_iter()
        .find(|c| c.kind == "create")
        .expect("the create case");
    let key = IpnsKeypair::from_secret([7; 32]);
    assert_eq!(key.record_key(), c.key);
    let ours = IpnsRecord::create(
        &key,
        b"/ipfs/bafkqahtwgevxmmrao5uxi2bamjzg623fnyqhg2lhnzqxi5lsmuqhmmi",
        42,
        CREATED_EOL,
        Duration::from_secs(3600),
    )
    .expect("a record");
    // Equal bytes: canonical DAG-CBOR, both signatures (ed25519 is deterministic), the
    // same protobuf; js-ipns validated these bytes when it made them.
    assert_eq!(ours, c.records[0]);
    assert_eq!(c.js, "valid");
    let r = IpnsRecord::verify(&c.key, &ours, NOW).expect("valid");
    assert_eq!(r.sequence(), 42);
    assert_eq!(r.eol(), i128::from(CREATED_EOL));
    assert_eq!(r.ttl(), Some(Duration::from_secs(3600)));
    assert!(r.value().starts_with(b"/ipfs/"));
}

fn millis_to_nanos(ms: UnixMillis) -> u64 {
    ms * 1_000_000
}

#[test]
fn our_records_validate_until_their_end_of_life() {
    let key = IpnsKeypair::from_secret([9; 32]);
    let eol = NOW + 3_600_000;
    let record = IpnsRecord::create(
        &key,
        b"/ipfs/bafkqaddwgevxmmraojswg33smq",
        1,
        millis_to_nanos(eol),
        Duration::from_secs(300),
    )
    .expect("a record");
    let v = Namespaces::default();
    assert_eq!(v.validate(&key.record_key(), &record, NOW), Ok(()));
    assert_eq!(v.validate(&key.record_key(), &record, eol - 1), Ok(()));
    // Valid while the end of life is after now, not at it.
    assert_eq!(
        v.validate(&key.record_key(), &record, eol),
        Err(RecordError::Expired)
    );
}

#[test]
fn a_record_is_only_its_name_s() {
    let a = IpnsKeypair::from_secret([1; 32]);
    let b = IpnsKeypair::from_secret([2; 32]);
    let eol = millis_to_nanos(NOW + 60_000);
    let of_b = IpnsRecord::create(&b, b"/ipfs/x", 1, eol, Duration::ZERO).expect("a record");
    let v = Namespaces::default();
    assert_eq!(v.validate(&b.record_key(), &of_b, NOW), Ok(()));
    assert_eq!(
        v.validate(&a.record_key(), &of_b, NOW),
        Err(RecordError::BadSignature)
    );
    // Keys that are no name.
    for key in [
        &b"/ipns/"[..],
        b"/ipns/not a multihash",
        &[IPNS_PREFIX, &[0x12, 0x20], &[0; 31]].concat(),
    ] {
        assert_eq!(v.validate(key, &of_b, NOW), Err(RecordError::BadKey));
    }
    // An identity name of 36 bytes that are no ed25519 key (type 1, but 31 bytes).
    let short = [IPNS_PREFIX, &[0x00, 0x23, 0x08, 0x01, 0x12, 0x1f], &[5; 31]].concat();
    assert_eq!(
        v.validate(&short, &of_b, NOW),
        Err(RecordError::UnsupportedKey)
    );
}

#[test]
fn a_record_over_10_kib_is_not_created() {
    let key = IpnsKeypair::from_secret([3; 32]);
    let eol = millis_to_nanos(NOW + 60_000);
    let big = vec![b'x'; MAX_IPNS_RECORD_LEN];
    assert_eq!(
        IpnsRecord::create(&key, &big, 1, eol, Duration::ZERO),
        Err(RecordError::TooLarge)
    );
    let fits = vec![b'x'; MAX_IPNS_RECORD_LEN / 3];
    let r = IpnsRecord::create(&key, &fits, 1, eol, Duration::ZERO).expect("fits");
    assert_eq!(
        Namespaces::default().validate(&key.record_key(), &r, NOW),
        Ok(())
    );
}

#[test]
fn the_selector_ranks_sequence_then_end_of_life() {
    let key = IpnsKeypair::from_secret([4; 32]);
    let make = |seq: u64, eol_ms: UnixMillis| {
        IpnsRecord::create(
            &key,
            b"/ipfs/x",
            seq,
            millis_to_nanos(eol_ms),
            Duration::ZERO,
        )
        .expect("a record")
    };
    let v = Namespaces::default();
    let k = key.record_key();
    let (old, new_early, new_late) = (
        make(1, NOW + 9_000),
        make(2, NOW + 1_000),
        make(2, NOW + 2_000),
    );
    assert_eq!(v.select(&k, &[&old, &new_early]), Ok(1));
    assert_eq!(v.select(&k, &[&new_early, &old]), Ok(0));
    assert_eq!(v.select(&k, &[&new_early, &new_late, &old]), Ok(1));
    assert_eq!(v.select(&k, &[&new_late, &new_late]), Ok(0));
    // Bytes that are no record rank below every record.
    assert_eq!(v.select(&k, &[b"junk", &old]), Ok(1));
    assert_eq!(v.select(&k, &[]), Err(RecordError::Empty));
}
