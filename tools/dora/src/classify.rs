//! Classification of ICT-related incidents per Commission Delegated Regulation (EU) 2024/1772
//! ("RTS classification").
//!
//! Criteria: Art. 1 (clients, financial counterparts and transactions), Art. 2 (reputational
//! impact), Art. 3 (duration and service downtime), Art. 4 (geographical spread), Art. 5 (data
//! losses), Art. 6 (critical services affected), Art. 7 (economic impact). Materiality
//! thresholds: Art. 9(1)-(6). Major incident: Art. 8(1). Recurring incidents: Art. 8(2), see
//! [`crate::incident::recurring_groups`].
//!
//! Data losses (Art. 9(5)(a)) count only with an adverse impact on the business objectives or
//! on meeting regulatory requirements (`data_losses.adverse_impact`); (b), a successful
//! malicious unauthorised access, always counts.
//!
//! Every comparison phrased "higher than", "longer than" or "exceeded" is strict: a value
//! exactly at the threshold does not meet it. Geographical spread (Art. 9(4)) is "two or more
//! Member States", so 2 meets it.
//!
//! Not covered here: an attempted malicious access that did not succeed meets neither
//! Art. 6 nor Art. 9(5)(b); the input has no field for it, and it should be recorded and
//! assessed as a possible significant cyber threat (Art. 10), which this engine does not
//! automate yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Art. 9(1)(a): affected clients higher than 10% of all clients using the service.
pub const CLIENTS_SHARE_PERCENT: u64 = 10;
/// Art. 9(1)(b): affected clients using the service higher than 100 000.
pub const CLIENTS_ABSOLUTE: u64 = 100_000;
/// Art. 9(1)(c): affected financial counterparts higher than 30% of all active counterparts.
pub const COUNTERPARTS_SHARE_PERCENT: u64 = 30;
/// Art. 9(1)(d): affected transactions higher than 10% of the daily average number.
pub const TRANSACTIONS_SHARE_PERCENT: u64 = 10;
/// Art. 9(1)(e): value of affected transactions higher than 10% of the daily average value.
pub const TRANSACTION_VALUE_SHARE_PERCENT: u64 = 10;
/// Art. 9(3)(a): incident duration longer than 24 hours.
pub const DURATION_HOURS: f64 = 24.0;
/// Art. 9(3)(b): downtime of ICT services supporting critical or important functions longer
/// than 2 hours.
pub const DOWNTIME_HOURS: f64 = 2.0;
/// Art. 9(4): impact in two or more Member States.
pub const MEMBER_STATES_MIN: u64 = 2;
/// Art. 9(6): costs and losses exceeded or likely to exceed EUR 100 000.
pub const ECONOMIC_IMPACT_EUR: f64 = 100_000.0;
/// Art. 8(1)(b): two or more materiality thresholds of Art. 9(1)-(6).
pub const THRESHOLDS_FOR_MAJOR: usize = 2;
/// Most entries accepted in the `reputational` list.
pub const REPUTATIONAL_ENTRIES_MAX: usize = 16;
/// Largest count accepted (clients, counterparts, transactions): beyond it the input is a typo.
pub const COUNT_MAX: u64 = 1_000_000_000_000;
/// Largest amount (EUR) or duration (hours) accepted.
pub const AMOUNT_MAX: f64 = 1e15;

/// Errors in a classification input; each names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClassifyError {
    #[error("input is not valid JSON: {0}")]
    Json(String),
    #[error("missing field `{field}`")]
    Missing { field: String },
    #[error("field `{field}` is malformed: expected {expected}")]
    Malformed { field: String, expected: String },
    #[error("field `{field}` is inconsistent: {reason}")]
    Inconsistent { field: String, reason: String },
}

