//! Link shaper: WAN emulation and fault injection on the send path.
//!
//! Each directed link (this replica to one peer) has a [`LinkShape`]: one-way delay, jitter,
//! loss, a bandwidth cap and a cut. Shapes start from a latency matrix and change at run time
//! through [`ShaperControl`], which the control-plane thread may hold: a change is a locked
//! write plus a version bump, and the send path only reads the version (one relaxed atomic
//! load per write batch) until it changes.
//!
//! The model of one link: frames leave the send queue no faster than the bandwidth cap
//! allows, travel for `delay + U(0, jitter)`, and are delivered in order (as over the TCP
//! connection they ride on: a frame never overtakes the one before it). Loss drops a frame at
//! the sender with the configured probability; a cut drops every frame. Both are counted.
//!
//! Timers: every delayed frame of every link waits on one [`TimerWheel`] per executor, driven
//! by one task; no thread per link.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Longest one-way delay or jitter a shape may configure.
pub const SHAPE_DELAY_MAX: Duration = Duration::from_secs(10);
/// Parts per million: the unit of loss.
pub const LOSS_PPM_MAX: u32 = 1_000_000;

/// How one directed link behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkShape {
    pub delay: Duration,
    /// Each frame gets an extra delay drawn uniformly from `[0, jitter]`.
    pub jitter: Duration,
    /// Probability of dropping a frame, in parts per million.
    pub loss_ppm: u32,
    /// Bytes per second the link carries at most; `None` is unlimited.
    pub bandwidth_bytes_per_s: Option<u64>,
    /// Drop everything (a partition of this direction).
    pub cut: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("delay or jitter above {SHAPE_DELAY_MAX:?}")]
    DelayTooLarge,
    #[error("loss above {LOSS_PPM_MAX} ppm")]
    LossTooLarge,
    #[error("bandwidth cap of 0 bytes per second (use cut)")]
    ZeroBandwidth,
    #[error("no link from this replica to peer {0}")]
    UnknownPeer(u32),
    #[error("latency matrix is {rows}x?, expected {n}x{n}")]
    MatrixShape { rows: usize, n: usize },
}

impl LinkShape {
    /// A link with this one-way delay and nothing else.
    pub fn delay(delay: Duration) -> LinkShape {
        LinkShape {
            delay,
            ..LinkShape::default()
        }
    }

    pub fn validate(&self) -> Result<(), ShapeError> {
        if self.delay > SHAPE_DELAY_MAX || self.jitter > SHAPE_DELAY_MAX {
            return Err(ShapeError::DelayTooLarge);
        }
        if self.loss_ppm > LOSS_PPM_MAX {
            return Err(ShapeError::LossTooLarge);
        }
        if self.bandwidth_bytes_per_s == Some(0) {
            return Err(ShapeError::ZeroBandwidth);
        }
        Ok(())
    }

    /// Whether this shape changes nothing (the send path then skips the shaper).
    pub fn is_identity(&self) -> bool {
        *self == LinkShape::default()
    }
}

/// Run-time control of the shapes of one replica's outgoing links. `Send + Sync`.
#[derive(Debug)]
pub struct ShaperControl {
    peers: Vec<u32>,
    shapes: Mutex<Vec<LinkShape>>,
    versions: Vec<AtomicU64>,
}

