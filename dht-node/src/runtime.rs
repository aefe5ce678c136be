//! [`Runtime`]: the node task. It owns an overlay ([`Hosted`]: Mainline's
//! [`MainlineNode`], Chord's node) and the transport, selects over received
//! datagrams, the overlay's next timeout and the commands of its handles, and drains
//! what the overlay wants sent and what finished after every input.
//!
//! One loop for every overlay: nothing here knows a request kind. The overlay is a
//! type parameter, so the serving path (datagram in, datagrams out) is monomorphised
//! for it, with no dynamic dispatch and no allocation beyond the overlay's own.
//!
//! Group commit: after each input (a receive batch, a timer, a command) the loop asks
//! the overlay to commit its store's writes ([`Overlay::commit`](dht_core::Overlay::commit)) and runs the flush on
//! tokio's blocking pool, one at a time, while it goes on serving; the replies to
//! those writes ([`Output::DatagramAfterCommit`]) wait for it, and everything else
//! goes at once. A memory store has nothing to commit, and its write replies go at
//! once too.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_core::{Commit, Config, Event, Input, Output, QueryId, Store, StoreError};
use dht_core::{OutDatagram, RecvSlot, Transport};
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use crate::handle::Handle;
use crate::mainline::{MainlineNode, RepublishIntervals};
use crate::metrics::ConnectionStats;
use crate::overlay::{Command, Hosted, Protocol, Reply};
use crate::Dht;

/// How often the overlay's wall-clock anchor is refreshed, so that store deadlines
/// follow the system clock even if the monotonic clock drifts from it.
const WALL_CLOCK_EVERY: Duration = Duration::from_secs(60);
/// Datagrams read per wake-up.
const RECV_BATCH: usize = 32;
/// Commands that may wait for the node task before callers are slowed down.
const COMMAND_QUEUE: usize = 256;

/// The least time from the start of one commit to the start of the next. Each
/// commit costs sled a log write and a sync on its own I/O threads, which compete
/// with the node task for the CPU: unspaced, a node taking thousands of writes a
/// second started about a thousand commits a second. Spaced, a write's reply waits
/// at most this long more, and each flush covers more writes.
const COMMIT_GAP: Duration = Duration::from_millis(5);

/// Datagrams to send: destination and payload.
type Outgoing = Vec<(SocketAddr, Vec<u8>)>;

/// The commit in flight on the blocking pool and the write replies waiting for it.
#[derive(Debug)]
struct Committing {
    flush: tokio::task::JoinHandle<Result<(), StoreError>>,
    replies: Outgoing,
}

/// Waits for the commit in flight, if any (never returns without one).
async fn committed(c: Option<&mut Committing>) -> Result<(), StoreError> {
    match c {
        Some(c) => match (&mut c.flush).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::new(format!("the commit did not finish: {e}"))),
        },
        None => std::future::pending().await,
    }
}

#[derive(Debug)]
struct Waiter<P: Protocol> {
    label: &'static str,
    reply: Reply<P>,
}

/// The node task: owns the overlay and the transport and serves its handles'
/// commands.
///
/// Usually started by [`DhtBuilder::spawn_with`](crate::DhtBuilder::spawn_with); build
/// one with [`Runtime::new`] (Mainline) or [`Runtime::hosting`] (any overlay) to run it
/// on an executor of your choosing.
#[derive(Debug)]
pub struct Runtime<T: Transport, O: Hosted> {
    overlay: O,
    transport: T,
    rx: mpsc::Receiver<Command<O::Protocol>>,
    waiters: HashMap<QueryId, Waiter<O::Protocol>>,
    slots: Vec<RecvSlot>,
    next_wall_clock: std::time::Instant,
    connection_stats: Option<fn(&T) -> ConnectionStats>,
    /// The commit in flight (at most one).
    committing: Option<Committing>,
    /// Write replies drained while a commit was in flight: the next commit covers
    /// their writes.
    uncommitted: Outgoing,
    /// When the next commit may start ([`COMMIT_GAP`] after the last one started).
    next_commit: std::time::Instant,
    /// What a flush drains from the overlay, kept (empty) between flushes so that a
    /// flush allocates nothing.
    sending: Outgoing,
}

/// Wall-clock time now, in Unix milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The runtime's clock (tokio's, so that paused-time tests move it).
pub(crate) fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

impl<T: Transport, S: Store + Send + 'static> Runtime<T, MainlineNode<S>> {
    /// A Mainline runtime over `transport` and `store` and the handle that drives it.
    /// `config.seed` is used as given: seed it from the OS ([`identity::os_seed`](crate::identity::os_seed)).
    /// With `republish` `None`, nothing is republished.
    pub fn new(
        transport: T,
        store: S,
        config: Config,
        republish: Option<RepublishIntervals>,
    ) -> io::Result<(Runtime<T, MainlineNode<S>>, Dht)> {
        let node = MainlineNode::new(config, store, now(), unix_ms(), republish)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (runtime, handle) = Runtime::hosting(transport, node);
        Ok((runtime, Dht { inner: handle }))
    }
}

