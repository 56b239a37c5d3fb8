//! Table tests of the Annex II stage and condition rules on real generated reports, each
//! verdict of the engine's report check (schema, field mapping, LEI check digits)
//! cross-checked with a plain `jsonschema` validator of the shipped schema.

mod common;
use ccbft_dora::annex2::{self, Kind, Mandatory, When, FIELDS, RULES};
use ccbft_dora::classify::{Affected, Transactions};
use ccbft_dora::deadlines::EntityType;
use ccbft_dora::health::EventKind;
use ccbft_dora::incident::{IncidentTracker, Ingested, MergePolicy, OperatorFacts};
use ccbft_dora::report::{build, check_value, Contact, EntityProfile, ReportError, ReportInputs};
use ccbft_dora::report::{Stage, REPORT_SCHEMA};
use common::{at, event};
use serde_json::{json, Value};

const STAGES: [Stage; 3] = [
    Stage::InitialNotification,
    Stage::IntermediateReport,
    Stage::FinalReport,
];

fn profile() -> EntityProfile {
    let contact = |n: &str| Contact {
        name: n.into(),
        email: format!("{}@example.eu", n.to_lowercase()),
        telephone: "+49 69 000000".into(),
    };
    EntityProfile {
        name: "Example Bank AG".into(),
        lei: "5493001KJTIIGC8Y1R12".into(),
        entity_types: vec![EntityType::CreditInstitution],
        affected_name: None,
        affected_lei: None,
        primary_contact: contact("Ops"),
        second_contact: Some(contact("Deputy")),
        parent_name: None,
        parent_lei: None,
        currency: "EUR".into(),
    }
}

fn inputs() -> ReportInputs {
    ReportInputs {
        figures_actual_or_estimates: Some("estimates".into()),
        member_state_impact_types: Some(vec!["clients".into()]),
        member_state_impact_description: Some("Clients in AT use the DE service.".into()),
        incident_type: Some("system_failure".into()),
        impact_on_financial_interest_of_clients: Some("no".into()),
        reporting_to_other_authorities: Some(vec!["none".into()]),
        temporary_actions_taken: Some(true),
        temporary_actions: Some("Clients failed over to the azure and gcp domains.".into()),
        root_cause_categories: Some(vec!["system_failure".into()]),
        root_cause_details: Some(vec!["third-party network outage".into()]),
        root_causes: Some("Provider network outage.".into()),
        root_cause_addressed_at: Some(at(190)),
        resolved_at: Some(at(200)),
        resolution: Some("Connectivity restored; replicas caught up.".into()),
        costs_and_losses: Some(182_500.0),
        financial_recoveries: Some(2_000.0),
        ..Default::default()
    }
}

fn incident() -> (IncidentTracker, String) {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let Ingested::Opened(id) = tr
        .ingest(&event("s", 0, EventKind::CommitStall, None, None))
        .unwrap()
    else {
        panic!("not opened")
    };
    let p = event("p", 1, EventKind::DomainPartition, None, Some("aws/eu"));
    tr.ingest(&p).unwrap();
    let h = event("h", 190, EventKind::PartitionHealed, None, Some("aws/eu"));
    tr.ingest(&h).unwrap();
    tr.ingest(&event("r", 200, EventKind::CommitResumed, None, None))
        .unwrap();
    let facts = OperatorFacts {
        clients: Some(Affected {
            affected: 120_000,
            total: 900_000,
        }),
        financial_counterparts: Some(Affected {
            affected: 3,
            total: 40,
        }),
        transactions: Some(Transactions {
            affected: 18_000,
            daily_average: 400_000,
            value_affected_eur: 2_500_000.0,
            daily_average_value_eur: 90_000_000.0,
        }),
        member_states: Some(vec!["DE".into(), "AT".into()]),
        description: Some("Global ordering stalled.".into()),
        business_continuity_plan_activated: Some(true),
        ..Default::default()
    };
    tr.set_facts(&id, facts).unwrap();
    assert!(tr.classify(&id, at(60)).unwrap().major);
    (tr, id)
}