impl ShaperControl {
    /// All links unshaped.
    pub fn new(peers: &[u32]) -> Arc<ShaperControl> {
        Arc::new(ShaperControl {
            peers: peers.to_vec(),
            shapes: Mutex::new(vec![LinkShape::default(); peers.len()]),
            versions: peers.iter().map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Shapes from a row of a latency matrix: `row[j]` is the one-way delay from this
    /// replica to replica `j` (ids are row indices); `me` is skipped.
    pub fn from_latency_row(
        me: u32,
        row: &[Duration],
        jitter: Duration,
    ) -> Result<Arc<ShaperControl>, ShapeError> {
        let peers: Vec<u32> = (0..row.len() as u32).filter(|&j| j != me).collect();
        let control = ShaperControl::new(&peers);
        for &j in &peers {
            control.set(
                j,
                LinkShape {
                    delay: row[j as usize],
                    jitter,
                    ..LinkShape::default()
                },
            )?;
        }
        Ok(control)
    }

    /// Row `me` of an n x n latency matrix.
    pub fn from_latency_matrix(
        me: u32,
        matrix: &[Vec<Duration>],
        jitter: Duration,
    ) -> Result<Arc<ShaperControl>, ShapeError> {
        let n = matrix.len();
        if matrix.iter().any(|r| r.len() != n) || me as usize >= n {
            return Err(ShapeError::MatrixShape { rows: n, n });
        }
        ShaperControl::from_latency_row(me, &matrix[me as usize], jitter)
    }

    fn index(&self, peer: u32) -> Result<usize, ShapeError> {
        self.peers
            .iter()
            .position(|&p| p == peer)
            .ok_or(ShapeError::UnknownPeer(peer))
    }

    /// Changes the shape of the link to `peer`; takes effect from the next frame.
    pub fn set(&self, peer: u32, shape: LinkShape) -> Result<(), ShapeError> {
        shape.validate()?;
        let i = self.index(peer)?;
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        shapes[i] = shape;
        self.versions[i].fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub fn get(&self, peer: u32) -> Result<LinkShape, ShapeError> {
        let i = self.index(peer)?;
        let shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(shapes[i])
    }

    /// Cuts or heals the link to `peer`, keeping the rest of its shape.
    pub fn set_cut(&self, peer: u32, cut: bool) -> Result<(), ShapeError> {
        let mut s = self.get(peer)?;
        s.cut = cut;
        self.set(peer, s)
    }

    fn version(&self, peer: u32) -> Option<u64> {
        let i = self.index(peer).ok()?;
        Some(self.versions[i].load(Ordering::Acquire))
    }
}

/// What the shaper decided for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it at this instant (or now, if it has passed).
    Deliver(Instant),
    /// Dropped by the configured loss.
    Lost,
    /// Dropped because the link is cut.
    Cut,
}

/// The shaper state of one directed link, owned by that link's writer.
#[derive(Debug)]
pub struct LinkShaper {
    control: Arc<ShaperControl>,
    peer: u32,
    version: u64,
    shape: LinkShape,
    /// When the bandwidth cap lets the next frame leave.
    link_free_at: Instant,
    /// Release time of the previous frame (deliveries stay in order).
    last_release: Instant,
    rng: u64,
}

impl LinkShaper {
    pub fn new(control: Arc<ShaperControl>, peer: u32, seed: u64) -> LinkShaper {
        let now = Instant::now();
        let mut s = LinkShaper {
            shape: LinkShape::default(),
            version: u64::MAX,
            control,
            peer,
            link_free_at: now,
            last_release: now,
            rng: seed | 1,
        };
        s.refresh();
        s
    }

    /// Picks up a changed shape (one atomic load when nothing changed).
    pub fn refresh(&mut self) {
        let Some(v) = self.control.version(self.peer) else {
            return;
        };
        if v != self.version {
            self.version = v;
            self.shape = self.control.get(self.peer).unwrap_or_default();
        }
    }

    pub fn shape(&self) -> &LinkShape {
        &self.shape
    }

    pub fn is_identity(&self) -> bool {
        self.shape.is_identity()
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: statistics, not secrets.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The instant from which the bandwidth cap lets the next frame leave the queue.
    pub fn ready_at(&self) -> Instant {
        self.link_free_at
    }

    /// Decides the fate of one frame of `wire_len` bytes leaving the queue at `now`.
    pub fn admit(&mut self, now: Instant, wire_len: usize) -> Verdict {
        if self.shape.cut {
            return Verdict::Cut;
        }
        if self.shape.loss_ppm > 0 && (self.next_u64() % 1_000_000) < u64::from(self.shape.loss_ppm)
        {
            return Verdict::Lost;
        }
        let start = self.link_free_at.max(now);
        let sent = match self.shape.bandwidth_bytes_per_s {
            Some(bw) => {
                let nanos = (wire_len as u128 * 1_000_000_000) / u128::from(bw);
                start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX / 2))
            }
            None => start,
        };
        self.link_free_at = sent;
        let jitter = if self.shape.jitter.is_zero() {
            Duration::ZERO
        } else {
            let j = self.shape.jitter.as_nanos() as u64;
            Duration::from_nanos(self.next_u64() % (j + 1))
        };
        let release = (sent + self.shape.delay + jitter).max(self.last_release);
        self.last_release = release;
        Verdict::Deliver(release)
    }
}

/// Resolution of the timer wheel.
pub const WHEEL_TICK: Duration = Duration::from_micros(10);
/// Slots of the wheel (a power of two); deadlines further out wait for later rounds.
pub const WHEEL_SLOTS: usize = 4096;
const _: () = assert!(WHEEL_SLOTS.is_power_of_two());

struct SleepState {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

struct WheelEntry {
    deadline: Instant,
    state: Rc<SleepState>,
}

/// A hashed timer wheel: entries hashed by deadline tick, one driver task that sleeps until
/// the earliest deadline and wakes everything due.
pub struct TimerWheel {
    epoch: Instant,
    slots: RefCell<Vec<Vec<WheelEntry>>>,
    entries: Cell<usize>,
    earliest: Cell<Option<Instant>>,
    driver: RefCell<Option<Waker>>,
    /// Set when an entry earlier than the driver's sleep arrives.
    rearm: Cell<bool>,
}

impl std::fmt::Debug for TimerWheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TimerWheel({} entries)", self.entries.get())
    }
}

impl TimerWheel {
    pub fn new() -> Rc<TimerWheel> {
        Rc::new(TimerWheel {
            epoch: Instant::now(),
            slots: RefCell::new((0..WHEEL_SLOTS).map(|_| Vec::new()).collect()),
            entries: Cell::new(0),
            earliest: Cell::new(None),
            driver: RefCell::new(None),
            rearm: Cell::new(false),
        })
    }

