//! Arithmetic on the identifier circle: ids modulo 2^160, intervals taken clockwise.
//!
//! Chord orders ids on a circle, so "between" wraps around zero and an interval whose
//! ends are equal is the whole circle (a ring of one node owns every key).

use dht_core::{Id, ID_LEN};

/// Number of bits of an identifier, Chord's m.
pub const M: usize = ID_LEN * 8;

/// `a + b` modulo 2^160.
pub fn add(a: &Id, b: &Id) -> Id {
    let mut out = [0u8; ID_LEN];
    let mut carry = 0u16;
    for i in (0..ID_LEN).rev() {
        let s = a.0[i] as u16 + b.0[i] as u16 + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    Id(out)
}

/// `a - b` modulo 2^160: how far `a` lies clockwise from `b`.
pub fn sub(a: &Id, b: &Id) -> Id {
    let mut out = [0u8; ID_LEN];
    let mut borrow = 0i16;
    for i in (0..ID_LEN).rev() {
        let mut d = a.0[i] as i16 - b.0[i] as i16 - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    Id(out)
}

/// 2^i for `i` below [`M`].
pub fn pow2(i: usize) -> Id {
    debug_assert!(i < M);
    let mut out = [0u8; ID_LEN];
    out[ID_LEN - 1 - i / 8] = 1 << (i % 8);
    Id(out)
}

/// The start of finger `i` of node `n`: `n + 2^i`, the first id finger `i` must succeed.
pub fn finger_start(n: &Id, i: usize) -> Id {
    add(n, &pow2(i))
}

/// `x` in the open interval `(a, b)` clockwise; `(a, a)` is the circle without `a`.
pub fn in_open(x: &Id, a: &Id, b: &Id) -> bool {
    let dx = sub(x, a);
    dx != Id::ZERO && (a == b || dx < sub(b, a))
}

/// `x` in the half-open interval `(a, b]` clockwise; `(a, a]` is the whole circle.
pub fn in_half_open(x: &Id, a: &Id, b: &Id) -> bool {
    if a == b {
        return true;
    }
    let dx = sub(x, a);
    dx != Id::ZERO && dx <= sub(b, a)
}

/// The ids among `known` that precede `target` as seen from `from` (in `(from, target)`),
/// closest to `target` first: the paper's `closest_preceding_node`, with its runners-up
/// as fallbacks. Ties and repeats are removed. The simulator's ideal lookups call this
/// too, so that real and ideal path lengths count the same steps.
pub fn closest_preceding<'a>(
    from: &Id,
    target: &Id,
    known: impl Iterator<Item = &'a Id>,
    max: usize,
) -> Vec<Id> {
    let mut v: Vec<(Id, Id)> = known
        .filter(|k| in_open(k, from, target))
        .map(|k| (sub(target, k), *k))
        .collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().take(max).map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(last: u8) -> Id {
        let mut b = [0u8; 20];
        b[19] = last;
        Id(b)
    }

    #[test]
    fn add_and_sub_wrap_around() {
        let max = Id([0xff; 20]);
        assert_eq!(add(&max, &id(1)), Id::ZERO);
        assert_eq!(sub(&Id::ZERO, &id(1)), max);
        assert_eq!(sub(&id(5), &id(3)), id(2));
        assert_eq!(add(&id(0xff), &id(1)).0[18], 1);
        assert_eq!(pow2(0), id(1));
        assert_eq!(pow2(159).0[0], 0x80);
    }

    #[test]
    fn intervals_wrap_and_degenerate() {
        assert!(in_open(&id(5), &id(3), &id(9)));
        assert!(!in_open(&id(9), &id(3), &id(9)));
        assert!(in_half_open(&id(9), &id(3), &id(9)));
        assert!(!in_half_open(&id(3), &id(3), &id(9)));
        // Wrapping: (250, 4) holds 255, 0 and 2.
        for x in [255, 0, 2] {
            assert!(in_open(&id(x), &id(250), &id(4)), "{x}");
        }
        assert!(!in_open(&id(100), &id(250), &id(4)));
        // (a, a) is everything but a; (a, a] is everything.
        assert!(in_open(&id(7), &id(3), &id(3)));
        assert!(!in_open(&id(3), &id(3), &id(3)));
        assert!(in_half_open(&id(3), &id(3), &id(3)));
    }

    #[test]
    fn closest_preceding_orders_by_distance_to_target() {
        let known = [id(10), id(40), id(90), id(30), id(40), id(120)];
        let got = closest_preceding(&id(5), &id(100), known.iter(), 3);
        assert_eq!(got, vec![id(90), id(40), id(30)]);
    }
}
