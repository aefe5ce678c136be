//! Linux: many datagrams per system call (`recvmmsg`, `sendmmsg`, through nix's safe
//! wrappers), so that a node under load pays one system call per batch instead of one per
//! datagram in each direction.
//!
//! nix's `MultiHeaders` (the `mmsghdr` array and the address storage the kernel writes)
//! hold raw pointers, so they are not `Send` and cannot live in the transport, which a
//! runtime may move between threads; each thread keeps its own, built once, instead of
//! one per call. A receive header is only ever used for one address family, since the
//! kernel shortens its address length to the family's and nix does not reset it; the
//! send headers are separate, since `sendmmsg` points them at the caller's addresses.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use dht_core::{OutDatagram, RecvSlot};
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6,
    SockaddrLike,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams one system call moves: the runtime's receive batch.
pub(crate) const BATCH: usize = 32;

thread_local! {
    static RECV_V4: RefCell<Option<MultiHeaders<SockaddrIn>>> = const { RefCell::new(None) };
    static RECV_V6: RefCell<Option<MultiHeaders<SockaddrIn6>>> = const { RefCell::new(None) };
    static SEND_V4: RefCell<Option<MultiHeaders<SockaddrIn>>> = const { RefCell::new(None) };
    static SEND_V6: RefCell<Option<MultiHeaders<SockaddrIn6>>> = const { RefCell::new(None) };
}

/// What one `recvmmsg` found.
pub(crate) struct Received {
    /// Slots filled at the front of the slice given, in arrival order.
    pub filled: usize,
    /// Datagrams read, the dropped ones included: fewer than asked means the queue is empty.
    pub read: usize,
}

/// Reads up to `slots.len()` (at most [`BATCH`]) datagrams queued on `socket` without
/// waiting. A datagram that filled its whole buffer may have been cut short and is dropped
/// (as `UdpTransport::drain` explains); the slots that held one are reused. `WouldBlock`
/// when nothing is queued (tokio's readiness is then cleared).
pub(crate) fn recv_many(
    socket: &UdpSocket,
    v6: bool,
    slots: &mut [RecvSlot],
) -> io::Result<Received> {
    let n = slots.len().min(BATCH);
    if n == 0 {
        return Ok(Received { filled: 0, read: 0 });
    }
    let slots = &mut slots[..n];
    let mut got: [(usize, Option<SocketAddr>); BATCH] = [(0, None); BATCH];
    let fd = socket.as_raw_fd();
    let read = socket.try_io(Interest::READABLE, || {
        let read = if v6 {
            RECV_V6.with_borrow_mut(|headers| {
                let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
                recv_into(fd, headers, slots, &mut got, |a| {
                    SocketAddr::V6(SocketAddrV6::from(a))
                })
            })
        } else {
            RECV_V4.with_borrow_mut(|headers| {
                let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
                recv_into(fd, headers, slots, &mut got, |a| {
                    SocketAddr::V4(SocketAddrV4::from(a))
                })
            })
        };
        read.map_err(io::Error::from)
    })?;
    let mut filled = 0;
    for (i, &(len, from)) in got[..read].iter().enumerate() {
        let Some(from) = from else {
            // A datagram socket always reports the source; nothing to answer without one.
            continue;
        };
        if len >= slots[i].buf.len() {
            tracing::debug!(%from, len, "dropping a datagram that may be truncated");
            continue;
        }
        slots.swap(filled, i);
        let slot = &mut slots[filled];
        slot.len = len;
        slot.from = from;
        slot.peer_key = None;
        filled += 1;
    }
    Ok(Received { filled, read })
}

/// One `recvmmsg` into the buffers of `slots`: the length and source of each datagram
/// read go to `got`, in order; returns how many were read.
fn recv_into<S: SockaddrLike + Copy>(
    fd: RawFd,
    headers: &mut MultiHeaders<S>,
    slots: &mut [RecvSlot],
    got: &mut [(usize, Option<SocketAddr>)],
    address: fn(S) -> SocketAddr,
) -> nix::Result<usize> {
    let n = slots.len().min(BATCH);
    let mut rest = slots.iter_mut();
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| match rest.next() {
        Some(slot) => [IoSliceMut::new(&mut slot.buf[..])],
        None => [IoSliceMut::new(&mut [])],
    });
    let mut read = 0;
    let received = recvmmsg(fd, headers, iovs[..n].iter_mut(), MsgFlags::empty(), None)?;
    for (msg, out) in received.zip(got) {
        *out = (msg.bytes, msg.address.map(address));
        read += 1;
    }
    Ok(read)
}

