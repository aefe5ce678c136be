//! Keeping the ring: `stabilize`, `notify`, `fix_fingers`, `check_predecessor`,
//! replication to the successor list, key transfer on join, and voluntary leave.
//!
//! The periodic routines are the paper's (Figure 7 of the SIGCOMM paper), with the
//! successor list of its Section 6.3: `stabilize` asks the successor for its
//! predecessor and its list, so one round both adopts a node that joined in between
//! and refreshes the list; a successor that does not answer is dropped and the next
//! one in the list asked at once.

use std::net::SocketAddr;
use std::time::Instant;

use dht_core::{Id, Store};

use crate::node::{ChordNode, Waiting};
use crate::ring;
use crate::wire::{Peer, Query, Reply};

impl<S: Store> ChordNode<S> {
    /// Runs the routines whose period is up.
    pub(crate) fn housekeeping(&mut self, now: Instant) {
        if now >= self.next_stabilize {
            let period = self.config.stabilize_interval;
            self.next_stabilize = now + self.jitter(period);
            self.stabilize(now);
        }
        if now >= self.next_fix_fingers {
            let period = if self.finger_passes < self.config.young_passes {
                self.config.young_fix_fingers_interval
            } else {
                self.config.fix_fingers_interval
            };
            self.next_fix_fingers = now + self.jitter(period);
            self.fix_fingers(now);
        }
        if now >= self.next_check_predecessor {
            let period = self.config.check_predecessor_interval;
            self.next_check_predecessor = now + self.jitter(period);
            self.check_predecessor(now);
        }
    }

    fn stabilize(&mut self, now: Instant) {
        if self.stabilizing {
            return;
        }
        let mut succ = self.successor();
        if succ.id == self.id {
            // No successor: a ring of one that a node joined (it notified us, and in a
            // ring of two our predecessor is our successor as well), or a member whose
            // r successors all failed. That member must not take its predecessor: the
            // interval (self, predecessor) is nearly the whole circle, so every
            // stabilize after would adopt the next node back, and the node would walk
            // backwards round the ring answering `found` for keys it never held. It
            // takes the nearest node it knows clockwise (a finger past the dead run),
            // asks it at once, and walks back from there to its true successor.
            let nearest = self
                .known()
                .filter(|p| p.id != self.id)
                .min_by_key(|p| ring::sub(&p.id, &self.id))
                .copied();
            let Some(p) = nearest else {
                return;
            };
            self.adopt_successors(vec![p]);
            if self.predecessor.is_some_and(|q| q.id == p.id) {
                // The ring of one that a node joined: notify it, ask it next period.
                self.notify(now);
                return;
            }
            self.rejoining = true;
            succ = p;
        }
        self.stabilizing = true;
        let waiting = Waiting::Stabilize { successor: succ.id };
        self.send_query(now, succ.addr, &Query::GetPredecessor, Some(waiting));
    }

    /// The successor answered `get_predecessor` (`None`: with an error).
    pub(crate) fn on_stabilize_reply(&mut self, now: Instant, successor: Id, reply: Option<Reply>) {
        self.stabilizing = false;
        let Some(reply) = reply else {
            return;
        };
        let Some(succ) = self.successors.iter().find(|p| p.id == successor).copied() else {
            return;
        };
        let mut list = vec![succ];
        list.extend(reply.successors);
        if reply.predecessor.is_some_and(|x| x.id == self.id) {
            self.rejoining = false;
        }
        if let Some(x) = reply.predecessor {
            if ring::in_open(&x.id, &self.id, &succ.id) {
                list.insert(0, x);
                // Ask the closer node at once rather than a period later: when many
                // nodes join one gap, each walks to its place in round trips, not periods.
                self.next_stabilize = now;
            }
        }
        self.adopt_successors(list);
        self.notify(now);
        self.replicate(now);
    }

    /// Takes `list` as the successor list: without this node, without repeats,
    /// at most r long.
    pub(crate) fn adopt_successors(&mut self, list: Vec<Peer>) {
        let mut out: Vec<Peer> = Vec::with_capacity(self.config.successors);
        for p in list {
            if p.id != self.id && !out.iter().any(|q| q.id == p.id) {
                out.push(p);
            }
            if out.len() == self.config.successors {
                break;
            }
        }
        self.successors = out;
    }

    fn notify(&mut self, now: Instant) {
        let succ = self.successor();
        if succ.id != self.id {
            self.send_query(now, succ.addr, &Query::Notify, None);
        }
    }

