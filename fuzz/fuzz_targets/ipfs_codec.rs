//! The kad codec of `dht-ipfs` on arbitrary bytes, as a request and as a reply: never
//! panics; a frame that decodes re-encodes and decodes to the same message; what it
//! carries (peers, a `/pk` or `/ipns` record) goes through the readers a node applies to it.
#![no_main]

use dht_ipfs::wire::{decode_frame, encode_frame, frame_header};
use dht_ipfs::{Namespaces, PeerInfo, RecordPolicy, Validator};
use libfuzzer_sys::fuzz_target;

/// The wall-clock time records are judged at (IPNS EOLs): 2027-01-15.
const NOW: dht_ipfs::UnixMillis = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = frame_header(data, 64 * 1024);
    let Ok(m) = decode_frame(data, 128 * 1024) else {
        return;
    };
    let again = decode_frame(&encode_frame(&m), usize::MAX).expect("our own encoding decodes");
    assert_eq!(again, m);
    for p in m.closer_peers.iter().chain(&m.provider_peers) {
        if let Some(info) = PeerInfo::from_wire(p) {
            assert!(info.addrs().len() <= dht_ipfs::MAX_ADDRS);
        }
    }
    if let Some(r) = &m.record {
        let open = Namespaces { policy: RecordPolicy::permissive() };
        let _ = Namespaces::default().validate(&r.key, &r.value, NOW);
        let _ = open.validate(&r.key, &r.value, NOW);
    }
});