/// A reputational impact of Art. 2 / Art. 9(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reputational {
    /// Art. 9(2)(a): the incident has been reflected in the media.
    MediaAttention,
    /// Art. 9(2)(b): repeated complaints from different clients or counterparts.
    RepeatedComplaints,
    /// Art. 9(2)(c): the entity cannot or likely cannot meet regulatory requirements.
    RegulatoryBreach,
    /// Art. 9(2)(d): the entity will or likely will lose clients or counterparts.
    ClientLoss,
}

impl Reputational {
    pub const ALL: [Reputational; 4] = [
        Reputational::MediaAttention,
        Reputational::RepeatedComplaints,
        Reputational::RegulatoryBreach,
        Reputational::ClientLoss,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reputational::MediaAttention => "media_attention",
            Reputational::RepeatedComplaints => "repeated_complaints",
            Reputational::RegulatoryBreach => "regulatory_breach",
            Reputational::ClientLoss => "client_loss",
        }
    }

    fn from_name(name: &str) -> Option<Reputational> {
        Reputational::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Affected and total counts of one population.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Affected {
    pub affected: u64,
    pub total: u64,
}

/// Transactions affected, by number and value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transactions {
    pub affected: u64,
    pub daily_average: u64,
    pub value_affected_eur: f64,
    pub daily_average_value_eur: f64,
}

/// Data losses of Art. 5 / Art. 9(5)(a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataLosses {
    pub availability: bool,
    pub authenticity: bool,
    pub integrity: bool,
    pub confidentiality: bool,
    /// Art. 9(5)(a): the impact on the data has, or will have, an adverse impact on the
    /// entity's business objectives or on its ability to meet regulatory requirements.
    /// Without it an impact on data does not meet the threshold. Optional in the input
    /// (`data_losses.adverse_impact`), false when absent.
    #[serde(default)]
    pub adverse_impact: bool,
}

impl DataLosses {
    fn any(&self) -> bool {
        self.availability || self.authenticity || self.integrity || self.confidentiality
    }
}

/// One incident as the classifier sees it (the `ccbft dora classify` input schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationInput {
    pub critical_services_affected: bool,
    pub clients: Affected,
    pub financial_counterparts: Affected,
    pub transactions: Transactions,
    #[serde(default)]
    pub relevant_clients_affected: bool,
    pub reputational: Vec<Reputational>,
    pub duration_hours: f64,
    pub service_downtime_hours: f64,
    pub member_states_affected: u64,
    pub data_losses: DataLosses,
    pub malicious_unauthorised_access: bool,
    pub economic_impact_eur: f64,
    pub detected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classified_at: Option<DateTime<Utc>>,
    /// Optional: an attempted malicious access that did not succeed. It meets no criterion;
    /// it is recorded and should be assessed as a possible significant cyber threat
    /// ([`crate::threat`], Art. 10).
    #[serde(default)]
    pub attempted_malicious_access: bool,
}

/// Criterion names used in the output (`criteria_met`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    CriticalServices,
    ClientsCounterpartsTransactions,
    Reputational,
    DurationDowntime,
    GeographicalSpread,
    DataLosses,
    EconomicImpact,
}

