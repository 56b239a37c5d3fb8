//! Initial notification, intermediate and final reports (DORA Art. 19(4)) with the data
//! fields of Commission Implementing Regulation (EU) 2025/302 and the content of Delegated
//! Regulation (EU) 2025/301 Art. 1-4.
//!
//! Field numbers and names 1.1-1.15, 2.1-2.10 and 3.1-3.7 are those of Annex I/II of
//! 2025/302 as published. The rest of the intermediate report (after 3.7) and the final
//! report could not be checked against the annex text when this was written: they are
//! grouped under `intermediate_details` (Art. 3(d)-(l) of 2025/301) and `final_details`
//! (Art. 4 of 2025/301), named after the RTS article points instead of inventing numbers.
//!
//! A report is serialised to JSON, validated against the shipped schema
//! ([`REPORT_SCHEMA`]) and refused, naming the field, when a mandatory field is missing.

use crate::deadlines::{rfc3339, EntityType};
use crate::html;
use crate::incident::Incident;
use crate::schema::{validate, SchemaError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The shipped JSON Schema of a report.
pub const REPORT_SCHEMA: &str = include_str!("../schema/major-incident-report.schema.json");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("report refused: mandatory field {field} ({name}) is missing for a {stage}")]
    MissingField {
        field: String,
        name: String,
        stage: String,
    },
    #[error("report refused: field {field} ({name}) {message}")]
    InvalidField {
        field: String,
        name: String,
        message: String,
    },
    #[error("incident {0} is not classified as major; no report is due (DORA Art. 19(1))")]
    NotMajor(String),
    /// Reclassification from major to non-major is allowed only when, after further
    /// assessment, the incident at no time met the major criteria (field 1.1 of Implementing
    /// Regulation (EU) 2025/302; Art. 2(i) of Delegated Regulation (EU) 2025/301).
    #[error("incident {id} cannot be reclassified as non-major: {reason}")]
    NotReclassifiable { id: String, reason: String },
    #[error("report schema: {0}")]
    Schema(#[from] SchemaError),
}

/// The stage of a submission (field 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    InitialNotification,
    IntermediateReport,
    FinalReport,
    MajorIncidentReclassifiedAsNonMajor,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::InitialNotification => "initial_notification",
            Stage::IntermediateReport => "intermediate_report",
            Stage::FinalReport => "final_report",
            Stage::MajorIncidentReclassifiedAsNonMajor => {
                "major_incident_reclassified_as_non_major"
            }
        }
    }

    pub fn parse(text: &str) -> Option<Stage> {
        match text {
            "initial" | "initial_notification" => Some(Stage::InitialNotification),
            "intermediate" | "intermediate_report" => Some(Stage::IntermediateReport),
            "final" | "final_report" => Some(Stage::FinalReport),
            "reclassified" | "major_incident_reclassified_as_non_major" => {
                Some(Stage::MajorIncidentReclassifiedAsNonMajor)
            }
            _ => None,
        }
    }
}

/// A contact person (fields 1.7-1.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub telephone: String,
}

/// The reporting entity: general information of Art. 1 of 2025/301 (fields 1.2-1.15).
/// Operator configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityProfile {
    pub name: String,
    pub lei: String,
    pub entity_types: Vec<EntityType>,
    /// Affected entity when different from the submitter (defaults to the submitter).
    #[serde(default)]
    pub affected_name: Option<String>,
    #[serde(default)]
    pub affected_lei: Option<String>,
    pub primary_contact: Contact,
    #[serde(default)]
    pub second_contact: Option<Contact>,
    #[serde(default)]
    pub parent_name: Option<String>,
    #[serde(default)]
    pub parent_lei: Option<String>,
    #[serde(default = "default_currency")]
    pub currency: String,
}

fn default_currency() -> String {
    "EUR".into()
}

/// Report content that only the operator can give, per report (all optional; a mandatory
/// one that is missing makes the report refused with its field).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportInputs {
    pub other_information: Option<String>,
    pub competent_authority_reference: Option<String>,
    pub incident_type: Option<String>,
    pub threats_and_techniques: Option<String>,
    pub affected_functional_areas: Option<Vec<String>>,
    pub impact_on_financial_interest_of_clients: Option<String>,
    pub reporting_to_other_authorities: Option<String>,
    pub temporary_actions: Option<String>,
    pub indicators_of_compromise: Option<Vec<String>>,
    pub root_causes: Option<String>,
    pub root_cause_addressed_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub resolution_authorities_information: Option<String>,
    pub costs_and_losses_eur: Option<f64>,
    pub financial_recoveries_eur: Option<f64>,
    pub recurring_incidents: Option<String>,
}

