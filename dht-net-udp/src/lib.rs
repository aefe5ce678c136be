//! # dht-net-udp: the plain UDP [`Transport`] for dht-core
//!
//! [`UdpTransport`] carries KRPC datagrams over tokio UDP sockets, at most one per
//! address family. BEP 32 makes IPv4 and IPv6 two separate DHTs, so the IPv6 socket is
//! bound with `IPV6_V6ONLY`: IPv4 traffic never arrives as v4-mapped IPv6 addresses
//! and each datagram leaves on the socket of its destination's family.
//!
//! The transport only moves bytes: it never parses, and errors that concern a
//! single datagram (an unreachable host, a refused port reported by ICMP, ...) are
//! logged at debug level and skipped, so one bad peer cannot stop the node. Only
//! failures of the transport itself are returned.
//!
//! [`UdpTransport::bind`] must be called inside a tokio runtime (it registers the
//! sockets with the runtime's reactor); outside one it returns an error.
//!
//! Two transports on loopback, one sending a KRPC datagram to the other (a node hands
//! what it receives to dht-core, and sends what dht-core hands out):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use dht_core::{OutDatagram, RecvSlot, Transport};
//! use dht_net_udp::UdpTransport;
//!
//! // A node binds "0.0.0.0:6881" and "[::]:6881"; port 0 lets the OS choose one.
//! let a = UdpTransport::bind(&["127.0.0.1:0".parse().unwrap()])?;
//! let b = UdpTransport::bind(&["127.0.0.1:0".parse().unwrap()])?;
//! let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
//! a.send_batch(&[OutDatagram { to: b.local_addrs()[0], payload: ping }]).await?;
//!
//! let mut slots: Vec<RecvSlot> = (0..32).map(|_| RecvSlot::new()).collect();
//! let n = b.recv_batch(&mut slots).await?;
//! assert_eq!(n, 1);
//! assert_eq!((slots[0].from, slots[0].payload()), (a.local_addrs()[0], &ping[..]));
//! # Ok(())
//! # }
//! ```

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;

use dht_core::{OutDatagram, RecvSlot, Transport};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

#[cfg(target_os = "linux")]
mod mmsg;

/// Kernel send and receive buffer size requested for each socket.
///
/// A lookup sends a burst of queries and its replies arrive together; the default
/// buffer (around 200 KiB on Linux, a few hundred datagrams once kernel overhead is
/// counted) overflows and drops replies before the runtime drains it. The kernel may
/// cap the value (Linux: `net.core.rmem_max` / `wmem_max`); a cap is not an error.
pub const SOCKET_BUF_LEN: usize = 4 << 20;

/// A [`Transport`] over UDP: one socket for IPv4 and/or one for IPv6.
#[derive(Debug)]
pub struct UdpTransport {
    v4: Option<Family>,
    v6: Option<Family>,
}

#[derive(Debug)]
struct Family {
    socket: UdpSocket,
    /// Resolved once at bind: the port the OS chose for port 0.
    local: SocketAddr,
}

