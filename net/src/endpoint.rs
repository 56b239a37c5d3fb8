//! A replica's transport endpoint on one glommio executor: one TLS link per peer (the lower
//! id dials), per-peer bounded send queues with two classes, reconnect with capped
//! exponential back-off and jitter, the shaper on the send path, pings for RTT.
//!
//! Everything here is `!Send` and lives on the executor that started it; the only shared
//! state is the metrics and the shaper control (atomics and a rarely taken lock).

use crate::frame::{
    check_body_len, write_segments, Frame, FrameDecoder, FrameError, FrameKind, SendClass,
    WriteBatch, FRAME_BODY_BYTES_MAX,
};
use crate::keys::LinkSecretKey;
use crate::metrics::{EndpointMetrics, LinkMetrics};
use crate::peers::{PeerEntry, PeerId, PeerTable};
use crate::shaper::{LinkShaper, ShaperControl, TimerWheel, Verdict, WheelSleep};
use crate::tls::{handshake_failure_reason, link_server_name, peer_link_key, LinkTls};
use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Bounds and timings of an endpoint. Every field is a limit a peer cannot raise.
#[derive(Clone, Debug)]
pub struct LinkLimits {
    /// Frames per class a peer's send queue holds (consensus, bulk).
    pub queue_frames_max: [usize; 2],
    /// Bytes per class a peer's send queue holds.
    pub queue_bytes_max: [usize; 2],
    /// Received frames waiting for the application, all peers together.
    pub inbound_frames_max: usize,
    /// Largest frame body on replica links.
    pub body_bytes_max: u32,
    /// Wire bytes gathered into one write.
    pub write_batch_bytes_max: usize,
    /// Frames the shaper holds in flight per link.
    pub shaper_in_flight_frames_max: usize,
    /// TCP connect plus TLS handshake.
    pub handshake_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Inbound handshakes in progress at once (more are closed at accept).
    pub handshakes_in_progress_max: usize,
}

impl Default for LinkLimits {
    fn default() -> LinkLimits {
        LinkLimits {
            queue_frames_max: [16 * 1024, 4 * 1024],
            queue_bytes_max: [64 << 20, 256 << 20],
            inbound_frames_max: 16 * 1024,
            body_bytes_max: FRAME_BODY_BYTES_MAX,
            write_batch_bytes_max: 256 * 1024,
            shaper_in_flight_frames_max: 64 * 1024,
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(5),
            handshakes_in_progress_max: 64,
        }
    }
}

/// Configuration of one replica's endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub me: PeerId,
    pub key: LinkSecretKey,
    pub peers: PeerTable,
    /// Where to listen; usually this replica's address in the table.
    pub listen: SocketAddr,
    pub limits: LinkLimits,
    /// Shapes of the outgoing links (from the latency matrix; changed at run time).
    pub shaper: Option<Arc<ShaperControl>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("replica {0} is not in the peer table")]
    NotInTable(PeerId),
    #[error("the peer table's key for {0} is not this replica's link key")]
    KeyMismatch(PeerId),
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why a frame was not queued. Each is counted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no link to {0}")]
    UnknownPeer(PeerId),
    #[error("frame too large: {0}")]
    Frame(FrameError),
    #[error("send queue to {peer} full for class {class:?}; frame dropped")]
    QueueFull { peer: PeerId, class: SendClass },
    #[error("the endpoint is closed")]
    Closed,
}