/// A validated report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub stage: Stage,
    pub json: Value,
}

fn schema() -> Value {
    serde_json::from_str(REPORT_SCHEMA).expect("shipped schema is valid JSON")
}

/// The official name (schema title) of a field.
pub fn field_name(field: &str) -> String {
    schema()
        .get("properties")
        .and_then(|p| p.get(field))
        .and_then(|f| f.get("title"))
        .and_then(Value::as_str)
        .unwrap_or(field)
        .to_string()
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        ((part as f64 / whole as f64) * 10_000.0).round() / 100.0
    }
}

fn put<T: Serialize>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        map.insert(key.to_string(), json!(v));
    }
}

/// A major incident may be reclassified as non-major only if, after further assessment, it at
/// no time met the major criteria: it must have been classified as major, and its latest
/// classification (the further assessment, on the corrected facts, which cover the whole
/// incident) must not meet Art. 8(1) of Delegated Regulation (EU) 2024/1772.
pub fn reclassification_allowed(incident: &Incident) -> Result<(), ReportError> {
    let refuse = |reason: &str| ReportError::NotReclassifiable {
        id: incident.id.clone(),
        reason: reason.to_string(),
    };
    if incident.major_since.is_none() {
        return Err(refuse(
            "it was never classified as major, so there is nothing to reclassify",
        ));
    }
    match incident.classification.as_ref() {
        Some(c) if !c.major => Ok(()),
        _ => Err(refuse(
            "its latest assessment still meets Art. 8(1) of Delegated Regulation (EU) 2024/1772; reclassification is allowed only if, after further assessment, the incident at no time met the major criteria (re-assess with corrected facts first)",
        )),
    }
}

/// Build the report of `stage` for a classified incident, then validate it.
pub fn build(
    stage: Stage,
    incident: &Incident,
    profile: &EntityProfile,
    inputs: &ReportInputs,
    as_of: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let classification = incident.classification.as_ref();
    if stage == Stage::MajorIncidentReclassifiedAsNonMajor {
        reclassification_allowed(incident)?;
    } else if incident.major_since.is_none() {
        return Err(ReportError::NotMajor(incident.id.clone()));
    }
    let facts = &incident.facts;
    let mut m = Map::new();
    m.insert("1.1".into(), json!(stage.name()));
    general_fields(&mut m, profile);
    m.insert("2.1".into(), json!(incident.id));
    m.insert("2.2".into(), json!(rfc3339(incident.detected_at)));
    put(&mut m, "2.3", incident.major_since.map(rfc3339));
    put(&mut m, "2.4", facts.description.clone());
    if let Some(c) = classification {
        let names: Vec<&str> = c.criteria_met.iter().map(|c| c.name()).collect();
        if !names.is_empty() {
            m.insert("2.5".into(), json!(names));
        }
    }
    put(&mut m, "2.6", facts.member_states.clone());
    let discovery = facts.discovery.clone().unwrap_or_else(|| {
        let kinds: Vec<String> = incident.kinds.iter().map(|k| k.name()).collect();
        format!(
            "Detected automatically by CC-BFT health monitoring ({} health events: {}).",
            incident.event_count,
            kinds.join(", ")
        )
    });
    m.insert("2.7".into(), json!(discovery));
    put(&mut m, "2.8", facts.origin.clone());
    put(&mut m, "2.9", facts.business_continuity_plan_activated);
    put(&mut m, "2.10", inputs.other_information.clone());
    if matches!(stage, Stage::IntermediateReport | Stage::FinalReport) {
        intermediate_fields(&mut m, incident, inputs, as_of);
    }
    if stage == Stage::FinalReport {
        final_fields(&mut m, inputs);
    }
    m.insert("cluster_evidence".into(), evidence(incident));
    check(stage, Value::Object(m))
}

