//! `MemStore` against the shared store conformance suite.
dht_core::store_conformance_tests!(dht_store_mem::MemStore::new());
