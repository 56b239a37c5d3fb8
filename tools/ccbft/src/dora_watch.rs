//! `ccbft dora watch`: follows every replica's control plane and turns what it sees into
//! health events for the DORA engine, ingested as they happen (and printed, one line each).
//!
//! - A replica whose control plane fails two polls in a row: `replica_down`; answering again:
//!   `replica_up`.
//! - An equivocation in a replica's `/events`: `equivocation`, with both signed messages
//!   when they are small enough to travel in an event (the replica's `evidence.jsonl` has
//!   them all).
//! - Clients waiting while a replica's executed height stands still for the stall time:
//!   `commit_stall`; the height moving again: `commit_resumed`.
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
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls a replica's control plane may fail before it counts as down.
const FAILED_POLLS_DOWN: u32 = 2;

pub struct WatchOptions {
    pub state: PathBuf,
    pub cluster: PathBuf,
    /// Control-plane addresses by replica (default: the cluster file's).
    pub controls: BTreeMap<u32, String>,
    pub interval: Duration,
    pub stall: Duration,
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
}

/// Runs until stopped; returns how many events it ingested.
pub fn run(options: WatchOptions) -> anyhow::Result<u64> {
    let topology = Topology::load(&options.cluster).map_err(|e| anyhow!(e.to_string()))?;
    let mut engine = Engine::open(&options.state)
        .with_context(|| format!("opening {}", options.state.display()))?;
    let mut replicas = (0..topology.n())
        .map(|id| replica(&topology, &options.controls, id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ccbft_node::node::catch_stop_signals();
    let deadline = options.duration.map(|d| Instant::now() + d);
    let mut ingested = 0;
    while !ccbft_node::node::stop_requested() && deadline.is_none_or(|d| Instant::now() < d) {
        let events: Vec<HealthEvent> = replicas
            .iter_mut()
            .flat_map(|r| r.poll(options.stall))
            .collect();
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
    })
}

impl Replica {
    /// One poll: what changed since the last one, as health events.
    fn poll(&mut self, stall: Duration) -> Vec<HealthEvent> {
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
        out.extend(self.progress(&metrics, stall));
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

    /// Equivocations among the new `/events` lines.
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
            if value["kind"] != "Evidence" || details["kind"] != "equivocation" {
                continue;
            }
            let at = value["at"]
                .as_f64()
                .and_then(|secs| DateTime::from_timestamp_millis((secs * 1000.0) as i64))
                .unwrap_or_else(Utc::now);
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
