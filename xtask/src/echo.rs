//! `cargo xtask echo`: sends every datagram back, unchanged, to where it came from.
//!
//! The baseline for `cargo xtask load`: a DHT node can answer no faster than a server that does
//! no work at all, so the rate the load generator reaches against this echo is the ceiling of
//! what it can measure on a given machine.

use std::io::{self, ErrorKind};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a blocked thread wakes up to look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Echoes on `socket` from `threads` threads until `stop` is set, and returns the number of
/// datagrams sent back. All threads share the one socket (and so its receive queue).
pub fn serve(socket: UdpSocket, threads: usize, stop: &AtomicBool) -> io::Result<u64> {
    socket.set_read_timeout(Some(STOP_POLL))?;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let socket = socket.try_clone()?;
                Ok(scope.spawn(move || echo_loop(&socket, stop)))
            })
            .collect::<io::Result<_>>()?;
        let mut total = 0;
        for handle in handles {
            total += handle
                .join()
                .map_err(|_| io::Error::other("an echo thread panicked"))?;
        }
        Ok(total)
    })
}

fn echo_loop(socket: &UdpSocket, stop: &AtomicBool) -> u64 {
    // 64 KiB: the largest UDP payload, so that nothing is echoed back truncated.
    let mut buf = vec![0u8; 65_536];
    let mut echoed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                // A failed send (full buffer, unreachable source) loses one datagram, as UDP may.
                if socket.send_to(&buf[..len], from).is_ok() {
                    echoed += 1;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // Errors such as ICMP unreachable from an earlier send belong to that send, not to
            // the server: keep serving.
            Err(_) => {}
        }
    }
    echoed
}
