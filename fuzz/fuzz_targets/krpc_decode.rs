//! The KRPC decoder on arbitrary bytes: never panics; what decodes re-encodes and
//! decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dht_core::krpc::decode(data) {
        let again = dht_core::krpc::decode(&m.to_bytes()).expect("our own encoding decodes");
        assert_eq!(again, m);
    }
});
