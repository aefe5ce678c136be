//! The simulator's global view: every live node's id, sorted, and what a perfect
//! network would answer. Written for any Kademlia whose keys are [`Id`]s of some
//! width and whose contacts are the kernel's [`Contact`]s: Mainline's [`NodeInfo`]
//! (the default) and IPFS's `PeerInfo`.

use dht_core::kernel::{Candidates, Contact};
use dht_core::{Id, NodeInfo, ID_LEN};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::closest::{closest_in, prefix_range};
use crate::rng::{below, mix64};
use crate::sim::Sim;

/// Live node ids in ascending order, with their node index.
///
/// Ids sharing a prefix form one contiguous run of a sorted array, so "the nodes in a
/// bucket's range" and "the nodes near a target" are binary searches.
#[derive(Debug, Clone)]
pub struct GlobalView<C = NodeInfo, const N: usize = ID_LEN> {
    sorted: Vec<(Id<N>, u32)>,
    k: usize,
    seed: u64,
    /// Ideal routing tables, built on first use (node index -> entries as indices).
    ideal: Vec<Option<Box<[u32]>>>,
    ids: Vec<Id<N>>,
    contacts: Vec<C>,
}

fn flip<const N: usize>(id: &Id<N>, bit: usize) -> Id<N> {
    let mut b = id.0;
    b[bit / 8] ^= 0x80 >> (bit % 8);
    Id(b)
}

impl GlobalView {
    /// The live nodes of `sim` as they are now; ideal tables hold up to `k` per bucket.
    pub fn new(sim: &Sim, k: usize) -> GlobalView {
        let contacts = (0..sim.len())
            .map(|i| NodeInfo {
                id: sim.node(i).id(),
                addr: sim.addr(i),
            })
            .collect();
        GlobalView::of(contacts, &sim.live(), k, sim.config().seed)
    }
}

impl<C: Contact<Key = Id<N>>, const N: usize> GlobalView<C, N> {
    /// The view of a network whose node `i` is `contacts[i]`, with the nodes `live`
    /// alive; ideal tables hold up to `k` per bucket, drawn from `seed`.
    pub fn of(contacts: Vec<C>, live: &[usize], k: usize, seed: u64) -> GlobalView<C, N> {
        let ids: Vec<Id<N>> = contacts.iter().map(|c| *c.key()).collect();
        let mut sorted: Vec<(Id<N>, u32)> = live.iter().map(|&i| (ids[i], i as u32)).collect();
        sorted.sort_unstable();
        GlobalView {
            sorted,
            k: k.max(1),
            seed,
            ideal: vec![None; ids.len()],
            ids,
            contacts,
        }
    }

    /// Live nodes.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True when no node is alive.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Index range in `sorted` of the ids sharing the first `bits` bits with `id`.
    fn prefix_range(&self, id: &Id<N>, bits: usize) -> (usize, usize) {
        prefix_range(&self.sorted, id, bits)
    }

    /// The `n` live nodes closest to `target` by XOR, closest first (node indices).
    pub fn closest(&self, target: &Id<N>, n: usize) -> Vec<u32> {
        closest_in(&self.sorted, target, n)
    }

    /// Node `i`'s ideal routing table: for every bucket range (ids sharing exactly d
    /// leading bits with its own), K nodes drawn at random from the range, or all
    /// there are. The draw is seeded by the run's seed and `i`, so it does not depend
    /// on the order tables are built in.
    pub fn ideal_table(&mut self, i: u32) -> &[u32] {
        if self.ideal[i as usize].is_none() {
            let own = self.ids[i as usize];
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix64(self.seed ^ 0x1dea_1000_0000_0000 ^ i as u64));
            let mut out = Vec::new();
            for depth in 0..N * 8 {
                let (lo, hi) = self.prefix_range(&flip(&own, depth), depth + 1);
                let len = hi - lo;
                if len <= self.k {
                    out.extend(self.sorted[lo..hi].iter().map(|x| x.1));
                } else {
                    // Distinct positions by rejection: len > k, so few draws are wasted.
                    let mut picks: Vec<usize> = Vec::with_capacity(self.k);
                    while picks.len() < self.k {
                        let p = below(&mut rng, len);
                        if !picks.contains(&p) {
                            picks.push(p);
                        }
                    }
                    out.extend(picks.into_iter().map(|p| self.sorted[lo + p].1));
                }
                let (a, b) = self.prefix_range(&own, depth + 1);
                if b - a <= 1 {
                    break;
                }
            }
            self.ideal[i as usize] = Some(out.into_boxed_slice());
        }
        self.ideal[i as usize].as_deref().unwrap_or(&[])
    }

    /// Mean size of the ideal tables built so far.
    pub fn ideal_entries_mean(&self) -> f64 {
        let (n, sum) = self
            .ideal
            .iter()
            .flatten()
            .fold((0usize, 0usize), |(n, s), t| (n + 1, s + t.len()));
        if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64
        }
    }

    fn ideal_answer(&mut self, i: u32, target: &Id<N>) -> Vec<u32> {
        let k = self.k;
        let mut t: Vec<u32> = self.ideal_table(i).to_vec();
        let ids = &self.ids;
        t.sort_unstable_by_key(|&j| ids[j as usize].distance(target));
        t.truncate(k);
        t
    }

    /// Hops (as dht-core counts them: the depth of the closest result) of a lookup
    /// for `target` from node `source` over ideal routing tables, with the same
    /// iterative algorithm ([`Candidates`], same k and alpha) and instant answers.
    pub fn ideal_hops(
        &mut self,
        source: u32,
        target: &Id<N>,
        alpha: usize,
        max_candidates: usize,
    ) -> u32 {
        let mut cands = Candidates::toward(*target, self.k, alpha, max_candidates);
        for j in self.ideal_answer(source, target) {
            cands.add(self.contacts[j as usize].clone(), 1);
        }
        loop {
            let next = cands.next_to_query();
            if next.is_empty() {
                break;
            }
            for n in next {
                let Some(depth) = cands.on_response(n.key(), None) else {
                    continue;
                };
                let idx = self.index_of_id(n.key());
                for m in self.ideal_answer(idx, target) {
                    if m != source {
                        cands.add(self.contacts[m as usize].clone(), depth + 1);
                    }
                }
            }
        }
        cands.closest_responded().first().map_or(0, |c| c.1)
    }

    fn index_of_id(&self, id: &Id<N>) -> u32 {
        let p = self.sorted.partition_point(|(x, _)| x < id);
        self.sorted[p].1
    }
}