    fn slot(&self, t: Instant) -> usize {
        let tick = t.saturating_duration_since(self.epoch).as_nanos() / WHEEL_TICK.as_nanos();
        (tick as usize) & (WHEEL_SLOTS - 1)
    }

    fn insert(&self, deadline: Instant, state: Rc<SleepState>) {
        let slot = self.slot(deadline);
        self.slots.borrow_mut()[slot].push(WheelEntry { deadline, state });
        self.entries.set(self.entries.get() + 1);
        if self.earliest.get().is_none_or(|e| deadline < e) {
            self.earliest.set(Some(deadline));
            self.rearm.set(true);
            if let Some(w) = self.driver.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Wakes every entry due at `now`; returns how many fired.
    pub fn fire(&self, now: Instant) -> usize {
        let mut fired = 0;
        let mut earliest: Option<Instant> = None;
        let mut slots = self.slots.borrow_mut();
        // Scan from the earliest deadline's slot up to now (at most one full turn), then
        // find the new earliest among what is left.
        let from = self.earliest.get().unwrap_or(now);
        let turns =
            (now.saturating_duration_since(from).as_nanos() / WHEEL_TICK.as_nanos()) as usize + 1;
        let start = self.slot(from);
        for k in 0..turns.min(WHEEL_SLOTS) {
            let slot = &mut slots[(start + k) & (WHEEL_SLOTS - 1)];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].deadline <= now {
                    let e = slot.swap_remove(i);
                    e.state.fired.set(true);
                    if let Some(w) = e.state.waker.borrow_mut().take() {
                        w.wake();
                    }
                    fired += 1;
                } else {
                    i += 1;
                }
            }
        }
        self.entries.set(self.entries.get() - fired);
        if self.entries.get() > 0 {
            for slot in slots.iter() {
                for e in slot {
                    if earliest.is_none_or(|x| e.deadline < x) {
                        earliest = Some(e.deadline);
                    }
                }
            }
        }
        self.earliest.set(earliest);
        fired
    }

    /// A future that completes at `deadline` (immediately if it has passed).
    pub fn sleep_until(self: &Rc<TimerWheel>, deadline: Instant) -> WheelSleep {
        WheelSleep {
            wheel: self.clone(),
            deadline,
            state: None,
        }
    }

