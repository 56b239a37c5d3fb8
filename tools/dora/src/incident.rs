//! Incidents: opened and tracked from health events (DORA Art. 17), merged when related,
//! with operator-supplied facts the ledger cannot know, and recurring incidents per Art. 8(2)
//! of Delegated Regulation (EU) 2024/1772.
//!
//! Merging: a problem event joins an open incident when it arrives within
//! [`MergePolicy::window_minutes`] of that incident's last event and is related to it: same
//! domain, same replica, same root-cause hint, or either side is cluster-wide (no domain and
//! no replica, e.g. a commit stall of the global tier). Otherwise it opens a new incident.
//! A recovery event ends the matching active condition; when no condition is active the
//! incident is recovered (it stays open for reporting until an operator closes it).

use crate::classify::{
    classify, Affected, Classification, ClassificationInput, DataLosses, Reputational, Transactions,
};
use crate::health::{EventKind, HealthEvent};
use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

/// Most incidents the tracker keeps.
pub const INCIDENTS_MAX: usize = 10_000;
/// Most event ids recorded per incident (the count goes on).
pub const EVENT_IDS_PER_INCIDENT_MAX: usize = 1_000;
/// Most event ids remembered for idempotent ingest; the oldest are forgotten first.
pub const SEEN_EVENT_IDS_MAX: usize = 1_000_000;
/// Most conditions per incident.
pub const CONDITIONS_PER_INCIDENT_MAX: usize = 1_000;
/// Art. 8(2) of 2024/1772: recurring incidents within 6 months.
pub const RECURRING_WINDOW_MONTHS: u32 = 6;
/// Art. 8(2): at least twice.
pub const RECURRING_OCCURRENCES_MIN: usize = 2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IncidentError {
    #[error("more than {INCIDENTS_MAX} incidents tracked; close or archive old ones")]
    TooManyIncidents,
    #[error("no incident {0:?}")]
    UnknownIncident(String),
    #[error("operator facts: {0}")]
    Facts(String),
    #[error("{what} {at} precedes the detection of incident {id} at {detected}")]
    BeforeDetection {
        id: String,
        what: String,
        at: String,
        detected: String,
    },
}

/// How related events are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergePolicy {
    pub window_minutes: i64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy { window_minutes: 30 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Recovered,
    Closed,
}

/// One problem condition inside an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: EventKind,
    pub replica: Option<u32>,
    pub domain: Option<String>,
    pub since: DateTime<Utc>,
    pub recovered_at: Option<DateTime<Utc>>,
}

/// Facts the ledger cannot know, supplied by the operator (all optional; what is missing is
/// listed by [`Incident::classification_input`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorFacts {
    pub critical_services_affected: Option<bool>,
    pub clients: Option<Affected>,
    pub financial_counterparts: Option<Affected>,
    pub transactions: Option<Transactions>,
    pub relevant_clients_affected: Option<bool>,
    pub reputational: Option<Vec<Reputational>>,
    /// ISO 3166 codes of the Member States impacted.
    pub member_states: Option<Vec<String>>,
    pub data_losses: Option<DataLosses>,
    pub malicious_unauthorised_access: Option<bool>,
    pub economic_impact_eur: Option<f64>,
    /// Apparent root cause (used for recurring incidents).
    pub root_cause: Option<String>,
    /// When the incident occurred, if before the first event.
    pub occurred_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub discovery: Option<String>,
    pub origin: Option<String>,
    pub business_continuity_plan_activated: Option<bool>,
}

