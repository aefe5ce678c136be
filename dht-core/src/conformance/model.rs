//! The randomized model check: a store against a `BTreeMap` model.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::id::Id;
use crate::store::{Store, StoreCounts, StoredItem, StoredPeer, UnixMillis};

use super::{immutable, mutable, ok, peer, v4, v6};

/// The reference model of a store: what [`check_random_model`] compares against.
#[derive(Default)]
struct Model {
    items: BTreeMap<Id, StoredItem>,
    peers: BTreeMap<Id, BTreeMap<SocketAddr, UnixMillis>>,
}

impl Model {
    fn counts(&self) -> StoreCounts {
        StoreCounts {
            items: self.items.len(),
            info_hashes: self.peers.len(),
            peers: self.peers.values().map(BTreeMap::len).sum(),
        }
    }

    fn peers_of(&self, ih: &Id) -> Vec<StoredPeer> {
        self.peers
            .get(ih)
            .map(|m| m.iter().map(|(a, e)| peer(*a, *e)).collect())
            .unwrap_or_default()
    }

    fn info_hashes(&self, start: &Id, max: usize) -> Vec<Id> {
        self.peers
            .range(start..)
            .chain(self.peers.range(..start))
            .map(|(k, _)| *k)
            .take(max)
            .collect()
    }

    fn expire(&mut self, now: UnixMillis) -> (usize, usize) {
        let before_items = self.items.len();
        self.items.retain(|_, it| it.expires_at > now);
        let mut peers = 0;
        for m in self.peers.values_mut() {
            let before = m.len();
            m.retain(|_, e| *e > now);
            peers += before - m.len();
        }
        self.peers.retain(|_, m| !m.is_empty());
        (before_items - self.items.len(), peers)
    }
}

/// Applies `steps` random operations (seeded by `seed`) to `store` and to a `BTreeMap`
/// model, comparing results after every operation and the whole contents regularly.
///
/// Keys and addresses come from small pools so that replacements, refreshes and
/// removals of present entries are frequent; deadlines cluster around a moving clock
/// so that every `expire` has something to do. Panics name the seed and the step.
pub fn check_random_model<S: Store>(store: &mut S, seed: u64, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let targets: Vec<Id> = (0..24).map(|_| Id::random(&mut rng)).collect();
    let hashes: Vec<Id> = (0..12).map(|_| Id::random(&mut rng)).collect();
    let addrs: Vec<SocketAddr> = (0..16u8)
        .map(|i| {
            if i % 3 == 0 {
                v6(0x2001, u16::from(i), 6881 + u16::from(i % 4))
            } else {
                v4(10, 0, i % 5, i, 6881 + u16::from(i % 2))
            }
        })
        .collect();
    let mut model = Model::default();
    let mut now: UnixMillis = 1_000_000;
    let pick = |rng: &mut ChaCha8Rng, n: usize| (rng.next_u32() as usize) % n;

    for step in 0..steps {
        let ctx = |what: &str| format!("random model check (seed {seed:#x}, step {step}): {what}");
        let deadline = now + u64::from(rng.next_u32() % 2000);
        match rng.next_u32() % 100 {
            0..=19 => {
                let t = targets[pick(&mut rng, targets.len())];
                let len = pick(&mut rng, 40);
                let mut value = vec![0u8; len];
                rng.fill_bytes(&mut value);
                let item = if rng.next_u32() % 2 == 0 {
                    immutable(t, &value, deadline)
                } else {
                    let mut salt = vec![0u8; pick(&mut rng, 3) * 8];
                    rng.fill_bytes(&mut salt);
                    mutable(
                        t,
                        &value,
                        rng.next_u32() as u8,
                        i64::from(rng.next_u32() as i32),
                        &salt,
                        deadline,
                    )
                };
                ok(store.put_item(item.clone()), &ctx("put_item"));
                model.items.insert(t, item);
            }
            20..=27 => {
                let t = targets[pick(&mut rng, targets.len())];
                let got = ok(store.remove_item(&t), &ctx("remove_item"));
                assert_eq!(
                    got,
                    model.items.remove(&t).is_some(),
                    "{}",
                    ctx("remove_item result")
                );
            }
            28..=35 => {
                let t = targets[pick(&mut rng, targets.len())];
                let got = ok(store.get_item(&t), &ctx("get_item"));
                assert_eq!(got.as_ref(), model.items.get(&t), "{}", ctx("get_item"));
            }
            36..=60 => {
                let ih = hashes[pick(&mut rng, hashes.len())];
                let a = addrs[pick(&mut rng, addrs.len())];
                ok(store.put_peer(&ih, peer(a, deadline)), &ctx("put_peer"));
                model.peers.entry(ih).or_default().insert(a, deadline);
            }
            61..=68 => {
                let ih = hashes[pick(&mut rng, hashes.len())];
                let a = addrs[pick(&mut rng, addrs.len())];
                let got = ok(store.remove_peer(&ih, &a), &ctx("remove_peer"));
                let want = match model.peers.get_mut(&ih) {
                    Some(m) => {
                        let was = m.remove(&a).is_some();
                        if m.is_empty() {
                            model.peers.remove(&ih);
                        }
                        was
                    }
                    None => false,
                };
                assert_eq!(got, want, "{}", ctx("remove_peer result"));
            }
            69..=76 => {
                let ih = hashes[pick(&mut rng, hashes.len())];
                let got = ok(store.get_peers(&ih), &ctx("get_peers"));
                assert_eq!(got, model.peers_of(&ih), "{}", ctx("get_peers"));
            }
            77..=84 => {
                let start = if rng.next_u32() % 2 == 0 {
                    hashes[pick(&mut rng, hashes.len())]
                } else {
                    Id::random(&mut rng)
                };
                let max = pick(&mut rng, 16);
                let got = ok(store.info_hashes(&start, max), &ctx("info_hashes"));
                assert_eq!(
                    got,
                    model.info_hashes(&start, max),
                    "{}",
                    ctx(&format!("info_hashes({start}, {max})"))
                );
            }
            85..=94 => {
                // Mostly forward, sometimes backward: a store must not assume a monotonic clock.
                now = if rng.next_u32() % 8 == 0 {
                    now.saturating_sub(300)
                } else {
                    now + u64::from(rng.next_u32() % 400)
                };
                let got = ok(store.expire(now), &ctx("expire"));
                assert_eq!(
                    got,
                    model.expire(now),
                    "{}",
                    ctx(&format!("expire({now}) counts"))
                );
            }
            _ => {
                ok(store.flush(), &ctx("flush"));
            }
        }
        assert_eq!(
            ok(store.counts(), &ctx("counts")),
            model.counts(),
            "{}",
            ctx("counts")
        );
        if step % 16 == 0 || step + 1 == steps {
            for t in &targets {
                assert_eq!(
                    ok(store.get_item(t), &ctx("get_item")).as_ref(),
                    model.items.get(t),
                    "{}",
                    ctx(&format!("item {t}"))
                );
            }
            for ih in &hashes {
                assert_eq!(
                    ok(store.get_peers(ih), &ctx("get_peers")),
                    model.peers_of(ih),
                    "{}",
                    ctx(&format!("peers of {ih}"))
                );
            }
            assert_eq!(
                ok(
                    store.info_hashes(&Id::ZERO, usize::MAX),
                    &ctx("info_hashes")
                ),
                model.info_hashes(&Id::ZERO, usize::MAX),
                "{}",
                ctx("all info_hashes")
            );
        }
    }
}
