//! `ccbft dora watch`: follows every replica's control plane and turns what it sees into
//! health events for the DORA engine, ingested as they happen (and printed, one line each).
//!
//! - A replica whose control plane fails two polls in a row: `replica_down`; answering again:
//!   `replica_up`.
//! - An equivocation in a replica's `/events`: `equivocation`, with both signed messages
//!   when they are small enough to travel in an event (the replica's `evidence.jsonl` has
//!   them all).
//! - Clients waiting while a replica's executed height stands still for the stall time, or
//!   a global round timing out (`GlobalTimeout` in `/events`): `commit_stall`; the height
//!   moving again: `commit_resumed`.
//! - A replica's globally final latency (`ccbft_global_latency_ms`, a moving average of what
//!   its clients see) above the SLA, or a link of it delayed well past the cluster file's
//!   round trip (`DelayedMessages` in `/events`, from its latency monitor): `sla_breach`;
//!   latency back below 80 % of the SLA and every link normal again: `sla_restored`.
//!
//! Event ids name the replica and what was seen, so a watcher restarted over the same events
//! changes nothing: the engine ignores an id it has ingested. (A replica restarted between
//! two polls, never seen down, numbers its events from 0 again: the watcher reads on from
//! the old sequence and misses the new process's first events.)

use anyhow::{anyhow, Context};
use ccbft_core::topology::Topology;
use ccbft_dora::chrono::{DateTime, Utc};
use ccbft_dora::health::{EventKind, HealthEvent};
use ccbft_dora::state::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The default SLA for globally final latency, milliseconds (the global tier's target is
/// under 200 ms on 20-100 ms links; a second is well past it).
pub const SLA_MS: u64 = 1_000;

/// Polls a replica's control plane may fail before it counts as down.
const FAILED_POLLS_DOWN: u32 = 2;

pub struct WatchOptions {
    pub state: PathBuf,
    pub cluster: PathBuf,
    /// Control-plane addresses by replica (default: the cluster file's).
    pub controls: BTreeMap<u32, String>,
    pub interval: Duration,
    pub stall: Duration,
    /// Globally final latency above this is an SLA breach.
    pub sla: Duration,
    /// Stop after this long (default: until SIGTERM or Ctrl-C).
    pub duration: Option<Duration>,
}

/// What the watcher knows of one replica.
struct Replica {
    id: u32,
    domain: String,
    control: String,
    failed_polls: u32,
    down: bool,
    /// Sequence of the last `/events` line read from the current process of the replica.
    events_after: Option<u64>,
    height: u64,
    height_since: Instant,
    stalled: bool,
    /// Globally final latency above the SLA (until it is back below 80 % of it).
    latency_high: bool,
    /// Peers the replica's links to are delayed, by its latency monitor.
    delayed_links: BTreeSet<u64>,
    /// An `sla_breach` is open: latency high or a link delayed.
    sla_breached: bool,
    /// When the watcher started.
    since: DateTime<Utc>,
}

/// Every replica's control plane, polled for what changed since the last poll (`dora
/// watch`, and the live resilience target).
pub struct Watcher {
    replicas: Vec<Replica>,
    limits: Limits,
}

/// What the watcher counts as a problem.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Height still this long while clients wait: a commit stall.
    pub stall: Duration,
    /// Globally final latency above this: an SLA breach.
    pub sla: Duration,
}

