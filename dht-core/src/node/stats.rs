//! The node's counters since start: traffic, queries and errors by kind, drops by
//! reason, tokens, storage refusals by reason, store errors.
//!
//! Plain counters, read with [`crate::Node::stats`]; runtimes export them (logs,
//! metrics) without the core knowing how. Every breakdown is keyed by a small enum
//! with a fixed set of values ([`KrpcMethod`], [`ErrorCode`], [`RefusalReason`]), so
//! an exporter's label values come from a closed set whatever peers send: iterate a
//! breakdown with its `iter()`, name a label with `as_str()`.

use crate::krpc::{code, Method};

/// Defines a label enum with `ALL` and `as_str`, and a counter array keyed by it.
macro_rules! label_set {
    (
        $(#[$enum_doc:meta])* $label:ident,
        $(#[$counts_doc:meta])* $counts:ident,
        { $( $(#[$doc:meta])* $variant:ident = $name:literal ),+ $(,)? }
    ) => {
        $(#[$enum_doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $label {
            $( $(#[$doc])* $variant, )+
        }

        impl $label {
            /// Every value, in a fixed order (the order of `iter()`).
            pub const ALL: &'static [$label] = &[$($label::$variant),+];

            /// The label value an exporter uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($label::$variant => $name,)+
                }
            }
        }

        $(#[$counts_doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $counts([u64; $label::ALL.len()]);

        impl $counts {
            /// The count of one label.
            pub fn get(&self, label: $label) -> u64 {
                self.0[label as usize]
            }

            /// Every label with its count, in the order of `ALL`.
            pub fn iter(&self) -> impl Iterator<Item = ($label, u64)> + '_ {
                $label::ALL.iter().map(|l| (*l, self.0[*l as usize]))
            }

            /// The sum over every label.
            pub fn total(&self) -> u64 {
                self.0.iter().sum()
            }

            pub(crate) fn bump(&mut self, label: $label) {
                self.0[label as usize] += 1;
            }
        }
    };
}

label_set!(
    /// A KRPC method as counters see it: the methods we know, every other name is
    /// `Other` (so that a peer cannot mint label values).
    KrpcMethod,
    /// A count per [`KrpcMethod`].
    MethodCounts,
    {
        /// `ping`.
        Ping = "ping",
        /// `find_node`.
        FindNode = "find_node",
        /// `get_peers` (BEP 33 scrapes included).
        GetPeers = "get_peers",
        /// `announce_peer`.
        AnnouncePeer = "announce_peer",
        /// BEP 44 `get`.
        Get = "get",
        /// BEP 44 `put`.
        Put = "put",
        /// BEP 51 `sample_infohashes`.
        SampleInfohashes = "sample_infohashes",
        /// Any other method name.
        Other = "other",
    }
);

impl KrpcMethod {
    /// The counter label of a decoded method.
    pub fn of(method: &Method) -> KrpcMethod {
        match method {
            Method::Ping => KrpcMethod::Ping,
            Method::FindNode { .. } => KrpcMethod::FindNode,
            Method::GetPeers { .. } => KrpcMethod::GetPeers,
            Method::AnnouncePeer { .. } => KrpcMethod::AnnouncePeer,
            Method::Get { .. } => KrpcMethod::Get,
            Method::Put(_) => KrpcMethod::Put,
            Method::SampleInfohashes { .. } => KrpcMethod::SampleInfohashes,
            Method::Unknown { .. } => KrpcMethod::Other,
        }
    }
}

label_set!(
    /// A KRPC error code as counters see it: BEP 5's four, every other code (BEP 44's
    /// 205 to 302, anything a peer sends) is `Other`.
    ErrorCode,
    /// A count per [`ErrorCode`].
    ErrorCounts,
    {
        /// 201, generic error.
        Generic = "201",
        /// 202, server error (ours: storage full, a share used up, a store failure).
        Server = "202",
        /// 203, protocol error (malformed query, bad token, invalid argument).
        Protocol = "203",
        /// 204, method unknown.
        MethodUnknown = "204",
        /// Any other code.
        Other = "other",
    }
);

impl ErrorCode {
    /// The counter label of an error code.
    pub fn of(c: i64) -> ErrorCode {
        match c {
            code::GENERIC => ErrorCode::Generic,
            code::SERVER => ErrorCode::Server,
            code::PROTOCOL => ErrorCode::Protocol,
            code::METHOD_UNKNOWN => ErrorCode::MethodUnknown,
            _ => ErrorCode::Other,
        }
    }
}

label_set!(
    /// Why a put or an announce was refused for lack of room (each answered 202).
    /// The storage limits are [`crate::Limits`]; a full swarm refuses nobody (its
    /// soonest-expiring peer is replaced), so it has no reason here.
    RefusalReason,
    /// A count per [`RefusalReason`].
    RefusalCounts,
    {
        /// A new item at [`crate::Limits::max_items`], and no network holding
        /// enough more than the writer's to give way.
        ItemCap = "item_cap",
        /// A new info_hash at [`crate::Limits::max_info_hashes`].
        InfoHashCap = "info_hash_cap",
        /// Over [`crate::Limits::max_bytes`], the estimated bytes of everything stored.
        ByteCap = "byte_cap",
        /// The source, or a network above it, holds its share of items
        /// ([`crate::Limits::max_items_per_source`], scaled per level).
        SourceItems = "source_items",
        /// The source, or a network above it, holds a slot in its share of swarms
        /// ([`crate::Limits::max_info_hashes_per_source`], scaled per level).
        SourceInfoHashes = "source_info_hashes",
        /// Over the byte share of the source or of a network above it
        /// ([`crate::Limits::max_bytes_per_source`], scaled per level).
        SourceBytes = "source_bytes",
    }
);

/// Counters since start.
///
/// Republishing is not the core's: a runtime re-puts and re-announces what its
/// application stored (dht-node's `Runtime` does, every 50 and 15 minutes), so
/// items republished are counted there, not here.
///
/// `#[non_exhaustive]`: read the fields; a new counter is not a breaking change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes queued for sending.
    pub bytes_out: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Queries answered (including with an error).
    pub queries_answered: u64,
    /// Well-formed queries received, by method: every one that decoded (and passed
    /// the key check of authenticated transports), answered or not (a read-only node
    /// answers none; see also `rate_limited`). A banned source's datagrams are not
    /// decoded and not counted here.
    pub queries_received: MethodCounts,
    /// Queries we sent, by method (lookups, writes, pings; retries included).
    pub queries_sent: MethodCounts,
    /// Error replies sent.
    pub errors_sent: u64,
    /// Error replies sent, by code (sums to `errors_sent`).
    pub errors_sent_by_code: ErrorCounts,
    /// Error replies received to our requests in flight, by code (errors that match
    /// no request count in `unexpected_replies` only).
    pub errors_received: ErrorCounts,
    /// Replies that matched no request in flight (late, spoofed or duplicated).
    pub unexpected_replies: u64,
    /// Messages dropped because the id was not the one bound to the sender's key.
    pub key_id_mismatch: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Queries dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Datagrams dropped because their source is banned.
    pub banned: u64,
    /// Replies not sent because the reply byte budget was spent.
    pub budget_dropped: u64,
    /// Replies to strangers (addresses not in our table), and to anyone once the reply
    /// budget is spent, whose node, peer or sample lists were cut to
    /// [`crate::Defense::stranger_reply_bytes`]; one per reply.
    pub stranger_trimmed: u64,
    /// Write tokens handed out (in get_peers and get replies).
    pub tokens_issued: u64,
    /// Announces and puts refused for a bad or expired token (answered 203).
    pub tokens_refused: u64,
    /// Puts and announces refused with 202 because a global cap or the source's
    /// share was reached.
    pub storage_refused: u64,
    /// `storage_refused` by reason (sums to it).
    pub storage_refused_by: RefusalCounts,
    /// Entries removed to make room at a full global cap for a write from a network
    /// holding far less than the one that gave them up.
    pub storage_evicted: u64,
    /// Contacts in replies dropped before reaching a lookup: unusable addresses
    /// (unspecified, multicast, broadcast, port 0) or more local than their teller.
    pub contacts_dropped: u64,
    /// Wall-clock re-anchors that disagreed with the monotonic clock by more than
    /// `MAX_WALL_SLEW` (node/mod.rs) and were followed only that far (log them).
    pub wall_clock_jumps: u64,
    /// Stored items handed to a newcomer closer to them and acknowledged by it
    /// ([`crate::Config::handover`]).
    pub handovers: u64,
    /// Handovers not started because too many were waiting (the publisher's republish
    /// still covers those items).
    pub handovers_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_counts_follow_all() {
        for all in [
            KrpcMethod::ALL
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>(),
            ErrorCode::ALL.iter().map(|m| m.as_str()).collect(),
            RefusalReason::ALL.iter().map(|m| m.as_str()).collect(),
        ] {
            let mut sorted = all.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), all.len(), "{all:?}");
        }
        let mut c = MethodCounts::default();
        c.bump(KrpcMethod::Put);
        c.bump(KrpcMethod::Other);
        c.bump(KrpcMethod::Other);
        let got: Vec<(KrpcMethod, u64)> = c.iter().filter(|x| x.1 > 0).collect();
        assert_eq!(got, [(KrpcMethod::Put, 1), (KrpcMethod::Other, 2)]);
        assert_eq!(c.total(), 3);
        assert_eq!(ErrorCode::of(205), ErrorCode::Other);
        assert_eq!(ErrorCode::of(203), ErrorCode::Protocol);
    }
}
