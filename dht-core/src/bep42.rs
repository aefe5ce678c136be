//! BEP 42 secure node ids. (Implemented by the codec work.)

use std::net::IpAddr;

use crate::id::Id;

/// True for addresses BEP 42 exempts (loopback, private, link-local).
pub fn is_exempt(ip: IpAddr) -> bool {
    let _ = ip;
    todo!("codec work")
}

/// A secure id for `ip` with the given `rand` byte; `filler` supplies the free bits.
pub fn secure_id(ip: IpAddr, rand: u8, filler: [u8; 20]) -> Id {
    let _ = (ip, rand, filler);
    todo!("codec work")
}

/// True when `id` is a valid BEP 42 id for `ip` (always true for exempt addresses).
pub fn is_valid(id: &Id, ip: IpAddr) -> bool {
    let _ = (id, ip);
    todo!("codec work")
}
