//! The latency monitor: round trips to every peer from the transport's ping and pong, this
//! replica's row of the cluster's latency matrix with percentiles (`/metrics`), and links
//! much slower than the cluster file says reported as delayed messages (`/events`).
//!
//! The row is this replica's own measurement: it reaches nothing that every replica must
//! agree on (the leader schedule takes the cluster file's matrix).

use crate::control::NodeMetrics;
use ccbft_core::topology::{ReplicaId, Topology};
use ccbft_net::metrics::EndpointMetrics;
use ccbft_net::{Endpoint, PeerId};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Between two pings to each peer.
pub const PING_INTERVAL: Duration = Duration::from_millis(200);
/// Round trips kept per link for the percentiles (about 13 s at one pong per ping).
const SAMPLES_KEPT: usize = 64;
/// The median of this many newest round trips decides whether a link is delayed, so one
/// slow pong (a busy host) is not news.
const RECENT: usize = 5;
/// A link is delayed when its recent round trip is above twice the expected one plus this
/// margin; it is back to normal below 80 % of that bound. The margin is wide: replicas
/// sharing a busy host see 100-150 ms round trips on links the cluster file puts at 0.
const DELAY_MARGIN_US: u64 = 200_000;

/// This replica's row of the latency matrix, read by the control thread.
pub struct LatencyRow {
    pub replica: ReplicaId,
    pub links: Vec<LinkRow>,
}

/// One link of the row: the cluster file's round trip and the measured percentiles (0 until
/// the first pong), microseconds.
pub struct LinkRow {
    pub peer: ReplicaId,
    pub expected_us: u64,
    pub p50_us: AtomicU64,
    pub p99_us: AtomicU64,
    pub delayed: AtomicU64,
}

impl LatencyRow {
    /// The Prometheus text exposition of the row.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let get = |g: &AtomicU64| g.load(Ordering::Relaxed);
        for (name, help) in [
            (
                "ccbft_rtt_expected_us",
                "round trip the cluster file gives the link, µs",
            ),
            (
                "ccbft_rtt_p50_us",
                "median measured round trip (ping/pong), µs",
            ),
            (
                "ccbft_rtt_p99_us",
                "99th percentile measured round trip (ping/pong), µs",
            ),
            (
                "ccbft_link_delayed",
                "1 while the link is much slower than the cluster file says",
            ),
        ] {
            out += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
            for link in &self.links {
                let value = match name {
                    "ccbft_rtt_expected_us" => link.expected_us,
                    "ccbft_rtt_p50_us" => get(&link.p50_us),
                    "ccbft_rtt_p99_us" => get(&link.p99_us),
                    _ => get(&link.delayed),
                };
                out += &format!(
                    "{name}{{replica=\"{}\",peer=\"{}\"}} {value}\n",
                    self.replica, link.peer
                );
            }
        }
        out
    }
}

/// A link crossing its delay bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    pub peer: ReplicaId,
    pub delayed: bool,
    /// The recent round trip that decided it, and the cluster file's.
    pub rtt_us: u64,
    pub expected_us: u64,
}

impl LinkChange {
    /// The `/events` kind and details of the change.
    pub fn event(&self) -> (&'static str, serde_json::Value) {
        let kind = if self.delayed {
            "DelayedMessages"
        } else {
            "DelayedMessagesEnded"
        };
        let details = serde_json::json!({
            "peer": self.peer,
            "rtt_us": self.rtt_us,
            "expected_us": self.expected_us,
        });
        (kind, details)
    }
}

/// The round trips of every link, folded from the transport's pongs.
pub struct LatencyMonitor {
    row: Arc<LatencyRow>,
    links: Vec<LinkSamples>,
}

#[derive(Default)]
struct LinkSamples {
    samples: VecDeque<u64>,
    /// The link's pong count when its newest sample was taken.
    pongs_seen: u64,
    delayed: bool,
}

