//! Health events: the format the replica runtime emits and the engine consumes.
//!
//! The format is the JSON Schema shipped in `tools/dora/schema/health-event.schema.json`
//! ([`HEALTH_EVENT_SCHEMA`]); these types mirror it. A stream is JSON Lines, one event per
//! line. Events are checked against the schema before they are parsed, so the schema is the
//! contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The shipped JSON Schema of one health event.
pub const HEALTH_EVENT_SCHEMA: &str = include_str!("../schema/health-event.schema.json");
/// Value of the `schema` field.
pub const SCHEMA_TAG: &str = "ccbft.health-event/v1";
/// Most events accepted in one stream (file or request).
pub const EVENTS_PER_STREAM_MAX: usize = 100_000;
/// Longest line accepted in a stream.
pub const EVENT_LINE_BYTES_MAX: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HealthError {
    #[error("line {line}: not valid JSON: {reason}")]
    Json { line: usize, reason: String },
    #[error("line {line}: field `{field}`: {reason}")]
    Invalid {
        line: usize,
        field: String,
        reason: String,
    },
    #[error("line {line} is longer than {EVENT_LINE_BYTES_MAX} bytes")]
    LineTooLong { line: usize },
    #[error("more than {EVENTS_PER_STREAM_MAX} events in one stream")]
    TooManyEvents,
    #[error("health-event schema: {0}")]
    Schema(#[from] crate::schema::SchemaError),
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ViewChangeStorm,
    CommitStall,
    ReplicaDown,
    DomainPartition,
    Equivocation,
    /// A replica's executed state differs from a checkpoint that a quorum certified: it
    /// stopped executing (data integrity, Art. 9(5) of 2024/1772 when it has impact).
    StateDivergence,
    SlaBreach,
    CommitResumed,
    ReplicaUp,
    PartitionHealed,
    SlaRestored,
    ViewStable,
}

impl EventKind {
    /// Problems open or extend incidents; recoveries close conditions.
    pub fn is_problem(self) -> bool {
        self.recovered_by().is_some() || self.needs_operator()
    }

    /// The recovery kind that ends this problem (equivocation evidence has none: it stays
    /// until an operator closes the incident).
    pub fn recovered_by(self) -> Option<EventKind> {
        match self {
            EventKind::ViewChangeStorm => Some(EventKind::ViewStable),
            EventKind::CommitStall => Some(EventKind::CommitResumed),
            EventKind::ReplicaDown => Some(EventKind::ReplicaUp),
            EventKind::DomainPartition => Some(EventKind::PartitionHealed),
            EventKind::SlaBreach => Some(EventKind::SlaRestored),
            _ => None,
        }
    }

    /// Problems no recovery event ends: an operator closes the incident after review.
    pub fn needs_operator(self) -> bool {
        matches!(self, EventKind::Equivocation | EventKind::StateDivergence)
    }

    /// The problem a recovery kind ends.
    pub fn recovers(self) -> Option<EventKind> {
        [
            EventKind::ViewChangeStorm,
            EventKind::CommitStall,
            EventKind::ReplicaDown,
            EventKind::DomainPartition,
            EventKind::SlaBreach,
        ]
        .into_iter()
        .find(|p| p.recovered_by() == Some(self))
    }

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Does the condition stop or slow a critical service (transaction ordering)?
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            EventKind::CommitStall | EventKind::DomainPartition | EventKind::ReplicaDown
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Evidence of equivocation: two conflicting signed messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub offender: u32,
    pub message_a: String,
    pub message_b: String,
}

/// One health event (see the schema for each field's meaning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    pub schema: String,
    pub event_id: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub kind: EventKind,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause_hint: Option<String>,
}

impl HealthEvent {
    /// A minimal event, for emitters and tests.
    pub fn new(event_id: &str, at: DateTime<Utc>, kind: EventKind) -> HealthEvent {
        HealthEvent {
            schema: SCHEMA_TAG.into(),
            event_id: event_id.into(),
            at,
            replica: None,
            domain: None,
            kind,
            severity: if kind.is_problem() {
                Severity::Critical
            } else {
                Severity::Info
            },
            service: None,
            detail: None,
            metrics: BTreeMap::new(),
            evidence: None,
            root_cause_hint: None,
        }
    }

    pub fn service_name(&self) -> &str {
        self.service.as_deref().unwrap_or("ledger")
    }
}

static SCHEMA: crate::schema::Shipped = crate::schema::Shipped::new(HEALTH_EVENT_SCHEMA);

/// The first violation of the shipped schema, as the error naming the field.
fn check_schema(value: &serde_json::Value, line: usize) -> Result<(), HealthError> {
    match SCHEMA.get()?.violations(value).into_iter().next() {
        None => Ok(()),
        Some(v) => Err(HealthError::Invalid {
            line,
            field: v.path.trim_start_matches('/').to_string(),
            reason: v.message,
        }),
    }
}

/// Check one event (as JSON) against the shipped schema and parse it.
pub fn parse_event(value: &serde_json::Value, line: usize) -> Result<HealthEvent, HealthError> {
    check_schema(value, line)?;
    serde_json::from_value(value.clone()).map_err(|e| HealthError::Json {
        line,
        reason: e.to_string(),
    })
}

/// Parse a JSON Lines stream of events (blank lines ignored), bounded in size and count.
pub fn parse_stream(text: &str) -> Result<Vec<HealthEvent>, HealthError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.len() > EVENT_LINE_BYTES_MAX {
            return Err(HealthError::LineTooLong { line: line_no });
        }
        if line.trim().is_empty() {
            continue;
        }
        if events.len() >= EVENTS_PER_STREAM_MAX {
            return Err(HealthError::TooManyEvents);
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| HealthError::Json {
                line: line_no,
                reason: e.to_string(),
            })?;
        check_schema(&value, line_no)?;
        let event: HealthEvent = serde_json::from_value(value).map_err(|e| HealthError::Json {
            line: line_no,
            reason: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}
