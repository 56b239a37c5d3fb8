//! The data glossary of Annex II of Commission Implementing Regulation (EU) 2025/302: every
//! field of sections 1-4 of the major-incident report by its number, name, type, stage rule
//! and condition, and the JSON Schema generated from it
//! (`tools/dora/schema/major-incident-report.schema.json` is this generator's output).
//!
//! Source: the field list in shared/dora.md ("Annex II field list of 2025/302"). Where that list
//! names a field's choices they are the closed code list here (snake_case of the listed
//! values); where it gives no choices (4.2's sub-lists, 3.33's type) the field is free text or
//! a yes/no flag and tools/dora/README.md says so. Dates are ISO 8601 UTC, durations DD:HH:MM,
//! amounts in thousands of units of the reporting currency (field 1.15).

use serde_json::{json, Map, Value};

/// When a field is mandatory (legend of the Annex II list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mandatory {
    /// Mandatory in every report.
    All,
    /// Mandatory from the intermediate report on.
    IntermediatePlus,
    /// Mandatory in the final report.
    Final,
    /// Conditional; the condition is spelled out in [`RULES`] (or only in the text, when it
    /// cannot be decided from the report).
    Conditional(&'static str),
}

/// The type of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text(u32),
    /// A list of free texts.
    Texts(u32),
    Email,
    Lei,
    Currency,
    /// ISO 3166-1 alpha-2 codes.
    Countries,
    /// One value of a closed code list.
    Choice(&'static [&'static str]),
    /// One or more values of a closed code list.
    Multi(&'static [&'static str]),
    /// ISO 8601 date-time in UTC (`Z`).
    DateTime,
    DateTimes,
    /// DD:HH:MM.
    Duration,
    Count,
    /// 0-100.
    Percent,
    /// Not bounded above (affected transactions can exceed the daily average).
    PercentUnbounded,
    /// Thousands of units of the reporting currency.
    Amount,
    Flag,
}

/// One Annex II field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub no: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub mandatory: Mandatory,
    /// Where the engine takes the value from; for operator fields, the key of the report
    /// inputs file that carries it (the prompt shown when it is missing).
    pub source: Source,
}

