//! BEP 33 through the public API: announces with and without `seed`, then a scrape
//! from another node estimates both counts from the union of the closest nodes' bloom
//! filters; `noseed` puts non-seeds first.

mod common;

use common::Net;
use dht_core::krpc::{Body, Message, Method};
use dht_core::{Id, Outcome, Request};

#[test]
fn scrape_counts_announced_seeds_and_peers() {
    let mut net = Net::new(60, 33, false, |_| {});
    net.bootstrap_all();
    let ih = Id::sha1(b"a scraped torrent");
    let (seeds, peers) = (14, 23);
    for i in 0..seeds + peers {
        let q = net.nodes[i]
            .start(
                net.now,
                Request::AnnouncePeer {
                    info_hash: ih,
                    port: Some(6000 + i as u16),
                    seed: i < seeds,
                },
            )
            .expect("request");
        let d = net.wait(i, q);
        assert!(
            matches!(d.outcome, Outcome::Stored { ref stored_at, .. } if !stored_at.is_empty()),
            "announce {i}: {:?}",
            d.outcome
        );
    }
    let scraper = 59;
    let q = net.nodes[scraper]
        .start(net.now, Request::Scrape { info_hash: ih })
        .expect("request");
    let Outcome::Scrape {
        seeds: s,
        peers: p,
        responders,
    } = net.wait(scraper, q).outcome
    else {
        panic!("not a scrape outcome");
    };
    assert!(responders >= 4, "only {responders} nodes sent filters");
    // At a few dozen IPs in 2048 bits the estimate is off by a collision or two at most.
    assert!(
        s.abs_diff(seeds as u32) <= 2,
        "seeds: estimated {s}, announced {seeds}"
    );
    assert!(
        p.abs_diff(peers as u32) <= 2,
        "peers: estimated {p}, announced {peers}"
    );

    // A scrape of a torrent nobody announced finds nothing.
    let q = net.nodes[scraper]
        .start(
            net.now,
            Request::Scrape {
                info_hash: Id::sha1(b"nobody"),
            },
        )
        .expect("request");
    let d = net.wait(scraper, q);
    assert!(
        matches!(
            d.outcome,
            Outcome::Scrape {
                seeds: 0,
                peers: 0,
                ..
            }
        ),
        "{:?}",
        d.outcome
    );
}

/// The scraping node is one of the DHT's nodes: the swarm it holds itself counts, as a
/// lookup consults the local store, even when no other node holds any of it.
#[test]
fn scrape_counts_the_scraping_nodes_own_store() {
    let mut net = Net::new(20, 35, false, |_| {});
    net.bootstrap_all();
    let ih = Id::sha1(b"held only by the scraper");
    let scraper = 7;
    hold_swarm(&mut net, scraper, ih, 12, 5);
    let q = net.nodes[scraper]
        .start(net.now, Request::Scrape { info_hash: ih })
        .expect("request");
    let Outcome::Scrape {
        seeds,
        peers,
        responders,
    } = net.wait(scraper, q).outcome
    else {
        panic!("not a scrape outcome");
    };
    assert_eq!((seeds, peers), (12, 5), "the scraper's own swarm");
    assert_eq!(responders, 1, "only the scraper holds the swarm");
}

#[test]
fn noseed_puts_non_seeds_first_and_scrape_sends_filters() {
    let mut net = Net::new(8, 34, false, |_| {});
    let ih = Id::sha1(b"noseed");
    // Node 1 holds the swarm: 60 seeds, then 3 non-seeds.
    let holder = 1;
    hold_swarm(&mut net, holder, ih, 60, 3);
    let asker = std::net::SocketAddr::from(([127, 8, 0, 1], 7000));
    let query = raw(Method::get_peers(ih).with_scrape(true).with_noseed(true));
    net.nodes[holder].handle_datagram(net.now, asker, None, &query);
    let mut reply = None;
    while let Some(t) = net.nodes[holder].poll_transmit() {
        if let Ok(Message {
            body: Body::Response(r),
            ..
        }) = dht_core::krpc::decode(&t.payload)
        {
            assert!(t.payload.len() <= 1024, "{} bytes", t.payload.len());
            reply = Some(r);
        }
    }
    let r = reply.expect("a response to the scrape");
    let non_seeds: Vec<_> = (60..63u16)
        .map(|i| std::net::SocketAddr::from(([127, 9, 0, i as u8 + 1], 7000)))
        .collect();
    // Stored peers come in address order, the non-seeds last: only `noseed` puts them
    // first (a random 50 of 63 otherwise).
    assert!(r.values.len() > 40, "{} values", r.values.len());
    assert_eq!(&r.values[..3], &non_seeds[..], "non-seeds first");
    let (bf_seeds, bf_peers) = (r.bf_seeds.expect("BFsd"), r.bf_peers.expect("BFpe"));
    assert!(
        (bf_seeds.estimate() - 60.0).abs() < 3.0,
        "{}",
        bf_seeds.estimate()
    );
    assert!(
        (bf_peers.estimate() - 3.0).abs() < 0.5,
        "{}",
        bf_peers.estimate()
    );
}

/// Announces `seeds` seeds, then `others` non-seeds, of `info_hash` straight to node
/// `holder`, each from its own address 127.9.x.y:7000 with a token it got first.
fn hold_swarm(net: &mut Net, holder: usize, info_hash: Id, seeds: u16, others: u16) {
    for i in 0..seeds + others {
        let from = std::net::SocketAddr::from(([127, 9, (i >> 8) as u8, i as u8 + 1], 7000));
        let token = {
            let get = raw(Method::get_peers(info_hash));
            net.nodes[holder].handle_datagram(net.now, from, None, &get);
            let mut token = None;
            while let Some(t) = net.nodes[holder].poll_transmit() {
                if let Ok(Message {
                    body: Body::Response(r),
                    ..
                }) = dht_core::krpc::decode(&t.payload)
                {
                    token = r.token;
                }
            }
            token.expect("a token")
        };
        let announce = raw(Method::announce_peer(info_hash, 7000, token).with_seed(i < seeds));
        net.nodes[holder].handle_datagram(net.now, from, None, &announce);
        while net.nodes[holder].poll_transmit().is_some() {}
    }
}

fn raw(method: Method) -> Vec<u8> {
    Message::query(b"sc".to_vec(), Id([0x77; 20]), method).to_bytes()
}