/// A one-shot-per-wait notification between tasks of one executor.
#[derive(Default)]
struct Signal {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
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

struct PeerState {
    entry: PeerEntry,
    queues: RefCell<[VecDeque<Frame>; 2]>,
    queue_bytes: Cell<[usize; 2]>,
    /// Wakes the current writer when a frame is queued.
    ready: Signal,
    /// Wakes a producer waiting in `send_wait` when a frame leaves the queue.
    space: Signal,
    /// Ends the current connection (replaced by a newer one, or the endpoint closes).
    kill: RefCell<Rc<Signal>>,
    generation: Cell<u64>,
    connected: Cell<bool>,
}

struct Inner {
    me: PeerId,
    tls: LinkTls,
    limits: LinkLimits,
    peers: Vec<PeerState>,
    metrics: Arc<EndpointMetrics>,
    inbound: LocalSender<(PeerId, Frame)>,
    wheel: Rc<TimerWheel>,
    shaper: Arc<ShaperControl>,
    epoch: Instant,
    closed: Cell<bool>,
    handshakes: Cell<usize>,
    rng: Cell<u64>,
}

/// One replica's transport. Drop or [`Endpoint::close`] ends every task and link.
pub struct Endpoint {
    inner: Rc<Inner>,
    inbound: LocalReceiver<(PeerId, Frame)>,
    tasks: Vec<glommio::task::JoinHandle<()>>,
    local_addr: SocketAddr,
}

impl Inner {
    fn peer_index(&self, id: PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p.entry.id == id)
    }

    fn link_metrics(&self, i: usize) -> &LinkMetrics {
        &self.metrics.links[i].1
    }

    fn next_random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }

    fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn has_space(&self, i: usize, class: SendClass, wire_len: usize) -> bool {
        let c = class as usize;
        let p = &self.peers[i];
        p.queues.borrow()[c].len() < self.limits.queue_frames_max[c]
            && p.queue_bytes.get()[c] + wire_len <= self.limits.queue_bytes_max[c]
    }

    fn enqueue(&self, i: usize, frame: Frame) -> Result<(), SendError> {
        let p = &self.peers[i];
        let class = frame.kind.class();
        let c = class as usize;
        let m = self.link_metrics(i);
        let mut bytes = p.queue_bytes.get();
        let mut queues = p.queues.borrow_mut();
        if queues[c].len() >= self.limits.queue_frames_max[c]
            || bytes[c] + frame.wire_len() > self.limits.queue_bytes_max[c]
        {
            m.drops[c].inc();
            return Err(SendError::QueueFull {
                peer: p.entry.id,
                class,
            });
        }
        bytes[c] += frame.wire_len();
        p.queue_bytes.set(bytes);
        queues[c].push_back(frame);
        m.queue_depth[c].set(queues[c].len() as u64);
        drop(queues);
        p.ready.notify();
        Ok(())
    }

    /// Takes the next frame, consensus class first.
    fn dequeue(&self, i: usize) -> Option<Frame> {
        let p = &self.peers[i];
        let mut queues = p.queues.borrow_mut();
        let c = if !queues[0].is_empty() {
            0
        } else if !queues[1].is_empty() {
            1
        } else {
            return None;
        };
        let f = queues[c].pop_front()?;
        let mut bytes = p.queue_bytes.get();
        bytes[c] -= f.wire_len();
        p.queue_bytes.set(bytes);
        self.link_metrics(i).queue_depth[c].set(queues[c].len() as u64);
        drop(queues);
        p.space.notify();
        Some(f)
    }
}

