//! The deterministic simulator as a DORA resilience target (`ccbft dora test`).
//!
//! [`SimTarget::inject`] maps a [`Scenario`] to one scripted [`Fault`] of the simulator and
//! [`SimTarget::observe`] runs the seed: the fault holds for `fault_for` of simulated time,
//! then it is healed and the run continues until `observe_for` has passed since the
//! injection. Simulated time is mapped onto wall-clock timestamps: simulated time 0 (the
//! injection) is the wall-clock time at which the target was created, and every simulated
//! microsecond after it is one real microsecond later. The timestamps in the evidence are
//! therefore not when things happened on a real clock, but the simulated durations between
//! them (time to detect, time to recover) are exact and reproducible from the seed.
//!
//! What the cluster's replicas report (view changes, global timeouts, equivocation
//! evidence, blocks executed again) becomes the observation's health events, from which the
//! engine measures detection. The simulator's own fault-injection entries (a replica stopped
//! or restarted, a domain cut off, the heal) are ground truth, not something the cluster
//! detected: they go to [`Observation::injected_events`], kept for the record and never used
//! for time to detect or incidents.

use ccbft_core::sim::{self, Fault, RunReport, SimOptions};
use ccbft_core::topology::Topology;
use ccbft_dora::chrono::{DateTime, Duration, Utc};
use ccbft_dora::health::{EventKind, HealthEvent};
use ccbft_dora::resilience::{Injection, Observation, ResilienceTarget, Scenario, TargetError};
use std::sync::Arc;

/// Client load during a simulated resilience test, transactions per simulated second.
pub const TEST_TX_PER_S: u64 = 400;
/// Local view changes within this window count as one storm.
const STORM_WINDOW_US: u64 = 1_000_000;
/// This many local view changes within [`STORM_WINDOW_US`] make a storm.
const STORM_MIN_CHANGES: usize = 3;
/// Problems of one kind at one replica closer than this are one event (with a count).
const COALESCE_US: u64 = 1_000_000;

pub struct SimTarget {
    topology: Arc<Topology>,
    seed: u64,
    /// Wall-clock time of simulated time 0.
    start: DateTime<Utc>,
    fault: Option<Fault>,
    report: Option<RunReport>,
}

impl SimTarget {
    pub fn new(topology: Topology, seed: u64, start: DateTime<Utc>) -> SimTarget {
        SimTarget {
            topology: Arc::new(topology),
            seed,
            start,
            fault: None,
            report: None,
        }
    }