impl Criterion {
    pub const ALL: [Criterion; 7] = [
        Criterion::CriticalServices,
        Criterion::ClientsCounterpartsTransactions,
        Criterion::Reputational,
        Criterion::DurationDowntime,
        Criterion::GeographicalSpread,
        Criterion::DataLosses,
        Criterion::EconomicImpact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Criterion::CriticalServices => "critical_services",
            Criterion::ClientsCounterpartsTransactions => "clients_counterparts_transactions",
            Criterion::Reputational => "reputational",
            Criterion::DurationDowntime => "duration_downtime",
            Criterion::GeographicalSpread => "geographical_spread",
            Criterion::DataLosses => "data_losses",
            Criterion::EconomicImpact => "economic_impact",
        }
    }

    /// The articles of Delegated Regulation (EU) 2024/1772 behind the criterion.
    pub fn article(self) -> &'static str {
        match self {
            Criterion::CriticalServices => "Art. 6 of Delegated Regulation (EU) 2024/1772",
            Criterion::ClientsCounterpartsTransactions => {
                "Art. 1 and Art. 9(1) of Delegated Regulation (EU) 2024/1772"
            }
            Criterion::Reputational => {
                "Art. 2 and Art. 9(2) of Delegated Regulation (EU) 2024/1772"
            }
            Criterion::DurationDowntime => {
                "Art. 3 and Art. 9(3) of Delegated Regulation (EU) 2024/1772"
            }
            Criterion::GeographicalSpread => {
                "Art. 4 and Art. 9(4) of Delegated Regulation (EU) 2024/1772"
            }
            Criterion::DataLosses => "Art. 5 and Art. 9(5) of Delegated Regulation (EU) 2024/1772",
            Criterion::EconomicImpact => {
                "Art. 7 and Art. 9(6) of Delegated Regulation (EU) 2024/1772"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Criterion> {
        Criterion::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The assessment of one criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionAssessment {
    pub criterion: Criterion,
    pub met: bool,
    pub article: String,
    /// Why it is met (each limb met), or why not.
    pub reasons: Vec<String>,
}

/// The outcome of classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Art. 8(1): major ICT-related incident.
    pub major: bool,
    /// Names of the criteria met (critical services and the Art. 9 thresholds).
    pub criteria_met: Vec<Criterion>,
    /// How many of the materiality thresholds of Art. 9(1)-(6) are met (limbs of one
    /// paragraph count once).
    pub thresholds_met: usize,
    /// Art. 9(5)(b) met: successful, malicious, unauthorised access.
    pub malicious_access: bool,
    /// One sentence per criterion and one for the major-incident rule, citing articles.
    pub explanation: String,
    pub criteria: Vec<CriterionAssessment>,
}

impl ClassificationInput {
    /// Parse the JSON input, naming the first missing or malformed field.
    pub fn from_json_str(text: &str) -> Result<ClassificationInput, ClassifyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ClassifyError::Json(e.to_string()))?;
        ClassificationInput::from_value(&value)
    }

    pub fn from_value(v: &Value) -> Result<ClassificationInput, ClassifyError> {
        if !v.is_object() {
            return Err(ClassifyError::Malformed {
                field: "(top level)".into(),
                expected: "a JSON object".into(),
            });
        }
        check_known_fields(v)?;
        let clients = affected(v, "clients")?;
        let financial_counterparts = affected(v, "financial_counterparts")?;
        let transactions = Transactions {
            affected: count(v, "transactions.affected")?,
            daily_average: count(v, "transactions.daily_average")?,
            value_affected_eur: amount(v, "transactions.value_affected_eur")?,
            daily_average_value_eur: amount(v, "transactions.daily_average_value_eur")?,
        };
        let relevant_clients_affected = match lookup(v, "relevant_clients_affected")? {
            None | Some(Value::Null) => false,
            Some(_) => boolean(v, "relevant_clients_affected")?,
        };
        let input = ClassificationInput {
            critical_services_affected: boolean(v, "critical_services_affected")?,
            clients,
            financial_counterparts,
            transactions,
            relevant_clients_affected,
            reputational: reputational(v)?,
            duration_hours: amount(v, "duration_hours")?,
            service_downtime_hours: amount(v, "service_downtime_hours")?,
            member_states_affected: count(v, "member_states_affected")?,
            data_losses: DataLosses {
                availability: boolean(v, "data_losses.availability")?,
                authenticity: boolean(v, "data_losses.authenticity")?,
                integrity: boolean(v, "data_losses.integrity")?,
                confidentiality: boolean(v, "data_losses.confidentiality")?,
                adverse_impact: match lookup(v, "data_losses.adverse_impact")? {
                    None | Some(Value::Null) => false,
                    Some(_) => boolean(v, "data_losses.adverse_impact")?,
                },
            },
            malicious_unauthorised_access: boolean(v, "malicious_unauthorised_access")?,
            economic_impact_eur: amount(v, "economic_impact_eur")?,
            detected_at: time(v, "detected_at")?,
            classified_at: match lookup(v, "classified_at")? {
                None | Some(Value::Null) => None,
                Some(_) => Some(time(v, "classified_at")?),
            },
            attempted_malicious_access: match lookup(v, "attempted_malicious_access")? {
                None | Some(Value::Null) => false,
                Some(_) => boolean(v, "attempted_malicious_access")?,
            },
        };
        input.check_consistency()?;
        Ok(input)
    }

    fn check_consistency(&self) -> Result<(), ClassifyError> {
        for (field, a) in [
            ("clients", self.clients),
            ("financial_counterparts", self.financial_counterparts),
        ] {
            if a.affected > a.total {
                return Err(ClassifyError::Inconsistent {
                    field: format!("{field}.affected"),
                    reason: format!("{} affected is more than {} in total", a.affected, a.total),
                });
            }
        }
        if let Some(classified) = self.classified_at {
            if classified < self.detected_at {
                return Err(ClassifyError::Inconsistent {
                    field: "classified_at".into(),
                    reason: "classification cannot precede detection".into(),
                });
            }
        }
        Ok(())
    }
}