impl Watcher {
    /// Watches the replicas of `topology` (control planes from `controls`, else the cluster
    /// file's).
    pub fn new(
        topology: &Topology,
        controls: &BTreeMap<u32, String>,
        limits: Limits,
    ) -> anyhow::Result<Watcher> {
        let replicas = (0..topology.n())
            .map(|id| replica(topology, controls, id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Watcher { replicas, limits })
    }

    /// One poll of every replica: the health events it found.
    pub fn poll(&mut self) -> Vec<HealthEvent> {
        let limits = self.limits;
        self.replicas
            .iter_mut()
            .flat_map(|r| r.poll(limits))
            .collect()
    }
}

/// Runs until stopped; returns how many events it ingested.
pub fn run(options: WatchOptions) -> anyhow::Result<u64> {
    let topology = Topology::load(&options.cluster).map_err(|e| anyhow!(e.to_string()))?;
    let mut engine = Engine::open(&options.state)
        .with_context(|| format!("opening {}", options.state.display()))?;
    let limits = Limits {
        stall: options.stall,
        sla: options.sla,
    };
    let mut watcher = Watcher::new(&topology, &options.controls, limits)?;
    ccbft_node::node::catch_stop_signals();
    let deadline = options.duration.map(|d| Instant::now() + d);
    let mut ingested = 0;
    while !ccbft_node::node::stop_requested() && deadline.is_none_or(|d| Instant::now() < d) {
        let events = watcher.poll();
        if !events.is_empty() {
            let outcomes = engine.ingest(&events)?;
            for (event, outcome) in events.iter().zip(&outcomes) {
                println!(
                    "{} r{} {}: {outcome:?}",
                    event.at.to_rfc3339(),
                    event.replica.unwrap_or(0),
                    event.kind.name()
                );
            }
            ingested += events.len() as u64;
        }
        std::thread::sleep(options.interval);
    }
    Ok(ingested)
}

fn replica(
    topology: &Topology,
    controls: &BTreeMap<u32, String>,
    id: u32,
) -> anyhow::Result<Replica> {
    let spec = topology.replica(id).expect("ids below n are replicas");
    let control = match controls.get(&id) {
        Some(addr) => addr.clone(),
        None => spec.control_addr()?.to_string(),
    };
    Ok(Replica {
        id,
        domain: topology.domains[spec.domain as usize].name.clone(),
        control,
        failed_polls: 0,
        down: false,
        events_after: None,
        height: 0,
        height_since: Instant::now(),
        stalled: false,
        latency_high: false,
        delayed_links: BTreeSet::new(),
        sla_breached: false,
        // Event times come in milliseconds.
        since: DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default(),
    })
}

impl Replica {
    /// One poll: what changed since the last one, as health events.
    fn poll(&mut self, limits: Limits) -> Vec<HealthEvent> {
        let get = |path: &str| {
            ccbft_node::control::request(&self.control, "GET", path, None).and_then(
                |(status, body)| match status {
                    200 => Ok(body),
                    other => Err(format!("{path}: HTTP {other}")),
                },
            )
        };
        let (metrics, events) = match get("/metrics").and_then(|m| {
            let after = self
                .events_after
                .map_or(String::new(), |a| format!("?after={a}"));
            Ok((m, get(&format!("/events{after}"))?))
        }) {
            Ok(answers) => answers,
            Err(why) => return self.unreachable(&why).into_iter().collect(),
        };
        let mut out = Vec::new();
        self.failed_polls = 0;
        if self.down {
            self.down = false;
            self.events_after = None; // a new process numbers its events from 0 again
            out.push(self.event(
                EventKind::ReplicaUp,
                Utc::now(),
                "control plane answers again",
            ));
        }
        out.extend(self.evidence(&events));
        out.extend(self.delayed_before_start());
        out.extend(self.progress(&metrics, limits.stall));
        out.extend(self.latency(&metrics, limits.sla));
        out
    }

    fn unreachable(&mut self, why: &str) -> Option<HealthEvent> {
        self.failed_polls += 1;
        if self.down || self.failed_polls < FAILED_POLLS_DOWN {
            return None;
        }
        self.down = true;
        let detail = format!("control plane at {} does not answer: {why}", self.control);
        Some(self.event(EventKind::ReplicaDown, Utc::now(), &detail))
    }

    /// Equivocations and global timeouts among the new `/events` lines.
    fn evidence(&mut self, lines: &str) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        for line in lines.lines() {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(seq) = value["seq"].as_u64() {
                self.events_after = Some(self.events_after.map_or(seq, |a| a.max(seq)));
            }
            let details = &value["details"];
            let at = value["at"]
                .as_f64()
                .and_then(|secs| DateTime::from_timestamp_millis((secs * 1000.0) as i64))
                .unwrap_or_else(Utc::now);
            // Timeouts from before the watcher started are history, not news.
            if value["kind"] == "GlobalTimeout" && !self.stalled && at >= self.since {
                // A global round timed out: ordering stopped for at least a timeout.
                self.stalled = true;
                let detail = format!(
                    "replica {}: {}",
                    self.id,
                    details.as_str().unwrap_or("GlobalTimeout")
                );
                out.push(self.event(EventKind::CommitStall, at, &detail));
                continue;
            }
            if let Some(delayed) = match value["kind"].as_str() {
                Some("DelayedMessages") => Some(true),
                Some("DelayedMessagesEnded") => Some(false),
                _ => None,
            } {
                out.extend(self.delayed_link(delayed, details, at));
                continue;
            }
            if value["kind"] != "Evidence" || details["kind"] != "equivocation" {
                continue;
            }
            let offender = details["offender"].as_u64().unwrap_or(0) as u32;
            let detail = format!(
                "replica {} holds two conflicting messages signed by replica {offender}",
                self.id
            );
            let mut event = self.event(EventKind::Equivocation, at, &detail);
            event.event_id = format!(
                "watch-r{}-evidence-{}-{}",
                self.id, value["at"], value["seq"]
            );
            if let (Some(a), Some(b)) =
                (details["message_a"].as_str(), details["message_b"].as_str())
            {
                event.evidence = Some(ccbft_dora::health::Evidence {
                    offender,
                    message_a: a.to_string(),
                    message_b: b.to_string(),
                });
            }
            out.push(event);
        }
        out
    }

