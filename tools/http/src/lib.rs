//! The control plane's HTTP server, shared by the DORA dashboard (`ccbft dora serve`) and the
//! replicas' metrics and health endpoints: hyper (HTTP/1.1) on a current-thread tokio runtime
//! on one thread of its own, with blocking work on at most [`BLOCKING_THREADS_MAX`] more
//! threads, so it never takes more than that from the replicas' cores and never runs on the
//! consensus path. Every connection is a task: an idle or slow client holds only its own
//! task, until a timeout closes it.
//!
//! Limits ([`Limits`]): the request head must arrive within the header timeout (slowloris)
//! and be at most [`REQUEST_HEAD_BYTES_MAX`] bytes (431 beyond); a connection is dropped
//! [`RESPONSE_GRACE_MILLISECONDS`] after its request deadline, whatever it is doing; at most
//! `connections_max` connections are served at once (503 beyond). One request per
//! connection (no keep-alive), so a connection's deadline is its request's.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use hyper;
pub use tokio;

/// Largest request head (request line and headers), in bytes.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Most threads the server runs blocking work on (besides its own).
pub const BLOCKING_THREADS_MAX: usize = 2;
/// Time a response may take to write after the request deadline.
pub const RESPONSE_GRACE_MILLISECONDS: u64 = 2_000;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
pub const ACCEPT_BACKOFF_MILLISECONDS: u64 = 100;
/// Longest wait for blocking work still running when the server stops.
pub const SHUTDOWN_WAIT_SECONDS: u64 = 5;

pub type Reply = Response<Full<Bytes>>;
type BoxedReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
/// Answers one request, given its deadline.
pub type Handler = Arc<dyn Fn(Request<Incoming>, Instant) -> BoxedReply + Send + Sync>;

/// Wraps an async function as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    Arc::new(move |request, deadline| Box::pin(f(request, deadline)))
}

/// Connection limits of a server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The request head must be complete within this time of the connection's start.
    pub header_read_timeout: Duration,
    /// The whole request, body included, must be complete within this time.
    pub request_timeout: Duration,
    /// Most connections served at once.
    pub connections_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            connections_max: 64,
        }
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and serves `handler` on a thread named
    /// `name` until stopped or dropped.
    pub fn start(
        name: &str,
        addr: &str,
        limits: Limits,
        handler: Handler,
    ) -> std::io::Result<Server> {
        if limits.connections_max == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connections_max must be at least 1",
            ));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(BLOCKING_THREADS_MAX)
            .thread_name(format!("{name}-work"))
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let connections = Arc::new(Semaphore::new(limits.connections_max));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(accept_loop(listener, limits, connections, handler));
                    // Either a stop or the Server dropped.
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(SHUTDOWN_WAIT_SECONDS));
            })?;
        Ok(Server {
            addr: local,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Blocks until the server stops (it runs until stopped or the process ends).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting, ends the open connections and waits for the server thread.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    limits: Limits,
    connections: Arc<Semaphore>,
    handler: Handler,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MILLISECONDS)).await;
                continue;
            }
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(
                    stream,
                    limits.clone(),
                    handler.clone(),
                    permit,
                ));
            }
            // Best effort, never waiting on the client: the socket buffer takes it or not.
            Err(_) => {
                let _ = stream.try_write(BUSY_RESPONSE);
            }
        }
    }
}

const BUSY_RESPONSE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n";

async fn serve_connection(
    stream: tokio::net::TcpStream,
    limits: Limits,
    handler: Handler,
    _permit: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + limits.request_timeout;
    let service = hyper::service::service_fn(move |request| {
        let reply = handler(request, deadline);
        async move { Ok::<_, Infallible>(reply.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(REQUEST_HEAD_BYTES_MAX)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let grace = Duration::from_millis(RESPONSE_GRACE_MILLISECONDS);
    // Past the deadline the connection is dropped, whatever it is doing.
    let _ = tokio::time::timeout_at(deadline + grace, connection).await;
}

/// A response with the headers every control-plane answer carries.
pub fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A plain-text response, newline-terminated.
pub fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    reply(status, "text/plain; charset=utf-8", body)
}