impl OperatorFacts {
    /// The checks [`ClassificationInput::from_value`] applies, on the fields given; the error
    /// names the field.
    pub fn check(&self) -> Result<(), String> {
        for (field, a) in [
            ("clients", self.clients),
            ("financial_counterparts", self.financial_counterparts),
        ] {
            if let Some(a) = a.filter(|a| a.affected > a.total) {
                return Err(format!(
                    "{field}.affected: {} affected is more than {} in total",
                    a.affected, a.total
                ));
            }
        }
        let amount = |field: &str, x: Option<f64>| match x {
            Some(x) if !x.is_finite() || x < 0.0 => Err(format!(
                "{field} must be a non-negative number of euros, not {x}"
            )),
            _ => Ok(()),
        };
        amount("economic_impact_eur", self.economic_impact_eur)?;
        if let Some(t) = &self.transactions {
            amount(
                "transactions.value_affected_eur",
                Some(t.value_affected_eur),
            )?;
            amount(
                "transactions.daily_average_value_eur",
                Some(t.daily_average_value_eur),
            )?;
        }
        for code in self.member_states.iter().flatten() {
            if !crate::identifiers::is_country_code(code) {
                return Err(format!(
                    "member_states: {code:?} is not an ISO 3166-1 alpha-2 country code"
                ));
            }
        }
        if let Some(t) = self.occurred_at {
            crate::deadlines::check_time("occurred_at", t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Which reports have been submitted, and when.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReportsSent {
    pub initial: Option<DateTime<Utc>>,
    pub intermediate: Option<DateTime<Utc>>,
    #[serde(rename = "final")]
    pub final_report: Option<DateTime<Utc>>,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub status: Status,
    /// First event seen: when the entity became aware (detection, field 2.2 of 2025/302).
    pub detected_at: DateTime<Utc>,
    pub last_event_at: DateTime<Utc>,
    pub recovered_at: Option<DateTime<Utc>>,
    pub kinds: BTreeSet<EventKind>,
    pub domains: BTreeSet<String>,
    pub replicas: BTreeSet<u32>,
    pub services: BTreeSet<String>,
    pub root_cause_hints: BTreeSet<String>,
    pub conditions: Vec<Condition>,
    pub event_ids: Vec<String>,
    pub event_count: u64,
    pub equivocation_offenders: BTreeSet<u32>,
    pub facts: OperatorFacts,
    pub classification: Option<Classification>,
    pub classified_at: Option<DateTime<Utc>>,
    /// When it was first classified as major (field 2.3 of 2025/302).
    pub major_since: Option<DateTime<Utc>>,
    /// Facts still missing at the last classification (the result is provisional).
    pub missing_facts: Vec<String>,
    pub reports_sent: ReportsSent,
}

impl Incident {
    fn open(id: String, event: &HealthEvent, domain: Option<String>) -> Incident {
        let mut incident = Incident {
            id,
            status: Status::Open,
            detected_at: event.at,
            last_event_at: event.at,
            recovered_at: None,
            kinds: BTreeSet::new(),
            domains: BTreeSet::new(),
            replicas: BTreeSet::new(),
            services: BTreeSet::new(),
            root_cause_hints: BTreeSet::new(),
            conditions: Vec::new(),
            event_ids: Vec::new(),
            event_count: 0,
            equivocation_offenders: BTreeSet::new(),
            facts: OperatorFacts::default(),
            classification: None,
            classified_at: None,
            major_since: None,
            missing_facts: Vec::new(),
            reports_sent: ReportsSent::default(),
        };
        incident.absorb(event, domain);
        incident
    }

    fn absorb(&mut self, event: &HealthEvent, domain: Option<String>) {
        self.last_event_at = self.last_event_at.max(event.at);
        self.kinds.insert(event.kind);
        if let Some(d) = &domain {
            self.domains.insert(d.clone());
        }
        if let Some(r) = event.replica {
            self.replicas.insert(r);
        }
        self.services.insert(event.service_name().to_string());
        if let Some(hint) = &event.root_cause_hint {
            self.root_cause_hints.insert(hint.clone());
        }
        if let Some(ev) = &event.evidence {
            self.equivocation_offenders.insert(ev.offender);
        }
        self.record_event(event);
        let already = self.conditions.iter().any(|c| {
            c.kind == event.kind
                && c.replica == event.replica
                && c.domain == domain
                && c.recovered_at.is_none()
        });
        if !already && self.conditions.len() < CONDITIONS_PER_INCIDENT_MAX {
            self.conditions.push(Condition {
                kind: event.kind,
                replica: event.replica,
                domain,
                since: event.at,
                recovered_at: None,
            });
        }
        self.status = Status::Open;
        self.recovered_at = None;
    }

    /// Refuse a time before detection (the deadlines are counted from detection).
    pub fn check_after_detection(
        &self,
        what: &str,
        at: DateTime<Utc>,
    ) -> Result<(), IncidentError> {
        if at >= self.detected_at {
            return Ok(());
        }
        Err(IncidentError::BeforeDetection {
            id: self.id.clone(),
            what: what.to_string(),
            at: crate::deadlines::rfc3339(at),
            detected: crate::deadlines::rfc3339(self.detected_at),
        })
    }

    fn record_event(&mut self, event: &HealthEvent) {
        self.event_count += 1;
        if self.event_ids.len() < EVENT_IDS_PER_INCIDENT_MAX {
            self.event_ids.push(event.event_id.clone());
        }
    }

    fn is_cluster_wide(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| c.domain.is_none() && c.replica.is_none())
    }

    fn related(&self, event: &HealthEvent, domain: &Option<String>) -> bool {
        let event_wide = domain.is_none() && event.replica.is_none();
        event_wide
            || self.is_cluster_wide()
            || domain.as_ref().is_some_and(|d| self.domains.contains(d))
            || event.replica.is_some_and(|r| self.replicas.contains(&r))
            || event
                .root_cause_hint
                .as_ref()
                .is_some_and(|h| self.root_cause_hints.contains(h))
    }

    /// When it occurred: the operator's time if earlier, else the first event.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self.facts.occurred_at {
            Some(t) if t < self.detected_at => t,
            _ => self.detected_at,
        }
    }

    /// The apparent root cause: the operator's, else the single hint the events carried.
    pub fn root_cause(&self) -> Option<String> {
        if let Some(cause) = &self.facts.root_cause {
            return Some(cause.clone());
        }
        if self.root_cause_hints.len() == 1 {
            return self.root_cause_hints.iter().next().cloned();
        }
        None
    }

    /// Total time during which an outage condition (commit stall, partition, replica down)
    /// was active, union of intervals, up to `as_of`.
    pub fn downtime(&self, as_of: DateTime<Utc>) -> Duration {
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = self
            .conditions
            .iter()
            .filter(|c| c.kind.is_outage() && c.kind != EventKind::ReplicaDown)
            .map(|c| (c.since, c.recovered_at.unwrap_or(as_of).max(c.since)))
            .collect();
        spans.sort();
        let mut total = Duration::zero();
        let mut current: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        for (start, end) in spans {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                Some((s, e)) => {
                    total += e - s;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((s, e)) = current {
            total += e - s;
        }
        total
    }

    /// The classification input from the events and the operator's facts, and the list of
    /// facts still missing (then defaults that understate the impact are used, so the result
    /// is provisional).
    pub fn classification_input(&self, as_of: DateTime<Utc>) -> (ClassificationInput, Vec<String>) {
        let f = &self.facts;
        let mut missing = Vec::new();
        let mut need = |name: &str, present: bool| {
            if !present {
                missing.push(name.to_string());
            }
        };
        need("clients", f.clients.is_some());
        need("financial_counterparts", f.financial_counterparts.is_some());
        need("transactions", f.transactions.is_some());
        need("reputational", f.reputational.is_some());
        need("member_states", f.member_states.is_some());
        need("economic_impact_eur", f.economic_impact_eur.is_some());
        let end = self.recovered_at.unwrap_or(as_of);
        let hours = |d: Duration| d.num_seconds().max(0) as f64 / 3600.0;
        // The ledger orders payments: an outage of it affects a critical function
        // (B_06.01 of the register), unless the operator says otherwise.
        let outage = self
            .kinds
            .iter()
            .any(|k| k.is_outage() || k.needs_operator());
        let input = ClassificationInput {
            critical_services_affected: f.critical_services_affected.unwrap_or(outage),
            clients: f.clients.unwrap_or_default(),
            financial_counterparts: f.financial_counterparts.unwrap_or_default(),
            transactions: f.transactions.unwrap_or_default(),
            relevant_clients_affected: f.relevant_clients_affected.unwrap_or(false),
            reputational: f.reputational.clone().unwrap_or_default(),
            duration_hours: hours(end - self.occurred_at()),
            service_downtime_hours: hours(self.downtime(as_of)),
            member_states_affected: f.member_states.as_ref().map_or(0, |m| m.len() as u64),
            data_losses: f.data_losses.unwrap_or_default(),
            malicious_unauthorised_access: f.malicious_unauthorised_access.unwrap_or(false),
            economic_impact_eur: f.economic_impact_eur.unwrap_or(0.0),
            detected_at: self.detected_at,
            classified_at: None,
            attempted_malicious_access: false,
        };
        (input, missing)
    }

    pub fn is_major(&self) -> bool {
        self.classification.as_ref().is_some_and(|c| c.major)
    }
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "incident")]
pub enum Ingested {
    Opened(String),
    Merged(String),
    Recovered(String),
    ConditionEnded(String),
    /// A recovery that matched no active condition.
    Unmatched,
    /// An event id ingested before: nothing changed.
    Duplicate,
}

/// The incidents of one engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IncidentTracker {
    pub incidents: Vec<Incident>,
    pub next_seq: u64,
    #[serde(default)]
    pub policy: MergePolicy,
    /// Replica id to domain name, from the topology, to place replica events.
    #[serde(default)]
    pub replica_domains: BTreeMap<u32, String>,
    /// Ids of the events already ingested, oldest first (at most [`SEEN_EVENT_IDS_MAX`]): an
    /// event fed twice is recognised and changes nothing.
    #[serde(default)]
    pub seen_event_ids: VecDeque<String>,
    #[serde(skip)]
    seen_index: HashSet<String>,
}

impl IncidentTracker {
    pub fn new(policy: MergePolicy) -> IncidentTracker {
        IncidentTracker {
            policy,
            next_seq: 1,
            ..IncidentTracker::default()
        }
    }

