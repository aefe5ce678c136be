//! IPIP-484's filters of `/routing/v1/providers/{cid}` and `/routing/v1/peers/{peer-id}`:
//! `?filter-addrs=` (which multiaddrs a record keeps) and `?filter-protocols=` (which
//! records pass), as the spec's "Request Query Parameters" have them.
//!
//! `filter-addrs` is a comma-separated list of multiaddr protocol names (`tls`,
//! `webrtc-direct`, `!ip6`, …), case-insensitive. An address is kept when it has none
//! of the negated names and, if any name is not negated, at least one of those. A
//! record left without addresses is dropped; a record whose addresses are unknown
//! (none) passes only when the list names `unknown`. `filter-protocols` is a list of
//! transfer protocol names: a record passes when it speaks one of them, or when its
//! protocols are unknown and the list names `unknown`; it is returned unchanged.
//! Without a parameter nothing is filtered.

use crate::routing::PeerRecord;

/// Most names read from one parameter (a client naming more gets the first ones).
const MAX_NAMES: usize = 32;
/// The name that lets records whose addresses or protocols are unknown through.
const UNKNOWN: &str = "unknown";
/// Longest name kept (the spec's bound on transfer protocol names).
const MAX_NAME_LEN: usize = 63;

/// The filters of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    /// `(negated, name)`, lowercase.
    addrs: Vec<(bool, String)>,
    /// Lowercase.
    protocols: Vec<String>,
}

impl Filters {
    /// The filters a query string names (`None`: no query).
    pub(crate) fn from_query(query: Option<&str>) -> Filters {
        let mut filters = Filters::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "filter-addrs" => {
                    filters.addrs = names(value)
                        .map(|n| match n.strip_prefix('!') {
                            Some(n) => (true, n.to_string()),
                            None => (false, n),
                        })
                        .collect();
                }
                "filter-protocols" => filters.protocols = names(value).collect(),
                _ => {}
            }
        }
        filters
    }

    /// `record` as the filters let it through, or `None`.
    pub(crate) fn apply(&self, mut record: PeerRecord) -> Option<PeerRecord> {
        if !self.protocols.is_empty() {
            let passes = if record.protocols.is_empty() {
                self.protocols.iter().any(|n| n == UNKNOWN)
            } else {
                record
                    .protocols
                    .iter()
                    .any(|p| self.protocols.iter().any(|f| p.eq_ignore_ascii_case(f)))
            };
            if !passes {
                return None;
            }
        }
        if self.addrs.is_empty() {
            return Some(record);
        }
        if record.addrs.is_empty() {
            let unknown = self.addrs.iter().any(|(neg, n)| !neg && n == UNKNOWN);
            return unknown.then_some(record);
        }
        let any_positive = self.addrs.iter().any(|(neg, _)| !neg);
        record.addrs.retain(|addr| {
            let has = |name: &str| addr.iter().any(|p| p.tag().eq_ignore_ascii_case(name));
            let negated = self.addrs.iter().any(|(neg, n)| *neg && has(n));
            let positive = self.addrs.iter().any(|(neg, n)| !neg && has(n));
            !negated && (positive || !any_positive)
        });
        (!record.addrs.is_empty()).then_some(record)
    }
}

/// The names of a parameter's value: split at commas (`,` or `%2C`), lowercase,
/// bounded in number and length.
fn names(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(',')
        .flat_map(|v| v.split("%2C"))
        .flat_map(|v| v.split("%2c"))
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN + 1)
        .take(MAX_NAMES)
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dht_ipfs::PeerId;

    fn record(addrs: &[&str], protocols: &[&str]) -> PeerRecord {
        let id = PeerId::from_bytes(&[&[0x12, 0x20][..], &[1; 32]].concat()).unwrap();
        PeerRecord {
            id,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn addrs(r: Option<PeerRecord>) -> Vec<String> {
        r.map(|r| r.addrs.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    const TCP: &str = "/ip4/127.0.0.1/tcp/4001";
    const QUIC6: &str = "/ip6/::1/udp/4001/quic-v1";
    const WT: &str = "/ip4/127.0.0.1/udp/4001/quic-v1/webtransport";

    #[test]
    fn addresses() {
        let r = record(&[TCP, QUIC6, WT], &[]);
        let f = |q: &str| addrs(Filters::from_query(Some(q)).apply(r.clone()));
        assert_eq!(f(""), [TCP, QUIC6, WT]);
        assert_eq!(f("filter-addrs=webtransport,TCP"), [TCP, WT]);
        assert_eq!(f("filter-addrs=!ip6"), [TCP, WT]);
        assert_eq!(f("filter-addrs=quic-v1%2C!webtransport"), [QUIC6]);
        assert_eq!(f("filter-addrs=!ip4,!ip6"), Vec::<String>::new());
        assert_eq!(f("filter-addrs=unknown"), Vec::<String>::new());
        let none = record(&[], &[]);
        let g = |q: &str| Filters::from_query(Some(q)).apply(none.clone()).is_some();
        assert!(g("filter-addrs=unknown,tcp"));
        assert!(!g("filter-addrs=tcp"));
        assert!(g("x=1"));
    }

    #[test]
    fn protocols() {
        let bitswap = record(&[TCP], &["transport-bitswap"]);
        let unknown = record(&[TCP], &[]);
        let f = |q: &str, r: &PeerRecord| Filters::from_query(Some(q)).apply(r.clone()).is_some();
        assert!(f("filter-protocols=Transport-Bitswap", &bitswap));
        assert!(!f("filter-protocols=transport-ipfs-gateway-http", &bitswap));
        assert!(!f("filter-protocols=transport-bitswap", &unknown));
        assert!(f("filter-protocols=unknown,transport-bitswap", &unknown));
        assert!(f("filter-protocols=unknown,transport-bitswap", &bitswap));
    }
}