impl LatencyMonitor {
    /// A monitor of every link of `me` in `topology`, expecting the cluster file's matrix.
    pub fn new(topology: &Topology, me: ReplicaId) -> LatencyMonitor {
        let links: Vec<LinkRow> = (0..topology.n())
            .filter(|&peer| peer != me)
            .map(|peer| LinkRow {
                peer,
                expected_us: u64::from(topology.rtt_between_us(me, peer)),
                p50_us: AtomicU64::new(0),
                p99_us: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
            })
            .collect();
        let samples = links.iter().map(|_| LinkSamples::default()).collect();
        LatencyMonitor {
            row: Arc::new(LatencyRow { replica: me, links }),
            links: samples,
        }
    }

    /// The row the control plane shows.
    pub fn row(&self) -> Arc<LatencyRow> {
        self.row.clone()
    }

    /// Takes the newest round trip of every link that had a pong since the last call.
    pub fn sample(&mut self, endpoint: &EndpointMetrics) -> Vec<LinkChange> {
        let mut changes = Vec::new();
        for i in 0..self.links.len() {
            let peer = self.row.links[i].peer;
            let Some(link) = endpoint.link(PeerId(peer)) else {
                continue;
            };
            let pongs = link.pongs.get();
            if pongs == self.links[i].pongs_seen {
                continue;
            }
            self.links[i].pongs_seen = pongs;
            changes.extend(self.observe(i, link.rtt_last_us.get()));
        }
        changes
    }

    /// Folds one round trip of link `i` into its percentiles and delay state.
    fn observe(&mut self, i: usize, rtt_us: u64) -> Option<LinkChange> {
        let (row, link) = (&self.row.links[i], &mut self.links[i]);
        if link.samples.len() == SAMPLES_KEPT {
            link.samples.pop_front();
        }
        link.samples.push_back(rtt_us);
        let mut sorted: Vec<u64> = link.samples.iter().copied().collect();
        sorted.sort_unstable();
        row.p50_us.store(percentile(&sorted, 50), Ordering::Relaxed);
        row.p99_us.store(percentile(&sorted, 99), Ordering::Relaxed);
        if link.samples.len() < RECENT {
            return None;
        }
        let mut recent: Vec<u64> = link.samples.iter().rev().take(RECENT).copied().collect();
        recent.sort_unstable();
        let median = recent[RECENT / 2];
        let bound = 2 * row.expected_us + DELAY_MARGIN_US;
        let delayed = above_with_hysteresis(link.delayed, median, bound);
        if delayed == link.delayed {
            return None;
        }
        link.delayed = delayed;
        row.delayed.store(u64::from(delayed), Ordering::Relaxed);
        Some(LinkChange {
            peer: row.peer,
            delayed,
            rtt_us: median,
            expected_us: row.expected_us,
        })
    }
}

/// Whether `value` is above `bound`, once it was (`was_above`) until it is back under 80 %
/// of it, so that a figure hovering at the bound does not flap.
pub fn above_with_hysteresis(was_above: bool, value: u64, bound: u64) -> bool {
    if was_above {
        value.saturating_mul(5) >= bound.saturating_mul(4)
    } else {
        value > bound
    }
}

