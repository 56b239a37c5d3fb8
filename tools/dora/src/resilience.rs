//! Digital operational resilience testing (DORA Art. 24-27).
//!
//! A scenario is injected into a cluster, and observed, through [`ResilienceTarget`]; the
//! simulator and the live runtime implement it (the shaper and adversary hooks of
//! DESIGN.md). [`run_scenario`] turns what the target reports into an [`Evidence`] record:
//! what was injected and when, time to detect (from the injection to the first health event
//! derived from the replicas' signals that opens or updates an incident), time to recover, transactions submitted,
//! committed and lost (lost must be 0, or the test fails), the health events seen and the
//! incident they opened. [`TestPlan`] is the yearly programme (Art. 24(6): at least yearly
//! for systems supporting critical or important functions) and [`TlptRecord`] a threat-led
//! penetration test following TIBER-EU (Art. 26-27, every 3 years for designated entities).

use crate::health::HealthEvent;
use crate::incident::{IncidentTracker, Ingested, MergePolicy};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Most health events an observation may carry.
pub const OBSERVED_EVENTS_MAX: usize = 100_000;
/// Longest observation a target is asked for.
pub const OBSERVATION_SECONDS_MAX: u64 = 3_600;
/// Art. 26(1): TLPT at least every 3 years.
pub const TLPT_INTERVAL_YEARS: u32 = 3;

/// A scenario (DESIGN.md, resilience tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scenario")]
pub enum Scenario {
    /// The global leader equivocates or withholds proposals (adversary mode).
    ByzantineLeader,
    /// One domain is cut off from the others.
    DomainPartition { domain: Option<String> },
    /// Every replica of one provider stops.
    ProviderOutage { provider: Option<String> },
    /// A committed record on one replica's disk is corrupted.
    DiskCorruption { replica: Option<u32> },
    /// Extra latency on the inter-domain links.
    LatencySpike { extra_ms: u32 },
    /// One replica crashes and restarts repeatedly.
    ReplicaCrashLoop { replica: Option<u32> },
}

impl Scenario {
    pub const NAMES: [&'static str; 6] = [
        "byzantine-leader",
        "domain-partition",
        "provider-outage",
        "disk-corruption",
        "latency-spike",
        "crash-loop",
    ];

    /// Parse a scenario name with its default parameters.
    pub fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "byzantine-leader" => Scenario::ByzantineLeader,
            "domain-partition" => Scenario::DomainPartition { domain: None },
            "provider-outage" => Scenario::ProviderOutage { provider: None },
            "disk-corruption" => Scenario::DiskCorruption { replica: None },
            "latency-spike" => Scenario::LatencySpike { extra_ms: 200 },
            "crash-loop" => Scenario::ReplicaCrashLoop { replica: None },
            _ => return None,
        })
    }
}

/// What the target injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    pub scenario: Scenario,
    /// Human-readable description of exactly what was done (which replicas, links, bytes).
    pub description: String,
    pub injected_at: DateTime<Utc>,
}

/// What the target saw after the injection, up to healing and recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub transactions_submitted: u64,
    pub transactions_committed: u64,
    /// Submitted, acknowledged to the client, and then not in the committed ledger.
    pub transactions_lost: u64,
    /// Health events derived from the replicas' own signals while observed (view changes,
    /// round timeouts, equivocation evidence, commits resuming). Detection and incidents come
    /// from these only.
    pub health_events: Vec<HealthEvent>,
    /// What the target itself recorded of its fault injection (a replica stopped or
    /// restarted, a domain cut off, the heal). Kept in the evidence for the record; never
    /// used to measure detection or to open incidents, since the engine did not detect them.
    #[serde(default)]
    pub injected_events: Vec<HealthEvent>,
    /// When the fault was healed (the injection ended).
    pub healed_at: Option<DateTime<Utc>>,
    /// When service was back (commits at the normal rate again), if it was.
    pub recovered_at: Option<DateTime<Utc>>,
    pub observed_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("no resilience target is available: {0}")]
    Unavailable(String),
    #[error("scenario not supported by this target: {0}")]
    Unsupported(String),
    #[error("target failed: {0}")]
    Failed(String),
}

