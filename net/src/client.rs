//! The client listener: the replica framing on its own port, TLS with the replica's link key
//! as the server's raw public key (clients pin it from the cluster file), no client key
//! (transactions carry their own Ed25519 signatures, checked by the runtime).
//!
//! Bounds: at most `connections_max` connections (more are closed at accept and counted),
//! and at most `in_flight_max` requests per connection handed to the runtime and not yet
//! answered; at that bound the listener stops reading that connection, so TCP pushes back on
//! the client instead of the replica buffering for it. Only `ClientRequest` frames are
//! accepted from clients; anything else closes that connection.

use crate::frame::{
    write_segments, Frame, FrameDecoder, FrameError, FrameKind, WriteBatch,
    CLIENT_FRAME_BODY_BYTES_MAX,
};
use crate::keys::LinkSecretKey;
use crate::metrics::{Counter, FRAME_ERROR_REASONS, HANDSHAKE_FAILURE_REASONS};
use crate::tls::{client_listener_config, handshake_failure_reason};
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpListener;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ClientListenerConfig {
    pub listen: SocketAddr,
    pub key: LinkSecretKey,
    pub connections_max: usize,
    pub in_flight_max: usize,
    pub body_bytes_max: u32,
    pub handshake_timeout: Duration,
    /// Requests waiting for the runtime, all connections together.
    pub inbound_max: usize,
}

impl ClientListenerConfig {
    pub fn new(listen: SocketAddr, key: LinkSecretKey) -> ClientListenerConfig {
        ClientListenerConfig {
            listen,
            key,
            connections_max: 1024,
            in_flight_max: 64,
            body_bytes_max: CLIENT_FRAME_BODY_BYTES_MAX,
            handshake_timeout: Duration::from_secs(5),
            inbound_max: 16 * 1024,
        }
    }
}

/// Identifies one client connection (never reused within a listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientConnId(pub u64);

/// A request and the connection to answer on.
#[derive(Debug)]
pub struct ClientRequest {
    pub conn: ClientConnId,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RespondError {
    #[error("client connection {0:?} is gone")]
    Gone(ClientConnId),
    #[error("client connection {0:?} has no request waiting for an answer")]
    NotInFlight(ClientConnId),
    #[error("response too large: {0}")]
    Frame(FrameError),
}

#[derive(Debug, Default)]
pub struct ClientMetrics {
    pub connections_open: Counter,
    pub connections_accepted: Counter,
    pub connections_rejected_limit: Counter,
    pub requests: Counter,
    pub responses: Counter,
    pub frame_errors: [Counter; FRAME_ERROR_REASONS.len()],
    pub handshake_failures: [Counter; HANDSHAKE_FAILURE_REASONS.len()],
}

impl ClientMetrics {
    pub fn frame_errors_for(&self, reason: &str) -> u64 {
        FRAME_ERROR_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.frame_errors[i].get())
    }
}

