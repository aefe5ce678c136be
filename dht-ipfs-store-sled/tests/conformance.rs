//! `SledStore` against dht-ipfs's store conformance suite, each check on a store in
//! its own temporary data dir.

#[test]
fn conformance() {
    dht_ipfs::conformance::run_all(|limits| {
        dht_ipfs_store_sled::SledStore::open_temporary(limits).expect("temporary store")
    });
}
