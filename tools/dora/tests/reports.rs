//! Reports with the fields of Implementing Regulation (EU) 2025/302, validated against the
//! shipped schema; a missing mandatory field is refused with its name.

mod common;
use ccbft_dora::classify::Affected;
use ccbft_dora::deadlines::EntityType;
use ccbft_dora::health::EventKind;
use ccbft_dora::incident::{IncidentTracker, Ingested, MergePolicy, OperatorFacts};
use ccbft_dora::report::{
    build, check_value, to_html, Contact, EntityProfile, ReportError, ReportInputs, Stage,
    REPORT_SCHEMA,
};
use ccbft_dora::schema::{validate, SchemaError};
use common::{at, event};
use serde_json::{json, Value};

fn profile() -> EntityProfile {
    EntityProfile {
        name: "Example Bank AG".into(),
        lei: "5493001KJTIIGC8Y1R12".into(),
        entity_types: vec![EntityType::CreditInstitution],
        affected_name: None,
        affected_lei: None,
        primary_contact: Contact {
            name: "A. Operator".into(),
            email: "ops@example.eu".into(),
            telephone: "+49 69 000000".into(),
        },
        second_contact: Some(Contact {
            name: "B. Deputy".into(),
            email: "deputy@example.eu".into(),
            telephone: "+49 69 000001".into(),
        }),
        parent_name: None,
        parent_lei: None,
        currency: "EUR".into(),
    }
}

