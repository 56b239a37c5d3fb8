//! Initial notification, intermediate and final reports (DORA Art. 19(4)) with the data
//! fields of Commission Implementing Regulation (EU) 2025/302 and the content of Delegated
//! Regulation (EU) 2025/301 Art. 1-4.
//!
//! Every field of sections 1-4 of Annex II ([`crate::annex2`]) by its number: what the
//! ledger knows (times, counts, durations, affected domains and replicas, classification) is
//! filled in; the rest comes from the entity profile, the incident facts and the report
//! inputs. A report is validated against the shipped schema ([`REPORT_SCHEMA`], generated
//! from the field catalogue) and refused, naming the field and where to give it, when a
//! field mandatory at its stage, or a conditional field whose condition holds, is missing.

use crate::annex2;
use crate::classify::{Criterion, Reputational};
use crate::deadlines::{rfc3339, EntityType};
use crate::html;
use crate::incident::Incident;
use crate::schema::{SchemaError, Shipped};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The shipped JSON Schema of a report.
pub const REPORT_SCHEMA: &str = include_str!("../schema/major-incident-report.schema.json");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    #[error("report refused: mandatory field {field} ({name}) is missing for a {stage}{hint}")]
    MissingField {
        field: String,
        name: String,
        stage: String,
        /// Where to give it (inputs key, profile key or incident facts key), or empty.
        hint: String,
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
/// one that is missing makes the report refused with its field number, name and the key to
/// give it under). Amounts are in units of the reporting currency (field 1.15); the report
/// carries them in thousands, as Annex II asks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportInputs {
    /// 2.7, a code of the discovery list (default: monitoring_systems, the engine found it).
    pub discovery: Option<String>,
    /// 2.10.
    pub other_information: Option<String>,
    /// 3.1.
    pub competent_authority_reference: Option<String>,
    /// 3.8.
    pub impact_on_relevant_clients: Option<String>,
    /// 3.11 in units of the reporting currency, when it is not EUR (the facts are in EUR).
    pub value_of_affected_transactions: Option<f64>,
    /// 3.12: actual, estimates or no_impact.
    pub figures_actual_or_estimates: Option<String>,
    /// 3.14.
    pub reputational_context: Option<String>,
    /// 3.17 (default: actual once recovered, estimates while ongoing).
    pub duration_actual_or_estimates: Option<String>,
    /// 3.18.
    pub member_state_impact_types: Option<Vec<String>>,
    /// 3.19.
    pub member_state_impact_description: Option<String>,
    /// 3.21.
    pub data_losses_description: Option<String>,
    /// 3.22 (default: the consensus service's function and the domains affected).
    pub critical_services_description: Option<String>,
    /// 3.23.
    pub incident_type: Option<String>,
    /// 3.24.
    pub other_incident_type: Option<String>,
    /// 3.25.
    pub threats_and_techniques: Option<Vec<String>>,
    /// 3.26.
    pub other_techniques: Option<String>,
    /// 3.27 (default: the consensus service's business process).
    pub affected_functional_areas: Option<String>,
    /// 3.30.
    pub impact_on_financial_interest_of_clients: Option<String>,
    /// 3.31.
    pub reporting_to_other_authorities: Option<Vec<String>>,
    /// 3.32.
    pub other_authorities: Option<String>,
    /// 3.33.
    pub temporary_actions_taken: Option<bool>,
    /// 3.34.
    pub temporary_actions: Option<String>,
    /// 3.35.
    pub indicators_of_compromise: Option<Vec<String>>,
    /// 4.1.
    pub root_cause_categories: Option<Vec<String>>,
    /// 4.2.
    pub root_cause_details: Option<Vec<String>>,
    /// 4.3.
    pub root_cause_additional: Option<String>,
    /// 4.4.
    pub root_cause_other: Option<String>,
    /// 4.5.
    pub root_causes: Option<String>,
    /// 4.6.
    pub resolution: Option<String>,
    /// 4.7.
    pub root_cause_addressed_at: Option<DateTime<Utc>>,
    /// 4.8.
    pub resolved_at: Option<DateTime<Utc>>,
    /// 4.9.
    pub resolution_date_difference: Option<String>,
    /// 4.10.
    pub resolution_risk_assessment: Option<String>,
    /// 4.11.
    pub resolution_authorities_information: Option<String>,
    /// 4.13, units of the reporting currency.
    pub costs_and_losses: Option<f64>,
    /// 4.14, units of the reporting currency.
    pub financial_recoveries: Option<f64>,
    /// Set for a recurring incident reported in aggregated form (Art. 8(2) of 2024/1772).
    pub recurring: Option<bool>,
    /// 4.15.
    pub recurring_information: Option<String>,
    /// 4.16.
    pub recurring_occurrences: Option<Vec<DateTime<Utc>>>,
}