/// Fields of the input schema, top level and nested: anything else is refused, so that a
/// typo (`adverse_impactt`) cannot silently drop a criterion.
const TOP_LEVEL_FIELDS: &[&str] = &[
    "critical_services_affected",
    "clients",
    "financial_counterparts",
    "transactions",
    "relevant_clients_affected",
    "reputational",
    "duration_hours",
    "service_downtime_hours",
    "member_states_affected",
    "data_losses",
    "malicious_unauthorised_access",
    "economic_impact_eur",
    "detected_at",
    "classified_at",
    "attempted_malicious_access",
];
const NESTED_FIELDS: &[(&str, &[&str])] = &[
    ("clients", &["affected", "total"]),
    ("financial_counterparts", &["affected", "total"]),
    (
        "transactions",
        &[
            "affected",
            "daily_average",
            "value_affected_eur",
            "daily_average_value_eur",
        ],
    ),
    (
        "data_losses",
        &[
            "availability",
            "authenticity",
            "integrity",
            "confidentiality",
            "adverse_impact",
        ],
    ),
];

fn check_known_fields(v: &Value) -> Result<(), ClassifyError> {
    let unknown = |field: String, known: &[&str]| ClassifyError::Malformed {
        field,
        expected: format!("no such field; known fields here: {}", known.join(", ")),
    };
    let Some(top) = v.as_object() else {
        return Ok(());
    };
    if let Some(key) = top.keys().find(|k| !TOP_LEVEL_FIELDS.contains(&k.as_str())) {
        return Err(unknown(key.clone(), TOP_LEVEL_FIELDS));
    }
    for (parent, known) in NESTED_FIELDS {
        if let Some(object) = top.get(*parent).and_then(Value::as_object) {
            if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(unknown(format!("{parent}.{key}"), known));
            }
        }
    }
    Ok(())
}

/// `part` strictly higher than `percent`% of `whole`, in exact integer arithmetic.
fn share_above(part: u64, whole: u64, percent: u64) -> bool {
    (part as u128) * 100 > (whole as u128) * (percent as u128)
}

