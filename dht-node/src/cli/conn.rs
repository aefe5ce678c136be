//! The connections of `--http`, served with hyper: a cap on how many are open, a
//! deadline and a size bound on each request's head, and an idle timeout. axum's
//! own `axum::serve` sets none of these and offers no way to, so connections are
//! accepted here and each is served by hyper's HTTP/1 connection builder.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Cli;

/// Connections open at once by default (`--http-max-conns`): each costs a file
/// descriptor and buffers, and the node's own sockets need descriptors too.
pub(crate) const MAX_CONNS: usize = 512;
/// How long a request's head may take to arrive by default
/// (`--http-header-timeout-ms`); hyper starts this clock whenever it waits for a
/// head, so it also ends a connection idle between requests.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without a byte moved either way by default
/// (`--http-idle-timeout-ms`); a watch sends a keep-alive every 15 s.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest request head (request line and headers) read; beyond it, 431. The
/// API's heads are a few hundred bytes. hyper's smallest allowed bound.
pub(crate) const MAX_HEAD: usize = 8192;
/// Most header fields in a request (a proxy adds a few of its own).
const MAX_HEADERS: usize = 64;

/// The bounds on connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub(crate) max_conns: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl ConnLimits {
    /// The defaults of the --http-* flags (`--overlay ipfs` has none of them).
    #[cfg(feature = "ipfs")]
    pub(crate) fn defaults() -> ConnLimits {
        ConnLimits {
            max_conns: MAX_CONNS,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    pub(crate) fn of(cli: &Cli) -> ConnLimits {
        ConnLimits {
            max_conns: cli.http_max_conns as usize,
            header_timeout: Duration::from_millis(cli.http_header_timeout_ms),
            // A request waiting for its lookup moves no byte: it must not be taken
            // for idle before its deadline.
            idle_timeout: Duration::from_millis(cli.http_idle_timeout_ms.max(cli.http_deadline_ms)),
        }
    }
}

/// Accepts connections until the task is aborted.
pub(crate) async fn accept(listener: TcpListener, app: Router, limits: ConnLimits) {
    let slots = Arc::new(Semaphore::new(limits.max_conns));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close
                // rather than spin.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the cap: closed before anything is read, so that the descriptor
            // comes back at once.
            tracing::debug!(%peer, "HTTP connection refused: --http-max-conns reached");
            drop(stream);
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            serve(stream, peer, app, limits).await;
            drop(slot);
        });
    }
}

/// Serves one connection until it closes, fails or stays idle too long.
async fn serve(stream: TcpStream, peer: SocketAddr, app: Router, limits: ConnLimits) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Activity {
        inner: stream,
        started,
        last: last.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What the handlers' `ConnectInfo` extractor reads: the per-client share.
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        tower_service::Service::call(&mut app, req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    loop {
        let moved = Duration::from_millis(last.load(Ordering::Relaxed));
        let wake = started + moved + idle;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {
                let moved = Duration::from_millis(last.load(Ordering::Relaxed));
                if Instant::now() >= started + moved + idle {
                    tracing::debug!(%peer, "HTTP connection idle: closed");
                    return;
                }
            }
        }
    }
}

/// A stream that notes when a byte last moved, in milliseconds since `started`.
struct Activity {
    inner: TcpStream,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Activity {
    fn moved(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