    /// The simulator's report of the last observation.
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_ref()
    }

    fn at(&self, sim_us: u64) -> DateTime<Utc> {
        self.start + Duration::microseconds(sim_us as i64)
    }

    fn replica(&self, replica: Option<u32>) -> Result<u32, TargetError> {
        let n = self.topology.n();
        let id = replica.unwrap_or(if n > 1 { 1 } else { 0 });
        if id >= n {
            return Err(TargetError::Unsupported(format!(
                "replica {id} is not in cluster {:?} ({n} replicas)",
                self.topology.name
            )));
        }
        Ok(id)
    }

    fn members(&self, domain: u32) -> String {
        let ids: Vec<String> = self
            .topology
            .domain_members(domain)
            .iter()
            .map(|r| format!("r{r}"))
            .collect();
        ids.join(", ")
    }

    /// The fault for a scenario, and what it does in words.
    fn fault_for(&self, scenario: &Scenario) -> Result<(Fault, String), TargetError> {
        let t = &self.topology;
        Ok(match scenario {
            Scenario::ByzantineLeader => (
                Fault::ByzantineLeader,
                "the replica leading global round 1 (best-ranked by the leader schedule) is Byzantine and equivocates: conflicting proposals and pre-prepares to the two halves of its recipients".to_string(),
            ),
            Scenario::DomainPartition { domain } => {
                let index = match domain {
                    None => 0,
                    Some(name) => t
                        .domains
                        .iter()
                        .position(|d| &d.name == name)
                        .ok_or_else(|| {
                            TargetError::Unsupported(format!(
                                "no domain {name:?} in cluster {:?}",
                                t.name
                            ))
                        })? as u32,
                };
                if t.domains.is_empty() {
                    return Err(TargetError::Unsupported("the cluster has no domain".into()));
                }
                (
                    Fault::DomainPartition(index),
                    format!(
                        "domain {} ({}) cut off from the other domains, both directions",
                        t.domains[index as usize].name,
                        self.members(index)
                    ),
                )
            }
            Scenario::ProviderOutage { provider } => {
                let provider = provider.clone().unwrap_or_else(|| largest_provider(&self.topology));
                let domains: Vec<u32> = (0..t.domains.len() as u32)
                    .filter(|&d| t.domains[d as usize].provider.eq_ignore_ascii_case(&provider))
                    .collect();
                if domains.is_empty() {
                    return Err(TargetError::Unsupported(format!(
                        "no domain of provider {provider:?} in cluster {:?}",
                        t.name
                    )));
                }
                let stopped: Vec<String> = domains.iter().map(|&d| self.members(d)).collect();
                (
                    Fault::ProviderOutage(provider.clone()),
                    format!(
                        "every replica of provider {provider} stopped ({})",
                        stopped.join(", ")
                    ),
                )
            }
            Scenario::DiskCorruption { replica } => {
                let id = self.replica(*replica)?;
                (
                    Fault::DiskCorruption(id),
                    format!("r{id}'s disk corrupted: r{id} stops at 1/4 of the fault phase and restarts at 1/2, dropping the corrupted range and keeping its durable voting state; the range is repaired from peers by batch fetch (modelled as a restart from durable state; no bytes are flipped, and a rebuild from genesis by state transfer is not wired)"),
                )
            }
            Scenario::LatencySpike { extra_ms } => (
                Fault::LatencySpike {
                    extra_ms: u64::from(*extra_ms),
                },
                format!("+{extra_ms} ms one-way on every message between replicas"),
            ),
            Scenario::ReplicaCrashLoop { replica } => {
                let id = self.replica(*replica)?;
                (
                    Fault::CrashLoop(id),
                    format!(
                        "r{id} crashes every {} ms and restarts {} ms later",
                        sim::CRASH_LOOP_PERIOD_US / 1_000,
                        sim::CRASH_LOOP_DOWN_US / 1_000
                    ),
                )
            }
        })
    }

    fn domain_name(&self, replica: u32) -> Option<String> {
        self.topology
            .replica(replica)
            .and_then(|r| self.topology.domains.get(r.domain as usize))
            .map(|d| d.name.clone())
    }

    /// The simulator's health entries as DORA health events: (derived from the replicas'
    /// signals, the simulator's own fault-injection records).
    fn events(&self, report: &RunReport) -> (Vec<HealthEvent>, Vec<HealthEvent>) {
        let mut stream = EventStream {
            target: self,
            events: Vec::new(),
            last: Default::default(),
        };
        let mut view_changes: std::collections::VecDeque<u64> = Default::default();
        let mut storm_until: Option<u64> = None;
        let mut stalled = false;
        let mut partitioned: std::collections::BTreeSet<String> = Default::default();
        for (sim_us, id, kind, detail) in &report.health {
            let (sim_us, id) = (*sim_us, *id);
            if let Some(end) = storm_until {
                if sim_us > end {
                    stream.push(
                        false,
                        end,
                        None,
                        None,
                        EventKind::ViewStable,
                        "no local view change for 1 s".into(),
                    );
                    storm_until = None;
                }
            }
            let domain = self.domain_name(id);
            match kind.as_str() {
                "local_view_change" => {
                    view_changes.push_back(sim_us);
                    while view_changes
                        .front()
                        .is_some_and(|&t| sim_us - t > STORM_WINDOW_US)
                    {
                        view_changes.pop_front();
                    }
                    if view_changes.len() >= STORM_MIN_CHANGES {
                        stream.push(
                            false,
                            sim_us,
                            None,
                            domain,
                            EventKind::ViewChangeStorm,
                            format!(
                                "{} local view changes within 1 s (latest at r{id}: {detail})",
                                view_changes.len()
                            ),
                        );
                        storm_until = Some(sim_us + STORM_WINDOW_US);
                    }
                }
                "global_timeout" => {
                    stalled = true;
                    stream.push(
                        false,
                        sim_us,
                        Some(id),
                        domain,
                        EventKind::CommitStall,
                        format!("r{id}: global round timed out ({detail})"),
                    );
                }
                "evidence" if detail.starts_with("equivocation") => {
                    let mut detail = format!("r{id} holds evidence: {detail}");
                    if let Some(offender) = detail
                        .rsplit(" by r")
                        .next()
                        .and_then(|o| o.parse::<u32>().ok())
                    {
                        detail.push_str(&format!(" (offender r{offender})"));
                    }
                    stream.push(
                        false,
                        sim_us,
                        Some(id),
                        domain,
                        EventKind::Equivocation,
                        detail,
                    );
                }
                "diverged" => stream.push(
                    false,
                    sim_us,
                    Some(id),
                    domain,
                    EventKind::StateDivergence,
                    format!("r{id}: {detail}; execution halted"),
                ),
                "crash" => stream.push(
                    true,
                    sim_us,
                    Some(id),
                    domain,
                    EventKind::ReplicaDown,
                    format!("simulator fault injector: {detail}"),
                ),
                "restart" => stream.push(
                    true,
                    sim_us,
                    Some(id),
                    domain,
                    EventKind::ReplicaUp,
                    format!("simulator fault injector: {detail}"),
                ),
                "partition" => {
                    if let Some(d) = domain {
                        if partitioned.insert(d.clone()) {
                            stream.push(
                                true,
                                sim_us,
                                None,
                                Some(d),
                                EventKind::DomainPartition,
                                format!("simulator fault injector: {detail}"),
                            );
                        }
                    }
                }
                "heal" => {
                    for d in std::mem::take(&mut partitioned) {
                        stream.push(
                            true,
                            sim_us,
                            None,
                            Some(d),
                            EventKind::PartitionHealed,
                            "simulator fault injector: links restored".into(),
                        );
                    }
                }
                // Vote-pattern switches are routine; other evidence kinds and the injected
                // latency itself are not events the engine has a kind for.
                _ => {}
            }
        }
        if let Some(end) = storm_until {
            if end <= report.simulated_us {
                stream.push(
                    false,
                    end,
                    None,
                    None,
                    EventKind::ViewStable,
                    "no local view change for 1 s".into(),
                );
            }
        }
        if stalled {
            if let Some(at) = report.first_commit_after_heal_us {
                stream.push(
                    false,
                    at,
                    None,
                    None,
                    EventKind::CommitResumed,
                    "first block executed after the heal".into(),
                );
            }
        }
        stream.split()
    }
}