/// Sends the front of `batch` (all of one family; at most [`BATCH`] go) on `socket`
/// without waiting and returns how many datagrams the kernel took (at least 1).
/// `WouldBlock` when the send buffer is full (tokio's readiness is then cleared); any
/// other error belongs to the first datagram.
pub(crate) fn send_many(socket: &UdpSocket, batch: &[OutDatagram<'_>]) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let v4 = batch.first().is_none_or(|d| d.to.is_ipv4());
    socket.try_io(Interest::WRITABLE, || {
        let sent = if v4 {
            SEND_V4.with_borrow_mut(|headers| {
                let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
                send_from(fd, headers, batch, |to| match to {
                    SocketAddr::V4(a) => Some(SockaddrIn::from(a)),
                    SocketAddr::V6(_) => None,
                })
            })
        } else {
            SEND_V6.with_borrow_mut(|headers| {
                let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
                send_from(fd, headers, batch, |to| match to {
                    SocketAddr::V6(a) => Some(SockaddrIn6::from(a)),
                    SocketAddr::V4(_) => None,
                })
            })
        };
        sent.map_err(io::Error::from)
    })
}

/// One `sendmmsg` of the front of `batch` (at most [`BATCH`], all of the family that
/// `address` converts); returns how many the kernel took.
fn send_from<S: SockaddrLike + Copy>(
    fd: RawFd,
    headers: &mut MultiHeaders<S>,
    batch: &[OutDatagram<'_>],
    address: fn(SocketAddr) -> Option<S>,
) -> nix::Result<usize> {
    // A datagram of the other family would go nowhere: the run ends before it.
    let n = batch
        .iter()
        .take(BATCH)
        .position(|d| address(d.to).is_none())
        .unwrap_or(batch.len().min(BATCH));
    let iovs: [[IoSlice<'_>; 1]; BATCH] =
        std::array::from_fn(|i| [IoSlice::new(batch.get(i).map_or(&[][..], |d| d.payload))]);
    let addrs: [Option<S>; BATCH] =
        std::array::from_fn(|i| batch.get(i).take_if(|_| i < n).and_then(|d| address(d.to)));
    let no_control: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        fd,
        headers,
        &iovs[..n],
        &addrs[..n],
        no_control,
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many datagrams each way in one call, on both families, sources and lengths kept.
    #[tokio::test]
    async fn many_datagrams_per_call_on_both_families() {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let local: SocketAddr = local.parse().unwrap();
            let Ok(a) = std::net::UdpSocket::bind(local) else {
                continue; // no IPv6 loopback here
            };
            let b = std::net::UdpSocket::bind(local).unwrap();
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            let (a, b) = (
                UdpSocket::from_std(a).unwrap(),
                UdpSocket::from_std(b).unwrap(),
            );
            let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + i as usize]).collect();
            let batch: Vec<OutDatagram<'_>> = payloads
                .iter()
                .map(|p| OutDatagram {
                    to: b_addr,
                    payload: p,
                })
                .collect();
            let mut rest = &batch[..];
            while !rest.is_empty() {
                // tokio reports a new socket writable only once its reactor has seen it.
                a.writable().await.unwrap();
                match send_many(&a, rest) {
                    Ok(sent) => {
                        assert!((1..=BATCH).contains(&sent));
                        rest = &rest[sent..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            let mut slots: Vec<RecvSlot> = (0..BATCH).map(|_| RecvSlot::new()).collect();
            let mut seen = Vec::new();
            while seen.len() < payloads.len() {
                b.readable().await.unwrap();
                match recv_many(&b, local.is_ipv6(), &mut slots) {
                    Ok(got) => {
                        for slot in &slots[..got.filled] {
                            assert_eq!(slot.from, a_addr);
                            seen.push(slot.payload().to_vec());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(seen, payloads);
        }
    }
}