impl Endpoint {
    /// Binds the listener and starts the accept loop, one dialer per higher-id peer and the
    /// shaper's timer wheel, all as tasks on the current glommio executor.
    pub fn start(config: EndpointConfig) -> Result<Endpoint, EndpointError> {
        let me = config.me;
        let own = config.peers.get(me).ok_or(EndpointError::NotInTable(me))?;
        if own.link_key != config.key.public_key() {
            return Err(EndpointError::KeyMismatch(me));
        }
        let table = Arc::new(config.peers.clone());
        let tls = LinkTls::new(me, config.key.clone(), table.clone())?;
        let others: Vec<PeerEntry> = table.iter().filter(|e| e.id != me).cloned().collect();
        let shaper = config.shaper.clone().unwrap_or_else(|| {
            ShaperControl::new(&others.iter().map(|e| e.id.0).collect::<Vec<_>>())
        });
        let metrics = Arc::new(EndpointMetrics::new(others.iter().map(|e| e.id)));
        let (tx, rx) = local_channel::new_bounded(config.limits.inbound_frames_max);
        let listener = crate::listen::listen(config.listen).map_err(|e| EndpointError::Listen {
            addr: config.listen,
            source: e,
        })?;
        let local_addr = listener.local_addr().map_err(|e| EndpointError::Listen {
            addr: config.listen,
            source: e.into(),
        })?;
        let seed = u64::from(me.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ 0xdead_beef_1234_5678
            ^ Instant::now().elapsed().as_nanos() as u64
            ^ (std::process::id() as u64) << 32;
        let inner = Rc::new(Inner {
            me,
            tls,
            limits: config.limits.clone(),
            peers: others
                .into_iter()
                .map(|entry| PeerState {
                    entry,
                    queues: RefCell::new([VecDeque::new(), VecDeque::new()]),
                    queue_bytes: Cell::new([0, 0]),
                    ready: Signal::default(),
                    space: Signal::default(),
                    kill: RefCell::new(Rc::new(Signal::default())),
                    generation: Cell::new(0),
                    connected: Cell::new(false),
                })
                .collect(),
            metrics,
            inbound: tx,
            wheel: TimerWheel::new(),
            shaper,
            epoch: Instant::now(),
            closed: Cell::new(false),
            handshakes: Cell::new(0),
            rng: Cell::new(seed | 1),
        });
        let mut tasks = Vec::new();
        tasks.push(glommio::spawn_local(inner.wheel.clone().drive()).detach());
        tasks.push(glommio::spawn_local(accept_loop(inner.clone(), listener)).detach());
        for i in 0..inner.peers.len() {
            if inner.peers[i].entry.id > me {
                tasks.push(glommio::spawn_local(dial_loop(inner.clone(), i)).detach());
            }
        }
        Ok(Endpoint {
            inner,
            inbound: rx,
            tasks,
            local_addr,
        })
    }

    pub fn me(&self) -> PeerId {
        self.inner.me
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues a frame for `peer`. Never blocks: a full class queue drops the frame, counts
    /// it, and says so.
    pub fn send(&self, peer: PeerId, frame: Frame) -> Result<(), SendError> {
        if self.inner.closed.get() {
            return Err(SendError::Closed);
        }
        let i = self
            .inner
            .peer_index(peer)
            .ok_or(SendError::UnknownPeer(peer))?;
        check_body_len(frame.body.len(), self.inner.limits.body_bytes_max)
            .map_err(SendError::Frame)?;
        if matches!(
            frame.kind,
            FrameKind::ClientRequest | FrameKind::ClientResponse
        ) {
            return Err(SendError::Frame(FrameError::UnexpectedKind(frame.kind)));
        }
        self.inner.enqueue(i, frame)
    }

    /// Queues a frame for `peer`, waiting for queue space instead of dropping (for bulk
    /// producers such as state transfer that must not lose data). One waiting producer per
    /// peer: a second concurrent waiter may be woken late.
    pub async fn send_wait(&self, peer: PeerId, frame: Frame) -> Result<(), SendError> {
        let i = self
            .inner
            .peer_index(peer)
            .ok_or(SendError::UnknownPeer(peer))?;
        while !self
            .inner
            .has_space(i, frame.kind.class(), frame.wire_len())
        {
            if self.inner.closed.get() {
                return Err(SendError::Closed);
            }
            self.inner.peers[i].space.wait().await;
        }
        self.send(peer, frame)
    }

    /// Frames waiting in the send queue to `peer` (consensus, bulk).
    pub fn queued(&self, peer: PeerId) -> Option<[usize; 2]> {
        let i = self.inner.peer_index(peer)?;
        let q = self.inner.peers[i].queues.borrow();
        Some([q[0].len(), q[1].len()])
    }

    /// Sends a ping; the pong updates the link's RTT metrics.
    pub fn ping(&self, peer: PeerId) -> Result<(), SendError> {
        let body = Bytes::copy_from_slice(&self.inner.now_micros().to_le_bytes());
        self.send(peer, Frame::new(FrameKind::Ping, body))
    }

    /// The next received frame and the authenticated peer that sent it.
    pub async fn recv(&self) -> Option<(PeerId, Frame)> {
        self.inbound.recv().await
    }

    /// Whether a link to `peer` is up.
    pub fn is_connected(&self, peer: PeerId) -> bool {
        self.inner
            .peer_index(peer)
            .is_some_and(|i| self.inner.peers[i].connected.get())
    }

    pub fn metrics(&self) -> Arc<EndpointMetrics> {
        self.inner.metrics.clone()
    }

    pub fn shaper(&self) -> Arc<ShaperControl> {
        self.inner.shaper.clone()
    }

    /// Closes every link and stops every task.
    pub fn close(&mut self) {
        self.inner.closed.set(true);
        for p in &self.inner.peers {
            p.kill.borrow().notify();
        }
        for t in self.tasks.drain(..) {
            t.cancel();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.close();
    }
}

async fn with_timeout<T>(
    d: Duration,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    futures_lite::future::or(f, async {
        glommio::timer::sleep(d).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await
}

async fn dial_loop(inner: Rc<Inner>, i: usize) {
    let entry = inner.peers[i].entry.clone();
    let Ok(config) = inner.tls.client_config(entry.link_key) else {
        tracing::error!(peer = %entry.id, "no TLS client configuration; not dialing");
        return;
    };
    let connector = futures_rustls::TlsConnector::from(config);
    let mut backoff = inner.limits.backoff_min;
    let mut ever_connected = false;
    while !inner.closed.get() {
        let attempt = async {
            let tcp = TcpStream::connect(entry.addr)
                .await
                .map_err(std::io::Error::from)?;
            let _ = tcp.set_nodelay(true);
            connector.connect(link_server_name(), tcp).await
        };
        match with_timeout(inner.limits.handshake_timeout, attempt).await {
            Ok(tls) => {
                let presented = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(peer_link_key);
                if presented != Some(entry.link_key) {
                    // The verifier already pinned the key; this is a second check.
                    inner.metrics.handshake_failure("wrong_key");
                } else {
                    backoff = inner.limits.backoff_min;
                    let m = inner.link_metrics(i);
                    m.connects.inc();
                    if ever_connected {
                        m.reconnects.inc();
                    }
                    ever_connected = true;
                    run_link(&inner, i, tls).await;
                }
            }
            Err(e) => {
                // Connection refused is a peer that is down, not a failed handshake.
                if e.kind() != std::io::ErrorKind::ConnectionRefused {
                    let reason = handshake_failure_reason(&e);
                    tracing::debug!(peer = %entry.id, reason, error = %e, "dial failed");
                    inner.metrics.handshake_failure(reason);
                }
            }
        }
        if inner.closed.get() {
            break;
        }
        // Capped exponential back-off with jitter in [backoff/2, backoff].
        let half = backoff / 2;
        let jitter = Duration::from_nanos(inner.next_random() % (half.as_nanos() as u64 + 1));
        glommio::timer::sleep(half + jitter).await;
        backoff = (backoff * 2).min(inner.limits.backoff_max);
    }
}

async fn accept_loop(inner: Rc<Inner>, listener: TcpListener) {
    let acceptor = futures_rustls::TlsAcceptor::from(inner.tls.server_config());
    while !inner.closed.get() {
        let tcp = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if inner.handshakes.get() >= inner.limits.handshakes_in_progress_max {
            inner.metrics.handshake_failure("io");
            continue; // dropped: closes the socket
        }
        let _ = tcp.set_nodelay(true);
        inner.handshakes.set(inner.handshakes.get() + 1);
        let inner2 = inner.clone();
        let acceptor = acceptor.clone();
        glommio::spawn_local(async move {
            let hs = with_timeout(inner2.limits.handshake_timeout, acceptor.accept(tcp)).await;
            inner2.handshakes.set(inner2.handshakes.get() - 1);
            let tls = match hs {
                Ok(t) => t,
                Err(e) => {
                    let reason = handshake_failure_reason(&e);
                    tracing::debug!(reason, error = %e, "inbound handshake failed");
                    inner2.metrics.handshake_failure(reason);
                    return;
                }
            };
            let key = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(peer_link_key);
            // The authenticated key decides who this is; nothing the peer sends later can.
            let Some(i) = key
                .and_then(|k| inner2.tls.table().by_key(&k).map(|e| e.id))
                .and_then(|id| inner2.peer_index(id))
                .filter(|&i| inner2.peers[i].entry.id < inner2.me)
            else {
                inner2.metrics.handshake_failure("unexpected_peer");
                return;
            };
            inner2.metrics.accepted.inc();
            let m = inner2.link_metrics(i);
            if m.connects.get() > 0 {
                m.reconnects.inc();
            }
            m.connects.inc();
            run_link(&inner2, i, tls).await;
        })
        .detach();
    }
}

/// Runs one authenticated connection until it fails, is replaced, or the endpoint closes.
async fn run_link<S>(inner: &Rc<Inner>, i: usize, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let p = &inner.peers[i];
    // A newer connection replaces an older one: tell the old one to stop.
    p.kill.borrow().notify();
    let kill = Rc::new(Signal::default());
    *p.kill.borrow_mut() = kill.clone();
    let generation = p.generation.get() + 1;
    p.generation.set(generation);
    p.connected.set(true);
    let (reader, writer) = futures_lite::io::split(stream);
    let outcome = futures_lite::future::or(
        futures_lite::future::or(read_loop(inner, i, reader), write_loop(inner, i, writer)),
        async {
            kill.wait().await;
            Ok(())
        },
    )
    .await;
    if let Err(e) = &outcome {
        tracing::debug!(peer = %p.entry.id, error = %e, "link closed");
    }
    if p.generation.get() == generation {
        p.connected.set(false);
    }
}

#[derive(Debug)]
enum LinkEnd {
    Io(std::io::Error),
    Frame(FrameError),
    Closed,
}

impl std::fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkEnd::Io(e) => write!(f, "io: {e}"),
            LinkEnd::Frame(e) => write!(f, "frame: {e}"),
            LinkEnd::Closed => write!(f, "closed"),
        }
    }
}

async fn read_loop<R>(inner: &Rc<Inner>, i: usize, mut r: R) -> Result<(), LinkEnd>
where
    R: AsyncRead + Unpin,
{
    let m = inner.link_metrics(i);
    let peer = inner.peers[i].entry.id;
    let mut dec = FrameDecoder::new(inner.limits.body_bytes_max);
    loop {
        loop {
            let frame = match dec.decode() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    m.frame_error(&e);
                    return Err(LinkEnd::Frame(e));
                }
            };
            m.frames_in.inc();
            m.bytes_in.add(frame.wire_len() as u64);
            match frame.kind {
                FrameKind::Ping => {
                    // A full queue drops the pong (counted); the peer pings again.
                    let _ = inner.enqueue(i, Frame::new(FrameKind::Pong, frame.body));
                }
                FrameKind::Pong => {
                    if let Ok(b) = <[u8; 8]>::try_from(&frame.body[..]) {
                        let sent = u64::from_le_bytes(b);
                        let now = inner.now_micros();
                        if sent <= now {
                            m.record_rtt(now - sent);
                        }
                    }
                }
                FrameKind::ClientRequest | FrameKind::ClientResponse => {
                    let e = FrameError::UnexpectedKind(frame.kind);
                    m.frame_error(&e);
                    return Err(LinkEnd::Frame(e));
                }
                FrameKind::Consensus | FrameKind::Bulk => {
                    if inner.inbound.send((peer, frame)).await.is_err() {
                        return Err(LinkEnd::Closed);
                    }
                }
            }
        }
        let buf = dec.read_buf();
        let n = match r.read(buf).await {
            Ok(n) => n,
            Err(e) => {
                // A peer that cuts the connection inside a frame sent a truncated frame,
                // whether or not it closed TLS cleanly.
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    if let Err(fe) = dec.finish() {
                        m.frame_error(&fe);
                        return Err(LinkEnd::Frame(fe));
                    }
                }
                return Err(LinkEnd::Io(e));
            }
        };
        dec.commit_read(n);
        if n == 0 {
            return match dec.finish() {
                Ok(()) => Err(LinkEnd::Closed),
                Err(e) => {
                    m.frame_error(&e);
                    Err(LinkEnd::Frame(e))
                }
            };
        }
    }
}

