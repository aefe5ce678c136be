//! The run's fingerprint ([`super::Network::event_hash`]): SHA-1 over the record of
//! every delivery, fed through a buffer of its own.
//!
//! Why the buffer: each delivery is a 20-byte header and a datagram of some hundred
//! bytes, and SHA-1's own block buffer took each piece with a copy and a partial
//! block (about 4 % of a large run's time, besides SHA-1 itself); gathered into 32 KB
//! the records reach SHA-1 as long runs of whole blocks. SHA-1 of a byte stream does
//! not depend on how the stream is cut, so the digest is the one the records fed one
//! by one gave: every recorded event hash still holds.

use sha1::{Digest, Sha1};

/// Bytes gathered before they go to SHA-1.
const CHUNK: usize = 32 * 1024;

/// SHA-1 over everything [`Fingerprint::update`] was given, in order.
pub(super) struct Fingerprint {
    sha: Sha1,
    pending: Vec<u8>,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            sha: Sha1::new(),
            pending: Vec::with_capacity(CHUNK),
        }
    }
}

impl Fingerprint {
    /// Appends `bytes` to the fingerprinted stream.
    #[inline]
    pub(super) fn update(&mut self, bytes: &[u8]) {
        if self.pending.len() + bytes.len() > CHUNK {
            self.sha.update(&self.pending);
            self.pending.clear();
            if bytes.len() >= CHUNK {
                self.sha.update(bytes);
                return;
            }
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The SHA-1 of the stream so far, in lower-case hex.
    pub(super) fn hex(&self) -> String {
        let mut sha = self.sha.clone();
        sha.update(&self.pending);
        dht_core::to_hex(&sha.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of every size, across the chunk boundary and beyond it: the digest of
    /// the whole stream fed at once.
    #[test]
    fn the_digest_of_the_whole_stream() {
        let stream: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut f = Fingerprint::default();
        let (mut at, mut size) = (0, 1);
        while at < stream.len() {
            let end = (at + size).min(stream.len());
            f.update(&stream[at..end]);
            at = end;
            // 1, 2, 4, ... up to twice the chunk, then again.
            size = if size > 2 * CHUNK { 1 } else { size * 2 + 1 };
        }
        assert_eq!(f.hex(), dht_core::to_hex(&Sha1::digest(&stream)));
    }
}
