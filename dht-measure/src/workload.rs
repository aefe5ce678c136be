//! The records `dht-workload` writes and `cargo xtask testnet` reads back: one serde type
//! for both ends, so that a field renamed on one side is a compile error on the other, not
//! a silent zero in the report.
//!
//! The report is JSON Lines: one [`Line::Op`] per finished operation, then one
//! [`Line::Meta`]; each line is an object whose `kind` says which.

use serde::{Deserialize, Serialize};

/// One line of the workload's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// `{"kind":"op",...}`
    Op(OpRecord),
    /// `{"kind":"meta",...}`, the last line.
    Meta(MetaRecord),
}

/// The workload's operation types, in the order the testnet's table shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// BEP 44 `put` of an immutable item (its target is the SHA-1 of the value).
    PutImmutable,
    /// BEP 44 `get` of an immutable item put earlier, checked against its value.
    GetImmutable,
    /// BEP 44 `put` of a mutable item (signed, with a sequence number).
    PutMutable,
    /// BEP 44 `get` of a mutable item put earlier: the value put, or a newer `seq`.
    GetMutable,
    /// BEP 5 `announce_peer` for an info_hash.
    Announce,
    /// BEP 5 `get_peers` for an info_hash announced earlier.
    GetPeers,
}

impl OpKind {
    /// Every kind, in table order.
    pub const ALL: [OpKind; 6] = [
        OpKind::PutImmutable,
        OpKind::GetImmutable,
        OpKind::PutMutable,
        OpKind::GetMutable,
        OpKind::Announce,
        OpKind::GetPeers,
    ];

    /// The name in the report (`op`) and in the table.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::PutImmutable => "put_immutable",
            OpKind::GetImmutable => "get_immutable",
            OpKind::PutMutable => "put_mutable",
            OpKind::GetMutable => "get_mutable",
            OpKind::Announce => "announce",
            OpKind::GetPeers => "get_peers",
        }
    }

    /// A get of a BEP 44 item the workload put earlier.
    pub fn is_item_get(self) -> bool {
        matches!(self, OpKind::GetImmutable | OpKind::GetMutable)
    }
}

/// One finished operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// What the operation was.
    pub op: OpKind,
    /// When it started, in ms from the start of the workload.
    pub t_ms: u64,
    /// Whether it succeeded (for gets: the value put, or a newer one, came back).
    pub ok: bool,
    /// From the call to the answer.
    pub latency_us: u64,
    /// Of the lookup, as `QueryStats` counts them; 0 when nothing answered.
    pub hops: u32,
    /// Messages the lookup sent; 0 when nothing answered.
    pub requests: u32,
    /// Why it failed, one snake_case word (`timeout`, `not_found`, ...); empty on success.
    pub error: String,
    /// For gets: how long before the get the item's write was acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
}

/// What the run was, written once after every operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaRecord {
    /// The seed of the workload's choices (keys, values, the mix).
    pub seed: u64,
    /// How long operations were started for, in seconds (`--duration`).
    pub duration_s: f64,
    /// From the start of the operations to the end of the last one in flight, in ms.
    pub elapsed_ms: u64,
    /// Operations started per second (`--ops-per-sec`).
    pub ops_per_sec: f64,
    /// How often the handle republished what it put or announced.
    pub republish_s: Option<u64>,
    /// How long the handle took to join the network before the first operation, in ms.
    pub bootstrap_ms: u64,
    /// Operations not started because too many were in flight.
    pub skipped: u64,
    /// Operations recorded.
    pub ops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_op_line_as_the_workload_wrote_it_before_the_shared_type() {
        // The keys in the order serde_json's json! macro wrote them (sorted): any order reads.
        let line = "{\"age_ms\":12,\"error\":\"\",\"hops\":2,\"kind\":\"op\",\"latency_us\":345,\
                    \"ok\":true,\"op\":\"get_mutable\",\"requests\":9,\"t_ms\":5}";
        let Line::Op(op) = serde_json::from_str(line).unwrap() else {
            panic!("not an op")
        };
        assert_eq!(op.op, OpKind::GetMutable);
        assert!(op.ok);
        assert_eq!(
            (op.latency_us, op.hops, op.requests, op.t_ms),
            (345, 2, 9, 5)
        );
        assert_eq!(op.error, "");
        assert_eq!(op.age_ms, Some(12));
    }

    #[test]
    fn lines_round_trip() {
        let lines = [
            Line::Op(OpRecord {
                op: OpKind::Announce,
                t_ms: 1,
                ok: false,
                latency_us: 2,
                hops: 0,
                requests: 0,
                error: "timeout".into(),
                age_ms: None,
            }),
            Line::Meta(MetaRecord {
                seed: 7,
                duration_s: 1.5,
                elapsed_ms: 1600,
                ops_per_sec: 20.0,
                republish_s: Some(3000),
                bootstrap_ms: 40,
                skipped: 0,
                ops: 1,
            }),
        ];
        for line in lines {
            let text = serde_json::to_string(&line).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
        }
        for kind in OpKind::ALL {
            let text = serde_json::to_string(&kind).unwrap();
            assert_eq!(text, format!("\"{}\"", kind.name()));
        }
    }
}