fn report(stage: Stage) -> Value {
    let (tr, id) = incident();
    build(stage, tr.get(&id).unwrap(), &profile(), &inputs(), at(300))
        .unwrap_or_else(|e| panic!("{stage:?}: {e}"))
        .json
}

fn standard_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(REPORT_SCHEMA).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

/// The engine's verdict, cross-checked with a plain validator.
fn verdict(v: &jsonschema::Validator, json: &Value) -> Result<(), ReportError> {
    let ours = check_value(json.clone()).map(|_| ());
    let theirs = v.is_valid(json);
    // The LEI check digits are beyond JSON Schema; everything else must agree.
    let lei_only = matches!(&ours, Err(ReportError::InvalidField { message, .. }) if message.contains("check digits"));
    if !lei_only {
        assert_eq!(
            ours.is_ok(),
            theirs,
            "checkers disagree on {json}: ours {ours:?}"
        );
    }
    ours
}

fn without(json: &Value, key: &str) -> Value {
    let mut out = json.clone();
    match key.strip_prefix("conditions.") {
        Some(k) => {
            out["conditions"].as_object_mut().unwrap().remove(k);
        }
        None => {
            out.as_object_mut().unwrap().remove(key);
        }
    }
    out
}

fn refused_naming(result: Result<(), ReportError>, field: &str) -> bool {
    match result {
        Err(ReportError::MissingField { field: f, .. }) => f == field,
        Err(ReportError::InvalidField { field: f, .. }) => f == field,
        _ => false,
    }
}

#[test]
fn shipped_schema_is_the_one_generated_from_the_catalogue() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/major-incident-report.schema.json"
    );
    let text = annex2::schema_text();
    if std::env::var_os("CCBFT_REGENERATE").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        text,
        "run the test with CCBFT_REGENERATE=1 to regenerate the schema"
    );
}

#[test]
fn generated_reports_of_every_stage_pass_both_checkers() {
    let v = standard_validator();
    for stage in STAGES {
        let json = report(stage);
        assert!(verdict(&v, &json).is_ok(), "{stage:?}: {json}");
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        for no in annex2::mandatory_in(stage.name()) {
            if !no.starts_with("conditions.") {
                assert!(json.get(no).is_some(), "{stage:?} lacks {no}: {keys:?}");
            }
        }
    }
}

#[test]
fn a_report_missing_any_mandatory_field_of_its_stage_is_refused_naming_it() {
    let v = standard_validator();
    let mut cases = 0;
    for stage in STAGES {
        let json = report(stage);
        for no in annex2::mandatory_in(stage.name()) {
            let field = if no.starts_with("conditions.") {
                "conditions"
            } else {
                no
            };
            let result = verdict(&v, &without(&json, no));
            let named = match &result {
                Err(ReportError::MissingField { field: f, .. }) => {
                    f == field || f.starts_with(&format!("{field}."))
                }
                _ => false,
            };
            assert!(named, "{stage:?} without {no}: {result:?}");
            cases += 1;
        }
    }
    // Sections 1+2 in all three, 3 from intermediate, 4 in final.
    assert_eq!(cases, 96, "{cases}");
    // The two the issue names.
    let int = without(&report(Stage::IntermediateReport), "3.23");
    assert!(refused_naming(check_value(int).map(|_| ()), "3.23"));
    let fin = without(&report(Stage::FinalReport), "4.1");
    assert!(refused_naming(check_value(fin).map(|_| ()), "4.1"));
}

