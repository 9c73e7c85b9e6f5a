//! The HTTP server of `serve` and `serve-spin`: HTTP/1.1 connections on a listener, each
//! bounded so that a client that holds sockets open cannot shut anyone else out.
//!
//! - **Time.** A connection that is not working on a request (waiting for a request head,
//!   sending one slowly, or idle between requests) is closed after
//!   [`Bounds::request_timeout`]; a body must arrive within [`Bounds::body_timeout`]
//!   ([`read_request`] answers `408` otherwise).
//! - **Count.** At most [`Bounds::max_connections`] are open, kept below the process's file
//!   descriptor limit. When a new client arrives at the cap, the connection that has waited
//!   longest without a request in progress is closed to make room, so an abuser's idle or
//!   half-sent sockets go first and a request that is being worked on is never cut. VK's
//!   callbacks therefore keep being answered while someone holds hundreds of sockets.
//! - **Shutdown.** Ctrl-C stops accepting, and requests in progress get a few seconds to
//!   finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::api::MAX_BODY;

/// What one connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Connections open at once (lowered to what the file descriptor limit allows).
    pub max_connections: usize,
    /// How long a connection may go without a request in progress.
    pub request_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
}

impl Bounds {
    /// `max_connections`, and `timeout_ms` for both a request and its body.
    pub fn new(max_connections: usize, timeout_ms: u64) -> Bounds {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        Bounds {
            max_connections,
            request_timeout: timeout,
            body_timeout: timeout,
        }
    }
}

/// File descriptors kept for everything but client connections: the database, outbound
/// connections to VK (one per instance at most), the listener, logs.
const RESERVED_FDS: u64 = 256;
/// How often idle connections are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How long requests in progress may finish after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// One open connection, as the server tracks it.
struct Connection {
    /// Since when it has had no request in progress.
    idle_since: Mutex<Instant>,
    /// A request's body is read and it is being answered: never closed by the server.
    busy: AtomicBool,
    close: Notify,
}

/// The open connections.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Signalled whenever a connection ends.
    ended: Notify,
}

impl Connections {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        lock(&self.open)
    }

    fn add(&self) -> (u64, Arc<Connection>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            idle_since: Mutex::new(Instant::now()),
            busy: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.open().insert(id, connection.clone());
        (id, connection)
    }

    fn remove(&self, id: u64) {
        self.open().remove(&id);
        self.ended.notify_waiters();
    }

    /// Closes the connection that has waited longest without a request in progress, if
    /// there is one.
    fn close_longest_idle(&self) {
        let open = self.open();
        let longest = open
            .values()
            .filter(|c| !c.busy.load(Ordering::Acquire))
            .min_by_key(|c| *lock(&c.idle_since));
        if let Some(connection) = longest {
            connection.close.notify_one();
        }
    }

    /// Closes every connection idle for longer than `limit`.
    fn close_idle(&self, limit: Duration) {
        for connection in self.open().values() {
            if !connection.busy.load(Ordering::Acquire)
                && lock(&connection.idle_since).elapsed() > limit
            {
                connection.close.notify_one();
            }
        }
    }

    fn busy(&self) -> usize {
        self.open()
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire))
            .count()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks its connection as working on a request until dropped.
pub struct InProgress(Option<Arc<Connection>>);

impl Drop for InProgress {
    fn drop(&mut self) {
        if let Some(connection) = &self.0 {
            *lock(&connection.idle_since) = Instant::now();
            connection.busy.store(false, Ordering::Release);
        }
    }
}

/// The connection a request came on, in its extensions.
#[derive(Clone)]
struct On(Arc<Connection>, Duration);

/// Reads a request's body (at most [`MAX_BODY`] bytes, within the body timeout) and marks
/// its connection busy until the returned guard is dropped; a refusal is the answer to give.
pub async fn read_request(
    request: Request,
) -> Result<(http::request::Parts, Bytes, InProgress), vk_api::Response> {
    let (parts, body) = request.into_parts();
    let Some(On(connection, limit)) = parts.extensions.get::<On>().cloned() else {
        // Not from [`serve`] (a test calling the router directly): no bounds to keep.
        return Ok((parts, read_capped(body).await?, InProgress(None)));
    };
    let body = tokio::time::timeout(limit, read_capped(body))
        .await
        .map_err(|_| {
            vk_api::Response::error(
                408,
                "body-timeout",
                &format!("the body did not arrive within {} ms", limit.as_millis()),
            )
        })??;
    let connection = Some(connection);
    if let Some(connection) = &connection {
        connection.busy.store(true, Ordering::Release);
    }
    Ok((parts, body, InProgress(connection)))
}

/// An oversized body is still read (and dropped) up to this size before the `413` goes
/// out: closing a connection with unread data resets it, and the client would see the
/// reset instead of the answer.
const DRAIN_LIMIT: usize = 16 << 20;

/// Reads a request body of at most [`MAX_BODY`] bytes; a refusal is the answer to give.
async fn read_capped(mut body: Body) -> Result<Bytes, vk_api::Response> {
    use http_body_util::BodyExt as _;
    let mut kept = Vec::new();
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| vk_api::Response::unreadable())?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(vk_api::Response::too_large());
    }
    Ok(Bytes::from(kept))
}

/// How many connections may be open: `wanted`, but below the file descriptor limit (whose
/// soft value is first raised as far as the hard one allows).
pub fn connection_cap(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let available = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let room = available.saturating_sub(RESERVED_FDS).max(available / 2);
    wanted
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// Serves `router` on `listener` within `bounds` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    bounds: Bounds,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let sweeper = {
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                connections.close_idle(bounds.request_timeout);
            }
        })
    };
    tokio::pin!(shutdown);
    loop {
        while connections.open().len() >= bounds.max_connections {
            let ended = connections.ended.notified();
            // When every connection is working on a request, none is closed: the next
            // client waits in the listen queue until one ends.
            connections.close_longest_idle();
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = &mut shutdown => return finish(&connections, sweeper).await,
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return finish(&connections, sweeper).await,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors or a connection reset before it was taken: make
                // room and try again shortly.
                connections.close_longest_idle();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        stream.set_nodelay(true).ok();
        let (id, connection) = connections.add();
        let on = On(connection.clone(), bounds.body_timeout);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(Peer(peer));
            request.extensions_mut().insert(on.clone());
            tower::ServiceExt::oneshot(router.clone(), request.map(Body::new))
        });
        let connections = connections.clone();
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(bounds.request_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = served => {}
                _ = connection.close.notified() => {}
            }
            connections.remove(id);
        });
    }
}

/// After Ctrl-C: requests in progress get [`SHUTDOWN_GRACE`] to finish.
async fn finish(
    connections: &Connections,
    sweeper: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    sweeper.abort();
    let started = Instant::now();
    while connections.busy() > 0 && started.elapsed() < SHUTDOWN_GRACE {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
