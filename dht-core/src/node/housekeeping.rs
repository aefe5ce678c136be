//! Housekeeping on the maintenance timer: expiry in the store, pings of questionable
//! and unverified contacts, bucket refresh, re-bootstrap of an empty table, and the
//! periodic save of the routing table.

use std::time::Instant;

use super::kind::Kind;
use super::{Family, Node};
use crate::store::Store;

/// Housekeeping pings per tick, so that a large table is not pinged all at once.
const PINGS_PER_TICK: usize = 8;
/// Ledger charges released per tick (a tick is 30 s; 65,536 per tick clears any
/// ledger the caps allow in a few ticks).
const LEDGER_EXPIRIES_PER_TICK: usize = 65_536;
/// Bucket refresh lookups started per tick.
const REFRESHES_PER_TICK: usize = 2;

impl<S: Store> Node<S> {
    pub(super) fn maintenance(&mut self, now: Instant) {
        let wall = self.wall(now);
        if self.store.expire(wall).is_err() {
            self.stats.store_errors += 1;
        }
        // Bounded per tick, so a jump of the clock costs many ticks, not one long stall;
        // a charge released late only keeps its source's share spent a little longer.
        self.ledger.expire(wall, LEDGER_EXPIRIES_PER_TICK);
        for fam in [Family::V4, Family::V6] {
            let i = fam.index();
            for n in self.tables[i].questionable(now, PINGS_PER_TICK) {
                self.ping_node(now, n);
            }
            for n in self.tables[i].unverified_with_room(PINGS_PER_TICK) {
                self.ping_node(now, n);
            }
            if self.tables[i].is_empty() {
                let has_seeds = self.bootstrap_addrs.iter().any(|a| Family::of(a) == fam)
                    || self.restored.iter().any(|n| Family::of(&n.addr) == fam);
                let running = self.queries.values().any(|q| q.internal && q.family == fam);
                if has_seeds && !running {
                    self.start_bootstrap(now, fam, true);
                }
                continue;
            }
            let stale = self.tables[i].stale_buckets(now, self.config.bucket_refresh);
            for b in stale.into_iter().take(REFRESHES_PER_TICK) {
                self.tables[i].touch_bucket(b, now);
                let target = if b + 1 >= self.tables[i].bucket_count() {
                    self.id
                } else {
                    self.id.random_in_bucket(b, &mut self.rng)
                };
                self.start_lookup_in(now, Kind::FindNode, target, fam, true);
            }
        }
        if now >= self.next_routing_save {
            self.next_routing_save = now + self.config.routing_save_interval;
            self.save_routing(now);
        }
    }

    /// Writes the routing tables to the store now (also done periodically).
    pub fn save_routing(&mut self, now: Instant) {
        let snap = self.routing_snapshot(now);
        if snap.nodes.is_empty() {
            return;
        }
        if self.store.save_routing(&snap).is_err() {
            self.stats.store_errors += 1;
        }
    }
}