/// A validated report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub stage: Stage,
    pub json: Value,
}

static SCHEMA: Shipped = Shipped::new(REPORT_SCHEMA);

fn schema() -> Value {
    serde_json::from_str(REPORT_SCHEMA).unwrap_or_else(|_| annex2::schema())
}

/// The official name (Annex II) of a field.
pub fn field_name(field: &str) -> String {
    annex2::field(field)
        .map(|f| f.name.to_string())
        .unwrap_or_else(|| field.to_string())
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
    if stage == Stage::MajorIncidentReclassifiedAsNonMajor {
        reclassification_allowed(incident)?;
    } else if incident.major_since.is_none() {
        return Err(ReportError::NotMajor(incident.id.clone()));
    }
    let mut m = Map::new();
    m.insert("1.1".into(), json!(stage.name()));
    general_fields(&mut m, profile);
    initial_fields(&mut m, incident, inputs)?;
    if matches!(stage, Stage::IntermediateReport | Stage::FinalReport) {
        intermediate_fields(&mut m, incident, profile, inputs, as_of);
    }
    if stage == Stage::FinalReport {
        final_fields(&mut m, incident, inputs);
    }
    m.insert("cluster_evidence".into(), evidence(incident));
    check(stage, Value::Object(m))
}

fn general_fields(m: &mut Map<String, Value>, p: &EntityProfile) {
    m.insert("1.2".into(), json!(p.name));
    m.insert("1.3".into(), json!(p.lei));
    m.insert("1.4".into(), json!(p.entity_types));
    // 1.5/1.6 only when the affected entity differs from the submitter.
    if p.affected_name.is_some() || p.affected_lei.is_some() {
        put(m, "1.5", p.affected_name.clone());
        put(m, "1.6", p.affected_lei.clone());
    }
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

fn initial_fields(
    m: &mut Map<String, Value>,
    incident: &Incident,
    inputs: &ReportInputs,
) -> Result<(), ReportError> {
    let facts = &incident.facts;
    m.insert("2.1".into(), json!(incident.id));
    m.insert("2.2".into(), json!(rfc3339(incident.detected_at)));
    put(m, "2.3", incident.major_since.map(rfc3339));
    put(m, "2.4", facts.description.clone());
    if let Some(c) = incident.classification.as_ref() {
        let names: Vec<&str> = c.criteria_met.iter().map(|c| c.name()).collect();
        if !names.is_empty() {
            m.insert("2.5".into(), json!(names));
        }
    }
    put(
        m,
        "2.6",
        facts.member_states.clone().filter(|s| !s.is_empty()),
    );
    m.insert("2.7".into(), json!(discovery(incident, inputs)?));
    put(m, "2.8", facts.origin.clone());
    put(m, "2.9", facts.business_continuity_plan_activated);
    put(m, "2.10", inputs.other_information.clone());
    Ok(())
}

/// 2.7 is a code: the inputs' code, else the facts' text when it is a code, else
/// monitoring_systems (the engine detected it from health events).
fn discovery(incident: &Incident, inputs: &ReportInputs) -> Result<String, ReportError> {
    if let Some(code) = &inputs.discovery {
        return Ok(code.clone());
    }
    match &incident.facts.discovery {
        Some(text) if annex2::DISCOVERY.contains(&text.as_str()) => Ok(text.clone()),
        Some(text) => Err(ReportError::InvalidField {
            field: "2.7".into(),
            name: field_name("2.7"),
            message: format!(
                "is a code list; the incident facts say {text:?}: give one of {} as \"discovery\" in the inputs file",
                annex2::DISCOVERY.join(", ")
            ),
        }),
        None => Ok("monitoring_systems".into()),
    }
}

fn intermediate_fields(
    m: &mut Map<String, Value>,
    incident: &Incident,
    profile: &EntityProfile,
    inputs: &ReportInputs,
    as_of: DateTime<Utc>,
) {
    let facts = &incident.facts;
    let (fig, _) = incident.classification_input(as_of);
    put(m, "3.1", inputs.competent_authority_reference.clone());
    m.insert("3.2".into(), json!(rfc3339(incident.occurred_at())));
    if let Some(c) = facts.clients {
        m.insert("3.4".into(), json!(c.affected));
        m.insert("3.5".into(), json!(percent(c.affected, c.total)));
    }
    if let Some(fc) = facts.financial_counterparts {
        m.insert("3.6".into(), json!(fc.affected));
        m.insert("3.7".into(), json!(percent(fc.affected, fc.total)));
    }
    put(m, "3.8", inputs.impact_on_relevant_clients.clone());
    let t = fig.transactions;
    if t.affected > 0 {
        m.insert("3.9".into(), json!(t.affected));
        m.insert("3.10".into(), json!(percent(t.affected, t.daily_average)));
        let units = inputs
            .value_of_affected_transactions
            .or((profile.currency == "EUR").then_some(t.value_affected_eur));
        put(m, "3.11", units.map(annex2::thousands));
    }
    put(m, "3.12", inputs.figures_actual_or_estimates.clone());
    let reputational: Vec<&str> = fig
        .reputational
        .iter()
        .map(|r| reputational_code(*r))
        .collect();
    if !reputational.is_empty() {
        m.insert("3.13".into(), json!(reputational));
    }
    put(m, "3.14", inputs.reputational_context.clone());
    duration_fields(
        m,
        incident,
        inputs,
        fig.duration_hours,
        fig.service_downtime_hours,
    );
    put(m, "3.18", inputs.member_state_impact_types.clone());
    put(m, "3.19", inputs.member_state_impact_description.clone());
    let dl = fig.data_losses;
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
    if !losses.is_empty() {
        m.insert("3.20".into(), json!(losses));
    }
    put(m, "3.21", inputs.data_losses_description.clone());
    let critical = inputs.critical_services_description.clone().or_else(|| {
        fig.critical_services_affected.then(|| {
            "ICT services supporting a critical or important function are affected: the CC-BFT consensus service ordering and settling payment transactions (function of B_06.01 of the register of information).".to_string()
        })
    });
    put(m, "3.22", critical);
    operator_section3(m, inputs);
    infrastructure_fields(m, incident, inputs);
    m.insert(
        "conditions".into(),
        json!({
            "transactions_affected": t.affected > 0,
            "relevant_clients_affected": fig.relevant_clients_affected,
        }),
    );
}

fn reputational_code(r: Reputational) -> &'static str {
    match r {
        Reputational::MediaAttention => "media",
        Reputational::RepeatedComplaints => "repetitive_complaints",
        Reputational::RegulatoryBreach => "cannot_meet_regulatory_requirements",
        Reputational::ClientLoss => "loss_of_clients_or_counterparts",
    }
}