/// Who fills a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The entity profile of the engine configuration (`profile.<key>`).
    Profile(&'static str),
    /// The ledger's own record (times, counts, domains, classification).
    Ledger,
    /// Operator facts of the incident (`incident facts`, key).
    Facts(&'static str),
    /// The report inputs file (`--inputs`, key).
    Input(&'static str),
    /// The ledger fills a default that the inputs key overrides.
    LedgerOrInput(&'static str),
}

pub const STAGES: [&str; 4] = [
    "initial_notification",
    "intermediate_report",
    "final_report",
    "major_incident_reclassified_as_non_major",
];

pub const ENTITY_TYPES: [&str; 23] = [
    "credit_institution",
    "payment_institution",
    "exempted_payment_institution",
    "account_information_service_provider",
    "electronic_money_institution",
    "exempted_electronic_money_institution",
    "investment_firm",
    "crypto_asset_service_provider",
    "issuer_of_asset_referenced_tokens",
    "central_securities_depository",
    "central_counterparty",
    "trading_venue",
    "trade_repository",
    "manager_of_alternative_investment_fund",
    "management_company",
    "data_reporting_service_provider",
    "insurance_and_reinsurance_undertaking",
    "insurance_intermediary",
    "institution_for_occupational_retirement_provision",
    "credit_rating_agency",
    "administrator_of_critical_benchmarks",
    "crowdfunding_service_provider",
    "securitisation_repository",
];

pub const CRITERIA: [&str; 7] = [
    "clients_counterparts_transactions",
    "reputational",
    "duration_downtime",
    "geographical_spread",
    "data_losses",
    "critical_services",
    "economic_impact",
];

pub const DISCOVERY: [&str; 11] = [
    "it_security",
    "staff",
    "internal_audit",
    "external_audit",
    "clients",
    "financial_counterparts",
    "third_party_provider",
    "attacker",
    "monitoring_systems",
    "authority_agency_law_enforcement",
    "other",
];

pub const ACTUAL_ESTIMATE_NONE: [&str; 3] = ["actual", "estimates", "no_impact"];
pub const ACTUAL_ESTIMATE: [&str; 2] = ["actual", "estimates"];

pub const REPUTATIONAL: [&str; 4] = [
    "media",
    "repetitive_complaints",
    "cannot_meet_regulatory_requirements",
    "loss_of_clients_or_counterparts",
];

pub const MEMBER_STATE_IMPACT: [&str; 6] = [
    "clients",
    "financial_counterparts",
    "branch",
    "group_entities",
    "financial_market_infrastructure",
    "third_party_providers_common_to_other_entities",
];

pub const DATA_LOSSES: [&str; 4] = [
    "availability",
    "authenticity",
    "integrity",
    "confidentiality",
];

pub const INCIDENT_TYPES: [&str; 6] = [
    "cybersecurity_related",
    "process_failure",
    "system_failure",
    "external_event",
    "payment_related",
    "other",
];

pub const TECHNIQUES: [&str; 10] = [
    "social_engineering",
    "ddos",
    "identity_theft",
    "data_encryption_for_impact",
    "resource_hijacking",
    "data_exfiltration_and_manipulation",
    "data_destruction",
    "defacement",
    "supply_chain_attack",
    "other",
];

pub const YES_NO_NA: [&str; 3] = ["yes", "no", "information_not_available"];

pub const AUTHORITIES: [&str; 6] = [
    "police_law_enforcement",
    "csirt",
    "data_protection_authority",
    "national_cybersecurity_agency",
    "none",
    "other",
];

pub const ROOT_CAUSES: [&str; 5] = [
    "malicious_actions",
    "process_failure",
    "system_failure",
    "human_error",
    "external_event",
];

const fn f(
    no: &'static str,
    name: &'static str,
    kind: Kind,
    mandatory: Mandatory,
    source: Source,
) -> Field {
    Field {
        no,
        name,
        kind,
        mandatory,
        source,
    }
}

use Kind::*;
use Mandatory::{All, Conditional as Cond, Final as Fin, IntermediatePlus as Int};
use Source::{Facts, Input, Ledger, LedgerOrInput, Profile};

/// Every field of sections 1-4, in Annex II order.
pub const FIELDS: [Field; 80] = [
    f("1.1", "Type of submission", Choice(&STAGES), All, Ledger),
    f("1.2", "Name of the entity submitting the report", Text(4096), All, Profile("name")),
    f("1.3", "Identification code of the entity submitting the report", Lei, All, Profile("lei")),
    f("1.4", "Type of financial entity affected", Multi(&ENTITY_TYPES), All, Profile("entity_types")),
    f("1.5", "Name of the financial entity affected", Text(4096), Cond("the affected entity differs from the submitter, or the report is aggregated"), Profile("affected_name")),
    f("1.6", "LEI code of the financial entity affected", Lei, Cond("given with 1.5"), Profile("affected_lei")),
    f("1.7", "Primary contact person name", Text(256), All, Profile("primary_contact.name")),
    f("1.8", "Primary contact person email", Email, All, Profile("primary_contact.email")),
    f("1.9", "Primary contact person telephone", Text(64), All, Profile("primary_contact.telephone")),
    f("1.10", "Second contact person name", Text(256), All, Profile("second_contact.name")),
    f("1.11", "Second contact person email", Email, All, Profile("second_contact.email")),
    f("1.12", "Second contact person telephone", Text(64), All, Profile("second_contact.telephone")),
    f("1.13", "Name of the ultimate parent undertaking", Text(4096), Cond("the entity belongs to a group"), Profile("parent_name")),
    f("1.14", "LEI code of the ultimate parent undertaking", Lei, Cond("given with 1.13"), Profile("parent_lei")),
    f("1.15", "Reporting currency", Currency, All, Profile("currency")),
    f("2.1", "Incident reference code assigned by the financial entity", Text(128), All, Ledger),
    f("2.2", "Date and time of detection of the major ICT-related incident", DateTime, All, Ledger),
    f("2.3", "Date and time of classification of the ICT-related incident as major", DateTime, All, Ledger),
    f("2.4", "Description of the major ICT-related incident", Text(32000), All, Facts("description")),
    f("2.5", "Classification criteria that triggered the incident report", Multi(&CRITERIA), All, Ledger),
    f("2.6", "Materiality thresholds for the classification criterion 'Geographical spread'", Countries, Cond("2.5 includes geographical_spread"), Facts("member_states")),
    f("2.7", "Discovery of the major ICT-related incident", Choice(&DISCOVERY), All, LedgerOrInput("discovery")),
    f("2.8", "Indication whether the major ICT-related incident originates from a third-party provider or another financial entity", Text(4096), Cond("the incident originates from a third-party provider or another financial entity"), Facts("origin")),
    f("2.9", "Activation of business continuity plan, if activated", Flag, All, Facts("business_continuity_plan_activated")),
    f("2.10", "Other relevant information", Text(32000), Cond("a reclassification as non-major (the reasons)"), Input("other_information")),
    f("3.1", "Incident reference code provided by the competent authority", Text(128), Cond("the authority assigned one"), Input("competent_authority_reference")),
    f("3.2", "Date and time of occurrence of the major ICT-related incident", DateTime, Int, Ledger),
    f("3.3", "Date and time when services, activities or operations have been recovered", DateTime, Cond("3.16 is given"), Ledger),
    f("3.4", "Number of clients affected", Count, Int, Facts("clients")),
    f("3.5", "Percentage of clients affected", Percent, Int, Facts("clients")),
    f("3.6", "Number of financial counterparts affected", Count, Int, Facts("financial_counterparts")),
    f("3.7", "Percentage of financial counterparts affected", Percent, Int, Facts("financial_counterparts")),
    f("3.8", "Impact on relevant clients or financial counterparts", Text(8192), Cond("relevant clients or financial counterparts are affected"), Input("impact_on_relevant_clients")),
    f("3.9", "Number of affected transactions", Count, Cond("transactions are affected"), Facts("transactions")),
    f("3.10", "Percentage of affected transactions", PercentUnbounded, Cond("transactions are affected"), Facts("transactions")),
    f("3.11", "Value of affected transactions", Amount, Cond("transactions are affected"), Facts("transactions")),
    f("3.12", "Whether the numbers are actual or estimates, or no impact", Choice(&ACTUAL_ESTIMATE_NONE), Int, Input("figures_actual_or_estimates")),
    f("3.13", "Reputational impact", Multi(&REPUTATIONAL), Cond("reputational impact"), Facts("reputational")),
    f("3.14", "Contextual information about the reputational impact", Text(8192), Cond("3.13 is given"), Input("reputational_context")),
    f("3.15", "Duration of the incident", Duration, Int, Ledger),
    f("3.16", "Service downtime", Duration, Cond("there was service downtime"), Ledger),
    f("3.17", "Whether duration and service downtime figures are actual or estimates", Choice(&ACTUAL_ESTIMATE), Cond("3.15 or 3.16 is given"), LedgerOrInput("duration_actual_or_estimates")),
    f("3.18", "Types of impact in the Member States", Multi(&MEMBER_STATE_IMPACT), Cond("2.5 includes geographical_spread"), Input("member_state_impact_types")),
    f("3.19", "Description of how the incident has an impact in other Member States", Text(8192), Cond("2.5 includes geographical_spread"), Input("member_state_impact_description")),
    f("3.20", "Materiality thresholds for the classification criterion 'Data losses'", Multi(&DATA_LOSSES), Cond("data losses"), Facts("data_losses")),
    f("3.21", "Description of the data losses", Text(8192), Cond("3.20 is given"), Input("data_losses_description")),
    f("3.22", "Classification criterion 'Critical services affected'", Text(8192), Int, LedgerOrInput("critical_services_description")),
    f("3.23", "Type of the incident", Choice(&INCIDENT_TYPES), Int, Input("incident_type")),
    f("3.24", "Other types of incidents", Text(4096), Cond("3.23 is other"), Input("other_incident_type")),
    f("3.25", "Threats and techniques used by the threat actor", Multi(&TECHNIQUES), Cond("3.23 is cybersecurity_related"), Input("threats_and_techniques")),
    f("3.26", "Other types of techniques", Text(4096), Cond("3.25 includes other"), Input("other_techniques")),
    f("3.27", "Information about affected functional areas and business processes", Text(8192), Int, LedgerOrInput("affected_functional_areas")),
    f("3.28", "Affected infrastructure components supporting business processes", Choice(&YES_NO_NA), Int, Ledger),
    f("3.29", "Information about affected infrastructure components supporting business processes", Text(8192), Cond("3.28 is yes"), Ledger),
    f("3.30", "Impact on the financial interest of clients", Choice(&YES_NO_NA), Int, Input("impact_on_financial_interest_of_clients")),
    f("3.31", "Reporting to other authorities", Multi(&AUTHORITIES), Int, Input("reporting_to_other_authorities")),
    f("3.32", "Specification of 'other' authorities", Text(4096), Cond("3.31 includes other"), Input("other_authorities")),
    f("3.33", "Temporary actions/measures taken or planned to recover from the incident", Flag, Int, Input("temporary_actions_taken")),
    f("3.34", "Description of any temporary actions/measures taken or planned to recover from the incident", Text(16000), Cond("3.33 is yes"), Input("temporary_actions")),
    f("3.35", "Indicators of compromise", Texts(2048), Cond("3.23 is cybersecurity_related"), Input("indicators_of_compromise")),
    f("4.1", "High-level classification of root causes of the incident", Multi(&ROOT_CAUSES), Fin, Input("root_cause_categories")),
    f("4.2", "Detailed classification of root causes of the incident", Texts(512), Fin, Input("root_cause_details")),
    f("4.3", "Additional classification of root causes of the incident", Text(4096), Cond("an additional classification applies"), Input("root_cause_additional")),
    f("4.4", "Other types of root cause types", Text(4096), Cond("the root cause is of another type"), Input("root_cause_other")),
    f("4.5", "Information about the root causes of the incident", Text(16000), Fin, Input("root_causes")),
    f("4.6", "Incident resolution summary", Text(16000), Fin, Input("resolution")),
    f("4.7", "Date and time when the incident root cause was addressed", DateTime, Fin, Input("root_cause_addressed_at")),
    f("4.8", "Date and time when the incident was resolved", DateTime, Fin, Input("resolved_at")),
    f("4.9", "Information if the permanent resolution date of the incident differs from the initially planned implementation date", Text(8192), Cond("the permanent resolution date differs from the planned one"), Input("resolution_date_difference")),
    f("4.10", "Assessment of risk to critical functions for resolution purposes", Text(8192), Cond("relevant for resolution purposes"), Input("resolution_risk_assessment")),
    f("4.11", "Information relevant for resolution authorities", Text(8192), Cond("relevant for resolution authorities"), Input("resolution_authorities_information")),
    f("4.12", "Materiality threshold for the classification criterion 'Economic impact'", Flag, Fin, Ledger),
    f("4.13", "Amount of gross direct and indirect costs and losses", Amount, Fin, Input("costs_and_losses")),
    f("4.14", "Amount of financial recoveries", Amount, Fin, Input("financial_recoveries")),
    f("4.15", "Information on whether the non-major incidents have been recurring", Text(8192), Cond("recurring incidents reported in aggregated form"), Input("recurring_information")),
    f("4.16", "Date and time of occurrence of recurring incidents", DateTimes, Cond("recurring incidents reported in aggregated form"), Input("recurring_occurrences")),
    f("conditions.transactions_affected", "Transactions are affected (engine fact deciding 3.9-3.11; not an Annex II field)", Flag, Int, Ledger),
    f("conditions.relevant_clients_affected", "Relevant clients or counterparts are affected (engine fact deciding 3.8; not an Annex II field)", Flag, Int, Ledger),
    f("conditions.recurring", "Recurring incidents reported in aggregated form (engine fact deciding 4.15-4.16; not an Annex II field)", Flag, Fin, Ledger),
    f("cluster_evidence", "Evidence from the CC-BFT ledger (event kinds, domains, replicas, event ids; not an Annex II field)", Text(0), All, Ledger),
];

/// A conditional rule: in the stages listed, when `when` holds, the fields are required.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub stages: &'static [&'static str],
    pub when: When,
    pub then: &'static [&'static str],
}

/// A condition decidable from the report itself.
#[derive(Debug, Clone, Copy)]
pub enum When {
    Present(&'static str),
    Equals(&'static str, &'static str),
    Includes(&'static str, &'static str),
    True(&'static str),
    /// A yes/no field of the report is yes.
    Yes(&'static str),
}

const INT_PLUS: &[&str] = &["intermediate_report", "final_report"];
const FINAL: &[&str] = &["final_report"];
const EVERY: &[&str] = &STAGES;

/// The conditions of the Annex II list that can be decided from the report.
pub const RULES: [Rule; 18] = [
    Rule {
        stages: EVERY,
        when: When::Present("1.5"),
        then: &["1.6"],
    },
    Rule {
        stages: EVERY,
        when: When::Present("1.6"),
        then: &["1.5"],
    },
    Rule {
        stages: EVERY,
        when: When::Present("1.13"),
        then: &["1.14"],
    },
    Rule {
        stages: EVERY,
        when: When::Present("1.14"),
        then: &["1.13"],
    },
    Rule {
        stages: EVERY,
        when: When::Includes("2.5", "geographical_spread"),
        then: &["2.6"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Present("3.16"),
        then: &["3.3"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::True("conditions.relevant_clients_affected"),
        then: &["3.8"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::True("conditions.transactions_affected"),
        then: &["3.9", "3.10", "3.11"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Present("3.13"),
        then: &["3.14"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Includes("2.5", "geographical_spread"),
        then: &["3.18", "3.19"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Present("3.20"),
        then: &["3.21"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Equals("3.23", "other"),
        then: &["3.24"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Equals("3.23", "cybersecurity_related"),
        then: &["3.25", "3.35"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Includes("3.25", "other"),
        then: &["3.26"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Equals("3.28", "yes"),
        then: &["3.29"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Includes("3.31", "other"),
        then: &["3.32"],
    },
    Rule {
        stages: INT_PLUS,
        when: When::Yes("3.33"),
        then: &["3.34"],
    },
    Rule {
        stages: FINAL,
        when: When::True("conditions.recurring"),
        then: &["4.15", "4.16"],
    },
];

/// The extra rule that the reclassification carries its reasons (2.10).
pub const RECLASSIFICATION_REQUIRES: [&str; 1] = ["2.10"];

/// Look a field up by number.
pub fn field(no: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.no == no)
}

/// Annex II fields only (without the engine's `conditions.*` and evidence).
pub fn annex_fields() -> impl Iterator<Item = &'static Field> {
    FIELDS
        .iter()
        .filter(|f| f.no.as_bytes()[0].is_ascii_digit())
}

/// The fields mandatory in `stage` (without conditions).
pub fn mandatory_in(stage: &str) -> Vec<&'static str> {
    let reclass = stage == "major_incident_reclassified_as_non_major";
    let mut out: Vec<&'static str> = FIELDS
        .iter()
        .filter(|f| f.no != "cluster_evidence")
        .filter(|f| match f.mandatory {
            Mandatory::All => !reclass || f.no.starts_with("1.") || is_reclass_core(f.no),
            Mandatory::IntermediatePlus => INT_PLUS.contains(&stage),
            Mandatory::Final => stage == "final_report",
            Mandatory::Conditional(_) => false,
        })
        .map(|f| f.no)
        .collect();
    if reclass {
        out.extend(RECLASSIFICATION_REQUIRES);
    }
    out
}

/// A reclassification as non-major carries the identification of the incident (2.1-2.3)
/// and its reasons (2.10), not a new description and criteria.
fn is_reclass_core(no: &str) -> bool {
    matches!(no, "2.1" | "2.2" | "2.3")
}

/// Top-level report keys, in order (`conditions.*` collapse into `conditions`).
pub fn top_level_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = annex_fields().map(|f| f.no).collect();
    keys.push("conditions");
    keys.push("cluster_evidence");
    keys
}

/// DD:HH:MM (days may exceed 99).
pub const DURATION_PATTERN: &str = "^[0-9]{2,}:([01][0-9]|2[0-3]):[0-5][0-9]$";
/// ISO 8601 date-time in UTC.
pub const UTC_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$";
pub const LEI_PATTERN: &str = "^[A-Z0-9]{18}[0-9]{2}$";

fn property(field: &Field) -> Value {
    let mut p = match field.kind {
        Text(0) => json!({"type": "object"}),
        Text(max) => json!({"type": "string", "minLength": 1, "maxLength": max}),
        Texts(max) => json!({"type": "array", "minItems": 1, "maxItems": 1000,
            "items": {"type": "string", "minLength": 1, "maxLength": max}}),
        Email => {
            json!({"type": "string", "maxLength": 256, "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"})
        }
        Lei => json!({"type": "string", "pattern": LEI_PATTERN,
            "$comment": "ISO 17442-1; the engine also checks the mod 97-10 check digits"}),
        Currency => json!({"enum": &crate::codes::ISO_4217[..]}),
        Countries => json!({"type": "array", "minItems": 1, "maxItems": 40, "uniqueItems": true,
            "items": {"enum": &crate::codes::ISO_3166_ALPHA2[..]}}),
        Choice(codes) => json!({"enum": codes}),
        Multi(codes) => {
            json!({"type": "array", "minItems": 1, "uniqueItems": true, "items": {"enum": codes}})
        }
        DateTime => json!({"type": "string", "format": "date-time", "pattern": UTC_PATTERN}),
        DateTimes => json!({"type": "array", "minItems": 1, "maxItems": 1000,
            "items": {"type": "string", "format": "date-time", "pattern": UTC_PATTERN}}),
        Duration => json!({"type": "string", "pattern": DURATION_PATTERN}),
        Count => json!({"type": "integer", "minimum": 0}),
        Percent => json!({"type": "number", "minimum": 0, "maximum": 100}),
        PercentUnbounded => json!({"type": "number", "minimum": 0}),
        Amount => json!({"type": "number", "minimum": 0}),
        Flag => json!({"type": "boolean"}),
    };
    if let Some(obj) = p.as_object_mut() {
        obj.insert("title".into(), json!(field.name));
        obj.insert("description".into(), json!(describe(field)));
    }
    p
}

fn describe(field: &Field) -> String {
    let rule = match field.mandatory {
        Mandatory::All => "mandatory in every report".to_string(),
        Mandatory::IntermediatePlus => "mandatory in the intermediate and final reports".into(),
        Mandatory::Final => "mandatory in the final report".into(),
        Mandatory::Conditional(c) => format!("conditional: when {c}"),
    };
    let unit = match field.kind {
        Amount => "; in thousands of units of the reporting currency (1.15)",
        Duration => "; DD:HH:MM",
        DateTime | DateTimes => "; ISO 8601, UTC",
        Percent | PercentUnbounded => "; percent",
        _ => "",
    };
    if field.no.as_bytes()[0].is_ascii_digit() {
        format!("Annex II of 2025/302 field {}: {rule}{unit}.", field.no)
    } else {
        format!("{rule}{unit}.")
    }
}

fn stage_is(stages: &[&str]) -> Value {
    json!({"properties": {"1.1": {"enum": stages}}, "required": ["1.1"]})
}

fn condition(when: When) -> Value {
    match when {
        When::Present(f) => json!({"required": [f]}),
        When::Equals(f, v) => json!({"properties": {f: {"const": v}}, "required": [f]}),
        When::Includes(f, v) => {
            json!({"properties": {f: {"type": "array", "contains": {"const": v}}}, "required": [f]})
        }
        When::Yes(f) => json!({"properties": {f: {"const": true}}, "required": [f]}),
        When::True(path) => {
            let key = path.strip_prefix("conditions.").unwrap_or(path);
            json!({"properties": {"conditions": {"properties": {key: {"const": true}}, "required": [key]}},
                "required": ["conditions"]})
        }
    }
}

fn stage_rule(stages: &[&str], then: Value) -> Value {
    json!({"if": stage_is(stages), "then": then})
}

/// The JSON Schema (draft 2020-12) of a report, with the stage and condition rules.
pub fn schema() -> Value {
    let mut props = Map::new();
    let mut cond_props = Map::new();
    for field in FIELDS.iter() {
        match field.no.strip_prefix("conditions.") {
            Some(key) => {
                cond_props.insert(key.into(), property(field));
            }
            None => {
                props.insert(field.no.into(), property(field));
            }
        }
    }
    props.insert(
        "conditions".into(),
        json!({"title": "Facts the conditional fields depend on (engine; not an Annex II field)",
            "type": "object", "additionalProperties": false, "properties": cond_props}),
    );
    let mut all_of = Vec::new();
    for stage in STAGES {
        let mut required: Vec<Value> = mandatory_in(stage)
            .into_iter()
            .filter(|f| !f.starts_with("conditions."))
            .map(Value::from)
            .collect();
        let conds: Vec<&str> = mandatory_in(stage)
            .into_iter()
            .filter_map(|f| f.strip_prefix("conditions."))
            .collect();
        let mut then = Map::new();
        if !conds.is_empty() {
            required.push("conditions".into());
            then.insert(
                "properties".into(),
                json!({"conditions": {"required": conds}}),
            );
        }
        then.insert("required".into(), Value::Array(required));
        all_of.push(stage_rule(&[stage], Value::Object(then)));
    }
    for rule in RULES.iter() {
        all_of.push(stage_rule(
            rule.stages,
            json!({"if": condition(rule.when), "then": {"required": rule.then}}),
        ));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cc-bft.example/schema/major-incident-report/v2",
        "title": "Major ICT-related incident report (Implementing Regulation (EU) 2025/302)",
        "description": "One submission of the single template of Annex I of Commission Implementing Regulation (EU) 2025/302, keyed by the field numbers of its Annex II data glossary (sections 1-4). Generated by ccbft_dora::annex2 from the field catalogue; do not edit by hand. Stage rules: section 1 and the ALL fields of section 2 in every report, the INT+ fields of section 3 from the intermediate report, the FIN fields of section 4 in the final report; conditional fields are required exactly when their condition holds.",
        "type": "object",
        "additionalProperties": false,
        "required": ["1.1"],
        "properties": props,
        "allOf": all_of,
    })
}

/// The schema as the shipped file holds it (pretty JSON, trailing newline).
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Thousands of units, to three decimals (the Annex's unit for amounts).
pub fn thousands(units: f64) -> f64 {
    (units / 1000.0 * 1000.0).round() / 1000.0
}

/// Hours as DD:HH:MM (rounded to the minute).
pub fn dd_hh_mm(hours: f64) -> String {
    let minutes = (hours.max(0.0) * 60.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        minutes / 1440,
        (minutes % 1440) / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_number_is_unique_and_sections_are_complete() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FIELDS.iter() {
            assert!(seen.insert(f.no), "duplicate {}", f.no);
        }
        let count = |s: &str| annex_fields().filter(|f| f.no.starts_with(s)).count();
        assert_eq!(
            (count("1."), count("2."), count("3."), count("4.")),
            (15, 10, 35, 16)
        );
    }

    #[test]
    fn units() {
        assert_eq!(thousands(182_500.0), 182.5);
        assert_eq!(thousands(15_000.0), 15.0);
        assert_eq!(dd_hh_mm(3.0 + 10.0 / 60.0), "00:03:10");
        assert_eq!(dd_hh_mm(49.5), "02:01:30");
    }
}
