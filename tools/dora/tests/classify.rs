//! Table-driven tests of the classification thresholds of Delegated Regulation (EU) 2024/1772
//! (Art. 9), at, just below and just above each threshold, and of the major rule (Art. 8(1)).

use ccbft_dora::classify::{classify, ClassificationInput, ClassifyError, Criterion};
use serde_json::{json, Value};

/// An incident meeting nothing, with critical services affected.
fn base() -> Value {
    json!({
        "critical_services_affected": true,
        "clients": {"affected": 0, "total": 500000},
        "financial_counterparts": {"affected": 0, "total": 100},
        "transactions": {"affected": 0, "daily_average": 10000,
                         "value_affected_eur": 0.0, "daily_average_value_eur": 1000000.0},
        "reputational": [],
        "duration_hours": 1.0,
        "service_downtime_hours": 0.0,
        "member_states_affected": 1,
        "data_losses": {"availability": false, "authenticity": false,
                        "integrity": false, "confidentiality": false},
        "malicious_unauthorised_access": false,
        "economic_impact_eur": 0.0,
        "detected_at": "2026-03-02T08:00:00Z"
    })
}

fn set(v: &mut Value, path: &str, x: Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur.get_mut(*p).expect("path exists");
    }
    cur[parts[parts.len() - 1]] = x;
}

fn run(v: &Value) -> ccbft_dora::classify::Classification {
    let input = ClassificationInput::from_value(v).expect("valid input");
    classify(&input)
}