/// 3.3, 3.15-3.17: the ledger measures them; while the incident is open the figures run to
/// `as_of` and are estimates.
fn duration_fields(
    m: &mut Map<String, Value>,
    incident: &Incident,
    inputs: &ReportInputs,
    duration_hours: f64,
    downtime_hours: f64,
) {
    m.insert("3.15".into(), json!(annex2::dd_hh_mm(duration_hours)));
    if downtime_hours > 0.0 {
        m.insert("3.16".into(), json!(annex2::dd_hh_mm(downtime_hours)));
    }
    put(m, "3.3", incident.recovered_at.map(rfc3339));
    let measured = if incident.recovered_at.is_some() {
        "actual"
    } else {
        "estimates"
    };
    let flag = inputs
        .duration_actual_or_estimates
        .clone()
        .unwrap_or_else(|| measured.to_string());
    m.insert("3.17".into(), json!(flag));
}

fn operator_section3(m: &mut Map<String, Value>, inputs: &ReportInputs) {
    put(m, "3.23", inputs.incident_type.clone());
    put(m, "3.24", inputs.other_incident_type.clone());
    put(m, "3.25", inputs.threats_and_techniques.clone());
    put(m, "3.26", inputs.other_techniques.clone());
    let areas = inputs.affected_functional_areas.clone().unwrap_or_else(|| {
        "Payment transaction ordering and settlement on the CC-BFT ledger (consensus service)."
            .into()
    });
    m.insert("3.27".into(), json!(areas));
    put(
        m,
        "3.30",
        inputs.impact_on_financial_interest_of_clients.clone(),
    );
    put(m, "3.31", inputs.reporting_to_other_authorities.clone());
    put(m, "3.32", inputs.other_authorities.clone());
    put(m, "3.33", inputs.temporary_actions_taken);
    put(m, "3.34", inputs.temporary_actions.clone());
    put(m, "3.35", inputs.indicators_of_compromise.clone());
}