/// The provider with the most replicas (first in file order on a tie): the default outage
/// of both resilience targets.
pub fn largest_provider(t: &Topology) -> String {
    let count = |p: &str| {
        t.replicas
            .iter()
            .filter(|r| t.domains[r.domain as usize].provider == p)
            .count()
    };
    let mut best: Option<(usize, String)> = None;
    for p in t.providers() {
        let c = count(&p);
        if best.as_ref().is_none_or(|(b, _)| c > *b) {
            best = Some((c, p));
        }
    }
    best.map(|(_, p)| p).unwrap_or_default()
}

/// Health events built from simulator entries: problems of one kind at one replica closer
/// than [`COALESCE_US`] become one event with a count; each event is marked as derived from
/// the replicas' signals or written by the fault injector.
struct EventStream<'a> {
    target: &'a SimTarget,
    /// (event, written by the fault injector)
    events: Vec<(HealthEvent, bool)>,
    /// (kind, replica) -> (index in `events`, sim us of the last entry merged into it)
    last: std::collections::BTreeMap<(EventKind, u32), (usize, u64)>,
}

impl EventStream<'_> {
    fn push(
        &mut self,
        by_injector: bool,
        sim_us: u64,
        replica: Option<u32>,
        domain: Option<String>,
        kind: EventKind,
        detail: String,
    ) {
        let key = (kind, replica.unwrap_or(u32::MAX));
        if kind.is_problem() {
            if let Some(&(index, at)) = self.last.get(&key) {
                if sim_us.saturating_sub(at) < COALESCE_US {
                    let count = self.events[index].0.metrics.entry("count".into());
                    *count.or_insert(1.0) += 1.0;
                    self.last.insert(key, (index, sim_us));
                    return;
                }
            }
            self.last.insert(key, (self.events.len(), sim_us));
        }
        let mut event = HealthEvent::new(
            &format!("sim-{}-{}", self.target.seed, self.events.len()),
            self.target.at(sim_us),
            kind,
        );
        event.replica = replica;
        event.domain = domain;
        event.detail = Some(detail);
        event.metrics.insert("sim_us".into(), sim_us as f64);
        self.events.push((event, by_injector));
    }

    /// (derived from the replicas' signals, written by the fault injector)
    fn split(self) -> (Vec<HealthEvent>, Vec<HealthEvent>) {
        let (injected, derived): (Vec<_>, Vec<_>) = self
            .events
            .into_iter()
            .partition(|(_, by_injector)| *by_injector);
        let strip = |events: Vec<(HealthEvent, bool)>| events.into_iter().map(|(e, _)| e).collect();
        (strip(derived), strip(injected))
    }
}

