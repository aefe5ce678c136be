//! BEP 5's compact node: a node's 20-byte id, then its compact address (4-byte IPv4
//! or 16-byte IPv6, then a 2-byte port, network order), 26 or 38 bytes in all.
//!
//! The KRPC codec (`codec.rs`) packs these back to back in `nodes` and `nodes6`;
//! another overlay that names nodes the same way (dht-chord, as one bencoded string
//! per node) reads and writes one entry with these functions rather than a copy.

use crate::id::NodeInfo;

/// Bytes of one compact node of `node`'s address family: 26 (IPv4) or 38 (IPv6).
pub fn compact_node_len(node: &NodeInfo) -> usize {
    crate::id::ID_LEN + crate::krpc::codec::compact_len(&node.addr)
}

/// Appends `node`'s compact form, without a length prefix.
pub fn put_compact_node(out: &mut Vec<u8>, node: &NodeInfo) {
    out.extend_from_slice(&node.id.0);
    crate::krpc::codec::put_compact_addr(out, &node.addr);
}

/// One compact node of either family; `None` unless `entry` is exactly 26 or 38 bytes.
pub fn read_compact_node(entry: &[u8]) -> Option<NodeInfo> {
    crate::krpc::codec::compact_node(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    #[test]
    fn both_families_round_trip_and_wrong_lengths_are_refused() {
        for addr in ["192.0.2.7:6881", "[2001:db8::7]:6881"] {
            let node = NodeInfo {
                id: Id([3; 20]),
                addr: addr.parse().unwrap(),
            };
            let mut out = Vec::new();
            put_compact_node(&mut out, &node);
            assert_eq!(out.len(), compact_node_len(&node));
            assert_eq!(read_compact_node(&out), Some(node));
            assert_eq!(read_compact_node(&out[..out.len() - 1]), None);
        }
    }
}