impl UdpTransport {
    /// Binds one socket per address in `addrs`: at most one IPv4 and one IPv6
    /// address, and at least one address. Port 0 picks a free port; see
    /// [`UdpTransport::local_addrs`] for the result.
    ///
    /// Each socket is non-blocking, asks for [`SOCKET_BUF_LEN`]-byte kernel buffers,
    /// and an IPv6 socket is IPv6-only (BEP 32), so `0.0.0.0:p` and `[::]:p` can be
    /// bound side by side.
    ///
    /// Errors: `InvalidInput` for an empty list or two addresses of one family, an
    /// error if no tokio runtime is running, and any error from the OS.
    pub fn bind(addrs: &[SocketAddr]) -> io::Result<UdpTransport> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UdpTransport::bind needs at least one address",
            ));
        }
        // tokio panics when a socket is registered outside a runtime; make it an error.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "UdpTransport::bind must be called inside a tokio runtime",
            ));
        }
        let mut transport = UdpTransport { v4: None, v6: None };
        for addr in addrs {
            let slot = if addr.is_ipv4() {
                &mut transport.v4
            } else {
                &mut transport.v6
            };
            if slot.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("UdpTransport::bind: a second address of one family ({addr})"),
                ));
            }
            *slot = Some(bind_one(*addr)?);
        }
        Ok(transport)
    }

    fn family(&self, addr: &SocketAddr) -> Option<&Family> {
        if addr.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    /// Fills `slots` from whatever is queued on the sockets without waiting.
    ///
    /// Takes at most half of what is left from each socket in turn (one `recvmmsg` each)
    /// so a flood on one family cannot starve the other. Returns how many slots were
    /// filled.
    #[cfg(target_os = "linux")]
    fn drain(&self, slots: &mut [RecvSlot]) -> io::Result<usize> {
        let mut filled = 0;
        let mut open = [self.v4.as_ref(), self.v6.as_ref()];
        while filled < slots.len() && open.iter().any(Option::is_some) {
            let sockets = open.iter().flatten().count();
            for (v6, entry) in open.iter_mut().enumerate() {
                let Some(family) = *entry else { continue };
                let left = slots.len() - filled;
                if left == 0 {
                    break;
                }
                let share = left.div_ceil(sockets);
                let end = filled + share;
                match mmsg::recv_many(&family.socket, v6 == 1, &mut slots[filled..end]) {
                    Ok(got) => {
                        filled += got.filled;
                        if got.read < share.min(mmsg::BATCH) {
                            // The queue is empty: the next read would block.
                            *entry = None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *entry = None,
                    Err(e) if is_per_datagram(&e) => {
                        // An ICMP error reported on the socket for an earlier send:
                        // nothing to read, and the next datagram may be fine.
                        tracing::debug!(local = %family.local, error = %e, "ignoring receive error");
                    }
                    Err(e) => {
                        if filled > 0 {
                            // Deliver what we have; the error recurs on the next call.
                            tracing::debug!(local = %family.local, error = %e, "receive failed");
                            return Ok(filled);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(filled)
    }

    /// Fills `slots` from whatever is queued on the sockets without waiting (one
    /// system call per datagram where `recvmmsg` is missing).
    ///
    /// Takes one datagram from each socket in turn so a flood on one family cannot
    /// starve the other. Returns how many slots were filled.
    #[cfg(not(target_os = "linux"))]
    fn drain(&self, slots: &mut [RecvSlot]) -> io::Result<usize> {
        let mut filled = 0;
        let mut open = [self.v4.as_ref(), self.v6.as_ref()];
        while filled < slots.len() && open.iter().any(Option::is_some) {
            for entry in open.iter_mut() {
                let Some(family) = *entry else { continue };
                let Some(slot) = slots.get_mut(filled) else {
                    break;
                };
                match family.socket.try_recv_from(&mut slot.buf) {
                    // A datagram that filled the whole buffer may have been cut short
                    // by the OS (recvfrom does not say); a cut KRPC message could only
                    // be misread. Valid traffic stays far below RECV_BUF_LEN (BEP 32
                    // senders keep to 1024 bytes, 1452 at most), so it is dropped.
                    Ok((len, from)) if len >= slot.buf.len() => {
                        tracing::debug!(%from, len, "dropping a datagram that may be truncated");
                    }
                    Ok((len, from)) => {
                        slot.len = len;
                        slot.from = from;
                        slot.peer_key = None;
                        filled += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *entry = None,
                    Err(e) if is_per_datagram(&e) => {
                        // An ICMP error reported on the socket for an earlier send:
                        // nothing to read, and the next datagram may be fine.
                        tracing::debug!(local = %family.local, error = %e, "ignoring receive error");
                    }
                    Err(e) => {
                        if filled > 0 {
                            // Deliver what we have; the error recurs on the next call.
                            tracing::debug!(local = %family.local, error = %e, "receive failed");
                            return Ok(filled);
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(filled)
    }
}

impl Transport for UdpTransport {
    /// The bound addresses, IPv4 first, with ports chosen by the OS filled in.
    fn local_addrs(&self) -> Vec<SocketAddr> {
        [self.v4.as_ref(), self.v6.as_ref()]
            .into_iter()
            .flatten()
            .map(|f| f.local)
            .collect()
    }

    /// Sends each datagram on the socket of its destination's family, in order (on
    /// Linux, each run of one family `sendmmsg` calls of up to 32).
    ///
    /// A datagram for a family with no socket, or one the OS refuses for reasons of
    /// its own (unreachable, refused, not permitted, too large), is logged at debug
    /// level and skipped; other errors end the batch and are returned.
    #[cfg(target_os = "linux")]
    async fn send_batch(&self, batch: &[OutDatagram<'_>]) -> io::Result<()> {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            // The longest run of one family: one socket, one `sendmmsg`.
            let v4 = first.to.is_ipv4();
            let run = rest
                .iter()
                .position(|d| d.to.is_ipv4() != v4)
                .unwrap_or(rest.len());
            let Some(family) = self.family(&first.to) else {
                tracing::debug!(to = %first.to, n = run, "no socket for this address family; datagrams dropped");
                rest = &rest[run..];
                continue;
            };
            match mmsg::send_many(&family.socket, &rest[..run]) {
                Ok(sent) => rest = &rest[sent.max(1)..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => family.socket.writable().await?,
                Err(e) if is_per_datagram(&e) => {
                    tracing::debug!(to = %first.to, len = first.payload.len(), error = %e, "send failed; datagram dropped");
                    rest = &rest[1..];
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    async fn send_batch(&self, batch: &[OutDatagram<'_>]) -> io::Result<()> {
        for d in batch {
            let Some(family) = self.family(&d.to) else {
                tracing::debug!(to = %d.to, "no socket for this address family; datagram dropped");
                continue;
            };
            match family.socket.send_to(d.payload, d.to).await {
                Ok(_) => {}
                Err(e) if is_per_datagram(&e) => {
                    tracing::debug!(to = %d.to, len = d.payload.len(), error = %e, "send failed; datagram dropped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until a socket has a datagram, then fills as many slots as datagrams
    /// are queued, without waiting again. Returns at least 1 unless `slots` is empty
    /// (then 0 at once). Datagrams that may be truncated and ICMP error reports are
    /// skipped, and the wait goes on.
    async fn recv_batch(&self, slots: &mut [RecvSlot]) -> io::Result<usize> {
        if slots.is_empty() {
            return Ok(0);
        }
        loop {
            self.readable().await?;
            let n = self.drain(slots)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
}

impl UdpTransport {
    /// Resolves when either socket may have a datagram (readiness can be spurious:
    /// the caller drains until `WouldBlock`, which re-arms it).
    async fn readable(&self) -> io::Result<()> {
        match (&self.v4, &self.v6) {
            (Some(a), Some(b)) => {
                // `readable()` rather than `poll_recv_ready` because it supports
                // several concurrent waiters; polling both in one future avoids
                // pulling in tokio's macros for `select!`.
                let mut ra = pin!(a.socket.readable());
                let mut rb = pin!(b.socket.readable());
                poll_fn(|cx| {
                    if let Poll::Ready(r) = ra.as_mut().poll(cx) {
                        return Poll::Ready(r);
                    }
                    rb.as_mut().poll(cx)
                })
                .await
            }
            (Some(f), None) | (None, Some(f)) => f.socket.readable().await,
            // `bind` refuses to build a transport without a socket.
            (None, None) => std::future::pending().await,
        }
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<Family> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A smaller buffer than asked only costs replies under load: not worth failing for.
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not enlarge the receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not enlarge the send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from_std(socket.into())?;
    let local = socket.local_addr()?;
    Ok(Family { socket, local })
}

/// Errors that concern one datagram or one peer, not the socket.
fn is_per_datagram(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        PermissionDenied
            | ConnectionRefused
            | ConnectionReset
            | NetworkUnreachable
            | HostUnreachable
            | NetworkDown
            | AddrNotAvailable
            // EINVAL: a destination the socket cannot reach at all (port 0, a
            // loopback-bound socket sending off-host, ...).
            | InvalidInput
    ) {
        return true;
    }
    is_msgsize_or_nobufs(e)
}

/// EMSGSIZE (payload over the path's limit) and ENOBUFS (a full queue: BSD and macOS
/// report it instead of dropping), which std maps to no specific `ErrorKind`.
#[cfg(unix)]
fn is_msgsize_or_nobufs(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == libc::EMSGSIZE || code == libc::ENOBUFS)
}

#[cfg(not(unix))]
fn is_msgsize_or_nobufs(_e: &io::Error) -> bool {
    false
}