/// 3.28-3.29 from the domains and replicas the incident touched.
fn infrastructure_fields(m: &mut Map<String, Value>, incident: &Incident, _inputs: &ReportInputs) {
    let mut infra: Vec<String> = incident
        .domains
        .iter()
        .map(|d| format!("cloud domain {d}"))
        .collect();
    infra.extend(incident.replicas.iter().map(|r| format!("replica {r}")));
    if infra.is_empty() {
        m.insert("3.28".into(), json!("information_not_available"));
    } else {
        m.insert("3.28".into(), json!("yes"));
        m.insert(
            "3.29".into(),
            json!(format!(
                "CC-BFT infrastructure affected: {}.",
                infra.join(", ")
            )),
        );
    }
}

fn final_fields(m: &mut Map<String, Value>, incident: &Incident, inputs: &ReportInputs) {
    put(m, "4.1", inputs.root_cause_categories.clone());
    put(m, "4.2", inputs.root_cause_details.clone());
    put(m, "4.3", inputs.root_cause_additional.clone());
    put(m, "4.4", inputs.root_cause_other.clone());
    put(m, "4.5", inputs.root_causes.clone());
    put(m, "4.6", inputs.resolution.clone());
    put(m, "4.7", inputs.root_cause_addressed_at.map(rfc3339));
    put(m, "4.8", inputs.resolved_at.map(rfc3339));
    put(m, "4.9", inputs.resolution_date_difference.clone());
    put(m, "4.10", inputs.resolution_risk_assessment.clone());
    put(m, "4.11", inputs.resolution_authorities_information.clone());
    let economic = incident.classification.as_ref().map(|c| {
        c.criteria_met
            .iter()
            .any(|k| matches!(k, Criterion::EconomicImpact))
    });
    put(m, "4.12", economic);
    put(m, "4.13", inputs.costs_and_losses.map(annex2::thousands));
    put(
        m,
        "4.14",
        inputs.financial_recoveries.map(annex2::thousands),
    );
    put(m, "4.15", inputs.recurring_information.clone());
    put(
        m,
        "4.16",
        inputs
            .recurring_occurrences
            .as_ref()
            .map(|v| v.iter().map(|t| rfc3339(*t)).collect::<Vec<_>>()),
    );
    if let Some(Value::Object(c)) = m.get_mut("conditions") {
        c.insert("recurring".into(), json!(inputs.recurring.unwrap_or(false)));
    }
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

/// Validate report JSON against the shipped schema, then the LEI check digits; the first
/// violation refuses it, naming the field (and, for an operator field, how to give it).
pub fn check(stage: Stage, json: Value) -> Result<Report, ReportError> {
    let violations = SCHEMA.get()?.violations(&json);
    if let Some(v) = violations.first() {
        let field = v.path.trim_start_matches('/').replace('/', ".");
        let number = field.split('.').take(2).collect::<Vec<_>>().join(".");
        let key = if annex2::field(&field).is_some() {
            field.clone()
        } else {
            number
        };
        let name = field_name(&key);
        if v.keyword == "required" {
            return Err(ReportError::MissingField {
                hint: prompt(&key),
                field: key,
                name,
                stage: stage.name().replace('_', " "),
            });
        }
        return Err(ReportError::InvalidField {
            field: key,
            name,
            message: v.message.clone(),
        });
    }
    for no in ["1.3", "1.6", "1.14"] {
        if let Some(lei) = json.get(no).and_then(Value::as_str) {
            crate::codes::check_lei(lei).map_err(|e| ReportError::InvalidField {
                field: no.into(),
                name: field_name(no),
                message: e.to_string(),
            })?;
        }
    }
    Ok(Report { stage, json })
}

/// Where a missing field comes from, as a hint after its number.
fn prompt(no: &str) -> String {
    use annex2::Source;
    match annex2::field(no).map(|f| f.source) {
        Some(Source::Input(key)) | Some(Source::LedgerOrInput(key)) => {
            format!(": give \"{key}\" in the report inputs file")
        }
        Some(Source::Profile(key)) => format!(": set profile.{key} in config.json"),
        Some(Source::Facts(key)) => format!(": give \"{key}\" in the incident facts"),
        _ => String::new(),
    }
}

/// Validate a report read from a file (its stage taken from field 1.1).
pub fn check_value(json: Value) -> Result<Report, ReportError> {
    let Some(given) = json.get("1.1") else {
        return Err(ReportError::MissingField {
            field: "1.1".into(),
            name: field_name("1.1"),
            stage: "report".into(),
            hint: String::new(),
        });
    };
    let stage = given
        .as_str()
        .and_then(Stage::parse)
        .ok_or_else(|| ReportError::InvalidField {
            field: "1.1".into(),
            name: field_name("1.1"),
            message: format!("must be one of {}", annex2::STAGES.join(", ")),
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
        (_, _, "conditions") => (8, 0, String::new()),
        _ => (9, 0, key.to_string()),
    }
}