async fn write_loop<W>(inner: &Rc<Inner>, i: usize, mut w: W) -> Result<(), LinkEnd>
where
    W: AsyncWrite + Unpin,
{
    let m = inner.link_metrics(i);
    let p = &inner.peers[i];
    let mut shaper = LinkShaper::new(inner.shaper.clone(), p.entry.id.0, inner.next_random());
    let mut in_flight: VecDeque<(Instant, Frame)> = VecDeque::new();
    let mut batch = WriteBatch::new();
    let mut sleep: Option<(Instant, WheelSleep)> = None;
    let result = loop {
        shaper.refresh();
        let now = Instant::now();
        // Move frames from the queue through the shaper.
        while batch.bytes() < inner.limits.write_batch_bytes_max as u64 {
            if shaper.is_identity() && in_flight.is_empty() {
                match inner.dequeue(i) {
                    Some(f) => batch.push(&f),
                    None => break,
                }
                continue;
            }
            if shaper.ready_at() > now
                || in_flight.len() >= inner.limits.shaper_in_flight_frames_max
            {
                break;
            }
            let Some(f) = inner.dequeue(i) else { break };
            match shaper.admit(now, f.wire_len()) {
                Verdict::Deliver(at) => in_flight.push_back((at, f)),
                Verdict::Lost => m.shaper_lost.inc(),
                Verdict::Cut => m.shaper_cut.inc(),
            }
        }
        while batch.bytes() < inner.limits.write_batch_bytes_max as u64 {
            match in_flight.front() {
                Some((at, _)) if *at <= now => {
                    let (_, f) = in_flight.pop_front().expect("front exists");
                    batch.push(&f);
                }
                _ => break,
            }
        }
        if !batch.is_empty() {
            let frames = batch.frames();
            let bytes = batch.bytes();
            let segments = batch.take_segments();
            // A batch whose write fails may be partly delivered; count all of it as lost
            // (consensus retransmits by protocol; nothing is dropped silently).
            if let Err(e) = write_segments(&mut w, &segments).await {
                m.lost_on_disconnect.add(frames);
                break Err(LinkEnd::Io(e));
            }
            if let Err(e) = w.flush().await {
                m.lost_on_disconnect.add(frames);
                break Err(LinkEnd::Io(e));
            }
            m.frames_out.add(frames);
            m.bytes_out.add(bytes);
            continue;
        }
        // Nothing to write now: wait for a new frame or the next shaper deadline.
        let next = match (
            in_flight.front(),
            inner.peers[i].queues.borrow()[0].is_empty()
                && inner.peers[i].queues.borrow()[1].is_empty(),
        ) {
            (Some((at, _)), _) => Some(*at),
            (None, false) => Some(shaper.ready_at()),
            (None, true) => None,
        };
        match next {
            Some(at) => {
                if sleep.as_ref().is_none_or(|(d, _)| *d != at) {
                    sleep = Some((at, inner.wheel.sleep_until(at)));
                }
                let (_, s) = sleep.as_mut().expect("set above");
                futures_lite::future::or(p.ready.wait(), s).await;
            }
            None => p.ready.wait().await,
        }
    };
    let lost = in_flight.len() as u64;
    m.lost_on_disconnect.add(lost);
    result
}
