//! BEP 33 (DHT scrapes): the 256-byte bloom filters of seed and peer IPs that nodes
//! return for `get_peers` with `scrape` = 1, and the swarm-size estimate from them.
//!
//! The filter is fixed by the BEP (m = 2048 bits, k = 2, indexes from the first four
//! bytes of SHA-1 of the IP's bytes) so that filters from different implementations
//! can be ORed together: the union estimates the swarm seen by all of them.

use std::net::IpAddr;

use crate::id::Id;

/// Bytes of a filter (m / 8).
pub const SCRAPE_FILTER_LEN: usize = 256;
/// Bits of a filter.
const M: usize = SCRAPE_FILTER_LEN * 8;

/// A BEP 33 bloom filter of IP addresses (`BFsd` for seeds, `BFpe` for peers). Boxed:
/// replies and lookups carry it rarely, and 256 bytes inline would bloat every one.
#[derive(Clone, PartialEq, Eq)]
pub struct ScrapeFilter(Box<[u8; SCRAPE_FILTER_LEN]>);

impl std::fmt::Debug for ScrapeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScrapeFilter(~{:.0})", self.estimate())
    }
}

impl Default for ScrapeFilter {
    fn default() -> Self {
        ScrapeFilter(Box::new([0; SCRAPE_FILTER_LEN]))
    }
}

impl ScrapeFilter {
    /// An empty filter.
    pub fn new() -> ScrapeFilter {
        ScrapeFilter::default()
    }

    /// The filter in `bytes`, when they are exactly 256 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<ScrapeFilter> {
        <[u8; SCRAPE_FILTER_LEN]>::try_from(bytes)
            .ok()
            .map(ScrapeFilter::from_bytes)
    }

    /// The filter with these bits.
    pub fn from_bytes(bytes: [u8; SCRAPE_FILTER_LEN]) -> ScrapeFilter {
        ScrapeFilter(Box::new(bytes))
    }

    /// The filter's bits, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; SCRAPE_FILTER_LEN] {
        &self.0
    }

    /// Adds an IP (IPv4 as 4 bytes, IPv6 as 16; an IPv4-mapped IPv6 address counts
    /// as the IPv4 address, so a dual-stack peer is one peer).
    pub fn insert(&mut self, ip: IpAddr) {
        let hash = match ip {
            IpAddr::V4(v4) => Id::sha1(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Id::sha1(&v4.octets()),
                None => Id::sha1(&v6.octets()),
            },
        };
        let h = hash.0;
        for index in [
            usize::from(h[0]) | usize::from(h[1]) << 8,
            usize::from(h[2]) | usize::from(h[3]) << 8,
        ] {
            let bit = index % M;
            self.0[bit / 8] |= 1 << (bit % 8);
        }
    }

    /// The union of two filters (what a scrape over many nodes computes).
    pub fn union(&mut self, other: &ScrapeFilter) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    /// True when no IP was inserted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }

    /// The estimated number of distinct IPs inserted (the BEP's formula). Reliable
    /// up to a few thousand; it saturates near 8,000.
    pub fn estimate(&self) -> f64 {
        // The formula caps the zero count at m - 1, which would make an empty
        // filter count half an IP.
        if self.is_empty() {
            return 0.0;
        }
        let zeros: usize = self.0.iter().map(|b| b.count_zeros() as usize).sum();
        let c = zeros.min(M - 1) as f64;
        let m = M as f64;
        (c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The BEP's test vector: 192.0.2.0 - 192.0.2.255 and 2001:DB8:: - 2001:DB8::3E7.
    const VECTOR: &str = "\
        F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE \
        FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B \
        7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F \
        D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3 \
        FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5 \
        BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57 \
        62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6 \
        FD8F72EF";

    #[test]
    fn bep33_test_vector() {
        let mut f = ScrapeFilter::new();
        for i in 0..=255u8 {
            f.insert(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)));
        }
        for i in 0..=0x3e7u16 {
            f.insert(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)));
        }
        let hex: String = VECTOR.split_whitespace().collect();
        let want = crate::id::from_hex(&hex.to_lowercase()).expect("vector hex");
        assert_eq!(want.len(), SCRAPE_FILTER_LEN);
        assert_eq!(&f.0[..], &want[..]);
        assert!((f.estimate() - 1224.9308).abs() < 1e-3, "{}", f.estimate());
    }

    #[test]
    fn union_and_mapped_addresses() {
        let mut a = ScrapeFilter::new();
        assert!(a.is_empty());
        assert_eq!(a.estimate(), 0.0);
        a.insert("10.0.0.1".parse().unwrap());
        let mut b = ScrapeFilter::new();
        b.insert("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(a, b, "an IPv4-mapped address is the IPv4 address");
        b.insert("10.0.0.2".parse().unwrap());
        a.union(&b);
        assert!((a.estimate() - 2.0).abs() < 0.01, "{}", a.estimate());
    }
}
