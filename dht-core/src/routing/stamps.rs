//! The compact fields of a routing-table entry: when it last answered and asked
//! ([`Stamp`]) and its round trip ([`Rtt`]), each held as big-endian bytes.

use std::time::Duration;

/// A moment in whole seconds since the table was made, plus one; 0 is "never".
/// Four bytes instead of an `Option<Instant>`'s sixteen: a simulation holds hundreds
/// of entries per node for a million nodes, and the rules it serves count minutes.
///
/// Held as big-endian bytes rather than a `u32`: byte-aligned, an entry of a compact
/// IPv4 contact packs into fewer bytes than a padded one (5 % of a large
/// simulation's memory); big-endian bytes order as the numbers do.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp([u8; 4]);

impl Stamp {
    /// Never happened.
    pub const NEVER: Stamp = Stamp([0; 4]);

    /// True unless [`Stamp::NEVER`].
    pub fn is_set(self) -> bool {
        self != Stamp::NEVER
    }

    pub(super) fn from_count(n: u32) -> Stamp {
        Stamp(n.to_be_bytes())
    }

    pub(super) fn count(self) -> u32 {
        u32::from_be_bytes(self.0)
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stamp").field(&self.count()).finish()
    }
}

/// A smoothed round trip in whole milliseconds (1 to 65,535), or none measured.
///
/// Two big-endian bytes rather than a `u16`, for the reason [`Stamp`] gives: with
/// nothing in it aligned past a byte, an entry of a compact IPv4 contact is 37 bytes
/// instead of 38 (a simulated node of a million holds some 230 entries).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rtt([u8; 2]);

impl Rtt {
    /// No answer timed yet.
    pub const NONE: Rtt = Rtt([0; 2]);

    /// `ms` milliseconds, held as at least 1 (0 is [`Rtt::NONE`]).
    pub fn from_ms(ms: u16) -> Rtt {
        Rtt(ms.max(1).to_be_bytes())
    }

    /// The round trip in milliseconds; 0 when none was measured.
    pub fn ms(self) -> u16 {
        u16::from_be_bytes(self.0)
    }

    /// The round trip, once one was measured.
    pub fn get(self) -> Option<Duration> {
        match self.ms() {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }
}

impl std::fmt::Debug for Rtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Rtt").field(&self.ms()).finish()
    }
}