fn general_fields(m: &mut Map<String, Value>, p: &EntityProfile) {
    m.insert("1.2".into(), json!(p.name));
    m.insert("1.3".into(), json!(p.lei));
    m.insert("1.4".into(), json!(p.entity_types));
    m.insert(
        "1.5".into(),
        json!(p.affected_name.clone().unwrap_or(p.name.clone())),
    );
    m.insert(
        "1.6".into(),
        json!(p.affected_lei.clone().unwrap_or(p.lei.clone())),
    );
    m.insert("1.7".into(), json!(p.primary_contact.name));
    m.insert("1.8".into(), json!(p.primary_contact.email));
    m.insert("1.9".into(), json!(p.primary_contact.telephone));
    if let Some(c) = &p.second_contact {
        m.insert("1.10".into(), json!(c.name));
        m.insert("1.11".into(), json!(c.email));
        m.insert("1.12".into(), json!(c.telephone));
    }
    put(m, "1.13", p.parent_name.clone());
    put(m, "1.14", p.parent_lei.clone());
    m.insert("1.15".into(), json!(p.currency));
}

fn intermediate_fields(
    m: &mut Map<String, Value>,
    incident: &Incident,
    inputs: &ReportInputs,
    as_of: DateTime<Utc>,
) {
    let facts = &incident.facts;
    let (figures_in, _) = incident.classification_input(as_of);
    put(m, "3.1", inputs.competent_authority_reference.clone());
    m.insert("3.2".into(), json!(rfc3339(incident.occurred_at())));
    put(m, "3.3", incident.recovered_at.map(rfc3339));
    if let Some(c) = facts.clients {
        m.insert("3.4".into(), json!(c.affected));
        m.insert("3.5".into(), json!(percent(c.affected, c.total)));
    }
    if let Some(fc) = facts.financial_counterparts {
        m.insert("3.6".into(), json!(fc.affected));
        m.insert("3.7".into(), json!(percent(fc.affected, fc.total)));
    }
    let mut d = Map::new();
    let t = figures_in.transactions;
    let value_pct = if t.daily_average_value_eur > 0.0 {
        ((t.value_affected_eur / t.daily_average_value_eur) * 10_000.0).round() / 100.0
    } else {
        0.0
    };
    let dl = figures_in.data_losses;
    let losses: Vec<&str> = [
        ("availability", dl.availability),
        ("authenticity", dl.authenticity),
        ("integrity", dl.integrity),
        ("confidentiality", dl.confidentiality),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect();
    let mut figures = json!({
        "transactions_affected": t.affected,
        "transactions_affected_percent": percent(t.affected, t.daily_average),
        "value_of_transactions_affected_eur": t.value_affected_eur,
        "value_of_transactions_affected_percent": value_pct,
        "relevant_clients_affected": figures_in.relevant_clients_affected,
        "duration_hours": (figures_in.duration_hours * 100.0).round() / 100.0,
        "service_downtime_hours": (figures_in.service_downtime_hours * 100.0).round() / 100.0,
        "reputational": figures_in.reputational,
        "data_losses": losses,
        "economic_impact_eur": figures_in.economic_impact_eur,
    });
    if let (Some(ms), Some(obj)) = (&facts.member_states, figures.as_object_mut()) {
        obj.insert("member_states".into(), json!(ms));
    }
    d.insert("classification_figures".into(), figures);
    put(&mut d, "incident_type", inputs.incident_type.clone());
    put(
        &mut d,
        "threats_and_techniques",
        inputs.threats_and_techniques.clone(),
    );
    let areas = inputs.affected_functional_areas.clone().unwrap_or_else(|| {
        vec!["Transaction ordering and settlement on the CC-BFT ledger (consensus service)".into()]
    });
    d.insert("affected_functional_areas".into(), json!(areas));
    let mut infra: Vec<String> = incident
        .domains
        .iter()
        .map(|dname| format!("cloud domain {dname}"))
        .collect();
    infra.extend(incident.replicas.iter().map(|r| format!("replica {r}")));
    if infra.is_empty() {
        infra.push("CC-BFT global ordering tier (all replicas)".into());
    }
    d.insert("affected_infrastructure_components".into(), json!(infra));
    put(
        &mut d,
        "impact_on_financial_interest_of_clients",
        inputs.impact_on_financial_interest_of_clients.clone(),
    );
    put(
        &mut d,
        "reporting_to_other_authorities",
        inputs.reporting_to_other_authorities.clone(),
    );
    put(
        &mut d,
        "temporary_actions",
        inputs.temporary_actions.clone(),
    );
    put(
        &mut d,
        "indicators_of_compromise",
        inputs.indicators_of_compromise.clone(),
    );
    m.insert("intermediate_details".into(), Value::Object(d));
}

fn final_fields(m: &mut Map<String, Value>, inputs: &ReportInputs) {
    let mut d = Map::new();
    put(&mut d, "root_causes", inputs.root_causes.clone());
    put(
        &mut d,
        "root_cause_addressed_at",
        inputs.root_cause_addressed_at.map(rfc3339),
    );
    put(&mut d, "resolved_at", inputs.resolved_at.map(rfc3339));
    put(&mut d, "resolution", inputs.resolution.clone());
    put(
        &mut d,
        "resolution_authorities_information",
        inputs.resolution_authorities_information.clone(),
    );
    put(&mut d, "costs_and_losses_eur", inputs.costs_and_losses_eur);
    put(
        &mut d,
        "financial_recoveries_eur",
        inputs.financial_recoveries_eur,
    );
    put(
        &mut d,
        "recurring_incidents",
        inputs.recurring_incidents.clone(),
    );
    m.insert("final_details".into(), Value::Object(d));
}

fn evidence(incident: &Incident) -> Value {
    json!({
        "event_kinds": incident.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "domains": incident.domains,
        "replicas": incident.replicas,
        "event_count": incident.event_count,
        "event_ids": incident.event_ids,
        "equivocation_offenders": incident.equivocation_offenders,
    })
}

/// Validate report JSON against the shipped schema; the first violation refuses it.
pub fn check(stage: Stage, json: Value) -> Result<Report, ReportError> {
    let violations = validate(&schema(), &json)?;
    if let Some(v) = violations.first() {
        let field = v.path.trim_start_matches('/').replace('/', ".");
        let top = v
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let name = match v.field.as_deref() {
            Some(f) if f == top => field_name(f),
            Some(f) => format!("{} / {f}", field_name(top)),
            None => field.clone(),
        };
        if v.keyword == "required" {
            return Err(ReportError::MissingField {
                field,
                name,
                stage: stage.name().replace('_', " "),
            });
        }
        return Err(ReportError::InvalidField {
            field,
            name,
            message: v.message.clone(),
        });
    }
    Ok(Report { stage, json })
}

/// Validate a report read from a file (its stage taken from field 1.1).
pub fn check_value(json: Value) -> Result<Report, ReportError> {
    let stage = json
        .get("1.1")
        .and_then(Value::as_str)
        .and_then(Stage::parse)
        .ok_or_else(|| ReportError::MissingField {
            field: "1.1".into(),
            name: field_name("1.1"),
            stage: "report".into(),
        })?;
    check(stage, json)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The report as a readable HTML page: field number, official name, value.
pub fn to_html(report: &Report) -> String {
    let s = schema();
    let props = s.get("properties").and_then(Value::as_object);
    let mut rows = Vec::new();
    let obj = report.json.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.sort_by_key(|k| field_order(k));
    for key in keys {
        let value = &obj[key];
        let title = props
            .and_then(|p| p.get(key.as_str()))
            .and_then(|f| f.get("title"))
            .and_then(Value::as_str)
            .unwrap_or(key);
        match value {
            Value::Object(inner) => {
                for (k, v) in inner {
                    let text = match v {
                        Value::Object(o) => o
                            .iter()
                            .map(|(a, b)| format!("{a}: {}", value_text(b)))
                            .collect::<Vec<_>>()
                            .join("; "),
                        other => value_text(other),
                    };
                    rows.push(vec![
                        html::escape(key),
                        html::escape(&format!("{title}: {k}")),
                        html::escape(&text),
                    ]);
                }
            }
            other => rows.push(vec![
                html::escape(key),
                html::escape(title),
                html::escape(&value_text(other)),
            ]),
        }
    }
    let body = format!(
        "<section><h2>{}</h2>{}<p class=\"muted\">Fields numbered as in Annex I/II of Implementing Regulation (EU) 2025/302; content per Delegated Regulation (EU) 2025/301 Art. 1-4.</p></section>",
        html::escape(&report.stage.name().replace('_', " ")),
        html::table(&["Field", "Data field", "Value"], &rows)
    );
    let id = report.json.get("2.1").map(value_text).unwrap_or_default();
    html::page(
        &format!("Major ICT-related incident report {id}"),
        "DORA Art. 19(4) submission",
        &body,
    )
}

fn field_order(key: &str) -> (u32, u32, String) {
    let mut parts = key.split('.');
    let a = parts.next().and_then(|p| p.parse().ok());
    let b = parts.next().and_then(|p| p.parse().ok());
    match (a, b, key) {
        (Some(a), Some(b), _) => (a, b, String::new()),
        (_, _, "intermediate_details") => (3, 1000, String::new()),
        (_, _, "final_details") => (4, 0, String::new()),
        _ => (9, 0, key.to_string()),
    }
}
