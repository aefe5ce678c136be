//! Issue 12, a full disk: a `dht-node --store sled` on a 3 MB tmpfs (mounted by the
//! test; skipped with a message where it cannot, e.g. not root) takes puts until its
//! disk is full, then refuses them with 202 and says so in its log once (not once
//! per put); after a SIGKILL, with room again, it restarts and serves every put it
//! acknowledged.

#![cfg(feature = "sled")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{NodeProc, Scratch};
use dht_core::Id;
use dht_datadir::tmpfs::Tmpfs;
use dht_node::{bencode_bytes, Dht, Error};

/// The log line of a store that cannot write.
const FULL_LINE: &str = "the store cannot write";

fn sled_node(dir: &Path, name: &str, data: &Path) -> NodeProc {
    let data = data.to_str().expect("utf-8 path");
    NodeProc::spawn_args(
        dir,
        name,
        "127.0.0.1:0",
        &[],
        &["--store", "sled", "--data-dir", data],
    )
}

/// A client as `dht-node put` runs one, whose only contact is `node`.
async fn client(node: SocketAddr) -> Dht {
    let dht = Dht::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .read_only(true)
        .republish(None)
        .request_timeout(Duration::from_millis(500))
        .spawn()
        .expect("client");
    dht.bootstrap(&[node]).await.expect("bootstrap");
    dht
}

/// A bencoded value of about 500 bytes, different for each `i`.
fn value(i: u32) -> Vec<u8> {
    bencode_bytes(format!("{i:0>500}").as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_puts_logs_once_and_loses_no_acknowledged_item() {
    let dir = Scratch::new("full-disk");
    let mnt = dir.0.join("mnt");
    let Some(fs) = Tmpfs::mount_or_skip(
        &mnt,
        "3m",
        "full_disk_refuses_puts_logs_once_and_loses_no_acknowledged_item",
    ) else {
        return;
    };
    let data = mnt.join("data");
    let mut node = sled_node(&dir.0, "a", &data);
    let dht = client(node.addr).await;

    let mut acknowledged: Vec<(Id, u32)> = Vec::new();
    let mut refused = 0;
    let mut after_refusal = 0;
    for i in 0..20_000 {
        if refused > 0 {
            after_refusal += 1;
            if after_refusal > 200 {
                break;
            }
        }
        match dht.put_immutable(value(i)).await {
            Ok(a) => {
                assert_eq!(a.value.stored_at, vec![node.addr]);
                acknowledged.push((a.value.target, i));
            }
            Err(Error::Refused { code: 202, .. }) => refused += 1,
            // The client drops a node that keeps answering with errors from its
            // table, and its only node at that: rejoin.
            Err(Error::NoResponse) if refused > 0 => {
                dht.bootstrap(&[node.addr]).await.expect("bootstrap again");
            }
            Err(e) => panic!("put {i}: {e:?}\n{}", node.log_text()),
        }
    }
    eprintln!(
        "{} puts acknowledged, {refused} refused with 202",
        acknowledged.len()
    );
    assert!(refused >= 10, "3 MB never filled: {refused} refused");
    assert!(
        acknowledged.len() > 100,
        "only {} puts acknowledged",
        acknowledged.len()
    );

    // The logger looks every second: the failure is logged once, not per refused put.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = node.log_text();
    assert_eq!(
        log.lines().filter(|l| l.contains(FULL_LINE)).count(),
        1,
        "{log}"
    );

    node.kill();
    fs.resize("64m");
    let node = sled_node(&dir.0, "b", &data);
    dht.shutdown().await.expect("client shutdown");
    let dht = client(node.addr).await;
    let mut lost = Vec::new();
    for (target, i) in &acknowledged {
        let got = dht.get_immutable(*target).await.expect("get");
        if got.value.as_deref() != Some(value(*i).as_slice()) {
            lost.push(*i);
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged items lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    // With room again the node takes puts.
    let a = dht.put_immutable(value(1_000_000)).await.expect("put");
    assert_eq!(a.value.stored_at, vec![node.addr]);
    dht.shutdown().await.expect("client shutdown");
    drop(node);
}