#[derive(Default)]
struct Wake {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Wake {
    fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[derive(Default)]
struct Conn {
    in_flight: Cell<usize>,
    responses: RefCell<VecDeque<Frame>>,
    writer: Wake,
    space: Wake,
}

struct Inner {
    config: ClientListenerConfig,
    conns: RefCell<HashMap<u64, Rc<Conn>>>,
    next_id: Cell<u64>,
    tx: LocalSender<ClientRequest>,
    metrics: Arc<ClientMetrics>,
    closed: Cell<bool>,
}

pub struct ClientListener {
    inner: Rc<Inner>,
    rx: LocalReceiver<ClientRequest>,
    task: Option<glommio::task::JoinHandle<()>>,
    local_addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientListenerError {
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("listening for clients on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl ClientListener {
    pub fn start(config: ClientListenerConfig) -> Result<ClientListener, ClientListenerError> {
        let tls = client_listener_config(&config.key)?;
        let listen_error = |e: glommio::GlommioError<()>| ClientListenerError::Listen {
            addr: config.listen,
            source: e.into(),
        };
        let listener =
            crate::listen::listen(config.listen).map_err(|source| ClientListenerError::Listen {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let (tx, rx) = local_channel::new_bounded(config.inbound_max);
        let inner = Rc::new(Inner {
            config,
            conns: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            tx,
            metrics: Arc::new(ClientMetrics::default()),
            closed: Cell::new(false),
        });
        let acceptor = futures_rustls::TlsAcceptor::from(tls);
        let task = glommio::spawn_local(accept_loop(inner.clone(), listener, acceptor)).detach();
        Ok(ClientListener {
            inner,
            rx,
            task: Some(task),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics(&self) -> Arc<ClientMetrics> {
        self.inner.metrics.clone()
    }

    pub async fn recv(&self) -> Option<ClientRequest> {
        self.rx.recv().await
    }

    /// Answers one request of `conn`; frees one in-flight slot.
    pub fn respond(&self, conn: ClientConnId, body: Bytes) -> Result<(), RespondError> {
        self.push(conn, body, true)
    }

    /// An answer that is not the last one to its request (e.g. a locally final receipt
    /// before the globally final one): sent, but the request keeps its in-flight slot, so
    /// the connection's bound still holds. Only for a request still in flight.
    pub fn notify(&self, conn: ClientConnId, body: Bytes) -> Result<(), RespondError> {
        self.push(conn, body, false)
    }

    fn push(&self, conn: ClientConnId, body: Bytes, last: bool) -> Result<(), RespondError> {
        crate::frame::check_body_len(body.len(), self.inner.config.body_bytes_max)
            .map_err(RespondError::Frame)?;
        let c = self
            .inner
            .conns
            .borrow()
            .get(&conn.0)
            .cloned()
            .ok_or(RespondError::Gone(conn))?;
        let n = c.in_flight.get();
        if n == 0 {
            return Err(RespondError::NotInFlight(conn));
        }
        if last {
            c.in_flight.set(n - 1);
            c.space.notify();
        }
        c.responses
            .borrow_mut()
            .push_back(Frame::new(FrameKind::ClientResponse, body));
        c.writer.notify();
        Ok(())
    }

    pub fn close(&mut self) {
        self.inner.closed.set(true);
        if let Some(t) = self.task.take() {
            t.cancel();
        }
    }
}

impl Drop for ClientListener {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop(
    inner: Rc<Inner>,
    listener: TcpListener,
    acceptor: futures_rustls::TlsAcceptor,
) {
    while !inner.closed.get() {
        let Ok(tcp) = listener.accept().await else {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let m = &inner.metrics;
        if m.connections_open.get() as usize >= inner.config.connections_max {
            m.connections_rejected_limit.inc();
            continue; // dropping the stream closes it
        }
        let _ = tcp.set_nodelay(true);
        m.connections_open.add(1);
        let id = inner.next_id.get();
        inner.next_id.set(id + 1);
        let inner2 = inner.clone();
        let acceptor = acceptor.clone();
        glommio::spawn_local(async move {
            serve(&inner2, id, acceptor, tcp).await;
            inner2.conns.borrow_mut().remove(&id);
            let open = &inner2.metrics.connections_open;
            open.set(open.get().saturating_sub(1));
        })
        .detach();
    }
}

async fn serve(
    inner: &Rc<Inner>,
    id: u64,
    acceptor: futures_rustls::TlsAcceptor,
    tcp: glommio::net::TcpStream,
) {
    let m = &inner.metrics;
    let hs = futures_lite::future::or(acceptor.accept(tcp), async {
        glommio::timer::sleep(inner.config.handshake_timeout).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await;
    let tls = match hs {
        Ok(t) => t,
        Err(e) => {
            let reason = handshake_failure_reason(&e);
            let i = HANDSHAKE_FAILURE_REASONS
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(HANDSHAKE_FAILURE_REASONS.len() - 1);
            m.handshake_failures[i].inc();
            return;
        }
    };
    m.connections_accepted.inc();
    let conn = Rc::new(Conn::default());
    inner.conns.borrow_mut().insert(id, conn.clone());
    let (r, w) = futures_lite::io::split(tls);
    let _ = futures_lite::future::or(
        read_requests(inner, id, &conn, r),
        write_responses(inner, &conn, w),
    )
    .await;
}

async fn read_requests<R: AsyncRead + Unpin>(
    inner: &Rc<Inner>,
    id: u64,
    conn: &Conn,
    mut r: R,
) -> std::io::Result<()> {
    let m = &inner.metrics;
    let mut dec = FrameDecoder::new(inner.config.body_bytes_max);
    let count = |e: &FrameError| {
        if let Some(i) = FRAME_ERROR_REASONS.iter().position(|x| *x == e.reason()) {
            m.frame_errors[i].inc();
        }
    };
    loop {
        loop {
            // At the in-flight bound, stop reading until the runtime answers.
            while conn.in_flight.get() >= inner.config.in_flight_max {
                conn.space.wait().await;
            }
            match dec.decode() {
                Ok(Some(f)) if f.kind == FrameKind::ClientRequest => {
                    m.requests.inc();
                    conn.in_flight.set(conn.in_flight.get() + 1);
                    let req = ClientRequest {
                        conn: ClientConnId(id),
                        body: f.body,
                    };
                    if inner.tx.send(req).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(Some(f)) => {
                    count(&FrameError::UnexpectedKind(f.kind));
                    return Ok(());
                }
                Ok(None) => break,
                Err(e) => {
                    count(&e);
                    return Ok(());
                }
            }
        }
        let buf = dec.read_buf();
        let n = r.read(buf).await?;
        dec.commit_read(n);
        if n == 0 {
            if let Err(e) = dec.finish() {
                count(&e);
            }
            return Ok(());
        }
    }
}

async fn write_responses<W: AsyncWrite + Unpin>(
    inner: &Rc<Inner>,
    conn: &Conn,
    mut w: W,
) -> std::io::Result<()> {
    let mut batch = WriteBatch::new();
    loop {
        while let Some(f) = conn.responses.borrow_mut().pop_front() {
            batch.push(&f);
        }
        if batch.is_empty() {
            conn.writer.wait().await;
            continue;
        }
        let n = batch.frames();
        write_segments(&mut w, &batch.take_segments()).await?;
        w.flush().await?;
        inner.metrics.responses.add(n);
    }
}
