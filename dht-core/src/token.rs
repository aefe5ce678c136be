//! Write tokens (BEP 5): SHA-1 of the requester's IP and a secret that rotates.
//!
//! Two secrets are live: the current one signs new tokens, the previous one still
//! validates. Rotating every `rotation` makes a token valid for between one and two
//! rotation periods after it was issued (5 to 10 minutes by default). Rotation is
//! computed from `now` on every call, so a late timer never stretches a token's life.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand_core::RngCore;

/// Length of the tokens we hand out. 8 bytes of a keyed hash are far beyond guessing
/// within a token's 10-minute life, and every byte counts in a 1024-byte reply.
pub const TOKEN_LEN: usize = 8;

/// Issues and checks tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 20],
    previous: [u8; 20],
    next_rotation: Instant,
    rotation: Duration,
}

impl Tokens {
    /// New secrets from `rng`; the first rotation is one period after `now`.
    pub fn new(now: Instant, rotation: Duration, rng: &mut impl RngCore) -> Tokens {
        let mut current = [0u8; 20];
        let mut previous = [0u8; 20];
        rng.fill_bytes(&mut current);
        rng.fill_bytes(&mut previous);
        Tokens {
            current,
            previous,
            next_rotation: now + rotation,
            rotation,
        }
    }

    fn catch_up(&mut self, now: Instant, rng: &mut impl RngCore) {
        let mut rotated = 0;
        while now >= self.next_rotation {
            // Two rotations replace both secrets; more would only burn RNG output.
            if rotated < 2 {
                self.previous = self.current;
                rng.fill_bytes(&mut self.current);
                rotated += 1;
            }
            self.next_rotation += self.rotation;
        }
    }

    fn compute(secret: &[u8; 20], ip: IpAddr) -> [u8; TOKEN_LEN] {
        let digest = match ip {
            IpAddr::V4(a) => crate::Id::sha1_parts(&[&a.octets(), secret]),
            IpAddr::V6(a) => crate::Id::sha1_parts(&[&a.octets(), secret]),
        };
        let mut t = [0u8; TOKEN_LEN];
        t.copy_from_slice(&digest.0[..TOKEN_LEN]);
        t
    }

    /// The token for `ip` at `now`.
    pub fn issue(&mut self, now: Instant, ip: IpAddr, rng: &mut impl RngCore) -> [u8; TOKEN_LEN] {
        self.catch_up(now, rng);
        Self::compute(&self.current, ip)
    }

    /// True when `token` was issued to `ip` within the last one to two rotation periods.
    pub fn check(
        &mut self,
        now: Instant,
        ip: IpAddr,
        token: &[u8],
        rng: &mut impl RngCore,
    ) -> bool {
        self.catch_up(now, rng);
        token == Self::compute(&self.current, ip) || token == Self::compute(&self.previous, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const ROT: Duration = Duration::from_secs(300);

    fn setup() -> (Tokens, ChaCha8Rng, Instant) {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t0 = Instant::now();
        (Tokens::new(t0, ROT, &mut rng), rng, t0)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn issued_right_at_rotation_lives_just_under_ten_minutes() {
        let (mut tk, mut rng, t0) = setup();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let at = t0 + ROT; // exactly at the first rotation
        let tok = tk.issue(at, ip, &mut rng);
        assert!(tk.check(at + secs(9 * 60 + 59), ip, &tok, &mut rng));
        assert!(!tk.check(at + secs(10 * 60 + 1), ip, &tok, &mut rng));
    }

    #[test]
    fn issued_just_before_rotation_lives_five_minutes() {
        let (mut tk, mut rng, t0) = setup();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let at = t0 + ROT - secs(1);
        let tok = tk.issue(at, ip, &mut rng);
        assert!(tk.check(at + secs(5 * 60), ip, &tok, &mut rng));
        assert!(!tk.check(at + secs(5 * 60 + 2), ip, &tok, &mut rng));
    }

    #[test]
    fn bound_to_the_ip() {
        let (mut tk, mut rng, t0) = setup();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let other: IpAddr = "10.1.2.4".parse().unwrap();
        let tok = tk.issue(t0, ip, &mut rng);
        assert!(tk.check(t0, ip, &tok, &mut rng));
        assert!(!tk.check(t0, other, &tok, &mut rng));
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(!tk.check(t0, v6, &tok, &mut rng));
        assert!(!tk.check(t0, ip, b"", &mut rng));
    }

    #[test]
    fn late_timers_do_not_stretch_life() {
        // No call at all for an hour: the next check must still refuse the old token.
        let (mut tk, mut rng, t0) = setup();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let tok = tk.issue(t0, ip, &mut rng);
        assert!(!tk.check(t0 + secs(3600), ip, &tok, &mut rng));
    }
}