    /// Globally final latency above `sla` is high until it is below 80 % of it.
    fn latency(&mut self, metrics: &str, sla: Duration) -> Option<HealthEvent> {
        let ms = ccbft_node::control::gauge(metrics, "ccbft_global_latency_ms")?;
        let sla_ms = sla.as_millis() as u64;
        let high = ccbft_node::latency::above_with_hysteresis(self.latency_high, ms, sla_ms);
        if high == self.latency_high {
            return None;
        }
        self.latency_high = high;
        let detail = if high {
            format!("globally final latency {ms} ms, above the SLA of {sla_ms} ms")
        } else {
            format!("globally final latency {ms} ms, within the SLA of {sla_ms} ms")
        };
        self.sla_changed(Utc::now(), &detail)
    }

    /// A link of this replica delayed past its bound (`delayed`) or back to normal.
    fn delayed_link(
        &mut self,
        delayed: bool,
        details: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Option<HealthEvent> {
        let peer = details["peer"].as_u64()?;
        let changed = if delayed {
            self.delayed_links.insert(peer)
        } else {
            self.delayed_links.remove(&peer)
        };
        // Changes from before the watcher started are history: they only set the state
        // ([`Replica::delayed_before_start`] reports a link still delayed).
        if !changed || at < self.since {
            return None;
        }
        let ms = |key: &str| details[key].as_u64().unwrap_or(0) / 1000;
        let detail = format!(
            "link from replica {} to replica {peer}: round trip {} ms, the cluster file says {} ms{}",
            self.id,
            ms("rtt_us"),
            ms("expected_us"),
            if delayed { " (messages delayed)" } else { " (normal again)" }
        );
        self.sla_changed(at, &detail)
    }

    /// A breach for links that were delayed before the watcher started and still are.
    fn delayed_before_start(&mut self) -> Option<HealthEvent> {
        if self.sla_breached || self.delayed_links.is_empty() {
            return None;
        }
        let detail = format!(
            "links from replica {} to replicas {:?} delayed since before the watcher started",
            self.id, self.delayed_links
        );
        self.sla_changed(Utc::now(), &detail)
    }

    /// `sla_breach` when latency turned high or a first link delayed; `sla_restored` once
    /// latency is normal and no link is delayed.
    fn sla_changed(&mut self, at: DateTime<Utc>, detail: &str) -> Option<HealthEvent> {
        let breached = self.latency_high || !self.delayed_links.is_empty();
        if breached == self.sla_breached {
            return None;
        }
        self.sla_breached = breached;
        let kind = if breached {
            EventKind::SlaBreach
        } else {
            EventKind::SlaRestored
        };
        Some(self.event(kind, at, detail))
    }

    /// A stall: clients waiting and the executed height standing still.
    fn progress(&mut self, metrics: &str, stall: Duration) -> Option<HealthEvent> {
        let gauge = |name| ccbft_node::control::gauge(metrics, name).unwrap_or(0);
        let (height, waiting) = (
            gauge("ccbft_executed_height"),
            gauge("ccbft_waiting_clients"),
        );
        if height != self.height {
            self.height = height;
            self.height_since = Instant::now();
            if self.stalled {
                self.stalled = false;
                let detail = format!("executed height moves again ({height})");
                return Some(self.event(EventKind::CommitResumed, Utc::now(), &detail));
            }
            return None;
        }
        if !self.stalled && waiting > 0 && self.height_since.elapsed() >= stall {
            self.stalled = true;
            let detail = format!(
                "{waiting} client transactions wait; executed height {height} for {:?}",
                self.height_since.elapsed()
            );
            return Some(self.event(EventKind::CommitStall, Utc::now(), &detail));
        }
        None
    }

    fn event(&self, kind: EventKind, at: DateTime<Utc>, detail: &str) -> HealthEvent {
        let id = format!(
            "watch-r{}-{}-{}",
            self.id,
            kind.name(),
            at.timestamp_micros()
        );
        let mut event = HealthEvent::new(&id, at, kind);
        event.replica = Some(self.id);
        event.domain = Some(self.domain.clone());
        event.detail = Some(detail.to_string());
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched() -> Replica {
        replica(&Topology::three_clouds(), &BTreeMap::new(), 0).unwrap()
    }

    fn metrics(latency_ms: u64) -> String {
        format!("ccbft_global_latency_ms{{replica=\"0\"}} {latency_ms}\n")
    }

    #[test]
    fn latency_above_the_sla_is_a_breach_until_it_is_well_below_it() {
        let mut r = watched();
        let sla = Duration::from_millis(1_000);
        let kind = |e: Option<HealthEvent>| e.map(|e| e.kind);
        assert_eq!(kind(r.latency(&metrics(1_000), sla)), None);
        assert_eq!(
            kind(r.latency(&metrics(1_001), sla)),
            Some(EventKind::SlaBreach)
        );
        assert_eq!(kind(r.latency(&metrics(5_000), sla)), None, "once");
        assert_eq!(
            kind(r.latency(&metrics(800), sla)),
            None,
            "not yet under 80 %"
        );
        assert_eq!(
            kind(r.latency(&metrics(799), sla)),
            Some(EventKind::SlaRestored)
        );
        assert_eq!(kind(r.latency("", sla)), None, "no figure, no news");
    }

    #[test]
    fn a_global_timeout_after_the_start_is_one_stall_until_the_height_moves() {
        let mut r = watched();
        let line = |seq: u64, at: DateTime<Utc>| {
            let secs = at.timestamp_micros() as f64 / 1e6;
            format!(
                r#"{{"seq":{seq},"at":{secs},"kind":"GlobalTimeout","details":"GlobalTimeout {{ round: 7, leader: 3 }}"}}"#
            )
        };
        let old = line(1, r.since - chrono_seconds(5));
        assert!(
            r.evidence(&old).is_empty(),
            "history before the watcher started"
        );
        let now = Utc::now();
        let events = r.evidence(&format!("{}\n{}", line(2, now), line(3, now)));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, EventKind::CommitStall);
        assert_eq!(r.events_after, Some(3));
        let stall = Duration::from_secs(60);
        let resumed = r.progress("ccbft_executed_height{replica=\"0\"} 9\n", stall);
        assert_eq!(resumed.map(|e| e.kind), Some(EventKind::CommitResumed));
    }

    fn delayed_line(seq: u64, at: DateTime<Utc>, kind: &str, peer: u32) -> String {
        let secs = at.timestamp_micros() as f64 / 1e6;
        format!(
            r#"{{"seq":{seq},"at":{secs},"kind":"{kind}","details":{{"peer":{peer},"rtt_us":412000,"expected_us":22000}}}}"#
        )
    }

    #[test]
    fn delayed_links_are_one_breach_until_every_link_and_the_latency_are_normal() {
        let mut r = watched();
        let sla = Duration::from_millis(1_000);
        let kinds =
            |events: Vec<HealthEvent>| events.into_iter().map(|e| e.kind).collect::<Vec<_>>();
        let now = Utc::now();
        let breach = r.evidence(&delayed_line(1, now, "DelayedMessages", 3));
        assert_eq!(breach.len(), 1);
        assert_eq!(breach[0].kind, EventKind::SlaBreach);
        let off = (breach[0].at - now).num_milliseconds().abs();
        assert!(
            off <= 1,
            "at the replica's time, not the watcher's: {off} ms off"
        );
        assert!(breach[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("round trip 412 ms"));
        let more = format!(
            "{}\n{}",
            delayed_line(2, now, "DelayedMessages", 4),
            delayed_line(3, now, "DelayedMessagesEnded", 3)
        );
        assert!(
            r.evidence(&more).is_empty(),
            "replica 4's link is still delayed"
        );
        // Latency too high meanwhile, then normal: the link still holds the breach open.
        assert_eq!(r.latency(&metrics(2_000), sla), None);
        assert_eq!(r.latency(&metrics(10), sla), None);
        let ended = r.evidence(&delayed_line(4, now, "DelayedMessagesEnded", 4));
        assert_eq!(kinds(ended), [EventKind::SlaRestored]);
        assert!(r
            .evidence(&delayed_line(5, now, "DelayedMessagesEnded", 4))
            .is_empty());
    }

    #[test]
    fn links_delayed_before_the_watcher_started_are_news_only_while_still_delayed() {
        let mut r = watched();
        let old = r.since - chrono_seconds(60);
        let history = format!(
            "{}\n{}\n{}",
            delayed_line(1, old, "DelayedMessages", 3),
            delayed_line(2, old, "DelayedMessagesEnded", 3),
            delayed_line(3, old, "DelayedMessages", 5)
        );
        assert!(r.evidence(&history).is_empty(), "history is not news");
        let now = r
            .delayed_before_start()
            .expect("replica 5's link is still delayed");
        assert_eq!(now.kind, EventKind::SlaBreach);
        assert!(now.at >= r.since);
        assert!(r.delayed_before_start().is_none(), "once");
        let mut fresh = watched();
        let healed = format!(
            "{}\n{}",
            delayed_line(1, old, "DelayedMessages", 3),
            delayed_line(2, old, "DelayedMessagesEnded", 3)
        );
        assert!(fresh.evidence(&healed).is_empty());
        assert!(fresh.delayed_before_start().is_none());
    }

    fn chrono_seconds(s: i64) -> ccbft_dora::chrono::Duration {
        ccbft_dora::chrono::Duration::seconds(s)
    }
}
