//! The dashboard's HTTP server, a control-plane component: hyper (HTTP/1.1) on a
//! current-thread tokio runtime on one thread of its own, with engine work (reading the
//! state directory, ingesting events) on at most [`BLOCKING_THREADS_MAX`] more threads, so
//! it never takes more than that from the replicas' cores. Every connection is a task: an
//! idle or slow client holds only its own task, until a timeout closes it.
//!
//! Limits ([`ServerConfig`]): the request head must arrive within the header timeout
//! (slowloris) and be at most [`REQUEST_HEAD_BYTES_MAX`] bytes (431 beyond); the whole
//! request, body included, must arrive within the request timeout (408); a body larger than
//! the limit is refused with 413, before it is read when its length is declared; at most
//! `connections_max` connections are served at once (503 beyond). One request per
//! connection (no keep-alive), so a connection's deadline is its request's.
//!
//! Routes: `GET /` (the page), `GET /api/state` (the same data as JSON), `GET /healthz`,
//! and `POST /api/events` (health events as JSON Lines, as `ccbft dora ingest` takes them;
//! answers the outcomes as JSON). Any method but GET and HEAD needs the bearer token
//! (`Authorization: Bearer ...`, [`crate::token`]): 401 without it, with a wrong one, or
//! when the server has no token (it then serves the pages only).

use crate::dashboard::render_dir;
use crate::state::{Engine, StateError};
use crate::token::Token;
use chrono::Utc;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Largest request head (request line and headers), in bytes.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Most threads the server runs engine work on (besides its own).
pub const BLOCKING_THREADS_MAX: usize = 2;
/// Time a response may take to write after the request deadline.
pub const RESPONSE_GRACE_MILLISECONDS: u64 = 2_000;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
pub const ACCEPT_BACKOFF_MILLISECONDS: u64 = 100;
/// Longest wait for engine work still running when the server stops.
pub const SHUTDOWN_WAIT_SECONDS: u64 = 5;

/// Limits and credentials of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The request head must be complete within this time of the connection's start.
    pub header_read_timeout: Duration,
    /// The whole request, body included, must be complete within this time.
    pub request_timeout: Duration,
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most connections served at once.
    pub connections_max: usize,
    /// The bearer token of state-changing requests; `None` refuses them all.
    pub token: Option<Token>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            body_bytes_max: 4 * 1024 * 1024,
            connections_max: 64,
            token: None,
        }
    }
}

/// What every connection task shares.
struct Context {
    dir: PathBuf,
    config: ServerConfig,
    connections: Arc<Semaphore>,
    /// State-changing requests one at a time (the engine's files are rewritten whole).
    writer: Mutex<()>,
}

/// A running dashboard server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serve `dir` on `addr` (port 0 picks a free port) with the default limits and no
    /// token (pages only).
    pub fn start(dir: &Path, addr: &str) -> std::io::Result<Server> {
        Server::start_with(dir, addr, ServerConfig::default())
    }

    /// Bind `addr` and serve `dir` on a thread of its own until stopped.
    pub fn start_with(dir: &Path, addr: &str, config: ServerConfig) -> std::io::Result<Server> {
        if config.connections_max == 0 || config.body_bytes_max == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connections_max and body_bytes_max must be at least 1",
            ));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(BLOCKING_THREADS_MAX)
            .thread_name("dora-dashboard-work")
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let context = Arc::new(Context {
            dir: dir.to_path_buf(),
            connections: Arc::new(Semaphore::new(config.connections_max)),
            config,
            writer: Mutex::new(()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dora-dashboard".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(accept_loop(listener, context));
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

    /// Block until the server stops (it runs until stopped or the process ends).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stop accepting, end the open connections and wait for the server thread.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, context: Arc<Context>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MILLISECONDS)).await;
                continue;
            }
        };
        match context.connections.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(stream, context.clone(), permit));
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
    context: Arc<Context>,
    _permit: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + context.config.request_timeout;
    let service_context = context.clone();
    let service = hyper::service::service_fn(move |request| {
        let context = service_context.clone();
        async move { Ok::<_, Infallible>(route(request, context, deadline).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(context.config.header_read_timeout)
        .max_header_size(REQUEST_HEAD_BYTES_MAX)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let grace = Duration::from_millis(RESPONSE_GRACE_MILLISECONDS);
    // Past the deadline the connection is dropped, whatever it is doing.
    let _ = tokio::time::timeout_at(deadline + grace, connection).await;
}

type Reply = Response<Full<Bytes>>;
/// A reply that ends a request early (boxed: a response is large for an `Err`).
type Refusal = Box<Reply>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
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

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    reply(status, "text/plain; charset=utf-8", body)
}

const ROUTES: [&str; 5] = ["/", "/index.html", "/api/state", "/healthz", "/api/events"];

async fn route(request: Request<Incoming>, context: Arc<Context>, deadline: Instant) -> Reply {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        if let Err(refused) = authorise(&request, context.config.token.as_ref()) {
            return *refused;
        }
    }
    let path = request.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/" | "/index.html") => page(context).await,
        (&Method::GET, "/api/state") => state_json(context).await,
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::POST, "/api/events") => ingest(request, context, deadline).await,
        (_, p) if ROUTES.contains(&p) => {
            let allow = if p == "/api/events" { "POST" } else { "GET" };
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, format!("only {allow} here"));
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Check the bearer token (RFC 6750 section 2.1; the scheme is case-insensitive).
fn authorise(request: &Request<Incoming>, token: Option<&Token>) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        let mut r = text(StatusCode::UNAUTHORIZED, why);
        r.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"ccbft-dora\""),
        );
        Box::new(r)
    };
    let Some(token) = token else {
        return Err(refuse(
            "this server has no token: state-changing requests are refused (start `ccbft dora serve` with a token file)",
        ));
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(|h| {
            let (scheme, rest) = h.split_at_checked(7)?;
            scheme
                .eq_ignore_ascii_case(b"bearer ")
                .then(|| rest.trim_ascii())
        });
    match presented {
        None => Err(refuse("missing bearer token (Authorization: Bearer ...)")),
        Some(t) if token.verifies(t) => Ok(()),
        Some(_) => Err(refuse("wrong bearer token")),
    }
}

