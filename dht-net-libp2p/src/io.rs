//! Bytes on `/ipfs/kad/1.0.0` streams, as the implementations expect them: each
//! message is an unsigned-varint length and a protobuf body. Our requests go one per
//! stream (write it, close the write half, read one reply); inbound streams are read
//! in a loop until the peer closes them, go idle, or send something malformed (then
//! they are reset: dropping an open yamux stream resets it).
//!
//! A message is bounded before it is buffered: the length prefix is read first and a
//! body over the limit is never read.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Stream;

use crate::handler::StreamGuard;

/// How long an inbound stream may stay silent before we close it, by default
/// ([`crate::Limits::inbound_idle`]; go: 1 min idle). Streams are cheap to reopen.
pub const INBOUND_IDLE: Duration = Duration::from_secs(60);

/// A stream that broke the framing: reset it.
#[derive(Debug)]
pub(crate) struct Malformed;

impl From<std::io::Error> for Malformed {
    fn from(_: std::io::Error) -> Malformed {
        Malformed
    }
}

/// Reads one frame (prefix and body, as `dht_ipfs::wire::decode_frame` takes it).
/// `Ok(None)`: the peer closed the stream before a new message began.
pub(crate) async fn read_frame(s: &mut Stream, max: usize) -> Result<Option<Vec<u8>>, Malformed> {
    let mut frame = Vec::with_capacity(10);
    let len = loop {
        let mut byte = [0u8; 1];
        if s.read(&mut byte).await? == 0 {
            return if frame.is_empty() {
                Ok(None)
            } else {
                Err(Malformed)
            };
        }
        frame.push(byte[0]);
        // The prefix is checked against `max` before the body is allocated; a prefix
        // longer than 9 bytes is an error, so this loop is bounded.
        match dht_ipfs::wire::frame_header(&frame, max) {
            Ok(Some((_, len))) => break len,
            Ok(None) => {}
            Err(_) => return Err(Malformed),
        }
    };
    let head = frame.len();
    frame.resize(head + len, 0);
    s.read_exact(&mut frame[head..]).await?;
    Ok(Some(frame))
}

/// Our request on its own stream: write, close the write half, read one reply, all
/// before `deadline`. Returns whether the request was written in full (all a message
/// with no reply, ADD_PROVIDER, can show) and the reply, `None` when there is none
/// (the peer closed or reset, the framing broke, or the deadline passed).
pub(crate) async fn request(
    mut s: Stream,
    payload: Vec<u8>,
    max: usize,
    deadline: std::time::Instant,
) -> (bool, Option<Vec<u8>>) {
    let mut written = false;
    let exchange = async {
        s.write_all(&payload).await.ok()?;
        s.close().await.ok()?;
        written = true;
        read_frame(&mut s, max).await.ok().flatten()
    };
    let reply = tokio::time::timeout_at(deadline.into(), exchange)
        .await
        .ok()
        .flatten();
    (written, reply)
}

/// The engine's answer to one inbound request (none: ADD_PROVIDER, read on).
#[derive(Debug)]
pub(crate) enum Answer {
    /// Write this reply and read on.
    Reply(Vec<u8>),
    /// Reset the stream.
    Reset,
}

/// An inbound stream the host serves, with the peer that opened it (as the engine
/// takes it: built once per connection) and the guard that keeps it counted.
pub(crate) struct Inbound {
    pub(crate) stream: Stream,
    pub(crate) from: dht_ipfs::PeerInfo,
    pub(crate) _guard: StreamGuard,
}

/// What [`next_request`] found on an inbound stream.
// Moved once per request: boxing the stream would cost the allocation this path saves.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Served {
    /// A request (one frame): the host feeds it to the engine.
    Request(Inbound, Vec<u8>),
    /// The stream is done: closed by the peer or idle (our half closed too), or
    /// malformed, too large or broken (reset: dropped while open).
    Ended,
}

/// Writes our `reply` to the last request on `s`, if there is one, then reads the next
/// request, within `idle`. The host keeps one such future per inbound stream, so that
/// a request reaches the engine and its reply the stream without a task or a channel
/// of their own, and a slow peer holds only its own future.
pub(crate) async fn next_request(
    mut s: Inbound,
    reply: Option<Vec<u8>>,
    max: usize,
    idle: Duration,
) -> Served {
    if let Some(bytes) = reply {
        if s.stream.write_all(&bytes).await.is_err() || s.stream.flush().await.is_err() {
            return Served::Ended;
        }
    }
    match tokio::time::timeout(idle, read_frame(&mut s.stream, max)).await {
        Ok(Ok(Some(frame))) => Served::Request(s, frame),
        // Closed by the peer, or idle: close our half too.
        Ok(Ok(None)) | Err(_) => {
            let _ = s.stream.close().await;
            Served::Ended
        }
        // Malformed or too large: reset.
        Ok(Err(Malformed)) => Served::Ended,
    }
}
