//! Learning our public address from the `ip` field of replies (BEP 42): each /24
//! (IPv6: /64) of responders votes once per address, and an address that
//! [`crate::Config::min_ip_voters`] distinct networks agree on, and that leads, becomes ours. A node
//! whose id derives from its address then takes an id that fits it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_chacha::rand_core::RngCore;

use crate::config::IdPolicy;
use crate::id::Id;
use crate::store::Store;

use super::{Family, Node};

/// Most distinct addresses voted for that are remembered.
const MAX_VOTED_IPS: usize = 16;

/// Votes for our public address.
///
/// Sorted vectors, not maps: a node keeps one address voted for, rarely more, and at
/// most `4 * min_ip_voters` voters for it, and a B-tree allocates a node of 11 slots
/// for the first of each (about 0.9 KB a node in a large simulation against 0.4).
/// Same order, same answers.
#[derive(Debug, Default)]
pub(super) struct IpVotes {
    /// Our address as responders saw it -> the /24s (/64s) that said so, both sorted.
    votes: Vec<(IpAddr, Vec<[u8; 8]>)>,
    /// The address the votes settled on.
    pub external_ip: Option<IpAddr>,
}

impl IpVotes {
    fn position(&self, ip: &IpAddr) -> Result<usize, usize> {
        self.votes.binary_search_by(|(a, _)| a.cmp(ip))
    }
}

impl<S: Store> Node<S> {
    pub(super) fn vote_external_ip(&mut self, now: Instant, voter: SocketAddr, seen: IpAddr) {
        if Family::of(&voter) != Family::of(&SocketAddr::new(seen, 1)) {
            return;
        }
        let found = self.ip_votes.position(&seen);
        let votes = &mut self.ip_votes.votes;
        let at = match found {
            Ok(i) => i,
            Err(mut i) => {
                if votes.len() >= MAX_VOTED_IPS {
                    // Forget the least supported address (the first of the least
                    // supported, in address order) to keep memory bounded.
                    if let Some(weakest) = votes
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, v))| v.len())
                        .map(|(w, _)| w)
                    {
                        votes.remove(weakest);
                        if weakest < i {
                            i -= 1;
                        }
                    }
                }
                // One address at a time: nearly every node is only ever told one
                // (a vector's first growth would keep room for four, 144 bytes more).
                votes.reserve_exact(1);
                votes.insert(i, (seen, Vec::new()));
                i
            }
        };
        let voters = &mut votes[at].1;
        // Enough voters to decide; more would only cost memory.
        let min_voters = self.config.min_ip_voters;
        let most = 4 * min_voters;
        if voters.len() < most {
            let prefix = crate::defense::prefix_of(voter.ip());
            if let Err(j) = voters.binary_search(&prefix) {
                // Room for every voter kept at once (up to 64: a configuration asking
                // for more voters grows the list as it fills).
                if voters.capacity() == 0 {
                    voters.reserve_exact(most.min(64));
                }
                voters.insert(j, prefix);
            }
        }
        if voters.len() < min_voters {
            return;
        }
        // The last of the most supported, in address order (as `max_by_key` picks).
        let leader = votes.iter().max_by_key(|(_, v)| v.len()).map(|(ip, _)| *ip);
        if leader != Some(seen) || self.ip_votes.external_ip == Some(seen) {
            return;
        }
        self.ip_votes.external_ip = Some(seen);
        // A node that derives its id from its address (BEP 42) takes an id that fits
        // the address the network sees, unless that address is exempt.
        if matches!(self.config.id_policy, IdPolicy::Bep42(_))
            && !crate::bep42::is_exempt(seen)
            && !crate::bep42::is_valid(&self.id, seen)
        {
            let mut filler = [0u8; 20];
            self.rng.fill_bytes(&mut filler);
            let r = (self.rng.next_u32() & 0xff) as u8;
            let id = crate::bep42::secure_id(seen, r, filler);
            self.change_id(now, id);
        }
    }

    /// Adopts a new node id: the tables are rebuilt around it, keeping their contacts.
    fn change_id(&mut self, now: Instant, id: Id) {
        self.id = id;
        for t in self.tables.iter_mut() {
            *t = t.rebuilt(id, now);
        }
    }
}