/// Run engine work off the runtime thread; a panic in it is a 500, not a dead server.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

fn internal(reason: impl std::fmt::Display) -> Reply {
    text(StatusCode::INTERNAL_SERVER_ERROR, reason.to_string())
}

async fn page(context: Arc<Context>) -> Reply {
    let dir = context.dir.clone();
    match off_runtime(move || render_dir(&dir, Utc::now())).await {
        Some(Ok((html, _))) => reply(StatusCode::OK, "text/html; charset=utf-8", html),
        Some(Err(e)) => internal(e),
        None => internal("rendering the page failed"),
    }
}

async fn state_json(context: Arc<Context>) -> Reply {
    let dir = context.dir.clone();
    let work =
        move || render_dir(&dir, Utc::now()).map(|(_, state)| serde_json::to_vec_pretty(&state));
    match off_runtime(work).await {
        Some(Ok(Ok(json))) => reply(StatusCode::OK, "application/json", json),
        Some(Ok(Err(e))) => internal(e),
        Some(Err(e)) => internal(e),
        None => internal("collecting the state failed"),
    }
}

/// Read the body within the limit and the deadline.
async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, Reply> {
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    match tokio::time::timeout_at(deadline, collect).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "the request was not complete within its time limit",
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("reading the body: {e}"),
        )),
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

/// `POST /api/events`: a JSON Lines stream of health events, checked and ingested exactly
/// as `ccbft dora ingest` does (idempotent by event id, every change audited).
async fn ingest(request: Request<Incoming>, context: Arc<Context>, deadline: Instant) -> Reply {
    let body = match read_body(request, context.config.body_bytes_max, deadline).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let Ok(text_body) = String::from_utf8(body.to_vec()) else {
        return text(StatusCode::BAD_REQUEST, "the body is not UTF-8 text");
    };
    let work = move || -> Result<Vec<u8>, Refusal> {
        let events = crate::health::parse_stream(&text_body)
            .map_err(|e| text(StatusCode::BAD_REQUEST, format!("event stream: {e}")))?;
        let _one_writer = context
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut engine = Engine::open(&context.dir).map_err(internal)?;
        let outcomes = engine.ingest(&events).map_err(|e| match e {
            StateError::Event { .. } | StateError::Incident(_) => {
                text(StatusCode::BAD_REQUEST, e.to_string())
            }
            other => internal(other),
        })?;
        Ok(serde_json::to_vec_pretty(&outcomes).map_err(internal)?)
    };
    match off_runtime(work).await {
        Some(Ok(json)) => reply(StatusCode::OK, "application/json", json),
        Some(Err(refused)) => *refused,
        None => internal("ingesting the events failed"),
    }
}
