//! `cargo xtask fill`: gives a node under test a routing table like one on the live DHT
//! (eight contacts in each of the first BUCKETS buckets, about 190 entries for 24)
//! without running hundreds of processes. Each contact is a UDP socket on this machine
//! with an id chosen relative to the target's: it sends the target one `find_node`
//! (not read-only), and answers the pings the target sends to let it into its table.
//!
//! The target must accept many contacts from one IP, which it does for loopback and
//! private addresses by default (`Defense::exempt_local`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;
use dht_measure::krpc::{parse_envelope, MessageKind, QueryKind, QueryTemplate};

/// Settings of one fill.
#[derive(Clone, Debug)]
pub struct FillConfig {
    pub target: SocketAddr,
    /// Buckets to fill, counted from the one farthest from the target's id.
    pub buckets: usize,
    /// Contacts per bucket (the target's k).
    pub per_bucket: usize,
    /// How long to keep answering the target's pings.
    pub answer_for: Duration,
}

/// What happened.
#[derive(Clone, Debug)]
pub struct FillReport {
    pub target_id: [u8; 20],
    pub contacts: usize,
    pub pings_answered: usize,
    /// Distinct contacts that the target has pinged (it pings before admitting).
    pub contacts_pinged: usize,
}

/// Reads the responder's id out of a KRPC response (`2:id20:` inside `r`).
fn response_id(datagram: &[u8]) -> Option<[u8; 20]> {
    let at = datagram.windows(7).position(|w| w == b"2:id20:")? + 7;
    datagram.get(at..at + 20)?.try_into().ok()
}

/// An id sharing exactly `prefix` leading bits with `of`.
fn id_in_bucket(of: &[u8; 20], prefix: usize, rng: &mut SplitMix64) -> [u8; 20] {
    let mut id = [0u8; 20];
    rng.fill_20(&mut id);
    for bit in 0..=prefix {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let want = if bit == prefix {
            !of[byte] & mask
        } else {
            of[byte] & mask
        };
        id[byte] = (id[byte] & !mask) | want;
    }
    id
}

fn response(id: &[u8; 20], transaction_id: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"d1:rd2:id20:");
    out.extend_from_slice(id);
    out.extend_from_slice(b"e1:t");
    out.extend_from_slice(transaction_id.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(transaction_id);
    out.extend_from_slice(b"1:y1:re");
    out
}

/// Answers every ping waiting on the contacts' sockets; returns how many.
fn serve(
    contacts: &[(UdpSocket, [u8; 20])],
    target: SocketAddr,
    pinged: &mut [bool],
    buf: &mut [u8],
) -> usize {
    let mut answered = 0;
    for (i, (s, id)) in contacts.iter().enumerate() {
        while let Ok((n, from)) = s.recv_from(buf) {
            let Ok(env) = parse_envelope(&buf[..n]) else {
                continue;
            };
            if env.kind == MessageKind::Query && from == target {
                let r = response(id, env.transaction_id);
                if s.send_to(&r, from).is_ok() {
                    answered += 1;
                    pinged[i] = true;
                }
            }
        }
    }
    answered
}

/// Fills the target's table; blocks for about `answer_for`.
pub fn run(config: &FillConfig) -> io::Result<FillReport> {
    let bind = if config.target.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let mut rng = SplitMix64::from_entropy(7);
    // Learn the target's id.
    let probe = UdpSocket::bind(bind)?;
    probe.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut probe_id = [0u8; 20];
    rng.fill_20(&mut probe_id);
    let ping = QueryTemplate::with(QueryKind::Ping, &probe_id, b"fill", &[0; 20]);
    probe.send_to(ping.as_bytes(), config.target)?;
    let mut buf = [0u8; 2048];
    let (n, _) = probe
        .recv_from(&mut buf)
        .map_err(|e| io::Error::new(e.kind(), format!("the target did not answer a ping: {e}")))?;
    let target_id = response_id(&buf[..n]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the target's ping reply has no id",
        )
    })?;

    // One socket per contact: the target keeps one id per address.
    let mut contacts = Vec::new();
    for b in 0..config.buckets.min(159) {
        for _ in 0..config.per_bucket {
            let s = UdpSocket::bind(bind)?;
            s.set_nonblocking(true)?;
            contacts.push((s, id_in_bucket(&target_id, b, &mut rng)));
        }
    }
    // Introduce each contact with a find_node that is *not* read-only (ro=1 would keep
    // it out of the table), and answer pings as they come: the target bounds the pings
    // it has in flight.
    let mut pinged = vec![false; contacts.len()];
    let mut answered = 0;
    for i in 0..contacts.len() {
        let (s, id) = &contacts[i];
        let t = (i as u32).to_be_bytes();
        let q = QueryTemplate::with_read_only(QueryKind::FindNode, id, &t, &target_id, false);
        s.send_to(q.as_bytes(), config.target)?;
        std::thread::sleep(Duration::from_millis(2));
        answered += serve(&contacts, config.target, &mut pinged, &mut buf);
    }
    let until = Instant::now() + config.answer_for;
    while Instant::now() < until {
        let n = serve(&contacts, config.target, &mut pinged, &mut buf);
        answered += n;
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(FillReport {
        target_id,
        contacts: contacts.len(),
        pings_answered: answered,
        contacts_pinged: pinged.iter().filter(|p| **p).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_land_in_their_bucket() {
        let mut rng = SplitMix64::seeded(3);
        let mut of = [0u8; 20];
        rng.fill_20(&mut of);
        for prefix in [0, 1, 7, 8, 23, 100] {
            let id = id_in_bucket(&of, prefix, &mut rng);
            let shared = of
                .iter()
                .zip(id.iter())
                .map(|(a, b)| a ^ b)
                .enumerate()
                .find(|(_, x)| *x != 0)
                .map(|(i, x)| i * 8 + x.leading_zeros() as usize);
            assert_eq!(shared, Some(prefix));
        }
    }

    #[test]
    fn reads_the_responder_id() {
        let id = [7u8; 20];
        let r = response(&id, b"ab");
        assert_eq!(response_id(&r), Some(id));
        assert_eq!(response_id(b"d1:rd2:id3:abce"), None);
        assert!(matches!(parse_envelope(&r), Ok(e) if e.kind == MessageKind::Response));
    }
}