    /// The driver: run once per executor as a task. Sleeps on one glommio timer until the
    /// earliest deadline (or until an earlier one is inserted), then fires what is due.
    pub async fn drive(self: Rc<TimerWheel>) {
        loop {
            let wait = self
                .earliest
                .get()
                .map(|e| e.saturating_duration_since(Instant::now()));
            self.rearm.set(false);
            match wait {
                None => {
                    std::future::poll_fn(|cx| {
                        if self.rearm.get() {
                            return Poll::Ready(());
                        }
                        *self.driver.borrow_mut() = Some(cx.waker().clone());
                        Poll::Pending
                    })
                    .await
                }
                Some(d) if !d.is_zero() => {
                    let mut timer = glommio::timer::Timer::new(d);
                    std::future::poll_fn(|cx| {
                        if self.rearm.get() {
                            return Poll::Ready(());
                        }
                        *self.driver.borrow_mut() = Some(cx.waker().clone());
                        Pin::new(&mut timer).poll(cx).map(|_| ())
                    })
                    .await
                }
                Some(_) => {}
            }
            self.fire(Instant::now());
        }
    }
}

/// See [`TimerWheel::sleep_until`].
pub struct WheelSleep {
    wheel: Rc<TimerWheel>,
    deadline: Instant,
    state: Option<Rc<SleepState>>,
}

impl Future for WheelSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(state) = &self.state {
            if state.fired.get() {
                return Poll::Ready(());
            }
            // Polled again before its deadline (the task was woken by something else):
            // keep the one entry, refresh its waker.
            *state.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let state = Rc::new(SleepState {
            fired: Cell::new(false),
            waker: RefCell::new(Some(cx.waker().clone())),
        });
        self.wheel.insert(self.deadline, state.clone());
        self.state = Some(state);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_validation_and_control() {
        let c = ShaperControl::new(&[1, 2]);
        assert_eq!(
            c.set(3, LinkShape::default()),
            Err(ShapeError::UnknownPeer(3))
        );
        let bad = LinkShape {
            loss_ppm: LOSS_PPM_MAX + 1,
            ..LinkShape::default()
        };
        assert_eq!(c.set(1, bad), Err(ShapeError::LossTooLarge));
        c.set(1, LinkShape::delay(Duration::from_millis(20)))
            .unwrap();
        c.set_cut(1, true).unwrap();
        let s = c.get(1).unwrap();
        assert!(s.cut && s.delay == Duration::from_millis(20));
        assert!(c.get(2).unwrap().is_identity());
    }

    #[test]
    fn from_matrix_skips_self() {
        let ms = Duration::from_millis;
        let m = vec![
            vec![ms(0), ms(20), ms(30)],
            vec![ms(20), ms(0), ms(40)],
            vec![ms(30), ms(40), ms(0)],
        ];
        let c = ShaperControl::from_latency_matrix(1, &m, Duration::ZERO).unwrap();
        assert_eq!(c.get(0).unwrap().delay, ms(20));
        assert_eq!(c.get(2).unwrap().delay, ms(40));
        assert!(c.get(1).is_err());
        assert!(ShaperControl::from_latency_matrix(3, &m, Duration::ZERO).is_err());
    }

    #[test]
    fn admit_keeps_order_bandwidth_and_loss() {
        let c = ShaperControl::new(&[1]);
        c.set(
            1,
            LinkShape {
                delay: Duration::from_millis(10),
                jitter: Duration::from_millis(5),
                bandwidth_bytes_per_s: Some(1_000_000),
                ..LinkShape::default()
            },
        )
        .unwrap();
        let mut s = LinkShaper::new(c.clone(), 1, 7);
        let now = Instant::now();
        let mut last = now;
        for _ in 0..100 {
            let Verdict::Deliver(t) = s.admit(now, 1000) else {
                panic!("no loss configured")
            };
            assert!(t >= last, "deliveries stay in order");
            last = t;
        }
        // 100 frames of 1000 bytes at 1 MB/s take 100 ms to leave, plus the delay.
        assert!(last >= now + Duration::from_millis(110));
        assert!(last <= now + Duration::from_millis(116));
        c.set(
            1,
            LinkShape {
                loss_ppm: 500_000,
                ..LinkShape::default()
            },
        )
        .unwrap();
        s.refresh();
        let lost = (0..10_000)
            .filter(|_| s.admit(Instant::now(), 10) == Verdict::Lost)
            .count();
        assert!(
            (4_000..6_000).contains(&lost),
            "lost {lost} of 10000 at 50%"
        );
        c.set_cut(1, true).unwrap();
        s.refresh();
        assert_eq!(s.admit(Instant::now(), 10), Verdict::Cut);
    }
}