    pub fn with_topology(mut self, topology: &ccbft_core::topology::Topology) -> IncidentTracker {
        for r in &topology.replicas {
            self.replica_domains
                .insert(r.id, topology.domains[r.domain as usize].name.clone());
        }
        self
    }

    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Result<&mut Incident, IncidentError> {
        self.incidents
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or_else(|| IncidentError::UnknownIncident(id.to_string()))
    }

    /// Has this event id been ingested already?
    pub fn seen(&mut self, event_id: &str) -> bool {
        if self.seen_index.len() != self.seen_event_ids.len() {
            self.seen_index = self.seen_event_ids.iter().cloned().collect();
        }
        self.seen_index.contains(event_id)
    }

    fn remember(&mut self, event_id: &str) {
        if self.seen_event_ids.len() >= SEEN_EVENT_IDS_MAX {
            if let Some(old) = self.seen_event_ids.pop_front() {
                self.seen_index.remove(&old);
            }
        }
        self.seen_event_ids.push_back(event_id.to_string());
        self.seen_index.insert(event_id.to_string());
    }

    /// Feed one event; an event id seen before is [`Ingested::Duplicate`] and changes nothing.
    pub fn ingest(&mut self, event: &HealthEvent) -> Result<Ingested, IncidentError> {
        if self.seen(&event.event_id) {
            return Ok(Ingested::Duplicate);
        }
        let outcome = self.ingest_new(event)?;
        self.remember(&event.event_id);
        Ok(outcome)
    }