    /// `sender` thinks it might be our predecessor.
    pub(crate) fn on_notify(&mut self, now: Instant, sender: Peer) {
        let old = self.predecessor;
        let adopt = match &old {
            None => true,
            Some(p) => ring::in_open(&sender.id, &p.id, &self.id),
        };
        if !adopt || sender.id == self.id {
            return;
        }
        self.predecessor = Some(sender);
        // The keys between the old predecessor and the new one are now the new one's.
        let moving: Vec<Id> = self
            .keys
            .iter()
            .filter(|k| match &old {
                Some(o) => ring::in_half_open(k, &o.id, &sender.id),
                None => !ring::in_half_open(k, &sender.id, &self.id),
            })
            .copied()
            .collect();
        self.send_values(now, sender.addr, &moving, false);
    }

    /// Sends the values of `keys` to `to` as puts (fire and forget).
    fn send_values(&mut self, now: Instant, to: SocketAddr, keys: &[Id], replica: bool) {
        for k in keys {
            if let Ok(Some(item)) = self.store.get_item(k) {
                let q = Query::Put {
                    v: item.item.into_value(),
                    replica,
                };
                self.send_query(now, to, &q, None);
            }
        }
    }

    /// Copies the keys this node owns to the first r - 1 successors when that set
    /// or the owned range changed since the last copy.
    fn replicate(&mut self, now: Instant) {
        let copies = self.config.successors.saturating_sub(1);
        let set: Vec<Peer> = self.successors.iter().take(copies).copied().collect();
        let ids: Vec<Id> = set.iter().map(|p| p.id).collect();
        let since = self.predecessor.map(|p| p.id);
        if ids == self.replicated_to && since == self.replicated_since {
            return;
        }
        // A new predecessor can only have shrunk our range if it joined, and a
        // join's keys are sent to it by `on_notify`; any other change may have
        // grown it, so every owned key goes to every member.
        let range_changed = since != self.replicated_since;
        let owned: Vec<Id> = self.keys.iter().filter(|k| self.owns(k)).copied().collect();
        for p in &set {
            if range_changed || !self.replicated_to.contains(&p.id) {
                self.send_values(now, p.addr, &owned, true);
            }
        }
        self.replicated_to = ids;
        self.replicated_since = since;
    }

    fn fix_fingers(&mut self, now: Instant) {
        if self.fixing.is_some() {
            return;
        }
        if self.next_finger == 0 && self.pass_begun {
            self.finger_passes = self.finger_passes.saturating_add(1);
            self.pass_begun = false;
            self.fixing = self.start_self_check(now);
            return;
        }
        self.pass_begun = true;
        let succ = self.successor();
        // Fingers whose start precedes the successor are the successor: no lookup.
        for _ in 0..ring::M {
            let i = self.next_finger;
            if !ring::in_half_open(&ring::finger_start(&self.id, i), &self.id, &succ.id) {
                self.fixing = Some(self.start_finger_lookup(now, i));
                return;
            }
            self.fingers.remove(&(i as u8));
            self.next_finger = (i + 1) % ring::M;
            if succ.id == self.id {
                return;
            }
        }
    }

    fn check_predecessor(&mut self, now: Instant) {
        if self.checking {
            return;
        }
        if let Some(p) = self.predecessor {
            self.checking = true;
            let waiting = Waiting::CheckPredecessor { predecessor: p.id };
            self.send_query(now, p.addr, &Query::Ping, Some(waiting));
        }
    }

    /// A neighbour leaves: if it was our predecessor, its predecessor is ours; if
    /// it was our successor, its list is ours.
    pub(crate) fn on_leave(
        &mut self,
        now: Instant,
        sender: Peer,
        predecessor: Option<Peer>,
        successors: Vec<Peer>,
    ) {
        if self.predecessor.is_some_and(|p| p.id == sender.id) {
            self.predecessor = predecessor.filter(|p| p.id != self.id);
        }
        if self.successors.first().is_some_and(|p| p.id == sender.id) {
            let mut list: Vec<Peer> = successors
                .into_iter()
                .filter(|p| p.id != sender.id)
                .collect();
            list.extend(self.successors.iter().skip(1).copied());
            self.adopt_successors(list);
        }
        self.forget(&sender.id);
        self.replicate(now);
    }

    /// Leaves the ring voluntarily: hands the owned keys to the successor, tells
    /// the successor and the predecessor of each other, and goes silent. Commands
    /// in progress end as failed.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let succ = self.successor();
        if self.joined && succ.id != self.id {
            let owned: Vec<Id> = self.keys.iter().filter(|k| self.owns(k)).copied().collect();
            self.send_values(now, succ.addr, &owned, false);
            let to_succ = Query::Leave {
                predecessor: self.predecessor,
                successors: Vec::new(),
            };
            self.send_query(now, succ.addr, &to_succ, None);
            if let Some(p) = self.predecessor {
                let to_pred = Query::Leave {
                    predecessor: None,
                    successors: self.successors.clone(),
                };
                self.send_query(now, p.addr, &to_pred, None);
            }
        }
        self.abandon_ops(now);
        self.pending.clear();
        self.left = true;
    }
}
