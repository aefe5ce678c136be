//! `SledStore` against the shared store conformance suite, each check on a store in
//! its own temporary data dir.
dht_core::store_conformance_tests!(
    dht_store_sled::SledStore::open_temporary().expect("temporary store")
);