impl<T: Transport, O: Hosted> Runtime<T, O> {
    /// A runtime hosting `overlay` over `transport`, and the handle that drives it.
    pub fn hosting(transport: T, overlay: O) -> (Runtime<T, O>, Handle<O::Protocol>) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let local_addrs: Vec<SocketAddr> = transport.local_addrs();
        let handle = Handle {
            tx,
            id: overlay.node_id(),
            local_addrs: Arc::new(local_addrs),
        };
        let runtime = Runtime {
            overlay,
            transport,
            rx,
            waiters: HashMap::new(),
            slots: (0..RECV_BATCH).map(|_| RecvSlot::new()).collect(),
            next_wall_clock: now() + WALL_CLOCK_EVERY,
            connection_stats: None,
            committing: None,
            uncommitted: Vec::new(),
            next_commit: now(),
            sending: Vec::new(),
        };
        (runtime, handle)
    }

    /// Reads the transport's connection figures into the metrics with `of`
    /// (a connection-oriented transport such as QUIC).
    pub fn with_connection_stats(mut self, of: fn(&T) -> ConnectionStats) -> Self {
        self.connection_stats = Some(of);
        self
    }

    /// Runs until a handle's `shutdown` or until every handle is dropped.
    pub async fn run(mut self) {
        enum Wake<C> {
            Command(Option<C>),
            Committed(Result<(), StoreError>),
            Received(io::Result<usize>),
            Timer,
        }
        tracing::debug!(id = %self.overlay.node_id(), addrs = ?self.transport.local_addrs(), "node started");
        loop {
            self.flush().await;
            let deadline = self.next_deadline();
            // Due timers before anything else: with a biased select a flood keeps the
            // socket ready and the timer branch never wins (a 2 s request timeout once
            // fired after 19 s). Receives are bounded per turn (one batch of
            // RECV_BATCH), so a timer waits at most one batch behind a flood.
            if now() >= deadline {
                self.on_timer();
                // Commands still get their turn under a flood of expiring timers.
                if let Ok(c) = self.rx.try_recv() {
                    if matches!(c, Command::Shutdown) {
                        break;
                    }
                    self.on_command(c);
                }
                continue;
            }
            let wake = tokio::select! {
                // Commands first: a shutdown must not wait behind a flood of datagrams.
                biased;
                c = self.rx.recv() => Wake::Command(c),
                // Before the socket: waiting write replies must not starve under a flood.
                r = committed(self.committing.as_mut()) => Wake::Committed(r),
                r = self.transport.recv_batch(&mut self.slots) => Wake::Received(r),
                _ = tokio::time::sleep_until(TokioInstant::from_std(deadline)) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) | Wake::Command(Some(Command::Shutdown)) => break,
                Wake::Command(Some(c)) => self.on_command(c),
                Wake::Committed(r) => self.on_committed(r).await,
                Wake::Received(Ok(n)) => {
                    let t = now();
                    for slot in &self.slots[..n] {
                        let input = Input::Datagram {
                            from: slot.from,
                            key: slot.peer_key.as_ref(),
                            bytes: slot.payload(),
                        };
                        self.overlay.handle_input(t, input);
                    }
                    if n == self.slots.len() {
                        // A full batch: more is waiting, so the socket stays ready and
                        // this task would never return Pending (readiness and the
                        // drain take none of tokio's budget). On a current-thread
                        // runtime (the one-shots') the task waiting for this node's
                        // answer then did not run until a flood ended: a 2 s ping
                        // returned after 11.6 s. Hand the thread back once a full
                        // batch: a saturated node pays one more trip through the
                        // scheduler (a zero-timeout poll of the driver) per 32
                        // datagrams. Yielding every 4 full batches, or when tokio's
                        // budget runs out (every 128 turns), left the same 1 s ping
                        // at 1.2-3.5 s and 2.7-4 s under the test's flood.
                        tokio::task::yield_now().await;
                    }
                }
                Wake::Received(Err(e)) => {
                    // A broken socket would spin this loop: back off a little.
                    tracing::warn!(error = %e, "receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Wake::Timer => self.on_timer(),
            }
        }
        // A persistent store must hold the final snapshot and every acknowledged
        // write before the process exits, not whenever its background flush runs.
        self.overlay.stop(now());
        self.flush().await;
        // Write replies still waiting go out once their commit completes.
        while self.committing.is_some() {
            let r = committed(self.committing.as_mut()).await;
            self.on_committed(r).await;
            self.flush().await;
        }
        // Closed only now: `shutdown` returns when it is, and by then what the node
        // kept must be saved.
        self.rx.close();
        tracing::debug!("node stopped");
    }

    fn next_deadline(&self) -> std::time::Instant {
        let t = match self.overlay.poll_timeout() {
            Some(t) => t.min(self.next_wall_clock),
            None => self.next_wall_clock,
        };
        // Write replies waiting for a commit that the gap holds back.
        if self.committing.is_none() && !self.uncommitted.is_empty() {
            return t.min(self.next_commit);
        }
        t
    }

    fn on_timer(&mut self) {
        let t = now();
        if t >= self.next_wall_clock {
            self.next_wall_clock = t + WALL_CLOCK_EVERY;
            self.overlay.handle_wall_clock(t, unix_ms());
        }
        self.overlay.handle_timeout(t);
    }

    fn on_command(&mut self, c: Command<O::Protocol>) {
        let t = now();
        match c {
            Command::Query { request, reply } => {
                let label = <O::Protocol as Protocol>::label(&request);
                match self.overlay.start(t, request) {
                    Ok(qid) => {
                        self.waiters.insert(qid, Waiter { label, reply });
                    }
                    Err(refused) => {
                        let _ = reply.send(Err(refused));
                    }
                }
            }
            Command::Ask(question) => {
                self.overlay
                    .answer(t, question, &self.transport, self.connection_stats)
            }
            // Handled by the loop.
            Command::Shutdown => {}
        }
    }

    /// The commit in flight completed: its write replies go out, or, if it failed,
    /// what the overlay sends instead ([`Overlay::commit_failed`](dht_core::Overlay::commit_failed): KRPC error 202).
    /// A failed commit means those writes may not be on disk (sled drops what it had
    /// not written when it reopens after a failed write), so they must not be
    /// acknowledged; an error tells each writer at once that this node did not keep
    /// its write, as a refused write is told, where silence would cost it a timeout.
    async fn on_committed(&mut self, r: Result<(), StoreError>) {
        let Some(done) = self.committing.take() else {
            return;
        };
        match r {
            Ok(()) => self.send(&mut { done.replies }).await,
            Err(e) => {
                tracing::warn!(error = %e, unacknowledged = done.replies.len(),
                    "a commit failed: its writes are answered with an error");
                let errors = done
                    .replies
                    .into_iter()
                    .filter_map(|(to, reply)| Some((to, self.overlay.commit_failed(reply)?)))
                    .collect();
                self.send(&mut { errors }).await;
            }
        }
    }

    /// Starts a commit of what the overlay wrote if none is in flight; the write
    /// replies drained so far wait for it, or go into `out` at once when there is
    /// nothing to commit (a memory store, or nothing written).
    fn commit(&mut self, out: &mut Outgoing) {
        if self.committing.is_some() {
            return;
        }
        // Only a store that committed lately is held back (a memory store never is).
        let t = now();
        if t < self.next_commit {
            return;
        }
        match self.overlay.commit() {
            None => out.append(&mut self.uncommitted),
            Some(c) => {
                self.next_commit = t + COMMIT_GAP;
                let flush = tokio::task::spawn_blocking(move || Commit::run(c));
                let replies = std::mem::take(&mut self.uncommitted);
                self.committing = Some(Committing { flush, replies });
            }
        }
    }

    /// Sends what the overlay queued (write replies once their commit completes) and
    /// delivers finished commands.
    async fn flush(&mut self) {
        let mut out = std::mem::take(&mut self.sending);
        while let Some(output) = self.overlay.poll_output() {
            match output {
                Output::Datagram { to, payload } => out.push((to, payload)),
                Output::DatagramAfterCommit { to, payload } => self.uncommitted.push((to, payload)),
                // A datagram transport carries no streams; an overlay that asks for one
                // needs a stream transport (see ARCHITECTURE.md, "One runtime").
                Output::Request { to, .. } => {
                    tracing::warn!(%to, "a stream request on a datagram transport: dropped")
                }
                Output::Reply { .. } | Output::Reset { .. } => {
                    tracing::warn!("a stream reply on a datagram transport: dropped")
                }
            }
        }
        self.commit(&mut out);
        self.send(&mut out).await;
        self.sending = out;
        while let Some(Event::QueryDone(done)) = self.overlay.poll_event() {
            let Some(waiter) = self.waiters.remove(&done.id) else {
                continue;
            };
            <O::Protocol as Protocol>::record(waiter.label, &done);
            let _ = waiter.reply.send(Ok(done));
        }
    }

    /// Sends `out` and gives the payloads back to the overlay; `out` is left empty.
    async fn send(&mut self, out: &mut Outgoing) {
        if out.is_empty() {
            return;
        }
        let batch: Vec<OutDatagram<'_>> = out
            .iter()
            .map(|(to, payload)| OutDatagram { to: *to, payload })
            .collect();
        if let Err(e) = self.transport.send_batch(&batch).await {
            tracing::warn!(error = %e, "send failed");
        }
        drop(batch);
        for (_, payload) in out.drain(..) {
            self.overlay.recycle(payload);
        }
    }
}
