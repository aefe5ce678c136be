//! The wire's record of who answered whose lookup.
//!
//! A lookup's result says which nodes answered it, but a figure of how well lookups
//! work must not rest on the engine's word: a lookup that ended before the K closest
//! answered, and listed them anyway, would look perfect. While the log is on, the
//! simulator decodes the queries that name a target (find_node, get_peers, get,
//! sample_infohashes) sent by a node with a command in progress, and the replies that
//! come back to it; a node has answered a lookup when a response carrying the
//! transaction id of a query for that lookup's target came back from it.

use std::collections::{BTreeMap, BTreeSet};

use dht_core::krpc::{self, Body, Method};
use dht_core::Id;

/// Queries in flight and the answers that came back, by (querier, target, responder).
#[derive(Debug, Default)]
pub(crate) struct AnswerLog {
    on: bool,
    /// (querier, queried, transaction id) -> the target the query named.
    asked: BTreeMap<(u32, u32, Vec<u8>), Id>,
    /// (querier, target, responder): the responder answered a query for the target.
    answered: BTreeSet<(u32, Id, u32)>,
}

impl AnswerLog {
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Starts recording (from nothing), or stops and forgets the queries in flight
    /// (the answers stay until the next start).
    pub(crate) fn watch(&mut self, on: bool) {
        if on {
            self.answered.clear();
        }
        self.asked.clear();
        self.on = on;
    }

    /// Honest node `from` sends `payload` to `to` (event-queue indices).
    pub(crate) fn on_send(&mut self, from: u32, to: u32, payload: &[u8]) {
        let Ok(msg) = krpc::decode(payload) else {
            return;
        };
        let Body::Query(q) = msg.body else {
            return;
        };
        let target = match q.method {
            Method::FindNode { target, .. }
            | Method::Get { target, .. }
            | Method::SampleInfohashes { target, .. } => target,
            Method::GetPeers { info_hash, .. } => info_hash,
            _ => return,
        };
        self.asked.insert((from, to, msg.transaction_id), target);
    }

    /// `payload` from `from` reaches honest node `to`.
    pub(crate) fn on_deliver(&mut self, from: u32, to: u32, payload: &[u8]) {
        let Ok(msg) = krpc::decode(payload) else {
            return;
        };
        if !matches!(msg.body, Body::Response(_)) {
            return;
        }
        if let Some(target) = self.asked.remove(&(to, from, msg.transaction_id)) {
            self.answered.insert((to, target, from));
        }
    }

    /// Did `responder` answer a query of `querier` for `target` while the log was on?
    pub(crate) fn answered(&self, querier: u32, target: &Id, responder: u32) -> bool {
        self.answered.contains(&(querier, *target, responder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dht_core::krpc::{Message, Response};

    fn query(tid: &[u8], target: Id) -> Vec<u8> {
        Message::query(tid.to_vec(), Id([1; 20]), Method::find_node(target)).to_bytes()
    }

    fn reply(tid: &[u8]) -> Vec<u8> {
        Message::new(tid.to_vec(), Body::Response(Response::new(Id([2; 20])))).to_bytes()
    }

    #[test]
    fn only_a_reply_to_a_query_for_the_target_counts() {
        let (t, other) = (Id([7; 20]), Id([8; 20]));
        let mut log = AnswerLog::default();
        log.watch(true);
        log.on_send(1, 2, &query(b"aa", t));
        log.on_send(1, 3, &query(b"bb", t));
        log.on_send(1, 4, &query(b"cc", other));
        // Node 2 answers; node 3 never does; node 4 answers a query for another target;
        // node 5 sends a reply nobody asked for; node 3's tid comes back from node 6.
        log.on_deliver(2, 1, &reply(b"aa"));
        log.on_deliver(4, 1, &reply(b"cc"));
        log.on_deliver(5, 1, &reply(b"aa"));
        log.on_deliver(6, 1, &reply(b"bb"));
        assert!(log.answered(1, &t, 2));
        assert!(!log.answered(1, &t, 3));
        assert!(!log.answered(1, &t, 4) && log.answered(1, &other, 4));
        assert!(!log.answered(1, &t, 5) && !log.answered(1, &t, 6));
        // A query answered twice is one answer; a start forgets the last phase.
        log.on_deliver(2, 1, &reply(b"aa"));
        log.watch(true);
        assert!(!log.answered(1, &t, 2));
    }
}