/// Classify one incident (Art. 8(1) and Art. 9 of Delegated Regulation (EU) 2024/1772).
pub fn classify(input: &ClassificationInput) -> Classification {
    let criteria = vec![
        assess_critical(input),
        assess_clients(input),
        assess_reputational(input),
        assess_duration(input),
        assess_geography(input),
        assess_data_losses(input),
        assess_economic(input),
    ];
    let critical = criteria[0].met;
    let thresholds_met = criteria[1..].iter().filter(|c| c.met).count();
    let malicious_access = input.malicious_unauthorised_access;
    // Art. 8(1): critical services affected AND (Art. 9(5)(b) OR two or more of Art. 9(1)-(6)).
    let major = critical && (malicious_access || thresholds_met >= THRESHOLDS_FOR_MAJOR);
    let criteria_met: Vec<Criterion> = criteria
        .iter()
        .filter(|c| c.met)
        .map(|c| c.criterion)
        .collect();
    let mut sentences: Vec<String> = criteria
        .iter()
        .map(|c| {
            let verdict = if c.met { "met" } else { "not met" };
            format!(
                "{} {} ({}): {}.",
                c.criterion.name(),
                verdict,
                c.article,
                c.reasons.join("; ")
            )
        })
        .collect();
    sentences.push(major_sentence(
        critical,
        malicious_access,
        thresholds_met,
        major,
    ));
    if input.attempted_malicious_access && !malicious_access {
        sentences.push("An attempted malicious access that did not succeed meets neither Art. 6 nor Art. 9(5)(b); record it and assess it as a possible significant cyber threat (Art. 10).".to_string());
    }
    Classification {
        major,
        criteria_met,
        thresholds_met,
        malicious_access,
        explanation: sentences.join(" "),
        criteria,
    }
}

fn major_sentence(critical: bool, malicious: bool, thresholds: usize, major: bool) -> String {
    let rule = "Art. 8(1) of Delegated Regulation (EU) 2024/1772";
    if !critical {
        return format!(
            "Not major ({rule}): critical services are not affected, which a major incident always requires."
        );
    }
    if malicious {
        return format!(
            "Major ({rule}): critical services affected and the threshold of Art. 9(5)(b) (successful malicious unauthorised access) is met."
        );
    }
    if major {
        format!("Major ({rule}): critical services affected and {thresholds} materiality thresholds of Art. 9(1)-(6) met (two or more needed).")
    } else {
        format!("Not major ({rule}): critical services affected but only {thresholds} materiality threshold(s) of Art. 9(1)-(6) met (two or more needed).")
    }
}

fn assessment(criterion: Criterion, met: bool, reasons: Vec<String>) -> CriterionAssessment {
    CriterionAssessment {
        criterion,
        met,
        article: criterion.article().to_string(),
        reasons,
    }
}

fn assess_critical(i: &ClassificationInput) -> CriterionAssessment {
    let mut reasons = Vec::new();
    if i.critical_services_affected {
        reasons.push("ICT services supporting critical or important functions, or financial services needing authorisation, are affected (Art. 6)".to_string());
    }
    if i.malicious_unauthorised_access {
        reasons.push("a successful, malicious and unauthorised access to network and information systems always meets this criterion (Art. 6)".to_string());
    }
    let met = !reasons.is_empty();
    if !met {
        reasons.push("no critical or important function, authorised financial service or successful malicious access is affected".to_string());
    }
    assessment(Criterion::CriticalServices, met, reasons)
}

fn assess_clients(i: &ClassificationInput) -> CriterionAssessment {
    let mut limbs = Vec::new();
    let c = i.clients;
    if share_above(c.affected, c.total, CLIENTS_SHARE_PERCENT) {
        limbs.push(format!(
            "(a) {} of {} clients affected is more than {CLIENTS_SHARE_PERCENT}%",
            c.affected, c.total
        ));
    }
    if c.affected > CLIENTS_ABSOLUTE {
        limbs.push(format!(
            "(b) {} clients affected is more than {CLIENTS_ABSOLUTE}",
            c.affected
        ));
    }
    let fc = i.financial_counterparts;
    if share_above(fc.affected, fc.total, COUNTERPARTS_SHARE_PERCENT) {
        limbs.push(format!("(c) {} of {} financial counterparts affected is more than {COUNTERPARTS_SHARE_PERCENT}%", fc.affected, fc.total));
    }
    let t = i.transactions;
    if share_above(t.affected, t.daily_average, TRANSACTIONS_SHARE_PERCENT) {
        limbs.push(format!("(d) {} transactions affected is more than {TRANSACTIONS_SHARE_PERCENT}% of the daily average {}", t.affected, t.daily_average));
    }
    // Exact for the integral amounts the tests use; amounts are in EUR.
    let pct = TRANSACTION_VALUE_SHARE_PERCENT as f64;
    if t.value_affected_eur * 100.0 > t.daily_average_value_eur * pct {
        limbs.push(format!("(e) EUR {} of affected transactions is more than {TRANSACTION_VALUE_SHARE_PERCENT}% of the daily average value EUR {}", t.value_affected_eur, t.daily_average_value_eur));
    }
    if i.relevant_clients_affected {
        limbs.push(
            "(f) a relevant client or financial counterpart (Art. 1(3)) is affected".to_string(),
        );
    }
    let met = !limbs.is_empty();
    if !met {
        limbs.push("no limb of Art. 9(1) exceeded (every comparison is strict)".to_string());
    }
    assessment(Criterion::ClientsCounterpartsTransactions, met, limbs)
}