impl ResilienceTarget for SimTarget {
    fn describe(&self) -> String {
        format!(
            "deterministic simulator, seed {}, cluster {:?} ({} replicas, {} domains), {} tx/s; simulated time 0 mapped to {}",
            self.seed,
            self.topology.name,
            self.topology.n(),
            self.topology.domains.len(),
            TEST_TX_PER_S,
            self.start.to_rfc3339()
        )
    }

    fn inject(&mut self, scenario: &Scenario) -> Result<Injection, TargetError> {
        let (fault, description) = self.fault_for(scenario)?;
        self.fault = Some(fault);
        Ok(Injection {
            scenario: scenario.clone(),
            description,
            injected_at: self.at(0),
        })
    }

    fn observe(
        &mut self,
        injection: &Injection,
        fault_for: std::time::Duration,
        observe_for: std::time::Duration,
    ) -> Result<Observation, TargetError> {
        let fault = self
            .fault
            .clone()
            .ok_or_else(|| TargetError::Failed("observe before inject".into()))?;
        let fault_ms = fault_for.as_millis() as u64;
        let observe_ms = observe_for.as_millis() as u64;
        if fault_ms == 0 || observe_ms <= fault_ms {
            return Err(TargetError::Unsupported(format!(
                "the observation ({observe_ms} ms) must be longer than the fault phase ({fault_ms} ms), which must not be empty"
            )));
        }
        let options = SimOptions {
            topology: Some(self.topology.clone()),
            fault: Some(fault),
            fault_ms,
            stable_ms: observe_ms - fault_ms,
            tx_per_s: TEST_TX_PER_S,
            ..SimOptions::default()
        };
        let report =
            sim::run(self.seed, &options).map_err(|e| TargetError::Failed(e.to_string()))?;
        if crate::cmd_sim::hit_event_cap(&report) {
            let message = format!(
                "incomplete run: the simulator stopped at its cap of {} events after {:.3} of the {:.3} simulated seconds; no verdict is given (shorten --observe-ms and --fault-ms)",
                sim::EVENTS_PER_RUN_MAX,
                report.simulated_us as f64 / 1e6,
                observe_ms as f64 / 1e3
            );
            self.report = Some(report);
            return Err(TargetError::Failed(message));
        }
        let (health_events, injected_events) = self.events(&report);
        let healed_at = self.at(fault_ms * 1_000);
        // Service is back at the first block executed after the heal. A run that had
        // executed everything submitted before the heal (and lost nothing) had nothing left
        // to commit: it is recovered at the heal.
        let recovered_at = match report.first_commit_after_heal_us {
            Some(us) => Some(self.at(us)),
            None if report.committed_txs + report.pending_beyond_bound == report.submitted_txs
                && report.lost_txs == 0 =>
            {
                Some(healed_at)
            }
            None => None,
        };
        let observation = Observation {
            transactions_submitted: report.submitted_txs,
            transactions_committed: report.committed_txs,
            transactions_lost: report.lost_txs,
            health_events,
            injected_events,
            healed_at: Some(healed_at),
            recovered_at: recovered_at.filter(|t| *t >= injection.injected_at),
            observed_until: self.at(report.simulated_us),
        };
        self.report = Some(report);
        Ok(observation)
    }
}