/// A cluster that scenarios can be run against: the deterministic simulator or a live
/// cluster through its shaper and adversary hooks. Implemented by the lead in `core`.
pub trait ResilienceTarget {
    /// What this target is (e.g. "simulator seed 42, 7 replicas", "live cluster three-clouds").
    fn describe(&self) -> String;
    /// Start a client load and inject the scenario; return exactly what was injected, when.
    fn inject(&mut self, scenario: &Scenario) -> Result<Injection, TargetError>;
    /// Keep the load running, heal the fault after `fault_for`, and observe until recovery or
    /// until `observe_for` has passed since the injection.
    fn observe(
        &mut self,
        injection: &Injection,
        fault_for: std::time::Duration,
        observe_for: std::time::Duration,
    ) -> Result<Observation, TargetError>;
}

/// The health event that detected the fault: the first one, at or after the injection,
/// that opened or updated an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub event_id: String,
    pub kind: crate::health::EventKind,
    pub at: DateTime<Utc>,
    /// The incident it opened or updated (ids of the fresh tracker of [`evidence_from`]).
    pub incident: String,
}

/// The evidence record of one scenario run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub target: String,
    pub injection: Injection,
    pub detected_at: Option<DateTime<Utc>>,
    /// Measured from the injection to [`Evidence::detected_by`].
    pub time_to_detect_seconds: Option<f64>,
    #[serde(default)]
    pub detected_by: Option<Detection>,
    pub recovered_at: Option<DateTime<Utc>>,
    pub time_to_recover_seconds: Option<f64>,
    pub transactions_submitted: u64,
    pub transactions_committed: u64,
    pub transactions_lost: u64,
    pub health_events: Vec<HealthEvent>,
    /// The target's own fault-injection records (see [`Observation::injected_events`]).
    #[serde(default)]
    pub injected_events: Vec<HealthEvent>,
    /// Incidents the health events opened in a fresh tracker.
    pub incidents_opened: Vec<String>,
    pub passed: bool,
    pub findings: Vec<String>,
}

fn seconds(d: Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Run a scenario and build its evidence. Fails the test when any transaction was lost,
/// when the cluster never recovered, or when nothing was detected.
pub fn run_scenario(
    target: &mut dyn ResilienceTarget,
    scenario: &Scenario,
    fault_for: std::time::Duration,
    observe_for: std::time::Duration,
) -> Result<Evidence, TargetError> {
    let observe_for = observe_for.min(std::time::Duration::from_secs(OBSERVATION_SECONDS_MAX));
    let injection = target.inject(scenario)?;
    let mut observation = target.observe(&injection, fault_for, observe_for)?;
    observation.health_events.truncate(OBSERVED_EVENTS_MAX);
    observation.injected_events.truncate(OBSERVED_EVENTS_MAX);
    Ok(evidence_from(target.describe(), injection, observation))
}

/// Build the evidence from an injection and its observation.
///
/// Time to detect runs from the injection to the first of the observation's health events
/// (at or after the injection) that opens or updates an incident when fed, in time order, to
/// a fresh [`IncidentTracker`]: the moment the engine itself, from the replicas' signals,
/// has an incident. The target's injection records ([`Observation::injected_events`]) are
/// never used for it.
pub fn evidence_from(target: String, injection: Injection, observation: Observation) -> Evidence {
    let mut tracker = IncidentTracker::new(MergePolicy::default());
    let mut opened = Vec::new();
    let mut detected_by: Option<Detection> = None;
    let mut events = observation.health_events.clone();
    events.sort_by_key(|e| e.at);
    for event in &events {
        let incident = match tracker.ingest(event) {
            Ok(Ingested::Opened(id)) => {
                opened.push(id.clone());
                Some(id)
            }
            Ok(Ingested::Merged(id)) => Some(id),
            _ => None,
        };
        if let Some(incident) = incident {
            if detected_by.is_none() && event.at >= injection.injected_at {
                detected_by = Some(Detection {
                    event_id: event.event_id.clone(),
                    kind: event.kind,
                    at: event.at,
                    incident,
                });
            }
        }
    }
    let detected_at = detected_by.as_ref().map(|d| d.at);
    let mut injected_events = observation.injected_events.clone();
    injected_events.sort_by_key(|e| e.at);
    let mut findings = Vec::new();
    if observation.transactions_lost > 0 {
        findings.push(format!(
            "{} transactions lost: DORA Art. 12 backup and restoration expectations and the ledger's guarantees are breached",
            observation.transactions_lost
        ));
    }
    if detected_at.is_none() {
        findings
            .push("the injected fault raised no health event (detection gap, DORA Art. 10)".into());
    }
    if observation.recovered_at.is_none() {
        findings.push(
            "the cluster did not recover within the observation window (DORA Art. 11)".into(),
        );
    }
    if observation.transactions_committed + observation.transactions_lost
        > observation.transactions_submitted
    {
        findings.push(
            "committed plus lost exceeds submitted: the target's counters are inconsistent".into(),
        );
    }
    Evidence {
        target,
        time_to_detect_seconds: detected_at.map(|t| seconds(t - injection.injected_at)),
        detected_at,
        detected_by,
        time_to_recover_seconds: observation
            .recovered_at
            .map(|t| seconds(t - injection.injected_at)),
        recovered_at: observation.recovered_at,
        transactions_submitted: observation.transactions_submitted,
        transactions_committed: observation.transactions_committed,
        transactions_lost: observation.transactions_lost,
        health_events: events,
        injected_events,
        incidents_opened: opened,
        passed: findings.is_empty(),
        findings,
        injection,
    }
}

/// One planned test of the yearly programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTest {
    /// Scenario name, or another test type (vulnerability assessment, performance test, ...).
    pub test: String,
    pub scope: String,
    pub planned_on: NaiveDate,
    pub done_on: Option<NaiveDate>,
    /// File of the evidence record, when run.
    pub evidence: Option<String>,
}