/// Make `when` hold (true) or fail (false) in `json`.
fn set_condition(json: &mut Value, when: When, hold: bool) {
    match when {
        When::Present(f) => {
            if hold {
                json[f] = sample(f);
            } else {
                json.as_object_mut().unwrap().remove(f);
            }
        }
        When::Equals(f, v) => {
            json[f] = if hold { json!(v) } else { other_code(f, v) };
        }
        When::Includes(f, v) => {
            json[f] = if hold {
                json!([v])
            } else {
                json!([other_code(f, v)])
            };
        }
        When::Yes(f) => json[f] = json!(hold),
        When::True(path) => {
            let key = path.strip_prefix("conditions.").unwrap();
            json["conditions"][key] = json!(hold);
        }
    }
}

fn codes(no: &str) -> &'static [&'static str] {
    match annex2::field(no).unwrap().kind {
        Kind::Choice(c) | Kind::Multi(c) => c,
        other => panic!("{no} is {other:?}"),
    }
}

/// A code of the field other than `not` that triggers no rule.
fn other_code(no: &str, not: &str) -> Value {
    let triggers = |c: &str| {
        RULES.iter().any(|r| match r.when {
            When::Equals(f, v) | When::Includes(f, v) => f == no && v == c,
            _ => false,
        })
    };
    json!(codes(no)
        .iter()
        .find(|c| **c != not && !triggers(c))
        .unwrap())
}

/// A valid value of a field, by its kind.
fn sample(no: &str) -> Value {
    match annex2::field(no).unwrap().kind {
        Kind::Text(_) | Kind::Email => json!(if no == "1.8" || no == "1.11" {
            "x@example.eu"
        } else {
            "text"
        }),
        Kind::Texts(_) => json!(["text"]),
        Kind::Lei => json!("506700GE1G29325QX363"),
        Kind::Currency => json!("EUR"),
        Kind::Countries => json!(["DE"]),
        Kind::Choice(c) => json!(c[0]),
        Kind::Multi(c) => json!([c[0]]),
        Kind::DateTime => json!("2026-03-03T10:00:00Z"),
        Kind::DateTimes => json!(["2026-03-03T10:00:00Z"]),
        Kind::Duration => json!("00:02:10"),
        Kind::Count => json!(5),
        Kind::Percent | Kind::PercentUnbounded | Kind::Amount => json!(1.5),
        Kind::Flag => json!(true),
    }
}

fn stage_of(name: &str) -> Stage {
    Stage::parse(name).unwrap()
}

#[test]
fn a_conditional_field_is_required_exactly_when_its_condition_holds() {
    let v = standard_validator();
    for rule in RULES.iter() {
        for stage_name in rule.stages.iter().filter(|s| !s.contains("reclassified")) {
            let stage = stage_of(stage_name);
            let mut base = report(stage);
            // Fill every field of the rule so each case removes one at a time.
            for f in rule.then {
                base[*f] = sample(f);
            }
            for f in rule.then {
                let mut holds = without(&base, f);
                set_condition(&mut holds, rule.when, true);
                let r = verdict(&v, &holds);
                assert!(
                    refused_naming(r, f),
                    "{stage_name}: {f} missing while {:?} holds must be refused",
                    rule.when
                );
                let mut fails = without(&base, f);
                set_condition(&mut fails, rule.when, false);
                // Another rule may want the removed value (e.g. 1.5 and 1.6 both ways).
                let r = verdict(&v, &fails);
                let ok = r.is_ok()
                    || matches!(&r, Err(ReportError::MissingField { field, .. }) if rule_pair(field, f));
                assert!(
                    ok,
                    "{stage_name}: {f} missing while {:?} fails: {r:?}",
                    rule.when
                );
            }
        }
    }
}

/// 1.5/1.6 and 1.13/1.14 require each other.
fn rule_pair(a: &str, b: &str) -> bool {
    let pairs = [("1.5", "1.6"), ("1.13", "1.14")];
    pairs
        .iter()
        .any(|(x, y)| (a == *x && b == *y) || (a == *y && b == *x))
}