/// The `p`-th percentile (nearest rank) of `sorted`, 0 when empty.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Pings every peer each [`PING_INTERVAL`], folds the pongs into `monitor`, and reports a
/// link crossing its delay bound on `/events` and in the log. Runs on the replica's
/// executor for as long as it does.
pub async fn run(endpoint: Rc<Endpoint>, mut monitor: LatencyMonitor, metrics: Arc<NodeMetrics>) {
    let links = endpoint.metrics();
    let peers: Vec<ReplicaId> = monitor.row.links.iter().map(|l| l.peer).collect();
    loop {
        for change in monitor.sample(&links) {
            let (kind, details) = change.event();
            tracing::warn!(
                "{kind}: link to replica {} round trip {} ms, the cluster file says {} ms",
                change.peer,
                change.rtt_us / 1000,
                change.expected_us / 1000
            );
            metrics.event(kind, details);
        }
        for &peer in &peers {
            if endpoint.is_connected(PeerId(peer)) {
                // A full queue refuses the ping (counted as a drop); the next one comes.
                let _ = endpoint.ping(PeerId(peer));
            }
        }
        glommio::timer::sleep(PING_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor() -> LatencyMonitor {
        LatencyMonitor::new(&Topology::three_clouds(), 0)
    }

    /// Link index of `peer` in replica 0's row.
    fn index(m: &LatencyMonitor, peer: ReplicaId) -> usize {
        m.row.links.iter().position(|l| l.peer == peer).unwrap()
    }

    #[test]
    fn the_row_has_every_peer_with_the_cluster_files_round_trip() {
        let m = monitor();
        let t = Topology::three_clouds();
        let peers: Vec<_> = m.row.links.iter().map(|l| l.peer).collect();
        assert_eq!(peers, (1..t.n()).collect::<Vec<_>>());
        for l in &m.row.links {
            assert_eq!(l.expected_us, u64::from(t.rtt_between_us(0, l.peer)));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[7], 99), 7);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99)), (50, 99));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), 2);
    }

    #[test]
    fn a_link_is_delayed_when_its_recent_median_passes_the_bound_and_ends_below_80_percent() {
        let mut m = monitor();
        let far = (1..7)
            .find(|&p| Topology::three_clouds().domain_of(p) != 0)
            .unwrap();
        let i = index(&m, far);
        let bound = 2 * m.row.links[i].expected_us + DELAY_MARGIN_US;
        for _ in 0..RECENT {
            assert_eq!(m.observe(i, 300), None, "fast and normal");
        }
        // One slow pong, or two, is a busy host, not a delayed link.
        assert_eq!(m.observe(i, bound * 3), None);
        assert_eq!(m.observe(i, bound * 3), None);
        let change = m
            .observe(i, bound + 1)
            .expect("three of the last five above the bound");
        assert_eq!(
            change,
            LinkChange {
                peer: far,
                delayed: true,
                rtt_us: bound + 1,
                expected_us: m.row.links[i].expected_us
            }
        );
        assert_eq!(m.row.links[i].delayed.load(Ordering::Relaxed), 1);
        assert_eq!(m.observe(i, bound * 3), None, "reported once");
        // Just under the bound is not yet normal: no flapping around it.
        for _ in 0..RECENT {
            assert_eq!(m.observe(i, bound - 1), None);
        }
        for _ in 0..2 {
            assert_eq!(m.observe(i, bound * 4 / 5 - 1), None);
        }
        let ended = m
            .observe(i, bound * 4 / 5 - 1)
            .expect("the median is below 80 %");
        assert!(!ended.delayed);
        assert_eq!(m.row.links[i].delayed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn percentiles_follow_the_kept_samples_and_the_row_renders_them() {
        let mut m = monitor();
        let i = index(&m, 1);
        for rtt in 1..=200 {
            m.observe(i, rtt);
        }
        // Only the last 64 samples (137..=200) are kept.
        assert_eq!(m.row.links[i].p50_us.load(Ordering::Relaxed), 168);
        assert_eq!(m.row.links[i].p99_us.load(Ordering::Relaxed), 200);
        let text = m.row().prometheus();
        assert!(
            text.contains("ccbft_rtt_p50_us{replica=\"0\",peer=\"1\"} 168\n"),
            "{text}"
        );
        assert!(
            text.contains("ccbft_rtt_p99_us{replica=\"0\",peer=\"1\"} 200\n"),
            "{text}"
        );
        assert!(
            text.contains("ccbft_link_delayed{replica=\"0\",peer=\"6\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn sampling_takes_one_round_trip_per_new_pong() {
        let mut m = monitor();
        let links = EndpointMetrics::new((1..7).map(PeerId));
        assert!(m.sample(&links).is_empty());
        assert!(
            m.links.iter().all(|l| l.samples.is_empty()),
            "no pong, no sample"
        );
        links.link(PeerId(2)).unwrap().record_rtt(1_500);
        m.sample(&links);
        m.sample(&links); // the same pong again is not a second sample
        let i = index(&m, 2);
        assert_eq!(m.links[i].samples, [1_500]);
        assert_eq!(m.row.links[i].p50_us.load(Ordering::Relaxed), 1_500);
    }
}
