//! Link metrics: plain atomic counters, so the control-plane thread can read them while
//! the executor writes them (relaxed ordering: they are statistics, not synchronisation).

use crate::frame::{FrameError, SendClass};
use crate::peers::PeerId;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reasons a link was closed because of what the peer sent.
pub const FRAME_ERROR_REASONS: [&str; 8] = [
    "bad_magic",
    "bad_version",
    "unknown_kind",
    "reserved_flags",
    "oversized",
    "checksum",
    "truncated",
    "unexpected_kind",
];

/// Reasons a handshake failed.
pub const HANDSHAKE_FAILURE_REASONS: [&str; 14] = [
    "unknown_key",
    "wrong_key",
    "bad_key_encoding",
    "bad_signature",
    "invalid_key",
    "no_key_presented",
    "no_common_kx",
    "peer_incompatible",
    "alert_received",
    "peer_misbehaved",
    "tls_other",
    "timeout",
    "io",
    "unexpected_peer",
];

fn index_of(table: &[&str], reason: &str) -> usize {
    table
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(table.len() - 1)
}

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Metrics of the link to one peer.
#[derive(Debug, Default)]
pub struct LinkMetrics {
    pub frames_out: Counter,
    pub bytes_out: Counter,
    pub frames_in: Counter,
    pub bytes_in: Counter,
    /// Frames waiting in the send queue, per class (gauge).
    pub queue_depth: [Counter; 2],
    /// Frames refused because the class queue was full, per class.
    pub drops: [Counter; 2],
    /// Frames the shaper dropped (configured loss) and cut (link cut).
    pub shaper_lost: Counter,
    pub shaper_cut: Counter,
    /// Frames taken off the queue that a dying connection may not have delivered (held by
    /// the shaper, or in a write that failed). Frames still queued wait for the next link.
    pub lost_on_disconnect: Counter,
    pub connects: Counter,
    pub reconnects: Counter,
    pub frame_errors: [Counter; FRAME_ERROR_REASONS.len()],
    /// Round-trip time from the last pong, and an EWMA (1/8), in microseconds.
    pub rtt_last_us: Counter,
    pub rtt_ewma_us: Counter,
    pub pongs: Counter,
}

impl LinkMetrics {
    pub fn frame_error(&self, err: &FrameError) {
        self.frame_errors[index_of(&FRAME_ERROR_REASONS, err.reason())].inc();
    }

    pub fn frame_errors_for(&self, reason: &str) -> u64 {
        self.frame_errors[index_of(&FRAME_ERROR_REASONS, reason)].get()
    }

    pub fn drops_for(&self, class: SendClass) -> u64 {
        self.drops[class as usize].get()
    }

    pub fn record_rtt(&self, us: u64) {
        self.rtt_last_us.set(us);
        let old = self.rtt_ewma_us.get();
        let new = if self.pongs.get() == 0 {
            us
        } else {
            old - old / 8 + us / 8
        };
        self.rtt_ewma_us.set(new);
        self.pongs.inc();
    }
}

/// Metrics of one endpoint: per-peer links plus what cannot be attributed to a peer.
#[derive(Debug)]
pub struct EndpointMetrics {
    pub links: Vec<(PeerId, LinkMetrics)>,
    pub handshake_failures: [Counter; HANDSHAKE_FAILURE_REASONS.len()],
    pub accepted: Counter,
}

impl EndpointMetrics {
    pub fn new(peers: impl Iterator<Item = PeerId>) -> EndpointMetrics {
        EndpointMetrics {
            links: peers.map(|p| (p, LinkMetrics::default())).collect(),
            handshake_failures: Default::default(),
            accepted: Counter::default(),
        }
    }

    pub fn link(&self, peer: PeerId) -> Option<&LinkMetrics> {
        self.links.iter().find(|(p, _)| *p == peer).map(|(_, m)| m)
    }

    pub fn handshake_failure(&self, reason: &str) {
        self.handshake_failures[index_of(&HANDSHAKE_FAILURE_REASONS, reason)].inc();
    }

    pub fn handshake_failures_for(&self, reason: &str) -> u64 {
        self.handshake_failures[index_of(&HANDSHAKE_FAILURE_REASONS, reason)].get()
    }

    /// Prometheus text exposition.
    pub fn render_prometheus(&self, replica: PeerId) -> String {
        let mut s = String::new();
        let r = replica.0;
        for (peer, m) in &self.links {
            let p = peer.0;
            let l = format!("replica=\"{r}\",peer=\"{p}\"");
            let _ = writeln!(
                s,
                "ccbft_net_frames_out_total{{{l}}} {}",
                m.frames_out.get()
            );
            let _ = writeln!(s, "ccbft_net_bytes_out_total{{{l}}} {}", m.bytes_out.get());
            let _ = writeln!(s, "ccbft_net_frames_in_total{{{l}}} {}", m.frames_in.get());
            let _ = writeln!(s, "ccbft_net_bytes_in_total{{{l}}} {}", m.bytes_in.get());
            for (c, name) in [(0, "consensus"), (1, "bulk")] {
                let _ = writeln!(
                    s,
                    "ccbft_net_queue_depth{{{l},class=\"{name}\"}} {}",
                    m.queue_depth[c].get()
                );
                let _ = writeln!(
                    s,
                    "ccbft_net_drops_total{{{l},class=\"{name}\"}} {}",
                    m.drops[c].get()
                );
            }
            let _ = writeln!(
                s,
                "ccbft_net_shaper_lost_total{{{l}}} {}",
                m.shaper_lost.get()
            );
            let _ = writeln!(
                s,
                "ccbft_net_shaper_cut_total{{{l}}} {}",
                m.shaper_cut.get()
            );
            let _ = writeln!(
                s,
                "ccbft_net_lost_on_disconnect_total{{{l}}} {}",
                m.lost_on_disconnect.get()
            );
            let _ = writeln!(s, "ccbft_net_connects_total{{{l}}} {}", m.connects.get());
            let _ = writeln!(
                s,
                "ccbft_net_reconnects_total{{{l}}} {}",
                m.reconnects.get()
            );
            for (i, reason) in FRAME_ERROR_REASONS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "ccbft_net_frame_errors_total{{{l},reason=\"{reason}\"}} {}",
                    m.frame_errors[i].get()
                );
            }
            let _ = writeln!(s, "ccbft_net_rtt_us{{{l}}} {}", m.rtt_last_us.get());
            let _ = writeln!(s, "ccbft_net_rtt_ewma_us{{{l}}} {}", m.rtt_ewma_us.get());
        }
        for (i, reason) in HANDSHAKE_FAILURE_REASONS.iter().enumerate() {
            let _ = writeln!(
                s,
                "ccbft_net_handshake_failures_total{{replica=\"{r}\",reason=\"{reason}\"}} {}",
                self.handshake_failures[i].get()
            );
        }
        s
    }
}
