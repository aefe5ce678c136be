//! Learning our public address from the `ip` field of replies (BEP 42): each /24
//! (IPv6: /64) of responders votes once per address, and an address that
//! [`MIN_IP_VOTERS`] distinct networks agree on, and that leads, becomes ours. A node
//! whose id derives from its address then takes an id that fits it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_chacha::rand_core::RngCore;

use crate::config::IdPolicy;
use crate::id::Id;
use crate::store::Store;

use super::{Family, Node};

/// Distinct /24s (/64s) that must report the same address before we believe it.
pub const MIN_IP_VOTERS: usize = 5;
/// Most distinct addresses voted for that are remembered.
const MAX_VOTED_IPS: usize = 16;

/// Votes for our public address.
#[derive(Debug, Default)]
pub(super) struct IpVotes {
    /// Our address as responders saw it -> the /24s (/64s) that said so.
    votes: BTreeMap<IpAddr, BTreeSet<[u8; 8]>>,
    /// The address the votes settled on.
    pub external_ip: Option<IpAddr>,
}

impl<S: Store> Node<S> {
    pub(super) fn vote_external_ip(&mut self, now: Instant, voter: SocketAddr, seen: IpAddr) {
        if Family::of(&voter) != Family::of(&SocketAddr::new(seen, 1)) {
            return;
        }
        if !self.ip_votes.votes.contains_key(&seen) && self.ip_votes.votes.len() >= MAX_VOTED_IPS {
            // Forget the least supported address to keep memory bounded.
            if let Some(weakest) = self
                .ip_votes
                .votes
                .iter()
                .min_by_key(|(_, v)| v.len())
                .map(|(ip, _)| *ip)
            {
                self.ip_votes.votes.remove(&weakest);
            }
        }
        let voters = self.ip_votes.votes.entry(seen).or_default();
        // Enough voters to decide; more would only cost memory.
        if voters.len() < 4 * MIN_IP_VOTERS {
            voters.insert(crate::defense::prefix_of(voter.ip()));
        }
        if voters.len() < MIN_IP_VOTERS {
            return;
        }
        let leader = self
            .ip_votes
            .votes
            .iter()
            .max_by_key(|(_, v)| v.len())
            .map(|(ip, _)| *ip);
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