fn major_tracker(description: Option<&str>) -> (IncidentTracker, String) {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let Ingested::Opened(id) = tr
        .ingest(&event("s", 0, EventKind::CommitStall, None, None))
        .unwrap()
    else {
        panic!()
    };
    tr.ingest(&event(
        "p",
        1,
        EventKind::DomainPartition,
        None,
        Some("aws/eu-central-1"),
    ))
    .unwrap();
    tr.ingest(&event(
        "h",
        190,
        EventKind::PartitionHealed,
        None,
        Some("aws/eu-central-1"),
    ))
    .unwrap();
    tr.ingest(&event("r", 200, EventKind::CommitResumed, None, None))
        .unwrap();
    tr.set_facts(
        &id,
        OperatorFacts {
            clients: Some(Affected {
                affected: 120_000,
                total: 900_000,
            }),
            financial_counterparts: Some(Affected {
                affected: 3,
                total: 40,
            }),
            member_states: Some(vec!["DE".into(), "AT".into()]),
            description: description.map(str::to_string),
            business_continuity_plan_activated: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(tr.classify(&id, at(60)).unwrap().major);
    (tr, id)
}

fn schema() -> Value {
    serde_json::from_str(REPORT_SCHEMA).unwrap()
}

fn full_inputs() -> ReportInputs {
    ReportInputs {
        figures_actual_or_estimates: Some("actual".into()),
        member_state_impact_types: Some(vec!["clients".into()]),
        member_state_impact_description: Some("Clients in AT use the DE service.".into()),
        incident_type: Some("system_failure".into()),
        impact_on_financial_interest_of_clients: Some("no".into()),
        reporting_to_other_authorities: Some(vec!["none".into()]),
        temporary_actions_taken: Some(true),
        temporary_actions: Some("Clients failed over to azure and gcp domains.".into()),
        root_cause_categories: Some(vec!["system_failure".into()]),
        root_cause_details: Some(vec!["third-party network outage".into()]),
        root_causes: Some("Provider network outage in aws/eu-central-1.".into()),
        root_cause_addressed_at: Some(at(190)),
        resolved_at: Some(at(200)),
        resolution: Some(
            "Provider restored connectivity; replicas caught up by state transfer.".into(),
        ),
        costs_and_losses: Some(12_000.0),
        financial_recoveries: Some(0.0),
        ..Default::default()
    }
}

#[test]
fn all_three_reports_validate_against_the_shipped_schema() {
    let (tr, id) = major_tracker(Some(
        "Global ordering stalled after the aws region was partitioned.",
    ));
    let incident = tr.get(&id).unwrap();
    for stage in [
        Stage::InitialNotification,
        Stage::IntermediateReport,
        Stage::FinalReport,
    ] {
        let report = build(stage, incident, &profile(), &full_inputs(), at(300))
            .unwrap_or_else(|e| panic!("{stage:?}: {e}"));
        let violations = validate(&schema(), &report.json).unwrap();
        assert!(violations.is_empty(), "{stage:?}: {violations:?}");
        assert_eq!(report.json["1.1"], json!(stage.name()));
        assert_eq!(report.json["2.1"], json!(id));
        assert_eq!(report.json["2.2"], json!("2026-03-03T08:00:00Z"));
        assert_eq!(report.json["2.3"], json!("2026-03-03T09:00:00Z"));
        let criteria = report.json["2.5"].as_array().unwrap();
        assert!(
            criteria.contains(&json!("geographical_spread"))
                && criteria.contains(&json!("critical_services"))
        );
        if stage != Stage::InitialNotification {
            assert_eq!(report.json["3.4"], json!(120_000));
            assert_eq!(report.json["3.5"], json!(13.33));
            assert_eq!(report.json["3.3"], json!("2026-03-03T11:20:00Z"));
        }
        let html = to_html(&report);
        assert!(html.contains("Date and time of detection of the major ICT-related incident"));
        assert!(html.contains(&id));
    }
}

#[test]
fn missing_mandatory_field_is_refused_with_its_name() {
    let (tr, id) = major_tracker(None);
    let err = build(
        Stage::InitialNotification,
        tr.get(&id).unwrap(),
        &profile(),
        &ReportInputs::default(),
        at(300),
    )
    .unwrap_err();
    match &err {
        ReportError::MissingField { field, name, .. } => {
            assert_eq!(field, "2.4");
            assert_eq!(name, "Description of the major ICT-related incident");
        }
        other => panic!("{other:?}"),
    }
    assert!(err
        .to_string()
        .contains("2.4 (Description of the major ICT-related incident)"));
    // Intermediate report without temporary actions.
    let (tr, id) = major_tracker(Some("d"));
    let inputs = ReportInputs {
        temporary_actions: None,
        ..full_inputs()
    };
    let err = build(
        Stage::IntermediateReport,
        tr.get(&id).unwrap(),
        &profile(),
        &inputs,
        at(300),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ReportError::MissingField { field, .. } if field == "3.34"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("give \"temporary_actions\" in the report inputs file"),
        "{err}"
    );
    // Final report without root causes.
    let inputs = ReportInputs {
        root_causes: None,
        ..full_inputs()
    };
    let err = build(
        Stage::FinalReport,
        tr.get(&id).unwrap(),
        &profile(),
        &inputs,
        at(300),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ReportError::MissingField { field, .. } if field == "4.5"),
        "{err}"
    );
}

#[test]
fn report_files_are_checked_field_by_field() {
    let (tr, id) = major_tracker(Some("d"));
    let good = build(
        Stage::InitialNotification,
        tr.get(&id).unwrap(),
        &profile(),
        &ReportInputs::default(),
        at(300),
    )
    .unwrap()
    .json;
    assert!(check_value(good.clone()).is_ok());
    for field in ["1.3", "1.7", "2.2", "2.3"] {
        let mut bad = good.clone();
        bad.as_object_mut().unwrap().remove(field);
        let err = check_value(bad).unwrap_err();
        assert!(
            matches!(&err, ReportError::MissingField { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
    let mut bad = good.clone();
    bad["1.3"] = json!("TOO-SHORT");
    assert!(
        matches!(check_value(bad).unwrap_err(), ReportError::InvalidField { field, .. } if field == "1.3")
    );
    let mut bad = good.clone();
    bad["1.3"] = json!("5493001KJTIIGC8Y1R13");
    let err = check_value(bad).unwrap_err();
    assert!(
        matches!(&err, ReportError::InvalidField { field, message, .. } if field == "1.3" && message.contains("check digits")),
        "{err}"
    );
    let mut bad = good.clone();
    bad["2.2"] = json!("yesterday");
    assert!(
        matches!(check_value(bad).unwrap_err(), ReportError::InvalidField { field, .. } if field == "2.2")
    );
    let mut bad = good;
    bad["1.1"] = json!("major_incident_reclassified_as_non_major");
    assert!(
        matches!(check_value(bad).unwrap_err(), ReportError::MissingField { field, .. } if field == "2.10")
    );
}

#[test]
fn non_major_incident_gets_no_report_and_a_broken_schema_is_refused() {
    let mut tr = IncidentTracker::new(MergePolicy::default());
    let Ingested::Opened(id) = tr
        .ingest(&event("x", 0, EventKind::SlaBreach, Some(1), None))
        .unwrap()
    else {
        panic!()
    };
    tr.classify(&id, at(5)).unwrap();
    assert!(matches!(
        build(
            Stage::InitialNotification,
            tr.get(&id).unwrap(),
            &profile(),
            &ReportInputs::default(),
            at(10)
        ),
        Err(ReportError::NotMajor(_))
    ));
    // A schema that breaks the 2020-12 meta-schema, or names a format no one checks, is
    // refused when compiled: it is never applied half-checked.
    for broken in [
        json!({"type": "strin"}),
        json!({"minLength": "three"}),
        json!({"type": "string", "format": "date-tim"}),
    ] {
        assert!(
            matches!(
                validate(&broken, &json!("ABC")),
                Err(SchemaError::Invalid { .. })
            ),
            "{broken}"
        );
    }
}

/// Reclassification as non-major is allowed only if, after further assessment, the incident
/// at no time met the major criteria (field 1.1 of 2025/302).
#[test]
fn reclassification_as_non_major_only_when_the_further_assessment_is_not_major() {
    // (case, corrected facts before re-assessing (None: no re-assessment), allowed)
    let corrected = || OperatorFacts {
        clients: Some(Affected {
            affected: 1_000,
            total: 900_000,
        }),
        member_states: Some(vec!["DE".into()]),
        ..Default::default()
    };
    let cases: Vec<(&str, bool, Option<OperatorFacts>, bool)> = vec![
        ("major, not re-assessed", true, None, false),
        (
            "major, re-assessed with the same facts: still major",
            true,
            Some(OperatorFacts::default()),
            false,
        ),
        (
            "major, re-assessed with corrected facts: not major",
            true,
            Some(corrected()),
            true,
        ),
        ("never classified as major", false, None, false),
    ];
    for (name, major_first, facts, allowed) in cases {
        let (mut tr, id) = if major_first {
            major_tracker(Some("Ordering stalled."))
        } else {
            let mut tr = IncidentTracker::new(MergePolicy::default());
            let Ingested::Opened(id) = tr
                .ingest(&event("s", 0, EventKind::CommitStall, None, None))
                .unwrap()
            else {
                panic!()
            };
            assert!(!tr.classify(&id, at(5)).unwrap().major);
            (tr, id)
        };
        if let Some(f) = facts {
            tr.set_facts(&id, f).unwrap();
            tr.classify(&id, at(240)).unwrap();
        }
        let result = build(
            Stage::MajorIncidentReclassifiedAsNonMajor,
            tr.get(&id).unwrap(),
            &profile(),
            &ReportInputs {
                other_information: Some(
                    "Further assessment: 1 000 clients in one Member State.".into(),
                ),
                ..Default::default()
            },
            at(300),
        );
        match (allowed, result) {
            (true, Ok(report)) => {
                assert_eq!(
                    report.json["1.1"],
                    json!("major_incident_reclassified_as_non_major"),
                    "{name}"
                );
            }
            (false, Err(ReportError::NotReclassifiable { id: got, reason })) => {
                assert_eq!(got, id, "{name}");
                assert!(!reason.is_empty(), "{name}");
            }
            (allowed, other) => panic!("{name}: allowed={allowed}, got {other:?}"),
        }
    }
}