    fn ingest_new(&mut self, event: &HealthEvent) -> Result<Ingested, IncidentError> {
        let domain = event.domain.clone().or_else(|| {
            event
                .replica
                .and_then(|r| self.replica_domains.get(&r).cloned())
        });
        if event.kind.is_problem() {
            return self.ingest_problem(event, domain);
        }
        Ok(self.ingest_recovery(event, domain))
    }

    fn ingest_problem(
        &mut self,
        event: &HealthEvent,
        domain: Option<String>,
    ) -> Result<Ingested, IncidentError> {
        let window = Duration::minutes(self.policy.window_minutes);
        let target = self.incidents.iter_mut().rev().find(|i| {
            i.status != Status::Closed
                && event.at >= i.detected_at - window
                && event.at - i.last_event_at <= window
                && i.related(event, &domain)
        });
        if let Some(incident) = target {
            incident.absorb(event, domain);
            return Ok(Ingested::Merged(incident.id.clone()));
        }
        if self.incidents.len() >= INCIDENTS_MAX {
            return Err(IncidentError::TooManyIncidents);
        }
        let id = format!("INC-{}-{:04}", event.at.format("%Y%m%d"), self.next_seq);
        self.next_seq += 1;
        self.incidents
            .push(Incident::open(id.clone(), event, domain));
        Ok(Ingested::Opened(id))
    }

