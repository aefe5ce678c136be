//! The node's counters since start: traffic, drops by reason, store errors.
//!
//! Plain counters, read with [`crate::Node::stats`]; runtimes export them (logs,
//! metrics) without the core knowing how.

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams handed to `handle_datagram`.
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes queued for sending.
    pub bytes_out: u64,
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Queries answered (including with an error).
    pub queries_answered: u64,
    /// Error replies sent.
    pub errors_sent: u64,
    /// Replies that matched no request in flight (late, spoofed or duplicated).
    pub unexpected_replies: u64,
    /// Messages dropped because the id was not the one bound to the sender's key.
    pub key_id_mismatch: u64,
    /// Store operations that failed.
    pub store_errors: u64,
    /// Queries dropped by the per-IP rate limit.
    pub rate_limited: u64,
    /// Datagrams dropped because their source is banned.
    pub banned: u64,
    /// Replies not sent because the reply byte budget was spent.
    pub budget_dropped: u64,
    /// Puts and announces refused with 202 because a global cap or the source's
    /// share was reached.
    pub storage_refused: u64,
    /// Contacts in replies dropped before reaching a lookup: unusable addresses
    /// (unspecified, multicast, broadcast, port 0) or more local than their teller.
    pub contacts_dropped: u64,
    /// Wall-clock re-anchors that disagreed with the monotonic clock by more than
    /// [`crate::MAX_WALL_SLEW`] and were followed only that far (log them).
    pub wall_clock_jumps: u64,
}
