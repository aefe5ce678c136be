//! BEP 42 secure node ids: the top 21 bits of a node id are tied to its IP address.
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4
//! peers) is treated as the IPv4 address it carries.

use std::net::IpAddr;

use crate::id::Id;

const V4_MASK: u32 = 0x030f_3fff;
const V6_MASK: u64 = 0x0103_070f_1f3f_7fff;

/// True for addresses BEP 42 exempts (loopback, private, link-local).
///
/// IPv4: 10/8, 172.16/12, 192.168/16, 169.254/16, 127/8 and 0.0.0.0. IPv6: `::1`,
/// `::`, link-local fe80::/10 and unique-local fc00::/7.
pub fn is_exempt(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_link_local() || v4.is_loopback() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || first & 0xffc0 == 0xfe80
                || first & 0xfe00 == 0xfc00
        }
    }
}

/// A secure id for `ip` with the given `rand` byte; `filler` supplies the free bits.
///
/// The first 21 bits come from the CRC, the last byte is `rand`, and every other bit
/// (including the low 3 bits of the third byte) is taken from `filler`.
pub fn secure_id(ip: IpAddr, rand: u8, filler: [u8; 20]) -> Id {
    let crc = crc(ip, rand).to_be_bytes();
    let mut id = filler;
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (filler[2] & 0x07);
    id[19] = rand;
    Id(id)
}

/// True when `id` is a valid BEP 42 id for `ip` (always true for exempt addresses).
pub fn is_valid(id: &Id, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let crc = crc(ip, id.0[19]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && (id.0[2] ^ crc[2]) & 0xf8 == 0
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// CRC32-C of the masked address with `r` = `rand & 7` in its top 3 bits.
fn crc(ip: IpAddr, rand: u8) -> u32 {
    let r = rand & 0x07;
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let x = (u32::from(v4) & V4_MASK) | (u32::from(r) << 29);
            crc32c::crc32c(&x.to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let high = (u128::from(v6) >> 64) as u64; // the top 64 bits, by construction
            let x = (high & V6_MASK) | (u64::from(r) << 61);
            crc32c::crc32c(&x.to_be_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (IP, rand, first three id bytes, last byte) from BEP 42.
    const VECTORS: [(&str, u8, [u8; 3], u8); 5] = [
        ("124.31.75.21", 1, [0x5f, 0xbf, 0xbf], 0x01),
        ("21.75.31.124", 86, [0x5a, 0x3c, 0xe9], 0x56),
        ("65.23.51.170", 22, [0xa5, 0xd4, 0x32], 0x16),
        ("84.124.73.14", 65, [0x1b, 0x03, 0x21], 0x41),
        ("43.213.53.83", 90, [0xe5, 0x6f, 0x6c], 0x5a),
    ];

    #[test]
    fn vectors() {
        for (ip, rand, prefix, last) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_exempt(ip));
            let id = secure_id(ip, rand, [0x55; 20]);
            assert_eq!(&id.0[..2], &prefix[..2], "{ip}");
            assert_eq!(id.0[2] & 0xf8, prefix[2] & 0xf8, "{ip}");
            assert_eq!(id.0[2] & 0x07, 0x55 & 0x07, "filler bits of {ip}");
            assert_eq!(id.0[19], last);
            assert_eq!(&id.0[3..19], &[0x55; 16]);
            assert!(is_valid(&id, ip));

            // The vector's own id, with arbitrary free bits, is valid too.
            let mut theirs = [0xa7; 20];
            theirs[..3].copy_from_slice(&prefix);
            theirs[19] = last;
            assert!(is_valid(&Id(theirs), ip));
            theirs[1] ^= 0x01;
            assert!(!is_valid(&Id(theirs), ip));

            // The same id from an IPv4-mapped IPv6 address.
            let IpAddr::V4(v4) = ip else { unreachable!() };
            assert!(is_valid(&id, IpAddr::V6(v4.to_ipv6_mapped())));
        }
    }

    #[test]
    fn only_the_top_21_bits_and_last_byte_matter() {
        let ip: IpAddr = "124.31.75.21".parse().unwrap();
        let id = secure_id(ip, 1, [0; 20]);
        let mut other = id;
        other.0[2] ^= 0x07;
        other.0[10] ^= 0xff;
        assert!(is_valid(&other, ip));
        other.0[2] ^= 0x08;
        assert!(!is_valid(&other, ip));
        // rand only enters the CRC through its low 3 bits, but it is the last byte.
        let mut other = id;
        other.0[19] = 0x02;
        assert!(!is_valid(&other, ip));
    }

    #[test]
    fn ipv6() {
        let ip: IpAddr = "2001:db8:85a3:1234::8a2e:370:7334".parse().unwrap();
        assert!(!is_exempt(ip));
        for rand in [0u8, 7, 8, 200] {
            let id = secure_id(ip, rand, [9; 20]);
            assert!(is_valid(&id, ip));
            // The low 64 bits of the address are not part of the id.
            let same_prefix: IpAddr = "2001:db8:85a3:1234::1".parse().unwrap();
            assert!(is_valid(&id, same_prefix));
        }
        assert!(!is_valid(&Id([0; 20]), ip) || !is_valid(&Id([0xff; 20]), ip));
    }

    #[test]
    fn exemptions() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.3.4",
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:192.168.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_exempt(ip), "{ip}");
            assert!(is_valid(&Id([0; 20]), ip));
        }
        for ip in [
            "172.32.0.1",
            "11.0.0.1",
            "8.8.8.8",
            "fec0::1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_exempt(ip), "{ip}");
        }
    }
}