    fn ingest_recovery(&mut self, event: &HealthEvent, domain: Option<String>) -> Ingested {
        let Some(problem) = event.kind.recovers() else {
            return Ingested::Unmatched;
        };
        for incident in self.incidents.iter_mut().rev() {
            if incident.status == Status::Closed {
                continue;
            }
            let matching = incident.conditions.iter_mut().find(|c| {
                c.kind == problem
                    && c.recovered_at.is_none()
                    && (event.replica.is_none() || c.replica == event.replica)
                    && (domain.is_none() || c.domain == domain)
            });
            if let Some(condition) = matching {
                condition.recovered_at = Some(event.at.max(condition.since));
                incident.record_event(event);
                incident.last_event_at = incident.last_event_at.max(event.at);
                let active = incident
                    .conditions
                    .iter()
                    .any(|c| c.recovered_at.is_none() && c.kind.recovered_by().is_some());
                let needs_operator = incident.kinds.iter().any(|k| k.needs_operator());
                if !active && !needs_operator {
                    incident.status = Status::Recovered;
                    incident.recovered_at = Some(event.at);
                    return Ingested::Recovered(incident.id.clone());
                }
                return Ingested::ConditionEnded(incident.id.clone());
            }
        }
        Ingested::Unmatched
    }

    /// Classify (or re-classify) an incident at `at` (Art. 8(1) of 2024/1772).
    pub fn classify(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Classification, IncidentError> {
        let incident = self.get_mut(id)?;
        incident.check_after_detection("classification time", at)?;
        let (mut input, missing) = incident.classification_input(at);
        input.classified_at = Some(at);
        let classification = classify(&input);
        if classification.major && incident.major_since.is_none() {
            incident.major_since = Some(at);
        }
        incident.classification = Some(classification.clone());
        incident.classified_at = Some(at);
        incident.missing_facts = missing;
        Ok(classification)
    }

    /// Record the operator's facts (replacing the fields given).
    pub fn set_facts(&mut self, id: &str, facts: OperatorFacts) -> Result<(), IncidentError> {
        facts.check().map_err(IncidentError::Facts)?;
        let incident = self.get_mut(id)?;
        if let Some(at) = facts.occurred_at {
            if at > incident.detected_at {
                return Err(IncidentError::Facts(format!(
                    "occurred_at {} is after the detection at {}; it is the time the incident occurred before it was detected",
                    crate::deadlines::rfc3339(at),
                    crate::deadlines::rfc3339(incident.detected_at)
                )));
            }
        }
        let old = std::mem::take(&mut incident.facts);
        incident.facts = merge_facts(old, facts);
        Ok(())
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.iter().filter(|i| i.status != Status::Closed)
    }
}

fn merge_facts(old: OperatorFacts, new: OperatorFacts) -> OperatorFacts {
    OperatorFacts {
        critical_services_affected: new
            .critical_services_affected
            .or(old.critical_services_affected),
        clients: new.clients.or(old.clients),
        financial_counterparts: new.financial_counterparts.or(old.financial_counterparts),
        transactions: new.transactions.or(old.transactions),
        relevant_clients_affected: new
            .relevant_clients_affected
            .or(old.relevant_clients_affected),
        reputational: new.reputational.or(old.reputational),
        member_states: new.member_states.or(old.member_states),
        data_losses: new.data_losses.or(old.data_losses),
        malicious_unauthorised_access: new
            .malicious_unauthorised_access
            .or(old.malicious_unauthorised_access),
        economic_impact_eur: new.economic_impact_eur.or(old.economic_impact_eur),
        root_cause: new.root_cause.or(old.root_cause),
        occurred_at: new.occurred_at.or(old.occurred_at),
        description: new.description.or(old.description),
        discovery: new.discovery.or(old.discovery),
        origin: new.origin.or(old.origin),
        business_continuity_plan_activated: new
            .business_continuity_plan_activated
            .or(old.business_continuity_plan_activated),
    }
}

/// Incidents that together count as one major incident (Art. 8(2) of 2024/1772).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurringGroup {
    pub root_cause: String,
    pub incident_ids: Vec<String>,
    pub first_occurred_at: DateTime<Utc>,
    /// Detection of the last one (field 2.2 of 2025/302 for aggregated reports).
    pub last_detected_at: DateTime<Utc>,
    /// The aggregated input and its classification under Art. 8(1).
    pub aggregate: ClassificationInput,
    pub classification: Classification,
    pub major: bool,
    pub explanation: String,
}

/// Art. 8(2) of 2024/1772, checked monthly: incidents that are individually not major count
/// as one major incident if they occurred at least twice within 6 months, share the same
/// apparent root cause and together meet Art. 8(1). Not for microenterprises and the
/// entities of DORA Art. 16(1) (`exempt`). Returns every group of two or more, major or not.
///
/// Aggregation: affected counts, values, durations, downtimes and economic impact add up;
/// totals and daily averages take the largest; yes/no facts are or-ed; Member States the
/// largest count.
pub fn recurring_groups(
    incidents: &[Incident],
    as_of: DateTime<Utc>,
    exempt: bool,
) -> Vec<RecurringGroup> {
    if exempt {
        return Vec::new();
    }
    let since = as_of
        .checked_sub_months(Months::new(RECURRING_WINDOW_MONTHS))
        .unwrap_or(as_of);
    let mut by_cause: BTreeMap<String, Vec<&Incident>> = BTreeMap::new();
    for incident in incidents {
        let occurred = incident.occurred_at();
        if incident.is_major() || occurred < since || occurred > as_of {
            continue;
        }
        if let Some(cause) = incident.root_cause() {
            by_cause.entry(cause).or_default().push(incident);
        }
    }
    by_cause
        .into_iter()
        .filter(|(_, list)| list.len() >= RECURRING_OCCURRENCES_MIN)
        .map(|(cause, list)| aggregate_group(cause, &list, as_of))
        .collect()
}

fn aggregate_group(cause: String, list: &[&Incident], as_of: DateTime<Utc>) -> RecurringGroup {
    let inputs: Vec<ClassificationInput> = list
        .iter()
        .map(|i| i.classification_input(as_of).0)
        .collect();
    let last = list
        .iter()
        .max_by_key(|i| i.detected_at)
        .expect("non-empty");
    let aggregate = aggregate_inputs(&inputs, last.detected_at);
    let classification = classify(&aggregate);
    let major = classification.major;
    let explanation = format!(
        "{} incidents with root cause {:?} occurred within {RECURRING_WINDOW_MONTHS} months before {}; together they {} the Art. 8(1) rule, so they {} one major incident (Art. 8(2) of Delegated Regulation (EU) 2024/1772). {}",
        list.len(),
        cause,
        crate::deadlines::rfc3339(as_of),
        if major { "meet" } else { "do not meet" },
        if major { "count as" } else { "do not count as" },
        classification.explanation
    );
    RecurringGroup {
        root_cause: cause,
        incident_ids: list.iter().map(|i| i.id.clone()).collect(),
        first_occurred_at: list
            .iter()
            .map(|i| i.occurred_at())
            .min()
            .expect("non-empty"),
        last_detected_at: last.detected_at,
        aggregate,
        classification,
        major,
        explanation,
    }
}

/// Aggregate several incidents' inputs (see [`recurring_groups`]).
pub fn aggregate_inputs(
    inputs: &[ClassificationInput],
    detected_at: DateTime<Utc>,
) -> ClassificationInput {
    let mut reputational: Vec<Reputational> = inputs
        .iter()
        .flat_map(|i| i.reputational.iter().copied())
        .collect();
    reputational.sort();
    reputational.dedup();
    let sum_aff = |get: fn(&ClassificationInput) -> Affected| Affected {
        affected: inputs.iter().map(|i| get(i).affected).sum(),
        total: inputs.iter().map(|i| get(i).total).max().unwrap_or(0),
    };
    let clients = sum_aff(|i| i.clients);
    let financial_counterparts = sum_aff(|i| i.financial_counterparts);
    ClassificationInput {
        critical_services_affected: inputs.iter().any(|i| i.critical_services_affected),
        clients: Affected {
            affected: clients.affected.min(clients.total.max(clients.affected)),
            total: clients.total.max(clients.affected),
        },
        financial_counterparts: Affected {
            affected: financial_counterparts.affected,
            total: financial_counterparts
                .total
                .max(financial_counterparts.affected),
        },
        transactions: Transactions {
            affected: inputs.iter().map(|i| i.transactions.affected).sum(),
            daily_average: inputs
                .iter()
                .map(|i| i.transactions.daily_average)
                .max()
                .unwrap_or(0),
            value_affected_eur: inputs
                .iter()
                .map(|i| i.transactions.value_affected_eur)
                .sum(),
            daily_average_value_eur: inputs
                .iter()
                .map(|i| i.transactions.daily_average_value_eur)
                .fold(0.0, f64::max),
        },
        relevant_clients_affected: inputs.iter().any(|i| i.relevant_clients_affected),
        reputational,
        duration_hours: inputs.iter().map(|i| i.duration_hours).sum(),
        service_downtime_hours: inputs.iter().map(|i| i.service_downtime_hours).sum(),
        member_states_affected: inputs
            .iter()
            .map(|i| i.member_states_affected)
            .max()
            .unwrap_or(0),
        data_losses: DataLosses {
            availability: inputs.iter().any(|i| i.data_losses.availability),
            authenticity: inputs.iter().any(|i| i.data_losses.authenticity),
            integrity: inputs.iter().any(|i| i.data_losses.integrity),
            confidentiality: inputs.iter().any(|i| i.data_losses.confidentiality),
            adverse_impact: inputs.iter().any(|i| i.data_losses.adverse_impact),
        },
        malicious_unauthorised_access: inputs.iter().any(|i| i.malicious_unauthorised_access),
        economic_impact_eur: inputs.iter().map(|i| i.economic_impact_eur).sum(),
        detected_at,
        classified_at: None,
        attempted_malicious_access: inputs.iter().any(|i| i.attempted_malicious_access),
    }
}
