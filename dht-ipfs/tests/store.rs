//! The in-memory store passes the store conformance suite.

#[test]
fn mem_store_passes_the_conformance_suite() {
    dht_ipfs::conformance::run_all(dht_ipfs::MemStore::new);
}