fn assess_reputational(i: &ClassificationInput) -> CriterionAssessment {
    let mut seen: Vec<Reputational> = i.reputational.clone();
    seen.sort();
    seen.dedup();
    let met = !seen.is_empty();
    let reasons = if met {
        seen.iter()
            .map(|r| format!("{} (Art. 9(2))", r.name()))
            .collect()
    } else {
        vec![
            "no media attention, repeated complaints, regulatory breach or client loss".to_string(),
        ]
    };
    assessment(Criterion::Reputational, met, reasons)
}

fn assess_duration(i: &ClassificationInput) -> CriterionAssessment {
    let mut reasons = Vec::new();
    if i.duration_hours > DURATION_HOURS {
        reasons.push(format!(
            "(a) duration {} h is longer than {DURATION_HOURS} h",
            i.duration_hours
        ));
    }
    if i.service_downtime_hours > DOWNTIME_HOURS {
        reasons.push(format!("(b) downtime of services supporting critical or important functions {} h is longer than {DOWNTIME_HOURS} h", i.service_downtime_hours));
    }
    let met = !reasons.is_empty();
    if !met {
        reasons.push(format!("duration {} h not longer than {DURATION_HOURS} h and downtime {} h not longer than {DOWNTIME_HOURS} h", i.duration_hours, i.service_downtime_hours));
    }
    assessment(Criterion::DurationDowntime, met, reasons)
}

fn assess_geography(i: &ClassificationInput) -> CriterionAssessment {
    let met = i.member_states_affected >= MEMBER_STATES_MIN;
    let reason = format!(
        "impact in {} Member State(s); {MEMBER_STATES_MIN} or more needed (Art. 4 defines impact there)",
        i.member_states_affected
    );
    assessment(Criterion::GeographicalSpread, met, vec![reason])
}

fn assess_data_losses(i: &ClassificationInput) -> CriterionAssessment {
    let d = i.data_losses;
    let mut reasons = Vec::new();
    let mut not_met = Vec::new();
    if d.any() {
        let kinds: Vec<&str> = [
            ("availability", d.availability),
            ("authenticity", d.authenticity),
            ("integrity", d.integrity),
            ("confidentiality", d.confidentiality),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
        if d.adverse_impact {
            reasons.push(format!("(a) impact on the {} of data with an adverse impact on business objectives or regulatory compliance", kinds.join(", ")));
        } else {
            not_met.push(format!("impact on the {} of data, but no adverse impact on business objectives or regulatory compliance is stated (`data_losses.adverse_impact`), so (a) is not met", kinds.join(", ")));
        }
    }
    if i.malicious_unauthorised_access {
        reasons.push(
            "(b) successful, malicious, unauthorised access to network and information systems"
                .to_string(),
        );
    }
    let met = !reasons.is_empty();
    if !met {
        if not_met.is_empty() {
            reasons.push("no impact on availability, authenticity, integrity or confidentiality of data and no successful malicious access".to_string());
        } else {
            reasons.append(&mut not_met);
        }
    }
    assessment(Criterion::DataLosses, met, reasons)
}

fn assess_economic(i: &ClassificationInput) -> CriterionAssessment {
    let met = i.economic_impact_eur > ECONOMIC_IMPACT_EUR;
    let verb = if met { "exceeds" } else { "does not exceed" };
    let reason = format!(
        "costs and losses EUR {} {verb} EUR {ECONOMIC_IMPACT_EUR}",
        i.economic_impact_eur
    );
    assessment(Criterion::EconomicImpact, met, vec![reason])
}

// ---- field access naming the path -------------------------------------------------------

fn lookup<'a>(v: &'a Value, path: &str) -> Result<Option<&'a Value>, ClassifyError> {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match cur.get(part) {
            Some(next) => cur = next,
            None => {
                if i > 0 && !cur.is_object() {
                    return Err(ClassifyError::Malformed {
                        field: parts[..i].join("."),
                        expected: "an object".into(),
                    });
                }
                return Ok(None);
            }
        }
    }
    Ok(Some(cur))
}