/// The yearly testing programme (DORA Art. 24-25).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPlan {
    pub year: i32,
    pub critical_functions: Vec<String>,
    pub tests: Vec<PlannedTest>,
}

impl TestPlan {
    /// Problems with the plan: tests outside its year, functions not covered by any test.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tests {
            if chrono::Datelike::year(&t.planned_on) != self.year {
                out.push(format!(
                    "test {:?} planned on {} is outside {}",
                    t.test, t.planned_on, self.year
                ));
            }
        }
        if self.tests.is_empty() {
            out.push(format!("no test planned for {}: systems supporting critical or important functions must be tested at least yearly (DORA Art. 24(6))", self.year));
        }
        for f in &self.critical_functions {
            if !self.tests.iter().any(|t| t.scope.contains(f.as_str())) {
                out.push(format!("critical function {f:?} is in no test's scope"));
            }
        }
        out
    }
}

/// A finding of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub severity: String,
    pub description: String,
    pub remediation: String,
    pub due: Option<NaiveDate>,
    pub closed: bool,
}

/// A dated phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub notes: String,
}

/// A threat-led penetration test (DORA Art. 26-27, TIBER-EU phases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlptRecord {
    pub id: String,
    pub framework: String,
    pub scope: Vec<String>,
    pub live_production: bool,
    pub control_team: Vec<String>,
    pub external_testers: Vec<String>,
    pub threat_intelligence_provider: Option<String>,
    pub preparation: Phase,
    pub threat_intelligence: Option<Phase>,
    pub red_team: Option<Phase>,
    /// Closure: blue-team replay and remediation plan.
    pub closure: Option<Phase>,
    pub findings: Vec<Finding>,
    pub attested_on: Option<NaiveDate>,
}

impl TlptRecord {
    /// The next TLPT is due 3 years after this one's attestation (or start).
    pub fn next_due(&self) -> NaiveDate {
        let from = self.attested_on.unwrap_or(self.preparation.start);
        from.checked_add_months(Months::new(12 * TLPT_INTERVAL_YEARS))
            .unwrap_or(from)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.live_production {
            out.push("TLPT must run on live production systems (DORA Art. 26(2))".into());
        }
        if self.external_testers.is_empty() {
            out.push("no external testers recorded (DORA Art. 27)".into());
        }
        let phases = [
            &Some(self.preparation.clone()),
            &self.threat_intelligence,
            &self.red_team,
            &self.closure,
        ];
        let mut previous_end: Option<NaiveDate> = None;
        for phase in phases.into_iter().flatten() {
            if let Some(end) = phase.end {
                if end < phase.start {
                    out.push(format!(
                        "a phase ends ({end}) before it starts ({})",
                        phase.start
                    ));
                }
            }
            if let Some(prev) = previous_end {
                if phase.start < prev {
                    out.push(format!(
                        "a phase starts ({}) before the previous one ended ({prev})",
                        phase.start
                    ));
                }
            }
            previous_end = phase.end.or(Some(phase.start));
        }
        out
    }
}
