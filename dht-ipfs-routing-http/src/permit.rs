//! The bound on routing work: every lookup and every publish a request starts holds a
//! [`Permit`] from a [`Pool`] the caller passes in, and a request that finds none free
//! is answered 503 at once, before any work starts.
//!
//! The pool is the caller's, so that a node can share the pools its other HTTP API
//! draws from (its reads with their per-client shares, its writes). [`Pools`] is the
//! simple one: a tokio semaphore for reads and one for writes.
//!
//! A permit is shared: the router keeps one handle for as long as the request's
//! future or response stream lives, and passes another to the [`ContentRouting`]
//! method. The pool's slot is free when the last handle drops. An implementation whose
//! work stops when its future is dropped simply drops its handle; one whose work runs
//! on (a lookup the node cannot cancel) moves its handle into that work, so that a
//! request given up keeps its work counted until the work ends.
//!
//! [`ContentRouting`]: crate::ContentRouting

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Semaphore;

/// What a request asks the router to do, so that a pool can keep reads from starving
/// writes (and the other way round).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Work {
    /// A lookup: providers of a CID, a peer's addresses, an IPNS record.
    Read,
    /// A publish: an IPNS record put.
    Write,
}

/// A held slot of a pool. Clones share the slot, which is given back when the last
/// clone drops.
#[derive(Clone)]
pub struct Permit(#[allow(dead_code)] Arc<dyn Any + Send + Sync>);

impl Permit {
    /// A permit holding `held` (a semaphore permit, a share of a client's quota, …),
    /// dropped when the last clone of the permit drops.
    pub fn new(held: impl Any + Send + Sync) -> Permit {
        Permit(Arc::new(held))
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permit(holders: {})", Arc::strong_count(&self.0))
    }
}

/// Why a pool gave no permit; its text is the 503's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Busy(Cow<'static, str>);

impl Busy {
    /// A refusal with this message for the client.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Busy {
        Busy(reason.into())
    }
}

/// Where permits come from. `try_acquire` must not wait: a request without a permit
/// is refused at once.
pub trait Pool: Send + Sync + 'static {
    /// A permit for `work` asked by the client at `client` (the address in axum's
    /// `ConnectInfo<SocketAddr>`, when the server puts one in each request), or why not.
    fn try_acquire(&self, work: Work, client: Option<IpAddr>) -> Result<Permit, Busy>;
}

/// A pool shared with other code (the node's own API, say).
impl<P: Pool> Pool for Arc<P> {
    fn try_acquire(&self, work: Work, client: Option<IpAddr>) -> Result<Permit, Busy> {
        P::try_acquire(self, work, client)
    }
}

/// Two tokio semaphores: one for reads, one for writes.
#[derive(Clone, Debug)]
pub struct Pools {
    reads: Arc<Semaphore>,
    writes: Arc<Semaphore>,
}

impl Pools {
    /// New pools of `reads` and `writes` permits.
    pub fn new(reads: usize, writes: usize) -> Pools {
        Pools::from_semaphores(
            Arc::new(Semaphore::new(reads)),
            Arc::new(Semaphore::new(writes)),
        )
    }

    /// Pools over semaphores the caller shares with other work.
    pub fn from_semaphores(reads: Arc<Semaphore>, writes: Arc<Semaphore>) -> Pools {
        Pools { reads, writes }
    }
}

impl Pool for Pools {
    fn try_acquire(&self, work: Work, _client: Option<IpAddr>) -> Result<Permit, Busy> {
        let (pool, what) = match work {
            Work::Read => (&self.reads, "lookups"),
            Work::Write => (&self.writes, "publishes"),
        };
        let permit = pool
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::new(format!("too many routing {what} in flight; retry later")))?;
        Ok(Permit::new(permit))
    }
}