fn required<'a>(v: &'a Value, path: &str) -> Result<&'a Value, ClassifyError> {
    match lookup(v, path)? {
        Some(value) => Ok(value),
        None => Err(ClassifyError::Missing { field: path.into() }),
    }
}

fn malformed(path: &str, expected: &str) -> ClassifyError {
    ClassifyError::Malformed {
        field: path.into(),
        expected: expected.into(),
    }
}

fn boolean(v: &Value, path: &str) -> Result<bool, ClassifyError> {
    required(v, path)?
        .as_bool()
        .ok_or_else(|| malformed(path, "true or false"))
}

fn count(v: &Value, path: &str) -> Result<u64, ClassifyError> {
    let n = required(v, path)?
        .as_u64()
        .ok_or_else(|| malformed(path, "a non-negative integer"))?;
    if n > COUNT_MAX {
        return Err(malformed(path, &format!("at most {COUNT_MAX}")));
    }
    Ok(n)
}

fn amount(v: &Value, path: &str) -> Result<f64, ClassifyError> {
    let x = required(v, path)?
        .as_f64()
        .ok_or_else(|| malformed(path, "a non-negative number"))?;
    if !x.is_finite() || x < 0.0 {
        return Err(malformed(path, "a non-negative number"));
    }
    if x > AMOUNT_MAX {
        return Err(malformed(path, &format!("at most {AMOUNT_MAX}")));
    }
    Ok(x)
}

fn affected(v: &Value, field: &str) -> Result<Affected, ClassifyError> {
    Ok(Affected {
        affected: count(v, &format!("{field}.affected"))?,
        total: count(v, &format!("{field}.total"))?,
    })
}

fn time(v: &Value, path: &str) -> Result<DateTime<Utc>, ClassifyError> {
    let text = required(v, path)?
        .as_str()
        .ok_or_else(|| malformed(path, "an RFC 3339 time as a string"))?;
    let t = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| malformed(path, &format!("an RFC 3339 time ({e})")))?;
    crate::deadlines::check_time(path, t).map_err(|_| {
        malformed(
            path,
            &format!("a time from {}", crate::deadlines::TIME_RANGE),
        )
    })?;
    Ok(t)
}

fn reputational(v: &Value) -> Result<Vec<Reputational>, ClassifyError> {
    let list = required(v, "reputational")?
        .as_array()
        .ok_or_else(|| malformed("reputational", "a list"))?;
    if list.len() > REPUTATIONAL_ENTRIES_MAX {
        return Err(malformed(
            "reputational",
            &format!("at most {REPUTATIONAL_ENTRIES_MAX} entries"),
        ));
    }
    let names: Vec<&str> = Reputational::ALL.iter().map(|r| r.name()).collect();
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .and_then(Reputational::from_name)
                .ok_or_else(|| {
                    malformed(
                        &format!("reputational[{i}]"),
                        &format!("one of {}", names.join(", ")),
                    )
                })
        })
        .collect()
}