struct Case {
    name: &'static str,
    edits: Vec<(&'static str, Value)>,
    criterion: Criterion,
    met: bool,
}

fn case(
    name: &'static str,
    edits: Vec<(&'static str, Value)>,
    criterion: Criterion,
    met: bool,
) -> Case {
    Case {
        name,
        edits,
        criterion,
        met,
    }
}

#[test]
fn every_threshold_at_below_and_above() {
    use Criterion::*;
    let cases = vec![
        // Art. 9(1)(a): clients > 10% of 500 000 = 50 000.
        case(
            "clients share just below",
            vec![("clients.affected", json!(49_999))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "clients share at",
            vec![("clients.affected", json!(50_000))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "clients share just above",
            vec![("clients.affected", json!(50_001))],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(1)(b): more than 100 000 clients (total large so 10% is not reached).
        case(
            "clients absolute just below",
            vec![
                ("clients.total", json!(10_000_000)),
                ("clients.affected", json!(99_999)),
            ],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "clients absolute at",
            vec![
                ("clients.total", json!(10_000_000)),
                ("clients.affected", json!(100_000)),
            ],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "clients absolute just above",
            vec![
                ("clients.total", json!(10_000_000)),
                ("clients.affected", json!(100_001)),
            ],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(1)(c): counterparts > 30% of 100.
        case(
            "counterparts just below",
            vec![("financial_counterparts.affected", json!(29))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "counterparts at",
            vec![("financial_counterparts.affected", json!(30))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "counterparts just above",
            vec![("financial_counterparts.affected", json!(31))],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(1)(d): transactions > 10% of 10 000.
        case(
            "transactions just below",
            vec![("transactions.affected", json!(999))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "transactions at",
            vec![("transactions.affected", json!(1000))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "transactions just above",
            vec![("transactions.affected", json!(1001))],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(1)(e): value > 10% of EUR 1 000 000.
        case(
            "value just below",
            vec![("transactions.value_affected_eur", json!(99_999.99))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "value at",
            vec![("transactions.value_affected_eur", json!(100_000.0))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "value just above",
            vec![("transactions.value_affected_eur", json!(100_000.01))],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(1)(f): relevant clients.
        case(
            "relevant clients not affected",
            vec![("relevant_clients_affected", json!(false))],
            ClientsCounterpartsTransactions,
            false,
        ),
        case(
            "relevant clients affected",
            vec![("relevant_clients_affected", json!(true))],
            ClientsCounterpartsTransactions,
            true,
        ),
        // Art. 9(2): reputational, any one.
        case(
            "no reputational impact",
            vec![("reputational", json!([]))],
            Reputational,
            false,
        ),
        case(
            "media attention",
            vec![("reputational", json!(["media_attention"]))],
            Reputational,
            true,
        ),
        case(
            "repeated complaints",
            vec![("reputational", json!(["repeated_complaints"]))],
            Reputational,
            true,
        ),
        case(
            "regulatory breach",
            vec![("reputational", json!(["regulatory_breach"]))],
            Reputational,
            true,
        ),
        case(
            "client loss",
            vec![("reputational", json!(["client_loss"]))],
            Reputational,
            true,
        ),
        // Art. 9(3)(a): duration > 24 h.
        case(
            "duration just below",
            vec![("duration_hours", json!(23.99))],
            DurationDowntime,
            false,
        ),
        case(
            "duration at",
            vec![("duration_hours", json!(24.0))],
            DurationDowntime,
            false,
        ),
        case(
            "duration just above",
            vec![("duration_hours", json!(24.01))],
            DurationDowntime,
            true,
        ),
        // Art. 9(3)(b): downtime > 2 h.
        case(
            "downtime just below",
            vec![("service_downtime_hours", json!(1.99))],
            DurationDowntime,
            false,
        ),
        case(
            "downtime at",
            vec![("service_downtime_hours", json!(2.0))],
            DurationDowntime,
            false,
        ),
        case(
            "downtime just above",
            vec![("service_downtime_hours", json!(2.01))],
            DurationDowntime,
            true,
        ),
        // Art. 9(4): two or more Member States.
        case(
            "no Member State",
            vec![("member_states_affected", json!(0))],
            GeographicalSpread,
            false,
        ),
        case(
            "one Member State (just below)",
            vec![("member_states_affected", json!(1))],
            GeographicalSpread,
            false,
        ),
        case(
            "two Member States (at)",
            vec![("member_states_affected", json!(2))],
            GeographicalSpread,
            true,
        ),
        case(
            "three Member States (above)",
            vec![("member_states_affected", json!(3))],
            GeographicalSpread,
            true,
        ),
        // Art. 9(5)(a): an impact on availability, authenticity, integrity or
        // confidentiality of data meets the threshold only with an adverse impact on business
        // objectives or regulatory compliance; (b) malicious access always does.
        case("no data loss", vec![], DataLosses, false),
        case(
            "availability, no adverse impact",
            vec![("data_losses.availability", json!(true))],
            DataLosses,
            false,
        ),
        case(
            "availability, adverse impact",
            vec![
                ("data_losses.availability", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
            ],
            DataLosses,
            true,
        ),
        case(
            "authenticity, adverse impact",
            vec![
                ("data_losses.authenticity", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
            ],
            DataLosses,
            true,
        ),
        case(
            "integrity, no adverse impact",
            vec![("data_losses.integrity", json!(true))],
            DataLosses,
            false,
        ),
        case(
            "integrity, adverse impact",
            vec![
                ("data_losses.integrity", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
            ],
            DataLosses,
            true,
        ),
        case(
            "confidentiality, adverse impact",
            vec![
                ("data_losses.confidentiality", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
            ],
            DataLosses,
            true,
        ),
        case(
            "adverse impact stated but no impact on data",
            vec![("data_losses.adverse_impact", json!(true))],
            DataLosses,
            false,
        ),
        case(
            "no adverse impact stated, but malicious access (b)",
            vec![
                ("data_losses.confidentiality", json!(true)),
                ("malicious_unauthorised_access", json!(true)),
            ],
            DataLosses,
            true,
        ),
        case(
            "malicious access",
            vec![("malicious_unauthorised_access", json!(true))],
            DataLosses,
            true,
        ),
        // Art. 9(6): economic impact > EUR 100 000.
        case(
            "economic just below",
            vec![("economic_impact_eur", json!(99_999.99))],
            EconomicImpact,
            false,
        ),
        case(
            "economic at",
            vec![("economic_impact_eur", json!(100_000.0))],
            EconomicImpact,
            false,
        ),
        case(
            "economic just above",
            vec![("economic_impact_eur", json!(100_000.01))],
            EconomicImpact,
            true,
        ),
        // Art. 6: critical services.
        case(
            "critical services not affected",
            vec![("critical_services_affected", json!(false))],
            CriticalServices,
            false,
        ),
        case(
            "critical services affected",
            vec![("critical_services_affected", json!(true))],
            CriticalServices,
            true,
        ),
        case(
            "malicious access meets critical services",
            vec![
                ("critical_services_affected", json!(false)),
                ("malicious_unauthorised_access", json!(true)),
            ],
            CriticalServices,
            true,
        ),
    ];
    for c in cases {
        let mut v = base();
        for (path, x) in &c.edits {
            set(&mut v, path, x.clone());
        }
        let result = run(&v);
        let met = result.criteria_met.contains(&c.criterion);
        assert_eq!(
            met,
            c.met,
            "case {:?}: {} met = {met}; explanation: {}",
            c.name,
            c.criterion.name(),
            result.explanation
        );
        let detail = result
            .criteria
            .iter()
            .find(|a| a.criterion == c.criterion)
            .unwrap();
        assert_eq!(detail.met, c.met, "case {:?}", c.name);
        assert!(detail.article.contains("2024/1772"), "article cited");
        if c.met {
            assert!(
                result
                    .explanation
                    .contains(&format!("{} met", c.criterion.name())),
                "case {:?}: explanation names it",
                c.name
            );
        }
        // Only the criterion under test (plus critical services) may be met.
        for other in &result.criteria_met {
            assert!(
                *other == c.criterion
                    || *other == Criterion::CriticalServices
                    || (*other == DataLosses && c.name.contains("malicious")),
                "case {:?}: unexpected {}",
                c.name,
                other.name()
            );
        }
    }
}

/// (name, edits, major, thresholds met)
type Combo = (&'static str, Vec<(&'static str, Value)>, bool, usize);
/// (name, edit, field named in the error)
type ErrorCase = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);

#[test]
fn major_rule_combinations() {
    // (name, edits, major, thresholds)
    let combos: Vec<Combo> = vec![
        ("nothing met", vec![], false, 0),
        (
            "one threshold only",
            vec![("economic_impact_eur", json!(200_000.0))],
            false,
            1,
        ),
        (
            "two thresholds of different paragraphs",
            vec![
                ("economic_impact_eur", json!(200_000.0)),
                ("member_states_affected", json!(2)),
            ],
            true,
            2,
        ),
        (
            "two limbs of Art. 9(1) count once",
            vec![
                ("clients.affected", json!(60_000)),
                ("financial_counterparts.affected", json!(40)),
            ],
            false,
            1,
        ),
        (
            "two limbs of Art. 9(3) count once",
            vec![
                ("duration_hours", json!(30.0)),
                ("service_downtime_hours", json!(3.0)),
            ],
            false,
            1,
        ),
        (
            "data loss (a) plus reputational",
            vec![
                ("data_losses.integrity", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
                ("reputational", json!(["media_attention"])),
            ],
            true,
            2,
        ),
        (
            "data loss without adverse impact plus reputational: one threshold",
            vec![
                ("data_losses.integrity", json!(true)),
                ("reputational", json!(["media_attention"])),
            ],
            false,
            1,
        ),
        (
            "malicious access alone (Art. 9(5)(b))",
            vec![("malicious_unauthorised_access", json!(true))],
            true,
            1,
        ),
        (
            "malicious access without declared critical services",
            vec![
                ("critical_services_affected", json!(false)),
                ("malicious_unauthorised_access", json!(true)),
            ],
            true,
            1,
        ),
        (
            "all six thresholds without critical services",
            vec![
                ("critical_services_affected", json!(false)),
                ("clients.affected", json!(60_000)),
                ("reputational", json!(["client_loss"])),
                ("duration_hours", json!(48.0)),
                ("member_states_affected", json!(5)),
                ("data_losses.availability", json!(true)),
                ("data_losses.adverse_impact", json!(true)),
                ("economic_impact_eur", json!(1e6)),
            ],
            false,
            6,
        ),
        (
            "three thresholds",
            vec![
                ("reputational", json!(["media_attention"])),
                ("service_downtime_hours", json!(2.5)),
                ("transactions.affected", json!(5000)),
            ],
            true,
            3,
        ),
    ];
    for (name, edits, major, thresholds) in combos {
        let mut v = base();
        for (path, x) in &edits {
            set(&mut v, path, x.clone());
        }
        let result = run(&v);
        assert_eq!(result.major, major, "{name}: {}", result.explanation);
        assert_eq!(result.thresholds_met, thresholds, "{name}");
        assert!(
            result.explanation.contains("Art. 8(1)"),
            "{name}: cites the major rule"
        );
    }
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let cases: Vec<ErrorCase> = vec![
        (
            "missing top-level",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("economic_impact_eur");
            }),
            "economic_impact_eur",
        ),
        (
            "missing nested",
            Box::new(|v| {
                v["clients"].as_object_mut().unwrap().remove("total");
            }),
            "clients.total",
        ),
        (
            "missing object",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("data_losses");
            }),
            "data_losses.availability",
        ),
        (
            "adverse impact not a boolean",
            Box::new(|v| v["data_losses"]["adverse_impact"] = json!("yes")),
            "data_losses.adverse_impact",
        ),
        (
            "string count",
            Box::new(|v| v["clients"]["affected"] = json!("ten")),
            "clients.affected",
        ),
        (
            "negative count",
            Box::new(|v| v["financial_counterparts"]["affected"] = json!(-1)),
            "financial_counterparts.affected",
        ),
        (
            "fractional count",
            Box::new(|v| v["member_states_affected"] = json!(1.5)),
            "member_states_affected",
        ),
        (
            "negative hours",
            Box::new(|v| v["duration_hours"] = json!(-2.0)),
            "duration_hours",
        ),
        (
            "unknown reputational",
            Box::new(|v| v["reputational"] = json!(["media_attention", "rumour"])),
            "reputational[1]",
        ),
        (
            "reputational not a list",
            Box::new(|v| v["reputational"] = json!("media_attention")),
            "reputational",
        ),
        (
            "bad time",
            Box::new(|v| v["detected_at"] = json!("yesterday")),
            "detected_at",
        ),
        (
            "bool as string",
            Box::new(|v| v["critical_services_affected"] = json!("true")),
            "critical_services_affected",
        ),
        (
            "affected above total",
            Box::new(|v| v["clients"]["affected"] = json!(600_000)),
            "clients.affected",
        ),
        (
            "classified before detected",
            Box::new(|v| v["classified_at"] = json!("2026-03-01T08:00:00Z")),
            "classified_at",
        ),
        // Unknown fields are refused: a typo must not silently drop a criterion.
        (
            "unknown top-level field",
            Box::new(|v| v["extra_field"] = json!("yes")),
            "extra_field",
        ),
        (
            "typo in a nested field",
            Box::new(|v| v["data_losses"]["adverse_impactt"] = json!(true)),
            "data_losses.adverse_impactt",
        ),
        (
            "time past the accepted range",
            Box::new(|v| v["detected_at"] = json!("9999-12-31T23:00:00Z")),
            "detected_at",
        ),
    ];
    for (name, edit, field) in cases {
        let mut v = base();
        edit(&mut v);
        let err = ClassificationInput::from_value(&v).expect_err(name);
        let named = match &err {
            ClassifyError::Missing { field }
            | ClassifyError::Malformed { field, .. }
            | ClassifyError::Inconsistent { field, .. } => field.clone(),
            ClassifyError::Json(_) => String::new(),
        };
        assert_eq!(named, field, "{name}: {err}");
        assert!(
            err.to_string().contains(field),
            "{name}: message names the field: {err}"
        );
    }
}

#[test]
fn optional_fields_default() {
    let mut v = base();
    v.as_object_mut()
        .unwrap()
        .remove("relevant_clients_affected");
    v["classified_at"] = json!("2026-03-02T09:00:00Z");
    let input = ClassificationInput::from_value(&v).unwrap();
    assert!(!input.relevant_clients_affected);
    assert!(input.classified_at.is_some());
    let mut attempted = base();
    attempted["attempted_malicious_access"] = json!(true);
    let r = run(&attempted);
    assert_eq!(
        r.criteria_met,
        vec![Criterion::CriticalServices],
        "an attempt meets nothing"
    );
    assert!(r.explanation.contains("Art. 10"));
    assert!(matches!(
        ClassificationInput::from_json_str("{not json"),
        Err(ClassifyError::Json(_))
    ));
}
