//! The dashboard's HTTP server, a control-plane component on the shared stack
//! ([`ccbft_http`]: hyper on a current-thread tokio runtime on one thread of its own, engine
//! work (reading the state directory, ingesting events) on at most
//! [`ccbft_http::BLOCKING_THREADS_MAX`] more threads, bounded connections and timeouts).
//!
//! Limits ([`ServerConfig`]): those of [`ccbft_http::Limits`]; the whole request, body
//! included, must arrive within the request timeout (408); a body larger than the limit is
//! refused with 413, before it is read when its length is declared.
//!
//! Routes: `GET /` (the page), `GET /api/state` (the same data as JSON), `GET /healthz`,
//! and `POST /api/events` (health events as JSON Lines, as `ccbft dora ingest` takes them;
//! answers the outcomes as JSON). Any method but GET and HEAD needs the bearer token
//! (`Authorization: Bearer ...`, [`crate::token`]): 401 without it, with a wrong one, or
//! when the server has no token (it then serves the pages only).

use crate::dashboard::render_dir;
use crate::state::{Engine, StateError};
use crate::token::Token;
use ccbft_http::{reply, text, Reply};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub use ccbft_http::REQUEST_HEAD_BYTES_MAX;

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
    /// State-changing requests one at a time (the engine's files are rewritten whole).
    writer: Mutex<()>,
}

/// A running dashboard server.
pub struct Server {
    pub addr: SocketAddr,
    inner: ccbft_http::Server,
}

impl Server {
    /// Serve `dir` on `addr` (port 0 picks a free port) with the default limits and no
    /// token (pages only).
    pub fn start(dir: &Path, addr: &str) -> std::io::Result<Server> {
        Server::start_with(dir, addr, ServerConfig::default())
    }

    /// Bind `addr` and serve `dir` on a thread of its own until stopped.
    pub fn start_with(dir: &Path, addr: &str, config: ServerConfig) -> std::io::Result<Server> {
        if config.body_bytes_max == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connections_max and body_bytes_max must be at least 1",
            ));
        }
        let limits = ccbft_http::Limits {
            header_read_timeout: config.header_read_timeout,
            request_timeout: config.request_timeout,
            connections_max: config.connections_max,
        };
        let context = Arc::new(Context {
            dir: dir.to_path_buf(),
            config,
            writer: Mutex::new(()),
        });
        let handler =
            ccbft_http::handler(move |request, deadline| route(request, context.clone(), deadline));
        let inner = ccbft_http::Server::start("dora-dashboard", addr, limits, handler)?;
        Ok(Server {
            addr: inner.addr,
            inner,
        })
    }

    /// Block until the server stops (it runs until stopped or the process ends).
    pub fn wait(self) {
        self.inner.wait();
    }

    /// Stop accepting, end the open connections and wait for the server thread.
    pub fn stop(self) {
        self.inner.stop();
    }
}

/// A reply that ends a request early (boxed: a response is large for an `Err`).
type Refusal = Box<Reply>;

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