#[test]
fn every_choice_field_refuses_a_value_outside_its_code_list() {
    let v = standard_validator();
    let json = report(Stage::FinalReport);
    let mut checked = 0;
    for field in FIELDS
        .iter()
        .filter(|f| f.no.as_bytes()[0].is_ascii_digit())
    {
        let bad = match field.kind {
            Kind::Choice(_) | Kind::Currency => json!("not_a_code"),
            Kind::Multi(_) | Kind::Countries => json!(["not_a_code"]),
            _ => continue,
        };
        let mut j = json.clone();
        j[field.no] = bad;
        let r = verdict(&v, &j);
        assert!(
            matches!(&r, Err(ReportError::InvalidField { field: f, .. }) if f == field.no),
            "{}: {r:?}",
            field.no
        );
        checked += 1;
    }
    assert_eq!(checked, 17, "every choice field of the catalogue");
}

#[test]
fn amounts_durations_and_times_are_in_the_annex_units() {
    let json = report(Stage::FinalReport);
    // 182 500 EUR of costs, 2 000 EUR recovered, 2 500 000 EUR of transactions: thousands.
    assert_eq!(json["4.13"], json!(182.5));
    assert_eq!(json["4.14"], json!(2.0));
    assert_eq!(json["3.11"], json!(2500.0));
    // From the first event (08:00) to recovery (11:20): 3 h 20 min, as DD:HH:MM.
    assert_eq!(json["3.15"], json!("00:03:20"));
    assert_eq!(json["3.2"], json!("2026-03-03T08:00:00Z"));
    assert_eq!(json["3.17"], json!("actual"));
    let v = standard_validator();
    for bad in ["3:20", "00:24:00", "00:03:60", "3h20"] {
        let mut j = json.clone();
        j["3.15"] = json!(bad);
        assert!(refused_naming(verdict(&v, &j), "3.15"), "{bad}");
    }
    let mut j = json.clone();
    j["2.2"] = json!("2026-03-03T09:00:00+01:00");
    assert!(refused_naming(verdict(&v, &j), "2.2"), "a non-UTC time");
    let mut j = json;
    j["4.13"] = json!(-1.0);
    assert!(refused_naming(verdict(&v, &j), "4.13"));
}

#[test]
fn field_catalogue_matches_the_stage_legend() {
    let stage_rule = |no: &str| annex2::field(no).unwrap().mandatory;
    assert_eq!(stage_rule("3.23"), Mandatory::IntermediatePlus);
    assert_eq!(stage_rule("4.1"), Mandatory::Final);
    assert!(matches!(stage_rule("3.25"), Mandatory::Conditional(_)));
    assert!(annex2::mandatory_in("initial_notification").contains(&"1.10"));
    assert!(!annex2::mandatory_in("initial_notification").contains(&"3.2"));
    assert!(annex2::mandatory_in("final_report").contains(&"3.2"));
}

/// Art. 3 and 4 of Delegated Regulation (EU) 2025/301 (the content of the intermediate and
/// final reports, which Art. 1 of 2025/302 makes the fields each stage completes): an item
/// required outright is a field mandatory from that stage, an item required only "where
/// applicable" a conditional one.
#[test]
fn section_3_and_4_stages_follow_articles_3_and_4_of_2025_301() {
    let stage_rule = |no: &str| annex2::field(no).unwrap().mandatory;
    // Art. 3(b), (e), (g)-(k).
    for no in ["3.2", "3.23", "3.27", "3.28", "3.30", "3.31", "3.33"] {
        assert_eq!(stage_rule(no), Mandatory::IntermediatePlus, "{no}");
    }
    // Art. 4(a)-(c), (e).
    for no in ["4.1", "4.2", "4.5", "4.6", "4.7", "4.8", "4.13", "4.14"] {
        assert_eq!(stage_rule(no), Mandatory::Final, "{no}");
    }
    // Art. 3(a), (c), (f), (l) and Art. 4(d), (f): "where applicable".
    for no in ["3.1", "3.3", "3.25", "3.35", "4.10", "4.11", "4.15", "4.16"] {
        assert!(matches!(stage_rule(no), Mandatory::Conditional(_)), "{no}");
    }
}
